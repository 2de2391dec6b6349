/*
 * Tests for src/client/backoff.c: every delay lies in [base/2, base] where
 * base grows by the factor from the initial delay up to the cap, the
 * jitter really spreads the delays, and 0 turns reconnecting off.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdbool.h>

#include "client/backoff.h"

static uint32_t rng = 0x9E3779B9u;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void test_bounds(void **state)
{
	struct backoff b = {.initial_ms = 100, .max_ms = 3000, .factor = 2.0};
	/* 100, 200, 400, 800, 1600, 3000 (capped), 3000, ... */
	static const uint32_t base[] = {100,  200,  400,  800,
	                                1600, 3000, 3000, 3000};

	(void)state;
	for (unsigned n = 0; n < sizeof(base) / sizeof(base[0]); n++) {
		uint32_t lo = UINT32_MAX, hi = 0;

		for (int i = 0; i < 2000; i++) {
			uint32_t d = backoff_delay(&b, n, next());

			if (d < base[n] / 2 || d > base[n])
				fail_msg(
				        "attempt %u: delay %u outside [%u, %u]",
				        n, d, base[n] / 2, base[n]);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		/* Jitter: the delays spread over most of the range. */
		if (hi - lo < base[n] / 4)
			fail_msg("attempt %u: delays %u..%u barely spread", n,
			         lo, hi);
	}
	/* Extremes of the random input stay within bounds. */
	assert_int_equal(backoff_delay(&b, 0, 0), 50);
	assert_true(backoff_delay(&b, 0, UINT32_MAX) <= 100);
	assert_true(backoff_delay(&b, 1000000, UINT32_MAX) <= 3000);
}

static void test_factor_and_off(void **state)
{
	struct backoff flat = {.initial_ms = 500, .max_ms = 10000, .factor = 1};
	struct backoff off = {.initial_ms = 0, .max_ms = 10000, .factor = 2};
	struct backoff slow = {.initial_ms = 1000, .max_ms = 500, .factor = 2};

	(void)state;
	for (unsigned n = 0; n < 50; n++) {
		uint32_t d = backoff_delay(&flat, n, next());

		assert_true(d >= 250 && d <= 500);
		assert_int_equal(backoff_delay(&off, n, next()), 0);
		/* A cap below the initial delay wins. */
		assert_true(backoff_delay(&slow, n, next()) <= 500);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_bounds),
	        cmocka_unit_test(test_factor_and_off),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
