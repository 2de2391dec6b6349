// Retained messages (MQTT 3.1.1 §3.3.1.3, MQTT 5.0 §3.3.1.3, §3.3.2.3.3).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from './lib/broker.mjs';
import { rawConnect, enc } from './lib/raw.mjs';
import { connect, closeAll, uid, sleep, pub } from './lib/util.mjs';

let broker;
before(async () => { broker = await startBroker(); });
after(async () => { await broker.stop(); });

// Subscribes a fresh raw client to `filter` and returns the retained
// messages it gets within `ms`.
async function retainedFor(filter, { version = 5, qos = 2, ms = 400 } = {}) {
  const c = await rawConnect(broker.port, { version, clientId: uid('r') });
  try {
    c.subscribe(1, [[filter, qos]]);
    await c.expect('suback');
    return await c.collect('publish', ms);
  } finally { c.destroy(); }
}

describe('retained messages', () => {
  for (const protocolVersion of [4, 5]) {
    test(`v${protocolVersion}: stored, delivered on subscribe with RETAIN 1, replaced, deleted by an empty payload`, async () => {
      const t = `${uid()}/r`;
      const p = await connect(broker, { protocolVersion });
      try {
        await pub(p, t, 'first', { qos: 1, retain: true });
        let got = await retainedFor(t, { version: protocolVersion });
        assert.equal(got.length, 1);
        assert.equal(got[0].payload.toString(), 'first');
        assert.equal(got[0].retain, true);
        assert.equal(got[0].topic, t);

        await pub(p, t, 'second', { qos: 1, retain: true });
        got = await retainedFor(t, { version: protocolVersion });
        assert.deepEqual(got.map((m) => m.payload.toString()), ['second']);

        // A retained message with an empty payload removes the stored one
        // and is itself not stored (MQTT-3.3.1-10/11).
        await pub(p, t, '', { qos: 1, retain: true });
        got = await retainedFor(t, { version: protocolVersion, ms: 300 });
        assert.deepEqual(got, []);
      } finally { await closeAll(p); }
    });
  }

  test('a non-retained publish does not replace the retained message', async () => {
    const t = `${uid()}/r`;
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await pub(p, t, 'kept', { qos: 1, retain: true });
      await pub(p, t, 'live', { qos: 1, retain: false });
      const got = await retainedFor(t);
      assert.deepEqual(got.map((m) => m.payload.toString()), ['kept']);
    } finally {
      await pub(p, t, '', { qos: 1, retain: true });
      await closeAll(p);
    }
  });

  test('a wildcard subscription gets every matching retained message', async () => {
    const P = uid();
    const p = await connect(broker, { protocolVersion: 5 });
    const topics = [`${P}/a`, `${P}/b/c`, `${P}/d`];
    try {
      for (const t of topics) await pub(p, t, t, { qos: 1, retain: true });
      await pub(p, `${P}-other`, 'no', { qos: 1, retain: true });
      const got = await retainedFor(`${P}/#`);
      assert.deepEqual(got.map((m) => m.topic).sort(), [...topics].sort());
      for (const m of got) assert.equal(m.retain, true);
      const plus = await retainedFor(`${P}/+`);
      assert.deepEqual(plus.map((m) => m.topic).sort(), [`${P}/a`, `${P}/d`]);
    } finally {
      for (const t of [...topics, `${P}-other`]) await pub(p, t, '', { qos: 1, retain: true });
      await closeAll(p);
    }
  });

  test('retained QoS is downgraded to the subscription QoS', async () => {
    const t = `${uid()}/r`;
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await pub(p, t, 'q2', { qos: 2, retain: true });
      for (const q of [0, 1, 2]) {
        const got = await retainedFor(t, { qos: q });
        assert.equal(got.length, 1);
        assert.equal(got[0].qos, q);
      }
    } finally {
      await pub(p, t, '', { qos: 1, retain: true });
      await closeAll(p);
    }
  });

  test('retained message published with QoS 0 is stored', async () => {
    const t = `${uid()}/r`;
    const p = await connect(broker, { protocolVersion: 4 });
    try {
      await pub(p, t, 'q0', { qos: 0, retain: true });
      await sleep(100);
      const got = await retainedFor(t, { version: 4 });
      assert.deepEqual(got.map((m) => [m.payload.toString(), m.qos]), [['q0', 0]]);
    } finally {
      await pub(p, t, '', { qos: 0, retain: true });
      await closeAll(p);
    }
  });

  test('v5: retained properties are kept (content type, user properties)', async () => {
    const t = `${uid()}/r`;
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await pub(p, t, '{}', {
        qos: 1,
        retain: true,
        properties: { contentType: 'application/json', payloadFormatIndicator: true, userProperties: { k: 'v' } },
      });
      const [m] = await retainedFor(t);
      assert.equal(m.props.contentType, 'application/json');
      assert.equal(m.props.payloadFormatIndicator, 1);
      assert.deepEqual(m.props.userProperties, [['k', 'v']]);
    } finally {
      await pub(p, t, '', { qos: 1, retain: true });
      await closeAll(p);
    }
  });
});

describe('message expiry (v5 §3.3.2.3.3)', () => {
  test('retained message with expiry: remaining interval forwarded, gone after expiry', async () => {
    const t = `${uid()}/r`;
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await pub(p, t, 'exp', { qos: 1, retain: true, properties: { messageExpiryInterval: 3 } });
      await sleep(1200);
      let got = await retainedFor(t, { ms: 300 });
      assert.equal(got.length, 1);
      const left = got[0].props.messageExpiryInterval;
      assert.equal(typeof left, 'number', 'Message Expiry Interval must be forwarded');
      assert.ok(left >= 1 && left <= 2, `remaining interval ${left}, expected 3 minus the time waited`);
      await sleep(2200);
      got = await retainedFor(t, { ms: 300 });
      assert.deepEqual(got, [], 'expired retained message delivered');
    } finally {
      await pub(p, t, '', { qos: 1, retain: true });
      await closeAll(p);
    }
  });

  test('expired messages queued for an offline session are not delivered', async () => {
    const P = uid();
    const id = uid('exp');
    let c = await rawConnect(broker.port, { version: 5, clientId: id, clean: false, props: { sessionExpiryInterval: 60 } });
    c.subscribe(1, [[`${P}/t`, 1]]);
    await c.expect('suback');
    c.disconnect();
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await pub(p, `${P}/t`, 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
      await pub(p, `${P}/t`, 'long', { qos: 1, properties: { messageExpiryInterval: 100 } });
      await pub(p, `${P}/t`, 'none', { qos: 1 });
      await sleep(2100);
      c = await rawConnect(broker.port, { version: 5, clientId: id, clean: false, props: { sessionExpiryInterval: 0 } });
      assert.equal(c.connack.sessionPresent, true);
      const got = [];
      for (;;) {
        const m = await c.expect('publish', { timeout: 600 }).catch(() => null);
        if (!m) break;
        c.send(enc.puback(m.id));
        got.push(m);
      }
      assert.deepEqual(got.map((m) => m.payload.toString()), ['long', 'none']);
      const left = got[0].props.messageExpiryInterval;
      assert.ok(left >= 95 && left <= 98, `remaining expiry ${left}`);
      assert.equal(got[1].props.messageExpiryInterval, undefined);
    } finally { c.destroy(); await closeAll(p); }
  });
});
