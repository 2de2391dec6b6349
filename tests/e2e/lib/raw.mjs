// A small raw MQTT 3.1.1 / 5.0 client over node:net, for tests where a
// library would hide (or refuse to produce) the bytes on the wire.
//
//   const c = await RawClient.connect(port);
//   c.send(enc.connect({ version: 5, clientId: 'x', props: { sessionExpiryInterval: 10 } }));
//   const ack = await c.expect('connack');
//   c.sendRaw(Buffer.from([0xc0, 0x00]));
//   await c.closed(2000);
//
// Sending a CONNECT through c.connect() / c.send(enc.connect(...)) sets the
// protocol version the decoder uses for what the broker sends back (v5
// packets carry properties). Every wait is bounded by a timeout.
import net from 'node:net';

export const TYPES = {
  connect: 1, connack: 2, publish: 3, puback: 4, pubrec: 5, pubrel: 6, pubcomp: 7,
  subscribe: 8, suback: 9, unsubscribe: 10, unsuback: 11, pingreq: 12, pingresp: 13,
  disconnect: 14, auth: 15,
};
export const TYPE_NAMES = Object.fromEntries(Object.entries(TYPES).map(([k, v]) => [v, k]));
TYPE_NAMES[0] = 'reserved0';

// ---------------------------------------------------------------- encoding

// v5 properties: name -> [id, type]. Types: byte, u16, u32, vbi, str, bin, pair.
export const PROPS = {
  payloadFormatIndicator: [0x01, 'byte'],
  messageExpiryInterval: [0x02, 'u32'],
  contentType: [0x03, 'str'],
  responseTopic: [0x08, 'str'],
  correlationData: [0x09, 'bin'],
  subscriptionIdentifier: [0x0b, 'vbi'],
  sessionExpiryInterval: [0x11, 'u32'],
  assignedClientIdentifier: [0x12, 'str'],
  serverKeepAlive: [0x13, 'u16'],
  authenticationMethod: [0x15, 'str'],
  authenticationData: [0x16, 'bin'],
  requestProblemInformation: [0x17, 'byte'],
  willDelayInterval: [0x18, 'u32'],
  requestResponseInformation: [0x19, 'byte'],
  responseInformation: [0x1a, 'str'],
  serverReference: [0x1c, 'str'],
  reasonString: [0x1f, 'str'],
  receiveMaximum: [0x21, 'u16'],
  topicAliasMaximum: [0x22, 'u16'],
  topicAlias: [0x23, 'u16'],
  maximumQoS: [0x24, 'byte'],
  retainAvailable: [0x25, 'byte'],
  userProperties: [0x26, 'pair'],
  maximumPacketSize: [0x27, 'u32'],
  wildcardSubscriptionAvailable: [0x28, 'byte'],
  subscriptionIdentifierAvailable: [0x29, 'byte'],
  sharedSubscriptionAvailable: [0x2a, 'byte'],
};
const PROP_BY_ID = Object.fromEntries(Object.entries(PROPS).map(([k, [id, t]]) => [id, [k, t]]));

export function vbi(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

const u8 = (n) => Buffer.from([n & 0xff]);
const u16 = (n) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };
const toBuf = (s) => (Buffer.isBuffer(s) ? s : Buffer.from(s ?? '', 'utf8'));
// A length-prefixed string / binary. A Buffer is taken as raw bytes, which is
// how tests send ill-formed UTF-8.
export const str = (s) => { const b = toBuf(s); return Buffer.concat([u16(b.length), b]); };

// Encodes a property block (length + properties). `props` is an object of
// PROPS names; userProperties is an array of [key, value] pairs (or an
// object); subscriptionIdentifier may be an array. `raw` (a Buffer) is
// appended verbatim inside the block (for duplicated or misplaced props).
export function encodeProps(props = {}, raw) {
  const parts = [];
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined) continue;
    const def = PROPS[name];
    if (!def) throw new Error(`unknown property ${name}`);
    const [id, type] = def;
    const values = (type === 'pair')
      ? (Array.isArray(value) ? value : Object.entries(value))
      : (Array.isArray(value) ? value : [value]);
    for (const v of values) {
      parts.push(u8(id));
      switch (type) {
        case 'byte': parts.push(u8(v)); break;
        case 'u16': parts.push(u16(v)); break;
        case 'u32': parts.push(u32(v)); break;
        case 'vbi': parts.push(vbi(v)); break;
        case 'str': case 'bin': parts.push(str(v)); break;
        case 'pair': parts.push(str(v[0]), str(v[1])); break;
        default: throw new Error(type);
      }
    }
  }
  if (raw) parts.push(raw);
  const body = Buffer.concat(parts);
  return Buffer.concat([vbi(body.length), body]);
}

// Builds a whole packet from a first byte and a body.
export function packet(first, body = Buffer.alloc(0)) {
  return Buffer.concat([u8(first), vbi(body.length), body]);
}

export const enc = {
  // opts: version (4|5|3, default 4), protocolName, protocolLevel (override),
  // clientId, clean (default true), keepalive (60), username, password,
  // will: {topic, payload, qos, retain, props}, props, propsRaw,
  // flags (override the whole connect-flags byte), reservedBit.
  connect(o = {}) {
    const v = o.version ?? 4;
    const name = o.protocolName ?? (v === 3 ? 'MQIsdp' : 'MQTT');
    let flags = 0;
    if (o.clean ?? true) flags |= 0x02;
    if (o.will) {
      flags |= 0x04 | ((o.will.qos ?? 0) << 3);
      if (o.will.retain) flags |= 0x20;
    }
    if (o.password !== undefined) flags |= 0x40;
    if (o.username !== undefined) flags |= 0x80;
    if (o.reservedBit) flags |= 0x01;
    if (o.flags !== undefined) flags = o.flags;
    const parts = [str(name), u8(o.protocolLevel ?? v), u8(flags), u16(o.keepalive ?? 60)];
    if (v === 5) parts.push(encodeProps(o.props, o.propsRaw));
    parts.push(str(o.clientId ?? ''));
    if (o.will) {
      if (v === 5) parts.push(encodeProps(o.will.props, o.will.propsRaw));
      parts.push(str(o.will.topic), str(o.will.payload ?? ''));
    }
    if (o.username !== undefined) parts.push(str(o.username));
    if (o.password !== undefined) parts.push(str(o.password));
    return packet(0x10, Buffer.concat(parts));
  },
  // opts: topic, payload, qos, retain, dup, id, props, propsRaw, version.
  publish(o, version = 4) {
    const qos = o.qos ?? 0;
    const first = 0x30 | (o.dup ? 0x08 : 0) | (qos << 1) | (o.retain ? 1 : 0);
    const parts = [str(o.topic ?? '')];
    if (qos > 0 || o.id !== undefined) parts.push(u16(o.id ?? 1));
    if ((o.version ?? version) === 5) parts.push(encodeProps(o.props, o.propsRaw));
    parts.push(toBuf(o.payload ?? ''));
    return packet(first, Buffer.concat(parts));
  },
  // PUBACK/PUBREC/PUBREL/PUBCOMP. reason/props only sent for v5 when given.
  ack(type, id, { reason, props, flags } = {}) {
    const t = typeof type === 'string' ? TYPES[type] : type;
    const f = flags ?? (t === TYPES.pubrel ? 0x02 : 0);
    const parts = [u16(id)];
    if (reason !== undefined || props) {
      parts.push(u8(reason ?? 0));
      if (props) parts.push(encodeProps(props));
    }
    return packet((t << 4) | f, Buffer.concat(parts));
  },
  puback: (id, o) => enc.ack('puback', id, o),
  pubrec: (id, o) => enc.ack('pubrec', id, o),
  pubrel: (id, o) => enc.ack('pubrel', id, o),
  pubcomp: (id, o) => enc.ack('pubcomp', id, o),
  // subs: [{filter, qos, nl, rap, rh}] or [filter, qos] pairs; opts.options
  // (a raw options byte per entry) overrides the computed one.
  subscribe(id, subs, { version = 4, props, flags = 0x02 } = {}) {
    const parts = [u16(id)];
    if (version === 5) parts.push(encodeProps(props));
    for (let s of subs) {
      if (Array.isArray(s)) s = { filter: s[0], qos: s[1] };
      const opt = s.options ?? ((s.qos ?? 0) | (s.nl ? 4 : 0) | (s.rap ? 8 : 0) | ((s.rh ?? 0) << 4));
      parts.push(str(s.filter), u8(opt));
    }
    return packet(0x80 | flags, Buffer.concat(parts));
  },
  unsubscribe(id, filters, { version = 4, props, flags = 0x02 } = {}) {
    const parts = [u16(id)];
    if (version === 5) parts.push(encodeProps(props));
    for (const f of filters) parts.push(str(f));
    return packet(0xa0 | flags, Buffer.concat(parts));
  },
  pingreq: () => Buffer.from([0xc0, 0x00]),
  // v3: 2 bytes. v5: reason and optional properties.
  disconnect({ reason, props } = {}) {
    if (reason === undefined && !props) return Buffer.from([0xe0, 0x00]);
    const parts = [u8(reason ?? 0)];
    if (props) parts.push(encodeProps(props));
    return packet(0xe0, Buffer.concat(parts));
  },
  auth({ reason = 0, props } = {}) {
    return packet(0xf0, Buffer.concat([u8(reason), encodeProps(props)]));
  },
};

// ---------------------------------------------------------------- decoding

// Reads a variable byte integer at buf[off]. Returns [value, bytesUsed], or
// null if the buffer ends inside it; throws if longer than 4 bytes.
export function readVbi(buf, off) {
  let value = 0; let mult = 1;
  for (let i = 0; i < 4; i++) {
    if (off + i >= buf.length) return null;
    const b = buf[off + i];
    value += (b & 0x7f) * mult;
    if (!(b & 0x80)) return [value, i + 1];
    mult *= 128;
  }
  throw new Error('variable byte integer longer than 4 bytes');
}

class Reader {
  constructor(buf) { this.b = buf; this.o = 0; }
  left() { return this.b.length - this.o; }
  need(n) { if (this.o + n > this.b.length) throw new Error('packet truncated'); }
  u8() { this.need(1); return this.b[this.o++]; }
  u16() { this.need(2); const v = this.b.readUInt16BE(this.o); this.o += 2; return v; }
  u32() { this.need(4); const v = this.b.readUInt32BE(this.o); this.o += 4; return v; }
  vbi() { const r = readVbi(this.b, this.o); if (!r) throw new Error('truncated vbi'); this.o += r[1]; return r[0]; }
  bin() { const n = this.u16(); this.need(n); const v = this.b.subarray(this.o, this.o + n); this.o += n; return Buffer.from(v); }
  str() { return this.bin().toString('utf8'); }
  rest() { const v = this.b.subarray(this.o); this.o = this.b.length; return Buffer.from(v); }
  props() {
    const len = this.vbi();
    this.need(len);
    const end = this.o + len;
    const p = {};
    while (this.o < end) {
      const id = this.vbi();
      const def = PROP_BY_ID[id];
      if (!def) throw new Error(`unknown property id 0x${id.toString(16)}`);
      const [name, type] = def;
      let v;
      switch (type) {
        case 'byte': v = this.u8(); break;
        case 'u16': v = this.u16(); break;
        case 'u32': v = this.u32(); break;
        case 'vbi': v = this.vbi(); break;
        case 'str': v = this.str(); break;
        case 'bin': v = this.bin(); break;
        case 'pair': v = [this.str(), this.str()]; break;
        default: throw new Error(type);
      }
      if (name === 'userProperties' || name === 'subscriptionIdentifier') (p[name] ||= []).push(v);
      else if (name in p) p.duplicated = [...(p.duplicated || []), name];
      else p[name] = v;
    }
    if (this.o !== end) throw new Error('property block overrun');
    return p;
  }
}

// Decodes one packet body. Returns a plain object:
// { type: 'connack'|..., flags, length, raw, ...fields }.
export function decodePacket(first, body, version) {
  const type = first >> 4;
  const flags = first & 0x0f;
  const p = { type: TYPE_NAMES[type], typeId: type, flags, length: body.length, raw: body };
  const r = new Reader(body);
  const v5 = version === 5;
  switch (type) {
    case TYPES.connack:
      p.sessionPresent = !!(r.u8() & 1);
      p.reason = r.u8();
      p.returnCode = p.reason;
      // A v5 CONNACK has properties; a v3-format CONNACK (2 bytes) may come
      // back to a v5 CONNECT when the broker refuses the protocol version.
      p.v5 = r.left() > 0;
      if (p.v5) p.props = r.props();
      break;
    case TYPES.publish:
      p.qos = (flags >> 1) & 3;
      p.dup = !!(flags & 8);
      p.retain = !!(flags & 1);
      p.topic = r.str();
      if (p.qos > 0) p.id = r.u16();
      if (v5) p.props = r.props();
      p.payload = r.rest();
      break;
    case TYPES.puback: case TYPES.pubrec: case TYPES.pubrel: case TYPES.pubcomp:
      p.id = r.u16();
      p.reason = r.left() > 0 ? r.u8() : 0;
      if (v5 && r.left() > 0) p.props = r.props();
      break;
    case TYPES.suback: case TYPES.unsuback:
      p.id = r.u16();
      if (v5) p.props = r.props();
      p.reasons = [...r.rest()];
      break;
    case TYPES.disconnect: case TYPES.auth:
      p.reason = r.left() > 0 ? r.u8() : 0;
      if (r.left() > 0) p.props = r.props();
      break;
    default:
      break;
  }
  if (!p.props) p.props = {};
  return p;
}

// ---------------------------------------------------------------- client

const DEFAULT_TIMEOUT = 3000;

export class RawClient {
  // Opens a TCP connection to host:port (bounded by opts.timeout).
  static connect(port, { host = '127.0.0.1', timeout = DEFAULT_TIMEOUT, version = 4 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, host);
      const t = setTimeout(() => { sock.destroy(); reject(new Error('raw connect timeout')); }, timeout);
      sock.once('connect', () => { clearTimeout(t); resolve(new RawClient(sock, version)); });
      sock.once('error', (e) => { clearTimeout(t); reject(e); });
    });
  }

  constructor(sock, version = 4) {
    this.sock = sock;
    this.version = version;
    this.buf = Buffer.alloc(0);
    this.queue = [];          // decoded packets not yet taken by expect()
    this.log = [];            // every decoded packet, in order
    this.waiters = [];
    this.isClosed = false;
    this.error = null;        // socket error, if any
    this.decodeError = null;  // broker sent something we could not decode
    sock.setNoDelay(true);
    sock.on('data', (d) => this.onData(d));
    sock.on('error', (e) => { this.error = e; });
    sock.on('close', () => { this.isClosed = true; this.wake(); });
  }

  onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.buf.length < 2) break;
      let vl;
      try { vl = readVbi(this.buf, 1); } catch (e) { this.decodeError = e; this.sock.destroy(); break; }
      if (!vl) break;
      const [len, n] = vl;
      if (this.buf.length < 1 + n + len) break;
      const first = this.buf[0];
      const body = this.buf.subarray(1 + n, 1 + n + len);
      this.buf = this.buf.subarray(1 + n + len);
      let pkt;
      try { pkt = decodePacket(first, Buffer.from(body), this.version); } catch (e) {
        this.decodeError = e;
        pkt = { type: 'undecodable', typeId: first >> 4, flags: first & 15, raw: Buffer.from(body), error: e.message, props: {} };
      }
      this.queue.push(pkt);
      this.log.push(pkt);
    }
    this.wake();
  }

  wake() {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  // Waits until check() returns something other than undefined.
  waitFor(check, timeout, what) {
    return new Promise((resolve, reject) => {
      let timer;
      const attempt = () => {
        let v;
        try { v = check(); } catch (e) { clearTimeout(timer); reject(e); return; }
        if (v !== undefined) { clearTimeout(timer); resolve(v); return; }
        this.waiters.push(attempt);
      };
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== attempt);
        const seen = this.queue.map((p) => p.type).join(',') || 'nothing';
        reject(new Error(`timeout after ${timeout} ms waiting for ${what} (queued: ${seen}; closed: ${this.isClosed})`));
      }, timeout);
      attempt();
    });
  }

  send(buf) {
    // Sending a CONNECT switches the decoder to that protocol version.
    if (buf[0] === 0x10 && buf.length > 8) {
      const r = readVbi(buf, 1);
      if (r) {
        const off = 1 + r[1];
        const nameLen = buf.readUInt16BE(off);
        const level = buf[off + 2 + nameLen];
        if (level === 5) this.version = 5; else if (level === 3 || level === 4) this.version = 4;
      }
    }
    if (!this.isClosed && !this.sock.destroyed) this.sock.write(buf);
    return this;
  }

  sendRaw(buf) {
    if (!this.isClosed && !this.sock.destroyed) this.sock.write(Buffer.isBuffer(buf) ? buf : Buffer.from(buf));
    return this;
  }

  // Sends a CONNECT and waits for the CONNACK (whatever its reason code).
  async connect(opts = {}, { timeout = DEFAULT_TIMEOUT } = {}) {
    this.send(enc.connect(opts));
    return this.expect('connack', { timeout });
  }

  // Takes the first queued packet of `type` (a name, or null for any type)
  // that satisfies opts.match, waiting up to opts.timeout. Rejects if the
  // connection closes first. Packets of other types stay queued.
  expect(type, { timeout = DEFAULT_TIMEOUT, match } = {}) {
    return this.waitFor(() => {
      const i = this.queue.findIndex((p) => (type == null || p.type === type) && (!match || match(p)));
      if (i >= 0) return this.queue.splice(i, 1)[0];
      if (this.isClosed) throw new Error(`connection closed while waiting for ${type ?? 'a packet'} (queued: ${this.queue.map((p) => p.type).join(',') || 'nothing'})`);
      return undefined;
    }, timeout, type ?? 'a packet');
  }

  // Like expect(), but resolves null instead of rejecting when the server
  // closes the connection first.
  expectOrClosed(type, { timeout = DEFAULT_TIMEOUT, match } = {}) {
    return this.waitFor(() => {
      const i = this.queue.findIndex((p) => (type == null || p.type === type) && (!match || match(p)));
      if (i >= 0) return this.queue.splice(i, 1)[0];
      if (this.isClosed) return null;
      return undefined;
    }, timeout, `${type ?? 'a packet'} or close`);
  }

  // Resolves with the next packet of any type.
  next(opts) { return this.expect(null, opts); }

  // Resolves (with the list of packets received) when the server has closed
  // the connection; rejects after `timeout` ms.
  closed(timeout = DEFAULT_TIMEOUT) {
    return this.waitFor(() => (this.isClosed ? this.log : undefined), timeout, 'the server to close the connection');
  }

  // Resolves true if the connection is still open after `ms` ms.
  async stillOpen(ms = 300) {
    await new Promise((r) => setTimeout(r, ms));
    return !this.isClosed;
  }

  // Resolves with the packets of `type` that arrive within `ms` (taking them
  // from the queue). Used to assert that nothing (more) arrives.
  async collect(type, ms) {
    await new Promise((r) => setTimeout(r, ms));
    const got = this.queue.filter((p) => type == null || p.type === type);
    this.queue = this.queue.filter((p) => !(type == null || p.type === type));
    return got;
  }

  // Convenience wrappers.
  publish(o) { return this.send(enc.publish(o, this.version)); }
  subscribe(id, subs, o = {}) { return this.send(enc.subscribe(id, subs, { version: this.version, ...o })); }
  unsubscribe(id, filters, o = {}) { return this.send(enc.unsubscribe(id, filters, { version: this.version, ...o })); }
  disconnect(o) { this.send(enc.disconnect(o)); return this.end(); }

  // Half-closes and then destroys the socket.
  end() {
    if (!this.sock.destroyed) { this.sock.end(); setTimeout(() => this.sock.destroy(), 100).unref(); }
    return this;
  }

  destroy() { this.sock.destroy(); return this; }
}

// Opens a connection, sends CONNECT and waits for a successful CONNACK.
export async function rawConnect(port, opts = {}) {
  const c = await RawClient.connect(port, { version: opts.version ?? 4 });
  try {
    const ack = await c.connect(opts);
    if (ack.reason !== 0) throw new Error(`CONNACK reason 0x${ack.reason.toString(16)}`);
    c.connack = ack;
    return c;
  } catch (e) {
    c.destroy();
    throw e;
  }
}
