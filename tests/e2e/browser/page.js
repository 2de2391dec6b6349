// Driven by browser.test.mjs through page.evaluate(): one MQTT.js client
// (the browser bundle, global `mqtt`) whose events are recorded in
// window.tern for the test to poll.
'use strict';

window.tern = {
  client: null,
  state: 'idle',          // idle | connected | error | closed
  connacks: [],
  errors: [],
  messages: [],           // { topic, payload, qos, retain }
  suback: null,

  log(line) {
    document.getElementById('log').textContent += `${line}\n`;
  },

  // Connects with the options of the scenario under test, protocolVersion
  // `version`; resolves once the client is connected (or rejects).
  connect(url, version) {
    const t = window.tern;
    const options = {
      keepalive: 60,
      clientId: `mqttjs_${Math.random().toString(16).substr(2, 8)}`,
      protocolId: 'MQTT',
      protocolVersion: version,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 30 * 1000,
      will: {
        topic: 'WillMsg',
        payload: 'Connection Closed abnormally..!',
        qos: 0,
        retain: false,
      },
    };
    t.clientId = options.clientId;
    const client = mqtt.connect(url, options);
    t.client = client;
    client.on('connect', (connack) => {
      t.state = 'connected';
      t.connacks.push({ returnCode: connack.returnCode, reasonCode: connack.reasonCode, sessionPresent: connack.sessionPresent });
      t.log(`connected as ${options.clientId}`);
    });
    client.on('error', (err) => { t.errors.push(String(err && err.message)); t.log(`error ${err}`); });
    client.on('close', () => { if (t.state !== 'connected') t.state = 'closed'; t.log('close'); });
    client.on('message', (topic, payload, packet) => {
      t.messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
      t.log(`message ${topic}: ${payload}`);
    });
    return new Promise((resolve, reject) => {
      client.once('connect', () => resolve(options.clientId));
      client.once('error', (err) => reject(new Error(`connect: ${err && err.message}`)));
    });
  },

  subscribe(topic, qos) {
    return new Promise((resolve, reject) => {
      window.tern.client.subscribe(topic, { qos }, (err, granted) => {
        if (err) reject(new Error(`subscribe: ${err.message}`));
        else resolve(granted.map((g) => ({ topic: g.topic, qos: g.qos })));
      });
    });
  },

  publish(topic, payload, qos) {
    return new Promise((resolve, reject) => {
      window.tern.client.publish(topic, payload, { qos, retain: false }, (err) => {
        if (err) reject(new Error(`publish: ${err.message}`));
        else resolve();
      });
    });
  },

  // The WebSockets the page opened (recorded by the wrapper below), as seen
  // by the browser: URL, negotiated subprotocol, state.
  sockets() {
    return window.tern.wsList.map((ws) => ({ url: ws.url, protocol: ws.protocol, readyState: ws.readyState }));
  },
  wsList: [],
};

// Records every WebSocket MQTT.js creates, to check what the browser really
// negotiated.
window.WebSocket = class extends window.WebSocket {
  constructor(...args) {
    super(...args);
    window.tern.wsList.push(this);
  }
};
