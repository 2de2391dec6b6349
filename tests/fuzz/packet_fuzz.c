/*
 * libFuzzer target for the MQTT codec. Each input is parsed as one packet
 * (fixed header, then body) at every protocol level. When it decodes, every
 * iterator is walked, the packet is encoded again, and that encoding must
 * decode and re-encode to the same bytes: the decoder's output is always
 * something the encoder can express, and the two agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mqtt/packet.h"

#define MAX_ITEMS 4096

struct scratch {
	struct mqtt_sub_entry subs[MAX_ITEMS];
	uint32_t ids[MAX_ITEMS];
};

static uint32_t count_user_props(const struct mqtt_props *p)
{
	struct mqtt_str k, v;
	uint32_t pos = 0, n = 0;

	while (mqtt_user_prop_next(p, &pos, &k, &v))
		n++;
	CHECK(n == p->user_prop_count);
	return n;
}

/* Points props->sub_ids at the decoded ids so the encoder writes them. */
static int collect_sub_ids(struct mqtt_props *p, uint32_t *ids)
{
	uint32_t pos = 0, n = 0, id;

	while (n < MAX_ITEMS && mqtt_sub_id_next(p, &pos, &id))
		ids[n++] = id;
	CHECK(n == p->sub_id_count || n == MAX_ITEMS);
	if (n != p->sub_id_count)
		return -1;
	CHECK(n == 0 || ids[0] == p->sub_id);
	p->sub_ids = ids;
	return 0;
}

static struct mqtt_props *props_of(struct mqtt_packet *p)
{
	switch (p->type) {
	case MQTT_CONNECT: return &p->u.connect.props;
	case MQTT_CONNACK: return &p->u.connack.props;
	case MQTT_PUBLISH: return &p->u.publish.props;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP: return &p->u.ack.props;
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE: return &p->u.subscribe.props;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK: return &p->u.suback.props;
	default: return &p->u.disconnect.props;
	}
}

/* Turns a decoded packet into one the encoder takes; -1 if too many items. */
static int prepare(struct mqtt_packet *p, uint8_t v, struct scratch *s)
{
	struct mqtt_subscribe *sub = &p->u.subscribe;
	bool is_sub = p->type == MQTT_SUBSCRIBE;
	uint32_t pos = 0, n = 0;

	count_user_props(props_of(p));
	if (p->type == MQTT_CONNECT)
		count_user_props(&p->u.connect.will_props);
	if (collect_sub_ids(props_of(p), s->ids) < 0)
		return -1;
	if (!is_sub && p->type != MQTT_UNSUBSCRIBE)
		return 0;
	while (n < MAX_ITEMS &&
	       mqtt_sub_next(sub, is_sub, v, &pos, &s->subs[n]))
		n++;
	if (n != sub->count)
		return -1;
	sub->list = s->subs;
	return 0;
}

/* Encodes p into a fresh buffer of exactly mqtt_encoded_size bytes. */
static uint8_t *encode(const struct mqtt_packet *p, uint8_t v, size_t *len)
{
	size_t n = mqtt_encoded_size(p, v);
	uint8_t *out = malloc(n ? n : 1);

	CHECK(out && n >= 2);
	CHECK(mqtt_encode(p, v, out, n - 1) == TERN_ETOOBIG);
	CHECK(mqtt_encode(p, v, out, n) == (int)n);
	*len = n;
	return out;
}

static int decode(const uint8_t *b, size_t len, uint8_t v,
                  struct mqtt_packet *p)
{
	struct mqtt_fixed fh;
	struct mqtt_error err;
	int h = mqtt_fixed_header(b, len, &fh);
	int rc;

	if (h < 0)
		return h;
	CHECK(h >= 2 && h <= 5);
	if (len - (size_t)h < fh.remaining)
		return TERN_EAGAIN;
	rc = mqtt_decode(&fh, b + h, fh.remaining, v, p, &err);
	CHECK(rc <= 0);
	CHECK(rc == 0 || err.what != NULL);
	return rc;
}

static void one(const uint8_t *data, size_t size, uint8_t v, struct scratch *s)
{
	struct mqtt_packet p, q;
	uint8_t *a, *b;
	size_t alen, blen;

	if (decode(data, size, v, &p) < 0)
		return;
	if (p.type == MQTT_CONNECT)
		v = p.u.connect.version;
	if (prepare(&p, v, s) < 0)
		return;
	a = encode(&p, v, &alen);
	CHECK(decode(a, alen, v, &q) == 0);
	CHECK(q.type == p.type);
	CHECK(prepare(&q, v, s) == 0);
	b = encode(&q, v, &blen);
	CHECK(alen == blen && memcmp(a, b, alen) == 0);
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scratch s;

	for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
		one(data, size, v, &s);
	return 0;
}
