/*
 * The TLS transport on OpenSSL 3; see tls.h. Every OpenSSL call that can
 * fail is preceded by ERR_clear_error(), because SSL_get_error() reads the
 * thread's error queue and a stale entry would misreport a clean EOF or
 * a would-block as a failure.
 */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/error.h"
#include "base/utf8.h"

/* TLS records carry at most 16 KiB of plaintext. */
#define TLS_RECORD 16384

struct tls_ctx {
	atomic_uint refs;
	SSL_CTX *ssl;
	uint8_t alpn[64];
	size_t alpn_len;
	/* Client contexts with resume: the latest session, under the lock
	 * (connections on several threads may share a context). */
	bool resume;
	pthread_mutex_t sess_lock;
	SSL_SESSION *sess;
};

struct tls_conn {
	SSL *ssl;
	struct tls_ctx *ctx;
	char err[200]; /* why the handshake failed */
};

/* Formats OpenSSL's last error after `what` into err. */
static int tls_fail_msg(char *err, size_t errlen, const char *what,
                        const char *path)
{
	unsigned long e = ERR_peek_last_error();
	char reason[256] = "";

	/* "system lib" only says a call failed; the first entry has errno. */
	if (ERR_GET_REASON(e) == ERR_R_SYS_LIB &&
	    ERR_GET_LIB(ERR_peek_error()) == ERR_LIB_SYS)
		e = ERR_peek_error();
	if (e)
		ERR_error_string_n(e, reason, sizeof(reason));
	snprintf(err, errlen, "%s%s%s%s%s", what, path ? " '" : "",
	         path ? path : "", path ? "'" : "", e ? ": " : "");
	if (e) {
		size_t n = strlen(err);
		snprintf(err + n, errlen - n, "%s", reason);
	}
	ERR_clear_error();
	return TERN_ECONFIG;
}

static void tls_describe(struct tls_conn *t, int ssl_error);

static int tls_password_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pw = u;
	size_t n;

	(void)rwflag;
	/* No password configured: fail instead of prompting on a tty. */
	if (!pw)
		return -1;
	n = strlen(pw);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, pw, n);
	return (int)n;
}

/* ALPN: pick the first of our protocols the client offers; a client that
 * offers only others still connects, without ALPN. */
static int tls_alpn_cb(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
	struct tls_ctx *c = arg;
	unsigned char *sel;

	(void)ssl;
	if (SSL_select_next_proto(&sel, outlen, c->alpn, (unsigned)c->alpn_len,
	                          in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static int tls_set_version(SSL_CTX *ssl, const char *v)
{
	int min = TLS1_2_VERSION;

	if (v && strcmp(v, "tlsv1.3") == 0)
		min = TLS1_3_VERSION;
	else if (v && strcmp(v, "tlsv1.2") != 0)
		return -1;
	return SSL_CTX_set_min_proto_version(ssl, min) == 1 ? 0 : -1;
}

static int tls_load_crl(SSL_CTX *ssl, const char *path)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ssl);
	X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());

	if (!lookup || X509_load_crl_file(lookup, path, X509_FILETYPE_PEM) <= 0)
		return -1;
	X509_STORE_set_flags(store,
	                     X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	return 0;
}

/*
 * What went wrong loading the key. OpenSSL checks the key against the
 * certificate as it loads it, so a mismatch shows up here; without a
 * password, a key that is readable but does not load is likely encrypted.
 */
static const char *tls_key_error(const struct tls_opts *o)
{
	unsigned long e = ERR_peek_last_error();

	if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
	    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
		return "keyfile does not match certfile";
	if (o->keyfile_password || ERR_GET_REASON(e) == ERR_R_SYS_LIB)
		return "cannot load keyfile";
	return "cannot load keyfile (encrypted keys need keyfile_password)";
}

/* Certificate, key and verification settings into ssl. */
static int tls_configure(struct tls_ctx *c, const struct tls_opts *o, char *err,
                         size_t errlen)
{
	SSL_CTX *ssl = c->ssl;
	static const unsigned char sid_ctx[] = "tern";

	if (tls_set_version(ssl, o->tls_version) != 0) {
		snprintf(err, errlen,
		         "tls_version '%s': use tlsv1.2 or tlsv1.3",
		         o->tls_version);
		return TERN_ECONFIG;
	}
	if (o->ciphers && SSL_CTX_set_cipher_list(ssl, o->ciphers) != 1)
		return tls_fail_msg(err, errlen, "ciphers", o->ciphers);
	if (o->groups && SSL_CTX_set1_groups_list(ssl, o->groups) != 1)
		return tls_fail_msg(err, errlen, "tls_groups", o->groups);
	if (o->ciphersuites &&
	    SSL_CTX_set_ciphersuites(ssl, o->ciphersuites) != 1)
		return tls_fail_msg(err, errlen, "ciphersuites",
		                    o->ciphersuites);
	if (!o->certfile || !o->keyfile) {
		snprintf(err, errlen, "TLS needs both certfile and keyfile");
		return TERN_ECONFIG;
	}
	if (SSL_CTX_use_certificate_chain_file(ssl, o->certfile) != 1)
		return tls_fail_msg(err, errlen, "cannot load certfile",
		                    o->certfile);
	SSL_CTX_set_default_passwd_cb(ssl, tls_password_cb);
	SSL_CTX_set_default_passwd_cb_userdata(ssl,
	                                       (void *)o->keyfile_password);
	if (SSL_CTX_use_PrivateKey_file(ssl, o->keyfile, SSL_FILETYPE_PEM) != 1)
		return tls_fail_msg(err, errlen, tls_key_error(o), o->keyfile);
	if (SSL_CTX_check_private_key(ssl) != 1)
		return tls_fail_msg(err, errlen,
		                    "keyfile does not match certfile",
		                    o->keyfile);
	if ((o->cafile || o->capath) &&
	    SSL_CTX_load_verify_locations(ssl, o->cafile, o->capath) != 1)
		return tls_fail_msg(err, errlen, "cannot load cafile/capath",
		                    o->cafile ? o->cafile : o->capath);
	if (o->crlfile && tls_load_crl(ssl, o->crlfile) != 0)
		return tls_fail_msg(err, errlen, "cannot load crlfile",
		                    o->crlfile);
	if (o->require_certificate)
		SSL_CTX_set_verify(
		        ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		        NULL);
	else if (o->cafile || o->capath)
		SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_id_context(ssl, sid_ctx, sizeof(sid_ctx) - 1);
	if (o->alpn_len && o->alpn_len <= sizeof(c->alpn)) {
		memcpy(c->alpn, o->alpn, o->alpn_len);
		c->alpn_len = o->alpn_len;
		SSL_CTX_set_alpn_select_cb(ssl, tls_alpn_cb, c);
	}
	return 0;
}

int tls_ctx_new(const struct tls_opts *o, struct tls_ctx **out, char *err,
                size_t errlen)
{
	struct tls_ctx *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return TERN_ENOMEM;
	atomic_init(&c->refs, 1);
	ERR_clear_error();
	c->ssl = SSL_CTX_new(TLS_server_method());
	if (!c->ssl) {
		free(c);
		return tls_fail_msg(err, errlen, "cannot create TLS context",
		                    NULL);
	}
	/* Partial writes let one call write what the socket takes; moving
	 * buffers let a retry come from a rebuilt (identical) buffer;
	 * released buffers keep idle connections small. */
	/* Read-ahead takes whole socket buffers instead of a header and a
	 * body read per record; conn.c re-reads while tls_pending() says
	 * bytes are buffered, since epoll cannot see them. */
	SSL_CTX_set_read_ahead(c->ssl, 1);
	SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                                 SSL_MODE_RELEASE_BUFFERS);
	/* A client that closes TCP without close_notify has simply gone:
	 * MQTT's own DISCONNECT says whether that was orderly. */
	SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION |
	                                    SSL_OP_CIPHER_SERVER_PREFERENCE |
	                                    SSL_OP_IGNORE_UNEXPECTED_EOF);
	rc = tls_configure(c, o, err, errlen);
	if (rc != 0) {
		tls_ctx_unref(c);
		return rc;
	}
	*out = c;
	return 0;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void tls_ctx_unref(struct tls_ctx *c)
{
	if (!c ||
	    atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	SSL_CTX_free(c->ssl);
	if (c->resume) {
		SSL_SESSION_free(c->sess);
		pthread_mutex_destroy(&c->sess_lock);
	}
	free(c);
}

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd)
{
	struct tls_conn *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	ERR_clear_error();
	t->ssl = SSL_new(ctx->ssl);
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1) {
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	SSL_set_accept_state(t->ssl);
	t->ctx = tls_ctx_ref(ctx);
	return t;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	tls_ctx_unref(t->ctx);
	free(t);
}

/* Classifies a failed handshake from the verify result and error queue. */
static enum tls_fail tls_classify(const struct tls_conn *t)
{
	unsigned long e = ERR_peek_error();
	int reason = ERR_GET_REASON(e);
	long v = SSL_get_verify_result(t->ssl);

	if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
		return TLSF_NO_CERT;
	if (v != X509_V_OK || reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
		return TLSF_BAD_CERT;
	if (reason == SSL_R_WRONG_VERSION_NUMBER ||
	    reason == SSL_R_HTTP_REQUEST ||
	    reason == SSL_R_HTTPS_PROXY_REQUEST ||
	    reason == SSL_R_RECORD_LENGTH_MISMATCH ||
	    reason == SSL_R_PACKET_LENGTH_TOO_LONG)
		return TLSF_NOT_TLS;
	if (reason == SSL_R_UNSUPPORTED_PROTOCOL ||
	    reason == SSL_R_NO_SHARED_CIPHER ||
	    reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION ||
	    reason == SSL_R_VERSION_TOO_LOW)
		return TLSF_VERSION;
	return TLSF_OTHER;
}

/* Puts a sentence on a failed handshake into t->err. */
static void tls_describe(struct tls_conn *t, int ssl_error)
{
	long v = SSL_get_verify_result(t->ssl);
	unsigned long e = ERR_peek_error();
	char reason[160] = "";

	if (v != X509_V_OK) {
		snprintf(t->err, sizeof(t->err),
		         "certificate verify failed: %s",
		         X509_verify_cert_error_string(v));
		return;
	}
	if (e) {
		ERR_error_string_n(e, reason, sizeof(reason));
		snprintf(t->err, sizeof(t->err), "TLS handshake failed: %s",
		         reason);
	} else if (ssl_error == SSL_ERROR_SYSCALL ||
	           ssl_error == SSL_ERROR_ZERO_RETURN) {
		snprintf(t->err, sizeof(t->err),
		         "TLS handshake failed: connection closed by peer");
	} else {
		snprintf(t->err, sizeof(t->err), "TLS handshake failed");
	}
}

const char *tls_error(const struct tls_conn *t)
{
	return t->err[0] ? t->err : "no TLS error";
}

const uint8_t *tls_alpn_selected(const struct tls_conn *t, unsigned *len)
{
	const unsigned char *p = NULL;

	SSL_get0_alpn_selected(t->ssl, &p, len);
	if (p == NULL)
		*len = 0;
	return p;
}

int tls_handshake(struct tls_conn *t, bool *want_write, enum tls_fail *why)
{
	int rc, e;

	*want_write = false;
	*why = TLSF_NONE;
	ERR_clear_error();
	rc = SSL_do_handshake(t->ssl);
	if (rc == 1)
		return 1;
	e = SSL_get_error(t->ssl, rc);
	if (e == SSL_ERROR_WANT_READ)
		return 0;
	if (e == SSL_ERROR_WANT_WRITE) {
		*want_write = true;
		return 0;
	}
	*why = tls_classify(t);
	tls_describe(t, e);
	ERR_clear_error();
	return TERN_EIO;
}

ssize_t tls_read(struct tls_conn *t, void *buf, size_t len)
{
	size_t n = 0;
	int e;

	ERR_clear_error();
	if (SSL_read_ex(t->ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	e = SSL_get_error(t->ssl, 0);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE: return TERN_EAGAIN;
	case SSL_ERROR_ZERO_RETURN: return 0;
	case SSL_ERROR_SYSCALL:
		/* An EOF without close_notify: treat as a plain close. */
		if (ERR_peek_error() == 0 &&
		    (errno == 0 || errno == ECONNRESET))
			return 0;
		/* fallthrough */
	default: ERR_clear_error(); return TERN_EIO;
	}
}

bool tls_pending(const struct tls_conn *t)
{
	/* Decrypted bytes, or raw bytes read ahead but not yet decrypted. */
	return SSL_has_pending(t->ssl) == 1;
}

/* Gathers up to one record's worth of small leading ranges into buf. */
static size_t tls_gather(uint8_t *buf, const struct iovec *iov, int n)
{
	size_t used = 0;
	int i;

	for (i = 0; i < n && used < TLS_RECORD; i++) {
		size_t take = iov[i].iov_len;

		if (take > TLS_RECORD - used)
			take = TLS_RECORD - used;
		memcpy(buf + used, iov[i].iov_base, take);
		used += take;
	}
	return used;
}

ssize_t tls_writev(struct tls_conn *t, const struct iovec *iov, int n,
                   bool *want_read)
{
	/* On the stack, not in the connection: OpenSSL encrypts a record
	 * into its own buffer before returning, and a retry after WANT_WRITE
	 * gathers the same bytes again (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER),
	 * so nothing here outlives the call. In struct tls_conn these 16 KiB
	 * were most of an idle TLS connection's memory. */
	uint8_t buf[TLS_RECORD];
	const void *src;
	size_t len, done = 0;
	int e;

	*want_read = false;
	if (n == 0)
		return 0;
	/* A large range (a payload) is written from where it lies; small
	 * ones are coalesced so packets do not each cost a record. */
	if (iov[0].iov_len >= TLS_RECORD) {
		src = iov[0].iov_base;
		len = iov[0].iov_len;
	} else {
		len = tls_gather(buf, iov, n);
		src = buf;
	}
	ERR_clear_error();
	if (SSL_write_ex(t->ssl, src, len, &done) == 1)
		return (ssize_t)done;
	e = SSL_get_error(t->ssl, 0);
	if (e == SSL_ERROR_WANT_WRITE)
		return TERN_EAGAIN;
	if (e == SSL_ERROR_WANT_READ) {
		*want_read = true;
		return TERN_EAGAIN;
	}
	ERR_clear_error();
	return TERN_EIO;
}

void tls_shutdown(struct tls_conn *t)
{
	ERR_clear_error();
	if (SSL_is_init_finished(t->ssl))
		SSL_shutdown(t->ssl);
	ERR_clear_error();
}

int tls_peer_cn(const struct tls_conn *t, char *out, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(t->ssl);
	X509_NAME *name;
	unsigned char *utf8 = NULL;
	int idx, n;

	if (!cert)
		return TERN_ENOENT;
	name = X509_get_subject_name(cert);
	idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0)
		return TERN_ENOENT;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
	                                       X509_NAME_get_entry(name, idx)));
	if (n < 0)
		return TERN_EUTF8;
	if (utf8_check_mqtt(utf8, (size_t)n) != 0) {
		OPENSSL_free(utf8);
		return TERN_EUTF8;
	}
	if ((size_t)n >= len) {
		OPENSSL_free(utf8);
		return TERN_ETOOBIG;
	}
	memcpy(out, utf8, (size_t)n);
	out[n] = '\0';
	OPENSSL_free(utf8);
	return 0;
}

int tls_peer_subject(const struct tls_conn *t, char *out, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(t->ssl);
	BIO *bio;
	long n;
	char *p;
	int rc = 0;

	if (!cert)
		return TERN_ENOENT;
	bio = BIO_new(BIO_s_mem());
	if (!bio)
		return TERN_ENOMEM;
	X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0,
	                   XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	n = BIO_get_mem_data(bio, &p);
	if (n < 0 || (size_t)n >= len)
		rc = TERN_ETOOBIG;
	else if (utf8_check_mqtt((const uint8_t *)p, (size_t)n) != 0)
		rc = TERN_EUTF8;
	else {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(bio);
	return rc;
}

const char *tls_version_name(const struct tls_conn *t)
{
	return SSL_get_version(t->ssl);
}

const char *tls_sni(const struct tls_conn *t)
{
	return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

/* Trust anchors, client certificate and policy of a client context. */
static int tls_client_configure(struct tls_ctx *c,
                                const struct tls_client_opts *o, char *err,
                                size_t errlen)
{
	SSL_CTX *ssl = c->ssl;

	if (tls_set_version(ssl, o->tls_version) != 0) {
		snprintf(err, errlen,
		         "tls_version '%s': use tlsv1.2 or tlsv1.3",
		         o->tls_version);
		return TERN_ECONFIG;
	}
	if (o->cafile || o->capath) {
		if (SSL_CTX_load_verify_locations(ssl, o->cafile, o->capath) !=
		    1)
			return tls_fail_msg(err, errlen,
			                    "cannot load cafile/capath",
			                    o->cafile ? o->cafile : o->capath);
	} else if (SSL_CTX_set_default_verify_paths(ssl) != 1) {
		return tls_fail_msg(err, errlen,
		                    "cannot load the system trust store", NULL);
	}
	if (o->certfile) {
		const char *key = o->keyfile ? o->keyfile : o->certfile;

		if (SSL_CTX_use_certificate_chain_file(ssl, o->certfile) != 1)
			return tls_fail_msg(err, errlen, "cannot load certfile",
			                    o->certfile);
		SSL_CTX_set_default_passwd_cb(ssl, tls_password_cb);
		SSL_CTX_set_default_passwd_cb_userdata(
		        ssl, (void *)o->keyfile_password);
		if (SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) !=
		    1) {
			struct tls_opts so = {.keyfile_password =
			                              o->keyfile_password};

			return tls_fail_msg(err, errlen, tls_key_error(&so),
			                    key);
		}
		if (SSL_CTX_check_private_key(ssl) != 1)
			return tls_fail_msg(err, errlen,
			                    "keyfile does not match certfile",
			                    key);
	} else if (o->keyfile) {
		snprintf(err, errlen, "a TLS keyfile needs a certfile");
		return TERN_ECONFIG;
	}
	SSL_CTX_set_verify(
	        ssl, o->no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	if (o->alpn_len &&
	    SSL_CTX_set_alpn_protos(ssl, (const unsigned char *)o->alpn,
	                            (unsigned)o->alpn_len) != 0) {
		snprintf(err, errlen, "invalid ALPN list");
		return TERN_ECONFIG;
	}
	return 0;
}

/*
 * OpenSSL hands every new client session here: in TLS 1.3 the tickets
 * arrive after the handshake, with the first reads, so the session cannot
 * be taken when the handshake ends. The context keeps the latest one.
 * Returning 1 keeps OpenSSL's reference, which is ours from now on.
 */
static int tls_new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_ctx *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	SSL_SESSION *old;

	if (!c || !c->resume || !SSL_SESSION_is_resumable(sess))
		return 0;
	pthread_mutex_lock(&c->sess_lock);
	old = c->sess;
	c->sess = sess;
	pthread_mutex_unlock(&c->sess_lock);
	SSL_SESSION_free(old);
	return 1;
}

/* Resumption on: sessions come through tls_new_session_cb() only. */
static void tls_client_resume(struct tls_ctx *c)
{
	c->resume = true;
	pthread_mutex_init(&c->sess_lock, NULL);
	SSL_CTX_set_app_data(c->ssl, c);
	SSL_CTX_set_session_cache_mode(
	        c->ssl,
	        SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(c->ssl, tls_new_session_cb);
}

bool tls_client_has_session(struct tls_ctx *ctx)
{
	bool has;

	if (!ctx->resume)
		return false;
	pthread_mutex_lock(&ctx->sess_lock);
	has = ctx->sess != NULL;
	pthread_mutex_unlock(&ctx->sess_lock);
	return has;
}

bool tls_session_reused(const struct tls_conn *t)
{
	return SSL_session_reused(t->ssl) == 1;
}

/* Offers the context's session, if any, on a new client connection. */
static void tls_offer_session(struct tls_ctx *ctx, SSL *ssl)
{
	if (!ctx->resume)
		return;
	pthread_mutex_lock(&ctx->sess_lock);
	/* SSL_set_session takes its own reference; a failure only means a
	 * full handshake. */
	if (ctx->sess)
		SSL_set_session(ssl, ctx->sess);
	pthread_mutex_unlock(&ctx->sess_lock);
	ERR_clear_error();
}

int tls_client_ctx_new(const struct tls_client_opts *o, struct tls_ctx **out,
                       char *err, size_t errlen)
{
	struct tls_ctx *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return TERN_ENOMEM;
	atomic_init(&c->refs, 1);
	ERR_clear_error();
	c->ssl = SSL_CTX_new(TLS_client_method());
	if (!c->ssl) {
		free(c);
		return tls_fail_msg(err, errlen, "cannot create TLS context",
		                    NULL);
	}
	SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION |
	                                    SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (o->resume)
		tls_client_resume(c);
	rc = tls_client_configure(c, o, err, errlen);
	if (rc != 0) {
		tls_ctx_unref(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* Hostname (or IP address) the server's certificate must match. */
static int tls_set_peer(SSL *ssl, const char *host, bool verify_host)
{
	unsigned char addr[16];
	bool ip = inet_pton(AF_INET, host, addr) == 1 ||
	          inet_pton(AF_INET6, host, addr) == 1;

	/* RFC 6066 §3: SNI carries names, never address literals. */
	if (!ip && SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	if (!verify_host)
		return 0;
	if (ip)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		                                     host) == 1
		               ? 0
		               : -1;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

/*
 * A socket BIO that writes with send(MSG_NOSIGNAL). OpenSSL's own writes
 * with write(2), which raises SIGPIPE when the peer has gone; a broker
 * ignores SIGPIPE process-wide, but a library must not make that choice
 * for the program it lives in.
 */
static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static int nosig_write(BIO *b, const char *buf, int len)
{
	ssize_t n = send((int)(intptr_t)BIO_get_data(b), buf, (size_t)len,
	                 MSG_NOSIGNAL);

	BIO_clear_retry_flags(b);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_write(b);
	return (int)n;
}

static int nosig_read(BIO *b, char *buf, int len)
{
	ssize_t n = recv((int)(intptr_t)BIO_get_data(b), buf, (size_t)len, 0);

	BIO_clear_retry_flags(b);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_read(b);
	return (int)n;
}

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	switch (cmd) {
	case BIO_CTRL_FLUSH: return 1;
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = (int)(intptr_t)BIO_get_data(b);
		return (long)(intptr_t)BIO_get_data(b);
	default: return 0;
	}
}

static int nosig_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void nosig_make(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	                             "tern socket");

	if (m == NULL)
		return;
	BIO_meth_set_write(m, nosig_write);
	BIO_meth_set_read(m, nosig_read);
	BIO_meth_set_ctrl(m, nosig_ctrl);
	BIO_meth_set_create(m, nosig_create);
	nosig_method = m;
}

static BIO *nosig_bio(int fd)
{
	BIO *b;

	pthread_once(&nosig_once, nosig_make);
	if (nosig_method == NULL)
		return NULL;
	b = BIO_new(nosig_method);
	if (b)
		BIO_set_data(b, (void *)(intptr_t)fd);
	return b;
}

struct tls_conn *tls_client_conn_new(struct tls_ctx *ctx, int fd,
                                     const char *host, bool verify_host)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	BIO *bio = NULL;

	if (!t)
		return NULL;
	ERR_clear_error();
	t->ssl = SSL_new(ctx->ssl);
	if (t->ssl)
		bio = nosig_bio(fd);
	if (!t->ssl || !bio ||
	    (host && tls_set_peer(t->ssl, host, verify_host) != 0)) {
		BIO_free(bio);
		SSL_free(t->ssl);
		free(t);
		ERR_clear_error();
		return NULL;
	}
	/* The SSL takes the one reference, for reading and writing. */
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_connect_state(t->ssl);
	tls_offer_session(ctx, t->ssl);
	t->ctx = tls_ctx_ref(ctx);
	return t;
}
