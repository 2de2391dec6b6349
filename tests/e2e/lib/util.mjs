// Helpers shared by the end-to-end tests: MQTT.js clients with bounded
// waits, unique topics, and the "broker still serves a new client" check.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { RawClient, enc } from './raw.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A topic prefix unique to one test.
export function uid(tag = 't') {
  return `${tag}-${randomBytes(5).toString('hex')}`;
}

// Races a promise against a timeout.
export function within(promise, ms, what = 'operation') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// Connects an MQTT.js client (no automatic reconnect, bounded connect) to
// broker.url (TCP, or WebSocket with TERN_E2E_TRANSPORT=ws); opts.url picks
// another URL (broker.tcpUrl, broker.wsUrl). Every received message is
// recorded in client.messages, and client.waitMessages(n) waits for the n-th.
export async function connect(broker, opts = {}) {
  const { url = broker.url, ...mqttOpts } = opts;
  const client = await within(mqtt.connectAsync(url, {
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 3000,
    clientId: uid('c'),
    ...mqttOpts,
  }, false), 4000, 'mqtt connect');
  client.messages = [];
  client.msgWaiters = [];
  client.on('message', (topic, payload, packet) => {
    client.messages.push({ topic, payload: payload.toString(), packet });
    for (const w of client.msgWaiters.splice(0)) w();
  });
  client.on('error', () => {});
  // Resolves with the first n messages (optionally filtered) or rejects.
  client.waitMessages = (n, { timeout = 3000, filter } = {}) => new Promise((resolve, reject) => {
    const pick = () => (filter ? client.messages.filter(filter) : client.messages);
    const timer = setTimeout(() => reject(new Error(`timeout: got ${pick().length} of ${n} messages`)), timeout);
    const check = () => {
      const got = pick();
      if (got.length >= n) { clearTimeout(timer); resolve(got.slice(0, n)); } else client.msgWaiters.push(check);
    };
    check();
  });
  return client;
}

// Ends MQTT.js clients (forcefully, bounded); ignores ones already gone.
export async function closeAll(...clients) {
  await Promise.all(clients.flat().filter(Boolean).map(async (c) => {
    try {
      if (c instanceof RawClient) { c.destroy(); return; }
      await within(c.endAsync(true), 2000, 'client end');
    } catch { /* already closed */ }
  }));
}

// Asserts the broker still accepts a new client and answers a PINGREQ.
export async function assertAlive(broker) {
  const c = await RawClient.connect(broker.port);
  try {
    const ack = await c.connect({ version: 4, clientId: uid('alive') });
    assert.equal(ack.reason, 0, 'broker refused a new client');
    c.send(enc.pingreq());
    await c.expect('pingresp', { timeout: 2000 });
  } finally {
    c.destroy();
  }
}

// Subscribes with MQTT.js and checks the SUBACK.
export async function sub(client, filter, opts = { qos: 0 }) {
  const granted = await within(client.subscribeAsync(filter, opts), 3000, `subscribe ${filter}`);
  for (const g of granted) assert.ok(g.qos < 0x80, `subscription to ${g.topic} refused (0x${g.qos.toString(16)})`);
  return granted;
}

export async function pub(client, topic, payload, opts = {}) {
  return within(client.publishAsync(topic, payload, opts), 3000, `publish ${topic}`);
}
