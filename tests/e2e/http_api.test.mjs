// The operator's HTTP endpoints of a websockets listener (src/broker/
// http_api.c, docs/http.md): the admin API's credentials (Basic from
// loopback, refused for a remote client over plain http, bearer token),
// clients list/detail/kick, subscriptions, publish, stats; /metrics as
// strict Prometheus text whose counters follow known traffic.
//
// A second websockets listener trusts 127.0.0.1 as a proxy, so a request
// with X-Forwarded-For: 203.0.113.7 stands for a remote browser.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startBroker, freePort, KIND } from './lib/broker.mjs';
import { connect, closeAll, uid, sub, pub, within, sleep } from './lib/util.mjs';

const TOKEN = 'tok-' + randomBytes(8).toString('hex');
const REMOTE = { 'X-Forwarded-For': '203.0.113.7' };
let broker; let api; let proxied;

// A Mosquitto $7$ line (PBKDF2-SHA512, 101 rounds), as mosquitto_passwd
// writes it.
function passwdLine(user, password) {
  const salt = randomBytes(12);
  const dk = pbkdf2Sync(password, salt, 101, 64, 'sha512');
  return `${user}:$7$101$${salt.toString('base64')}$${dk.toString('base64')}\n`;
}

const basic = (u, p) => ({ Authorization: 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64') });
const bearer = (t) => ({ Authorization: `Bearer ${t}` });

async function req(base, p, { method = 'GET', headers = {}, body } = {}) {
  const r = await fetch(base + p, { method, headers, body });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, text, json };
}

// A strict reader of the Prometheus text format 0.0.4: every sample's
// family has # HELP and # TYPE before it, names and labels are well
// formed, values are numbers, counters end in _total, no series twice.
// Returns Map "name{labels}" -> value.
function parseProm(text) {
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const types = new Map(); const helps = new Set(); const out = new Map();
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [name, ...help] = line.slice(7).split(' ');
      assert.match(name, NAME); assert.ok(help.join(' ').length > 0, `help of ${name}`);
      assert.ok(!helps.has(name), `HELP twice for ${name}`); helps.add(name);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type, extra] = line.slice(7).split(' ');
      assert.match(name, NAME); assert.equal(extra, undefined);
      assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type), line);
      assert.ok(!types.has(name), `TYPE twice for ${name}`);
      types.set(name, type);
      continue;
    }
    assert.ok(!line.startsWith('#') && line.trim() === line && line.length, `bad line: ${JSON.stringify(line)}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `bad sample: ${line}`);
    const [, name, , labels, value] = m;
    assert.ok(types.has(name) && helps.has(name), `sample before HELP/TYPE: ${name}`);
    if (types.get(name) === 'counter') assert.match(name, /_total$/);
    if (labels !== undefined) {
      for (const l of labels.split(/,(?=[a-zA-Z_])/)) {
        assert.match(l, /^[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*"$/, `label ${l}`);
      }
    }
    assert.ok(/^[+-]?(\d+(\.\d*)?([eE][+-]?\d+)?|NaN|[+-]?Inf)$/.test(value), `value ${value}`);
    const key = labels === undefined ? name : `${name}{${labels}}`;
    assert.ok(!out.has(key), `series twice: ${key}`);
    out.set(key, Number(value));
  }
  return out;
}

describe('HTTP admin API and /metrics', { skip: KIND !== 'tern' && 'ternd only' }, () => {
  before(async () => {
    const pw = path.join(process.env.TMPDIR || '/tmp', `tern-admin-${process.pid}.pw`);
    writeFileSync(pw, passwdLine('admin', 'hunter2'));
    const p2 = await freePort();
    broker = await startBroker({
      config: [
        `admin_user admin`, `admin_password_file ${pw}`, `admin_token ${TOKEN}`,
        'message_size_limit 100000',
        `listener ${p2} 127.0.0.1`, 'protocol websockets', 'trusted_proxies 127.0.0.1',
      ].join('\n'),
    });
    api = `http://127.0.0.1:${broker.wsPort}`;
    proxied = `http://127.0.0.1:${p2}`;
  });
  after(async () => { if (broker) await broker.stop(); });

  test('credentials: none, wrong, Basic, bearer; Basic refused for a remote client over http', async () => {
    let r = await req(api, '/api/v1/stats');
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /^Basic /);
    assert.equal((await req(api, '/api/v1/stats', { headers: basic('admin', 'nope') })).status, 401);
    assert.equal((await req(api, '/api/v1/stats', { headers: basic('root', 'hunter2') })).status, 401);
    // The right password under "admin" followed by a NUL: not "admin".
    assert.equal((await req(api, '/api/v1/stats', { headers: basic('admin\0x', 'hunter2') })).status, 401);
    assert.equal((await req(api, '/api/v1/stats', { headers: bearer('wrong') })).status, 401);
    r = await req(api, '/api/v1/stats', { headers: basic('admin', 'hunter2') });
    assert.equal(r.status, 200, r.text);
    assert.equal(typeof r.json.uptime_seconds, 'number');
    assert.equal((await req(api, '/api/v1/stats', { headers: bearer(TOKEN) })).status, 200);
    // The same right password from a remote client over plain http.
    r = await req(proxied, '/api/v1/stats', { headers: { ...REMOTE, ...basic('admin', 'hunter2') } });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /^Bearer /);
    r = await req(proxied, '/api/v1/stats', { headers: { ...REMOTE, ...bearer(TOKEN) } });
    assert.equal(r.status, 200);
    assert.equal((await req(api, '/api/v1/nothing', { headers: bearer(TOKEN) })).status, 404);
    assert.equal((await req(api, '/api/v1/stats', { method: 'DELETE', headers: bearer(TOKEN) })).status, 405);
  });

  test('clients: list, detail, kick (the client sees the disconnect)', async () => {
    const id = uid('kick') + '/é x';
    const c = await connect(broker, { clientId: id, protocolVersion: 5, username: 'u1' });
    await sub(c, 'api/t/#', { qos: 1 });
    const H = { headers: bearer(TOKEN) };
    let r = await req(api, '/api/v1/clients', H);
    assert.equal(r.status, 200);
    const me = r.json.clients.find((x) => x.id === id);
    assert.ok(me, JSON.stringify(r.json));
    assert.equal(me.connected, true);
    assert.equal(me.protocol, '5.0');
    assert.equal(me.username, 'u1');
    assert.equal(me.transport, broker.transport);
    r = await req(api, '/api/v1/clients/' + encodeURIComponent(id), H);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.subscription_list.map((s) => [s.topic, s.qos]), [['api/t/#', 1]]);
    r = await req(api, '/api/v1/subscriptions', H);
    assert.ok(r.json.subscriptions.some((s) => s.client === id && s.topic === 'api/t/#'));
    assert.equal((await req(api, '/api/v1/clients/nobody-here', H)).status, 404);
    const gone = new Promise((resolve) => {
      c.on('disconnect', (p) => resolve(p.reasonCode));
      c.on('close', () => resolve('close'));
    });
    r = await req(api, '/api/v1/clients/' + encodeURIComponent(id), { method: 'DELETE', ...H });
    assert.equal(r.status, 202, r.text);
    const why = await within(gone, 5000, 'kicked client disconnect');
    assert.ok(why === 0x98 || why === 'close', String(why));
    await sleep(100);
    r = await req(api, '/api/v1/clients/' + encodeURIComponent(id), H);
    assert.ok(r.status === 404 || r.json.connected === false);
    await closeAll(c);
  });

  test('publish through the API reaches a subscriber; bad bodies are 400', async () => {
    const s = await connect(broker);
    await sub(s, 'api/pub/#', { qos: 1 });
    const H = { ...bearer(TOKEN), 'Content-Type': 'application/json' };
    let r = await req(api, '/api/v1/publish', {
      method: 'POST', headers: H,
      body: JSON.stringify({ topic: 'api/pub/a', payload: 'héllo "x"', qos: 1, retain: false }),
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.matched, 1);
    r = await req(api, '/api/v1/publish', {
      method: 'POST', headers: H,
      body: JSON.stringify({ topic: 'api/pub/b', payload: Buffer.from([0, 1, 255]).toString('base64'), encoding: 'base64' }),
    });
    assert.equal(r.status, 200, r.text);
    const got = await s.waitMessages(2);
    assert.equal(got[0].topic, 'api/pub/a');
    assert.equal(got[0].payload, 'héllo "x"');
    assert.equal(got[0].packet.qos, 1);
    assert.deepEqual([...s.messages[1].packet.payload], [0, 1, 255]);
    for (const body of ['nope', '{"topic":"a/#"}', '{"topic":"a","qos":3}', '{"payload":"x"}', '[1]']) {
      r = await req(api, '/api/v1/publish', { method: 'POST', headers: H, body });
      assert.equal(r.status, 400, `${body}: ${r.text}`);
    }
    r = await req(api, '/api/v1/publish', { method: 'POST', headers: H, body: 'x'.repeat(300 * 1024) });
    assert.equal(r.status, 413);
    await closeAll(s);
  });

  test('/metrics: strict Prometheus text; counters follow known traffic', async () => {
    let r = await req(api, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    const before = parseProm(r.text);
    for (const k of ['tern_connections{transport="tcp"}', 'tern_connections{transport="ws"}',
      'tern_ws_handshake_failures_total{cause="bad_path"}', 'tern_messages_received_total',
      'tern_messages_sent_total', 'tern_bytes_received_total', 'tern_messages_dropped_total{reason="queue_full"}',
      'tern_sessions', 'tern_subscriptions', 'tern_retained_messages']) {
      assert.ok(before.has(k), `missing ${k}`);
    }
    const N = 25;
    const s = await connect(broker);
    await sub(s, 'metrics/t', { qos: 1 });
    const p = await connect(broker);
    for (let i = 0; i < N; i++) await pub(p, 'metrics/t', String(i), { qos: 1 });
    await s.waitMessages(N);
    await sleep(200);
    const after = parseProm((await req(api, '/metrics')).text);
    const d = (k) => after.get(k) - before.get(k);
    assert.equal(d('tern_messages_received_total'), N);
    assert.equal(d('tern_messages_sent_total'), N);
    assert.ok(d('tern_bytes_received_total') > N);
    assert.ok(after.get(`tern_connections{transport="${broker.transport}"}`) >= 2);
    assert.ok(after.get('tern_subscriptions') >= 1);
    // One message over message_size_limit: dropped, counted by reason.
    await pub(p, 'metrics/t', Buffer.alloc(100001), { qos: 1 });
    await sleep(100);
    const big = parseProm((await req(api, '/metrics')).text);
    assert.equal(big.get('tern_messages_dropped_total{reason="size_limit"}') -
      after.get('tern_messages_dropped_total{reason="size_limit"}'), 1);
    // A WebSocket upgrade on a wrong path is counted by cause.
    await new Promise((resolve) => {
      const sock = net.connect(broker.wsPort, '127.0.0.1', () => sock.write(
        'GET /nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'));
      sock.on('data', () => {}); sock.on('close', resolve); sock.on('error', resolve);
    });
    const later = parseProm((await req(api, '/metrics')).text);
    assert.equal(later.get('tern_ws_handshake_failures_total{cause="bad_path"}') -
      after.get('tern_ws_handshake_failures_total{cause="bad_path"}'), 1);
    // From a remote address /metrics needs credentials.
    assert.equal((await req(proxied, '/metrics', { headers: REMOTE })).status, 401);
    assert.equal((await req(proxied, '/metrics', { headers: { ...REMOTE, ...bearer(TOKEN) } })).status, 200);
    await closeAll(s, p);
  });
});

describe('admin configuration errors', { skip: KIND !== 'tern' && 'ternd only' }, () => {
  test('admin_user without admin_password_file, or a bad file, stops ternd', () => {
    const dir = process.env.TMPDIR || '/tmp';
    const conf = path.join(dir, `tern-admin-${process.pid}.conf`);
    const pw = path.join(dir, `tern-admin-bad-${process.pid}.pw`);
    writeFileSync(pw, 'admin:plaintext\n');
    for (const [lines, why] of [[['admin_user admin'], /admin_user and admin_password_file/],
      [['admin_user admin', `admin_password_file ${pw}`], new RegExp(`${pw}:1`)]]) {
      writeFileSync(conf, ['listener 1', 'protocol websockets', ...lines].join('\n') + '\n');
      const r = spawnSync(process.env.TERND || 'build/ternd', ['-c', conf, '--test-config'], { encoding: 'utf8', timeout: 10000 });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr + r.stdout, why);
    }
  });
});

describe('admin API off without credentials', { skip: KIND !== 'tern' && 'ternd only' }, () => {
  test('404 for /api, /metrics open on loopback, the web client with CSP and ETag', async () => {
    const b = await startBroker();
    try {
      const base = `http://127.0.0.1:${b.wsPort}`;
      const r = await req(base, '/api/v1/clients', { headers: bearer('anything') });
      assert.equal(r.status, 404);
      assert.equal((await req(base, '/metrics')).status, 200);
      // The embedded web client: CSP, ETag and 304 on revalidation.
      const page = await fetch(base + '/');
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-security-policy'), /script-src 'self'/);
      const etag = page.headers.get('etag');
      assert.match(etag, /^"[0-9a-f]{16}"$/);
      assert.equal((await fetch(base + '/', { headers: { 'If-None-Match': etag } })).status, 304);
      const js = await fetch(base + '/vendor/mqtt.esm.js');
      assert.equal(js.status, 200);
      assert.match(js.headers.get('content-type'), /^text\/javascript/);
      assert.equal((await fetch(base + '/js/nothing.js')).status, 404);
    } finally {
      await b.stop();
    }
  });
});
