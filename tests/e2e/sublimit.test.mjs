// max_subscriptions_per_client (tern's key; issue 7 limits): a session
// holds at most N filters. Beyond that a new filter gets SUBACK 0x97
// (Quota exceeded; v3 0x80) while the client stays connected, replacing
// an existing filter still works, and unsubscribing frees a place. Other
// clients are not affected.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KIND, startBroker } from './lib/broker.mjs';
import { rawConnect } from './lib/raw.mjs';
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
