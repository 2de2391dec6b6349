/*
 * Tests of sessions (src/broker/session.c): the message queue (ring buffer)
 * with its max_queued_messages / max_queued_bytes bounds and the broker
 * gauges, order across wrap-around and growth, packet id allocation
 * skipping ids in flight, the inflight list and incoming QoS 2 set, the
 * session table under growth, subscription records, and reference counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "broker/broker.h"
#include "broker/msg.h"
#include "broker/session.h"

struct fixture {
	struct config cfg;
	struct broker b;
	struct session *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	config_init(&f->cfg);
	f->b.cfg = &f->cfg;
	f->b.subs = subs_new();
	f->s = session_new("client-1");
	if (!f->b.subs || !f->s)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	session_unref(f->s);
	subs_free(f->b.subs);
	config_free(&f->cfg);
	free(f);
	return 0;
}

/* A message whose payload is the decimal number n, padded to len bytes. */
static struct msg *num_msg(unsigned n, size_t len)
{
	char p[64];

	assert_true(len < sizeof(p));
	memset(p, '.', sizeof(p));
	snprintf(p, sizeof(p), "%u", n);
	if (strlen(p) < len)
		p[strlen(p)] = '.';
	return msg_new_simple("t", p, len, 1, false, 0);
}

static unsigned msg_num(const struct msg *m)
{
	char p[64];

	assert_true(m->payload_len < sizeof(p));
	memcpy(p, m->payload, m->payload_len);
	p[m->payload_len] = '\0';
	return (unsigned)strtoul(p, NULL, 10);
}

static unsigned refs(const struct msg *m)
{
	return atomic_load(&m->refs);
}

static int64_t gauge(atomic_int_fast64_t *g)
{
	return (int64_t)atomic_load(g);
}

static void test_queue_message_bound(void **state)
{
	struct fixture *f = *state;
	struct msg *m[5];
	struct qmsg q;
	uint32_t *ids;
	unsigned i;

	f->cfg.max_queued_messages = 3;
	for (i = 0; i < 5; i++)
		m[i] = num_msg(i, 4);
	for (i = 0; i < 3; i++)
		assert_int_equal(session_enqueue(&f->b, f->s, m[i], 1, false,
		                                 false, NULL, 0),
		                 0);
	/* Full: dropped and counted; subids are freed (ASan would see a
	 * leak), the message gets no reference. */
	for (i = 3; i < 5; i++) {
		ids = malloc(2 * sizeof(*ids));
		assert_non_null(ids);
		ids[0] = 1;
		ids[1] = 2;
		assert_int_equal(session_enqueue(&f->b, f->s, m[i], 1, false,
		                                 false, ids, 2),
		                 TERN_ELIMIT);
		assert_int_equal(refs(m[i]), 1);
	}
	assert_int_equal(atomic_load(&f->b.st.pub_dropped), 2);
	assert_int_equal(gauge(&f->b.st.queued_messages), 3);
	assert_int_equal(gauge(&f->b.st.queued_bytes), 12);
	assert_int_equal(f->s->qlen, 3);
	assert_int_equal(refs(m[0]), 2);

	/* Dequeue in order; ownership of the reference moves out. */
	assert_true(session_dequeue(&f->b, f->s, &q));
	assert_ptr_equal(q.m, m[0]);
	assert_int_equal(q.qos, 1);
	qmsg_release(&q);
	assert_int_equal(refs(m[0]), 1);
	assert_int_equal(gauge(&f->b.st.queued_messages), 2);
	assert_int_equal(gauge(&f->b.st.queued_bytes), 8);

	/* Room again for one. */
	assert_int_equal(
	        session_enqueue(&f->b, f->s, m[3], 0, true, true, NULL, 0), 0);
	assert_int_equal(
	        session_enqueue(&f->b, f->s, m[4], 0, false, false, NULL, 0),
	        TERN_ELIMIT);
	assert_int_equal(atomic_load(&f->b.st.pub_dropped), 3);
	for (i = 1; i <= 3; i++) {
		assert_true(session_dequeue(&f->b, f->s, &q));
		assert_ptr_equal(q.m, m[i]);
		if (i == 3) {
			assert_true(q.retain);
			assert_true(q.shared);
			assert_int_equal(q.qos, 0);
		}
		qmsg_release(&q);
	}
	assert_false(session_dequeue(&f->b, f->s, &q));
	assert_int_equal(gauge(&f->b.st.queued_messages), 0);
	assert_int_equal(gauge(&f->b.st.queued_bytes), 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

static void test_queue_byte_bound(void **state)
{
	struct fixture *f = *state;
	struct msg *four = num_msg(4, 4), *two = num_msg(2, 2);
	struct msg *big = num_msg(11, 11);
	struct qmsg q;

	f->cfg.max_queued_messages = 0; /* unlimited count */
	f->cfg.max_queued_bytes = 10;
	assert_int_equal(
	        session_enqueue(&f->b, f->s, four, 1, false, false, NULL, 0),
	        0);
	assert_int_equal(
	        session_enqueue(&f->b, f->s, four, 1, false, false, NULL, 0),
	        0);
	/* 8 + 4 > 10: dropped; 8 + 2 == 10 fits exactly. */
	assert_int_equal(
	        session_enqueue(&f->b, f->s, four, 1, false, false, NULL, 0),
	        TERN_ELIMIT);
	assert_int_equal(
	        session_enqueue(&f->b, f->s, two, 1, false, false, NULL, 0), 0);
	assert_int_equal(f->s->qbytes, 10);
	assert_int_equal(
	        session_enqueue(&f->b, f->s, two, 1, false, false, NULL, 0),
	        TERN_ELIMIT);
	assert_int_equal(atomic_load(&f->b.st.pub_dropped), 2);
	assert_int_equal(gauge(&f->b.st.queued_bytes), 10);
	assert_int_equal(refs(four), 3);

	assert_true(session_dequeue(&f->b, f->s, &q));
	qmsg_release(&q);
	assert_int_equal(f->s->qbytes, 6);
	assert_int_equal(gauge(&f->b.st.queued_bytes), 6);
	assert_int_equal(
	        session_enqueue(&f->b, f->s, two, 1, false, false, NULL, 0), 0);

	/* A message larger than the whole bound is taken only by an empty
	 * queue (so a client that keeps up still gets it), and nothing is
	 * queued behind it. */
	session_clear_messages(&f->b, f->s);
	assert_int_equal(f->s->qbytes, 0);
	assert_int_equal(
	        session_enqueue(&f->b, f->s, big, 1, false, false, NULL, 0), 0);
	assert_int_equal(f->s->qbytes, 11);
	assert_int_equal(
	        session_enqueue(&f->b, f->s, two, 1, false, false, NULL, 0),
	        TERN_ELIMIT);
	assert_int_equal(
	        session_enqueue(&f->b, f->s, big, 1, false, false, NULL, 0),
	        TERN_ELIMIT);
	assert_int_equal(gauge(&f->b.st.queued_bytes), 11);
	assert_int_equal(gauge(&f->b.st.queued_messages), 1);
	session_clear_messages(&f->b, f->s);
	assert_int_equal(gauge(&f->b.st.queued_bytes), 0);
	assert_int_equal(refs(four), 1);
	assert_int_equal(refs(two), 1);
	assert_int_equal(refs(big), 1);
	msg_unref(four);
	msg_unref(two);
	msg_unref(big);
}

/*
 * Many enqueue/dequeue cycles with a small backlog: the ring wraps many
 * times and grows while wrapped, and FIFO order holds throughout.
 */
static void test_queue_wraparound(void **state)
{
	struct fixture *f = *state;
	unsigned next_in = 0, next_out = 0, round, k;
	uint32_t max_cap = 0;
	struct qmsg q;

	f->cfg.max_queued_messages = 0;
	for (round = 0; round < 5000; round++) {
		/* The backlog follows a triangle wave between 0 and 50, so
		 * the ring grows while wrapped and then shrinks again. */
		unsigned nin = 1 + (round * 7) % 9, phase = round % 100;
		unsigned target = phase < 50 ? phase : 100 - phase;
		unsigned nout;

		for (k = 0; k < nin; k++) {
			struct msg *m = num_msg(next_in++, 8);
			uint32_t *ids = malloc(sizeof(*ids));

			assert_non_null(m);
			assert_non_null(ids);
			ids[0] = next_in;
			assert_int_equal(session_enqueue(&f->b, f->s, m, 1,
			                                 false, false, ids, 1),
			                 0);
			msg_unref(m); /* the queue holds the only reference */
		}
		nout = next_in - next_out > target ? next_in - next_out - target
		                                   : 0;
		for (k = 0; k < nout; k++) {
			assert_true(session_dequeue(&f->b, f->s, &q));
			assert_int_equal(msg_num(q.m), next_out);
			assert_int_equal(q.nsubids, 1);
			assert_int_equal(q.subids[0], next_out + 1);
			assert_int_equal(refs(q.m), 1);
			next_out++;
			qmsg_release(&q);
		}
		assert_int_equal(f->s->qlen, next_in - next_out);
		assert_int_equal(gauge(&f->b.st.queued_messages),
		                 next_in - next_out);
		assert_int_equal(f->s->qbytes, 8 * (next_in - next_out));
		if (f->s->qcap > max_cap)
			max_cap = f->s->qcap;
	}
	/* Bounded by the largest backlog, not by the total throughput. */
	assert_true(max_cap <= 64);
	assert_true(next_in > 10 * max_cap);
	while (session_dequeue(&f->b, f->s, &q)) {
		assert_int_equal(msg_num(q.m), next_out++);
		qmsg_release(&q);
	}
	assert_int_equal(next_out, next_in);
	assert_int_equal(gauge(&f->b.st.queued_bytes), 0);
	/* Leave some queued: session_unref in teardown must free them. */
	for (k = 0; k < 20; k++) {
		struct msg *m = num_msg(k, 3);

		assert_int_equal(session_enqueue(&f->b, f->s, m, 1, false,
		                                 false, NULL, 0),
		                 0);
		msg_unref(m);
	}
}

/* Puts a message in flight with pid (as the delivery code does). */
static void infl_push(struct session *s, struct msg *m, uint16_t pid)
{
	if (s->ninfl == s->infl_cap) {
		uint32_t ncap = s->infl_cap ? s->infl_cap * 2 : 8;
		struct qmsg *v = realloc(s->infl, ncap * sizeof(*v));

		assert_non_null(v);
		s->infl = v;
		s->infl_cap = ncap;
	}
	memset(&s->infl[s->ninfl], 0, sizeof(s->infl[0]));
	s->infl[s->ninfl].m = m ? msg_ref(m) : NULL;
	s->infl[s->ninfl].pid = pid;
	s->infl[s->ninfl].state = QS_WAIT_PUBACK;
	s->ninfl++;
}

static void test_pid_allocation(void **state)
{
	struct fixture *f = *state;
	struct session *s = f->s;
	unsigned i;

	assert_int_equal(session_next_pid(s), 1);
	assert_int_equal(session_next_pid(s), 2);

	/* Wraps from 65535 to 1, never 0. */
	s->next_pid = 65534;
	assert_int_equal(session_next_pid(s), 65534);
	assert_int_equal(session_next_pid(s), 65535);
	assert_int_equal(session_next_pid(s), 1);

	/* Skips ids in flight, also across the wrap. */
	infl_push(s, NULL, 2);
	infl_push(s, NULL, 3);
	infl_push(s, NULL, 65535);
	infl_push(s, NULL, 1);
	assert_int_equal(session_next_pid(s), 4);
	s->next_pid = 65534;
	assert_int_equal(session_next_pid(s), 65534);
	assert_int_equal(session_next_pid(s), 4); /* 65535, 1-3 in flight */
	assert_int_equal(session_next_pid(s), 5);

	/* A full sweep never returns 0 or an id in flight. */
	for (i = 0; i < 70000; i++) {
		uint16_t pid = session_next_pid(s);

		assert_int_not_equal(pid, 0);
		assert_true(session_infl_find(s, pid) < 0);
	}
}

static void test_inflight_list(void **state)
{
	struct fixture *f = *state;
	struct session *s = f->s;
	struct msg *m[4];
	unsigned i;

	for (i = 0; i < 4; i++) {
		m[i] = num_msg(i, 1);
		infl_push(s, m[i], (uint16_t)(10 + i));
	}
	assert_int_equal(session_infl_find(s, 12), 2);
	assert_int_equal(session_infl_find(s, 99), -1);

	/* Removing from the middle keeps send order and drops the ref. */
	session_infl_remove(s, session_infl_find(s, 11));
	assert_int_equal(refs(m[1]), 1);
	assert_int_equal(s->ninfl, 3);
	assert_int_equal(s->infl[0].pid, 10);
	assert_int_equal(s->infl[1].pid, 12);
	assert_int_equal(s->infl[2].pid, 13);
	session_infl_remove(s, 2);
	assert_int_equal(refs(m[3]), 1);
	assert_int_equal(s->ninfl, 2);

	/* clear_messages releases the rest, exactly once. */
	assert_int_equal(session_inq2_add(s, 7), 0);
	session_clear_messages(&f->b, s);
	assert_int_equal(s->ninfl, 0);
	assert_false(session_inq2_has(s, 7));
	for (i = 0; i < 4; i++) {
		assert_int_equal(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

static void test_incoming_qos2_ids(void **state)
{
	struct session *s = ((struct fixture *)*state)->s;
	unsigned i;

	assert_false(session_inq2_has(s, 1));
	assert_false(session_inq2_del(s, 1));
	for (i = 1; i <= 100; i++)
		assert_int_equal(session_inq2_add(s, (uint16_t)(i * 600)), 0);
	for (i = 1; i <= 100; i++)
		assert_true(session_inq2_has(s, (uint16_t)(i * 600)));
	assert_false(session_inq2_has(s, 601));
	for (i = 1; i <= 100; i += 2)
		assert_true(session_inq2_del(s, (uint16_t)(i * 600)));
	for (i = 1; i <= 100; i++)
		assert_int_equal(session_inq2_has(s, (uint16_t)(i * 600)),
		                 i % 2 == 0);
	assert_false(session_inq2_del(s, 600));
	assert_int_equal(s->nin_qos2, 50);
}

static void test_table(void **state)
{
	enum { N = 5000 };
	struct fixture *f = *state;
	struct session **v = calloc(N, sizeof(*v));
	char id[32];
	unsigned i;

	assert_non_null(v);
	assert_null(session_find(&f->b, "nobody")); /* empty table */
	for (i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "client-%u", i);
		v[i] = session_new(id);
		assert_non_null(v[i]);
		assert_int_equal(session_insert(&f->b, v[i]), 0);
		assert_true(v[i]->in_table);
		assert_int_equal(atomic_load(&v[i]->refs), 2);
	}
	assert_int_equal(f->b.sessions.count, N);
	/* The table grew: chains stay short. */
	assert_true(f->b.sessions.nbuckets >= N);
	for (i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "client-%u", i);
		assert_ptr_equal(session_find(&f->b, id), v[i]);
	}
	assert_null(session_find(&f->b, "client-"));
	assert_null(session_find(&f->b, "client-5000"));

	/* Remove every third; the table drops its reference. */
	for (i = 0; i < N; i += 3) {
		session_remove(&f->b, v[i]);
		assert_false(v[i]->in_table);
		assert_int_equal(atomic_load(&v[i]->refs), 1);
		/* A second remove is a no-op. */
		session_remove(&f->b, v[i]);
		assert_int_equal(atomic_load(&v[i]->refs), 1);
	}
	for (i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "client-%u", i);
		if (i % 3 == 0)
			assert_null(session_find(&f->b, id));
		else
			assert_ptr_equal(session_find(&f->b, id), v[i]);
	}
	assert_int_equal(f->b.sessions.count, N - (N + 2) / 3);

	/* Re-inserting a removed session works. */
	assert_int_equal(session_insert(&f->b, v[0]), 0);
	assert_ptr_equal(session_find(&f->b, "client-0"), v[0]);

	for (i = 0; i < N; i++) {
		session_remove(&f->b, v[i]);
		session_unref(v[i]);
	}
	assert_int_equal(f->b.sessions.count, 0);
	free(f->b.sessions.buckets);
	free(v);
}

static void count_match(void *ctx, void *owner, const struct subs_opts *opts,
                        bool shared)
{
	(*(int *)ctx)++;
}

static int matches(struct subs *idx, const char *topic)
{
	struct subs_visitor v = {.on_match = count_match};
	int n = 0;

	subs_match(idx, topic, strlen(topic), &v, &n);
	return n;
}

static void test_sub_records(void **state)
{
	struct fixture *f = *state;
	struct session *s = f->s;
	struct sub_rec *r, *r2;
	struct subs_opts opts = {.qos = 1};
	char filter[32];
	bool added;
	unsigned i;

	r = session_sub_put(s, "a/b", 3, &added);
	assert_non_null(r);
	assert_true(added);
	assert_string_equal(r->filter, "a/b");
	assert_int_equal(r->len, 3);
	assert_int_equal(r->opts.qos, 0);
	r->opts.qos = 2;

	/* The same filter finds the record; a prefix or extension does not. */
	r2 = session_sub_put(s, "a/b", 3, &added);
	assert_false(added);
	assert_ptr_equal(r2, r);
	assert_int_equal(r2->opts.qos, 2);
	r = session_sub_put(s, "a/bc", 3, &added); /* len 3: "a/b" again */
	assert_false(added);
	r = session_sub_put(s, "a/bc", 4, &added);
	assert_true(added);
	assert_string_equal(r->filter, "a/bc");

	/* Grows past the initial capacity. */
	for (i = 0; i < 20; i++) {
		snprintf(filter, sizeof(filter), "x/%u/#", i);
		assert_non_null(
		        session_sub_put(s, filter, strlen(filter), &added));
		assert_true(added);
	}
	assert_int_equal(s->nsubs, 22);

	assert_int_equal(session_sub_del(s, "a/b", 3), 0);
	assert_int_equal(session_sub_del(s, "a/b", 3), TERN_ENOENT);
	assert_int_equal(session_sub_del(s, "nope", 4), TERN_ENOENT);
	assert_int_equal(s->nsubs, 21);
	r = session_sub_put(s, "a/bc", 4, &added);
	assert_false(added);
	for (i = 0; i < 20; i++) {
		snprintf(filter, sizeof(filter), "x/%u/#", i);
		r = session_sub_put(s, filter, strlen(filter), &added);
		assert_false(added);
		assert_string_equal(r->filter, filter);
	}

	/* clear_subs removes every filter from the index. */
	for (i = 0; i < s->nsubs; i++)
		assert_int_equal(subs_add(f->b.subs, s->subsv[i].filter,
		                          s->subsv[i].len, s, &opts),
		                 1);
	assert_int_equal(matches(f->b.subs, "x/3/y"), 1);
	assert_int_equal(matches(f->b.subs, "a/bc"), 1);
	session_clear_subs(&f->b, s);
	assert_int_equal(s->nsubs, 0);
	assert_int_equal(matches(f->b.subs, "x/3/y"), 0);
	assert_int_equal(matches(f->b.subs, "a/bc"), 0);

	/* Records can be added again afterwards. */
	assert_non_null(session_sub_put(s, "z", 1, &added));
	assert_true(added);
}

static void test_refcount_frees_contents(void **state)
{
	struct fixture *f = *state;
	struct session *s = session_new("rc");
	struct msg *m = num_msg(1, 5);
	bool added;

	assert_non_null(s);
	assert_int_equal(atomic_load(&s->refs), 1);
	assert_string_equal(s->client_id, "rc");
	assert_ptr_equal(session_ref(s), s);
	assert_int_equal(atomic_load(&s->refs), 2);

	assert_int_equal(session_enqueue(&f->b, s, m, 1, false, false, NULL, 0),
	                 0);
	infl_push(s, m, session_next_pid(s));
	s->will = msg_ref(m);
	assert_non_null(session_sub_put(s, "f", 1, &added));
	assert_int_equal(session_inq2_add(s, 9), 0);
	assert_int_equal(refs(m), 4);

	session_unref(s);
	assert_int_equal(refs(m), 4); /* still referenced */
	session_unref(s);             /* the last: frees everything */
	assert_int_equal(refs(m), 1);
	msg_unref(m);
	session_unref(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_queue_message_bound, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_queue_byte_bound, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_queue_wraparound, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_pid_allocation, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_inflight_list, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_incoming_qos2_ids, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_table, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sub_records, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_refcount_frees_contents,
	                                        setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
