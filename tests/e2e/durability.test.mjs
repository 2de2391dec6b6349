// Durability (issue 6, DESIGN.md §6): with `persistence true` and the
// default `persistence_sync always`, a PUBACK/PUBREC means the message is
// on disk. Each test starts a real ternd on a data directory, stops it with
// SIGTERM or kills it with SIGKILL at a random moment, starts it again on
// the same ports and directory, and checks what the clients get back.
// tern only: Mosquitto saves its database every autosave_interval.
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, truncateSync, openSync, writeSync, closeSync, statfsSync, rmSync } from 'node:fs';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { startBroker, freePort, KIND, THREADS } from './lib/broker.mjs';
import { rawConnect, enc } from './lib/raw.mjs';
import { connect, closeAll, uid, sleep, within } from './lib/util.mjs';

const skip = KIND !== 'tern' ? 'tern only (Mosquitto saves periodically)' : false;

function dataDir() {
  return mkdtempSync(path.join(os.tmpdir(), 'tern-dur-'));
}

function durableConfig(dir, extra = '') {
  return `persistence true\npersistence_location ${dir}\n${extra}`;
}

// Starts (or restarts, with `on` = the previous broker) a durable broker.
function start(dir, on, extra = '') {
  return startBroker({ config: durableConfig(dir, extra), port: on?.port, wsPort: on?.wsPort });
}

// A persistent subscriber session (MQTT 3.1.1, clean session 0).
function sub(clientId) {
  return { version: 4, clientId, clean: false };
}

// Receives PUBLISH packets until `quiet` ms pass without one (bounded by
// `limit` ms overall), completing every QoS 1/2 flow.
async function drain(c, { quiet = 800, limit = 30000 } = {}) {
  const got = [];
  const end = Date.now() + limit;
  while (Date.now() < end) {
    const p = await c.expectOrClosed(null, { timeout: quiet }).catch(() => null);
    if (!p) break;
    if (p.type === 'pubrel') { c.send(enc.pubcomp(p.id)); continue; }
    if (p.type !== 'publish') continue;
    got.push(p);
    if (p.qos === 1) c.send(enc.puback(p.id));
    if (p.qos === 2) c.send(enc.pubrec(p.id));
  }
  return got;
}

// Publishes n QoS 1 and n QoS 2 messages (interleaved, payload
// "tag:seq", odd seq = QoS 2) with up to 64 in flight, until done or the
// connection dies. Returns the sequence numbers acknowledged (PUBACK for
// QoS 1, PUBREC for QoS 2: the points where the broker takes over).
// c is connected already, so a kill can only land while publishing.
async function publishRun(c, topic, tag, n) {
  const acked = new Set();
  const byId = new Map();
  const total = 2 * n;
  let next = 0;
  let inflight = 0;
  let pid = 0;
  const fill = () => {
    while (inflight < 64 && next < total) {
      const seq = next++;
      const qos = seq % 2 ? 2 : 1;
      pid = (pid % 65535) + 1;
      byId.set(pid, seq);
      c.publish({ topic: `${topic}/q${qos}`, qos, id: pid, payload: `${tag}:${seq}` });
      inflight++;
    }
  };
  fill();
  let done = 0;
  while (done < total) {
    const p = await c.next({ timeout: 8000 }).catch(() => null);
    if (!p) break;
    if (p.type === 'puback') { acked.add(byId.get(p.id)); inflight--; done++; }
    if (p.type === 'pubrec') { acked.add(byId.get(p.id)); c.send(enc.pubrel(p.id)); }
    if (p.type === 'pubcomp') { inflight--; done++; }
    fill();
  }
  c.destroy();
  return { acked, sent: next };
}

// Checks one publisher's messages as a subscriber got them: every acked
// seq present, QoS 2 at most once, first deliveries in publishing order.
function checkDelivered(msgs, tag, acked) {
  const seen = new Map();
  const order = [];
  for (const m of msgs) {
    const [t, s] = m.payload.toString().split(':');
    if (t !== tag) continue;
    const seq = Number(s);
    if (!seen.has(seq)) order.push(seq);
    seen.set(seq, (seen.get(seq) || 0) + 1);
  }
  const lost = [...acked].filter((s) => !seen.has(s));
  assert.deepEqual(lost, [], `${tag}: ${lost.length} acknowledged messages lost (of ${acked.size})`);
  const twice = [...seen].filter(([s, k]) => s % 2 === 1 && k > 1).map(([s]) => s);
  assert.deepEqual(twice, [], `${tag}: QoS 2 messages delivered more than once`);
  for (let i = 1; i < order.length; i++) {
    assert.ok(order[i] > order[i - 1], `${tag}: out of order: ${order[i - 1]} then ${order[i]}`);
  }
}

describe('durability', { skip }, () => {
  let ternd;
  before(() => { ternd = process.env.TERND || 'build/ternd'; });

  test('restart and crash: every acknowledged message is delivered after SIGKILL (several rounds) and SIGTERM', async () => {
    const dir = dataDir();
    const T = uid('dur');
    const id = uid('sub');
    let b = await start(dir);
    try {
      let s = await rawConnect(b.port, sub(id));
      s.subscribe(1, [[`${T}/#`, 2]]);
      await s.expect('suback');
      s.destroy();
      const r = await rawConnect(b.port, { version: 4, clientId: uid('r') });
      r.publish({ topic: `${T}-ret`, qos: 1, id: 1, retain: true, payload: 'kept' });
      await r.expect('puback');
      r.destroy();

      const rounds = ['kill', 'kill', 'kill', 'term'];
      for (let i = 0; i < rounds.length; i++) {
        const tag = `r${i}`;
        const pubc = await rawConnect(b.port, { version: 4, clientId: uid('pub') });
        const run = publishRun(pubc, T, tag, 300);
        if (rounds[i] === 'kill') {
          await sleep(5 + Math.floor(Math.random() * 150));
          await b.kill();
        }
        const { acked, sent } = await run;
        if (rounds[i] === 'term') await b.stop();
        else await b.kill();
        b = await start(dir, b);
        s = await rawConnect(b.port, sub(id));
        assert.equal(s.connack.sessionPresent, true, `round ${i}: session present`);
        const got = await drain(s);
        s.disconnect();
        checkDelivered(got, tag, acked);
        assert.ok(sent > 0);
        if (rounds[i] === 'term') assert.equal(acked.size, 600, 'every message acked without a crash');
      }
      // Retained messages and subscriptions survived all of it.
      const c = await connect(b, { url: b.tcpUrl });
      try {
        await c.subscribeAsync(`${T}-ret`, { qos: 1 });
        const [m] = await c.waitMessages(1);
        assert.equal(m.payload, 'kept');
        assert.equal(m.packet.retain, true);
      } finally {
        await closeAll(c);
      }
    } finally {
      await b.stop();
    }
  });

  test('inflight at the crash comes back with DUP and the same packet ids; PUBREL resent for QoS 2 past PUBREC', async () => {
    const dir = dataDir();
    const T = uid('infl');
    const id = uid('sub');
    let b = await start(dir);
    try {
      let s = await rawConnect(b.port, sub(id));
      s.subscribe(1, [[`${T}/#`, 2]]);
      await s.expect('suback');
      const p = await rawConnect(b.port, { version: 4, clientId: uid('pub') });
      p.publish({ topic: `${T}/a`, qos: 1, id: 1, payload: 'one' });
      await p.expect('puback');
      p.publish({ topic: `${T}/b`, qos: 2, id: 2, payload: 'two' });
      await p.expect('pubrec');
      p.publish({ topic: `${T}/c`, qos: 2, id: 3, payload: 'three' });
      await p.expect('pubrec');
      p.destroy();
      // Received, not acknowledged; "three" gets PUBREC (past PUBREC).
      const first = [await s.expect('publish'), await s.expect('publish'), await s.expect('publish')];
      assert.deepEqual(first.map((m) => m.payload.toString()), ['one', 'two', 'three']);
      assert.ok(first.every((m) => !m.dup));
      s.send(enc.pubrec(first[2].id));
      await s.expect('pubrel');
      // Let the store thread commit the inflight state, then crash.
      await sleep(300);
      await b.kill();
      s.destroy();
      b = await start(dir, b);
      s = await rawConnect(b.port, sub(id));
      assert.equal(s.connack.sessionPresent, true);
      const again = [await s.expect('publish'), await s.expect('publish')];
      assert.deepEqual(again.map((m) => m.payload.toString()), ['one', 'two']);
      assert.deepEqual(again.map((m) => m.dup), [true, true]);
      assert.deepEqual(again.map((m) => m.id), [first[0].id, first[1].id]);
      const rel = await s.expect('pubrel');
      assert.equal(rel.id, first[2].id);
      s.send(enc.puback(again[0].id));
      s.send(enc.pubrec(again[1].id));
      await s.expect('pubrel', { match: (x) => x.id === again[1].id });
      s.send(enc.pubcomp(again[1].id));
      s.send(enc.pubcomp(first[2].id));
      assert.deepEqual(await s.collect('publish', 300), []);
      s.disconnect();
    } finally {
      await b.stop();
    }
  });

  test('store full: QoS 1 and durable SUBSCRIBEs are not acknowledged, QoS 0 keeps flowing, acks resume when space returns, nothing acknowledged is lost', async () => {
    const dir = dataDir();
    const T = uid('full');
    const id = uid('sub');
    const limit = 'persistence_max_bytes 262144\nsys_interval 1';
    let b = await start(dir, null, limit);
    let zero;
    try {
      let s = await rawConnect(b.port, sub(id));
      s.subscribe(1, [[`${T}/q`, 1]]);
      await s.expect('suback');
      s.destroy();
      zero = await connect(b, { url: b.tcpUrl });
      await zero.subscribeAsync([`${T}/zero`, '$SYS/broker/store/errors'], { qos: 0 });

      const p = await rawConnect(b.port, { version: 4, clientId: uid('pub') });
      const big = 'x'.repeat(8192);
      const N = 60; // ~480 KiB of payload: well above the limit
      const send = (i) => p.publish({ topic: `${T}/q`, qos: 1, id: i, payload: `${i}:${big}` });
      // One at a time until the store is full and an ack does not come.
      let full = 0;
      for (let i = 1; i <= N && !full; i++) {
        send(i);
        const a = await p.expect('puback', { timeout: 2000 }).catch(() => null);
        if (a) assert.equal(a.id, i);
        else full = i;
      }
      assert.ok(full > 1, `the store filled up at message ${full} of ${N}`);
      for (let i = full + 1; i <= N; i++) send(i);
      assert.deepEqual(await p.collect('puback', 700), [], 'no acks while the store is full');
      // A durable session's SUBACK promises the subscription is stored.
      const late = await rawConnect(b.port, sub(uid('late')));
      late.subscribe(7, [[`${T}/late`, 1]]);
      assert.deepEqual(await late.collect('suback', 300), [], 'no SUBACK while the store is full');

      const q0 = await rawConnect(b.port, { version: 4, clientId: uid('q0') });
      q0.publish({ topic: `${T}/zero`, qos: 0, payload: 'still here' });
      const [m0] = await zero.waitMessages(1, { filter: (m) => m.topic === `${T}/zero` });
      assert.equal(m0.payload, 'still here');
      q0.destroy();
      const errs = await zero.waitMessages(1, { timeout: 4000, filter: (m) => m.topic === '$SYS/broker/store/errors' && Number(m.payload) > 0 });
      assert.ok(Number(errs[0].payload) > 0);

      // The operator frees space (here: lifts the limit) and reloads.
      const conf = path.join(b.dir, 'broker.conf');
      writeFileSync(conf, readFileSync(conf, 'utf8').replace('persistence_max_bytes 262144', 'persistence_max_bytes 0'));
      b.proc.kill('SIGHUP');
      const held = await within((async () => {
        const all = [];
        while (all.length < N - full + 1) all.push(await p.expect('puback', { timeout: 5000 }));
        return all;
      })(), 8000, 'the held acknowledgements');
      held.forEach((a, i) => assert.equal(a.id, full + i));
      p.destroy();
      assert.equal((await late.expect('suback')).id, 7);
      late.destroy();

      // Crash right away: all N were acknowledged, all N must be there.
      await b.kill();
      b = await start(dir, b, limit.replace('262144', '0'));
      s = await rawConnect(b.port, sub(id));
      const got = await drain(s);
      s.disconnect();
      const seqs = [...new Set(got.map((m) => Number(m.payload.toString().split(':')[0])))];
      assert.deepEqual(seqs, Array.from({ length: N }, (_, i) => i + 1));
    } finally {
      await closeAll(zero);
      await b.stop();
    }
  });

  // A real full disk: a small tmpfs (root only; skipped where mount is
  // not allowed, the size-limit test above covers the same path).
  test('disk full (tmpfs): nothing acknowledged is lost, QoS 0 flows, acks resume when space is freed', async (t) => {
    const dir = dataDir();
    const m = process.getuid?.() === 0
      ? spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir], { encoding: 'utf8' })
      : { status: 1 };
    if (m.status !== 0) {
      t.skip('needs root and tmpfs mounts');
      return;
    }
    const T = uid('disk');
    const id = uid('sub');
    let b = await start(dir);
    let zero;
    try {
      let s = await rawConnect(b.port, sub(id));
      s.subscribe(1, [[`${T}/q`, 1]]);
      await s.expect('suback');
      s.destroy();
      zero = await connect(b, { url: b.tcpUrl });
      await zero.subscribeAsync(`${T}/zero`, { qos: 0 });
      // Leave about 600 KiB free.
      const st = statfsSync(dir);
      const free = st.bavail * st.bsize;
      const filler = path.join(dir, 'filler');
      writeFileSync(filler, Buffer.alloc(Math.max(0, free - 600 * 1024)));

      const p = await rawConnect(b.port, { version: 4, clientId: uid('pub') });
      const big = 'y'.repeat(16384);
      const send = (i) => p.publish({ topic: `${T}/q`, qos: 1, id: i, payload: `${i}:${big}` });
      let full = 0;
      for (let i = 1; i <= 200 && !full; i++) {
        send(i);
        const a = await p.expect('puback', { timeout: 2000 }).catch(() => null);
        if (a) assert.equal(a.id, i);
        else full = i;
      }
      assert.ok(full > 1, `the disk filled up at message ${full}`);
      const N = full + 5;
      for (let i = full + 1; i <= N; i++) send(i);
      assert.deepEqual(await p.collect('puback', 700), [], 'no acks while the disk is full');
      const q0 = await rawConnect(b.port, { version: 4, clientId: uid('q0') });
      q0.publish({ topic: `${T}/zero`, qos: 0, payload: 'still here' });
      const [m0] = await zero.waitMessages(1);
      assert.equal(m0.payload, 'still here');
      q0.destroy();

      rmSync(filler);
      const held = await within((async () => {
        const all = [];
        while (all.length < N - full + 1) all.push(await p.expect('puback', { timeout: 5000 }));
        return all;
      })(), 8000, 'the held acknowledgements');
      held.forEach((a, i) => assert.equal(a.id, full + i));
      p.destroy();
      await b.kill();
      b = await start(dir, b);
      s = await rawConnect(b.port, sub(id));
      const got = await drain(s);
      s.disconnect();
      const seqs = [...new Set(got.map((m) => Number(m.payload.toString().split(':')[0])))];
      assert.deepEqual(seqs, Array.from({ length: N }, (_, i) => i + 1));
    } finally {
      await closeAll(zero);
      await b.stop();
      spawnSync('umount', [dir]);
    }
  });

  test('wills of clients connected at a crash or a shutdown are published after the restart, unless the client is back first', async () => {
    const dir = dataDir();
    const T = uid('will');
    const wid = uid('w');
    let b = await start(dir);
    // A client connected with a persistent session and a will.
    const online = async (name, delay = 0) => rawConnect(b.port, {
      version: 5, clientId: `${T}-${name}`, clean: false, props: { sessionExpiryInterval: 60 },
      will: { topic: `${T}/will/${name}`, payload: `${name} gone`, qos: 1, props: delay ? { willDelayInterval: delay } : undefined },
    });
    try {
      let w = await rawConnect(b.port, sub(wid));
      w.subscribe(1, [[`${T}/will/#`, 1]]);
      await w.expect('suback');
      w.destroy();

      const crashed = await online('crashed');
      const back = await online('back', 5);
      await sleep(200);
      await b.kill();
      crashed.destroy();
      back.destroy();
      b = await start(dir, b);
      // "back" returns within its will delay: no will for it.
      const again = await rawConnect(b.port, { version: 5, clientId: `${T}-back`, clean: false, props: { sessionExpiryInterval: 60 } });
      assert.equal(again.connack.sessionPresent, true);

      const stopped = await online('stopped');
      await b.stop();
      stopped.destroy();
      again.destroy();
      b = await start(dir, b);
      await sleep(700); // the first sweeps publish what is due
      w = await rawConnect(b.port, sub(wid));
      const got = await drain(w, { quiet: 600 });
      w.disconnect();
      assert.deepEqual(got.map((m) => m.payload.toString()).sort(), ['crashed gone', 'stopped gone']);
    } finally {
      await b.stop();
    }
  });

  test('session and message expiry keep counting while ternd is down; a session that expired meanwhile publishes its will', async () => {
    const dir = dataDir();
    const T = uid('exp');
    const shortId = uid('short');
    const longId = uid('long');
    let b = await start(dir);
    try {
      for (const [cid, expiry] of [[longId, 60], [shortId, 2]]) {
        // The short session's will waits longer than the session lives:
        // it is published when the session ends (MQTT 5 §3.1.3.2.2),
        // here while ternd is down, so after the restart.
        const c = await rawConnect(b.port, {
          version: 5, clientId: cid, clean: false, props: { sessionExpiryInterval: expiry },
          will: { topic: `${T}/will`, payload: `${cid} gone`, qos: 1, props: { willDelayInterval: 30 } },
        });
        c.subscribe(1, [[`${T}/#`, 1]]);
        await c.expect('suback');
        c.destroy();
      }
      const p = await rawConnect(b.port, { version: 5, clientId: uid('pub') });
      p.publish({ topic: `${T}/soon`, qos: 1, id: 1, payload: 'soon', props: { messageExpiryInterval: 2 } });
      await p.expect('puback');
      p.publish({ topic: `${T}/later`, qos: 1, id: 2, payload: 'later', props: { messageExpiryInterval: 60 } });
      await p.expect('puback');
      p.destroy();
      await b.stop();
      await sleep(2600);
      b = await start(dir, b);
      const gone = await rawConnect(b.port, { version: 5, clientId: shortId, clean: false, props: { sessionExpiryInterval: 2 } });
      assert.equal(gone.connack.sessionPresent, false, 'a 2 s session expired while ternd was down');
      gone.destroy();
      const s = await rawConnect(b.port, { version: 5, clientId: longId, clean: false, props: { sessionExpiryInterval: 60 } });
      assert.equal(s.connack.sessionPresent, true);
      const got = await drain(s, { quiet: 500 });
      assert.deepEqual(got.map((m) => m.payload.toString()), ['later', `${shortId} gone`]);
      const left = got[0].props.messageExpiryInterval;
      assert.ok(left >= 50 && left <= 58, `remaining message expiry ${left}`);
      s.disconnect();
    } finally {
      await b.stop();
    }
  });

  test('SIGUSR1 checkpoints the store', async () => {
    const b = await start(dataDir());
    try {
      b.proc.kill('SIGUSR1');
      const deadline = Date.now() + 5000;
      while (!/Store checkpointed\./.test(b.output()) && Date.now() < deadline) await sleep(25);
      assert.match(b.output(), /Store checkpointed\./);
    } finally {
      await b.stop();
    }
  });

  describe('a store ternd cannot use', () => {
    // Runs ternd on dir until it exits; returns { status, out }.
    function runOnce(dir, args = []) {
      const conf = path.join(dir, 'x.conf');
      // ternd refuses the store before it opens any listener.
      writeFileSync(conf, `listener ${20000 + Math.floor(Math.random() * 20000)} 127.0.0.1\n${durableConfig(dir)}`);
      const r = spawnSync(ternd, ['-c', conf, '--threads', String(THREADS), ...args], { timeout: 15000, encoding: 'utf8' });
      return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
    }

    // A real store with one session, cleanly closed.
    async function realStore() {
      const dir = dataDir();
      const b = await start(dir);
      const c = await rawConnect(b.port, sub(uid('s')));
      c.subscribe(1, [['a/#', 1]]);
      await c.expect('suback');
      c.destroy();
      await b.stop();
      return dir;
    }

    function assertRefused(r, words) {
      assert.equal(r.signal, null, `ternd died of ${r.signal}:\n${r.out}`);
      assert.equal(r.status, 3, `exit status ${r.status}:\n${r.out}`);
      assert.match(r.out, words);
      assert.match(r.out, /tern\.db/);
      assert.doesNotMatch(r.out, /Sanitizer|runtime error/);
    }

    test('random bytes: a clear error and exit status 3', () => {
      const dir = dataDir();
      const junk = Buffer.alloc(16384);
      for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) & 0xff;
      writeFileSync(path.join(dir, 'tern.db'), junk);
      assertRefused(runOnce(dir), /corrupt|not an SQLite/);
    });

    test('truncated: a clear error and exit status 3', async () => {
      const dir = await realStore();
      truncateSync(path.join(dir, 'tern.db'), 5000);
      assertRefused(runOnce(dir), /corrupt/);
    });

    test('newer schema version: a clear error and exit status 3', async () => {
      const dir = await realStore();
      // user_version is the 4-byte big-endian field at offset 60.
      const fd = openSync(path.join(dir, 'tern.db'), 'r+');
      const v = Buffer.alloc(4);
      v.writeUInt32BE(99);
      writeSync(fd, v, 0, 4, 60);
      closeSync(fd);
      assertRefused(runOnce(dir), /schema version 99, newer/);
    });

    test('--store-reset moves the bad file aside and starts empty', async () => {
      const dir = dataDir();
      writeFileSync(path.join(dir, 'tern.db'), 'not a database at all '.repeat(100));
      const b = await startBroker({ config: durableConfig(dir), args: ['--store-reset'] });
      try {
        assert.match(b.output(), /moved it to .*tern\.db\.bad-/);
        const moved = readdirSync(dir).filter((f) => /^tern\.db\.bad-\d+$/.test(f));
        assert.equal(moved.length, 1);
        const c = await rawConnect(b.port, sub(uid('s')));
        assert.equal(c.connack.sessionPresent, false);
        c.destroy();
      } finally {
        await b.stop();
      }
    });

    test('--dump-store prints what is stored', async () => {
      const dir = await realStore();
      const r = spawnSync(ternd, ['--dump-store', dir], { timeout: 10000, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^# tern store, schema 2/);
      assert.match(r.stdout, /session s-[0-9a-f]+ v4 expiry=never/);
      assert.match(r.stdout, /sub s-[0-9a-f]+ a\/# qos=1/);
    });
  });
});

// Issues 6/7: a session restored from the store keeps who it belongs to
// (store schema 2): its username (for %u ACL patterns), the listener it
// last connected on (per_listener_settings true) and its JWT topics
// grant. Until the client reconnects, messages are queued for it by those
// rules, not by "nothing known": the grant must not widen (fail closed) and
// %u / its own listener's ACL must not drop what it may read. Each test
// runs with a SIGTERM and a SIGKILL restart.
describe('durability: a restored session keeps its username, listener and token grant', { skip }, () => {
  const SECRET = `dur-jwt-secret-${crypto.randomBytes(16).toString('hex')}`;
  const b64 = (x) => Buffer.from(x).toString('base64url');
  // An HS256 token for `sub` whose topics claim is acl.
  function token(subject, acl) {
    const si = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64(JSON.stringify({ sub: subject, exp: Math.floor(Date.now() / 1000) + 3600, acl }))}`;
    return `${si}.${crypto.createHmac('sha256', SECRET).update(si).digest('base64url')}`;
  }

  // Stops (SIGTERM) or crashes (SIGKILL, after the store thread had time
  // to commit the session's last record) the broker.
  async function down(b, how) {
    if (how === 'term') return b.stop();
    await sleep(300);
    return b.kill();
  }

  // Publishes QoS 1 messages (topic -> payload) as an anonymous v3.1.1
  // client on port, each acknowledged.
  async function publishAll(port, topics) {
    const p = await rawConnect(port, { version: 4, clientId: uid('pub') });
    let id = 0;
    for (const t of topics) {
      p.publish({ topic: t, qos: 1, id: ++id, payload: `m:${t}` });
      await p.expect('puback');
    }
    p.disconnect();
  }

  for (const how of ['term', 'kill']) {
    test(`JWT: the grant of the session's last token narrows deliveries while offline across a restart (${how})`, async () => {
      const dir = dataDir();
      const secret = path.join(dir, 'jwt.secret');
      writeFileSync(secret, SECRET);
      const T = uid('g');
      const id = uid('jwt');
      const extra = `jwt_hs256_secret_file ${secret}`;
      const v5 = (acl) => ({ version: 5, clientId: id, clean: false, password: token('tok-user', acl), props: { sessionExpiryInterval: 3600 } });
      let b = await start(dir, null, extra);
      try {
        // Subscribed to both with a token granting both...
        let s = await rawConnect(b.port, v5({ sub: [`${T}/a/#`, `${T}/b/#`] }));
        s.subscribe(1, [[`${T}/a/#`, 1], [`${T}/b/#`, 1]]);
        const ack = await s.expect('suback');
        assert.deepEqual(ack.reasons, [1, 1]);
        s.disconnect();
        // ...then back with a token granting a/# only: it decides.
        s = await rawConnect(b.port, v5({ sub: [`${T}/a/#`] }));
        assert.equal(s.connack.sessionPresent, true);
        s.disconnect();
        await down(b, how);
        b = await start(dir, b, extra);
        await publishAll(b.port, [`${T}/a/x`, `${T}/b/x`]);
        s = await rawConnect(b.port, v5({ sub: [`${T}/a/#`] }));
        assert.equal(s.connack.sessionPresent, true);
        const got = await drain(s, { quiet: 500 });
        s.disconnect();
        assert.deepEqual(got.map((m) => m.topic), [`${T}/a/x`], 'only what the last token granted');
        // The store holds the claim, never the token.
        await b.stop();
        const r = spawnSync(process.env.TERND || 'build/ternd', ['--dump-store', dir], { timeout: 10000, encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        const line = r.stdout.split('\n').find((l) => l.startsWith(`session ${id} `));
        assert.ok(line, r.stdout);
        assert.ok(line.includes(`user=tok-user `), line);
        assert.ok(line.includes(`grant={"sub":["${T}/a/#"]}`), line);
        assert.ok(!r.stdout.includes(token('tok-user', { sub: [`${T}/a/#`] }).split('.')[2]), 'no token signature in the store');
        b = await start(dir, b, extra);
      } finally {
        await b.stop();
      }
    });

    test(`ACL: a %u pattern matches the restored session's username (${how})`, async () => {
      const dir = dataDir();
      const acl = path.join(dir, 'acl');
      writeFileSync(acl, 'pattern read u/%u/#\npattern write #\n');
      const extra = `acl_file ${acl}`;
      const id = uid('alice');
      const alice = { version: 4, clientId: id, clean: false, username: 'alice' };
      let b = await start(dir, null, extra);
      try {
        let s = await rawConnect(b.port, alice);
        s.subscribe(1, [['u/alice/#', 1]]);
        assert.deepEqual((await s.expect('suback')).reasons, [1]);
        s.disconnect();
        await down(b, how);
        b = await start(dir, b, extra);
        await publishAll(b.port, ['u/alice/x', 'u/bob/x']);
        s = await rawConnect(b.port, alice);
        assert.equal(s.connack.sessionPresent, true);
        const got = await drain(s, { quiet: 500 });
        s.disconnect();
        assert.deepEqual(got.map((m) => `${m.topic} ${m.payload}`), ['u/alice/x m:u/alice/x']);
      } finally {
        await b.stop();
      }
    });

    // Listeners (startBroker): 0 websockets, 1 TCP (b.port), 2 `other`.
    // Their ACLs differ: TCP lets everyone read s/#, `other` does not.
    // Each listener also lets everyone write.
    async function perListener(dir, files, ports, on, global = '') {
      return startBroker({
        port: on?.port,
        wsPort: on?.wsPort,
        anonymous: false,
        global: `per_listener_settings true\n${durableConfig(dir)}${global}`,
        config: [
          'allow_anonymous true', `acl_file ${files.tcp}`,
          `listener ${ports.other} 127.0.0.1`, 'allow_anonymous true', `acl_file ${files.other}`,
        ].join('\n'),
      });
    }

    test(`per_listener_settings: the restored session follows its own listener's ACL; another listener at its index after a config change gets the rule for unknown listeners (${how})`, async () => {
      const dir = dataDir();
      const files = { tcp: path.join(dir, 'tcp.acl'), other: path.join(dir, 'other.acl') };
      writeFileSync(files.tcp, 'pattern read s/#\npattern write #\n');
      writeFileSync(files.other, 'pattern read o/#\npattern write #\n');
      const ports = { other: await freePort() };
      const id = uid('pl');
      const me = { version: 4, clientId: id, clean: false };
      let b = await perListener(dir, files, ports);
      try {
        let s = await rawConnect(b.port, me);
        s.subscribe(1, [['s/#', 1]]);
        assert.deepEqual((await s.expect('suback')).reasons, [1]);
        s.disconnect();
        await down(b, how);
        b = await perListener(dir, files, ports, b);
        await publishAll(b.port, ['s/1']);
        s = await rawConnect(b.port, me);
        assert.equal(s.connack.sessionPresent, true);
        let got = await drain(s, { quiet: 500 });
        s.disconnect();
        assert.deepEqual(got.map((m) => m.topic), ['s/1'], 'its own listener (TCP) lets it read s/#');

        // The operator adds a listener in front: index 1 is now the
        // websockets listener (no ACL). The session must not get its
        // rules; it gets only what every listener allows, and `other`
        // does not allow s/#.
        await down(b, how);
        const front = await freePort();
        b = await perListener(dir, files, ports, b, `\nlistener ${front} 127.0.0.1\nallow_anonymous true`);
        await publishAll(b.port, ['s/2']);
        s = await rawConnect(b.port, me);
        assert.equal(s.connack.sessionPresent, true);
        got = await drain(s, { quiet: 500 });
        s.disconnect();
        assert.deepEqual(got.map((m) => m.topic), [], 'listener moved: nothing beyond what every listener allows');
      } finally {
        await b.stop();
      }
    });
  }
});
