/*
 * Tests for src/base/tbucket.c: a full bucket gives one second's worth at
 * once; after that takes pass at the rate and the wait returned is the time
 * the debt needs; a take larger than the burst passes once and is paid by
 * waiting; refill stops at the burst however long the quiet; a clock going
 * backwards earns nothing; rate 0 is unlimited.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "base/tbucket.h"

static void test_burst_then_rate(void **state)
{
	struct tbucket t;
	uint64_t now = 5000;
	int i;

	(void)state;
	tbucket_init(&t, 200, now);
	/* One second's worth passes without waiting... */
	for (i = 0; i < 200; i++)
		assert_int_equal(tbucket_take(&t, 1, now), 0);
	/* ...the next one is a token short: 1000 / 200 = 5 ms. */
	assert_int_equal(tbucket_take(&t, 1, now), 5);
	/* 5 ms later the debt is paid; the next take owes 5 ms again. */
	now += 5;
	assert_int_equal(tbucket_take(&t, 1, now), 5);
	now += 4;
	/* 4 ms earned 0.8 token: still 1.2 tokens short, 6 ms. */
	assert_int_equal(tbucket_take(&t, 1, now), 6);
}

static void test_sustained_rate(void **state)
{
	struct tbucket t;
	uint64_t now = 0, taken = 0;

	(void)state;
	tbucket_init(&t, 200, now);
	/* A client that sends whenever allowed for 10 s gets the burst plus
	 * 10 s at the rate, within one token. */
	while (now < 10000) {
		uint64_t wait = tbucket_take(&t, 1, now);

		taken++;
		now += wait;
	}
	assert_in_range(taken, 200 + 2000 - 1, 200 + 2000 + 1);
}

static void test_bytes_larger_than_burst(void **state)
{
	struct tbucket t;

	(void)state;
	tbucket_init(&t, 1000, 0);
	/* 3000 bytes at 1000/s: passes, then 2 s of debt. */
	assert_int_equal(tbucket_take(&t, 3000, 0), 2000);
	assert_int_equal(tbucket_take(&t, 0, 1999), 1);
	assert_int_equal(tbucket_take(&t, 0, 2000), 0);
}

static void test_refill_capped(void **state)
{
	struct tbucket t;
	int i;

	(void)state;
	tbucket_init(&t, 10, 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(tbucket_take(&t, 1, 0), 0);
	/* An hour of quiet still earns only one second's worth. */
	for (i = 0; i < 10; i++)
		assert_int_equal(tbucket_take(&t, 1, 3600000), 0);
	assert_int_equal(tbucket_take(&t, 1, 3600000), 100);
	/* The largest rate and a huge gap do not overflow. */
	tbucket_init(&t, UINT64_MAX, 0);
	assert_int_equal(t.rate, TBUCKET_RATE_MAX);
	assert_int_equal(tbucket_take(&t, TBUCKET_RATE_MAX, 0), 0);
	assert_int_equal(tbucket_take(&t, TBUCKET_RATE_MAX, UINT64_MAX), 0);
}

static void test_clock_backwards(void **state)
{
	struct tbucket t;

	(void)state;
	tbucket_init(&t, 1, 1000);
	assert_int_equal(tbucket_take(&t, 1, 1000), 0);
	assert_int_equal(tbucket_take(&t, 1, 1000), 1000);
	/* An earlier time earns nothing and does not reset last_ms. */
	assert_int_equal(tbucket_take(&t, 0, 500), 1000);
	assert_int_equal(tbucket_take(&t, 0, 2000), 0);
}

static void test_unlimited(void **state)
{
	struct tbucket t;
	int i;

	(void)state;
	tbucket_init(&t, 0, 0);
	for (i = 0; i < 100000; i++)
		assert_int_equal(tbucket_take(&t, 1u << 20, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_burst_then_rate),
	        cmocka_unit_test(test_sustained_rate),
	        cmocka_unit_test(test_bytes_larger_than_burst),
	        cmocka_unit_test(test_refill_capped),
	        cmocka_unit_test(test_clock_backwards),
	        cmocka_unit_test(test_unlimited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
