/*
 * Worker threads (DESIGN.md §3). Each worker owns an event loop, its own
 * copy of every listening socket (SO_REUSEPORT spreads accepts), and the
 * connections it accepted. Other threads reach a worker only through its
 * inbox: "pump this session" and "close this connection" messages. A worker
 * posting to another wakes it once, at the end of its loop iteration (or
 * after WORKER_WAKE_BATCH posts), and a target that is not asleep is not
 * woken by a syscall at all (loop_wake).
 *
 * One iteration: wait for events and run their callbacks; drain the inbox;
 * send the acknowledgements whose store commit happened; flush every
 * connection with pending output once (writev); free the connections
 * closed during the iteration; run the periodic tick; hand this
 * iteration's store writes to the store thread (persist_kick).
 */
#ifndef TERN_BROKER_WORKER_H
#define TERN_BROKER_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/loop.h"
#include "net/outq.h"

struct broker;
struct conn;
struct session;
struct listener_cfg;

struct listener_sock {
	struct loop_io io;
	struct worker *w;
	const struct listener_cfg *cfg;
	int transport; /* enum transport_kind */
	uint16_t port;
	size_t index; /* position in config.listeners */
};

enum inbox_kind {
	INBOX_PUMP = 1, /* the session has queued messages for our client */
	INBOX_KICK,     /* close conn_id with reason (session takeover) */
};

/* Targets a worker remembers to wake at the end of its iteration; a
 * further one is woken at once. */
#define WORKER_WAKE_DUE 16

struct inbox_item {
	uint8_t kind;
	uint8_t reason;
	uint64_t conn_id;
	struct session *s; /* reference, INBOX_PUMP only */
};

struct worker {
	struct broker *b;
	int id;
	pthread_t thread;
	struct loop *loop;
	struct listener_sock *lsocks;
	int nlsocks;

	struct conn *conns; /* all connections of this worker */
	size_t nconns;
	struct conn *flush_list; /* connections with output to write */
	struct conn *dead;       /* closed this iteration, freed at its end */
	struct conn *throttled;  /* publishers held back (conn_throttle) */
	struct conn *ackwait;    /* holding acks for the store (conn_ack.c) */
	/* Connections whose buffered packets wait for their next turn
	 * (conn_parse's budget), and the deliveries this worker routed
	 * (broker_publish), which that budget counts. */
	struct conn *pending;
	uint64_t delivered;
	/* Its connections' buffer bytes as last added to b->mem.bufs
	 * (memlimit_sample). */
	int64_t mem_bufs;

	pthread_mutex_t inbox_mu;
	struct inbox_item *inbox, *inbox_spare;
	size_t ninbox, inbox_cap, spare_cap;
	/* Workers this one posted to in the current iteration and has not
	 * woken yet, and the posts made since the last wake-up round: one
	 * wake-up per target per iteration instead of one per delivery. */
	struct worker *wake_due[WORKER_WAKE_DUE];
	unsigned nwake_due, posts_due;

	/* Read buffer lent to connections with nothing buffered (conn.c). */
	uint8_t *scratch;
	size_t scratch_cap;
	/* Output buffers at their first sizes, shared by its connections'
	 * queues between sends (outq_pool). */
	struct outq_pool oqpool;

	struct auth *auth; /* snapshot used by this worker */
	unsigned auth_gen; /* b->auth_gen it corresponds to */

	uint64_t next_tick;
	uint64_t next_sys;
	bool started; /* thread running (for broker_stop) */

	/* Out of descriptors, accept() fails and the listening socket stays
	 * readable: the worker closes this spare descriptor to accept and
	 * drop the excess connection instead of spinning, then reopens it.
	 * -1 when it could not be reopened yet. */
	int spare_fd;
	uint64_t accept_err_logged;   /* clock_ms() of the last log line */
	unsigned long accept_dropped; /* connections dropped since then */
};

/*
 * Creates worker `id` and opens its listening sockets. Returns NULL with a
 * logged reason on failure.
 */
struct worker *worker_new(struct broker *b, int id);

/* Closes connections and sockets and frees the worker. NULL is ok. */
void worker_free(struct worker *w);

/* Thread entry point; returns when the broker is stopping. */
void *worker_main(void *arg);

/*
 * Asks worker `to` to pump s's queue into its connection. Takes its own
 * reference to s. Coalesced by s->ready. Any thread.
 */
void worker_post_pump(struct worker *to, struct session *s);

/* Asks worker `to` to close connection conn_id with a v5 reason. */
void worker_post_kick(struct worker *to, uint64_t conn_id, uint8_t reason);

/*
 * Switches w->auth to the broker's current snapshot if a reload replaced
 * it (one atomic load when not). Called once per loop iteration and before
 * each connection's events, so a packet read after a reload completed is
 * judged by the new rules even when the worker slept through the swap.
 * Pointers to the old snapshot taken before the call must not be used
 * after it. Owning worker only.
 */
void worker_refresh_auth(struct worker *w);

/* Puts c on the flush list (once). Owning worker only. */
void worker_want_flush(struct worker *w, struct conn *c);

#endif
