/*
 * Tests of the TLS transport (src/net/tls.c), fully in process. The group
 * setup makes EC P-256 keys, two CAs, server and client certificates, an
 * encrypted copy of the server key and a CRL with the OpenSSL API and
 * writes what the server reads into a temporary directory. Each test joins
 * a client SSL of its own to a tls_conn over a non-blocking socketpair and
 * drives both handshakes in turn, so nothing waits on a real network.
 *
 * A certificate whose CN is a UTF8String holding invalid bytes ("\xff\xfe")
 * cannot be built or parsed by OpenSSL 3: X509_NAME canonicalisation
 * converts every string to UTF-8 and fails, so such a certificate never
 * reaches tls_peer_cn. The CN that does reach it and must be refused is
 * well-formed UTF-8 holding U+0000, which MQTT forbids in a username.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/error.h"
#include "net/tls.h"

#define DAY       (24 * 60 * 60L)
#define ROUNDS    200 /* handshake steps before a test gives up */
#define MIB       (1 << 20)
#define RECORD    16384 /* TLS plaintext record limit */
#define PASSWORD  "hunter2"
#define MQTT_ALPN "\4mqtt"

/* One identity: a key and the certificate for it. */
struct ident {
	EVP_PKEY *key;
	X509 *cert;
};

/* Everything the group setup makes; the files live in dir. */
static struct {
	char dir[64];
	struct ident ca, other_ca, server, alice, bob, stranger, expired;
	struct ident nul_cn;
	char ca_pem[128], server_pem[128], server_key[128];
	char server_key_enc[128], alice_key[128], crl_pem[128];
	char alice_pem[128];
} pki;

/* A client's side of a test connection. */
struct client_opts {
	const struct ident *id; /* client certificate, or NULL */
	int max_version;        /* 0 = the library's highest */
	const char *alpn;       /* wire format, or NULL */
	size_t alpn_len;
	const char *sni;
};

/* Both ends of one connection. */
struct pair {
	int sfd, cfd;
	SSL_CTX *cctx;
	SSL *c;
	struct tls_ctx *sctx;
	struct tls_conn *s;
};

/* --- making the PKI ---------------------------------------------------- */

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, v3, nid, value);

	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/*
 * Makes id (key and certificate) with the given CN bytes, issued by issuer
 * (NULL: self-signed), valid from now+from to now+to seconds.
 */
static void make_ident(struct ident *id, const char *cn, size_t cn_len,
                       const struct ident *issuer, long serial, long from,
                       long to)
{
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX v3;
	X509 *x = X509_new();
	bool ca = issuer == NULL;

	id->key = EVP_EC_gen("P-256");
	assert_non_null(id->key);
	assert_non_null(x);
	assert_non_null(name);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), to));
	assert_int_equal(X509_set_pubkey(x, id->key), 1);
	assert_int_equal(X509_NAME_add_entry_by_NID(
	                         name, NID_commonName, V_ASN1_UTF8STRING,
	                         (const unsigned char *)cn, (int)cn_len, -1, 0),
	                 1);
	assert_int_equal(X509_set_subject_name(x, name), 1);
	assert_int_equal(
	        X509_set_issuer_name(
	                x, ca ? name : X509_get_subject_name(issuer->cert)),
	        1);
	X509V3_set_ctx(&v3, ca ? x : issuer->cert, x, NULL, NULL, 0);
	add_ext(x, &v3, NID_basic_constraints,
	        ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(x, &v3, NID_key_usage,
	        ca ? "critical,keyCertSign,cRLSign"
	           : "critical,digitalSignature");
	assert_true(X509_sign(x, ca ? id->key : issuer->key, EVP_sha256()) > 0);
	X509_NAME_free(name);
	id->cert = x;
}

static void free_ident(struct ident *id)
{
	X509_free(id->cert);
	EVP_PKEY_free(id->key);
	id->cert = NULL;
	id->key = NULL;
}

static BIO *open_out(char *path, size_t len, const char *name)
{
	BIO *b;

	snprintf(path, len, "%s/%s", pki.dir, name);
	b = BIO_new_file(path, "w");
	assert_non_null(b);
	return b;
}

static void save_cert(char *path, size_t len, const char *name, X509 *x)
{
	BIO *b = open_out(path, len, name);

	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	BIO_free(b);
}

/* Writes key as PKCS#8 PEM, encrypted with pw unless pw is NULL. */
static void save_key(char *path, size_t len, const char *name, EVP_PKEY *k,
                     const char *pw)
{
	BIO *b = open_out(path, len, name);

	assert_int_equal(
	        PEM_write_bio_PrivateKey(b, k, pw ? EVP_aes_128_cbc() : NULL,
	                                 (const unsigned char *)pw,
	                                 pw ? (int)strlen(pw) : 0, NULL, NULL),
	        1);
	BIO_free(b);
}

/* A CRL from the CA revoking bob's certificate. */
static void save_crl(void)
{
	X509_CRL *crl = X509_CRL_new();
	X509_REVOKED *rev = X509_REVOKED_new();
	ASN1_TIME *last = X509_gmtime_adj(NULL, -3600);
	ASN1_TIME *next = X509_gmtime_adj(NULL, DAY);
	BIO *b;

	assert_non_null(crl);
	assert_non_null(rev);
	assert_non_null(last);
	assert_non_null(next);
	assert_int_equal(X509_CRL_set_version(crl, 1), 1);
	assert_int_equal(X509_CRL_set_issuer_name(
	                         crl, X509_get_subject_name(pki.ca.cert)),
	                 1);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, last), 1);
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, next), 1);
	assert_int_equal(X509_REVOKED_set_serialNumber(
	                         rev, X509_get_serialNumber(pki.bob.cert)),
	                 1);
	assert_int_equal(X509_REVOKED_set_revocationDate(rev, last), 1);
	assert_int_equal(X509_CRL_add0_revoked(crl, rev), 1);
	assert_int_equal(X509_CRL_sort(crl), 1);
	assert_true(X509_CRL_sign(crl, pki.ca.key, EVP_sha256()) > 0);
	b = open_out(pki.crl_pem, sizeof(pki.crl_pem), "crl.pem");
	assert_int_equal(PEM_write_bio_X509_CRL(b, crl), 1);
	BIO_free(b);
	ASN1_TIME_free(last);
	ASN1_TIME_free(next);
	X509_CRL_free(crl);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(pki.dir, sizeof(pki.dir), "/tmp/tern-tls-XXXXXX");
	assert_non_null(mkdtemp(pki.dir));
	make_ident(&pki.ca, "tern test CA", 12, NULL, 1, -DAY, 30 * DAY);
	make_ident(&pki.other_ca, "other CA", 8, NULL, 1, -DAY, 30 * DAY);
	make_ident(&pki.server, "localhost", 9, &pki.ca, 2, -DAY, 30 * DAY);
	make_ident(&pki.alice, "alice", 5, &pki.ca, 3, -DAY, 30 * DAY);
	make_ident(&pki.bob, "bob", 3, &pki.ca, 4, -DAY, 30 * DAY);
	make_ident(&pki.expired, "alice", 5, &pki.ca, 5, -3 * DAY, -DAY);
	make_ident(&pki.nul_cn, "ali\0ce", 6, &pki.ca, 6, -DAY, 30 * DAY);
	make_ident(&pki.stranger, "alice", 5, &pki.other_ca, 7, -DAY, 30 * DAY);
	save_cert(pki.ca_pem, sizeof(pki.ca_pem), "ca.pem", pki.ca.cert);
	save_cert(pki.server_pem, sizeof(pki.server_pem), "server.pem",
	          pki.server.cert);
	save_key(pki.server_key, sizeof(pki.server_key), "server.key",
	         pki.server.key, NULL);
	save_key(pki.server_key_enc, sizeof(pki.server_key_enc),
	         "server-enc.key", pki.server.key, PASSWORD);
	save_key(pki.alice_key, sizeof(pki.alice_key), "alice.key",
	         pki.alice.key, NULL);
	save_cert(pki.alice_pem, sizeof(pki.alice_pem), "alice.pem",
	          pki.alice.cert);
	save_crl();
	return 0;
}

static int group_teardown(void **state)
{
	const char *files[] = {pki.ca_pem,     pki.server_pem,
	                       pki.server_key, pki.server_key_enc,
	                       pki.alice_key,  pki.crl_pem,
	                       pki.alice_pem};
	struct ident *ids[] = {&pki.ca,     &pki.other_ca, &pki.server,
	                       &pki.alice,  &pki.bob,      &pki.expired,
	                       &pki.nul_cn, &pki.stranger};

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i][0])
			unlink(files[i]);
	rmdir(pki.dir);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		free_ident(ids[i]);
	return 0;
}

/* --- connections -------------------------------------------------------- */

/* The server options most tests start from. */
static struct tls_opts server_opts(void)
{
	struct tls_opts o = {
	        .certfile = pki.server_pem,
	        .keyfile = pki.server_key,
	        .alpn = MQTT_ALPN,
	        .alpn_len = sizeof(MQTT_ALPN) - 1,
	};
	return o;
}

/* The same, requiring a client certificate from the test CA. */
static struct tls_opts mtls_opts(void)
{
	struct tls_opts o = server_opts();

	o.cafile = pki.ca_pem;
	o.require_certificate = true;
	return o;
}

static struct tls_ctx *server_ctx(const struct tls_opts *o)
{
	struct tls_ctx *c = NULL;
	char err[512] = "";
	int rc = tls_ctx_new(o, &c, err, sizeof(err));

	if (rc != 0)
		fail_msg("tls_ctx_new: %d %s", rc, err);
	assert_non_null(c);
	return c;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

/* The socketpair and the server end only; the client may speak raw. */
static void pair_sockets(struct pair *p, const struct tls_opts *so)
{
	int sv[2];

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p->sfd = sv[0];
	p->cfd = sv[1];
	set_nonblock(p->sfd);
	set_nonblock(p->cfd);
	p->sctx = server_ctx(so);
	p->s = tls_conn_new(p->sctx, p->sfd);
	assert_non_null(p->s);
}

static void pair_open(struct pair *p, const struct tls_opts *so,
                      const struct client_opts *co)
{
	pair_sockets(p, so);
	p->cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(p->cctx);
	/* The client checks the server against the test CA as well. */
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(p->cctx),
	                                     pki.ca.cert),
	                 1);
	SSL_CTX_set_verify(p->cctx, SSL_VERIFY_PEER, NULL);
	if (co->id) {
		assert_int_equal(SSL_CTX_use_certificate(p->cctx, co->id->cert),
		                 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(p->cctx, co->id->key),
		                 1);
	}
	if (co->max_version)
		assert_int_equal(
		        SSL_CTX_set_max_proto_version(p->cctx, co->max_version),
		        1);
	/* SSL_CTX_set_alpn_protos returns 0 on success. */
	if (co->alpn)
		assert_int_equal(
		        SSL_CTX_set_alpn_protos(p->cctx,
		                                (const unsigned char *)co->alpn,
		                                (unsigned)co->alpn_len),
		        0);
	p->c = SSL_new(p->cctx);
	assert_non_null(p->c);
	assert_int_equal(SSL_set_fd(p->c, p->cfd), 1);
	if (co->sni)
		assert_int_equal(SSL_set_tlsext_host_name(p->c, co->sni), 1);
	SSL_set_connect_state(p->c);
}

static void pair_close(struct pair *p)
{
	tls_conn_free(p->s);
	tls_ctx_unref(p->sctx);
	SSL_free(p->c);
	SSL_CTX_free(p->cctx);
	if (p->cfd >= 0)
		close(p->cfd);
	close(p->sfd);
	ERR_clear_error();
}

/*
 * Drives both handshakes in turn. Returns 1 when both are done, the
 * server's negative code (with *why) when the server failed, or 0 when
 * neither finished nor failed within ROUNDS steps.
 */
static int pair_handshake(struct pair *p, enum tls_fail *why)
{
	bool cdone = false, sdone = false, cfailed = false, ww;
	int rc;

	*why = TLSF_NONE;
	for (int i = 0; i < ROUNDS; i++) {
		if (!cdone && !cfailed) {
			rc = SSL_do_handshake(p->c);
			if (rc == 1) {
				cdone = true;
			} else {
				int e = SSL_get_error(p->c, rc);

				cfailed = e != SSL_ERROR_WANT_READ &&
				          e != SSL_ERROR_WANT_WRITE;
			}
		}
		if (!sdone) {
			rc = tls_handshake(p->s, &ww, why);
			if (rc < 0)
				return rc;
			sdone = rc == 1;
		}
		if (cdone && sdone)
			return 1;
	}
	return 0;
}

static void connect_ok(struct pair *p, const struct tls_opts *so,
                       const struct client_opts *co)
{
	enum tls_fail why;
	int rc;

	pair_open(p, so, co);
	rc = pair_handshake(p, &why);
	if (rc != 1)
		fail_msg("handshake: rc %d why %d", rc, (int)why);
}

/* The server's result for a client that should be refused. */
static enum tls_fail connect_fails(const struct tls_opts *so,
                                   const struct client_opts *co)
{
	struct pair p;
	enum tls_fail why;
	int rc;

	pair_open(&p, so, co);
	rc = pair_handshake(&p, &why);
	pair_close(&p);
	assert_int_equal(rc, TERN_EIO);
	return why;
}

/* Reads what the client has now into buf; returns the count. */
static size_t client_drain(struct pair *p, uint8_t *buf, size_t cap)
{
	size_t got = 0, n;

	while (got < cap && SSL_read_ex(p->c, buf + got, cap - got, &n) == 1)
		got += n;
	if (got < cap)
		assert_int_equal(SSL_get_error(p->c, 0), SSL_ERROR_WANT_READ);
	return got;
}

/* Sends len bytes from the client (small enough not to block). */
static void client_send(struct pair *p, const void *buf, size_t len)
{
	size_t n = 0;

	assert_int_equal(SSL_write_ex(p->c, buf, len, &n), 1);
	assert_int_equal(n, len);
}

/* Reads exactly len bytes on the server. */
static void server_recv(struct pair *p, void *buf, size_t len)
{
	size_t got = 0;

	for (int i = 0; got < len && i < 1000; i++) {
		ssize_t n = tls_read(p->s, (uint8_t *)buf + got, len - got);

		if (n == TERN_EAGAIN)
			continue;
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_int_equal(got, len);
}

/* Drops the first k bytes of the iovec array v[*n]. */
static void iov_advance(struct iovec *v, int *n, size_t k)
{
	int i = 0;

	while (i < *n && k >= v[i].iov_len)
		k -= v[i++].iov_len;
	assert_true(i < *n || k == 0);
	memmove(v, v + i, (size_t)(*n - i) * sizeof(*v));
	*n -= i;
	if (*n > 0) {
		v[0].iov_base = (uint8_t *)v[0].iov_base + k;
		v[0].iov_len -= k;
	}
}

static void fill_pattern(uint8_t *b, size_t len)
{
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
}

/*
 * Splits a MiB into mixed small and large ranges and writes them all with
 * tls_writev, reading on the client only when the server would block if
 * lazy (so the socket fills), else after every write. Returns how many
 * times tls_writev said TERN_EAGAIN; the client must get the bytes exactly.
 */
static int write_mib(struct pair *p, bool lazy)
{
	static const size_t sizes[] = {7,          200,   40000, 3,
	                               RECORD,     1,     5,     5000,
	                               RECORD - 1, 70000, 12,    RECORD + 1};
	uint8_t *src = malloc(MIB), *dst = malloc(MIB);
	struct iovec v[16];
	size_t off = 0, got = 0;
	int n = 0, eagain = 0;

	assert_non_null(src);
	assert_non_null(dst);
	fill_pattern(src, MIB);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		v[n].iov_base = src + off;
		v[n++].iov_len = sizes[i];
		off += sizes[i];
	}
	v[n].iov_base = src + off;
	v[n++].iov_len = MIB - off;
	for (int i = 0; n > 0 && i < 100000; i++) {
		bool want_read = true;
		ssize_t w = tls_writev(p->s, v, n, &want_read);

		assert_false(want_read);
		if (w == TERN_EAGAIN) {
			eagain++;
			if (lazy) {
				/* The same leading bytes, still no room. */
				w = tls_writev(p->s, v, n, &want_read);
				assert_int_equal(w, TERN_EAGAIN);
			}
		} else {
			assert_true(w > 0);
			iov_advance(v, &n, (size_t)w);
		}
		if (!lazy || w == TERN_EAGAIN)
			got += client_drain(p, dst + got, MIB - got);
	}
	assert_int_equal(n, 0);
	for (int i = 0; got < MIB && i < 1000; i++)
		got += client_drain(p, dst + got, MIB - got);
	assert_int_equal(got, MIB);
	assert_memory_equal(dst, src, MIB);
	free(src);
	free(dst);
	return eagain;
}

/* --- tests ------------------------------------------------------------- */

static void test_handshake_tls13(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {0};
	struct pair p;
	char cn[64];

	(void)state;
	connect_ok(&p, &so, &co);
	assert_string_equal(tls_version_name(p.s), "TLSv1.3");
	assert_string_equal(SSL_get_version(p.c), "TLSv1.3");
	assert_null(tls_sni(p.s));
	assert_int_equal(tls_peer_cn(p.s, cn, sizeof(cn)), TERN_ENOENT);
	assert_int_equal(tls_peer_subject(p.s, cn, sizeof(cn)), TERN_ENOENT);
	pair_close(&p);
}

static void test_handshake_tls12(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {.max_version = TLS1_2_VERSION};
	struct pair p;
	uint8_t buf[16];

	(void)state;
	so.tls_version = "tlsv1.2";
	connect_ok(&p, &so, &co);
	assert_string_equal(tls_version_name(p.s), "TLSv1.2");
	client_send(&p, "ping", 4);
	server_recv(&p, buf, 4);
	assert_memory_equal(buf, "ping", 4);
	pair_close(&p);
}

static void test_alpn_mqtt(void **state)
{
	static const char offer[] = "\2h2\4mqtt";
	struct tls_opts so = server_opts();
	struct client_opts co = {.alpn = offer, .alpn_len = sizeof(offer) - 1};
	const unsigned char *sel = NULL;
	unsigned len = 0;
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	SSL_get0_alpn_selected(p.c, &sel, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(sel, "mqtt", 4);
	pair_close(&p);
}

static void test_alpn_no_overlap(void **state)
{
	static const char offer[] = "\2h2";
	struct tls_opts so = server_opts();
	struct client_opts co = {.alpn = offer, .alpn_len = sizeof(offer) - 1};
	const unsigned char *sel = NULL;
	unsigned len = 0;
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	SSL_get0_alpn_selected(p.c, &sel, &len);
	assert_int_equal(len, 0);
	pair_close(&p);
}

static void test_sni(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {.sni = "broker.example"};
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	assert_non_null(tls_sni(p.s));
	assert_string_equal(tls_sni(p.s), "broker.example");
	pair_close(&p);
}

/* Small ranges are coalesced into one record; reads go both ways. */
static void test_data_both_ways(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {0};
	struct iovec v[100];
	uint8_t src[1000], buf[4096];
	struct pair p;
	bool want_read;
	size_t n = 0;

	(void)state;
	connect_ok(&p, &so, &co);
	client_send(&p, "hello server", 12);
	server_recv(&p, buf, 12);
	assert_memory_equal(buf, "hello server", 12);

	fill_pattern(src, sizeof(src));
	for (int i = 0; i < 100; i++) {
		v[i].iov_base = src + 10 * i;
		v[i].iov_len = 10;
	}
	assert_int_equal(tls_writev(p.s, v, 100, &want_read), 1000);
	/* SSL_read returns one record at a time: one read, all bytes. */
	for (int i = 0; i < 10 && n == 0; i++)
		if (SSL_read_ex(p.c, buf, sizeof(buf), &n) != 1)
			assert_int_equal(SSL_get_error(p.c, 0),
			                 SSL_ERROR_WANT_READ);
	assert_int_equal(n, 1000);
	assert_memory_equal(buf, src, 1000);
	assert_int_equal(tls_writev(p.s, v, 0, &want_read), 0);
	assert_int_equal(tls_read(p.s, buf, sizeof(buf)), TERN_EAGAIN);
	pair_close(&p);
}

static void test_writev_mib(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {0};
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	write_mib(&p, false);
	pair_close(&p);
}

/* With a small send buffer and a client that does not read, tls_writev
 * must say TERN_EAGAIN and continue when retried with the same bytes. */
static void test_writev_partial(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {0};
	int sndbuf = 32768;
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	assert_int_equal(setsockopt(p.sfd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
	                            sizeof(sndbuf)),
	                 0);
	assert_true(write_mib(&p, true) > 0);
	pair_close(&p);
}

static void test_pending(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {0};
	uint8_t src[1000], buf[1000];
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	assert_false(tls_pending(p.s));
	fill_pattern(src, sizeof(src));
	client_send(&p, src, sizeof(src));
	server_recv(&p, buf, 10);
	assert_true(tls_pending(p.s));
	assert_int_equal(tls_read(p.s, buf + 10, sizeof(buf)), 990);
	assert_false(tls_pending(p.s));
	assert_memory_equal(buf, src, sizeof(src));
	pair_close(&p);
}

static void test_read_close_notify(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {0};
	uint8_t buf[64];
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	SSL_shutdown(p.c);
	assert_int_equal(tls_read(p.s, buf, sizeof(buf)), 0);
	/* The server answers with its own close_notify. */
	tls_shutdown(p.s);
	assert_int_equal(SSL_read(p.c, buf, sizeof(buf)), 0);
	assert_int_equal(SSL_get_error(p.c, 0), SSL_ERROR_ZERO_RETURN);
	pair_close(&p);
}

/* An EOF without close_notify is a close too. */
static void test_read_plain_eof(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {0};
	uint8_t buf[64];
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	client_send(&p, "last", 4);
	assert_int_equal(shutdown(p.cfd, SHUT_WR), 0);
	server_recv(&p, buf, 4);
	assert_memory_equal(buf, "last", 4);
	assert_int_equal(tls_read(p.s, buf, sizeof(buf)), 0);
	pair_close(&p);
}

/* Closing with unread bytes (the session tickets) resets the socket. */
static void test_read_reset(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {0};
	uint8_t buf[64];
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	close(p.cfd);
	p.cfd = -1;
	assert_int_equal(tls_read(p.s, buf, sizeof(buf)), 0);
	pair_close(&p);
}

static void test_mtls_alice(void **state)
{
	struct tls_opts so = mtls_opts();
	struct client_opts co = {.id = &pki.alice};
	char out[128], small[5];
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	assert_int_equal(tls_peer_cn(p.s, out, sizeof(out)), 0);
	assert_string_equal(out, "alice");
	assert_int_equal(tls_peer_cn(p.s, small, sizeof(small)), TERN_ETOOBIG);
	assert_int_equal(tls_peer_subject(p.s, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "CN=alice"));
	assert_int_equal(tls_peer_subject(p.s, small, sizeof(small)),
	                 TERN_ETOOBIG);
	pair_close(&p);
}

static void test_mtls_tls12(void **state)
{
	struct tls_opts so = mtls_opts();
	struct client_opts co = {.id = &pki.alice,
	                         .max_version = TLS1_2_VERSION};
	char out[64];
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	assert_string_equal(tls_version_name(p.s), "TLSv1.2");
	assert_int_equal(tls_peer_cn(p.s, out, sizeof(out)), 0);
	assert_string_equal(out, "alice");
	pair_close(&p);
	co.id = NULL;
	assert_int_equal(connect_fails(&so, &co), TLSF_NO_CERT);
	co.id = &pki.stranger;
	assert_int_equal(connect_fails(&so, &co), TLSF_BAD_CERT);
}

static void test_mtls_no_cert(void **state)
{
	struct tls_opts so = mtls_opts();
	struct client_opts co = {0};

	(void)state;
	assert_int_equal(connect_fails(&so, &co), TLSF_NO_CERT);
}

static void test_mtls_other_ca(void **state)
{
	struct tls_opts so = mtls_opts();
	struct client_opts co = {.id = &pki.stranger};

	(void)state;
	assert_int_equal(connect_fails(&so, &co), TLSF_BAD_CERT);
}

static void test_mtls_expired(void **state)
{
	struct tls_opts so = mtls_opts();
	struct client_opts co = {.id = &pki.expired};

	(void)state;
	assert_int_equal(connect_fails(&so, &co), TLSF_BAD_CERT);
}

/* A CN holding U+0000 passes OpenSSL but is no MQTT username. */
static void test_mtls_cn_not_utf8(void **state)
{
	struct tls_opts so = mtls_opts();
	struct client_opts co = {.id = &pki.nul_cn};
	char out[128];
	struct pair p;

	(void)state;
	connect_ok(&p, &so, &co);
	assert_int_equal(tls_peer_cn(p.s, out, sizeof(out)), TERN_EUTF8);
	/* The RFC 2253 form escapes the control character. */
	assert_int_equal(tls_peer_subject(p.s, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "CN=ali\\00ce"));
	pair_close(&p);
}

static void test_crl(void **state)
{
	struct tls_opts so = mtls_opts();
	struct client_opts co = {.id = &pki.alice};
	struct pair p;

	(void)state;
	so.crlfile = pki.crl_pem;
	connect_ok(&p, &so, &co);
	pair_close(&p);
	co.id = &pki.bob;
	assert_int_equal(connect_fails(&so, &co), TLSF_BAD_CERT);
}

static void test_version_mismatch(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {.max_version = TLS1_2_VERSION};

	(void)state;
	so.tls_version = "tlsv1.3";
	assert_int_equal(connect_fails(&so, &co), TLSF_VERSION);
}

/* An MQTT CONNECT sent in the clear to a TLS listener. */
static void test_not_tls(void **state)
{
	static const char connect[] = "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c"
	                              "\x00\x00";
	struct tls_opts so = server_opts();
	enum tls_fail why = TLSF_NONE;
	struct pair p;
	bool ww;
	int rc = 0;

	(void)state;
	pair_sockets(&p, &so);
	assert_int_equal(write(p.cfd, connect, sizeof(connect) - 1),
	                 sizeof(connect) - 1);
	for (int i = 0; i < ROUNDS && rc == 0; i++)
		rc = tls_handshake(p.s, &ww, &why);
	assert_int_equal(rc, TERN_EIO);
	assert_int_equal(why, TLSF_NOT_TLS);
	pair_close(&p);
}

/* tls_ctx_new's answer for o: rc, and the message in err. */
static int ctx_error(const struct tls_opts *o, char *err, size_t len)
{
	struct tls_ctx *c = (struct tls_ctx *)1;
	int rc;

	err[0] = '\0';
	rc = tls_ctx_new(o, &c, err, len);
	assert_null(c);
	assert_true(err[0] != '\0');
	assert_true(ERR_peek_error() == 0);
	return rc;
}

static void test_ctx_errors(void **state)
{
	struct tls_opts o = server_opts();
	struct tls_ctx *c = NULL;
	char err[512];

	(void)state;
	o.certfile = "/nonexistent/tern/server.pem";
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);
	assert_non_null(strstr(err, "/nonexistent/tern/server.pem"));
	assert_non_null(strstr(err, "No such file or directory"));

	o = server_opts();
	o.keyfile = NULL;
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);

	o = server_opts();
	o.keyfile = "/nonexistent/tern/server.key";
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);
	assert_non_null(strstr(err, "/nonexistent/tern/server.key"));
	assert_null(strstr(err, "keyfile_password"));

	o = server_opts();
	o.keyfile = pki.alice_key;
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);
	assert_non_null(strstr(err, "keyfile does not match certfile"));
	assert_null(strstr(err, "keyfile_password"));

	o = server_opts();
	o.tls_version = "tlsv1.1";
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);
	assert_non_null(strstr(err, "tlsv1.1"));

	o = server_opts();
	o.cafile = "/nonexistent/tern/ca.pem";
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);
	assert_non_null(strstr(err, "/nonexistent/tern/ca.pem"));

	o = server_opts();
	o.crlfile = "/nonexistent/tern/crl.pem";
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);
	assert_non_null(strstr(err, "/nonexistent/tern/crl.pem"));

	o = server_opts();
	o.ciphers = "NO-SUCH-CIPHER";
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);

	o = server_opts();
	assert_int_equal(tls_ctx_new(&o, &c, err, sizeof(err)), 0);
	assert_ptr_equal(tls_ctx_ref(c), c);
	tls_ctx_unref(c);
	tls_ctx_unref(c);
	tls_ctx_unref(NULL);
}

static void test_ctx_encrypted_key(void **state)
{
	struct tls_opts o = server_opts();
	struct client_opts co = {0};
	char err[512];
	struct pair p;

	(void)state;
	o.keyfile = pki.server_key_enc;
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);
	assert_non_null(strstr(err, "keyfile_password"));
	assert_non_null(strstr(err, pki.server_key_enc));

	o.keyfile_password = "wrong";
	assert_int_equal(ctx_error(&o, err, sizeof(err)), TERN_ECONFIG);
	assert_non_null(strstr(err, pki.server_key_enc));

	o.keyfile_password = PASSWORD;
	connect_ok(&p, &o, &co);
	pair_close(&p);
}

/* A context outlives its last listener reference while a conn uses it. */
static void test_ctx_refcount(void **state)
{
	struct tls_opts so = server_opts();
	struct client_opts co = {0};
	enum tls_fail why;
	struct pair p;
	uint8_t buf[8];

	(void)state;
	pair_open(&p, &so, &co);
	tls_ctx_unref(p.sctx);
	p.sctx = NULL;
	assert_int_equal(pair_handshake(&p, &why), 1);
	client_send(&p, "ok", 2);
	server_recv(&p, buf, 2);
	pair_close(&p);
}

/* --- the client side: tls_client_ctx_new, tls_client_conn_new ---------- */

/* Both ends are tern's: a client tls_conn against a server tls_conn. */
struct cpair {
	int sfd, cfd;
	struct tls_ctx *sctx, *cctx;
	struct tls_conn *s, *c;
};

static void cpair_open(struct cpair *p, const struct tls_opts *so,
                       const struct tls_client_opts *co, const char *host,
                       bool verify_host)
{
	char err[512] = "";
	int sv[2], rc;

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p->sfd = sv[0];
	p->cfd = sv[1];
	set_nonblock(p->sfd);
	set_nonblock(p->cfd);
	p->sctx = server_ctx(so);
	p->s = tls_conn_new(p->sctx, p->sfd);
	assert_non_null(p->s);
	rc = tls_client_ctx_new(co, &p->cctx, err, sizeof(err));
	if (rc != 0)
		fail_msg("tls_client_ctx_new: %d %s", rc, err);
	p->c = tls_client_conn_new(p->cctx, p->cfd, host, verify_host);
	assert_non_null(p->c);
}

static void cpair_close(struct cpair *p)
{
	tls_conn_free(p->s);
	tls_conn_free(p->c);
	tls_ctx_unref(p->sctx);
	tls_ctx_unref(p->cctx);
	close(p->cfd);
	close(p->sfd);
	ERR_clear_error();
}

/* Drives both handshakes; returns 1 when both finish, or the client's
 * negative code when it fails (0 when stuck). */
static int cpair_handshake(struct cpair *p)
{
	bool cdone = false, sdone = false, sfailed = false, ww;
	enum tls_fail why;
	int rc;

	for (int i = 0; i < ROUNDS; i++) {
		if (!cdone) {
			rc = tls_handshake(p->c, &ww, &why);
			if (rc < 0)
				return rc;
			cdone = rc == 1;
		}
		if (!sdone && !sfailed) {
			rc = tls_handshake(p->s, &ww, &why);
			sfailed = rc < 0;
			sdone = rc == 1;
		}
		if (cdone && sdone)
			return 1;
		if (cdone && sfailed)
			return 0;
	}
	return 0;
}

static void test_client_verify_ok(void **state)
{
	struct tls_opts so = server_opts();
	struct tls_client_opts co = {.cafile = pki.ca_pem,
	                             .alpn = MQTT_ALPN,
	                             .alpn_len = sizeof(MQTT_ALPN) - 1};
	struct cpair p;
	const uint8_t *sel;
	unsigned len = 0;
	uint8_t buf[8];
	struct iovec iov = {.iov_base = "hello", .iov_len = 5};
	bool wr;

	(void)state;
	cpair_open(&p, &so, &co, "localhost", true);
	assert_int_equal(cpair_handshake(&p), 1);
	assert_string_equal(tls_sni(p.s), "localhost");
	sel = tls_alpn_selected(p.c, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(sel, "mqtt", 4);
	assert_int_equal(tls_writev(p.c, &iov, 1, &wr), 5);
	assert_int_equal(tls_read(p.s, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	cpair_close(&p);
}

static void test_client_hostname_mismatch(void **state)
{
	struct tls_opts so = server_opts();
	struct tls_client_opts co = {.cafile = pki.ca_pem};
	struct cpair p;

	(void)state;
	cpair_open(&p, &so, &co, "example.com", true);
	assert_int_equal(cpair_handshake(&p), TERN_EIO);
	if (strstr(tls_error(p.c), "hostname mismatch") == NULL)
		fail_msg("error: %s", tls_error(p.c));
	cpair_close(&p);
}

/* insecure: the chain is still verified, the name is not. */
static void test_client_insecure_skips_hostname(void **state)
{
	struct tls_opts so = server_opts();
	struct tls_client_opts co = {.cafile = pki.ca_pem};
	struct cpair p;

	(void)state;
	cpair_open(&p, &so, &co, "example.com", false);
	assert_int_equal(cpair_handshake(&p), 1);
	cpair_close(&p);
}

static void test_client_unknown_ca(void **state)
{
	struct tls_opts so = server_opts();
	struct tls_client_opts co = {0}; /* the system store */
	struct cpair p;

	(void)state;
	cpair_open(&p, &so, &co, "localhost", true);
	assert_int_equal(cpair_handshake(&p), TERN_EIO);
	if (strstr(tls_error(p.c), "certificate verify failed") == NULL)
		fail_msg("error: %s", tls_error(p.c));
	cpair_close(&p);
}

static void test_client_no_verify(void **state)
{
	struct tls_opts so = server_opts();
	struct tls_client_opts co = {.no_verify = true};
	struct cpair p;

	(void)state;
	cpair_open(&p, &so, &co, "example.com", false);
	assert_int_equal(cpair_handshake(&p), 1);
	cpair_close(&p);
}

static void test_client_mtls(void **state)
{
	struct tls_opts so = mtls_opts();
	struct tls_client_opts co = {.cafile = pki.ca_pem,
	                             .certfile = pki.alice_pem,
	                             .keyfile = pki.alice_key};
	struct cpair p;
	char cn[64];

	(void)state;
	cpair_open(&p, &so, &co, "localhost", true);
	assert_int_equal(cpair_handshake(&p), 1);
	assert_int_equal(tls_peer_cn(p.s, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "alice");
	cpair_close(&p);
}

static void test_client_min_version(void **state)
{
	struct tls_opts so = server_opts();
	struct tls_client_opts co = {.cafile = pki.ca_pem,
	                             .tls_version = "tlsv1.3"};
	struct cpair p;

	(void)state;
	cpair_open(&p, &so, &co, "localhost", true);
	assert_int_equal(cpair_handshake(&p), 1);
	assert_string_equal(tls_version_name(p.c), "TLSv1.3");
	cpair_close(&p);
}

/* Writing to a peer that has gone fails; it does not raise SIGPIPE (a
 * library must not rely on the program ignoring it). */
static void test_client_no_sigpipe(void **state)
{
	struct tls_opts so = server_opts();
	struct tls_client_opts co = {.cafile = pki.ca_pem};
	static uint8_t big[1 << 16];
	struct iovec iov = {.iov_base = big, .iov_len = sizeof(big)};
	struct cpair p;
	ssize_t n = 0;
	bool wr;

	(void)state;
	cpair_open(&p, &so, &co, "localhost", true);
	assert_int_equal(cpair_handshake(&p), 1);
	tls_conn_free(p.s);
	p.s = NULL;
	close(p.sfd);
	p.sfd = socket(AF_UNIX, SOCK_STREAM, 0); /* for cpair_close */
	for (int i = 0; i < 8 && n >= 0; i++)
		n = tls_writev(p.c, &iov, 1, &wr);
	assert_true(n < 0);
	assert_int_not_equal(n, TERN_EAGAIN);
	cpair_close(&p);
}

static void test_client_ctx_errors(void **state)
{
	struct tls_client_opts co = {.cafile = "/nonexistent/ca.pem"};
	struct tls_ctx *c = NULL;
	char err[512] = "";

	(void)state;
	assert_int_equal(tls_client_ctx_new(&co, &c, err, sizeof(err)),
	                 TERN_ECONFIG);
	assert_null(c);
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
	co = (struct tls_client_opts){.keyfile = pki.alice_key};
	assert_int_equal(tls_client_ctx_new(&co, &c, err, sizeof(err)),
	                 TERN_ECONFIG);
	co = (struct tls_client_opts){.certfile = pki.alice_pem,
	                              .keyfile = pki.server_key};
	assert_int_equal(tls_client_ctx_new(&co, &c, err, sizeof(err)),
	                 TERN_ECONFIG);
	assert_non_null(strstr(err, "does not match"));
	co = (struct tls_client_opts){.tls_version = "sslv3"};
	assert_int_equal(tls_client_ctx_new(&co, &c, err, sizeof(err)),
	                 TERN_ECONFIG);
}

/*
 * One connection of a resumption test on existing contexts: handshake,
 * then the server writes a byte and the client reads it, which is when a
 * TLS 1.3 client takes the tickets sent after the handshake. Returns
 * whether the client's handshake resumed a session.
 */
static bool resume_round(struct tls_ctx *sctx, struct tls_ctx *cctx)
{
	struct cpair p = {.sctx = sctx, .cctx = cctx};
	struct iovec iov = {.iov_base = "x", .iov_len = 1};
	uint8_t b;
	bool wr, reused;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p.sfd = sv[0];
	p.cfd = sv[1];
	set_nonblock(p.sfd);
	set_nonblock(p.cfd);
	p.s = tls_conn_new(sctx, p.sfd);
	p.c = tls_client_conn_new(cctx, p.cfd, "localhost", true);
	assert_non_null(p.s);
	assert_non_null(p.c);
	assert_int_equal(cpair_handshake(&p), 1);
	assert_string_equal(tls_version_name(p.c), "TLSv1.3");
	assert_int_equal(tls_writev(p.s, &iov, 1, &wr), 1);
	assert_int_equal(tls_read(p.c, &b, 1), 1);
	reused = tls_session_reused(p.c);
	/* Without close_notify OpenSSL would drop the session. */
	tls_shutdown(p.c);
	tls_conn_free(p.s);
	tls_conn_free(p.c);
	close(p.sfd);
	close(p.cfd);
	return reused;
}

/* resume: the first connection's session (a TLS 1.3 ticket) is offered
 * and taken by the next ones; without resume it is not. */
static void test_client_resume(void **state)
{
	struct tls_opts so = server_opts();
	struct tls_client_opts co = {.cafile = pki.ca_pem, .resume = true};
	struct tls_ctx *sctx = server_ctx(&so), *cctx, *plain;
	char err[512] = "";

	(void)state;
	assert_int_equal(tls_client_ctx_new(&co, &cctx, err, sizeof(err)), 0);
	assert_false(tls_client_has_session(cctx));
	assert_false(resume_round(sctx, cctx));
	assert_true(tls_client_has_session(cctx));
	assert_true(resume_round(sctx, cctx));
	assert_true(resume_round(sctx, cctx));
	co.resume = false;
	assert_int_equal(tls_client_ctx_new(&co, &plain, err, sizeof(err)), 0);
	assert_false(resume_round(sctx, plain));
	assert_false(tls_client_has_session(plain));
	assert_false(resume_round(sctx, plain));
	tls_ctx_unref(plain);
	tls_ctx_unref(cctx);
	tls_ctx_unref(sctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_handshake_tls13),
	        cmocka_unit_test(test_handshake_tls12),
	        cmocka_unit_test(test_alpn_mqtt),
	        cmocka_unit_test(test_alpn_no_overlap),
	        cmocka_unit_test(test_sni),
	        cmocka_unit_test(test_data_both_ways),
	        cmocka_unit_test(test_writev_mib),
	        cmocka_unit_test(test_writev_partial),
	        cmocka_unit_test(test_pending),
	        cmocka_unit_test(test_read_close_notify),
	        cmocka_unit_test(test_read_plain_eof),
	        cmocka_unit_test(test_read_reset),
	        cmocka_unit_test(test_mtls_alice),
	        cmocka_unit_test(test_mtls_tls12),
	        cmocka_unit_test(test_mtls_no_cert),
	        cmocka_unit_test(test_mtls_other_ca),
	        cmocka_unit_test(test_mtls_expired),
	        cmocka_unit_test(test_mtls_cn_not_utf8),
	        cmocka_unit_test(test_crl),
	        cmocka_unit_test(test_version_mismatch),
	        cmocka_unit_test(test_not_tls),
	        cmocka_unit_test(test_ctx_errors),
	        cmocka_unit_test(test_ctx_encrypted_key),
	        cmocka_unit_test(test_ctx_refcount),
	        cmocka_unit_test(test_client_verify_ok),
	        cmocka_unit_test(test_client_hostname_mismatch),
	        cmocka_unit_test(test_client_insecure_skips_hostname),
	        cmocka_unit_test(test_client_unknown_ca),
	        cmocka_unit_test(test_client_no_verify),
	        cmocka_unit_test(test_client_mtls),
	        cmocka_unit_test(test_client_min_version),
	        cmocka_unit_test(test_client_no_sigpipe),
	        cmocka_unit_test(test_client_ctx_errors),
	        cmocka_unit_test(test_client_resume),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
