/*
 * epoll-backed implementation of loop.h. The eventfd is registered like any
 * descriptor, but written only to a loop that is (about to be) blocked in
 * epoll_wait: `wake_pending` says a wake-up is owed, `sleeping` that the
 * loop's thread may block. A loop that is busy when woken sees the flag
 * before it next blocks, so it costs the waker one atomic exchange and
 * neither side a syscall; many wakes of a sleeping loop cost one write(2)
 * and one read(2).
 */
#include "event/loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/error.h"

#define LOOP_MAX_EVENTS 256

struct loop {
	int epfd;
	struct loop_io wake_io;
	atomic_int wake_pending; /* loop_wake() since the last run_once */
	atomic_int sleeping;     /* the loop's thread is in (or entering)
	                          * epoll_wait with a timeout */
	int woken; /* a wake taken by run_once; this loop's thread only */
};

static void loop_on_wake(struct loop_io *io, uint32_t events)
{
	(void)io;
	(void)events;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wake_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->wake_io.cb = loop_on_wake;
	if (l->epfd < 0 || l->wake_io.fd < 0)
		goto fail;
	if (loop_add(l, &l->wake_io, EPOLLIN) != 0)
		goto fail;
	return l;
fail:
	loop_free(l);
	return NULL;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wake_io.fd >= 0)
		close(l->wake_io.fd);
	free(l);
}

int loop_add(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};

	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) != 0)
		return TERN_EIO;
	io->events = events;
	return 0;
}

int loop_modify(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};

	if (io->events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0)
		return TERN_EIO;
	io->events = events;
	return 0;
}

void loop_del(struct loop *l, struct loop_io *io)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

/* Empties the eventfd: one read returns and resets its whole counter. */
static void loop_drain_wake(struct loop *l)
{
	uint64_t v;

	if (read(l->wake_io.fd, &v, sizeof(v)) < 0)
		return; /* EAGAIN: a stale readiness, nothing to clear */
}

/*
 * Marks the thread as about to block and returns the timeout to block
 * with: 0 when a wake is already owed. Both sides use sequentially
 * consistent operations on two flags (a store then a load here, an
 * exchange then a load in loop_wake), so at least one sees the other's
 * write: either this thread sees wake_pending and does not block, or the
 * waker sees `sleeping` and writes the eventfd. Both may happen; the
 * write then wakes a later iteration spuriously.
 */
static int loop_prepare_wait(struct loop *l, int timeout_ms)
{
	if (timeout_ms == 0)
		return 0;
	atomic_store(&l->sleeping, 1);
	if (atomic_load(&l->wake_pending)) {
		atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed);
		return 0;
	}
	return timeout_ms;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int n, i, handled = 0;
	bool woke = false;

	n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS,
	               loop_prepare_wait(l, timeout_ms));
	atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed);
	if (n < 0)
		return errno == EINTR ? 0 : TERN_EIO;
	for (i = 0; i < n; i++) {
		struct loop_io *io = evs[i].data.ptr;

		if (io == &l->wake_io) {
			loop_drain_wake(l);
			woke = true;
			continue;
		}
		io->cb(io, evs[i].events);
		handled++;
	}
	/* A wake counts as one event, however it was noticed (the eventfd,
	 * or wake_pending seen before or after the wait), and the owed one
	 * is taken here so that it is counted once. A stale eventfd write
	 * (both sides saw each other's flag) makes a spurious wake-up, as an
	 * eventfd always could. A load first: most iterations owe none, and
	 * a load leaves the cache line shared with the wakers. */
	if (atomic_load(&l->wake_pending) &&
	    atomic_exchange(&l->wake_pending, 0))
		woke = true;
	if (woke) {
		l->woken = 1;
		handled++;
	}
	return handled;
}

void loop_wake(struct loop *l)
{
	uint64_t one = 1;

	if (atomic_exchange(&l->wake_pending, 1))
		return; /* owed already: the loop will see it */
	if (!atomic_load(&l->sleeping))
		return; /* busy: it checks wake_pending before blocking */
	/* The only failure, EAGAIN, means the counter is non-zero already:
	 * the loop wakes anyway. */
	if (write(l->wake_io.fd, &one, sizeof(one)) < 0)
		return;
}

int loop_take_wakeup(struct loop *l)
{
	int w = l->woken;

	l->woken = 0;
	return w;
}
