// $SYS topics (CONVENTIONS.md), published every sys_interval (1 s here).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, KIND, TRANSPORT } from './lib/broker.mjs';
import { rawConnect } from './lib/raw.mjs';
import { connect, closeAll, uid, sleep, sub, pub } from './lib/util.mjs';

let broker;
before(async () => {
  broker = await startBroker({ config: 'sys_interval 1' });
  await sleep(1200); // let the first round of $SYS messages be published
});
after(async () => { await broker.stop(); });

// Subscribes a fresh client to one $SYS topic and returns the retained value.
async function readSys(name, timeout = 2500) {
  const c = await rawConnect(broker.port, { version: 5, clientId: uid('sys') });
  try {
    c.subscribe(1, [[`$SYS/broker/${name}`, 0]]);
    await c.expect('suback');
    const m = await c.expect('publish', { timeout });
    return { value: m.payload.toString(), retain: m.retain };
  } finally { c.destroy(); }
}

// Waits until $SYS/broker/<name> carries a value for which pred() is true.
async function waitSys(name, pred, timeout = 4000) {
  const w = await connect(broker, { protocolVersion: 5 });
  try {
    await sub(w, `$SYS/broker/${name}`, { qos: 0 });
    const [m] = await w.waitMessages(1, { timeout, filter: (x) => pred(x.payload) });
    return m.payload;
  } finally { await closeAll(w); }
}

const num = (s) => { assert.match(s, /^\d+$/, `not a count: ${s}`); return Number(s); };

describe('$SYS', () => {
  test('version is retained and names the broker', async () => {
    const { value, retain } = await readSys('version');
    assert.equal(retain, true);
    assert.match(value, KIND === 'tern' ? /^tern version \d+\.\d+/ : /^mosquitto version \d+\.\d+/);
  });

  test('uptime counts seconds', async () => {
    const a = await readSys('uptime');
    assert.equal(a.retain, true);
    assert.match(a.value, /^\d+ seconds$/);
    const first = parseInt(a.value, 10);
    const later = await waitSys('uptime', (v) => parseInt(v, 10) > first);
    assert.ok(parseInt(later, 10) - first <= 4, `uptime jumped from ${first} to ${later}`);
  });

  test('clients/connected follows connects and disconnects', async () => {
    // The watcher counts itself; take a value published after it connected.
    const w = await connect(broker, { protocolVersion: 5 });
    const extra = [];
    try {
      await sub(w, '$SYS/broker/clients/connected', { qos: 0 });
      // Values may be published every interval or only on change (mosquitto,
      // whose 1 s interval is really up to 2 s): after that, the last value
      // received is the current one.
      await w.waitMessages(1);
      await sleep(2300);
      const base = num(w.messages[w.messages.length - 1].payload);
      assert.ok(base >= 1, 'the watcher itself is connected');
      const after = (n, want) => (m) => w.messages.indexOf(m) >= n && Number(m.payload) === want;
      let n = w.messages.length;
      for (let i = 0; i < 3; i++) extra.push(await connect(broker, { protocolVersion: 4 }));
      await w.waitMessages(1, { timeout: 4000, filter: after(n, base + 3) });
      n = w.messages.length;
      await closeAll(extra);
      await w.waitMessages(1, { timeout: 4000, filter: after(n, base) });
    } finally { await closeAll(extra, w); }
  });

  test('clients/total, maximum, disconnected are counts; maximum ≥ connected', async () => {
    const connected = num((await readSys('clients/connected')).value);
    const maximum = num((await readSys('clients/maximum')).value);
    num((await readSys('clients/total')).value);
    num((await readSys('clients/disconnected')).value);
    assert.ok(maximum >= connected);
  });

  test('publish/messages/received grows when clients publish', async () => {
    const before = num((await readSys('publish/messages/received')).value);
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      for (let i = 0; i < 5; i++) await pub(p, `${uid()}/x`, 'x', { qos: 1 });
      await waitSys('publish/messages/received', (v) => Number(v) >= before + 5);
    } finally { await closeAll(p); }
  });

  test('subscriptions/count and retained messages/count follow the state', async () => {
    const subsBefore = num((await readSys('subscriptions/count')).value);
    const retBefore = num((await readSys('retained messages/count')).value);
    const P = uid();
    const c = await connect(broker, { protocolVersion: 5 });
    try {
      await sub(c, `${P}/a`, { qos: 0 });
      await sub(c, `${P}/b`, { qos: 0 });
      await pub(c, `${P}/r`, 'kept', { qos: 1, retain: true });
      await waitSys('subscriptions/count', (v) => Number(v) >= subsBefore + 2);
      await waitSys('retained messages/count', (v) => Number(v) === retBefore + 1);
      await pub(c, `${P}/r`, '', { qos: 1, retain: true });
      await waitSys('retained messages/count', (v) => Number(v) === retBefore);
    } finally { await closeAll(c); }
  });

  test('the documented counters exist', async () => {
    const names = [
      'messages/received', 'messages/sent', 'publish/messages/received', 'publish/messages/sent',
      'publish/messages/dropped', 'bytes/received', 'bytes/sent', 'load/messages/received/1min',
      'load/messages/received/5min', 'load/messages/received/15min', 'store/messages/count',
      'store/messages/bytes', 'heap/current', 'heap/maximum',
    ];
    for (const n of names) {
      const { value } = await readSys(n);
      assert.match(value, /^\d+(\.\d+)?$/, `$SYS/broker/${n} = ${value}`);
    }
  });

  test(`tern: $SYS/broker/transport/${TRANSPORT}/connected`, { skip: KIND !== 'tern' && 'tern-only topic' }, async () => {
    // Tests run one at a time, so while this one runs the only MQTT.js
    // clients (on broker.url: tcp, or ws with TERN_E2E_TRANSPORT=ws) are c
    // and waitSys's own watcher; readSys's raw clients are TCP.
    const name = `transport/${broker.transport}/connected`;
    const c = await connect(broker, { protocolVersion: 5 });
    try {
      await waitSys(name, (v) => Number(v) === 2);
    } finally { await closeAll(c); }
    await waitSys(name, (v) => Number(v) === 1);
  });

  test('tern: WebSocket frames received and sent are counted', { skip: KIND !== 'tern' && 'tern-only topics' }, async () => {
    const before = Number(await waitSys('transport/ws/frames/received', () => true));
    const c = await connect(broker, { protocolVersion: 5, url: broker.wsUrl });
    try {
      for (let i = 0; i < 5; i++) await pub(c, `${uid()}/f`, String(i), { qos: 1 });
      // CONNECT and five PUBLISHes are at least six client frames.
      await waitSys('transport/ws/frames/received', (v) => Number(v) >= before + 6);
      await waitSys('transport/ws/frames/sent', (v) => Number(v) > 0);
    } finally { await closeAll(c); }
  });

  test('a wildcard subscription at the root does not receive $SYS', async () => {
    const w = await connect(broker, { protocolVersion: 5 });
    try {
      await sub(w, '#', { qos: 0 });
      await sub(w, '+/broker/#', { qos: 0 });
      await sleep(1500);
      assert.deepEqual(w.messages.filter((m) => m.topic.startsWith('$')).map((m) => m.topic), []);
    } finally { await closeAll(w); }
  });
});
