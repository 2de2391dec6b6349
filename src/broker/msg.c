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
	atomic_init(&m->refs, 1);
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

void msg_unref(struct msg *m)
{
	if (!m)
		return;
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
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
