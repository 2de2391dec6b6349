/*
 * Tests of the output queue (src/net/outq.c): iovecs list arena bytes and
 * referenced ranges in queue order, consecutive arena appends merge, consume
 * walks across entries and releases each reference exactly once, the arena
 * rewinds when the queue drains and is compacted when it never does, and
 * the unframed tail can be read and replaced (WebSocket compression), and
 * first-size buffers go round through a pool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <string.h>

#include "base/error.h"
#include "net/outq.h"

/* A fake shared buffer: counts how often the queue released it. */
struct ref {
	int unrefs;
	const char *bytes;
};

static void ref_unref(void *p)
{
	((struct ref *)p)->unrefs++;
}

/* Concatenates the queue's pending bytes (via outq_iov) into out. */
static size_t flatten(const struct outq *q, uint8_t *out, size_t cap)
{
	struct iovec iov[64];
	int n = outq_iov(q, iov, 64), i;
	size_t len = 0;

	for (i = 0; i < n; i++) {
		assert_true(len + iov[i].iov_len <= cap);
		memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	return len;
}

static void assert_iov(const struct iovec *iov, const char *want)
{
	assert_int_equal(iov->iov_len, strlen(want));
	assert_memory_equal(iov->iov_base, want, strlen(want));
}

static void test_iov_order_and_merge(void **state)
{
	struct ref r1 = {0, "PAYLOAD"}, r2 = {0, "tail"};
	struct outq q;
	struct iovec iov[8];

	outq_init(&q, ref_unref);
	assert_int_equal(outq_iov(&q, iov, 8), 0);
	assert_int_equal(outq_append(&q, "ab", 2), 0);
	assert_int_equal(outq_append(&q, "c", 1), 0); /* merges with "ab" */
	assert_int_equal(outq_append_ref(&q, &r1, r1.bytes, 7), 0);
	assert_int_equal(outq_append(&q, "de", 2), 0);
	assert_int_equal(outq_append(&q, "fg", 2), 0); /* merges with "de" */
	assert_int_equal(outq_append_ref(&q, &r2, r2.bytes, 4), 0);
	assert_int_equal(outq_append(&q, "h", 1), 0);

	assert_int_equal(q.bytes, 3 + 7 + 4 + 4 + 1);
	assert_int_equal(outq_iov(&q, iov, 8), 5);
	assert_iov(&iov[0], "abc");
	assert_iov(&iov[1], "PAYLOAD");
	assert_ptr_equal(iov[1].iov_base, r1.bytes); /* not copied */
	assert_iov(&iov[2], "defg");
	assert_iov(&iov[3], "tail");
	assert_iov(&iov[4], "h");

	/* max limits the count and keeps the prefix. */
	assert_int_equal(outq_iov(&q, iov, 2), 2);
	assert_iov(&iov[0], "abc");
	assert_iov(&iov[1], "PAYLOAD");

	outq_free(&q);
	assert_int_equal(r1.unrefs, 1);
	assert_int_equal(r2.unrefs, 1);
}

static void test_reserve_commit(void **state)
{
	struct outq q;
	struct iovec iov[4];
	uint8_t *p;

	outq_init(&q, ref_unref);
	p = outq_reserve(&q, 100);
	assert_non_null(p);
	memcpy(p, "hello", 5);
	outq_commit(&q, 100, 5);
	assert_int_equal(q.bytes, 5);
	assert_int_equal(q.arena_len, 5);

	/* The next reservation continues the same entry. */
	p = outq_reserve(&q, 50);
	assert_non_null(p);
	memcpy(p, " world", 6);
	outq_commit(&q, 50, 6);
	assert_int_equal(outq_iov(&q, iov, 4), 1);
	assert_iov(&iov[0], "hello world");

	/* A reservation wholly given back on a fresh entry leaves none. */
	{
		struct ref r = {0, "R"};

		assert_int_equal(outq_append_ref(&q, &r, r.bytes, 1), 0);
		p = outq_reserve(&q, 10);
		assert_non_null(p);
		assert_int_equal(outq_iov(&q, iov, 4), 3);
		outq_commit(&q, 10, 0);
		assert_int_equal(outq_iov(&q, iov, 4), 2);
		assert_int_equal(q.bytes, 12);
		outq_consume(&q, 12);
		assert_int_equal(r.unrefs, 1);
	}
	assert_int_equal(q.bytes, 0);
	outq_free(&q);
}

static void test_partial_consume(void **state)
{
	struct ref r1 = {0, "0123456789"}, r2 = {0, "ABCDEF"};
	struct outq q;
	struct iovec iov[8];

	outq_init(&q, ref_unref);
	assert_int_equal(outq_append(&q, "hdr1", 4), 0);
	assert_int_equal(outq_append_ref(&q, &r1, r1.bytes, 10), 0);
	assert_int_equal(outq_append(&q, "hdr2", 4), 0);
	assert_int_equal(outq_append_ref(&q, &r2, r2.bytes, 6), 0);

	/* Into the middle of the first reference. */
	outq_consume(&q, 7);
	assert_int_equal(q.bytes, 17);
	assert_int_equal(r1.unrefs, 0);
	assert_int_equal(outq_iov(&q, iov, 8), 3);
	assert_iov(&iov[0], "3456789");
	assert_iov(&iov[1], "hdr2");
	assert_iov(&iov[2], "ABCDEF");

	/* Finishes r1 and hdr2 and ends inside r2. */
	outq_consume(&q, 7 + 4 + 2);
	assert_int_equal(r1.unrefs, 1);
	assert_int_equal(r2.unrefs, 0);
	assert_int_equal(outq_iov(&q, iov, 8), 1);
	assert_iov(&iov[0], "CDEF");

	/* Exactly to the end of r2. */
	outq_consume(&q, 4);
	assert_int_equal(r1.unrefs, 1);
	assert_int_equal(r2.unrefs, 1);
	assert_int_equal(q.bytes, 0);
	assert_int_equal(outq_iov(&q, iov, 8), 0);

	/* Freeing afterwards releases nothing twice. */
	outq_free(&q);
	assert_int_equal(r1.unrefs, 1);
	assert_int_equal(r2.unrefs, 1);
}

static void test_consume_exact_entry_boundary(void **state)
{
	struct ref r = {0, "xyz"};
	struct outq q;
	struct iovec iov[4];

	outq_init(&q, ref_unref);
	assert_int_equal(outq_append(&q, "ab", 2), 0);
	assert_int_equal(outq_append_ref(&q, &r, r.bytes, 3), 0);
	assert_int_equal(outq_append(&q, "cd", 2), 0);
	outq_consume(&q, 2);
	assert_int_equal(r.unrefs, 0);
	assert_int_equal(outq_iov(&q, iov, 4), 2);
	assert_iov(&iov[0], "xyz");
	outq_consume(&q, 3);
	assert_int_equal(r.unrefs, 1);
	assert_int_equal(outq_iov(&q, iov, 4), 1);
	assert_iov(&iov[0], "cd");
	outq_free(&q);
	assert_int_equal(r.unrefs, 1);
}

static void test_append_ref_empty(void **state)
{
	struct ref r = {0, ""};
	struct outq q;
	struct iovec iov[2];

	outq_init(&q, ref_unref);
	/* An empty range is not queued, but the reference is still taken. */
	assert_int_equal(outq_append_ref(&q, &r, r.bytes, 0), 0);
	assert_int_equal(r.unrefs, 1);
	assert_int_equal(outq_iov(&q, iov, 2), 0);
	assert_int_equal(q.bytes, 0);
	outq_free(&q);
	assert_int_equal(r.unrefs, 1);
}

static void test_free_releases_pending(void **state)
{
	struct ref refs[40];
	struct outq q;
	int i;

	memset(refs, 0, sizeof(refs));
	outq_init(&q, ref_unref);
	for (i = 0; i < 40; i++) {
		refs[i].bytes = "data";
		assert_int_equal(outq_append(&q, "h", 1), 0);
		assert_int_equal(outq_append_ref(&q, &refs[i], "data", 4), 0);
	}
	/* Writes the first 10 (h + data) pairs. */
	outq_consume(&q, 10 * 5);
	for (i = 0; i < 40; i++)
		assert_int_equal(refs[i].unrefs, i < 10 ? 1 : 0);
	outq_free(&q);
	for (i = 0; i < 40; i++)
		assert_int_equal(refs[i].unrefs, 1);
	/* outq_free leaves an empty queue that can be freed again. */
	outq_free(&q);
	for (i = 0; i < 40; i++)
		assert_int_equal(refs[i].unrefs, 1);
}

static void test_rewind_on_drain(void **state)
{
	struct outq q;
	struct iovec iov[2];

	outq_init(&q, NULL);
	assert_int_equal(outq_append(&q, "0123456789", 10), 0);
	outq_consume(&q, 4);
	assert_int_equal(q.arena_len, 10);
	outq_consume(&q, 6);
	assert_int_equal(q.arena_len, 0);
	assert_int_equal(q.head, 0);
	assert_int_equal(q.tail, 0);
	assert_int_equal(outq_append(&q, "new", 3), 0);
	assert_int_equal(outq_iov(&q, iov, 2), 1);
	assert_iov(&iov[0], "new");
	assert_ptr_equal(iov[0].iov_base, q.arena);
	outq_free(&q);
}

/*
 * Entries slide down when the head has advanced far: a queue with many
 * entries written from the front keeps its order.
 */
static void test_entry_array_reuse(void **state)
{
	static const char digits[] = "0123456789";
	struct ref r = {0, digits};
	struct outq q;
	struct iovec iov[64];
	int i, n, round, next_in = 0, next_out = 0;

	outq_init(&q, ref_unref);
	for (round = 0; round < 50; round++) {
		for (i = 0; i < 12; i++, next_in++)
			assert_int_equal(outq_append_ref(&q, &r,
			                                 digits + next_in % 10,
			                                 1),
			                 0);
		/* Write 11 of them: one stays behind each round. */
		n = outq_iov(&q, iov, 64);
		assert_true(n >= 11);
		for (i = 0; i < n; i++)
			assert_int_equal(*(const char *)iov[i].iov_base,
			                 digits[(next_out + i) % 10]);
		outq_consume(&q, 11);
		next_out += 11;
	}
	assert_int_equal(r.unrefs, next_out);
	assert_int_equal(q.bytes, (size_t)(next_in - next_out));
	assert_true(q.cap <= 128);
	outq_free(&q);
	assert_int_equal(r.unrefs, next_in);
}

/*
 * A queue that never fully drains: every round appends a record and writes
 * a little less than what is pending, so the arena never rewinds. The
 * pending bytes must stay intact and the arena must stay bounded.
 */
static void test_never_drains(void **state)
{
	static uint8_t model[1 << 16], got[1 << 16];
	struct ref r = {0, "REF"};
	size_t mlen = 0, max_cap = 0;
	uint32_t seq = 0;
	struct outq q;
	int round;

	outq_init(&q, ref_unref);
	for (round = 0; round < 20000; round++) {
		uint8_t rec[300];
		size_t n = 50 + (size_t)(round * 7919) % 250, i, w, got_len;

		for (i = 0; i < n; i++)
			rec[i] = (uint8_t)(seq++ * 31 + 7);
		assert_int_equal(outq_append(&q, rec, n), 0);
		memcpy(model + mlen, rec, n);
		mlen += n;
		if (round % 5 == 0) {
			assert_int_equal(outq_append_ref(&q, &r, r.bytes, 3),
			                 0);
			memcpy(model + mlen, "REF", 3);
			mlen += 3;
		}
		/* Write all but a few bytes (varying), never everything. */
		w = mlen - 1 - (size_t)(round * 131) % (mlen < 40 ? mlen : 40);
		outq_consume(&q, w);
		memmove(model, model + w, mlen - w);
		mlen -= w;
		assert_int_equal(q.bytes, mlen);
		got_len = flatten(&q, got, sizeof(got));
		assert_int_equal(got_len, mlen);
		assert_memory_equal(got, model, mlen);
		if (q.arena_cap > max_cap)
			max_cap = q.arena_cap;
	}
	/* Compaction starts at 64 KiB of dead bytes; allow one doubling. */
	assert_true(max_cap <= 256 * 1024);
	outq_free(&q);
	assert_int_equal(r.unrefs, 20000 / 5);
}

/* The same with only arena appends, written in small chunks. */
static void test_never_drains_arena_only(void **state)
{
	static uint8_t got[1 << 16];
	struct outq q;
	uint32_t in = 0, out = 0;
	size_t max_cap = 0, i, len;
	int round;

	outq_init(&q, NULL);
	for (round = 0; round < 20000; round++) {
		uint8_t rec[100];

		for (i = 0; i < sizeof(rec); i++)
			rec[i] = (uint8_t)(in++ % 251);
		assert_int_equal(outq_append(&q, rec, sizeof(rec)), 0);
		/* Leave 1..100 bytes pending each time. */
		outq_consume(&q, q.bytes - 1 - (size_t)round % 100);
		out = in - (uint32_t)q.bytes;
		len = flatten(&q, got, sizeof(got));
		assert_int_equal(len, q.bytes);
		for (i = 0; i < len; i++)
			assert_int_equal(got[i], (out + i) % 251);
		if (q.arena_cap > max_cap)
			max_cap = q.arena_cap;
	}
	assert_true(max_cap <= 256 * 1024);
	outq_free(&q);
}

/*
 * Replacing the unframed tail (a compressed WebSocket message): the
 * replaced references are released once, the arena bytes they used are
 * reused, and later appends start a new unframed run.
 */
static void test_replace_unframed(void **state)
{
	struct ref r1 = {0, "PAYLOAD"}, r2 = {0, "REF"};
	uint8_t got[64];
	struct iovec iov[8];
	struct outq q;
	size_t arena_before;

	outq_init(&q, ref_unref);
	q.framing = 1;
	assert_int_equal(outq_append(&q, "H0", 2), 0);
	assert_int_equal(outq_frame(&q, (const uint8_t *)"F", 1), 0);
	arena_before = q.arena_len;
	/* Nothing unframed: nothing to replace. */
	assert_int_equal(outq_unframed_iov(&q, 0, iov, 8), 0);
	assert_int_equal(
	        outq_replace_unframed(&q, (const uint8_t *)"?", 1, "?", 1), 0);
	assert_int_equal(q.bytes, 3);

	assert_int_equal(outq_append(&q, "ab", 2), 0);
	assert_int_equal(outq_append_ref(&q, &r1, r1.bytes, 7), 0);
	assert_int_equal(outq_append(&q, "cd", 2), 0);
	assert_int_equal(outq_unframed_iov(&q, 0, iov, 8), 3);
	assert_iov(&iov[0], "ab");
	assert_iov(&iov[1], "PAYLOAD");
	assert_iov(&iov[2], "cd");
	assert_int_equal(outq_unframed_iov(&q, 1, iov, 1), 1);
	assert_iov(&iov[0], "PAYLOAD");
	assert_int_equal(outq_unframed_iov(&q, 3, iov, 8), 0);

	assert_int_equal(
	        outq_replace_unframed(&q, (const uint8_t *)"Z", 1, "xyz", 3),
	        0);
	assert_int_equal(r1.unrefs, 1);
	assert_int_equal(q.unframed_bytes, 0);
	assert_int_equal(q.unframed_ents, 0);
	assert_int_equal(q.bytes, 3 + 4);
	/* "ab" and "cd" gave their arena bytes to "Zxyz". */
	assert_int_equal(q.arena_len, arena_before + 4);
	assert_int_equal(flatten(&q, got, sizeof(got)), 7);
	assert_memory_equal(got, "FH0Zxyz", 7);

	/* Appends after it are a new unframed run, not merged into it. */
	assert_int_equal(outq_append(&q, "ef", 2), 0);
	assert_int_equal(q.unframed_bytes, 2);
	assert_int_equal(outq_frame(&q, (const uint8_t *)"G", 1), 0);
	assert_int_equal(flatten(&q, got, sizeof(got)), 10);
	assert_memory_equal(got, "FH0ZxyzGef", 10);

	/* Only references unframed: the replacement goes at the arena's
	 * end; a partial write before it does not matter. */
	outq_consume(&q, 4);
	assert_int_equal(outq_append_ref(&q, &r2, r2.bytes, 3), 0);
	arena_before = q.arena_len;
	assert_int_equal(
	        outq_replace_unframed(&q, (const uint8_t *)"Y", 1, "", 0), 0);
	assert_int_equal(r2.unrefs, 1);
	assert_int_equal(q.arena_len, arena_before + 1);
	assert_int_equal(flatten(&q, got, sizeof(got)), 7);
	assert_memory_equal(got, "xyzGefY", 7);
	outq_consume(&q, 7);
	assert_int_equal(q.bytes, 0);
	assert_int_equal(q.arena_len, 0);
	outq_free(&q);
	assert_int_equal(r1.unrefs, 1);
	assert_int_equal(r2.unrefs, 1);
}

/* A replacement larger than the arena makes it grow. */
static void test_replace_unframed_grows(void **state)
{
	static uint8_t big[20000], got[20100];
	struct outq q;

	memset(big, 'b', sizeof(big));
	outq_init(&q, ref_unref);
	q.framing = 1;
	assert_int_equal(outq_append(&q, "x", 1), 0);
	assert_int_equal(outq_replace_unframed(&q, (const uint8_t *)"HH", 2,
	                                       big, sizeof(big)),
	                 0);
	assert_true(q.arena_cap >= sizeof(big) + 2);
	assert_int_equal(flatten(&q, got, sizeof(got)), sizeof(big) + 2);
	assert_memory_equal(got, "HH", 2);
	assert_memory_equal(got + 2, big, sizeof(big));
	outq_free(&q);
}

/* outq_shrink frees everything of an empty queue, and nothing of a
 * queue with pending bytes; the queue works normally afterwards. */
static void test_shrink(void **state)
{
	struct outq q;
	struct iovec iov[4];

	(void)state;
	outq_init(&q, NULL);
	assert_int_equal(outq_append(&q, "abc", 3), 0);
	outq_shrink(&q);
	assert_non_null(q.arena); /* pending: kept */
	assert_int_equal(q.bytes, 3);
	outq_consume(&q, 3);
	outq_shrink(&q);
	assert_null(q.arena);
	assert_null(q.ents);
	assert_int_equal(q.arena_cap, 0);
	assert_int_equal(outq_append(&q, "xy", 2), 0);
	assert_int_equal(outq_iov(&q, iov, 4), 1);
	assert_memory_equal(iov[0].iov_base, "xy", 2);
	outq_free(&q);
}

/* A drained queue recycles first-size buffers into its pool and the next
 * queue takes those same buffers (no malloc); grown buffers stay with their
 * queue until outq_shrink, which frees them; a full pool frees the rest;
 * outq_free gives buffers back too. */
static void test_pool(void **state)
{
	struct outq_pool pool;
	struct outq a, b, c;
	struct iovec iov[4];
	void *ents, *arena;
	uint8_t big[OUTQ_ARENA0 + 1];

	(void)state;
	outq_pool_init(&pool, 1);
	outq_init(&a, NULL);
	a.pool = &pool;
	outq_init(&b, NULL);
	b.pool = &pool;
	outq_init(&c, NULL);
	c.pool = &pool;

	assert_int_equal(outq_append(&a, "abc", 3), 0);
	ents = a.ents;
	arena = a.arena;
	outq_recycle(&a); /* pending: kept */
	assert_ptr_equal(a.arena, arena);
	outq_consume(&a, 3);
	outq_recycle(&a);
	assert_null(a.arena);
	assert_null(a.ents);
	assert_int_equal(pool.nents, 1);
	assert_int_equal(pool.narenas, 1);

	/* b takes a's buffers and works as usual. */
	assert_int_equal(outq_append(&b, "xy", 2), 0);
	assert_ptr_equal(b.ents, ents);
	assert_ptr_equal(b.arena, arena);
	assert_int_equal(b.cap, OUTQ_ENTS0);
	assert_int_equal(b.arena_cap, OUTQ_ARENA0);
	assert_int_equal(pool.nents, 0);
	assert_int_equal(pool.narenas, 0);
	assert_int_equal(outq_iov(&b, iov, 4), 1);
	assert_memory_equal(iov[0].iov_base, "xy", 2);

	/* c needs more than a first-size arena: from malloc, never pooled
	 * by recycle, freed by shrink. */
	memset(big, 'z', sizeof(big));
	assert_int_equal(outq_append(&c, big, sizeof(big)), 0);
	assert_true(c.arena_cap > OUTQ_ARENA0);
	outq_consume(&c, sizeof(big));
	outq_recycle(&c);
	assert_non_null(c.arena);
	assert_int_equal(pool.narenas, 0);
	assert_int_equal(pool.nents, 1); /* c's first-size entries */
	outq_shrink(&c);
	assert_null(c.arena);
	assert_int_equal(pool.narenas, 0);

	/* The pool keeps one of each: b's entries go to malloc, its arena to
	 * the pool, when b is freed. */
	outq_free(&b);
	assert_int_equal(pool.nents, 1);
	assert_int_equal(pool.narenas, 1);
	assert_ptr_equal(b.pool, &pool);
	outq_free(&a);
	outq_free(&c);
	outq_pool_free(&pool);
	assert_int_equal(pool.nents, 0);
	assert_int_equal(pool.narenas, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_iov_order_and_merge),
	        cmocka_unit_test(test_reserve_commit),
	        cmocka_unit_test(test_partial_consume),
	        cmocka_unit_test(test_consume_exact_entry_boundary),
	        cmocka_unit_test(test_append_ref_empty),
	        cmocka_unit_test(test_free_releases_pending),
	        cmocka_unit_test(test_rewind_on_drain),
	        cmocka_unit_test(test_entry_array_reuse),
	        cmocka_unit_test(test_never_drains),
	        cmocka_unit_test(test_never_drains_arena_only),
	        cmocka_unit_test(test_replace_unframed),
	        cmocka_unit_test(test_replace_unframed_grows),
	        cmocka_unit_test(test_shrink),
	        cmocka_unit_test(test_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
