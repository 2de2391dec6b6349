/*
 * A connection's output queue (DESIGN.md §4): a list of byte ranges written
 * with one writev per flush. Small per-connection bytes (packet headers,
 * acks) are appended to an arena owned by the queue; large shared bytes (a
 * message payload) are queued by reference with a refcount held until they
 * have been written, so fan-out never copies payloads.
 *
 * Owned and used by one worker thread.
 */
#ifndef TERN_NET_OUTQ_H
#define TERN_NET_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* outq_ent.ref of an entry whose bytes live in the entry itself (inl). */
#define OUTQ_INLINE ((void *)1)

struct outq_ent {
	void *ref; /* reference released after writing; NULL = arena */
	const uint8_t *base; /* ref's bytes (NULL for arena entries) */
	size_t off;          /* arena offset, or offset from base */
	size_t len;
	uint8_t inl[16]; /* OUTQ_INLINE bytes (a WebSocket frame header) */
};

/* The first sizes of a queue's buffers: entries, arena bytes. */
#define OUTQ_ENTS0  8
#define OUTQ_ARENA0 512

/*
 * Buffers at their first sizes that drained queues gave back, for the next
 * queue that has something to send: a connection that replies now and then
 * holds no buffer between replies and calls malloc for none of them, and
 * thousands of connections set up at once reuse a few buffers instead of
 * leaving a freed one each between long-lived structs (holes RSS never gets
 * back). Free buffers are linked through their first bytes; at most max of
 * each kind are kept, the rest go back to malloc. One per thread, shared
 * by that thread's queues only.
 */
struct outq_pool {
	void *ents, *arenas; /* free lists */
	unsigned nents, narenas, max;
};

/* Prepares an empty pool keeping at most max buffers of each kind. */
void outq_pool_init(struct outq_pool *p, unsigned max);

/* Frees the pooled buffers (after every queue using p is freed). */
void outq_pool_free(struct outq_pool *p);

struct outq {
	struct outq_ent *ents;
	size_t head, tail, cap; /* ents[head..tail) are pending */
	uint8_t *arena;
	size_t arena_len, arena_cap;
	size_t bytes; /* pending bytes */
	void (*unref)(void *ref);
	/* Framing (WebSocket): the last unframed_ents entries, holding
	 * unframed_bytes, have no frame header yet; appends never merge into
	 * an entry that already has one. unframed_ents is 32 bits so that it
	 * shares a word with framing: every idle connection holds a queue,
	 * and 8 bytes less keep struct conn in a smaller malloc chunk. */
	int framing;
	uint32_t unframed_ents;
	size_t unframed_bytes;
	/* Where buffers at their first sizes come from and go back to;
	 * NULL: malloc alone. Set after outq_init, before use. */
	struct outq_pool *pool;
};

/* Initialises an empty queue; unref releases references (may be NULL). */
void outq_init(struct outq *q, void (*unref)(void *ref));

/* Releases all pending references and memory. */
void outq_free(struct outq *q);

/*
 * Reserves n bytes at the end of the arena for the caller to fill, queued as
 * (part of) the last entry. Returns the pointer or NULL when out of memory.
 * The pointer is valid until the next call that modifies q.
 */
uint8_t *outq_reserve(struct outq *q, size_t n);

/*
 * Gives back the tail of the last reservation that was not used: the caller
 * reserved `reserved` bytes and wrote `used`.
 */
void outq_commit(struct outq *q, size_t reserved, size_t used);

/* Appends a copy of bytes. Returns 0 or TERN_ENOMEM. */
int outq_append(struct outq *q, const void *p, size_t n);

/*
 * Appends a reference to base[0..len); the queue takes ownership of one
 * reference to `ref` (released with unref once written or on free), also on
 * failure. Returns 0 or TERN_ENOMEM.
 */
int outq_append_ref(struct outq *q, void *ref, const void *base, size_t len);

/*
 * Fills iov (at most max entries) with the pending ranges, in order.
 * Returns the number of entries filled.
 */
int outq_iov(const struct outq *q, struct iovec *iov, int max);

/*
 * Framing, for transports that wrap the byte stream in frames (WebSocket):
 * outq_frame() inserts the header hdr[0..n) (n <= 16) in front of every
 * byte appended since the last outq_frame()/outq_mark(), so a batch of
 * queued packets leaves as one frame. outq_mark() declares the bytes
 * appended so far complete as they are (e.g. a control frame written
 * whole). Returns 0 or TERN_ENOMEM.
 */
int outq_frame(struct outq *q, const uint8_t *hdr, size_t n);
void outq_mark(struct outq *q);

/*
 * For a transport that rewrites the unframed bytes before framing them
 * (a compressed WebSocket message): outq_unframed_iov() fills iov (at most
 * max entries) with the unframed ranges in order, starting with the
 * skip-th, and returns the number filled; outq_replace_unframed() then
 * replaces all unframed bytes with copies of hdr[0..hn) and p[0..n), which
 * become one framed entry, releasing the references the replaced entries
 * held. Returns 0, or TERN_ENOMEM with the queue unchanged.
 */
int outq_unframed_iov(const struct outq *q, size_t skip, struct iovec *iov,
                      int max);
int outq_replace_unframed(struct outq *q, const uint8_t *hdr, size_t hn,
                          const void *p, size_t n);

/*
 * Frees the arena and entry array of an empty queue (to the pool if they
 * are at their first sizes), so an idle connection holds no output memory.
 * Does nothing while bytes are pending.
 */
void outq_shrink(struct outq *q);

/*
 * For a queue that just drained: gives buffers at their first sizes back to
 * the pool and keeps larger ones (a queue that grew is busy; outq_shrink
 * frees them once idle). Costs no malloc, so it suits every drain. Does
 * nothing without a pool or while bytes are pending.
 */
void outq_recycle(struct outq *q);

/* Marks n bytes as written, releasing finished references. */
void outq_consume(struct outq *q, size_t n);

#endif
