#!/usr/bin/env node
// Regenerates the web client's screenshots in docs/img/ (docs/webclient.md
// shows them): starts ternd ($TERND, default build/ternd) on free loopback
// ports, lets a few simulated sensors publish, drives the page in headless
// Chromium (Debian's /usr/bin/chromium) and captures the main views.
//
//   make build && node scripts/screenshots.mjs
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';
import { startBroker } from '../tests/e2e/lib/broker.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const IMG = path.join(ROOT, 'docs/img');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const broker = await startBroker({ config: 'sys_interval 1\nadmin_token demo-token', threads: 2 });
const base = `http://127.0.0.1:${broker.wsPort}`;
const sensors = await mqtt.connectAsync(broker.tcpUrl, { clientId: 'sensor-hub' });
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
});
let timer;
try {
  mkdirSync(IMG, { recursive: true });
  await sensors.publishAsync('home/status', 'online', { qos: 1, retain: true });
  let t = 0;
  const tick = () => {
    t++;
    sensors.publish('home/kitchen/temperature', (21 + 2 * Math.sin(t / 5) + Math.random() * 0.3).toFixed(2));
    sensors.publish('home/garden/weather', JSON.stringify({
      temp: +(14 + 3 * Math.cos(t / 7)).toFixed(1), humidity: 60 + (t % 9), wind: 'NW',
    }));
    if (t % 3 === 0) sensors.publish('home/door/front', t % 6 ? 'closed' : 'open', { qos: 1 });
    if (t % 4 === 0) sensors.publish('home/meter/raw', Buffer.from([0x01, 0x02, t & 0xff, 0xfe, 0x7f]));
  };
  for (let i = 0; i < 40; i++) tick();

  const page = await browser.newPage({ viewport: { width: 1360, height: 820 } });
  await page.goto(base + '/');
  await page.waitForSelector('body[data-ready="1"]');
  await page.fill('#conn-form input[name=name]', 'local ternd');
  await page.screenshot({ path: path.join(IMG, 'webclient-connect.png') });
  await page.click('#connect');
  await page.waitForFunction(() => window.tern.connected);
  for (const [topic, qos] of [['home/#', 1], ['$SYS/broker/uptime', 0]]) {
    await page.fill('#sub-form input[name=topic]', topic);
    await page.selectOption('#sub-form select[name=qos]', String(qos));
    await page.click('#sub-form button[type=submit]');
  }
  timer = setInterval(tick, 100);
  await sleep(2500);
  await page.check('#pause');
  await page.click('#list-rows .msg:has(.tp:text-is("home/garden/weather"))');
  await page.fill('#pub-form input[name=topic]', 'home/kitchen/light');
  await page.fill('#pub-form textarea[name=payload]', '{"on": true, "level": 80}');
  await page.selectOption('#pub-form select[name=format]', 'json');
  await page.screenshot({ path: path.join(IMG, 'webclient-messages.png') });
  await page.click('.formats button[data-format=hex]');
  await page.screenshot({ path: path.join(IMG, 'webclient-hex.png'), clip: { x: 880, y: 80, width: 480, height: 400 } });

  await page.uncheck('#pause');
  await page.click('#tabs button[data-tab=charts]');
  await page.fill('#chart-form input[name=topic]', 'home/kitchen/temperature');
  await page.click('#chart-form button[type=submit]');
  await page.fill('#chart-form input[name=topic]', 'home/garden/weather');
  await page.fill('#chart-form input[name=field]', 'temp');
  await page.click('#chart-form button[type=submit]');
  await sleep(2500);
  await page.screenshot({ path: path.join(IMG, 'webclient-charts.png') });

  await page.click('#tabs button[data-tab=broker]');
  await sleep(1500);
  await page.screenshot({ path: path.join(IMG, 'webclient-broker.png') });

  await page.click('#tabs button[data-tab=clients]');
  await page.fill('#admin-form input[name=token]', 'demo-token');
  await page.click('#admin-form button[type=submit]');
  await page.waitForSelector('#clients-table tr[data-id="sensor-hub"]');
  await page.screenshot({ path: path.join(IMG, 'webclient-clients.png') });
  console.log(`screenshots written to ${path.relative(process.cwd(), IMG)}/`);
} finally {
  clearInterval(timer);
  await browser.close();
  await sensors.endAsync();
  await broker.stop();
}
