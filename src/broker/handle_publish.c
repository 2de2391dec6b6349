/*
 * PUBLISH from a client and the QoS acknowledgements in both directions:
 * topic alias resolution, size limits, exactly-once state for incoming QoS 2
 * (PUBREC each time, deliver once), and the outgoing inflight window.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/memlimit.h"
#include "broker/msg.h"
#include "broker/persist.h"
#include "broker/session.h"
#include "broker/worker.h"

/* Incoming QoS 2 messages a v3 client may leave awaiting PUBREL. */
#define PUBLISH_V3_QOS2_MAX 1024

/*
 * Resolves the v5 topic alias (MQTT 5 §3.3.2.3.4): a topic with an alias
 * sets the mapping, an empty topic uses it. Returns the topic or NULL after
 * closing the connection.
 */
static const char *publish_topic(struct conn *c, const struct mqtt_publish *pub,
                                 size_t *len)
{
	struct conn_aliases *al;
	uint16_t alias;
	char *t;

	if (!(pub->props.present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS))) {
		if (!pub->topic.len)
			goto bad;
		*len = pub->topic.len;
		return (const char *)pub->topic.p;
	}
	alias = pub->props.topic_alias;
	if (alias == 0 || alias > CONN_TOPIC_ALIAS_MAX)
		goto bad;
	if (!pub->topic.len) {
		if (!c->al || !c->al->in[alias])
			goto bad;
		*len = strlen(c->al->in[alias]);
		return c->al->in[alias];
	}
	al = conn_aliases(c);
	t = al ? malloc((size_t)pub->topic.len + 1) : NULL;
	if (!t) {
		conn_close(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return NULL;
	}
	memcpy(t, pub->topic.p, pub->topic.len);
	t[pub->topic.len] = '\0';
	free(al->in[alias]);
	al->in[alias] = t;
	*len = pub->topic.len;
	return t;
bad:
	conn_close(c, MQTT_RC_TOPIC_ALIAS_INVALID, "invalid topic alias");
	return NULL;
}

/* The store ticket an acknowledgement waits for (persist_ack_ticket). */
static uint64_t publish_ticket(const struct conn *c, uint64_t ops0)
{
	return persist_ack_ticket(c->w->b->persist, ops0);
}

/* Acknowledges an incoming QoS 1/2 PUBLISH, after the store commit of
 * what it wrote (ops0: the write counter before handling it). */
static void publish_ack(struct conn *c, const struct mqtt_publish *pub,
                        uint8_t reason, uint64_t ops0)
{
	uint64_t ticket = publish_ticket(c, ops0);

	if (pub->qos == 1)
		conn_ack_send(c, MQTT_PUBACK, pub->packet_id, reason, ticket);
	else if (pub->qos == 2)
		conn_ack_send(c, MQTT_PUBREC, pub->packet_id, reason, ticket);
}

/*
 * PUBREC for a QoS 2 PUBLISH whose id is already known. The first one's
 * writes may not be committed yet (its PUBREC was held on a connection
 * that has since closed), so a durable session's PUBREC waits for the
 * next commit, which covers whatever is pending.
 */
static void publish_ack_dup(struct conn *c, const struct mqtt_publish *pub,
                            bool durable)
{
	struct persist *p = c->w->b->persist;
	uint64_t ticket = 0;

	if (durable && p && persist_gates_acks(p))
		ticket = persist_ticket(p);
	conn_ack_send(c, MQTT_PUBREC, pub->packet_id, 0, ticket);
}

/*
 * How many incoming QoS 2 messages may await PUBREL. A v5 client was told
 * our Receive Maximum (max_inflight_messages). MQTT 3.1.1 has no such
 * limit to tell, so a v3 client gets a generous fixed bound that still
 * keeps the state of a client that never sends PUBREL finite.
 */
static int publish_qos2_limit(const struct conn *c)
{
	int cfg = c->w->b->cfg->max_inflight_messages;

	if (c->version == MQTT_V5)
		return cfg;
	return cfg > PUBLISH_V3_QOS2_MAX ? cfg : PUBLISH_V3_QOS2_MAX;
}

/*
 * Records an incoming QoS 2 packet id. Returns 1 for a new id, 0 for a
 * duplicate (acknowledge, do not deliver), <0 after closing. *durable
 * tells whether the session is written to the store.
 */
static int publish_qos2_track(struct conn *c, uint16_t pid, bool *durable)
{
	int limit = publish_qos2_limit(c);
	struct session *s = conn_session_lock(c);
	int rc;

	*durable = false;
	if (!s)
		return 0;
	*durable = s->p != NULL;
	if (session_inq2_has(s, pid)) {
		rc = 0;
	} else if (limit > 0 && s->nin_qos2 >= (uint32_t)limit) {
		rc = TERN_ELIMIT;
	} else {
		rc = session_inq2_add(s, pid) == 0 ? 1 : TERN_ENOMEM;
	}
	pthread_mutex_unlock(&s->mu);
	if (rc == TERN_ELIMIT) {
		STAT_LIMIT(c->w->b, LIM_RECEIVE_MAXIMUM);
		conn_close(c, MQTT_RC_RECEIVE_MAX_EXCEEDED,
		           "receive maximum exceeded");
	} else if (rc == TERN_ENOMEM)
		conn_close(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
	return rc;
}

/*
 * max_publish_rate / max_publish_bytes_rate: takes this PUBLISH's tokens
 * (one, and its topic and payload bytes). A client in debt is not read
 * until the debt is paid: TCP back-pressure slows it and nothing is lost.
 * The packet in hand is handled normally; the pause holds the next ones.
 */
static void publish_rate_charge(struct conn *c, const struct mqtt_publish *pub)
{
	const struct config *cfg = c->w->b->cfg;
	uint64_t now, wm, wb;

	if (!cfg->max_publish_rate && !cfg->max_publish_bytes_rate)
		return;
	now = clock_ms();
	if (!c->rate) {
		/* Without memory the client goes unlimited rather than
		 * being dropped; the next PUBLISH tries again. */
		if (!(c->rate = calloc(1, sizeof(*c->rate))))
			return;
		tbucket_init(&c->rate->msgs, cfg->max_publish_rate, now);
		tbucket_init(&c->rate->bytes, cfg->max_publish_bytes_rate, now);
	}
	wm = tbucket_take(&c->rate->msgs, 1, now);
	wb = tbucket_take(&c->rate->bytes,
	                  (uint64_t)pub->topic.len + pub->payload_len, now);
	if (!wm && !wb)
		return;
	c->rate->until = now + (wm > wb ? wm : wb);
	STAT_ADD(c->w->b, rate_limited, 1);
	STAT_LIMIT(c->w->b, LIM_PUBLISH_RATE);
	conn_pause(c);
}

/*
 * Over memory_limit, a PUBLISH is refused: v5 QoS 1/2 gets 0x97 Quota
 * exceeded, v3 (which has no way to say so) is acknowledged and dropped,
 * as for the ACL. Counted; an enforcement round may free memory. Returns
 * true when refused.
 */
static bool publish_over_memory(struct conn *c, const struct mqtt_publish *pub,
                                uint64_t ops0)
{
	struct broker *b = c->w->b;

	/* Deleting a retained message frees memory: always allowed, or a
	 * retained set over memory_limit could never be cleared. */
	if (!memlimit_over(b) || (pub->retain && !pub->payload_len))
		return false;
	STAT_ADD(b, mem_refused, 1);
	STAT_LIMIT(b, LIM_MEMORY);
	STAT_DROP(b, DROP_MEMORY_LIMIT);
	publish_ack(c, pub, c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED : 0,
	            ops0);
	memlimit_enforce(b, clock_ms());
	return true;
}

int handle_publish(struct conn *c, struct mqtt_packet *p)
{
	const struct mqtt_publish *pub = &p->u.publish;
	struct broker *b = c->w->b;
	uint32_t limit = b->cfg->message_size_limit;
	struct session *backlog = NULL;
	uint64_t ops0 = persist_thread_ops();
	const char *topic;
	size_t tlen;
	struct msg *m;
	int rc, n;

	if (c->state != CONN_ACTIVE)
		return TERN_EPROTO;
	STAT_ADD(b, pub_received, 1);
	publish_rate_charge(c, pub);
	if (pub->props.present & MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID)) {
		conn_close(c, MQTT_RC_PROTOCOL_ERROR,
		           "subscription identifier in PUBLISH from client");
		return TERN_EPROTO;
	}
	if (!(topic = publish_topic(c, pub, &tlen)))
		return TERN_EPROTO;
	if (!auth_allows(c->w->auth, c->ls->index, c->client_id, c->username,
	                 topic, tlen, ACL_WRITE) ||
	    !auth_grant_allows(c->grant, c->client_id, c->username, topic, tlen,
	                       ACL_WRITE)) {
		/* v5 tells the publisher (0x87); v3 has no way to, so the
		 * message is acknowledged and dropped, as Mosquitto does. */
		log_msg(LOG_NOTICE, "Denied PUBLISH from %s to %.*s.",
		        c->client_id, (int)tlen, topic);
		STAT_DROP(b, DROP_NOT_AUTHORIZED);
		publish_ack(c, pub,
		            c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED : 0,
		            ops0);
		return 0;
	}
	if (config_topic_over_limit(b->cfg, topic, tlen)) {
		/* max_topic_length / max_topic_levels: as for the ACL, v5
		 * says why (0x90, a name the server does not accept), v3 is
		 * acknowledged and dropped. */
		log_msg(LOG_NOTICE,
		        "Refused PUBLISH from %s: topic over max_topic_length "
		        "or "
		        "max_topic_levels.",
		        c->client_id);
		STAT_DROP(b, DROP_TOPIC_LIMIT);
		publish_ack(c, pub,
		            c->version == MQTT_V5 ? MQTT_RC_TOPIC_NAME_INVALID
		                                  : 0,
		            ops0);
		return 0;
	}
	if (limit && pub->payload_len > limit) {
		/* Mosquitto's message_size_limit: drop, but acknowledge so
		 * the client does not retry forever. */
		STAT_DROP(b, DROP_SIZE_LIMIT);
		publish_ack(c, pub, MQTT_RC_PACKET_TOO_LARGE, ops0);
		return 0;
	}
	if (publish_over_memory(c, pub, ops0))
		return 0;
	if (pub->qos == 2) {
		bool durable;

		rc = publish_qos2_track(c, pub->packet_id, &durable);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			publish_ack_dup(c, pub, durable);
			return 0;
		}
	}
	m = msg_new(pub, topic, tlen, c->s, clock_ms());
	if (!m) {
		conn_close(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return TERN_ENOMEM;
	}
	msg_charge(m, &b->mem.msgs);
	n = broker_publish(b, c->w, m, &backlog);
	/* The packet and its deliveries count towards c's turn (conn.c). */
	c->w->delivered += 1 + (uint64_t)(n > 0 ? n : 0);
	msg_unref(m);
	publish_ack(c, pub, 0, ops0);
	if (backlog)
		conn_throttle(c, backlog);
	return 0;
}

int handle_puback(struct conn *c, struct mqtt_packet *p)
{
	struct session *s = conn_session_lock(c);
	int i;

	if (!s)
		return 0;
	i = session_infl_find(s, p->u.ack.packet_id);
	if (i >= 0 && s->infl[i].state == QS_WAIT_PUBACK) {
		session_infl_remove(s, i);
		conn_pump_locked(c, s);
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int handle_pubrec(struct conn *c, struct mqtt_packet *p)
{
	uint16_t pid = p->u.ack.packet_id;
	struct session *s = conn_session_lock(c);
	int i;

	if (!s)
		return 0;
	i = session_infl_find(s, pid);
	if (i < 0) {
		pthread_mutex_unlock(&s->mu);
		conn_send_ack(c, MQTT_PUBREL, pid, MQTT_RC_PACKET_ID_NOT_FOUND);
		return 0;
	}
	if (p->u.ack.reason >= 0x80) {
		/* MQTT 5 §4.3.3: a failed PUBREC ends the exchange. */
		session_infl_remove(s, i);
		conn_pump_locked(c, s);
	} else if (s->infl[i].state == QS_WAIT_PUBREC) {
		s->infl[i].state = QS_WAIT_PUBCOMP;
		if (s->p)
			persist_queue_update(s, &s->infl[i]);
		qmsg_release(&s->infl[i]);
		conn_send_ack(c, MQTT_PUBREL, pid, 0);
	} else if (s->infl[i].state == QS_WAIT_PUBCOMP) {
		conn_send_ack(c, MQTT_PUBREL, pid, 0);
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int handle_pubrel(struct conn *c, struct mqtt_packet *p)
{
	uint16_t pid = p->u.ack.packet_id;
	struct persist *ps = c->w->b->persist;
	struct session *s = conn_session_lock(c);
	bool known = false, durable = false;

	if (s) {
		known = session_inq2_del(s, pid);
		durable = s->p != NULL;
		pthread_mutex_unlock(&s->mu);
	}
	/* Unknown ids still get a PUBCOMP so the client can finish
	 * (MQTT 5 §4.3.3: reason 0x92). A durable session's PUBCOMP waits
	 * until the id is gone from the store: a client may reuse the id
	 * at once, and a stale one would swallow that new message. The
	 * next commit covers it even when this PUBREL repeats one whose
	 * deletion is still pending. */
	conn_ack_send(
	        c, MQTT_PUBCOMP, pid, known ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND,
	        durable && ps && persist_gates_acks(ps) ? persist_ticket(ps)
	                                                : 0);
	return 0;
}

int handle_pubcomp(struct conn *c, struct mqtt_packet *p)
{
	struct session *s = conn_session_lock(c);
	int i;

	if (!s)
		return 0;
	i = session_infl_find(s, p->u.ack.packet_id);
	if (i >= 0 && s->infl[i].state == QS_WAIT_PUBCOMP) {
		session_infl_remove(s, i);
		conn_pump_locked(c, s);
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}
