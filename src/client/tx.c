/*
 * What a client sends: the output buffer's packets (tx_packet), CONNECT,
 * PUBLISH with outbound topic aliases, acknowledgements, SUBSCRIBE and
 * UNSUBSCRIBE, and the drain that hands queued messages to the connection
 * in order while the inflight window and the output bound allow. Packet
 * ids are allocated here and freed when an exchange completes.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "client/client.h"
#include "client/ids.h"

#define HIGH_WATER (1u << 20) /* output bytes before the queue waits */

/* The next free packet id; 0 when all 65535 are in use. */
uint16_t tx_id_alloc(struct tern_client *c)
{
	for (unsigned i = 0; i < 65535; i++) {
		uint16_t id = c->next_id;

		c->next_id = c->next_id == 65535 ? 1 : c->next_id + 1;
		if (id != 0 && !ids_has(c->ids, id)) {
			ids_set(c->ids, id, true);
			return id;
		}
	}
	return 0;
}

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
int tx_packet(struct tern_client *c, const struct mqtt_packet *p)
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

static void set_u16(struct mqtt_props *p, int id, uint16_t *field, uint16_t v)
{
	if (v == 0)
		return;
	p->present |= MQTT_PBIT(id);
	*field = v;
}

void tx_connect(struct tern_client *c)
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
	if (c->o.request_problem_info >= 0) {
		k->props.present |= MQTT_PBIT(MQTT_PROP_REQUEST_PROBLEM_INFO);
		k->props.request_problem_info = c->o.request_problem_info != 0;
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
	rc = tx_packet(c, &p);
	if (rc < 0) {
		link_fail(c, rc, "cannot encode CONNECT: %s",
		          tern_strerror(rc));
		return;
	}
	link_flush(c);
}

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
int tx_publish(struct tern_client *c, struct omsg *m, bool dup)
{
	struct mqtt_packet p;

	publish_packet(c, m, dup, !dup, &p);
	m->sent = true;
	return tx_packet(c, &p);
}

static size_t publish_size(struct tern_client *c, const struct omsg *m)
{
	struct mqtt_packet p;

	publish_packet(c, m, false, false, &p);
	return mqtt_encoded_size(&p, c->version);
}

int tx_ack(struct tern_client *c, uint8_t type, uint16_t id, uint8_t reason)
{
	struct mqtt_packet p = {.type = type};

	p.u.ack.packet_id = id;
	p.u.ack.reason = c->version == MQTT_V5 ? reason : 0;
	return tx_packet(c, &p);
}

static unsigned window(struct tern_client *c)
{
	unsigned w = c->o.max_inflight ? c->o.max_inflight : 1;

	return c->srv_recv_max && c->srv_recv_max < w ? c->srv_recv_max : w;
}

bool tx_can_send_now(struct tern_client *c, int qos)
{
	return c->state == CS_UP && c->queue.count == 0 &&
	       (qos == 0 || c->inflight.count < window(c));
}

/* Hands queued messages to the connection while the window and the
 * output buffer allow, in order. */
void tx_drain(struct tern_client *c)
{
	uint64_t gen = c->gen;

	/* A completion callback that publishes lands here again: the loop
	 * below picks its message up, so the nested call has nothing to do
	 * (and a callback publishing on every completion cannot recurse
	 * without bound). */
	if (c->draining)
		return;
	c->draining = true;
	while (c->state == CS_UP && c->gen == gen && c->queue.head &&
	       c->wlen - c->woff < HIGH_WATER) {
		struct omsg *m = c->queue.head;

		if (m->qos && c->inflight.count >= window(c))
			break;
		omsg_pop(&c->queue);
		if (c->srv_max_packet &&
		    publish_size(c, m) > c->srv_max_packet) {
			link_complete(c, m, TERN_ETOOBIG, -1);
			continue;
		}
		if (m->qos == 0) {
			int rc = tx_publish(c, m, false);

			link_complete(c, m, rc, 0);
			continue;
		}
		m->packet_id = tx_id_alloc(c);
		if (m->packet_id == 0) {
			omsg_push_front(&c->queue, m);
			break;
		}
		m->state = OM_PUBLISH;
		omsg_push(&c->inflight, m);
		tx_publish(c, m, false);
	}
	c->draining = false;
	if (c->state == CS_UP && c->gen == gen)
		link_flush(c);
}

int tx_send_op(struct tern_client *c, struct op *op)
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
	if (op->up && c->version == MQTT_V5) {
		p.u.subscribe.props.present |=
		        MQTT_PBIT(MQTT_PROP_USER_PROPERTY);
		p.u.subscribe.props.user_props = op->up;
		p.u.subscribe.props.user_props_len = op->up_len;
		p.u.subscribe.props.user_prop_count = op->up_count;
	}
	op->packet_id = tx_id_alloc(c);
	if (op->packet_id == 0)
		return TERN_ELIMIT;
	p.u.subscribe.packet_id = op->packet_id;
	return tx_packet(c, &p);
}
