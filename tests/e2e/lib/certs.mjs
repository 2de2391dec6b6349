// Test certificates for the TLS end-to-end tests, made with the `openssl`
// CLI (Debian's OpenSSL 3.0) in a temporary directory that is removed when
// the process exits; nothing is committed. Generated once per process
// (each test file is one process) by `makeCerts()`.
//
// EC P-256 keys throughout (fast to generate). What it makes:
//   ca           test CA (self-signed, CA:TRUE)
//   server       server certificate from ca, CN localhost, SAN DNS:localhost,
//                IP:127.0.0.1, IP:::1 (serverAuth)
//   serverB      a second server certificate from ca (CN tern-test-server-b,
//                another serial, same SAN), for the SIGHUP reload test
//   serverEnc    server's key encrypted with AES-256 (password
//                certs.keyPassword), same certificate as server
//   alice        client certificate from ca, CN alice (clientAuth)
//   bob          client certificate from ca, CN bob
//   revoked      client certificate from ca, CN carol, revoked in certs.crl
//   expired      client certificate from ca, CN dave, valid 2020-01-01 to
//                2021-01-01 (`openssl ca -startdate/-enddate`: OpenSSL 3.0's
//                `x509` has no -not_before/-not_after)
//   foreign      client certificate, CN alice, from another CA (foreignCa)
//   foreignServer server certificate for localhost from foreignCa (a
//                server the clients must not trust)
//   nulCn        client certificate from ca whose CN is the UTF8String
//                "alice\0x" (61 6c 69 63 65 00 78): well-formed UTF-8 but not a
//                valid MQTT string (U+0000, MQTT 3.1.1 §1.5.3 / 5.0 §1.5.4),
//                and a C-string reading of it would be "alice"
//   crl          CRL from ca revoking `revoked` (PEM, valid 30 days)
//
// A CN that is not valid UTF-8 cannot be tested through a TLS handshake
// with OpenSSL 3.0 on either side: decoding a certificate canonicalises
// its names through ASN1_STRING_to_UTF8, so a certificate whose CN is a
// UTF8String with ill-formed bytes (ff, c0 80, ed a0 80, f4 90 80 80), a
// BMPString with a lone surrogate or a UniversalString above U+10FFFF
// cannot even be loaded (`openssl x509` / `verify`: "Could not read
// certificate"), so neither node:tls nor ternd could use it. The identity
// that is not a valid MQTT UTF-8 string is therefore one with U+0000, which
// OpenSSL accepts and MQTT forbids.
//
// No CLI option writes a NUL into a name (`-subj` stops at it), so `openssl
// ca` issues a certificate with a same-length placeholder CN, the
// placeholder's bytes are replaced in the DER, and the TBSCertificate is
// signed again with the CA key (node:crypto, ECDSA SHA-256); the result is
// checked with `openssl verify`.
import { execFileSync } from 'node:child_process';
import { sign, X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const KEY_PASSWORD = 'tern-test-secret';
const PLACEHOLDER = Buffer.from('NULCN_X'); // same length as BAD_CN
const BAD_CN = Buffer.from('alice\0x', 'latin1');

function openssl(args, cwd) {
  try {
    return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 20000 });
  } catch (err) {
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr || err.message}`);
  }
}

function newKey(file) {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
}

// A CA with an `openssl ca` database in dir/name/.
function makeCa(dir, name, cn) {
  const d = path.join(dir, name);
  mkdirSync(path.join(d, 'new'), { recursive: true });
  writeFileSync(path.join(d, 'index.txt'), '');
  writeFileSync(path.join(d, 'serial'), name === 'ca' ? '1000\n' : '5000\n');
  writeFileSync(path.join(d, 'crlnumber'), '01\n');
  const key = path.join(d, 'ca.key');
  const cert = path.join(d, 'ca.crt');
  newKey(key);
  openssl(['req', '-x509', '-new', '-key', key, '-out', cert, '-days', '3650', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash']);
  const cnf = path.join(d, 'ca.cnf');
  writeFileSync(cnf, `[ ca ]
default_ca = tern

[ tern ]
dir = ${d}
database = ${d}/index.txt
new_certs_dir = ${d}/new
serial = ${d}/serial
crlnumber = ${d}/crlnumber
certificate = ${cert}
private_key = ${key}
default_md = sha256
default_days = 365
default_crl_days = 30
policy = pol
unique_subject = no
copy_extensions = none
email_in_dn = no

[ pol ]
commonName = supplied

[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityKeyIdentifier = keyid

[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`);
  return { dir: d, key, cert, cnf };
}

// Issues a leaf certificate from `ca`: { cert, key }.
function issue(ca, dir, name, cn, ext, extra = []) {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  newKey(key);
  openssl(['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${cn}`]);
  openssl(['ca', '-batch', '-notext', '-config', ca.cnf, '-extensions', ext, '-in', csr, '-out', cert, ...extra]);
  return { cert, key };
}

// ---- minimal DER, enough to re-sign a certificate

function tlv(buf, off) {
  const tag = buf[off];
  let len = buf[off + 1];
  let hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i];
    hdr += n;
  }
  return { tag, start: off, hdr, len, end: off + hdr + len };
}

function derLen(n) {
  if (n < 0x80) return Buffer.from([n]);
  const bytes = [];
  while (n > 0) { bytes.unshift(n & 0xff); n = Math.floor(n / 256); }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

const der = (tag, body) => Buffer.concat([Buffer.from([tag]), derLen(body.length), body]);

function pemToDer(pem) {
  return Buffer.from(pem.toString().replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function derToPem(buf) {
  const b64 = buf.toString('base64').match(/.{1,64}/g).join('\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

// Replaces the placeholder CN's bytes (UTF8String) by BAD_CN, signs again.
function resignWithNulCn(certFile, caKeyFile) {
  const cert = pemToDer(readFileSync(certFile));
  const outer = tlv(cert, 0);
  const tbsT = tlv(cert, outer.hdr);
  const algT = tlv(cert, tbsT.end);
  const tbs = Buffer.from(cert.subarray(tbsT.start, tbsT.end));
  const needle = Buffer.concat([Buffer.from([0x0c, PLACEHOLDER.length]), PLACEHOLDER]);
  const at = tbs.indexOf(needle);
  if (at < 0 || tbs.indexOf(needle, at + 1) >= 0) throw new Error('certs: placeholder CN not found exactly once');
  BAD_CN.copy(tbs, at + 2);
  const sig = sign('sha256', tbs, readFileSync(caKeyFile));
  const alg = cert.subarray(algT.start, algT.end);
  const out = der(0x30, Buffer.concat([tbs, alg, der(0x03, Buffer.concat([Buffer.from([0]), sig]))]));
  writeFileSync(certFile, derToPem(out));
}

let cached;

export function makeCerts() {
  if (cached) return cached;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tern-certs-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

  const ca = makeCa(dir, 'ca', 'tern test CA');
  const foreignCa = makeCa(dir, 'foreign-ca', 'tern foreign CA');
  const server = issue(ca, dir, 'server', 'localhost', 'server_ext');
  const serverB = issue(ca, dir, 'server-b', 'tern-test-server-b', 'server_ext');
  const serverEnc = { cert: server.cert, key: path.join(dir, 'server-enc.key') };
  openssl(['pkey', '-in', server.key, '-out', serverEnc.key, '-aes-256-cbc', '-passout', `pass:${KEY_PASSWORD}`]);
  const alice = issue(ca, dir, 'alice', 'alice', 'client_ext');
  const bob = issue(ca, dir, 'bob', 'bob', 'client_ext');
  const revoked = issue(ca, dir, 'carol', 'carol', 'client_ext');
  const expired = issue(ca, dir, 'dave', 'dave', 'client_ext',
    ['-startdate', '20200101000000Z', '-enddate', '20210101000000Z']);
  const foreign = issue(foreignCa, dir, 'foreign-alice', 'alice', 'client_ext');
  const foreignServer = issue(foreignCa, dir, 'foreign-server', 'localhost', 'server_ext');
  const nulCn = issue(ca, dir, 'nul-cn', PLACEHOLDER.toString(), 'client_ext');
  resignWithNulCn(nulCn.cert, ca.key);
  openssl(['verify', '-CAfile', ca.cert, nulCn.cert]);

  openssl(['ca', '-batch', '-config', ca.cnf, '-revoke', revoked.cert]);
  const crl = path.join(dir, 'ca.crl');
  openssl(['ca', '-batch', '-config', ca.cnf, '-gencrl', '-out', crl]);

  // Sanity: the expired one really is expired, the others are current.
  const now = Date.now();
  if (Date.parse(new X509Certificate(readFileSync(expired.cert)).validTo) > now) throw new Error('certs: expired cert is not expired');
  if (Date.parse(new X509Certificate(readFileSync(alice.cert)).validFrom) > now) throw new Error('certs: alice not yet valid');

  // Mosquitto drops privileges to its own user before it loads
  // certificates, so with BROKER=mosquitto the (throwaway) files are made
  // readable to it.
  if (process.env.BROKER === 'mosquitto') {
    chmodSync(dir, 0o755);
    for (const f of readdirSync(dir)) if (/\.(crt|key|crl)$/.test(f)) chmodSync(path.join(dir, f), 0o644);
  }

  const read = (f) => readFileSync(f);
  cached = {
    dir,
    keyPassword: KEY_PASSWORD,
    badCn: BAD_CN,
    ca: { cert: ca.cert, key: ca.key },
    foreignCa: { cert: foreignCa.cert, key: foreignCa.key },
    server, serverB, serverEnc, alice, bob, revoked, expired, foreign, foreignServer, nulCn, crl,
    read,
    // key/cert/ca Buffers for node:tls / MQTT.js options.
    client(name) {
      const c = cached[name];
      return { key: read(c.key), cert: read(c.cert) };
    },
    serial(file) {
      return new X509Certificate(readFileSync(file)).serialNumber;
    },
  };
  return cached;
}
