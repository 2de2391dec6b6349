// A consumer that stops reading under a flood (shared/BAD_INPUTS.md, "Faults
// and load"): its queue stops at the bound, the drops are counted, the
// broker's memory stays flat, and a healthy subscriber of the same topic
// still gets every message.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startBroker, KIND } from './lib/broker.mjs';
import { RawClient, enc } from './lib/raw.mjs';
import { connect, closeAll, uid, sub, sleep, assertAlive } from './lib/util.mjs';

let broker;
before(async () => {
  broker = await startBroker({ config: 'max_queued_messages 100\nsys_interval 1' });
});
after(async () => { await broker.stop(); });

// Resident memory of the broker process in KiB.
function rssKiB() {
  const status = readFileSync(`/proc/${broker.proc.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

async function droppedCount() {
  const c = await RawClient.connect(broker.port);
  try {
    await c.connect({ version: 4, clientId: uid('sys') });
    c.subscribe(1, [['$SYS/broker/publish/messages/dropped', 0]]);
    await c.expect('suback');
    const m = await c.expect('publish', { timeout: 3000 });
    return Number(m.payload.toString());
  } finally { c.destroy(); }
}

describe('slow consumer', () => {
  // Found by broker_fuzz: a publisher held back by its own backlog had a
  // PUBACK queued when the hold ended, then closed on the malformed packet
  // after it, and its memory was freed while still queued for a flush
  // (a use-after-free, seen under AddressSanitizer).
  test('a publisher held back by its own backlog, then a malformed packet: closed, the broker goes on', { timeout: 20000 }, async () => {
    const topic = uid('self');
    const c = await RawClient.connect(broker.port);
    try {
      await c.connect({ version: 4, clientId: uid('selfpub') });
      c.subscribe(1, [[topic, 1]]);
      await c.expect('suback');
      // 120 QoS 1 messages to its own subscription, never acknowledged:
      // its queue passes the high-water mark and the broker holds the
      // rest of the bytes unread until the hold times out; then packet
      // type 0, which is malformed.
      const bufs = [];
      for (let i = 1; i <= 120; i++) bufs.push(enc.publish({ topic, qos: 1, id: i, payload: 'x' }));
      bufs.push(Buffer.from([0x00, 0x00]));
      c.send(Buffer.concat(bufs));
      assert.ok(await c.closed(5000), 'closed after the malformed packet');
    } finally { c.destroy(); }
    await assertAlive(broker);
  });

  test('a subscriber that stops reading loses messages at its bound; others get everything', { timeout: 60000 }, async () => {
    const topic = uid('flood');
    const N = 20000;
    const payload = Buffer.alloc(1024, 'x');
    const slow = await RawClient.connect(broker.port);
    const fast = await connect(broker, { clientId: uid('fast') });
    const producer = await connect(broker, { clientId: uid('prod') });
    try {
      await slow.connect({ version: 4, clientId: uid('slow') });
      slow.subscribe(1, [[topic, 0]]);
      await slow.expect('suback');
      slow.sock.pause(); // stops reading: the kernel buffers fill, then the broker's queue
      await sub(fast, topic, { qos: 0 });
      const rssBefore = rssKiB();
      const droppedBefore = KIND === 'tern' ? await droppedCount() : 0;

      // The producer and the healthy subscriber share this process: publish
      // in batches and yield, so the subscriber gets to read (a client
      // that stops reading is itself a slow consumer).
      for (let i = 0; i < N; i++) {
        producer.publish(topic, payload, { qos: 0 });
        if (i % 200 === 199) await new Promise((r) => setImmediate(r));
      }
      await fast.waitMessages(N, { timeout: 45000 });

      if (KIND === 'tern') {
        // 20 MiB went through; the stalled consumer may hold its bound of
        // 100 messages plus socket buffers, not the whole flood.
        // A sanitizer runtime keeps freed memory in quarantine, so RSS
        // says nothing about the broker's own bounds there.
        const maps = readFileSync(`/proc/${broker.proc.pid}/maps`, 'utf8');
        if (!/lib[at]san/.test(maps)) {
          const grown = rssKiB() - rssBefore;
          assert.ok(grown < 12 * 1024, `broker RSS grew by ${grown} KiB`);
        }
        let dropped = droppedBefore;
        // $SYS is republished every second (sys_interval 1).
        for (let i = 0; i < 10 && dropped === droppedBefore; i++) {
          await sleep(300);
          dropped = await droppedCount();
        }
        assert.ok(dropped > droppedBefore, `dropped counter stayed at ${dropped}`);
      }
    } finally {
      slow.destroy();
      await closeAll(fast, producer);
    }
    await assertAlive(broker);
  });
});
