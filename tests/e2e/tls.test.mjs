// MQTT over TLS: mqtts and wss listeners (`certfile`/`keyfile`, and
// `protocol websockets` for wss) with Mosquitto's per-listener keys:
// cafile, require_certificate, crlfile, use_identity_as_username,
// tls_version, keyfile_password; SIGHUP certificate reload; the handshake
// deadline (connect_timeout); the TLS rows of BAD_INPUTS.md; and tern's
// $SYS/broker/transport/{tls,wss}/… counters.
//
// Certificates come from lib/certs.mjs (openssl CLI, temp dir). Clients
// always verify the server (`ca`, rejectUnauthorized) and connect to
// 127.0.0.1 (IP SAN) or localhost (DNS SAN).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { startBroker, freePort, KIND } from './lib/broker.mjs';
import { RawClient, enc } from './lib/raw.mjs';
import { connect, closeAll, uid, sub, pub, within, sleep, assertAlive } from './lib/util.mjs';
import { makeCerts } from './lib/certs.mjs';

const TERN = KIND === 'tern';
const certs = makeCerts();
const CA = certs.read(certs.ca.cert);

// ---------------------------------------------------------------- helpers

// n distinct free ports plus two more for the harness's own TCP and ws
// listeners (ports.harness, passed to startBroker), so none can collide.
async function ports(n) {
  const out = [];
  while (out.length < n + 2) {
    const p = await freePort();
    if (!out.includes(p)) out.push(p);
  }
  const mine = out.slice(0, n);
  mine.harness = { port: out[n], wsPort: out[n + 1] };
  return mine;
}

// Config lines of one TLS listener.
function tlsListener(port, { ws = false, server = certs.server, extra = [] } = {}) {
  return [
    `listener ${port} 127.0.0.1`,
    ...(ws ? ['protocol websockets'] : []),
    `certfile ${server.cert}`,
    `keyfile ${server.key}`,
    ...extra,
  ].join('\n');
}

const mtls = (more = []) => [`cafile ${certs.ca.cert}`, 'require_certificate true', ...more];

const mqttsUrl = (port, host = '127.0.0.1') => `mqtts://${host}:${port}`;
const wssUrl = (port, host = '127.0.0.1') => `wss://${host}:${port}/mqtt`;

// MQTT.js options for a verifying TLS client, with an optional client cert.
function tlsOpts(clientName, extra = {}) {
  return { ca: CA, rejectUnauthorized: true, ...(clientName ? certs.client(clientName) : {}), ...extra };
}

// A node:tls connection (verifying the server), resolved on secureConnect.
function tlsConnect(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: CA, servername: 'localhost', rejectUnauthorized: true, ...opts });
    const timer = setTimeout(() => { s.destroy(); reject(new Error('tls connect timeout')); }, 4000);
    s.once('secureConnect', () => { clearTimeout(timer); resolve(s); });
    s.once('error', (e) => { clearTimeout(timer); s.destroy(); reject(e); });
  });
}

// A raw MQTT client over TLS (lib/raw.mjs on a TLSSocket).
async function rawTls(port, opts = {}, version = 5) {
  return new RawClient(await tlsConnect(port, opts), version);
}

// Expects an MQTT.js connection attempt to fail (not to time out).
async function refused(url, opts) {
  let client;
  try {
    // connect() gives up after 4 s with "timeout after …".
    client = await connect({ url }, { url, connectTimeout: 3000, ...opts });
  } catch (err) {
    assert.doesNotMatch(err.message, /^timeout after/, `${url}: the broker neither accepted nor refused the connection`);
    return err;
  }
  await closeAll(client);
  assert.fail(`${url}: connection accepted (CONNACK) where it must be refused`);
}

// Watches $SYS/broker/transport/# from a TCP client (tern only).
async function sysWatch(broker) {
  const c = await connect(broker, { url: broker.tcpUrl });
  const vals = new Map();
  const waiters = new Set();
  c.on('message', (t, p) => {
    if (!t.startsWith('$SYS/broker/transport/')) return;
    vals.set(t.slice('$SYS/broker/transport/'.length), Number(p.toString()));
    for (const w of [...waiters]) w();
  });
  await sub(c, '$SYS/broker/transport/#');
  const w = {
    client: c,
    get: (k) => vals.get(k),
    snapshot: () => Object.fromEntries(vals),
    // Resolves at the next publish of key (one $SYS round later).
    next(key, ms = 3000) {
      return new Promise((resolve, reject) => {
        const check = (t) => { if (t === key) { c.removeListener('message', onMsg); clearTimeout(timer); resolve(); } };
        const onMsg = (t) => check(t.slice('$SYS/broker/transport/'.length));
        const timer = setTimeout(() => { c.removeListener('message', onMsg); reject(new Error(`no $SYS publish of ${key} in ${ms} ms`)); }, ms);
        c.on('message', onMsg);
      });
    },
    // Waits until pred(get) holds (values are published every second).
    until(pred, ms = 4000, what = 'counters') {
      return new Promise((resolve, reject) => {
        const check = () => {
          let ok = false;
          try { ok = pred(w.get); } catch { ok = false; }
          if (ok) { waiters.delete(check); clearTimeout(timer); resolve(); }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timeout waiting for ${what}; $SYS/broker/transport: ${JSON.stringify(w.snapshot())}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
  };
  await w.until((g) => g('tls/handshakes') !== undefined && g('tcp/connected') !== undefined, 4000, 'first $SYS publish');
  return w;
}

const CAUSES = ['no_certificate', 'bad_certificate', 'protocol_version', 'not_tls', 'other', 'timeout'];

// Expected movement of the tls or wss handshake counters ($SYS, tern
// only): start() takes a baseline, add(cause, n) records what the test
// did, verify() waits until the counters have moved by that much, lets one
// more $SYS round pass (a late or double count would show), and compares
// every counter exactly.
function tally(watch, tr) {
  const keys = ['handshakes', ...CAUSES.map((c) => `handshake_failures/${c}`)];
  const last = `${tr}/handshake_failures/timeout`; // last of the group in a round
  const want = Object.fromEntries(keys.map((k) => [k, 0]));
  let before;
  const read = () => Object.fromEntries(keys.map((k) => [k, watch.get(`${tr}/${k}`) ?? 0]));
  return {
    async start() {
      if (!watch) return;
      await watch.next(last); // a round published after everything before now
      before = read();
    },
    add(cause, n = 1) { want[cause === 'handshakes' ? cause : `handshake_failures/${cause}`] += n; },
    async verify() {
      if (!watch) return;
      await watch.until((g) => keys.every((k) => (g(`${tr}/${k}`) ?? 0) >= before[k] + want[k]), 4000,
        `${tr} counters to move by ${JSON.stringify(want)}`);
      await watch.next(last);
      const now = read();
      const got = Object.fromEntries(keys.map((k) => [k, now[k] - before[k]]));
      assert.deepEqual(got, want, `$SYS/broker/transport/${tr}/handshake* moved by`);
    },
  };
}

// A TLS client (verifying) still gets a CONNACK on `port`.
async function assertAliveTls(port, clientName) {
  const c = await rawTls(port, clientName ? certs.client(clientName) : {}, 4);
  try {
    const ack = await c.connect({ version: 4, clientId: uid('alive-tls') });
    assert.equal(ack.reason, 0, 'broker refused a new TLS client');
  } finally { c.destroy(); }
}

// QoS 0/1/2 to itself.
async function roundTrip(url, opts) {
  const c = await connect({ url }, { url, ...opts });
  try {
    const t = uid('rt');
    await sub(c, `${t}/#`, { qos: 2 });
    for (const qos of [0, 1, 2]) await pub(c, `${t}/q${qos}`, `payload ${qos}`, { qos });
    const got = await c.waitMessages(3);
    assert.deepEqual(got.map((m) => [m.topic, m.payload, m.packet.qos]).sort(),
      [[`${t}/q0`, 'payload 0', 0], [`${t}/q1`, 'payload 1', 1], [`${t}/q2`, 'payload 2', 2]]);
    return c.stream;
  } finally { await closeAll(c); }
}

// The first bytes a TLS client sends: a real ClientHello from node:tls,
// captured on a loopback server.
async function captureClientHello() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  try {
    const got = new Promise((resolve) => srv.once('connection', (s) => s.once('data', (d) => { resolve(d); s.destroy(); })));
    const cli = tls.connect({ host: '127.0.0.1', port: srv.address().port, servername: 'localhost', ca: CA });
    cli.on('error', () => {});
    const hello = await within(got, 3000, 'ClientHello');
    cli.destroy();
    assert.equal(hello[0], 0x16, 'a TLS handshake record');
    return hello;
  } finally { srv.close(); }
}

// Sends bytes on a plain TCP connection and measures when the peer closes.
function sendAndTimeClose(port, bytes, ms) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let t0; let data = Buffer.alloc(0);
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`connection still open after ${ms} ms`)); }, ms);
    s.on('connect', () => { t0 = Date.now(); s.write(bytes); });
    s.on('data', (d) => { data = Buffer.concat([data, d]); });
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve({ elapsed: Date.now() - t0, data }); });
  });
}

function run(cmd, args, { timeout = 8000, onStdout } = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    p.stdout.on('data', (d) => { out += d; onStdout?.(out); });
    p.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeout);
    p.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out, err }); });
  });
}

// ================================================================ main broker
// TCP + ws (harness), mqtts, wss, and mutual-TLS listeners (with and
// without a CRL) for both.

describe('mqtts and wss', () => {
  let broker; let watch; let P;

  before(async () => {
    const pp = await ports(6);
    const [tlsP, wssP, mtlsP, mwssP, crlP, crlWssP] = pp;
    P = { tls: tlsP, wss: wssP, mtls: mtlsP, mwss: mwssP, crl: crlP, crlWss: crlWssP };
    broker = await startBroker({
      ...pp.harness,
      config: [
        'sys_interval 1',
        tlsListener(P.tls),
        tlsListener(P.wss, { ws: true }),
        tlsListener(P.mtls, { extra: mtls() }),
        tlsListener(P.mwss, { ws: true, extra: mtls() }),
        tlsListener(P.crl, { extra: mtls([`crlfile ${certs.crl}`]) }),
        tlsListener(P.crlWss, { ws: true, extra: mtls([`crlfile ${certs.crl}`]) }),
      ].join('\n'),
    });
    if (TERN) watch = await sysWatch(broker);
  });

  after(async () => {
    if (watch) await closeAll(watch.client);
    if (broker) await broker.stop();
  });

  test('cross-transport: each of tcp, ws, mqtts, wss publishes, all four receive; transport/*/connected', async () => {
    const tag = uid('x');
    const clients = {};
    try {
      clients.tcp = await connect(broker, { url: broker.tcpUrl, protocolVersion: 5 });
      clients.ws = await connect(broker, { url: broker.wsUrl, protocolVersion: 4 });
      clients.tls = await connect(broker, { url: mqttsUrl(P.tls), protocolVersion: 5, ...tlsOpts() });
      clients.wss = await connect(broker, { url: wssUrl(P.wss), protocolVersion: 4, ...tlsOpts() });
      assert.equal(clients.tls.stream.authorized, true, 'mqtts server certificate verified');
      assert.equal(clients.tls.stream.getPeerCertificate().serialNumber, certs.serial(certs.server.cert));
      for (const c of Object.values(clients)) await sub(c, `${tag}/#`, { qos: 1 });
      if (watch) {
        // The watcher is one more TCP client.
        await watch.until((g) => g('tcp/connected') === 2 && g('tls/connected') === 1 && g('ws/connected') === 1 && g('wss/connected') === 1,
          4000, 'transport/{tcp,tls,ws,wss}/connected = 2,1,1,1');
      }
      for (const [tr, c] of Object.entries(clients)) await pub(c, `${tag}/from-${tr}`, `hello from ${tr}`, { qos: 1 });
      for (const [tr, c] of Object.entries(clients)) {
        const got = await c.waitMessages(4);
        assert.deepEqual(got.map((m) => `${m.topic}=${m.payload}`).sort(),
          ['tcp', 'ws', 'tls', 'wss'].map((x) => `${tag}/from-${x}=hello from ${x}`).sort(), `received on ${tr}`);
      }
    } finally { await closeAll(Object.values(clients)); }
    if (watch) {
      await watch.until((g) => g('tcp/connected') === 1 && g('tls/connected') === 0 && g('ws/connected') === 0 && g('wss/connected') === 0,
        4000, 'transport/*/connected back to 1,0,0,0');
    }
  });

  for (const version of [4, 5]) {
    test(`MQTT ${version === 4 ? '3.1.1' : '5'}: QoS 0/1/2 round trip over mqtts and wss (server verified)`, async () => {
      const s1 = await roundTrip(mqttsUrl(P.tls), { protocolVersion: version, ...tlsOpts() });
      assert.equal(s1.authorized, true);
      await roundTrip(wssUrl(P.wss), { protocolVersion: version, ...tlsOpts() });
      // By name too: DNS SAN localhost.
      await roundTrip(mqttsUrl(P.tls, 'localhost'), { protocolVersion: version, ...tlsOpts() });
    });
  }

  test('a client that does not trust the server CA refuses the broker (no client-side bypass)', async () => {
    await refused(mqttsUrl(P.tls), { ca: certs.read(certs.foreignCa.cert), rejectUnauthorized: true });
  });

  for (const [tr, port, crlPort, url] of [['tls', 'mtls', 'crl', mqttsUrl], ['wss', 'mwss', 'crlWss', wssUrl]]) {
    test(`require_certificate over ${tr === 'tls' ? 'mqtts' : 'wss'}: CA-signed cert accepted; none, foreign CA, expired, revoked (crlfile) refused`, async () => {
      const n = tally(watch, tr);
      await n.start();
      // Accepted: CA-signed client certificates, on the mTLS listener and
      // on the one with the CRL (alice is not revoked).
      for (const v of [4, 5]) await roundTrip(url(P[port]), { protocolVersion: v, ...tlsOpts(v === 4 ? 'alice' : 'bob') });
      await roundTrip(url(P[crlPort]), { protocolVersion: 5, ...tlsOpts('alice') });
      n.add('handshakes', 3);

      await refused(url(P[port]), tlsOpts());
      n.add('no_certificate');
      await refused(url(P[port]), tlsOpts('foreign'));
      await refused(url(P[port]), tlsOpts('expired'));
      // Mosquitto 2.0.11 ignores crlfile on websockets listeners (the
      // revoked certificate connects over wss), so that case is tern's.
      if (TERN || tr === 'tls') {
        await refused(url(P[crlPort]), tlsOpts('revoked'));
        n.add('bad_certificate');
      }
      n.add('bad_certificate', 2);
      // The revoked certificate is fine where no CRL is configured: the
      // refusal above is the CRL's doing.
      await roundTrip(url(P[port]), { protocolVersion: 5, ...tlsOpts('revoked') });
      n.add('handshakes');
      await n.verify();
      await assertAliveTls(P.tls);
      await assertAlive(broker);
    });
  }

  test('mosquitto_pub / mosquitto_sub (Debian) over TLS with --cafile, and --cert/--key on require_certificate', async () => {
    for (const [port, extra] of [[P.tls, []], [P.mtls, ['--cert', certs.alice.cert, '--key', certs.alice.key]]]) {
      const topic = `${uid('mosq')}/t`;
      const common = ['-h', 'localhost', '-p', String(port), '--cafile', certs.ca.cert, ...extra];
      const tcp = await connect(broker, { url: broker.tcpUrl });
      try {
        await sub(tcp, topic, { qos: 1 });
        // mosquitto_pub → a TCP subscriber.
        const pubR = await run('mosquitto_pub', [...common, '-t', topic, '-q', '1', '-m', 'from mosquitto_pub', '-V', 'mqttv311']);
        assert.equal(pubR.code, 0, `mosquitto_pub failed: ${pubR.err}`);
        const [m] = await tcp.waitMessages(1);
        assert.equal(m.payload, 'from mosquitto_pub');
        // A TCP publisher → mosquitto_sub (v5, -C 1). Its SUBACK cannot be
        // observed (stdout is a pipe, block-buffered), so publish every
        // 100 ms until it has received one and exited.
        const subP = run('mosquitto_sub', [...common, '-t', topic, '-q', '1', '-C', '1', '-W', '6', '-V', 'mqttv5']);
        let done = false;
        subP.then(() => { done = true; });
        for (let i = 0; !done && i < 50; i++) {
          await pub(tcp, topic, `to mosquitto_sub ${i}`, { qos: 1 });
          await sleep(100);
        }
        const subR = await subP;
        assert.equal(subR.code, 0, `mosquitto_sub failed: ${subR.err}`);
        assert.match(subR.out, /^to mosquitto_sub \d+\n$/);
      } finally { await closeAll(tcp); }
    }
    // Without a client certificate on the require_certificate listener.
    const r = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(P.mtls), '--cafile', certs.ca.cert, '-t', 'x', '-m', 'y']);
    assert.notEqual(r.code, 0, 'mosquitto_pub without a certificate was accepted');
    // Trusting a CA that did not sign the server's certificate.
    const r2 = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(P.tls), '--cafile', certs.foreignCa.cert, '-t', 'x', '-m', 'y']);
    assert.notEqual(r2.code, 0, 'mosquitto_pub trusted a server certificate from another CA');
  });
});

// ======================================================= identity as username

// Tern only: mosquitto 2.0.11 grants SUBSCRIBE to filters its acl_file
// denies (it checks read access at delivery), and the U+0000 CN is tern's
// rule.
describe('use_identity_as_username', { skip: !TERN && 'mosquitto 2.0.11 grants SUBSCRIBE to filters its acl_file denies' }, () => {
  let broker; let port; let wsPort;

  before(async () => {
    const pp = await ports(2);
    [port, wsPort] = pp;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-tls-acl-'));
    const acl = path.join(dir, 'acl');
    writeFileSync(acl, 'user alice\ntopic readwrite alice/#\n');
    if (!TERN) { chmodSync(dir, 0o755); chmodSync(acl, 0o644); } // mosquitto runs as its own user
    broker = await startBroker({
      ...pp.harness,
      config: [
        `acl_file ${acl}`,
        tlsListener(port, { extra: mtls(['use_identity_as_username true']) }),
        tlsListener(wsPort, { ws: true, extra: mtls(['use_identity_as_username true']) }),
      ].join('\n'),
    });
  });

  after(async () => { if (broker) await broker.stop(); });

  test('CN alice: alice/x allowed, bob/x refused (SUBACK/PUBACK 0x87); the CONNECT username is ignored', async () => {
    // The CONNECT says "bob" with a password; the certificate says alice.
    const c = await rawTls(port, certs.client('alice'));
    try {
      const ack = await c.connect({ version: 5, clientId: uid('alice'), username: 'bob', password: 'whatever' });
      assert.equal(ack.reason, 0, 'alice refused');
      c.subscribe(1, [['alice/x', 1], ['bob/x', 1]]);
      const sa = await c.expect('suback');
      assert.deepEqual(sa.reasons, [0x01, 0x87], 'SUBACK: alice/x granted QoS 1, bob/x not authorised');
      c.publish({ topic: 'bob/x', qos: 1, id: 2, payload: 'no' });
      const pa1 = await c.expect('puback');
      assert.equal(pa1.reason, 0x87, 'PUBACK for bob/x: not authorised');
      c.publish({ topic: 'alice/x', qos: 1, id: 3, payload: 'yes' });
      const pa2 = await c.expect('puback', { match: (p) => p.id === 3 });
      assert.equal(pa2.reason, 0x00);
      const m = await c.expect('publish');
      assert.equal(m.topic, 'alice/x');
      assert.equal(m.payload.toString(), 'yes');
      assert.deepEqual(await c.collect('publish', 300), [], 'bob/x must not have been delivered');
    } finally { c.destroy(); }
  });

  test('CN bob (valid cert, no ACL grant): alice/x refused even with CONNECT username alice', async () => {
    const c = await rawTls(port, certs.client('bob'));
    try {
      const ack = await c.connect({ version: 5, clientId: uid('bob'), username: 'alice' });
      assert.equal(ack.reason, 0);
      c.subscribe(1, [['alice/x', 0]]);
      assert.deepEqual((await c.expect('suback')).reasons, [0x87]);
    } finally { c.destroy(); }
  });

  test('over wss: alice (MQTT.js) publishes/subscribes alice/#, bob/x refused', async () => {
    const c = await connect(broker, { url: wssUrl(wsPort), protocolVersion: 5, username: 'bob', ...tlsOpts('alice') });
    try {
      const granted = await within(c.subscribeAsync('alice/w', { qos: 1 }), 3000, 'subscribe');
      assert.deepEqual(granted.map((g) => g.qos), [1]);
      // MQTT.js rejects a SUBACK with a failure reason code.
      await assert.rejects(within(c.subscribeAsync('bob/w', { qos: 1 }), 3000, 'subscribe'),
        (e) => { assert.deepEqual(e.packet?.granted, [0x87], e.message); return true; });
      await pub(c, 'alice/w', 'over wss', { qos: 1 });
      const [m] = await c.waitMessages(1);
      assert.equal(m.payload, 'over wss');
    } finally { await closeAll(c); }
  });

  // BAD_INPUTS.md, TLS layer: an identity that is not valid UTF-8 is
  // refused. OpenSSL 3 cannot load a certificate whose CN is ill-formed
  // UTF-8 (see lib/certs.mjs), so the invalid identity is "alice\0x": U+0000
  // is not allowed in an MQTT string (3.1.1 §1.5.3, 5.0 §1.5.4), and it must
  // not be cut to "alice" either.
  for (const version of [4, 5]) {
    test(`v${version}: CN with U+0000 ("alice\\0x") → CONNACK not authorised (${version === 5 ? '0x87' : '5'})`, async () => {
      const c = await rawTls(port, certs.client('nulCn'), version);
      try {
        const ack = await c.connect({ version, clientId: uid('nul'), username: 'alice' });
        assert.equal(ack.reason, version === 5 ? 0x87 : 5);
        await c.closed(2000);
      } finally { c.destroy(); }
      await assertAliveTls(port, 'alice');
    });
  }
});

// ================================================================ SIGHUP

describe('SIGHUP reloads certificates', { skip: !TERN && 'tern behaviour' }, () => {
  let broker; let port; let dir;

  before(async () => {
    const pp = await ports(1);
    [port] = pp;
    dir = mkdtempSync(path.join(os.tmpdir(), 'tern-tls-hup-'));
    copyFileSync(certs.server.cert, path.join(dir, 'server.crt'));
    copyFileSync(certs.server.key, path.join(dir, 'server.key'));
    broker = await startBroker({
      ...pp.harness,
      config: tlsListener(port, { server: { cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key') } }),
    });
  });

  after(async () => {
    if (broker) await broker.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function peerSerial() {
    const s = await tlsConnect(port);
    try { return s.getPeerCertificate().serialNumber; } finally { s.destroy(); }
  }

  test('new connections get cert B after SIGHUP, the open connection keeps working; a broken file keeps B', async () => {
    const A = certs.serial(certs.server.cert);
    const B = certs.serial(certs.serverB.cert);
    assert.notEqual(A, B);
    const tag = uid('hup');
    const old = await connect(broker, { url: mqttsUrl(port), protocolVersion: 5, ...tlsOpts() });
    let fresh;
    try {
      assert.equal(old.stream.getPeerCertificate().serialNumber, A);
      await sub(old, `${tag}/#`, { qos: 1 });
      assert.equal(await peerSerial(), A);

      copyFileSync(certs.serverB.cert, path.join(dir, 'server.crt'));
      copyFileSync(certs.serverB.key, path.join(dir, 'server.key'));
      broker.proc.kill('SIGHUP');
      const deadline = Date.now() + 3000;
      let seen = A;
      while (seen !== B && Date.now() < deadline) {
        await sleep(100);
        seen = await peerSerial();
      }
      assert.equal(seen, B, 'a new connection still gets certificate A 3 s after SIGHUP');
      const s = await tlsConnect(port);
      assert.equal(s.getPeerCertificate().subject.CN, 'tern-test-server-b');
      s.destroy();

      // The old connection (certificate A) still publishes and receives.
      fresh = await connect(broker, { url: mqttsUrl(port), protocolVersion: 4, ...tlsOpts() });
      assert.equal(fresh.stream.getPeerCertificate().serialNumber, B);
      await pub(old, `${tag}/from-old`, 'old', { qos: 1 });
      await pub(fresh, `${tag}/from-new`, 'new', { qos: 1 });
      const got = await old.waitMessages(2);
      assert.deepEqual(got.map((m) => m.payload).sort(), ['new', 'old']);
      assert.equal(old.stream.getPeerCertificate().serialNumber, A, 'the old connection is the same TLS session');

      // A certificate file that does not load: the reload fails and the
      // listener keeps serving B.
      writeFileSync(path.join(dir, 'server.crt'), 'not a certificate\n');
      broker.proc.kill('SIGHUP');
      await sleep(500);
      assert.equal(await peerSerial(), B);
      assert.equal(broker.proc.exitCode, null, 'broker exited on a failed reload');
      await pub(old, `${tag}/again`, 'again', { qos: 1 });
      await old.waitMessages(3);
    } finally { await closeAll(old, fresh); }
  });
});

// ================================================================ bad input

describe('TLS bad input (BAD_INPUTS.md, TLS layer)', () => {
  let broker; let watch; let tlsPort; let tls13Port; let hello; let n;

  before(async () => {
    const pp = await ports(2);
    [tlsPort, tls13Port] = pp;
    broker = await startBroker({
      ...pp.harness,
      config: [
        'sys_interval 1',
        ...(TERN ? ['connect_timeout 1'] : []),
        tlsListener(tlsPort),
        tlsListener(tls13Port, { extra: ['tls_version tlsv1.3'] }),
      ].join('\n'),
    });
    if (TERN) watch = await sysWatch(broker);
    hello = await captureClientHello();
    n = tally(watch, 'tls');
    await n.start();
  });

  after(async () => {
    if (watch) await closeAll(watch.client);
    if (broker) await broker.stop();
  });

  test('plain MQTT CONNECT to the TLS port: closed within 2 s, no CONNACK, counted not_tls', async () => {
    const { elapsed, data } = await sendAndTimeClose(tlsPort, enc.connect({ version: 4, clientId: uid('plain') }), 2000);
    assert.ok(elapsed < 2000, `closed after ${elapsed} ms`);
    assert.notEqual(data[0], 0x20, 'a CONNACK in answer to plain MQTT on the TLS port');
    n.add('not_tls');
    await assertAliveTls(tlsPort);
    n.add('handshakes');
  });

  test('TLS ClientHello to the plain MQTT port: closed within 2 s, no CONNACK', async () => {
    const { elapsed, data } = await sendAndTimeClose(broker.port, hello, 2000);
    assert.ok(elapsed < 2000, `closed after ${elapsed} ms`);
    assert.ok(!(data.length > 0 && data[0] === 0x20), 'a CONNACK in answer to a ClientHello');
    await assertAlive(broker);
    await assertAliveTls(tlsPort);
    n.add('handshakes');
  });

  test('half a ClientHello, then silence: closed at the handshake deadline (connect_timeout 1), counted timeout', { skip: !TERN && 'connect_timeout is tern\'s key' }, async () => {
    const { elapsed, data } = await sendAndTimeClose(tlsPort, hello.subarray(0, Math.floor(hello.length / 2)), 4000);
    assert.ok(elapsed >= 900, `closed after ${elapsed} ms, before the deadline`);
    assert.ok(elapsed <= 2500, `closed after ${elapsed} ms, long after the 1 s deadline`);
    assert.equal(data.length, 0, 'the server answered half a ClientHello');
    n.add('timeout');
    await assertAliveTls(tlsPort);
    n.add('handshakes');
  });

  test('TLS handshake that never starts (connect, send nothing): closed at the deadline, counted timeout', { skip: !TERN && 'connect_timeout is tern\'s key' }, async () => {
    const { elapsed } = await sendAndTimeClose(tlsPort, Buffer.alloc(0), 4000);
    assert.ok(elapsed >= 900 && elapsed <= 2500, `closed after ${elapsed} ms`);
    n.add('timeout');
    await assertAliveTls(tlsPort);
    n.add('handshakes');
  });

  test('tls_version tlsv1.3: a TLS 1.2-only client is refused (protocol_version); TLS 1.3 accepted', async () => {
    await assert.rejects(tlsConnect(tls13Port, { maxVersion: 'TLSv1.2' }), (e) => !/timeout/.test(e.message));
    n.add('protocol_version');
    const s = await tlsConnect(tls13Port);
    assert.equal(s.getProtocol(), 'TLSv1.3');
    const c = new RawClient(s, 4);
    try { assert.equal((await c.connect({ version: 4, clientId: uid('v13') })).reason, 0); } finally { c.destroy(); }
    n.add('handshakes');
    // The default listener (minimum TLS 1.2) takes a TLS 1.2 client.
    const c12 = new RawClient(await tlsConnect(tlsPort, { maxVersion: 'TLSv1.2' }), 4);
    try {
      assert.equal(c12.sock.getProtocol(), 'TLSv1.2');
      assert.equal((await c12.connect({ version: 4, clientId: uid('v12') })).reason, 0);
    } finally { c12.destroy(); }
    n.add('handshakes');
    await assertAliveTls(tls13Port);
    n.add('handshakes');
  });

  test('garbage after a complete ClientHello-sized record header: closed quickly, broker alive', async () => {
    const junk = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x20]), Buffer.alloc(32, 0xee)]);
    const { elapsed } = await sendAndTimeClose(tlsPort, junk, 2000);
    assert.ok(elapsed < 2000);
    n.add('other');
    await assertAliveTls(tlsPort);
    n.add('handshakes');
  });

  test('$SYS/broker/transport/tls/handshake*: each input above counted once, under its cause', { skip: !TERN && 'tern\'s $SYS topics' }, async () => {
    await n.verify();
  });
});

// ================================================================ keyfile_password

describe('encrypted server key', { skip: !TERN && 'keyfile_password is tern\'s key' }, () => {
  test('without keyfile_password ternd refuses to start, naming the keyfile; with it, it serves TLS', async () => {
    const pp = await ports(2);
    const [port, tport] = pp;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-tls-enc-'));
    try {
      const conf = path.join(dir, 'broker.conf');
      writeFileSync(conf, `allow_anonymous true\nlistener ${port} 127.0.0.1\n${tlsListener(tport, { server: certs.serverEnc })}\n`);
      const t0 = Date.now();
      const r = await run(process.env.TERND || 'build/ternd', ['-c', conf], { timeout: 5000 });
      assert.equal(r.signal, null, `ternd did not exit within 5 s (killed): ${r.err}`);
      assert.equal(r.code, 1, `exit code ${r.code}; output: ${r.out}${r.err}`);
      assert.ok(Date.now() - t0 < 5000);
      assert.ok((r.out + r.err).includes(certs.serverEnc.key), `the message does not name the keyfile: ${r.out}${r.err}`);

      // A wrong password fails the same way.
      writeFileSync(conf, `allow_anonymous true\nlistener ${port} 127.0.0.1\n${tlsListener(tport, { server: certs.serverEnc, extra: ['keyfile_password wrong'] })}\n`);
      const r2 = await run(process.env.TERND || 'build/ternd', ['-c', conf], { timeout: 5000 });
      assert.equal(r2.code, 1, `wrong password: exit code ${r2.code} signal ${r2.signal}`);

      const broker = await startBroker({
        ...pp.harness,
        config: tlsListener(tport, { server: certs.serverEnc, extra: [`keyfile_password ${certs.keyPassword}`] }),
      });
      try {
        await roundTrip(mqttsUrl(tport), { protocolVersion: 5, ...tlsOpts() });
      } finally { await broker.stop(); }
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});
