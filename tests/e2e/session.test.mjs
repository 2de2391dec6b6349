// Persistent sessions: offline queueing, retransmission, queue bounds
// (MQTT 3.1.1 §3.1.2.4, §4.4; MQTT 5.0 §3.1.2.4, §4.1, §4.4).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from './lib/broker.mjs';
import { rawConnect, enc } from './lib/raw.mjs';
import { connect, closeAll, uid, sleep, pub } from './lib/util.mjs';

let broker;
before(async () => { broker = await startBroker({ config: 'max_queued_messages 5' }); });
after(async () => { await broker.stop(); });

function persistent(version, clientId, extra = {}) {
  return {
    version, clientId, clean: false,
    ...(version === 5 ? { props: { sessionExpiryInterval: 60 } } : {}),
    ...extra,
  };
}

// Receives every PUBLISH until `quiet` ms pass without one, completing the
// QoS 1/2 flows.
async function drain(c, quiet = 500) {
  const got = [];
  for (;;) {
    const m = await c.expect('publish', { timeout: quiet }).catch(() => null);
    if (!m) return got;
    got.push(m);
    if (m.qos === 1) c.send(enc.puback(m.id));
    if (m.qos === 2) {
      c.send(enc.pubrec(m.id));
      await c.expect('pubrel');
      c.send(enc.pubcomp(m.id));
    }
  }
}

async function endSession(c) {
  if (c.version === 5) c.disconnect({ reason: 0, props: { sessionExpiryInterval: 0 } });
  else c.disconnect();
  await c.closed(2000).catch(() => {});
}

describe('offline queueing', () => {
  for (const version of [4, 5]) {
    test(`v${version}: QoS 1 and 2 messages published while offline are delivered on reconnect, in order`, async () => {
      const P = uid();
      const id = uid('q');
      let c = await rawConnect(broker.port, persistent(version, id));
      c.subscribe(1, [[`${P}/#`, 2]]);
      await c.expect('suback');
      c.disconnect();
      await c.closed(2000);
      const p = await connect(broker, { protocolVersion: 5 });
      try {
        await pub(p, `${P}/a`, 'q1', { qos: 1 });
        await pub(p, `${P}/b`, 'q2', { qos: 2 });
        await pub(p, `${P}/a`, 'q1b', { qos: 1 });
        c = await rawConnect(broker.port, persistent(version, id));
        assert.equal(c.connack.sessionPresent, true);
        const got = await drain(c);
        assert.deepEqual(got.map((m) => [m.payload.toString(), m.qos]), [['q1', 1], ['q2', 2], ['q1b', 1]]);
        for (const m of got) assert.equal(m.dup, false, 'first transmission must have DUP 0');
      } finally { await endSession(c); await closeAll(p); }
    });
  }

  test('subscriptions survive the reconnect (new messages still delivered)', async () => {
    const P = uid();
    const id = uid('q');
    let c = await rawConnect(broker.port, persistent(5, id));
    c.subscribe(1, [[`${P}/t`, 1]]);
    await c.expect('suback');
    c.destroy();
    await sleep(200);
    c = await rawConnect(broker.port, persistent(5, id));
    const p = await connect(broker, { protocolVersion: 4 });
    try {
      assert.equal(c.connack.sessionPresent, true);
      await pub(p, `${P}/t`, 'after', { qos: 1 });
      const m = await c.expect('publish');
      assert.equal(m.payload.toString(), 'after');
      c.send(enc.puback(m.id));
    } finally { await endSession(c); await closeAll(p); }
  });

  test('offline queue is bounded by max_queued_messages (5)', async () => {
    const P = uid();
    const id = uid('bound');
    let c = await rawConnect(broker.port, persistent(5, id));
    c.subscribe(1, [[`${P}/t`, 1]]);
    await c.expect('suback');
    c.disconnect();
    await c.closed(2000);
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      for (let i = 0; i < 12; i++) await pub(p, `${P}/t`, String(i), { qos: 1 });
      c = await rawConnect(broker.port, persistent(5, id));
      const got = (await drain(c)).map((m) => Number(m.payload.toString()));
      assert.equal(got.length, 5, `${got.length} queued messages delivered, bound is 5: ${got}`);
      assert.deepEqual(got, [...got].sort((a, b) => a - b), 'queued messages out of order');
      // The session still works after dropping.
      await pub(p, `${P}/t`, 'live', { qos: 1 });
      const m = await c.expect('publish');
      assert.equal(m.payload.toString(), 'live');
      c.send(enc.puback(m.id));
    } finally { await endSession(c); await closeAll(p); }
  });

  test('clean start discards queued messages', async () => {
    const P = uid();
    const id = uid('cs');
    let c = await rawConnect(broker.port, persistent(5, id));
    c.subscribe(1, [[`${P}/t`, 1]]);
    await c.expect('suback');
    c.disconnect();
    await c.closed(2000);
    const p = await connect(broker, { protocolVersion: 5 });
    try {
      await pub(p, `${P}/t`, 'stale', { qos: 1 });
      c = await rawConnect(broker.port, { version: 5, clientId: id, clean: true });
      assert.equal(c.connack.sessionPresent, false);
      assert.deepEqual(await c.collect('publish', 400), []);
    } finally { await endSession(c); await closeAll(p); }
  });
});

describe('retransmission (§4.4)', () => {
  for (const version of [4, 5]) {
    test(`v${version}: unacknowledged QoS 1 PUBLISH is resent with DUP 1 and the same packet id`, async () => {
      const P = uid();
      const id = uid('re');
      let c = await rawConnect(broker.port, persistent(version, id));
      const p = await connect(broker, { protocolVersion: 5 });
      try {
        c.subscribe(1, [[`${P}/t`, 1]]);
        await c.expect('suback');
        await pub(p, `${P}/t`, 'unacked', { qos: 1 });
        const first = await c.expect('publish');
        assert.equal(first.dup, false);
        c.destroy();   // no PUBACK
        await sleep(200);
        c = await rawConnect(broker.port, persistent(version, id));
        assert.equal(c.connack.sessionPresent, true);
        const again = await c.expect('publish');
        assert.equal(again.payload.toString(), 'unacked');
        assert.equal(again.dup, true, 'a resent PUBLISH must have DUP 1 (MQTT-3.3.1-1)');
        assert.equal(again.id, first.id, 'original packet identifier (MQTT-4.4.0-1)');
        assert.equal(again.qos, 1);
        c.send(enc.puback(again.id));
        assert.deepEqual(await c.collect('publish', 300), []);
      } finally { await endSession(c); await closeAll(p); }
    });

    test(`v${version}: QoS 2: after PUBREC the server resends PUBREL, not the PUBLISH`, async () => {
      const P = uid();
      const id = uid('re2');
      let c = await rawConnect(broker.port, persistent(version, id));
      const p = await connect(broker, { protocolVersion: 5 });
      try {
        c.subscribe(1, [[`${P}/t`, 2]]);
        await c.expect('suback');
        await pub(p, `${P}/t`, 'x', { qos: 2 });
        const m = await c.expect('publish');
        c.send(enc.pubrec(m.id));
        const rel = await c.expect('pubrel');
        assert.equal(rel.id, m.id);
        c.destroy();   // no PUBCOMP
        await sleep(200);
        c = await rawConnect(broker.port, persistent(version, id));
        const rel2 = await c.expect('pubrel');
        assert.equal(rel2.id, m.id);
        assert.equal(rel2.flags, 0x2);
        c.send(enc.pubcomp(m.id));
        assert.deepEqual(await c.collect('publish', 300), [], 'PUBLISH resent after PUBREC');
      } finally { await endSession(c); await closeAll(p); }
    });
  }

  test('QoS 2 from client: PUBLISH resent after reconnect is not delivered twice', async () => {
    const P = uid();
    const id = uid('in2');
    const s = await connect(broker, { protocolVersion: 5 });
    let c = await rawConnect(broker.port, persistent(5, id));
    try {
      await s.subscribeAsync(`${P}/t`, { qos: 2 });
      c.publish({ topic: `${P}/t`, qos: 2, id: 42, payload: 'once' });
      await c.expect('pubrec');
      c.destroy();
      await sleep(200);
      c = await rawConnect(broker.port, persistent(5, id));
      c.publish({ topic: `${P}/t`, qos: 2, id: 42, payload: 'once', dup: true });
      const rec = await c.expect('pubrec');
      assert.equal(rec.id, 42);
      c.send(enc.pubrel(42));
      await c.expect('pubcomp');
      await s.waitMessages(1);
      await sleep(300);
      assert.equal(s.messages.length, 1, 'QoS 2 message delivered twice');
    } finally { await endSession(c); await closeAll(s); }
  });
});
