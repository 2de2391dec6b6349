/*
 * A client's link to the server: one connection from name resolution to
 * close (the non-blocking TCP connect trying each address, the transport
 * handshake through xport: TLS, WebSocket; CONNECT from tx.c), reading and
 * handing complete packets to rx.c, writing the output buffer, keepalive,
 * and the end of the connection with its reconnect schedule. (Named link_*
 * rather than conn_* so that it never clashes with the broker's conn.c in
 * one program.) Session state (the offline
 * queue, inflight messages, subscriptions, QoS 2 receipts) lives in the
 * client and outlives connections.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "client/client.h"
#include "client/ids.h"

#define READ_CHUNK 16384

int link_flush(struct tern_client *c)
{
	int rc;

	if (c->x == NULL || c->state < CS_CONNACK)
		return 0;
	/* The want flags say what the last TERN_EAGAIN waits for. */
	c->x->want_write = false;
	rc = c->x->ops->flush(c->x);
	if (rc < 0 && rc != TERN_EAGAIN)
		goto fail;
	while (rc == 0 && c->woff < c->wlen) {
		ssize_t n = c->x->ops->write(c->x, c->wbuf + c->woff,
		                             c->wlen - c->woff);

		if (n == TERN_EAGAIN)
			break;
		if (n < 0) {
			rc = (int)n;
			goto fail;
		}
		c->woff += (size_t)n;
	}
	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	return 0;
fail:
	link_close(c, rc == TERN_ECLOSED ? TERN_ECLOSED : TERN_EIO, -1,
	           c->x->err[0] ? c->x->err : "write failed");
	return rc;
}

static bool output_pending(struct tern_client *c)
{
	/* A transport that buffered bytes (WebSocket) reports them through
	 * flush: ask it without side effects via its want flag. */
	return c->woff < c->wlen || (c->x && c->x->want_write);
}

int link_wanted(struct tern_client *c)
{
	switch (c->state) {
	case CS_TCP: return TERN_EV_WRITE;
	case CS_HANDSHAKE: return c->x ? xport_wants(c->x) | TERN_EV_READ : 0;
	case CS_CONNACK:
	case CS_UP:
	case CS_CLOSING:
		return TERN_EV_READ | (output_pending(c) ? TERN_EV_WRITE : 0);
	default: return 0;
	}
}

/* --- completing operations ------------------------------------------ */

void link_complete(struct tern_client *c, struct omsg *m, int rc, int reason)
{
	struct waiter *w = client_waiter(c, W_PUBLISH, m->token);
	tern_token token = m->token;

	if (m->packet_id)
		ids_set(c->ids, m->packet_id, false);
	omsg_free(m);
	if (w) {
		w->done = true;
		w->rc = rc;
		w->reason = reason;
		pthread_cond_broadcast(&c->cv);
	}
	if (c->o.cb.on_publish) {
		client_cb_enter(c);
		c->o.cb.on_publish(c, token, rc, reason, c->o.userdata);
		client_cb_leave(c);
	}
}

/* --- the end of a connection ----------------------------------------- */

static void clear_aliases(struct tern_client *c)
{
	for (unsigned i = 0; c->tx_alias && i <= c->tx_alias_cap; i++) {
		free(c->tx_alias[i]);
		c->tx_alias[i] = NULL;
	}
	c->tx_alias_n = 0;
	for (unsigned i = 0; c->rx_alias && i <= c->o.topic_alias_maximum;
	     i++) {
		free(c->rx_alias[i]);
		c->rx_alias[i] = NULL;
	}
}

/* Drops the transport and the per-connection state. */
static void teardown(struct tern_client *c)
{
	if (c->x) {
		xport_free(c->x);
		c->x = NULL;
	} else if (c->fd >= 0) {
		close(c->fd);
	}
	c->fd = -1;
	c->rlen = 0;
	c->wlen = c->woff = 0;
	c->ping_at = 0;
	c->gen++;
	clear_aliases(c);
	/* Subscribe/unsubscribe packet ids do not survive a connection:
	 * unacknowledged ones are sent again with new ids. */
	for (struct op *op = c->ops; op; op = op->next) {
		if (op->packet_id)
			ids_set(c->ids, op->packet_id, false);
		op->packet_id = 0;
	}
}

/* What follows a lost or failed connection: a retry or idleness. */
static void schedule(struct tern_client *c)
{
	uint32_t r = 0;

	if (c->want_up && !c->no_retry && c->backoff.initial_ms) {
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint32_t)clock_ms() * 2654435761u;
		c->state = CS_WAIT_RETRY;
		c->retry_at =
		        clock_ms() + backoff_delay(&c->backoff, c->attempt, r);
		client_log(c, TERN_LOG_INFO, "reconnecting in %llu ms",
		           (unsigned long long)(c->retry_at - clock_ms()));
		c->attempt++;
		return;
	}
	c->state = CS_IDLE;
	c->want_up = false;
	c->no_retry = false;
	for (struct waiter *w = c->waiters; w; w = w->next)
		if (w->kind == W_IDLE)
			w->done = true;
	pthread_cond_broadcast(&c->cv);
}

void link_report_connect(struct tern_client *c, int rc, int reason, bool sp,
                         const char *why)
{
	struct waiter *w = client_waiter(c, W_CONNECT, 0);

	if (w) {
		w->done = true;
		w->rc = rc;
		w->reason = reason;
		w->session_present = sp;
		pthread_cond_broadcast(&c->cv);
	}
	if (c->o.cb.on_connect) {
		client_cb_enter(c);
		c->o.cb.on_connect(c, rc, reason, sp, why, c->o.userdata);
		client_cb_leave(c);
	}
}

/* A connection attempt failed before CONNACK. */
void link_fail(struct tern_client *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	client_log(c, TERN_LOG_WARNING, "connect failed: %s", c->why);
	teardown(c);
	freeaddrinfo(c->ai);
	c->ai = c->ai_cur = NULL;
	schedule(c);
	link_report_connect(c, rc, -1, false, c->why);
}

void link_refused(struct tern_client *c, int reason)
{
	snprintf(c->why, sizeof(c->why),
	         "the server refused the connection (reason 0x%02x)", reason);
	client_log(c, TERN_LOG_WARNING, "connect failed: %s", c->why);
	teardown(c);
	schedule(c);
	link_report_connect(c, TERN_EREFUSED, reason, false, c->why);
}

void link_close(struct tern_client *c, int rc, int reason, const char *why)
{
	bool was_up = c->state == CS_UP || c->state == CS_CLOSING;

	if (c->state < CS_TCP)
		return;
	if (!was_up) {
		link_fail(c, rc, "%s", why);
		return;
	}
	if (c->state == CS_CLOSING)
		rc = 0;
	client_log(c, rc ? TERN_LOG_WARNING : TERN_LOG_INFO,
	           "connection closed: %s", why);
	if (rc == 0 && c->x)
		c->x->ops->shutdown(c->x);
	teardown(c);
	schedule(c);
	if (c->o.cb.on_disconnect) {
		client_cb_enter(c);
		c->o.cb.on_disconnect(c, rc, reason, c->o.userdata);
		client_cb_leave(c);
	}
}

/* A protocol link_violation by the server: say why (v5) and close. */
void link_violation(struct tern_client *c, int rc, uint8_t reason,
                    const char *why)
{
	if (c->version == MQTT_V5 && c->state == CS_UP) {
		struct mqtt_packet p = {.type = MQTT_DISCONNECT};

		p.u.disconnect.reason = reason;
		if (tx_packet(c, &p) == 0 && c->x)
			c->x->ops->write(c->x, c->wbuf + c->woff,
			                 c->wlen - c->woff);
	}
	link_close(c, rc, -1, why);
}

/* --- connecting ----------------------------------------------------- */

static void start_transport(struct tern_client *c);

/* Tries the addresses from ai_cur on until a connect() is under way. */
static void try_connect(struct tern_client *c)
{
	int one = 1, err = 0;

	for (; c->ai_cur; c->ai_cur = c->ai_cur->ai_next) {
		struct addrinfo *a = c->ai_cur;
		int fd = socket(a->ai_family,
		                a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		                a->ai_protocol);

		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 ||
		    errno == EINPROGRESS) {
			c->fd = fd;
			c->state = CS_TCP;
			return;
		}
		err = errno;
		close(fd);
	}
	link_fail(c, TERN_ECONNECT, "cannot connect to %s:%d: %s", c->url.host,
	          c->url.port, strerror(err ? err : EINVAL));
}

void link_start(struct tern_client *c)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_ADDRCONFIG};
	char port[8];
	int rc;

	c->deadline = clock_ms() + (uint64_t)c->o.connect_timeout_ms;
	c->state = CS_TCP;
	c->why[0] = '\0';
	snprintf(port, sizeof(port), "%d", c->url.port);
	freeaddrinfo(c->ai);
	c->ai = NULL;
	/* Resolution blocks; a name in /etc/hosts or a literal is quick. */
	rc = getaddrinfo(c->url.host, port, &hints, &c->ai);
	if (rc != 0) {
		c->ai = NULL;
		link_fail(c, TERN_ECONNECT, "cannot resolve %s: %s",
		          c->url.host, gai_strerror(rc));
		return;
	}
	client_log(c, TERN_LOG_DEBUG, "connecting to %s:%d", c->url.host,
	           c->url.port);
	c->ai_cur = c->ai;
	try_connect(c);
}

/* The TCP connect finished (or failed): next address or the transport. */
static void tcp_done(struct tern_client *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	if (err) {
		close(c->fd);
		c->fd = -1;
		c->ai_cur = c->ai_cur->ai_next;
		if (c->ai_cur) {
			try_connect(c);
			return;
		}
		link_fail(c, TERN_ECONNECT, "cannot connect to %s:%d: %s",
		          c->url.host, c->url.port, strerror(err));
		return;
	}
	start_transport(c);
}

static void step_handshake(struct tern_client *c)
{
	int rc;

	c->x->want_read = c->x->want_write = false;
	rc = c->x->ops->handshake(c->x);
	if (rc == 0)
		return;
	if (rc < 0) {
		link_fail(c, rc == TERN_ETLS ? TERN_ETLS : TERN_ECONNECT, "%s",
		          c->x->err);
		return;
	}
	c->state = CS_CONNACK;
	c->x->want_read = c->x->want_write = false;
	tx_connect(c);
}

static void start_transport(struct tern_client *c)
{
	struct xport_params p = {
	        .fd = c->fd,
	        .tls = c->tls,
	        .host = c->url.host,
	        .verify_host = !c->o.tls_insecure && !c->o.tls_no_verify,
	        .ws = c->url.ws,
	        .port = c->url.port == url_default_port(c->url.scheme)
	                        ? 0
	                        : c->url.port,
	        .path = c->url.path,
	        /* Frames are decoded as a stream and a server may pack
	         * several packets in one message: the MQTT layer bounds
	         * packet sizes, not the WebSocket one. */
	        .max_message = 0,
	};
	int rc = xport_new(&p, &c->x);

	if (rc < 0) {
		c->fd = -1; /* closed by xport_new */
		link_fail(c, rc, "out of memory");
		return;
	}
	c->state = CS_HANDSHAKE;
	step_handshake(c);
}

static void do_read(struct tern_client *c)
{
	uint64_t gen = c->gen;

	while (c->gen == gen) {
		ssize_t n;

		if (c->rcap - c->rlen < READ_CHUNK) {
			size_t cap = c->rcap ? c->rcap * 2 : 2 * READ_CHUNK;
			uint8_t *p = realloc(c->rbuf, cap);

			if (p == NULL) {
				link_close(c, TERN_ENOMEM, -1, "out of memory");
				return;
			}
			c->rbuf = p;
			c->rcap = cap;
		}
		n = c->x->ops->read(c->x, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n == TERN_EAGAIN)
			return;
		if (n <= 0) {
			link_close(c, n == 0 ? TERN_ECLOSED : (int)n, -1,
			           n == 0 || !c->x->err[0]
			                   ? "connection closed by the server"
			                   : c->x->err);
			return;
		}
		c->rlen += (size_t)n;
		if (!rx_dispatch(c))
			return;
		/* A large packet in progress keeps its buffer; an idle one
		 * gives memory back. */
		if (c->rlen == 0 && c->rcap > 16 * READ_CHUNK) {
			free(c->rbuf);
			c->rbuf = NULL;
			c->rcap = 0;
		}
	}
}

void link_io(struct tern_client *c, int revents)
{
	uint64_t gen = c->gen;

	switch (c->state) {
	case CS_TCP:
		if (revents)
			tcp_done(c);
		return;
	case CS_HANDSHAKE: step_handshake(c); return;
	case CS_CONNACK:
	case CS_UP:
	case CS_CLOSING:
		if (revents & (POLLIN | POLLHUP | POLLERR))
			do_read(c);
		if (c->gen == gen && c->state >= CS_CONNACK)
			link_flush(c);
		if (c->gen == gen && c->state == CS_UP)
			tx_drain(c);
		if (c->gen == gen && c->state == CS_CLOSING &&
		    !output_pending(c))
			link_close(c, 0, -1, "disconnected");
		return;
	default: return;
	}
}

/* --- timers ----------------------------------------------------------- */

void link_timers(struct tern_client *c, uint64_t now)
{
	uint64_t ka = (uint64_t)c->keepalive * 1000u;

	switch (c->state) {
	case CS_WAIT_RETRY:
		if (now >= c->retry_at)
			link_start(c);
		return;
	case CS_TCP:
	case CS_HANDSHAKE:
	case CS_CONNACK:
		if (now >= c->deadline)
			link_fail(c, TERN_ETIMEDOUT,
			          "no connection within %d ms",
			          c->o.connect_timeout_ms);
		return;
	case CS_UP:
		if (ka == 0)
			return;
		if (c->ping_at && now - c->ping_at >= ka) {
			link_close(c, TERN_ETIMEDOUT, -1,
			           "the server did not answer PINGREQ "
			           "(keepalive)");
			return;
		}
		if (!c->ping_at && now - c->last_tx >= ka) {
			struct mqtt_packet p = {.type = MQTT_PINGREQ};

			if (tx_packet(c, &p) == 0) {
				c->ping_at = now;
				link_flush(c);
			}
		}
		return;
	case CS_CLOSING:
		if (now >= c->deadline)
			link_close(c, 0, -1, "disconnected");
		return;
	default: return;
	}
}

static int64_t until(uint64_t at, uint64_t now)
{
	return at > now ? (int64_t)(at - now) : 0;
}

int64_t link_next_timer(struct tern_client *c, uint64_t now)
{
	uint64_t ka = (uint64_t)c->keepalive * 1000u;

	switch (c->state) {
	case CS_WAIT_RETRY: return until(c->retry_at, now);
	case CS_TCP:
	case CS_HANDSHAKE:
	case CS_CONNACK:
	case CS_CLOSING: return until(c->deadline, now);
	case CS_UP:
		if (ka == 0)
			return -1;
		return c->ping_at ? until(c->ping_at + ka, now)
		                  : until(c->last_tx + ka, now);
	default: return -1;
	}
}

/* --- disconnect ------------------------------------------------------- */

void link_disconnect(struct tern_client *c, const struct mqtt_disconnect *d)
{
	struct mqtt_packet p = {.type = MQTT_DISCONNECT};

	c->want_up = false;
	c->no_retry = false;
	switch (c->state) {
	case CS_UP:
		if (d && c->version == MQTT_V5)
			p.u.disconnect = *d;
		tx_packet(c, &p);
		c->state = CS_CLOSING;
		c->deadline = clock_ms() + 2000;
		link_flush(c);
		if (c->state == CS_CLOSING && !output_pending(c))
			link_close(c, 0, -1, "disconnected");
		return;
	case CS_TCP:
	case CS_HANDSHAKE:
	case CS_CONNACK:
		teardown(c);
		freeaddrinfo(c->ai);
		c->ai = c->ai_cur = NULL;
		schedule(c);
		return;
	case CS_WAIT_RETRY: schedule(c); return;
	default: return;
	}
}
