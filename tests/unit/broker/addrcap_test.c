/*
 * Tests of the per-address connection counts (src/broker/addrcap.c): the
 * limit per address, independence of addresses (also ones sharing a
 * bucket), forgetting an address at zero, release of unknown addresses,
 * and a limit of 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <stdio.h>

#include "broker/addrcap.h"

static void test_limit_per_address(void **state)
{
	struct addrcap *a = addrcap_new();

	(void)state;
	assert_non_null(a);
	for (int i = 0; i < 3; i++)
		assert_true(addrcap_take(a, "192.0.2.1", 3));
	assert_false(addrcap_take(a, "192.0.2.1", 3));
	assert_int_equal(addrcap_count(a, "192.0.2.1"), 3);
	/* Another address has its own count. */
	assert_true(addrcap_take(a, "2001:db8::1", 3));
	assert_int_equal(addrcap_count(a, "2001:db8::1"), 1);
	addrcap_release(a, "192.0.2.1");
	assert_true(addrcap_take(a, "192.0.2.1", 3));
	assert_false(addrcap_take(a, "192.0.2.1", 3));
	addrcap_free(a);
}

static void test_forget_at_zero(void **state)
{
	struct addrcap *a = addrcap_new();

	(void)state;
	assert_true(addrcap_take(a, "10.0.0.1", 1));
	addrcap_release(a, "10.0.0.1");
	assert_int_equal(addrcap_count(a, "10.0.0.1"), 0);
	/* Releasing more than was taken, or an unknown address, is ignored
	 * and does not make room beyond the limit. */
	addrcap_release(a, "10.0.0.1");
	addrcap_release(a, "10.9.9.9");
	assert_true(addrcap_take(a, "10.0.0.1", 1));
	assert_false(addrcap_take(a, "10.0.0.1", 1));
	addrcap_free(a);
}

static void test_many_addresses(void **state)
{
	struct addrcap *a = addrcap_new();
	char addr[32];

	(void)state;
	/* More addresses than buckets: chains must keep them apart. */
	for (int i = 0; i < 10000; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		         (i >> 8) & 255, i & 255);
		assert_true(addrcap_take(a, addr, 2));
		assert_true(addrcap_take(a, addr, 2));
		assert_false(addrcap_take(a, addr, 2));
	}
	for (int i = 0; i < 10000; i += 2) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		         (i >> 8) & 255, i & 255);
		addrcap_release(a, addr);
		addrcap_release(a, addr);
		assert_int_equal(addrcap_count(a, addr), 0);
	}
	assert_int_equal(addrcap_count(a, "10.0.0.1"), 2);
	addrcap_free(a);
}

static void test_zero_limit(void **state)
{
	struct addrcap *a = addrcap_new();

	(void)state;
	assert_false(addrcap_take(a, "127.0.0.1", 0));
	assert_int_equal(addrcap_count(a, "127.0.0.1"), 0);
	addrcap_free(a);
	addrcap_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_limit_per_address),
	        cmocka_unit_test(test_forget_at_zero),
	        cmocka_unit_test(test_many_addresses),
	        cmocka_unit_test(test_zero_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
