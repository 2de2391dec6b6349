/*
 * Tests of loading a store into a broker (src/broker/persist_load.c)
 * through broker_init with persistence on and no listeners: a store
 * written with the store API, holding good records next to records that
 * are well-formed SQLite but wrong for MQTT (a client id with a NUL, an
 * invalid filter, QoS 7, an unknown state, an inflight row without packet
 * id, a row whose message is missing, an expired message, an expired
 * retained message, a session that expired while ternd was down). The
 * good ones must come back, the bad ones be dropped (and deleted by the
 * first commit), nothing may crash. Also the owner of a session (schema
 * 2): username, listener and token grant come back, fail closed when the
 * configuration changed or the grant does not parse, and are written from
 * the copy a session put takes.
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

#include "broker/acl.h"
#include "broker/auth.h"
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
	struct store_session good = {.client_id = B("good"),
	                             .version = 4,
	                             .expiry = UINT32_MAX,
	                             .offline_since = now - 1000};
	struct store_session old = {.client_id = B("old"),
	                            .version = 5,
	                            .expiry = 10,
	                            .offline_since = now - 60000};
	struct store_session nul = {.client_id = (const uint8_t *)"a\0b",
	                            .client_id_len = 3,
	                            .version = 5,
	                            .expiry = UINT32_MAX};
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

/* Sessions with an owner (schema 2): each is written with the store API,
 * as a previous run of ternd with the listeners of owner_config() would
 * have (listener descriptions as persist_listener_kind makes them). */
static void write_owner_store(const char *path)
{
	static const char grant[] = "{\"sub\": [\"a/#\"], \"pub\": []}";
	struct store *st = NULL;
	char err[256];
	struct store_session x[] = {
	        /* Everything known, the listener unchanged. */
	        {.client_id = B("alice"),
	         .version = 5,
	         .expiry = UINT32_MAX,
	         .username = B("alice"),
	         .has_listener = true,
	         .listener = 1,
	         .listener_kind = "default mqtt 127.0.0.1:18830",
	         .grant = B(grant)},
	        /* Index 1 was another listener in the run that stored it. */
	        {.client_id = B("moved"),
	         .version = 5,
	         .expiry = UINT32_MAX,
	         .has_listener = true,
	         .listener = 1,
	         .listener_kind = "mqtt+tls 0.0.0.0:8883"},
	        /* An index past this configuration's listeners. */
	        {.client_id = B("beyond"),
	         .version = 5,
	         .expiry = UINT32_MAX,
	         .has_listener = true,
	         .listener = 7,
	         .listener_kind = "default mqtt 127.0.0.1:18830"},
	        /* A grant that does not parse (edited, or a future format). */
	        {.client_id = B("badgrant"),
	         .version = 5,
	         .expiry = UINT32_MAX,
	         .username = B("bob"),
	         .grant = B("{\"sub\": \"a/#\"}")},
	        /* As a v1 row reads: nothing known. */
	        {.client_id = B("plain"), .version = 4, .expiry = UINT32_MAX},
	};
	size_t i;

	assert_int_equal(store_open(path, 0, &st, err, sizeof(err)), 0);
	assert_int_equal(store_begin(st), 0);
	for (i = 0; i < sizeof(x) / sizeof(x[0]); i++)
		assert_int_equal(store_session_put(st, &x[i]), 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
}

static bool grant_reads(const struct session *s, const char *topic)
{
	return auth_grant_allows(s->grant, s->client_id, s->username, topic,
	                         strlen(topic), ACL_READ);
}

static char *dump_store(const char *path)
{
	struct store *st = NULL;
	char err[256], *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	assert_int_equal(
	        store_open(path, STORE_OPEN_READONLY, &st, err, sizeof(err)),
	        0);
	assert_int_equal(store_dump(st, out), 0);
	fclose(out);
	store_close(st);
	return buf;
}

/*
 * Restore of the owner: username, listener (only when the configuration's
 * listener at that index is the one stored, else unknown), grant (one
 * that does not parse allows nothing). Then a session put writes the
 * owner as it was when the put was made, not as the session is when the
 * store thread writes it.
 */
static void test_load_owner(void **state)
{
	char dir[] = "/tmp/tern-load-XXXXXX", path[64], cmd[128];
	struct config cfg;
	struct broker b;
	struct session *s;
	char *buf;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/tern.db", dir);
	write_owner_store(path);

	config_init(&cfg);
	cfg.persistence = true;
	cfg.persistence_location = strdup(dir);
	assert_int_equal(config_add_listener(&cfg, 18831, "127.0.0.1"), 0);
	assert_int_equal(config_add_listener(&cfg, 18830, "127.0.0.1"), 0);
	assert_int_equal(broker_init(&b, &cfg, NULL, 0), 0);
	assert_non_null(b.persist);
	assert_int_equal(b.sessions.count, 5);

	s = session_find(&b, "alice");
	assert_non_null(s);
	assert_string_equal(s->username, "alice");
	assert_int_equal(s->listener, 1);
	assert_non_null(s->grant);
	assert_true(grant_reads(s, "a/x"));
	assert_false(grant_reads(s, "b/x"));

	s = session_find(&b, "moved");
	assert_int_equal(s->listener, AUTH_ANY_LISTENER);
	assert_null(s->username);
	assert_null(s->grant);
	s = session_find(&b, "beyond");
	assert_int_equal(s->listener, AUTH_ANY_LISTENER);

	s = session_find(&b, "badgrant");
	assert_string_equal(s->username, "bob");
	assert_int_equal(s->listener, AUTH_ANY_LISTENER);
	assert_non_null(s->grant);
	assert_false(grant_reads(s, "a/x"));
	assert_false(grant_reads(s, "b/x"));

	s = session_find(&b, "plain");
	assert_null(s->username);
	assert_int_equal(s->listener, AUTH_ANY_LISTENER);
	assert_null(s->grant);

	/* A put takes its copy now: a change after it is not what the
	 * store thread writes (it never reads the session). */
	s = session_find(&b, "alice");
	pthread_mutex_lock(&s->mu);
	persist_session_put(s, NULL, 0, 1000);
	free(s->username);
	s->username = strdup("mallory");
	s->listener = 0;
	auth_grant_unref(s->grant);
	s->grant = NULL;
	pthread_mutex_unlock(&s->mu);
	s = session_find(&b, "badgrant");
	pthread_mutex_lock(&s->mu);
	persist_session_put(s, NULL, 0, 1000);
	pthread_mutex_unlock(&s->mu);
	s = session_find(&b, "plain");
	pthread_mutex_lock(&s->mu);
	persist_session_put(s, NULL, 0, 1000);
	pthread_mutex_unlock(&s->mu);

	broker_stop(&b);
	config_free(&cfg);
	buf = dump_store(path);
	assert_non_null(strstr(buf,
	                       "session alice v5 expiry=never "
	                       "offline_since=1970-01-01T00:00:01Z "
	                       "user=alice listener=1 "
	                       "(default mqtt 127.0.0.1:18830) "
	                       "grant={\"sub\": [\"a/#\"], \"pub\": []}\n"));
	/* Kept as it was, so it still denies after the next restart. */
	assert_non_null(strstr(buf, "session badgrant v5 expiry=never "
	                            "offline_since=1970-01-01T00:00:01Z "
	                            "user=bob grant={\"sub\": \"a/#\"}\n"));
	assert_non_null(strstr(buf, "session plain v4 expiry=never "
	                            "offline_since=1970-01-01T00:00:01Z\n"));
	free(buf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_load_good_and_bad),
	        cmocka_unit_test(test_load_owner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
