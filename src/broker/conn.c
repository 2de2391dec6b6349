/*
 * Connections: reading and framing packets, dispatching them to the
 * handlers, encoding what we send into the output queue, flushing it, and
 * closing (with will handling and session detach). See conn.h for the state
 * machine and ownership.
 */
#include "broker/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/addrcap.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/memlimit.h"
#include "broker/msg.h"
#include "broker/persist.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "net/cidr.h"
#include "net/proxy.h"
#include "net/tls.h"
#include "net/ws.h"

/* Stop pumping session queues into the socket buffer above this. */
#define CONN_OQ_HIGH (1u << 20)
/* Largest CONNECT accepted when max_packet_size is not set. */
#define CONN_MAX_CONNECT (1u << 20)
/* Largest single read; the buffer grows only as data actually arrives. */
#define CONN_READ_CHUNK 65536
/* Over memory_limit, read buffers may not grow beyond this (twice the
 * worker's scratch buffer: packets up to that size are still read). */
#define CONN_RBUF_OVER_LIMIT (256u << 10)
/* Reads per readiness event, so one busy client cannot starve others. */
#define CONN_READS_PER_EVENT 4

typedef int (*packet_handler)(struct conn *c, struct mqtt_packet *p);

/* Client-to-server packets; NULL entries are never valid from a client. */
static const packet_handler handlers[16] = {
        [MQTT_CONNECT] = handle_connect,
        [MQTT_PUBLISH] = handle_publish,
        [MQTT_PUBACK] = handle_puback,
        [MQTT_PUBREC] = handle_pubrec,
        [MQTT_PUBREL] = handle_pubrel,
        [MQTT_PUBCOMP] = handle_pubcomp,
        [MQTT_SUBSCRIBE] = handle_subscribe,
        [MQTT_UNSUBSCRIBE] = handle_unsubscribe,
        [MQTT_PINGREQ] = handle_pingreq,
        [MQTT_DISCONNECT] = handle_disconnect,
        [MQTT_AUTH] = handle_auth,
};

const char *conn_transport_name(int transport)
{
	static const char *names[TR_COUNT] = {"tcp", "tls", "ws", "wss"};

	return transport >= 0 && transport < TR_COUNT ? names[transport] : "?";
}

static void conn_unref_msg(void *ref)
{
	msg_unref(ref);
}

static void conn_on_io(struct loop_io *io, uint32_t events);
static void conn_unthrottle(struct conn *c);

/*
 * max_connections_per_address: counts c's TCP peer, unless it is a trusted
 * proxy (whose clients all share its address). Returns false, logged and
 * counted, when that address is at its limit.
 */
static bool conn_take_address(struct conn *c, const char *host)
{
	struct broker *b = c->w->b;
	int limit = b->cfg->max_connections_per_address;

	if (limit < 0 || cidr_list_match(&b->trusted[c->ls->index], host))
		return true;
	if (!addrcap_take(b->addrcap, host, limit)) {
		log_msg(LOG_NOTICE,
		        "Connection from %s refused: "
		        "max_connections_per_address (%d) reached.",
		        c->peer, limit);
		STAT_ADD(b, refused_per_address, 1);
		return false;
	}
	c->cap_taken = true;
	return true;
}

/*
 * Sets the connection's address: "host:port" and the bare host share one
 * allocation sized to them (two 64-byte arrays were an eighth of an idle
 * connection). Returns 0, or TERN_ENOMEM with the old address kept.
 */
static int conn_set_addr(struct conn *c, const char *peer, const char *host)
{
	size_t np = strlen(peer) + 1, nh = strlen(host) + 1;
	char *a = malloc(np + nh);

	if (!a)
		return TERN_ENOMEM;
	memcpy(a, peer, np);
	memcpy(a + np, host, nh);
	free(c->peer);
	c->peer = a;
	c->host = a + np;
	return 0;
}

void conn_accept(struct worker *w, struct listener_sock *ls, int fd,
                 const char *peer, const char *host)
{
	struct broker *b = w->b;
	struct conn *c = calloc(1, sizeof(*c));

	if (!c || conn_set_addr(c, peer, host) != 0) {
		log_msg(LOG_ERR, "Out of memory accepting %s; closed.", peer);
		goto fail;
	}
	c->io.fd = fd;
	c->io.cb = conn_on_io;
	c->w = w;
	c->ls = ls;
	c->transport = (uint8_t)ls->transport;
	c->id = atomic_fetch_add(&b->next_conn_id, 1) + 1;
	c->accepted_at = c->last_rx = clock_ms();
	outq_init(&c->oq, conn_unref_msg);
	c->oq.pool = &w->oqpool;
	c->state = CONN_CONNECTING;
	if (c->transport == TR_TLS || c->transport == TR_WSS) {
		struct tls_ctx *ctx = broker_tls_ctx(b, ls->index);

		c->tls = ctx ? tls_conn_new(ctx, fd) : NULL;
		tls_ctx_unref(ctx);
		if (!c->tls) {
			log_msg(LOG_ERR, "Cannot start TLS for %s.", peer);
			goto fail;
		}
	}
	if (c->transport == TR_WS || c->transport == TR_WSS) {
		c->state = CONN_HTTP;
		if (conn_ws_start(c) != 0)
			goto fail;
	}
	if (ls->cfg->proxy_protocol) {
		/* Only a trusted proxy may speak first with a PROXY header;
		 * anyone else on such a listener is refused outright. */
		if (!cidr_list_match(&b->trusted[ls->index], host)) {
			log_msg(LOG_NOTICE,
			        "Connection from %s refused: not a trusted "
			        "proxy "
			        "(listener %u requires the PROXY protocol).",
			        peer, ls->port);
			goto fail;
		}
		c->proxy_pending = true;
	}
	if (!conn_take_address(c, host) ||
	    loop_add(w->loop, &c->io, EPOLLIN) != 0)
		goto fail;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	STAT_ADD(b, connections, 1);
	atomic_fetch_add(&b->listener_conns[ls->index], 1);
	if (b->cfg->connection_messages)
		log_msg(LOG_NOTICE, "New connection from %s on port %u (%s).",
		        peer, ls->port, conn_transport_name(c->transport));
	return;
fail:
	if (c) {
		if (c->cap_taken)
			addrcap_release(b->addrcap, c->host);
		conn_ws_free(c);
		tls_conn_free(c->tls);
		free(c->peer);
		free(c);
	}
	close(fd);
}

struct session *conn_session_lock(struct conn *c)
{
	struct session *s = c->s;

	if (!s)
		return NULL;
	pthread_mutex_lock(&s->mu);
	if (s->conn_id != c->id) {
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	return s;
}

int conn_send(struct conn *c, const struct mqtt_packet *p)
{
	size_t n = mqtt_encoded_size(p, c->version);
	uint8_t *dst;
	int rc;

	if (c->client_max_packet && n > c->client_max_packet)
		return TERN_ETOOBIG;
	dst = outq_reserve(&c->oq, n);
	if (!dst)
		return TERN_ENOMEM;
	rc = mqtt_encode(p, c->version, dst, n);
	outq_commit(&c->oq, n, rc > 0 ? (size_t)rc : 0);
	if (rc < 0)
		return rc;
	STAT_ADD(c->w->b, msgs_sent, 1);
	worker_want_flush(c->w, c);
	return 0;
}

int conn_send_ack(struct conn *c, uint8_t type, uint16_t pid, uint8_t reason)
{
	struct mqtt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.u.ack.packet_id = pid;
	p.u.ack.reason = reason;
	return conn_send(c, &p);
}

/*
 * Outbound topic alias (MQTT 5 §3.3.2.3.4): the first messages on up to
 * CONN_ALIAS_OUT_MAX topics set an alias; later ones send only the alias.
 * Returns the alias or 0, with *known true when the client has it already.
 * A new alias is only proposed here; conn_alias_commit records it once the
 * packet carrying it is queued.
 */
static uint16_t conn_alias_out(const struct conn *c, const char *topic,
                               uint16_t len, bool *known)
{
	uint16_t i, max = c->client_alias_max, n = c->al ? c->al->nout : 0;

	*known = false;
	if (c->version != MQTT_V5 || !max)
		return 0;
	for (i = 1; i <= n; i++)
		if (strncmp(c->al->out[i], topic, len) == 0 &&
		    c->al->out[i][len] == '\0') {
			*known = true;
			return i;
		}
	if (n >= max || n >= CONN_ALIAS_OUT_MAX)
		return 0;
	return (uint16_t)(n + 1);
}

struct conn_aliases *conn_aliases(struct conn *c)
{
	if (!c->al)
		c->al = calloc(1, sizeof(*c->al));
	return c->al;
}

static void conn_alias_commit(struct conn *c, const char *topic, uint16_t len)
{
	struct conn_aliases *al = conn_aliases(c);
	char *t = al ? strndup(topic, len) : NULL;

	/* Without memory the alias stays unrecorded; the next message on a
	 * new topic re-maps the same number, which the protocol allows. */
	if (t)
		al->out[++al->nout] = t;
}

/*
 * The common case: the header encoded once per variant and shared. QoS 0
 * queues a reference to the shared bytes; QoS 1/2 copies them (a few dozen
 * bytes) to patch in the packet id. Returns 1 when the fast path does not
 * apply (DUP, subscription ids, expiry, topic alias), else as
 * conn_send_publish.
 */
static int conn_send_shared(struct conn *c, const struct qmsg *q)
{
	struct msg *m = q->m;
	const struct msg_enc *e;
	uint8_t *dst;

	if (q->dup || q->nsubids || m->has_expiry ||
	    (c->version == MQTT_V5 && c->client_alias_max))
		return 1;
	e = msg_encoded(m, c->version, q->qos, q->retain);
	if (!e)
		return 1;
	if (c->client_max_packet &&
	    (uint64_t)e->len + m->payload_len > c->client_max_packet)
		return TERN_ETOOBIG;
	if (!q->qos) {
		if (outq_append_ref(&c->oq, msg_ref(m), e->bytes, e->len) != 0)
			return TERN_ENOMEM;
	} else {
		if (!(dst = outq_reserve(&c->oq, e->len)))
			return TERN_ENOMEM;
		memcpy(dst, e->bytes, e->len);
		dst[e->pid_off] = (uint8_t)(q->pid >> 8);
		dst[e->pid_off + 1] = (uint8_t)q->pid;
	}
	if (m->payload_len && outq_append_ref(&c->oq, msg_ref(m), m->payload,
	                                      m->payload_len) != 0)
		return TERN_ENOMEM;
	STAT_ADD(c->w->b, msgs_sent, 1);
	STAT_ADD(c->w->b, pub_sent, 1);
	worker_want_flush(c->w, c);
	return 0;
}

int conn_send_publish(struct conn *c, const struct qmsg *q, uint64_t now)
{
	struct mqtt_packet p;
	struct mqtt_publish *pub = &p.u.publish;
	const struct msg *m = q->m;
	uint32_t remaining;
	uint16_t alias;
	bool known;
	size_t total, head;
	uint8_t *dst;
	int rc;

	if ((rc = conn_send_shared(c, q)) != 1)
		return rc;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	pub->qos = q->qos;
	pub->dup = q->dup;
	pub->retain = q->retain;
	pub->topic.p = (const uint8_t *)m->topic;
	pub->topic.len = m->topic_len;
	pub->packet_id = q->qos ? q->pid : 0;
	pub->payload = m->payload;
	pub->payload_len = m->payload_len;
	pub->props = m->props;
	if (msg_expired(m, now, &remaining))
		return TERN_ETIMEDOUT;
	if (m->has_expiry) {
		pub->props.present |= MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY);
		pub->props.message_expiry = remaining;
	}
	if ((alias = conn_alias_out(c, m->topic, m->topic_len, &known))) {
		pub->props.present |= MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS);
		pub->props.topic_alias = alias;
		if (known)
			pub->topic.len = 0;
	}
	pub->props.sub_ids = q->subids;
	pub->props.sub_id_count = q->nsubids;
	if (q->nsubids)
		pub->props.present |= MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID);

	total = mqtt_encoded_size(&p, c->version);
	if (c->client_max_packet && total > c->client_max_packet)
		return TERN_ETOOBIG;
	head = total - m->payload_len;
	dst = outq_reserve(&c->oq, head);
	if (!dst)
		return TERN_ENOMEM;
	rc = mqtt_encode_publish_head(pub, c->version, dst, head);
	outq_commit(&c->oq, head, rc > 0 ? (size_t)rc : 0);
	if (rc < 0)
		return rc;
	/* The payload goes out by reference: no copy per subscriber. */
	if (alias && !known)
		conn_alias_commit(c, m->topic, m->topic_len);
	if (m->payload_len && outq_append_ref(&c->oq, msg_ref(q->m), m->payload,
	                                      m->payload_len) != 0)
		return TERN_ENOMEM;
	STAT_ADD(c->w->b, msgs_sent, 1);
	STAT_ADD(c->w->b, pub_sent, 1);
	worker_want_flush(c->w, c);
	return 0;
}

/* The outgoing inflight window for this client. */
static uint32_t conn_window(const struct conn *c, const struct session *s)
{
	uint32_t win = s->recv_max;
	int cfg = c->w->b->cfg->max_inflight_messages;

	if (cfg > 0 && (uint32_t)cfg < win)
		win = (uint32_t)cfg;
	return win ? win : 1;
}

void conn_pump_locked(struct conn *c, struct session *s)
{
	struct broker *b = c->w->b;
	uint64_t now = clock_ms();
	uint32_t win = conn_window(c, s);

	while (s->qlen && c->oq.bytes < CONN_OQ_HIGH) {
		struct qmsg *front = &s->q[s->qhead];
		struct qmsg q;
		int rc;

		if (front->qos && s->ninfl >= win)
			break;
		if (front->qos && s->ninfl == s->infl_cap) {
			uint32_t ncap = s->infl_cap ? s->infl_cap * 2 : 8;
			struct qmsg *v = realloc(s->infl, ncap * sizeof(*v));

			if (!v)
				break;
			s->infl = v;
			s->infl_cap = ncap;
		}
		session_dequeue(b, s, &q);
		if (q.qos) {
			q.pid = session_next_pid(s);
			q.state = q.qos == 1 ? QS_WAIT_PUBACK : QS_WAIT_PUBREC;
		}
		rc = conn_send_publish(c, &q, now);
		if (rc == TERN_ETOOBIG || rc == TERN_ETIMEDOUT) {
			/* MQTT 5 §3.1.2.11.4: discard as if delivered. */
			STAT_DROP(b, rc == TERN_ETOOBIG ? DROP_TOO_LARGE
			                                : DROP_EXPIRED);
			rc = 1;
		}
		if (rc != 0 || !q.qos) {
			if (s->p)
				persist_queue_del(s, &q);
			qmsg_release(&q);
			continue;
		}
		s->infl[s->ninfl++] = q;
		if (s->p)
			persist_queue_update(s, &q);
	}
}

/* Validates the fixed header before the body is buffered. */
static int conn_check_header(struct conn *c, const struct mqtt_fixed *fh,
                             int hl)
{
	uint32_t limit = c->w->b->cfg->max_packet_size;

	if (c->state == CONN_CONNECTING && fh->type != MQTT_CONNECT) {
		conn_close(c, MQTT_RC_PROTOCOL_ERROR,
		           "first packet is not CONNECT");
		return TERN_EPROTO;
	}
	/* An unauthenticated peer gets a small budget: a CONNECT (its will
	 * included) above CONN_MAX_CONNECT needs max_packet_size set that
	 * high explicitly. */
	if (c->state == CONN_CONNECTING && !limit &&
	    fh->remaining > CONN_MAX_CONNECT) {
		conn_close(c, 0, "CONNECT too large");
		return TERN_ETOOBIG;
	}
	if (limit && (uint64_t)fh->remaining + (uint64_t)hl > limit) {
		STAT_LIMIT(c->w->b, LIM_PACKET_SIZE);
		conn_close(c, MQTT_RC_PACKET_TOO_LARGE,
		           "packet exceeds max_packet_size");
		return TERN_ETOOBIG;
	}
	return 0;
}

/* Decodes and handles one complete packet. */
static int conn_dispatch(struct conn *c, const struct mqtt_fixed *fh,
                         const uint8_t *body)
{
	struct mqtt_packet p;
	struct mqtt_error err = {0};
	int rc;

	/* A packet only a server may send is a protocol error whatever its
	 * contents (MQTT 5 §4.13.1); decoding it would report less. */
	if (fh->type != 0 && !handlers[fh->type]) {
		conn_close(c, MQTT_RC_PROTOCOL_ERROR,
		           "packet type not allowed from a client");
		return TERN_EPROTO;
	}
	/* Any second CONNECT is a protocol error (MQTT-3.1.0-2), checked
	 * before decoding: an invalid one was answered as if it were the
	 * first, with a 3.1.1 CONNACK "unacceptable protocol version" on a
	 * v5 connection (found by broker_fuzz). */
	if (c->state == CONN_ACTIVE && fh->type == MQTT_CONNECT) {
		conn_close(c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT");
		return TERN_EPROTO;
	}
	rc = mqtt_decode(fh, body, fh->remaining, c->version, &p, &err);
	if (rc != 0) {
		if (fh->type == MQTT_CONNECT)
			return handle_connect_invalid(c, body, fh->remaining,
			                              rc, &err);
		conn_close(c, err.reason ? err.reason : MQTT_RC_MALFORMED,
		           err.what ? err.what : tern_strerror(rc));
		return rc;
	}
	c->last_rx = clock_ms();
	STAT_ADD(c->w->b, msgs_received, 1);
	return handlers[p.type](c, &p);
}

/*
 * Deliveries one connection may cause in one turn of its worker's loop
 * before the others get theirs. A publisher with a fan-out of hundreds
 * would otherwise route all it read (4 x 64 KiB) in one go while every
 * other client of the worker waits: in the load test (a flood of 1 KiB
 * messages to 200 stalled subscribers) a QoS 1 pair on the same worker
 * waited 300 ms in release and over a second under ASan, long enough for
 * its own queue to fill and drop.
 */
#define CONN_TURN_DELIVERIES 1024

static bool conn_turn_over(const struct conn *c)
{
	return c->w->delivered - c->turn_start >= CONN_TURN_DELIVERIES;
}

/* Puts c on its worker's pending list for another turn. */
static void conn_defer(struct conn *c)
{
	if (c->pending)
		return;
	c->pending = true;
	c->pending_next = c->w->pending;
	c->w->pending = c;
}

static void conn_undefer(struct conn *c)
{
	struct conn **pp;

	/* Not found: c is on the list worker_run_pending is walking, whose
	 * link must stay. */
	for (pp = &c->w->pending; *pp; pp = &(*pp)->pending_next)
		if (*pp == c) {
			*pp = c->pending_next;
			c->pending_next = NULL;
			break;
		}
	c->pending = false;
}

/* Parses and handles every complete packet in rbuf, or as many as its turn
 * allows (then c waits on the pending list); keeps the rest. */
int conn_parse(struct conn *c)
{
	size_t off = 0;
	int rc = 0;

	while (c->state != CONN_CLOSED && !c->throttled && !c->ack_paused &&
	       !c->pending && off < c->rlen) {
		struct mqtt_fixed fh;
		int hl;

		if (conn_turn_over(c)) {
			conn_defer(c);
			break;
		}
		hl = mqtt_fixed_header(c->rbuf + off, c->rlen - off, &fh);

		if (hl == TERN_EAGAIN)
			break;
		if (hl < 0) {
			conn_close(c, MQTT_RC_MALFORMED,
			           "invalid remaining length");
			return hl;
		}
		if ((rc = conn_check_header(c, &fh, hl)) != 0)
			return rc;
		if (c->rlen - off < (size_t)hl + fh.remaining)
			break;
		rc = conn_dispatch(c, &fh, c->rbuf + off + hl);
		off += (size_t)hl + fh.remaining;
		if (rc != 0)
			return rc;
	}
	if (off) {
		/* Raw WebSocket bytes not yet decoded follow the MQTT
		 * bytes; they move down too. */
		memmove(c->rbuf, c->rbuf + off, c->rlen - off + c->rraw);
		c->rlen -= off;
	}
	return 0;
}

/* Ensures room to read; the buffer doubles only when full. A borrowed
 * worker buffer that fills up is replaced by one of the connection's own.
 * Returns 0, TERN_ENOMEM, or TERN_ELIMIT (memory_limit). */
static int conn_rbuf_room(struct conn *c)
{
	size_t ncap;
	uint8_t *nb;

	if (c->rcap - c->rlen - c->rraw >= 1024)
		return 0;
	ncap = c->rcap ? c->rcap * 2 : 4096;
	/* Over memory_limit, a packet this large being received would make
	 * the broker hold more still: its sender is the offender. */
	if (ncap > CONN_RBUF_OVER_LIMIT && memlimit_over(c->w->b))
		return TERN_ELIMIT;
	if (c->rbuf_borrowed) {
		nb = malloc(ncap);
		if (!nb)
			return TERN_ENOMEM;
		memcpy(nb, c->rbuf, c->rlen + c->rraw);
		c->rbuf_borrowed = false;
	} else {
		nb = realloc(c->rbuf, ncap);
		if (!nb)
			return TERN_ENOMEM;
	}
	c->rbuf = nb;
	c->rcap = ncap;
	return 0;
}

/* The connection's read buffer could not grow (conn_rbuf_room): closed,
 * with 0x97 and counted when memory_limit refused it. */
static void conn_rbuf_refused(struct conn *c, int rc)
{
	struct broker *b = c->w->b;

	if (rc != TERN_ELIMIT) {
		conn_close(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
		return;
	}
	STAT_ADD(b, mem_disconnects, 1);
	STAT_LIMIT(b, LIM_MEMORY);
	conn_close(c, MQTT_RC_QUOTA_EXCEEDED,
	           "memory_limit exceeded while receiving a large packet");
}

/*
 * Connections without buffered input read into their worker's scratch
 * buffer, so an idle connection holds no read buffer at all. After reading,
 * leftover bytes (a partial packet or frame) move to a buffer of the
 * connection's own. Returns 0 or TERN_ENOMEM.
 */
static void conn_rbuf_borrow(struct conn *c)
{
	if (c->rbuf || !c->w->scratch)
		return;
	c->rbuf = c->w->scratch;
	c->rcap = c->w->scratch_cap;
	c->rbuf_borrowed = true;
}

static int conn_rbuf_settle(struct conn *c)
{
	size_t keep = c->rlen + c->rraw;
	uint8_t *own;

	if (!c->rbuf_borrowed)
		return 0;
	c->rbuf_borrowed = false;
	if (!keep) {
		c->rbuf = NULL;
		c->rcap = 0;
		return 0;
	}
	own = malloc(keep > 4096 ? keep : 4096);
	if (!own) {
		c->rbuf = NULL;
		c->rcap = 0;
		return TERN_ENOMEM;
	}
	memcpy(own, c->rbuf, keep);
	c->rbuf = own;
	c->rcap = keep > 4096 ? keep : 4096;
	return 0;
}

/* Shrinks a large idle read buffer so idle connections stay small. */
static void conn_rbuf_trim(struct conn *c)
{
	if (!c->rbuf_borrowed && c->rlen == 0 && c->rraw == 0 &&
	    c->rcap > 65536) {
		free(c->rbuf);
		c->rbuf = NULL;
		c->rcap = 0;
	}
}

bool conn_peer_trusted(const struct conn *c)
{
	return cidr_list_match(&c->w->b->trusted[c->ls->index], c->host);
}

void conn_set_real_address(struct conn *c, const char *host, uint16_t port,
                           const char *how)
{
	char old[SOCK_ADDRSTRLEN], peer[SOCK_ADDRSTRLEN];

	if (!port)
		snprintf(peer, sizeof(peer), "%s", host);
	else if (strchr(host, ':'))
		snprintf(peer, sizeof(peer), "[%s]:%u", host, port);
	else
		snprintf(peer, sizeof(peer), "%s:%u", host, port);
	snprintf(old, sizeof(old), "%s", c->peer);
	/* Only a trusted proxy names another host, and its connections are
	 * never counted per address; should one be, it stops being counted
	 * before host (the address released at close) changes. */
	if (c->cap_taken) {
		addrcap_release(c->w->b->addrcap, c->host);
		c->cap_taken = false;
	}
	if (conn_set_addr(c, peer, host) != 0) {
		log_msg(LOG_ERR, "Out of memory: %s stays %s (%s says %s).",
		        old, old, how, peer);
		return;
	}
	log_msg(LOG_INFO, "Connection from %s is %s (%s).", old, c->peer, how);
}

/*
 * Reads the PROXY protocol header that a trusted proxy sends first (the
 * bytes are in the MQTT area for TCP, the raw area for WebSocket) and takes
 * the client's address from it. Returns 0 (done or waiting), or <0 after
 * closing.
 */
static int conn_proxy_input(struct conn *c)
{
	uint8_t *buf = c->ws ? c->rbuf + c->rlen : c->rbuf;
	size_t *len = c->ws ? &c->rraw : &c->rlen;
	struct proxy_info info;
	int n = proxy_parse(buf, *len, &info);

	if (n == TERN_EAGAIN)
		return 0;
	if (n < 0) {
		conn_close(c, 0, "invalid PROXY protocol header");
		return n;
	}
	if (!info.local)
		conn_set_real_address(c, info.src_host, info.src_port,
		                      "PROXY protocol");
	memmove(buf, buf + n, *len - (size_t)n);
	*len -= (size_t)n;
	c->proxy_pending = false;
	return 0;
}

static const char *tls_fail_text(enum tls_fail why)
{
	switch (why) {
	case TLSF_NO_CERT: return "TLS handshake failed: no client certificate";
	case TLSF_BAD_CERT:
		return "TLS handshake failed: certificate not accepted";
	case TLSF_VERSION:
		return "TLS handshake failed: no common protocol version or "
		       "cipher";
	case TLSF_NOT_TLS:
		return "TLS handshake failed: peer does not speak TLS";
	default: return "TLS handshake failed";
	}
}

/* Advances the TLS handshake: 1 done, 0 waiting, <0 closed. */
static int conn_tls_handshake(struct conn *c)
{
	int idx = c->transport == TR_WSS ? 1 : 0;
	enum tls_fail why;
	bool want_write;
	int rc = tls_handshake(c->tls, &want_write, &why);

	if (rc == 1) {
		const char *sni = tls_sni(c->tls);

		c->tls_ready = true;
		STAT_ADD(c->w->b, tls_handshakes[idx], 1);
		loop_modify(c->w->loop, &c->io,
		            EPOLLIN | (c->oq.bytes ? EPOLLOUT : 0));
		if (log_enabled(LOG_DEBUG))
			log_msg(LOG_DEBUG, "TLS with %s: %s%s%s.", c->peer,
			        tls_version_name(c->tls), sni ? ", SNI " : "",
			        sni ? sni : "");
		return 1;
	}
	if (rc == 0) {
		loop_modify(c->w->loop, &c->io,
		            EPOLLIN | (want_write ? EPOLLOUT : 0));
		return 0;
	}
	STAT_ADD(c->w->b, tls_fail[idx][why], 1);
	conn_close(c, 0, tls_fail_text(why));
	return rc;
}

/*
 * A PROXY header in front of TLS is in clear text: peek at the socket to
 * parse it and consume exactly its bytes, leaving the TLS handshake in the
 * kernel for OpenSSL. Returns 0 (done or waiting) or <0 after closing.
 */
static int conn_proxy_peek(struct conn *c)
{
	uint8_t buf[PROXY_V2_MAX];
	struct proxy_info info;
	ssize_t got = recv(c->io.fd, buf, sizeof(buf), MSG_PEEK);
	int n;

	if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_close(c, 0, "closed before its PROXY header");
		return TERN_ECLOSED;
	}
	if (got < 0)
		return 0;
	n = proxy_parse(buf, (size_t)got, &info);
	if (n == TERN_EAGAIN)
		return 0;
	if (n < 0 || read(c->io.fd, buf, (size_t)n) != n) {
		conn_close(c, 0, "invalid PROXY protocol header");
		return TERN_ECLOSED;
	}
	if (!info.local)
		conn_set_real_address(c, info.src_host, info.src_port,
		                      "PROXY protocol");
	c->proxy_pending = false;
	return 0;
}

/*
 * Reads from the transport: plain read(2), or TLS (running the handshake
 * first). Returns the byte count, 0 at end of stream, TERN_EAGAIN, or
 * TERN_EIO (the connection is closed by the caller).
 */
static ssize_t conn_io_read(struct conn *c, void *buf, size_t len)
{
	ssize_t n;

	if (c->tls) {
		if (!c->tls_ready && conn_tls_handshake(c) != 1)
			return c->state == CONN_CLOSED ? TERN_ECLOSED
			                               : TERN_EAGAIN;
		return tls_read(c->tls, buf, len);
	}
	do
		n = read(c->io.fd, buf, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? TERN_EAGAIN : TERN_EIO;
	return n;
}

/* Writes queued ranges: writev(2), or TLS records. */
static ssize_t conn_io_writev(struct conn *c, const struct iovec *iov, int n,
                              bool *want_read)
{
	ssize_t w;

	*want_read = false;
	if (c->tls)
		return c->tls_ready ? tls_writev(c->tls, iov, n, want_read)
		                    : TERN_EAGAIN;
	do
		w = writev(c->io.fd, iov, n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EAGAIN ? TERN_EAGAIN : TERN_EIO;
	return w;
}

static void conn_read_some(struct conn *c)
{
	int i, rc;

	if (c->tls && c->proxy_pending && conn_proxy_peek(c) != 0)
		return;
	/* TLS keeps decrypted bytes inside OpenSSL where epoll cannot see
	 * them, so a TLS connection reads until it would block. */
	for (i = 0;
	     (c->tls || i < CONN_READS_PER_EVENT) && c->state != CONN_CLOSED &&
	     !c->throttled && !c->ack_paused && !c->pending;
	     i++) {
		size_t room;
		ssize_t n;

		if ((rc = conn_rbuf_room(c)) != 0) {
			conn_rbuf_refused(c, rc);
			return;
		}
		room = c->rcap - c->rlen - c->rraw;
		if (room > CONN_READ_CHUNK)
			room = CONN_READ_CHUNK;
		n = conn_io_read(c, c->rbuf + c->rlen + c->rraw, room);
		if (n == 0) {
			conn_close(c, 0, "closed its connection");
			return;
		}
		if (n == TERN_EAGAIN)
			break;
		if (n < 0) {
			conn_close(c, 0,
			           c->tls ? "TLS error" : strerror(errno));
			return;
		}
		STAT_ADD(c->w->b, bytes_received, (uint64_t)n);
		if (c->ws)
			c->rraw += (size_t)n;
		else
			c->rlen += (size_t)n;
		if (c->proxy_pending && conn_proxy_input(c) != 0)
			return;
		if (c->proxy_pending)
			continue;
		if (c->ws) {
			/* HTTP head or WebSocket frames: decoded into MQTT
			 * bytes at rlen, or answered by conn_ws_input. */
			if (conn_ws_input(c) != 0)
				return;
		}
		if (conn_parse(c) != 0)
			return;
		/* A short read empties the socket, but TLS may still hold
		 * read-ahead bytes: it reads on until it would block. */
		if ((size_t)n < room && !c->tls)
			break;
	}
	conn_rbuf_trim(c);
}

static void conn_on_readable(struct conn *c)
{
	/* Deferred with packets buffered: those come first, in their turn. */
	if (c->pending)
		return;
	c->turn_start = c->w->delivered;
	conn_rbuf_borrow(c);
	conn_read_some(c);
	/* A closed connection keeps pointing at the scratch buffer until it
	 * is freed; conn_free knows not to free it. */
	if (c->state != CONN_CLOSED && conn_rbuf_settle(c) != 0) {
		c->rlen = c->rraw = 0;
		conn_close(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
	}
}

int conn_flush(struct conn *c)
{
	struct iovec iov[64];

	if (c->ws && conn_ws_frame(c) != 0) {
		conn_close(c, MQTT_RC_IMPL_SPECIFIC, "out of memory");
		return TERN_ENOMEM;
	}
	while (c->oq.bytes) {
		int n = outq_iov(&c->oq, iov, 64);
		bool want_read;
		ssize_t w = conn_io_writev(c, iov, n, &want_read);

		if (w == TERN_EAGAIN) {
			/* TLS may need to read first (EPOLLIN is always on);
			 * otherwise wait for room in the socket. */
			if (!want_read)
				loop_modify(c->w->loop, &c->io,
				            (c->io.events & EPOLLIN) |
				                    EPOLLOUT);
			return 0;
		}
		if (w < 0) {
			conn_close(c, 0,
			           c->tls ? "TLS error" : strerror(errno));
			return TERN_EIO;
		}
		STAT_ADD(c->w->b, bytes_sent, (uint64_t)w);
		outq_consume(&c->oq, (size_t)w);
		c->tx_recent = true;
	}
	if (c->io.events & EPOLLOUT)
		loop_modify(c->w->loop, &c->io, c->io.events & ~EPOLLOUT);
	/* Room again: move more of the session's queue out. */
	if (c->state == CONN_ACTIVE && c->s) {
		struct session *s = conn_session_lock(c);

		if (s) {
			if (s->qlen)
				conn_pump_locked(c, s);
			pthread_mutex_unlock(&s->mu);
		}
	}
	/* Nothing left to send: buffers at their first sizes go back to the
	 * worker's pool now, not at the idle tick, so the next connection's
	 * reply reuses them. Kept for a second, every connection set up in
	 * that second held ~900 bytes that, once freed, stayed as holes
	 * between long-lived structs (RSS never got them back). */
	outq_recycle(&c->oq);
	return 0;
}

static void conn_on_io(struct loop_io *io, uint32_t events)
{
	struct conn *c = (struct conn *)io;

	if (c->state == CONN_CLOSED)
		return;
	/* A reload may have come while this worker waited in epoll_wait: the
	 * loop's own refresh comes only after this batch of events. */
	worker_refresh_auth(c->w);
	/* The TLS handshake may wait on either direction. */
	if ((events & EPOLLIN) || (c->tls && !c->tls_ready))
		conn_on_readable(c);
	else if (events & (EPOLLERR | EPOLLHUP))
		conn_close(c, 0, "connection error");
	if (c->state != CONN_CLOSED && (events & EPOLLOUT))
		worker_want_flush(c->w, c);
}

/*
 * Decides the fate of the will at close. Caller holds no locks. Returns a
 * will to publish now (reference moves to the caller) or NULL.
 */
static struct msg *conn_take_will(struct conn *c, struct session *s,
                                  bool still_ours, bool session_ends)
{
	struct msg *will = c->will;
	uint64_t delay_ms, expiry_ms;

	c->will = NULL;
	if (!will)
		return NULL;
	if (c->stopping && still_ours && !session_ends && s->p) {
		/* ternd is stopping, not the client: a durable session keeps
		 * the will through the restart, as if delayed (persist.h). */
	} else if (c->normal_disconnect && !c->will_now) {
		msg_unref(will);
		return NULL;
	} else if (c->will_delay == 0 || session_ends) {
		return will;
	}
	if (!still_ours) {
		/* Taken over: the session goes on, so a delayed will is
		 * cancelled (MQTT 5 §3.1.3.2.2). */
		msg_unref(will);
		return NULL;
	}
	/* MQTT 5 §3.1.3.2.2: published after the delay or when the session
	 * ends, whichever is first, unless the client comes back. */
	delay_ms = (uint64_t)c->will_delay * 1000u;
	expiry_ms = (uint64_t)s->expiry * 1000u;
	if (s->expiry != UINT32_MAX && expiry_ms < delay_ms)
		delay_ms = expiry_ms;
	msg_unref(s->will);
	s->will = will;
	s->will_at = clock_ms() + delay_ms;
	return NULL;
}

/* Writes the session record as offline since now, with the will that
 * waits for its delay (caller holds s->mu). */
static void conn_persist_offline(struct session *s)
{
	uint64_t now = clock_ms();
	uint32_t delay = 0;

	if (s->will && s->will_at > now)
		delay = (uint32_t)((s->will_at - now + 999) / 1000);
	persist_session_put(s, s->will, delay, persist_wall_ms());
}

/* Detaches the session at close; returns a will to publish now. Messages
 * the ending session got from shared subscriptions are collected in *rl. */
static struct msg *conn_detach(struct conn *c, struct redeliver_list *rl)
{
	struct broker *b = c->w->b;
	struct session *s = c->s;
	struct msg *will = NULL;
	bool ours, ends;

	if (!s)
		return NULL;
	pthread_mutex_lock(&b->sess_mu);
	pthread_mutex_lock(&s->mu);
	ours = s->conn_id == c->id;
	ends = ours && s->expiry == 0;
	if (ours) {
		s->conn = NULL;
		s->w = NULL;
		s->conn_id = 0;
		s->offline_since = clock_ms();
		if (c->normal_disconnect)
			s->expiry = c->session_expiry;
		ends = s->expiry == 0;
	}
	will = conn_take_will(c, s, ours, ends);
	if (ours && !ends && s->p)
		conn_persist_offline(s);
	if (ends) {
		route_collect_shared(s, rl);
		session_clear_subs(b, s);
		session_clear_messages(b, s);
		session_remove(b, s);
	} else if (ours) {
		STAT_ADD(b, sessions_offline, 1);
	}
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&b->sess_mu);
	c->s = NULL;
	session_unref(s);
	return will;
}

void conn_close(struct conn *c, uint8_t reason, const char *why)
{
	struct worker *w = c->w;
	struct broker *b = w->b;
	struct redeliver_list rl = {0};
	struct msg *will;

	if (c->state == CONN_CLOSED)
		return;
	if (c->state == CONN_ACTIVE && c->version == MQTT_V5 &&
	    reason >= 0x80) {
		struct mqtt_packet p;

		memset(&p, 0, sizeof(p));
		p.type = MQTT_DISCONNECT;
		p.u.disconnect.reason = reason;
		conn_send(c, &p);
	}
	/* Best effort: give the DISCONNECT/CONNACK (and the WebSocket close
	 * frame) a chance to leave. */
	if (c->ws)
		conn_ws_close(c, WS_CLOSE_NORMAL);
	if (c->oq.bytes) {
		struct iovec iov[64];
		int n = outq_iov(&c->oq, iov, 64);
		bool want_read;
		ssize_t wr = conn_io_writev(c, iov, n, &want_read);

		if (wr > 0)
			STAT_ADD(b, bytes_sent, (uint64_t)wr);
	}
	if (c->tls && c->tls_ready)
		tls_shutdown(c->tls);
	if (c->state == CONN_ACTIVE) {
		broker_count_client(b, c->transport, -1);
		if (c->normal_disconnect)
			log_msg(LOG_NOTICE, "Client %s disconnected.",
			        c->client_id);
		else
			log_msg(LOG_NOTICE, "Client %s %s%s.", c->client_id,
			        reason == MQTT_RC_KEEPALIVE_TIMEOUT ||
			                        reason ==
			                                MQTT_RC_SESSION_TAKEN_OVER ||
			                        !reason
			                ? ""
			                : "disconnected: ",
			        why);
	} else {
		log_msg(LOG_NOTICE, "Client <unknown> on %s disconnected: %s.",
		        c->peer, why);
	}
	c->state = CONN_CLOSED;
	if (c->throttled)
		conn_unthrottle(c);
	if (c->pending)
		conn_undefer(c);
	/* Held acks are never sent: the client resends after reconnecting
	 * (QoS 2 ids already stored are acknowledged without a redelivery). */
	conn_ack_drop(c);
	will = conn_detach(c, &rl);
	loop_del(w->loop, &c->io);
	shutdown(c->io.fd, SHUT_RDWR);
	close(c->io.fd);
	c->io.fd = -1;
	STAT_ADD(b, connections, -1);
	atomic_fetch_sub(&b->listener_conns[c->ls->index], 1);
	if (c->cap_taken)
		addrcap_release(b->addrcap, c->host);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	c->next = w->dead;
	w->dead = c;
	if (rl.n)
		route_redeliver(b, w, &rl);
	if (will) {
		if (broker_will_allowed(b, will, c->ls->index, c->client_id,
		                        c->username))
			broker_publish(b, w, will, NULL);
		msg_unref(will);
	}
}

void conn_free(struct conn *c)
{
	int i;

	outq_free(&c->oq);
	conn_ws_free(c);
	tls_conn_free(c->tls);
	msg_unref(c->will);
	auth_grant_unref(c->grant);
	if (c->al) {
		for (i = 0; i <= CONN_TOPIC_ALIAS_MAX; i++)
			free(c->al->in[i]);
		for (i = 0; i <= CONN_ALIAS_OUT_MAX; i++)
			free(c->al->out[i]);
		free(c->al);
	}
	if (!c->rbuf_borrowed)
		free(c->rbuf);
	free(c->client_id);
	free(c->username);
	free(c->peer);
	free(c->rate);
	free(c);
}

/* How long a publisher may be held back for one backlogged consumer; one
 * that does not drain in that time is marked slow for CONN_SLOW_MS and
 * no longer holds publishers back (it gets drops at its bound instead). */
#define CONN_THROTTLE_MS 250
#define CONN_SLOW_MS     1000

void conn_pause(struct conn *c)
{
	struct worker *w = c->w;

	if (c->throttled || c->state == CONN_CLOSED)
		return;
	c->throttled = true;
	loop_modify(w->loop, &c->io, c->io.events & ~(uint32_t)EPOLLIN);
	c->throttle_next = w->throttled;
	w->throttled = c;
}

void conn_throttle(struct conn *c, struct session *s)
{
	if (c->throttle_s || c->state != CONN_ACTIVE) {
		session_unref(s);
		return;
	}
	c->throttle_s = s;
	c->throttle_until = clock_ms() + CONN_THROTTLE_MS;
	conn_pause(c);
}

/* Unlinks c from the worker's throttled list and drops the session. */
static void conn_unthrottle(struct conn *c)
{
	struct conn **pp;

	for (pp = &c->w->throttled; *pp; pp = &(*pp)->throttle_next)
		if (*pp == c) {
			*pp = c->throttle_next;
			break;
		}
	c->throttled = false;
	c->throttle_next = NULL;
	session_unref(c->throttle_s);
	c->throttle_s = NULL;
}

void conn_resume(struct conn *c)
{
	if (c->state == CONN_CLOSED || c->throttled || c->ack_paused)
		return;
	/* Nothing was read during the pause, PINGREQ included: the keep
	 * alive counts from now, so a client we held back is not taken for
	 * dead. */
	c->last_rx = clock_ms();
	loop_modify(c->w->loop, &c->io, c->io.events | EPOLLIN);
	/* Packets read before the pause are still buffered, and TLS may hold
	 * bytes epoll will not report. */
	if (c->rlen)
		conn_parse(c);
	if (c->tls && c->state != CONN_CLOSED && !c->throttled &&
	    !c->ack_paused && tls_pending(c->tls))
		conn_on_readable(c);
}

void conn_continue(struct conn *c)
{
	c->pending = false;
	c->pending_next = NULL;
	if (c->state == CONN_CLOSED || c->throttled || c->ack_paused)
		return; /* conn_resume parses what is buffered */
	c->turn_start = c->w->delivered;
	if (c->rlen)
		conn_parse(c);
	/* With the buffer drained, TLS may hold decrypted bytes epoll will
	 * not report; plain sockets with more input are reported again. */
	if (c->tls && c->state != CONN_CLOSED && !c->pending && !c->throttled &&
	    !c->ack_paused && tls_pending(c->tls))
		conn_on_readable(c);
}

/* Whether the backlogged session a publisher waits for drained or its
 * deadline passed; then the session is let go. */
static bool conn_backlog_over(struct conn *c, uint64_t now)
{
	struct session *s = c->throttle_s;
	bool drained;

	pthread_mutex_lock(&s->mu);
	drained = !s->w || session_drained(c->w->b, s);
	if (!drained && now >= c->throttle_until)
		s->slow_until = now + CONN_SLOW_MS;
	pthread_mutex_unlock(&s->mu);
	if (!drained && now < c->throttle_until)
		return false;
	session_unref(s);
	c->throttle_s = NULL;
	return true;
}

bool conn_check_throttle(struct conn *c, uint64_t now)
{
	if (c->throttle_s && !conn_backlog_over(c, now))
		return false;
	if (c->rate && now < c->rate->until)
		return false;
	conn_unthrottle(c);
	conn_resume(c);
	return true;
}

void conn_check_timeouts(struct conn *c, uint64_t now)
{
	const struct config *cfg = c->w->b->cfg;

	/* An idle connection gives back its buffers (they are allocated
	 * again on the next packet), keeping memory per idle client small.
	 * Output buffers stay while the connection wrote something since
	 * the last tick: a subscriber receives without sending, so last_rx
	 * says nothing about its output, and freeing its grown entry array
	 * at every tick made a busy fan-out regrow it by doubling (realloc)
	 * after each. A queue that drains gives its first-size buffers to
	 * the worker's pool anyway (conn_flush), so an idle connection
	 * still holds none once its grown ones go here. */
	if (!c->in_flush && now - c->last_rx >= 1000) {
		if (!c->tx_recent)
			outq_shrink(&c->oq);
		if (c->rlen == 0 && c->rraw == 0 && c->rbuf &&
		    !c->rbuf_borrowed) {
			free(c->rbuf);
			c->rbuf = NULL;
			c->rcap = 0;
		}
	}
	c->tx_recent = false;
	if (c->state == CONN_HTTP || c->state == CONN_CONNECTING) {
		if (now - c->accepted_at < cfg->connect_timeout * 1000ull)
			return;
		if (c->tls && !c->tls_ready)
			STAT_ADD(c->w->b,
			         tls_fail[c->transport == TR_WSS][TLSF_TIMEOUT],
			         1);
		else if (c->state == CONN_HTTP)
			STAT_ADD(c->w->b, ws_handshake_fail[WSF_TIMEOUT], 1);
		STAT_LIMIT(c->w->b, LIM_CONNECT_TIMEOUT);
		conn_close(
		        c, 0,
		        c->state == CONN_HTTP
		                ? "no WebSocket handshake before the deadline"
		                : "no CONNECT before the deadline");
		return;
	}
	/* A token is a credential for as long as it is valid: when it runs
	 * out the client must come back with a new one. v5 is told why
	 * (0xA0 Maximum connect time, MQTT 3.14.2.1). */
	if (c->state == CONN_ACTIVE && c->token_until &&
	    now >= c->token_until) {
		STAT_ADD(c->w->b, jwt_expired_disconnects, 1);
		conn_close(c, MQTT_RC_MAX_CONNECT_TIME, "token expired");
		return;
	}
	/* MQTT 3.1.2.10: one and a half times the keep alive, not counting
	 * while we do not read (conn_resume restarts it). */
	if (c->state == CONN_ACTIVE && c->keepalive && !c->throttled &&
	    !c->ack_paused &&
	    now - c->last_rx >= (uint64_t)c->keepalive * 1500u) {
		STAT_LIMIT(c->w->b, LIM_KEEPALIVE);
		conn_close(c, MQTT_RC_KEEPALIVE_TIMEOUT,
		           "has exceeded timeout, disconnecting");
	}
}
