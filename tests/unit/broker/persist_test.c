/*
 * Tests of the durability core that needs no store thread
 * (src/broker/persist_apply.c): compaction of one round's operations (a
 * queue row put, updated and deleted within a round vanishes; an update
 * folds into its put; later writes of a record replace earlier ones; a
 * session's deletion cancels its earlier writes; retained writes keep the
 * highest number), and the encoding of messages and wills into store
 * blobs and back, including blobs that are not ours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "broker/msg.h"
#include "broker/persist_int.h"
#include "broker/session.h"

struct round {
	struct persist p;
	struct session *a, *b;
	struct msg *m;
};

static int setup(void **state)
{
	struct round *r = calloc(1, sizeof(*r));

	r->a = session_new("a");
	r->b = session_new("b");
	r->m = msg_new_simple("t/1", "x", 1, 1, false, clock_ms());
	assert_non_null(r->a);
	assert_non_null(r->m);
	*state = r;
	return 0;
}

static int teardown(void **state)
{
	struct round *r = *state;
	size_t i;

	for (i = 0; i < r->p.nops; i++)
		pop_release(&r->p.ops[i]);
	free(r->p.ops);
	free(r->p.enc);
	session_unref(r->a);
	session_unref(r->b);
	msg_unref(r->m);
	free(r);
	return 0;
}

/* Appends an operation to the round (taking references as append does). */
static struct pop *add(struct round *r, uint8_t kind, struct session *s,
                       uint64_t seq)
{
	struct pop *op;

	if (r->p.nops == r->p.ops_cap) {
		r->p.ops_cap = r->p.ops_cap ? r->p.ops_cap * 2 : 16;
		r->p.ops = realloc(r->p.ops, r->p.ops_cap * sizeof(*op));
	}
	op = &r->p.ops[r->p.nops++];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->s = s ? session_ref(s) : NULL;
	op->seq = seq;
	if (kind == OP_Q_PUT || kind == OP_RET_PUT || kind == OP_RET_DEL) {
		op->m = msg_ref(r->m);
		op->msg_id = 7;
	}
	return op;
}

static struct pop *add_sub(struct round *r, uint8_t kind, struct session *s,
                           const char *filter)
{
	struct pop *op = add(r, kind, s, 0);

	op->len = (uint16_t)strlen(filter);
	op->ptr = strdup(filter);
	return op;
}

/* "L" for live, "D" for dead, one letter per operation in order. */
static void expect_live(const struct round *r, const char *want)
{
	char got[64];
	size_t i;

	for (i = 0; i < r->p.nops && i < sizeof(got) - 1; i++)
		got[i] = r->p.ops[i].dead ? 'D' : 'L';
	got[i] = '\0';
	assert_string_equal(got, want);
}

static void test_put_update_delete_vanish(void **state)
{
	struct round *r = *state;

	add(r, OP_Q_PUT, r->a, 1);
	add(r, OP_Q_PUT, r->b, 1);
	add(r, OP_Q_UPD, r->a, 1)->state = QS_WAIT_PUBACK;
	add(r, OP_Q_DEL, r->a, 1);
	add(r, OP_Q_DEL, r->a, 2); /* a row committed earlier */
	persist_compact(&r->p);
	/* a#1 delivered and acknowledged within the round: gone; b#1 stays;
	 * the delete of a#2 must reach the disk. */
	expect_live(r, "DLDDL");
}

static void test_update_folds_into_put(void **state)
{
	struct round *r = *state;
	struct pop *put = add(r, OP_Q_PUT, r->a, 3);
	struct pop *upd = add(r, OP_Q_UPD, r->a, 3);
	struct pop *upd2;

	upd->state = QS_WAIT_PUBREC;
	upd->pid = 42;
	upd->msg_id = 7;
	upd2 = add(r, OP_Q_UPD, r->a, 3);
	upd2->state = QS_WAIT_PUBCOMP;
	upd2->pid = 42;
	upd2->msg_id = 0; /* past PUBREC: no message any more */
	persist_compact(&r->p);
	expect_live(r, "LDD");
	put = &r->p.ops[0];
	assert_int_equal(put->state, QS_WAIT_PUBCOMP);
	assert_int_equal(put->pid, 42);
	assert_int_equal(put->msg_id, 0);
	assert_null(put->m);
}

static void test_updates_without_put_keep_last(void **state)
{
	struct round *r = *state;

	add(r, OP_Q_UPD, r->a, 5)->pid = 1;
	add(r, OP_Q_UPD, r->a, 5)->pid = 2;
	add(r, OP_Q_DEL, r->a, 5);
	persist_compact(&r->p);
	expect_live(r, "DDL");
}

static void test_subs_and_qos2_keep_last(void **state)
{
	struct round *r = *state;

	add_sub(r, OP_SUB_PUT, r->a, "x/#");
	add_sub(r, OP_SUB_PUT, r->b, "x/#");
	add_sub(r, OP_SUB_DEL, r->a, "x/#");
	add_sub(r, OP_SUB_PUT, r->a, "y");
	add(r, OP_INQ2_PUT, r->a, 0)->pid = 9;
	add(r, OP_INQ2_DEL, r->a, 0)->pid = 9;
	add(r, OP_INQ2_PUT, r->a, 0)->pid = 10;
	persist_compact(&r->p);
	expect_live(r, "DLLLDLL");
}

static void test_session_delete_cancels_earlier(void **state)
{
	struct round *r = *state;

	add(r, OP_SESS_PUT, r->a, 0);
	add(r, OP_Q_PUT, r->a, 1);
	add_sub(r, OP_SUB_PUT, r->a, "f");
	add(r, OP_Q_PUT, r->b, 1);
	add(r, OP_SESS_DEL, r->a, 0);
	add(r, OP_SESS_PUT, r->a, 0); /* after the delete: stays */
	persist_compact(&r->p);
	expect_live(r, "DDDLLL");
}

static void test_retained_highest_number_wins(void **state)
{
	struct round *r = *state;

	add(r, OP_RET_PUT, NULL, 5);
	add(r, OP_RET_DEL, NULL, 4); /* older, from another batch */
	add(r, OP_RET_PUT, NULL, 7);
	add(r, OP_RET_DEL, NULL, 6);
	persist_compact(&r->p);
	expect_live(r, "DDLD");
}

static void test_deletes_are_deletes(void **state)
{
	struct pop op = {0};
	static const uint8_t dels[] = {OP_SESS_DEL, OP_SUB_DEL,  OP_Q_UPD,
	                               OP_Q_DEL,    OP_INQ2_DEL, OP_RET_DEL};
	static const uint8_t puts[] = {OP_SESS_PUT, OP_SUB_PUT, OP_Q_PUT,
	                               OP_INQ2_PUT, OP_RET_PUT};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(dels); i++) {
		op.kind = dels[i];
		assert_true(pop_is_delete(&op));
	}
	for (i = 0; i < sizeof(puts); i++) {
		op.kind = puts[i];
		assert_false(pop_is_delete(&op));
	}
}

/* A message with v5 properties survives the props-only encoding. */
static void test_props_round_trip(void **state)
{
	struct round *r = *state;
	static const uint8_t user[] = {0x26, 0, 1, 'k', 0, 2, 'v', '1'};
	struct mqtt_publish pub;
	struct msg *m, *back;
	bool expired;
	int n;

	memset(&pub, 0, sizeof(pub));
	pub.qos = 1;
	pub.payload = (const uint8_t *)"hello";
	pub.payload_len = 5;
	pub.props.present = MQTT_PBIT(MQTT_PROP_CONTENT_TYPE) |
	                    MQTT_PBIT(MQTT_PROP_RESPONSE_TOPIC) |
	                    MQTT_PBIT(MQTT_PROP_USER_PROPERTY) |
	                    MQTT_PBIT(MQTT_PROP_PAYLOAD_FORMAT);
	pub.props.payload_format = 1;
	pub.props.content_type.p = (const uint8_t *)"text/plain";
	pub.props.content_type.len = 10;
	pub.props.response_topic.p = (const uint8_t *)"re/ply";
	pub.props.response_topic.len = 6;
	pub.props.user_props = user;
	pub.props.user_props_len = sizeof(user);
	pub.props.user_prop_count = 1;
	m = msg_new(&pub, "a/b", 3, NULL, clock_ms());
	assert_non_null(m);
	n = persist_encode(&r->p, m, true);
	assert_true(n > 0);
	back = persist_decode((const uint8_t *)"a/b", 3,
	                      (const uint8_t *)"hello", 5, 1, false,
	                      persist_wall_ms() + 30000, r->p.enc, (size_t)n,
	                      &expired);
	assert_non_null(back);
	assert_int_equal(back->props.payload_format, 1);
	assert_int_equal(back->props.content_type.len, 10);
	assert_memory_equal(back->props.content_type.p, "text/plain", 10);
	assert_memory_equal(back->props.response_topic.p, "re/ply", 6);
	assert_int_equal(back->props.user_props_len, sizeof(user));
	assert_true(back->has_expiry);
	assert_true(back->expiry >= 29 && back->expiry <= 30);
	assert_memory_equal(back->payload, "hello", 5);
	msg_unref(back);
	/* No properties: nothing to store. */
	assert_int_equal(persist_encode(&r->p, r->m, true), 0);
	msg_unref(m);
}

static void test_will_round_trip_and_expired(void **state)
{
	struct round *r = *state;
	struct msg *w = msg_new_simple("will/t", "bye", 3, 2, true, clock_ms());
	struct msg *back;
	bool expired;
	int n;

	w->has_expiry = true;
	w->expiry = 100;
	n = persist_encode(&r->p, w, false);
	assert_true(n > 0);
	back = persist_decode(NULL, 0, NULL, 0, 0, false, 0, r->p.enc,
	                      (size_t)n, &expired);
	assert_non_null(back);
	assert_string_equal(back->topic, "will/t");
	assert_memory_equal(back->payload, "bye", 3);
	assert_int_equal(back->qos, 2);
	assert_true(back->retain);
	assert_true(back->has_expiry);
	assert_int_equal(back->expiry, 100);
	msg_unref(back);
	msg_unref(w);

	back = persist_decode((const uint8_t *)"t", 1, (const uint8_t *)"x", 1,
	                      1, false, persist_wall_ms() - 1, NULL, 0,
	                      &expired);
	assert_null(back);
	assert_true(expired);
}

/* Blobs that are not what persist_encode writes: refused, no crash. */
static void test_bad_blobs(void **state)
{
	static const uint8_t cases[][8] = {
	        {0},
	        {0x30, 0x7f},                   /* length beyond the blob */
	        {0x20, 0x02, 0, 0},             /* CONNACK, not PUBLISH */
	        {0x32, 0x03, 0, 1, '#'},        /* wildcard topic */
	        {0x30, 0x05, 0, 1, 'a', 9, 1},  /* bad property length */
	        {0x36, 0x04, 0, 1, 'a', 0},     /* QoS 3 */
	        {0x30, 0x05, 0, 1, 'a', 1, 42}, /* not a PUBLISH property */
	};
	static const size_t lens[] = {1, 2, 4, 5, 7, 6, 7};
	bool expired;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		assert_null(persist_decode(NULL, 0, NULL, 0, 0, false, 0,
		                           cases[i], lens[i], &expired));
	/* A topic with a NUL cannot become a message. */
	assert_null(persist_decode((const uint8_t *)"a\0b", 3, NULL, 0, 1,
	                           false, 0, NULL, 0, &expired));
	assert_false(expired);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_put_update_delete_vanish,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_update_folds_into_put,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_updates_without_put_keep_last, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_subs_and_qos2_keep_last,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_session_delete_cancels_earlier, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_retained_highest_number_wins, setup, teardown),
	        cmocka_unit_test(test_deletes_are_deletes),
	        cmocka_unit_test_setup_teardown(test_props_round_trip, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_will_round_trip_and_expired, setup, teardown),
	        cmocka_unit_test(test_bad_blobs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
