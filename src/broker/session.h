/*
 * Sessions: the state MQTT keeps per client id across connections —
 * subscriptions, messages queued for the client, outgoing QoS 1/2 messages
 * in flight, incoming QoS 2 packet ids awaiting PUBREL, and a delayed will.
 *
 * Ownership and threads: a session is refcounted. Its mutable state is
 * guarded by `mu`, because any worker may append a message to its queue.
 * While a connection is attached, `w`/`conn_id` name the owning worker, and
 * only that worker dereferences `conn` or writes to it (DESIGN.md §3).
 * The session table (broker.sess_mu) holds one reference; the index holds
 * none (subscriptions are removed before the session is dropped).
 */
#ifndef TERN_BROKER_SESSION_H
#define TERN_BROKER_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/subs.h"

struct broker;
struct conn;
struct msg;
struct pbatch;
struct persist;
struct worker;

/* A message waiting for, or in flight to, the client. */
struct qmsg {
	struct msg *m; /* one reference */
	uint8_t qos;   /* delivery QoS (min of published and granted) */
	bool retain;   /* RETAIN flag to send */
	bool dup;      /* already sent once (inflight after reconnect) */
	bool shared;   /* came through a shared subscription */
	uint8_t state; /* enum qmsg_state, inflight only */
	uint16_t pid;  /* packet id, inflight only */
	uint16_t nsubids;
	uint32_t *subids; /* malloc'd, nsubids entries; NULL when 0 */
	uint64_t seq;     /* row in the durable store; 0 = not stored */
};

enum qmsg_state {
	QS_WAIT_PUBACK = 1, /* QoS 1 sent */
	QS_WAIT_PUBREC,     /* QoS 2 PUBLISH sent */
	QS_WAIT_PUBCOMP,    /* QoS 2 PUBREL sent */
};

/* One subscription as the session remembers it (to rebuild or remove). */
struct sub_rec {
	char *filter; /* NUL-terminated, as subscribed (may be $share/...) */
	uint16_t len;
	struct subs_opts opts;
};

/*
 * Every client has one, connected or not, so its size counts in the memory
 * per idle connection: the small fields fill what would be padding (four
 * beside refs, two beside version and transport, expiry beside qcap), and
 * the struct has no holes.
 */
struct session {
	atomic_uint refs;
	bool in_table;
	atomic_bool ready; /* on some worker's ready list */
	uint16_t next_pid; /* the next outgoing packet id; under mu */
	pthread_mutex_t mu;
	char *client_id;
	char *username; /* of the attached (or last) connection; under mu */
	struct session *hnext; /* session table chain, under broker.sess_mu */

	/* Attachment; under mu. conn is dereferenced only by worker w. */
	struct worker *w;
	struct conn *conn;
	uint64_t conn_id;
	uint8_t version;
	/* Of the attached (or last) connection, for the admin API, which
	 * may not dereference conn from another worker; under mu. */
	uint8_t transport; /* enum transport_kind */
	uint16_t recv_max; /* client's Receive Maximum (outgoing window) */
	uint32_t client_max_packet; /* 0 = no limit */
	/* Index of that connection's listener, whose rules (auth.h) apply
	 * to deliveries also while offline; AUTH_ANY_LISTENER for a session
	 * restored from the store that has not reconnected. */
	size_t listener;
	/* That connection's JWT topics claim (auth.h), one reference, NULL
	 * for none: deliveries are checked with it, also while offline. */
	struct auth_grant *grant;
	char peer[64];         /* "host:port" (SOCK_ADDRSTRLEN) */
	uint64_t connected_at; /* clock_ms() of its CONNECT */

	uint64_t offline_since; /* clock_ms() when the last connection left */

	struct sub_rec *subsv; /* under mu */
	uint32_t nsubs, subs_cap;

	/* Queue (ring buffer) of messages not yet sent; under mu. */
	struct qmsg *q;
	uint32_t qhead, qlen, qcap;
	uint32_t expiry; /* session expiry interval (s) */
	uint64_t qbytes;

	/* Outgoing QoS 1/2 in flight, in send order; under mu. */
	struct qmsg *infl;
	uint32_t ninfl, infl_cap; /* next_pid is at the top */

	/* Incoming QoS 2 packet ids awaiting PUBREL; under mu. */
	uint16_t *in_qos2;
	uint32_t nin_qos2, in_qos2_cap;

	/* Will waiting for its delay, published at will_at (clock_ms). */
	struct msg *will;
	uint64_t will_at;

	/* Durability (persist.h), under mu: the store this session is
	 * written to (NULL: not durable), the batch holding its latest
	 * pending write with that batch's generation, and the next queue
	 * row number. */
	struct persist *p;
	struct pbatch *pb;
	uint64_t pb_gen;
	uint64_t store_seq;

	/* Publishers are not held back for this session before this time
	 * (clock_ms): it did not drain when last asked to. Under mu. */
	uint64_t slow_until;
	/* Drops at a full queue not logged yet, and when the last line was
	 * (clock_ms): one debug line a second, not one per message. */
	uint64_t drops_unlogged;
	uint64_t drop_logged_at;
	/* When the queue went over the back-pressure mark (clock_ms; 0: it
	 * is not over). Under mu. */
	uint64_t backlog_since;
};

/* Creates a detached session with one reference. NULL on OOM. */
struct session *session_new(const char *client_id);

static inline struct session *session_ref(struct session *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

/* Drops a reference; the last one frees queues and records. NULL is ok. */
void session_unref(struct session *s);

/*
 * Session table (caller holds b->sess_mu): find, insert (takes a reference),
 * remove (drops the table's reference).
 */
struct session *session_find(struct broker *b, const char *client_id);
int session_insert(struct broker *b, struct session *s);
void session_remove(struct broker *b, struct session *s);

/*
 * Removes every subscription of s from the index and frees its records.
 * Caller holds s->mu.
 */
void session_clear_subs(struct broker *b, struct session *s);

/*
 * Drops queued and inflight messages and incoming QoS 2 state, updating the
 * broker's gauges. Caller holds s->mu.
 */
void session_clear_messages(struct broker *b, struct session *s);

/* Finds or adds the subscription record for filter. Caller holds s->mu.
 * Returns the record or NULL on OOM; *added tells whether it is new. */
struct sub_rec *session_sub_put(struct session *s, const char *filter,
                                uint16_t len, bool *added);

/* Removes the record for filter; returns 0 or TERN_ENOENT. Holds s->mu. */
int session_sub_del(struct session *s, const char *filter, uint16_t len);

/*
 * Appends a message to the queue (caller holds s->mu), taking a reference
 * to m and ownership of subids. Enforces max_queued_messages/bytes: when
 * full the message is dropped, counted, and TERN_ELIMIT returned.
 */
int session_enqueue(struct broker *b, struct session *s, struct msg *m,
                    uint8_t qos, bool retain, bool shared, uint32_t *subids,
                    uint16_t nsubids);

/*
 * Takes the oldest queued message into *out (ownership moves to the caller).
 * Returns false when the queue is empty. Caller holds s->mu.
 */
bool session_dequeue(struct broker *b, struct session *s, struct qmsg *out);

/*
 * Back-pressure thresholds (caller holds s->mu). A session is backlogged
 * when its queue is above half its bound (max_queued_messages or
 * max_queued_bytes), at most 1000 messages, and it has not been
 * marked slow; it has drained once it is back at or below that mark, so
 * the queue stays near half its bound while the consumer keeps pace.
 * A session backlogged for SESSION_STALL_MS in a row is stalled: marked
 * slow for SESSION_SLOW_MS, whichever publisher waited for it.
 */
#define SESSION_STALL_MS 250
#define SESSION_SLOW_MS  1000
bool session_backlogged(const struct broker *b, struct session *s,
                        uint64_t now);
bool session_drained(const struct broker *b, const struct session *s);

/* Whether an offline session's expiry interval has passed at now
 * (clock_ms). Caller holds s->mu. */
bool session_expired(const struct session *s, uint64_t now);

/* Allocates a packet id not in flight (caller holds s->mu). */
uint16_t session_next_pid(struct session *s);

/* Index of the inflight entry with pid, or -1. Caller holds s->mu. */
int session_infl_find(const struct session *s, uint16_t pid);

/* Removes inflight entry i, releasing its message. Caller holds s->mu. */
void session_infl_remove(struct session *s, int i);

/* Appends q to the queue without bounds or store writes (ownership
 * moves; restoring a stored session). Returns 0 or TERN_ENOMEM. */
int session_queue_push(struct broker *b, struct session *s,
                       const struct qmsg *q);

/* Appends q to the inflight list (ownership moves; restoring a stored
 * session). Returns 0 or TERN_ENOMEM. Caller holds s->mu. */
int session_infl_push(struct session *s, const struct qmsg *q);

/* Incoming QoS 2 ids (caller holds s->mu). has: 1/0; add: 0 or ENOMEM. */
bool session_inq2_has(const struct session *s, uint16_t pid);
int session_inq2_add(struct session *s, uint16_t pid);
bool session_inq2_del(struct session *s, uint16_t pid);

/* Releases a qmsg's message and subids. */
void qmsg_release(struct qmsg *q);

#endif
