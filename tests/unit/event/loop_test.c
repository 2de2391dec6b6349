/*
 * Tests of the epoll event loop (src/event/loop.c): callbacks run for ready
 * descriptors with their events, loop_modify changes the mask and skips the
 * syscall when it is unchanged, loop_del stops callbacks, and loop_wake
 * wakes a blocked loop from another thread, coalescing many calls into one
 * wake-up, and no wake-up is lost in the race between a loop going to sleep
 * and a waker deciding whether to write the eventfd. An alarm bounds every
 * blocking wait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "event/loop.h"

/* A descriptor with its loop_io embedded, as the broker's owners do. */
struct watched {
	struct loop_io io;
	int calls;
	uint32_t last_events;
};

static void on_io(struct loop_io *io, uint32_t events)
{
	struct watched *w =
	        (struct watched *)((char *)io - offsetof(struct watched, io));

	w->calls++;
	w->last_events = events;
}

static void watched_init(struct watched *w, int fd)
{
	w->io.fd = fd;
	w->io.events = 0;
	w->io.cb = on_io;
	w->calls = 0;
	w->last_events = 0;
}

static int setup(void **state)
{
	/* A hang in a blocking wait kills the test instead of the CI job. */
	alarm(20);
	return 0;
}

static int teardown(void **state)
{
	alarm(0);
	return 0;
}

static void test_readable_runs_callback(void **state)
{
	struct loop *l = loop_new();
	struct watched a, b;
	int pa[2], pb[2];
	char c;

	assert_non_null(l);
	assert_int_equal(pipe(pa), 0);
	assert_int_equal(pipe(pb), 0);
	watched_init(&a, pa[0]);
	watched_init(&b, pb[0]);
	assert_int_equal(loop_add(l, &a.io, EPOLLIN), 0);
	assert_int_equal(loop_add(l, &b.io, EPOLLIN), 0);
	assert_int_equal(a.io.events, EPOLLIN);

	/* Nothing ready: a zero timeout returns at once with no events. */
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(a.calls + b.calls, 0);

	assert_int_equal(write(pa[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, 2000), 1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_true(a.last_events & EPOLLIN);

	/* Level-triggered: still readable until drained. Both fire now. */
	assert_int_equal(write(pb[1], "y", 1), 1);
	assert_int_equal(loop_run_once(l, 2000), 2);
	assert_int_equal(a.calls, 2);
	assert_int_equal(b.calls, 1);
	assert_int_equal(read(pa[0], &c, 1), 1);
	assert_int_equal(read(pb[0], &c, 1), 1);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_false(loop_take_wakeup(l));

	/* After loop_del the descriptor no longer reports. */
	loop_del(l, &a.io);
	assert_int_equal(write(pa[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, 50), 0);
	assert_int_equal(a.calls, 2);

	/* Adding a descriptor twice is refused. */
	assert_int_equal(loop_add(l, &b.io, EPOLLIN), TERN_EIO);

	loop_free(l);
	close(pa[0]);
	close(pa[1]);
	close(pb[0]);
	close(pb[1]);
}

static void test_hangup_reported(void **state)
{
	struct loop *l = loop_new();
	struct watched a;
	int p[2];

	assert_non_null(l);
	assert_int_equal(pipe(p), 0);
	watched_init(&a, p[0]);
	assert_int_equal(loop_add(l, &a.io, EPOLLIN), 0);
	close(p[1]);
	assert_int_equal(loop_run_once(l, 2000), 1);
	assert_int_equal(a.calls, 1);
	assert_true(a.last_events & EPOLLHUP);
	loop_free(l);
	close(p[0]);
}

static void test_modify(void **state)
{
	struct loop *l = loop_new();
	struct watched w;
	int p[2];

	assert_non_null(l);
	assert_int_equal(pipe(p), 0);
	/* The write end: never readable, always writable (empty pipe). */
	watched_init(&w, p[1]);
	assert_int_equal(loop_add(l, &w.io, EPOLLIN), 0);
	assert_int_equal(loop_run_once(l, 0), 0);

	assert_int_equal(loop_modify(l, &w.io, EPOLLOUT), 0);
	assert_int_equal(w.io.events, EPOLLOUT);
	assert_int_equal(loop_run_once(l, 2000), 1);
	assert_int_equal(w.calls, 1);
	assert_true(w.last_events & EPOLLOUT);

	assert_int_equal(loop_modify(l, &w.io, EPOLLIN), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(w.calls, 1);

	/*
	 * An unchanged mask makes no syscall. Observed through a descriptor
	 * that epoll no longer knows: the same mask still "succeeds", while
	 * a different one reaches epoll_ctl and fails.
	 */
	loop_del(l, &w.io);
	assert_int_equal(loop_modify(l, &w.io, EPOLLIN), 0);
	assert_int_equal(loop_modify(l, &w.io, EPOLLIN | EPOLLOUT), TERN_EIO);
	assert_int_equal(w.io.events, EPOLLIN); /* unchanged on failure */

	loop_free(l);
	close(p[0]);
	close(p[1]);
}

static void test_wake_coalesced(void **state)
{
	struct loop *l = loop_new();
	int i;

	assert_non_null(l);
	assert_false(loop_take_wakeup(l));
	for (i = 0; i < 1000; i++)
		loop_wake(l);
	/* A thousand wakes are one event, reported once. */
	assert_int_equal(loop_run_once(l, 2000), 1);
	assert_true(loop_take_wakeup(l));
	assert_false(loop_take_wakeup(l));
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_false(loop_take_wakeup(l));

	/* Draining re-arms: the next wake is delivered again. */
	loop_wake(l);
	assert_int_equal(loop_run_once(l, 2000), 1);
	assert_true(loop_take_wakeup(l));
	assert_int_equal(loop_run_once(l, 0), 0);
	loop_free(l);
}

struct waker {
	struct loop *l;
	int delay_ms;
	int count;
};

static void *waker_main(void *arg)
{
	struct waker *w = arg;
	struct timespec ts = {0, (long)w->delay_ms * 1000000L};
	int i;

	nanosleep(&ts, NULL);
	for (i = 0; i < w->count; i++)
		loop_wake(w->l);
	return NULL;
}

static void test_wake_from_thread(void **state)
{
	struct waker w = {loop_new(), 100, 1};
	struct timespec t0, t1;
	pthread_t th;
	long ms;

	assert_non_null(w.l);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pthread_create(&th, NULL, waker_main, &w), 0);
	/* Blocks forever unless the other thread wakes it (alarm bounds). */
	assert_int_equal(loop_run_once(w.l, -1), 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(loop_take_wakeup(w.l));
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 50);
	loop_free(w.l);
}

/* Many threads waking one loop while it runs: no wake-up is lost. */
static void test_wake_many_threads(void **state)
{
	enum { NT = 4 };
	struct waker w[NT];
	pthread_t th[NT];
	struct loop *l = loop_new();
	int i, round;

	assert_non_null(l);
	for (round = 0; round < 20; round++) {
		for (i = 0; i < NT; i++) {
			w[i] = (struct waker){l, i, 500};
			assert_int_equal(
			        pthread_create(&th[i], NULL, waker_main, &w[i]),
			        0);
		}
		/* At least one wake-up arrives while the threads run. */
		assert_int_equal(loop_run_once(l, 5000), 1);
		assert_true(loop_take_wakeup(l));
		for (i = 0; i < NT; i++)
			assert_int_equal(pthread_join(th[i], NULL), 0);
		/* Whatever was pending is delivered, then nothing is. */
		if (loop_run_once(l, 0) == 1)
			assert_true(loop_take_wakeup(l));
		assert_int_equal(loop_run_once(l, 0), 0);
		assert_false(loop_take_wakeup(l));
		/* And the loop can still be woken afterwards. */
		loop_wake(l);
		assert_int_equal(loop_run_once(l, 2000), 1);
		assert_true(loop_take_wakeup(l));
	}
	loop_free(l);
}

struct spinner {
	struct loop *l;
	atomic_int *stop;
};

static void *spinner_main(void *arg)
{
	struct spinner *sp = arg;

	while (!atomic_load(sp->stop))
		loop_wake(sp->l);
	return NULL;
}

/*
 * Wakers hammering the loop while it drains: a wake that lands between
 * re-arming and reading the eventfd must not leave the loop unwakeable.
 */
static void test_wake_not_lost_under_contention(void **state)
{
	enum { NT = 3 };
	struct loop *l = loop_new();
	atomic_int stop;
	struct spinner sp = {l, &stop};
	pthread_t th[NT];
	int i, iter;
	bool lost = false;

	assert_non_null(l);
	atomic_init(&stop, 0);
	for (i = 0; i < NT; i++)
		assert_int_equal(
		        pthread_create(&th[i], NULL, spinner_main, &sp), 0);
	/* With wakers spinning, every iteration must see a wake-up. */
	for (iter = 0; iter < 5000; iter++) {
		lost = loop_run_once(l, 1000) != 1;
		if (lost)
			break;
		assert_true(loop_take_wakeup(l));
	}
	atomic_store(&stop, 1);
	for (i = 0; i < NT; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_false(lost);
	while (loop_run_once(l, 0) > 0)
		;
	(void)loop_take_wakeup(l);

	loop_wake(l);
	assert_int_equal(loop_run_once(l, 2000), 1);
	assert_true(loop_take_wakeup(l));
	loop_free(l);
}

struct pinger {
	struct loop *l;
	atomic_int round; /* the round the loop waits in */
	atomic_int sent;  /* wakes sent */
	int rounds;
};

static void *pinger_main(void *arg)
{
	struct pinger *p = arg;
	int i;

	for (i = 0; i < p->rounds; i++) {
		while (atomic_load(&p->round) < i)
			sched_yield();
		atomic_store(&p->sent, i + 1);
		loop_wake(p->l);
	}
	return NULL;
}

/*
 * One wake per round, sent while the loop is going to sleep, asleep, or
 * just awake: loop_wake writes the eventfd only to a loop that may block,
 * so a wake that finds it busy must be seen before it next blocks. A lost
 * one leaves the loop in epoll_wait for whole seconds.
 */
static void test_wake_races_sleep(void **state)
{
	struct pinger p = {.l = loop_new(), .rounds = 3000};
	pthread_t th;
	int i;

	assert_non_null(p.l);
	atomic_init(&p.round, 0);
	atomic_init(&p.sent, 0);
	assert_int_equal(pthread_create(&th, NULL, pinger_main, &p), 0);
	for (i = 0; i < p.rounds; i++) {
		int waits = 0;

		atomic_store(&p.round, i);
		/* Done when a wake-up came after this round's wake was sent.
		 * A stale eventfd write (both sides saw each other's flag)
		 * may wake one wait early: at most two waits per round. */
		for (;;) {
			bool woken = loop_take_wakeup(p.l);

			if (woken && atomic_load(&p.sent) > i)
				break;
			assert_true(waits++ < 2);
			assert_true(loop_run_once(p.l, 1000) >= 0);
		}
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	loop_free(p.l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_readable_runs_callback),
	        cmocka_unit_test(test_hangup_reported),
	        cmocka_unit_test(test_modify),
	        cmocka_unit_test(test_wake_coalesced),
	        cmocka_unit_test(test_wake_races_sleep),
	        cmocka_unit_test(test_wake_from_thread),
	        cmocka_unit_test(test_wake_many_threads),
	        cmocka_unit_test(test_wake_not_lost_under_contention),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
