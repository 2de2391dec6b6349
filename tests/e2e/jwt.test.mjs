// JSON Web Tokens as CONNECT passwords (src/broker/jwt.c, auth.c,
// handle_connect.c; docs/security.md "JSON Web Tokens"). Tokens are minted
// here with node:crypto (createHmac for HS256, an RSA key pair from
// generateKeyPairSync and crypto.sign for RS256), so the broker is checked
// against an independent implementation. Covered: good HS256 and RS256
// tokens over TCP and WebSocket (MQTT.js, v3.1.1 and v5); refusals (expired,
// not yet valid, wrong key, tampered payload, alg none, HS256 keyed with the
// RSA public key, wrong username, plain garbage of a token's shape) with
// CONNACK 4 / 0x86; the token's username claim as the username; the topics
// claim on publish (v5 PUBACK 0x87), subscribe (SUBACK 0x87 / 0x80) and
// delivery to a persistent session; a token that expires while connected
// (v5 DISCONNECT 0xA0, v3 close); password_file next to JWT; SIGHUP with a
// new secret and with broken key files (reload refused, old keys kept);
// the counters on /metrics; and a page in headless Chromium (MQTT.js's
// browser bundle over WebSocket) with a token handed to it, as a web app
// gets one from its login. tern only.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtempSync, writeFileSync, renameSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';
import { startBroker, KIND } from './lib/broker.mjs';
import { RawClient } from './lib/raw.mjs';
import { connect, closeAll, within, uid, sleep } from './lib/util.mjs';

const TERN = KIND === 'tern';
const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-jwt-'));
const SECRET = `jwt-e2e-secret-${crypto.randomBytes(16).toString('hex')}`;
const SECRET2 = `jwt-e2e-secret2-${crypto.randomBytes(16).toString('hex')}`;
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaOther = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const RSA_PUB_PEM = rsa.publicKey.export({ type: 'spki', format: 'pem' });

const b64 = (x) => Buffer.from(x).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function signingInput(header, claims) {
  return `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
}

function hs256(claims, secret = SECRET, header = { alg: 'HS256', typ: 'JWT' }) {
  const si = signingInput(header, claims);
  return `${si}.${crypto.createHmac('sha256', secret).update(si).digest('base64url')}`;
}

function rs256(claims, key = rsa.privateKey) {
  const si = signingInput({ alg: 'RS256', typ: 'JWT' }, claims);
  return `${si}.${crypto.sign('sha256', Buffer.from(si), key).toString('base64url')}`;
}

// Claims valid for an hour for `sub`, plus extra.
const claims = (sub, extra = {}) => ({ sub, exp: now() + 3600, ...extra });

// Replaces a file atomically, so the broker never reads half of it.
function replace(p, text) {
  writeFileSync(`${p}.tmp`, text);
  renameSync(`${p}.tmp`, p);
}

function pwLine(user, password) {
  const salt = crypto.randomBytes(12);
  const digest = crypto.pbkdf2Sync(password, salt, 101, 64, 'sha512');
  return `${user}:$7$101$${salt.toString('base64')}$${digest.toString('base64')}`;
}

async function waitLog(output, re, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!re.test(output())) {
    if (Date.now() > deadline) throw new Error(`no log line matching ${re} in ${ms} ms; output tail:\n${output().slice(-1500)}`);
    await sleep(25);
  }
}

// Raw CONNECT over TCP; resolves with the CONNACK code (or 'closed').
async function connack(port, version, opts) {
  const c = await RawClient.connect(port, { version });
  try {
    const ack = await c.connect({ version, clientId: uid('j'), ...opts }).catch(() => null);
    return ack ? ack.reason : 'closed';
  } finally {
    c.destroy();
  }
}

// A connected raw client (CONNACK 0 asserted).
async function rawJwt(port, version, password, opts = {}) {
  const c = await RawClient.connect(port, { version });
  const ack = await c.connect({ version, clientId: uid('j'), username: '', password, ...opts });
  assert.equal(ack.reason, 0, `CONNACK 0x${ack.reason.toString(16)}`);
  return c;
}

// MQTT.js: resolves 0 when accepted, else the CONNACK code it reports.
async function mqttjs(url, version, username, password) {
  try {
    const c = await within(mqtt.connectAsync(url, {
      protocolVersion: version, reconnectPeriod: 0, connectTimeout: 3000, clientId: uid('m'), username, password,
    }, false), 4000, 'connect');
    await closeAll(c);
    return 0;
  } catch (err) {
    if (/timeout after/.test(err.message)) throw err;
    return err.code;
  }
}

function getMetrics(port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

const metric = (text, name) => {
  const m = text.match(new RegExp(`^${name.replace(/[{}"[\]]/g, '\\$&')} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : undefined;
};

describe('JWT authentication', { skip: !TERN && 'tern feature' }, () => {
  let broker; let secretFile; let pubFile; let pwFile;

  before(async () => {
    secretFile = path.join(dir, 'jwt.secret');
    pubFile = path.join(dir, 'jwt.pub.pem');
    pwFile = path.join(dir, 'pw');
    // The secret file ends with a newline, as `echo` writes it.
    writeFileSync(secretFile, `${SECRET}\n`);
    writeFileSync(pubFile, RSA_PUB_PEM);
    writeFileSync(pwFile, `${pwLine('carol', 'carol-pw')}\n`);
    broker = await startBroker({
      anonymous: false,
      config: [
        `jwt_hs256_secret_file ${secretFile}`,
        `jwt_rs256_public_key_file ${pubFile}`,
        `password_file ${pwFile}`,
        'sys_interval 1',
      ].join('\n'),
    });
  });
  after(async () => { await broker.stop(); });

  test('good HS256 and RS256 tokens are accepted over TCP and WebSocket, v3.1.1 and v5', async () => {
    for (const url of [broker.tcpUrl, broker.wsUrl]) {
      for (const v of [4, 5]) {
        assert.equal(await mqttjs(url, v, 'alice', hs256(claims('alice'))), 0, `HS256 ${url} v${v}`);
        assert.equal(await mqttjs(url, v, 'alice', rs256(claims('alice'))), 0, `RS256 ${url} v${v}`);
      }
    }
  });

  test('bad tokens are refused: CONNACK 4 (v3.1.1) and 0x86 (v5)', async () => {
    const good = hs256(claims('alice'));
    const [h, , s] = good.split('.');
    const cases = {
      expired: hs256({ sub: 'alice', exp: now() - 10 }),
      'not yet valid': hs256(claims('alice', { nbf: now() + 600 })),
      'no exp': hs256({ sub: 'alice' }),
      'wrong secret': hs256(claims('alice'), 'another-secret-of-enough-length-0123456789'),
      'wrong RSA key': rs256(claims('alice'), rsaOther.privateKey),
      'tampered payload': `${h}.${b64(JSON.stringify(claims('admin')))}.${s}`,
      'alg none': `${b64(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64(JSON.stringify(claims('alice')))}.`,
      // Key confusion: HS256 keyed with the RSA public key's PEM text.
      'HS256 with the public key as secret': hs256(claims('alice'), RSA_PUB_PEM),
      'HS512': hs256(claims('alice'), SECRET, { alg: 'HS512' }),
      'a padded signature': `${good}=`,
      'a token shape of garbage': 'eyJhbGciOi.xxxx.yyyy',
    };
    for (const [name, token] of Object.entries(cases)) {
      assert.equal(await connack(broker.port, 4, { username: 'alice', password: token }), 4, `v3 ${name}`);
      assert.equal(await connack(broker.port, 5, { username: 'alice', password: token }), 0x86, `v5 ${name}`);
    }
    // Over WebSocket, through MQTT.js.
    assert.equal(await mqttjs(broker.wsUrl, 4, 'alice', cases.expired), 4);
    assert.equal(await mqttjs(broker.wsUrl, 5, 'alice', cases['alg none']), 0x86);
  });

  test('the CONNECT username must equal the token\'s; empty or absent takes the token\'s', async () => {
    const tok = hs256(claims('alice', { acl: { pub: ['users/%u/#'] } }));
    assert.equal(await connack(broker.port, 4, { username: 'bob', password: tok }), 4);
    assert.equal(await connack(broker.port, 5, { username: 'bob', password: tok }), 0x86);
    assert.equal(await connack(broker.port, 4, { username: 'alice', password: tok }), 0);
    // v3.1.1 needs a username with a password: an empty one. v5 may omit it.
    for (const [v, opts] of [[4, { username: '' }], [5, { username: '' }], [5, {}]]) {
      const c = await RawClient.connect(broker.port, { version: v });
      try {
        const ack = await c.connect({ version: v, clientId: uid('u'), password: tok, ...opts });
        assert.equal(ack.reason, 0);
        if (v === 5) {
          // %u is the token's username: alice may publish below users/alice.
          c.publish({ topic: 'users/alice/x', qos: 1, id: 1, payload: 'a' });
          assert.equal((await c.expect('puback')).reason, 0);
          c.publish({ topic: 'users/bob/x', qos: 1, id: 2, payload: 'b' });
          assert.equal((await c.expect('puback')).reason, 0x87);
        }
      } finally {
        c.destroy();
      }
    }
  });

  test('a password that is not a token still goes to password_file; anonymous stays refused', async () => {
    assert.equal(await connack(broker.port, 4, { username: 'carol', password: 'carol-pw' }), 0);
    assert.equal(await connack(broker.port, 4, { username: 'carol', password: 'wrong' }), 4);
    assert.equal(await connack(broker.port, 4, {}), 5);
    assert.equal(await connack(broker.port, 5, {}), 0x87);
    // A token for carol is checked as a token, not against her password.
    assert.equal(await connack(broker.port, 4, { username: 'carol', password: hs256(claims('carol')) }), 0);
    assert.equal(await connack(broker.port, 4, { username: 'carol', password: hs256(claims('carol'), SECRET2) }), 4);
  });

  test('the topics claim allows and denies publish and subscribe', async () => {
    const t = uid('tc');
    const tok = hs256(claims('dave', { acl: { pub: [`${t}/out`], sub: [`${t}/in/#`], all: [`${t}/both`] } }));
    const c5 = await rawJwt(broker.port, 5, tok);
    const c3 = await rawJwt(broker.port, 4, tok);
    const peer = await connect(broker, { protocolVersion: 5, username: 'peer', password: hs256(claims('peer')) });
    try {
      c5.publish({ topic: `${t}/out`, qos: 1, id: 1, payload: 'ok' });
      assert.equal((await c5.expect('puback')).reason, 0);
      c5.publish({ topic: `${t}/in/x`, qos: 1, id: 2, payload: 'no' });
      assert.equal((await c5.expect('puback')).reason, 0x87);
      c5.publish({ topic: `${t}/both`, qos: 1, id: 3, payload: 'ok' });
      assert.equal((await c5.expect('puback')).reason, 0);
      c5.subscribe(4, [[`${t}/in/#`, 1], [`${t}/out`, 1], [`${t}/#`, 1], [`${t}/both`, 0]]);
      assert.deepEqual((await c5.expect('suback')).reasons, [1, 0x87, 0x87, 0]);
      c3.subscribe(5, [[`${t}/in/a`, 1], [`${t}/out`, 1]]);
      assert.deepEqual((await c3.expect('suback')).reasons, [1, 0x80]);
      // Delivery of what the subscription allows.
      await within(peer.publishAsync(`${t}/in/x`, 'hello', { qos: 1 }), 3000, 'publish');
      const got = await c5.expect('publish');
      assert.equal(got.topic, `${t}/in/x`);
      assert.equal(got.payload.toString(), 'hello');
    } finally {
      c5.destroy(); c3.destroy();
      await closeAll(peer);
    }
  });

  test('a narrower token on reconnect limits delivery to the subscriptions a wider one made', async () => {
    const t = uid('dl');
    const id = uid('sess');
    const opts = { protocolVersion: 5, clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } };
    const wide = await connect(broker, { ...opts, username: 'erin', password: hs256(claims('erin', { acl: { sub: [`${t}/#`] } })) });
    await within(wide.subscribeAsync(`${t}/#`, { qos: 1 }), 3000, 'subscribe');
    await closeAll(wide);
    const narrow = await connect(broker, { ...opts, username: 'erin', password: hs256(claims('erin', { acl: { sub: [`${t}/a`] } })) });
    const peer = await connect(broker, { protocolVersion: 5, username: 'peer', password: hs256(claims('peer')) });
    try {
      await within(peer.publishAsync(`${t}/b`, 'denied', { qos: 1 }), 3000, 'publish');
      await within(peer.publishAsync(`${t}/a`, 'allowed', { qos: 1 }), 3000, 'publish');
      const [m] = await narrow.waitMessages(1);
      assert.equal(m.topic, `${t}/a`);
      await sleep(300);
      assert.deepEqual(narrow.messages.map((x) => x.topic), [`${t}/a`]);
    } finally {
      await closeAll(narrow, peer);
    }
  });

  test('a token that expires while connected: v5 DISCONNECT 0xA0, v3.1.1 closed', async () => {
    const exp = now() + 2;
    const c5 = await rawJwt(broker.port, 5, hs256({ sub: 'fay', exp }));
    const c3 = await rawJwt(broker.port, 4, hs256({ sub: 'fay', exp }));
    const start = Date.now();
    try {
      const d = await c5.expect('disconnect', { timeout: 5000 });
      assert.equal(d.reason, 0xa0);
      await c5.closed(2000);
      await c3.closed(2000);
      // Not before exp, and not long after it.
      assert.ok(Date.now() >= exp * 1000, `closed ${exp * 1000 - Date.now()} ms before the token expired`);
      assert.ok(Date.now() - start < 5000);
      assert.ok(!c3.log.some((p) => p.type === 'disconnect'), 'v3 got a DISCONNECT');
    } finally {
      c5.destroy(); c3.destroy();
    }
    assert.match(broker.output(), /token expired/);
  });

  test('refusals and expiries are counted on /metrics', async () => {
    const text = await getMetrics(broker.wsPort);
    for (const cause of ['accepted', 'expired', 'not_yet_valid', 'bad_signature', 'bad_alg', 'malformed', 'bad_claims', 'wrong_username']) {
      const n = metric(text, `tern_jwt_auth_total{result="${cause}"}`);
      assert.ok(n > 0, `tern_jwt_auth_total{result="${cause}"} is ${n}`);
    }
    assert.ok(metric(text, 'tern_jwt_expired_disconnects_total') >= 2);
    // The same counters as retained $SYS topics (sys_interval 1).
    const c = await connect(broker, { protocolVersion: 5, username: '', password: hs256(claims('sys')) });
    try {
      await within(c.subscribeAsync('$SYS/broker/auth/jwt/#'), 3000, 'subscribe');
      const want = ['accepted', 'refused/expired', 'refused/bad_signature', 'refused/wrong_username', 'expired_disconnects'];
      // The retained values may be up to a second old: wait for the
      // latest of each to count what happened above.
      const latest = () => Object.fromEntries(c.messages.map((m) => [m.topic.replace('$SYS/broker/auth/jwt/', ''), Number(m.payload)]));
      const deadline = Date.now() + 4000;
      while (!want.every((t) => latest()[t] > 0) && Date.now() < deadline) await sleep(50);
      for (const t of want) assert.ok(latest()[t] > 0, `$SYS/broker/auth/jwt/${t} is ${latest()[t]}`);
    } finally {
      await closeAll(c);
    }
  });

  test('SIGHUP with a new secret: new connections need the new key', async () => {
    replace(secretFile, `${SECRET2}\n`);
    const before = broker.output().length;
    broker.proc.kill('SIGHUP');
    await waitLog(() => broker.output().slice(before), /Reloaded configuration/);
    assert.equal(await connack(broker.port, 4, { username: 'g', password: hs256(claims('g'), SECRET2) }), 0);
    assert.equal(await connack(broker.port, 4, { username: 'g', password: hs256(claims('g'), SECRET) }), 4);
    assert.equal(await mqttjs(broker.wsUrl, 5, 'g', hs256(claims('g'), SECRET2)), 0);
  });

  test('broken key files on reload: refused, logged, the old keys kept', async () => {
    const broken = {
      'a secret under 32 bytes': [secretFile, 'short\n', /jwt\.secret: HS256 secret of 5 bytes; at least 32 needed/],
      'a public key file without a key': [pubFile, 'not a pem\n', /jwt\.pub\.pem: no PEM public key/],
    };
    for (const [name, [file, text, why]] of Object.entries(broken)) {
      replace(file, text);
      const before = broker.output().length;
      broker.proc.kill('SIGHUP');
      const since = () => broker.output().slice(before);
      await waitLog(since, /Reload failed/);
      assert.match(since(), why, name);
      assert.doesNotMatch(since(), /Reloaded configuration/);
      // The old keys: SECRET2 and the RSA key still work.
      assert.equal(await connack(broker.port, 5, { username: 'h', password: hs256(claims('h'), SECRET2) }), 0, name);
      assert.equal(await connack(broker.port, 5, { username: 'h', password: rs256(claims('h')) }), 0, name);
      assert.equal(await connack(broker.port, 5, { username: 'h', password: hs256(claims('h'), 'short') }), 0x86, name);
      // Put the good file back before the next case.
      replace(file, file === secretFile ? `${SECRET2}\n` : RSA_PUB_PEM);
    }
  });
});

describe('JWT configuration', { skip: !TERN && 'tern feature' }, () => {
  test('a broken key file at start: ternd refuses to start and names the file', async () => {
    const bad = path.join(dir, 'ec.pem');
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(bad, ec.publicKey.export({ type: 'spki', format: 'pem' }));
    await assert.rejects(startBroker({ anonymous: false, config: `jwt_rs256_public_key_file ${bad}` }),
      /ec\.pem: the public key is not an RSA key/);
  });

  test('jwt settings without a key are refused', async () => {
    await assert.rejects(startBroker({ anonymous: false, config: 'jwt_issuer https://auth.example' }),
      /jwt_\* settings need jwt_hs256_secret_file or jwt_rs256_public_key_file/);
  });

  test('per_listener_settings: the JWT key belongs to the listener it follows', async () => {
    const secretFile = path.join(dir, 'jwt3.secret');
    writeFileSync(secretFile, SECRET);
    // startBroker writes the WebSocket listener, then the TCP one, then
    // these lines: the key is the TCP listener's only.
    const b = await startBroker({ anonymous: false, config: `per_listener_settings true\njwt_hs256_secret_file ${secretFile}` });
    try {
      const tok = hs256(claims('pl'));
      assert.equal(await connack(b.port, 4, { username: '', password: tok }), 0);
      assert.equal(await mqttjs(b.tcpUrl, 5, '', tok), 0);
      // The WebSocket listener has no key, no password file and no
      // anonymous access: nobody gets in there.
      assert.equal(await mqttjs(b.wsUrl, 5, '', tok), 0x87);
      assert.equal(await mqttjs(b.wsUrl, 4, 'pl', tok), 5);
    } finally {
      await b.stop();
    }
  });

  test('issuer, audience, username claim and leeway from the config', async () => {
    const secretFile = path.join(dir, 'jwt2.secret');
    writeFileSync(secretFile, SECRET);
    const b = await startBroker({
      anonymous: false,
      config: [
        `jwt_hs256_secret_file ${secretFile}`,
        'jwt_issuer https://auth.example',
        'jwt_audience tern-e2e',
        'jwt_username_claim email',
        'jwt_leeway 60',
      ].join('\n'),
    });
    try {
      const base = { iss: 'https://auth.example', aud: ['other', 'tern-e2e'], email: 'i@x', exp: now() - 30 };
      // Expired 30 s ago, within the 60 s leeway; username from "email".
      assert.equal(await connack(b.port, 5, { username: 'i@x', password: hs256(base) }), 0);
      assert.equal(await connack(b.port, 5, { username: 'i@x', password: hs256({ ...base, exp: now() - 90 }) }), 0x86);
      assert.equal(await connack(b.port, 5, { username: 'i@x', password: hs256({ ...base, iss: 'https://evil.example' }) }), 0x86);
      assert.equal(await connack(b.port, 5, { username: 'i@x', password: hs256({ ...base, aud: 'tern' }) }), 0x86);
      assert.equal(await connack(b.port, 5, { username: 'i@x', password: hs256({ ...base, email: undefined, sub: 'i@x' }) }), 0x86);
      // RS256 is not configured here.
      assert.equal(await connack(b.port, 5, { username: 'i@x', password: rs256(base) }), 0x86);
    } finally {
      await b.stop();
    }
  });
});

// A web page holds no secret: it gets a short-lived token (here minted by
// the test, as a login service would) and connects with it from the
// browser. Chromium is driven as in browser.test.mjs.
describe('JWT from a browser (Chromium + MQTT.js over WebSocket)', { skip: !TERN && 'tern feature' }, () => {
  const HERE = path.dirname(fileURLToPath(import.meta.url));
  const BUNDLE = path.resolve(HERE, '../../node_modules/mqtt/dist/mqtt.min.js');
  let broker; let server; let context; let origin;

  before(async () => {
    const secretFile = path.join(dir, 'browser.secret');
    writeFileSync(secretFile, SECRET);
    broker = await startBroker({ anonymous: false, config: `jwt_hs256_secret_file ${secretFile}` });
    server = http.createServer((req, res) => {
      if (req.url === '/mqtt.min.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(readFileSync(BUNDLE));
      } else if (req.url === '/') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script src="/mqtt.min.js"></script>');
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${server.address().port}`;
    context = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      timeout: 30000,
    });
  });
  after(async () => {
    try {
      if (context) await within(context.close(), 15000, 'chromium close');
    } finally {
      if (server) { server.closeAllConnections(); await new Promise((r) => server.close(r)); }
      if (broker) await broker.stop();
    }
  });

  // In the page: connects with the token (v5, empty username), subscribes
  // to the filters, publishes one message to `pubTopic`, and reports the
  // CONNACK, the SUBACK codes, the messages and a DISCONNECT that comes
  // within `waitMs`.
  function run(page, url, token, filters, pubTopic, waitMs) {
    return page.evaluate(([url, token, filters, pubTopic, waitMs]) => new Promise((resolve) => {
      const out = { messages: [], disconnect: null, closed: false };
      const c = window.mqtt.connect(url, {
        protocolVersion: 5, username: '', password: token, reconnectPeriod: 0, connectTimeout: 5000,
        clientId: `page-${Math.random().toString(16).slice(2, 10)}`,
      });
      c.on('error', (e) => { out.error = e.code; c.end(true); resolve(out); });
      c.on('message', (topic, payload) => out.messages.push(`${topic} ${payload}`));
      c.on('disconnect', (p) => { out.disconnect = p.reasonCode; });
      c.on('close', () => { out.closed = true; });
      c.on('connect', (ack) => {
        out.connack = ack.reasonCode;
        // One SUBSCRIBE per filter, so a refused one does not hide the
        // others' codes (MQTT.js reports a refusal as an error).
        out.suback = [];
        const next = (i) => {
          if (i === filters.length) {
            c.publish(pubTopic, 'from the page', { qos: 1 }, (err) => { out.puberr = err ? String(err) : null; });
            setTimeout(() => { c.end(true); resolve(out); }, waitMs);
            return;
          }
          // A refusal comes as an error carrying the SUBACK.
          c.subscribe(filters[i], { qos: 1 }, (err, granted) => {
            out.suback.push(err ? (err.packet?.granted?.[0] ?? String(err)) : granted[0].qos);
            next(i + 1);
          });
        };
        next(0);
      });
    }), [url, token, filters, pubTopic, waitMs]);
  }

  test('a page connects with its token, is held to its topics claim and disconnected when it expires', { timeout: 60000 }, async () => {
    const page = await context.newPage();
    try {
      await page.goto(`${origin}/`, { timeout: 10000 });
      const exp = now() + 3;
      const token = hs256({ sub: 'webuser', exp, acl: { all: ['web/%u/#'] } });
      const out = await within(run(page, broker.wsUrl, token, ['web/webuser/#', '#'], 'web/webuser/hello', 5000), 15000, 'page');
      assert.equal(out.error, undefined);
      assert.equal(out.connack, 0);
      assert.deepEqual(out.suback, [1, 0x87]);
      assert.deepEqual(out.messages, ['web/webuser/hello from the page']);
      assert.equal(out.disconnect, 0xa0, 'no DISCONNECT 0xA0 when the token expired');
      assert.ok(out.closed);
      // A tampered token (another sub, the old signature) is refused.
      const [h, , sig] = token.split('.');
      const forged = `${h}.${b64(JSON.stringify({ sub: 'admin', exp: now() + 3600 }))}.${sig}`;
      const bad = await within(run(page, broker.wsUrl, forged, ['#'], 'x', 0), 15000, 'page');
      assert.equal(bad.error, 0x86);
    } finally {
      await page.close();
    }
  });
});
