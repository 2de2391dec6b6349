// A raw WebSocket client over node:net, for tests where a WebSocket library
// would hide (or refuse to produce) the bytes on the wire (RFC 6455).
//
//   const c = await RawWs.upgrade(port);                  // GET /mqtt, 101 asserted
//   c.send(frame({ opcode: OP.PING, payload: 'hi' }));    // masked by default
//   const pong = await c.expectFrame({ opcode: OP.PONG });
//   const ack = await c.mqtt.connect({ clientId: 'x' });  // MQTT in binary frames
//   c.sendFrame({ rsv: 4 });
//   const { code } = await c.expectClose();              // server's close frame
//   await c.closed(2000);                                 // then the TCP close
//
// The HTTP side: RawWs.connect(port) opens TCP only; c.sendRequest(opts)
// writes an upgrade request built from opts (or c.sendRaw(bytes) anything);
// c.response() parses the status line, headers and (for a non-101) the body.
//
// Server frames are decoded and checked: a masked server frame, RSV bits,
// a reserved opcode, a control frame over 125 bytes or fragmented, or a
// text frame (MQTT over WebSocket is binary only) is recorded in
// c.violations, destroys the connection and makes every wait reject.
// Every wait is bounded by a timeout.
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { RawClient } from './raw.mjs';

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };
export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const DEFAULT_TIMEOUT = 3000;

export function acceptFor(key) {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

export function newKey() {
  return randomBytes(16).toString('base64');
}

const toBuf = (p) => (Buffer.isBuffer(p) ? p : Buffer.from(p ?? '', typeof p === 'string' ? 'utf8' : undefined));

// XORs `payload` with the 4-byte mask key (a copy).
export function maskBytes(payload, key) {
  const out = Buffer.from(payload);
  for (let i = 0; i < out.length; i++) out[i] ^= key[i & 3];
  return out;
}

// Builds one client frame by hand.
//   fin (default true), rsv (0..7: bit 4 = RSV1, 2 = RSV2, 1 = RSV3),
//   opcode (default binary), mask (default true), maskKey (4 bytes, default
//   random), payload (Buffer or string), len (declared length, default the
//   payload's; a BigInt for values beyond 2^53), lenForm: 'auto' (shortest),
//   7, 16 or 64 (the length encoding, even where a shorter one would do).
// The payload sent is exactly `payload`, whatever `len` declares.
export function frame({ fin = true, rsv = 0, opcode = OP.BINARY, mask = true, maskKey, payload = Buffer.alloc(0), len, lenForm = 'auto' } = {}) {
  const body = toBuf(payload);
  const declared = len ?? body.length;
  const big = typeof declared === 'bigint' ? declared : BigInt(declared);
  let form = lenForm;
  if (form === 'auto') form = big <= 125n ? 7 : big <= 0xffffn ? 16 : 64;
  const b0 = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  const m = mask ? 0x80 : 0;
  let head;
  if (form === 7) {
    if (big > 125n) throw new Error('7-bit length form holds at most 125');
    head = Buffer.from([b0, m | Number(big)]);
  } else if (form === 16) {
    if (big > 0xffffn) throw new Error('16-bit length form holds at most 65535');
    head = Buffer.alloc(4);
    head[0] = b0; head[1] = m | 126; head.writeUInt16BE(Number(big), 2);
  } else if (form === 64) {
    head = Buffer.alloc(10);
    head[0] = b0; head[1] = m | 127; head.writeBigUInt64BE(BigInt.asUintN(64, big), 2);
  } else {
    throw new Error(`bad lenForm ${lenForm}`);
  }
  if (!mask) return Buffer.concat([head, body]);
  const key = maskKey ? toBuf(maskKey) : randomBytes(4);
  if (key.length !== 4) throw new Error('mask key must be 4 bytes');
  return Buffer.concat([head, key, maskBytes(body, key)]);
}

// A close frame payload: code (u16) and reason (Buffer or string).
export function closePayload(code, reason = '') {
  const r = toBuf(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

// Builds an HTTP upgrade request.
//   method ('GET'), path ('/mqtt'), httpVersion ('HTTP/1.1'), host
//   ('127.0.0.1:PORT'), upgrade ('websocket'; null omits), connection
//   ('Upgrade'; null omits), key (default random; null omits), version (13;
//   null omits), protocols (default 'mqtt': a string sent as one header
//   value, an array joined with ', ', null omits), origin (omitted unless
//   given), headers (extra [name, value] pairs or 'Name: value' lines).
export function buildRequest(opts = {}, port = 0) {
  const o = {
    method: 'GET', path: '/mqtt', httpVersion: 'HTTP/1.1', host: `127.0.0.1:${port}`,
    upgrade: 'websocket', connection: 'Upgrade', key: newKey(), version: 13, protocols: 'mqtt',
    ...opts,
  };
  const lines = [`${o.method} ${o.path} ${o.httpVersion}`];
  if (o.host != null) lines.push(`Host: ${o.host}`);
  if (o.upgrade != null) lines.push(`Upgrade: ${o.upgrade}`);
  if (o.connection != null) lines.push(`Connection: ${o.connection}`);
  if (o.key != null) lines.push(`Sec-WebSocket-Key: ${o.key}`);
  if (o.version != null) lines.push(`Sec-WebSocket-Version: ${o.version}`);
  if (o.protocols != null) lines.push(`Sec-WebSocket-Protocol: ${Array.isArray(o.protocols) ? o.protocols.join(', ') : o.protocols}`);
  if (o.origin != null) lines.push(`Origin: ${o.origin}`);
  for (const h of o.headers || []) lines.push(Array.isArray(h) ? `${h[0]}: ${h[1]}` : h);
  return { text: lines.join('\r\n') + '\r\n\r\n', key: o.key };
}

// A plain (non-upgrade) HTTP request.
export function plainRequest(method, path, port = 0, extra = []) {
  return [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: close', ...extra].join('\r\n') + '\r\n\r\n';
}

export class RawWs {
  // Opens a TCP connection (bounded by opts.timeout); no HTTP yet.
  static connect(port, { host = '127.0.0.1', timeout = DEFAULT_TIMEOUT } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, host);
      const t = setTimeout(() => { sock.destroy(); reject(new Error('raw ws connect timeout')); }, timeout);
      sock.once('connect', () => { clearTimeout(t); resolve(new RawWs(sock, port)); });
      sock.once('error', (e) => { clearTimeout(t); reject(e); });
    });
  }

  // Connects, sends an upgrade request (buildRequest opts) and asserts a
  // correct 101 (status, Upgrade, Connection, Sec-WebSocket-Accept).
  // Returns the client; c.res holds the response.
  static async upgrade(port, opts = {}, { timeout = DEFAULT_TIMEOUT } = {}) {
    const c = await RawWs.connect(port, { timeout });
    try {
      c.sendRequest(opts);
      const res = await c.response({ timeout });
      if (res.status !== 101) throw new Error(`expected 101, got ${res.status}:\n${res.head}`);
      c.checkAccept();
      return c;
    } catch (e) {
      c.destroy();
      throw e;
    }
  }

  // Connects, sends `text` (a request) and returns the response; the
  // connection is destroyed afterwards unless keep is set.
  static async request(port, text, { timeout = DEFAULT_TIMEOUT, keep = false } = {}) {
    const c = await RawWs.connect(port, { timeout });
    try {
      c.sendRaw(text);
      const res = await c.response({ timeout });
      return keep ? { res, c } : res;
    } finally {
      if (!keep) c.destroy();
    }
  }

  constructor(sock, port) {
    this.sock = sock;
    this.port = port;
    this.buf = Buffer.alloc(0);
    this.res = null;          // the HTTP response, once parsed
    this.upgraded = false;
    this.frames = [];         // decoded server frames not yet taken
    this.log = [];            // every decoded server frame, in order
    this.violations = [];     // what the server got wrong at the frame level
    this.waiters = [];
    this.isClosed = false;
    this.closedAt = null;
    this.error = null;
    this.key = null;
    this.inMessage = false;   // a fragmented server message is open
    sock.setNoDelay(true);
    sock.on('data', (d) => this.onData(d));
    sock.on('error', (e) => { this.error = e; });
    sock.on('close', () => {
      this.isClosed = true;
      this.closedAt = Date.now();
      this.wake();
      if (this._shim) this._shim.emit('close');
    });
  }

  // ------------------------------------------------------------ HTTP side

  sendRequest(opts = {}) {
    const { text, key } = buildRequest(opts, this.port);
    this.key = key;
    return this.sendRaw(text);
  }

  sendRaw(buf) {
    if (!this.sock.destroyed) this.sock.write(Buffer.isBuffer(buf) ? buf : Buffer.from(buf));
    return this;
  }

  // Resolves with { status, reason, version, headers (lower-case name ->
  // array of values), get(name) (first value), head (text), body (Buffer) }
  // once the head has arrived and, for a status other than 101, the body
  // (Content-Length bytes, or everything until the server closes).
  response({ timeout = DEFAULT_TIMEOUT } = {}) {
    return this.waitFor(() => {
      if (!this.res) {
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (this.isClosed) throw new Error(`connection closed before an HTTP response (got ${JSON.stringify(this.buf.toString('latin1').slice(0, 200))})`);
          return undefined;
        }
        this.res = parseHead(this.buf.subarray(0, end).toString('latin1'));
        this.buf = this.buf.subarray(end + 4);
        if (this.res.status === 101) {
          this.upgraded = true;
          this.parseFrames();
          return this.res;
        }
      }
      if (this.res.status === 101) return this.res;
      const cl = this.res.get('content-length');
      const want = cl !== undefined ? Number(cl) : Infinity;
      if (this.buf.length >= want || this.isClosed) {
        this.res.body = Buffer.from(this.buf.subarray(0, Math.min(want, this.buf.length)));
        return this.res;
      }
      return undefined;
    }, timeout, 'an HTTP response');
  }

  // Asserts Sec-WebSocket-Accept, Upgrade and Connection of a 101.
  checkAccept() {
    const r = this.res;
    const want = acceptFor(this.key);
    if (r.get('sec-websocket-accept') !== want) throw new Error(`Sec-WebSocket-Accept ${r.get('sec-websocket-accept')}, want ${want}`);
    if (!/^websocket$/i.test(r.get('upgrade') || '')) throw new Error(`Upgrade: ${r.get('upgrade')}`);
    if (!/(^|,)\s*upgrade\s*(,|$)/i.test(r.get('connection') || '')) throw new Error(`Connection: ${r.get('connection')}`);
  }

  // ------------------------------------------------------------ frames

  // Sends a frame built by frame(opts) (masked by default); or raw bytes.
  sendFrame(opts) { return this.sendRaw(frame(opts)); }
  send(buf) { return this.sendRaw(buf); }

  // Writes `buf` in pieces of `size` bytes, `gapMs` apart (so they reach
  // the server as separate TCP segments).
  async trickle(buf, size = 1, gapMs = 5) {
    for (let i = 0; i < buf.length && !this.isClosed; i += size) {
      this.sendRaw(buf.subarray(i, i + size));
      await new Promise((r) => setTimeout(r, gapMs));
    }
  }

  onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (this.upgraded) this.parseFrames();
    this.wake();
  }

  violate(what) {
    this.violations.push(what);
    this.sock.destroy();
  }

  parseFrames() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = !!(b[0] & 0x80);
      const rsv = (b[0] >> 4) & 7;
      const opcode = b[0] & 0x0f;
      const masked = !!(b[1] & 0x80);
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2); off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) { this.violate(`server frame with 64-bit length ${big}`); return; }
        len = Number(big); off = 10;
      }
      if (masked) { this.violate('server sent a masked frame (RFC 6455 §5.1: a server MUST NOT mask)'); return; }
      if (rsv) { this.violate(`server frame with RSV bits ${rsv}`); return; }
      if (![0, 1, 2, 8, 9, 10].includes(opcode)) { this.violate(`server frame with reserved opcode ${opcode}`); return; }
      if (opcode >= 8 && (len > 125 || !fin)) { this.violate(`server control frame fragmented or ${len} bytes`); return; }
      if (opcode === OP.TEXT) { this.violate('server sent a text frame (MQTT over WebSocket is binary only)'); return; }
      if (opcode === OP.CONT && !this.inMessage) { this.violate('server continuation frame with no message open'); return; }
      if ((opcode === OP.BINARY) && this.inMessage) { this.violate('server started a message inside a fragmented one'); return; }
      if (b.length < off + len) return;
      const payload = Buffer.from(b.subarray(off, off + len));
      this.buf = b.subarray(off + len);
      if (opcode === OP.BINARY || opcode === OP.CONT) this.inMessage = !fin;
      const f = { fin, rsv, opcode, masked, payload };
      if (opcode === OP.CLOSE) {
        f.code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
        f.reason = payload.subarray(2).toString('utf8');
      }
      this.frames.push(f);
      this.log.push(f);
      if ((opcode === OP.BINARY || opcode === OP.CONT) && this._shim && payload.length) this._shim.emit('data', payload);
    }
  }

  wake() {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  waitFor(check, timeout, what) {
    return new Promise((resolve, reject) => {
      let timer;
      const attempt = () => {
        if (this.violations.length) { clearTimeout(timer); reject(new Error(`WebSocket violation by the server: ${this.violations.join('; ')}`)); return; }
        let v;
        try { v = check(); } catch (e) { clearTimeout(timer); reject(e); return; }
        if (v !== undefined) { clearTimeout(timer); resolve(v); return; }
        this.waiters.push(attempt);
      };
      timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== attempt);
        const seen = this.frames.map(describe).join(',') || 'nothing';
        reject(new Error(`timeout after ${timeout} ms waiting for ${what} (frames queued: ${seen}; closed: ${this.isClosed})`));
      }, timeout);
      attempt();
    });
  }

  // Takes the first queued server frame with `opcode` (any if omitted),
  // waiting up to `timeout`; rejects if the connection closes first.
  expectFrame({ timeout = DEFAULT_TIMEOUT, opcode } = {}) {
    const what = opcode === undefined ? 'a frame' : `a frame with opcode ${opcode}`;
    return this.waitFor(() => {
      const i = this.frames.findIndex((f) => opcode === undefined || f.opcode === opcode);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.isClosed) throw new Error(`connection closed while waiting for ${what} (frames: ${this.log.map(describe).join(',') || 'none'})`);
      return undefined;
    }, timeout, what);
  }

  // The server's close frame: { code, reason, payload }.
  expectClose({ timeout = DEFAULT_TIMEOUT } = {}) {
    return this.expectFrame({ timeout, opcode: OP.CLOSE });
  }

  // Resolves when the server has closed the TCP connection.
  closed(timeout = DEFAULT_TIMEOUT) {
    return this.waitFor(() => (this.isClosed ? this.log : undefined), timeout, 'the server to close the TCP connection');
  }

  // Waits for the TCP close and returns the server's close frame (or null
  // if it closed without one).
  async closedWith(timeout = DEFAULT_TIMEOUT) {
    await this.closed(timeout);
    return this.log.find((f) => f.opcode === OP.CLOSE) || null;
  }

  // An MQTT client (raw.mjs RawClient) whose bytes travel in masked binary
  // frames (one frame per send) and which decodes the payload of the
  // server's binary messages: c.mqtt.connect(), c.mqtt.expect('suback'), …
  get mqtt() {
    if (!this._mqtt) {
      const ws = this;
      const shim = new EventEmitter();
      shim.setNoDelay = () => {};
      shim.write = (buf) => ws.sendFrame({ opcode: OP.BINARY, payload: buf });
      shim.end = () => ws.end();
      shim.destroy = () => ws.destroy();
      Object.defineProperty(shim, 'destroyed', { get: () => ws.sock.destroyed });
      this._shim = shim;
      this._mqtt = new RawClient(shim, 4);
      if (this.isClosed) this._mqtt.isClosed = true;
      // Binary payload that arrived before the first use of c.mqtt.
      for (const f of this.log) if ((f.opcode === OP.BINARY || f.opcode === OP.CONT) && f.payload.length) shim.emit('data', f.payload);
    }
    return this._mqtt;
  }

  end() { if (!this.sock.destroyed) { this.sock.end(); setTimeout(() => this.sock.destroy(), 100).unref(); } return this; }
  destroy() { this.sock.destroy(); return this; }
}

function describe(f) {
  const name = { 0: 'cont', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' }[f.opcode] ?? `op${f.opcode}`;
  return f.opcode === OP.CLOSE ? `close(${f.code})` : `${name}[${f.payload.length}]`;
}

function parseHead(text) {
  const lines = text.split('\r\n');
  const m = /^(HTTP\/\d\.\d) (\d{3}) ?(.*)$/.exec(lines[0]);
  if (!m) throw new Error(`bad HTTP status line: ${JSON.stringify(lines[0])}`);
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) throw new Error(`bad HTTP header line: ${JSON.stringify(line)}`);
    (headers[line.slice(0, i).trim().toLowerCase()] ||= []).push(line.slice(i + 1).trim());
  }
  return {
    version: m[1], status: Number(m[2]), reason: m[3], headers, head: text, body: Buffer.alloc(0),
    get: (name) => headers[name.toLowerCase()]?.[0],
  };
}
