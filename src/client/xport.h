/*
 * The client's transports behind one small function table (STYLE.md #9):
 * plain TCP, TLS, and WebSocket over either. A transport is created on a
 * socket whose non-blocking connect() has completed; handshake() then
 * drives TLS and/or the WebSocket upgrade; read() and write() move the MQTT
 * byte stream; flush() pushes bytes the transport buffered itself (masked
 * WebSocket frames, control frames it answers). All calls are
 * non-blocking: TERN_EAGAIN means "wait for xport_wants()".
 */
#ifndef TERN_CLIENT_XPORT_H
#define TERN_CLIENT_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tls_ctx;
struct xport;

struct xport_ops {
	const char *name;
	/* 1 done, 0 call again when xport_wants() says, < 0 error (x->err). */
	int (*handshake)(struct xport *x);
	/* Bytes read (> 0), 0 on an orderly close, TERN_EAGAIN, < 0 error. */
	ssize_t (*read)(struct xport *x, uint8_t *buf, size_t len);
	/* Bytes taken (> 0, possibly fewer than len), TERN_EAGAIN, < 0. */
	ssize_t (*write)(struct xport *x, const uint8_t *buf, size_t len);
	/* 0 when nothing is left buffered, TERN_EAGAIN, < 0 error. */
	int (*flush)(struct xport *x);
	/* Best-effort orderly close (WebSocket close frame, TLS
	 * close_notify); then xport_free(). */
	void (*shutdown)(struct xport *x);
	void (*destroy)(struct xport *x);
};

/* What a transport needs to start. Strings must outlive the transport. */
struct xport_params {
	int fd;               /* connected, non-blocking; owned after new */
	struct tls_ctx *tls;  /* NULL: plain */
	const char *host;     /* SNI, certificate check, Host header */
	bool verify_host;     /* TLS: match the certificate to host */
	bool ws;              /* WebSocket on top */
	int port;             /* for the Host header (0: omitted) */
	const char *path;     /* WebSocket request target */
	uint64_t max_message; /* WebSocket: largest message accepted */
};

struct xport {
	const struct xport_ops *ops;
	int fd;
	bool want_read, want_write; /* what the last TERN_EAGAIN waits for */
	char err[256];              /* why the last call failed */
};

/*
 * Makes the transport for p (TCP, TLS, WebSocket, WebSocket over TLS).
 * Returns 0 and *out, or TERN_ENOMEM (the fd is closed either way on
 * failure).
 */
int xport_new(const struct xport_params *p, struct xport **out);

/* Closes the socket and frees the transport; NULL is allowed. */
void xport_free(struct xport *x);

/* Events (TERN_EV_READ/WRITE bits) the transport waits for. */
int xport_wants(const struct xport *x);

/* The byte layer under WebSocket (TCP or TLS), used by xport_ws.c. */
struct xport *xport_bytes_new(const struct xport_params *p);
struct xport *xport_ws_new(const struct xport_params *p, struct xport *lower);

#endif
