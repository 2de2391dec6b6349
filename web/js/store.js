// Settings kept in the browser's localStorage: saved connections (the
// last one used comes back on reload), the last subscriptions of each
// connection, and the publish history.

const KEY = 'tern.v1';
const MAX_HISTORY = 30;

function load() {
  try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch { return {}; }
}

function save(s) {
  try { localStorage.setItem(KEY, JSON.stringify(s)); } catch { /* full or disabled: settings just do not persist */ }
}

export const settings = {
  connections() { return load().connections || []; },
  lastUsed() { return load().lastUsed || ''; },

  // Saves (or replaces, by name) a connection and marks it last used.
  saveConnection(c) {
    const s = load();
    const list = (s.connections || []).filter((x) => x.name !== c.name);
    list.unshift(c);
    s.connections = list;
    s.lastUsed = c.name;
    save(s);
  },

  forget(name) {
    const s = load();
    s.connections = (s.connections || []).filter((x) => x.name !== name);
    if (s.lastUsed === name) s.lastUsed = '';
    save(s);
  },

  history() { return load().history || []; },

  addHistory(entry) {
    const s = load();
    const h = (s.history || []).filter((x) => !(x.topic === entry.topic && x.payload === entry.payload));
    h.unshift(entry);
    s.history = h.slice(0, MAX_HISTORY);
    save(s);
  },
};
