/*
 * Tests for src/mqtt/packet.c and props.c: the fixed header, a round trip
 * (encode, decode, compare) of every packet type in MQTT 3.1, 3.1.1 and 5.0,
 * every v5 property, and the malformed inputs of BAD_INPUTS.md that a codec
 * can catch, each with the return code and reason code the broker relies on.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "mqtt/packet.h"

#define S(lit) ((struct mqtt_str){(const uint8_t *)(lit), sizeof(lit) - 1})
#define B(lit) ((struct mqtt_bin){(const uint8_t *)(lit), sizeof(lit) - 1})
#define PB(id) MQTT_PBIT(MQTT_PROP_##id)

static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
static uint8_t buf[1 << 17];

/* Decodes a body given the first byte of its fixed header. */
static int dec_body(uint8_t first, const uint8_t *body, size_t n, uint8_t v,
                    struct mqtt_packet *p, struct mqtt_error *e)
{
	struct mqtt_fixed fh = {first >> 4, first & 0x0F, (uint32_t)n};
	int rc = mqtt_decode(&fh, body, n, v, p, e);

	if (rc < 0)
		print_message("decode: %s\n", e->what);
	return rc;
}

/* Expects decoding to give rc and (when rc < 0) reason code `reason`. */
#define EXPECT(first, v, rc_, why_, ...)                                       \
	do {                                                                   \
		const uint8_t b_[] = {__VA_ARGS__};                            \
		struct mqtt_packet p_;                                         \
		struct mqtt_error e_;                                          \
		int r_ = dec_body(first, b_, sizeof(b_), v, &p_, &e_);         \
		assert_int_equal(r_, rc_);                                     \
		if (r_ < 0)                                                    \
			assert_int_equal(e_.reason, why_);                     \
	} while (0)

#define OK(first, v, ...) EXPECT(first, v, 0, 0, __VA_ARGS__)
#define MALFORMED(first, v, ...)                                               \
	EXPECT(first, v, TERN_EMALFORMED, MQTT_RC_MALFORMED, __VA_ARGS__)
#define PROTO(first, v, ...)                                                   \
	EXPECT(first, v, TERN_EPROTO, MQTT_RC_PROTOCOL_ERROR, __VA_ARGS__)
#define BADUTF8(first, v, ...)                                                 \
	EXPECT(first, v, TERN_EUTF8, MQTT_RC_MALFORMED, __VA_ARGS__)

static void str_eq(struct mqtt_str a, struct mqtt_str b)
{
	assert_int_equal(a.len, b.len);
	if (a.len)
		assert_memory_equal(a.p, b.p, a.len);
}

static void bin_eq(struct mqtt_bin a, struct mqtt_bin b)
{
	assert_int_equal(a.len, b.len);
	if (a.len)
		assert_memory_equal(a.p, b.p, a.len);
}

static void user_props_eq(const struct mqtt_props *a,
                          const struct mqtt_props *b)
{
	uint32_t pa = 0, pb = 0, n = 0;
	struct mqtt_str ka, va, kb, vb;

	while (mqtt_user_prop_next(a, &pa, &ka, &va)) {
		assert_int_equal(mqtt_user_prop_next(b, &pb, &kb, &vb), 1);
		str_eq(ka, kb);
		str_eq(va, vb);
		n++;
	}
	assert_int_equal(mqtt_user_prop_next(b, &pb, &kb, &vb), 0);
	assert_int_equal(b->user_prop_count, n);
}

/* a: as encoded (sub ids in sub_ids[]); b: as decoded. */
static void props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
	uint32_t pos = 0, id;

	assert_int_equal(a->present, b->present);
	assert_int_equal(a->payload_format, b->payload_format);
	assert_int_equal(a->request_problem_info, b->request_problem_info);
	assert_int_equal(a->request_response_info, b->request_response_info);
	assert_int_equal(a->maximum_qos, b->maximum_qos);
	assert_int_equal(a->retain_available, b->retain_available);
	assert_int_equal(a->wildcard_sub_available, b->wildcard_sub_available);
	assert_int_equal(a->sub_id_available, b->sub_id_available);
	assert_int_equal(a->shared_sub_available, b->shared_sub_available);
	assert_int_equal(a->server_keep_alive, b->server_keep_alive);
	assert_int_equal(a->receive_maximum, b->receive_maximum);
	assert_int_equal(a->topic_alias_maximum, b->topic_alias_maximum);
	assert_int_equal(a->topic_alias, b->topic_alias);
	assert_int_equal(a->message_expiry, b->message_expiry);
	assert_int_equal(a->session_expiry, b->session_expiry);
	assert_int_equal(a->will_delay, b->will_delay);
	assert_int_equal(a->maximum_packet_size, b->maximum_packet_size);
	str_eq(a->content_type, b->content_type);
	str_eq(a->response_topic, b->response_topic);
	bin_eq(a->correlation_data, b->correlation_data);
	str_eq(a->assigned_client_id, b->assigned_client_id);
	str_eq(a->auth_method, b->auth_method);
	bin_eq(a->auth_data, b->auth_data);
	str_eq(a->response_info, b->response_info);
	str_eq(a->server_reference, b->server_reference);
	str_eq(a->reason_string, b->reason_string);
	assert_int_equal(a->sub_id_count, b->sub_id_count);
	if (a->sub_id_count)
		assert_int_equal(a->sub_ids[0], b->sub_id);
	for (uint32_t i = 0; i < a->sub_id_count; i++) {
		assert_int_equal(mqtt_sub_id_next(b, &pos, &id), 1);
		assert_int_equal(id, a->sub_ids[i]);
	}
	assert_int_equal(mqtt_sub_id_next(b, &pos, &id), 0);
	user_props_eq(a, b);
}

/*
 * Encodes `in` for level v, checks the size functions and that a buffer one
 * byte short is refused without being written, then decodes into *out.
 */
static void roundtrip(const struct mqtt_packet *in, uint8_t v,
                      struct mqtt_packet *out)
{
	size_t size = mqtt_encoded_size(in, v);
	struct mqtt_fixed fh;
	struct mqtt_error e;
	int n, h;

	print_message("round trip %s v%d\n", mqtt_type_name(in->type), v);
	assert_true(size >= 2);
	memset(buf, 0xAA, size);
	assert_int_equal(mqtt_encode(in, v, buf, size - 1), TERN_ETOOBIG);
	for (size_t i = 0; i < size; i++)
		assert_int_equal(buf[i], 0xAA);
	n = mqtt_encode(in, v, buf, sizeof(buf));
	assert_int_equal(n, size);
	h = mqtt_fixed_header(buf, (size_t)n, &fh);
	assert_true(h >= 2);
	assert_int_equal(fh.remaining, n - h);
	assert_int_equal(dec_body(buf[0], buf + h, fh.remaining, v, out, &e),
	                 0);
	assert_int_equal(out->type, in->type);
}

/* Wire form of two user properties, used wherever they are allowed. */
static const uint8_t user_wire[] = {0x26, 0,    1, 'k', 0,   2, 'v',
                                    '1',  0x26, 0, 1,   'k', 0, 0};

static void add_user(struct mqtt_props *p)
{
	p->present |= PB(USER_PROPERTY);
	p->user_props = user_wire;
	p->user_props_len = sizeof(user_wire);
	p->user_prop_count = 2;
}

/* ---- fixed header ---- */

static void test_fixed_header(void **state)
{
	struct mqtt_fixed fh;
	const uint8_t five[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
	const uint8_t max[] = {0x3B, 0xFF, 0xFF, 0xFF, 0x7F};
	const uint8_t nonmin[] = {0x30, 0x80, 0x00};
	const uint8_t b128[] = {0x30, 0x80, 0x01};
	const uint8_t b16383[] = {0x30, 0xFF, 0x7F};
	const uint8_t b16384[] = {0x30, 0x80, 0x80, 0x01};

	assert_int_equal(mqtt_fixed_header(five, 0, &fh), TERN_EAGAIN);
	assert_int_equal(mqtt_fixed_header(five, 1, &fh), TERN_EAGAIN);
	assert_int_equal(mqtt_fixed_header(five, 4, &fh), TERN_EAGAIN);
	/* Four bytes that all continue are malformed before a fifth comes. */
	assert_int_equal(mqtt_fixed_header(five, 5, &fh), TERN_EMALFORMED);
	assert_int_equal(mqtt_fixed_header(five, 6, &fh), TERN_EMALFORMED);
	assert_int_equal(mqtt_fixed_header(nonmin, 3, &fh), TERN_EMALFORMED);
	assert_int_equal(mqtt_fixed_header(max, 5, &fh), 5);
	assert_int_equal(fh.type, MQTT_PUBLISH);
	assert_int_equal(fh.flags, 0xB);
	assert_int_equal(fh.remaining, MQTT_MAX_REMAINING);
	assert_int_equal(mqtt_fixed_header(b128, 3, &fh), 3);
	assert_int_equal(fh.remaining, 128);
	assert_int_equal(mqtt_fixed_header(b16383, 3, &fh), 3);
	assert_int_equal(fh.remaining, 16383);
	assert_int_equal(mqtt_fixed_header(b16384, 4, &fh), 4);
	assert_int_equal(fh.remaining, 16384);
	assert_int_equal(mqtt_fixed_header((const uint8_t[]){0xC0, 0}, 2, &fh),
	                 2);
	assert_int_equal(fh.remaining, 0);
}

/* ---- round trips ---- */

static struct mqtt_props connect_props(void)
{
	struct mqtt_props p = {0};

	p.present = PB(SESSION_EXPIRY) | PB(AUTH_METHOD) | PB(AUTH_DATA) |
	            PB(REQUEST_PROBLEM_INFO) | PB(REQUEST_RESPONSE_INFO) |
	            PB(RECEIVE_MAXIMUM) | PB(TOPIC_ALIAS_MAXIMUM) |
	            PB(MAXIMUM_PACKET_SIZE);
	p.session_expiry = 0xFFFFFFFF;
	p.auth_method = S("SCRAM-SHA-1");
	p.auth_data = B("\x00\x01\x02");
	p.request_problem_info = 0;
	p.request_response_info = 1;
	p.receive_maximum = 65535;
	p.topic_alias_maximum = 10;
	p.maximum_packet_size = 268435460;
	add_user(&p);
	return p;
}

static struct mqtt_props will_props(void)
{
	struct mqtt_props p = {0};

	p.present = PB(WILL_DELAY) | PB(PAYLOAD_FORMAT) | PB(MESSAGE_EXPIRY) |
	            PB(CONTENT_TYPE) | PB(RESPONSE_TOPIC) |
	            PB(CORRELATION_DATA);
	p.will_delay = 30;
	p.payload_format = 1;
	p.message_expiry = 3600;
	p.content_type = S("text/plain");
	p.response_topic = S("reply/here");
	p.correlation_data = B("\xDE\xAD\x00\xBE\xEF");
	add_user(&p);
	return p;
}

static void test_connect(void **state)
{
	for (size_t i = 0; i < sizeof(versions); i++) {
		uint8_t v = versions[i];
		struct mqtt_packet in = {.type = MQTT_CONNECT}, out;
		struct mqtt_connect *c = &in.u.connect, *o = &out.u.connect;

		c->clean = true;
		c->keepalive = 60;
		c->client_id = S("client-\xC3\xA9");
		c->will = true;
		c->will_qos = 2;
		c->will_retain = true;
		c->will_topic = S("last/will");
		c->will_payload = B("bye\x00!");
		c->has_username = true;
		c->username = S("alice");
		c->has_password = true;
		c->password = B("s\x00cret");
		if (v == MQTT_V5) {
			c->props = connect_props();
			c->will_props = will_props();
		}
		roundtrip(&in, v, &out);
		assert_int_equal(o->version, v);
		assert_int_equal(o->clean, true);
		assert_int_equal(o->keepalive, 60);
		str_eq(o->client_id, c->client_id);
		assert_int_equal(o->will, true);
		assert_int_equal(o->will_qos, 2);
		assert_int_equal(o->will_retain, true);
		str_eq(o->will_topic, c->will_topic);
		bin_eq(o->will_payload, c->will_payload);
		assert_int_equal(o->has_username, true);
		str_eq(o->username, c->username);
		assert_int_equal(o->has_password, true);
		bin_eq(o->password, c->password);
		props_eq(&c->props, &o->props);
		props_eq(&c->will_props, &o->will_props);

		/* Minimal: empty client id, no will, no credentials. */
		memset(&in, 0, sizeof(in));
		in.type = MQTT_CONNECT;
		roundtrip(&in, v, &out);
		assert_int_equal(o->client_id.len, 0);
		assert_false(o->will || o->has_username || o->has_password);
	}
}

static void test_connect_v5_password_only(void **state)
{
	struct mqtt_packet in = {.type = MQTT_CONNECT}, out;

	in.u.connect.client_id = S("c");
	in.u.connect.has_password = true;
	in.u.connect.password = B("tok");
	roundtrip(&in, MQTT_V5, &out);
	assert_false(out.u.connect.has_username);
	bin_eq(out.u.connect.password, in.u.connect.password);
	/* Not expressible before v5. */
	assert_int_equal(mqtt_encode(&in, MQTT_V311, buf, sizeof(buf)),
	                 TERN_EINVAL);
}

static void test_connack(void **state)
{
	for (size_t i = 0; i < sizeof(versions); i++) {
		uint8_t v = versions[i];
		struct mqtt_packet in = {.type = MQTT_CONNACK}, out;
		struct mqtt_props *p = &in.u.connack.props;

		in.u.connack.session_present = true;
		if (v == MQTT_V5) {
			p->present =
			        PB(SESSION_EXPIRY) | PB(ASSIGNED_CLIENT_ID) |
			        PB(SERVER_KEEP_ALIVE) | PB(AUTH_METHOD) |
			        PB(AUTH_DATA) | PB(RESPONSE_INFO) |
			        PB(SERVER_REFERENCE) | PB(REASON_STRING) |
			        PB(RECEIVE_MAXIMUM) | PB(TOPIC_ALIAS_MAXIMUM) |
			        PB(MAXIMUM_QOS) | PB(RETAIN_AVAILABLE) |
			        PB(MAXIMUM_PACKET_SIZE) |
			        PB(WILDCARD_SUB_AVAILABLE) |
			        PB(SUB_ID_AVAILABLE) | PB(SHARED_SUB_AVAILABLE);
			p->session_expiry = 7;
			p->assigned_client_id = S("auto-1");
			p->server_keep_alive = 120;
			p->auth_method = S("m");
			p->auth_data = B("d");
			p->response_info = S("resp/");
			p->server_reference = S("other:1883");
			p->reason_string = S("welcome");
			p->receive_maximum = 20;
			p->topic_alias_maximum = 5;
			p->maximum_qos = 1;
			p->retain_available = 1;
			p->maximum_packet_size = 1024;
			p->wildcard_sub_available = 1;
			p->sub_id_available = 0;
			p->shared_sub_available = 1;
			add_user(p);
		}
		roundtrip(&in, v, &out);
		assert_int_equal(out.u.connack.session_present, true);
		assert_int_equal(out.u.connack.reason, 0);
		props_eq(p, &out.u.connack.props);

		memset(&in, 0, sizeof(in));
		in.type = MQTT_CONNACK;
		in.u.connack.reason = v == MQTT_V5
		                              ? MQTT_RC_BANNED
		                              : MQTT3_CONNACK_BAD_CREDENTIALS;
		roundtrip(&in, v, &out);
		assert_int_equal(out.u.connack.reason, in.u.connack.reason);
		assert_int_equal(mqtt_encoded_size(&in, v),
		                 v == MQTT_V5 ? 5 : 4);
	}
}

static void test_publish(void **state)
{
	static const uint32_t ids[] = {1, 268435455, 128};

	for (size_t i = 0; i < sizeof(versions); i++) {
		for (uint8_t qos = 0; qos < 3; qos++) {
			uint8_t v = versions[i];
			struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;
			struct mqtt_publish *p = &in.u.publish;

			p->qos = qos;
			p->dup = qos > 0;
			p->retain = qos == 1;
			p->topic = S("a/b/c");
			p->packet_id = qos ? 0xFFFF : 0;
			p->payload = (const uint8_t *)"\x00payload";
			p->payload_len = 8;
			if (v == MQTT_V5) {
				p->props = will_props();
				p->props.present &= ~PB(WILL_DELAY);
				p->props.will_delay = 0;
				p->props.present |=
				        PB(TOPIC_ALIAS) | PB(SUBSCRIPTION_ID);
				p->props.topic_alias = 3;
				p->props.sub_ids = ids;
				p->props.sub_id_count = 3;
			}
			roundtrip(&in, v, &out);
			assert_int_equal(out.u.publish.qos, qos);
			assert_int_equal(out.u.publish.dup, qos > 0);
			assert_int_equal(out.u.publish.retain, qos == 1);
			str_eq(out.u.publish.topic, p->topic);
			assert_int_equal(out.u.publish.packet_id, p->packet_id);
			assert_int_equal(out.u.publish.payload_len, 8);
			assert_memory_equal(out.u.publish.payload, p->payload,
			                    8);
			props_eq(&p->props, &out.u.publish.props);
		}
	}
}

static void test_publish_empty_payload_and_alias(void **state)
{
	struct mqtt_packet in = {.type = MQTT_PUBLISH}, out;

	in.u.publish.props.present = PB(TOPIC_ALIAS);
	in.u.publish.props.topic_alias = 1;
	roundtrip(&in, MQTT_V5, &out);
	assert_int_equal(out.u.publish.topic.len, 0);
	assert_int_equal(out.u.publish.payload_len, 0);
	assert_int_equal(out.u.publish.props.topic_alias, 1);
}

static void test_publish_head(void **state)
{
	struct mqtt_packet in = {.type = MQTT_PUBLISH};
	struct mqtt_publish *p = &in.u.publish;
	uint8_t head[64];
	int n, h;

	p->qos = 1;
	p->packet_id = 9;
	p->topic = S("t");
	p->payload = buf + 1000;
	p->payload_len = 300; /* needs a two-byte remaining length */
	memset(buf + 1000, 'x', 300);
	p->props.present = PB(CONTENT_TYPE);
	p->props.content_type = S("x");
	n = mqtt_encode(&in, MQTT_V5, buf, 1000);
	assert_int_equal(n, (int)mqtt_encoded_size(&in, MQTT_V5));
	h = mqtt_encode_publish_head(p, MQTT_V5, head, sizeof(head));
	assert_int_equal(h + 300, n);
	assert_memory_equal(head, buf, (size_t)h);
	assert_int_equal(
	        mqtt_encode_publish_head(p, MQTT_V5, head, (size_t)h - 1),
	        TERN_ETOOBIG);
	/* v3 never carries properties. */
	h = mqtt_encode_publish_head(p, MQTT_V311, head, sizeof(head));
	assert_int_equal(h, 3 + 3 + 2);
}

static void test_acks(void **state)
{
	static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL,
	                                MQTT_PUBCOMP};

	for (size_t i = 0; i < sizeof(versions); i++) {
		for (size_t t = 0; t < sizeof(types); t++) {
			uint8_t v = versions[i];
			struct mqtt_packet in = {.type = types[t]}, out;
			struct mqtt_ack *a = &in.u.ack;

			a->packet_id = 42;
			roundtrip(&in, v, &out);
			assert_int_equal(out.u.ack.packet_id, 42);
			assert_int_equal(out.u.ack.reason, 0);
			assert_int_equal(mqtt_encoded_size(&in, v), 4);
			if (v != MQTT_V5)
				continue;
			a->reason = types[t] == MQTT_PUBREL ||
			                            types[t] == MQTT_PUBCOMP
			                    ? MQTT_RC_PACKET_ID_NOT_FOUND
			                    : MQTT_RC_NO_MATCHING_SUBSCRIBERS;
			roundtrip(&in, v, &out);
			assert_int_equal(out.u.ack.reason, a->reason);
			assert_int_equal(mqtt_encoded_size(&in, v), 5);
			a->props.present = PB(REASON_STRING);
			a->props.reason_string = S("why");
			add_user(&a->props);
			roundtrip(&in, v, &out);
			assert_int_equal(out.u.ack.reason, a->reason);
			props_eq(&a->props, &out.u.ack.props);
		}
	}
}

static void test_subscribe(void **state)
{
	const struct mqtt_sub_entry list[] = {
	        {S("a/+/c"), 0, false, false, 0},
	        {S("#"), 1, true, false, 1},
	        {S("$share/g/x/#"), 2, false, true, 2},
	};
	static const uint32_t id = 77;

	for (size_t i = 0; i < sizeof(versions); i++) {
		uint8_t v = versions[i];
		struct mqtt_packet in = {.type = MQTT_SUBSCRIBE}, out;
		struct mqtt_subscribe *s = &in.u.subscribe;
		struct mqtt_sub_entry e;
		uint32_t pos = 0, n = 0;

		s->packet_id = 7;
		s->list = list;
		s->count = 3;
		if (v == MQTT_V5) {
			s->props.present = PB(SUBSCRIPTION_ID);
			s->props.sub_ids = &id;
			s->props.sub_id_count = 1;
			add_user(&s->props);
		}
		roundtrip(&in, v, &out);
		assert_int_equal(out.u.subscribe.packet_id, 7);
		assert_int_equal(out.u.subscribe.count, 3);
		props_eq(&s->props, &out.u.subscribe.props);
		while (mqtt_sub_next(&out.u.subscribe, true, v, &pos, &e)) {
			const struct mqtt_sub_entry *x = &list[n++];

			str_eq(e.filter, x->filter);
			assert_int_equal(e.qos, x->qos);
			assert_int_equal(e.no_local, v == 5 && x->no_local);
			assert_int_equal(e.retain_as_published,
			                 v == 5 && x->retain_as_published);
			assert_int_equal(e.retain_handling,
			                 v == 5 ? x->retain_handling : 0);
		}
		assert_int_equal(n, 3);

		in.type = MQTT_UNSUBSCRIBE;
		s->props.present &= ~PB(SUBSCRIPTION_ID);
		s->props.sub_id_count = 0;
		roundtrip(&in, v, &out);
		assert_int_equal(out.u.subscribe.count, 3);
		pos = n = 0;
		while (mqtt_sub_next(&out.u.subscribe, false, v, &pos, &e))
			str_eq(e.filter, list[n++].filter);
		assert_int_equal(n, 3);
		props_eq(&s->props, &out.u.subscribe.props);
	}
}

static void test_suback(void **state)
{
	static const uint8_t codes3[] = {0, 1, 2, 0x80};
	static const uint8_t codes5[] = {0,    1,    2,    0x80, 0x83, 0x87,
	                                 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
	static const uint8_t ucodes[] = {0x00, 0x11, 0x80, 0x83,
	                                 0x87, 0x8F, 0x91};

	for (size_t i = 0; i < sizeof(versions); i++) {
		uint8_t v = versions[i];
		struct mqtt_packet in = {.type = MQTT_SUBACK}, out;
		struct mqtt_suback *s = &in.u.suback;

		s->packet_id = 0x1234;
		s->codes = v == MQTT_V5 ? codes5 : codes3;
		s->count = v == MQTT_V5 ? sizeof(codes5) : sizeof(codes3);
		if (v == MQTT_V5) {
			s->props.present = PB(REASON_STRING);
			s->props.reason_string = S("partly");
			add_user(&s->props);
		}
		roundtrip(&in, v, &out);
		assert_int_equal(out.u.suback.packet_id, 0x1234);
		assert_int_equal(out.u.suback.count, s->count);
		assert_memory_equal(out.u.suback.codes, s->codes, s->count);
		props_eq(&s->props, &out.u.suback.props);

		in.type = MQTT_UNSUBACK;
		s->codes = ucodes;
		s->count = sizeof(ucodes);
		roundtrip(&in, v, &out);
		assert_int_equal(out.u.suback.packet_id, 0x1234);
		if (v == MQTT_V5) {
			assert_int_equal(out.u.suback.count, sizeof(ucodes));
			assert_memory_equal(out.u.suback.codes, ucodes,
			                    sizeof(ucodes));
			props_eq(&s->props, &out.u.suback.props);
		} else {
			assert_int_equal(out.u.suback.count, 0);
			assert_int_equal(mqtt_encoded_size(&in, v), 4);
		}
	}
}

static void test_ping_disconnect_auth(void **state)
{
	for (size_t i = 0; i < sizeof(versions); i++) {
		uint8_t v = versions[i];
		struct mqtt_packet in = {.type = MQTT_PINGREQ}, out;
		struct mqtt_disconnect *d = &in.u.disconnect;

		roundtrip(&in, v, &out);
		in.type = MQTT_PINGRESP;
		roundtrip(&in, v, &out);
		in.type = MQTT_DISCONNECT;
		roundtrip(&in, v, &out);
		assert_int_equal(mqtt_encoded_size(&in, v), 2);
		assert_int_equal(out.u.disconnect.reason, 0);
		in.type = MQTT_AUTH;
		if (v != MQTT_V5) {
			assert_int_equal(mqtt_encode(&in, v, buf, sizeof(buf)),
			                 TERN_EINVAL);
			assert_int_equal(mqtt_encoded_size(&in, v), 0);
			continue;
		}
		roundtrip(&in, v, &out);
		assert_int_equal(out.u.disconnect.reason, 0);
		d->reason = MQTT_RC_CONTINUE_AUTH;
		d->props.present =
		        PB(AUTH_METHOD) | PB(AUTH_DATA) | PB(REASON_STRING);
		d->props.auth_method = S("SCRAM");
		d->props.auth_data = B("\x01\x02");
		d->props.reason_string = S("more");
		add_user(&d->props);
		roundtrip(&in, v, &out);
		assert_int_equal(out.u.disconnect.reason, d->reason);
		props_eq(&d->props, &out.u.disconnect.props);

		memset(&in, 0, sizeof(in));
		in.type = MQTT_DISCONNECT;
		d->reason = MQTT_RC_DISCONNECT_WITH_WILL;
		roundtrip(&in, v, &out);
		assert_int_equal(mqtt_encoded_size(&in, v), 3);
		assert_int_equal(out.u.disconnect.reason, d->reason);
		d->reason = MQTT_RC_SERVER_MOVED;
		d->props.present = PB(SESSION_EXPIRY) | PB(REASON_STRING) |
		                   PB(SERVER_REFERENCE);
		d->props.session_expiry = 0;
		d->props.reason_string = S("moved");
		d->props.server_reference = S("elsewhere");
		add_user(&d->props);
		roundtrip(&in, v, &out);
		assert_int_equal(out.u.disconnect.reason, d->reason);
		props_eq(&d->props, &out.u.disconnect.props);
	}
}

/* ---- properties as the broker forwards them ---- */

/*
 * User properties interleaved with others: user_props spans them; after
 * msg.c copies that span, encoding writes only the user properties.
 */
static void test_user_props_interleaved(void **state)
{
	const uint8_t body[] = {0,    1, 't', 17,  0x26, 0, 1, 'a', 0, 1, '1',
	                        0x03, 0, 1,   'c', 0x26, 0, 1, 'b', 0, 0, 'P'};
	struct mqtt_packet p, out;
	struct mqtt_error e;
	struct mqtt_str k, v;
	uint8_t copy[64];
	uint32_t pos = 0;

	assert_int_equal(dec_body(0x30, body, sizeof(body), MQTT_V5, &p, &e),
	                 0);
	assert_int_equal(p.u.publish.props.user_prop_count, 2);
	assert_int_equal(p.u.publish.props.user_props_len, 17);
	assert_int_equal(mqtt_user_prop_next(&p.u.publish.props, &pos, &k, &v),
	                 1);
	str_eq(k, S("a"));
	str_eq(v, S("1"));
	assert_int_equal(mqtt_user_prop_next(&p.u.publish.props, &pos, &k, &v),
	                 1);
	str_eq(k, S("b"));
	str_eq(v, S(""));
	assert_int_equal(mqtt_user_prop_next(&p.u.publish.props, &pos, &k, &v),
	                 0);
	str_eq(p.u.publish.props.content_type, S("c"));

	memcpy(copy, p.u.publish.props.user_props,
	       p.u.publish.props.user_props_len);
	p.u.publish.props.present = PB(USER_PROPERTY);
	p.u.publish.props.user_props = copy;
	/* 1 length byte + (1+2+1+2+1) + (1+2+1+2+0) */
	assert_int_equal(mqtt_props_size(&p.u.publish.props), 1 + 7 + 6);
	roundtrip(&p, MQTT_V5, &out);
	assert_int_equal(out.u.publish.props.present, PB(USER_PROPERTY));
	assert_int_equal(out.u.publish.props.user_props_len, 13);
	user_props_eq(&p.u.publish.props, &out.u.publish.props);
}

/* Thousands of user properties: accepted, counted, linear. */
static void test_many_user_props(void **state)
{
	size_t n = 20000, len = 4 + n * 5;
	struct mqtt_packet p;
	struct mqtt_error e;
	uint8_t *b = buf;

	/* topic "t", property length as a 3-byte VBI, then n x {26 0 0 0 0} */
	b[0] = 0;
	b[1] = 1;
	b[2] = 't';
	b[3] = (uint8_t)(0x80 | ((n * 5) & 0x7F));
	b[4] = (uint8_t)(0x80 | (((n * 5) >> 7) & 0x7F));
	b[5] = (uint8_t)((n * 5) >> 14);
	memset(b + 6, 0, n * 5);
	for (size_t i = 0; i < n; i++)
		b[6 + i * 5] = 0x26;
	len = 6 + n * 5;
	assert_int_equal(dec_body(0x30, b, len, MQTT_V5, &p, &e), 0);
	assert_int_equal(p.u.publish.props.user_prop_count, n);
	assert_int_equal(mqtt_props_size(&p.u.publish.props), 3 + n * 5);
}

static void test_v3_never_writes_props(void **state)
{
	struct mqtt_packet in = {.type = MQTT_PUBLISH};

	in.u.publish.topic = S("t");
	in.u.publish.props = will_props();
	assert_int_equal(mqtt_encoded_size(&in, MQTT_V311), 2 + 3);
	assert_int_equal(mqtt_encoded_size(&in, MQTT_V31), 2 + 3);
	assert_true(mqtt_encoded_size(&in, MQTT_V5) > 2 + 3 + 30);
}

static void test_encode_invalid(void **state)
{
	struct mqtt_packet in = {.type = MQTT_PUBLISH};
	struct mqtt_sub_entry e = {S("a"), 3, false, false, 0};

	in.u.publish.topic = S("t");
	in.u.publish.qos = 3;
	assert_int_equal(mqtt_encode(&in, MQTT_V5, buf, sizeof(buf)),
	                 TERN_EINVAL);
	in.u.publish.qos = 0;
	assert_int_equal(mqtt_encode(&in, 6, buf, sizeof(buf)), TERN_EINVAL);
	in.type = 0;
	assert_int_equal(mqtt_encode(&in, MQTT_V5, buf, sizeof(buf)),
	                 TERN_EINVAL);
	memset(&in, 0, sizeof(in));
	in.type = MQTT_SUBSCRIBE;
	in.u.subscribe.packet_id = 1;
	in.u.subscribe.list = &e;
	in.u.subscribe.count = 1;
	assert_int_equal(mqtt_encode(&in, MQTT_V5, buf, sizeof(buf)),
	                 TERN_EINVAL);
	memset(&in, 0, sizeof(in));
	in.type = MQTT_CONNECT;
	in.u.connect.will = true;
	in.u.connect.will_payload.len = 70000; /* binary data max 65,535 */
	in.u.connect.will_payload.p = buf;
	assert_int_equal(mqtt_encode(&in, MQTT_V5, buf, sizeof(buf)),
	                 TERN_EINVAL);
}

/* ---- malformed and forbidden input (BAD_INPUTS.md, MQTT layer) ---- */

#define CONNECT_HEAD(level) 0, 4, 'M', 'Q', 'T', 'T', level

static void test_bad_connect(void **state)
{
	struct mqtt_packet p;
	struct mqtt_error e;
	const uint8_t lvl2[] = {CONNECT_HEAD(2), 2, 0, 60, 0, 1, 'c'};
	const uint8_t lvl6[] = {CONNECT_HEAD(6), 2, 0, 60, 0, 1, 'c'};
	const uint8_t name[] = {0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 60, 0, 0};
	const uint8_t mqisdp4[] = {0,   6, 'M', 'Q', 'I', 's', 'd',
	                           'p', 4, 2,   0,   60,  0,   0};
	const uint8_t *bad[] = {lvl2, lvl6, name, mqisdp4};
	const size_t badlen[] = {sizeof(lvl2), sizeof(lvl6), sizeof(name),
	                         sizeof(mqisdp4)};

	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(
		        dec_body(0x10, bad[i], badlen[i], MQTT_V5, &p, &e),
		        TERN_EVERSION);
		assert_int_equal(e.connack_rc, MQTT3_CONNACK_BAD_VERSION);
		assert_int_equal(e.reason, MQTT_RC_UNSUPPORTED_VERSION);
	}
	assert_int_equal(p.u.connect.version, 4);

	/* MQTT 3.1 is "MQIsdp" level 3. */
	OK(0x10, 0, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 60, 0, 1, 'c');
	OK(0x10, 0, CONNECT_HEAD(4), 2, 0, 60, 0, 0); /* empty id decodes */
	MALFORMED(0x11, 4, CONNECT_HEAD(4), 2, 0, 60, 0, 0); /* header flags */
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 3, 0, 60, 0, 0); /* reserved bit */
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 0x0A, 0, 60, 0, 0); /* will QoS */
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 0x22, 0, 60, 0, 0); /* retain */
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 0x1E, 0, 60, 0, 0); /* QoS 3 */
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 0x42, 0, 60, 0, 0, 0, 0);
	MALFORMED(0x10, 3, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x42, 0, 60,
	          0, 0, 0, 0);
	OK(0x10, 4, CONNECT_HEAD(5), 0x42, 0, 60, 0, 0, 0, 0, 1, 'p');
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 2, 0, 60, 0, 5, 'c');
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 2, 0, 60, 0, 1, 'c', 'x');
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 2, 0, 60);
	MALFORMED(0x10, 4, 0, 9, 'M');
	/* username / password lengths beyond the packet */
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 0x82, 0, 60, 0, 0, 0, 9, 'u');
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 0xC2, 0, 60, 0, 0, 0, 1, 'u', 0, 3,
	          'p');
	MALFORMED(0x10, 4, CONNECT_HEAD(4), 0x06, 0, 60, 0, 0, 0, 1, 't', 0, 5);
	/* UTF-8 in client id, username, will topic */
	BADUTF8(0x10, 4, CONNECT_HEAD(4), 2, 0, 60, 0, 2, 0xC0, 0xAF);
	BADUTF8(0x10, 4, CONNECT_HEAD(4), 2, 0, 60, 0, 1, 0x00);
	BADUTF8(0x10, 4, CONNECT_HEAD(4), 2, 0, 60, 0, 3, 0xED, 0xA0, 0x80);
	BADUTF8(0x10, 4, CONNECT_HEAD(4), 0x82, 0, 60, 0, 0, 0, 1, 0xFF);
	BADUTF8(0x10, 4, CONNECT_HEAD(4), 0x82, 0, 60, 0, 0, 0, 2, 'a', 0);
	BADUTF8(0x10, 4, CONNECT_HEAD(4), 0x06, 0, 60, 0, 0, 0, 3, 0xED, 0xB0,
	        0x80, 0, 0);
	EXPECT(0x10, 4, TERN_EPROTO, MQTT_RC_TOPIC_NAME_INVALID,
	       CONNECT_HEAD(4), 0x06, 0, 60, 0, 0, 0, 1, '#', 0, 0);
	OK(0x10, 4, CONNECT_HEAD(4), 0x2E, 0, 60, 0, 0, 0, 1, 't', 0, 0);
}

static void test_bad_connect_props(void **state)
{
	/* receive maximum 0, maximum packet size 0, request info 2 */
	PROTO(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 3, 0x21, 0, 0, 0, 0);
	PROTO(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 5, 0x27, 0, 0, 0, 0, 0, 0);
	PROTO(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 2, 0x17, 2, 0, 0);
	PROTO(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 2, 0x19, 2, 0, 0);
	/* duplicate, and auth data without method */
	PROTO(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 6, 0x21, 0, 1, 0x21, 0, 1, 0,
	      0);
	PROTO(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 3, 0x16, 0, 0, 0, 0);
	/* topic alias or will delay in CONNECT properties */
	MALFORMED(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 3, 0x23, 0, 1, 0, 0);
	MALFORMED(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 5, 0x18, 0, 0, 0, 1, 0,
	          0);
	/* session expiry in will properties; will delay there is fine */
	MALFORMED(0x10, 5, CONNECT_HEAD(5), 6, 0, 60, 0, 0, 0, 5, 0x11, 0, 0, 0,
	          1, 0, 1, 't', 0, 0);
	OK(0x10, 5, CONNECT_HEAD(5), 6, 0, 60, 0, 0, 0, 5, 0x18, 0, 0, 0, 1, 0,
	   1, 't', 0, 0);
	/* payload format 2 in will properties */
	PROTO(0x10, 5, CONNECT_HEAD(5), 6, 0, 60, 0, 0, 0, 2, 0x01, 2, 0, 1,
	      't', 0, 0);
	/* ill-formed UTF-8 in auth method and in a user property value */
	BADUTF8(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 4, 0x15, 0, 1, 0x80, 0, 0);
	BADUTF8(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 6, 0x26, 0, 0, 0, 1, 0, 0,
	        0);
	/* property length beyond the packet; non-minimal property length */
	MALFORMED(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 9, 0x21, 0, 1, 0, 0);
	MALFORMED(0x10, 5, CONNECT_HEAD(5), 2, 0, 60, 0x80, 0x00, 0, 0);
}

static void test_bad_publish(void **state)
{
	MALFORMED(0x36, 4, 0, 1, 'a', 0, 1); /* QoS 3 */
	MALFORMED(0x36, 5, 0, 1, 'a', 0, 1, 0);
	PROTO(0x32, 4, 0, 1, 'a', 0, 0); /* packet id 0 */
	PROTO(0x34, 5, 0, 1, 'a', 0, 0, 0);
	MALFORMED(0x38, 4, 0, 1, 'a'); /* DUP on QoS 0 */
	MALFORMED(0x38, 5, 0, 1, 'a', 0);
	MALFORMED(0x30, 4, 0, 5, 'a');    /* topic length */
	MALFORMED(0x32, 4, 0, 1, 'a', 0); /* packet id cut */
	PROTO(0x30, 4, 0, 0, 'x');        /* empty topic v3 */
	PROTO(0x30, 3, 0, 0);
	PROTO(0x30, 5, 0, 0, 0);          /* ...v5, no alias */
	OK(0x30, 5, 0, 0, 3, 0x23, 0, 1); /* ...with alias */
	EXPECT(0x30, 4, TERN_EPROTO, MQTT_RC_TOPIC_NAME_INVALID, 0, 3, 'a', '/',
	       '#');
	EXPECT(0x30, 5, TERN_EPROTO, MQTT_RC_TOPIC_NAME_INVALID, 0, 1, '+', 0);
	BADUTF8(0x30, 4, 0, 2, 0xC0, 0x80);
	BADUTF8(0x30, 4, 0, 3, 'a', 0, 'b');
	BADUTF8(0x30, 5, 0, 3, 0xED, 0xA0, 0x80, 0);
	OK(0x31, 4, 0, 1, '$', 'x', 'y'); /* payload kept */
}

static void test_bad_publish_props(void **state)
{
	struct mqtt_packet p;
	struct mqtt_error e;
	const uint8_t ids[] = {0, 1, 'a', 5, 0x0B, 1, 0x0B, 0x80, 0x01};
	uint32_t pos = 0, id;

	EXPECT(0x30, 5, TERN_EPROTO, MQTT_RC_TOPIC_ALIAS_INVALID, 0, 1, 'a', 3,
	       0x23, 0, 0);
	PROTO(0x30, 5, 0, 1, 'a', 2, 0x01, 2);              /* payload format */
	PROTO(0x30, 5, 0, 1, 'a', 4, 0x01, 0, 0x01, 1);     /* duplicate */
	PROTO(0x30, 5, 0, 1, 'a', 2, 0x0B, 0);              /* sub id 0 */
	MALFORMED(0x30, 5, 0, 1, 'a', 5, 0x11, 0, 0, 0, 1); /* not allowed */
	MALFORMED(0x30, 5, 0, 1, 'a', 2, 0x05, 0);          /* unknown id */
	MALFORMED(0x30, 5, 0, 1, 'a', 2, 0x81, 0x00);       /* id as 2 bytes */
	MALFORMED(0x30, 5, 0, 1, 'a', 5, 0x01);             /* length */
	MALFORMED(0x30, 5, 0, 1, 'a', 2, 0x02, 0);          /* value cut */
	MALFORMED(0x30, 5, 0, 1, 'a', 6, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F);
	MALFORMED(0x30, 5, 0, 1, 'a'); /* no props length */
	BADUTF8(0x30, 5, 0, 1, 'a', 4, 0x03, 0, 1, 0xFF);
	BADUTF8(0x30, 5, 0, 1, 'a', 4, 0x08, 0, 1, 0x00);
	BADUTF8(0x30, 5, 0, 1, 'a', 6, 0x26, 0, 1, 0xFF, 0, 0);
	OK(0x30, 5, 0, 1, 'a', 5, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F);

	/* Several subscription identifiers are allowed in PUBLISH. */
	assert_int_equal(dec_body(0x30, ids, sizeof(ids), 5, &p, &e), 0);
	assert_int_equal(p.u.publish.props.sub_id_count, 2);
	assert_int_equal(p.u.publish.props.sub_id, 1);
	assert_int_equal(mqtt_sub_id_next(&p.u.publish.props, &pos, &id), 1);
	assert_int_equal(id, 1);
	assert_int_equal(mqtt_sub_id_next(&p.u.publish.props, &pos, &id), 1);
	assert_int_equal(id, 128);
	assert_int_equal(mqtt_sub_id_next(&p.u.publish.props, &pos, &id), 0);
}

static void test_bad_acks(void **state)
{
	MALFORMED(0x60, 4, 0, 1); /* PUBREL flags */
	MALFORMED(0x63, 5, 0, 1);
	OK(0x62, 4, 0, 1);
	MALFORMED(0x42, 4, 0, 1); /* PUBACK flags */
	MALFORMED(0x52, 4, 0, 1);
	MALFORMED(0x72, 4, 0, 1);
	PROTO(0x40, 4, 0, 0); /* packet id 0 */
	PROTO(0x70, 5, 0, 0);
	MALFORMED(0x40, 4, 0);
	MALFORMED(0x40, 4, 0, 1, 0); /* v3: exactly 2 */
	OK(0x40, 5, 0, 1, 0x10);
	OK(0x40, 5, 0, 1, 0x99, 0);
	PROTO(0x40, 5, 0, 1, 0x92); /* PUBCOMP's code */
	PROTO(0x70, 5, 0, 1, 0x10);
	OK(0x70, 5, 0, 1, 0x92);
	MALFORMED(0x40, 5, 0, 1, 0, 0, 0); /* trailing */
	MALFORMED(0x40, 5, 0, 1, 0, 3, 0x1F, 0, 5);
	MALFORMED(0x40, 5, 0, 1, 0, 2, 0x01, 0); /* not allowed */
	OK(0x40, 5, 0, 1, 0, 4, 0x1F, 0, 1, 'r');
}

static void test_bad_subscribe(void **state)
{
	const char *filters[] = {"a/#/b",    "a#",           "a+/b",
	                         "$share/x", "$share/a+b/t", "$share//t"};

	MALFORMED(0x80, 4, 0, 1, 0, 1, 'a', 0); /* flags */
	MALFORMED(0x83, 4, 0, 1, 0, 1, 'a', 0);
	PROTO(0x82, 4, 0, 1); /* no filters */
	PROTO(0x82, 5, 0, 1, 0);
	PROTO(0x82, 4, 0, 0, 0, 1, 'a', 0);     /* packet id 0 */
	MALFORMED(0x82, 4, 0, 1, 0, 1, 'a', 3); /* QoS 3: malformed in 3.1.1 */
	PROTO(0x82, 5, 0, 1, 0, 0, 1, 'a', 3);  /* protocol error in 5.0 */
	MALFORMED(0x82, 4, 0, 1, 0, 1, 'a', 0x04); /* v3 reserved */
	MALFORMED(0x82, 3, 0, 1, 0, 1, 'a', 0x80);
	OK(0x82, 5, 0, 1, 0, 0, 1, 'a', 0x2E);
	MALFORMED(0x82, 5, 0, 1, 0, 0, 1, 'a', 0x40); /* v5 reserved */
	PROTO(0x82, 5, 0, 1, 0, 0, 1, 'a', 0x30);     /* retain h. 3 */
	PROTO(0x82, 5, 0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g',
	      '/', 't', 0x04);
	OK(0x82, 5, 0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/',
	   't', 0x01);
	OK(0x82, 4, 0, 1, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/',
	   't', 1);
	MALFORMED(0x82, 4, 0, 1, 0, 5, 'a'); /* filter length */
	MALFORMED(0x82, 4, 0, 1, 0, 1, 'a'); /* options cut */
	MALFORMED(0x82, 4, 0, 1, 0, 1, 'a', 0, 0);
	BADUTF8(0x82, 4, 0, 1, 0, 2, 0xC3, 0x28, 0);
	BADUTF8(0x82, 5, 0, 1, 0, 0, 1, 0, 0);
	PROTO(0x82, 5, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 'a', 0); /* 2 ids */
	PROTO(0x82, 5, 0, 1, 2, 0x0B, 0, 0, 1, 'a', 0);
	MALFORMED(0x82, 5, 0, 1, 2, 0x23, 1, 0, 1, 'a', 0);
	EXPECT(0x82, 4, TERN_EPROTO, MQTT_RC_TOPIC_FILTER_INVALID, 0, 1, 0, 0,
	       0);

	for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
		struct mqtt_packet p;
		struct mqtt_error e;
		size_t n = strlen(filters[i]);
		uint8_t b[32] = {0, 1, 0, (uint8_t)n};

		memcpy(b + 4, filters[i], n);
		print_message("filter %s\n", filters[i]);
		assert_int_equal(dec_body(0x82, b, n + 5, 4, &p, &e),
		                 TERN_EPROTO);
		assert_int_equal(e.reason, MQTT_RC_TOPIC_FILTER_INVALID);
		assert_int_equal(dec_body(0xA2, b, n + 4, 4, &p, &e),
		                 TERN_EPROTO);
		assert_int_equal(e.reason, MQTT_RC_TOPIC_FILTER_INVALID);
	}
}

static void test_bad_unsubscribe(void **state)
{
	MALFORMED(0xA0, 4, 0, 1, 0, 1, 'a');
	PROTO(0xA2, 4, 0, 1);
	PROTO(0xA2, 5, 0, 1, 0);
	PROTO(0xA2, 4, 0, 0, 0, 1, 'a');
	MALFORMED(0xA2, 4, 0, 1, 0, 3, 'a');
	BADUTF8(0xA2, 4, 0, 1, 0, 1, 0xFF);
	MALFORMED(0xA2, 5, 0, 1, 2, 0x0B, 1, 0, 1, 'a'); /* sub id here */
	OK(0xA2, 5, 0, 1, 0, 0, 1, '#');
}

static void test_bad_other(void **state)
{
	MALFORMED(0x00, 4); /* type 0 */
	MALFORMED(0x00, 5);
	MALFORMED(0xF0, 4); /* AUTH before v5 */
	MALFORMED(0xF0, 3);
	OK(0xF0, 5);
	PROTO(0xF0, 5, 0x04); /* not an AUTH code */
	OK(0xF0, 5, 0x18, 0);
	MALFORMED(0xF0, 5, 0x18, 2, 0x11, 0);
	MALFORMED(0xC0, 4, 0); /* PINGREQ body */
	MALFORMED(0xC1, 4);
	MALFORMED(0xD0, 5, 0);
	OK(0xD0, 5);
	MALFORMED(0xE0, 4, 0); /* v3 DISCONNECT */
	MALFORMED(0xE2, 5);
	OK(0xE0, 5);
	OK(0xE0, 5, 0x04);
	OK(0xE0, 5, 0x8E, 0);
	PROTO(0xE0, 5, 0x18);
	PROTO(0xE0, 5, 0, 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2);
	MALFORMED(0xE0, 5, 0, 3, 0x23, 0, 1);
	/* CONNACK, SUBACK, UNSUBACK: client-side checks */
	OK(0x20, 4, 1, 0);
	MALFORMED(0x20, 4, 2, 0);
	PROTO(0x20, 4, 0, 6);
	PROTO(0x20, 4, 1, 5);
	MALFORMED(0x20, 5, 0, 0); /* no properties */
	PROTO(0x20, 5, 0, 0x04, 0);
	OK(0x20, 5, 0, 0x9F, 0);
	OK(0x90, 4, 0, 1, 0x80);
	PROTO(0x90, 4, 0, 1, 0x03);
	PROTO(0x90, 4, 0, 1);
	PROTO(0x90, 5, 0, 1, 0, 0x11);
	OK(0xB0, 4, 0, 1);
	MALFORMED(0xB0, 4, 0, 1, 0);
	PROTO(0xB0, 5, 0, 1, 0);
	OK(0xB0, 5, 0, 1, 0, 0x11);
	PROTO(0xB0, 5, 0, 1, 0, 0x01);
	/* an unknown connection version */
	EXPECT(0x30, 6, TERN_EINVAL, MQTT_RC_UNSPECIFIED, 0, 1, 'a');
}

static void test_type_name(void **state)
{
	assert_string_equal(mqtt_type_name(MQTT_PUBLISH), "PUBLISH");
	assert_string_equal(mqtt_type_name(MQTT_AUTH), "AUTH");
	assert_string_equal(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK");
	assert_string_equal(mqtt_type_name(0), "RESERVED");
	assert_string_equal(mqtt_type_name(200), "UNKNOWN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fixed_header),
	        cmocka_unit_test(test_connect),
	        cmocka_unit_test(test_connect_v5_password_only),
	        cmocka_unit_test(test_connack),
	        cmocka_unit_test(test_publish),
	        cmocka_unit_test(test_publish_empty_payload_and_alias),
	        cmocka_unit_test(test_publish_head),
	        cmocka_unit_test(test_acks),
	        cmocka_unit_test(test_subscribe),
	        cmocka_unit_test(test_suback),
	        cmocka_unit_test(test_ping_disconnect_auth),
	        cmocka_unit_test(test_user_props_interleaved),
	        cmocka_unit_test(test_many_user_props),
	        cmocka_unit_test(test_v3_never_writes_props),
	        cmocka_unit_test(test_encode_invalid),
	        cmocka_unit_test(test_bad_connect),
	        cmocka_unit_test(test_bad_connect_props),
	        cmocka_unit_test(test_bad_publish),
	        cmocka_unit_test(test_bad_publish_props),
	        cmocka_unit_test(test_bad_acks),
	        cmocka_unit_test(test_bad_subscribe),
	        cmocka_unit_test(test_bad_unsubscribe),
	        cmocka_unit_test(test_bad_other),
	        cmocka_unit_test(test_type_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
