// A child process of load.test.mjs that holds thousands of connections
// which never send CONNECT, so that their descriptors count against this
// process's RLIMIT_NOFILE (raised by the parent's `ulimit -n`), not the
// test's, and the test's own event loop (measuring latency) is not the one
// watching them.
//
//   node silent_sockets.mjs '{"port":P,"wsPort":W,"tcp":4500,"wsIdle":250,
//                             "wsUpgraded":250,"sources":20}'
//
// Connections come from 127.0.0.2 .. 127.0.0.(1+sources). Kinds: "tcp"
// (MQTT listener, nothing sent), "wsIdle" (WebSocket listener, no HTTP
// request), "wsUpgraded" (a correct upgrade, 101 read, then no CONNECT).
// Reports JSON lines on stdout:
//   {"event":"open", counts by kind, "failed": n, "ms": time to open all}
//   {"event":"status", "closed": n, "unexpected": bytes received on silent
//    TCP sockets}   on "status\n" on stdin
//   {"event":"closed", "closed": n, "total": n, per kind: {n, minMs, maxMs}
//    of the lifetimes (connect() called to closed), "unexpected"}   once every socket
//    has closed (the broker closed them).
// Exits after the "closed" report or when stdin ends.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

const cfg = JSON.parse(process.argv[2]);
const PAR = 200; // connection set-ups in flight at once
const socks = [];
const stats = {};
let failed = 0;
let closed = 0;
let unexpected = 0;
let reported = false;

function say(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function upgradeRequest(port) {
  return ['GET /mqtt HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Upgrade: websocket',
    'Connection: Upgrade', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: mqtt', '', ''].join('\r\n');
}

// Opens one socket of `kind`; resolves once it is ready (connected, or
// upgraded for wsUpgraded), rejects on error or after 10 s.
function open(kind, i) {
  const port = kind === 'tcp' ? cfg.port : cfg.wsPort;
  const localAddress = `127.0.0.${2 + (i % cfg.sources)}`;
  // Lifetimes count from before connect(): the broker accepted the socket
  // (and started its CONNECT deadline) after that, while a 'connect'
  // event may be handled late when this loop is busy opening the others.
  const startedAt = performance.now();
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    const rec = { kind, s, startedAt, openedAt: 0, closedAt: 0, head: '' };
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`${kind} open timeout`)); }, 10000);
    s.on('error', () => {});
    s.on('close', () => {
      rec.closedAt = performance.now();
      if (!rec.openedAt) { clearTimeout(timer); reject(new Error(`${kind} closed before ready`)); return; }
      closed++;
      if (closed === socks.length) report();
    });
    s.on('data', (d) => {
      if (kind === 'tcp') { unexpected += d.length; return; }
      if (kind !== 'wsUpgraded' || rec.openedAt) return;
      rec.head += d.toString('latin1');
      if (rec.head.includes('\r\n\r\n')) {
        clearTimeout(timer);
        if (!/^HTTP\/1\.1 101 /.test(rec.head)) { s.destroy(); reject(new Error(`upgrade refused: ${rec.head.split('\r\n')[0]}`)); return; }
        rec.openedAt = performance.now();
        socks.push(rec);
        resolve();
      }
    });
    s.once('connect', () => {
      if (kind === 'wsUpgraded') { s.write(upgradeRequest(port)); return; }
      clearTimeout(timer);
      rec.openedAt = performance.now();
      socks.push(rec);
      resolve();
    });
  });
}

function report() {
  if (reported) return;
  reported = true;
  const kinds = {};
  for (const r of socks) {
    if (!r.closedAt) continue;
    const k = kinds[r.kind] || (kinds[r.kind] = { n: 0, minMs: Infinity, maxMs: 0 });
    const life = r.closedAt - r.startedAt;
    k.n++;
    k.minMs = Math.min(k.minMs, Math.round(life));
    k.maxMs = Math.max(k.maxMs, Math.round(life));
  }
  say({ event: 'closed', closed, total: socks.length, kinds, unexpected });
  setTimeout(() => process.exit(0), 50);
}

async function main() {
  const jobs = [];
  for (const kind of ['tcp', 'wsIdle', 'wsUpgraded']) for (let i = 0; i < (cfg[kind] || 0); i++) jobs.push([kind, i]);
  const t0 = performance.now();
  let next = 0;
  async function lane() {
    while (next < jobs.length) {
      const [kind, i] = jobs[next++];
      try { await open(kind, i); stats[kind] = (stats[kind] || 0) + 1; } catch { failed++; }
    }
  }
  await Promise.all(Array.from({ length: PAR }, lane));
  say({ event: 'open', ...stats, failed, closedMeanwhile: closed, ms: Math.round(performance.now() - t0) });
}

process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => { if (d.includes('status')) say({ event: 'status', closed, unexpected }); });
process.stdin.on('end', () => process.exit(0));
main().catch((e) => { say({ event: 'error', message: String(e) }); process.exit(1); });
