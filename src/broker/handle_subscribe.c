/*
 * SUBSCRIBE and UNSUBSCRIBE: record each filter in the session and the
 * shared index, answer with SUBACK/UNSUBACK, then deliver retained messages
 * as the retain handling option says (MQTT 5 §3.3.1.3, §3.8.3.1).
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/msg.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/worker.h"

/* Most filters in one SUBSCRIBE we answer; more is a protocol error. */
#define SUB_MAX_ENTRIES 1024

struct retained_ctx {
	struct conn *c;
	struct session *s;
	uint8_t granted;
	uint32_t sub_id;
	uint64_t now;
};

/* Queues one retained message for the new subscriber (s->mu held). */
static void sub_on_retained(void *ctx, struct msg *m)
{
	struct retained_ctx *r = ctx;
	uint32_t *ids = NULL;

	if (msg_expired(m, r->now, NULL) ||
	    !auth_allows(r->c->w->auth, r->c->ls->index, r->c->client_id,
	                 r->c->username, m->topic, m->topic_len, ACL_READ) ||
	    !auth_grant_allows(r->c->grant, r->c->client_id, r->c->username,
	                       m->topic, m->topic_len, ACL_READ))
		return;
	if (r->sub_id) {
		ids = malloc(sizeof(*ids));
		if (!ids)
			return;
		ids[0] = r->sub_id;
	}
	session_enqueue(r->c->w->b, r->s, m,
	                m->qos < r->granted ? m->qos : r->granted, true, false,
	                ids, ids ? 1 : 0);
}

/* Whether s already has exactly this filter (re-subscribing replaces it,
 * so it does not count against max_subscriptions_per_client). */
static bool sub_exists(const struct session *s, const uint8_t *filter,
                       uint16_t len)
{
	for (uint32_t i = 0; i < s->nsubs; i++)
		if (s->subsv[i].len == len &&
		    memcmp(s->subsv[i].filter, filter, len) == 0)
			return true;
	return false;
}

/* Adds one filter; returns the SUBACK code. Holds s->mu. */
static uint8_t sub_add(struct conn *c, struct session *s,
                       const struct mqtt_sub_entry *e, uint32_t sub_id,
                       bool *send_retained)
{
	struct broker *b = c->w->b;
	struct mqtt_str group, inner;
	struct sub_rec *rec;
	bool added;
	int shared;

	shared = mqtt_share_split(e->filter.p, e->filter.len, &group, &inner);
	*send_retained = false;
	if (!auth_allows(c->w->auth, c->ls->index, c->client_id, c->username,
	                 (const char *)e->filter.p, e->filter.len,
	                 ACL_SUBSCRIBE) ||
	    !auth_grant_allows(c->grant, c->client_id, c->username,
	                       (const char *)e->filter.p, e->filter.len,
	                       ACL_SUBSCRIBE)) {
		log_msg(LOG_NOTICE, "Denied SUBSCRIBE from %s to %.*s.",
		        c->client_id, (int)e->filter.len,
		        (const char *)e->filter.p);
		return c->version == MQTT_V5 ? MQTT_RC_NOT_AUTHORIZED
		                             : MQTT_RC_UNSPECIFIED;
	}
	if (config_topic_over_limit(b->cfg, (const char *)e->filter.p,
	                            e->filter.len)) {
		STAT_LIMIT(b, LIM_TOPIC_FILTER);
		log_msg(LOG_NOTICE,
		        "Refused SUBSCRIBE from %s: filter over "
		        "max_topic_length or max_topic_levels.",
		        c->client_id);
		return c->version == MQTT_V5 ? MQTT_RC_TOPIC_FILTER_INVALID
		                             : MQTT_RC_UNSPECIFIED;
	}
	if (b->cfg->max_subscriptions_per_client >= 0 &&
	    s->nsubs >= (uint32_t)b->cfg->max_subscriptions_per_client &&
	    !sub_exists(s, e->filter.p, e->filter.len)) {
		STAT_LIMIT(b, LIM_SUBSCRIPTIONS);
		log_msg(LOG_NOTICE,
		        "Refused SUBSCRIBE from %s to %.*s: "
		        "max_subscriptions_per_client (%d) reached.",
		        c->client_id, (int)e->filter.len,
		        (const char *)e->filter.p,
		        b->cfg->max_subscriptions_per_client);
		return c->version == MQTT_V5 ? MQTT_RC_QUOTA_EXCEEDED
		                             : MQTT_RC_UNSPECIFIED;
	}
	rec = session_sub_put(s, (const char *)e->filter.p, e->filter.len,
	                      &added);
	if (!rec)
		return MQTT_RC_UNSPECIFIED;
	rec->opts.qos = e->qos > 2 ? 2 : e->qos;
	rec->opts.no_local = e->no_local;
	rec->opts.retain_as_published = e->retain_as_published;
	rec->opts.retain_handling = e->retain_handling;
	rec->opts.sub_id = sub_id;
	if (subs_add(b->subs, rec->filter, rec->len, s, &rec->opts) < 0) {
		session_sub_del(s, rec->filter, rec->len);
		return MQTT_RC_UNSPECIFIED;
	}
	if (s->p)
		persist_sub_put(s, rec);
	/* Shared subscriptions never get retained messages (§4.8.2). */
	*send_retained = shared != 1 && (e->retain_handling == 0 ||
	                                 (e->retain_handling == 1 && added));
	return rec->opts.qos;
}

int handle_subscribe(struct conn *c, struct mqtt_packet *p)
{
	const struct mqtt_subscribe *sub = &p->u.subscribe;
	uint8_t codes[SUB_MAX_ENTRIES];
	bool retained[SUB_MAX_ENTRIES];
	struct mqtt_sub_entry e;
	struct mqtt_packet ack;
	struct session *s;
	uint32_t pos = 0, n = 0, sub_id = 0, i;
	uint64_t ops0;

	if (sub->count > SUB_MAX_ENTRIES) {
		conn_close(c, MQTT_RC_QUOTA_EXCEEDED, "too many filters");
		return TERN_ELIMIT;
	}
	if (sub->props.present & MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID))
		sub_id = sub->props.sub_id;
	ops0 = persist_thread_ops();
	s = conn_session_lock(c);
	if (!s)
		return 0;
	while (mqtt_sub_next(sub, true, c->version, &pos, &e) == 1) {
		codes[n] = sub_add(c, s, &e, sub_id, &retained[n]);
		log_msg(LOG_SUBSCRIBE, "%s %u %.*s", c->client_id, e.qos,
		        (int)e.filter.len, (const char *)e.filter.p);
		n++;
	}
	memset(&ack, 0, sizeof(ack));
	ack.type = MQTT_SUBACK;
	ack.u.suback.packet_id = sub->packet_id;
	ack.u.suback.codes = codes;
	ack.u.suback.count = n;
	/* A durable session's SUBACK waits for its subscriptions to be on
	 * disk. Retained messages may then leave before it, which MQTT
	 * allows (3.1.1 §3.8.4, 5.0 §3.8.4). */
	conn_ack_send_packet(c, &ack,
	                     persist_ack_ticket(c->w->b->persist, ops0));

	/* Retained messages follow the SUBACK, in filter order. */
	pos = 0;
	for (i = 0; i < n && mqtt_sub_next(sub, true, c->version, &pos, &e);
	     i++) {
		struct retained_ctx r = {c, s, codes[i], sub_id, clock_ms()};

		if (codes[i] >= 0x80 || !retained[i])
			continue;
		retain_match(c->w->b->retain, (const char *)e.filter.p,
		             e.filter.len, sub_on_retained, &r);
	}
	conn_pump_locked(c, s);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int handle_unsubscribe(struct conn *c, struct mqtt_packet *p)
{
	const struct mqtt_subscribe *uns = &p->u.subscribe;
	struct broker *b = c->w->b;
	uint8_t codes[SUB_MAX_ENTRIES];
	struct mqtt_sub_entry e;
	struct mqtt_packet ack;
	struct session *s;
	uint32_t pos = 0, n = 0;
	uint64_t ops0 = persist_thread_ops();

	if (uns->count > SUB_MAX_ENTRIES) {
		conn_close(c, MQTT_RC_QUOTA_EXCEEDED, "too many filters");
		return TERN_ELIMIT;
	}
	s = conn_session_lock(c);
	if (!s)
		return 0;
	while (mqtt_sub_next(uns, false, c->version, &pos, &e) == 1) {
		const char *f = (const char *)e.filter.p;

		if (session_sub_del(s, f, e.filter.len) == 0) {
			subs_remove(b->subs, f, e.filter.len, s);
			if (s->p)
				persist_sub_del(s, f, e.filter.len);
			codes[n++] = MQTT_RC_SUCCESS;
		} else {
			codes[n++] = MQTT_RC_NO_SUBSCRIPTION_EXISTED;
		}
		log_msg(LOG_UNSUBSCRIBE, "%s %.*s", c->client_id,
		        (int)e.filter.len, f);
	}
	pthread_mutex_unlock(&s->mu);
	memset(&ack, 0, sizeof(ack));
	ack.type = MQTT_UNSUBACK;
	ack.u.suback.packet_id = uns->packet_id;
	ack.u.suback.codes = codes;
	ack.u.suback.count = n;
	conn_ack_send_packet(c, &ack,
	                     persist_ack_ticket(c->w->b->persist, ops0));
	return 0;
}
