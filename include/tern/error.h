/*
 * tern's one error convention (STYLE.md #4), shared by the broker and the
 * public client library: functions return 0 (or a non-negative count) on
 * success and a negative TERN_E* code on failure. Parsers return
 * TERN_EAGAIN when they need more bytes; that is not an error. MQTT reason
 * codes are data carried on the wire, never return values.
 *
 * This header is installed as <tern/error.h>; src/base/error.h includes it.
 */
#ifndef TERN_ERROR_H
#define TERN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
	TERN_OK = 0,
	TERN_EAGAIN = -1,     /* need more bytes / try again later */
	TERN_ENOMEM = -2,     /* allocation failed */
	TERN_EMALFORMED = -3, /* bytes do not form a valid packet */
	TERN_EPROTO = -4,     /* well-formed but violates the protocol */
	TERN_ETOOBIG = -5,    /* exceeds a configured or protocol size limit */
	TERN_EINVAL = -6,     /* invalid argument or value */
	TERN_EIO = -7,        /* system call failed; see errno */
	TERN_ECLOSED = -8,    /* peer closed the connection */
	TERN_ETIMEDOUT = -9,  /* a deadline passed */
	TERN_EVERSION = -10,  /* unsupported protocol name or level */
	TERN_EUTF8 = -11,     /* ill-formed UTF-8 or a forbidden code point */
	TERN_ENOENT = -12,    /* no such item */
	TERN_EEXIST = -13,    /* item already exists */
	TERN_EDENIED = -14,   /* not authorised */
	TERN_ELIMIT = -15,  /* a bound (queue, inflight, connections) is full */
	TERN_ECONFIG = -16, /* configuration error */
	TERN_ETLS = -17,    /* TLS handshake or certificate check failed */
	TERN_EREFUSED = -18,  /* the server refused the connection (CONNACK) */
	TERN_ECONNECT = -19,  /* the server could not be reached */
	TERN_ECANCELED = -20, /* the operation was abandoned (client stopped) */
};

/* Returns a static, human-readable description of a TERN_E* code. */
const char *tern_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
