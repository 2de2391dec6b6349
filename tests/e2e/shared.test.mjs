// Shared subscriptions $share/{group}/{filter} (MQTT 5.0 §4.8.2; also
// accepted from 3.1.1 clients, as Mosquitto does).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, KIND } from './lib/broker.mjs';
import { rawConnect } from './lib/raw.mjs';
import { connect, closeAll, uid, sleep, sub, pub } from './lib/util.mjs';

let broker;
before(async () => { broker = await startBroker(); });
after(async () => { await broker.stop(); });

const payloads = (c) => c.messages.map((m) => m.payload);

describe('shared subscriptions', () => {
  for (const protocolVersion of [5, 4]) {
    test(`v${protocolVersion}: each message goes to exactly one member, round robin`, async () => {
      const P = uid();
      const a = await connect(broker, { protocolVersion });
      const b = await connect(broker, { protocolVersion });
      const p = await connect(broker, { protocolVersion: 5 });
      try {
        await sub(a, `$share/g/${P}/t`, { qos: 1 });
        await sub(b, `$share/g/${P}/t`, { qos: 1 });
        const N = 10;
        for (let i = 0; i < N; i++) await pub(p, `${P}/t`, String(i), { qos: 1 });
        await within2(() => a.messages.length + b.messages.length >= N);
        await sleep(300);
        const all = [...payloads(a), ...payloads(b)].map(Number).sort((x, y) => x - y);
        assert.deepEqual(all, [...Array(N).keys()], 'each message exactly once across the group');
        // Round robin: the two members alternate.
        assert.ok(Math.abs(a.messages.length - b.messages.length) <= 1, `split ${a.messages.length}/${b.messages.length}`);
        for (const m of [...a.messages, ...b.messages]) assert.equal(m.topic, `${P}/t`, 'delivered with the publish topic');
      } finally { await closeAll(a, b, p); }
    });
  }

  test('delivery continues to the remaining member when one leaves', async () => {
    const P = uid();
    const a = await connect(broker, { protocolVersion: 5 });
    const b = await connect(broker, { protocolVersion: 5 });
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await sub(a, `$share/g/${P}/#`, { qos: 1 });
      await sub(b, `$share/g/${P}/#`, { qos: 1 });
      await closeAll(a);
      await sleep(200);
      for (let i = 0; i < 6; i++) await pub(p, `${P}/x/${i}`, String(i), { qos: 1 });
      await b.waitMessages(6);
      assert.deepEqual(payloads(b), ['0', '1', '2', '3', '4', '5']);
    } finally { await closeAll(a, b, p); }
  });

  test('delivery continues when a member unsubscribes', async () => {
    const P = uid();
    const a = await connect(broker, { protocolVersion: 5 });
    const b = await connect(broker, { protocolVersion: 5 });
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await sub(a, `$share/g/${P}/t`, { qos: 0 });
      await sub(b, `$share/g/${P}/t`, { qos: 0 });
      await a.unsubscribeAsync(`$share/g/${P}/t`);
      for (let i = 0; i < 4; i++) await pub(p, `${P}/t`, String(i), { qos: 1 });
      await b.waitMessages(4);
      await sleep(200);
      assert.deepEqual(payloads(a), []);
    } finally { await closeAll(a, b, p); }
  });

  test('groups are independent, and a normal subscriber gets every message', async () => {
    const P = uid();
    const g1a = await connect(broker, { protocolVersion: 5 });
    const g1b = await connect(broker, { protocolVersion: 5 });
    const g2 = await connect(broker, { protocolVersion: 5 });
    const plain = await connect(broker, { protocolVersion: 5 });
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await sub(g1a, `$share/one/${P}/t`, { qos: 1 });
      await sub(g1b, `$share/one/${P}/t`, { qos: 1 });
      await sub(g2, `$share/two/${P}/t`, { qos: 1 });
      await sub(plain, `${P}/t`, { qos: 1 });
      for (let i = 0; i < 6; i++) await pub(p, `${P}/t`, String(i), { qos: 1 });
      await g2.waitMessages(6);
      await plain.waitMessages(6);
      await within2(() => g1a.messages.length + g1b.messages.length >= 6);
      await sleep(300);
      assert.equal(g1a.messages.length + g1b.messages.length, 6);
      assert.deepEqual(payloads(g2), ['0', '1', '2', '3', '4', '5']);
      assert.deepEqual(payloads(plain), ['0', '1', '2', '3', '4', '5']);
    } finally { await closeAll(g1a, g1b, g2, plain, p); }
  });

  test('a member subscribed both shared and directly gets one copy per subscription', async () => {
    const P = uid();
    const a = await connect(broker, { protocolVersion: 5 });
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await sub(a, `$share/g/${P}/t`, { qos: 1 });
      await sub(a, `${P}/t`, { qos: 1 });
      await pub(p, `${P}/t`, 'x', { qos: 1 });
      await a.waitMessages(2);
      await sleep(300);
      assert.equal(a.messages.length, 2);
    } finally { await closeAll(a, p); }
  });

  // §3.3.1.3: retained messages are sent "when a new Non-shared Subscription
  // is made". mosquitto 2.0.11 sends them to shared subscribers too.
  test('v5: retained messages are not sent for a new shared subscription (§3.3.1.3)', {
    skip: KIND !== 'tern' && 'mosquitto 2.0.11 sends retained messages to shared subscriptions',
  }, async () => {
    const P = uid();
    const p = await connect(broker, { protocolVersion: 5 });
    const c = await rawConnect(broker.port, { version: 5, clientId: uid('s') });
    try {
      await pub(p, `${P}/t`, 'kept', { qos: 1, retain: true });
      c.subscribe(1, [[`$share/g/${P}/t`, 1]]);
      await c.expect('suback');
      assert.deepEqual(await c.collect('publish', 400), []);
    } finally {
      await pub(p, `${P}/t`, '', { qos: 1, retain: true });
      c.destroy();
      await closeAll(p);
    }
  });

  // MQTT-3.8.3-4. mosquitto 2.0.11 grants such a subscription.
  test('v5: no local on a shared subscription is a protocol error (MQTT-3.8.3-4)', {
    skip: KIND !== 'tern' && 'mosquitto 2.0.11 accepts No Local on a shared subscription',
  }, async () => {
    const c = await rawConnect(broker.port, { version: 5, clientId: uid('nl') });
    try {
      c.subscribe(1, [{ filter: `$share/g/${uid()}/t`, qos: 1, nl: true }]);
      const log = await c.closed(2000);
      const d = log.find((x) => x.type === 'disconnect');
      const sa = log.find((x) => x.type === 'suback');
      assert.equal(sa, undefined, 'the SUBSCRIBE must not be granted');
      if (KIND === 'tern') assert.ok(d, 'no DISCONNECT before close');
      if (d) assert.equal(d.reason, 0x82);
    } finally { c.destroy(); }
  });
});

// Polls cond() every 20 ms for up to 3 s.
async function within2(cond, ms = 3000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout waiting for shared deliveries');
    await sleep(20);
  }
}

describe('shared subscriptions: hand-over', () => {
  // MQTT 5 §4.8.2: if a member's session ends with messages it never
  // acknowledged, the server should hand them to another member rather
  // than lose them (Mosquitto 2.0.11 does not).
  test('QoS 1 messages a leaving member never acknowledged go to another member', { skip: KIND !== 'tern' && 'mosquitto 2.0.11 drops them' }, async () => {
    const P = uid();
    const leaver = await rawConnect(broker.port, { version: 5, clientId: uid('leave') });
    const stayer = await connect(broker, { protocolVersion: 5 });
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      leaver.subscribe(1, [[`$share/g/${P}/t`, 1]]);
      await leaver.expect('suback');
      await sub(stayer, `$share/g/${P}/t`, { qos: 1 });
      // Round robin gives each member every other message; the leaver
      // acknowledges none of its share.
      for (let i = 0; i < 6; i++) await pub(p, `${P}/t`, String(i), { qos: 1 });
      const got = await leaver.collect('publish', 500);
      assert.ok(got.length > 0, 'the leaving member received some messages');
      leaver.destroy(); // session expiry 0: its session ends now
      await within2(() => stayer.messages.length >= 6);
      const all = payloads(stayer).map(Number).sort((x, y) => x - y);
      assert.deepEqual(all, [0, 1, 2, 3, 4, 5], 'every message reached the remaining member');
    } finally { leaver.destroy(); await closeAll(stayer, p); }
  });
});
