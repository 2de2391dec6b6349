// The broker panel, fed by $SYS/# on the same connection (CONVENTIONS.md
// lists the topics): clients by transport, message rates, uptime, retained
// messages and more, each shown as a card that updates in place.

import { toText } from './format.js';

const CARDS = [
  ['Version', 'version'],
  ['Uptime', 'uptime'],
  ['Clients connected', 'clients/connected'],
  ['… over TCP', 'transport/tcp/connected'],
  ['… over TLS', 'transport/tls/connected'],
  ['… over WebSocket', 'transport/ws/connected'],
  ['… over secure WebSocket', 'transport/wss/connected'],
  ['Clients maximum', 'clients/maximum'],
  ['Messages received', 'publish/messages/received'],
  ['Messages sent', 'publish/messages/sent'],
  ['Messages dropped', 'publish/messages/dropped'],
  ['Received / min (1 min avg)', 'load/publish/received/1min'],
  ['Sent / min (1 min avg)', 'load/publish/sent/1min'],
  ['Bytes received', 'bytes/received'],
  ['Bytes sent', 'bytes/sent'],
  ['Subscriptions', 'subscriptions/count'],
  ['Retained messages', 'retained messages/count'],
  ['Queued messages', 'store/messages/count'],
  ['Heap', 'heap/current'],
];

function uptime(v) {
  const s = parseInt(v, 10);
  if (!Number.isFinite(s)) return v;
  const d = Math.floor(s / 86400); const h = Math.floor(s / 3600) % 24;
  const m = Math.floor(s / 60) % 60;
  return `${d ? d + 'd ' : ''}${h}h ${m}m ${s % 60}s`;
}

export class BrokerPanel {
  constructor(el, hint) {
    this.el = el;
    this.hint = hint;
    this.values = {};
    this.cards = new Map();
    for (const [label, key] of CARDS) {
      const card = document.createElement('div');
      card.className = 'card';
      const l = document.createElement('div'); l.className = 'label'; l.textContent = label;
      const v = document.createElement('div'); v.className = 'value'; v.textContent = '–';
      card.append(l, v);
      el.appendChild(card);
      this.cards.set(key, v);
    }
  }

  // A $SYS message: remember it; update its card if it has one.
  feed(topic, payload) {
    const key = topic.replace(/^\$SYS\/broker\//, '');
    const text = toText(payload);
    this.values[key] = text;
    const v = this.cards.get(key);
    if (!v) return;
    this.hint.hidden = true;
    let shown = text;
    if (key === 'uptime') shown = uptime(text);
    else if (/^load\//.test(key)) shown = Number(text).toFixed(1);
    else if (key === 'heap/current') shown = `${(Number(text) / 1048576).toFixed(1)} MiB`;
    v.textContent = shown;
  }
}
