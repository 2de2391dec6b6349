/*
 * mqtt_load: the load generator behind `make bench` (bench/run.sh).
 *
 * One process, one thread and one epoll loop drive every connection through
 * non-blocking sockets to a broker on the loopback interface. Publishers send
 * PUBLISH packets whose payload starts with the send time (CLOCK_MONOTONIC,
 * ns), the publisher's index and a sequence number; subscribers read them
 * back and compute end-to-end latency, and per publisher the loss,
 * duplicates and reordering. Every resource is bounded: each connection has
 * a fixed-size output buffer, latency goes into a fixed log-linear
 * histogram, and the run ends after the duration plus a drain timeout
 * whatever the broker does.
 *
 * Packets are encoded and decoded with tern's own codec (src/mqtt/packet.h),
 * which also validates everything the broker sends.
 *
 * Publishing starts once every connection is up and subscribed, and lasts
 * -d seconds. The throughput reported is the number of messages delivered
 * while publishers were publishing, per second; the drain that follows only
 * completes the accounting of loss, duplicates and latency. With --pid the
 * broker's CPU time (utime + stime from /proc/PID/stat) is read when
 * publishing starts and when the run ends, and reported per delivered
 * message.
 *
 * Clients speak MQTT over TCP (mqtt://) or over WebSocket (ws://, RFC 6455):
 * an HTTP upgrade offering the subprotocol "mqtt", then every write of a
 * connection's pending MQTT bytes leaves as one binary frame masked with a
 * fresh random key; the broker's frames are decoded in place in the input
 * buffer, wherever the MQTT packets in them begin or end.
 *
 * Either may run over TLS (mqtts://, wss://): OpenSSL, with the handshake
 * driven by the same epoll loop (non-blocking), the server's certificate
 * verified against --cafile and, unless --insecure, checked for the host
 * name. With --resume, each new connection resumes a TLS session the
 * broker sent before, each ticket used once.
 *
 * With --conn N the tool measures connections instead of messages: it opens
 * N connections (CONNECT, nothing more), reports how fast they came up and
 * each one's set-up time (from connect() to CONNACK, the TLS handshake and
 * the upgrade included) and the broker's CPU time per connection, holds
 * them idle for --idle seconds and reports the broker's resident memory
 * and the kernel's socket figures before and after.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mqtt/packet.h"

#define NS_PER_S       1000000000ull
#define PAYLOAD_MIN    16    /* send time, publisher index, sequence */
#define OUT_CAP        65536 /* bytes of output buffered per connection */
#define IN_MIN         65536 /* minimum input buffer per connection */
#define ACK_ROOM       16    /* output space kept free for one ack */
#define MAX_CONNS      10000 /* publishers + subscribers */
#define MAX_IDLE       19900 /* --conn connections (20,000 fds here) */
#define CONN_BUF       8192  /* input and output buffers with --conn */
#define IDLE_KEEPALIVE 300   /* CONNECT keepalive with --conn, seconds */
#define MAX_IDLE_S     240   /* --idle: well below the keepalive */
#define MAX_ERR_LOG    10    /* connection failures printed */
#define MAX_HOST       64
#define MAX_PATH       256
#define WS_HDR_MAX     14  /* client frame header: 2 + 8 length + 4 mask */
#define WS_CTL_MAX     125 /* control frame payload */
#define WS_WIRE_PAD    (2 * (WS_HDR_MAX + WS_CTL_MAX)) /* pong, close */
#define WS_GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_PAIRS      4000000 /* publisher x subscriber tracking entries */
#define MAX_TOPIC      256
#define SETUP_NS       (10 * NS_PER_S)
#define IDLE_NS        (NS_PER_S) /* drain ends after this long with no input */
#define MAX_EVENTS     256
#define TIMER_TAG      UINT32_MAX
#define ID_WORDS       (65536 / 64)
#define PRIME_NS       (5 * NS_PER_S) /* --resume: wait for tickets */
#define MAX_SESSIONS   1024           /* --resume: unused sessions kept */

/* Latency histogram: 32 linear sub-buckets per power of two (3% error). */
#define H_SUB_BITS 5
#define H_SUB      (1u << H_SUB_BITS)
#define H_BUCKETS  ((64 - H_SUB_BITS + 1) * H_SUB)

struct options {
	unsigned pubs;
	unsigned subs;
	unsigned qos;
	unsigned payload;
	unsigned window;
	unsigned version;
	double duration;
	double drain;
	double rate;
	const char *topic;
	const char *filter;
	const char *host;
	uint16_t port;
	int pid;
	bool ws;       /* MQTT over WebSocket */
	bool tls;      /* over TLS (mqtts://, wss://) */
	bool insecure; /* TLS: no host name check (the chain still is) */
	bool resume;   /* TLS: resume the latest session */
	const char *cafile;
	const char *path; /* WebSocket request path */
	char url_host[MAX_HOST];
	char url_path[MAX_PATH];
	unsigned conns; /* --conn: connection test with this many */
	unsigned par;   /* --conn: set-ups in flight at most */
	double idle;    /* --conn: seconds to hold them */
};

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[H_BUCKETS];
};

/* Bytes [head, tail) of p are pending. */
struct buf {
	uint8_t *p;
	size_t cap;
	size_t head;
	size_t tail;
};

/*
 * What one subscriber has seen from one publisher: `next` is one beyond the
 * highest sequence number seen, bit k of `seen` says whether sequence
 * next-1-k arrived. Older sequences cannot be told apart from duplicates and
 * are counted as late.
 */
struct track {
	uint32_t next;
	uint64_t seen;
};

/* ROLE_PRIME: with --conn --resume, the uncounted connection that gets
 * the first session to resume. */
enum role { ROLE_PUB, ROLE_SUB, ROLE_IDLE, ROLE_PRIME };

enum state {
	ST_CONNECTING,
	ST_TLS,     /* TLS handshake */
	ST_UPGRADE, /* WebSocket: waiting for the 101 */
	ST_CONNACK,
	ST_SUBACK,
	ST_READY,
	ST_DEAD
};

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

enum phase { PH_SETUP, PH_RUN, PH_DRAIN, PH_DONE };

/* How the drain ended: all delivered, nothing more arriving, or timeout. */
enum tail { TAIL_COMPLETE, TAIL_IDLE, TAIL_TIMEOUT };

static const char *const tail_names[] = {"complete", "idle", "timeout"};

struct conn {
	int fd;
	enum role role;
	enum state state;
	uint32_t idx;
	uint32_t events; /* interest currently registered with epoll */
	bool blocked;    /* input parsing paused until output drains */
	struct buf in;
	struct buf out;
	struct buf wire;   /* WebSocket: framed bytes to write (else unused) */
	struct wsc *ws;    /* WebSocket state, or NULL over TCP */
	SSL *ssl;          /* TLS, or NULL */
	uint32_t tls_want; /* epoll events OpenSSL waits for to go on */
	uint64_t t_open;   /* when connect() was called */
	char topic[MAX_TOPIC]; /* publisher: topic name; subscriber: filter */
	uint16_t topic_len;
	/* Publisher. */
	uint32_t seq;    /* next sequence number */
	uint64_t due;    /* with a rate: when message `seq` is due */
	uint32_t window; /* QoS>0 messages allowed in flight */
	uint32_t inflight;
	uint16_t next_id;
	uint64_t *wait_ack;  /* packet ids awaiting PUBACK or PUBREC */
	uint64_t *wait_comp; /* packet ids awaiting PUBCOMP */
	size_t pkt_size;     /* upper bound of one encoded PUBLISH */
	uint64_t published;
	uint64_t completed;
	uint32_t fan; /* subscribers whose filter matches the topic */
	/* Subscriber. */
	struct track *track; /* one per publisher */
};

struct stats {
	uint64_t delivered; /* first arrivals of a (publisher, sequence) */
	uint64_t in_window; /* of those, arrived while publishing */
	uint64_t duplicates;
	uint64_t reordered;
	uint64_t late;
	uint64_t foreign; /* payloads this run did not send */
	uint64_t errors;
};

/* Memory figures, -1 where unknown. */
struct memsnap {
	long long rss_kb;    /* broker VmRSS */
	long long tcp_inuse; /* /proc/net/sockstat{,6}: TCP sockets in use */
	long long tcp_mem;   /* and pages of socket buffers */
	long long slab_kb;   /* /proc/meminfo Slab (system-wide) */
};

struct load {
	struct options o;
	int ep;
	int tfd;
	struct conn *c; /* publishers first, then subscribers */
	unsigned nconn;
	enum phase phase;
	enum tail tail;
	uint64_t t_setup_end;
	uint64_t t_start;
	uint64_t t_end;
	uint64_t t_drain_end;
	uint64_t t_stop;
	uint64_t t_last_rx;
	uint64_t t_last_delivery;
	uint64_t timer_at; /* absolute time the timerfd is armed for, or 0 */
	uint64_t period;   /* ns between messages of one publisher */
	uint8_t *payload;
	struct hist lat;
	struct stats st;
	long long broker_ticks0;
	long long broker_ticks1;
	struct rusage ru0;
	struct rusage ru1;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint64_t rng; /* xorshift64* state: WebSocket keys and masks */
	/* --conn */
	struct hist setup_lat; /* connect() to CONNACK, ns */
	unsigned opened;
	unsigned ready;
	uint64_t t_first_open;
	uint64_t t_all_ready;
	struct memsnap mem0; /* before the first connection */
	struct memsnap mem1; /* at the end of the idle time */
	/* TLS */
	SSL_CTX *tls;
	/* --resume: sessions (TLS 1.3 tickets) not used yet, the newest
	 * last, and the newest of all, reused when none is left (TLS 1.2). */
	SSL_SESSION *sess[MAX_SESSIONS];
	unsigned nsess;
	SSL_SESSION *last_sess;
	bool sni;         /* the host is a name, not an address */
	bool tls_backlog; /* decrypted input waits in some SSL */
	uint64_t handshakes;
	uint64_t resumed;
	uint64_t sessions; /* sessions and tickets received */
	char tls_proto[16];
	char tls_cipher[64];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < H_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	return (e - H_SUB_BITS + 1) * H_SUB +
	       (unsigned)((v >> (e - H_SUB_BITS)) & (H_SUB - 1));
}

/* The middle of bucket i, the value reported for it. */
static uint64_t hist_value(unsigned i)
{
	unsigned e, sub;

	if (i < H_SUB)
		return i;
	e = i / H_SUB + H_SUB_BITS - 1;
	sub = i % H_SUB;
	return ((uint64_t)(H_SUB + sub) << (e - H_SUB_BITS)) +
	       ((1ull << (e - H_SUB_BITS)) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* The value below which a fraction q of the samples lie (0 when empty). */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want = (uint64_t)(q * (double)h->count + 0.999999);
	uint64_t sum = 0;
	unsigned i;

	if (want == 0)
		want = 1;
	for (i = 0; i < H_BUCKETS; i++) {
		sum += h->b[i];
		if (sum >= want) {
			uint64_t v = hist_value(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/*
 * MQTT topic matching (MQTT 4.7), used only to count the deliveries to
 * expect: '+' matches one level, '#' the rest, and wildcards at the first
 * level do not match topics that begin with '$'.
 */
static bool topic_match(const char *f, const char *t)
{
	if ((*f == '+' || *f == '#') && *t == '$')
		return false;
	for (;;) {
		if (f[0] == '#')
			return true;
		if (f[0] == '+') {
			while (*t && *t != '/')
				t++;
			f++;
		} else {
			while (*f && *f != '/' && *f == *t) {
				f++;
				t++;
			}
			if ((*f && *f != '/') || (*t && *t != '/'))
				return false;
		}
		if (!*f && !*t)
			return true;
		/* "a/#" also matches "a". */
		if (!*t && f[0] == '/' && f[1] == '#' && !f[2])
			return true;
		if (!*f || !*t)
			return false;
		f++;
		t++;
	}
}

/* Writes pattern with every "%i" replaced by index; -1 if it does not fit. */
static int expand(const char *pattern, unsigned index, char *out, size_t cap)
{
	size_t n = 0;
	const char *p;

	for (p = pattern; *p; p++) {
		int w;

		if (p[0] == '%' && p[1] == 'i') {
			w = snprintf(out + n, cap - n, "%u", index);
			p++;
		} else {
			w = snprintf(out + n, cap - n, "%c", *p);
		}
		if (w < 0 || (size_t)w >= cap - n)
			return -1;
		n += (size_t)w;
	}
	return (int)n;
}

/* xorshift64*: fast, and random enough for keys and masks. */
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

/*
 * Built-in checks of the WebSocket code (--selftest): the handshake digest
 * against RFC 6455's example, and the decoder against frames of every
 * length form, fragmented messages, control frames in between and masked
 * frames, fed in pieces of every size from 1 to 7 bytes.
 */
static int ws_selftest(void)
{
	static const uint8_t stream[] = {
	        /* 3 bytes, 1 + 2 bytes fragmented, ping, 0-byte frame */
	        0x82, 3, 'a', 'b', 'c', 0x02, 1, 'd', 0x89, 2, 'p', 'q', 0x80,
	        2, 'e', 'f', 0x82, 0,
	        /* 16-bit and 64-bit lengths, a pong, a close */
	        0x82, 126, 0, 2, 'g', 'h', 0x82, 127, 0, 0, 0, 0, 0, 0, 0, 1,
	        'i', 0x8A, 0, 0x88, 2, 0x03, 0xE8};
	static const char want[] = "abcdefghi";
	static const int events[] = {WSD_PING, WSD_PONG, WSD_CLOSE};
	uint8_t b[sizeof(stream)], masked[] = {0x82, 0x81, 1, 2, 3, 4, 'x'};
	uint8_t text[] = {0x81, 1, 'x'}, cont[] = {0x00, 1, 'x'};
	char acc[29];
	const char *why;
	struct wsd d;
	size_t step;

	ws_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
	if (strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != 0) {
		fprintf(stderr, "selftest: accept %s\n", acc);
		return -1;
	}
	for (step = 1; step <= 7; step++) {
		size_t in = 0, out = 0, fed = 0;
		unsigned ev = 0;
		int rc;

		memcpy(b, stream, sizeof(b));
		memset(&d, 0, sizeof(d));
		while (fed < sizeof(b)) {
			fed = fed + step < sizeof(b) ? fed + step : sizeof(b);
			while ((rc = wsd_decode(&d, b, fed, &in, &out, &why)) !=
			       WSD_MORE) {
				if (ev >= 3 || rc != events[ev] ||
				    (ev == 0 &&
				     (d.ctl_len != 2 ||
				      memcmp(d.ctl, "pq", 2) != 0))) {
					fprintf(stderr, "selftest: event %d\n",
					        rc);
					return -1;
				}
				ev++;
			}
		}
		if (ev != 3 || out != strlen(want) || memcmp(b, want, out) ||
		    in != sizeof(b)) {
			fprintf(stderr, "selftest: step %zu: %zu bytes\n", step,
			        out);
			return -1;
		}
	}
	{
		uint8_t *bad[] = {masked, text, cont};
		size_t len[] = {sizeof(masked), sizeof(text), sizeof(cont)};
		unsigned i;

		for (i = 0; i < 3; i++) {
			size_t in = 0, out = 0;

			memset(&d, 0, sizeof(d));
			if (wsd_decode(&d, bad[i], len[i], &in, &out, &why) !=
			    WSD_ERROR) {
				fprintf(stderr, "selftest: bad frame %u\n", i);
				return -1;
			}
		}
	}
	{
		/* A masked frame unmasks back to its payload. */
		uint8_t src[300], wire[320];
		struct buf w = {wire, sizeof(wire), 0, 0};
		uint64_t rng = 42;
		size_t i;

		for (i = 0; i < sizeof(src); i++)
			src[i] = (uint8_t)i;
		ws_frame(&rng, &w, WS_OP_BINARY, src, sizeof(src));
		if (w.tail != 4 + 4 + sizeof(src) || wire[0] != 0x82 ||
		    wire[1] != (0x80 | 126) || wire[2] != 1 || wire[3] != 44) {
			fprintf(stderr, "selftest: frame header\n");
			return -1;
		}
		for (i = 0; i < sizeof(src); i++)
			if ((wire[8 + i] ^ wire[4 + (i & 3)]) != src[i]) {
				fprintf(stderr, "selftest: mask at %zu\n", i);
				return -1;
			}
	}
	printf("mqtt_load: selftest passed\n");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: mqtt_load [options]\n"
	        "  -P N        publishers (default 1)\n"
	        "  -S N        subscribers (default 1)\n"
	        "  -t PATTERN  publisher topic; %%i is the publisher index "
	        "(default bench/%%i)\n"
	        "  -f PATTERN  subscriber filter; %%i is the subscriber index\n"
	        "              (default: the topic pattern)\n"
	        "  -q QOS      0, 1 or 2 for publishes and subscriptions "
	        "(default 0)\n"
	        "  -s BYTES    payload size, at least %d (default 64)\n"
	        "  -d SECONDS  publishing time (default 5)\n"
	        "  -r RATE     messages/s per publisher; 0 = as fast as "
	        "possible (default 0)\n"
	        "  -w N        QoS>0 messages in flight per publisher "
	        "(default 32)\n"
	        "  -V 4|5      MQTT 3.1.1 or 5 (default 4)\n"
	        "  -h HOST     127.0.0.1, ::1 or localhost (default "
	        "127.0.0.1)\n"
	        "  -p PORT     broker port (default 1883)\n"
	        "  -L URL      mqtt://HOST:PORT, ws://HOST:PORT/PATH, "
	        "mqtts://HOST:PORT or\n"
	        "              wss://HOST:PORT/PATH instead of -h, -p\n"
	        "  --ws        MQTT over WebSocket (path /mqtt unless -L "
	        "says)\n"
	        "  --cafile F  TLS: CA certificates (PEM) to verify the broker "
	        "with\n"
	        "              (default: the system's)\n"
	        "  --insecure  TLS: skip the host name check (the chain is "
	        "still verified)\n"
	        "  --resume    TLS: resume sessions the broker sent, each "
	        "ticket once\n"
	        "  --drain S   seconds to wait for the tail (default 5)\n"
	        "  --pid PID   broker process whose CPU time (and with --conn, "
	        "memory)\n"
	        "              to report\n"
	        "  --conn N    connection test: open N connections (CONNECT "
	        "only), at -r\n"
	        "              connections/s or as fast as possible, then "
	        "hold them\n"
	        "  --idle S    with --conn: seconds to hold them idle "
	        "(default 0)\n"
	        "  --par N     with --conn: set-ups in flight at most "
	        "(default 100)\n"
	        "  --selftest  check the WebSocket code and exit\n"
	        "  --help      this help\n",
	        PAYLOAD_MIN);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return (errno || end == s || *end || *out < 0) ? -1 : 0;
}

/* Resolves host to a loopback address; anything else is refused. */
static int parse_host(struct load *L)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&L->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&L->addr;
	const char *h = L->o.host;

	memset(&L->addr, 0, sizeof(L->addr));
	if (strcmp(h, "localhost") == 0)
		h = "127.0.0.1";
	if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
		if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
			return -1;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(L->o.port);
		L->addrlen = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
			return -1;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(L->o.port);
		L->addrlen = sizeof(*a6);
		return 0;
	}
	return -1;
}

/*
 * -L mqtt://HOST[:PORT], ws://HOST[:PORT][/PATH], mqtts://HOST[:PORT] or
 * wss://HOST[:PORT][/PATH]; HOST may be [::1].
 */
static int parse_url(struct options *o, const char *url)
{
	static const struct {
		const char *scheme;
		bool ws, tls;
		uint16_t port;
	} schemes[] = {
	        {"mqtt://", false, false, 1883},
	        {"ws://", true, false, 80},
	        {"mqtts://", false, true, 8883},
	        {"wss://", true, true, 443},
	};
	const char *h = NULL, *end, *p;
	unsigned long port;
	size_t hl, i;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t n = strlen(schemes[i].scheme);

		if (strncmp(url, schemes[i].scheme, n) == 0) {
			o->ws = schemes[i].ws;
			o->tls = schemes[i].tls;
			o->port = schemes[i].port;
			h = url + n;
			break;
		}
	}
	if (!h)
		return -1;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			return -1;
		hl = (size_t)(end - h - 1);
		h++;
		p = end + 1;
	} else {
		hl = strcspn(h, ":/");
		p = h + hl;
	}
	if (hl == 0 || hl >= sizeof(o->url_host))
		return -1;
	memcpy(o->url_host, h, hl);
	o->url_host[hl] = '\0';
	o->host = o->url_host;
	if (*p == ':') {
		char num[8];
		size_t n = strcspn(p + 1, "/");

		if (n == 0 || n >= sizeof(num))
			return -1;
		memcpy(num, p + 1, n);
		num[n] = '\0';
		if (parse_uint(num, 65535, &port) || port == 0)
			return -1;
		o->port = (uint16_t)port;
		p += 1 + n;
	}
	if (*p && *p != '/')
		return -1;
	if (!o->ws)
		return *p && strcmp(p, "/") != 0 ? -1 : 0;
	if (strlen(p) >= sizeof(o->url_path) || strpbrk(p, " \r\n"))
		return -1;
	snprintf(o->url_path, sizeof(o->url_path), "%s", *p ? p : "/");
	o->path = o->url_path;
	return 0;
}

static int parse_opt(struct options *o, int ch, const char *arg)
{
	unsigned long v;

	switch (ch) {
	case 'P':
	case 'S':
		if (parse_uint(arg, MAX_CONNS, &v))
			return -1;
		*(ch == 'P' ? &o->pubs : &o->subs) = (unsigned)v;
		return 0;
	case 'q':
		if (parse_uint(arg, 2, &v))
			return -1;
		o->qos = (unsigned)v;
		return 0;
	case 's':
		if (parse_uint(arg, 16 * 1024 * 1024, &v) || v < PAYLOAD_MIN)
			return -1;
		o->payload = (unsigned)v;
		return 0;
	case 'w':
		if (parse_uint(arg, 65000, &v) || v == 0)
			return -1;
		o->window = (unsigned)v;
		return 0;
	case 'V':
		if (parse_uint(arg, 5, &v) || v < 4)
			return -1;
		o->version = (unsigned)v;
		return 0;
	case 'p':
		if (parse_uint(arg, 65535, &v) || v == 0)
			return -1;
		o->port = (uint16_t)v;
		return 0;
	case 'X':
		if (parse_uint(arg, 1u << 30, &v) || v == 0)
			return -1;
		o->pid = (int)v;
		return 0;
	case 'C':
		if (parse_uint(arg, MAX_IDLE, &v) || v == 0)
			return -1;
		o->conns = (unsigned)v;
		return 0;
	case 'A':
		if (parse_uint(arg, MAX_IDLE, &v) || v == 0)
			return -1;
		o->par = (unsigned)v;
		return 0;
	case 'I':
		return parse_double(arg, &o->idle) || o->idle > MAX_IDLE_S ? -1
		                                                           : 0;
	case 'L': return parse_url(o, arg);
	case 'W': o->ws = true; return 0;
	case 'K': o->cafile = arg; return 0;
	case 'N': o->insecure = true; return 0;
	case 'R': o->resume = true; return 0;
	case 'd': return parse_double(arg, &o->duration);
	case 'D': return parse_double(arg, &o->drain);
	case 'r': return parse_double(arg, &o->rate);
	case 't': o->topic = arg; return 0;
	case 'f': o->filter = arg; return 0;
	case 'h': o->host = arg; return 0;
	}
	return -1;
}

/* Returns 0 to run, 1 after --help, -1 on a usage error. */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	        {"drain", required_argument, NULL, 'D'},
	        {"pid", required_argument, NULL, 'X'},
	        {"ws", no_argument, NULL, 'W'},
	        {"conn", required_argument, NULL, 'C'},
	        {"idle", required_argument, NULL, 'I'},
	        {"par", required_argument, NULL, 'A'},
	        {"cafile", required_argument, NULL, 'K'},
	        {"insecure", no_argument, NULL, 'N'},
	        {"resume", no_argument, NULL, 'R'},
	        {"selftest", no_argument, NULL, 'T'},
	        {"help", no_argument, NULL, 'H'},
	        {NULL, 0, NULL, 0},
	};
	int ch;

	*o = (struct options){
	        .pubs = 1,
	        .subs = 1,
	        .payload = 64,
	        .window = 32,
	        .version = MQTT_V311,
	        .duration = 5,
	        .drain = 5,
	        .topic = "bench/%i",
	        .host = "127.0.0.1",
	        .port = 1883,
	        .path = "/mqtt",
	        .par = 100,
	};
	while ((ch = getopt_long(argc, argv, "P:S:t:f:q:s:d:r:w:V:h:p:L:",
	                         longopts, NULL)) != -1) {
		if (ch == 'H') {
			usage(stdout);
			return 1;
		}
		if (ch == 'T')
			return ws_selftest() == 0 ? 1 : -1;
		if (ch == '?' || parse_opt(o, ch, optarg) != 0) {
			if (ch != '?')
				fprintf(stderr, "mqtt_load: bad value '%s'\n",
				        optarg);
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || o->pubs + o->subs == 0 || o->duration <= 0 ||
	    o->duration > 3600 || o->drain > 3600 ||
	    (uint64_t)o->pubs * o->subs > MAX_PAIRS ||
	    o->pubs + o->subs > MAX_CONNS) {
		fprintf(stderr, "mqtt_load: bad arguments\n");
		usage(stderr);
		return -1;
	}
	if (!o->filter)
		o->filter = o->topic;
	if (o->idle > 0 && !o->conns) {
		fprintf(stderr, "mqtt_load: --idle needs --conn\n");
		return -1;
	}
	if ((o->cafile || o->insecure || o->resume) && !o->tls) {
		fprintf(stderr, "mqtt_load: --cafile, --insecure and --resume "
		                "need mqtts:// or wss://\n");
		return -1;
	}
	return 0;
}

static size_t buf_len(const struct buf *b)
{
	return b->tail - b->head;
}

/* Contiguous free space at the tail after moving pending bytes forward. */
static size_t buf_room(struct buf *b)
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
static size_t conn_pending(const struct conn *c)
{
	return buf_len(&c->out) + buf_len(&c->wire);
}

static void conn_fail(struct load *L, struct conn *c, const char *why)
{
	if (c->state == ST_DEAD)
		return;
	/* Thousands of connections may fail alike: the first few say it. */
	if (L->st.errors == MAX_ERR_LOG)
		fprintf(stderr, "mqtt_load: more connections failed\n");
	if (L->st.errors < MAX_ERR_LOG)
		fprintf(stderr, "mqtt_load: %s %u: %s\n",
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

/* Encodes p into c's output buffer; fails the connection if it cannot. */
static int conn_send(struct load *L, struct conn *c,
                     const struct mqtt_packet *p)
{
	int n = mqtt_encode(p, (uint8_t)L->o.version, c->out.p + c->out.tail,
	                    buf_room(&c->out));

	if (n < 0) {
		conn_fail(L, c, tern_strerror(n));
		return -1;
	}
	c->out.tail += (size_t)n;
	return 0;
}

static int send_ack(struct load *L, struct conn *c, uint8_t type, uint16_t id)
{
	struct mqtt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.u.ack.packet_id = id;
	return conn_send(L, c, &p);
}

static bool id_get(const uint64_t *m, uint16_t id)
{
	return m[id >> 6] >> (id & 63) & 1;
}

static void id_put(uint64_t *m, uint16_t id, bool on)
{
	if (on)
		m[id >> 6] |= 1ull << (id & 63);
	else
		m[id >> 6] &= ~(1ull << (id & 63));
}

/* A packet id used by no message in flight; one exists as window < 65535. */
static uint16_t id_alloc(struct conn *c)
{
	for (;;) {
		uint16_t id = c->next_id;

		c->next_id = (uint16_t)(id == 65535 ? 1 : id + 1);
		if (!id_get(c->wait_ack, id) && !id_get(c->wait_comp, id))
			return id;
	}
}

static bool pub_can_send(const struct load *L, struct conn *c)
{
	if (c->state != ST_READY)
		return false;
	if (L->o.qos > 0 && c->inflight >= c->window)
		return false;
	/* Over WebSocket, framed bytes count against the same budget. */
	if (c->ws && conn_pending(c) + c->pkt_size + ACK_ROOM > c->out.cap)
		return false;
	return buf_room(&c->out) >= c->pkt_size + ACK_ROOM;
}

/* Appends one PUBLISH stamped with `stamp` to c's output. */
static void pub_send(struct load *L, struct conn *c, uint64_t stamp)
{
	struct mqtt_publish p;
	uint8_t *dst = c->out.p + c->out.tail;
	int n;

	memset(&p, 0, sizeof(p));
	p.qos = (uint8_t)L->o.qos;
	p.topic.p = (const uint8_t *)c->topic;
	p.topic.len = c->topic_len;
	p.payload = L->payload;
	p.payload_len = L->o.payload;
	if (p.qos)
		p.packet_id = id_alloc(c);
	n = mqtt_encode_publish_head(&p, (uint8_t)L->o.version, dst,
	                             c->out.cap - c->out.tail);
	if (n < 0) {
		conn_fail(L, c, tern_strerror(n));
		return;
	}
	memcpy(dst + n, L->payload, L->o.payload);
	memcpy(dst + n, &stamp, 8);
	memcpy(dst + n + 8, &c->idx, 4);
	memcpy(dst + n + 12, &c->seq, 4);
	c->out.tail += (size_t)n + L->o.payload;
	c->seq++;
	c->published++;
	if (p.qos) {
		id_put(c->wait_ack, p.packet_id, true);
		c->inflight++;
	}
}

/*
 * Sends what publisher c may send now. Without a rate that is as much as
 * the window and the output buffer allow, stamped with the current time.
 * With a rate, messages are stamped with the time they were due, so time
 * spent waiting for the window or the socket counts as latency.
 */
static void pub_fill(struct load *L, struct conn *c, uint64_t now)
{
	while (pub_can_send(L, c)) {
		uint64_t stamp;

		if (L->o.rate > 0) {
			if (c->due > now || c->due >= L->t_end)
				return;
			stamp = c->due;
			c->due += L->period;
		} else {
			stamp = now_ns();
			if (stamp >= L->t_end)
				return;
		}
		pub_send(L, c, stamp);
	}
}

/* Records one PUBLISH that reached subscriber c at time now. */
static void sub_deliver(struct load *L, struct conn *c,
                        const struct mqtt_publish *p, uint64_t now)
{
	uint64_t stamp;
	uint32_t pub, seq;
	struct track *t;

	if (p->payload_len < PAYLOAD_MIN) {
		L->st.foreign++;
		return;
	}
	memcpy(&stamp, p->payload, 8);
	memcpy(&pub, p->payload + 8, 4);
	memcpy(&seq, p->payload + 12, 4);
	if (pub >= L->o.pubs || stamp > now || stamp < L->t_start) {
		L->st.foreign++;
		return;
	}
	t = &c->track[pub];
	if (seq >= t->next) {
		uint32_t shift = seq - t->next + 1;

		t->seen = shift >= 64 ? 1 : t->seen << shift | 1;
		t->next = seq + 1;
	} else if (t->next - 1 - seq >= 64) {
		L->st.late++;
	} else if (t->seen >> (t->next - 1 - seq) & 1) {
		L->st.duplicates++;
		return;
	} else {
		t->seen |= 1ull << (t->next - 1 - seq);
		L->st.reordered++;
	}
	L->st.delivered++;
	L->st.in_window += now < L->t_end;
	L->t_last_delivery = now;
	hist_add(&L->lat, now - stamp);
}

static void on_connack(struct load *L, struct conn *c,
                       const struct mqtt_connack *ca)
{
	struct mqtt_packet p;
	struct mqtt_sub_entry e;
	char why[64];

	if (c->state != ST_CONNACK) {
		conn_fail(L, c, "unexpected CONNACK");
		return;
	}
	if (ca->reason != 0) {
		snprintf(why, sizeof(why), "CONNACK refused: 0x%02x",
		         ca->reason);
		conn_fail(L, c, why);
		return;
	}
	if (ca->props.present & MQTT_PBIT(MQTT_PROP_RECEIVE_MAXIMUM) &&
	    ca->props.receive_maximum < c->window)
		c->window = ca->props.receive_maximum;
	if (c->role == ROLE_PRIME) {
		c->state = ST_READY;
		return;
	}
	if (c->role == ROLE_IDLE) {
		uint64_t now = now_ns();

		hist_add(&L->setup_lat, now - c->t_open);
		L->ready++;
		L->t_all_ready = now;
		c->state = ST_READY;
		return;
	}
	if (c->role == ROLE_PUB) {
		c->state = ST_READY;
		return;
	}
	memset(&p, 0, sizeof(p));
	memset(&e, 0, sizeof(e));
	e.filter.p = (const uint8_t *)c->topic;
	e.filter.len = c->topic_len;
	e.qos = (uint8_t)L->o.qos;
	p.type = MQTT_SUBSCRIBE;
	p.u.subscribe.packet_id = 1;
	p.u.subscribe.list = &e;
	p.u.subscribe.count = 1;
	if (conn_send(L, c, &p) == 0)
		c->state = ST_SUBACK;
}

static void on_suback(struct load *L, struct conn *c,
                      const struct mqtt_suback *s)
{
	if (c->state != ST_SUBACK || s->count != 1 || s->codes[0] >= 0x80) {
		conn_fail(L, c, "subscription refused");
		return;
	}
	c->state = ST_READY;
}

/* PUBACK, PUBREC and PUBCOMP of our own publishes. */
static void on_pub_ack(struct load *L, struct conn *c, uint8_t type,
                       uint16_t id)
{
	bool want_rec = L->o.qos == 2;

	if (type == MQTT_PUBCOMP) {
		if (L->o.qos != 2 || !id_get(c->wait_comp, id))
			goto bad;
		id_put(c->wait_comp, id, false);
	} else {
		if (want_rec != (type == MQTT_PUBREC) ||
		    !id_get(c->wait_ack, id))
			goto bad;
		id_put(c->wait_ack, id, false);
		if (type == MQTT_PUBREC) {
			id_put(c->wait_comp, id, true);
			send_ack(L, c, MQTT_PUBREL, id);
			return;
		}
	}
	c->inflight--;
	c->completed++;
	return;
bad:
	conn_fail(L, c, "acknowledgement for a packet id not in flight");
}

static void on_packet(struct load *L, struct conn *c,
                      const struct mqtt_packet *p, uint64_t now)
{
	switch (p->type) {
	case MQTT_CONNACK: on_connack(L, c, &p->u.connack); return;
	case MQTT_SUBACK: on_suback(L, c, &p->u.suback); return;
	case MQTT_PINGRESP: return;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		if (c->role == ROLE_PUB) {
			on_pub_ack(L, c, p->type, p->u.ack.packet_id);
			return;
		}
		break;
	case MQTT_PUBREL:
		if (c->role == ROLE_SUB) {
			send_ack(L, c, MQTT_PUBCOMP, p->u.ack.packet_id);
			return;
		}
		break;
	case MQTT_PUBLISH:
		if (c->role == ROLE_SUB && c->state == ST_READY) {
			sub_deliver(L, c, &p->u.publish, now);
			if (p->u.publish.qos)
				send_ack(L, c,
				         p->u.publish.qos == 1 ? MQTT_PUBACK
				                               : MQTT_PUBREC,
				         p->u.publish.packet_id);
			return;
		}
		break;
	case MQTT_DISCONNECT:
		conn_fail(L, c, "DISCONNECT from the broker");
		return;
	}
	conn_fail(L, c, "unexpected packet");
}

/* Handles every complete packet in c's input while output has room. */
static void conn_parse(struct load *L, struct conn *c, uint64_t now)
{
	while (c->state != ST_DEAD && buf_len(&c->in) > 0) {
		const uint8_t *b;
		struct mqtt_fixed fh;
		struct mqtt_packet p;
		struct mqtt_error err;
		int n;

		if (buf_room(&c->out) < ACK_ROOM) {
			c->blocked = true;
			return;
		}
		b = c->in.p + c->in.head;
		n = mqtt_fixed_header(b, buf_len(&c->in), &fh);
		if (n == TERN_EAGAIN)
			break;
		if (n < 0 || n + (size_t)fh.remaining > c->in.cap) {
			conn_fail(L, c, "bad or oversized packet");
			return;
		}
		if (buf_len(&c->in) < n + (size_t)fh.remaining)
			break;
		if (mqtt_decode(&fh, b + n, fh.remaining, (uint8_t)L->o.version,
		                &p, &err) != 0) {
			conn_fail(L, c, err.what);
			return;
		}
		on_packet(L, c, &p, now);
		c->in.head += (size_t)n + fh.remaining;
	}
	c->blocked = false;
	buf_room(&c->in);
}

/* Queues CONNECT: the first packet of every connection. */
static void send_connect(struct load *L, struct conn *c)
{
	struct mqtt_packet p;
	char id[64];
	double life = L->o.duration + L->o.drain + SETUP_NS / NS_PER_S + 60;

	if (c->role == ROLE_IDLE || c->role == ROLE_PRIME)
		life = IDLE_KEEPALIVE;
	snprintf(id, sizeof(id), "mqtt_load-%d-%c%u", (int)getpid(),
	         "pscr"[c->role], c -> idx);
	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	p.u.connect.version = (uint8_t)L->o.version;
	p.u.connect.clean = true;
	p.u.connect.keepalive = (uint16_t)(life > 65535 ? 65535 : life);
	p.u.connect.client_id.p = (const uint8_t *)id;
	p.u.connect.client_id.len = (uint16_t)strlen(id);
	if (conn_send(L, c, &p) == 0)
		c->state = ST_CONNACK;
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
		send_connect(L, c);
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
static int tls_init(struct load *L)
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
		fprintf(stderr, "mqtt_load: TLS: %s\n", tls_reason());
		return -1;
	}
	/* Thousands of idle connections: no buffers while idle. */
	if (L->o.conns)
		mode |= SSL_MODE_RELEASE_BUFFERS;
	SSL_CTX_set_mode(L->tls, mode);
	/* EOF without close_notify reads as a close, like over TCP. */
	SSL_CTX_set_options(L->tls, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_verify(L->tls, SSL_VERIFY_PEER, NULL);
	if ((L->o.cafile
	             ? SSL_CTX_load_verify_locations(L->tls, L->o.cafile, NULL)
	             : SSL_CTX_set_default_verify_paths(L->tls)) != 1) {
		fprintf(stderr,
		        "mqtt_load: cannot load CA certificates %s: %s\n",
		        L->o.cafile ? L->o.cafile : "(system)", tls_reason());
		return -1;
	}
	vp = SSL_CTX_get0_param(L->tls);
	X509_VERIFY_PARAM_set_hostflags(vp,
	                                X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (!L->o.insecure &&
	    (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, h)
	        : X509_VERIFY_PARAM_set1_host(vp, h, 0)) != 1) {
		fprintf(stderr, "mqtt_load: TLS: bad host %s\n", h);
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
		send_connect(L, c);
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
	conn_parse(L, c, L->t_last_rx);
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

static void conn_write(struct load *L, struct conn *c)
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
static void conn_interest(struct load *L, struct conn *c)
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

static void conn_event(struct load *L, struct conn *c, uint32_t events)
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

static int conn_open(struct load *L, struct conn *c)
{
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(L->addr.ss_family,
	               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
static int conn_init(struct load *L, struct conn *c, enum role role,
                     unsigned idx)
{
	const char *pattern = role == ROLE_PUB ? L->o.topic : L->o.filter;
	int n = expand(pattern, idx, c->topic, sizeof(c->topic));
	size_t topic_max = 0;

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
		c->track =
		        calloc(L->o.pubs ? L->o.pubs : 1, sizeof(struct track));
		if (!c->track)
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

static void conn_free(struct conn *c)
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

/* Broker CPU time in clock ticks, or -1 when unknown. */
static long long proc_ticks(int pid)
{
	char path[64], line[1024];
	unsigned long long ut, st;
	const char *p;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	/* The command name may hold spaces and parentheses. */
	p = strrchr(line, ')');
	if (!p || sscanf(p + 2,
	                 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	                 "%llu %llu",
	                 &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static uint64_t expected_deliveries(const struct load *L)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < L->o.pubs; i++)
		n += L->c[i].published * L->c[i].fan;
	return n;
}

static void start_run(struct load *L, uint64_t now)
{
	unsigned i;

	L->phase = PH_RUN;
	L->t_start = now;
	L->t_end = now + (uint64_t)(L->o.duration * NS_PER_S);
	L->t_last_rx = now;
	L->broker_ticks0 = proc_ticks(L->o.pid);
	getrusage(RUSAGE_SELF, &L->ru0);
	/* Publishers start spread over one period, not all at once. */
	for (i = 0; i < L->o.pubs; i++)
		L->c[i].due = now + L->period * i / L->o.pubs;
}

static void stop_run(struct load *L, uint64_t now)
{
	L->phase = PH_DONE;
	L->t_stop = now;
	L->broker_ticks1 = proc_ticks(L->o.pid);
	getrusage(RUSAGE_SELF, &L->ru1);
}

/*
 * Whether the run is over: everything sent, acked and delivered, or
 * everything sent and acked and nothing arrived for a while (the rest is
 * lost), or the drain timeout passed.
 */
static bool drained(struct load *L, uint64_t now)
{
	unsigned i;

	L->tail = TAIL_TIMEOUT;
	if (now >= L->t_drain_end)
		return true;
	for (i = 0; i < L->o.pubs; i++)
		if (L->c[i].state != ST_DEAD &&
		    (conn_pending(&L->c[i]) > 0 || L->c[i].inflight > 0))
			return false;
	L->tail = TAIL_COMPLETE;
	if (L->st.delivered >= expected_deliveries(L))
		return true;
	L->tail = TAIL_IDLE;
	return now - L->t_last_rx >= IDLE_NS;
}

/* Moves from one phase to the next; returns -1 when setup fails. */
static int advance(struct load *L, uint64_t now)
{
	unsigned i, ready = 0, dead = 0;

	for (i = 0; i < L->nconn; i++) {
		ready += L->c[i].state == ST_READY;
		dead += L->c[i].state == ST_DEAD;
	}
	if (dead == L->nconn) {
		fprintf(stderr, "mqtt_load: every connection is gone\n");
		if (L->phase == PH_SETUP)
			return -1;
		stop_run(L, now);
		return 0;
	}
	switch (L->phase) {
	case PH_SETUP:
		if (dead > 0 || now > L->t_setup_end) {
			fprintf(stderr,
			        "mqtt_load: setup failed (%u of %u "
			        "connections ready)\n",
			        ready, L->nconn);
			return -1;
		}
		if (ready == L->nconn)
			start_run(L, now);
		break;
	case PH_RUN:
		if (now >= L->t_end) {
			L->phase = PH_DRAIN;
			L->t_drain_end =
			        L->t_end + (uint64_t)(L->o.drain * NS_PER_S);
		}
		break;
	case PH_DRAIN:
		if (drained(L, now))
			stop_run(L, now);
		break;
	case PH_DONE: break;
	}
	return 0;
}

/* Arms the timerfd for the earliest publisher that waits only for time. */
static void arm_timer(struct load *L)
{
	struct itimerspec its;
	uint64_t at = 0;
	unsigned i;

	for (i = 0; L->phase == PH_RUN && L->o.rate > 0 && i < L->o.pubs; i++) {
		struct conn *c = &L->c[i];

		if (c->due < L->t_end && pub_can_send(L, c) &&
		    (at == 0 || c->due < at))
			at = c->due;
	}
	if (at == L->timer_at)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(at / NS_PER_S);
	its.it_value.tv_nsec = (long)(at % NS_PER_S);
	timerfd_settime(L->tfd, TFD_TIMER_ABSTIME, &its, NULL);
	L->timer_at = at;
}

/*
 * Over TLS, input already decrypted that did not fit in c's input buffer
 * waits in the SSL, where epoll does not see it: reads it once the buffer
 * has room, and has the loop come back at once if some is left.
 */
static void tls_pending(struct load *L, struct conn *c)
{
	if (c->blocked || c->state == ST_DEAD || SSL_pending(c->ssl) <= 0)
		return;
	conn_read(L, c);
	if (c->state != ST_DEAD)
		conn_write(L, c);
	if (c->ssl && !c->blocked && SSL_pending(c->ssl) > 0)
		L->tls_backlog = true;
}

/* How long epoll_wait may sleep, in ms. */
static int poll_timeout(struct load *L)
{
	unsigned i;

	if (L->tls_backlog)
		return 0;
	switch (L->phase) {
	case PH_SETUP: return 10;
	case PH_DRAIN: return 10;
	case PH_DONE: return 0;
	case PH_RUN: break;
	}
	if (L->o.rate > 0)
		return 10;
	for (i = 0; i < L->o.pubs; i++)
		if (pub_can_send(L, &L->c[i]))
			return 0;
	return 10;
}

static int loop(struct load *L)
{
	struct epoll_event ev[MAX_EVENTS];
	unsigned i;

	while (L->phase != PH_DONE) {
		int n = epoll_wait(L->ep, ev, MAX_EVENTS, poll_timeout(L));
		uint64_t now;

		if (n < 0 && errno != EINTR)
			return -1;
		for (i = 0; n > 0 && i < (unsigned)n; i++) {
			uint64_t ticks;

			if (ev[i].data.u32 == TIMER_TAG) {
				/* Expired or not, it is no longer armed. */
				if (read(L->tfd, &ticks, sizeof(ticks)) < 0 &&
				    errno != EAGAIN)
					return -1;
				L->timer_at = 0;
				continue;
			}
			conn_event(L, &L->c[ev[i].data.u32], ev[i].events);
		}
		now = now_ns();
		for (i = 0; L->phase == PH_RUN && i < L->o.pubs; i++)
			pub_fill(L, &L->c[i], now);
		/* One batched write per connection per loop turn. */
		L->tls_backlog = false;
		for (i = 0; i < L->nconn; i++) {
			struct conn *c = &L->c[i];

			if (c->state == ST_DEAD)
				continue;
			conn_write(L, c);
			if (c->blocked && buf_room(&c->out) >= ACK_ROOM) {
				conn_parse(L, c, now_ns());
				conn_write(L, c);
			}
			if (c->ssl)
				tls_pending(L, c);
			conn_interest(L, c);
		}
		arm_timer(L);
		if (advance(L, now_ns()) != 0)
			return -1;
	}
	return 0;
}

static void disconnect_all(struct load *L)
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
		if (conn_send(L, c, &p) != 0)
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

static double tv_us(const struct timeval *a, const struct timeval *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e6 +
	       (double)(b->tv_usec - a->tv_usec);
}

/* The transport: as the JSON line names it, and in words. */
static const char *transport(const struct options *o)
{
	return o->tls ? (o->ws ? "wss" : "tls") : (o->ws ? "ws" : "tcp");
}

static const char *transport_words(const struct options *o)
{
	return o->tls ? (o->ws ? "WebSocket over TLS" : "TLS")
	              : (o->ws ? "WebSocket" : "TCP");
}

/* TLS figures: a summary line and JSON fields (both empty without TLS). */
static void tls_report(const struct load *L, char *json, size_t cap)
{
	json[0] = '\0';
	if (!L->o.tls)
		return;
	printf("  TLS %s %s, %" PRIu64 " handshakes, %" PRIu64
	       " resumed; %s%s\n",
	       L->tls_proto[0] ? L->tls_proto : "-",
	       L->tls_cipher[0] ? L->tls_cipher : "-", L->handshakes,
	       L->resumed, L->o.resume ? "resumption on" : "resumption off",
	       L->o.insecure ? ", no host name check" : "");
	snprintf(json, cap,
	         ",\"tls_version\":\"%s\",\"tls_cipher\":\"%s\","
	         "\"tls_resume\":%s,\"tls_handshakes\":%" PRIu64
	         ",\"tls_resumed\":%" PRIu64 ",\"tls_sessions\":%" PRIu64,
	         L->tls_proto, L->tls_cipher, L->o.resume ? "true" : "false",
	         L->handshakes, L->resumed, L->sessions);
}

static void report(const struct load *L)
{
	const struct options *o = &L->o;
	uint64_t published = 0, completed = 0, expected;
	uint64_t end = L->t_last_delivery > L->t_start ? L->t_last_delivery
	                                               : L->t_stop;
	double elapsed = (double)(end - L->t_start) / NS_PER_S;
	double sent_s = o->duration;
	double rate, total_rate, lost, bcpu = -1, ccpu, lat[5];
	static const double q[5] = {0.5, 0.9, 0.99, 0.999, 1.0};
	char tls[256];
	unsigned i;

	for (i = 0; i < o->pubs; i++) {
		published += L->c[i].published;
		completed += L->c[i].completed;
	}
	expected = expected_deliveries(L);
	lost = expected > L->st.delivered ? (double)(expected - L->st.delivered)
	                                  : 0;
	rate = (double)L->st.in_window / o->duration;
	total_rate = elapsed > 0 ? (double)L->st.delivered / elapsed : 0;
	ccpu = tv_us(&L->ru0.ru_utime, &L->ru1.ru_utime) +
	       tv_us(&L->ru0.ru_stime, &L->ru1.ru_stime);
	ccpu = L->st.delivered ? ccpu / (double)L->st.delivered : 0;
	if (L->broker_ticks0 >= 0 && L->broker_ticks1 >= 0 && L->st.delivered)
		bcpu = (double)(L->broker_ticks1 - L->broker_ticks0) * 1e6 /
		       (double)sysconf(_SC_CLK_TCK) / (double)L->st.delivered;
	for (i = 0; i < 5; i++)
		lat[i] = (double)(i == 4 ? L->lat.max
		                         : hist_quantile(&L->lat, q[i])) /
		         1e3;

	printf("mqtt_load: MQTT %s over %s, QoS %u, %u pub -> %u sub, %u B "
	       "payload, %.1f s, rate %s\n",
	       o->version == MQTT_V5 ? "5" : "3.1.1", transport_words(o),
	       o->qos, o->pubs, o->subs, o->payload, o->duration,
	       o->rate > 0 ? "limited" : "max");
	printf("  published   %" PRIu64 " (%.0f/s), %" PRIu64 " acked\n",
	       published, (double)published / sent_s, completed);
	printf("  delivered   %" PRIu64 " of %" PRIu64 " expected; %.0f/s "
	       "while publishing, %.0f/s over %.2f s; tail %s\n",
	       L->st.delivered, expected, rate, total_rate, elapsed,
	       tail_names[L->tail]);
	printf("  lost %.0f  duplicates %" PRIu64 "  reordered %" PRIu64
	       "  late %" PRIu64 "  foreign %" PRIu64 "  errors %" PRIu64 "\n",
	       lost, L->st.duplicates, L->st.reordered, L->st.late,
	       L->st.foreign, L->st.errors);
	printf("  latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  "
	       "max %.1f\n",
	       lat[0], lat[1], lat[2], lat[3], lat[4]);
	printf("  CPU us/msg  broker %.3f  mqtt_load %.3f\n", bcpu, ccpu);
	tls_report(L, tls, sizeof(tls));
	printf("{\"transport\":\"%s\",\"version\":%u,\"qos\":%u,"
	       "\"publishers\":%u,"
	       "\"subscribers\":%u,\"payload\":%u,\"duration_s\":%.3f,"
	       "\"rate\":%.1f,\"published\":%" PRIu64 ",\"acked\":%" PRIu64
	       ",\"expected\":%" PRIu64 ",\"delivered\":%" PRIu64
	       ",\"lost\":%.0f,\"duplicates\":%" PRIu64
	       ",\"reordered\":%" PRIu64 ",\"late\":%" PRIu64
	       ",\"errors\":%" PRIu64 ",\"tail\":\"%s\",\"elapsed_s\":%.3f,"
	       "\"delivered_per_s\":%.1f,\"delivered_per_s_total\":%.1f,"
	       "\"lat_p50_us\":%.1f,"
	       "\"lat_p90_us\":%.1f,\"lat_p99_us\":%.1f,"
	       "\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f,"
	       "\"broker_cpu_us_per_msg\":%.3f,"
	       "\"client_cpu_us_per_msg\":%.3f%s}\n",
	       transport(o), o->version, o->qos, o->pubs, o->subs, o->payload,
	       o->duration, o->rate, published, completed, expected,
	       L->st.delivered, lost, L->st.duplicates, L->st.reordered,
	       L->st.late, L->st.errors, tail_names[L->tail], elapsed, rate,
	       total_rate, lat[0], lat[1], lat[2], lat[3], lat[4], bcpu, ccpu,
	       tls);
}

/* The number after `key` in file `path` (in the line starting with
 * `line`, if given), or -1. */
static long long proc_field(const char *path, const char *line, const char *key)
{
	char buf[512];
	long long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f)) {
		const char *p;

		if (line && strncmp(buf, line, strlen(line)) != 0)
			continue;
		p = strstr(buf, key);
		if (p && sscanf(p + strlen(key), "%lld", &v) == 1)
			break;
	}
	fclose(f);
	return v;
}

static void mem_snap(const struct load *L, struct memsnap *m)
{
	char path[64];
	long long v6;

	snprintf(path, sizeof(path), "/proc/%d/status", L->o.pid);
	m->rss_kb = L->o.pid > 0 ? proc_field(path, NULL, "VmRSS:") : -1;
	m->tcp_inuse = proc_field("/proc/net/sockstat", "TCP:", " inuse ");
	v6 = proc_field("/proc/net/sockstat6", "TCP6:", " inuse ");
	if (m->tcp_inuse >= 0 && v6 > 0)
		m->tcp_inuse += v6;
	m->tcp_mem = proc_field("/proc/net/sockstat", "TCP:", " mem ");
	m->slab_kb = proc_field("/proc/meminfo", NULL, "Slab:");
}

/* How long the connection test may wait, in ms, at time now. */
static int conn_timeout(struct load *L, uint64_t now, uint64_t next_due,
                        uint64_t idle_end)
{
	uint64_t until;

	if (L->phase == PH_SETUP) {
		if (L->opened < L->o.conns && L->period &&
		    L->opened - L->ready - L->st.errors < L->o.par)
			return next_due > now
			               ? (int)((next_due - now) / 1000000)
			               : 0;
		return 10;
	}
	until = idle_end > now ? idle_end - now : 0;
	return (int)((until + 999999) / 1000000);
}

/* --conn: one turn of the loop, waiting at most timeout ms. */
static int conn_poll(struct load *L, int timeout)
{
	struct epoll_event ev[MAX_EVENTS];
	int n = epoll_wait(L->ep, ev, MAX_EVENTS, timeout), i;

	if (n < 0 && errno != EINTR)
		return -1;
	for (i = 0; i < n; i++) {
		struct conn *c = &L->c[ev[i].data.u32];

		conn_event(L, c, ev[i].events);
		if (c->state == ST_DEAD)
			continue;
		conn_write(L, c);
		conn_interest(L, c);
	}
	return 0;
}

/* --conn --resume: the uncounted connections that get the first tickets. */
static unsigned prime_conns(const struct options *o)
{
	unsigned par = o->par < o->conns ? o->par : o->conns;

	return o->resume ? (par + 1) / 2 : 0;
}

/*
 * --conn --resume: full handshakes on uncounted connections, until there
 * is a session for each connection that may be set up at once, so that
 * every connection counted can resume one.
 */
static int conn_prime(struct load *L)
{
	unsigned i, ready, dead, want = 2 * prime_conns(&L->o);
	uint64_t end = now_ns() + PRIME_NS;

	for (i = L->o.conns; i < L->nconn; i++)
		if (conn_open(L, &L->c[i]) != 0) {
			fprintf(stderr, "mqtt_load: connect: %s\n",
			        strerror(errno));
			return -1;
		}
	for (;;) {
		for (ready = dead = 0, i = L->o.conns; i < L->nconn; i++) {
			ready += L->c[i].state == ST_READY;
			dead += L->c[i].state == ST_DEAD;
		}
		if (dead ||
		    (ready == L->nconn - L->o.conns && L->nsess >= want) ||
		    now_ns() >= end)
			break;
		if (conn_poll(L, 10) != 0)
			return -1;
	}
	if (dead || ready < L->nconn - L->o.conns) {
		fprintf(stderr, "mqtt_load: the first connections failed\n");
		return -1;
	}
	if (L->nsess < want)
		fprintf(stderr,
		        "mqtt_load: %u TLS sessions to resume after %u "
		        "connections\n",
		        L->nsess, ready);
	return 0;
}

/*
 * --conn: opens the connections at the rate asked (at most --par setting
 * up at once), then holds them --idle seconds. Returns -1 if it could not
 * run; connections that fail count as errors.
 */
static int conn_loop(struct load *L)
{
	uint64_t now, next_due, idle_end = 0, deadline;

	if (L->nconn > L->o.conns && conn_prime(L) != 0)
		return -1;
	now = now_ns();
	next_due = now;
	deadline = now + SETUP_NS + (L->period ? L->period * L->o.conns : 0) +
	           (uint64_t)L->o.conns * NS_PER_S / 100;
	L->t_first_open = now;
	L->broker_ticks0 = proc_ticks(L->o.pid);
	getrusage(RUSAGE_SELF, &L->ru0);
	while (L->phase != PH_DONE) {
		now = now_ns();
		while (L->phase == PH_SETUP && L->opened < L->o.conns &&
		       L->opened - L->ready - L->st.errors < L->o.par &&
		       (!L->period || next_due <= now)) {
			struct conn *c = &L->c[L->opened++];

			next_due += L->period;
			if (conn_open(L, c) != 0) {
				fprintf(stderr, "mqtt_load: connect: %s\n",
				        strerror(errno));
				return -1;
			}
		}
		if (L->phase == PH_SETUP &&
		    L->ready + L->st.errors == L->o.conns) {
			L->phase = PH_RUN;
			if (!L->ready)
				L->t_all_ready = now;
			L->broker_ticks1 = proc_ticks(L->o.pid);
			getrusage(RUSAGE_SELF, &L->ru1);
			idle_end = now + (uint64_t)(L->o.idle * NS_PER_S);
		}
		if (L->phase == PH_SETUP && now > deadline) {
			fprintf(stderr,
			        "mqtt_load: %u of %u connections up after "
			        "%.0f s\n",
			        L->ready, L->o.conns,
			        (double)(now - L->t_first_open) / NS_PER_S);
			return -1;
		}
		if (L->phase == PH_RUN && now >= idle_end) {
			mem_snap(L, &L->mem1);
			L->phase = PH_DONE;
			break;
		}
		if (conn_poll(L, conn_timeout(L, now, next_due, idle_end)) != 0)
			return -1;
	}
	return 0;
}

static void conn_report(const struct load *L)
{
	const struct options *o = &L->o;
	const struct memsnap *a = &L->mem0, *b = &L->mem1;
	double setup_s = (double)(L->t_all_ready - L->t_first_open) / NS_PER_S;
	double rate = setup_s > 0 ? L->ready / setup_s : 0, lat[5];
	double per_conn = -1, bcpu = -1, ccpu = 0;
	static const double q[5] = {0.5, 0.9, 0.99, 0.999, 1.0};
	char tls[256];
	unsigned i;

	for (i = 0; i < 5; i++)
		lat[i] = (double)(i == 4 ? L->setup_lat.max
		                         : hist_quantile(&L->setup_lat, q[i])) /
		         1e3;
	if (a->rss_kb >= 0 && b->rss_kb >= 0 && L->ready)
		per_conn = (double)(b->rss_kb - a->rss_kb) * 1024 / L->ready;
	/* CPU from the first connect() to the last CONNACK. */
	if (L->broker_ticks0 >= 0 && L->broker_ticks1 >= 0 && L->ready)
		bcpu = (double)(L->broker_ticks1 - L->broker_ticks0) * 1e6 /
		       (double)sysconf(_SC_CLK_TCK) / L->ready;
	if (L->ready)
		ccpu = (tv_us(&L->ru0.ru_utime, &L->ru1.ru_utime) +
		        tv_us(&L->ru0.ru_stime, &L->ru1.ru_stime)) /
		       L->ready;
	printf("mqtt_load: %u connections over %s, MQTT %s, rate %s\n",
	       o->conns, transport_words(o),
	       o->version == MQTT_V5 ? "5" : "3.1.1",
	       o->rate > 0 ? "limited" : "max");
	printf("  up %u in %.3f s (%.0f/s), errors %" PRIu64 "\n", L->ready,
	       setup_s, rate, L->st.errors);
	printf("  set-up us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  "
	       "max %.1f\n",
	       lat[0], lat[1], lat[2], lat[3], lat[4]);
	printf("  CPU us/connection  broker %.1f  mqtt_load %.1f\n", bcpu,
	       ccpu);
	tls_report(L, tls, sizeof(tls));
	printf("  held idle %.1f s; broker VmRSS %lld -> %lld kB (%.0f B per "
	       "connection)\n",
	       o->idle, a->rss_kb, b->rss_kb, per_conn);
	printf("  system: TCP sockets %lld -> %lld, TCP buffer pages %lld -> "
	       "%lld, Slab %lld -> %lld kB\n",
	       a->tcp_inuse, b->tcp_inuse, a->tcp_mem, b->tcp_mem, a->slab_kb,
	       b->slab_kb);
	printf("{\"mode\":\"conn\",\"transport\":\"%s\",\"version\":%u,"
	       "\"connections\":%u,\"ready\":%u,\"errors\":%" PRIu64 ","
	       "\"rate\":%.1f,\"setup_s\":%.3f,\"conn_per_s\":%.1f,"
	       "\"setup_p50_us\":%.1f,\"setup_p90_us\":%.1f,"
	       "\"setup_p99_us\":%.1f,\"setup_p999_us\":%.1f,"
	       "\"setup_max_us\":%.1f,\"idle_s\":%.1f,"
	       "\"rss_before_kb\":%lld,\"rss_idle_kb\":%lld,"
	       "\"rss_per_conn_b\":%.0f,\"tcp_inuse_before\":%lld,"
	       "\"tcp_inuse_idle\":%lld,\"tcp_mem_pages_before\":%lld,"
	       "\"tcp_mem_pages_idle\":%lld,\"slab_before_kb\":%lld,"
	       "\"slab_idle_kb\":%lld,\"broker_cpu_us_per_conn\":%.1f,"
	       "\"client_cpu_us_per_conn\":%.1f%s}\n",
	       transport(o), o->version, o->conns, L->ready, L->st.errors,
	       o->rate, setup_s, rate, lat[0], lat[1], lat[2], lat[3], lat[4],
	       o->idle, a->rss_kb, b->rss_kb, per_conn, a->tcp_inuse,
	       b->tcp_inuse, a->tcp_mem, b->tcp_mem, a->slab_kb, b->slab_kb,
	       bcpu, ccpu, tls);
}

/* --conn: N connections that only CONNECT, opened by conn_loop(). */
static int conn_setup(struct load *L)
{
	unsigned i;

	/* With --resume, last, the connections to get the first sessions. */
	L->nconn = L->o.conns + prime_conns(&L->o);
	L->c = calloc(L->nconn, sizeof(*L->c));
	L->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!L->c || L->ep < 0)
		return -1;
	for (i = 0; i < L->nconn; i++)
		L->c[i].fd = -1;
	for (i = 0; i < L->nconn; i++)
		if (conn_init(L, &L->c[i],
		              i < L->o.conns ? ROLE_IDLE : ROLE_PRIME, i) != 0)
			return -1;
	mem_snap(L, &L->mem0);
	return 0;
}

/* Sets up connections; counts, for each publisher, matching subscribers. */
static int setup(struct load *L)
{
	struct epoll_event ev;
	unsigned i, j;

	L->nconn = L->o.pubs + L->o.subs;
	L->c = calloc(L->nconn, sizeof(*L->c));
	L->payload = malloc(L->o.payload);
	L->ep = epoll_create1(EPOLL_CLOEXEC);
	L->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!L->c || !L->payload || L->ep < 0 || L->tfd < 0)
		return -1;
	for (i = 0; i < L->nconn; i++)
		L->c[i].fd = -1;
	memset(L->payload, 'x', L->o.payload);
	ev.events = EPOLLIN;
	ev.data.u32 = TIMER_TAG;
	if (epoll_ctl(L->ep, EPOLL_CTL_ADD, L->tfd, &ev) != 0)
		return -1;
	for (i = 0; i < L->nconn; i++) {
		bool pub = i < L->o.pubs;

		if (conn_init(L, &L->c[i], pub ? ROLE_PUB : ROLE_SUB,
		              pub ? i : i - L->o.pubs) != 0) {
			fprintf(stderr, "mqtt_load: bad topic or filter, or "
			                "out of memory\n");
			return -1;
		}
	}
	for (i = 0; i < L->o.pubs; i++)
		for (j = L->o.pubs; j < L->nconn; j++)
			L->c[i].fan +=
			        topic_match(L->c[j].topic, L->c[i].topic);
	L->t_setup_end = now_ns() + SETUP_NS;
	for (i = 0; i < L->nconn; i++)
		if (conn_open(L, &L->c[i]) != 0) {
			fprintf(stderr, "mqtt_load: connect: %s\n",
			        strerror(errno));
			return -1;
		}
	return 0;
}

/* Raises the soft limit on open files to the hard one; checks it is
 * enough for the connections asked for. */
static int raise_fd_limit(const struct load *L)
{
	unsigned need = (L->o.conns ? L->o.conns + prime_conns(&L->o)
	                            : L->o.pubs + L->o.subs) +
	                16;
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) != 0)
		return -1;
	if (r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
		getrlimit(RLIMIT_NOFILE, &r);
	}
	if (r.rlim_cur < need) {
		fprintf(stderr, "mqtt_load: %u files needed, limit %llu\n",
		        need, (unsigned long long)r.rlim_cur);
		return -1;
	}
	return 0;
}

static void seed(struct load *L)
{
	if (getrandom(&L->rng, sizeof(L->rng), 0) != sizeof(L->rng))
		L->rng = now_ns() ^ (uint64_t)getpid() << 32;
	if (L->rng == 0)
		L->rng = 1;
}

int main(int argc, char **argv)
{
	struct load *L = calloc(1, sizeof(*L));
	int rc = 2, a;
	unsigned i;

	if (!L)
		return 2;
	L->ep = L->tfd = -1;
	a = parse_args(argc, argv, &L->o);
	if (a != 0) {
		rc = a > 0 ? 0 : 2;
		goto out;
	}
	if (parse_host(L) != 0) {
		fprintf(stderr, "mqtt_load: '%s' is not a loopback address\n",
		        L->o.host);
		goto out;
	}
	if (raise_fd_limit(L) != 0)
		goto out;
	L->period = L->o.rate > 0 ? (uint64_t)(NS_PER_S / L->o.rate) : 0;
	seed(L);
	/* A broker that closes first fails the connection, not mqtt_load. */
	signal(SIGPIPE, SIG_IGN);
	if (L->o.tls && tls_init(L) != 0)
		goto out;
	if (L->o.conns) {
		if (conn_setup(L) != 0 || conn_loop(L) != 0) {
			fprintf(stderr, "mqtt_load: connection test failed\n");
			goto out;
		}
		disconnect_all(L);
		conn_report(L);
		rc = L->st.errors ? 1 : 0;
		goto out;
	}
	if (setup(L) != 0 || loop(L) != 0)
		goto out;
	disconnect_all(L);
	report(L);
	rc = L->st.errors ? 1 : 0;
out:
	for (i = 0; L->c && i < L->nconn; i++)
		conn_free(&L->c[i]);
	free(L->c);
	free(L->payload);
	while (L->nsess > 0)
		SSL_SESSION_free(L->sess[--L->nsess]);
	SSL_SESSION_free(L->last_sess);
	SSL_CTX_free(L->tls);
	if (L->ep >= 0)
		close(L->ep);
	if (L->tfd >= 0)
		close(L->tfd);
	free(L);
	return rc;
}
