// MQTT over WebSocket with another client library: Eclipse Paho for Python
// (Debian's python3-paho-mqtt 1.6.1, transport="websockets", path /mqtt)
// runs paho_ws.py against broker.wsPort: QoS 0/1/2 to itself, and a message
// published over TCP by MQTT.js. The script prints READY when it wants the
// TCP message and OK / FAIL at the end.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBroker } from './lib/broker.mjs';
import { connect, closeAll, uid, pub } from './lib/util.mjs';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'paho_ws.py');
// Debian's interpreter, which has python3-paho-mqtt (a python3 earlier in
// PATH, e.g. pyenv's, may not).
const PYTHON = process.env.TERN_PYTHON || '/usr/bin/python3';

let broker;
before(async () => { broker = await startBroker(); });
after(async () => { await broker.stop(); });

// Runs paho_ws.py; `onReady(topic)` is called when it prints READY.
// Resolves with { code, signal, out } (bounded: killed after `ms`).
function runPaho(args, onReady, ms = 30000) {
  return new Promise((resolve, reject) => {
    const proc = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let buf = '';
    const timer = setTimeout(() => { out += `\n[killed after ${ms} ms]`; proc.kill('SIGKILL'); }, ms);
    proc.stdout.on('data', (d) => {
      out += d; buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i); buf = buf.slice(i + 1);
        const m = /^READY (\S+)$/.exec(line);
        if (m) onReady(m[1]).catch((err) => { out += `\n[TCP publish failed: ${err.message}]`; proc.kill('SIGKILL'); });
      }
    });
    proc.stderr.on('data', (d) => { out += d; });
    proc.on('error', (err) => { clearTimeout(timer); reject(err); });
    proc.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out }); });
  });
}

describe('paho-mqtt (Python) over WebSocket', () => {
  for (const version of [4, 5]) {
    test(`v${version}: QoS 0/1/2 round trip over ws, and a message from MQTT.js over TCP`, { timeout: 60000 }, async () => {
      const prefix = uid(`paho${version}`);
      const tcpPayload = `from mqtt.js over tcp ${uid()}`;
      const tcp = await connect(broker, { url: broker.tcpUrl, protocolVersion: version });
      try {
        let readyTopic = null;
        const r = await runPaho([String(broker.wsPort), prefix, String(version), tcpPayload], async (topic) => {
          readyTopic = topic;
          await pub(tcp, topic, tcpPayload, { qos: 1 });
        });
        assert.equal(r.code, 0, `paho_ws.py exited with ${r.code} (${r.signal}):\n${r.out}`);
        assert.match(r.out, /^paho-mqtt 1\.6\./m);
        assert.match(r.out, /^selftest ok: .*q0', 0.*q1', 1.*q2', 2/m);
        assert.equal(readyTopic, `${prefix}/tcp`);
        assert.match(r.out, new RegExp(`^OK v${version} ${prefix}$`, 'm'));
      } finally { await closeAll(tcp); }
    });
  }
});
