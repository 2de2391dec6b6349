/*
 * memory_limit: a bound on the memory clients can make the broker hold,
 * and what happens over it.
 *
 * Accounted: every message received from a client, will, admin API
 * publish or message loaded from the store (one allocation: topic,
 * payload, properties), from its creation until its last reference goes —
 * so queued, in-flight, retained and output-queue copies are all counted,
 * each message once however many hold it — plus each connection's own
 * read buffer and output queue memory (arena and entries), summed per
 * worker at its 250 ms tick. Messages use one relaxed atomic counter;
 * buffers one more that each worker adjusts by the change of its sum.
 *
 * Over the limit: PUBLISH packets are refused (v5 QoS > 0: PUBACK/PUBREC
 * 0x97 Quota exceeded; v3 and QoS 0: acknowledged as usual and dropped),
 * counted as dropped (reason memory_limit), except retained-message
 * deletions (they free memory); and at most every
 * MEMLIMIT_ENFORCE_MS the session holding the most queued bytes loses its
 * queue (counted as dropped) and its client, if connected, is
 * disconnected with 0x97. The holder is chosen rather than the publisher:
 * disconnecting a publisher frees nothing, the bytes sit in the queues of
 * the consumers that do not read them. A read buffer that would grow past
 * CONN_RBUF_OVER_LIMIT meanwhile closes its connection with 0x97
 * (conn.c): a huge packet being received is held by its sender.
 */
#ifndef TERN_BROKER_MEMLIMIT_H
#define TERN_BROKER_MEMLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct conn;
struct worker;

/* Enforcement rounds are at least this far apart (broker-wide). */
#define MEMLIMIT_ENFORCE_MS 100

/*
 * The default memory_limit: half of the memory available to the process,
 * the smaller of physical memory and a cgroup (v2 memory.max, v1
 * limit_in_bytes) limit; 0 (off) if neither can be read.
 */
uint64_t memlimit_default(void);

/* Resolves b->mem.limit from the configuration (CONFIG_MEMORY_AUTO: the
 * default) and logs it. Called once by broker_init. */
void memlimit_init(struct broker *b);

/* Bytes accounted now (never negative). Any thread. */
uint64_t memlimit_current(struct broker *b);

/* Whether a limit is set and the accounted bytes exceed it. Any thread;
 * two relaxed loads. */
bool memlimit_over(struct broker *b);

/* The memory a connection holds of its own (read buffer, output queue
 * arena and entries), not the messages it refers to. */
size_t memlimit_conn_bytes(const struct conn *c);

/* At the worker's tick: sums its connections' buffers and adds the change
 * since the last tick to the broker's counter. Owning worker only. */
void memlimit_sample(struct worker *w);

/*
 * Over the limit, and if no other thread did within MEMLIMIT_ENFORCE_MS:
 * drops the queue of the session holding the most queued bytes and asks
 * the worker of its client to disconnect it with 0x97. Call without locks.
 * Any thread.
 */
void memlimit_enforce(struct broker *b, uint64_t now);

#endif
