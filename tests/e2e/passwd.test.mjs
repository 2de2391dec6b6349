// `tern passwd` (apps/tern/passwd.c): files it writes are accepted by
// Debian's mosquitto and by ternd (right password connects, wrong one is
// refused); files mosquitto_passwd wrote are read and updated; -D, -U,
// the password sources (-b, stdin, --password-file, --password-env), the
// mode of new files, and malformed files refused with FILE:LINE.
//
// The tern binary sits next to ternd: $TERND (default build/ternd) with
// "tern" for "ternd".
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, statSync, existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { startBroker, freePort, KIND } from './lib/broker.mjs';
import { within, uid } from './lib/util.mjs';

const TERND = process.env.TERND || 'build/ternd';
const TERN = path.join(path.dirname(TERND), 'tern');
const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-passwd-'));
const HASH7 = /^\$7\$(\d+)\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/;
const HASH6 = /^\$6\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/;

function tern(args, opts = {}) {
  return spawnSync(TERN, ['passwd', ...args], { encoding: 'utf8', timeout: 10000, ...opts });
}

function file(name, text) {
  const p = path.join(dir, name);
  if (text !== undefined) writeFileSync(p, text);
  return p;
}

// The file's lines as { user: hash }.
function entries(p) {
  const out = {};
  for (const line of readFileSync(p, 'utf8').split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

// Connects with MQTT.js; resolves true when accepted, false when refused.
async function accepts(url, username, password) {
  try {
    const c = await within(mqtt.connectAsync(url, {
      protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 3000, clientId: uid('pw'), username, password,
    }, false), 4000, 'connect');
    await within(c.endAsync(true), 2000, 'end');
    return true;
  } catch (err) {
    if (/timeout after/.test(err.message)) throw err;
    return false;
  }
}

// Debian's mosquitto with password_file, on a free loopback port.
async function startMosquitto(pwfile) {
  const port = await freePort();
  // As root mosquitto would switch to user "mosquitto", who cannot read
  // the test's private directory: it stays who we are.
  const conf = file(`mosq-${port}.conf`, `user ${os.userInfo().username}\nper_listener_settings false\nallow_anonymous false\npassword_file ${pwfile}\nlistener ${port} 127.0.0.1\n`);
  const proc = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const url = `mqtt://127.0.0.1:${port}`;
  const deadline = Date.now() + 5000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`mosquitto exited: ${out}`);
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => { c.destroy(); resolve(false); });
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`mosquitto never listened: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.on('exit', r)));
    },
  };
}

describe('tern passwd', () => {
  let made;

  before(() => {
    made = file('made.pw');
    let r = tern(['-c', '-b', made, 'alice', 's3cret']);
    assert.equal(r.status, 0, r.stderr);
    r = tern([made, 'bob'], { input: 'bobpass\n' });
    assert.equal(r.status, 0, r.stderr);
    r = tern(['-H', 'sha512', '-b', made, 'carol', 'c4rol']);
    assert.equal(r.status, 0, r.stderr);
    r = tern(['-I', '1000', '--password-env', 'TERN_PW', made, 'dave'], { env: { ...process.env, TERN_PW: 'd4ve' } });
    assert.equal(r.status, 0, r.stderr);
    r = tern(['--password-file', file('pwline', 'e\u00e9ve\nignored\n'), made, 'eve']);
    assert.equal(r.status, 0, r.stderr);
  });

  test('writes $7$ (101 iterations by default, -I) and $6$ (-H sha512) lines, mode 0600', () => {
    const e = entries(made);
    assert.deepEqual(Object.keys(e), ['alice', 'bob', 'carol', 'dave', 'eve']);
    assert.match(e.alice, HASH7);
    assert.equal(HASH7.exec(e.alice)[1], '101');
    assert.equal(HASH7.exec(e.dave)[1], '1000');
    assert.match(e.carol, HASH6);
    assert.equal(statSync(made).mode & 0o777, 0o600);
  });

  test('Debian mosquitto accepts the file: right passwords connect, wrong ones are refused', async () => {
    const m = await startMosquitto(made);
    try {
      assert.equal(await accepts(m.url, 'alice', 's3cret'), true, 'alice');
      assert.equal(await accepts(m.url, 'bob', 'bobpass'), true, 'bob (stdin)');
      assert.equal(await accepts(m.url, 'carol', 'c4rol'), true, 'carol ($6$)');
      assert.equal(await accepts(m.url, 'dave', 'd4ve'), true, 'dave (-I 1000)');
      assert.equal(await accepts(m.url, 'eve', 'e\u00e9ve'), true, 'eve (--password-file)');
      assert.equal(await accepts(m.url, 'alice', 'wrong'), false, 'alice, wrong password');
      assert.equal(await accepts(m.url, 'mallory', 's3cret'), false, 'unknown user');
    } finally {
      await m.stop();
    }
  });

  test('mosquitto_sub accepts it too', async () => {
    const m = await startMosquitto(made);
    try {
      const port = new URL(m.url).port;
      const ok = spawnSync('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-u', 'alice', '-P', 's3cret', '-t', 'x', '-E'], { encoding: 'utf8', timeout: 5000 });
      assert.equal(ok.status, 0, ok.stderr);
      const bad = spawnSync('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-u', 'alice', '-P', 'nope', '-t', 'x', '-E'], { encoding: 'utf8', timeout: 5000 });
      assert.notEqual(bad.status, 0);
    } finally {
      await m.stop();
    }
  });

  test('ternd accepts the file: right passwords connect, wrong ones are refused', { skip: KIND !== 'tern' && 'ternd only' }, async () => {
    const b = await startBroker({ anonymous: false, config: `password_file ${made}` });
    try {
      const url = b.tcpUrl;
      assert.equal(await accepts(url, 'alice', 's3cret'), true, 'alice');
      assert.equal(await accepts(url, 'carol', 'c4rol'), true, 'carol ($6$)');
      assert.equal(await accepts(url, 'dave', 'd4ve'), true, 'dave (-I 1000)');
      assert.equal(await accepts(url, 'eve', 'e\u00e9ve'), true, 'eve');
      assert.equal(await accepts(url, 'bob', 'bobpas'), false, 'bob, wrong password');
      assert.equal(await accepts(url, 'nobody', 'x'), false, 'unknown user');
    } finally {
      await b.stop();
    }
  });

  test('updates a file made by mosquitto_passwd, keeping its other users', async () => {
    const p = file('mosq.pw');
    let r = spawnSync('mosquitto_passwd', ['-c', '-b', p, 'mu', 'mpass'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const before = entries(p).mu;
    r = tern(['-b', p, 'tu', 'tpass']);
    assert.equal(r.status, 0, r.stderr);
    r = tern(['-b', p, 'mu', 'newpass']);
    assert.equal(r.status, 0, r.stderr);
    const e = entries(p);
    assert.deepEqual(Object.keys(e), ['mu', 'tu']);
    assert.notEqual(e.mu, before);
    // mosquitto_passwd reads the result back and adds to it. (Not with a
    // comment line: mosquitto_passwd 2.0.11 then drops every other line.)
    r = spawnSync('mosquitto_passwd', ['-b', p, 'mu2', 'x'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const m = await startMosquitto(p);
    try {
      assert.equal(await accepts(m.url, 'mu', 'newpass'), true);
      assert.equal(await accepts(m.url, 'mu', 'mpass'), false);
      assert.equal(await accepts(m.url, 'tu', 'tpass'), true);
      assert.equal(await accepts(m.url, 'mu2', 'x'), true);
    } finally {
      await m.stop();
    }
  });

  test('-D deletes a user, keeping comments; an unknown user is an error and leaves the file alone', () => {
    const p = file('del.pw');
    tern(['-c', '-b', p, 'a', '1']);
    writeFileSync(p, `# users\n${readFileSync(p, 'utf8')}# end\n`);
    tern(['-b', p, 'b', '2']);
    let r = tern(['-D', p, 'a']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(Object.keys(entries(p)), ['b']);
    assert.match(readFileSync(p, 'utf8'), /^# users\n# end\nb:/);
    const text = readFileSync(p, 'utf8');
    r = tern(['-D', p, 'zz']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /zz/);
    assert.equal(readFileSync(p, 'utf8'), text);
  });

  test('-U hashes a plaintext file in place (kept mode) and refuses to hash twice', async () => {
    const p = file('plain.pw', '# plaintext\nu1:p1\nu2:p:2x\n');
    let r = tern(['-U', p]);
    assert.equal(r.status, 1, 'a ":" in a plaintext password is refused');
    writeFileSync(p, '# plaintext\nu1:p1\nu2:p2\n');
    spawnSync('chmod', ['640', p]);
    r = tern(['-U', p]);
    assert.equal(r.status, 0, r.stderr);
    const e = entries(p);
    assert.match(e.u1, HASH7);
    assert.match(e.u2, HASH7);
    assert.equal(statSync(p).mode & 0o777, 0o640);
    r = tern(['-U', p]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /plain\.pw:2: already hashed/);
    const m = await startMosquitto(p);
    try {
      assert.equal(await accepts(m.url, 'u2', 'p2'), true);
    } finally {
      await m.stop();
    }
  });

  test('a malformed file is refused with FILE:LINE and left unchanged', () => {
    const cases = [
      ['plain', 'ok:$6$q1xta40zmuwzcxyv$5I7smCTBXay78GPepEBb0ABz7Csk0C8gktHpL6tubaWWf3r1R2gZYdpNJeRw+K5kxp8xdSt4fq36CJ4F8QXuQA==\nbob:password\n', 2, /hash/],
      ['blank', '# x\n\n', 2, /blank/],
      ['nocolon', 'justauser\n', 1, /user:hash/],
      ['trunc', 'a:$7$101$bm90YmFzZTY0$\n', 1, /hash/],
      ['dup', 'a:$6$q1xta40zmuwzcxyv$5I7smCTBXay78GPepEBb0ABz7Csk0C8gktHpL6tubaWWf3r1R2gZYdpNJeRw+K5kxp8xdSt4fq36CJ4F8QXuQA==\na:$6$q1xta40zmuwzcxyv$5I7smCTBXay78GPepEBb0ABz7Csk0C8gktHpL6tubaWWf3r1R2gZYdpNJeRw+K5kxp8xdSt4fq36CJ4F8QXuQA==\n', 2, /duplicate/],
    ];
    for (const [name, text, line, why] of cases) {
      const p = file(`bad-${name}.pw`, text);
      const r = tern(['-b', p, 'new', 'x']);
      assert.equal(r.status, 1, name);
      assert.match(r.stderr, new RegExp(`bad-${name}\\.pw:${line}: `), name);
      assert.match(r.stderr, why, name);
      assert.equal(readFileSync(p, 'utf8'), text, name);
    }
  });

  test('on a terminal the password is asked twice without echo; a mismatch is refused', () => {
    // A pseudo-terminal from python3's pty module (node has none).
    const drive = (file, first, second) => spawnSync('python3', ['-c', `
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], ['tern', 'passwd', '-c', sys.argv[2], 'ttyuser'])
out = b''
def read():
    global out
    end = time.time() + 3
    while time.time() < end:
        try:
            chunk = os.read(fd, 1000)
        except OSError:
            return
        out += chunk
        if chunk.endswith(b': '):
            return
read(); os.write(fd, sys.argv[3].encode() + b'\\n')
read(); os.write(fd, sys.argv[4].encode() + b'\\n')
read()
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
sys.exit(os.WEXITSTATUS(st))
`, TERN, file, first, second], { encoding: 'utf8', timeout: 10000 });
    const p = file('tty.pw');
    let r = drive(p, 'tty-s3cret', 'tty-s3cret');
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Password: [\s\S]*Reenter password: /);
    assert.doesNotMatch(r.stdout, /tty-s3cret/, 'no echo');
    assert.match(entries(p).ttyuser, HASH7);
    const q = file('tty2.pw');
    r = drive(q, 'one', 'two');
    assert.equal(r.status, 1);
    assert.match(r.stdout, /do not match/);
    assert.equal(existsSync(q), false);
  });

  test('usage errors: missing file, bad user names, empty password, conflicting sources', () => {
    let r = tern(['-b', file('missing.pw'), 'u', 'p']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /missing\.pw/);
    const p = file('u.pw');
    for (const u of ['a:b', '', '#x']) {
      r = tern(['-c', '-b', p, u, 'p']);
      assert.equal(r.status, 1, `user '${u}'`);
    }
    r = tern(['-c', p, 'u'], { input: '\n' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /empty password/);
    r = tern(['-c', '-b', '--password-env', 'X', p, 'u', 'p']);
    assert.equal(r.status, 1);
    r = tern(['-c', '--password-env', 'TERN_UNSET_VAR', p, 'u'], { env: { PATH: process.env.PATH } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /TERN_UNSET_VAR/);
    r = tern(['-H', 'md5', '-c', '-b', p, 'u', 'p']);
    assert.equal(r.status, 1);
    assert.equal(existsSync(p), false, 'nothing written on errors');
    r = tern(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /usage: tern passwd/);
  });
});

