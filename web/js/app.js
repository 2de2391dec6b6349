// tern's web client: wires the connection form, subscriptions, message
// list, publish form, charts, topic tree and broker panel to one MQTT.js
// connection. The page is served by ternd itself, so its own origin is the
// broker: ws:// for http pages, wss:// for https, path /mqtt.
//
// For tests and the curious, window.tern exposes the live state.

import mqtt from '../vendor/mqtt.esm.js';
import { FORMATS, render, parsePayload, isText, toJson, topicMatches, toText } from './format.js';
import { MessageStore, MessageList } from './messages.js';
import { TopicTree } from './tree.js';
import { Charts } from './charts.js';
import { BrokerPanel } from './broker.js';
import { settings } from './store.js';
import { AdminPanel } from './admin.js';

const MAX_MESSAGES = 20000;
const PALETTE = ['#2563eb', '#db2777', '#16a34a', '#ea580c', '#7c3aed', '#0891b2', '#ca8a04', '#dc2626'];
const $ = (id) => document.getElementById(id);

const state = {
  client: null,
  subs: [], // { topic, qos, color, nl, rap, rh, granted }
  version: 5,
};
const store = new MessageStore(MAX_MESSAGES);
const list = new MessageList($('list'), $('list-spacer'), $('list-rows'), store, showDetail);
const tree = new TopicTree($('tree'), (topic, action) => {
  if (action === 'chart') { charts.add(topic); showTab('charts'); }
  if (action === 'filter') { $('filter-topic').value = topic; applyFilter(); showTab('messages'); }
});
const charts = new Charts($('charts'), (fn) => {
  for (let i = 0; i < store.size; i++) fn(store.at(i));
});
const broker = new BrokerPanel($('broker'), $('broker-hint'));
const admin = new AdminPanel($('admin-form'), $('clients-table'), $('admin-status'));

list.colorOf = (m) => {
  const s = state.subs.find((x) => topicMatches(x.topic, m.topic));
  return s ? s.color : 'transparent';
};

// ---- connection form and saved connections ----

function defaults() {
  // mqtt next to the page: /mqtt when served at /, and still right
  // behind a reverse proxy that serves ternd under a sub-path.
  const url = new URL('mqtt', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = ''; url.hash = '';
  return {
    name: '', url: url.href,
    clientId: 'tern-web-' + Math.random().toString(16).slice(2, 10),
    username: '', password: '', savePassword: false, version: '5', keepalive: 60,
    clean: true, sessionExpiry: 0, willTopic: '', willPayload: '', willQos: '0',
    willRetain: false, sys: true, subs: [],
  };
}

function formGet() {
  const f = $('conn-form').elements;
  const c = {};
  for (const k of Object.keys(defaults())) {
    if (!f[k]) continue;
    c[k] = f[k].type === 'checkbox' ? f[k].checked : f[k].value;
  }
  if (!c.name) c.name = `${c.username ? c.username + '@' : ''}${c.url}`;
  return c;
}

function formSet(c) {
  const f = $('conn-form').elements;
  for (const [k, v] of Object.entries({ ...defaults(), ...c })) {
    if (!f[k]) continue;
    if (f[k].type === 'checkbox') f[k].checked = !!v; else f[k].value = v;
  }
  state.subs = (c.subs || []).map((s) => ({ ...s }));
  drawSubs();
  versionChanged();
}

function drawSaved() {
  const sel = $('saved');
  const last = settings.lastUsed();
  sel.replaceChildren(new Option('(new connection)', ''));
  for (const c of settings.connections()) sel.add(new Option(c.name, c.name, false, c.name === last));
}

$('saved').addEventListener('change', (e) => {
  const c = settings.connections().find((x) => x.name === e.target.value);
  formSet(c || defaults());
});

$('saved-delete').addEventListener('click', () => {
  const name = $('saved').value;
  if (name) { settings.forget(name); drawSaved(); formSet(defaults()); }
});

function versionChanged() {
  state.version = Number($('conn-form').elements.version.value);
  document.body.classList.toggle('v5', state.version === 5);
}
$('conn-form').elements.version.addEventListener('change', versionChanged);

function setStatus(kind, text, detail = '') {
  const s = $('status');
  s.className = `status ${kind}`;
  s.textContent = text;
  $('status-detail').textContent = detail;
  $('disconnect').hidden = kind === 'off';
  $('connect').textContent = kind === 'off' ? 'Connect' : 'Reconnect';
}

function rememberConnection() {
  const c = formGet();
  if (!c.savePassword) c.password = '';
  c.subs = state.subs.map(({ granted, ...s }) => s);
  settings.saveConnection(c);
  drawSaved();
}

function connectOptions(c) {
  const o = {
    clientId: c.clientId,
    protocolVersion: Number(c.version),
    keepalive: Number(c.keepalive) || 0,
    clean: c.clean,
    reconnectPeriod: 3000,
    connectTimeout: 10000,
    resubscribe: false, // done below, with each subscription's options
    // MQTT.js's default timers run in a blob: worker, which the page's
    // Content-Security-Policy (script-src 'self') rightly refuses.
    timerVariant: 'native',
  };
  if (c.username) o.username = c.username;
  if (c.password) o.password = c.password;
  if (o.protocolVersion === 5 && Number(c.sessionExpiry) > 0) {
    o.properties = { sessionExpiryInterval: Number(c.sessionExpiry) };
  }
  if (c.willTopic) {
    o.will = { topic: c.willTopic, payload: c.willPayload, qos: Number(c.willQos), retain: c.willRetain };
  }
  return o;
}

function connect() {
  disconnect();
  const c = formGet();
  state.wantSys = c.sys;
  setStatus('wait', 'connecting…', c.url);
  const client = mqtt.connect(c.url, connectOptions(c));
  state.client = client;
  client.on('connect', (ack) => {
    setStatus('on', 'connected', `${c.url} as ${c.clientId}${ack.sessionPresent ? ' (session present)' : ''}`);
    rememberConnection();
    $('conn-panel').open = false;
    for (const s of state.subs) subscribe(s);
    if (state.wantSys) client.subscribe('$SYS/#', { qos: 0 });
  });
  client.on('reconnect', () => setStatus('wait', 'reconnecting…', c.url));
  client.on('close', () => { if (state.client === client) setStatus('wait', 'connection lost, retrying', c.url); });
  client.on('disconnect', (p) => setStatus('wait', `disconnected by the broker (reason 0x${(p.reasonCode || 0).toString(16)})`, c.url));
  client.on('error', (err) => setStatus('err', 'error', err.message));
  client.on('message', onMessage);
}

function disconnect() {
  if (!state.client) return;
  const old = state.client;
  state.client = null;
  old.end(true);
  setStatus('off', 'disconnected');
}

$('conn-form').addEventListener('submit', (e) => { e.preventDefault(); connect(); });
$('disconnect').addEventListener('click', disconnect);

// ---- subscriptions ----

function drawSubs() {
  const ul = $('subs');
  ul.replaceChildren();
  for (const s of state.subs) {
    const li = document.createElement('li');
    const color = document.createElement('input');
    color.type = 'color'; color.value = s.color; color.title = 'colour';
    color.addEventListener('input', () => { s.color = color.value; list.pool.forEach((r) => { r.dataset.id = ''; }); list.invalidate(); });
    const t = document.createElement('span');
    t.className = 'topic'; t.textContent = s.topic;
    const q = document.createElement('span');
    q.className = 'qos';
    q.textContent = s.granted === undefined ? `QoS ${s.qos}` : s.granted >= 128 ? `refused 0x${s.granted.toString(16)}` : `QoS ${s.granted}`;
    if (s.granted >= 128) q.classList.add('error');
    const x = document.createElement('button');
    x.type = 'button'; x.textContent = 'Unsubscribe';
    x.addEventListener('click', () => unsubscribe(s));
    li.append(color, t, q, x);
    ul.appendChild(li);
  }
}

function subscribe(s) {
  if (!state.client) return;
  const opts = { qos: s.qos };
  if (state.version === 5) Object.assign(opts, { nl: s.nl, rap: s.rap, rh: s.rh });
  state.client.subscribe(s.topic, opts, (err, granted) => {
    s.granted = err ? 128 : granted?.[0]?.qos;
    drawSubs();
  });
}

function unsubscribe(s) {
  state.subs = state.subs.filter((x) => x !== s);
  if (state.client) state.client.unsubscribe(s.topic);
  drawSubs();
  if (state.client?.connected) rememberConnection();
}

$('sub-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const topic = f.topic.value.trim();
  if (!topic || state.subs.some((x) => x.topic === topic)) return;
  const s = {
    topic, qos: Number(f.qos.value), color: f.color.dataset.touched ? f.color.value : PALETTE[state.subs.length % PALETTE.length],
    nl: f.nl.checked, rap: f.rap.checked, rh: Number(f.rh.value),
  };
  state.subs.push(s);
  delete f.color.dataset.touched;
  f.color.value = PALETTE[state.subs.length % PALETTE.length];
  drawSubs();
  subscribe(s);
  if (state.client?.connected) rememberConnection();
});
$('sub-form').elements.color.value = PALETTE[0];
$('sub-form').elements.color.addEventListener('input', (e) => { e.target.dataset.touched = '1'; });

// ---- incoming messages ----

function onMessage(topic, payload, packet) {
  const bytes = new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  const m = {
    topic, payload: bytes, qos: packet.qos, retain: packet.retain, dup: packet.dup,
    props: packet.properties, ts: Date.now(),
  };
  if (topic.startsWith('$SYS/')) {
    broker.feed(topic, bytes);
    if (!state.subs.some((s) => topicMatches(s.topic, topic))) return;
  }
  store.push(m);
  tree.add(m);
  charts.feed(m);
  list.invalidate();
  countsLater();
}

let countsPending = false;
function countsLater() {
  if (countsPending) return;
  countsPending = true;
  setTimeout(() => {
    countsPending = false;
    const shown = list.filter ? `${list.count()} match, ` : '';
    $('counts').textContent = `${shown}${store.size} kept of ${store.total} received` +
      (store.dropped ? ` · ${store.dropped} older dropped (keeps ${MAX_MESSAGES})` : '');
  }, 200);
}

// ---- message detail ----

function defaultFormat(m) {
  if (toJson(m.payload) !== null) return 'json';
  return isText(m.payload) ? 'text' : 'hex';
}

function showDetail(m) {
  const d = $('detail');
  d.replaceChildren();
  if (!m) return;
  if (!m.fmt) m.fmt = defaultFormat(m);
  const h = document.createElement('div');
  h.className = 'meta';
  const rows = [
    ['Topic', m.topic], ['Received', new Date(m.ts).toISOString()], ['QoS', m.qos],
    ['Retain', m.retain ? 'yes' : 'no'], ['Duplicate', m.dup ? 'yes' : 'no'], ['Size', `${m.payload.length} bytes`],
  ];
  if (m.props && Object.keys(m.props).length) rows.push(['Properties', JSON.stringify(m.props, (k, v) => (v?.type === 'Buffer' ? toText(Uint8Array.from(v.data)) : v))]);
  for (const [k, v] of rows) {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v;
    h.append(dt, dd);
  }
  const bar = document.createElement('div');
  bar.className = 'formats';
  for (const f of FORMATS) {
    const b = document.createElement('button');
    b.type = 'button'; b.textContent = f === 'json' ? 'JSON' : f; b.dataset.format = f;
    if (f === m.fmt) b.classList.add('active');
    b.addEventListener('click', () => { m.fmt = f; showDetail(m); });
    bar.appendChild(b);
  }
  const chart = document.createElement('button');
  chart.type = 'button'; chart.textContent = 'chart topic';
  chart.addEventListener('click', () => { charts.add(m.topic); showTab('charts'); });
  bar.appendChild(chart);
  const pre = document.createElement('pre');
  pre.id = 'payload';
  pre.textContent = render(m.payload, m.fmt);
  d.append(h, bar, pre);
}

// ---- filters ----

function applyFilter() {
  const tf = $('filter-topic').value.trim();
  const xf = $('filter-text').value;
  const byTopic = !tf ? null : /[+#]/.test(tf) ? (m) => topicMatches(tf, m.topic) : (m) => m.topic.includes(tf);
  const byText = xf ? (m) => toText(m.payload).includes(xf) : null;
  list.setFilter(byTopic || byText ? (m) => (!byTopic || byTopic(m)) && (!byText || byText(m)) : null);
  countsLater();
}
$('filter-topic').addEventListener('input', applyFilter);
$('filter-text').addEventListener('input', applyFilter);
$('pause').addEventListener('change', (e) => list.setPaused(e.target.checked));
$('clear').addEventListener('click', () => { store.clear(); list.viewAt = -1; list.invalidate(); showDetail(null); countsLater(); });

// ---- publish ----

function drawHistory() {
  const h = settings.history();
  $('pub-history').replaceChildren(...[...new Set(h.map((x) => x.topic))].map((t) => new Option(t)));
  const sel = $('pub-recent');
  sel.replaceChildren(new Option('history…', ''));
  h.forEach((x, i) => sel.add(new Option(`${x.topic}: ${x.payload.slice(0, 30)}`, String(i))));
}

$('pub-recent').addEventListener('change', (e) => {
  const x = settings.history()[Number(e.target.value)];
  if (!x) return;
  const f = $('pub-form').elements;
  f.topic.value = x.topic; f.payload.value = x.payload; f.qos.value = x.qos;
  f.retain.checked = x.retain; f.format.value = x.format;
  e.target.value = '';
});

function publishProps(f) {
  const p = {};
  if (f.contentType.value) p.contentType = f.contentType.value;
  if (f.responseTopic.value) p.responseTopic = f.responseTopic.value;
  if (f.correlationData.value) p.correlationData = new TextEncoder().encode(f.correlationData.value);
  if (f.messageExpiry.value) p.messageExpiryInterval = Number(f.messageExpiry.value);
  if (f.utf8.checked) p.payloadFormatIndicator = true;
  const up = {};
  for (const line of f.userProps.value.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) up[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  if (Object.keys(up).length) p.userProperties = up;
  return p;
}

$('pub-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = e.target.elements;
  const err = $('pub-error');
  err.textContent = '';
  if (!state.client?.connected) { err.textContent = 'Not connected.'; return; }
  let bytes;
  try { bytes = parsePayload(f.payload.value, f.format.value); } catch (x) { err.textContent = x.message; return; }
  const opts = { qos: Number(f.qos.value), retain: f.retain.checked };
  if (state.version === 5) {
    const p = publishProps(f);
    if (Object.keys(p).length) opts.properties = p;
  }
  state.client.publish(f.topic.value, bytes, opts, (x) => { if (x) err.textContent = x.message; });
  settings.addHistory({ topic: f.topic.value, payload: f.payload.value, qos: opts.qos, retain: opts.retain, format: f.format.value });
  drawHistory();
});

// ---- charts and tabs ----

$('chart-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = e.target.elements;
  charts.add(f.topic.value.trim(), f.field.value.trim());
});

function showTab(name) {
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === name);
  for (const t of document.querySelectorAll('.tab')) t.classList.toggle('active', t.id === `tab-${name}`);
  if (name === 'messages') list.invalidate();
}
for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));

// ---- start ----

drawSaved();
formSet(settings.connections().find((x) => x.name === settings.lastUsed()) || defaults());
drawHistory();
setStatus('off', 'disconnected');

window.tern = {
  state, store, list, tree, charts, broker, admin, settings, connect, disconnect, showTab,
  get client() { return state.client; },
  get connected() { return !!state.client?.connected; },
};
document.body.dataset.ready = '1';
