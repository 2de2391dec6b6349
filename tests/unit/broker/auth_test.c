/*
 * Tests of the auth snapshot (src/broker/auth.c) built from parsed
 * configurations: one shared set without per_listener_settings, one set per
 * listener with it (default listeners on the global set), anonymous access
 * per listener, ACL checks per listener, the rules for a client whose
 * listener is unknown (every listener must allow), $SYS never writable, a
 * broken file naming its listener, and a NULL snapshot refusing all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/config.h"

static char dir[] = "/tmp/tern-auth-test-XXXXXX";
static char acl_a[300], acl_b[300], broken[300];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(acl_a, sizeof(acl_a), "%s/a.acl", dir);
	snprintf(acl_b, sizeof(acl_b), "%s/b.acl", dir);
	snprintf(broken, sizeof(broken), "%s/broken.acl", dir);
	write_file(acl_a, "topic readwrite a/#\ntopic read shared/#\n");
	write_file(acl_b, "topic readwrite b/#\ntopic read shared/#\n");
	write_file(broken, "topic bogus x\n");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(acl_a);
	unlink(acl_b);
	unlink(broken);
	rmdir(dir);
	return 0;
}

/* Parses text (with %s replaced by the two ACL paths), adds a listener
 * on `port` as -p does (0: none), finishes it and loads its snapshot. */
static struct auth *load(struct config *c, const char *fmt, uint16_t port)
{
	char text[2048], err[512] = "";
	struct auth *a = NULL;

	snprintf(text, sizeof(text), fmt, acl_a, acl_b);
	config_init(c);
	assert_int_equal(config_parse(c, text, "t.conf", err, sizeof(err)), 0);
	if (port)
		assert_int_equal(config_add_listener(c, port, NULL), 0);
	assert_int_equal(config_finish(c), 0);
	if (auth_load(c, &a, err, sizeof(err)) != 0)
		print_error("auth_load: %s\n", err);
	assert_non_null(a);
	return a;
}

static bool allows(const struct auth *a, size_t l, const char *topic,
                   int access)
{
	return auth_allows(a, l, "cid", NULL, topic, strlen(topic), access);
}

static enum auth_result anon(const struct auth *a, size_t l)
{
	return auth_connect(a, l, NULL, NULL, 0, false);
}

static void test_shared_set(void **state)
{
	struct config c;
	struct auth *a;

	(void)state;
	a = load(&c,
	         "listener 1\nacl_file %s\nlistener 2\n"
	         "allow_anonymous true\n",
	         0);
	assert_int_equal(a->nsecs, 1);
	assert_ptr_equal(auth_listener(a, 0), auth_listener(a, 1));
	assert_int_equal(anon(a, 0), AUTH_OK);
	assert_int_equal(anon(a, 1), AUTH_OK);
	assert_true(allows(a, 1, "a/x", ACL_WRITE));
	assert_false(allows(a, 0, "b/x", ACL_WRITE));
	assert_true(allows(a, AUTH_ANY_LISTENER, "a/x", ACL_WRITE));
	auth_unref(a);
	config_free(&c);
}

static void test_per_listener(void **state)
{
	struct config c;
	struct auth *a;

	(void)state;
	/* Listener 0: ACL a, anonymous refused (unset); listener 1: ACL b,
	 * anonymous allowed; listener 2 (-p style, no listener line): the
	 * global set, which allows anonymous and has no ACL. */
	a = load(&c,
	         "per_listener_settings true\nallow_anonymous true\n"
	         "listener 1\nacl_file %s\n"
	         "listener 2\nacl_file %s\nallow_anonymous true\n",
	         3);
	assert_int_equal(a->nsecs, 3);
	assert_int_equal(anon(a, 0), AUTH_NOT_AUTHORIZED);
	assert_int_equal(anon(a, 1), AUTH_OK);
	assert_int_equal(anon(a, 2), AUTH_OK);
	/* Each listener's ACL. */
	assert_true(allows(a, 0, "a/x", ACL_WRITE));
	assert_false(allows(a, 0, "b/x", ACL_WRITE));
	assert_true(allows(a, 1, "b/x", ACL_WRITE));
	assert_false(allows(a, 1, "a/x", ACL_READ));
	assert_true(allows(a, 2, "anything", ACL_WRITE));
	/* Unknown listener: only what every listener allows. */
	assert_true(allows(a, AUTH_ANY_LISTENER, "shared/x", ACL_READ));
	assert_false(allows(a, AUTH_ANY_LISTENER, "a/x", ACL_READ));
	assert_false(allows(a, AUTH_ANY_LISTENER, "b/x", ACL_READ));
	/* $SYS is global: not writable anywhere, even without an ACL. */
	assert_false(allows(a, 2, "$SYS/x", ACL_WRITE));
	assert_false(allows(a, 1, "$SYS", ACL_WRITE));
	/* Past the listeners: the global set. */
	assert_ptr_equal(auth_listener(a, 99), &a->secs[0]);
	auth_unref(a);
	config_free(&c);
}

static void test_broken_file_names_listener(void **state)
{
	struct config c;
	struct auth *a = NULL;
	char text[1024], err[512] = "", want[400];

	(void)state;
	snprintf(text, sizeof(text),
	         "per_listener_settings true\nlistener 1\nacl_file %s\n"
	         "listener 7\nacl_file %s\n",
	         acl_a, broken);
	config_init(&c);
	assert_int_equal(config_parse(&c, text, "t.conf", err, sizeof(err)), 0);
	assert_int_equal(config_finish(&c), 0);
	assert_int_equal(auth_load(&c, &a, err, sizeof(err)), TERN_ECONFIG);
	assert_null(a);
	snprintf(want, sizeof(want), "listener 7: %s:1:", broken);
	if (strncmp(err, want, strlen(want)) != 0)
		print_error("err '%s', want prefix '%s'\n", err, want);
	assert_int_equal(strncmp(err, want, strlen(want)), 0);
	config_free(&c);
}

static void test_null_snapshot(void **state)
{
	(void)state;
	assert_false(allows(NULL, 0, "a", ACL_READ));
	assert_int_equal(anon(NULL, 0), AUTH_NOT_AUTHORIZED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_shared_set),
	        cmocka_unit_test(test_per_listener),
	        cmocka_unit_test(test_broken_file_names_listener),
	        cmocka_unit_test(test_null_snapshot),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
