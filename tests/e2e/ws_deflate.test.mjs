// permessage-deflate (RFC 7692) on a websockets listener with
// `ws_compression true` (tern only: Mosquitto has no such key).
//
// Negotiation is checked on the raw 101 response (the exact
// Sec-WebSocket-Extensions answer to Chromium's and Firefox's offers, no
// answer without an offer or with ws_compression off); a compressed MQTT
// exchange is driven by hand (fragmented compressed messages across TCP
// segments, pings between fragments, compressed and plain messages mixed,
// every server data frame compressed); MQTT.js over the ws package moves a
// 1 MiB compressible payload both ways (the bytes on the wire are counted)
// and 1 MiB of random bytes; and the failures: a zip bomb (1009), corrupt or truncated
// DEFLATE data (1007), RSV1 when nothing was negotiated or on a
// continuation frame (1002).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { KIND, freePort, startBroker } from './lib/broker.mjs';
import { decodePacket, enc, readVbi } from './lib/raw.mjs';
import { OP, RawWs, buildRequest, frame } from './lib/rawws.mjs';
import { assertAlive, sleep, uid, within } from './lib/util.mjs';

const MiB = 1024 * 1024;
const MAX_FRAME = 2 * MiB; // ws_max_frame_size of the compressed listener
const CHROME_OFFER = 'permessage-deflate; client_max_window_bits';
const ANSWER = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
const SYNC_TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

// RFC 7692 §7.2.1: deflate, flush, drop the final 00 00 ff ff. The window
// is the negotiated client_max_window_bits (10): the broker's inflater has
// no larger one.
function compress(data, windowBits = 10) {
  const z = zlib.deflateRawSync(data, { windowBits, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual(z.subarray(-4), SYNC_TAIL);
  return z.subarray(0, -4);
}

// RFC 7692 §7.2.2: append 00 00 ff ff, inflate.
function decompress(data) {
  return zlib.inflateRawSync(Buffer.concat([data, SYNC_TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

const sha = (b) => createHash('sha256').update(b).digest('hex');
const extOffer = (offer) => ({ headers: [`Sec-WebSocket-Extensions: ${offer}`] });

// A minimal client that understands compressed server messages (RawWs
// flags any RSV bit from the server as a violation, rightly so without an
// extension). Messages are reassembled from fragments and inflated when
// their first frame has RSV1; each is { compressed, data, opcode }.
class ZClient {
  static async open(port, offer = CHROME_OFFER) {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    const c = new ZClient(sock);
    sock.write(buildRequest(offer ? extOffer(offer) : {}, port).text);
    await c.wait(() => c.head, 'the 101 response');
    assert.match(c.head, /^HTTP\/1\.1 101 /);
    return c;
  }

  constructor(sock) {
    this.sock = sock;
    sock.setNoDelay(true);
    this.buf = Buffer.alloc(0);
    this.head = null;
    this.messages = [];
    this.frag = null;
    this.closed = false;
    this.waiters = [];
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.parse(); this.wake(); });
    sock.on('close', () => { this.closed = true; this.wake(); });
    sock.on('error', () => {});
  }

  extension() {
    const m = /\r\nsec-websocket-extensions: *([^\r]*)/i.exec(this.head);
    return m ? m[1] : undefined;
  }

  parse() {
    if (!this.head) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.head = this.buf.subarray(0, end).toString('latin1');
      this.buf = this.buf.subarray(end + 4);
    }
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      let len = b[1] & 0x7f; let off = 2;
      if (len === 126) { if (b.length < 4) return; len = b.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (b.length < 10) return; len = Number(b.readBigUInt64BE(2)); off = 10; }
      if (b.length < off + len) return;
      const f = { fin: !!(b[0] & 0x80), rsv: (b[0] >> 4) & 7, opcode: b[0] & 0x0f, masked: !!(b[1] & 0x80), payload: Buffer.from(b.subarray(off, off + len)) };
      this.buf = b.subarray(off + len);
      assert.equal(f.masked, false, 'server frames are never masked');
      if (f.opcode >= 8) {
        assert.equal(f.rsv, 0, 'control frames are never compressed');
        this.messages.push({ opcode: f.opcode, compressed: false, data: f.payload });
        continue;
      }
      if (f.opcode !== OP.CONT) this.frag = { opcode: f.opcode, compressed: f.rsv === 4, parts: [] };
      else assert.equal(f.rsv, 0, 'RSV1 only on the first frame');
      this.frag.parts.push(f.payload);
      if (!f.fin) continue;
      const whole = Buffer.concat(this.frag.parts);
      this.messages.push({ opcode: this.frag.opcode, compressed: this.frag.compressed, wire: whole.length, data: this.frag.compressed ? decompress(whole) : whole });
      this.frag = null;
    }
  }

  wake() { for (const w of this.waiters.splice(0)) w(); }

  wait(check, what, timeout = 3000) {
    return within(new Promise((resolve) => {
      const attempt = () => { const v = check(); if (v) resolve(v); else this.waiters.push(attempt); };
      attempt();
    }), timeout, what);
  }

  // Sends a data message: `parts` fragments, RSV1 on the first when
  // compressed; `between` (a frame) goes after the first fragment.
  async sendMessage(data, { compressed = true, parts = 1, between, gapMs = 0 } = {}) {
    const body = compressed ? compress(data) : data;
    const step = Math.ceil(body.length / parts) || 1;
    for (let i = 0, k = 0; k < parts; i += step, k++) {
      const last = k === parts - 1;
      this.sock.write(frame({ fin: last, rsv: compressed && k === 0 ? 4 : 0, opcode: k === 0 ? OP.BINARY : OP.CONT, payload: body.subarray(i, last ? body.length : i + step) }));
      if (k === 0 && between) this.sock.write(between);
      if (gapMs) await sleep(gapMs);
    }
  }

  nextMessage(what = 'a message') {
    return this.wait(() => this.messages.shift(), what);
  }

  // The MQTT packets of the next data message.
  async packets(version = 4) {
    const m = await this.nextMessage('an MQTT message');
    if (m.opcode === OP.CLOSE) assert.fail(`closed with ${m.data.readUInt16BE(0)} instead of an MQTT message`);
    assert.equal(m.opcode, OP.BINARY);
    assert.ok(m.compressed, 'server data messages are compressed');
    const out = [];
    for (let off = 0; off < m.data.length;) {
      const [rl, n] = readVbi(m.data, off + 1);
      out.push(decodePacket(m.data[off], m.data.subarray(off + 1 + n, off + 1 + n + rl), version));
      off += 1 + n + rl;
    }
    return out;
  }

  async closeCode() {
    const m = await this.wait(() => this.messages.find((x) => x.opcode === OP.CLOSE) || (this.closed && { none: true }), 'a close frame');
    return m.none ? null : m.data.readUInt16BE(0);
  }

  destroy() { this.sock.destroy(); }
}

describe('permessage-deflate', { skip: KIND !== 'tern' && 'ws_compression is tern only' }, () => {
  let broker;
  let zport;

  before(async () => {
    zport = await freePort();
    broker = await startBroker({
      config: [
        `listener ${zport} 127.0.0.1`,
        'protocol websockets',
        'ws_compression true',
        `ws_max_frame_size ${MAX_FRAME}`,
      ].join('\n'),
    });
  });

  after(async () => {
    await broker?.stop();
  });

  async function upgrade(port, opts) {
    const c = await RawWs.upgrade(port, opts);
    return c;
  }

  test("Chromium's offer gets the exact answer", async () => {
    const c = await upgrade(zport, extOffer(CHROME_OFFER));
    try {
      assert.equal(c.res.get('sec-websocket-extensions'), `${ANSWER}; client_max_window_bits=10`);
      assert.equal(c.res.headers['sec-websocket-extensions'].length, 1);
    } finally { c.destroy(); }
  });

  test("Firefox's offer (no window parameter) and fallbacks between offers", async () => {
    const cases = [
      ['permessage-deflate', ANSWER],
      // zlib's raw deflate has no 8-bit window: declined, the next taken.
      ['permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=12', `${ANSWER}; server_max_window_bits=10`],
      ['x-webkit-deflate-frame, permessage-deflate; unknown_param', undefined],
      ['permessage-deflate; client_max_window_bits; client_max_window_bits', undefined],
    ];
    for (const [offer, want] of cases) {
      const c = await upgrade(zport, extOffer(offer));
      try {
        assert.equal(c.res.get('sec-websocket-extensions'), want, `offer ${offer}`);
      } finally { c.destroy(); }
    }
  });

  test('no offer: no extension', async () => {
    const c = await upgrade(zport);
    try {
      assert.equal(c.res.get('sec-websocket-extensions'), undefined);
    } finally { c.destroy(); }
  });

  test('ws_compression off (the default): no extension', async () => {
    const c = await upgrade(broker.wsPort, extOffer(CHROME_OFFER));
    try {
      assert.equal(c.res.get('sec-websocket-extensions'), undefined);
    } finally { c.destroy(); }
  });

  test('a compressed MQTT session by hand', async () => {
    const c = await ZClient.open(zport);
    try {
      assert.equal(c.extension(), `${ANSWER}; client_max_window_bits=10`);
      // CONNECT compressed, in three fragments sent 20 ms apart (so the
      // broker sees the message across reads), a ping after the first.
      const ping = frame({ opcode: OP.PING, payload: 'zz' });
      await c.sendMessage(enc.connect({ clientId: uid('z') }), { parts: 3, between: ping, gapMs: 20 });
      const pong = await c.nextMessage('the pong');
      assert.equal(pong.opcode, OP.PONG);
      assert.equal(pong.data.toString(), 'zz');
      const [ack] = await c.packets();
      assert.equal(ack.type, 'connack');
      assert.equal(ack.reason, 0);
      // A plain (uncompressed) message is still fine.
      await c.sendMessage(enc.pingreq(), { compressed: false });
      assert.equal((await c.packets())[0].type, 'pingresp');
      // So is one that ends in a final block (Z_FINISH, nothing dropped).
      c.sock.write(frame({ rsv: 4, payload: zlib.deflateRawSync(enc.pingreq(), { windowBits: 10 }) }));
      assert.equal((await c.packets())[0].type, 'pingresp');
      // Two compressed messages in one TCP write, a packet split across
      // them, and an empty compressed message.
      const topic = uid('zt');
      const both = Buffer.concat([enc.subscribe(1, [[topic, 0]]), enc.publish({ topic, payload: 'hello '.repeat(200) })]);
      c.sock.write(Buffer.concat([
        frame({ rsv: 4, payload: compress(both.subarray(0, 10)) }),
        frame({ rsv: 4, payload: Buffer.from([0x00]) }),
        frame({ rsv: 4, payload: compress(both.subarray(10)) }),
      ]));
      const got = [];
      while (got.length < 2) got.push(...await c.packets());
      assert.deepEqual(got.map((p) => p.type), ['suback', 'publish']);
      assert.equal(got[1].payload.toString(), 'hello '.repeat(200));
      c.sock.write(frame({ opcode: OP.CLOSE, payload: Buffer.from([0x03, 0xe8]) }));
      assert.equal(await c.closeCode(), 1000);
    } finally { c.destroy(); }
  });

  test('MQTT.js (ws package): 1 MiB compressible payload round trip, small on the wire', async () => {
    const sockets = [];
    const open = (clientId) => within(mqtt.connectAsync(`ws://127.0.0.1:${zport}/mqtt`, {
      clientId,
      reconnectPeriod: 0,
      connectTimeout: 3000,
      createWebsocket: (url, protocols) => {
        const ws = new WebSocket(url, protocols, { perMessageDeflate: true });
        ws.on('upgrade', (res) => { ws.extHeader = res.headers['sec-websocket-extensions']; });
        sockets.push(ws);
        return ws;
      },
    }), 4000, 'mqtt connect');
    const s = await open(uid('zs'));
    const p = await open(uid('zp'));
    try {
      for (const ws of sockets) assert.equal(ws.extHeader, `${ANSWER}; client_max_window_bits=10`);
      const topic = uid('big');
      await within(s.subscribeAsync(topic, { qos: 1 }), 3000, 'subscribe');
      const payload = Buffer.alloc(MiB, 'tern compresses this line well, 0123456789\n');
      const got = new Promise((resolve) => s.on('message', (t, m) => resolve(m)));
      const [sIn, pOut] = [sockets[0]._socket.bytesRead, sockets[1]._socket.bytesWritten];
      await within(p.publishAsync(topic, payload, { qos: 1 }), 10000, 'publish');
      const m = await within(got, 10000, 'the 1 MiB message');
      assert.equal(sha(m), sha(payload));
      const received = sockets[0]._socket.bytesRead - sIn;
      const sent = sockets[1]._socket.bytesWritten - pOut;
      // About 3 KB each way for 1 MiB; uncompressed it would be > 1 MiB.
      assert.ok(received < 32 * 1024, `subscriber received ${received} bytes for 1 MiB`);
      assert.ok(sent < 32 * 1024, `publisher sent ${sent} bytes for 1 MiB`);
      // Random bytes do not compress: the message spans many reads (the
      // broker keeps its compressed bytes until the last fragment).
      const noise = randomBytes(MiB + 12345);
      const got2 = new Promise((resolve) => s.on('message', (t, m) => { if (m.length === noise.length) resolve(m); }));
      await within(p.publishAsync(topic, noise, { qos: 1 }), 10000, 'publish noise');
      assert.equal(sha(await within(got2, 10000, 'the random message')), sha(noise));
    } finally {
      await Promise.all([s, p].map((c) => within(c.endAsync(true), 2000, 'end').catch(() => {})));
    }
  });

  test('zip bomb: a small message that inflates beyond ws_max_frame_size closes with 1009', async () => {
    const c = await upgrade(zport, extOffer(CHROME_OFFER));
    try {
      const bomb = compress(Buffer.alloc(2 * MAX_FRAME));
      assert.ok(bomb.length < 16 * 1024, `bomb is ${bomb.length} bytes on the wire`);
      c.sendFrame({ rsv: 4, payload: bomb });
      const { code } = await c.expectClose();
      assert.equal(code, 1009);
      await c.closed();
    } finally { c.destroy(); }
    // The bound is on the inflated message: exactly ws_max_frame_size
    // passes (and comes back compressed), one byte more is refused.
    const z = await ZClient.open(zport);
    try {
      const topic = uid('edge');
      const publishOf = (total) => enc.publish({ topic, payload: Buffer.alloc(total - 4 - 2 - topic.length, 'a') });
      await z.sendMessage(Buffer.concat([enc.connect({ clientId: uid('zl') }), enc.subscribe(1, [[topic, 0]])]));
      const got = [];
      while (got.length < 2) got.push(...await z.packets());
      assert.deepEqual(got.map((x) => x.type), ['connack', 'suback']);
      const exact = publishOf(MAX_FRAME);
      assert.equal(exact.length, MAX_FRAME);
      await z.sendMessage(exact);
      const [back] = await z.packets();
      assert.equal(back.type, 'publish');
      assert.equal(back.payload.length, exact.length - 4 - 2 - topic.length);
      const over = publishOf(MAX_FRAME + 1);
      assert.equal(over.length, MAX_FRAME + 1);
      await z.sendMessage(over);
      assert.equal(await z.closeCode(), 1009);
    } finally { z.destroy(); }
    await assertAlive(broker);
  });

  test('corrupt or truncated DEFLATE data closes with 1007', async () => {
    const bodies = [
      Buffer.from([0xff, 0xff, 0xff, 0xff]), // BTYPE 11 is reserved
      // A dynamic-Huffman block cut in half: input ends inside the block.
      compress(Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 251))).subarray(0, 40),
    ];
    for (const payload of bodies) {
      const c = await upgrade(zport, extOffer(CHROME_OFFER));
      try {
        c.sendFrame({ rsv: 4, payload });
        const { code } = await c.expectClose();
        assert.equal(code, 1007);
        await c.closed();
      } finally { c.destroy(); }
    }
    await assertAlive(broker);
  });

  test('RSV1 without negotiation, or on a continuation frame, closes with 1002', async () => {
    const cases = [
      [zport, {}, [frame({ rsv: 4, payload: compress(enc.pingreq()) })]],
      [broker.wsPort, extOffer(CHROME_OFFER), [frame({ rsv: 4, payload: compress(enc.pingreq()) })]],
      [zport, extOffer(CHROME_OFFER), [frame({ fin: false, rsv: 4, payload: compress(enc.pingreq()) }), frame({ opcode: OP.CONT, rsv: 4, payload: Buffer.alloc(0) })]],
      [zport, extOffer(CHROME_OFFER), [frame({ opcode: OP.PING, rsv: 4, payload: 'x' })]],
    ];
    for (const [port, opts, frames] of cases) {
      const c = await upgrade(port, opts);
      try {
        for (const f of frames) c.send(f);
        const { code } = await c.expectClose();
        assert.equal(code, 1002);
        await c.closed();
      } finally { c.destroy(); }
    }
    await assertAlive(broker);
  });
});
