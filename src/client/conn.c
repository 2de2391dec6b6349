/*
 * One connection of a client, from name resolution to close: the
 * non-blocking TCP connect (trying each address), the transport handshake
 * (xport: TLS, WebSocket), CONNECT/CONNACK, then packets in both
 * directions through the shared codec (src/mqtt), keepalive, and the end of
 * the connection with its reconnect schedule. Session state (the offline
 * queue, inflight messages, subscriptions, QoS 2 receipts) lives in the
 * client and outlives connections.
 *
 * Received packets are dispatched from a table, one handler per type.
 * Every handler may end the connection (conn_close) and may run user
 * callbacks; the read loop stops as soon as the connection it was reading
 * is gone (c->gen changed).
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

#define READ_CHUNK 16384
#define HIGH_WATER (1u << 20) /* output bytes before the queue waits */
#define TX_ALIASES 64         /* outbound aliases we use at most */

static void fail_attempt(struct tern_client *c, int rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* --- packet ids ----------------------------------------------------- */

static bool id_used(const uint8_t *set, uint16_t id)
{
	return set[id >> 3] & (1u << (id & 7));
}

static void id_set(uint8_t *set, uint16_t id, bool on)
{
	if (on)
		set[id >> 3] |= (uint8_t)(1u << (id & 7));
	else
		set[id >> 3] &= (uint8_t) ~(1u << (id & 7));
}

/* The next free packet id; 0 when all 65535 are in use. */
static uint16_t id_alloc(struct tern_client *c)
{
	for (unsigned i = 0; i < 65535; i++) {
		uint16_t id = c->next_id;

		c->next_id = c->next_id == 65535 ? 1 : c->next_id + 1;
		if (id != 0 && !id_used(c->ids, id)) {
			id_set(c->ids, id, true);
			return id;
		}
	}
	return 0;
}

/* --- output --------------------------------------------------------- */

static int wreserve(struct tern_client *c, size_t n)
{
	size_t cap = c->wcap ? c->wcap : 4096;
	uint8_t *p;

	/* Written bytes at the front are dropped before growing. */
	if (c->woff && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wlen + n <= c->wcap)
		return 0;
	if (c->woff) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
		if (c->wlen + n <= c->wcap)
			return 0;
	}
	while (cap < c->wlen + n)
		cap *= 2;
	p = realloc(c->wbuf, cap);
	if (p == NULL)
		return TERN_ENOMEM;
	c->wbuf = p;
	c->wcap = cap;
	return 0;
}

/* Encodes p at the end of the output. */
static int send_packet(struct tern_client *c, const struct mqtt_packet *p)
{
	size_t n = mqtt_encoded_size(p, c->version);
	int rc = wreserve(c, n);

	if (rc < 0)
		return rc;
	rc = mqtt_encode(p, c->version, c->wbuf + c->wlen, n);
	if (rc < 0)
		return rc;
	c->wlen += (size_t)rc;
	c->last_tx = clock_ms();
	return 0;
}

int conn_flush(struct tern_client *c)
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
	conn_close(c, rc == TERN_ECLOSED ? TERN_ECLOSED : TERN_EIO, -1,
	           c->x->err[0] ? c->x->err : "write failed");
	return rc;
}

static bool output_pending(struct tern_client *c)
{
	/* A transport that buffered bytes (WebSocket) reports them through
	 * flush: ask it without side effects via its want flag. */
	return c->woff < c->wlen || (c->x && c->x->want_write);
}

int conn_wanted(struct tern_client *c)
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

void conn_complete(struct tern_client *c, struct omsg *m, int rc, int reason)
{
	struct waiter *w = client_waiter(c, W_PUBLISH, m->token);
	tern_token token = m->token;

	if (m->packet_id)
		id_set(c->ids, m->packet_id, false);
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

static void op_free(struct op *op)
{
	if (op == NULL)
		return;
	for (size_t i = 0; i < op->n; i++)
		free((char *)op->subs[i].filter);
	free(op->subs);
	free(op);
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
			id_set(c->ids, op->packet_id, false);
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

static void report_connect(struct tern_client *c, int rc, int reason, bool sp,
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
static void fail_attempt(struct tern_client *c, int rc, const char *fmt, ...)
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
	report_connect(c, rc, -1, false, c->why);
}

void conn_close(struct tern_client *c, int rc, int reason, const char *why)
{
	bool was_up = c->state == CS_UP || c->state == CS_CLOSING;

	if (c->state < CS_TCP)
		return;
	if (!was_up) {
		fail_attempt(c, rc, "%s", why);
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

/* A protocol violation by the server: say why (v5) and close. */
static void violation(struct tern_client *c, int rc, uint8_t reason,
                      const char *why)
{
	if (c->version == MQTT_V5 && c->state == CS_UP) {
		struct mqtt_packet p = {.type = MQTT_DISCONNECT};

		p.u.disconnect.reason = reason;
		if (send_packet(c, &p) == 0 && c->x)
			c->x->ops->write(c->x, c->wbuf + c->woff,
			                 c->wlen - c->woff);
	}
	conn_close(c, rc, -1, why);
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
	fail_attempt(c, TERN_ECONNECT, "cannot connect to %s:%d: %s",
	             c->url.host, c->url.port, strerror(err ? err : EINVAL));
}

void conn_start(struct tern_client *c)
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
		fail_attempt(c, TERN_ECONNECT, "cannot resolve %s: %s",
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
		fail_attempt(c, TERN_ECONNECT, "cannot connect to %s:%d: %s",
		             c->url.host, c->url.port, strerror(err));
		return;
	}
	start_transport(c);
}

static void send_connect(struct tern_client *c);

static void step_handshake(struct tern_client *c)
{
	int rc;

	c->x->want_read = c->x->want_write = false;
	rc = c->x->ops->handshake(c->x);
	if (rc == 0)
		return;
	if (rc < 0) {
		fail_attempt(c, rc == TERN_ETLS ? TERN_ETLS : TERN_ECONNECT,
		             "%s", c->x->err);
		return;
	}
	c->state = CS_CONNACK;
	c->x->want_read = c->x->want_write = false;
	send_connect(c);
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
		fail_attempt(c, rc, "out of memory");
		return;
	}
	c->state = CS_HANDSHAKE;
	step_handshake(c);
}

static void set_u16(struct mqtt_props *p, int id, uint16_t *field, uint16_t v)
{
	if (v == 0)
		return;
	p->present |= MQTT_PBIT(id);
	*field = v;
}

static void send_connect(struct tern_client *c)
{
	struct mqtt_packet p = {.type = MQTT_CONNECT};
	struct mqtt_connect *k = &p.u.connect;
	const char *id = c->assigned_id ? c->assigned_id : c->o.client_id;
	int rc;

	k->version = c->version;
	k->clean = c->o.clean_start;
	k->keepalive = c->o.keepalive;
	k->client_id.p = (const uint8_t *)(id ? id : "");
	k->client_id.len = (uint16_t)(id ? strlen(id) : 0);
	if (c->o.will_topic) {
		k->will = true;
		k->will_qos = (uint8_t)c->o.will_qos;
		k->will_retain = c->o.will_retain;
		k->will_topic.p = (const uint8_t *)c->o.will_topic;
		k->will_topic.len = (uint16_t)strlen(c->o.will_topic);
		k->will_payload.p = c->o.will_payload;
		k->will_payload.len = (uint32_t)c->o.will_payload_len;
		k->will_props = c->will_props;
		if (c->o.will_delay) {
			k->will_props.present |=
			        MQTT_PBIT(MQTT_PROP_WILL_DELAY);
			k->will_props.will_delay = c->o.will_delay;
		}
	}
	if (c->o.username) {
		k->has_username = true;
		k->username.p = (const uint8_t *)c->o.username;
		k->username.len = (uint16_t)strlen(c->o.username);
	}
	if (c->o.password) {
		k->has_password = true;
		k->password.p = (const uint8_t *)c->o.password;
		k->password.len = (uint32_t)c->o.password_len;
	}
	if (c->o.session_expiry) {
		k->props.present |= MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY);
		k->props.session_expiry = c->o.session_expiry;
	}
	set_u16(&k->props, MQTT_PROP_RECEIVE_MAXIMUM, &k->props.receive_maximum,
	        c->o.receive_maximum);
	set_u16(&k->props, MQTT_PROP_TOPIC_ALIAS_MAXIMUM,
	        &k->props.topic_alias_maximum, c->o.topic_alias_maximum);
	if (c->o.maximum_packet_size) {
		k->props.present |= MQTT_PBIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
		k->props.maximum_packet_size = c->o.maximum_packet_size;
	}
	if (c->o.request_response_info) {
		k->props.present |= MQTT_PBIT(MQTT_PROP_REQUEST_RESPONSE_INFO);
		k->props.request_response_info = 1;
	}
	if (c->connect_up) {
		k->props.present |= MQTT_PBIT(MQTT_PROP_USER_PROPERTY);
		k->props.user_props = c->connect_up;
		k->props.user_props_len = c->connect_up_len;
		k->props.user_prop_count = c->connect_up_count;
	}
	rc = send_packet(c, &p);
	if (rc < 0) {
		fail_attempt(c, rc, "cannot encode CONNECT: %s",
		             tern_strerror(rc));
		return;
	}
	conn_flush(c);
}

/* --- sending messages and operations --------------------------------- */

/* The alias to use for topic, 0 for none; *fresh when it is new. */
static uint16_t tx_alias(struct tern_client *c, const struct omsg *m,
                         bool *fresh)
{
	*fresh = false;
	if (c->version != MQTT_V5 || !c->o.topic_alias || c->tx_alias == NULL)
		return 0;
	for (uint16_t a = 1; a <= c->tx_alias_n; a++)
		if (strcmp(c->tx_alias[a], m->topic) == 0)
			return a;
	if (c->tx_alias_n >= c->tx_alias_cap)
		return 0;
	c->tx_alias[c->tx_alias_n + 1] = strdup(m->topic);
	if (c->tx_alias[c->tx_alias_n + 1] == NULL)
		return 0;
	*fresh = true;
	return ++c->tx_alias_n;
}

static void publish_packet(struct tern_client *c, const struct omsg *m,
                           bool dup, bool use_alias, struct mqtt_packet *p)
{
	struct mqtt_publish *pub = &p->u.publish;
	uint16_t alias = 0;
	bool fresh = false;

	memset(p, 0, sizeof(*p));
	p->type = MQTT_PUBLISH;
	pub->qos = m->qos;
	pub->dup = dup;
	pub->retain = m->retain;
	pub->packet_id = m->packet_id;
	pub->payload = m->payload;
	pub->payload_len = (uint32_t)m->len;
	pub->topic.p = (const uint8_t *)m->topic;
	pub->topic.len = m->topic_len;
	if (c->version == MQTT_V5)
		pub->props = m->props;
	if (use_alias)
		alias = tx_alias(c, m, &fresh);
	if (alias) {
		pub->props.present |= MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS);
		pub->props.topic_alias = alias;
		if (!fresh)
			pub->topic.len = 0;
	}
}

/* Sends m as a PUBLISH (dup: a retransmission, never with an alias). */
static int send_publish(struct tern_client *c, struct omsg *m, bool dup)
{
	struct mqtt_packet p;

	publish_packet(c, m, dup, !dup, &p);
	m->sent = true;
	return send_packet(c, &p);
}

static size_t publish_size(struct tern_client *c, const struct omsg *m)
{
	struct mqtt_packet p;

	publish_packet(c, m, false, false, &p);
	return mqtt_encoded_size(&p, c->version);
}

static int send_ack(struct tern_client *c, uint8_t type, uint16_t id,
                    uint8_t reason)
{
	struct mqtt_packet p = {.type = type};

	p.u.ack.packet_id = id;
	p.u.ack.reason = c->version == MQTT_V5 ? reason : 0;
	return send_packet(c, &p);
}

static unsigned window(struct tern_client *c)
{
	unsigned w = c->o.max_inflight ? c->o.max_inflight : 1;

	return c->srv_recv_max && c->srv_recv_max < w ? c->srv_recv_max : w;
}

bool conn_can_send_now(struct tern_client *c, int qos)
{
	return c->state == CS_UP && c->queue.count == 0 &&
	       (qos == 0 || c->inflight.count < window(c));
}

/* Hands queued messages to the connection while the window and the
 * output buffer allow, in order. */
void conn_drain(struct tern_client *c)
{
	uint64_t gen = c->gen;

	while (c->state == CS_UP && c->gen == gen && c->queue.head &&
	       c->wlen - c->woff < HIGH_WATER) {
		struct omsg *m = c->queue.head;

		if (m->qos && c->inflight.count >= window(c))
			break;
		omsg_pop(&c->queue);
		if (c->srv_max_packet &&
		    publish_size(c, m) > c->srv_max_packet) {
			conn_complete(c, m, TERN_ETOOBIG, -1);
			continue;
		}
		if (m->qos == 0) {
			int rc = send_publish(c, m, false);

			conn_complete(c, m, rc, 0);
			continue;
		}
		m->packet_id = id_alloc(c);
		if (m->packet_id == 0) {
			omsg_push_front(&c->queue, m);
			break;
		}
		m->state = OM_PUBLISH;
		omsg_push(&c->inflight, m);
		send_publish(c, m, false);
	}
	if (c->state == CS_UP && c->gen == gen)
		conn_flush(c);
}

int conn_send_op(struct tern_client *c, struct op *op)
{
	struct mqtt_sub_entry e[op->n ? op->n : 1];
	struct mqtt_packet p;

	if (c->state != CS_UP || op->n == 0)
		return 0;
	memset(&p, 0, sizeof(p));
	p.type = op->unsub ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE;
	for (size_t i = 0; i < op->n; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		e[i].filter.p = (const uint8_t *)op->subs[i].filter;
		e[i].filter.len = (uint16_t)strlen(op->subs[i].filter);
		e[i].qos = (uint8_t)op->subs[i].qos;
		if (c->version == MQTT_V5) {
			e[i].no_local = op->subs[i].no_local;
			e[i].retain_as_published =
			        op->subs[i].retain_as_published;
			e[i].retain_handling =
			        (uint8_t)op->subs[i].retain_handling;
		}
	}
	p.u.subscribe.list = e;
	p.u.subscribe.count = (uint32_t)op->n;
	if (!op->unsub && op->sub_id && c->version == MQTT_V5) {
		p.u.subscribe.props.present |=
		        MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID);
		p.u.subscribe.props.sub_ids = &op->sub_id;
		p.u.subscribe.props.sub_id_count = 1;
	}
	op->packet_id = id_alloc(c);
	if (op->packet_id == 0)
		return TERN_ELIMIT;
	p.u.subscribe.packet_id = op->packet_id;
	return send_packet(c, &p);
}

/* --- received packets ------------------------------------------------ */

/* The session after CONNACK: resume or start over. */
static void resume(struct tern_client *c, bool session_present)
{
	struct omsg_list keep = {0};
	struct omsg *m;

	if (!session_present) {
		/* The server has no state: QoS 2 receipts are void, and our
		 * unacknowledged messages go out again as new ones. A QoS 2
		 * message already PUBREC'd reached the server: done. */
		memset(c->rx_qos2, 0, sizeof(c->rx_qos2));
		while ((m = omsg_pop(&c->inflight)) != NULL) {
			if (m->state == OM_PUBREL) {
				conn_complete(c, m, 0, 0);
				continue;
			}
			id_set(c->ids, m->packet_id, false);
			m->packet_id = 0;
			m->sent = false;
			m->state = OM_QUEUED;
			omsg_push(&keep, m);
		}
		/* Put them back in front of the queue, in their order. */
		if (keep.head) {
			keep.tail->next = c->queue.head;
			if (c->queue.tail == NULL)
				c->queue.tail = keep.tail;
			c->queue.head = keep.head;
			c->queue.count += keep.count;
		}
		for (struct op *op = c->ops; op; op = op->next)
			op->acked = op->acked && op->unsub;
	}
	/* Retransmit what is inflight, in order (MQTT 4.4). */
	for (m = c->inflight.head; m; m = m->next) {
		if (m->state == OM_PUBREL)
			send_ack(c, MQTT_PUBREL, m->packet_id, 0);
		else
			send_publish(c, m, true);
	}
	for (struct op *op = c->ops; op; op = op->next)
		if (!op->acked)
			conn_send_op(c, op);
}

static void connack_props(struct tern_client *c, const struct mqtt_props *p)
{
	c->srv_recv_max = 65535;
	c->srv_alias_max = 0;
	c->srv_max_packet = 0;
	c->keepalive = c->o.keepalive;
	if (c->version != MQTT_V5)
		return;
	if (p->present & MQTT_PBIT(MQTT_PROP_RECEIVE_MAXIMUM))
		c->srv_recv_max = p->receive_maximum;
	if (p->present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
		c->srv_alias_max = p->topic_alias_maximum;
	if (p->present & MQTT_PBIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
		c->srv_max_packet = p->maximum_packet_size;
	if (p->present & MQTT_PBIT(MQTT_PROP_SERVER_KEEP_ALIVE))
		c->keepalive = p->server_keep_alive;
	if (p->present & MQTT_PBIT(MQTT_PROP_ASSIGNED_CLIENT_ID)) {
		free(c->assigned_id);
		c->assigned_id = strndup((const char *)p->assigned_client_id.p,
		                         p->assigned_client_id.len);
	}
	c->tx_alias_cap =
	        c->srv_alias_max < TX_ALIASES ? c->srv_alias_max : TX_ALIASES;
}

static void on_connack(struct tern_client *c, const struct mqtt_packet *p)
{
	const struct mqtt_connack *k = &p->u.connack;

	if (c->state != CS_CONNACK) {
		violation(c, TERN_EPROTO, MQTT_RC_PROTOCOL_ERROR,
		          "second CONNACK");
		return;
	}
	if (k->reason != 0) {
		int reason = k->reason;

		snprintf(c->why, sizeof(c->why),
		         "the server refused the connection (reason 0x%02x)",
		         reason);
		client_log(c, TERN_LOG_WARNING, "connect failed: %s", c->why);
		teardown(c);
		schedule(c);
		report_connect(c, TERN_EREFUSED, reason, false, c->why);
		return;
	}
	connack_props(c, &k->props);
	c->state = CS_UP;
	c->attempt = 0;
	c->no_retry = false;
	c->connects++;
	freeaddrinfo(c->ai);
	c->ai = c->ai_cur = NULL;
	client_log(c, TERN_LOG_INFO, "connected to %s:%d (%s%s, session %s)",
	           c->url.host, c->url.port, c->url.tls ? "tls" : "tcp",
	           c->url.ws ? "+ws" : "",
	           k->session_present ? "present" : "new");
	resume(c, k->session_present);
	report_connect(c, 0, 0, k->session_present, "connected");
	conn_drain(c);
}

/* Copies n bytes to the scratch area and NUL-terminates them. */
static char *sdup(uint8_t **at, const void *p, size_t n)
{
	char *s = (char *)*at;

	memcpy(s, p, n);
	s[n] = '\0';
	*at += n + 1;
	return s;
}

/* Builds the public view of a received PUBLISH's topic and props. */
static int rx_view(struct tern_client *c, const struct mqtt_publish *pub,
                   const uint8_t *topic, size_t tlen, struct tern_message *m,
                   struct tern_props *props)
{
	const struct mqtt_props *in = &pub->props;
	size_t need = tlen + 1, nup = in->user_prop_count,
	       nsid = in->sub_id_count;
	struct tern_user_prop *up;
	uint32_t *sids, pos = 0;
	struct mqtt_str k, v;
	uint8_t *at;

	need += nup * sizeof(*up) + nsid * sizeof(*sids) + 16;
	need += in->content_type.len + in->response_topic.len + 2 +
	        in->correlation_data.len;
	while (mqtt_user_prop_next(in, &pos, &k, &v))
		need += k.len + v.len + 2u;
	if (need > c->scratch_cap) {
		uint8_t *p = realloc(c->scratch, need);

		if (p == NULL)
			return TERN_ENOMEM;
		c->scratch = p;
		c->scratch_cap = need;
	}
	/* Arrays first, at malloc's alignment. */
	up = (struct tern_user_prop *)(void *)c->scratch;
	sids = (uint32_t *)(void *)(c->scratch + nup * sizeof(*up));
	at = (uint8_t *)(sids + nsid);
	memset(props, 0, sizeof(*props));
	pos = 0;
	for (size_t i = 0; mqtt_user_prop_next(in, &pos, &k, &v); i++) {
		up[i].key = sdup(&at, k.p, k.len);
		up[i].value = sdup(&at, v.p, v.len);
	}
	pos = 0;
	for (size_t i = 0; i < nsid && mqtt_sub_id_next(in, &pos, &sids[i]);
	     i++)
		;
	props->user_props = nup ? up : NULL;
	props->user_prop_count = nup;
	props->sub_ids = nsid ? sids : NULL;
	props->sub_id_count = nsid;
	props->has_payload_format =
	        in->present & MQTT_PBIT(MQTT_PROP_PAYLOAD_FORMAT);
	props->payload_format = in->payload_format;
	props->has_message_expiry =
	        in->present & MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY);
	props->message_expiry = in->message_expiry;
	if (in->present & MQTT_PBIT(MQTT_PROP_CONTENT_TYPE))
		props->content_type =
		        sdup(&at, in->content_type.p, in->content_type.len);
	if (in->present & MQTT_PBIT(MQTT_PROP_RESPONSE_TOPIC))
		props->response_topic =
		        sdup(&at, in->response_topic.p, in->response_topic.len);
	if (in->present & MQTT_PBIT(MQTT_PROP_CORRELATION_DATA)) {
		props->correlation_data = at;
		props->correlation_len = in->correlation_data.len;
		memcpy(at, in->correlation_data.p, in->correlation_data.len);
		at += in->correlation_data.len;
	}
	m->topic = sdup(&at, topic, tlen);
	m->topic_len = tlen;
	m->payload = pub->payload;
	m->payload_len = pub->payload_len;
	m->qos = pub->qos;
	m->retain = pub->retain;
	m->dup = pub->dup;
	m->props = props;
	m->packet_id = pub->packet_id;
	m->topic_alias = in->present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS)
	                         ? in->topic_alias
	                         : 0;
	return 0;
}

/* Resolves an inbound topic alias; NULL topic on a violation. */
static int rx_topic(struct tern_client *c, const struct mqtt_publish *pub,
                    const uint8_t **topic, size_t *tlen)
{
	uint16_t a;

	*topic = pub->topic.p;
	*tlen = pub->topic.len;
	if (!(pub->props.present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS)))
		return 0;
	a = pub->props.topic_alias;
	if (a == 0 || a > c->o.topic_alias_maximum || c->rx_alias == NULL)
		return TERN_EPROTO;
	if (pub->topic.len) {
		char *t = strndup((const char *)pub->topic.p, pub->topic.len);

		if (t == NULL)
			return TERN_ENOMEM;
		free(c->rx_alias[a]);
		c->rx_alias[a] = t;
		return 0;
	}
	if (c->rx_alias[a] == NULL)
		return TERN_EPROTO;
	*topic = (const uint8_t *)c->rx_alias[a];
	*tlen = strlen(c->rx_alias[a]);
	return 0;
}

static void deliver(struct tern_client *c, const struct mqtt_publish *pub,
                    const uint8_t *topic, size_t tlen)
{
	struct tern_message m;
	struct tern_props props;

	if (c->o.cb.on_message == NULL)
		return;
	if (rx_view(c, pub, topic, tlen, &m, &props) < 0) {
		client_log(c, TERN_LOG_ERROR,
		           "out of memory: message on %.*s not delivered",
		           (int)tlen, (const char *)topic);
		return;
	}
	client_cb_enter(c);
	c->o.cb.on_message(c, &m, c->o.userdata);
	client_cb_leave(c);
}

static void on_publish(struct tern_client *c, const struct mqtt_packet *p)
{
	const struct mqtt_publish *pub = &p->u.publish;
	const uint8_t *topic;
	size_t tlen;
	uint64_t gen = c->gen;
	int rc = rx_topic(c, pub, &topic, &tlen);

	if (rc < 0) {
		violation(c, TERN_EPROTO, MQTT_RC_TOPIC_ALIAS_INVALID,
		          "invalid topic alias from the server");
		return;
	}
	if (pub->qos == 2) {
		bool seen = id_used(c->rx_qos2, pub->packet_id);

		/* Exactly once: deliver on the first PUBLISH, remember the
		 * id until PUBREL, and only acknowledge repeats. */
		if (!seen) {
			id_set(c->rx_qos2, pub->packet_id, true);
			deliver(c, pub, topic, tlen);
		}
		if (c->gen == gen)
			send_ack(c, MQTT_PUBREC, pub->packet_id, 0);
		return;
	}
	deliver(c, pub, topic, tlen);
	if (pub->qos == 1 && c->gen == gen)
		send_ack(c, MQTT_PUBACK, pub->packet_id, 0);
}

static void on_puback(struct tern_client *c, const struct mqtt_packet *p)
{
	const struct mqtt_ack *a = &p->u.ack;
	struct omsg *m = omsg_find_id(&c->inflight, a->packet_id);
	uint8_t want = p->type == MQTT_PUBCOMP ? OM_PUBREL : OM_PUBLISH;

	if (m == NULL || m->state != want ||
	    (p->type == MQTT_PUBACK && m->qos != 1)) {
		client_log(c, TERN_LOG_WARNING, "%s for unknown packet id %u",
		           mqtt_type_name(p->type), a->packet_id);
		return;
	}
	omsg_take_id(&c->inflight, a->packet_id);
	conn_complete(c, m, 0, a->reason);
	conn_drain(c);
}

static void on_pubrec(struct tern_client *c, const struct mqtt_packet *p)
{
	const struct mqtt_ack *a = &p->u.ack;
	struct omsg *m = omsg_find_id(&c->inflight, a->packet_id);

	if (m == NULL || m->qos != 2) {
		send_ack(c, MQTT_PUBREL, a->packet_id,
		         MQTT_RC_PACKET_ID_NOT_FOUND);
		return;
	}
	if (a->reason >= 0x80) {
		/* v5: a refusal ends the exchange (§4.3.3). */
		omsg_take_id(&c->inflight, a->packet_id);
		conn_complete(c, m, 0, a->reason);
		conn_drain(c);
		return;
	}
	m->state = OM_PUBREL;
	send_ack(c, MQTT_PUBREL, a->packet_id, 0);
}

static void on_pubrel(struct tern_client *c, const struct mqtt_packet *p)
{
	uint16_t id = p->u.ack.packet_id;
	bool known = id_used(c->rx_qos2, id);

	id_set(c->rx_qos2, id, false);
	send_ack(c, MQTT_PUBCOMP, id, known ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
}

static struct op *take_op(struct tern_client *c, uint16_t id, bool unsub,
                          bool unlink)
{
	for (struct op **pp = &c->ops; *pp; pp = &(*pp)->next) {
		struct op *op = *pp;

		if (op->packet_id != id || op->unsub != unsub)
			continue;
		if (unlink)
			*pp = op->next;
		return op;
	}
	return NULL;
}

static void unlink_op(struct tern_client *c, struct op *op)
{
	for (struct op **pp = &c->ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			return;
		}
}

static void on_suback(struct tern_client *c, const struct mqtt_packet *p)
{
	const struct mqtt_suback *s = &p->u.suback;
	bool unsub = p->type == MQTT_UNSUBACK;
	struct op *op = take_op(c, s->packet_id, unsub, unsub);
	uint8_t zeros[64] = {0};
	const uint8_t *codes = s->codes;
	size_t n = s->count;
	struct waiter *w;
	tern_token token;

	if (op == NULL) {
		client_log(c, TERN_LOG_WARNING, "%s for unknown packet id %u",
		           mqtt_type_name(p->type), s->packet_id);
		return;
	}
	id_set(c->ids, op->packet_id, false);
	op->packet_id = 0;
	op->acked = true;
	token = op->token;
	if (unsub && c->version != MQTT_V5) {
		/* 3.1.1 UNSUBACK carries no codes: report success. */
		n = op->n < sizeof(zeros) ? op->n : sizeof(zeros);
		codes = zeros;
	}
	w = client_waiter(c, unsub ? W_UNSUB : W_SUB, token);
	if (w && !w->done) {
		w->done = true;
		for (size_t i = 0; i < n && i < w->ncodes; i++)
			w->codes[i] = codes[i];
		pthread_cond_broadcast(&c->cv);
	}
	/* An unsubscribe, or a subscription whose every filter was
	 * unsubscribed while its SUBACK was due, is finished. */
	if (!unsub && op->n == 0) {
		unlink_op(c, op);
		op_free(op);
		if (c->o.cb.on_subscribe) {
			client_cb_enter(c);
			c->o.cb.on_subscribe(c, token, codes, n, c->o.userdata);
			client_cb_leave(c);
		}
		return;
	}
	if (unsub)
		op_free(op);
	if (unsub ? c->o.cb.on_unsubscribe != NULL
	          : c->o.cb.on_subscribe != NULL) {
		client_cb_enter(c);
		if (unsub)
			c->o.cb.on_unsubscribe(c, token, codes, n,
			                       c->o.userdata);
		else
			c->o.cb.on_subscribe(c, token, codes, n, c->o.userdata);
		client_cb_leave(c);
	}
}

static void on_pingresp(struct tern_client *c, const struct mqtt_packet *p)
{
	(void)p;
	c->ping_at = 0;
}

static void on_disconnect(struct tern_client *c, const struct mqtt_packet *p)
{
	char why[64];

	snprintf(why, sizeof(why), "DISCONNECT from the server (0x%02x)",
	         p->u.disconnect.reason);
	conn_close(c, TERN_ECLOSED, p->u.disconnect.reason, why);
}

static void unexpected(struct tern_client *c, const struct mqtt_packet *p)
{
	char why[64];

	snprintf(why, sizeof(why), "unexpected %s from the server",
	         mqtt_type_name(p->type));
	violation(c, TERN_EPROTO, MQTT_RC_PROTOCOL_ERROR, why);
}

typedef void (*handler)(struct tern_client *, const struct mqtt_packet *);

static const handler handlers[16] = {
        [MQTT_CONNECT] = unexpected,   [MQTT_CONNACK] = on_connack,
        [MQTT_PUBLISH] = on_publish,   [MQTT_PUBACK] = on_puback,
        [MQTT_PUBREC] = on_pubrec,     [MQTT_PUBREL] = on_pubrel,
        [MQTT_PUBCOMP] = on_puback,    [MQTT_SUBSCRIBE] = unexpected,
        [MQTT_SUBACK] = on_suback,     [MQTT_UNSUBSCRIBE] = unexpected,
        [MQTT_UNSUBACK] = on_suback,   [MQTT_PINGREQ] = unexpected,
        [MQTT_PINGRESP] = on_pingresp, [MQTT_DISCONNECT] = on_disconnect,
        [MQTT_AUTH] = unexpected,
};

/*
 * Parses and dispatches the complete packets in rbuf. Returns 1 when the
 * connection is still the same, 0 when a handler ended it.
 */
static int dispatch(struct tern_client *c)
{
	uint64_t gen = c->gen;
	size_t pos = 0;

	while (c->gen == gen && pos < c->rlen) {
		struct mqtt_fixed fh;
		struct mqtt_packet p;
		struct mqtt_error err = {0};
		int n = mqtt_fixed_header(c->rbuf + pos, c->rlen - pos, &fh);
		uint32_t max = c->o.maximum_packet_size;

		if (n == TERN_EAGAIN)
			break;
		if (n < 0) {
			violation(c, TERN_EMALFORMED, MQTT_RC_MALFORMED,
			          "malformed fixed header from the server");
			return 0;
		}
		if (max && (uint64_t)n + fh.remaining > max) {
			violation(c, TERN_ETOOBIG, MQTT_RC_PACKET_TOO_LARGE,
			          "packet from the server larger than "
			          "maximum_packet_size");
			return 0;
		}
		if (c->rlen - pos < (size_t)n + fh.remaining)
			break;
		if (c->state == CS_CONNACK && fh.type != MQTT_CONNACK) {
			fail_attempt(c, TERN_EPROTO,
			             "the server sent %s before CONNACK",
			             mqtt_type_name(fh.type));
			return 0;
		}
		if (mqtt_decode(&fh, c->rbuf + pos + n, fh.remaining,
		                c->version, &p, &err) < 0) {
			char why[160];

			snprintf(why, sizeof(why),
			         "invalid %s from the server: %s",
			         mqtt_type_name(fh.type),
			         err.what ? err.what : "malformed");
			if (c->state == CS_CONNACK)
				fail_attempt(c, TERN_EPROTO, "%s", why);
			else
				violation(c, TERN_EPROTO, err.reason, why);
			return 0;
		}
		pos += (size_t)n + fh.remaining;
		handlers[p.type](c, &p);
	}
	if (c->gen != gen)
		return 0;
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
	return 1;
}

/* Reads what the transport has and dispatches it. */
static void do_read(struct tern_client *c)
{
	uint64_t gen = c->gen;

	while (c->gen == gen) {
		ssize_t n;

		if (c->rcap - c->rlen < READ_CHUNK) {
			size_t cap = c->rcap ? c->rcap * 2 : 2 * READ_CHUNK;
			uint8_t *p = realloc(c->rbuf, cap);

			if (p == NULL) {
				conn_close(c, TERN_ENOMEM, -1, "out of memory");
				return;
			}
			c->rbuf = p;
			c->rcap = cap;
		}
		n = c->x->ops->read(c->x, c->rbuf + c->rlen, c->rcap - c->rlen);
		if (n == TERN_EAGAIN)
			return;
		if (n <= 0) {
			conn_close(c, n == 0 ? TERN_ECLOSED : (int)n, -1,
			           n == 0 || !c->x->err[0]
			                   ? "connection closed by the server"
			                   : c->x->err);
			return;
		}
		c->rlen += (size_t)n;
		if (!dispatch(c))
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

void conn_io(struct tern_client *c, int revents)
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
			conn_flush(c);
		if (c->gen == gen && c->state == CS_UP)
			conn_drain(c);
		if (c->gen == gen && c->state == CS_CLOSING &&
		    !output_pending(c))
			conn_close(c, 0, -1, "disconnected");
		return;
	default: return;
	}
}

/* --- timers ----------------------------------------------------------- */

void conn_timers(struct tern_client *c, uint64_t now)
{
	uint64_t ka = (uint64_t)c->keepalive * 1000u;

	switch (c->state) {
	case CS_WAIT_RETRY:
		if (now >= c->retry_at)
			conn_start(c);
		return;
	case CS_TCP:
	case CS_HANDSHAKE:
	case CS_CONNACK:
		if (now >= c->deadline)
			fail_attempt(c, TERN_ETIMEDOUT,
			             "no connection within %d ms",
			             c->o.connect_timeout_ms);
		return;
	case CS_UP:
		if (ka == 0)
			return;
		if (c->ping_at && now - c->ping_at >= ka) {
			conn_close(c, TERN_ETIMEDOUT, -1,
			           "the server did not answer PINGREQ "
			           "(keepalive)");
			return;
		}
		if (!c->ping_at && now - c->last_tx >= ka) {
			struct mqtt_packet p = {.type = MQTT_PINGREQ};

			if (send_packet(c, &p) == 0) {
				c->ping_at = now;
				conn_flush(c);
			}
		}
		return;
	case CS_CLOSING:
		if (now >= c->deadline)
			conn_close(c, 0, -1, "disconnected");
		return;
	default: return;
	}
}

static int64_t until(uint64_t at, uint64_t now)
{
	return at > now ? (int64_t)(at - now) : 0;
}

int64_t conn_next_timer(struct tern_client *c, uint64_t now)
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

void conn_disconnect(struct tern_client *c)
{
	struct mqtt_packet p = {.type = MQTT_DISCONNECT};

	c->want_up = false;
	c->no_retry = false;
	switch (c->state) {
	case CS_UP:
		p.u.disconnect.reason = MQTT_RC_SUCCESS;
		send_packet(c, &p);
		c->state = CS_CLOSING;
		c->deadline = clock_ms() + 2000;
		conn_flush(c);
		if (c->state == CS_CLOSING && !output_pending(c))
			conn_close(c, 0, -1, "disconnected");
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
