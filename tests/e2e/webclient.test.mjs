// The web client ternd serves at / of a websockets listener (web/, embedded
// at build time), driven in headless Chromium (Debian's /usr/bin/chromium,
// playwright-core) over http and over https with the test CA trusted
// through an NSS database in a temporary HOME (as browser_tls.test.mjs).
//
// The page connects with its pre-filled form (ws:// or wss:// from its own
// origin), subscribes, sees a retained message, its own publish and an
// outside MQTT.js client's with the right topic, QoS and retain; switches
// a payload to hex and JSON; charts a numeric topic (data points read from
// the page's state, a screenshot kept under $TERN_TEST_OUTPUT or
// $TMPDIR/tern-test-output); finds its saved connection after a reload.
// Then 100,000 messages: the history stays bounded with the dropped count
// shown, a click afterwards is answered promptly, and the JS heap stays
// bounded. No Content-Security-Policy violation may be reported.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startBroker, freePort, KIND } from './lib/broker.mjs';
import { connect, closeAll, pub, uid, within } from './lib/util.mjs';
import { makeCerts } from './lib/certs.mjs';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const OUT = process.env.TERN_TEST_OUTPUT || path.join(os.tmpdir(), 'tern-test-output');
const BURST = 100000;
const TOKEN = 'webclient-admin-token';

let broker; let browser; let home; let wssPort; let certs;

describe('web client', { skip: KIND !== 'tern' && 'ternd only' }, () => {
  before(async () => {
    certs = makeCerts();
    wssPort = await freePort();
    broker = await startBroker({
      config: [`admin_token ${TOKEN}`, `listener ${wssPort} 127.0.0.1`, 'protocol websockets',
        `certfile ${certs.server.cert}`, `keyfile ${certs.server.key}`].join('\n'),
    });
    home = mkdtempSync(path.join(os.tmpdir(), 'tern-webclient-home-'));
    const nssdb = path.join(home, '.pki', 'nssdb');
    mkdirSync(nssdb, { recursive: true });
    const certutil = (args) => execFileSync('certutil', [...args, '-d', `sql:${nssdb}`], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10000 });
    certutil(['-N', '--empty-password']);
    certutil(['-A', '-n', 'tern-test-ca', '-t', 'C,,', '-i', certs.ca.cert]);
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, timeout: 30000,
      env: { ...process.env, HOME: home },
    });
    mkdirSync(OUT, { recursive: true });
  });

  after(async () => {
    try {
      if (browser) await within(browser.close(), 15000, 'chromium close');
    } finally {
      if (home) rmSync(home, { recursive: true, force: true });
      if (broker) await broker.stop();
    }
  });

  // A page in a fresh context (its own localStorage), with its console
  // errors collected.
  async function open(base) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.errors = [];
    page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
    page.on('pageerror', (e) => page.errors.push(e.message));
    await page.goto(base + '/');
    await page.waitForSelector('body[data-ready="1"]', { timeout: 10000 });
    return page;
  }

  async function connectPage(page) {
    await page.click('#connect');
    await page.waitForFunction(() => window.tern.connected, null, { timeout: 10000 });
  }

  async function subscribePage(page, topic, qos) {
    await page.fill('#sub-form input[name=topic]', topic);
    await page.selectOption('#sub-form select[name=qos]', String(qos));
    await page.click('#sub-form button[type=submit]');
    await page.waitForFunction((t) => window.tern.state.subs.some((s) => s.topic === t && s.granted !== undefined), topic, { timeout: 5000 });
  }

  async function publishPage(page, topic, payload, qos = 0, retain = false) {
    await page.fill('#pub-form input[name=topic]', topic);
    await page.fill('#pub-form textarea[name=payload]', payload);
    await page.selectOption('#pub-form select[name=qos]', String(qos));
    await page.setChecked('#pub-form input[name=retain]', retain);
    await page.click('#pub-form button[type=submit]');
  }

  // Messages the page holds, oldest first, as plain objects.
  const messages = (page) => page.evaluate(() => {
    const s = window.tern.store; const out = [];
    for (let i = 0; i < s.size; i++) {
      const m = s.at(i);
      out.push({ id: m.id, topic: m.topic, qos: m.qos, retain: m.retain, text: new TextDecoder().decode(m.payload) });
    }
    return out;
  });

  async function scenario(base, expectUrl, tag) {
    const root = `wc-${tag}-${Date.now()}`;
    const outside = await connect(broker);
    await pub(outside, `${root}/kept`, 'retained one', { qos: 1, retain: true });
    const page = await open(base);
    try {
      assert.equal(await page.inputValue('#conn-form input[name=url]'), expectUrl);
      const name = await page.evaluate(() => document.querySelector('#conn-form input[name=clientId]').value);
      await connectPage(page);
      await subscribePage(page, `${root}/#`, 1);
      await publishPage(page, `${root}/page`, 'from the page', 1);
      await pub(outside, `${root}/json`, JSON.stringify({ temp: 21.5, unit: 'C' }), { qos: 0 });
      await page.waitForFunction((n) => window.tern.store.size >= n, 3, { timeout: 5000 });
      const got = await messages(page);
      const by = (t) => got.find((m) => m.topic === `${root}/${t}`);
      assert.deepEqual([by('kept').qos, by('kept').retain, by('kept').text], [1, true, 'retained one']);
      assert.deepEqual([by('page').qos, by('page').retain, by('page').text], [1, false, 'from the page']);
      assert.deepEqual([by('json').qos, by('json').retain], [0, false]);
      // Every message is a row of the list.
      for (const t of ['kept', 'page', 'json']) {
        await page.waitForSelector(`#list-rows .msg:not([hidden]) .tp:text-is("${root}/${t}")`, { timeout: 3000 });
      }

      // Payload views of the JSON message.
      await page.click(`#list-rows .msg:has(.tp:text-is("${root}/json"))`);
      await page.click('.formats button[data-format=hex]');
      const hex = Buffer.from(by('json').text).toString('hex').match(/../g);
      assert.equal((await page.textContent('#payload')).replace(/\s+/g, ''), hex.join(''));
      await page.click('.formats button[data-format=base64]');
      assert.equal(await page.textContent('#payload'), Buffer.from(by('json').text).toString('base64'));
      await page.click('.formats button[data-format=json]');
      assert.equal(await page.textContent('#payload'), JSON.stringify({ temp: 21.5, unit: 'C' }, null, 2));
      // The format is remembered per message.
      await page.click(`#list-rows .msg:has(.tp:text-is("${root}/page"))`);
      assert.equal(await page.textContent('#payload'), 'from the page');
      await page.click(`#list-rows .msg:has(.tp:text-is("${root}/json"))`);
      assert.equal(await page.getAttribute('.formats button.active', 'data-format'), 'json');

      // A numeric topic on a chart: points from before the chart and after.
      for (const v of [3, 1, 4]) await publishPage(page, `${root}/num`, String(v), 1);
      await page.waitForFunction((t) => window.tern.store.size >= 6, null, { timeout: 5000 });
      await page.click('#tabs button[data-tab=charts]');
      await page.fill('#chart-form input[name=topic]', `${root}/num`);
      await page.click('#chart-form button[type=submit]');
      for (const v of [1, 5]) await pub(outside, `${root}/num`, String(v), { qos: 1 });
      await page.waitForFunction(() => window.tern.charts.list[0]?.ys.length === 5, null, { timeout: 5000 });
      const chart = await page.evaluate(() => {
        const c = window.tern.charts.list[0];
        return { ys: c.ys, plotted: Array.from(c.plot.data[1]), xs: c.plot.data[0].length };
      });
      assert.deepEqual(chart.ys, [3, 1, 4, 1, 5]);
      assert.deepEqual(chart.plotted, [3, 1, 4, 1, 5]);
      assert.equal(chart.xs, 5);
      const shot = path.join(OUT, `webclient-chart-${tag}.png`);
      await page.screenshot({ path: shot });
      console.log(`screenshot: ${shot}`);

      // After a reload the connection is among the saved ones and filled in.
      await page.reload();
      await page.waitForSelector('body[data-ready="1"]');
      const saved = await page.$$eval('#saved option', (o) => o.map((x) => x.value));
      assert.ok(saved.includes(expectUrl), JSON.stringify(saved));
      assert.equal(await page.inputValue('#conn-form input[name=clientId]'), name);
      assert.equal(await page.evaluate(() => window.tern.state.subs.map((s) => s.topic).join()), `${root}/#`);
      assert.deepEqual(page.errors.filter((e) => /Content Security Policy|mixed content/i.test(e)), []);
    } finally {
      await pub(outside, `${root}/kept`, '', { qos: 1, retain: true });
      await closeAll(outside);
      await page.context().close();
    }
  }

  test('over http: connect, subscribe, publish, payload views, chart, saved connection', async () => {
    await scenario(`http://127.0.0.1:${broker.wsPort}`, `ws://127.0.0.1:${broker.wsPort}/mqtt`, 'http');
  });

  test('over https: the same with wss:// and no mixed content', async () => {
    await scenario(`https://localhost:${wssPort}`, `wss://localhost:${wssPort}/mqtt`, 'https');
  });

  test('Clients tab: the admin API lists a client and disconnects it', async () => {
    const id = uid('victim');
    const outside = await connect(broker, { clientId: id });
    const page = await open(`http://127.0.0.1:${broker.wsPort}`);
    try {
      await page.click('#tabs button[data-tab=clients]');
      await page.click('#admin-form button[type=submit]');
      await page.waitForSelector('#admin-status.error', { timeout: 5000 });
      await page.fill('#admin-form input[name=token]', TOKEN);
      await page.click('#admin-form button[type=submit]');
      const row = `#clients-table tr[data-id="${id}"]`;
      await page.waitForSelector(row, { timeout: 5000 });
      assert.equal(await page.textContent(`${row} td:nth-child(3)`), broker.transport);
      const gone = new Promise((resolve) => outside.on('close', resolve));
      await page.click(`${row} button[data-kick]`);
      await within(gone, 5000, 'kicked client close');
      await page.waitForSelector(`${row} td:nth-child(2):text-is("yes")`, { state: 'detached', timeout: 5000 });
    } finally {
      await closeAll(outside);
      await page.context().close();
    }
  });

  test(`${BURST} messages: bounded history, dropped count, prompt interaction, bounded heap`, async () => {
    const page = await open(`http://127.0.0.1:${broker.wsPort}`);
    const outside = await connect(broker);
    try {
      await connectPage(page);
      await subscribePage(page, 'burst/#', 0);
      const max = await page.evaluate(() => window.tern.store.max);
      const payload = JSON.stringify({ n: 0, v: 'x'.repeat(40) });
      const t0 = Date.now();
      for (let i = 0; i < BURST; i += 1000) {
        for (let k = 0; k < 1000; k++) outside.publish(`burst/${k % 10}`, payload, { qos: 0 });
        await new Promise((r) => outside.stream.writableNeedDrain ? outside.stream.once('drain', r) : setImmediate(r));
      }
      await pub(outside, 'burst/end', 'end', { qos: 1 });
      // QoS 0 may be dropped on the way when the page falls behind; wait
      // for the end marker (sent last, QoS 1) and what came before it.
      await page.waitForFunction(() => window.tern.store.newest(0)?.topic === 'burst/end', null, { timeout: 60000, polling: 200 });
      const burstMs = Date.now() - t0;
      const st = await page.evaluate(() => ({ size: window.tern.store.size, total: window.tern.store.total, dropped: window.tern.store.dropped }));
      console.log(`${st.total} messages in ${burstMs} ms; kept ${st.size}, dropped ${st.dropped}`);
      assert.ok(st.total > max, `got only ${st.total}`);
      assert.equal(st.size, max);
      assert.equal(st.dropped, st.total - max);
      await page.waitForFunction((d) => document.getElementById('counts').textContent.includes(`${d} older dropped`), st.dropped, { timeout: 3000 });

      // An interaction right after the burst: select a row, see its payload.
      const c0 = Date.now();
      await page.click('#list-rows .msg:nth-child(3)');
      await page.waitForSelector('#payload', { timeout: 5000 });
      await page.fill('#filter-topic', 'burst/7');
      await page.waitForFunction(() => document.querySelector('#list-rows .msg:not([hidden]) .tp')?.textContent === 'burst/7', null, { timeout: 5000 });
      const clickMs = Date.now() - c0;
      console.log(`select + filter after the burst: ${clickMs} ms`);
      assert.ok(clickMs < 3000, `interaction took ${clickMs} ms`);
      assert.ok(await page.$$eval('#list-rows .msg', (r) => r.length) < 200, 'rows are virtualised');

      const cdp = await page.context().newCDPSession(page);
      await cdp.send('HeapProfiler.collectGarbage');
      await cdp.send('Performance.enable');
      const { metrics } = await cdp.send('Performance.getMetrics');
      const heap = metrics.find((m) => m.name === 'JSHeapUsedSize').value;
      console.log(`JS heap after the burst: ${(heap / 1048576).toFixed(1)} MiB`);
      assert.ok(heap < 150 * 1048576, `JS heap ${heap}`);
      await page.screenshot({ path: path.join(OUT, 'webclient-burst.png') });
      assert.deepEqual(page.errors.filter((e) => /Content Security Policy/i.test(e)), []);
    } finally {
      await closeAll(outside);
      await page.context().close();
    }
  });
});
