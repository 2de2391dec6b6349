/*
 * Implementation of the output queue. Arena entries store offsets, not
 * pointers, so the arena can grow with realloc while entries are pending;
 * consecutive arena appends merge into one entry to keep writev short.
 * When the queue drains completely the arena is rewound.
 */
#include "net/outq.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

void outq_pool_init(struct outq_pool *p, unsigned max)
{
	memset(p, 0, sizeof(*p));
	p->max = max;
}

/* Takes a buffer from a free list, or NULL. */
static void *pool_take(void **list, unsigned *n)
{
	void *b = *list;

	if (b) {
		*list = *(void **)b;
		(*n)--;
	}
	return b;
}

/* Puts b on a free list, or frees it when the list is full. */
static void pool_put(void **list, unsigned *n, unsigned max, void *b)
{
	if (*n >= max) {
		free(b);
		return;
	}
	*(void **)b = *list;
	*list = b;
	(*n)++;
}

void outq_pool_free(struct outq_pool *p)
{
	void *b;

	while ((b = pool_take(&p->ents, &p->nents)))
		free(b);
	while ((b = pool_take(&p->arenas, &p->narenas)))
		free(b);
}

void outq_init(struct outq *q, void (*unref)(void *ref))
{
	memset(q, 0, sizeof(*q));
	q->unref = unref;
}

/* Releases the entry array (grown ones only if `grown`) and the arena
 * likewise: first-size buffers to the pool, others to malloc. */
static void outq_release(struct outq *q, bool grown)
{
	struct outq_pool *p = q->pool;

	if (q->ents && (grown || q->cap == OUTQ_ENTS0)) {
		if (p && q->cap == OUTQ_ENTS0)
			pool_put(&p->ents, &p->nents, p->max, q->ents);
		else
			free(q->ents);
		q->ents = NULL;
		q->head = q->tail = q->cap = 0;
	}
	if (q->arena && (grown || q->arena_cap == OUTQ_ARENA0)) {
		if (p && q->arena_cap == OUTQ_ARENA0)
			pool_put(&p->arenas, &p->narenas, p->max, q->arena);
		else
			free(q->arena);
		q->arena = NULL;
		q->arena_len = q->arena_cap = 0;
	}
}

void outq_free(struct outq *q)
{
	struct outq_pool *p = q->pool;
	size_t i;

	for (i = q->head; i < q->tail; i++)
		if (q->ents[i].ref && q->ents[i].ref != OUTQ_INLINE && q->unref)
			q->unref(q->ents[i].ref);
	outq_release(q, true);
	memset(q, 0, sizeof(*q));
	q->pool = p;
}

/* Makes room for one more entry at the tail. */
static int outq_grow_ents(struct outq *q)
{
	struct outq_ent *e;
	size_t ncap;

	if (q->head > 0 && q->head == q->tail)
		q->head = q->tail = 0;
	if (q->tail < q->cap)
		return 0;
	if (q->head > q->cap / 2) {
		memmove(q->ents, q->ents + q->head,
		        (q->tail - q->head) * sizeof(*q->ents));
		q->tail -= q->head;
		q->head = 0;
		return 0;
	}
	if (!q->cap && q->pool &&
	    (q->ents = pool_take(&q->pool->ents, &q->pool->nents))) {
		q->cap = OUTQ_ENTS0;
		return 0;
	}
	ncap = q->cap ? q->cap * 2 : OUTQ_ENTS0;
	e = realloc(q->ents, ncap * sizeof(*e));
	if (!e)
		return TERN_ENOMEM;
	q->ents = e;
	q->cap = ncap;
	return 0;
}

/* Makes the arena hold at least `need` bytes. */
static int outq_arena_fit(struct outq *q, size_t need)
{
	size_t ncap = q->arena_cap ? q->arena_cap : OUTQ_ARENA0;
	uint8_t *a;

	if (need <= q->arena_cap)
		return 0;
	if (!q->arena_cap && need <= OUTQ_ARENA0 && q->pool &&
	    (q->arena = pool_take(&q->pool->arenas, &q->pool->narenas))) {
		q->arena_cap = OUTQ_ARENA0;
		return 0;
	}
	while (ncap < need)
		ncap *= 2;
	a = realloc(q->arena, ncap);
	if (!a)
		return TERN_ENOMEM;
	q->arena = a;
	q->arena_cap = ncap;
	return 0;
}

uint8_t *outq_reserve(struct outq *q, size_t n)
{
	struct outq_ent *last;

	if (outq_arena_fit(q, q->arena_len + n) != 0)
		return NULL;
	last = q->tail > q->head ? &q->ents[q->tail - 1] : NULL;
	if (last && !last->ref && last->off + last->len == q->arena_len &&
	    (!q->framing || q->unframed_ents > 0)) {
		last->len += n;
	} else {
		if (outq_grow_ents(q) != 0)
			return NULL;
		q->ents[q->tail++] = (struct outq_ent){.ref = NULL,
		                                       .base = NULL,
		                                       .off = q->arena_len,
		                                       .len = n};
		if (q->framing)
			q->unframed_ents++;
	}
	q->arena_len += n;
	q->bytes += n;
	if (q->framing)
		q->unframed_bytes += n;
	return q->arena + q->arena_len - n;
}

void outq_commit(struct outq *q, size_t reserved, size_t used)
{
	size_t unused = reserved - used;

	q->ents[q->tail - 1].len -= unused;
	q->arena_len -= unused;
	q->bytes -= unused;
	if (q->framing)
		q->unframed_bytes -= unused;
	/* Only an entry this reservation created can become empty. */
	if (q->ents[q->tail - 1].len == 0) {
		q->tail--;
		if (q->framing)
			q->unframed_ents--;
	}
}

int outq_append(struct outq *q, const void *p, size_t n)
{
	uint8_t *dst = outq_reserve(q, n);

	if (!dst)
		return TERN_ENOMEM;
	memcpy(dst, p, n);
	return 0;
}

int outq_append_ref(struct outq *q, void *ref, const void *base, size_t len)
{
	if (len == 0 || outq_grow_ents(q) != 0) {
		if (q->unref)
			q->unref(ref);
		return len == 0 ? 0 : TERN_ENOMEM;
	}
	q->ents[q->tail++] = (struct outq_ent){
	        .ref = ref, .base = base, .off = 0, .len = len};
	q->bytes += len;
	if (q->framing) {
		q->unframed_ents++;
		q->unframed_bytes += len;
	}
	return 0;
}

int outq_frame(struct outq *q, const uint8_t *hdr, size_t n)
{
	struct outq_ent *e;
	size_t pos;

	if (!q->unframed_bytes)
		return 0;
	if (outq_grow_ents(q) != 0)
		return TERN_ENOMEM;
	/* The unframed entries are the last ones; the header goes first. */
	pos = q->tail - q->unframed_ents;
	memmove(&q->ents[pos + 1], &q->ents[pos],
	        q->unframed_ents * sizeof(*q->ents));
	e = &q->ents[pos];
	memset(e, 0, sizeof(*e));
	e->ref = OUTQ_INLINE;
	memcpy(e->inl, hdr, n);
	e->len = n;
	q->tail++;
	q->bytes += n;
	outq_mark(q);
	return 0;
}

void outq_mark(struct outq *q)
{
	q->unframed_ents = 0;
	q->unframed_bytes = 0;
}

/* Fills iov with ents[from..tail), at most max of them. */
static int outq_iov_from(const struct outq *q, size_t from, struct iovec *iov,
                         int max)
{
	size_t i;
	int n = 0;

	for (i = from; i < q->tail && n < max; i++, n++) {
		const struct outq_ent *e = &q->ents[i];

		if (e->ref == OUTQ_INLINE)
			iov[n].iov_base = (void *)(e->inl + e->off);
		else if (e->ref)
			iov[n].iov_base = (void *)(e->base + e->off);
		else
			iov[n].iov_base = (void *)(q->arena + e->off);
		iov[n].iov_len = e->len;
	}
	return n;
}

int outq_iov(const struct outq *q, struct iovec *iov, int max)
{
	return outq_iov_from(q, q->head, iov, max);
}

int outq_unframed_iov(const struct outq *q, size_t skip, struct iovec *iov,
                      int max)
{
	if (skip >= q->unframed_ents)
		return 0;
	return outq_iov_from(q, q->tail - q->unframed_ents + skip, iov, max);
}

/*
 * The unframed entries are the last ones and nothing has been written from
 * them (a flush frames first), and arena offsets only increase along the
 * queue: the arena from their first arena entry on is theirs alone, and is
 * reused for the replacement. Growing the arena first is the only step
 * that can fail, so a failure leaves the queue as it was.
 */
int outq_replace_unframed(struct outq *q, const uint8_t *hdr, size_t hn,
                          const void *p, size_t n)
{
	size_t first = q->tail - q->unframed_ents, base = q->arena_len, i;

	if (!q->unframed_ents)
		return 0;
	for (i = first; i < q->tail; i++)
		if (!q->ents[i].ref) {
			base = q->ents[i].off;
			break;
		}
	if (outq_arena_fit(q, base + hn + n) != 0)
		return TERN_ENOMEM;
	for (i = first; i < q->tail; i++)
		if (q->ents[i].ref && q->ents[i].ref != OUTQ_INLINE && q->unref)
			q->unref(q->ents[i].ref);
	q->bytes -= q->unframed_bytes;
	q->tail = first;
	outq_mark(q);
	memcpy(q->arena + base, hdr, hn);
	if (n)
		memcpy(q->arena + base + hn, p, n);
	/* At least one entry was removed, so this slot exists. */
	q->ents[q->tail++] = (struct outq_ent){
	        .ref = NULL, .base = NULL, .off = base, .len = hn + n};
	q->arena_len = base + hn + n;
	q->bytes += hn + n;
	return 0;
}

/*
 * A queue that never drains completely (a steady stream to a busy reader)
 * would grow its arena without end; slide the live arena bytes down once
 * the dead prefix is large. Arena offsets only increase along the queue.
 */
static void outq_compact(struct outq *q)
{
	size_t i, dead = q->arena_len;

	for (i = q->head; i < q->tail; i++)
		if (!q->ents[i].ref) {
			dead = q->ents[i].off;
			break;
		}
	if (dead < 65536 || dead < q->arena_len / 2)
		return;
	memmove(q->arena, q->arena + dead, q->arena_len - dead);
	q->arena_len -= dead;
	for (i = q->head; i < q->tail; i++)
		if (!q->ents[i].ref)
			q->ents[i].off -= dead;
}

void outq_consume(struct outq *q, size_t n)
{
	q->bytes -= n;
	while (n > 0 && q->head < q->tail) {
		struct outq_ent *e = &q->ents[q->head];

		if (n < e->len) {
			e->off += n;
			e->len -= n;
			break;
		}
		n -= e->len;
		if (e->ref && e->ref != OUTQ_INLINE && q->unref)
			q->unref(e->ref);
		q->head++;
	}
	if (q->head == q->tail) {
		q->head = q->tail = 0;
		q->arena_len = 0;
		return;
	}
	outq_compact(q);
}

void outq_shrink(struct outq *q)
{
	if (q->bytes || q->head != q->tail)
		return;
	outq_release(q, true);
}

void outq_recycle(struct outq *q)
{
	if (!q->pool || q->bytes || q->head != q->tail)
		return;
	outq_release(q, false);
}
