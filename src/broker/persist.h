/*
 * Durability for the broker (DESIGN.md §6, docs/design.md "Durability"):
 * the bridge between the in-memory state and the SQLite store
 * (src/store). Workers describe every change to durable state as a small
 * operation appended to a batch; one store thread takes every batch at
 * once, applies them in one transaction (group commit) and publishes how
 * far it got. Acknowledgements that promise durability (PUBACK, PUBREC,
 * PUBCOMP in `persistence_sync always`) wait for that.
 *
 * Ordering. Operations on one session must reach the store in the order
 * they happened. Each session remembers the batch that holds its latest
 * pending operation; while that batch has not been taken, further
 * operations on the session go to the same batch, whichever thread makes
 * them. Batches are taken in a fixed order within one round and rounds are
 * applied in order, so a session's operations never overtake each other.
 * Retained messages carry the retained store's write number instead.
 *
 * Tickets. persist_ticket() read after appending is a round number; once
 * persist_committed() reaches it, everything appended before is durable
 * (the round started after the read, so it took every batch after the
 * appends).
 *
 * Threads: the append functions are called with the session's mu held (for
 * session operations) from any thread; the rest from the threads named.
 * With persistence off, b->persist is NULL and nothing here is called.
 */
#ifndef TERN_BROKER_PERSIST_H
#define TERN_BROKER_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct msg;
struct persist;
struct qmsg;
struct session;
struct sub_rec;

/*
 * Opens the store named by the configuration and loads it into b (sessions
 * into the table, subscriptions into the index, queues, inflight messages
 * marked DUP, incoming QoS 2 ids, retained messages), dropping what
 * expired while ternd was down. Called by broker_init before any listener
 * is opened. Returns 0 (b->persist set) or an error with err filled.
 */
int persist_open(struct broker *b, int nworkers, char *err, size_t errlen);

/* Starts the store thread. */
int persist_start(struct persist *p);

/*
 * Stops the store thread (it wakes workers, so this comes before they are
 * freed); what is pending stays for persist_stop. NULL is ok.
 */
void persist_stop_thread(struct persist *p);

/*
 * Stops the thread if still running, commits everything still pending on
 * the calling thread and closes the store. Called after the workers have
 * stopped and closed their connections. NULL is ok.
 */
void persist_stop(struct persist *p);

/* Makes the calling thread append to batch `i` (a worker's id) by default;
 * other threads use a shared batch. */
void persist_thread_init(struct persist *p, int i);

/*
 * End of a worker's loop iteration: if this thread appended anything since
 * the last call, wakes the store thread. Also asks for a wake-up of
 * worker `w_index` after the next commit when want_wake is set (it holds
 * acknowledgements).
 */
void persist_kick(struct persist *p, int w_index, bool want_wake);

/* Operations appended by the calling thread so far (a counter: compare
 * before and after a PUBLISH to know whether it wrote anything). */
uint64_t persist_thread_ops(void);

/*
 * The ticket an acknowledgement waits for: persist_ticket() when the
 * calling thread appended something since its counter read ops0 and acks
 * promise durability now; 0 (send at once) otherwise, or when p is NULL.
 */
uint64_t persist_ack_ticket(struct persist *p, uint64_t ops0);

/* The round whose commit makes everything appended so far durable. */
uint64_t persist_ticket(struct persist *p);
/* The last round committed. */
uint64_t persist_committed(struct persist *p);
/* Whether acknowledgements wait for commits now: always mode, or any mode
 * while the store is failing. */
bool persist_gates_acks(struct persist *p);

/* SIGUSR1: checkpoint the WAL at the next opportunity. Any thread. */
void persist_request_checkpoint(struct persist *p);
/* SIGHUP: a new persistence_max_bytes (0 = none). Any thread. */
void persist_set_max_bytes(struct persist *p, uint64_t max_bytes);

/*
 * Session operations; the caller holds s->mu and s->p is set (the session
 * is durable). Each takes its own references.
 */
/* The session record: version, expiry, offline since offline_wall (wall
 * ms; 0 = online), and its will with its delay in seconds from then (the
 * connection's while online, the delayed one while offline; NULL none). */
void persist_session_put(struct session *s, const struct msg *will,
                         uint32_t will_delay, int64_t offline_wall);
/* The session ended: its record and everything under it go; s->p is
 * cleared so nothing more is written for it. */
void persist_session_end(struct session *s);
void persist_sub_put(struct session *s, const struct sub_rec *r);
void persist_sub_del(struct session *s, const char *filter, uint16_t len);
/* Queue rows: q->seq is assigned by queue_put (QoS > 0 only). */
void persist_queue_put(struct session *s, struct qmsg *q);
void persist_queue_update(struct session *s, const struct qmsg *q);
void persist_queue_del(struct session *s, const struct qmsg *q);
void persist_inq2(struct session *s, uint16_t pid, bool add);

/*
 * Session table hooks (caller holds broker.sess_mu): a session leaving the
 * table leaves its batch marker behind for its client id, and a new
 * session for the same id inherits it, so the new session's writes cannot
 * overtake the old one's deletion.
 */
void persist_session_removed(struct persist *p, struct session *s);
void persist_session_inserted(struct persist *p, struct session *s);

/* A retained message set (payload) or deleted (empty payload); seq from
 * retain_put. $SYS topics are not stored. */
void persist_retained(struct persist *p, struct msg *m, uint64_t seq);

/* Wall-clock milliseconds since the epoch (offline times are stored so). */
int64_t persist_wall_ms(void);

/* Prints the store at path (a file, or a directory holding tern.db). */
int persist_dump(const char *path);

#endif
