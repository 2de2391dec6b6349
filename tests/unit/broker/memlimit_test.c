/*
 * Tests of memory_limit (src/broker/memlimit.c): the default is half of
 * the memory available; "over" means strictly above a non-zero limit; a
 * worker's buffer sum reaches the broker's counter as a change; an
 * enforcement round drops the queue of the session holding the most
 * (counted), asks the owning worker to disconnect its client with 0x97,
 * leaves the others alone, and does not run again within
 * MEMLIMIT_ENFORCE_MS or under the limit.
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
#include <unistd.h>

#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/memlimit.h"
#include "broker/msg.h"
#include "broker/session.h"
#include "broker/worker.h"

struct fixture {
	struct config cfg;
	struct broker b;
	struct worker *w; /* owns attached sessions; its inbox gets kicks */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	config_init(&f->cfg);
	f->b.cfg = &f->cfg;
	f->b.subs = subs_new();
	f->w = calloc(1, sizeof(*f->w));
	if (!f->b.subs || !f->w)
		return -1;
	f->w->b = &f->b;
	pthread_mutex_init(&f->w->inbox_mu, NULL);
	f->w->loop = loop_new();
	if (!f->w->loop)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct session_table *t = &f->b.sessions;

	for (size_t i = 0; i < t->nbuckets; i++)
		while (t->buckets[i]) {
			struct session *s = t->buckets[i];

			pthread_mutex_lock(&s->mu);
			session_clear_messages(&f->b, s);
			pthread_mutex_unlock(&s->mu);
			session_remove(&f->b, s);
		}
	free(t->buckets);
	free(f->w->inbox);
	loop_free(f->w->loop);
	pthread_mutex_destroy(&f->w->inbox_mu);
	free(f->w);
	subs_free(f->b.subs);
	config_free(&f->cfg);
	free(f);
	return 0;
}

/* A session in the table with n charged messages of len payload bytes
 * queued; attached to worker w as connection conn_id when w is set. */
static struct session *add_session(struct fixture *f, const char *id, int n,
                                   size_t len, struct worker *w,
                                   uint64_t conn_id)
{
	struct session *s = session_new(id);
	char *payload = calloc(1, len + 1);

	assert_non_null(s);
	assert_non_null(payload);
	assert_int_equal(session_insert(&f->b, s), 0);
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < n; i++) {
		struct msg *m = msg_new_simple("t", payload, len, 1, false, 0);

		assert_non_null(m);
		msg_charge(m, &f->b.mem.msgs);
		assert_int_equal(
		        session_enqueue(&f->b, s, m, 1, false, false, NULL, 0),
		        0);
		msg_unref(m); /* the queue holds it now */
	}
	s->w = w;
	s->conn_id = conn_id;
	pthread_mutex_unlock(&s->mu);
	session_unref(s); /* the table's reference remains */
	free(payload);
	return s;
}

static uint32_t queued(struct session *s)
{
	uint32_t n;

	pthread_mutex_lock(&s->mu);
	n = s->qlen;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void test_default(void **state)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	uint64_t phys = (uint64_t)pages * (uint64_t)size;
	uint64_t d = memlimit_default();

	(void)state;
	/* Half of physical memory, or less under a cgroup limit. */
	assert_true(d > 0);
	assert_true(d <= phys / 2);
}

static void test_over(void **state)
{
	struct fixture *f = *state;
	struct broker *b = &f->b;

	/* Off: never over, whatever is accounted. */
	atomic_store(&b->mem.msgs, 1 << 30);
	assert_false(memlimit_over(b));
	b->mem.limit = 1000;
	atomic_store(&b->mem.msgs, 600);
	atomic_store(&b->mem.bufs, 400);
	assert_int_equal(memlimit_current(b), 1000);
	assert_false(memlimit_over(b)); /* at the limit is not over it */
	atomic_store(&b->mem.bufs, 401);
	assert_true(memlimit_over(b));
	/* A transient negative sum (buffers given back before a worker's
	 * next sample) reads as 0. */
	atomic_store(&b->mem.msgs, -500);
	atomic_store(&b->mem.bufs, 100);
	assert_int_equal(memlimit_current(b), 0);
}

static void test_sample(void **state)
{
	struct fixture *f = *state;
	struct worker *w = f->w;
	struct conn *a = calloc(1, sizeof(*a)), *c = calloc(1, sizeof(*c));
	uint8_t scratch[16];

	assert_non_null(a);
	assert_non_null(c);
	/* a owns a 4096-byte read buffer and a 512-byte output arena with
	 * 8 entries; c borrows the worker's buffer, which is not its own. */
	a->rbuf = scratch;
	a->rcap = 4096;
	a->oq.arena_cap = 512;
	a->oq.cap = 8;
	c->rbuf = scratch;
	c->rcap = 65536;
	c->rbuf_borrowed = true;
	a->next = c;
	w->conns = a;
	assert_int_equal(memlimit_conn_bytes(c), 0);
	memlimit_sample(w);
	assert_int_equal(atomic_load(&f->b.mem.bufs),
	                 4096 + 512 + 8 * sizeof(struct outq_ent));
	/* Another worker's buffers are in the same counter: each adds only
	 * the change of its own sum. */
	atomic_fetch_add(&f->b.mem.bufs, 1000);
	a->rbuf = NULL;
	memlimit_sample(w);
	assert_int_equal(atomic_load(&f->b.mem.bufs),
	                 1000 + 512 + 8 * sizeof(struct outq_ent));
	w->conns = NULL;
	memlimit_sample(w);
	assert_int_equal(atomic_load(&f->b.mem.bufs), 1000);
	free(a);
	free(c);
}

static void test_enforce(void **state)
{
	struct fixture *f = *state;
	struct broker *b = &f->b;
	struct session *small, *big, *offline;
	uint64_t now = 100000;

	small = add_session(f, "small", 3, 100, f->w, 11);
	big = add_session(f, "big", 5, 1000, f->w, 22);
	offline = add_session(f, "offline", 2, 700, NULL, 0);
	add_session(f, "empty", 0, 0, f->w, 44);

	/* Under the limit nothing happens. */
	b->mem.limit = 1 << 20;
	memlimit_enforce(b, now);
	assert_int_equal(atomic_load(&b->st.mem_limit_hits), 0);
	assert_int_equal(queued(big), 5);

	/* Over it, the biggest holder loses its queue and its client is
	 * asked to go with 0x97; the others keep theirs. */
	b->mem.limit = 1;
	memlimit_enforce(b, now);
	assert_int_equal(queued(big), 0);
	assert_int_equal(queued(small), 3);
	assert_int_equal(queued(offline), 2);
	assert_int_equal(atomic_load(&b->st.drops[DROP_MEMORY_LIMIT]), 5);
	assert_int_equal(atomic_load(&b->st.pub_dropped), 5);
	assert_int_equal(atomic_load(&b->st.mem_limit_hits), 1);
	assert_int_equal(atomic_load(&b->st.mem_disconnects), 1);
	assert_int_equal(atomic_load(&b->st.limit_hits[LIM_MEMORY]), 1);
	assert_int_equal(f->w->ninbox, 1);
	assert_int_equal(f->w->inbox[0].kind, INBOX_KICK);
	assert_int_equal(f->w->inbox[0].conn_id, 22);
	assert_int_equal(f->w->inbox[0].reason, MQTT_RC_QUOTA_EXCEEDED);
	/* The dropped messages' bytes are given back. */
	assert_int_equal(memlimit_current(b),
	                 3 * small->q[0].m->alloc_len +
	                         2 * offline->q[0].m->alloc_len);

	/* Not again within MEMLIMIT_ENFORCE_MS... */
	memlimit_enforce(b, now + MEMLIMIT_ENFORCE_MS - 1);
	assert_int_equal(queued(offline), 2);
	/* ...then the next holder: offline, so nobody to disconnect. */
	memlimit_enforce(b, now + MEMLIMIT_ENFORCE_MS);
	assert_int_equal(queued(offline), 0);
	assert_int_equal(queued(small), 3);
	assert_int_equal(atomic_load(&b->st.mem_disconnects), 1);
	assert_int_equal(f->w->ninbox, 1);
	assert_int_equal(atomic_load(&b->st.drops[DROP_MEMORY_LIMIT]), 7);
	/* With nothing queued anywhere but small's, small goes next. */
	memlimit_enforce(b, now + 2 * MEMLIMIT_ENFORCE_MS);
	assert_int_equal(queued(small), 0);
	assert_int_equal(f->w->ninbox, 2);
	assert_int_equal(f->w->inbox[1].conn_id, 11);
	assert_int_equal(memlimit_current(b), 0);
	/* Under the limit again (nothing accounted): a round is a no-op. */
	memlimit_enforce(b, now + 3 * MEMLIMIT_ENFORCE_MS);
	assert_int_equal(atomic_load(&b->st.mem_limit_hits), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_default),
	        cmocka_unit_test_setup_teardown(test_over, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_sample, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_enforce, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
