/*
 * Tests of the logger (src/base/log.c) writing to a file: lines carry the
 * configured timestamp prefix (none, Unix seconds, strftime), types outside
 * the mask are dropped and log_enabled agrees, long lines are truncated to
 * one line, a failed reconfigure keeps the old settings, and lines written
 * from several threads never interleave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

static char dir[64], path[128];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/tern-log-test-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/t.log", dir);
	return 0;
}

static int teardown(void **state)
{
	log_shutdown();
	/* Nothing more to the file, and nothing to stderr either. */
	log_configure(0, NULL, 0, NULL, 0);
	unlink(path);
	rmdir(dir);
	return 0;
}

/* Reads the whole log file into a malloc'd NUL-terminated string. */
static char *slurp(void)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_no_timestamps_and_filter(void **state)
{
	char *got;

	unlink(path);
	assert_int_equal(
	        log_configure(LOG_TO_FILE, path, LOG_ERR | LOG_NOTICE, NULL, 0),
	        0);
	assert_true(log_enabled(LOG_ERR));
	assert_true(log_enabled(LOG_NOTICE));
	assert_false(log_enabled(LOG_INFO));
	assert_false(log_enabled(LOG_DEBUG));
	assert_false(log_enabled(LOG_SUBSCRIBE));

	log_msg(LOG_ERR, "first %d", 1);
	log_msg(LOG_DEBUG, "hidden debug");
	log_msg(LOG_INFO, "hidden info");
	log_msg(LOG_NOTICE, "second %s", "two");
	log_msg(LOG_UNSUBSCRIBE, "hidden unsubscribe");
	got = slurp();
	assert_string_equal(got, "first 1\nsecond two\n");
	free(got);

	/* Reconfiguring changes the mask and appends to the file. */
	assert_int_equal(log_configure(LOG_TO_FILE, path,
	                               LOG_DEBUG | LOG_SUBSCRIBE, NULL, 0),
	                 0);
	assert_false(log_enabled(LOG_ERR));
	assert_true(log_enabled(LOG_SUBSCRIBE));
	log_msg(LOG_ERR, "now hidden");
	log_msg(LOG_SUBSCRIBE, "sub");
	log_msg(LOG_DEBUG, "dbg");
	got = slurp();
	assert_string_equal(got, "first 1\nsecond two\nsub\ndbg\n");
	free(got);
}

static void test_unix_timestamp(void **state)
{
	long long t0, t1, ts;
	char *got, *end;

	unlink(path);
	assert_int_equal(log_configure(LOG_TO_FILE, path, LOG_INFO, NULL, 1),
	                 0);
	t0 = (long long)time(NULL);
	log_msg(LOG_INFO, "New client connected from %s", "127.0.0.1:5000");
	t1 = (long long)time(NULL);
	got = slurp();
	ts = strtoll(got, &end, 10);
	assert_true(end > got);
	assert_true(ts >= t0 && ts <= t1);
	assert_string_equal(end,
	                    ": New client connected from 127.0.0.1:5000\n");
	free(got);
}

static void test_strftime_timestamp(void **state)
{
	char want0[64], want1[64];
	struct tm tm;
	time_t t0, t1;
	char *got;

	unlink(path);
	assert_int_equal(
	        log_configure(LOG_TO_FILE, path, LOG_WARNING, "%Y-%m-%dT%H", 1),
	        0);
	t0 = time(NULL);
	log_msg(LOG_WARNING, "disk %d%% full", 99);
	t1 = time(NULL);
	localtime_r(&t0, &tm);
	strftime(want0, sizeof(want0), "%Y-%m-%dT%H: disk 99%% full\n", &tm);
	localtime_r(&t1, &tm);
	strftime(want1, sizeof(want1), "%Y-%m-%dT%H: disk 99%% full\n", &tm);
	got = slurp();
	/* The hour may roll over between the two clock reads. */
	if (strcmp(got, want0) != 0)
		assert_string_equal(got, want1);
	free(got);
}

static void test_long_line_truncated(void **state)
{
	char *big = malloc(5000), *got, *after;
	size_t len, i;

	assert_non_null(big);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	unlink(path);
	assert_int_equal(log_configure(LOG_TO_FILE, path, LOG_ERR, NULL, 1), 0);
	log_msg(LOG_ERR, "%s", big);
	log_msg(LOG_ERR, "after");
	got = slurp();
	/* One line of at most 2 KiB, then the next line intact. */
	len = strcspn(got, "\n");
	assert_true(len > 1000 && len < 2048);
	for (i = strcspn(got, " ") + 1; i < len; i++)
		assert_int_equal(got[i], 'x');
	after = strstr(got + len + 1, ": after\n");
	assert_non_null(after);
	assert_string_equal(after, ": after\n"); /* and nothing more */
	free(got);
	free(big);
}

static void test_failed_configure_keeps_settings(void **state)
{
	char bad[160], *got;

	unlink(path);
	assert_int_equal(log_configure(LOG_TO_FILE, path, LOG_ERR, NULL, 0), 0);
	snprintf(bad, sizeof(bad), "%s/missing/dir/x.log", dir);
	assert_int_equal(log_configure(LOG_TO_FILE, bad, LOG_DEBUG, NULL, 0),
	                 -1);
	assert_true(log_enabled(LOG_ERR));
	assert_false(log_enabled(LOG_DEBUG));
	log_msg(LOG_ERR, "still here");
	got = slurp();
	assert_string_equal(got, "still here\n");
	free(got);

	/* After log_shutdown, file lines go nowhere (and nothing breaks). */
	log_shutdown();
	log_msg(LOG_ERR, "dropped");
	got = slurp();
	assert_string_equal(got, "still here\n");
	free(got);
}

enum { NTHREADS = 4, NLINES = 500 };

static void *writer(void *arg)
{
	int id = (int)(intptr_t)arg, i;

	for (i = 0; i < NLINES; i++)
		log_msg(LOG_INFO, "thread %d line %d %s", id, i,
		        "padding-padding-padding-padding-padding-padding");
	return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
	pthread_t th[NTHREADS];
	int seen[NTHREADS] = {0}, i, lines = 0;
	char *got, *line, *save = NULL;

	unlink(path);
	assert_int_equal(log_configure(LOG_TO_FILE, path, LOG_INFO, NULL, 0),
	                 0);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer,
		                                (void *)(intptr_t)i),
		                 0);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	got = slurp();
	for (line = strtok_r(got, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		int id, n, end = 0;

		assert_int_equal(sscanf(line,
		                        "thread %d line %d "
		                        "padding-padding-padding-padding-"
		                        "padding-padding%n",
		                        &id, &n, &end),
		                 2);
		assert_int_equal((size_t)end, strlen(line));
		assert_true(id >= 0 && id < NTHREADS);
		/* Each thread's lines appear in its own order. */
		assert_int_equal(n, seen[id]);
		seen[id]++;
		lines++;
	}
	assert_int_equal(lines, NTHREADS * NLINES);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_no_timestamps_and_filter),
	        cmocka_unit_test(test_unix_timestamp),
	        cmocka_unit_test(test_strftime_timestamp),
	        cmocka_unit_test(test_long_line_truncated),
	        cmocka_unit_test(test_failed_configure_keeps_settings),
	        cmocka_unit_test(test_threads_do_not_interleave),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
