// The `tern pub`, `tern sub` and `tern rr` command-line clients (issue 5)
// against a real ternd over mqtt, ws, mqtts and wss, and against Debian's
// mosquitto (tcp and websockets listeners) as an independent peer.
//
// The tern binary sits next to ternd ($TERND, default build/ternd), so the
// ASan and TSan runs of `make test` also run sanitized clients; $TERN_CLI
// overrides the path. Every tern process has a deadline and is killed when
// it passes it. A subscriber started with -d prints "subscribed" on stderr
// once its SUBACK arrived; tests publish only after that line, so there is
// no race between a subscription and the message it is meant to receive.
// Format tests run with TZ=UTC so that time fields are predictable.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startBroker, freePort, KIND } from './lib/broker.mjs';
import { connect, closeAll, uid, sub, pub, within, sleep } from './lib/util.mjs';
import { makeCerts } from './lib/certs.mjs';

const TERN_BIN = process.env.TERN_CLI || path.join(path.dirname(process.env.TERND || 'build/ternd'), 'tern');
const SANITIZER = /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer)/;
const certs = makeCerts();
const CA = certs.read(certs.ca.cert);
const DIR = mkdtempSync(path.join(os.tmpdir(), 'tern-cli-'));

// ---------------------------------------------------------------- helpers

// Starts `tern ARGS`; resolves { code, signal, out, err, ms } at exit.
// opts.input is written to stdin; opts.env adds variables; opts.ready is a
// regexp on stderr that resolves proc.ready (e.g. /subscribed/).
// Without -L, -h or -p, `-L DEFAULT.url` is added after the subcommand.
const DEFAULT = { url: null };
function start(args, { input, env = {}, timeout = 10000, ready } = {}) {
  const t0 = Date.now();
  if (DEFAULT.url && !args.some((a) => ['-L', '-h', '-p'].includes(a))) args = [args[0], '-L', DEFAULT.url, ...args.slice(1)];
  const proc = spawn(TERN_BIN, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, TZ: 'UTC', ...env },
  });
  let out = Buffer.alloc(0); let err = '';
  let readyResolve; let readyReject;
  const readyP = new Promise((res, rej) => { readyResolve = res; readyReject = rej; });
  readyP.catch(() => {});
  proc.stdout.on('data', (d) => { out = Buffer.concat([out, d]); });
  proc.stderr.on('data', (d) => {
    err += d;
    if (ready && ready.test(err)) readyResolve();
  });
  proc.stdin.on('error', () => {});
  if (input !== undefined) proc.stdin.end(input); else proc.stdin.end();
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeout);
  // 'close', not 'exit': only then has all of stdout and stderr been read.
  const done = new Promise((resolve) => proc.on('close', (code, signal) => {
    clearTimeout(timer);
    readyReject(new Error(`tern exited (${code}) before ready: ${err}`));
    assert.doesNotMatch(err, SANITIZER, `sanitizer report from tern ${args.join(' ')}`);
    resolve({ code, signal, out: out.toString(), raw: out, err, ms: Date.now() - t0, pid: proc.pid });
  }));
  return {
    proc,
    done,
    stdout: () => out.toString(),
    err: () => err,
    ready: ready ? within(readyP, timeout, `tern ${args.join(' ')}: ${ready}`) : null,
  };
}

const tern = (args, opts) => start(args, opts).done;

// A `tern sub` that has its SUBACK (-d prints "subscribed to 'FILTER'").
async function ternSub(args, opts = {}) {
  const s = start(['sub', ...args, '-d'], { ...opts, ready: /subscribed to '/ });
  await s.ready;
  return s;
}

// Waits until pred() holds, polling every 20 ms.
async function until(pred, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timeout after ${ms} ms: ${what}`);
    await sleep(20);
  }
}

function ok(r, what = 'tern') {
  assert.equal(r.code, 0, `${what} exited ${r.code} (signal ${r.signal}): ${r.err}`);
}

// Config lines of one TLS listener (as in tls.test.mjs).
function tlsListener(port, ws = false, extra = []) {
  return [`listener ${port} 127.0.0.1`, ...(ws ? ['protocol websockets'] : []),
    `certfile ${certs.server.cert}`, `keyfile ${certs.server.key}`, ...extra].join('\n');
}

async function freePorts(n) {
  const out = [];
  while (out.length < n) {
    const p = await freePort();
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

// Debian's mosquitto with a TCP and a websockets listener. 2.0.11 binds
// websockets to every address and needs a plain listener beside it.
async function startMosquitto() {
  const [port, wsPort] = await freePorts(2);
  const conf = path.join(DIR, `mosq-${port}.conf`);
  writeFileSync(conf, [`user ${os.userInfo().username}`, 'allow_anonymous true',
    `listener ${port} 127.0.0.1`, `listener ${wsPort}`, 'protocol websockets', ''].join('\n'));
  const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const deadline = Date.now() + 5000;
  for (const p of [port, wsPort]) {
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`mosquitto exited: ${out}`);
      const up = await new Promise((resolve) => {
        const c = net.connect(p, '127.0.0.1');
        c.once('connect', () => { c.destroy(); resolve(true); });
        c.once('error', () => { c.destroy(); resolve(false); });
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`mosquitto never listened: ${out}`);
      await sleep(50);
    }
  }
  return {
    port,
    tcpUrl: `mqtt://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${wsPort}/mqtt`,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.on('exit', r)));
    },
  };
}

function run(cmd, args, { timeout = 8000 } = {}) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeout);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

// ============================================================ ternd

describe('tern pub/sub/rr against ternd', { skip: KIND !== 'tern' && 'TLS listeners and ACLs set up for ternd' }, () => {
  let broker; let U; let mq; let tlsPort; let mtlsPort; let otherPort;
  const TLS = ['--cafile', certs.ca.cert];

  before(async () => {
    const [tlsP, wssP, mtlsP, otherP] = await freePorts(4);
    tlsPort = tlsP;
    mtlsPort = mtlsP;
    otherPort = otherP;
    const acl = path.join(DIR, 'acl');
    // Anonymous clients may use everything but denied/#, so a SUBSCRIBE
    // there gets a failure code in its SUBACK and a v5 PUBLISH a 0x87.
    writeFileSync(acl, 'topic deny denied/#\ntopic readwrite #\n');
    broker = await startBroker({
      config: [`acl_file ${acl}`, tlsListener(tlsP), tlsListener(wssP, true),
        tlsListener(mtlsP, false, [`cafile ${certs.ca.cert}`, 'require_certificate true']),
        // 127.0.0.2 is loopback too, but not a name in the certificate.
        tlsListener(otherP).replace('127.0.0.1', '127.0.0.2')].join('\n'),
    });
    U = {
      mqtt: broker.tcpUrl,
      ws: broker.wsUrl,
      mqtts: `mqtts://localhost:${tlsP}`,
      wss: `wss://localhost:${wssP}/mqtt`,
    };
    mq = await connect(broker, { url: broker.tcpUrl, protocolVersion: 5 });
    DEFAULT.url = broker.tcpUrl;
  });

  after(async () => {
    DEFAULT.url = null;
    await closeAll(mq);
    await broker.stop();
  });

  // A retained message published (and acknowledged) with MQTT.js.
  const retain = (topic, payload, properties = {}) => pub(mq, topic, payload, { qos: 1, retain: true, properties });

  for (const tr of ['mqtt', 'ws', 'mqtts', 'wss']) {
    test(`pub -> sub over ${tr}: QoS 0/1/2, MQTT 3.1.1 and 5`, async () => {
      const tls = ['mqtts', 'wss'].includes(tr) ? TLS : [];
      for (const [qos, v] of [[0, '311'], [1, '5'], [2, '311'], [2, '5']]) {
        const t = uid(`rt-${tr}`);
        const s = await ternSub(['-L', U[tr], ...tls, '-t', t, '-q', String(qos), '-V', v, '-C', '1', '-v']);
        ok(await tern(['pub', '-L', U[tr], ...tls, '-t', t, '-q', String(qos), '-V', v, '-m', `hello ${qos}`]), 'pub');
        const r = await s.done;
        ok(r, `sub over ${tr}`);
        assert.equal(r.out, `${t} hello ${qos}\n`);
      }
    });
  }

  test('-h/-p and --cafile alone select mqtts; -L mqtt://host/topic names the topic', async () => {
    const t = uid('hp');
    const s = await ternSub(['-h', 'localhost', '-p', String(tlsPort), ...TLS, '-t', t, '-C', '1']);
    ok(await tern(['pub', '-L', `${U.mqtt}/${t}`, '-m', 'via url topic']));
    assert.equal((await s.done).out, 'via url topic\n');
  });

  test('-F: every specifier', async () => {
    const t = uid('fmt');
    await retain(t, Buffer.from('h\u00e9llo'), {
      contentType: 'text/plain', responseTopic: 'resp/x', correlationData: Buffer.from('corr'),
      messageExpiryInterval: 300, payloadFormatIndicator: true, userProperties: { a: '1', b: '2' },
    });
    const fields = ['%t', '%p', '%x', '%X', '%l', '%q', '%r', '%C', '%D', '%E', '%F', '%R', '%S', '%P', '%A',
      '%I', '%U', '@Y', '@N', '@@', '%%', '%10t', '%-8l', '%05l', '%.3t', '%m', '\\t'];
    const before0 = Date.now();
    const r = await tern(['sub', '-V', '5', '-q', '1', '-t', t, '-C', '1', '-D', 'subscribe', 'subscription-identifier', '42',
      '-F', fields.join('|')]);
    ok(r);
    assert.ok(r.out.endsWith('\n'), 'a newline after the formatted message');
    const f = Object.fromEntries(r.out.slice(0, -1).split('|').map((v, i) => [fields[i], v]));
    const hex = Buffer.from('h\u00e9llo').toString('hex');
    assert.deepEqual([f['%t'], f['%p'], f['%x'], f['%X'], f['%l'], f['%q'], f['%r']],
      [t, 'h\u00e9llo', hex, hex.toUpperCase(), '6', '1', '1']);
    assert.deepEqual([f['%C'], f['%D'], f['%F'], f['%R'], f['%S'], f['%P'], f['%A']],
      ['text/plain', 'corr', '1', 'resp/x', '42', 'a:1 b:2', '']);
    assert.ok(Number(f['%E']) <= 300 && Number(f['%E']) >= 290, `%E ${f['%E']}`);
    assert.match(f['%I'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/);
    assert.ok(Math.abs(Date.parse(f['%I'].replace('+0000', 'Z')) - before0) < 60000, `%I ${f['%I']}`);
    assert.match(f['%U'], /^\d+\.\d{9}$/);
    assert.ok(Math.abs(Number(f['%U']) * 1000 - before0) < 60000, `%U ${f['%U']}`);
    assert.equal(f['@Y'], String(new Date().getUTCFullYear()));
    assert.match(f['@N'], /^\d{9}$/);
    assert.deepEqual([f['@@'], f['%%'], f['\\t']], ['@', '%', '\t']);
    assert.equal(f['%10t'], t.padStart(10));
    assert.equal(f['%-8l'], '6       ');
    assert.equal(f['%05l'], '00006');
    assert.equal(f['%.3t'], t.slice(0, 3));
    assert.match(f['%m'], /^[1-9]\d*$/, 'a QoS 1 message has a packet id');
    await retain(t, '');
  });

  test('-F %A and %m: topic aliases the broker uses, packet ids', async () => {
    const t = uid('alias');
    const s = await ternSub(['-V', '5', '-D', 'connect', 'topic-alias-maximum', '5', '-t', t, '-q', '1', '-C', '2', '-F', '%t|%A|%m']);
    for (const m of ['1', '2']) ok(await tern(['pub', '-t', t, '-q', '1', '-m', m]));
    const r = await s.done;
    ok(r);
    const lines = r.out.trim().split('\n').map((l) => l.split('|'));
    assert.equal(lines.length, 2);
    for (const [topic, alias, mid] of lines) {
      assert.equal(topic, t, 'the topic is resolved from the alias');
      assert.match(alias, /^[1-5]$/, 'ternd uses an alias when the client allows them');
      assert.match(mid, /^[1-9]\d*$/);
    }
  });

  test('-F errors are caught before connecting; -N drops the newline', async () => {
    const bad = await tern(['sub', '-t', 'x', '-F', '%z']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /unknown format field '%z'/);
    const t = uid('eol');
    await retain(`${t}/a`, 'A');
    await retain(`${t}/b`, 'B');
    const r = await tern(['sub', '-t', `${t}/#`, '-C', '2', '-N']);
    ok(r);
    assert.equal([...r.out].sort().join(''), 'AB');
    await retain(`${t}/a`, ''); await retain(`${t}/b`, '');
  });

  test('--json, -F %j and -F %J print parseable JSON', async () => {
    const t = uid('json');
    await retain(`${t}/j`, '{"x":[1,2]}', { contentType: 'application/json', userProperties: { k: 'v' } });
    await retain(`${t}/s`, 'plain "text"\n');
    await retain(`${t}/b`, Buffer.from([0xff, 0x00, 0x41]));
    const byTopic = (out) => Object.fromEntries(out.trim().split('\n').map((l) => JSON.parse(l)).map((o) => [o.topic, o]));
    for (const [args, parsed] of [[['--json'], false], [['-F', '%j'], false], [['-F', '%J'], true]]) {
      const r = await tern(['sub', '-V', '5', '-q', '1', '-t', `${t}/#`, '-C', '3', ...args]);
      ok(r);
      const m = byTopic(r.out);
      const j = m[`${t}/j`];
      assert.equal(j.qos, 1);
      assert.equal(j.retain, 1);
      assert.equal(j.payloadlen, 11);
      assert.ok(j.mid > 0, `mid ${j.mid} for a QoS 1 message`);
      assert.match(j.tst, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/);
      assert.deepEqual(j.properties, { 'content-type': 'application/json', 'user-properties': { k: 'v' } });
      assert.deepEqual(j.payload, parsed ? { x: [1, 2] } : '{"x":[1,2]}');
      assert.equal(m[`${t}/s`].payload, 'plain "text"\n');
      assert.equal(m[`${t}/b`].payload_hex, 'ff0041');
    }
    for (const x of ['j', 's', 'b']) await retain(`${t}/${x}`, '');
  });

  test('-v prints "topic payload", -C counts, -T filters out', async () => {
    const t = uid('v');
    const s = await ternSub(['-t', `${t}/#`, '-T', `${t}/skip/#`, '-v', '-C', '2']);
    for (const [topic, msg] of [['skip/x', 'no'], ['a', 'one'], ['skip', 'no'], ['b', ''], ['c', 'three']]) {
      ok(await tern(['pub', '-t', `${t}/${topic}`, '-q', '1', ...(msg ? ['-m', msg] : ['-n'])]));
    }
    const r = await s.done;
    ok(r);
    assert.equal(r.out, `${t}/a one\n${t}/b (null)\n`);
  });

  test('-W: exit status 27 when time runs out', async () => {
    const r = await tern(['sub', '-t', uid('w'), '-W', '1']);
    assert.equal(r.code, 27, r.err);
    assert.equal(r.out, '');
    assert.ok(r.ms >= 900 && r.ms < 6000, `took ${r.ms} ms`);
    assert.match(r.err, /timed out/);
  });

  test('-R skips retained messages; --retained-only stops at the first live one', async () => {
    const t = uid('R');
    await retain(`${t}/old`, 'stale');
    const s = await ternSub(['-t', `${t}/#`, '-R', '-C', '1', '-v']);
    ok(await tern(['pub', '-t', `${t}/new`, '-m', 'fresh', '-q', '1']));
    assert.equal((await s.done).out, `${t}/new fresh\n`);

    await retain(`${t}/old2`, 'stale2');
    const o = await ternSub(['-t', `${t}/#`, '--retained-only', '-v']);
    await until(() => o.stdout().split('\n').length === 3, 5000, 'two retained messages printed');
    ok(await tern(['pub', '-t', `${t}/live`, '-m', 'live']));
    const r = await o.done;
    ok(r, '--retained-only');
    assert.deepEqual(r.out.trim().split('\n').sort(), [`${t}/old stale`, `${t}/old2 stale2`]);
    await retain(`${t}/old`, ''); await retain(`${t}/old2`, '');
  });

  test('--remove-retained deletes each retained message it sees', async () => {
    const t = uid('rm');
    await retain(`${t}/a`, '1');
    await retain(`${t}/b/c`, '2');
    const r = await tern(['sub', '-t', `${t}/#`, '--retained-only', '--remove-retained', '-C', '2']);
    ok(r);
    assert.deepEqual(r.out.trim().split('\n').sort(), ['1', '2']);
    const c = await connect(broker, { url: broker.tcpUrl });
    try {
      await sub(c, `${t}/#`);
      await sleep(300);
      assert.deepEqual(c.messages.map((m) => m.topic), [], 'retained messages left behind');
    } finally { await closeAll(c); }
  });

  test('-E exits after the SUBACK; a refused subscription or publication exits 4', async () => {
    const e = await tern(['sub', '-t', uid('E'), '-E']);
    ok(e, '-E');
    for (const v of ['311', '5']) {
      const r = await tern(['sub', '-V', v, '-t', 'denied/x', '-W', '5']);
      assert.equal(r.code, 4, `SUBACK failure v${v}: ${r.err}`);
      assert.match(r.err, /subscription to 'denied\/x' refused: (failure|not authorized)/);
    }
    const p = await tern(['pub', '-V', '5', '-q', '1', '-t', 'denied/y', '-m', 'x']);
    assert.equal(p.code, 4, p.err);
    assert.match(p.err, /refused: not authorized \(0x87\)/);
  });

  test('pub -l, -s, -n, -f, -r, --repeat', async () => {
    const t = uid('src');
    const c = await connect(broker, { url: broker.tcpUrl });
    try {
      await sub(c, `${t}/#`, { qos: 1 });
      const bin = Buffer.from([0, 1, 2, 0xff, 10, 13, 0x80]);
      const file = path.join(DIR, 'payload.bin');
      writeFileSync(file, bin);
      ok(await tern(['pub', '-t', `${t}/l`, '-q', '1', '-l'], { input: 'one\ntwo\r\n\nthree' }), '-l');
      ok(await tern(['pub', '-t', `${t}/s`, '-q', '1', '-s'], { input: bin }), '-s');
      ok(await tern(['pub', '-t', `${t}/n`, '-q', '1', '-n']), '-n');
      ok(await tern(['pub', '-t', `${t}/f`, '-q', '2', '-f', file]), '-f');
      const rep = await tern(['pub', '-t', `${t}/rep`, '-m', 'r', '--repeat', '3', '--repeat-delay', '0.1']);
      ok(rep, '--repeat');
      assert.ok(rep.ms >= 200, `--repeat-delay: ${rep.ms} ms for 3 messages`);
      const got = await c.waitMessages(10);
      const by = (topic) => got.filter((m) => m.topic === `${t}/${topic}`).map((m) => m.packet.payload);
      assert.deepEqual(by('l').map(String), ['one', 'two', '', 'three']);
      assert.deepEqual(by('s'), [bin]);
      assert.deepEqual(by('n').map((b) => b.length), [0]);
      assert.deepEqual(by('f'), [bin]);
      assert.deepEqual(by('rep').map(String), ['r', 'r', 'r']);
      const missing = await tern(['pub', '-t', 'x', '-f', path.join(DIR, 'nope')]);
      assert.equal(missing.code, 1);
      assert.match(missing.err, /nope: No such file/);
    } finally { await closeAll(c); }
    ok(await tern(['pub', '-t', `${t}/ret`, '-m', 'kept', '-r', '-q', '1']), '-r');
    const r = await tern(['sub', '-t', `${t}/ret`, '-C', '1', '-F', '%r %p']);
    assert.equal(r.out, '1 kept\n');
    ok(await tern(['pub', '-t', `${t}/ret`, '-n', '-r']));
  });

  test('-D publish properties reach an MQTT.js v5 subscriber', async () => {
    const t = uid('D');
    const c = await connect(broker, { url: broker.tcpUrl, protocolVersion: 5 });
    try {
      await sub(c, t, { qos: 1 });
      ok(await tern(['pub', '-V', '5', '-q', '1', '-t', t, '-m', '{}',
        '-D', 'publish', 'content-type', 'application/json',
        '-D', 'publish', 'response-topic', 'reply/here',
        '-D', 'publish', 'correlation-data', 'xyz',
        '-D', 'publish', 'message-expiry-interval', '120',
        '-D', 'publish', 'payload-format-indicator', '1',
        '-D', 'publish', 'user-property', 'k', 'v',
        '-D', 'publish', 'user-property', 'k2', 'v 2',
        '-D', 'connect', 'user-property', 'who', 'tern',
        '-D', 'connect', 'receive-maximum', '10']));
      const [m] = await c.waitMessages(1);
      const p = m.packet.properties;
      assert.equal(p.contentType, 'application/json');
      assert.equal(p.responseTopic, 'reply/here');
      assert.equal(String(p.correlationData), 'xyz');
      assert.ok(p.messageExpiryInterval <= 120 && p.messageExpiryInterval > 100);
      assert.equal(p.payloadFormatIndicator, true);
      assert.deepEqual({ ...p.userProperties }, { k: 'v', k2: 'v 2' });
    } finally { await closeAll(c); }
    const v3 = await tern(['pub', '-t', t, '-m', 'x', '-D', 'publish', 'content-type', 'x']);
    assert.equal(v3.code, 1);
    assert.match(v3.err, /need MQTT 5/);
  });

  test('a will is published when tern sub dies', async () => {
    const t = uid('will');
    const c = await connect(broker, { url: broker.tcpUrl });
    try {
      await sub(c, `${t}/will`, { qos: 1 });
      await sub(c, `${t}/will5`, { qos: 1 });
      const s = await ternSub(['-t', `${t}/none`, '--will-topic', `${t}/will`, '--will-payload', 'gone', '--will-qos', '1']);
      s.proc.kill('SIGKILL');
      await s.done;
      const [m] = await c.waitMessages(1, { timeout: 5000 });
      assert.equal(m.payload, 'gone');
      // MQTT 5: a retained will with properties. Once the live copy has
      // arrived, the retained one is stored.
      const s5 = await ternSub(['-V', '5', '-t', `${t}/none`, '--will-topic', `${t}/will5`, '--will-payload', 'bye',
        '--will-retain', '-D', 'will', 'content-type', 'text/plain', '-D', 'will', 'user-property', 'why', 'killed']);
      s5.proc.kill('SIGKILL');
      await s5.done;
      await c.waitMessages(2, { timeout: 5000 });
    } finally { await closeAll(c); }
    const r = await tern(['sub', '-V', '5', '-t', `${t}/will5`, '-C', '1', '-W', '5', '-F', '%r %C %P %p']);
    ok(r, 'retained will');
    assert.equal(r.out, '1 text/plain why:killed bye\n');
    await retain(`${t}/will5`, '');
  });

  test('SIGTERM: tern sub disconnects cleanly and exits 0', async () => {
    const s = await ternSub(['-t', uid('term')]);
    s.proc.kill('SIGTERM');
    ok(await s.done);
  });

  test('rr: request with response topic and correlation data, answered by MQTT.js', async () => {
    const t = uid('rr');
    const responder = await connect(broker, { url: broker.tcpUrl, protocolVersion: 5 });
    try {
      await sub(responder, `${t}/req`, { qos: 1 });
      responder.on('message', (topic, payload, packet) => {
        const { responseTopic, correlationData } = packet.properties || {};
        if (!responseTopic) return;
        // A response for someone else first: it must not be printed.
        responder.publish(responseTopic, 'not yours', { qos: 1, properties: { correlationData: Buffer.from('other') } });
        responder.publish(responseTopic, `pong:${payload}`, { qos: 1, properties: { correlationData, contentType: 'text/plain' } });
      });
      const r = await tern(['rr', '-t', `${t}/req`, '-e', `${t}/resp`, '-m', 'ping', '-q', '1']);
      ok(r, 'rr');
      assert.equal(r.out, 'pong:ping\n');
      const f = await tern(['rr', '-t', `${t}/req`, '-e', `${t}/resp2`, '-m', 'ping2', '--correlation-data', 'c-42', '-F', '%D %C %p']);
      ok(f, 'rr -F');
      assert.equal(f.out, 'c-42 text/plain pong:ping2\n');
    } finally { await closeAll(responder); }
    const w = await tern(['rr', '-t', `${t}/nobody`, '-e', `${t}/resp`, '-m', 'x', '-W', '1']);
    assert.equal(w.code, 27, w.err);
  });

  test('TLS: an untrusted server certificate fails clearly (exit 2)', async () => {
    for (const url of [U.mqtts, U.wss]) {
      const r = await tern(['pub', '-L', url, '--cafile', certs.foreignCa.cert, '-t', 'x', '-m', 'y']);
      assert.equal(r.code, 2, `${url}: ${r.err}`);
      assert.match(r.err, /certificate|verify/i);
    }
    // --insecure skips the host name check only.
    const other = ['-L', `mqtts://127.0.0.2:${otherPort}`, '-t', uid('insecure'), '-m', 'y'];
    const mismatch = await tern(['pub', ...other, ...TLS]);
    assert.equal(mismatch.code, 2, mismatch.err);
    assert.match(mismatch.err, /mismatch/i);
    ok(await tern(['pub', ...other, ...TLS, '--insecure']), '--insecure');
    const foreign = await tern(['pub', ...other, '--cafile', certs.foreignCa.cert, '--insecure']);
    assert.equal(foreign.code, 2, '--insecure must still verify the chain');
    // --capath: a directory in OpenSSL's hashed layout.
    const capath = path.join(DIR, 'capath');
    mkdirSync(capath, { recursive: true });
    copyFileSync(certs.ca.cert, path.join(capath, 'ca.pem'));
    execFileSync('openssl', ['rehash', capath]);
    ok(await tern(['pub', '-L', U.mqtts, '--capath', capath, '-t', uid('capath'), '-m', 'y']), '--capath');
    const port = await freePort();
    const r = await tern(['pub', '-p', String(port), '-t', 'x', '-m', 'y']);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /cannot connect/);
    const quiet = await tern(['pub', '-p', String(port), '-t', 'x', '-m', 'y', '--quiet']);
    assert.equal(quiet.code, 2);
    assert.equal(quiet.err, '', '--quiet prints no runtime errors');
  });

  test('TLS: --cert/--key for a listener that requires a client certificate', async () => {
    const url = `mqtts://localhost:${mtlsPort}`;
    ok(await tern(['pub', '-L', url, ...TLS, '--cert', certs.alice.cert, '--key', certs.alice.key, '-t', uid('mtls'), '-m', 'x', '-q', '1']));
    const r = await tern(['pub', '-L', url, ...TLS, '-t', 'x', '-m', 'y']);
    assert.equal(r.code, 2, r.err);
  });

  test('-c -i -x: a persistent session keeps QoS 1 messages while the subscriber is away', async () => {
    for (const v of ['311', '5']) {
      const t = uid('persist');
      const id = uid('cid');
      ok(await tern(['sub', '-V', v, '-c', '-i', id, '-q', '1', '-t', t, '-E', ...(v === '5' ? ['-x', '60'] : [])]), 'first sub');
      ok(await tern(['pub', '-t', t, '-q', '1', '-m', `kept v${v}`]), 'pub while away');
      const r = await tern(['sub', '-V', v, '-c', '-i', id, '-q', '1', '-t', t, '-C', '1', '-W', '5']);
      ok(r, 'second sub');
      assert.equal(r.out, `kept v${v}\n`);
      const clean = await tern(['sub', '-t', 'x', '-c']);
      assert.equal(clean.code, 1);
      assert.match(clean.err, /needs a client id/);
    }
  });

  test('-I, -k, -u, -V and -c reach the CONNECT (ternd logs them)', async () => {
    const prefix = uid('pfx');
    const r = await tern(['pub', '-I', `${prefix}-`, '-k', '33', '-u', 'bob', '-V', '5', '-t', uid('i'), '-m', 'x']);
    ok(r);
    await until(() => broker.output().includes(`as ${prefix}-${r.pid}`), 3000, 'CONNECT logged');
    assert.match(broker.output(), new RegExp(`as ${prefix}-${r.pid} \\(p5, c1, k33, u'bob'\\)`));
  });

  test('--help, bad flags', async () => {
    for (const cmd of ['pub', 'sub', 'rr']) {
      const h = await tern([cmd, '--help']);
      ok(h, `${cmd} --help`);
      assert.match(h.out, new RegExp(`^usage: tern ${cmd}`));
      assert.match(h.out, /--pw-file/);
    }
    const b = await tern(['pub', '-t', 'x', '-m', 'y', '--bogus']);
    assert.equal(b.code, 1);
    assert.match(b.err, /unknown or incomplete option '--bogus'/);
  });
});

// Command lines refused before any connection (no broker needed).
describe('tern command-line checks', () => {
  const cases = [
    [['pub', '-t', 'x', '-m', 'y', '-D', 'publish', 'content-type', 'x'], /need MQTT 5/],
    [['pub', '-t', 'x', '-m', 'y', '-V', '31'], /MQTT 3\.1 is not supported/],
    [['pub', '-t', 'x', '-m', 'y', '-f', 'z'], /only one of -m, -f, -l, -s and -n/],
    [['pub', '-t', 'x'], /nothing to publish/],
    [['pub', '-m', 'x'], /no topic/],
    [['pub', '-t', 'x', '-m', 'y', '-q', '3'], /QoS \(-q\) must be a number from 0 to 2/],
    [['pub', '-t', 'x', '-m', 'y', '-V', '5', '-D', 'subscribe', 'user-property', 'a', 'b'], /tern pub sends no such packet/],
    [['pub', '-t', 'x', '-m', 'y', '-V', '5', '-D', 'publish', 'bogus', '1'], /unknown property 'bogus'/],
    [['pub', '-t', 'x', '-m', 'y', '-V', '5', '-D', 'connect', 'authentication-method', 'x'], /authentication-method in this packet is not supported/],
    [['pub', '-t', 'x', '-m', 'y', '-L', 'ws://127.0.0.1:1/mqtt', '--cafile', 'ca.crt'], /TLS options given for a ws:\/\/ URL; use wss:\/\//],
    [['pub', '-t', 'x', '-m', 'y', '-L', 'http://x'], /URL scheme must be mqtt, mqtts, ws or wss/],
    [['pub', '-t', 'x', '-m', 'y', '--will-qos', '1'], /need --will-topic/],
    [['pub', '-t', 'x', '-m', 'y', '-P', 'secret'], /a password needs a username/],
    [['pub', '-t', 'x', '-m', 'y', '-u', 'a', '--password-env', 'TERN_NO_SUCH_VAR'], /TERN_NO_SUCH_VAR is not set/],
    [['sub', '-t', 'x', '-R', '--retained-only'], /contradict/],
    [['sub', '-t', 'x', '-F', 'a\\q'], /unknown escape '\\q'/],
    [['sub', '-t', 'x', '-F', '%j', '--json'], /give -F or --json/],
    [['sub', '-t', 'x', '--nl'], /need MQTT 5/],
    [['sub', '-t', 'x', 'extra'], /unexpected argument 'extra'/],
    [['rr', '-t', 'x', '-m', 'y'], /no response topic/],
    [['rr', '-t', 'x', '-e', 'y', '-m', 'z', '-V', '311'], /request\/response needs MQTT 5/],
  ];
  test('each bad combination exits 1 with a reason', async () => {
    await Promise.all(cases.map(async ([args, re]) => {
      const r = await tern(args);
      assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}: ${r.err}`);
      assert.match(r.err, re, args.join(' '));
    }));
  });
});

// `tern sub` outlives a broker restart, as mosquitto_sub does: libtern
// reconnects with backoff and subscribes again.
describe('tern sub across a broker restart', { skip: KIND !== 'tern' && 'restarts ternd' }, () => {
  test('reconnects, resubscribes and keeps printing', async () => {
    const [port, wsPort] = await freePorts(2);
    let broker = await startBroker({ port, wsPort });
    let s;
    try {
      const t = uid('restart');
      s = await ternSub(['-L', broker.tcpUrl, '-t', t, '-C', '1', '-W', '20']);
      await broker.stop();
      await until(() => /connection lost/.test(s.err()), 5000, 'loss reported');
      broker = await startBroker({ port, wsPort });
      await until(() => /reconnected/.test(s.err()), 10000, 'reconnected');
      // The resubscription races the first publications: publish until
      // one arrives.
      const c = await connect(broker, { url: broker.tcpUrl });
      try {
        for (let i = 0; i < 50 && s.proc.exitCode === null; i++) {
          await pub(c, t, 'after restart', { qos: 1 });
          await sleep(100);
        }
      } finally { await closeAll(c); }
      const r = await s.done;
      ok(r, 'sub');
      assert.equal(r.out, 'after restart\n');
    } finally {
      if (s && s.proc.exitCode === null) s.proc.kill('SIGKILL');
      await broker.stop();
    }
  });
});

// Passwords from a Mosquitto password file (made by mosquitto_passwd).
describe('tern pub/sub passwords', { skip: KIND !== 'tern' && 'ternd with its own password file' }, () => {
  let broker; let pwfile;
  before(async () => {
    pwfile = path.join(DIR, 'passwd');
    execFileSync('mosquitto_passwd', ['-c', '-b', pwfile, 'alice', 's3cret w0rd']);
    broker = await startBroker({ anonymous: false, config: `password_file ${pwfile}` });
  });
  after(async () => { await broker.stop(); });

  test('--pw-file, TERN_PASSWORD and --password-env; a wrong password is refused (exit 3)', async () => {
    const file = path.join(DIR, 'alice.pw');
    writeFileSync(file, 's3cret w0rd\n', { mode: 0o600 });
    const base = ['pub', '-L', broker.tcpUrl, '-t', 'pw/x', '-m', 'hi', '-u', 'alice'];
    ok(await tern([...base, '--pw-file', file]), '--pw-file');
    ok(await tern(base, { env: { TERN_PASSWORD: 's3cret w0rd' } }), 'TERN_PASSWORD');
    ok(await tern([...base, '--password-env', 'MY_PW'], { env: { MY_PW: 's3cret w0rd' } }), '--password-env');
    ok(await tern(['sub', '-L', broker.wsUrl, '-t', 'pw/#', '-u', 'alice', '-E', '-V', '5'], { env: { TERN_PASSWORD: 's3cret w0rd' } }), 'sub over ws');
    for (const v of ['311', '5']) {
      const r = await tern([...base, '-V', v], { env: { TERN_PASSWORD: 'wrong' } });
      assert.equal(r.code, 3, `v${v}: ${r.err}`);
      assert.match(r.err, /connection refused: (bad user name or password|not authorized)/);
    }
    const anon = await tern(['pub', '-L', broker.tcpUrl, '-t', 'pw/x', '-m', 'hi'], { env: { TERN_PASSWORD: 's3cret w0rd' } });
    assert.equal(anon.code, 3, 'TERN_PASSWORD must not be sent without a username');
  });
});

// ============================================================ mosquitto

describe('tern pub/sub against Debian mosquitto', () => {
  let m;
  before(async () => { m = await startMosquitto(); });
  after(async () => { await m.stop(); });

  for (const tr of ['tcpUrl', 'wsUrl']) {
    test(`tern pub -> tern sub through mosquitto (${tr === 'tcpUrl' ? 'tcp' : 'websockets'}), v3.1.1 and v5`, async () => {
      for (const v of ['311', '5']) {
        const t = uid('mq');
        const s = await ternSub(['-L', m[tr], '-t', t, '-V', v, '-q', '1', '-C', '1', '-F', '%t %q %p']);
        ok(await tern(['pub', '-L', m[tr], '-t', t, '-V', v, '-q', '1', '-m', `v${v}`]), 'pub');
        const r = await s.done;
        ok(r, 'sub');
        assert.equal(r.out, `${t} 1 v${v}\n`);
      }
    });
  }

  test('tern rr over websockets, answered by an MQTT.js responder through mosquitto', async () => {
    const t = uid('mqrr');
    const responder = await connect({ url: m.tcpUrl }, { protocolVersion: 5 });
    try {
      await sub(responder, `${t}/req`, { qos: 1 });
      responder.on('message', (topic, payload, packet) => {
        const { responseTopic, correlationData } = packet.properties || {};
        if (responseTopic) responder.publish(responseTopic, `re:${payload}`, { qos: 1, properties: { correlationData } });
      });
      const r = await tern(['rr', '-L', m.wsUrl, '-t', `${t}/req`, '-e', `${t}/resp`, '-m', 'q', '-q', '1', '-W', '5', '-v']);
      ok(r, 'rr');
      assert.equal(r.out, `${t}/resp re:q\n`);
    } finally { await closeAll(responder); }
  });

  test('mosquitto_sub receives what tern pub sends; tern sub receives mosquitto_pub', async () => {
    const t = uid('mqx');
    ok(await tern(['pub', '-L', m.wsUrl, '-t', t, '-q', '1', '-r', '-V', '5', '-m', 'from tern',
      '-D', 'publish', 'user-property', 'src', 'tern']), 'tern pub');
    const r = await run('mosquitto_sub', ['-p', String(m.port), '-t', t, '-C', '1', '-W', '5', '-V', 'mqttv5', '-F', '%p %P']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'from tern src:tern\n');
    ok(await tern(['pub', '-L', m.tcpUrl, '-t', t, '-n', '-r']));

    const s = await ternSub(['-L', m.tcpUrl, '-t', t, '-C', '1', '-v']);
    const p = await run('mosquitto_pub', ['-p', String(m.port), '-t', t, '-m', 'from mosquitto']);
    assert.equal(p.code, 0, p.err);
    assert.equal((await s.done).out, `${t} from mosquitto\n`);
  });
});
