// Payload sizes over WebSocket: random payloads of 0 B to 16 MiB go
// ws → ws, TCP → ws and ws → TCP through the broker byte-exact (compared by
// SHA-256), with max_packet_size 20000000. The sizes straddle the WebSocket
// frame length encodings (7-bit ≤ 125, 16-bit ≤ 65535, 64-bit above, RFC
// 6455 §5.2), both as payload sizes and as sizes of the whole PUBLISH
// packet delivered to the subscriber.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { startBroker, KIND } from './lib/broker.mjs';
import { connect, closeAll, uid, sub, within } from './lib/util.mjs';

const MiB = 1024 * 1024;
const PAYLOADS = [0, 1, 125, 126, 65535, 65536, MiB, 16 * MiB];
const PACKETS = [125, 126, 65535, 65536]; // whole delivered PUBLISH packets

let broker;
before(async () => { broker = await startBroker({ config: 'max_packet_size 20000000' }); });
after(async () => { await broker.stop(); });

const sha = (b) => createHash('sha256').update(b).digest('hex');
const vbiLen = (n) => (n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4);
const human = (n) => (n >= MiB ? `${n / MiB} MiB` : `${n} B`);

// Payload size that makes the PUBLISH delivered at QoS 1 to a client of
// protocol `version` exactly `total` bytes long (no properties).
function payloadForPacket(total, topic, version) {
  const fixed = 2 + Buffer.byteLength(topic) + 2 + (version === 5 ? 1 : 0);
  for (let rl = 1; rl <= 4; rl++) {
    const payload = total - 1 - rl - fixed;
    if (payload >= 0 && vbiLen(fixed + payload) === rl) return payload;
  }
  throw new Error(`no payload gives a ${total}-byte packet`);
}

const DIRECTIONS = [
  // name, publisher transport + version, subscriber transport + version
  ['ws → ws', 'ws', 5, 'ws', 4],
  ['TCP → ws', 'tcp', 4, 'ws', 5],
  ['ws → TCP', 'ws', 4, 'tcp', 5],
];

for (const [name, pubTr, pubV, subTr, subV] of DIRECTIONS) {
  describe(`payloads ${name} (publisher v${pubV === 5 ? 5 : '3.1.1'}, subscriber v${subV === 5 ? 5 : '3.1.1'})`, () => {
    let p; let s; let prefix;
    const url = (tr) => (tr === 'ws' ? broker.wsUrl : broker.tcpUrl);
    before(async () => {
      prefix = uid('size');
      p = await connect(broker, { url: url(pubTr), protocolVersion: pubV, clientId: uid('p') });
      s = await connect(broker, { url: url(subTr), protocolVersion: subV, clientId: uid('s') });
      await sub(s, `${prefix}/#`, { qos: 1 });
    });
    after(async () => { await closeAll(p, s); });

    // Publishes `size` random bytes at QoS 1 and checks the single copy the
    // subscriber gets.
    async function roundTrip(topic, size, total) {
      const payload = randomBytes(size);
      const timeout = size >= MiB ? 30000 : 5000;
      s.messages.length = 0;
      await within(p.publishAsync(topic, payload, { qos: 1 }), timeout, `publish ${human(size)}`);
      const [m] = await s.waitMessages(1, { timeout });
      assert.equal(m.topic, topic);
      assert.equal(m.packet.qos, 1);
      const got = m.packet.payload;
      assert.equal(got.length, size, 'payload length');
      assert.equal(sha(got), sha(payload), 'payload bytes differ');
      if (total !== undefined) {
        assert.equal(1 + vbiLen(m.packet.length) + m.packet.length, total, 'size of the delivered PUBLISH');
      }
      // Nothing else (no duplicate) arrives.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(s.messages.length, 1, 'exactly one copy');
      s.messages.length = 0;
    }

    for (const size of PAYLOADS) {
      // Mosquitto 2.0.11 with Debian's libwebsockets writes to websocket
      // clients at ~40 KB/s (1 MiB took 25 s here, 16 MiB would take
      // minutes; eclipse-mosquitto/mosquitto#1390, #2252): a throughput
      // problem, not a correctness one, so those sizes run for tern only.
      const slow = KIND === 'mosquitto' && subTr === 'ws' && size >= MiB
        && 'mosquitto 2.0.11 sends to websocket clients at ~40 KB/s (mosquitto#2252)';
      test(`payload of ${human(size)}`, { timeout: 90000, skip: slow }, async () => {
        await roundTrip(`${prefix}/p${size}`, size);
      });
    }
    for (const total of PACKETS) {
      test(`delivered PUBLISH of ${total} B`, { timeout: 30000 }, async () => {
        const topic = `${prefix}/k${total}`;
        await roundTrip(topic, payloadForPacket(total, topic, subV), total);
      });
    }
  });
}
