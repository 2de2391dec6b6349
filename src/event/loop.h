/*
 * The event loop: one epoll instance per worker thread, plus an eventfd that
 * other threads use to wake it (DESIGN.md §3). Each registered file
 * descriptor carries a `struct loop_io` whose callback runs on readiness.
 *
 * A loop is used by exactly one thread, except loop_wake(), which any
 * thread may call.
 */
#ifndef TERN_EVENT_LOOP_H
#define TERN_EVENT_LOOP_H

#include <stdatomic.h>
#include <stdint.h>

struct loop;
struct loop_io;

/* Called with the epoll events (EPOLLIN, EPOLLOUT, EPOLLERR, ...). */
typedef void (*loop_io_cb)(struct loop_io *io, uint32_t events);

/* Embedded in whatever owns the descriptor (container_of-style). */
struct loop_io {
	int fd;
	uint32_t events; /* currently registered mask */
	loop_io_cb cb;
};

/* Creates a loop. Returns NULL with errno set on failure. */
struct loop *loop_new(void);

/* Closes the epoll and eventfd descriptors. NULL is ok. */
void loop_free(struct loop *l);

/* Registers io->fd for `events` (EPOLLIN etc.). Returns 0 or TERN_EIO. */
int loop_add(struct loop *l, struct loop_io *io, uint32_t events);

/* Changes the registered events, skipping the syscall when unchanged. */
int loop_modify(struct loop *l, struct loop_io *io, uint32_t events);

/* Unregisters io->fd (does not close it). */
void loop_del(struct loop *l, struct loop_io *io);

/*
 * Waits up to timeout_ms (-1 forever) and runs the callbacks of ready
 * descriptors. Returns the number of events handled, or TERN_EIO. Does not
 * block while a wake-up from loop_wake() is owed; it counts as one event
 * and sets the woken flag read by loop_take_wakeup().
 */
int loop_run_once(struct loop *l, int timeout_ms);

/*
 * Wakes the loop from any thread: its thread returns from (or does not
 * enter) the wait, and loop_take_wakeup() reports it. Coalesced: while a
 * wake-up is owed, further calls cost one atomic exchange and no syscall,
 * and a loop that is not blocked in epoll_wait is not written to at all.
 */
void loop_wake(struct loop *l);

/* Returns 1 (and clears it) if the loop was woken since the last call.
 * Loop's thread only. */
int loop_take_wakeup(struct loop *l);

#endif
