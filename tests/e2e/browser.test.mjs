// MQTT over WebSocket from a real browser: headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core) loads a page served from
// loopback that runs the MQTT.js browser bundle against broker.wsUrl, with
// the options of a typical web client (keepalive 60, clean, reconnect 1 s,
// will on WillMsg). The page subscribes to `testtopic`, gets its own message
// and one published by a Node client over TCP; a Node subscriber over TCP
// gets the will when the page goes away without an MQTT DISCONNECT.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startBroker } from './lib/broker.mjs';
import { connect, closeAll, uid, sub, pub, within } from './lib/util.mjs';

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
const WILL = 'Connection Closed abnormally..!';

let broker; let server; let origin; let context; let profile;

before(async () => {
  broker = await startBroker();
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
  profile = mkdtempSync(path.join(os.tmpdir(), 'tern-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30000,
  });
});

after(async () => {
  try {
    if (context) await within(context.close(), 15000, 'chromium close');
  } finally {
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (server) { server.closeAllConnections(); await new Promise((r) => server.close(r)); }
    if (broker) await broker.stop();
  }
});

// Opens the test page; console output and page errors are collected for
// failure messages.
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

// Waits until the page's client has received a message with `payload`.
async function pageReceives(page, payload, timeout = 5000) {
  await page.waitForFunction((p) => window.tern.messages.some((m) => m.payload === p), payload, { timeout });
  return (await page.evaluate(() => window.tern.messages)).filter((m) => m.payload === payload);
}

describe('browser (Chromium + MQTT.js over WebSocket)', () => {
  for (const version of [4, 5]) {
    test(`v${version}: page connects to ws://…/mqtt, pub/sub on testtopic with TCP clients, will on abrupt close`, { timeout: 90000 }, async () => {
      const tag = uid(`v${version}`);
      const watcher = await connect(broker, { url: broker.tcpUrl, protocolVersion: 5 });
      const tcp = await connect(broker, { url: broker.tcpUrl, protocolVersion: version });
      let page;
      try {
        await sub(watcher, 'WillMsg', { qos: 0 });
        await sub(watcher, 'testtopic', { qos: 0 });
        page = await openPage();

        const clientId = await within(page.evaluate(([url, v]) => window.tern.connect(url, v), [broker.wsUrl, version]), 15000, 'browser connect');
        assert.match(clientId, /^mqttjs_[0-9a-f]+$/);
        const t = await page.evaluate(() => ({ connacks: window.tern.connacks, sockets: window.tern.sockets(), errors: window.tern.errors }));
        assert.deepEqual(t.errors, []);
        assert.equal(t.connacks.length, 1);
        assert.equal(version === 5 ? t.connacks[0].reasonCode : t.connacks[0].returnCode, 0);
        assert.equal(t.connacks[0].sessionPresent, false);
        // One WebSocket, to the /mqtt URL, with the `mqtt` subprotocol
        // selected by the broker (MQTT 3.1.1 §6 / 5.0 §6).
        assert.equal(t.sockets.length, 1);
        assert.equal(t.sockets[0].url, broker.wsUrl);
        assert.equal(t.sockets[0].protocol, 'mqtt');
        assert.equal(t.sockets[0].readyState, 1);

        const granted = await within(page.evaluate(() => window.tern.subscribe('testtopic', 0)), 5000, 'browser subscribe');
        assert.deepEqual(granted, [{ topic: 'testtopic', qos: 0 }]);

        // Its own message comes back to the page, and reaches TCP.
        const own = `from the browser ${tag}`;
        await within(page.evaluate((p) => window.tern.publish('testtopic', p, 0), own), 5000, 'browser publish');
        const [echo] = await pageReceives(page, own);
        assert.equal(echo.topic, 'testtopic');
        assert.equal(echo.retain, false);
        await watcher.waitMessages(1, { filter: (m) => m.topic === 'testtopic' && m.payload === own });

        // TCP → browser.
        const fromNode = `from node over tcp ${tag}`;
        await pub(tcp, 'testtopic', fromNode, { qos: 1 });
        const [m] = await pageReceives(page, fromNode);
        assert.equal(m.topic, 'testtopic');
        assert.equal(m.qos, 0, 'delivered at the subscription QoS 0');
        assert.equal((await page.evaluate(() => window.tern.messages)).length, 2, 'each message exactly once');

        // The page goes away without an MQTT DISCONNECT: the broker must
        // publish the will (MQTT-3.1.2-8 / 5.0 §3.1.2.5).
        assert.equal(watcher.messages.filter((x) => x.topic === 'WillMsg').length, 0, 'will published while the page was connected');
        await page.close({ runBeforeUnload: false });
        const [will] = await watcher.waitMessages(1, { timeout: 5000, filter: (x) => x.topic === 'WillMsg' });
        assert.equal(will.payload, WILL);
        assert.equal(will.packet.retain, false);
        assert.equal(will.packet.qos, 0);
      } catch (err) {
        if (page && !page.isClosed()) {
          await page.screenshot({ path: path.join(os.tmpdir(), `tern-browser-v${version}.png`), timeout: 5000 }).catch(() => {});
        }
        err.message += page ? `\npage log:\n${page.logs.join('\n')}` : '';
        throw err;
      } finally {
        if (page && !page.isClosed()) await page.close().catch(() => {});
        await closeAll(watcher, tcp);
      }
    });
  }
});
