// Live charts: one uPlot line per chart, fed by the numeric payloads of a
// topic (or a number inside its JSON, by dotted field path). Each chart
// keeps its last MAX_POINTS points and redraws at most once per frame.

import uPlot from '../vendor/uPlot.esm.js';
import { numberOf, topicMatches } from './format.js';

const MAX_POINTS = 2000;

export class Charts {
  // history(fn): calls fn on every kept message, oldest first, so a new
  // chart starts with what was already received.
  constructor(el, history) {
    this.el = el;
    this.history = history;
    this.list = []; // { topic, field, xs, ys, plot, box }
        this.pending = false;
    new ResizeObserver(() => this.resize()).observe(el);
  }

  has(topic, field) {
    return this.list.some((c) => c.topic === topic && c.field === field);
  }

  add(topic, field = '') {
    if (this.has(topic, field)) return;
    const box = document.createElement('div');
    box.className = 'chart-box';
    const head = document.createElement('div');
    head.className = 'chart-head';
    const title = document.createElement('span');
    title.textContent = field ? `${topic} → ${field}` : topic;
    const close = document.createElement('button');
    close.type = 'button'; close.textContent = '×'; close.title = 'remove chart';
    head.append(title, close);
    const plotEl = document.createElement('div');
    box.append(head, plotEl);
    this.el.appendChild(box);
    const c = { topic, field, xs: [], ys: [], box };
    this.history((m) => this.point(c, m));
    c.plot = new uPlot({
      width: this.width(),
      height: 220,
      scales: { x: { time: true } },
      series: [{}, { label: field || 'value', stroke: '#2563eb', width: 2, spanGaps: true }],
      axes: [{}, {}],
      legend: { live: true },
    }, [c.xs, c.ys], plotEl);
    close.addEventListener('click', () => this.remove(c));
    this.list.push(c);
  }

  remove(c) {
    c.plot.destroy();
    c.box.remove();
    this.list = this.list.filter((x) => x !== c);
  }

  width() { return Math.max(300, this.el.clientWidth - 24); }

  resize() {
    for (const c of this.list) c.plot.setSize({ width: this.width(), height: 220 });
  }

  // Adds m to chart c if it carries a number; returns whether it did.
  point(c, m) {
    if (!topicMatches(c.topic, m.topic)) return false;
    const v = numberOf(m.payload, c.field);
    if (!Number.isFinite(v)) return false;
    c.xs.push(m.ts / 1000);
    c.ys.push(v);
    if (c.xs.length > MAX_POINTS) { c.xs.shift(); c.ys.shift(); }
    return true;
  }

  // A message arrived: add a point to every chart it feeds.
  feed(m) {
    let any = false;
    for (const c of this.list) if (this.point(c, m)) any = true;
    if (any && !this.pending) {
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        for (const c of this.list) c.plot.setData([c.xs, c.ys]);
      });
    }
  }
}
