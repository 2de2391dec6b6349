// max_connections_per_address (tern's key; shared/BAD_INPUTS.md, issue 7
// limits): connections from one source address are capped, other
// addresses are not affected, a slot frees when a connection closes,
// refusals are counted in $SYS, and trusted proxies are exempt (their
// clients all share the proxy's address). Loopback source addresses
// 127.0.0.x stand for different hosts.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { KIND, startBroker } from './lib/broker.mjs';
import { RawClient, enc } from './lib/raw.mjs';
import { sleep, uid } from './lib/util.mjs';

let broker;

// Opens a raw MQTT connection from `from` and sends CONNECT; resolves to
// { c, ok } where ok says whether CONNACK 0 came.
async function connectFrom(from) {
  const sock = await new Promise((resolve, reject) => {
    const s = net.connect({ port: broker.port, host: '127.0.0.1', localAddress: from });
    const t = setTimeout(() => { s.destroy(); reject(new Error('connect timeout')); }, 3000);
    s.once('connect', () => { clearTimeout(t); resolve(s); });
    s.once('error', (e) => { clearTimeout(t); reject(e); });
  });
  const c = new RawClient(sock);
  c.send(enc.connect({ version: 4, clientId: uid('cap') }));
  const ack = await c.expectOrClosed('connack', { timeout: 2000 }).catch(() => null);
  return { c, ok: !!ack && ack.reason === 0 };
}

describe('max_connections_per_address', { skip: KIND !== 'tern' && 'a tern key' }, () => {
  before(async () => {
    broker = await startBroker({ config: 'max_connections_per_address 3\nsys_interval 1\ntrusted_proxies 127.0.0.4' });
  });
  after(async () => { await broker.stop(); });

  test('three connections from one address, the fourth refused; others unaffected; a closed one frees its slot; counted', async () => {
    const held = [];
    try {
      for (let i = 0; i < 3; i++) {
        const r = await connectFrom('127.0.0.2');
        held.push(r.c);
        assert.ok(r.ok, `connection ${i + 1} from 127.0.0.2 refused`);
      }
      const over = await connectFrom('127.0.0.2');
      held.push(over.c);
      assert.equal(over.ok, false, 'a 4th connection from 127.0.0.2 got in');
      await over.c.closed(2000);

      // Another address has its own count.
      const other = await connectFrom('127.0.0.3');
      held.push(other.c);
      assert.ok(other.ok, 'a connection from 127.0.0.3 was refused');

      // Closing one frees a slot.
      held[0].destroy();
      await sleep(200);
      const again = await connectFrom('127.0.0.2');
      held.push(again.c);
      assert.ok(again.ok, 'no slot after a connection from 127.0.0.2 closed');

      // The refusal is counted in $SYS (published every second).
      const s = held.at(-2);
      s.subscribe(1, [['$SYS/broker/connections/refused/per_address', 0]]);
      await s.expect('suback');
      const deadline = Date.now() + 3000;
      let count = 0;
      while (Date.now() < deadline && count < 1) {
        const m = await s.expect('publish', { timeout: 2500 });
        count = Number(m.payload.toString());
      }
      assert.ok(count >= 1, `refused/per_address is ${count}`);
    } finally {
      for (const c of held) c.destroy();
    }
  });

  test('a trusted proxy is exempt: its clients share its address', async () => {
    const held = [];
    try {
      for (let i = 0; i < 5; i++) {
        const r = await connectFrom('127.0.0.4');
        held.push(r.c);
        assert.ok(r.ok, `connection ${i + 1} from the trusted proxy refused`);
      }
    } finally {
      for (const c of held) c.destroy();
    }
  });
});
