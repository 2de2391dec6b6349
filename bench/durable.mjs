#!/usr/bin/env node
// Durability benchmark (issue 6; not a test): persistent QoS 1 traffic
// against a broker that stores it, tern or Mosquitto, each started here
// with persistence on in a scratch directory.
//
//   node bench/durable.mjs throughput [--broker ternd|mosquitto] [-P 10]
//        [-S 10] [-s 64] [-d 5] [-w 100] [--sync always|batch] [--offline]
//        [--fanout] [--port N --tag T]
//   node bench/durable.mjs kill [--broker ternd|mosquitto] [-n 20000]
//
// throughput: P publishers each send QoS 1 messages of s bytes on their
// own topic for d seconds with up to w unacknowledged; S subscribers with
// persistent sessions (clean session 0, MQTT 3.1.1) subscribe at QoS 1,
// subscriber i to publisher i's topic (i mod P), or with --fanout every
// subscriber to every topic (each message stored once for S sessions and
// delivered S times). With --offline the subscribers disconnect before
// the publishing starts, so every message is written to disk and stays
// there (nothing is delivered, nothing cancels out within a commit).
// Reports acknowledged messages/s, publish-to-PUBACK latency percentiles
// and deliveries.
//
// kill: one persistent subscriber is offline; one publisher sends n QoS 1
// messages (up to w in flight) and counts PUBACKs; the broker is killed
// with SIGKILL half way, restarted on the same directory, and the
// subscriber collects what survived: acknowledged messages lost.
//
// The clients are raw MQTT over TCP in this one Node process, so on a
// small machine the client side costs CPU too; treat the numbers as
// relative.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const args = process.argv.slice(2);
const mode = args[0] || 'throughput';
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const BROKER = opt('--broker', 'ternd');
const TERND = process.env.TERND || 'build/ternd';
const P = Number(opt('-P', 10));
const S = Number(opt('-S', 10));
const SIZE = Number(opt('-s', 64));
const SECONDS = Number(opt('-d', 5));
const WINDOW = Number(opt('-w', 100));
const N = Number(opt('-n', 20000));
const SYNC = opt('--sync', 'always');
const THREADS = opt('--threads', '2');
const FANOUT = args.includes('--fanout');
const OFFLINE = args.includes('--offline');
// --port N: use a broker already listening there (several bench processes
// sharing one broker); --tag T keeps their client ids and topics apart.
const PORT = Number(opt('--port', 0));
const TAG = opt('--tag', 'd');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---- minimal MQTT 3.1.1 encoding/decoding

function vbi(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n) b |= 128;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}
const str = (s) => {
  const b = Buffer.from(s);
  const l = Buffer.alloc(2);
  l.writeUInt16BE(b.length);
  return Buffer.concat([l, b]);
};
const pkt = (first, body) => Buffer.concat([Buffer.from([first]), vbi(body.length), body]);
function connectPkt(clientId, clean) {
  return pkt(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, clean ? 2 : 0, 0, 60]), str(clientId)]));
}
function subscribePkt(id, filter, qos) {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(id);
  return pkt(0x82, Buffer.concat([h, str(filter), Buffer.from([qos])]));
}
function publishPkt(topicBuf, id, payload) {
  const h = Buffer.alloc(2);
  h.writeUInt16BE(id);
  return pkt(0x32, Buffer.concat([topicBuf, h, payload]));
}
const puback = (id) => Buffer.from([0x40, 2, id >> 8, id & 255]);

// A connection that calls onPacket(type, flags, body) per packet.
function open(port, onPacket) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      let off = 0;
      for (;;) {
        if (buf.length - off < 2) break;
        let len = 0; let mul = 1; let i = off + 1; let ok = false;
        for (; i < buf.length && i < off + 5; i++) {
          len += (buf[i] & 127) * mul;
          mul *= 128;
          if (!(buf[i] & 128)) { ok = true; i++; break; }
        }
        if (!ok || buf.length < i + len) break;
        onPacket(buf[off] >> 4, buf[off] & 15, buf.subarray(i, i + len));
        off = i + len;
      }
      buf = buf.subarray(off);
    });
    sock.on('error', () => {});
    sock.once('connect', () => resolve(sock));
    sock.once('error', reject);
  });
}

// Connects and resolves after CONNACK; later packets go to handler.
async function client(port, clientId, clean, handler) {
  let ready;
  const connack = new Promise((r) => { ready = r; });
  const c = { sock: null, handler: handler || (() => {}) };
  c.sock = await open(port, (type, flags, body) => {
    if (type === 2) ready(body[0] & 1);
    else c.handler(type, flags, body, c);
  });
  c.sock.write(connectPkt(clientId, clean));
  c.present = await connack;
  return c;
}

// ---- broker processes

async function startBroker(dir, port) {
  const conf = path.join(dir, 'b.conf');
  let cmd; let argv;
  if (BROKER === 'mosquitto') {
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${dir}/\nmax_queued_messages 0\nmax_inflight_messages 100\n`);
    cmd = 'mosquitto'; argv = ['-c', conf];
  } else {
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location ${dir}\npersistence_sync ${SYNC}\nmax_queued_messages 0\nmax_inflight_messages 100\nconnection_messages false\nsys_interval 1\n`);
    cmd = TERND; argv = ['-c', conf, '--threads', THREADS];
  }
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => proc.on('exit', r));
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return { proc, exited, err: () => err };
    await sleep(25);
  }
  throw new Error(`broker did not start: ${err}`);
}

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

// ---- throughput

async function throughput() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-durbench-'));
  const port = PORT || await freePort();
  const b = PORT ? null : await startBroker(dir, port);
  let delivered = 0;
  const subs = [];
  for (let i = 0; i < S; i++) {
    const c = await client(port, `${TAG}sub-${i}`, false, (type, flags, body, self) => {
      if (type !== 3) return;
      delivered++;
      const tl = body.readUInt16BE(0);
      if ((flags >> 1) & 3) self.sock.write(puback(body.readUInt16BE(2 + tl)));
    });
    let suback;
    const got = new Promise((r) => { suback = r; });
    const h = c.handler;
    c.handler = (type, ...rest) => { if (type === 9) suback(); else h(type, ...rest); };
    c.sock.write(subscribePkt(1, FANOUT ? `${TAG}bench/#` : `${TAG}bench/${i % P}`, 1));
    await got;
    subs.push(c);
  }
  if (OFFLINE) for (const c of subs) c.sock.destroy();
  // tern: $SYS/broker/store/commits, to tell messages per commit.
  let commits = 0;
  const sys = await client(port, `${TAG}sys`, true, (type, flags, body) => {
    if (type !== 3) return;
    const tl = body.readUInt16BE(0);
    commits = Number(body.subarray(2 + tl).toString());
  });
  sys.sock.write(subscribePkt(1, '$SYS/broker/store/commits', 0));
  await sleep(1200);
  const commits0 = commits;
  const payload = Buffer.alloc(SIZE, 'x');
  const lat = [];
  let acked = 0;
  let running = true;
  const pubs = [];
  for (let i = 0; i < P; i++) {
    const topic = str(`${TAG}bench/${i}`);
    const sent = new Map();
    let nextId = 0;
    let inflight = 0;
    const c = await client(port, `${TAG}pub-${i}`, true);
    const fill = () => {
      const out = [];
      while (running && inflight < WINDOW) {
        nextId = (nextId % 65535) + 1;
        sent.set(nextId, process.hrtime.bigint());
        out.push(publishPkt(topic, nextId, payload));
        inflight++;
      }
      if (out.length) c.sock.write(Buffer.concat(out));
    };
    c.handler = (type, flags, body) => {
      if (type !== 4) return;
      const id = body.readUInt16BE(0);
      const t0 = sent.get(id);
      sent.delete(id);
      inflight--;
      acked++;
      if (t0 !== undefined) lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
      fill();
    };
    pubs.push({ c, fill });
  }
  const t0 = Date.now();
  for (const p of pubs) p.fill();
  await sleep(SECONDS * 1000);
  running = false;
  const ackedAt = acked;
  const secs = (Date.now() - t0) / 1000;
  await sleep(1000);
  await sleep(1200);
  const ncommits = commits - commits0;
  lat.sort((x, y) => x - y);
  console.log(JSON.stringify({
    broker: BROKER, sync: BROKER === 'ternd' ? SYNC : 'n/a', publishers: P, subscribers: S, size: SIZE,
    fanout: FANOUT, offline: OFFLINE, window: WINDOW, seconds: Number(secs.toFixed(2)),
    acked_per_s: Math.round(ackedAt / secs),
    acked: ackedAt,
    delivered_incl_tail: delivered,
    commits: BROKER === 'ternd' ? ncommits : undefined,
    acked_per_commit: BROKER === 'ternd' && ncommits ? Math.round(ackedAt / ncommits) : undefined,
    puback_ms: { p50: +pct(lat, 0.5).toFixed(2), p99: +pct(lat, 0.99).toFixed(2), max: +lat[lat.length - 1].toFixed(2) },
  }));
  for (const c of [sys, ...subs, ...pubs.map((p) => p.c)]) c.sock.destroy();
  if (!b) return;
  if (OFFLINE) {
    // Each subscriber's queue is the messages of its publisher (or all).
    console.log(JSON.stringify({ queued_on_disk: (await import('node:child_process')).execFileSync(BROKER === 'ternd' ? TERND : 'true', BROKER === 'ternd' ? ['--dump-store', dir] : [], { maxBuffer: 1 << 30 }).toString().split('\n').filter((l) => l.startsWith('  queue ')).length }));
  }
  b.proc.kill('SIGTERM');
  await b.exited;
}

// ---- kill -9

async function killRun() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-durkill-'));
  const port = await freePort();
  let b = await startBroker(dir, port);
  let s = await client(port, 'ksub', false);
  await new Promise((r) => { s.handler = (t) => { if (t === 9) r(); }; s.sock.write(subscribePkt(1, 'kbench', 1)); });
  s.sock.destroy();
  await sleep(200);
  // One connection: PUBACKs come in publishing order, so after k of them
  // messages 1..k are acknowledged.
  let acked = 0; let next = 0; let inflight = 0;
  const p = await client(port, 'kpub', true);
  const topic = str('kbench');
  const fill = () => {
    const out = [];
    while (inflight < WINDOW && next < N) {
      const seq = ++next;
      const pl = Buffer.from(String(seq).padStart(8, '0'));
      out.push(publishPkt(topic, ((seq - 1) % 65535) + 1, pl));
      inflight++;
    }
    if (out.length) p.sock.write(Buffer.concat(out));
  };
  p.handler = (type) => {
    if (type !== 4) return;
    inflight--;
    acked++;
    fill();
  };
  fill();
  while (acked < N / 2) await sleep(1);
  b.proc.kill('SIGKILL');
  await b.exited;
  const ackedAtKill = acked;
  p.sock.destroy();
  b = await startBroker(dir, port);
  const got = new Set();
  s = await client(port, 'ksub', false, (type, flags, body, self) => {
    if (type !== 3) return;
    const tl = body.readUInt16BE(0);
    const id = body.readUInt16BE(2 + tl);
    got.add(Number(body.subarray(4 + tl).toString()));
    self.sock.write(puback(id));
  });
  let last = -1;
  while (got.size !== last) { last = got.size; await sleep(700); }
  // Acked sequence numbers are 1..ackedAtKill for an in-order broker.
  let lost = 0;
  for (let i = 1; i <= ackedAtKill; i++) if (!got.has(i)) lost++;
  console.log(JSON.stringify({ broker: BROKER, sync: BROKER === 'ternd' ? SYNC : 'n/a', sent: next, acked_before_kill: ackedAtKill, session_present: !!s.present, delivered_after_restart: got.size, acked_lost: lost }));
  s.sock.destroy();
  b.proc.kill('SIGTERM');
  await b.exited;
}

(mode === 'kill' ? killRun() : throughput()).catch((e) => { console.error(e); process.exit(1); });
