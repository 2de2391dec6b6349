/*
 * MQTT 5 properties (§2.2.2): one table says, for every property id, its
 * data type, the packets it may appear in and where it lives in struct
 * mqtt_props; decoding, encoding and iteration are all driven by it.
 *
 * Reason codes chosen on decode failure, so the broker can send them as is:
 * - an id that is unknown or not valid for the packet, a truncated value or
 *   a block longer than the packet: TERN_EMALFORMED, 0x81 (§2.2.2.2 calls
 *   an id "not valid for its packet type" a Malformed Packet);
 * - ill-formed UTF-8 in a string property: TERN_EUTF8, 0x81 (§1.5.4);
 * - a single-occurrence property repeated, or a value out of range
 *   (Receive Maximum 0, Maximum Packet Size 0, a 0/1 byte above 1,
 *   Subscription Identifier 0, Authentication Data without Method):
 *   TERN_EPROTO, 0x82, as the property descriptions in §3 say;
 * - Topic Alias 0: TERN_EPROTO, 0x94 (Topic Alias invalid, §3.3.2.3.4).
 */
#include <stddef.h>

#include "base/utf8.h"
#include "mqtt/codec_internal.h"

enum ptype {
	PT_NONE,
	PT_BYTE,
	PT_U16,
	PT_U32,
	PT_VBI,
	PT_STR,
	PT_BIN,
	PT_PAIR
};

struct prop_def {
	uint8_t type; /* enum ptype */
	uint16_t ctx; /* bit (1 << packet type); bit 0 = will properties */
	uint16_t off; /* the field in struct mqtt_props */
};

#define CX(t)    (1u << MQTT_##t)
#define WILL     (1u << MQTT_CTX_WILL)
#define ACKS     (CX(PUBACK) | CX(PUBREC) | CX(PUBREL) | CX(PUBCOMP))
#define MSG      (CX(PUBLISH) | WILL)
#define F(field) offsetof(struct mqtt_props, field)

/* MQTT 5 §2.2.2.2, table "Properties". */
static const struct prop_def defs[64] = {
        [MQTT_PROP_PAYLOAD_FORMAT] = {PT_BYTE, MSG, F(payload_format)},
        [MQTT_PROP_MESSAGE_EXPIRY] = {PT_U32, MSG, F(message_expiry)},
        [MQTT_PROP_CONTENT_TYPE] = {PT_STR, MSG, F(content_type)},
        [MQTT_PROP_RESPONSE_TOPIC] = {PT_STR, MSG, F(response_topic)},
        [MQTT_PROP_CORRELATION_DATA] = {PT_BIN, MSG, F(correlation_data)},
        [MQTT_PROP_SUBSCRIPTION_ID] = {PT_VBI, CX(PUBLISH) | CX(SUBSCRIBE),
                                       F(sub_id)},
        [MQTT_PROP_SESSION_EXPIRY] = {PT_U32,
                                      CX(CONNECT) | CX(CONNACK) |
                                              CX(DISCONNECT),
                                      F(session_expiry)},
        [MQTT_PROP_ASSIGNED_CLIENT_ID] = {PT_STR, CX(CONNACK),
                                          F(assigned_client_id)},
        [MQTT_PROP_SERVER_KEEP_ALIVE] = {PT_U16, CX(CONNACK),
                                         F(server_keep_alive)},
        [MQTT_PROP_AUTH_METHOD] = {PT_STR, CX(CONNECT) | CX(CONNACK) | CX(AUTH),
                                   F(auth_method)},
        [MQTT_PROP_AUTH_DATA] = {PT_BIN, CX(CONNECT) | CX(CONNACK) | CX(AUTH),
                                 F(auth_data)},
        [MQTT_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, CX(CONNECT),
                                            F(request_problem_info)},
        [MQTT_PROP_WILL_DELAY] = {PT_U32, WILL, F(will_delay)},
        [MQTT_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, CX(CONNECT),
                                             F(request_response_info)},
        [MQTT_PROP_RESPONSE_INFO] = {PT_STR, CX(CONNACK), F(response_info)},
        [MQTT_PROP_SERVER_REFERENCE] = {PT_STR, CX(CONNACK) | CX(DISCONNECT),
                                        F(server_reference)},
        [MQTT_PROP_REASON_STRING] = {PT_STR,
                                     CX(CONNACK) | ACKS | CX(SUBACK) |
                                             CX(UNSUBACK) | CX(DISCONNECT) |
                                             CX(AUTH),
                                     F(reason_string)},
        [MQTT_PROP_RECEIVE_MAXIMUM] = {PT_U16, CX(CONNECT) | CX(CONNACK),
                                       F(receive_maximum)},
        [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = {PT_U16, CX(CONNECT) | CX(CONNACK),
                                           F(topic_alias_maximum)},
        [MQTT_PROP_TOPIC_ALIAS] = {PT_U16, CX(PUBLISH), F(topic_alias)},
        [MQTT_PROP_MAXIMUM_QOS] = {PT_BYTE, CX(CONNACK), F(maximum_qos)},
        [MQTT_PROP_RETAIN_AVAILABLE] = {PT_BYTE, CX(CONNACK),
                                        F(retain_available)},
        [MQTT_PROP_USER_PROPERTY] = {PT_PAIR, 0xFFFFu, F(user_props)},
        [MQTT_PROP_MAXIMUM_PACKET_SIZE] = {PT_U32, CX(CONNECT) | CX(CONNACK),
                                           F(maximum_packet_size)},
        [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {PT_BYTE, CX(CONNACK),
                                              F(wildcard_sub_available)},
        [MQTT_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, CX(CONNACK),
                                        F(sub_id_available)},
        [MQTT_PROP_SHARED_SUB_AVAILABLE] = {PT_BYTE, CX(CONNACK),
                                            F(shared_sub_available)},
};

/* One property as read from the wire; which members matter follows type. */
struct prop_val {
	uint32_t n;
	struct mqtt_str s, s2; /* PT_STR; PT_PAIR key and value */
	struct mqtt_bin b;
};

static const struct prop_def *def_of(uint32_t id)
{
	if (id >= 64 || defs[id].type == PT_NONE)
		return NULL;
	return &defs[id];
}

/*
 * Reads one property (id and value) without judging it. Returns the
 * definition, or NULL for an unknown id or a truncated value.
 */
static const struct prop_def *prop_read(struct mqtt_rd *r, uint32_t *id,
                                        struct prop_val *v)
{
	const struct prop_def *d;
	uint8_t u8 = 0;
	uint16_t u16 = 0;
	bool ok = false;

	if (rd_vbi(r, id) < 0 || !(d = def_of(*id)))
		return NULL;
	switch (d->type) {
	case PT_BYTE: ok = rd_u8(r, &u8), v->n = u8; break;
	case PT_U16: ok = rd_u16(r, &u16), v->n = u16; break;
	case PT_U32: ok = rd_u32(r, &v->n); break;
	case PT_VBI: ok = rd_vbi(r, &v->n) == 0; break;
	case PT_STR: ok = rd_str(r, &v->s); break;
	case PT_BIN: ok = rd_bin(r, &v->b); break;
	case PT_PAIR: ok = rd_str(r, &v->s) && rd_str(r, &v->s2); break;
	}
	return ok ? d : NULL;
}

/* The reason code for an out-of-range value, or 0 when it is fine. */
static uint8_t value_check(uint32_t id, const struct prop_def *d, uint32_t n)
{
	if (d->type == PT_BYTE && n > 1)
		return MQTT_RC_PROTOCOL_ERROR; /* every byte property is 0/1 */
	switch (id) {
	case MQTT_PROP_RECEIVE_MAXIMUM:
	case MQTT_PROP_MAXIMUM_PACKET_SIZE:
	case MQTT_PROP_SUBSCRIPTION_ID:
		return n == 0 ? MQTT_RC_PROTOCOL_ERROR : 0;
	case MQTT_PROP_TOPIC_ALIAS:
		return n == 0 ? MQTT_RC_TOPIC_ALIAS_INVALID : 0;
	}
	return 0;
}

/* Stores a validated single-occurrence property in its field. */
static void store(struct mqtt_props *out, const struct prop_def *d,
                  const struct prop_val *v)
{
	char *field = (char *)out + d->off;

	switch (d->type) {
	case PT_BYTE: *(uint8_t *)field = (uint8_t)v->n; break;
	case PT_U16: *(uint16_t *)field = (uint16_t)v->n; break;
	case PT_U32: *(uint32_t *)field = v->n; break;
	case PT_STR: *(struct mqtt_str *)field = v->s; break;
	case PT_BIN: *(struct mqtt_bin *)field = v->b; break;
	}
}

/*
 * User properties keep their wire form: user_props spans from the first
 * 0x26 entry to the end of the last, so the usual contiguous run is copied
 * exactly and anything interleaved is skipped by mqtt_user_prop_next().
 */
static void add_user_prop(struct mqtt_props *out, const uint8_t *start,
                          const uint8_t *end)
{
	if (out->user_prop_count++ == 0)
		out->user_props = start;
	out->user_props_len = (uint32_t)(end - out->user_props);
}

/* Applies one property read from a block in context ctx. */
static int prop_apply(struct mqtt_props *out, unsigned ctx, uint32_t id,
                      const struct prop_def *d, const struct prop_val *v,
                      struct mqtt_error *err)
{
	uint64_t bit = MQTT_PBIT(id);
	uint8_t rc;

	if (!(d->ctx & (1u << ctx)))
		return mqtt_fail(err, TERN_EMALFORMED, MQTT_RC_MALFORMED,
		                 "property not allowed in this packet");
	if ((d->type == PT_STR || d->type == PT_PAIR) &&
	    (utf8_check_mqtt(v->s.p, v->s.len) < 0 ||
	     (d->type == PT_PAIR && utf8_check_mqtt(v->s2.p, v->s2.len) < 0)))
		return mqtt_fail(err, TERN_EUTF8, MQTT_RC_MALFORMED,
		                 "invalid UTF-8 in a property");
	rc = value_check(id, d, v->n);
	if (rc)
		return mqtt_fail(err, TERN_EPROTO, rc,
		                 "property value out of range");
	/* Several subscription ids only in PUBLISH (§3.3.4); user props
	 * repeat anywhere; everything else at most once. */
	if ((out->present & bit) && id != MQTT_PROP_USER_PROPERTY &&
	    !(id == MQTT_PROP_SUBSCRIPTION_ID && ctx == MQTT_PUBLISH))
		return mqtt_fail(err, TERN_EPROTO, MQTT_RC_PROTOCOL_ERROR,
		                 "duplicate property");
	out->present |= bit;
	if (id == MQTT_PROP_SUBSCRIPTION_ID) {
		if (out->sub_id_count++ == 0)
			out->sub_id = v->n;
	} else if (id != MQTT_PROP_USER_PROPERTY) {
		store(out, d, v);
	}
	return 0;
}

int mqtt_props_decode(struct mqtt_rd *r, unsigned ctx, struct mqtt_props *out,
                      struct mqtt_error *err)
{
	struct mqtt_rd pr = {NULL, 0, 0};
	uint32_t blen;
	int rc;

	memset(out, 0, sizeof(*out));
	if (rd_vbi(r, &blen) < 0 || !rd_bytes(r, blen, &pr.p))
		return mqtt_fail(err, TERN_EMALFORMED, MQTT_RC_MALFORMED,
		                 "property length exceeds packet");
	pr.len = blen;
	while (rd_left(&pr)) {
		const uint8_t *start = pr.p + pr.pos;
		const struct prop_def *d;
		struct prop_val v = {0};
		uint32_t id;

		if (!(d = prop_read(&pr, &id, &v)))
			return mqtt_fail(err, TERN_EMALFORMED,
			                 MQTT_RC_MALFORMED,
			                 "unknown or truncated property");
		rc = prop_apply(out, ctx, id, d, &v, err);
		if (rc < 0)
			return rc;
		if (id == MQTT_PROP_USER_PROPERTY)
			add_user_prop(out, start, pr.p + pr.pos);
	}
	if ((out->present & MQTT_PBIT(MQTT_PROP_AUTH_DATA)) &&
	    !(out->present & MQTT_PBIT(MQTT_PROP_AUTH_METHOD)))
		return mqtt_fail(err, TERN_EPROTO, MQTT_RC_PROTOCOL_ERROR,
		                 "authentication data without method");
	if (out->sub_id_count) {
		out->sub_ids_raw = pr.p;
		out->sub_ids_raw_len = blen;
	}
	return 0;
}

/* Writes one single-occurrence property from its field. */
static void write_one(struct mqtt_wr *w, uint32_t id, const struct prop_def *d,
                      const struct mqtt_props *p)
{
	const char *field = (const char *)p + d->off;

	wr_u8(w, (uint8_t)id); /* every id is < 128: a one-byte VBI */
	switch (d->type) {
	case PT_BYTE: wr_u8(w, *(const uint8_t *)field); break;
	case PT_U16: wr_u16(w, *(const uint16_t *)field); break;
	case PT_U32: wr_u32(w, *(const uint32_t *)field); break;
	case PT_STR: wr_str(w, (const struct mqtt_str *)field); break;
	case PT_BIN: wr_bin(w, (const struct mqtt_bin *)field); break;
	}
}

/* The properties without their length prefix. */
static void write_body(struct mqtt_wr *w, const struct mqtt_props *p)
{
	struct mqtt_str k, v;
	uint32_t pos = 0;

	for (uint32_t id = 1; id < 64; id++) {
		const struct prop_def *d = def_of(id);

		if (d && (p->present & MQTT_PBIT(id)) &&
		    id != MQTT_PROP_SUBSCRIPTION_ID &&
		    id != MQTT_PROP_USER_PROPERTY)
			write_one(w, id, d, p);
	}
	for (uint32_t i = 0; p->sub_ids && i < p->sub_id_count; i++) {
		wr_u8(w, MQTT_PROP_SUBSCRIPTION_ID);
		wr_vbi(w, p->sub_ids[i]);
	}
	while (mqtt_user_prop_next(p, &pos, &k, &v)) {
		wr_u8(w, MQTT_PROP_USER_PROPERTY);
		wr_str(w, &k);
		wr_str(w, &v);
	}
}

void mqtt_props_write(struct mqtt_wr *w, const struct mqtt_props *props)
{
	struct mqtt_wr count = {NULL, 0, 0, 0};

	write_body(&count, props);
	if (count.err)
		w->err = count.err;
	if (count.pos > MQTT_MAX_REMAINING) {
		w->err = TERN_ETOOBIG;
		return;
	}
	wr_vbi(w, (uint32_t)count.pos);
	write_body(w, props);
}

size_t mqtt_props_size(const struct mqtt_props *props)
{
	struct mqtt_wr w = {NULL, 0, 0, 0};

	mqtt_props_write(&w, props);
	return w.pos;
}

/*
 * Steps through a region of a property block to the next property with id
 * `want`. The region may come from a caller, so any malformation simply
 * ends the iteration.
 */
static int next_of(const uint8_t *p, uint32_t len, uint32_t *pos, uint32_t want,
                   struct prop_val *v)
{
	struct mqtt_rd r = {p, len, *pos};
	uint32_t id;

	if (!p || *pos >= len)
		return 0;
	while (rd_left(&r)) {
		if (!prop_read(&r, &id, v))
			break;
		if (id == want) {
			*pos = (uint32_t)r.pos;
			return 1;
		}
	}
	*pos = len;
	return 0;
}

int mqtt_user_prop_next(const struct mqtt_props *props, uint32_t *pos,
                        struct mqtt_str *key, struct mqtt_str *value)
{
	struct prop_val v;

	if (!next_of(props->user_props, props->user_props_len, pos,
	             MQTT_PROP_USER_PROPERTY, &v))
		return 0;
	*key = v.s;
	*value = v.s2;
	return 1;
}

int mqtt_sub_id_next(const struct mqtt_props *props, uint32_t *pos,
                     uint32_t *id)
{
	struct prop_val v;

	if (!next_of(props->sub_ids_raw, props->sub_ids_raw_len, pos,
	             MQTT_PROP_SUBSCRIPTION_ID, &v))
		return 0;
	*id = v.n;
	return 1;
}
