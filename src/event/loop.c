/*
 * epoll-backed implementation of loop.h. The eventfd is registered like any
 * descriptor; `wake_pending` makes sure that many producers waking one loop
 * in the same iteration cause a single write(2).
 */
#include "event/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/error.h"

#define LOOP_MAX_EVENTS 256

struct loop {
	int epfd;
	struct loop_io wake_io;
	atomic_int wake_pending; /* a write to the eventfd is outstanding */
	int woken;               /* seen by this loop's thread only */
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

/* Drains the eventfd and re-arms wake_pending. */
static void loop_drain_wake(struct loop *l)
{
	uint64_t v;

	/* Read before clearing the flag. Clearing first lets a racing
	 * loop_wake() write between the two steps; the read then consumes
	 * that write while the flag stays set, and every later wake is
	 * skipped forever. A wake that sees the flag still set here is
	 * covered by this wake-up (woken is reported after the drain); one
	 * that comes after the clear writes again. */
	while (read(l->wake_io.fd, &v, sizeof(v)) == sizeof(v))
		;
	atomic_store(&l->wake_pending, 0);
	l->woken = 1;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int n, i;

	n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : TERN_EIO;
	for (i = 0; i < n; i++) {
		struct loop_io *io = evs[i].data.ptr;

		if (io == &l->wake_io) {
			loop_drain_wake(l);
			continue;
		}
		io->cb(io, evs[i].events);
	}
	return n;
}

void loop_wake(struct loop *l)
{
	uint64_t one = 1;

	if (atomic_exchange(&l->wake_pending, 1))
		return;
	/* EAGAIN means the counter is already non-zero: the loop will wake. */
	if (write(l->wake_io.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		atomic_store(&l->wake_pending, 0);
}

int loop_take_wakeup(struct loop *l)
{
	int w = l->woken;

	l->woken = 0;
	return w;
}
