/*
 * Refcounted application messages. A message is one allocation: the struct
 * followed by the topic (NUL-terminated), the payload and the forwarded
 * property blobs, so creating and freeing one costs a single malloc/free.
 */
#include "broker/msg.h"

#include <stdlib.h>
#include <string.h>

/* Bytes needed for the forwarded v5 properties' variable parts. */
static size_t props_blob_size(const struct mqtt_props *p)
{
	size_t n = 0;
	if (p->present & MQTT_PBIT(MQTT_PROP_CONTENT_TYPE))
		n += p->content_type.len;
	if (p->present & MQTT_PBIT(MQTT_PROP_RESPONSE_TOPIC))
		n += p->response_topic.len;
	if (p->present & MQTT_PBIT(MQTT_PROP_CORRELATION_DATA))
		n += p->correlation_data.len;
	n += p->user_props_len;
	return n;
}

/* Copies the forwarded properties of `in` to `out`, blobs into *cursor. */
static void props_copy(struct mqtt_props *out, const struct mqtt_props *in,
                       uint8_t **cursor)
{
	const uint64_t keep = MQTT_PBIT(MQTT_PROP_PAYLOAD_FORMAT) |
	                      MQTT_PBIT(MQTT_PROP_CONTENT_TYPE) |
	                      MQTT_PBIT(MQTT_PROP_RESPONSE_TOPIC) |
	                      MQTT_PBIT(MQTT_PROP_CORRELATION_DATA) |
	                      MQTT_PBIT(MQTT_PROP_USER_PROPERTY);
	uint8_t *c = *cursor;

	memset(out, 0, sizeof(*out));
	out->present = in->present & keep;
	out->payload_format = in->payload_format;
	if (out->present & MQTT_PBIT(MQTT_PROP_CONTENT_TYPE)) {
		memcpy(c, in->content_type.p, in->content_type.len);
		out->content_type.p = c;
		out->content_type.len = in->content_type.len;
		c += in->content_type.len;
	}
	if (out->present & MQTT_PBIT(MQTT_PROP_RESPONSE_TOPIC)) {
		memcpy(c, in->response_topic.p, in->response_topic.len);
		out->response_topic.p = c;
		out->response_topic.len = in->response_topic.len;
		c += in->response_topic.len;
	}
	if (out->present & MQTT_PBIT(MQTT_PROP_CORRELATION_DATA)) {
		memcpy(c, in->correlation_data.p, in->correlation_data.len);
		out->correlation_data.p = c;
		out->correlation_data.len = in->correlation_data.len;
		c += in->correlation_data.len;
	}
	if (in->user_props_len) {
		memcpy(c, in->user_props, in->user_props_len);
		out->user_props = c;
		out->user_props_len = in->user_props_len;
		out->user_prop_count = in->user_prop_count;
		c += in->user_props_len;
	}
	*cursor = c;
}

static struct msg *msg_alloc(size_t topic_len, size_t payload_len,
                             size_t blob_len)
{
	struct msg *m;

	if (topic_len > UINT16_MAX || payload_len > MQTT_MAX_REMAINING)
		return NULL;
	m = malloc(sizeof(*m) + topic_len + 1 + payload_len + blob_len);
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	m->alloc_len = sizeof(*m) + topic_len + 1 + payload_len + blob_len;
	atomic_init(&m->refs, 1);
	atomic_init(&m->store_id, 0);
	return m;
}

struct msg *msg_new(const struct mqtt_publish *pub, const char *topic,
                    size_t topic_len, const void *origin, uint64_t now_ms)
{
	struct msg *m = msg_alloc(topic_len, pub->payload_len,
	                          props_blob_size(&pub->props));
	uint8_t *c;

	if (!m)
		return NULL;
	m->qos = pub->qos;
	m->retain = pub->retain;
	m->origin = origin;
	m->received_ms = now_ms;
	if (pub->props.present & MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY)) {
		m->has_expiry = true;
		m->expiry = pub->props.message_expiry;
	}
	c = m->data;
	memcpy(c, topic, topic_len);
	c[topic_len] = '\0';
	m->topic = (const char *)c;
	m->topic_len = (uint16_t)topic_len;
	c += topic_len + 1;
	if (pub->payload_len)
		memcpy(c, pub->payload, pub->payload_len);
	m->payload = c;
	m->payload_len = pub->payload_len;
	c += pub->payload_len;
	props_copy(&m->props, &pub->props, &c);
	return m;
}

struct msg *msg_new_simple(const char *topic, const void *payload,
                           size_t payload_len, uint8_t qos, bool retain,
                           uint64_t now_ms)
{
	struct mqtt_publish pub;

	memset(&pub, 0, sizeof(pub));
	pub.qos = qos;
	pub.retain = retain;
	pub.payload = payload;
	pub.payload_len = (uint32_t)payload_len;
	return msg_new(&pub, topic, strlen(topic), NULL, now_ms);
}

void msg_charge(struct msg *m, atomic_int_fast64_t *counter)
{
	m->charged = counter;
	atomic_fetch_add_explicit(counter, (int_fast64_t)m->alloc_len,
	                          memory_order_relaxed);
}

void msg_unref(struct msg *m)
{
	int i;

	if (!m)
		return;
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (i = 0; i < MSG_ENC_VARIANTS; i++)
		free(atomic_load_explicit(&m->enc[i], memory_order_relaxed));
	if (m->charged)
		atomic_fetch_sub_explicit(m->charged,
		                          (int_fast64_t)m->alloc_len,
		                          memory_order_relaxed);
	free(m);
}

/* Encodes the header of one variant; the pid placeholder is 0xFFFF. */
static struct msg_enc *msg_encode_variant(const struct msg *m, uint8_t version,
                                          uint8_t qos, bool retain)
{
	struct mqtt_packet p;
	struct mqtt_publish *pub = &p.u.publish;
	struct msg_enc *e;
	size_t total, head;
	int rc;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	pub->qos = qos;
	pub->retain = retain;
	pub->topic.p = (const uint8_t *)m->topic;
	pub->topic.len = m->topic_len;
	pub->packet_id = qos ? 0xFFFF : 0;
	pub->payload = m->payload;
	pub->payload_len = m->payload_len;
	pub->props = m->props;
	total = mqtt_encoded_size(&p, version);
	if (!total || total < m->payload_len)
		return NULL;
	head = total - m->payload_len;
	if (head > UINT16_MAX || !(e = malloc(sizeof(*e) + head)))
		return NULL;
	rc = mqtt_encode_publish_head(pub, version, e->bytes, head);
	if (rc < 0) {
		free(e);
		return NULL;
	}
	e->len = (uint16_t)rc;
	/* Fixed header, then the topic (2 + len), then the packet id. */
	e->pid_off = 0;
	if (qos) {
		size_t fh = 2;

		while (e->bytes[fh - 1] & 0x80)
			fh++;
		e->pid_off = (uint16_t)(fh + 2 + m->topic_len);
	}
	return e;
}

const struct msg_enc *msg_encoded(struct msg *m, uint8_t version, uint8_t qos,
                                  bool retain)
{
	int slot = (version == MQTT_V5 ? 6 : 0) + qos * 2 + (retain ? 1 : 0);
	struct msg_enc *e, *expected = NULL;

	if (qos > 2)
		return NULL;
	e = atomic_load_explicit(&m->enc[slot], memory_order_acquire);
	if (e)
		return e;
	e = msg_encode_variant(m, version, qos, retain);
	if (!e)
		return NULL;
	/* Another worker may have built it meanwhile: keep the first. */
	if (!atomic_compare_exchange_strong_explicit(&m->enc[slot], &expected,
	                                             e, memory_order_acq_rel,
	                                             memory_order_acquire)) {
		free(e);
		return expected;
	}
	return e;
}

bool msg_expired(const struct msg *m, uint64_t now_ms, uint32_t *remaining)
{
	uint64_t elapsed_s;

	if (!m->has_expiry) {
		if (remaining)
			*remaining = 0;
		return false;
	}
	elapsed_s = (now_ms - m->received_ms) / 1000u;
	if (elapsed_s >= m->expiry)
		return true;
	if (remaining)
		*remaining = (uint32_t)(m->expiry - elapsed_s);
	return false;
}
