// MQTT over secure WebSocket from a real browser: headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core) loads the page of
// browser.test.mjs (browser/index.html + page.js + the MQTT.js bundle) over
// plain http from loopback and connects to wss://localhost:PORT/mqtt.
//
// Certificate verification stays on (no --ignore-certificate-errors):
// Chromium on Linux trusts the test CA through the NSS database of the
// user, $HOME/.pki/nssdb, so the browser runs with HOME set to a temporary
// directory whose database (certutil, Debian's libnss3-tools) holds the CA
// from lib/certs.mjs. A second wss listener presents a certificate from a
// CA that is not in the database, and the page must fail to connect there.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startBroker, freePort } from './lib/broker.mjs';
import { connect, closeAll, uid, sub, pub, within, sleep } from './lib/util.mjs';
import { makeCerts } from './lib/certs.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const FILES = {
  '/': ['text/html', path.join(HERE, 'browser/index.html')],
  '/page.js': ['text/javascript', path.join(HERE, 'browser/page.js')],
  '/mqtt.min.js': ['text/javascript', path.join(ROOT, 'node_modules/mqtt/dist/mqtt.min.js')],
};
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const certs = makeCerts();
let broker; let server; let origin; let context; let home; let wssPort; let untrustedPort;

before(async () => {
  // Four distinct ports: two for these listeners, two for the harness's.
  const pp = [];
  while (pp.length < 4) { const p = await freePort(); if (!pp.includes(p)) pp.push(p); }
  [wssPort, untrustedPort] = pp;
  broker = await startBroker({
    port: pp[2],
    wsPort: pp[3],
    config: [
      `listener ${wssPort} 127.0.0.1`, 'protocol websockets',
      `certfile ${certs.server.cert}`, `keyfile ${certs.server.key}`,
      `listener ${untrustedPort} 127.0.0.1`, 'protocol websockets',
      `certfile ${certs.foreignServer.cert}`, `keyfile ${certs.foreignServer.key}`,
    ].join('\n'),
  });
  server = http.createServer((req, res) => {
    const f = FILES[new URL(req.url, 'http://x').pathname];
    if (!f || req.method !== 'GET') { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': f[0], 'cache-control': 'no-store' });
    res.end(readFileSync(f[1]));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  origin = `http://127.0.0.1:${server.address().port}`;

  // A HOME whose NSS database trusts the test CA for TLS servers.
  home = mkdtempSync(path.join(os.tmpdir(), 'tern-chromium-home-'));
  const nssdb = path.join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  const certutil = (args) => execFileSync('certutil', [...args, '-d', `sql:${nssdb}`], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 });
  certutil(['-N', '--empty-password']);
  certutil(['-A', '-n', 'tern-test-ca', '-t', 'C,,', '-i', certs.ca.cert]);
  assert.match(certutil(['-L']).toString(), /tern-test-ca\s+C,,/);

  context = await chromium.launchPersistentContext(path.join(home, 'profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: home },
    timeout: 30000,
  });
});

after(async () => {
  try {
    if (context) await within(context.close(), 15000, 'chromium close');
  } finally {
    if (home) rmSync(home, { recursive: true, force: true });
    if (server) { server.closeAllConnections(); await new Promise((r) => server.close(r)); }
    if (broker) await broker.stop();
  }
});

async function openPage() {
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.logs = [];
  page.on('console', (m) => page.logs.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  await page.goto(`${origin}/`, { timeout: 10000 });
  assert.equal(await page.evaluate(() => typeof window.mqtt?.connect), 'function', 'mqtt.min.js did not load');
  return page;
}

async function pageReceives(page, payload, timeout = 5000) {
  await page.waitForFunction((p) => window.tern.messages.some((m) => m.payload === p), payload, { timeout });
  return (await page.evaluate(() => window.tern.messages)).filter((m) => m.payload === payload);
}

describe('browser (Chromium + MQTT.js over wss, CA trusted through NSS)', () => {
  for (const version of [4, 5]) {
    test(`v${version}: page on http connects to wss://localhost/mqtt, gets its own message and one from TCP`, { timeout: 60000 }, async () => {
      const topic = `${uid(`wss-v${version}`)}/t`;
      const tcp = await connect(broker, { url: broker.tcpUrl, protocolVersion: 4 });
      let page;
      try {
        await sub(tcp, topic, { qos: 0 });
        page = await openPage();
        const url = `wss://localhost:${wssPort}/mqtt`;
        await within(page.evaluate(([u, v]) => window.tern.connect(u, v), [url, version]), 15000, 'browser connect over wss');
        const t = await page.evaluate(() => ({ connacks: window.tern.connacks, sockets: window.tern.sockets(), errors: window.tern.errors }));
        assert.deepEqual(t.errors, []);
        assert.equal(t.connacks.length, 1);
        assert.equal(version === 5 ? t.connacks[0].reasonCode : t.connacks[0].returnCode, 0);
        assert.equal(t.sockets.length, 1);
        assert.equal(t.sockets[0].url, url);
        assert.equal(t.sockets[0].protocol, 'mqtt');
        assert.equal(t.sockets[0].readyState, 1);

        const granted = await within(page.evaluate((tp) => window.tern.subscribe(tp, 1), topic), 5000, 'browser subscribe');
        assert.deepEqual(granted, [{ topic, qos: 1 }]);

        const own = `from the browser over wss v${version}`;
        await within(page.evaluate(([tp, p]) => window.tern.publish(tp, p, 1), [topic, own]), 5000, 'browser publish');
        const [echo] = await pageReceives(page, own);
        assert.equal(echo.topic, topic);
        const [atTcp] = await tcp.waitMessages(1);
        assert.equal(atTcp.payload, own);

        const fromNode = `from node over tcp v${version}`;
        await pub(tcp, topic, fromNode, { qos: 1 });
        const [m] = await pageReceives(page, fromNode);
        assert.equal(m.qos, 1);
        assert.equal((await page.evaluate(() => window.tern.messages)).length, 2, 'each message exactly once');
      } catch (err) {
        err.message += page ? `\npage log:\n${page.logs.join('\n')}` : '';
        throw err;
      } finally {
        if (page && !page.isClosed()) await page.close().catch(() => {});
        await closeAll(tcp);
      }
    });
  }

  test('a wss server whose certificate is from an untrusted CA: the page does not connect', { timeout: 30000 }, async () => {
    const page = await openPage();
    try {
      const url = `wss://localhost:${untrustedPort}/mqtt`;
      // Resolves with the error or times out: either way no CONNACK.
      const r = await page.evaluate((u) => Promise.race([
        window.tern.connect(u, 4).then(() => 'connected', (e) => `error: ${e.message}`),
        new Promise((res) => setTimeout(() => res('no connection after 3 s'), 3000)),
      ]), url);
      assert.notEqual(r, 'connected');
      // Refused for the certificate's issuer, not for anything else.
      const deadline = Date.now() + 3000;
      while (!page.logs.some((l) => l.includes('ERR_CERT_AUTHORITY_INVALID')) && Date.now() < deadline) await sleep(100);
      assert.ok(page.logs.some((l) => l.includes('ERR_CERT_AUTHORITY_INVALID')), `no ERR_CERT_AUTHORITY_INVALID; page log:\n${page.logs.join('\n')}`);
      assert.deepEqual(await page.evaluate(() => window.tern.connacks), [], 'the browser accepted an untrusted certificate');
      // The trusted listener still works from the same browser.
      const page2 = await openPage();
      try {
        await within(page2.evaluate((u) => window.tern.connect(u, 4), `wss://localhost:${wssPort}/mqtt`), 15000, 'trusted wss after the untrusted one');
      } finally { await page2.close().catch(() => {}); }
    } finally { await page.close().catch(() => {}); }
  });
});
