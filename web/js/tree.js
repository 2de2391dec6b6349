// The topic tree: every topic seen, by level, with its last value, message
// count and rate (messages per second over the last ten seconds). Counting
// is cheap per message; drawing happens twice a second and only for the
// levels the user opened.

import { preview } from './messages.js';

const MAX_CHILDREN = 200;

// The first two levels start open, deeper ones closed.
function node(name, depth) {
  return { name, children: new Map(), count: 0, last: null, marks: [], open: depth < 2 };
}

export class TopicTree {
  constructor(el, onPick) {
    this.el = el;
    this.root = node('', 0);
    this.onPick = onPick; // (topic, action) => void
    this.dirty = false;
    this.topics = 0;
    el.addEventListener('click', (e) => {
      const li = e.target.closest('li');
      if (!li) return;
      const topic = li.dataset.topic;
      const n = this.lookup(topic);
      if (e.target.classList.contains('chart')) { this.onPick(topic, 'chart'); return; }
      if (e.target.classList.contains('filter')) { this.onPick(topic, 'filter'); return; }
      if (n && n.children.size) { n.open = !n.open; this.draw(); }
    });
    setInterval(() => this.tick(), 1000);
    setInterval(() => { if (this.dirty) this.draw(); }, 500);
  }

  lookup(topic) {
    let n = this.root;
    for (const part of topic.split('/')) {
      n = n.children.get(part);
      if (!n) return null;
    }
    return n;
  }

  add(m) {
    let n = this.root;
    let depth = 0;
    for (const part of m.topic.split('/')) {
      let c = n.children.get(part);
      if (!c) { c = node(part, depth); n.children.set(part, c); }
      depth++;
      n = c;
    }
    if (!n.count && !n.last) this.topics++;
    n.count++;
    n.last = m;
    this.dirty = true;
  }

  // Once a second: remember counts for the rate of the last ten seconds.
  tick() {
    const walk = (n) => {
      if (n.last) {
        n.marks.push(n.count);
        if (n.marks.length > 11) n.marks.shift();
      }
      for (const c of n.children.values()) walk(c);
    };
    walk(this.root);
    this.dirty = true;
  }

  static rate(n) {
    if (n.marks.length < 2) return 0;
    return (n.marks[n.marks.length - 1] - n.marks[0]) / (n.marks.length - 1);
  }

  draw() {
    this.dirty = false;
    const ul = this.list(this.root, '');
    this.el.replaceChildren(ul);
  }

  list(n, prefix) {
    const ul = document.createElement('ul');
    let shown = 0;
    const names = [...n.children.keys()].sort();
    for (const name of names) {
      if (shown++ >= MAX_CHILDREN) {
        const more = document.createElement('li');
        more.textContent = `… ${names.length - MAX_CHILDREN} more`;
        ul.appendChild(more);
        break;
      }
      const c = n.children.get(name);
      const topic = prefix ? `${prefix}/${name}` : name;
      const li = document.createElement('li');
      li.dataset.topic = topic;
      const label = document.createElement('span');
      label.className = c.children.size ? (c.open ? 'name open' : 'name closed') : 'name';
      label.textContent = name === '' ? '(empty)' : name;
      li.appendChild(label);
      if (c.last) {
        const v = document.createElement('span');
        v.className = 'val';
        v.textContent = preview(c.last).slice(0, 40);
        const s = document.createElement('span');
        s.className = 'stat';
        s.textContent = `${c.count} · ${TopicTree.rate(c).toFixed(1)}/s`;
        const ch = document.createElement('button');
        ch.type = 'button'; ch.className = 'chart'; ch.textContent = 'chart'; ch.title = 'chart this topic';
        const fl = document.createElement('button');
        fl.type = 'button'; fl.className = 'filter'; fl.textContent = 'only'; fl.title = 'show only this topic in the message list';
        li.append(v, s, ch, fl);
      }
      if (c.children.size && c.open) li.appendChild(this.list(c, topic));
      ul.appendChild(li);
    }
    return ul;
  }
}
