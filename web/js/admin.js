// The Clients tab: ternd's admin API (docs/http.md) from the page's own
// origin — every session with its transport, address, protocol and
// queue, and a button to disconnect a client. Needs the admin token, or
// admin user and password (Basic is accepted over https or from this
// machine only). Credentials stay in sessionStorage: gone with the tab.

const KEY = 'tern.admin';

export class AdminPanel {
  constructor(form, table, status) {
    Object.assign(this, { form, table, status });
    const saved = JSON.parse(sessionStorage.getItem(KEY) || '{}');
    for (const k of ['token', 'user']) if (saved[k]) form.elements[k].value = saved[k];
    form.addEventListener('submit', (e) => { e.preventDefault(); this.refresh(); });
    table.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-kick]');
      if (b) this.kick(b.dataset.kick);
    });
  }

  headers() {
    const f = this.form.elements;
    if (f.token.value) return { Authorization: `Bearer ${f.token.value}` };
    if (f.user.value) return { Authorization: 'Basic ' + btoa(unescape(encodeURIComponent(`${f.user.value}:${f.password.value}`))) };
    return {};
  }

  async call(method, path) {
    const r = await fetch(path.slice(1), { method, headers: this.headers(), cache: 'no-store' });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(r.status === 404 && path.endsWith('/clients') ? 'the admin API is not configured (admin_token or admin_user in ternd.conf)' : `${r.status}: ${body.error || r.statusText}`);
    return body;
  }

  async refresh() {
    const f = this.form.elements;
    sessionStorage.setItem(KEY, JSON.stringify({ token: f.token.value, user: f.user.value }));
    try {
      const { clients, not_listed: more } = await this.call('GET', '/api/v1/clients');
      this.draw(clients);
      this.status.textContent = `${clients.length} sessions${more ? `, ${more} more not listed` : ''} · ${new Date().toLocaleTimeString()}`;
      this.status.classList.remove('error');
    } catch (e) {
      this.status.textContent = e.message;
      this.status.classList.add('error');
    }
  }

  async kick(id) {
    try {
      await this.call('DELETE', '/api/v1/clients/' + encodeURIComponent(id));
      setTimeout(() => this.refresh(), 300);
    } catch (e) {
      this.status.textContent = e.message;
      this.status.classList.add('error');
    }
  }

  draw(clients) {
    const cols = ['id', 'connected', 'transport', 'peer', 'protocol', 'username', 'subscriptions', 'queued', 'inflight'];
    const thead = document.createElement('tr');
    for (const c of [...cols, '']) {
      const th = document.createElement('th'); th.textContent = c; thead.appendChild(th);
    }
    const rows = clients.sort((a, b) => a.id.localeCompare(b.id)).map((cl) => {
      const tr = document.createElement('tr');
      tr.dataset.id = cl.id;
      for (const c of cols) {
        const td = document.createElement('td');
        td.textContent = c === 'connected' ? (cl.connected ? 'yes' : `no (${cl.offline_seconds}s)`) : (cl[c] ?? '');
        tr.appendChild(td);
      }
      const td = document.createElement('td');
      if (cl.connected) {
        const b = document.createElement('button');
        b.type = 'button'; b.textContent = 'Disconnect'; b.dataset.kick = cl.id;
        td.appendChild(b);
      }
      tr.appendChild(td);
      return tr;
    });
    this.table.replaceChildren(thead, ...rows);
  }
}
