/*
 * What a client receives: complete packets are parsed out of the read
 * buffer with the shared codec and dispatched from a table, one handler
 * per type. Every handler may end the connection (link_close,
 * link_violation) and may run user callbacks; rx_dispatch stops as soon as
 * the connection it was reading is gone (c->gen changed). CONNACK decides
 * how the session resumes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "client/client.h"
#include "client/ids.h"

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
		c->rx_qos2_count = 0;
		while ((m = omsg_pop(&c->inflight)) != NULL) {
			if (m->state == OM_PUBREL) {
				link_complete(c, m, 0, 0);
				continue;
			}
			ids_set(c->ids, m->packet_id, false);
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
			tx_ack(c, MQTT_PUBREL, m->packet_id, 0);
		else
			tx_publish(c, m, true);
	}
	for (struct op *op = c->ops; op; op = op->next)
		if (!op->acked)
			tx_send_op(c, op);
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
	c->tx_alias_cap = c->srv_alias_max < CLIENT_TX_ALIASES
	                          ? c->srv_alias_max
	                          : CLIENT_TX_ALIASES;
}

static void on_connack(struct tern_client *c, const struct mqtt_packet *p)
{
	const struct mqtt_connack *k = &p->u.connack;

	if (c->state != CS_CONNACK) {
		link_violation(c, TERN_EPROTO, MQTT_RC_PROTOCOL_ERROR,
		               "second CONNACK");
		return;
	}
	if (k->reason != 0) {
		link_refused(c, k->reason);
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
	link_report_connect(c, 0, 0, k->session_present, "connected");
	tx_drain(c);
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

/* Resolves an inbound topic alias; NULL topic on a link_violation. */
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
		link_violation(c, TERN_EPROTO, MQTT_RC_TOPIC_ALIAS_INVALID,
		               "invalid topic alias from the server");
		return;
	}
	if (pub->qos == 2) {
		bool seen = ids_has(c->rx_qos2, pub->packet_id);

		/* Exactly once: deliver on the first PUBLISH, remember the
		 * id until PUBREL, and only acknowledge repeats. */
		if (!seen) {
			/* QoS 2 messages awaiting PUBREL count against the
			 * Receive Maximum we announced (v5 §3.3.4). */
			if (c->version == MQTT_V5 && c->o.receive_maximum &&
			    c->rx_qos2_count >= c->o.receive_maximum) {
				link_violation(
				        c, TERN_EPROTO,
				        MQTT_RC_RECEIVE_MAX_EXCEEDED,
				        "the server exceeded our Receive "
				        "Maximum");
				return;
			}
			ids_set(c->rx_qos2, pub->packet_id, true);
			c->rx_qos2_count++;
			deliver(c, pub, topic, tlen);
		}
		if (c->gen == gen)
			tx_ack(c, MQTT_PUBREC, pub->packet_id, 0);
		return;
	}
	deliver(c, pub, topic, tlen);
	if (pub->qos == 1 && c->gen == gen)
		tx_ack(c, MQTT_PUBACK, pub->packet_id, 0);
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
	link_complete(c, m, 0, a->reason);
	tx_drain(c);
}

static void on_pubrec(struct tern_client *c, const struct mqtt_packet *p)
{
	const struct mqtt_ack *a = &p->u.ack;
	struct omsg *m = omsg_find_id(&c->inflight, a->packet_id);

	if (m == NULL || m->qos != 2) {
		tx_ack(c, MQTT_PUBREL, a->packet_id,
		       MQTT_RC_PACKET_ID_NOT_FOUND);
		return;
	}
	if (a->reason >= 0x80) {
		/* v5: a refusal ends the exchange (§4.3.3). */
		omsg_take_id(&c->inflight, a->packet_id);
		link_complete(c, m, 0, a->reason);
		tx_drain(c);
		return;
	}
	m->state = OM_PUBREL;
	tx_ack(c, MQTT_PUBREL, a->packet_id, 0);
}

static void on_pubrel(struct tern_client *c, const struct mqtt_packet *p)
{
	uint16_t id = p->u.ack.packet_id;
	bool known = ids_has(c->rx_qos2, id);

	ids_set(c->rx_qos2, id, false);
	if (known)
		c->rx_qos2_count--;
	tx_ack(c, MQTT_PUBCOMP, id, known ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
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
	ids_set(c->ids, op->packet_id, false);
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
		client_op_free(op);
		if (c->o.cb.on_subscribe) {
			client_cb_enter(c);
			c->o.cb.on_subscribe(c, token, codes, n, c->o.userdata);
			client_cb_leave(c);
		}
		return;
	}
	if (unsub)
		client_op_free(op);
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
	link_close(c, TERN_ECLOSED, p->u.disconnect.reason, why);
}

static void unexpected(struct tern_client *c, const struct mqtt_packet *p)
{
	char why[64];

	snprintf(why, sizeof(why), "unexpected %s from the server",
	         mqtt_type_name(p->type));
	link_violation(c, TERN_EPROTO, MQTT_RC_PROTOCOL_ERROR, why);
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
int rx_dispatch(struct tern_client *c)
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
			link_violation(
			        c, TERN_EMALFORMED, MQTT_RC_MALFORMED,
			        "malformed fixed header from the server");
			return 0;
		}
		if (max && (uint64_t)n + fh.remaining > max) {
			link_violation(c, TERN_ETOOBIG,
			               MQTT_RC_PACKET_TOO_LARGE,
			               "packet from the server larger than "
			               "maximum_packet_size");
			return 0;
		}
		if (c->rlen - pos < (size_t)n + fh.remaining)
			break;
		if (c->state == CS_CONNACK && fh.type != MQTT_CONNACK) {
			link_fail(c, TERN_EPROTO,
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
				link_fail(c, TERN_EPROTO, "%s", why);
			else
				link_violation(c, TERN_EPROTO, err.reason, why);
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