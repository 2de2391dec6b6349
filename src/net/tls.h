/*
 * TLS as a transport (OpenSSL 3), non-blocking inside the event loop. A
 * listener has one tls_ctx (certificate, key, CA, verification policy);
 * each connection has one tls_conn over its socket. Reads and writes have
 * the shape of read(2)/writev(2) so the connection code treats TLS and
 * plain TCP alike; a write coalesces small queued ranges into records of up
 * to 16 KiB and writes large ranges straight from their buffers.
 *
 * A tls_ctx is immutable once built and refcounted: a reload builds a new
 * one, new connections use it, and connections made earlier keep theirs.
 */
#ifndef TERN_NET_TLS_H
#define TERN_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct tls_ctx;
struct tls_conn;

/* Mosquitto's listener keys for TLS (paths as given; NULL = unset). */
struct tls_opts {
	const char *certfile;
	const char *keyfile;
	const char *keyfile_password;
	const char *cafile;
	const char *capath;
	const char *crlfile;
	const char *ciphers;      /* TLS 1.2 cipher list */
	const char *ciphersuites; /* TLS 1.3 suites */
	const char *groups;       /* key exchange groups, "X25519:P-256" */
	const char *tls_version;  /* minimum: "tlsv1.2" (default), "tlsv1.3" */
	const char *alpn;         /* wire-format list, e.g. "\4mqtt" */
	size_t alpn_len;
	bool require_certificate;
};

/* Why a handshake failed, for counters. */
enum tls_fail {
	TLSF_NONE = 0,
	TLSF_NO_CERT,  /* client sent no certificate where required */
	TLSF_BAD_CERT, /* certificate did not verify (CA, expiry, CRL) */
	TLSF_VERSION,  /* protocol version or cipher mismatch */
	TLSF_NOT_TLS,  /* the peer did not speak TLS */
	TLSF_OTHER,
	TLSF_TIMEOUT, /* not done before the deadline (counted by callers) */
	TLSF_COUNT,
};

/*
 * Builds a context. Returns 0 and *out (one reference), or TERN_ECONFIG
 * with a sentence in err (which file could not be read and why).
 */
int tls_ctx_new(const struct tls_opts *o, struct tls_ctx **out, char *err,
                size_t errlen);

struct tls_ctx *tls_ctx_ref(struct tls_ctx *c);
void tls_ctx_unref(struct tls_ctx *c);

/* Starts server-side TLS on fd. NULL when out of memory. */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd);
void tls_conn_free(struct tls_conn *t);

/*
 * Client side (libtern, the load generator). A client context carries the
 * trust anchors, the optional client certificate and the policy.
 */
struct tls_client_opts {
	const char *cafile;   /* PEM bundle; with capath NULL too: the */
	const char *capath;   /* system's default trust store */
	const char *certfile; /* client certificate (mutual TLS), or NULL */
	const char *keyfile;  /* its key; NULL = in certfile */
	const char *keyfile_password;
	const char *tls_version; /* minimum: "tlsv1.2" (default), "tlsv1.3" */
	const char *alpn;        /* wire-format list, e.g. "\4mqtt" */
	size_t alpn_len;
	bool no_verify; /* do not verify the server's chain (testing only) */
	/* Session resumption: the context keeps the latest session the
	 * server handed out (a TLS 1.3 ticket, or a TLS 1.2 session) and
	 * offers it on every later connection. One server per context: a
	 * session is only good for the server that issued it. OpenSSL drops
	 * the session of a connection freed without tls_shutdown(). */
	bool resume;
};

/*
 * Builds a client context. Verification of the server's certificate chain
 * is on unless no_verify. Returns 0 and *out (one reference), or
 * TERN_ECONFIG with a sentence in err.
 */
int tls_client_ctx_new(const struct tls_client_opts *o, struct tls_ctx **out,
                       char *err, size_t errlen);

/*
 * Starts client-side TLS on a connected fd. `host` (may be NULL) is sent
 * as SNI when it is a name, and, when verify_host is set, the server's
 * certificate must match it (DNS name, or IP address for a literal). The
 * handshake is then driven by tls_handshake(). NULL when out of memory or
 * when host cannot be set.
 */
struct tls_conn *tls_client_conn_new(struct tls_ctx *ctx, int fd,
                                     const char *host, bool verify_host);

/* A context with `resume` holds a session to offer new connections. */
bool tls_client_has_session(struct tls_ctx *ctx);

/* t's handshake resumed a session (no certificate was exchanged). */
bool tls_session_reused(const struct tls_conn *t);

/*
 * After a failed tls_handshake(): a sentence on why, such as
 * "certificate verify failed: self-signed certificate in certificate
 * chain" or "hostname mismatch". Valid until the next call on t.
 */
const char *tls_error(const struct tls_conn *t);

/* The ALPN protocol the peer selected (*len 0 when none). */
const uint8_t *tls_alpn_selected(const struct tls_conn *t, unsigned *len);

/*
 * Advances the handshake. Returns 1 when done, 0 when it needs more I/O
 * (*want_write tells whether to wait for EPOLLOUT too), or <0 on failure
 * with *why set.
 */
int tls_handshake(struct tls_conn *t, bool *want_write, enum tls_fail *why);

/*
 * Reads decrypted bytes. Returns the count, 0 when the peer closed,
 * TERN_EAGAIN when no more data is available now, TERN_EIO on error.
 */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t len);

/* Whether decrypted bytes are buffered inside OpenSSL (read them before
 * waiting for the socket again). */
bool tls_pending(const struct tls_conn *t);

/*
 * Writes from the iovecs; returns bytes written (possibly fewer than
 * offered), TERN_EAGAIN if nothing could be written now (*want_read tells
 * whether TLS needs to read first), TERN_EIO on error. After TERN_EAGAIN
 * the caller must retry with the same leading bytes.
 */
ssize_t tls_writev(struct tls_conn *t, const struct iovec *iov, int n,
                   bool *want_read);

/* Sends close_notify (best effort). */
void tls_shutdown(struct tls_conn *t);

/*
 * The verified client certificate's identity: its subject CN
 * (use_identity_as_username) or whole subject in RFC 2253 form
 * (use_subject_as_username). Writes into out and returns 0, TERN_ENOENT
 * without a certificate, TERN_EUTF8 when not valid UTF-8, TERN_ETOOBIG.
 */
int tls_peer_cn(const struct tls_conn *t, char *out, size_t len);
int tls_peer_subject(const struct tls_conn *t, char *out, size_t len);

/* The negotiated protocol version name ("TLSv1.3") and SNI (or NULL). */
const char *tls_version_name(const struct tls_conn *t);
const char *tls_sni(const struct tls_conn *t);

#endif
