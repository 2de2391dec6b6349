// ternd's command line and configuration errors (shared/CONVENTIONS.md,
// BAD_INPUTS.md "Configuration and files"): bad input refuses to start with
// FILE:LINE and the reason; --test-config checks without starting.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KIND, startBroker } from './lib/broker.mjs';
import { assertAlive } from './lib/util.mjs';

const TERND = process.env.TERND || 'build/ternd';
const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-cli-'));

function conf(name, text) {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

function ternd(...args) {
  return spawnSync(TERND, args, { encoding: 'utf8', timeout: 10000 });
}

describe('ternd command line', { skip: KIND !== 'tern' && 'ternd only' }, () => {
  test('--test-config accepts a valid file', () => {
    const r = ternd('-c', conf('ok.conf', 'listener 18999 127.0.0.1\nallow_anonymous true\n'), '--test-config');
    assert.equal(r.status, 0, r.stderr);
  });

  test('an unknown key is refused with file:line', () => {
    const p = conf('unknown.conf', 'listener 18999\n\nmax_conections 5\n');
    const r = ternd('-c', p, '--test-config');
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${p.replace(/[.]/g, '\\.')}:3: .*max_conections`));
  });

  test('a bad value is refused with file:line', () => {
    const p = conf('badval.conf', 'max_keepalive 70000\n');
    const r = ternd('-c', p);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /badval\.conf:1: /);
  });

  test('a missing configuration file is refused', () => {
    const r = ternd('-c', path.join(dir, 'nope.conf'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nope\.conf/);
  });

  test('a malformed password file is refused at start (fail closed)', () => {
    const pw = conf('pw', 'alice:$7$101$bm90YmFzZTY0$\n\nbob\n');
    const r = ternd('-c', conf('pw.conf', `listener 18999\npassword_file ${pw}\n`), '--test-config');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /pw:\d+: /);
  });

  test('--test-config loads TLS certificates: a missing certfile is reported', () => {
    const p = conf('tls.conf', `listener 18999 127.0.0.1\ncertfile ${path.join(dir, 'none.crt')}\nkeyfile ${path.join(dir, 'none.key')}\n`);
    const r = ternd('-c', p, '--test-config');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /listener 18999: cannot load certfile '.*none\.crt'/);
  });

  test('a port another ternd listens on is refused, and that broker keeps serving', async () => {
    // Workers share each port with SO_REUSEPORT, which a second process
    // of the same user may join: without the check it would start and
    // take half the connections.
    const first = await startBroker();
    try {
      const p = conf('busy.conf', `listener ${first.port} 127.0.0.1\nallow_anonymous true\n`);
      const r = ternd('-c', p, '--threads', '2');
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`Cannot listen on 127\\.0\\.0\\.1 port ${first.port}: Address already in use`));
      await assertAlive(first);
    } finally {
      await first.stop();
    }
  });

  test('-d is refused with a reason; unknown options are refused', () => {
    let r = ternd('-d');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /not supported/);
    r = ternd('--bogus');
    assert.equal(r.status, 2);
  });
});
