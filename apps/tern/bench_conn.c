/*
 * `tern bench` connections and their transports. Every connection is a
 * non-blocking socket in the run's epoll loop with fixed-size input and
 * output buffers; MQTT bytes go through them as they are.
 *
 * The transports are the ones the broker and libtern use: MQTT over
 * WebSocket (ws://) is src/http's client upgrade (offering the subprotocol
 * "mqtt", checking the 101) and src/net/ws.c's frames: every write of a
 * connection's pending MQTT bytes leaves as one masked binary frame, and
 * the broker's frames are decoded in place in the input buffer, wherever
 * the MQTT packets in them begin or end. TLS (mqtts://, wss://) is
 * src/net/tls.c's client side, its handshake driven by the same loop, the
 * server's chain verified against --cafile (or the system's CAs) and,
 * unless --insecure, its certificate checked for the host name.
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
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench.h"
#include "http/http.h"
#include "net/tls.h"
#include "net/ws.h"

/* Room in the wire buffer for a pong and a close frame. */
#define WS_WIRE_PAD (2 * (WS_MAX_CLIENT_HEADER + 125))

/* WebSocket state of one connection. */
struct wsc {
	struct ws_decoder dec;
	char key[25]; /* our Sec-WebSocket-Key */
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

/*
 * Appends a masked client frame (FIN, opcode) with payload p[0..len) to
 * the wire buffer w, which has room for it. The mask comes from the run's
 * xorshift generator rather than ws_random_mask(): one getrandom() per
 * frame would cost more than the frame, and the mask only has to be
 * unpredictable to web content, of which there is none here.
 */
static void ws_frame(struct load *L, struct buf *w, uint8_t opcode,
                     const uint8_t *p, size_t len)
{
	uint8_t *d = w->p + w->tail, mask[4];
	uint32_t r = (uint32_t)(rng_next(&L->rng) >> 32);
	size_t h;

	memcpy(mask, &r, sizeof(mask));
	h = ws_client_header(d, opcode, len, mask);
	ws_mask_copy(d + h, p, len, mask);
	w->tail += h + len;
}

size_t bench_buf_len(const struct buf *b)
{
	return b->tail - b->head;
}

/* Contiguous free space at the tail after moving pending bytes forward. */
size_t bench_buf_room(struct buf *b)
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
size_t bench_conn_pending(const struct conn *c)
{
	return bench_buf_len(&c->out) + bench_buf_len(&c->wire);
}

void bench_conn_fail(struct load *L, struct conn *c, const char *why)
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
	tls_conn_free(c->tls);
	c->tls = NULL;
	c->tls_want = 0;
	close(c->fd);
	c->fd = -1;
	c->state = ST_DEAD;
	c->inflight = 0;
}

/* Queues the upgrade request (raw, on the wire buffer). */
static void ws_request(struct load *L, struct conn *c)
{
	int n;

	if (http_ws_client_key(c->ws->key) != 0) {
		bench_conn_fail(L, c, "no random bytes for the WebSocket key");
		return;
	}
	n = http_ws_client_request((char *)c->wire.p, c->wire.cap, L->o.host,
	                           L->o.port, L->o.path, c->ws->key, "mqtt");
	if (n < 0) {
		bench_conn_fail(L, c, "cannot write the upgrade request");
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
	struct http_header headers[32];
	struct http_response r;
	size_t len = bench_buf_len(&c->in);
	const char *why = NULL;
	char msg[64];
	int hl = http_parse_response((const char *)c->in.p, len, &r, headers,
	                             sizeof(headers) / sizeof(headers[0]));

	if (hl == TERN_EAGAIN) {
		if (c->in.tail < c->in.cap)
			return 0;
		why = "upgrade response too long";
	} else if (hl < 0) {
		why = "malformed upgrade response";
	} else if (http_ws_client_check(&r, c->ws->key, "mqtt", &why) != 0) {
		if (r.status != 101) {
			snprintf(msg, sizeof(msg), "upgrade refused: status %d",
			         r.status);
			why = msg;
		}
	} else {
		memmove(c->in.p, c->in.p + hl, len - (size_t)hl);
		c->in.head = 0;
		c->in.tail = len - (size_t)hl;
		bench_proto_connect(L, c);
		return c->state == ST_DEAD ? -1 : 1;
	}
	bench_conn_fail(L, c, why);
	return -1;
}

/* Decodes the frames in c's input from offset `from` on; -1 if c failed. */
static int ws_input(struct load *L, struct conn *c, size_t from)
{
	size_t in = from, out = from;
	char msg[64];

	for (;;) {
		struct ws_decoder *d = &c->ws->dec;
		uint16_t code = 0;
		int rc = ws_decode(d, c->in.p, c->in.tail, &in, &out, &code);

		switch (rc) {
		case WS_EV_NONE: c->in.tail = out; return 0;
		case WS_EV_PONG: continue;
		case WS_EV_PING:
			/* Answered if there is room; a broker that pings an
			 * MQTT client is unusual. */
			if (bench_buf_room(&c->wire) >=
			    WS_MAX_CLIENT_HEADER + (size_t)d->ctl_len)
				ws_frame(L, &c->wire, WS_OP_PONG, d->ctl,
				         d->ctl_len);
			continue;
		case WS_EV_CLOSE:
			snprintf(msg, sizeof(msg),
			         "close frame from the broker (code %u)",
			         d->close_code);
			break;
		default:
			snprintf(msg, sizeof(msg),
			         "bad frame from the broker: %s",
			         tern_strerror(rc < 0 ? rc : TERN_EPROTO));
			break;
		}
		bench_conn_fail(L, c, msg);
		return -1;
	}
}

/*
 * The client TLS context (src/net/tls.c): the broker's chain verified
 * against --cafile (or the system's CAs), TLS 1.2 at least; the host name
 * is checked per connection.
 */
int bench_conn_tls_init(struct load *L)
{
	struct tls_client_opts o = {.cafile = L->o.cafile,
	                            .resume = L->o.resume};
	char err[256];

	if (tls_client_ctx_new(&o, &L->tls, err, sizeof(err)) != 0) {
		fprintf(stderr, "tern bench: TLS: %s\n", err);
		return -1;
	}
	return 0;
}

/* The connection is up (and over TLS, secured): the first request. */
static void conn_begin(struct load *L, struct conn *c)
{
	if (c->ws)
		ws_request(L, c);
	else
		bench_proto_connect(L, c);
}

/* Drives c's handshake on; once done, begins MQTT (or the upgrade). */
static void tls_step(struct load *L, struct conn *c)
{
	enum tls_fail why;
	bool want_write;
	char msg[256];
	int rc = tls_handshake(c->tls, &want_write, &why);

	if (rc < 0) {
		snprintf(msg, sizeof(msg), "TLS handshake: %s",
		         tls_error(c->tls));
		bench_conn_fail(L, c, msg);
		return;
	}
	if (rc == 0) {
		c->tls_want = want_write ? EPOLLOUT : EPOLLIN;
		return;
	}
	c->tls_want = 0;
	L->handshakes++;
	L->resumed += tls_session_reused(c->tls);
	if (!L->tls_proto[0])
		snprintf(L->tls_proto, sizeof(L->tls_proto), "%s",
		         tls_version_name(c->tls));
	conn_begin(L, c);
}

/* The TCP connection is up: starts TLS on it, SNI and (unless --insecure)
 * the host name check for o.host. */
static void tls_start(struct load *L, struct conn *c)
{
	c->tls = tls_client_conn_new(L->tls, c->fd, L->o.host, !L->o.insecure);
	if (!c->tls) {
		bench_conn_fail(L, c, "cannot set up TLS");
		return;
	}
	c->state = ST_TLS;
	tls_step(L, c);
}

/*
 * Decrypts into c's input buffer as much as is there and fits: the number
 * of bytes, or -1 after failing c.
 */
static ssize_t tls_input(struct load *L, struct conn *c)
{
	size_t room = c->in.cap - c->in.tail, got = 0;

	while (got < room) {
		ssize_t n = tls_read(c->tls, c->in.p + c->in.tail + got,
		                     room - got);

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == TERN_EAGAIN)
			break;
		bench_conn_fail(L, c,
		                n == 0 ? "connection closed by the broker"
		                       : "TLS read failed");
		return -1;
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

	if (c->tls) {
		struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
		bool want_read;

		n = tls_writev(c->tls, &iov, 1, &want_read);
		if (n > 0)
			L->t_last_tx = bench_now();
		if (n >= 0 || n == TERN_EAGAIN)
			return n > 0 ? n : 0;
		bench_conn_fail(L, c, "TLS write failed");
		return -1;
	}
	n = write(c->fd, p, len);
	if (n > 0)
		L->t_last_tx = bench_now();
	if (n >= 0)
		return n;
	if (errno != EAGAIN && errno != EINTR) {
		bench_conn_fail(L, c, strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads once into c's input and handles it: true if that filled the
 * room there was, so that more may wait in the socket. */
static bool conn_read(struct load *L, struct conn *c)
{
	size_t from = c->in.tail, room;
	ssize_t n;

	if (c->tls) {
		room = bench_buf_room(&c->in);
		from = c->in.tail;
		n = tls_input(L, c);
		if (n <= 0)
			return false;
	} else {
		room = bench_buf_room(&c->in);
		n = read(c->fd, c->in.p + c->in.tail, room);
		if (n == 0) {
			bench_conn_fail(L, c,
			                "connection closed by the broker");
			return false;
		}
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				bench_conn_fail(L, c, strerror(errno));
			return false;
		}
	}
	c->in.tail += (size_t)n;
	L->t_last_rx = bench_now();
	if (c->ws) {
		if (c->state == ST_UPGRADE) {
			if (ws_response(L, c) <= 0)
				return false;
			from = 0;
		}
		if (ws_input(L, c, from) != 0)
			return false;
	}
	bench_proto_parse(L, c, L->t_last_rx);
	return (size_t)n == room && room > 0;
}

/*
 * Reads what c has, READ_BURST buffers at most. One buffer a loop turn
 * is not enough: a turn in which a thousand publishers write is long, and
 * a subscriber that reads 64 KiB per turn falls behind the broker (which
 * then queues, holds publishers back or drops), so that the load measured
 * tern bench instead of the broker (1,000 -> 1 at 50,000 msg/s: p50
 * latency 0.3-0.8 s in one process, 8 ms with the subscriber in another).
 */
static void conn_read_burst(struct load *L, struct conn *c)
{
	for (unsigned i = 0; i < READ_BURST; i++)
		if (!conn_read(L, c) || c->state == ST_DEAD || c->blocked)
			return;
}

/*
 * Over WebSocket: all MQTT bytes pending when the wire buffer is empty
 * leave as one binary frame.
 */
static void ws_write(struct load *L, struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (bench_buf_len(&c->wire) == 0) {
			if (bench_buf_len(&c->out) == 0)
				return;
			c->wire.head = c->wire.tail = 0;
			ws_frame(L, &c->wire, WS_OP_BINARY,
			         c->out.p + c->out.head,
			         bench_buf_len(&c->out));
			c->out.head = c->out.tail = 0;
		}
		n = sock_write(L, c, c->wire.p + c->wire.head,
		               bench_buf_len(&c->wire));
		if (n <= 0)
			return;
		c->wire.head += (size_t)n;
	}
}

void bench_conn_write(struct load *L, struct conn *c)
{
	if (c->ws) {
		ws_write(L, c);
		return;
	}
	while (bench_buf_len(&c->out) > 0) {
		ssize_t n = sock_write(L, c, c->out.p + c->out.head,
		                       bench_buf_len(&c->out));

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
		bench_conn_fail(L, c, strerror(err ? err : errno));
		return;
	}
	if (L->tls)
		tls_start(L, c);
	else
		conn_begin(L, c);
}

/* Registers the interest c needs now, if it changed. */
void bench_conn_interest(struct load *L, struct conn *c)
{
	struct epoll_event ev;
	uint32_t want = 0;

	if (c->state == ST_DEAD)
		return;
	if (c->state == ST_TLS) {
		want = c->tls_want;
	} else {
		/* tls_want: a TLS read waits for the socket to be writable. */
		if (c->state == ST_CONNECTING || bench_conn_pending(c) > 0 ||
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
		bench_conn_fail(L, c, strerror(errno));
	c->events = want;
}

void bench_conn_event(struct load *L, struct conn *c, uint32_t events)
{
	if (c->state == ST_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_start(L, c);
		return;
	}
	if (c->state == ST_TLS) {
		tls_step(L, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP) ||
	    c->tls_want & events & EPOLLOUT)
		conn_read_burst(L, c);
	if (c->state != ST_DEAD && (events & EPOLLOUT))
		bench_conn_write(L, c);
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

int bench_conn_open(struct load *L, struct conn *c)
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
	c->t_open = bench_now();
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
int bench_conn_init(struct load *L, struct conn *c, enum role role,
                    unsigned idx)
{
	const char *pattern = role == ROLE_PUB ? L->o.topic : L->o.filter;
	size_t topic_max = 0;
	int n;

	snprintf(c->id, sizeof(c->id), "%s%c%u", L->o.prefix, "pscr"[role],
	         idx);
	n = pattern ? bench_opts_expand(pattern, idx, c->id, c->topic,
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
		ws_decoder_init_client(&c->ws->dec, 0);
	}
	if (role == ROLE_IDLE) {
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
		c->wire.cap = c->out.cap + WS_MAX_CLIENT_HEADER + WS_WIRE_PAD;
		c->wire.p = malloc(c->wire.cap);
		if (!c->wire.p)
			return -1;
	}
	return 0;
}

void bench_conn_free(struct conn *c)
{
	if (c->tls) {
		/* close_notify, without waiting for the broker's. */
		if (c->fd >= 0)
			tls_shutdown(c->tls);
		tls_conn_free(c->tls);
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
 * waits in OpenSSL, where epoll does not see it: reads it once the buffer
 * has room, and has the loop come back at once if some is left.
 */
void bench_conn_tls_pending(struct load *L, struct conn *c)
{
	if (c->blocked || c->state == ST_DEAD || !tls_pending(c->tls))
		return;
	conn_read(L, c);
	if (c->state != ST_DEAD)
		bench_conn_write(L, c);
	if (c->tls && !c->blocked && tls_pending(c->tls))
		L->tls_backlog = true;
}

void bench_conn_disconnect_all(struct load *L)
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
		if (c->ws &&
		    (bench_buf_len(&c->wire) > 0 || c->state < ST_CONNACK))
			continue;
		/* Nor over TLS while a write waits to be retried as it was. */
		if (c->tls &&
		    (bench_conn_pending(c) > 0 || c->state < ST_UPGRADE))
			continue;
		c->out.head = c->out.tail = 0;
		if (bench_proto_send(L, c, &p) != 0)
			continue;
		if (c->ws) {
			ws_write(L, c);
			if (bench_buf_len(&c->wire) == 0)
				ws_frame(L, &c->wire, WS_OP_CLOSE, normal,
				         sizeof(normal));
		}
		bench_conn_write(L, c);
	}
}

uint64_t bench_rng(struct load *L)
{
	return rng_next(&L->rng);
}

void bench_conn_tls_cleanup(struct load *L)
{
	tls_ctx_unref(L->tls);
	L->tls = NULL;
}
