/*
 * `tern bench` connections and their transports. Every connection is a
 * non-blocking socket in the run's epoll loop with fixed-size input and
 * output buffers; MQTT bytes go through them as they are.
 *
 * MQTT over WebSocket (ws://, RFC 6455): an HTTP upgrade offering the
 * subprotocol "mqtt", then every write of a connection's pending MQTT bytes
 * leaves as one binary frame masked with a fresh random key; the broker's
 * frames are decoded in place in the input buffer, wherever the MQTT
 * packets in them begin or end.
 *
 * Either may run over TLS (mqtts://, wss://): OpenSSL, with the handshake
 * driven by the same loop, the server's certificate verified against
 * --cafile (or the system's CAs) and, unless --insecure, checked for the
 * host name. With --resume, each new connection resumes a TLS session the
 * broker sent before, each ticket used once.
 *
 * `conn` may open more connections than one source address has ports: the
 * sockets are bound to 127.0.0.1, 127.0.0.2, ... in turn (the port is
 * still chosen by connect(), IP_BIND_ADDRESS_NO_PORT), which the loopback
 * interface accepts for the whole of 127.0.0.0/8.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "bench.h"

#define WS_HDR_MAX  14  /* client frame header: 2 + 8 length + 4 mask */
#define WS_CTL_MAX  125 /* control frame payload */
#define WS_WIRE_PAD (2 * (WS_HDR_MAX + WS_CTL_MAX)) /* pong, close */
#define WS_GUID     "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/*
 * Decoder of the frames a server sends (unmasked). Payload of binary
 * messages is moved down in place into the MQTT byte stream; control frame
 * payload goes to ctl[].
 */
struct wsd {
	uint8_t hdr[WS_HDR_MAX]; /* partial frame header */
	uint8_t hdr_len;
	uint8_t opcode;     /* of the current frame */
	bool in_message;    /* a fragmented binary message is open */
	uint64_t remaining; /* payload bytes left in the current frame */
	uint8_t ctl[WS_CTL_MAX];
	uint8_t ctl_len;
};

enum { WSD_MORE, WSD_PING, WSD_PONG, WSD_CLOSE, WSD_ERROR = -1 };

enum {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

/* WebSocket state of one connection. */
struct wsc {
	struct wsd dec;
	char accept[32]; /* the Sec-WebSocket-Accept expected */
};

/* xorshift64*: fast, and random enough for keys and masks (the mask only
 * keeps proxies from mistaking frames for requests, RFC 6455 §10.3). */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

static uint32_t rol32(uint32_t x, unsigned n)
{
	return x << n | x >> (32 - n);
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	unsigned i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (; i < 80; i++)
		w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (i = 0; i < 80; i++) {
		uint32_t f, k, t;

		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5A827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ED9EBA1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8F1BBCDC;
		} else {
			f = b ^ c ^ d;
			k = 0xCA62C1D6;
		}
		t = rol32(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol32(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

/* SHA-1 (FIPS 180-4) of a short message: only for the handshake. */
static void sha1(const uint8_t *m, size_t len, uint8_t out[20])
{
	uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
	                 0xC3D2E1F0};
	size_t total = (len + 8) / 64 * 64 + 64, off, i;
	uint64_t bits = (uint64_t)len * 8;
	uint8_t blk[64];

	for (off = 0; off < total; off += 64) {
		for (i = 0; i < 64; i++) {
			size_t k = off + i;

			if (k < len)
				blk[i] = m[k];
			else if (k == len)
				blk[i] = 0x80;
			else if (k >= total - 8)
				blk[i] = (uint8_t)(bits >>
				                   (8 * (total - 1 - k)));
			else
				blk[i] = 0;
		}
		sha1_block(h, blk);
	}
	for (i = 0; i < 20; i++)
		out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* Padded base64 of p[0..len) into out (4 * ceil(len / 3) + 1 bytes). */
static void base64(const uint8_t *p, size_t len, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                        "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		*out++ = a[v >> 18];
		*out++ = a[v >> 12 & 63];
		*out++ = i + 1 < len ? a[v >> 6 & 63] : '=';
		*out++ = i + 2 < len ? a[v & 63] : '=';
	}
	*out = '\0';
}

/* Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2): 28 characters + NUL. */
static void ws_accept(const char *key, char out[29])
{
	char buf[128];
	uint8_t d[20];
	int n = snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);

	sha1((const uint8_t *)buf, (size_t)n, d);
	base64(d, sizeof(d), out);
}

static bool ws_is_control(uint8_t opcode)
{
	return opcode & 0x08;
}

/* Size of the header begun in d->hdr, once its first two bytes are in. */
static unsigned wsd_hdr_size(const struct wsd *d)
{
	unsigned n = d->hdr[1] & 0x7F;

	return 2 + (n == 126 ? 2 : n == 127 ? 8 : 0);
}

/* The control frame just completed. */
static int wsd_control(const struct wsd *d)
{
	switch (d->opcode) {
	case WS_OP_PING: return WSD_PING;
	case WS_OP_PONG: return WSD_PONG;
	default: return WSD_CLOSE;
	}
}

/* Validates the complete header in d->hdr; WSD_MORE or an event. */
static int wsd_header(struct wsd *d, const char **why)
{
	uint8_t b0 = d->hdr[0], op = b0 & 0x0F;
	bool fin = b0 & 0x80;
	uint64_t n = d->hdr[1] & 0x7F;
	unsigned i;

	if (n >= 126) {
		unsigned bytes = n == 126 ? 2 : 8;

		for (n = 0, i = 0; i < bytes; i++)
			n = n << 8 | d->hdr[2 + i];
		if (n >> 63) {
			*why = "frame length with the top bit set";
			return WSD_ERROR;
		}
	}
	d->hdr_len = 0;
	if (b0 & 0x70) {
		*why = "frame with RSV bits set";
		return WSD_ERROR;
	}
	switch (op) {
	case WS_OP_CONT:
	case WS_OP_BINARY:
		if ((op == WS_OP_CONT) != d->in_message) {
			*why = op == WS_OP_CONT
			               ? "continuation without a message"
			               : "new message inside another";
			return WSD_ERROR;
		}
		d->in_message = !fin;
		break;
	case WS_OP_TEXT: *why = "text frame"; return WSD_ERROR;
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		if (!fin || n > WS_CTL_MAX) {
			*why = "fragmented or long control frame";
			return WSD_ERROR;
		}
		d->ctl_len = 0;
		break;
	default: *why = "reserved opcode"; return WSD_ERROR;
	}
	d->opcode = op;
	d->remaining = n;
	return n == 0 && ws_is_control(op) ? wsd_control(d) : WSD_MORE;
}

/*
 * Decodes server frames in b[*in..len), in place: the payload of binary
 * messages moves down to b[*out..) (*out <= *in), and *in and *out advance.
 * Stops at the end of input (WSD_MORE), after a complete control frame
 * (its event; call again to go on), or at an error (WSD_ERROR, *why set).
 */
static int wsd_decode(struct wsd *d, uint8_t *b, size_t len, size_t *in,
                      size_t *out, const char **why)
{
	while (*in < len) {
		size_t k;
		int rc;

		if (d->remaining > 0) {
			k = len - *in < d->remaining ? len - *in
			                             : (size_t)d->remaining;
			if (ws_is_control(d->opcode)) {
				memcpy(d->ctl + d->ctl_len, b + *in, k);
				d->ctl_len = (uint8_t)(d->ctl_len + k);
			} else {
				memmove(b + *out, b + *in, k);
				*out += k;
			}
			*in += k;
			d->remaining -= k;
			if (d->remaining == 0 && ws_is_control(d->opcode))
				return wsd_control(d);
			continue;
		}
		d->hdr[d->hdr_len++] = b[(*in)++];
		if (d->hdr_len == 2 && (d->hdr[1] & 0x80)) {
			*why = "masked frame from the server";
			return WSD_ERROR;
		}
		if (d->hdr_len < 2 || d->hdr_len < wsd_hdr_size(d))
			continue;
		rc = wsd_header(d, why);
		if (rc != WSD_MORE)
			return rc;
	}
	return WSD_MORE;
}

/*
 * Appends a masked client frame (FIN, opcode) with payload p[0..len) to
 * the wire buffer w, which has room for it, with a fresh random key.
 */
static void ws_frame(uint64_t *rng, struct buf *w, uint8_t opcode,
                     const uint8_t *p, size_t len)
{
	uint8_t *d = w->p + w->tail;
	uint32_t key = (uint32_t)(rng_next(rng) >> 32);
	uint64_t m = (uint64_t)key << 32 | key, word;
	size_t h = 0, i;
	uint8_t pat[8];

	d[h++] = (uint8_t)(0x80 | opcode);
	if (len < 126) {
		d[h++] = (uint8_t)(0x80 | len);
	} else if (len <= 0xFFFF) {
		d[h++] = 0x80 | 126;
		d[h++] = (uint8_t)(len >> 8);
		d[h++] = (uint8_t)len;
	} else {
		d[h++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			d[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	/* The key goes on the wire as the bytes of m, so that one XOR with
	 * m masks eight payload bytes whatever the byte order. */
	memcpy(pat, &m, 8);
	memcpy(d + h, pat, 4);
	h += 4;
	for (i = 0; len - i >= 8; i += 8) {
		memcpy(&word, p + i, 8);
		word ^= m;
		memcpy(d + h + i, &word, 8);
	}
	for (; i < len; i++)
		d[h + i] = p[i] ^ pat[i & 7];
	w->tail += h + len;
}

size_t buf_len(const struct buf *b)
{
	return b->tail - b->head;
}

/* Contiguous free space at the tail after moving pending bytes forward. */
size_t buf_room(struct buf *b)
{
	if (b->head == b->tail) {
		b->head = 0;
		b->tail = 0;
	} else if (b->head > 0 && b->cap - b->tail < b->cap / 2) {
		memmove(b->p, b->p + b->head, b->tail - b->head);
		b->tail -= b->head;
		b->head = 0;
	}
	return b->cap - b->tail;
}

/* Output not yet written: MQTT bytes, and over WebSocket framed bytes. */
size_t conn_pending(const struct conn *c)
{
	return buf_len(&c->out) + buf_len(&c->wire);
}

void conn_fail(struct load *L, struct conn *c, const char *why)
{
	if (c->state == ST_DEAD)
		return;
	/* Thousands of connections may fail alike: the first few say it. */
	if (L->st.errors == MAX_ERR_LOG)
		fprintf(stderr, "tern bench: more connections failed\n");
	if (L->st.errors < MAX_ERR_LOG)
		fprintf(stderr, "tern bench: %s %u: %s\n",
		        c->role == ROLE_PUB   ? "publisher"
		        : c->role == ROLE_SUB ? "subscriber"
		                              : "connection",
		        c->idx, why);
	L->st.errors++;
	epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	c->tls_want = 0;
	close(c->fd);
	c->fd = -1;
	c->state = ST_DEAD;
	c->inflight = 0;
}

/* Value of header field `name` in an HTTP response head, or NULL. */
static const char *http_field(const char *head, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");

	while (p && p[2] != '\r') {
		const char *line = p + 2, *v;

		p = strstr(line, "\r\n");
		if (!p)
			break;
		if (strncasecmp(line, name, nl) != 0 || line[nl] != ':')
			continue;
		for (v = line + nl + 1; *v == ' ' || *v == '\t'; v++)
			;
		*len = (size_t)(p - v);
		while (*len > 0 && (v[*len - 1] == ' ' || v[*len - 1] == '\t'))
			(*len)--;
		return v;
	}
	return NULL;
}

static bool field_is(const char *head, const char *name, const char *want)
{
	size_t len;
	const char *v = http_field(head, name, &len);

	return v && len == strlen(want) && strncasecmp(v, want, len) == 0;
}

/* Queues the upgrade request (raw, on the wire buffer). */
static void ws_request(struct load *L, struct conn *c)
{
	uint8_t raw[16];
	char key[25];
	uint64_t r[2] = {rng_next(&L->rng), rng_next(&L->rng)};
	int n;

	memcpy(raw, r, sizeof(raw));
	base64(raw, sizeof(raw), key);
	ws_accept(key, c->ws->accept);
	n = snprintf((char *)c->wire.p, c->wire.cap,
	             "GET %s HTTP/1.1\r\n"
	             "Host: %s%s%s:%u\r\n"
	             "Upgrade: websocket\r\n"
	             "Connection: Upgrade\r\n"
	             "Sec-WebSocket-Key: %s\r\n"
	             "Sec-WebSocket-Version: 13\r\n"
	             "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
	             L->o.path, strchr(L->o.host, ':') ? "[" : "", L->o.host,
	             strchr(L->o.host, ':') ? "]" : "", L->o.port, key);
	if (n < 0 || (size_t)n >= c->wire.cap) {
		conn_fail(L, c, "upgrade request too long");
		return;
	}
	c->wire.head = 0;
	c->wire.tail = (size_t)n;
	c->state = ST_UPGRADE;
}

/*
 * The upgrade response in c's input: 0 while incomplete, -1 after failing
 * c, 1 once accepted, with the bytes after the head (frames) left at the
 * start of the input buffer.
 */
static int ws_response(struct load *L, struct conn *c)
{
	char *head = (char *)c->in.p, why[160];
	size_t len = buf_len(&c->in), hl, vl;
	char *end = memmem(head, len, "\r\n\r\n", 4);
	const char *v;

	if (!end) {
		if (c->in.tail < c->in.cap)
			return 0;
		conn_fail(L, c, "upgrade response too long");
		return -1;
	}
	hl = (size_t)(end - head) + 4;
	end[2] = '\0'; /* the head, ending with its last CRLF */
	v = http_field(head, "Sec-WebSocket-Protocol", &vl);
	if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
		snprintf(why, sizeof(why), "upgrade refused: %.*s",
		         (int)strcspn(head, "\r\n"), head);
	} else if (!field_is(head, "Upgrade", "websocket") ||
	           !strcasestr(head, "\r\nConnection:")) {
		snprintf(why, sizeof(why), "101 without Upgrade: websocket");
	} else if (!field_is(head, "Sec-WebSocket-Accept", c->ws->accept)) {
		snprintf(why, sizeof(why), "wrong Sec-WebSocket-Accept");
	} else if (!v || vl != 4 || memcmp(v, "mqtt", 4) != 0) {
		snprintf(why, sizeof(why), "subprotocol mqtt not chosen");
	} else {
		memmove(c->in.p, c->in.p + hl, len - hl);
		c->in.head = 0;
		c->in.tail = len - hl;
		proto_connect(L, c);
		return c->state == ST_DEAD ? -1 : 1;
	}
	conn_fail(L, c, why);
	return -1;
}

/* Decodes the frames in c's input from offset `from` on; -1 if c failed. */
static int ws_input(struct load *L, struct conn *c, size_t from)
{
	size_t in = from, out = from;
	const char *why = NULL;
	char msg[64];

	for (;;) {
		struct wsd *d = &c->ws->dec;
		int rc = wsd_decode(d, c->in.p, c->in.tail, &in, &out, &why);

		switch (rc) {
		case WSD_MORE: c->in.tail = out; return 0;
		case WSD_PONG: continue;
		case WSD_PING:
			/* Answered if there is room; a broker that pings an
			 * MQTT client is unusual. */
			if (buf_room(&c->wire) >=
			    WS_HDR_MAX + (size_t)d->ctl_len)
				ws_frame(&L->rng, &c->wire, WS_OP_PONG, d->ctl,
				         d->ctl_len);
			continue;
		case WSD_CLOSE:
			snprintf(msg, sizeof(msg),
			         "close frame from the broker (code %u)",
			         d->ctl_len >= 2 ? d->ctl[0] << 8 | d->ctl[1]
			                         : 1005);
			why = msg;
			break;
		}
		conn_fail(L, c, why ? why : "bad frame");
		return -1;
	}
}

/*
 * TLS. The broker sent a session (TLS 1.2) or a ticket (TLS 1.3): with
 * --resume, a later connection resumes it. Brokers on OpenSSL take a TLS
 * 1.3 ticket only once (RFC 8446 §C.4 asks clients not to reuse them), so
 * each is used once, and a full handshake brings two, a resumption one.
 * Keeps the reference.
 */
static int tls_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct load *L = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	if (!SSL_SESSION_is_resumable(sess))
		return 0;
	L->sessions++;
	if (L->nsess == MAX_SESSIONS) {
		SSL_SESSION_free(L->sess[0]);
		memmove(L->sess, L->sess + 1, sizeof(L->sess[0]) * --L->nsess);
	}
	L->sess[L->nsess++] = sess;
	if (L->last_sess)
		SSL_SESSION_free(L->last_sess);
	SSL_SESSION_up_ref(sess);
	L->last_sess = sess;
	return 1;
}

/* A session for a new connection to resume (the caller's reference), or
 * NULL: the newest unused one, else the newest one. */
static SSL_SESSION *tls_take_session(struct load *L)
{
	if (L->nsess > 0)
		return L->sess[--L->nsess];
	if (L->last_sess)
		SSL_SESSION_up_ref(L->last_sess);
	return L->last_sess;
}

/* The latest OpenSSL error, for a message. */
static const char *tls_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_get_error());

	ERR_clear_error();
	return r ? r : "unknown error";
}

/*
 * The client context: the broker's chain verified against --cafile (or the
 * system's CAs) and, unless --insecure, its certificate checked for the
 * host, a DNS name or an address. TLS 1.2 at least.
 */
int conn_tls_init(struct load *L)
{
	const char *h = L->o.host;
	struct in6_addr a;
	bool ip = inet_pton(AF_INET, h, &a) == 1 ||
	          inet_pton(AF_INET6, h, &a) == 1;
	long mode = SSL_MODE_ENABLE_PARTIAL_WRITE |
	            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
	X509_VERIFY_PARAM *vp;

	L->tls = SSL_CTX_new(TLS_client_method());
	if (!L->tls ||
	    SSL_CTX_set_min_proto_version(L->tls, TLS1_2_VERSION) != 1) {
		fprintf(stderr, "tern bench: TLS: %s\n", tls_reason());
		return -1;
	}
	/* Thousands of idle connections: no buffers while idle. */
	if (L->o.mode == MODE_CONN)
		mode |= SSL_MODE_RELEASE_BUFFERS;
	SSL_CTX_set_mode(L->tls, mode);
	/* EOF without close_notify reads as a close, like over TCP. */
	SSL_CTX_set_options(L->tls, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(L->tls, SSL_VERIFY_PEER, NULL);
	if ((L->o.cafile
	             ? SSL_CTX_load_verify_locations(L->tls, L->o.cafile, NULL)
	             : SSL_CTX_set_default_verify_paths(L->tls)) != 1) {
		fprintf(stderr,
		        "tern bench: cannot load CA certificates %s: %s\n",
		        L->o.cafile ? L->o.cafile : "(system)", tls_reason());
		return -1;
	}
	vp = SSL_CTX_get0_param(L->tls);
	X509_VERIFY_PARAM_set_hostflags(vp,
	                                X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (!L->o.insecure &&
	    (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, h)
	        : X509_VERIFY_PARAM_set1_host(vp, h, 0)) != 1) {
		fprintf(stderr, "tern bench: TLS: bad host %s\n", h);
		return -1;
	}
	/* SNI carries the host name; RFC 6066 §3 leaves addresses out. */
	L->sni = !ip;
	if (L->o.resume) {
		SSL_CTX_set_session_cache_mode(
		        L->tls, SSL_SESS_CACHE_CLIENT |
		                        SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_set_app_data(L->tls, L);
		SSL_CTX_sess_set_new_cb(L->tls, tls_new_session);
	} else {
		SSL_CTX_set_session_cache_mode(L->tls, SSL_SESS_CACHE_OFF);
	}
	return 0;
}

/*
 * After an SSL call on c returned rc: SSL_ERROR_WANT_READ or
 * SSL_ERROR_WANT_WRITE to go on when the socket is ready, or -1 after
 * failing c with the reason.
 */
static int tls_check(struct load *L, struct conn *c, int rc, const char *what)
{
	int sys = errno, e = SSL_get_error(c->ssl, rc);
	unsigned long err = ERR_peek_error();
	long v = SSL_get_verify_result(c->ssl);
	char why[256];

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return e;
	if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !err))
		snprintf(why, sizeof(why), "%s: %s", what,
		         e == SSL_ERROR_SYSCALL && sys ? strerror(sys)
		                                       : "connection closed by "
		                                         "the broker");
	else if (c->state == ST_TLS && v != X509_V_OK)
		snprintf(why, sizeof(why), "%s: certificate: %s", what,
		         X509_verify_cert_error_string(v));
	else
		snprintf(why, sizeof(why), "%s: %s", what, tls_reason());
	ERR_clear_error();
	conn_fail(L, c, why);
	return -1;
}

/* The connection is up (and over TLS, secured): the first request. */
static void conn_begin(struct load *L, struct conn *c)
{
	if (c->ws)
		ws_request(L, c);
	else
		proto_connect(L, c);
}

/* Drives c's handshake on; once done, begins MQTT (or the upgrade). */
static void tls_handshake(struct load *L, struct conn *c)
{
	int rc;

	ERR_clear_error();
	rc = SSL_do_handshake(c->ssl);
	if (rc != 1) {
		rc = tls_check(L, c, rc, "TLS handshake");
		c->tls_want = rc == SSL_ERROR_WANT_READ    ? EPOLLIN
		              : rc == SSL_ERROR_WANT_WRITE ? EPOLLOUT
		                                           : 0;
		return;
	}
	c->tls_want = 0;
	if (c->role != ROLE_PRIME) {
		L->handshakes++;
		L->resumed += SSL_session_reused(c->ssl) == 1;
	}
	if (!L->tls_proto[0]) {
		snprintf(L->tls_proto, sizeof(L->tls_proto), "%s",
		         SSL_get_version(c->ssl));
		snprintf(L->tls_cipher, sizeof(L->tls_cipher), "%s",
		         SSL_get_cipher_name(c->ssl));
	}
	conn_begin(L, c);
}

/* The TCP connection is up: starts TLS on it. */
static void tls_start(struct load *L, struct conn *c)
{
	SSL_SESSION *sess = NULL;
	bool ok;

	c->ssl = SSL_new(L->tls);
	if (c->ssl && L->o.resume)
		sess = tls_take_session(L);
	ok = c->ssl && SSL_set_fd(c->ssl, c->fd) == 1 &&
	     (!L->sni || SSL_set_tlsext_host_name(c->ssl, L->o.host) == 1) &&
	     (!sess || SSL_set_session(c->ssl, sess) == 1);
	SSL_SESSION_free(sess);
	if (!ok) {
		conn_fail(L, c, "cannot set up TLS");
		return;
	}
	SSL_set_connect_state(c->ssl);
	c->state = ST_TLS;
	tls_handshake(L, c);
}

/*
 * Decrypts into c's input buffer as much as is there and fits: the number
 * of bytes, or -1 after failing c.
 */
static ssize_t tls_read(struct load *L, struct conn *c)
{
	size_t room = c->in.cap - c->in.tail, got = 0;

	c->tls_want = 0;
	while (got < room) {
		int n, rc;

		ERR_clear_error();
		n = SSL_read(c->ssl, c->in.p + c->in.tail + got,
		             (int)(room - got));
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		rc = tls_check(L, c, n, "TLS read");
		if (rc < 0)
			return -1;
		/* Reading must write first: go on once writable. */
		if (rc == SSL_ERROR_WANT_WRITE)
			c->tls_want = EPOLLOUT;
		break;
	}
	return (ssize_t)got;
}

/*
 * Writes up to len bytes of p to c: the number written, 0 if the socket
 * takes no more now, or -1 after failing c.
 */
static ssize_t sock_write(struct load *L, struct conn *c, const uint8_t *p,
                          size_t len)
{
	ssize_t n;

	if (c->ssl) {
		ERR_clear_error();
		n = SSL_write(c->ssl, p, (int)len);
		if (n > 0)
			return n;
		return tls_check(L, c, (int)n, "TLS write") < 0 ? -1 : 0;
	}
	n = write(c->fd, p, len);
	if (n >= 0)
		return n;
	if (errno != EAGAIN && errno != EINTR) {
		conn_fail(L, c, strerror(errno));
		return -1;
	}
	return 0;
}

static void conn_read(struct load *L, struct conn *c)
{
	size_t from = c->in.tail;
	ssize_t n;

	if (c->ssl) {
		buf_room(&c->in);
		from = c->in.tail;
		n = tls_read(L, c);
		if (n <= 0)
			return;
	} else {
		n = read(c->fd, c->in.p + c->in.tail, buf_room(&c->in));
		if (n == 0) {
			conn_fail(L, c, "connection closed by the broker");
			return;
		}
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_fail(L, c, strerror(errno));
			return;
		}
	}
	c->in.tail += (size_t)n;
	L->t_last_rx = now_ns();
	if (c->ws) {
		if (c->state == ST_UPGRADE) {
			if (ws_response(L, c) <= 0)
				return;
			from = 0;
		}
		if (ws_input(L, c, from) != 0)
			return;
	}
	proto_parse(L, c, L->t_last_rx);
}

/*
 * Over WebSocket: all MQTT bytes pending when the wire buffer is empty
 * leave as one binary frame.
 */
static void ws_write(struct load *L, struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (buf_len(&c->wire) == 0) {
			if (buf_len(&c->out) == 0)
				return;
			c->wire.head = c->wire.tail = 0;
			ws_frame(&L->rng, &c->wire, WS_OP_BINARY,
			         c->out.p + c->out.head, buf_len(&c->out));
			c->out.head = c->out.tail = 0;
		}
		n = sock_write(L, c, c->wire.p + c->wire.head,
		               buf_len(&c->wire));
		if (n <= 0)
			return;
		c->wire.head += (size_t)n;
	}
}

void conn_write(struct load *L, struct conn *c)
{
	if (c->ws) {
		ws_write(L, c);
		return;
	}
	while (buf_len(&c->out) > 0) {
		ssize_t n = sock_write(L, c, c->out.p + c->out.head,
		                       buf_len(&c->out));

		if (n <= 0)
			return;
		c->out.head += (size_t)n;
	}
}

static void conn_start(struct load *L, struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
	    err != 0) {
		conn_fail(L, c, strerror(err ? err : errno));
		return;
	}
	if (L->tls)
		tls_start(L, c);
	else
		conn_begin(L, c);
}

/* Registers the interest c needs now, if it changed. */
void conn_interest(struct load *L, struct conn *c)
{
	struct epoll_event ev;
	uint32_t want = 0;

	if (c->state == ST_DEAD)
		return;
	if (c->state == ST_TLS) {
		want = c->tls_want;
	} else {
		/* tls_want: a TLS read waits for the socket to be writable. */
		if (c->state == ST_CONNECTING || conn_pending(c) > 0 ||
		    c->tls_want & EPOLLOUT)
			want |= EPOLLOUT;
		if (c->state != ST_CONNECTING && !c->blocked &&
		    c->in.tail < c->in.cap)
			want |= EPOLLIN;
	}
	if (want == c->events)
		return;
	ev.events = want;
	ev.data.u32 = (uint32_t)(c - L->c);
	if (epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		conn_fail(L, c, strerror(errno));
	c->events = want;
}

void conn_event(struct load *L, struct conn *c, uint32_t events)
{
	if (c->state == ST_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_start(L, c);
		return;
	}
	if (c->state == ST_TLS) {
		tls_handshake(L, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP) ||
	    c->tls_want & events & EPOLLOUT)
		conn_read(L, c);
	if (c->state != ST_DEAD && (events & EPOLLOUT))
		conn_write(L, c);
}

/*
 * `conn` with more connections than one source address has ports: binds
 * connection i's socket to 127.0.0.(1 + i % nsrc) before connect(), which
 * still picks the port (IP_BIND_ADDRESS_NO_PORT), so that each source
 * address has its own range of ports towards the broker.
 */
static int bind_source(struct load *L, struct conn *c)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int one = 1;

	if (L->nsrc <= 1)
		return 0;
	a.sin_addr.s_addr = htonl(0x7F000001u + c->idx % L->nsrc);
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
	           sizeof(one));
	return bind(c->fd, (struct sockaddr *)&a, sizeof(a));
}

int conn_open(struct load *L, struct conn *c)
{
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(L->addr.ss_family,
	               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind_source(L, c) != 0)
		return -1;
	c->t_open = now_ns();
	if (connect(c->fd, (struct sockaddr *)&L->addr, L->addrlen) != 0 &&
	    errno != EINPROGRESS)
		return -1;
	c->state = ST_CONNECTING;
	c->events = EPOLLOUT;
	ev.events = c->events;
	ev.data.u32 = (uint32_t)(c - L->c);
	return epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Allocates connection c (publisher or subscriber number idx). */
int conn_init(struct load *L, struct conn *c, enum role role, unsigned idx)
{
	const char *pattern = role == ROLE_PUB ? L->o.topic : L->o.filter;
	size_t topic_max = 0;
	int n;

	snprintf(c->id, sizeof(c->id), "%s%c%u", L->o.prefix, "pscr"[role],
	         idx);
	n = pattern ? opts_expand(pattern, idx, c->id, c->topic,
	                          sizeof(c->topic))
	            : 0;
	c->role = role;
	c->idx = idx;
	c->window = L->o.window;
	c->next_id = 1;
	if (L->o.ws) {
		c->ws = calloc(1, sizeof(*c->ws));
		if (!c->ws)
			return -1;
	}
	if (role == ROLE_IDLE || role == ROLE_PRIME) {
		/* CONNECT, CONNACK and the upgrade: small buffers. */
		c->in.cap = c->out.cap = CONN_BUF;
		goto alloc;
	}
	if (n <= 0)
		return -1;
	c->topic_len = (uint16_t)n;
	if (role == ROLE_PUB) {
		if (mqtt_topic_name_check((const uint8_t *)c->topic,
		                          c->topic_len) != 0)
			return -1;
		c->pkt_size = 5 + 2 + c->topic_len + 2 + 1 + L->o.payload;
		c->wait_ack = calloc(ID_WORDS, sizeof(uint64_t));
		c->wait_comp = calloc(ID_WORDS, sizeof(uint64_t));
		if (!c->wait_ack || !c->wait_comp)
			return -1;
	} else {
		if (mqtt_topic_filter_check((const uint8_t *)c->topic,
		                            c->topic_len) != 0)
			return -1;
	}
	topic_max = MAX_TOPIC + 16 + (size_t)L->o.payload;
	c->in.cap = topic_max * 2 > IN_MIN ? topic_max * 2 : IN_MIN;
	c->out.cap = c->pkt_size + ACK_ROOM > OUT_CAP ? c->pkt_size + ACK_ROOM
	                                              : OUT_CAP;
alloc:
	c->in.p = malloc(c->in.cap);
	c->out.p = malloc(c->out.cap);
	if (!c->in.p || !c->out.p)
		return -1;
	if (c->ws) {
		c->wire.cap = c->out.cap + WS_HDR_MAX + WS_WIRE_PAD;
		c->wire.p = malloc(c->wire.cap);
		if (!c->wire.p)
			return -1;
	}
	return 0;
}

void conn_free(struct conn *c)
{
	if (c->ssl) {
		/* close_notify, without waiting for the broker's. */
		if (c->fd >= 0)
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c->in.p);
	free(c->out.p);
	free(c->wire.p);
	free(c->ws);
	free(c->wait_ack);
	free(c->wait_comp);
	free(c->track);
}

/*
 * Over TLS, input already decrypted that did not fit in c's input buffer
 * waits in the SSL, where epoll does not see it: reads it once the buffer
 * has room, and has the loop come back at once if some is left.
 */
void conn_tls_pending(struct load *L, struct conn *c)
{
	if (c->blocked || c->state == ST_DEAD || SSL_pending(c->ssl) <= 0)
		return;
	conn_read(L, c);
	if (c->state != ST_DEAD)
		conn_write(L, c);
	if (c->ssl && !c->blocked && SSL_pending(c->ssl) > 0)
		L->tls_backlog = true;
}

void conn_disconnect_all(struct load *L)
{
	struct mqtt_packet p;
	unsigned i;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_DISCONNECT;
	for (i = 0; i < L->nconn; i++) {
		struct conn *c = &L->c[i];
		static const uint8_t normal[2] = {1000 >> 8, 1000 & 0xFF};

		if (c->state == ST_DEAD || c->fd < 0)
			continue;
		/* Not in the middle of a frame: a new one would corrupt it. */
		if (c->ws && (buf_len(&c->wire) > 0 || c->state < ST_CONNACK))
			continue;
		/* Nor over TLS while a write waits to be retried as it was. */
		if (c->ssl && (conn_pending(c) > 0 || c->state < ST_UPGRADE))
			continue;
		c->out.head = c->out.tail = 0;
		if (proto_send(L, c, &p) != 0)
			continue;
		if (c->ws) {
			ws_write(L, c);
			if (buf_len(&c->wire) == 0)
				ws_frame(&L->rng, &c->wire, WS_OP_CLOSE, normal,
				         sizeof(normal));
		}
		conn_write(L, c);
	}
}

uint64_t bench_rng(struct load *L)
{
	return rng_next(&L->rng);
}

void conn_tls_cleanup(struct load *L)
{
	while (L->nsess > 0)
		SSL_SESSION_free(L->sess[--L->nsess]);
	SSL_SESSION_free(L->last_sess);
	L->last_sess = NULL;
	SSL_CTX_free(L->tls);
	L->tls = NULL;
}
