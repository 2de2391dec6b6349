// Behind proxies (issue: WebSocket, "Behind proxies"; BAD_INPUTS "spoofed
// X-Forwarded-For / PROXY header from an untrusted peer"): the client's
// address comes from X-Forwarded-For, X-Real-IP or a PROXY protocol header
// only when the socket peer is a configured trusted proxy.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startBroker, freePort, KIND } from './lib/broker.mjs';
import { RawClient, enc } from './lib/raw.mjs';
import { uid, sleep } from './lib/util.mjs';

const tern = KIND === 'tern';

// Upgrades a socket to WebSocket with extra headers, sends a CONNECT in one
// masked binary frame, and resolves with the first bytes the broker sends
// after the 101 response.
function wsConnect(port, headers, clientId) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => { s.destroy(); reject(new Error('ws connect timeout')); }, 3000);
    let buf = Buffer.alloc(0);
    let upgraded = false;
    s.on('error', reject);
    s.on('connect', () => {
      const lines = ['GET /mqtt HTTP/1.1', `Host: 127.0.0.1:${port}`, 'Upgrade: websocket',
        'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: mqtt', ...headers, '', ''];
      s.write(lines.join('\r\n'));
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        assert.match(buf.subarray(0, end).toString(), /^HTTP\/1\.1 101/);
        buf = buf.subarray(end + 4);
        upgraded = true;
        const pkt = enc.connect({ version: 4, clientId });
        const mask = Buffer.from([1, 2, 3, 4]);
        const masked = Buffer.from(pkt.map((b, i) => b ^ mask[i % 4]));
        s.write(Buffer.concat([Buffer.from([0x82, 0x80 | pkt.length]), mask, masked]));
      }
      if (upgraded && buf.length >= 6) { // a frame holding CONNACK
        clearTimeout(timer);
        s.destroy();
        resolve(buf);
      }
    });
  });
}

describe('trusted proxies', { skip: !tern && 'tern configuration keys' }, () => {
  let broker;
  let wsTrusted;
  let wsUntrusted;
  before(async () => {
    wsTrusted = await freePort();
    wsUntrusted = await freePort();
    broker = await startBroker({
      config: [
        `listener ${wsTrusted} 127.0.0.1`, 'protocol websockets', 'trusted_proxies 127.0.0.1/32, ::1',
        `listener ${wsUntrusted} 127.0.0.1`, 'protocol websockets', 'trusted_proxies 10.0.0.1',
      ].join('\n'),
    });
  });
  after(async () => { await broker.stop(); });

  test('X-Forwarded-For from a trusted proxy gives the client address', async () => {
    const id = uid('xff');
    await wsConnect(wsTrusted, ['X-Forwarded-For: 203.0.113.7'], id);
    await sleep(100);
    assert.match(broker.output(), new RegExp(`New client connected from 203\\.0\\.113\\.7 as ${id}`));
  });

  test('the right-most untrusted X-Forwarded-For entry wins (left entries can be forged)', async () => {
    const id = uid('xff2');
    await wsConnect(wsTrusted, ['X-Forwarded-For: 1.1.1.1, 198.51.100.20', 'X-Forwarded-For: 127.0.0.1'], id);
    await sleep(100);
    assert.match(broker.output(), new RegExp(`New client connected from 198\\.51\\.100\\.20 as ${id}`));
  });

  test('X-Real-IP from a trusted proxy is used when there is no X-Forwarded-For', async () => {
    const id = uid('xri');
    await wsConnect(wsTrusted, ['X-Real-IP: 2001:db8::5'], id);
    await sleep(100);
    assert.match(broker.output(), new RegExp(`New client connected from 2001:db8::5 as ${id}`));
  });

  test('X-Forwarded-For from an untrusted peer is ignored', async () => {
    const id = uid('spoof');
    await wsConnect(wsUntrusted, ['X-Forwarded-For: 203.0.113.99', 'X-Real-IP: 203.0.113.98'], id);
    await sleep(100);
    assert.match(broker.output(), new RegExp(`New client connected from 127\\.0\\.0\\.1:\\d+ as ${id}`));
    assert.doesNotMatch(broker.output(), /203\.0\.113\.9[89]/);
  });
});

describe('PROXY protocol', { skip: !tern && 'tern configuration keys' }, () => {
  let broker;
  let trustedPort;
  let untrustedPort;
  before(async () => {
    trustedPort = await freePort();
    untrustedPort = await freePort();
    broker = await startBroker({
      config: [
        `listener ${trustedPort} 127.0.0.1`, 'proxy_protocol true', 'trusted_proxies 127.0.0.1',
        `listener ${untrustedPort} 127.0.0.1`, 'proxy_protocol true', 'trusted_proxies 10.0.0.0/8',
      ].join('\n'),
    });
  });
  after(async () => { await broker.stop(); });

  test('v1 header from a trusted proxy: the client address is the one in the header', async () => {
    const id = uid('pp1');
    const c = await RawClient.connect(trustedPort);
    try {
      c.sendRaw(Buffer.from('PROXY TCP4 198.51.100.9 127.0.0.1 5555 1883\r\n'));
      const ack = await c.connect({ version: 4, clientId: id });
      assert.equal(ack.reason, 0);
      await sleep(100);
      assert.match(broker.output(), new RegExp(`New client connected from 198\\.51\\.100\\.9:5555 as ${id}`));
    } finally { c.destroy(); }
  });

  test('v2 header (binary, IPv6) from a trusted proxy', async () => {
    const id = uid('pp2');
    const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
    const src = Buffer.alloc(16); src[0] = 0x20; src[1] = 0x01; src[2] = 0x0d; src[3] = 0xb8; src[15] = 9;
    const dst = Buffer.alloc(16); dst[15] = 1;
    const ports = Buffer.from([0x1f, 0x90, 0x07, 0x5b]); // 8080 -> 1883
    const body = Buffer.concat([src, dst, ports]);
    const hdr = Buffer.concat([sig, Buffer.from([0x21, 0x21, 0x00, body.length]), body]);
    const c = await RawClient.connect(trustedPort);
    try {
      c.sendRaw(hdr);
      const ack = await c.connect({ version: 5, clientId: id });
      assert.equal(ack.reason, 0);
      await sleep(100);
      assert.match(broker.output(), new RegExp(`New client connected from \\[2001:db8::9\\]:8080 as ${id}`));
    } finally { c.destroy(); }
  });

  test('a malformed PROXY header closes the connection', async () => {
    const c = await RawClient.connect(trustedPort);
    try {
      c.sendRaw(Buffer.from('PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n'));
      await c.closed(2000);
    } finally { c.destroy(); }
  });

  test('a peer that is not a trusted proxy is refused on a PROXY listener', async () => {
    const c = await RawClient.connect(untrustedPort);
    try {
      c.sendRaw(Buffer.from('PROXY TCP4 198.51.100.10 127.0.0.1 5555 1883\r\n'));
      await c.closed(2000);
    } finally { c.destroy(); }
    assert.doesNotMatch(broker.output(), /198\.51\.100\.10/);
  });
});
