/* Outgoing messages and their lists (see omsg.h). */
#include "client/omsg.h"

#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

static int check_str(const char *s)
{
	return s == NULL || utf8_check_mqtt((const uint8_t *)s, strlen(s)) == 0
	               ? 0
	               : TERN_EUTF8;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t n)
{
	*p++ = (uint8_t)(n >> 8);
	*p++ = (uint8_t)n;
	memcpy(p, s, n);
	return p + n;
}

int omsg_user_props(const struct tern_user_prop *up, size_t n, uint8_t **out,
                    uint32_t *len, uint32_t *count)
{
	size_t total = 0;
	uint8_t *p;

	*out = NULL;
	*len = *count = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k, v;

		if (up[i].key == NULL || up[i].value == NULL)
			return TERN_EINVAL;
		k = strlen(up[i].key);
		v = strlen(up[i].value);
		if (k > 65535 || v > 65535)
			return TERN_ETOOBIG;
		if (check_str(up[i].key) < 0 || check_str(up[i].value) < 0)
			return TERN_EUTF8;
		total += 5 + k + v;
	}
	if (n == 0)
		return 0;
	if (total > UINT32_MAX / 2)
		return TERN_ETOOBIG;
	p = *out = malloc(total);
	if (p == NULL)
		return TERN_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		*p++ = MQTT_PROP_USER_PROPERTY;
		p = put_str(p, up[i].key, strlen(up[i].key));
		p = put_str(p, up[i].value, strlen(up[i].value));
	}
	*len = (uint32_t)total;
	*count = (uint32_t)n;
	return 0;
}

/* Copies s (NUL-terminated) to *at and points dst at it. */
static void take_str(struct mqtt_str *dst, const char *s, uint8_t **at)
{
	size_t n = strlen(s);

	memcpy(*at, s, n);
	dst->p = *at;
	dst->len = (uint16_t)n;
	*at += n;
}

int omsg_props(const struct tern_props *in, struct mqtt_props *p,
               uint8_t **owned)
{
	size_t need = 0;
	uint8_t *up = NULL, *at;
	uint32_t uplen = 0, upcount = 0;
	int rc;

	memset(p, 0, sizeof(*p));
	*owned = NULL;
	if (in == NULL)
		return 0;
	if (check_str(in->content_type) < 0 ||
	    check_str(in->response_topic) < 0)
		return TERN_EUTF8;
	if ((in->content_type && strlen(in->content_type) > 65535) ||
	    (in->response_topic && strlen(in->response_topic) > 65535) ||
	    in->correlation_len > 65535 ||
	    (in->has_payload_format && in->payload_format > 1))
		return TERN_EINVAL;
	if (in->response_topic &&
	    mqtt_topic_name_check((const uint8_t *)in->response_topic,
	                          strlen(in->response_topic)) < 0)
		return TERN_EINVAL;
	rc = omsg_user_props(in->user_props, in->user_prop_count, &up, &uplen,
	                     &upcount);
	if (rc < 0)
		return rc;
	need = (in->content_type ? strlen(in->content_type) : 0) +
	       (in->response_topic ? strlen(in->response_topic) : 0) +
	       in->correlation_len + uplen + 1;
	at = *owned = malloc(need);
	if (at == NULL) {
		free(up);
		return TERN_ENOMEM;
	}
	if (in->has_payload_format) {
		p->present |= MQTT_PBIT(MQTT_PROP_PAYLOAD_FORMAT);
		p->payload_format = in->payload_format;
	}
	if (in->has_message_expiry) {
		p->present |= MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY);
		p->message_expiry = in->message_expiry;
	}
	if (in->content_type) {
		p->present |= MQTT_PBIT(MQTT_PROP_CONTENT_TYPE);
		take_str(&p->content_type, in->content_type, &at);
	}
	if (in->response_topic) {
		p->present |= MQTT_PBIT(MQTT_PROP_RESPONSE_TOPIC);
		take_str(&p->response_topic, in->response_topic, &at);
	}
	if (in->correlation_data) {
		p->present |= MQTT_PBIT(MQTT_PROP_CORRELATION_DATA);
		memcpy(at, in->correlation_data, in->correlation_len);
		p->correlation_data.p = at;
		p->correlation_data.len = (uint32_t)in->correlation_len;
		at += in->correlation_len;
	}
	if (up) {
		p->present |= MQTT_PBIT(MQTT_PROP_USER_PROPERTY);
		memcpy(at, up, uplen);
		p->user_props = at;
		p->user_props_len = uplen;
		p->user_prop_count = upcount;
		free(up);
	}
	return 0;
}

int omsg_new(const char *topic, const void *payload, size_t len, int qos,
             bool retain, const struct tern_props *props, struct omsg **out)
{
	struct omsg *m = NULL;
	size_t tlen;
	int rc;

	*out = NULL;
	if (topic == NULL || qos < 0 || qos > 2 || (len && payload == NULL))
		return TERN_EINVAL;
	tlen = strlen(topic);
	if (tlen > 65535 ||
	    mqtt_topic_name_check((const uint8_t *)topic, tlen) < 0)
		return TERN_EINVAL;
	if (len > MQTT_MAX_REMAINING)
		return TERN_ETOOBIG;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return TERN_ENOMEM;
	m->qos = (uint8_t)qos;
	m->retain = retain;
	m->topic_len = (uint16_t)tlen;
	m->topic = malloc(tlen + 1);
	m->payload = malloc(len ? len : 1);
	if (m->topic == NULL || m->payload == NULL) {
		rc = TERN_ENOMEM;
		goto fail;
	}
	memcpy(m->topic, topic, tlen + 1);
	if (len)
		memcpy(m->payload, payload, len);
	m->len = len;
	rc = omsg_props(props, &m->props, &m->owned);
	if (rc < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	omsg_free(m);
	return rc;
}

void omsg_free(struct omsg *m)
{
	if (m == NULL)
		return;
	free(m->topic);
	free(m->payload);
	free(m->owned);
	free(m);
}

void omsg_push(struct omsg_list *l, struct omsg *m)
{
	m->next = NULL;
	if (l->tail)
		l->tail->next = m;
	else
		l->head = m;
	l->tail = m;
	l->count++;
}

void omsg_push_front(struct omsg_list *l, struct omsg *m)
{
	m->next = l->head;
	l->head = m;
	if (l->tail == NULL)
		l->tail = m;
	l->count++;
}

struct omsg *omsg_pop(struct omsg_list *l)
{
	struct omsg *m = l->head;

	if (m == NULL)
		return NULL;
	l->head = m->next;
	if (l->head == NULL)
		l->tail = NULL;
	l->count--;
	m->next = NULL;
	return m;
}

struct omsg *omsg_find_id(struct omsg_list *l, uint16_t id)
{
	for (struct omsg *m = l->head; m; m = m->next)
		if (m->packet_id == id)
			return m;
	return NULL;
}

struct omsg *omsg_take_id(struct omsg_list *l, uint16_t id)
{
	struct omsg *prev = NULL;

	for (struct omsg *m = l->head; m; prev = m, m = m->next) {
		if (m->packet_id != id)
			continue;
		if (prev)
			prev->next = m->next;
		else
			l->head = m->next;
		if (l->tail == m)
			l->tail = prev;
		l->count--;
		m->next = NULL;
		return m;
	}
	return NULL;
}
