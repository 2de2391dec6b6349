/*
 * Tests of loading a store into a broker (src/broker/persist_load.c)
 * through broker_init with persistence on and no listeners: a store
 * written with the store API, holding good records next to records that
 * are well-formed SQLite but wrong for MQTT (a client id with a NUL, an
 * invalid filter, QoS 7, an unknown state, an inflight row without packet
 * id, a row whose message is missing, an expired message, an expired
 * retained message, a session that expired while ternd was down). The
 * good ones must come back, the bad ones be dropped (and deleted by the
 * first commit), nothing may crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/config.h"
#include "broker/msg.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/subs.h"
#include "store/store.h"

#define B(s) (const uint8_t *)(s), strlen(s)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_store(const char *path)
{
	struct store *st = NULL;
	char err[256];
	int64_t now = now_ms();
	struct store_session good = {B("good"), 4,    UINT32_MAX, now - 1000,
	                             0,         NULL, 0};
	struct store_session old = {B("old"), 5, 10, now - 60000, 0, NULL, 0};
	struct store_session nul = {
	        (const uint8_t *)"a\0b", 3, 5, UINT32_MAX, 0, 0, NULL, 0};
	struct store_sub sub = {B("good"), B("x/+"), 1, false, false, 0, 0};
	struct store_sub badsub = {B("good"), B("x/#/y"), 1, false,
	                           false,     0,          0};
	struct store_msg m1 = {1, B("x/1"), B("one"), 1, false, 0, NULL, 0};
	struct store_msg gone = {2,     B("x/2"), B("two"), 1,
	                         false, now - 1,  NULL,     0};
	struct store_msg m3 = {3, B("x/3"), B("three"), 2, false, 0, NULL, 0};
	struct store_qrow q[] = {
	        {B("good"), 1, 1, 1, false, false, false, 0, 0, NULL, 0},
	        {B("good"), 2, 2, 1, false, false, false, 0, 0, NULL, 0},
	        {B("good"), 3, 3, 7, false, false, false, 0, 0, NULL, 0},
	        {B("good"), 4, 3, 2, false, false, false, 9, 5, NULL, 0},
	        {B("good"), 5, 3, 2, false, false, false, 2, 0, NULL, 0},
	        {B("good"), 6, 99, 1, false, false, false, 0, 0, NULL, 0},
	        {B("good"), 7, 3, 2, false, false, false, 2, 42, NULL, 0},
	        {B("good"), 8, 0, 2, false, false, false, 3, 43, NULL, 0},
	};
	struct store_retained r1 = {B("r/1"), 1, B("kept"), 0, 0, NULL, 0};
	struct store_retained r2 = {B("r/2"), 2,    B("stale"), 0,
	                            now - 1,  NULL, 0};
	size_t i;

	assert_int_equal(store_open(path, 0, &st, err, sizeof(err)), 0);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_session_put(st, &good), 0);
	assert_int_equal(store_session_put(st, &old), 0);
	assert_int_equal(store_session_put(st, &nul), 0);
	assert_int_equal(store_sub_put(st, &sub), 0);
	assert_int_equal(store_sub_put(st, &badsub), 0);
	assert_int_equal(store_msg_put(st, &m1), 0);
	assert_int_equal(store_msg_put(st, &gone), 0);
	assert_int_equal(store_msg_put(st, &m3), 0);
	for (i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		assert_int_equal(store_qrow_put(st, &q[i]), 0);
	assert_int_equal(store_inq2_put(st, B("good"), 77), 0);
	assert_int_equal(store_inq2_put(st, B("good"), 0), 0);
	assert_int_equal(store_retained_put(st, &r1), 0);
	assert_int_equal(store_retained_put(st, &r2), 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
}

static void count_retained(void *ctx, struct msg *m)
{
	(void)m;
	(*(int *)ctx)++;
}

static void test_load_good_and_bad(void **state)
{
	char dir[] = "/tmp/tern-load-XXXXXX", path[64];
	struct config cfg;
	struct broker b;
	struct session *s;
	int nret = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/tern.db", dir);
	write_store(path);

	config_init(&cfg);
	cfg.persistence = true;
	cfg.persistence_location = strdup(dir);
	assert_int_equal(broker_init(&b, &cfg, NULL, 1), 0);
	assert_non_null(b.persist);

	/* Only "good" survives: "old" expired, "a\0b" cannot be an id. */
	assert_int_equal(b.sessions.count, 1);
	s = session_find(&b, "good");
	assert_non_null(s);
	assert_null(session_find(&b, "old"));
	pthread_mutex_lock(&s->mu);
	assert_int_equal(s->nsubs, 1);
	assert_string_equal(s->subsv[0].filter, "x/+");
	/* Queued: #1 only (#2's message expired, #3 has QoS 7, #6's message
	 * is missing). Inflight: #7 (waiting PUBREC, DUP) and #8 (waiting
	 * PUBCOMP, no message); #4 (state 9) and #5 (no packet id) go. */
	assert_int_equal(s->qlen, 1);
	assert_string_equal(s->q[s->qhead].m->topic, "x/1");
	assert_int_equal(s->ninfl, 2);
	assert_int_equal(s->infl[0].pid, 42);
	assert_true(s->infl[0].dup);
	assert_int_equal(s->infl[0].state, QS_WAIT_PUBREC);
	assert_int_equal(s->infl[1].pid, 43);
	assert_null(s->infl[1].m);
	assert_int_equal(s->nin_qos2, 1);
	assert_int_equal(s->in_qos2[0], 77);
	assert_int_equal(s->store_seq, 8);
	pthread_mutex_unlock(&s->mu);
	retain_match(b.retain, "#", 1, count_retained, &nret);
	assert_int_equal(nret, 1);

	/* The first commit (here at shutdown) deletes what was dropped. */
	broker_stop(&b);
	config_free(&cfg);
	{
		struct store *st = NULL;
		char err[256], *buf = NULL;
		size_t len = 0;
		FILE *out = open_memstream(&buf, &len);

		assert_int_equal(store_open(path, STORE_OPEN_READONLY, &st, err,
		                            sizeof(err)),
		                 0);
		assert_int_equal(store_dump(st, out), 0);
		fclose(out);
		store_close(st);
		assert_null(strstr(buf, "session old"));
		assert_null(strstr(buf, "#2 "));
		assert_null(strstr(buf, "#4 "));
		assert_null(strstr(buf, "retained r/2"));
		assert_non_null(strstr(buf, "queue good #1 msg=1"));
		assert_non_null(strstr(buf, "retained r/1"));
		free(buf);
	}
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_load_good_and_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
