// libtern, the C client library, against a real ternd over all four
// transports (mqtt, mqtts, ws, wss) and both protocol versions, and
// against Debian's mosquitto as a peer. The clients run in
// tests/e2e/client/libtern_check.c (built next to ternd: the directory of
// $TERND), a small interpreter scripted over stdin that prints every reply
// and callback as a JSON line; this file plays the broker's surroundings:
// TLS listeners, a TCP proxy that drops or cuts traffic, a broker killed
// with SIGKILL and started again.
//
// Without `persistence` ternd keeps sessions in memory, so a session
// cannot survive a broker restart: that test checks that the client
// reconnects and subscribes again. With `persistence true` (issue 6) the
// sessions survive a SIGKILL: that test checks session present, inflight
// QoS 1/2 completed and QoS 2 delivered once.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { startBroker, freePort, KIND } from './lib/broker.mjs';
import { makeCerts } from './lib/certs.mjs';
import { uid, sleep } from './lib/util.mjs';

const BUILD = path.dirname(process.env.TERND || 'build/ternd');
const CHECK = path.join(BUILD, 'libtern_check');
const TERN = KIND === 'tern';
const certs = makeCerts();

const E = { TLS: -17, REFUSED: -18, CONNECT: -19, TIMEDOUT: -9, CLOSED: -8 };

// ------------------------------------------------------------ the driver

class Driver {
  constructor() {
    this.lines = [];
    this.stderr = '';
    this.okSeen = 0;
    this.proc = spawn(CHECK, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    readline.createInterface({ input: this.proc.stdout }).on('line', (l) => {
      try { this.lines.push(JSON.parse(l)); } catch { this.lines.push({ bad: l }); }
    });
  }

  // Sends one command and waits for its reply.
  async cmd(line, ms = 15000) {
    const want = ++this.okSeen;
    this.proc.stdin.write(line + '\n');
    return this.until(() => {
      const oks = this.lines.filter((l) => l.ok !== undefined);
      return oks.length >= want ? oks[want - 1] : undefined;
    }, ms, `reply to "${line}"`);
  }

  events(pred) { return this.lines.filter((l) => l.ev && pred(l)); }

  async until(fn, ms, what) {
    const end = Date.now() + ms;
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > end) {
        throw new Error(`timeout after ${ms} ms: ${what}\nlast lines:\n${this.lines.slice(-15).map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${this.stderr.slice(-3000)}`);
      }
      if (this.proc.exitCode !== null) throw new Error(`driver exited ${this.proc.exitCode}\n${this.stderr.slice(-3000)}`);
      await sleep(10);
    }
  }

  // Waits for an event matching pred (optionally the n-th one).
  async ev(pred, ms = 10000, what = 'event', n = 1) {
    return this.until(() => { const e = this.events(pred); return e.length >= n ? e[n - 1] : undefined; }, ms, what);
  }

  async close() {
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    const { code, signal } = await this.exited;
    clearTimeout(timer);
    if (/(AddressSanitizer|LeakSanitizer|runtime error:|ThreadSanitizer)/.test(this.stderr)) {
      throw new Error(`sanitizer report from libtern_check:\n${this.stderr.slice(-8000)}`);
    }
    assert.equal(code, 0, `libtern_check exited ${code} ${signal}\n${this.stderr.slice(-3000)}`);
  }
}

async function ok(d, line) {
  const r = await d.cmd(line);
  assert.equal(r.rc, 0, `${line} -> ${JSON.stringify(r)}`);
  return r;
}

const msgs = (d, name, topic) => d.events((e) => e.ev === 'msg' && e.name === name && (!topic || e.topic === topic));

// ---------------------------------------------------------- the broker

async function ports(n) {
  const out = [];
  while (out.length < n) {
    const p = await freePort();
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

function tlsListener(port, { ws = false, server = certs.server, mtls = false, host = '127.0.0.1' } = {}) {
  return [
    `listener ${port} ${host}`,
    ...(ws ? ['protocol websockets'] : []),
    `certfile ${server.cert}`,
    `keyfile ${server.key}`,
    ...(mtls ? [`cafile ${certs.ca.cert}`, 'require_certificate true'] : []),
  ].join('\n');
}

// A TCP proxy in front of the broker: `mode` 'pass' forwards both ways,
// 'mute' drops what the broker sends (acks never reach the client),
// 'refuse' closes every new connection at once. cut() ends all
// connections. accepts[] records when connections came.
class Proxy {
  constructor(targetPort) {
    this.target = targetPort;
    this.mode = 'pass';
    this.conns = new Set();
    this.accepts = [];
    this.server = net.createServer((c) => this.onConn(c));
  }

  async listen() {
    await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = this.server.address().port;
  }

  onConn(c) {
    this.accepts.push(Date.now());
    if (this.mode === 'refuse') { c.destroy(); return; }
    const up = net.connect(this.target, '127.0.0.1');
    const pair = { c, up };
    this.conns.add(pair);
    c.on('data', (d) => up.write(d));
    up.on('data', (d) => { if (this.mode === 'pass') c.write(d); });
    const end = () => { c.destroy(); up.destroy(); this.conns.delete(pair); };
    c.on('error', end); up.on('error', end); c.on('close', end); up.on('close', end);
  }

  cut() { for (const { c, up } of this.conns) { c.destroy(); up.destroy(); } this.conns.clear(); }

  async close() { this.cut(); await new Promise((r) => this.server.close(r)); }
}

// ------------------------------------------------------------- the tests

describe('libtern against ternd', { skip: !TERN && 'ternd-only (mosquitto interop is below)' }, () => {
  let broker; let p; let urls;

  before(async () => {
    assert.ok(existsSync(CHECK), `${CHECK} missing: build the libtern_check target`);
    p = await ports(5);
    broker = await startBroker({
      config: [
        tlsListener(p[0]), tlsListener(p[1], { ws: true }),
        // On 127.0.0.2, an address the certificate does not name.
        tlsListener(p[2], { host: '127.0.0.2' }),
        tlsListener(p[3], { mtls: true }), tlsListener(p[4], { ws: true, mtls: true }),
      ].join('\n'),
    });
    urls = {
      tcp: broker.tcpUrl,
      ws: broker.wsUrl,
      tls: `mqtts://127.0.0.1:${p[0]}`,
      wss: `wss://127.0.0.1:${p[1]}/mqtt`,
    };
  });

  after(async () => { await broker.stop(); });

  const ca = () => `cafile=${certs.ca.cert}`;

  for (const t of ['tcp', 'ws', 'tls', 'wss']) {
    for (const v of [4, 5]) {
      test(`${t} v${v === 5 ? '5' : '3.1.1'}: connect, pub/sub QoS 0/1/2${v === 5 ? ', v5 properties' : ''}`, async () => {
        const d = new Driver();
        try {
          const topic = uid('lt');
          await ok(d, `new s ${urls[t]} version=${v} ${ca()}`);
          await ok(d, `new p ${urls[t]} version=${v} ${ca()}`);
          const c = await ok(d, 'connect s');
          assert.equal(c.sp, false);
          await ok(d, 'connect p');
          const s = await ok(d, `sub s ${topic}/# 2`);
          assert.deepEqual(s.codes, [2]);
          const props = 'ct=text/plain rt=reply/here cd=corr-1 up=color:blue exp=3600 pf=1';
          for (const q of [0, 1, 2]) {
            const r = await ok(d, `pub p ${topic}/q${q} ${q} payload-${q} ${props}`);
            assert.equal(r.reason, 0);
          }
          await d.until(() => msgs(d, 's').length >= 3, 5000, '3 messages');
          const got = msgs(d, 's');
          assert.deepEqual(got.map((m) => [m.topic, m.qos, m.payload]),
            [0, 1, 2].map((q) => [`${topic}/q${q}`, q, `payload-${q}`]));
          if (v === 5) {
            for (const m of got) {
              assert.equal(m.ct, 'text/plain');
              assert.equal(m.rt, 'reply/here');
              assert.equal(m.cd, 'corr-1');
              assert.deepEqual(m.up, [['color', 'blue']]);
              assert.ok(m.exp > 3590 && m.exp <= 3600, `expiry ${m.exp}`);
              assert.equal(m.pf, 1);
            }
          } else {
            for (const m of got) assert.equal(m.ct, null);
          }
          await ok(d, 'disconnect p');
          await d.ev((e) => e.ev === 'disconnect' && e.name === 'p');
          assert.equal(d.events((e) => e.ev === 'disconnect' && e.name === 'p')[0].rc, 0);
        } finally { await d.close(); }
      });
    }
  }

  test('v5 subscribe options: no local, retain as published, retain handling, subscription id', async () => {
    const d = new Driver();
    try {
      const topic = uid('opt');
      await ok(d, `new a ${urls.tcp}`);
      await ok(d, `new b ${urls.ws}`);
      await ok(d, 'connect a');
      await ok(d, 'connect b');
      await ok(d, `pub b ${topic}/ret 1 kept retain=1`);
      // No local: a does not get its own messages; subscription id 7.
      await ok(d, `sub a ${topic}/nl 1 nl=1 id=7`);
      await ok(d, `sub b ${topic}/nl 1 id=9`);
      await ok(d, `pub a ${topic}/nl 1 from-a`);
      const m = await d.ev((e) => e.ev === 'msg' && e.name === 'b' && e.topic === `${topic}/nl`);
      assert.deepEqual(m.ids, [9]);
      // Retain handling 2: no retained message at subscribe time.
      await ok(d, `sub a ${topic}/ret 1 rh=2`);
      // Retain as published: the retained one keeps its flag...
      await ok(d, `sub b ${topic}/ret 1 rap=1`);
      const r = await d.ev((e) => e.ev === 'msg' && e.name === 'b' && e.topic === `${topic}/ret`);
      assert.equal(r.retain, true);
      assert.equal(r.payload, 'kept');
      // ...and so does a live retained publish, which a (without rap)
      // sees with retain 0.
      await ok(d, `pub b ${topic}/ret 1 live retain=1`);
      const live = await d.ev((e) => e.ev === 'msg' && e.name === 'a' && e.topic === `${topic}/ret`);
      assert.equal(live.payload, 'live');
      assert.equal(live.retain, false);
      await d.ev((e) => e.ev === 'msg' && e.name === 'b' && e.payload === 'live');
      assert.equal(d.events((e) => e.ev === 'msg' && e.name === 'b' && e.payload === 'live')[0].retain, true);
      await sleep(200);
      assert.equal(msgs(d, 'a', `${topic}/nl`).length, 0, 'no local');
      assert.equal(msgs(d, 'a', `${topic}/ret`).length, 1, 'retain handling 2');
    } finally { await d.close(); }
  });

  for (const v of [4, 5]) {
    test(`v${v === 5 ? '5' : '3.1.1'} will over ws: published when the connection is lost`, async () => {
      const d = new Driver();
      try {
        const topic = uid('will');
        await ok(d, `new w ${urls.ws} version=${v} keepalive=5 will_topic=${topic}/gone will_payload=bye will_qos=1 will_ct=text/plain`);
        await ok(d, `new s ${urls.tcp} version=${v}`);
        await ok(d, 'connect w');
        await ok(d, 'connect s');
        await ok(d, `sub s ${topic}/# 1`);
        // destroy closes without DISCONNECT: the broker publishes the will.
        await ok(d, 'destroy w');
        const m = await d.ev((e) => e.ev === 'msg' && e.topic === `${topic}/gone`);
        assert.equal(m.payload, 'bye');
        assert.equal(m.qos, 1);
        assert.equal(m.ct, v === 5 ? 'text/plain' : null);
      } finally { await d.close(); }
    });
  }

  test('ws: packets under maximum_packet_size arrive even when the server packs a burst into one frame', async () => {
    const d = new Driver();
    try {
      const topic = uid('burst');
      await ok(d, `new s ${urls.ws} maxpacket=300`);
      await ok(d, `new p ${urls.tcp}`);
      await ok(d, 'connect s');
      await ok(d, 'connect p');
      await ok(d, `sub s ${topic} 0`);
      const body = 'x'.repeat(150);
      for (let i = 0; i < 40; i++) await ok(d, `pub p ${topic} 0 ${body} wait=0`);
      await d.until(() => msgs(d, 's').length >= 40, 5000, '40 messages');
      assert.equal(d.events((e) => e.ev === 'disconnect' && e.name === 's').length, 0);
    } finally { await d.close(); }
  });

  test('v5 outbound topic aliases when the server allows them', async () => {
    const d = new Driver();
    try {
      const topic = `${uid('alias')}/a/fairly/long/topic/name`;
      await ok(d, `new a ${urls.tcp}`);
      await ok(d, `new s ${urls.ws}`);
      await ok(d, 'connect a');
      await ok(d, 'connect s');
      const st = await d.cmd('stats a');
      assert.ok(st.alias_max > 0, `ternd offers topic aliases: ${JSON.stringify(st)}`);
      await ok(d, `sub s ${topic} 1`);
      for (let i = 0; i < 5; i++) await ok(d, `pub a ${topic} 1 m${i}`);
      await d.until(() => msgs(d, 's').length >= 5, 5000, '5 messages');
      assert.deepEqual(msgs(d, 's').map((m) => [m.topic, m.payload]), [0, 1, 2, 3, 4].map((i) => [topic, `m${i}`]));
    } finally { await d.close(); }
  });

  test('TLS: an unknown CA and a wrong host name fail with a clear error; insecure skips the name only; ALPN, minimum version', async () => {
    const d = new Driver();
    try {
      await ok(d, `new a ${urls.tls}`); // system trust store: the test CA is not in it
      const r = await d.cmd('connect a');
      assert.equal(r.rc, E.TLS);
      const ev = await d.ev((e) => e.ev === 'connect' && e.name === 'a');
      assert.match(ev.why, /certificate verify failed/);
      await ok(d, `new b wss://127.0.0.1:${p[1]}/mqtt`);
      assert.equal((await d.cmd('connect b')).rc, E.TLS);
      // The certificate names 127.0.0.1 and localhost, not 127.0.0.2.
      await ok(d, `new c mqtts://127.0.0.2:${p[2]} ${ca()}`);
      assert.equal((await d.cmd('connect c')).rc, E.TLS);
      const evc = await d.ev((e) => e.ev === 'connect' && e.name === 'c');
      assert.match(evc.why, /hostname mismatch|IP address mismatch/);
      await ok(d, `new e mqtts://127.0.0.2:${p[2]} ${ca()} insecure=1`);
      await ok(d, 'connect e');
      // By name (SNI, DNS SAN), with ALPN offered and a TLS 1.3 minimum.
      await ok(d, `new f mqtts://localhost:${p[0]} ${ca()} alpn=mqtt,x-other tls_version=tlsv1.3`);
      await ok(d, 'connect f');
      // A file that is not there is an error at creation, with its name.
      const bad = await d.cmd(`new g ${urls.tls} cafile=/nonexistent/ca.pem`);
      assert.notEqual(bad.rc, 0);
      assert.match(bad.err, /nonexistent/);
    } finally { await d.close(); }
  });

  for (const [t, port, ws] of [['mqtts', 3, false], ['wss', 4, true]]) {
    test(`mutual TLS over ${t}: a client certificate is required and accepted`, async () => {
      const d = new Driver();
      try {
        const url = ws ? `wss://localhost:${p[port]}/mqtt` : `mqtts://localhost:${p[port]}`;
        await ok(d, `new a ${url} ${ca()} certfile=${certs.alice.cert} keyfile=${certs.alice.key}`);
        await ok(d, 'connect a');
        await ok(d, `new b ${url} ${ca()}`);
        const r = await d.cmd('connect b');
        assert.notEqual(r.rc, 0, 'no client certificate: refused');
      } finally { await d.close(); }
    });
  }

  test('reconnect through a proxy that cuts: backoff, session present, inflight QoS 1/2 completed, no duplicate at QoS 2', async () => {
    const proxy = new Proxy(broker.port);
    await proxy.listen();
    const d = new Driver();
    try {
      const topic = uid('rc');
      await ok(d, `new s ${urls.ws}`);
      await ok(d, 'connect s');
      await ok(d, `sub s ${topic}/# 2`);
      await ok(d, `new p mqtt://127.0.0.1:${proxy.port} client_id=${topic} clean=0 session_expiry=300 ri=200 rmax=800 keepalive=30`);
      await ok(d, 'connect p');
      // Acks from the broker never arrive: both messages stay inflight.
      proxy.mode = 'mute';
      const q1 = await ok(d, `pub p ${topic}/one 1 first wait=0`);
      const q2 = await ok(d, `pub p ${topic}/two 2 second wait=0`);
      await d.ev((e) => e.ev === 'msg' && e.topic === `${topic}/two`, 5000, 'the QoS 2 message delivered once');
      const st = await d.cmd('stats p');
      assert.equal(st.inflight, 2);
      // Cut: the client notices, waits its backoff, reconnects.
      proxy.mode = 'refuse';
      proxy.cut();
      const disc = await d.ev((e) => e.ev === 'disconnect' && e.name === 'p');
      assert.equal(disc.rc, E.CLOSED);
      const t0 = Date.now();
      // Refused attempts: the delays grow (base 200, 400, 800: each in
      // [base/2, base], plus scheduling slack).
      await d.until(() => proxy.accepts.length >= 4, 8000, '3 reconnect attempts');
      const gaps = proxy.accepts.slice(1, 4).map((x, i) => x - (i === 0 ? t0 : proxy.accepts[i]));
      const bases = [200, 400, 800];
      gaps.forEach((g, i) => {
        if (i === 0) return; // the first is measured from our clock read
        assert.ok(g >= bases[i] / 2 - 20 && g <= bases[i] + 250, `attempt ${i + 1} after ${g} ms, want ${bases[i] / 2}..${bases[i]}`);
      });
      proxy.mode = 'pass';
      const con = await d.ev((e) => e.ev === 'connect' && e.name === 'p' && e.rc === 0, 5000, 'reconnected', 2);
      assert.equal(con.sp, true, 'session present');
      const d1 = await d.ev((e) => e.ev === 'pubdone' && e.token === q1.token && e.name === 'p');
      const d2 = await d.ev((e) => e.ev === 'pubdone' && e.token === q2.token && e.name === 'p');
      assert.equal(d1.rc, 0);
      assert.equal(d2.rc, 0);
      await ok(d, `pub p ${topic}/after 2 marker`);
      await d.ev((e) => e.ev === 'msg' && e.topic === `${topic}/after`);
      assert.equal(msgs(d, 's', `${topic}/two`).length, 1, 'QoS 2: exactly once');
      assert.ok(msgs(d, 's', `${topic}/one`).length >= 1, 'QoS 1: at least once');
    } finally { await d.close(); await proxy.close(); }
  });

  test('broker killed (SIGKILL) and restarted on the same ports: the client reconnects and its subscription works again', async () => {
    const mine = await startBroker();
    const d = new Driver();
    let restarted;
    try {
      const topic = uid('kill');
      await ok(d, `new s ${mine.wsUrl} ri=100 rmax=500 client_id=${topic} clean=0 session_expiry=300`);
      await ok(d, 'connect s');
      await ok(d, `sub s ${topic}/# 1`);
      mine.proc.kill('SIGKILL');
      await new Promise((r) => (mine.proc.exitCode !== null || mine.proc.signalCode ? r() : mine.proc.on('exit', r)));
      await d.ev((e) => e.ev === 'disconnect' && e.name === 's');
      // A publish while the broker is down waits in the offline queue.
      await ok(d, `pub s ${topic}/queued 1 offline wait=0`);
      await sleep(300);
      restarted = await startBroker({ port: mine.port, wsPort: mine.wsPort });
      const con = await d.ev((e) => e.ev === 'connect' && e.name === 's' && e.rc === 0, 10000, 'reconnected', 2);
      // Without persistence the session is gone and the client
      // subscribes again; with it, the session carries the subscription.
      if (!con.sp) await d.ev((e) => e.ev === 'sub' && e.name === 's', 5000, 'resubscribed', 2);
      await d.ev((e) => e.ev === 'msg' && e.topic === `${topic}/queued`, 5000, 'the queued message, delivered back');
      await ok(d, `new p ${mine.tcpUrl}`);
      await ok(d, 'connect p');
      await ok(d, `pub p ${topic}/x 1 after-restart`);
      await d.ev((e) => e.ev === 'msg' && e.topic === `${topic}/x`);
    } finally {
      await d.close();
      if (restarted) await restarted.stop();
    }
  });

  test('durable ternd killed (SIGKILL) and restarted: sessions resumed, inflight QoS 1/2 completed, no duplicate at QoS 2', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-lt-store-'));
    const config = `persistence true\npersistence_location ${dir}`;
    let b = await startBroker({ config });
    const proxy = new Proxy(b.port);
    await proxy.listen();
    const d = new Driver();
    try {
      const topic = uid('dur');
      const keep = 'clean=0 session_expiry=300 ri=100 rmax=400';
      await ok(d, `new s ${b.wsUrl} client_id=${topic}-s ${keep}`);
      await ok(d, 'connect s');
      await ok(d, `sub s ${topic}/# 2`);
      await ok(d, `new p mqtt://127.0.0.1:${proxy.port} client_id=${topic}-p ${keep}`);
      await ok(d, 'connect p');
      // The broker's acks are lost on the way: both stay inflight in p.
      proxy.mode = 'mute';
      const q1 = await ok(d, `pub p ${topic}/one 1 first wait=0`);
      const q2 = await ok(d, `pub p ${topic}/two 2 second wait=0`);
      await d.until(() => msgs(d, 's', `${topic}/two`).length === 1 && msgs(d, 's', `${topic}/one`).length >= 1, 5000, 'both delivered');
      assert.equal((await d.cmd('stats p')).inflight, 2);
      await sleep(300); // past the group commit
      await b.kill();
      await d.ev((e) => e.ev === 'disconnect' && e.name === 'p');
      await d.ev((e) => e.ev === 'disconnect' && e.name === 's');
      proxy.mode = 'pass';
      b = await startBroker({ config, port: b.port, wsPort: b.wsPort });
      const cp = await d.ev((e) => e.ev === 'connect' && e.name === 'p' && e.rc === 0, 10000, 'p reconnected', 2);
      const cs = await d.ev((e) => e.ev === 'connect' && e.name === 's' && e.rc === 0, 10000, 's reconnected', 2);
      assert.equal(cp.sp, true, 'p: session present after the restart');
      assert.equal(cs.sp, true, 's: session present after the restart');
      const d1 = await d.ev((e) => e.ev === 'pubdone' && e.name === 'p' && e.token === q1.token);
      const d2 = await d.ev((e) => e.ev === 'pubdone' && e.name === 'p' && e.token === q2.token);
      assert.equal(d1.rc, 0);
      assert.equal(d2.rc, 0);
      // The stored subscription serves a new message without resubscribing.
      await ok(d, `pub p ${topic}/after 2 marker`);
      await d.ev((e) => e.ev === 'msg' && e.name === 's' && e.topic === `${topic}/after`);
      assert.equal(d.events((e) => e.ev === 'sub' && e.name === 's').length, 1, 'no resubscription with a session');
      assert.equal(msgs(d, 's', `${topic}/two`).length, 1, 'QoS 2: exactly once across the crash');
    } finally {
      await d.close();
      await proxy.close();
      await b.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('examples/hello.c builds against the installed library (pkg-config libtern) and talks ws and wss', async () => {
    const prefix = mkdtempSync(path.join(os.tmpdir(), 'tern-install-'));
    try {
      execFileSync('cmake', ['--install', BUILD, '--prefix', prefix], { stdio: 'pipe' });
      const env = { ...process.env, PKG_CONFIG_PATH: path.join(prefix, 'lib', 'pkgconfig') };
      const libdir = execFileSync('pkg-config', ['--variable=libdir', 'libtern'], { env }).toString().trim();
      const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'libtern'], { env }).toString().trim().split(/\s+/);
      // A sanitizer build's library needs the same runtime in the program.
      const cache = readFileSync(path.join(BUILD, 'CMakeCache.txt'), 'utf8');
      const san = /^TERN_SANITIZE:STRING=(.+)$/m.exec(cache);
      const extra = san && san[1].trim() ? [`-fsanitize=${san[1].trim()}`] : [];
      const hello = path.join(prefix, 'hello');
      const src = new URL('../../examples/hello.c', import.meta.url).pathname;
      execFileSync('cc', ['-o', hello, src, ...flags, ...extra, `-Wl,-rpath,${libdir}`], { stdio: 'pipe' });
      for (const args of [[broker.wsUrl], [urls.wss, certs.ca.cert]]) {
        const r = spawnSync(hello, args, { timeout: 15000 });
        assert.equal(r.status, 0, `hello ${args.join(' ')}: ${r.status} ${r.signal}\n${r.stdout}\n${r.stderr}`);
        assert.match(r.stdout.toString(), /^hello\/tern: hello, world$/m);
      }
    } finally { rmSync(prefix, { recursive: true, force: true }); }
  });
});

// Debian's mosquitto as the peer: plain TCP and websockets listeners.
describe('libtern against mosquitto', () => {
  let proc; let port; let wsPort; let dir; let out = '';

  before(async () => {
    [port, wsPort] = await ports(2);
    dir = mkdtempSync(path.join(os.tmpdir(), 'tern-mosq-'));
    const conf = path.join(dir, 'm.conf');
    // 2.0.11 binds its websockets listener to every address whatever the
    // bind address says; the test connects to 127.0.0.1 only.
    writeFileSync(conf, ['allow_anonymous true', `listener ${port} 127.0.0.1`,
      `listener ${wsPort}`, 'protocol websockets', ''].join('\n'));
    proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.on('data', (x) => { out += x; });
    proc.stderr.on('data', (x) => { out += x; });
    for (const pp of [port, wsPort]) {
      const end = Date.now() + 10000;
      for (;;) {
        const okc = await new Promise((r) => { const s = net.connect(pp, '127.0.0.1'); s.once('connect', () => { s.destroy(); r(true); }); s.once('error', () => r(false)); });
        if (okc) break;
        if (Date.now() > end || proc.exitCode !== null) throw new Error(`mosquitto did not start:\n${out}`);
        await sleep(25);
      }
    }
  });

  after(async () => {
    proc.kill('SIGTERM');
    await new Promise((r) => (proc.exitCode !== null ? r() : proc.on('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const t of ['tcp', 'ws']) {
    for (const v of [4, 5]) {
      test(`mosquitto ${t} v${v === 5 ? '5' : '3.1.1'}: pub/sub QoS 0/1/2`, async () => {
        const d = new Driver();
        try {
          const url = t === 'tcp' ? `mqtt://127.0.0.1:${port}` : `ws://127.0.0.1:${wsPort}/mqtt`;
          const other = t === 'tcp' ? `ws://127.0.0.1:${wsPort}/mqtt` : `mqtt://127.0.0.1:${port}`;
          const topic = uid('mq');
          await ok(d, `new s ${url} version=${v}`);
          await ok(d, `new p ${other} version=${v}`);
          await ok(d, 'connect s');
          await ok(d, 'connect p');
          assert.deepEqual((await ok(d, `sub s ${topic}/# 2`)).codes, [2]);
          for (const q of [0, 1, 2]) await ok(d, `pub p ${topic}/${q} ${q} m${q} ct=text/plain up=k:v`);
          await d.until(() => msgs(d, 's').length >= 3, 5000, '3 messages from mosquitto');
          const got = msgs(d, 's');
          assert.deepEqual(got.map((m) => [m.topic, m.qos, m.payload]), [0, 1, 2].map((q) => [`${topic}/${q}`, q, `m${q}`]));
          if (v === 5) for (const m of got) { assert.equal(m.ct, 'text/plain'); assert.deepEqual(m.up, [['k', 'v']]); }
          await ok(d, 'disconnect s');
        } finally { await d.close(); }
      });
    }
  }
});
