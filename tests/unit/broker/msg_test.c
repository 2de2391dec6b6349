/*
 * Tests of refcounted messages (src/broker/msg.c): msg_new copies the topic,
 * payload and forwarded properties out of the decode buffer and drops the
 * rest; msg_expired counts down the expiry interval; msg_charge's counter
 * follows the last reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <string.h>

#include "broker/msg.h"

/* Bytes of property blobs the test message carries after its payload. */
#define BLOBS 19

/* Whether p lies in m's own blob area (after the payload), not in buf. */
static bool inside(const struct msg *m, const void *p)
{
	const uint8_t *b = p, *start = m->payload + m->payload_len;

	return b >= start && b < start + BLOBS;
}

static void test_new_copies(void **state)
{
	uint8_t buf[128];
	struct mqtt_publish pub;
	struct msg *m;
	const uint64_t fwd = MQTT_PBIT(MQTT_PROP_PAYLOAD_FORMAT) |
	                     MQTT_PBIT(MQTT_PROP_CONTENT_TYPE) |
	                     MQTT_PBIT(MQTT_PROP_RESPONSE_TOPIC) |
	                     MQTT_PBIT(MQTT_PROP_CORRELATION_DATA) |
	                     MQTT_PBIT(MQTT_PROP_USER_PROPERTY);
	static const uint8_t user[] = {0x26, 0, 1, 'k', 0, 1, 'v'};

	/* Everything points into buf, like a decoded packet. */
	memcpy(buf, "a/btextrespcorrpayload", 22);
	memcpy(buf + 32, user, sizeof(user));
	memset(&pub, 0, sizeof(pub));
	pub.qos = 2;
	pub.retain = true;
	pub.props.present = fwd | MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY) |
	                    MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS) |
	                    MQTT_PBIT(MQTT_PROP_SUBSCRIPTION_ID);
	pub.props.payload_format = 1;
	pub.props.message_expiry = 30;
	pub.props.topic_alias = 4;
	pub.props.sub_id = 7;
	pub.props.content_type = (struct mqtt_str){buf + 3, 4};
	pub.props.response_topic = (struct mqtt_str){buf + 7, 4};
	pub.props.correlation_data = (struct mqtt_bin){buf + 11, 4};
	pub.props.user_props = buf + 32;
	pub.props.user_props_len = sizeof(user);
	pub.props.user_prop_count = 1;
	pub.payload = buf + 15;
	pub.payload_len = 7;

	m = msg_new(&pub, (const char *)buf, 3, &pub, 5000);
	assert_non_null(m);
	memset(buf, 0, sizeof(buf));

	assert_int_equal(atomic_load(&m->refs), 1);
	assert_int_equal(m->qos, 2);
	assert_true(m->retain);
	assert_ptr_equal(m->origin, &pub);
	assert_int_equal(m->received_ms, 5000);
	assert_true(m->has_expiry);
	assert_int_equal(m->expiry, 30);
	assert_string_equal(m->topic, "a/b");
	assert_int_equal(m->topic_len, 3);
	assert_int_equal(m->payload_len, 7);
	assert_memory_equal(m->payload, "payload", 7);
	/* Only the forwarded properties survive; alias and ids do not. */
	assert_int_equal(m->props.present, fwd);
	assert_int_equal(m->props.payload_format, 1);
	assert_int_equal(m->props.content_type.len, 4);
	assert_memory_equal(m->props.content_type.p, "text", 4);
	assert_true(inside(m, m->props.content_type.p));
	assert_memory_equal(m->props.response_topic.p, "resp", 4);
	assert_true(inside(m, m->props.response_topic.p));
	assert_int_equal(m->props.correlation_data.len, 4);
	assert_memory_equal(m->props.correlation_data.p, "corr", 4);
	assert_int_equal(m->props.user_props_len, sizeof(user));
	assert_int_equal(m->props.user_prop_count, 1);
	assert_memory_equal(m->props.user_props, user, sizeof(user));
	assert_true(inside(m, m->props.user_props));
	assert_int_equal(m->props.topic_alias, 0);
	assert_int_equal(m->props.sub_id_count, 0);
	msg_unref(m);
}

static void test_new_simple(void **state)
{
	struct msg *m = msg_new_simple("$SYS/uptime", "42", 2, 1, true, 9);

	assert_non_null(m);
	assert_string_equal(m->topic, "$SYS/uptime");
	assert_int_equal(m->topic_len, 11);
	assert_memory_equal(m->payload, "42", 2);
	assert_int_equal(m->qos, 1);
	assert_true(m->retain);
	assert_false(m->has_expiry);
	assert_null(m->origin);
	assert_int_equal(m->props.present, 0);
	msg_unref(m);
	m = msg_new_simple("t", NULL, 0, 0, false, 0);
	assert_non_null(m);
	assert_int_equal(m->payload_len, 0);
	msg_unref(m);
}

static void test_refs(void **state)
{
	struct msg *m = msg_new_simple("t", "x", 1, 0, false, 0);

	assert_ptr_equal(msg_ref(m), m);
	assert_int_equal(atomic_load(&m->refs), 2);
	msg_unref(m);
	assert_int_equal(atomic_load(&m->refs), 1);
	msg_unref(m); /* frees: ASan reports a leak otherwise */
	msg_unref(NULL);
}

/* memory_limit's accounting: a charged message adds its allocation's size
 * to the counter and gives it back with its last reference, not before. */
static void test_charge(void **state)
{
	atomic_int_fast64_t counter = 0;
	struct msg *a = msg_new_simple("t/a", "hello", 5, 1, false, 0);
	struct msg *b = msg_new_simple("t/bb", "", 0, 0, false, 0);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	/* The struct, the topic with its NUL and the payload. */
	assert_int_equal(a->alloc_len, sizeof(struct msg) + 4 + 5);
	assert_int_equal(b->alloc_len, sizeof(struct msg) + 5);
	msg_charge(a, &counter);
	msg_charge(b, &counter);
	assert_int_equal(counter, a->alloc_len + b->alloc_len);
	msg_ref(a);
	msg_unref(a);
	assert_int_equal(counter, a->alloc_len + b->alloc_len);
	msg_unref(b);
	assert_int_equal(counter, a->alloc_len);
	msg_unref(a);
	assert_int_equal(counter, 0);
}

static void test_expired(void **state)
{
	struct mqtt_publish pub;
	struct msg *m;
	uint32_t left = 99;

	m = msg_new_simple("t", "x", 1, 0, false, 1000);
	assert_false(msg_expired(m, UINT64_C(1) << 40, &left));
	assert_int_equal(left, 0);
	msg_unref(m);

	memset(&pub, 0, sizeof(pub));
	pub.props.present = MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY);
	pub.props.message_expiry = 10;
	m = msg_new(&pub, "t", 1, NULL, 1000);
	assert_non_null(m);
	assert_false(msg_expired(m, 1000, &left));
	assert_int_equal(left, 10);
	assert_false(msg_expired(m, 5500, &left));
	assert_int_equal(left, 6);
	assert_false(msg_expired(m, 10999, &left));
	assert_int_equal(left, 1);
	assert_false(msg_expired(m, 10999, NULL));
	assert_true(msg_expired(m, 11000, &left));
	assert_true(msg_expired(m, 50000, NULL));
	msg_unref(m);
}

/*
 * msg_encoded: one shared header per variant, equal to what the codec makes
 * for that subscriber with its packet id patched in, built once.
 */
static void test_encoded_variants(void **state)
{
	struct msg *m = msg_new_simple("a/b", "hello", 5, 2, true, 0);
	const struct msg_enc *e0, *e1, *again;
	struct mqtt_packet p;
	uint8_t want[64], got[64];
	int n;

	(void)state;
	e0 = msg_encoded(m, MQTT_V311, 0, false);
	assert_non_null(e0);
	assert_int_equal(e0->pid_off, 0);
	again = msg_encoded(m, MQTT_V311, 0, false);
	assert_ptr_equal(e0, again); /* built once */

	e1 = msg_encoded(m, MQTT_V5, 1, true);
	assert_non_null(e1);
	assert_ptr_not_equal(e0, e1);
	memcpy(got, e1->bytes, e1->len);
	got[e1->pid_off] = 0x12;
	got[e1->pid_off + 1] = 0x34;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.u.publish.qos = 1;
	p.u.publish.retain = true;
	p.u.publish.topic.p = (const uint8_t *)"a/b";
	p.u.publish.topic.len = 3;
	p.u.publish.packet_id = 0x1234;
	p.u.publish.payload = (const uint8_t *)"hello";
	p.u.publish.payload_len = 5;
	n = mqtt_encode_publish_head(&p.u.publish, MQTT_V5, want, sizeof(want));
	assert_int_equal(n, e1->len);
	assert_memory_equal(got, want, (size_t)n);
	msg_unref(m); /* frees the cached headers too (ASan checks) */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_new_copies),
	        cmocka_unit_test(test_new_simple),
	        cmocka_unit_test(test_refs),
	        cmocka_unit_test(test_expired),
	        cmocka_unit_test(test_charge),
	        cmocka_unit_test(test_encoded_variants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
