// Authentication and ACLs over every transport (issue 7): real MQTT.js
// clients (MQTT 5) against one ternd with four listeners, MQTT over TCP,
// MQTT over TLS (mqtts), WebSocket (ws) and WebSocket over TLS (wss), and
// the same compact table of cases on each: good and bad passwords,
// anonymous refused, ACL read/write/deny, %c and %u patterns, '+' and '#'
// in usernames and client ids. Then, per transport, an ACL reload while a
// client is connected: its publish becomes PUBACK 0x87 and its
// subscription stops receiving. Then per_listener_settings true: two
// pairs of listeners with different password files, ACLs and
// allow_anonymous, where the same client gets different answers, and a
// reload that fails on one listener's file changes nothing on any. Last,
// wills re-checked at publication: a will allowed at CONNECT but refused
// by an ACL reloaded before it fires is not delivered (immediate and
// delayed wills), and one still allowed is.
//
// "Allowed" is observed, not inferred: a publish is allowed when a
// subscriber with full rights receives it, a subscription when the
// subscriber receives what an administrator publishes.
//
// tern only (per_listener_settings, SUBACK on subscribe and the will
// re-check are tern's behaviour; security_diff.test.mjs compares the
// decisions both brokers share).
import assert from 'node:assert/strict';
import { pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { freePort, KIND, startBroker } from './lib/broker.mjs';
import { makeCerts } from './lib/certs.mjs';
import { sleep, uid, within } from './lib/util.mjs';

const TERN = KIND === 'tern';
const TRANSPORTS = ['tcp', 'mqtts', 'ws', 'wss'];
// How long to wait for a message that must not come; allowed messages
// arrive in a few milliseconds on loopback.
const QUIET_MS = 600;

const certs = TERN ? makeCerts() : null;
const CA = certs ? certs.read(certs.ca.cert) : null;
// Password and ACL files of this file's brokers.
const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-auth-'));

// A Mosquitto $7$ line (PBKDF2-SHA512, 101 rounds).
function passwdLine(user, password) {
  const salt = randomBytes(12);
  const dk = pbkdf2Sync(password, salt, 101, 64, 'sha512');
  return `${user}:$7$101$${salt.toString('base64')}$${dk.toString('base64')}\n`;
}

const passwdFile = (users) => Object.entries(users).map(([u, p]) => passwdLine(u, p)).join('');

// n distinct free ports, and two more for the harness's own listeners.
async function ports(n) {
  const out = [];
  while (out.length < n + 2) {
    const p = await freePort();
    if (!out.includes(p)) out.push(p);
  }
  return { mine: out.slice(0, n), harness: { port: out[n], wsPort: out[n + 1] } };
}

function listenerLines(port, transport) {
  const l = [`listener ${port} 127.0.0.1`];
  if (transport === 'ws' || transport === 'wss') l.push('protocol websockets');
  if (transport === 'mqtts' || transport === 'wss') l.push(`certfile ${certs.server.cert}`, `keyfile ${certs.server.key}`);
  return l;
}

function urlOf(port, transport) {
  const scheme = { tcp: 'mqtt', mqtts: 'mqtts', ws: 'ws', wss: 'wss' }[transport];
  return `${scheme}://127.0.0.1:${port}${transport === 'ws' || transport === 'wss' ? '/mqtt' : ''}`;
}

// Connects with MQTT 5 over `transport`; resolves to the client or to
// { refused: CONNACK reason code }.
async function open(urls, transport, { user, password, id, will, properties } = {}) {
  const opts = {
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 3000,
    clientId: id ?? uid('c'),
    ...(transport === 'mqtts' || transport === 'wss' ? { ca: CA, rejectUnauthorized: true } : {}),
  };
  if (will) opts.will = { qos: 1, retain: false, payload: 'gone', ...will };
  if (properties) opts.properties = properties;
  if (user !== undefined) opts.username = user;
  if (password !== undefined) opts.password = password;
  try {
    const c = await within(mqtt.connectAsync(urls[transport], opts, false), 4000, `connect ${urls[transport]}`);
    c.on('error', () => {});
    return c;
  } catch (err) {
    if (/timeout after/.test(err.message)) throw err;
    assert.equal(typeof err.code, 'number', `connect ${urls[transport]} failed without a CONNACK: ${err.message}`);
    return { refused: err.code };
  }
}

const close = (...cs) => Promise.all(cs.filter((c) => c?.endAsync).map((c) => within(c.endAsync(true), 2000, 'end').catch(() => {})));

// Resolves true if a message on `topic` arrives within ms.
function arrives(client, topic, ms = QUIET_MS) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { client.removeListener('message', on); resolve(false); }, ms);
    function on(t) {
      if (t === topic) { clearTimeout(timer); client.removeListener('message', on); resolve(true); }
    }
    client.on('message', on);
  });
}

// SUBACK reason code of one filter (MQTT.js rejects a v5 failure).
async function subscribe(client, filter, qos = 1) {
  try {
    const granted = await within(client.subscribeAsync(filter, { qos }), 3000, `subscribe ${filter}`);
    return granted[0].qos;
  } catch (err) {
    const code = err.packet?.granted?.[0] ?? err.packet?.reasonCode;
    if (typeof code !== 'number') throw err;
    return code;
  }
}

// PUBACK reason code of a QoS 1 publish (MQTT.js rejects >= 0x80).
async function publish(client, topic, payload = 'm') {
  try {
    await within(client.publishAsync(topic, payload, { qos: 1 }), 3000, `publish ${topic}`);
    return 0;
  } catch (err) {
    if (typeof err.code !== 'number') throw err;
    return err.code;
  }
}

// Sends SIGHUP and waits for the broker to say how the reload went.
async function reload(broker, want = 'Reloaded configuration') {
  const re = /Reloaded configuration|Reload failed/g;
  const before = (broker.output().match(re) || []).length;
  broker.proc.kill('SIGHUP');
  const deadline = Date.now() + 5000;
  for (;;) {
    const all = broker.output().match(re) || [];
    if (all.length > before) {
      assert.equal(all[before], want, `reload: ${broker.output().slice(-1500)}`);
      return;
    }
    if (Date.now() > deadline) assert.fail(`no reload line after SIGHUP:\n${broker.output().slice(-1500)}`);
    await sleep(20);
  }
}

// ------------------------------------------------ one set, four transports

const USERS = { admin: 'adminpw', alice: 'alicepw', bob: 'bobpw', '+': 'pluspw' };

const ACL = `topic read public/#

user admin
topic readwrite #

user alice
topic readwrite alice/#
topic deny alice/secret/#

user bob
topic read alice/shared/#

pattern readwrite clients/%c/#
pattern read users/%u/#
`;

// The same ACL with alice's rights on alice/live/# withdrawn.
const ACL_RELOADED = ACL.replace('topic deny alice/secret/#', 'topic deny alice/secret/#\ntopic deny alice/live/#');

// Cases: who connects (user/password, client id), what it does, and
// whether it must be allowed. U is replaced by a unique level; `code` is
// the expected CONNACK/SUBACK/PUBACK reason code.
const CASES = [
  { name: 'right password', user: 'alice', act: 'connect', code: 0 },
  { name: 'wrong password', user: 'alice', password: 'nope', act: 'connect', code: 0x86 },
  { name: 'unknown user', user: 'mallory', password: 'x', act: 'connect', code: 0x86 },
  { name: 'username without password', user: 'alice', password: null, act: 'connect', code: 0x86 },
  { name: 'anonymous refused (allow_anonymous false)', act: 'connect', code: 0x87 },
  { name: 'write own tree', user: 'alice', act: 'pub', topic: 'alice/U', code: 0 },
  { name: 'deny wins over readwrite (write)', user: 'alice', act: 'pub', topic: 'alice/secret/U', code: 0x87 },
  { name: 'deny wins over readwrite (read)', user: 'alice', act: 'sub', topic: 'alice/secret/U', code: 0x87 },
  { name: 'read own tree', user: 'alice', act: 'sub', topic: 'alice/U', code: 1 },
  { name: "no write on another's tree", user: 'alice', act: 'pub', topic: 'bob/U', code: 0x87 },
  { name: 'read-only grant reads', user: 'bob', act: 'sub', topic: 'alice/shared/U', code: 1 },
  { name: 'read-only grant does not write', user: 'bob', act: 'pub', topic: 'alice/shared/U', code: 0x87 },
  { name: 'anonymous rules do not apply to users', user: 'bob', act: 'sub', topic: 'public/U', code: 0x87 },
  { name: '%c pattern with its own client id', user: 'bob', id: 'cid-U', act: 'pub', topic: 'clients/cid-U/x', code: 0 },
  { name: "%c pattern does not reach another id's tree", user: 'bob', id: 'cid-U', act: 'pub', topic: 'clients/other-U/x', code: 0x87 },
  { name: '%u pattern reads own tree', user: 'bob', act: 'sub', topic: 'users/bob/U', code: 1 },
  { name: "%u pattern does not reach another user's tree", user: 'bob', act: 'sub', topic: 'users/alice/U', code: 0x87 },
  { name: "client id '#' gains nothing from %c", user: 'bob', id: '#', act: 'pub', topic: 'clients/victim-U/x', code: 0x87 },
  { name: "client id '+' gains nothing from %c", user: 'bob', id: '+', act: 'sub', topic: 'clients/victim-U/x', code: 0x87 },
  { name: "username '+' connects with its password", user: '+', act: 'connect', code: 0 },
  { name: "username '+' gains nothing from %u", user: '+', act: 'sub', topic: 'users/alice/U', code: 0x87 },
  { name: '$SYS is never writable, even with readwrite #', user: 'admin', act: 'pub', topic: '$SYS/U', code: 0x87 },
];

// Runs one case over one transport; returns a description of what
// differs from the expectation, or null.
async function runCase(urls, transport, k) {
  const u = uid('x');
  const topic = k.topic?.replaceAll('U', u);
  const id = k.id?.replaceAll('U', u);
  const password = k.password === null ? undefined : (k.password ?? USERS[k.user]);
  const client = await open(urls, transport, { user: k.user, password, id });
  const got = (what, code, allowed) => {
    const okCode = code === k.code;
    const okAllowed = allowed === undefined || allowed === (k.code < 0x80);
    return okCode && okAllowed ? null : `${transport}: ${k.name}: ${what} 0x${Number(code).toString(16)}${allowed === undefined ? '' : allowed ? ', delivered' : ', not delivered'} (expected 0x${k.code.toString(16)})`;
  };
  if (k.act === 'connect') {
    await close(client);
    return got('CONNACK', client.refused ?? 0);
  }
  if (client.refused) return got('CONNACK', client.refused);
  // The administrator watches or publishes over TCP, the fixed point.
  const admin = await open(urls, 'tcp', { user: 'admin', password: USERS.admin });
  try {
    assert.ok(!admin.refused, `admin refused: 0x${admin.refused?.toString(16)}`);
    if (k.act === 'sub') {
      const code = await subscribe(client, topic);
      const seen = arrives(client, topic);
      assert.equal(await publish(admin, topic), 0, 'admin publish');
      return got('SUBACK', code, await seen);
    }
    const watched = topic.startsWith('$SYS') ? '$SYS/#' : topic;
    if (watched !== '$SYS/#') assert.equal(await subscribe(admin, watched), 1, 'admin subscribe');
    const seen = arrives(admin, topic);
    const code = await publish(client, topic);
    return got('PUBACK', code, watched === '$SYS/#' ? undefined : await seen);
  } finally {
    await close(client, admin);
  }
}

describe('auth over every transport (one set of settings)', { skip: !TERN && 'tern only' }, () => {
  let broker; let urls; let aclFile;

  before(async () => {
    const { mine: [mqtts, wss], harness } = await ports(2);
    const pw = path.join(dir, 'auth.passwd');
    aclFile = path.join(dir, 'auth.acl');
    writeFileSync(pw, passwdFile(USERS));
    writeFileSync(aclFile, ACL);
    broker = await startBroker({
      ...harness,
      anonymous: false,
      config: [
        `password_file ${pw}`,
        `acl_file ${aclFile}`,
        ...listenerLines(mqtts, 'mqtts'),
        ...listenerLines(wss, 'wss'),
      ].join('\n'),
    });
    urls = { tcp: broker.tcpUrl, ws: broker.wsUrl, mqtts: urlOf(mqtts, 'mqtts'), wss: urlOf(wss, 'wss') };
  });

  after(async () => { await broker?.stop(); });

  for (const transport of TRANSPORTS) {
    test(`every case decides as expected over ${transport}`, async () => {
      const bad = [];
      // A few at a time: each case has its own topics and client ids.
      let next = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < CASES.length) {
          const k = CASES[next++];
          const r = await runCase(urls, transport, k);
          if (r) bad.push(r);
        }
      }));
      assert.deepEqual(bad, [], bad.join('\n'));
    });
  }

  for (const transport of TRANSPORTS) {
    test(`a reload changes a connected client's access over ${transport}`, async () => {
      const u = uid('live');
      const alice = await open(urls, transport, { user: 'alice', password: USERS.alice });
      const admin = await open(urls, 'tcp', { user: 'admin', password: USERS.admin });
      try {
        assert.ok(!alice.refused && !admin.refused, 'connect');
        assert.equal(await subscribe(alice, `alice/live/${u}/#`), 1, 'alice subscribes before the reload');
        assert.equal(await subscribe(admin, `alice/live/${u}/#`), 1, 'admin subscribe');
        // Before: both directions work.
        let seen = arrives(admin, `alice/live/${u}/a`);
        assert.equal(await publish(alice, `alice/live/${u}/a`), 0, 'alice publishes before the reload');
        assert.ok(await seen, 'admin got alice\'s publish before the reload');
        seen = arrives(alice, `alice/live/${u}/b`);
        assert.equal(await publish(admin, `alice/live/${u}/b`), 0);
        assert.ok(await seen, 'alice received before the reload');

        writeFileSync(aclFile, ACL_RELOADED);
        await reload(broker);

        // After, on the same connection: write refused, reads stop.
        seen = arrives(admin, `alice/live/${u}/c`);
        assert.equal(await publish(alice, `alice/live/${u}/c`), 0x87, 'alice\'s publish after the reload');
        assert.equal(await seen, false, 'a refused publish was delivered');
        seen = arrives(alice, `alice/live/${u}/d`);
        assert.equal(await publish(admin, `alice/live/${u}/d`), 0);
        assert.equal(await seen, false, 'alice still receives through her old subscription');
        // Her other rights are untouched.
        seen = arrives(admin, `alice/live2-${u}`);
        assert.equal(await subscribe(admin, `alice/live2-${u}`), 1);
        assert.equal(await publish(alice, `alice/live2-${u}`), 0, 'alice/# still writable');
        assert.ok(await seen);
      } finally {
        await close(alice, admin);
        writeFileSync(aclFile, ACL);
        await reload(broker);
      }
    });
  }
});

// ------------------------------------------------ per_listener_settings true

describe('per_listener_settings true', { skip: !TERN && 'tern only' }, () => {
  let broker; let urls; let files;

  // Listeners tcp and mqtts share set A, ws and wss set B; the harness's
  // own two listeners get empty sets (anonymous refused, no users).
  const A = { users: { alice: 'alicepw', admin: 'adminpw' }, acl: 'user alice\ntopic readwrite alice/#\nuser admin\ntopic readwrite #\n' };
  const B = { users: { alice: 'alice-b-pw', carol: 'carolpw' }, acl: 'topic read alice/#\nuser alice\ntopic read alice/#\nuser carol\ntopic readwrite carol/#\n' };

  before(async () => {
    const { mine: [tcp, mqtts, ws, wss], harness } = await ports(4);
    files = {};
    for (const [name, set] of Object.entries({ A, B })) {
      files[name] = { pw: path.join(dir, `${name}.passwd`), acl: path.join(dir, `${name}.acl`) };
      writeFileSync(files[name].pw, passwdFile(set.users));
      writeFileSync(files[name].acl, set.acl);
    }
    const setA = [`password_file ${files.A.pw}`, `acl_file ${files.A.acl}`, 'allow_anonymous false'];
    const setB = [`password_file ${files.B.pw}`, `acl_file ${files.B.acl}`, 'allow_anonymous true'];
    broker = await startBroker({
      ...harness,
      anonymous: false,
      config: [
        'per_listener_settings true',
        ...listenerLines(tcp, 'tcp'), ...setA,
        ...listenerLines(mqtts, 'mqtts'), ...setA,
        ...listenerLines(ws, 'ws'), ...setB,
        ...listenerLines(wss, 'wss'), ...setB,
      ].join('\n'),
    });
    urls = { tcp: urlOf(tcp, 'tcp'), mqtts: urlOf(mqtts, 'mqtts'), ws: urlOf(ws, 'ws'), wss: urlOf(wss, 'wss'), harness: broker.tcpUrl };
  });

  after(async () => { await broker?.stop(); });

  // CONNACK code of one attempt.
  async function connack(transport, who) {
    const c = await open(urls, transport, who);
    await close(c);
    return c.refused ?? 0;
  }

  test('the same credentials get each listener\'s answer', async () => {
    const rows = [];
    for (const t of TRANSPORTS) {
      const inA = t === 'tcp' || t === 'mqtts';
      rows.push([t, 'alice/alicepw', await connack(t, { user: 'alice', password: 'alicepw' }), inA ? 0 : 0x86]);
      rows.push([t, 'alice/alice-b-pw', await connack(t, { user: 'alice', password: 'alice-b-pw' }), inA ? 0x86 : 0]);
      rows.push([t, 'carol/carolpw', await connack(t, { user: 'carol', password: 'carolpw' }), inA ? 0x86 : 0]);
      rows.push([t, 'anonymous', await connack(t, {}), inA ? 0x87 : 0]);
    }
    // The harness's listener has a set of its own, empty: nothing inherited.
    const harness = await open({ tcp: urls.harness }, 'tcp', {});
    await close(harness);
    rows.push(['harness tcp', 'anonymous', harness.refused ?? 0, 0x87]);
    const bad = rows.filter(([, , got, want]) => got !== want).map(([t, who, got, want]) => `${t} ${who}: CONNACK 0x${got.toString(16)}, expected 0x${want.toString(16)}`);
    assert.deepEqual(bad, [], bad.join('\n'));
  });

  test('each listener applies its own ACL, to publishes and to deliveries', async () => {
    const u = uid('pl');
    const topic = `alice/${u}`;
    // Observers: admin on A (readwrite #), anonymous on B (read alice/#).
    const adminA = await open(urls, 'tcp', { user: 'admin', password: 'adminpw' });
    const anonB = await open(urls, 'wss', {});
    const aliceA = await open(urls, 'mqtts', { user: 'alice', password: 'alicepw' });
    const aliceB = await open(urls, 'ws', { user: 'alice', password: 'alice-b-pw' });
    try {
      for (const c of [adminA, anonB, aliceA, aliceB]) assert.ok(!c.refused, `connect refused 0x${c.refused?.toString(16)}`);
      assert.equal(await subscribe(adminA, `${topic}/#`), 1);
      assert.equal(await subscribe(anonB, `${topic}/#`), 1, 'B lets anonymous read alice/#');
      assert.equal(await subscribe(aliceB, `${topic}/#`), 1);
      // alice on A may write alice/#: every subscriber gets it, on both
      // listeners (read checks use each subscriber's listener).
      const seen = [arrives(adminA, `${topic}/a`), arrives(anonB, `${topic}/a`), arrives(aliceB, `${topic}/a`)];
      assert.equal(await publish(aliceA, `${topic}/a`), 0, 'alice on A writes alice/#');
      assert.deepEqual(await Promise.all(seen), [true, true, true]);
      // The same user on B has read only.
      const none = arrives(adminA, `${topic}/b`);
      assert.equal(await publish(aliceB, `${topic}/b`), 0x87, 'alice on B may not write');
      assert.equal(await none, false);
      // Anonymous on B may not write, and cannot read outside alice/#.
      assert.equal(await publish(anonB, `${topic}/c`), 0x87);
      assert.equal(await subscribe(anonB, `carol/${u}`), 0x87);
    } finally {
      await close(adminA, anonB, aliceA, aliceB);
    }
  });

  test('a reload with one broken listener file changes nothing; a good one applies to its listeners only', async () => {
    // Break B's password file: the whole reload is refused (fail closed),
    // so A's and B's old users still work.
    writeFileSync(files.B.pw, 'alice:$7$broken\n');
    await reload(broker, 'Reload failed');
    assert.match(broker.output(), /Reload failed: listener \d+: .*B\.passwd/);
    assert.equal(await connack('ws', { user: 'alice', password: 'alice-b-pw' }), 0, 'B kept its old users');
    assert.equal(await connack('tcp', { user: 'alice', password: 'alicepw' }), 0, 'A kept its old users');
    // A good file with a new password for alice on B.
    writeFileSync(files.B.pw, passwdFile({ alice: 'alice-b-new', carol: 'carolpw' }));
    await reload(broker);
    assert.equal(await connack('wss', { user: 'alice', password: 'alice-b-new' }), 0, 'B has the new password');
    assert.equal(await connack('ws', { user: 'alice', password: 'alice-b-pw' }), 0x86, 'B dropped the old one');
    assert.equal(await connack('mqtts', { user: 'alice', password: 'alicepw' }), 0, 'A unchanged');
    assert.equal(await connack('tcp', { user: 'alice', password: 'alice-b-new' }), 0x86, 'A unchanged');
  });
});

// ------------------------------------------------ wills, checked again when published

describe('wills re-checked against the ACL when published', { skip: !TERN && 'tern only' }, () => {
  let broker; let aclFile;

  // Anonymous clients (no password file): everyone reads wills/# and
  // $SYS; a client may write wills/<its id>/#.
  const ALLOW = 'topic read wills/#\ntopic read $SYS/#\npattern write wills/%c/#\n';
  const DENY = 'topic read wills/#\ntopic read $SYS/#\n';

  before(async () => {
    aclFile = path.join(dir, 'wills.acl');
    writeFileSync(aclFile, ALLOW);
    broker = await startBroker({ config: `acl_file ${aclFile}\nsys_interval 1` });
  });

  after(async () => { await broker?.stop(); });

  const urls = () => ({ tcp: broker.tcpUrl });

  // The broker's count of dropped messages ($SYS, published every second).
  async function dropped(observer) {
    const t = '$SYS/broker/publish/messages/dropped';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${t}`)), 4000);
      const on = (topic, payload) => {
        if (topic !== t) return;
        clearTimeout(timer);
        observer.removeListener('message', on);
        resolve(Number(payload.toString()));
      };
      observer.on('message', on);
      observer.unsubscribeAsync(t).then(() => observer.subscribeAsync(t)).catch(reject);
    });
  }

  // Connects a client with a will, reloads `acl` and drops the
  // connection without DISCONNECT; resolves whether the will came within
  // `wait` ms, and the drop counter's increase. With `delay` (seconds,
  // MQTT 5 Will Delay Interval, and a session that outlives it, or the
  // will would go when the session ends) the reload comes after the drop,
  // while the will waits.
  async function scenario(acl, { delay = 0, wait = QUIET_MS + 400 } = {}) {
    const id = uid('w');
    const topic = `wills/${id}/gone`;
    const observer = await open(urls(), 'tcp', {});
    const client = await open(urls(), 'tcp', {
      id,
      will: { topic, ...(delay ? { properties: { willDelayInterval: delay } } : {}) },
      ...(delay ? { properties: { sessionExpiryInterval: 30 } } : {}),
    });
    try {
      assert.ok(!observer.refused, 'observer connect');
      assert.ok(!client.refused, `a will the ACL allows is accepted at CONNECT (got 0x${client.refused?.toString(16)})`);
      assert.equal(await subscribe(observer, 'wills/#'), 1);
      const before = await dropped(observer);
      const seen = arrives(observer, topic, wait + delay * 1000);
      if (!delay) {
        writeFileSync(aclFile, acl);
        await reload(broker);
      }
      client.stream.destroy();
      if (delay) {
        writeFileSync(aclFile, acl);
        await reload(broker);
      }
      const came = await seen;
      // The counter is published every second; wait for a fresh value.
      await sleep(1100);
      return { came, drops: (await dropped(observer)) - before };
    } finally {
      await close(client, observer);
      writeFileSync(aclFile, ALLOW);
      await reload(broker);
    }
  }

  test('refused by the ACL reloaded after CONNECT: not delivered, counted as dropped', async () => {
    const r = await scenario(DENY);
    assert.equal(r.came, false, 'the will was delivered although the ACL no longer lets its client write there');
    assert.ok(r.drops >= 1, `dropped counter rose by ${r.drops}`);
  });

  test('still allowed after a reload: delivered', async () => {
    const r = await scenario(ALLOW);
    assert.equal(r.came, true, 'the will was not delivered');
  });

  test('a delayed will refused by a reload during its delay: not delivered', async () => {
    const r = await scenario(DENY, { delay: 1 });
    assert.equal(r.came, false, 'the delayed will was delivered');
    assert.ok(r.drops >= 1, `dropped counter rose by ${r.drops}`);
  });

  test('a delayed will still allowed: delivered after its delay', async () => {
    const r = await scenario(ALLOW, { delay: 1 });
    assert.equal(r.came, true, 'the delayed will was not delivered');
  });
});
