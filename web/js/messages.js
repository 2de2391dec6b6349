// The message history and its list on screen.
//
// MessageStore keeps the newest `max` messages in a ring; older ones are
// dropped and counted, so memory stays bounded however fast messages come.
// MessageList draws only the rows in view (fixed row height, a spacer for
// the scroll height, a small pool of row elements reused), and redraws at
// most once per animation frame, so 100,000 messages cost 100,000 array
// writes and a few hundred DOM updates.

import { toText, toHex, isText } from './format.js';

export class MessageStore {
  constructor(max) {
    this.max = max;
    this.buf = new Array(max);
    this.head = 0; // index of the oldest
    this.size = 0;
    this.dropped = 0;
    this.total = 0;
    this.nextId = 1;
  }

  push(m) {
    m.id = this.nextId++;
    if (this.size < this.max) {
      this.buf[(this.head + this.size) % this.max] = m;
      this.size++;
    } else {
      this.buf[this.head] = m;
      this.head = (this.head + 1) % this.max;
      this.dropped++;
    }
    this.total++;
  }

  // i = 0 is the oldest kept message.
  at(i) { return this.buf[(this.head + i) % this.max]; }

  newest(k) { return this.at(this.size - 1 - k); }

  find(id) {
    const oldest = this.size ? this.at(0).id : 0;
    if (id < oldest || id >= this.nextId) return null;
    return this.at(id - oldest);
  }

  clear() {
    this.buf = new Array(this.max);
    this.head = 0;
    this.size = 0;
  }
}

const ROW = 24;
const PREVIEW = 160;

// A short one-line preview of a payload, computed once per message.
export function preview(m) {
  if (m.preview === undefined) {
    const head = m.payload.subarray(0, PREVIEW);
    // Binary payloads preview as hex rather than replacement characters
    // (a cut multi-byte character at the end still counts as text).
    m.preview = isText(m.payload.length <= 65536 ? m.payload : head)
      ? toText(head).replace(/[\x00-\x1f]/g, ' ')
      : toHex(head.subarray(0, 48)).replace(/\n/g, ' ');
  }
  return m.preview;
}

function time(ts) {
  const d = new Date(ts);
  return d.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

export class MessageList {
  // el: scroll container; spacer/rows: its children; onSelect(message).
  constructor(el, spacer, rows, store, onSelect) {
    Object.assign(this, { el, spacer, rows, store, onSelect });
    this.filter = null; // (m) => bool
    this.view = null;   // filtered messages, newest first, or null
    this.viewAt = -1;   // store.total when view was computed
    this.pool = [];
    this.selected = 0;
    this.paused = false;
    this.pausedAt = 0; // store.total when the view was paused
    this.pending = false;
    this.lastTotal = 0;
    this.colorOf = () => '';
    el.addEventListener('scroll', () => this.invalidate());
    el.addEventListener('click', (e) => {
      const row = e.target.closest('.msg');
      if (row && row.dataset.id) this.select(Number(row.dataset.id));
    });
    new ResizeObserver(() => this.invalidate()).observe(el);
  }

  setFilter(fn) {
    this.filter = fn;
    this.view = null;
    this.viewAt = -1;
    this.el.scrollTop = 0;
    this.invalidate();
  }

  select(id) {
    this.selected = id;
    this.onSelect(this.store.find(id));
    this.invalidate();
  }

  invalidate() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  // Paused, the view shows what it showed then: messages that arrived
  // since are skipped (and the filtered view is not recomputed).
  setPaused(p) {
    this.paused = p;
    this.pausedAt = this.store.total;
    this.invalidate();
  }

  skipped() {
    return this.paused ? Math.min(this.store.size, this.store.total - this.pausedAt) : 0;
  }

  count() {
    if (!this.filter) return this.store.size - this.skipped();
    if (this.viewAt !== this.store.total && !(this.paused && this.view)) {
      const v = [];
      for (let k = 0; k < this.store.size; k++) {
        const m = this.store.newest(k);
        if (this.filter(m)) v.push(m);
      }
      this.view = v;
      this.viewAt = this.store.total;
    }
    return this.view.length;
  }

  item(k) { return this.filter ? this.view[k] : this.store.newest(k + this.skipped()); }

  draw() {
    let added = this.store.total - this.lastTotal;
    this.lastTotal = this.store.total;
    if (this.paused) added = 0;
    const n = this.count();
    this.spacer.style.height = `${n * ROW}px`;
    // Reading older messages: keep them in place as new ones arrive on top.
    if (this.el.scrollTop > 0 && added > 0 && !this.filter) this.el.scrollTop += added * ROW;
    const first = Math.floor(this.el.scrollTop / ROW);
    const visible = Math.ceil(this.el.clientHeight / ROW) + 1;
    while (this.pool.length < visible) {
      const r = document.createElement('div');
      r.className = 'msg';
      r.innerHTML = '<span class="sw"></span><span class="t"></span><span class="tp"></span><span class="q"></span><span class="p"></span>';
      this.rows.appendChild(r);
      this.pool.push(r);
    }
    this.rows.style.transform = `translateY(${first * ROW}px)`;
    for (let i = 0; i < this.pool.length; i++) {
      const r = this.pool[i];
      const m = first + i < n ? this.item(first + i) : null;
      if (!m) { r.hidden = true; continue; }
      r.hidden = false;
      if (r.dataset.id === String(m.id) && r.classList.contains('sel') === (m.id === this.selected)) continue;
      r.dataset.id = m.id;
      r.classList.toggle('sel', m.id === this.selected);
      const [sw, t, tp, q, p] = r.children;
      sw.style.background = this.colorOf(m);
      t.textContent = time(m.ts);
      tp.textContent = m.topic;
      q.textContent = `Q${m.qos}${m.retain ? ' R' : ''}${m.out ? ' ↑' : ''}`;
      p.textContent = preview(m);
    }
  }
}
