// Starts a real broker process for one test file and stops it afterwards.
//
// The broker is `ternd` from $TERND (default build/ternd) with
// --threads $TERN_THREADS (default 1). With BROKER=mosquitto the same tests
// run against Debian's mosquitto instead, which is how the suite itself is
// checked against a reference implementation; tests of tern-only behaviour
// look at `broker.kind`.
//
// stop() fails the test when the broker exits non-zero or printed a
// sanitizer report, so ASan/UBSan/TSan findings fail the suite.
//
// Every broker also has an MQTT-over-WebSocket listener on a second free
// port (broker.wsPort, broker.wsUrl = ws://127.0.0.1:WSPORT/mqtt). With
// TERN_E2E_TRANSPORT=ws, broker.url is that ws URL, so every MQTT.js test
// runs over WebSocket; raw-packet tests always use broker.port (TCP), and
// broker.tcpUrl is the TCP URL whatever the transport.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const KIND = process.env.BROKER === 'mosquitto' ? 'mosquitto' : 'tern';
export const THREADS = Number(process.env.TERN_THREADS || 1);
export const TRANSPORT = process.env.TERN_E2E_TRANSPORT === 'ws' ? 'ws' : 'tcp';
if (process.env.TERN_E2E_TRANSPORT && !['ws', 'tcp'].includes(process.env.TERN_E2E_TRANSPORT)) {
  throw new Error(`TERN_E2E_TRANSPORT must be tcp or ws, not ${process.env.TERN_E2E_TRANSPORT}`);
}

// A loopback port nobody listens on now, below the kernel's ephemeral
// range (32768 on): test files run side by side (scripts/test.sh), and a
// port taken from the ephemeral range could become another client's
// source port before the broker binds it.
function listenOn(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export async function freePort() {
  for (let i = 0; i < 100; i++) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    if (await listenOn(port)) return port;
  }
  throw new Error('no free loopback port between 20000 and 32767');
}

function waitForPort(port, proc, ms) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (proc.exitCode !== null) {
        reject(new Error(`broker exited early with ${proc.exitCode}`));
        return;
      }
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`port ${port} never opened`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

const SANITIZER = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer)/;

// Starts a broker listening on two free loopback ports: MQTT over TCP
// (port) and MQTT over WebSocket (wsPort, path /mqtt).
//   opts.config: extra config lines (string), appended after the TCP
//                listener line, so per-listener keys apply to TCP
//   opts.args:   extra command-line arguments
//   opts.anonymous: allow_anonymous (default true)
//   opts.port, opts.wsPort: listen on these ports instead of free ones
//                (restarting a broker where clients expect it)
//   opts.global: config lines (string) before every listener line, for keys
//                that are global only there (max_connections)
//   opts.nofile: raise the broker's RLIMIT_NOFILE soft limit to this (a
//                `ulimit -n` in a shell that then execs the broker, so
//                proc.pid is the broker); above the hard limit the broker
//                does not start and the error says why
// Returns { kind, port, wsPort, host, url, tcpUrl, wsUrl, transport, stop(),
// kill(), output() }.
// A broker that could not bind a port another test took between
// freePort() and its start is started again on new ports (when the caller
// did not choose them).
export async function startBroker(opts = {}) {
  for (let tries = 1; ; tries++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (tries === 3 || opts.port || opts.wsPort || !/in use/i.test(err.message)) throw err;
    }
  }
}

async function startOnce(opts) {
  const port = opts.port || await freePort();
  let wsPort = opts.wsPort || await freePort();
  while (wsPort === port) wsPort = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-e2e-'));
  const conf = path.join(dir, 'broker.conf');
  const lines = [];
  // Global keys first, then the ws listener, then the TCP listener and
  // opts.config, whose per-listener keys thereby attach to TCP.
  if (opts.anonymous !== false) lines.push('allow_anonymous true');
  if (opts.global) lines.push(opts.global);
  // Mosquitto 2.0.11 binds its websockets listener to every address
  // whatever the bind address says; the tests only connect to 127.0.0.1.
  lines.push(KIND === 'mosquitto' ? `listener ${wsPort}` : `listener ${wsPort} 127.0.0.1`);
  lines.push('protocol websockets');
  lines.push(`listener ${port} 127.0.0.1`);
  if (opts.config) lines.push(opts.config);
  writeFileSync(conf, lines.join('\n') + '\n');

  let cmd; let args;
  if (KIND === 'mosquitto') {
    cmd = 'mosquitto'; args = ['-c', conf, '-v'];
  } else {
    cmd = process.env.TERND || 'build/ternd';
    args = ['-c', conf, '-v', '--threads', String(opts.threads || THREADS), ...(opts.args || [])];
  }
  if (opts.nofile) {
    args = ['-c', 'ulimit -n "$0" && exec "$@"', String(opts.nofile), cmd, ...args];
    cmd = '/bin/sh';
  }
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    await waitForPort(port, proc, 10000);
    await waitForPort(wsPort, proc, 10000);
  } catch (err) {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    throw new Error(`${err.message}\nconfig:\n${lines.join('\n')}\noutput:\n${out.slice(-4000)}`);
  }

  const tcpUrl = `mqtt://127.0.0.1:${port}`;
  const wsUrl = `ws://127.0.0.1:${wsPort}/mqtt`;
  return {
    kind: KIND,
    port,
    wsPort,
    host: '127.0.0.1',
    dir,
    transport: TRANSPORT,
    tcpUrl,
    wsUrl,
    // What MQTT.js clients connect to (TERN_E2E_TRANSPORT).
    url: TRANSPORT === 'ws' ? wsUrl : tcpUrl,
    proc,
    output: () => out,
    // Stops the broker with SIGTERM; rejects on a non-zero exit or a
    // sanitizer report.
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const { code, signal } = await exited;
      clearTimeout(timer);
      if (SANITIZER.test(out)) throw new Error(`sanitizer report from broker:\n${out.slice(-8000)}`);
      if (code !== 0) throw new Error(`broker exited with code ${code} signal ${signal}:\n${out.slice(-4000)}`);
    },
    // Kills the broker with SIGKILL (a crash) and waits until it is gone;
    // rejects only on a sanitizer report printed before the kill.
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
      if (SANITIZER.test(out)) throw new Error(`sanitizer report from broker:\n${out.slice(-8000)}`);
    },
  };
}
