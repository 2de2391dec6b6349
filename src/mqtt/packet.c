/*
 * The MQTT packet codec (packet.h): the fixed header, decoding of every
 * packet type of MQTT 3.1, 3.1.1 and 5.0 with all the checks a packet
 * allows in isolation, the SUBSCRIBE entry iterator, and encoding.
 * Properties live in props.c and topic rules in topic.c.
 *
 * Decoding failures, and the reason code left in mqtt_error.reason:
 * - structure (truncated field, trailing bytes, bad flags, QoS 3, reserved
 *   bits, DUP on QoS 0): TERN_EMALFORMED, 0x81;
 * - ill-formed UTF-8 anywhere: TERN_EUTF8, 0x81;
 * - a rule broken by well-formed bytes (packet id 0, no SUBSCRIBE entries,
 *   retain handling 3, no-local on a shared subscription, empty topic
 *   without alias, a reason code not defined for the packet):
 *   TERN_EPROTO, 0x82;
 * - wildcards in a PUBLISH or will topic: TERN_EPROTO, 0x90; an invalid
 *   topic filter: TERN_EPROTO, 0x8F;
 * - unsupported protocol name or level: TERN_EVERSION, 0x84, connack_rc 1.
 */
#include "base/utf8.h"
#include "mqtt/codec_internal.h"

int mqtt_fail(struct mqtt_error *err, int rc, uint8_t reason, const char *what)
{
	err->reason = reason;
	err->connack_rc = 0;
	err->what = what;
	return rc;
}

int mqtt_vbi_decode(const uint8_t *p, size_t len, uint32_t *v)
{
	uint32_t value = 0;

	for (size_t i = 0; i < 4; i++) {
		if (i == len)
			return TERN_EAGAIN;
		value |= (uint32_t)(p[i] & 0x7F) << (7 * i);
		if (!(p[i] & 0x80)) {
			/* A last byte of 0 after others means the value
			 * fits in fewer bytes: not the minimum encoding. */
			if (i > 0 && p[i] == 0)
				return TERN_EMALFORMED;
			*v = value;
			return (int)i + 1;
		}
	}
	return TERN_EMALFORMED;
}

static size_t vbi_size(size_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

void wr_vbi(struct mqtt_wr *w, uint32_t v)
{
	if (v > MQTT_MAX_REMAINING) {
		w->err = TERN_EINVAL;
		return;
	}
	do {
		uint8_t b = v & 0x7F;

		v >>= 7;
		wr_u8(w, (uint8_t)(v ? b | 0x80 : b));
	} while (v);
}

void wr_lenbytes(struct mqtt_wr *w, const uint8_t *p, size_t len)
{
	if (len > UINT16_MAX) {
		w->err = TERN_EINVAL;
		return;
	}
	wr_u16(w, (uint16_t)len);
	wr_bytes(w, p, len);
}

int mqtt_fixed_header(const uint8_t *buf, size_t len, struct mqtt_fixed *out)
{
	uint32_t rem;
	int n;

	if (len < 2)
		return TERN_EAGAIN;
	n = mqtt_vbi_decode(buf + 1, len - 1, &rem);
	if (n < 0)
		return n;
	out->type = buf[0] >> 4;
	out->flags = buf[0] & 0x0F;
	out->remaining = rem;
	return n + 1;
}

const char *mqtt_type_name(uint8_t type)
{
	static const char *const names[16] = {
	        "RESERVED",  "CONNECT",  "CONNACK",     "PUBLISH",
	        "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
	        "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
	        "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH",
	};

	return type < 16 ? names[type] : "UNKNOWN";
}

/* ------------------------------------------------------------------ */
/* Decoding                                                             */
/* ------------------------------------------------------------------ */

struct dctx {
	struct mqtt_rd r;
	uint8_t flags;   /* fixed-header flags */
	uint8_t version; /* connection's level; CONNECT's own for CONNECT */
	struct mqtt_packet *out;
	struct mqtt_error *err;
};

static int malformed(struct dctx *d, const char *what)
{
	return mqtt_fail(d->err, TERN_EMALFORMED, MQTT_RC_MALFORMED, what);
}

static int proto(struct dctx *d, uint8_t reason, const char *what)
{
	return mqtt_fail(d->err, TERN_EPROTO, reason, what);
}

static int utf8(struct dctx *d, const struct mqtt_str *s, const char *what)
{
	if (utf8_check_mqtt(s->p, s->len) < 0)
		return mqtt_fail(d->err, TERN_EUTF8, MQTT_RC_MALFORMED, what);
	return 0;
}

static int props(struct dctx *d, unsigned ctx, struct mqtt_props *p)
{
	return mqtt_props_decode(&d->r, ctx, p, d->err);
}

static int packet_id(struct dctx *d, uint16_t *id)
{
	if (!rd_u16(&d->r, id))
		return malformed(d, "packet identifier missing");
	if (*id == 0)
		return proto(d, MQTT_RC_PROTOCOL_ERROR, "packet identifier 0");
	return 0;
}

/* Reason codes each v5 packet may carry (MQTT 5 §2.4 and §3.x.2.1). */
static const uint8_t rc_connack[] = {
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
        0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87,
                                    0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92};
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                    0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rc_suback3[] = {0x00, 0x01, 0x02, 0x80};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t rc_disconnect[] = {
        0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
        0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};

#define RC_LIST(a) a, sizeof(a)

static int reason_ok(struct dctx *d, uint8_t rc, const uint8_t *list, size_t n)
{
	if (!memchr(list, rc, n))
		return proto(d, MQTT_RC_PROTOCOL_ERROR,
		             "reason code not allowed in this packet");
	return 0;
}

/* CONNECT ---------------------------------------------------------- */

/* "MQTT" with level 4 or 5, or "MQIsdp" with level 3 (MQTT 3.1). */
static int connect_version(struct dctx *d, struct mqtt_connect *c)
{
	struct mqtt_str name;
	uint8_t level;
	bool ok;

	if (!rd_str(&d->r, &name) || !rd_u8(&d->r, &level))
		return malformed(d, "CONNECT header truncated");
	c->version = level;
	d->version = level;
	if (level == MQTT_V31)
		ok = name.len == 6 && !memcmp(name.p, "MQIsdp", 6);
	else
		ok = (level == MQTT_V311 || level == MQTT_V5) &&
		     name.len == 4 && !memcmp(name.p, "MQTT", 4);
	if (ok)
		return 0;
	mqtt_fail(d->err, TERN_EVERSION, MQTT_RC_UNSUPPORTED_VERSION,
	          "unsupported protocol name or level");
	d->err->connack_rc = MQTT3_CONNACK_BAD_VERSION;
	return TERN_EVERSION;
}

/* The connect flags byte (MQTT 3.1.2.3 / 5 §3.1.2.3). */
static int connect_flags(struct dctx *d, struct mqtt_connect *c, uint8_t f)
{
	c->clean = f & 0x02;
	c->will = f & 0x04;
	c->will_qos = (f >> 3) & 3;
	c->will_retain = f & 0x20;
	c->has_password = f & 0x40;
	c->has_username = f & 0x80;
	if (f & 0x01)
		return malformed(d, "CONNECT reserved flag set");
	if (!c->will && (c->will_qos || c->will_retain))
		return malformed(d, "will QoS or retain without will flag");
	if (c->will_qos == 3)
		return malformed(d, "will QoS 3");
	if (d->version != MQTT_V5 && c->has_password && !c->has_username)
		return malformed(d, "password without username");
	return 0;
}

static int connect_will(struct dctx *d, struct mqtt_connect *c)
{
	int rc;

	if (d->version == MQTT_V5 &&
	    (rc = props(d, MQTT_CTX_WILL, &c->will_props)) < 0)
		return rc;
	if (!rd_str(&d->r, &c->will_topic) || !rd_bin(&d->r, &c->will_payload))
		return malformed(d, "will truncated");
	if ((rc = utf8(d, &c->will_topic, "invalid UTF-8 in will topic")))
		return rc;
	if (mqtt_topic_name_check(c->will_topic.p, c->will_topic.len) < 0)
		return proto(d, MQTT_RC_TOPIC_NAME_INVALID,
		             "invalid will topic");
	return 0;
}

static int connect_payload(struct dctx *d, struct mqtt_connect *c)
{
	int rc;

	if (!rd_str(&d->r, &c->client_id))
		return malformed(d, "client id truncated");
	if ((rc = utf8(d, &c->client_id, "invalid UTF-8 in client id")))
		return rc;
	if (c->will && (rc = connect_will(d, c)) < 0)
		return rc;
	if (c->has_username) {
		if (!rd_str(&d->r, &c->username))
			return malformed(d, "username truncated");
		if ((rc = utf8(d, &c->username, "invalid UTF-8 in username")))
			return rc;
	}
	if (c->has_password && !rd_bin(&d->r, &c->password))
		return malformed(d, "password truncated");
	return 0;
}

static int dec_connect(struct dctx *d)
{
	struct mqtt_connect *c = &d->out->u.connect;
	uint8_t flags;
	int rc;

	if ((rc = connect_version(d, c)) < 0)
		return rc;
	if (!rd_u8(&d->r, &flags) || !rd_u16(&d->r, &c->keepalive))
		return malformed(d, "CONNECT header truncated");
	if ((rc = connect_flags(d, c, flags)) < 0)
		return rc;
	if (d->version == MQTT_V5 &&
	    (rc = props(d, MQTT_CONNECT, &c->props)) < 0)
		return rc;
	return connect_payload(d, c);
}

/* CONNACK ---------------------------------------------------------- */

static int dec_connack(struct dctx *d)
{
	struct mqtt_connack *c = &d->out->u.connack;
	uint8_t ack;
	int rc;

	if (!rd_u8(&d->r, &ack) || !rd_u8(&d->r, &c->reason))
		return malformed(d, "CONNACK truncated");
	if (ack & 0xFE)
		return malformed(d, "CONNACK reserved flag set");
	c->session_present = ack & 1;
	if (d->version == MQTT_V5) {
		if ((rc = reason_ok(d, c->reason, RC_LIST(rc_connack))) < 0 ||
		    (rc = props(d, MQTT_CONNACK, &c->props)) < 0)
			return rc;
	} else if (c->reason > MQTT3_CONNACK_NOT_AUTHORIZED) {
		return proto(d, MQTT_RC_PROTOCOL_ERROR, "bad CONNACK code");
	}
	if (c->session_present && c->reason)
		return proto(d, MQTT_RC_PROTOCOL_ERROR,
		             "session present on a refused CONNACK");
	return 0;
}

/* PUBLISH ---------------------------------------------------------- */

/* Topic name rules; v5 allows an empty topic when an alias stands in. */
static int publish_topic(struct dctx *d, const struct mqtt_publish *p)
{
	int rc;

	if (p->topic.len == 0) {
		if (d->version == MQTT_V5 &&
		    (p->props.present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS)))
			return 0;
		return proto(d, MQTT_RC_PROTOCOL_ERROR, "empty topic name");
	}
	if ((rc = utf8(d, &p->topic, "invalid UTF-8 in topic name")))
		return rc;
	if (mqtt_topic_name_check(p->topic.p, p->topic.len) < 0)
		return proto(d, MQTT_RC_TOPIC_NAME_INVALID,
		             "wildcard in topic name");
	return 0;
}

static int dec_publish(struct dctx *d)
{
	struct mqtt_publish *p = &d->out->u.publish;
	int rc;

	p->retain = d->flags & 0x01;
	p->qos = (d->flags >> 1) & 3;
	p->dup = d->flags & 0x08;
	if (p->qos == 3)
		return malformed(d, "QoS 3 in PUBLISH");
	if (p->dup && p->qos == 0)
		return malformed(d, "DUP set on a QoS 0 PUBLISH");
	if (!rd_str(&d->r, &p->topic))
		return malformed(d, "topic name truncated");
	if (p->qos && (rc = packet_id(d, &p->packet_id)) < 0)
		return rc;
	if (d->version == MQTT_V5 &&
	    (rc = props(d, MQTT_PUBLISH, &p->props)) < 0)
		return rc;
	if ((rc = publish_topic(d, p)) < 0)
		return rc;
	p->payload_len = (uint32_t)rd_left(&d->r);
	p->payload = d->r.p + d->r.pos;
	d->r.pos = d->r.len;
	return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP ------------------------------------ */

/*
 * v5 shortens these: remaining length 2 means reason 0 and no properties,
 * 3 means a reason and no properties (§3.4.2.1).
 */
static int dec_ack(struct dctx *d)
{
	struct mqtt_ack *a = &d->out->u.ack;
	uint8_t type = d->out->type;
	int rc;

	if ((rc = packet_id(d, &a->packet_id)) < 0)
		return rc;
	if (d->version != MQTT_V5 || !rd_u8(&d->r, &a->reason))
		return 0;
	if (type == MQTT_PUBACK || type == MQTT_PUBREC)
		rc = reason_ok(d, a->reason, RC_LIST(rc_puback));
	else
		rc = reason_ok(d, a->reason, RC_LIST(rc_pubrel));
	if (rc == 0 && rd_left(&d->r))
		rc = props(d, type, &a->props);
	return rc;
}

/* SUBSCRIBE and UNSUBSCRIBE ----------------------------------------- */

/* Options byte of a SUBSCRIBE entry (3.1.1 §3.8.3.1, 5 §3.8.3.1). */
static int sub_options(struct dctx *d, uint8_t o, bool shared)
{
	/* v5 calls a QoS of 3 a Protocol Error (§3.8.3.1); 3.1.1 makes the
	 * packet malformed (§3.8.3.1 there). */
	if ((o & 3) == 3)
		return d->version == MQTT_V5
		               ? proto(d, MQTT_RC_PROTOCOL_ERROR,
		                       "QoS 3 in SUBSCRIBE")
		               : malformed(d, "QoS 3 in SUBSCRIBE");
	if (d->version != MQTT_V5) {
		if (o & 0xFC)
			return malformed(d, "reserved subscription bits set");
		return 0;
	}
	if (o & 0xC0)
		return malformed(d, "reserved subscription bits set");
	if (((o >> 4) & 3) == 3)
		return proto(d, MQTT_RC_PROTOCOL_ERROR, "retain handling 3");
	if ((o & 0x04) && shared)
		return proto(d, MQTT_RC_PROTOCOL_ERROR,
		             "no local on a shared subscription");
	return 0;
}

static int sub_entry(struct dctx *d, bool is_sub)
{
	struct mqtt_str f, group, rest;
	uint8_t o = 0;
	int rc, shared;

	if (!rd_str(&d->r, &f) || (is_sub && !rd_u8(&d->r, &o)))
		return malformed(d, "subscription entry truncated");
	if ((rc = utf8(d, &f, "invalid UTF-8 in topic filter")))
		return rc;
	if (mqtt_topic_filter_check(f.p, f.len) < 0)
		return proto(d, MQTT_RC_TOPIC_FILTER_INVALID,
		             "invalid topic filter");
	shared = mqtt_share_split(f.p, f.len, &group, &rest);
	return is_sub ? sub_options(d, o, shared == 1) : 0;
}

static int dec_subscribe(struct dctx *d)
{
	struct mqtt_subscribe *s = &d->out->u.subscribe;
	bool is_sub = d->out->type == MQTT_SUBSCRIBE;
	int rc;

	if ((rc = packet_id(d, &s->packet_id)) < 0)
		return rc;
	if (d->version == MQTT_V5 &&
	    (rc = props(d, d->out->type, &s->props)) < 0)
		return rc;
	s->entries = d->r.p + d->r.pos;
	s->entries_len = (uint32_t)rd_left(&d->r);
	while (rd_left(&d->r)) {
		if ((rc = sub_entry(d, is_sub)) < 0)
			return rc;
		s->count++;
	}
	if (s->count == 0)
		return proto(d, MQTT_RC_PROTOCOL_ERROR, "no topic filters");
	return 0;
}

int mqtt_sub_next(const struct mqtt_subscribe *s, bool is_sub, uint8_t version,
                  uint32_t *pos, struct mqtt_sub_entry *e)
{
	struct mqtt_rd r = {s->entries, s->entries_len, *pos};
	struct mqtt_str f;
	uint8_t o = 0;

	if (!s->entries || *pos >= s->entries_len)
		return 0;
	if (!rd_str(&r, &f) || (is_sub && !rd_u8(&r, &o)))
		return 0;
	memset(e, 0, sizeof(*e));
	e->filter = f;
	e->qos = o & 3;
	if (version == MQTT_V5) {
		e->no_local = o & 0x04;
		e->retain_as_published = o & 0x08;
		e->retain_handling = (o >> 4) & 3;
	}
	*pos = (uint32_t)r.pos;
	return 1;
}

/* SUBACK and UNSUBACK ------------------------------------------------ */

static int dec_suback(struct dctx *d)
{
	struct mqtt_suback *s = &d->out->u.suback;
	bool is_sub = d->out->type == MQTT_SUBACK;
	const uint8_t *list = rc_unsuback;
	size_t n = sizeof(rc_unsuback);
	int rc;

	if ((rc = packet_id(d, &s->packet_id)) < 0)
		return rc;
	if (d->version != MQTT_V5 && !is_sub)
		return 0; /* a v3 UNSUBACK is just the packet id */
	if (d->version == MQTT_V5 &&
	    (rc = props(d, d->out->type, &s->props)) < 0)
		return rc;
	if (is_sub && d->version == MQTT_V5)
		list = rc_suback, n = sizeof(rc_suback);
	else if (is_sub)
		list = rc_suback3, n = sizeof(rc_suback3);
	s->codes = d->r.p + d->r.pos;
	s->count = (uint32_t)rd_left(&d->r);
	d->r.pos = d->r.len;
	if (s->count == 0)
		return proto(d, MQTT_RC_PROTOCOL_ERROR, "no reason codes");
	for (uint32_t i = 0; i < s->count; i++)
		if ((rc = reason_ok(d, s->codes[i], list, n)) < 0)
			return rc;
	return 0;
}

/* PINGREQ, PINGRESP, DISCONNECT, AUTH -------------------------------- */

static int dec_empty(struct dctx *d)
{
	return 0; /* any byte is caught as trailing */
}

/* v5 DISCONNECT and AUTH: remaining length 0 means reason 0. */
static int dec_disconnect(struct dctx *d)
{
	struct mqtt_disconnect *x = &d->out->u.disconnect;
	uint8_t type = d->out->type;
	int rc;

	if (d->version != MQTT_V5 || !rd_u8(&d->r, &x->reason))
		return 0;
	if (type == MQTT_AUTH)
		rc = reason_ok(d, x->reason, RC_LIST(rc_auth));
	else
		rc = reason_ok(d, x->reason, RC_LIST(rc_disconnect));
	if (rc == 0 && rd_left(&d->r))
		rc = props(d, type, &x->props);
	return rc;
}

typedef int (*dec_fn)(struct dctx *d);

static const dec_fn decoders[16] = {
        [MQTT_CONNECT] = dec_connect, [MQTT_CONNACK] = dec_connack,
        [MQTT_PUBLISH] = dec_publish, [MQTT_PUBACK] = dec_ack,
        [MQTT_PUBREC] = dec_ack,      [MQTT_PUBREL] = dec_ack,
        [MQTT_PUBCOMP] = dec_ack,     [MQTT_SUBSCRIBE] = dec_subscribe,
        [MQTT_SUBACK] = dec_suback,   [MQTT_UNSUBSCRIBE] = dec_subscribe,
        [MQTT_UNSUBACK] = dec_suback, [MQTT_PINGREQ] = dec_empty,
        [MQTT_PINGRESP] = dec_empty,  [MQTT_DISCONNECT] = dec_disconnect,
        [MQTT_AUTH] = dec_disconnect,
};

/* Fixed-header flags are fixed for every type but PUBLISH (§2.1.3). */
static bool flags_ok(uint8_t type, uint8_t flags)
{
	if (type == MQTT_PUBLISH)
		return true;
	if (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE ||
	    type == MQTT_UNSUBSCRIBE)
		return flags == 0x2;
	return flags == 0;
}

int mqtt_decode(const struct mqtt_fixed *fh, const uint8_t *body, size_t len,
                uint8_t version, struct mqtt_packet *out,
                struct mqtt_error *err)
{
	struct mqtt_error spare;
	struct dctx d = {{body, len, 0}, fh->flags, version, out, err};
	int rc;

	if (!err)
		d.err = &spare;
	memset(d.err, 0, sizeof(*d.err));
	memset(out, 0, sizeof(*out));
	out->type = fh->type;
	if (fh->type != MQTT_CONNECT &&
	    (version < MQTT_V31 || version > MQTT_V5))
		return mqtt_fail(d.err, TERN_EINVAL, MQTT_RC_UNSPECIFIED,
		                 "unknown protocol level");
	if (fh->type > 15 || !decoders[fh->type] ||
	    (fh->type == MQTT_AUTH && version != MQTT_V5))
		return malformed(&d, "reserved packet type");
	if (!flags_ok(fh->type, fh->flags))
		return malformed(&d, "invalid fixed header flags");
	rc = decoders[fh->type](&d);
	if (rc == 0 && rd_left(&d.r))
		return malformed(&d, "trailing bytes");
	return rc;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                             */
/* ------------------------------------------------------------------ */

/*
 * Every encoder writes the body only; mqtt_encode() runs it once to count
 * and once to write, with the fixed header in between.
 */
typedef void (*enc_fn)(struct mqtt_wr *w, const struct mqtt_packet *p,
                       uint8_t v);

static void enc_props(struct mqtt_wr *w, const struct mqtt_props *p, uint8_t v)
{
	if (v == MQTT_V5)
		mqtt_props_write(w, p);
}

static uint8_t connect_flag_byte(const struct mqtt_connect *c)
{
	uint8_t f = 0;

	if (c->clean)
		f |= 0x02;
	if (c->will)
		f |= (uint8_t)(0x04 | c->will_qos << 3 |
		               (c->will_retain ? 0x20 : 0));
	if (c->has_password)
		f |= 0x40;
	if (c->has_username)
		f |= 0x80;
	return f;
}

static void enc_connect(struct mqtt_wr *w, const struct mqtt_packet *p,
                        uint8_t v)
{
	const struct mqtt_connect *c = &p->u.connect;

	if (c->will_qos > 2 ||
	    (v != MQTT_V5 && c->has_password && !c->has_username))
		w->err = TERN_EINVAL;
	if (v == MQTT_V31)
		wr_lenbytes(w, (const uint8_t *)"MQIsdp", 6);
	else
		wr_lenbytes(w, (const uint8_t *)"MQTT", 4);
	wr_u8(w, v);
	wr_u8(w, connect_flag_byte(c));
	wr_u16(w, c->keepalive);
	enc_props(w, &c->props, v);
	wr_str(w, &c->client_id);
	if (c->will) {
		enc_props(w, &c->will_props, v);
		wr_str(w, &c->will_topic);
		wr_bin(w, &c->will_payload);
	}
	if (c->has_username)
		wr_str(w, &c->username);
	if (c->has_password)
		wr_bin(w, &c->password);
}

static void enc_connack(struct mqtt_wr *w, const struct mqtt_packet *p,
                        uint8_t v)
{
	wr_u8(w, p->u.connack.session_present ? 1 : 0);
	wr_u8(w, p->u.connack.reason);
	enc_props(w, &p->u.connack.props, v);
}

static void enc_publish_head(struct mqtt_wr *w, const struct mqtt_publish *p,
                             uint8_t v)
{
	if (p->qos > 2)
		w->err = TERN_EINVAL;
	wr_str(w, &p->topic);
	if (p->qos)
		wr_u16(w, p->packet_id);
	enc_props(w, &p->props, v);
}

static void enc_publish(struct mqtt_wr *w, const struct mqtt_packet *p,
                        uint8_t v)
{
	enc_publish_head(w, &p->u.publish, v);
	wr_bytes(w, p->u.publish.payload, p->u.publish.payload_len);
}

/* Whether a v5 property block would be empty (just its 0 length). */
static bool props_empty(const struct mqtt_props *p)
{
	return mqtt_props_size(p) == 1;
}

static void enc_ack(struct mqtt_wr *w, const struct mqtt_packet *p, uint8_t v)
{
	const struct mqtt_ack *a = &p->u.ack;
	bool empty = v != MQTT_V5 || props_empty(&a->props);

	wr_u16(w, a->packet_id);
	if (v != MQTT_V5 || (empty && a->reason == MQTT_RC_SUCCESS))
		return;
	wr_u8(w, a->reason);
	if (!empty)
		mqtt_props_write(w, &a->props);
}

static void enc_subscribe(struct mqtt_wr *w, const struct mqtt_packet *p,
                          uint8_t v)
{
	const struct mqtt_subscribe *s = &p->u.subscribe;

	wr_u16(w, s->packet_id);
	enc_props(w, &s->props, v);
	for (uint32_t i = 0; s->list && i < s->count; i++) {
		const struct mqtt_sub_entry *e = &s->list[i];
		uint8_t o = e->qos;

		if (e->qos > 2 || e->retain_handling > 2)
			w->err = TERN_EINVAL;
		if (v == MQTT_V5)
			o |= (uint8_t)((e->no_local ? 0x04 : 0) |
			               (e->retain_as_published ? 0x08 : 0) |
			               (e->retain_handling & 3) << 4);
		wr_str(w, &e->filter);
		if (p->type == MQTT_SUBSCRIBE)
			wr_u8(w, o);
	}
}

static void enc_suback(struct mqtt_wr *w, const struct mqtt_packet *p,
                       uint8_t v)
{
	const struct mqtt_suback *s = &p->u.suback;

	wr_u16(w, s->packet_id);
	if (v != MQTT_V5 && p->type == MQTT_UNSUBACK)
		return;
	enc_props(w, &s->props, v);
	wr_bytes(w, s->codes, s->count);
}

static void enc_empty(struct mqtt_wr *w, const struct mqtt_packet *p, uint8_t v)
{
}

/* v5 DISCONNECT and AUTH omit what is default (§3.14.2.1, §3.15.2.1). */
static void enc_disconnect(struct mqtt_wr *w, const struct mqtt_packet *p,
                           uint8_t v)
{
	const struct mqtt_disconnect *x = &p->u.disconnect;
	bool empty;

	if (v != MQTT_V5)
		return;
	empty = props_empty(&x->props);
	if (empty && x->reason == MQTT_RC_SUCCESS)
		return;
	wr_u8(w, x->reason);
	if (!empty)
		mqtt_props_write(w, &x->props);
}

static const enc_fn encoders[16] = {
        [MQTT_CONNECT] = enc_connect, [MQTT_CONNACK] = enc_connack,
        [MQTT_PUBLISH] = enc_publish, [MQTT_PUBACK] = enc_ack,
        [MQTT_PUBREC] = enc_ack,      [MQTT_PUBREL] = enc_ack,
        [MQTT_PUBCOMP] = enc_ack,     [MQTT_SUBSCRIBE] = enc_subscribe,
        [MQTT_SUBACK] = enc_suback,   [MQTT_UNSUBSCRIBE] = enc_subscribe,
        [MQTT_UNSUBACK] = enc_suback, [MQTT_PINGREQ] = enc_empty,
        [MQTT_PINGRESP] = enc_empty,  [MQTT_DISCONNECT] = enc_disconnect,
        [MQTT_AUTH] = enc_disconnect,
};

static uint8_t first_byte(const struct mqtt_packet *p)
{
	const struct mqtt_publish *pub = &p->u.publish;
	uint8_t f = 0;

	if (p->type == MQTT_PUBLISH)
		f = (uint8_t)((pub->dup ? 0x08 : 0) | (pub->qos & 3) << 1 |
		              (pub->retain ? 0x01 : 0));
	else if (p->type == MQTT_PUBREL || p->type == MQTT_SUBSCRIBE ||
	         p->type == MQTT_UNSUBSCRIBE)
		f = 0x02;
	return (uint8_t)(p->type << 4 | f);
}

static bool encodable(uint8_t type, uint8_t v)
{
	return v >= MQTT_V31 && v <= MQTT_V5 && type < 16 && encoders[type] &&
	       (type != MQTT_AUTH || v == MQTT_V5);
}

/*
 * Writes the fixed header for a body of `body` bytes, then the first `head`
 * bytes of that body: all of it, or only a PUBLISH head when the caller
 * sends the payload itself.
 */
static int encode_framed(const struct mqtt_packet *p, uint8_t v, size_t body,
                         size_t head, uint8_t *out, size_t cap)
{
	struct mqtt_wr w = {out, cap, 0, 0};

	if (body > MQTT_MAX_REMAINING || 1 + vbi_size(body) + head > cap)
		return TERN_ETOOBIG;
	wr_u8(&w, first_byte(p));
	wr_vbi(&w, (uint32_t)body);
	if (head != body)
		enc_publish_head(&w, &p->u.publish, v);
	else
		encoders[p->type](&w, p, v);
	return (int)w.pos;
}

/* Counts the body of p; returns its size or a negative TERN_E* code. */
static long long body_size(const struct mqtt_packet *p, uint8_t v)
{
	struct mqtt_wr w = {NULL, 0, 0, 0};

	if (!encodable(p->type, v))
		return TERN_EINVAL;
	encoders[p->type](&w, p, v);
	return w.err ? w.err : (long long)w.pos;
}

size_t mqtt_encoded_size(const struct mqtt_packet *p, uint8_t version)
{
	long long n = body_size(p, version);

	return n < 0 ? 0 : 1 + vbi_size((size_t)n) + (size_t)n;
}

int mqtt_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *out,
                size_t cap)
{
	long long n = body_size(p, version);

	if (n < 0)
		return (int)n;
	return encode_framed(p, version, (size_t)n, (size_t)n, out, cap);
}

int mqtt_encode_publish_head(const struct mqtt_publish *pub, uint8_t version,
                             uint8_t *out, size_t cap)
{
	struct mqtt_packet p;
	struct mqtt_wr w = {NULL, 0, 0, 0};

	p.type = MQTT_PUBLISH;
	p.u.publish = *pub;
	if (!encodable(MQTT_PUBLISH, version))
		return TERN_EINVAL;
	enc_publish_head(&w, pub, version);
	if (w.err)
		return w.err;
	return encode_framed(&p, version, w.pos + pub->payload_len, w.pos, out,
	                     cap);
}
