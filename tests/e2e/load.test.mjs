// The bounded load test of issue 7 (shared/BAD_INPUTS.md, "Faults and
// load"), on loopback in a few seconds: 5,000 connections that never send
// CONNECT (TCP, and WebSocket before and after the upgrade) from 20 source
// addresses, 200 subscribers that stop reading after their SUBACK (QoS 0
// and 1, MQTT 3.1.1 and 5, TCP and WebSocket), and a publish flood from
// `tern bench pub` processes (QoS 0 and 1, 1 KiB to 16 KiB payloads), while
// a well-behaved MQTT.js publisher/subscriber pair measures round trips at
// 100 QoS 1 messages per second. It asserts that:
//   - ternd's VmRSS, sampled every 100 ms, stays under a bound computed
//     below from the configured limits;
//   - the broker's queued messages and bytes (/metrics) stay within the
//     queue and inflight limits of each stalled subscriber;
//   - the well-behaved pair loses nothing and its p50 and p99 latencies stay
//     under bounds (scaled for sanitizer builds);
//   - the drops for the stalled subscribers are counted;
//   - the silent sockets are all still open when the flood ends and are
//     closed at the CONNECT deadline, the WebSocket ones that never sent a
//     request counted as handshake timeouts;
//   - the stalled subscribers are not disconnected, and the broker accepts
//     new clients afterwards; nothing crashes (stop() checks the exit
//     status and sanitizer reports).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startBroker, KIND, TRANSPORT, THREADS } from './lib/broker.mjs';
import { RawClient } from './lib/raw.mjs';
import { RawWs } from './lib/rawws.mjs';
import { connect, closeAll, uid, sub, sleep, within, assertAlive } from './lib/util.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TERND = process.env.TERND || 'build/ternd';
const TERN = path.join(path.dirname(TERND), 'tern');

// The load.
const SILENT = { tcp: 4500, wsIdle: 250, wsUpgraded: 250, sources: 20 };
const NSILENT = SILENT.tcp + SILENT.wsIdle + SILENT.wsUpgraded;
const NSLOW = 200; // 20 of them over WebSocket
const NSLOW_WS = 20;
const FLOOD_S = 4; // seconds of flood
const LAT_RATE = 100; // well-behaved messages per second

// The limits given to ternd.
const LIMITS = {
  connect_timeout: 15, // s; outlasts opening the sockets and the flood (up to 9 s under TSan)
  // The default: the pair's 40-byte messages may wait up to 10 s behind a
  // worker slowed by a sanitizer on a busy machine; the flood's queues are
  // held by max_queued_bytes first (128 KiB is 8 to 128 of its messages).
  max_queued_messages: 1000,
  max_queued_bytes: 128 * 1024,
  max_inflight_messages: 10,
  max_packet_size: 32 * 1024, // the flood's largest packet is 16 KiB + header
};

// What one connection costs the broker when it holds no message: struct
// conn (984 bytes in RelWithDebInfo on x86-64), its address strings, the
// epoll registration, an empty output queue, malloc rounding; a silent
// socket holds no read buffer (the worker lends its 128 KiB scratch buffer
// to a read and takes it back). Measured: about 0.6 KiB of RSS per
// silent socket (release, 5,000 of them; printed by the test); 4 KiB
// leaves room for a WebSocket connection's upgrade state.
const PER_CONN = 4 * 1024;
// A connection stops taking messages from its session queue while its
// output queue holds this much (CONN_OQ_HIGH, src/broker/conn.c).
const OQ_HIGH = 1024 * 1024;

// The worst case a stalled subscriber can pin: its queue (max_queued_bytes),
// its output queue up to the high-water mark plus the packet that crossed
// it, and its inflight window of QoS 1 messages, each up to max_packet_size.
const PER_SLOW = PER_CONN + LIMITS.max_queued_bytes + OQ_HIGH +
  (LIMITS.max_inflight_messages + 1) * LIMITS.max_packet_size;
// Publishers (flood and the pair) may each have a packet being read and one
// being written.
const NPUB = 8;
const PER_PUB = PER_CONN + 2 * LIMITS.max_packet_size;
// Allocator arenas per thread, $SYS retained messages, fragmentation.
const SLACK = 24 * 1024 * 1024;
const BOUND_GROWTH = NSILENT * PER_CONN + NSLOW * PER_SLOW + NPUB * PER_PUB + SLACK;

let broker;
let sanitizer = null; // 'asan' | 'tsan' | null, from the broker's mappings

// Resident memory of the broker in bytes.
function rss() {
  const s = readFileSync(`/proc/${broker.proc.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(s)[1]) * 1024;
}

function nofile(pid) {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  const n = (v) => (v === 'unlimited' ? Infinity : Number(v));
  return { soft: n(m[1]), hard: n(m[2]) };
}

// GET /metrics (open from loopback) as { name or name{labels}: value }.
function metrics() {
  return within(new Promise((resolve, reject) => {
    // One connection per request (no keep-alive agent), so the broker's
    // socket count holds exactly one of ours.
    http.get({ host: '127.0.0.1', port: broker.wsPort, path: '/metrics', agent: false, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        if (res.statusCode !== 200) { reject(new Error(`/metrics: ${res.statusCode}`)); return; }
        const out = {};
        for (const line of body.split('\n')) {
          const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
          if (m) out[m[1]] = Number(m[2]);
        }
        resolve(out);
      });
    }).on('error', reject);
  }), 5000, 'GET /metrics');
}

async function waitMetric(name, pred, ms, what) {
  const deadline = Date.now() + ms;
  let v;
  for (;;) {
    v = (await metrics())[name];
    if (pred(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: ${name} is ${v}`);
    await sleep(100);
  }
}

// The silent sockets live in a child process whose descriptor limit is
// raised by the shell before node starts.
function startSilent(need) {
  const args = ['-c', 'ulimit -n "$0" && exec "$@"', String(need), process.execPath,
    path.join(HERE, 'lib', 'silent_sockets.mjs'),
    JSON.stringify({ port: broker.port, wsPort: broker.wsPort, ...SILENT })];
  const p = spawn('/bin/sh', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let buf = '';
  let err = '';
  const events = [];
  const waiters = [];
  p.stdout.setEncoding('utf8');
  p.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      for (const w of waiters.splice(0)) w();
    }
  });
  p.stderr.on('data', (d) => { err += d; });
  p.on('exit', () => { for (const w of waiters.splice(0)) w(); });
  p.next = (name, ms) => within(new Promise((resolve, reject) => {
    const check = () => {
      const e = events.find((x) => x.event === name || x.event === 'error');
      if (e?.event === 'error') reject(new Error(`silent sockets: ${e.message}`));
      else if (e) resolve(e);
      else if (p.exitCode !== null) reject(new Error(`silent sockets process exited ${p.exitCode}: ${err}`));
      else waiters.push(check);
    };
    check();
  }), ms, `silent sockets: ${name}`);
  return p;
}

// One stalled subscriber: subscribes to flood/# and stops reading.
async function slowConsumer(i) {
  const version = i % 3 === 2 ? 5 : 4;
  const qos = i % 3 === 0 ? 0 : 1;
  let c;
  let ws = null;
  if (i < NSLOW_WS) {
    ws = await RawWs.upgrade(broker.wsPort);
    c = ws.mqtt;
  } else {
    c = await RawClient.connect(broker.port);
  }
  const ack = await c.connect({ version, clientId: uid(`slow${i}`), keepalive: 0 });
  assert.equal(ack.reason, 0, `slow consumer ${i} refused`);
  c.subscribe(1, [['flood/#', qos]]);
  const sa = await c.expect('suback');
  assert.equal(sa.reasons?.[0] ?? sa.granted?.[0] ?? qos, qos);
  (ws || c).sock.pause(); // no more reads: kernel buffers, then the broker's queues fill
  return ws || c;
}

// A `tern bench pub` flood process; resolves with its JSON report.
function flood({ clients, qos, size, version = 311, ws = false, tag }) {
  const url = ws ? broker.wsUrl : broker.tcpUrl;
  const args = ['bench', 'pub', '-L', url, '-c', String(clients), '-q', String(qos), '-s', String(size),
    '-V', String(version), '-t', `flood/${tag}/%i`, '-d', String(FLOOD_S), '--drain', '1', '--quiet',
    '--prefix', `flood-${tag}-`];
  // Niced: on a small machine the flood's clients would otherwise take
  // most of the CPU from the broker, and the pair's latency would measure
  // the scheduler; a broker has its host to itself, its clients do not
  // share it. The flood still outruns the broker.
  const p = spawn('nice', ['-n', '10', TERN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { err += d; });
  const done = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
  p.result = within(done, (FLOOD_S + 20) * 1000, `tern bench pub ${tag}`).then((code) => {
    const json = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
    const said = broker.output().split('\n').filter((l) => l.includes(`flood-${tag}-`)).slice(-10).join('\n');
    assert.equal(code, 0, `tern bench pub ${tag} exited ${code}: ${err.slice(-2000)}\nternd about it:\n${said}`);
    assert.ok(json, `tern bench pub ${tag}: no JSON report: ${out.slice(-2000)}\nstderr: ${err.slice(-2000)}`);
    return JSON.parse(json);
  });
  return p;
}

// Client ids the broker's log shows connected and not gone, but for the
// stalled subscribers and the pair (for a failure message).
function stillConnected() {
  const open = new Set();
  for (const line of broker.output().split('\n')) {
    let m = / as (\S+) \(p\d/.exec(line);
    if (m && /New client connected/.test(line)) open.add(m[1]);
    m = /Client (\S+) (disconnected|closed|has exceeded|\S)/.exec(line);
    if (m && !/New client/.test(line)) open.delete(m[1]);
  }
  return [...open].filter((id) => !/^(slow|latsub|latpub)/.test(id));
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

before(async () => {
  if (KIND !== 'tern') return;
  const need = NSILENT + NSLOW + 200;
  const config = Object.entries(LIMITS).map(([k, v]) => `${k} ${v}`).join('\n') + '\nsys_interval 1';
  broker = await startBroker({ config, nofile: need });
  const lim = nofile(broker.proc.pid);
  assert.ok(lim.soft >= need, `ternd's RLIMIT_NOFILE is ${lim.soft}, the test needs ${need}`);
  const maps = readFileSync(`/proc/${broker.proc.pid}/maps`, 'utf8');
  sanitizer = /libasan/.test(maps) ? 'asan' : /libtsan/.test(maps) ? 'tsan' : null;
});
after(async () => { if (broker) await broker.stop(); });

describe('bounded load', () => {
  test('5,000 silent sockets, 200 stalled subscribers and a flood: memory bounded, the well-behaved pair served, deadlines kept', {
    skip: KIND !== 'tern' && 'tern only: connect_timeout, /metrics and the tern bench flood',
    timeout: 60000,
  }, async () => {
    const tStart = performance.now();
    const phase = (what) => console.log(`# load: ${Math.round(performance.now() - tStart)} ms: ${what}`);
    // A sanitizer runtime adds to every allocation: ASan keeps freed
    // memory in a quarantine (256 MiB by default) and redzones around
    // each block plus 1/8 shadow; TSan maps 4x shadow of the memory
    // touched. The bound scales accordingly.
    const base = rss();
    const quarantine = sanitizer === 'asan'
      ? Number(/quarantine_size_mb=(\d+)/.exec(process.env.ASAN_OPTIONS || '')?.[1] ?? 256) * 1024 * 1024 : 0;
    const factor = sanitizer === 'asan' ? 2.5 : sanitizer === 'tsan' ? 5 : 1;
    const memBound = base + factor * BOUND_GROWTH + quarantine;
    // Round trips of the well-behaved pair: 2 cores shared by the broker,
    // the flood processes and this test, and a sanitizer build runs its
    // workers several times slower. Measured on such a machine (other
    // jobs running, load average 10-19): release 1 thread p50 4-47 ms,
    // p99 100-630 ms; ASan 2 threads p50 38-114 ms, p99 0.2-1.2 s; TSan 4
    // threads over ws p50 21 ms-1.2 s, p99 0.2-1.7 s. When the broker logged
    // every drop, the release p50 was 110 ms (p99 0.8 s); before a
    // connection's turn was bounded (conn.c, CONN_TURN_DELIVERIES), the
    // ASan pair lost messages.
    // Under a sanitizer the figures swing with the machine's load (TSan
    // p50 from 21 ms to 1.2 s between two runs a minute apart), so those
    // bounds only catch a collapse; the release ones are the measure.
    const p50Bound = sanitizer ? 2000 : 100;
    const p99Bound = sanitizer ? 4000 : 1000;

    let maxRss = base;
    const sampler = setInterval(() => { try { maxRss = Math.max(maxRss, rss()); } catch { /* exited */ } }, 100);
    const slow = [];
    const others = [];
    let silent;
    let floods = [];
    try {
      // 1. The silent sockets.
      silent = startSilent(NSILENT + 100);
      const opened = await silent.next('open', 30000);
      assert.equal(opened.failed, 0, `silent sockets that failed to open: ${JSON.stringify(opened)}`);
      await waitMetric('tern_sockets', (v) => v >= NSILENT, 10000, 'the broker never held every silent socket');
      const tSilent = performance.now();

      phase(`silent sockets open (${opened.ms} ms), RSS ${((rss() - base) / NSILENT).toFixed(0)} bytes per socket over the base`);
      // 2. The stalled subscribers.
      for (let i = 0; i < NSLOW; i += 50) {
        slow.push(...await Promise.all(Array.from({ length: Math.min(50, NSLOW - i) }, (_, k) => slowConsumer(i + k))));
      }

      phase('stalled subscribers ready');
      // 3. The well-behaved pair (MQTT.js over TERN_E2E_TRANSPORT).
      const topic = `lat/${uid('pair')}`;
      const rx = await connect(broker, { clientId: uid('latsub'), protocolVersion: 5 });
      const tx = await connect(broker, { clientId: uid('latpub'), protocolVersion: 5 });
      others.push(rx, tx);
      await sub(rx, topic, { qos: 1 });
      const lat = [];
      const seen = new Map();
      const trace = [];
      let t0 = 0;
      rx.on('message', (t, payload) => {
        if (t !== topic) return;
        const { seq, at } = JSON.parse(payload.toString());
        seen.set(seq, (seen.get(seq) || 0) + 1);
        lat.push(performance.now() - at);
        if (process.env.LOAD_TRACE) trace.push([Math.round(at - t0), Math.round(performance.now() - at)]);
      });

      // 4. The flood, and the pair at a fixed rate meanwhile.
      const dropsBefore = (await metrics())['tern_messages_dropped_total{reason="queue_full"}'];
      floods = [
        flood({ clients: 2, qos: 0, size: 1024, tag: 'q0s1k' }),
        flood({ clients: 2, qos: 1, size: 4096, tag: 'q1s4k' }),
        flood({ clients: 1, qos: 1, size: 16384, version: 5, tag: 'q1s16k' }),
        flood({ clients: 1, qos: 0, size: 16384, ws: TRANSPORT === 'ws', tag: 'q0s16k' }),
      ];
      // The broker's own account of what it holds for its clients
      // (tern_queued_messages/bytes, in flight included), sampled during
      // the flood: bounded by the limits for each stalled subscriber.
      let queuedMax = { msgs: 0, bytes: 0 };
      let flooding = true;
      const queueSampler = (async () => {
        while (flooding) {
          const q = await metrics();
          queuedMax = { msgs: Math.max(queuedMax.msgs, q.tern_queued_messages), bytes: Math.max(queuedMax.bytes, q.tern_queued_bytes) };
          await sleep(250);
        }
      })();
      const N = FLOOD_S * LAT_RATE;
      t0 = performance.now();
      for (let seq = 0; seq < N; seq++) {
        const due = t0 + (seq * 1000) / LAT_RATE;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        tx.publish(topic, JSON.stringify({ seq, at: performance.now() }), { qos: 1 });
      }
      phase('pair done publishing');
      const reports = await Promise.all(floods.map((f) => f.result)).finally(() => { flooding = false; });
      await queueSampler;
      phase('flood done');
      const tFloodEnd = performance.now();
      // The silent sockets outlived the flood.
      silent.stdin.write('status\n');
      const mid = await silent.next('status', 5000);
      assert.equal(mid.closed, 0, `silent sockets closed before the end of the flood: ${JSON.stringify(mid)}`);
      assert.ok(tFloodEnd - tSilent < LIMITS.connect_timeout * 1000,
        `the flood ended ${Math.round(tFloodEnd - tSilent)} ms after the silent sockets opened, past connect_timeout`);

      // The last messages of the pair may still be on their way.
      for (const until = performance.now() + 10000; seen.size < N && performance.now() < until;) await sleep(50);
      if (process.env.LOAD_TRACE) console.log(`# trace ${JSON.stringify(trace.filter((x) => x[1] > 50))}`);

      // 5. The well-behaved pair.
      const lost = [];
      for (let seq = 0; seq < N; seq++) if (!seen.has(seq)) lost.push(seq);
      assert.deepEqual(lost, [], `the well-behaved subscriber lost ${lost.length} of ${N}`);
      assert.ok([...seen.values()].every((n) => n === 1), 'duplicates at the well-behaved subscriber');
      lat.sort((a, b) => a - b);
      const p50 = percentile(lat, 50);
      const p99 = percentile(lat, 99);
      const published = reports.reduce((s, r) => s + r.published, 0);
      const floodBytes = reports.reduce((s, r) => s + r.published * r.payload, 0);
      const info = `threads ${THREADS} ${TRANSPORT} ${sanitizer || 'release'}: flood ${published} msgs ` +
        `${(floodBytes / 1048576).toFixed(1)} MiB; pair p50 ${p50.toFixed(1)} ms p99 ${p99.toFixed(1)} ms max ` +
        `${lat[lat.length - 1].toFixed(1)} ms; RSS base ${(base / 1048576).toFixed(1)} MiB max ` +
        `${(maxRss / 1048576).toFixed(1)} MiB bound ${(memBound / 1048576).toFixed(1)} MiB`;
      console.log(`# load: ${info}`);
      console.log(`# load: published per flood process: ${reports.map((r) => `${r.qos}/${r.payload}: ${r.published}`).join(', ')}`);
      assert.ok(p50 <= p50Bound, `p50 latency ${p50.toFixed(1)} ms over ${p50Bound} ms (${info})`);
      assert.ok(p99 <= p99Bound, `p99 latency ${p99.toFixed(1)} ms over ${p99Bound} ms (${info})`);

      // 6. Memory, queues and drops. Per stalled subscriber: its queue
      // (max_queued_messages, max_queued_bytes) and its inflight window
      // (max_inflight_messages of up to max_packet_size); the pair's few
      // messages besides.
      const perSlowMsgs = LIMITS.max_queued_messages + LIMITS.max_inflight_messages;
      const perSlowBytes = LIMITS.max_queued_bytes + LIMITS.max_inflight_messages * LIMITS.max_packet_size;
      console.log(`# load: queued at most ${queuedMax.msgs} messages, ${queuedMax.bytes} bytes; bounds ${NSLOW * perSlowMsgs + 100}, ${NSLOW * perSlowBytes + 100 * 64}`);
      assert.ok(queuedMax.msgs <= NSLOW * perSlowMsgs + 100, `tern_queued_messages reached ${queuedMax.msgs}`);
      assert.ok(queuedMax.bytes <= NSLOW * perSlowBytes + 100 * 64, `tern_queued_bytes reached ${queuedMax.bytes}`);
      assert.ok(maxRss <= memBound, `ternd's RSS reached ${maxRss} bytes, bound ${memBound} (${info})`);
      const m = await metrics();
      assert.ok(m['tern_messages_dropped_total{reason="queue_full"}'] > dropsBefore,
        'no queue_full drops counted for the stalled subscribers');
      const alive = slow.filter((c) => !c.isClosed).length;
      assert.equal(alive, NSLOW, 'stalled subscribers were disconnected');

      // 7. The CONNECT deadline (checked every 250 ms by each worker)
      // closes every silent socket, not before connect_timeout.
      const end = await silent.next('closed', LIMITS.connect_timeout * 1000 + 10000);
      console.log(`# load: silent sockets closed: ${JSON.stringify(end.kinds)}`);
      assert.equal(end.closed, NSILENT);
      assert.equal(end.unexpected, 0, 'the broker sent bytes to a silent TCP socket');
      const ct = LIMITS.connect_timeout * 1000;
      const late = sanitizer ? 6000 : 3000;
      for (const [kind, k] of Object.entries(end.kinds)) {
        assert.ok(k.minMs >= ct - 5, `a silent ${kind} socket closed after ${k.minMs} ms, before the deadline of ${ct} ms`);
        assert.ok(k.maxMs <= ct + late, `a silent ${kind} socket closed after ${k.maxMs} ms, deadline ${ct} ms`);
      }
      // No socket without a CONNECT is left but the /metrics request
      // itself. (Counting clients too would wait for the flood's
      // publishers: the broker reads what their sockets buffered before it
      // sees them gone, seconds under TSan.)
      const unconnected = (m) => m.tern_sockets - m.tern_clients_connected;
      let left;
      for (const until = Date.now() + 5000; ;) {
        left = unconnected(await metrics());
        if (left <= 1 || Date.now() > until) break;
        await sleep(100);
      }
      assert.equal(left, 1, `sockets without CONNECT left after the deadline (clients the log shows connected: ${stillConnected().join(' ')})`);
      const m2 = await metrics();
      assert.ok(m2['tern_ws_handshake_failures_total{cause="timeout"}'] >= SILENT.wsIdle,
        'WebSocket sockets without a request not counted as handshake timeouts');
      console.log(`# load: dropped ${m['tern_messages_dropped_total{reason="queue_full"}'] - dropsBefore}, ` +
        `elapsed ${Math.round(performance.now() - tStart)} ms`);
    } finally {
      clearInterval(sampler);
      for (const f of floods) if (f.exitCode === null) f.kill('SIGTERM');
      if (silent && silent.exitCode === null) silent.kill('SIGTERM');
      for (const c of slow) c.destroy();
      await closeAll(...others);
    }
    await assertAlive(broker);
    const fresh = await connect(broker, { clientId: uid('after') });
    await closeAll(fresh);
  });
});
