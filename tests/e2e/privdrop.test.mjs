// `user NAME` (Mosquitto's key): started as root, ternd switches to that
// user's uid, gid and supplementary groups after binding its listeners and
// opening its files, and still serves. Checked from outside, in
// /proc/PID/status (Uid, Gid and Groups lines: real, effective, saved and
// filesystem ids). An unknown user stops ternd with a clear error before it
// serves; not started as root, the key is ignored with a log line; after
// the switch, SIGHUP reads the files as that user (a file only root can
// read fails the reload, which keeps the running settings).
//
// Needs root (the e2e tests run as root here); skipped otherwise.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort, KIND, startBroker } from './lib/broker.mjs';
import { closeAll, connect, pub, sleep, sub, uid, within } from './lib/util.mjs';

const ROOT = process.getuid?.() === 0;
const TERND = process.env.TERND || 'build/ternd';

// uid, gid and supplementary groups of a user, from id(1).
function account(name) {
  const id = (flag) => spawnSync('id', [flag, name], { encoding: 'utf8' });
  const u = id('-u');
  if (u.status !== 0) return null;
  return {
    uid: Number(u.stdout),
    gid: Number(id('-g').stdout),
    groups: id('-G').stdout.trim().split(/\s+/).map(Number).sort((a, b) => a - b),
  };
}

// The Uid, Gid and Groups lines of /proc/PID/status.
function procIds(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = (key) => status.match(new RegExp(`^${key}:\\s*(.*)$`, 'm'))[1].trim();
  const nums = (s) => (s ? s.split(/\s+/).map(Number) : []);
  return { uid: nums(line('Uid')), gid: nums(line('Gid')), groups: nums(line('Groups')).sort((a, b) => a - b) };
}

// Sends SIGHUP and resolves with the reload line the broker logged.
async function reload(broker) {
  const re = /Reloaded configuration|Reload failed[^\n]*/g;
  const before = (broker.output().match(re) || []).length;
  broker.proc.kill('SIGHUP');
  const deadline = Date.now() + 5000;
  for (;;) {
    const all = broker.output().match(re) || [];
    if (all.length > before) return all[before];
    if (Date.now() > deadline) assert.fail(`no reload line after SIGHUP:\n${broker.output().slice(-1500)}`);
    await sleep(20);
  }
}

// Runs ternd to its exit; resolves { code, out }.
function runToExit(args, opts = {}, ms = 10000) {
  return new Promise((resolve, reject) => {
    const p = spawn(opts.cmd || TERND, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`ternd did not exit: ${out}`)); }, ms);
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out }); });
  });
}

describe('user: dropping privileges', { skip: (KIND !== 'tern' && 'tern only') || (!ROOT && 'needs root') }, () => {
  const nobody = account('nobody');
  let broker;

  after(async () => { await broker?.stop(); });

  test('user nobody: every uid and gid is nobody\'s, groups are nobody\'s, and ternd serves', async () => {
    assert.ok(nobody, 'no user nobody on this system');
    broker = await startBroker({ config: 'user nobody' });
    // The ports open before the switch (startBroker waits only for them);
    // the switch is done once ternd says it listens.
    const deadline = Date.now() + 5000;
    while (!/Listening:/.test(broker.output()) && Date.now() < deadline) await sleep(20);
    assert.match(broker.output(), /Running as user nobody \(uid \d+, gid \d+\)[^]*Listening:/);
    const ids = procIds(broker.proc.pid);
    assert.deepEqual(ids.uid, [nobody.uid, nobody.uid, nobody.uid, nobody.uid], 'Uid: real, effective, saved, filesystem');
    assert.deepEqual(ids.gid, [nobody.gid, nobody.gid, nobody.gid, nobody.gid], 'Gid: real, effective, saved, filesystem');
    assert.deepEqual(ids.groups, nobody.groups, 'supplementary groups (initgroups), root\'s group 0 gone');
    // Still serves, over both of the harness's transports.
    const t = uid('priv');
    for (const url of [broker.tcpUrl, broker.wsUrl]) {
      const a = await connect(broker, { url });
      const b = await connect(broker, { url });
      try {
        await sub(a, `${t}/#`, { qos: 1 });
        await pub(b, `${t}/x`, 'hello', { qos: 1 });
        const [m] = await a.waitMessages(1);
        assert.equal(m.payload, 'hello');
      } finally {
        await closeAll(a, b);
      }
    }
  });

  test('after the switch, a reload reads files as that user: unreadable refuses, readable applies', async () => {
    // The harness's directory is root's (mode 0700): nobody cannot read
    // the configuration, so the reload fails and the broker keeps going.
    const line = await reload(broker);
    assert.match(line, /^Reload failed/, 'a reload of a file nobody cannot read');
    assert.match(broker.output(), /Permission denied/);
    let c = await connect(broker, { url: broker.tcpUrl });
    await closeAll(c);
    // Made readable, the same reload works.
    chmodSync(broker.dir, 0o755);
    chmodSync(path.join(broker.dir, 'broker.conf'), 0o644);
    assert.equal(await reload(broker), 'Reloaded configuration');
    c = await connect(broker, { url: broker.tcpUrl });
    await closeAll(c);
    await broker.stop();
    broker = null;
  });

  test('an unknown user: exit status 1 with a clear error, before serving', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-priv-'));
    const port = await freePort();
    const conf = path.join(dir, 'u.conf');
    writeFileSync(conf, `listener ${port} 127.0.0.1\nuser tern-no-such-user\n`);
    const { code, out } = await runToExit(['-c', conf]);
    assert.equal(code, 1, out);
    assert.match(out, /ternd: user 'tern-no-such-user': no such user/);
    assert.doesNotMatch(out, /Listening:/, 'it must not have served');
    // --test-config finds it too.
    const t = await runToExit(['-c', conf, '--test-config']);
    assert.equal(t.code, 1, t.out);
    assert.match(t.out, /ternd: user 'tern-no-such-user': no such user/);
    assert.doesNotMatch(t.out, /configuration OK/);
  });

  test('not started as root: the key is ignored with a log line', { skip: !spawnSync('setpriv', ['--help']).stdout && 'needs setpriv' }, async () => {
    assert.ok(nobody, 'no user nobody on this system');
    // A directory and config nobody can read; ternd started as nobody.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-priv-'));
    chmodSync(dir, 0o755);
    const port = await freePort();
    const conf = path.join(dir, 'u.conf');
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\nuser root\n`);
    chmodSync(conf, 0o644);
    const p = spawn('setpriv', [`--reuid=${nobody.uid}`, `--regid=${nobody.gid}`, '--clear-groups', path.resolve(TERND), '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((r) => p.on('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 5000;
      while (!/Listening:/.test(out) && p.exitCode === null && Date.now() < deadline) await sleep(25);
      assert.match(out, /Not started as root: 'user root' ignored\./, out);
      const c = await connect({ url: `mqtt://127.0.0.1:${port}` });
      await closeAll(c);
    } finally {
      p.kill('SIGTERM');
      assert.equal(await within(exited, 10000, 'ternd exit'), 0, out);
    }
  });
});
