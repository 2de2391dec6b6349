/*
 * The retained-message store: the last retained message of each topic, kept
 * in its own topic tree so a wildcard SUBSCRIBE finds matches without a scan
 * of every topic. Shared by all workers under a rwlock.
 *
 * The store holds one reference on each message (struct msg).
 */
#ifndef TERN_BROKER_RETAIN_H
#define TERN_BROKER_RETAIN_H

#include <stddef.h>
#include <stdint.h>

struct msg;
struct retain;

struct retain *retain_new(void);

/* Frees the store and drops its references. NULL is ok. */
void retain_free(struct retain *r);

/*
 * Stores m as the retained message for m->topic, replacing (and unreffing)
 * any previous one; a message with an empty payload deletes the topic's
 * retained message instead and is not stored. Takes its own reference.
 * Returns 0 or TERN_ENOMEM.
 */
int retain_set(struct retain *r, struct msg *m);

/*
 * retain_set that also returns, in *seq (if not NULL), the number of this
 * write: writes are numbered 1, 2, ... in the order they took effect, so a
 * store fed from several threads can apply them in that order.
 */
int retain_put(struct retain *r, struct msg *m, uint64_t *seq);

/* Makes the next write number greater than seq (after loading a store). */
void retain_seq_floor(struct retain *r, uint64_t seq);

/*
 * Calls cb for each retained message whose topic matches `filter` (no
 * "$share/" prefix). cb runs under the read lock and must take a reference
 * (msg_ref) if it keeps the message. '$'-topics are not matched by a
 * leading wildcard.
 */
void retain_match(struct retain *r, const char *filter, size_t len,
                  void (*cb)(void *ctx, struct msg *m), void *ctx);

/* Number of retained messages and their total payload bytes. */
size_t retain_count(struct retain *r);
uint64_t retain_bytes(struct retain *r);

#endif
