// max_subscriptions_per_client (tern's key; issue 7 limits): a session
// holds at most N filters. Beyond that a new filter gets SUBACK 0x97
// (Quota exceeded; v3 0x80) while the client stays connected, replacing
// an existing filter still works, and unsubscribing frees a place. Other
// clients are not affected.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KIND, startBroker } from './lib/broker.mjs';
import { enc, rawConnect } from './lib/raw.mjs';
import { assertAlive, uid } from './lib/util.mjs';

let broker;

describe('max_subscriptions_per_client', { skip: KIND !== 'tern' && 'a tern key' }, () => {
  before(async () => { broker = await startBroker({ config: 'max_subscriptions_per_client 3' }); });
  after(async () => { await broker.stop(); });

  for (const version of [4, 5]) {
    test(`v${version}: the 4th filter is refused (${version === 5 ? '0x97' : '0x80'}), a re-subscribe replaces, UNSUBSCRIBE frees a place`, async () => {
      const t = uid('sl');
      const c = await rawConnect(broker.port, { version, clientId: uid('c') });
      try {
        // Four filters in one SUBSCRIBE: three granted, the fourth refused.
        c.subscribe(1, [[`${t}/1`, 1], [`${t}/2`, 1], [`${t}/3`, 1], [`${t}/4`, 1]]);
        let ack = await c.expect('suback');
        assert.deepEqual(ack.reasons, [1, 1, 1, version === 5 ? 0x97 : 0x80]);
        // The same filter again replaces it (new QoS), within the cap.
        c.subscribe(2, [[`${t}/2`, 0]]);
        ack = await c.expect('suback');
        assert.deepEqual(ack.reasons, [0]);
        c.unsubscribe(3, [`${t}/1`]);
        await c.expect('unsuback');
        c.subscribe(4, [[`${t}/4`, 1], [`${t}/5`, 1]]);
        ack = await c.expect('suback');
        assert.deepEqual(ack.reasons, [1, version === 5 ? 0x97 : 0x80]);
        // Still connected and served.
        c.publish({ topic: `${t}/4`, payload: 'x', qos: 0 });
        const m = await c.expect('publish');
        assert.equal(m.topic, `${t}/4`);
        // Another client has its own allowance.
        const d = await rawConnect(broker.port, { version, clientId: uid('d') });
        try {
          d.subscribe(1, [[`${t}/a`, 0], [`${t}/b`, 0], [`${t}/c`, 0]]);
          assert.deepEqual((await d.expect('suback')).reasons, [0, 0, 0]);
        } finally { d.destroy(); }
      } finally {
        c.destroy();
      }
      await assertAlive(broker);
    });
  }
});

describe('max_topic_length and max_topic_levels', { skip: KIND !== 'tern' && 'tern keys' }, () => {
  let b;
  before(async () => { b = await startBroker({ config: 'max_topic_length 24\nmax_topic_levels 3' }); });
  after(async () => { await b.stop(); });

  for (const version of [4, 5]) {
    test(`v${version}: a filter or topic over either limit is refused (${version === 5 ? 'SUBACK 0x8F, PUBACK 0x90' : 'SUBACK 0x80, dropped'}); the client stays`, async () => {
      const t = uid('tl').slice(0, 10); // "tl-" + 7 hex characters
      const c = await rawConnect(b.port, { version, clientId: uid('c') });
      try {
        const long = `${t}/${'x'.repeat(24)}`;
        c.subscribe(1, [[`${t}/a/b`, 1], [`${t}/a/b/c`, 1], [long, 1], [`${t}/+/#`, 1]]);
        const bad = version === 5 ? 0x8f : 0x80;
        assert.deepEqual((await c.expect('suback')).reasons, [1, bad, bad, 1]);
        // Publishing over a limit: v5 says why, v3 is acknowledged and
        // dropped; nothing reaches the subscriber of `${t}/+/#`.
        c.publish({ topic: `${t}/a/b/c`, payload: 'deep', qos: 1, id: 5 });
        assert.equal((await c.expect('puback')).reason ?? 0, version === 5 ? 0x90 : 0);
        c.publish({ topic: `${t}/a/${'y'.repeat(20)}`, payload: 'long', qos: 1, id: 6 });
        assert.equal((await c.expect('puback')).reason ?? 0, version === 5 ? 0x90 : 0);
        c.publish({ topic: `${t}/a/b`, payload: 'ok', qos: 1, id: 7 });
        assert.equal((await c.expect('puback')).reason ?? 0, 0);
        // Overlapping subscriptions deliver one copy (MQTT-3.3.4-2 allows
        // either; tern merges); the refused topics deliver nothing.
        const m = await c.expect('publish');
        assert.equal(m.payload.toString(), 'ok');
        if (m.qos) c.send(enc.puback(m.id));
        assert.deepEqual((await c.collect('publish', 300)).map((x) => x.payload.toString()), []);
      } finally {
        c.destroy();
      }
      await assertAlive(b);
    });
  }
});
