/*
 * Tests of the SQLite store (src/store/store.c): creating, reopening and
 * migrating the schema (from a v1 file made here with the v1 SQL); a
 * round trip of every record kind; the ordering
 * rules (queue rows by seq, retained writes by seq, message garbage
 * collection); and files that must be refused with a clear error, never a
 * crash: truncated, random bytes, another SQLite database, a newer schema,
 * an empty file. STORE_OPEN_MOVE_BAD moves a bad file aside.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/tern-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/tern.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *e;
	char p[512];

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct store *open_ok(const char *path)
{
	struct store *st = NULL;
	char err[512] = "";
	int rc = store_open(path, 0, &st, err, sizeof(err));

	if (rc != 0)
		fail_msg("store_open(%s) = %d: %s", path, rc, err);
	return st;
}

#define B(s) (const uint8_t *)(s), strlen(s)

/* What a load saw, as text lines, for simple comparisons. */
struct seen {
	char lines[64][160];
	int n;
};

static void seen_add(struct seen *s, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void seen_add(struct seen *s, const char *fmt, ...)
{
	va_list ap;

	if (s->n >= 64)
		return;
	va_start(ap, fmt);
	vsnprintf(s->lines[s->n++], 160, fmt, ap);
	va_end(ap);
}

static int v_session(void *ctx, const struct store_session *x)
{
	seen_add(ctx, "session %.*s v%u e%u off%lld wd%u will%zu",
	         (int)x->client_id_len, x->client_id, x->version, x->expiry,
	         (long long)x->offline_since, x->will_delay,
	         x->will ? x->will_len : (size_t)999);
	return 0;
}

/* The schema 2 fields of a session (owner_visitor). */
static int v_owner(void *ctx, const struct store_session *x)
{
	seen_add(ctx, "owner %.*s u=%.*s l=%s%u k=%s g=%.*s",
	         (int)x->client_id_len, x->client_id,
	         x->username ? (int)x->username_len : 4,
	         x->username ? (const char *)x->username : "NULL",
	         x->has_listener ? "" : "?", x->listener,
	         x->listener_kind ? x->listener_kind : "NULL",
	         x->grant ? (int)x->grant_len : 4,
	         x->grant ? (const char *)x->grant : "NULL");
	return 0;
}

static const struct store_visitor owner_visitor = {.session = v_owner};

static int v_sub(void *ctx, const struct store_sub *x)
{
	seen_add(ctx, "sub %.*s %.*s q%u nl%d rap%d rh%u id%u",
	         (int)x->client_id_len, x->client_id, (int)x->filter_len,
	         x->filter, x->qos, x->no_local, x->retain_as_published,
	         x->retain_handling, x->sub_id);
	return 0;
}

static int v_msg(void *ctx, const struct store_msg *x)
{
	seen_add(ctx, "msg %llu %.*s %.*s q%u r%d x%lld p%zu",
	         (unsigned long long)x->id, (int)x->topic_len, x->topic,
	         (int)x->payload_len, x->payload, x->qos, x->retain,
	         (long long)x->expiry_at, x->props ? x->props_len : 999);
	return 0;
}

static int v_qrow(void *ctx, const struct store_qrow *x)
{
	seen_add(ctx, "q %.*s #%llu m%llu q%u r%d d%d s%d st%u pid%u ids%u:%u",
	         (int)x->client_id_len, x->client_id,
	         (unsigned long long)x->seq, (unsigned long long)x->msg_id,
	         x->qos, x->retain, x->dup, x->shared, x->state, x->pid,
	         x->nsubids, x->nsubids ? x->subids[x->nsubids - 1] : 0);
	return 0;
}

static int v_inq2(void *ctx, const uint8_t *c, size_t len, uint16_t pid)
{
	seen_add(ctx, "inq2 %.*s %u", (int)len, c, pid);
	return 0;
}

static int v_retained(void *ctx, const struct store_retained *x)
{
	seen_add(ctx, "ret %.*s s%llu %.*s q%u x%lld p%zu", (int)x->topic_len,
	         x->topic, (unsigned long long)x->seq, (int)x->payload_len,
	         x->payload, x->qos, (long long)x->expiry_at,
	         x->props ? x->props_len : 999);
	return 0;
}

static const struct store_visitor visitor = {
        v_session, v_sub, v_msg, v_qrow, v_inq2, v_retained,
};

static void load(struct store *st, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(store_load(st, &visitor, s), 0);
}

static void expect_lines(const struct seen *s, const char *const *want, int n)
{
	int i;

	if (s->n != n) {
		for (i = 0; i < s->n; i++)
			print_message("got: %s\n", s->lines[i]);
		fail_msg("expected %d records, got %d", n, s->n);
	}
	for (i = 0; i < n; i++)
		assert_string_equal(s->lines[i], want[i]);
}

static void test_create_reopen(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);
	struct seen s;

	load(st, &s);
	assert_int_equal(s.n, 0);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_set_alive(st, 1234567), 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);

	st = open_ok(f->path);
	assert_int_equal(store_get_alive(st), 1234567);
	assert_true(store_size(st) > 0);
	assert_int_equal(store_checkpoint(st), 0);
	store_close(st);
}

/* Writes one of every record kind. */
static void write_all(struct store *st)
{
	static const uint8_t props[3] = {1, 2, 3};
	static const uint8_t will[5] = {9, 9, 9, 9, 9};
	static const uint32_t ids[2] = {7, 42};
	struct store_session se = {.client_id = (const uint8_t *)"dev1",
	                           .client_id_len = 4,
	                           .version = 5,
	                           .expiry = 3600,
	                           .offline_since = 1700000000000,
	                           .will_delay = 30,
	                           .will = will,
	                           .will_len = sizeof(will)};
	struct store_session se2 = {.client_id = (const uint8_t *)"dev2",
	                            .client_id_len = 4,
	                            .version = 4,
	                            .expiry = UINT32_MAX};
	struct store_sub sub = {B("dev1"), B("a/+"), 2, true, true, 1, 42};
	struct store_sub sub2 = {B("dev1"), B("$share/g/b"), 1, false, false, 0,
	                         0};
	struct store_msg m = {5,    B("a/b"),      B("hello"), 2,
	                      true, 1800000000000, props,      sizeof(props)};
	struct store_msg m0 = {
	        6, B("a/c"), (const uint8_t *)"", 0, 1, false, 0, NULL, 0};
	struct store_qrow q1 = {B("dev1"), 1, 5, 2,   false, false,
	                        false,     0, 0, ids, 2};
	struct store_qrow q2 = {B("dev1"), 2, 6,  1,    true, true,
	                        true,      1, 77, NULL, 0};
	struct store_retained r = {B("r/t"), 3, B("kept"), 1, 0, NULL, 0};

	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_session_put(st, &se), 0);
	assert_int_equal(store_session_put(st, &se2), 0);
	assert_int_equal(store_sub_put(st, &sub), 0);
	assert_int_equal(store_sub_put(st, &sub2), 0);
	assert_int_equal(store_msg_put(st, &m), 0);
	assert_int_equal(store_msg_put(st, &m0), 0);
	assert_int_equal(store_qrow_put(st, &q2), 0);
	assert_int_equal(store_qrow_put(st, &q1), 0);
	assert_int_equal(store_inq2_put(st, B("dev1"), 9), 0);
	assert_int_equal(store_inq2_put(st, B("dev1"), 9), 0);
	assert_int_equal(store_retained_put(st, &r), 0);
	assert_int_equal(store_commit(st), 0);
}

static const char *const all_lines[] = {
        "session dev1 v5 e3600 off1700000000000 wd30 will5",
        "session dev2 v4 e4294967295 off0 wd0 will999",
        "sub dev1 $share/g/b q1 nl0 rap0 rh0 id0",
        "sub dev1 a/+ q2 nl1 rap1 rh1 id42",
        "msg 5 a/b hello q2 r1 x1800000000000 p3",
        "msg 6 a/c  q1 r0 x0 p999",
        "q dev1 #1 m5 q2 r0 d0 s0 st0 pid0 ids2:42",
        "q dev1 #2 m6 q1 r1 d1 s1 st1 pid77 ids0:0",
        "inq2 dev1 9",
        "ret r/t s3 kept q1 x0 p999",
};

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);
	struct seen s;

	write_all(st);
	store_close(st);
	st = open_ok(f->path);
	load(st, &s);
	expect_lines(&s, all_lines, 10);
	store_close(st);
}

static void test_updates_and_deletes(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);
	static const uint8_t props[3] = {1, 2, 3};
	struct store_msg m = {5,    B("a/b"),      B("hello"), 2,
	                      true, 1800000000000, props,      sizeof(props)};
	struct store_qrow q1 = {B("dev1"), 1, 5, 2,    false, false,
	                        false,     0, 0, NULL, 0};
	struct store_qrow up = {B("dev1"), 1, 0,  2,    false, true,
	                        false,     3, 12, NULL, 0};
	struct store_retained old = {B("r/t"), 2, B("older"), 0, 0, NULL, 0};
	struct seen s;
	static const char *const want1[] = {
	        "session dev1 v5 e3600 off1700000000000 wd30 will5",
	        "sub dev1 a/+ q2 nl1 rap1 rh1 id42",
	        "msg 6 a/c  q1 r0 x0 p999",
	        "q dev1 #2 m6 q1 r1 d1 s1 st1 pid77 ids0:0",
	        "ret r/t s3 kept q1 x0 p999",
	};
	static const char *const want2[] = {
	        "session dev1 v5 e3600 off1700000000000 wd30 will5",
	        "sub dev1 a/+ q2 nl1 rap1 rh1 id42",
	        "msg 5 a/b hello q2 r1 x1800000000000 p3",
	        "q dev1 #1 m0 q2 r0 d1 s0 st3 pid12 ids0:0",
	};

	write_all(st);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_session_del(st, B("dev2")), 0);
	assert_int_equal(store_sub_del(st, B("dev1"), B("$share/g/b")), 0);
	assert_int_equal(store_inq2_del(st, B("dev1"), 9), 0);
	/* Writes older than the stored seq 3 lose. */
	assert_int_equal(store_retained_put(st, &old), 0);
	assert_int_equal(store_retained_del(st, B("r/t"), 1), 0);
	/* Row #1 was message 5's last reference: collected at commit. */
	assert_int_equal(store_qrow_del(st, B("dev1"), 1), 0);
	assert_int_equal(store_commit(st), 0);
	load(st, &s);
	expect_lines(&s, want1, 5);

	/* Message 5 comes back with a row, which then moves past PUBREC
	 * (no message); row #2 and the retained message go. */
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_msg_put(st, &m), 0);
	assert_int_equal(store_qrow_put(st, &q1), 0);
	assert_int_equal(store_commit(st), 0);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_qrow_update(st, &up), 0);
	assert_int_equal(store_qrow_del(st, B("dev1"), 2), 0);
	assert_int_equal(store_retained_del(st, B("r/t"), 4), 0);
	assert_int_equal(store_commit(st), 0);
	load(st, &s);
	/* The update cleared msg_id; collection runs only for deleted
	 * rows, so message 5 stays until store_gc_all. */
	expect_lines(&s, want2, 4);
	assert_int_equal(store_gc_all(st), 0);
	load(st, &s);
	assert_int_equal(s.n, 3);
	store_close(st);
}

static void test_qrow_clear_and_rollback(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);
	struct seen s;

	write_all(st);
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_qrow_clear(st, B("dev1")), 0);
	assert_int_equal(store_session_del(st, B("dev1")), 0);
	store_rollback(st);
	load(st, &s);
	expect_lines(&s, all_lines, 10);

	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_qrow_clear(st, B("dev1")), 0);
	assert_int_equal(store_commit(st), 0);
	load(st, &s);
	/* Both messages lost their rows. */
	assert_int_equal(s.n, 6);
	store_close(st);
}

static void test_size_limit(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);
	static uint8_t big[16384];
	struct store_msg m = {0, B("t"), big, sizeof(big), 1, false,
	                      0, NULL,   0};
	uint64_t id;
	int rc = 0;

	assert_int_equal(store_set_max_bytes(st, 256 * 1024), 0);
	assert_int_equal(store_begin(st), 0);
	for (id = 1; id < 100 && rc == 0; id++) {
		m.id = id;
		rc = store_msg_put(st, &m);
	}
	assert_int_equal(rc, TERN_ELIMIT);
	store_rollback(st);
	/* Raising the limit lets the same writes through. */
	assert_int_equal(store_set_max_bytes(st, 0), 0);
	assert_int_equal(store_begin(st), 0);
	for (id = 1; id < 100 && rc != 0; id++) {
		m.id = id;
		rc = store_msg_put(st, &m);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
}

static void write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

/* Opening must fail with `want` and an error that names the file. */
static void expect_refused(const char *path, int want, const char *words)
{
	struct store *st = NULL;
	char err[512] = "";
	int rc = store_open(path, 0, &st, err, sizeof(err));

	if (rc != want)
		fail_msg("store_open = %d (want %d): %s", rc, want, err);
	assert_null(st);
	assert_non_null(strstr(err, path));
	if (words && !strstr(err, words))
		fail_msg("error '%s' lacks '%s'", err, words);
}

static void test_random_bytes(void **state)
{
	struct fixture *f = *state;
	uint8_t junk[8192];
	unsigned seed = 7;
	size_t i;

	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(rand_r(&seed) >> 3);
	write_file(f->path, junk, sizeof(junk));
	expect_refused(f->path, TERN_EMALFORMED, "corrupt");
}

static void test_truncated(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);
	struct stat sb;
	int cut;

	write_all(st);
	store_close(st);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_true(sb.st_size > 8192);
	/* Cut at several places: inside the header, inside the first page,
	 * and after some pages. None may crash; each must be refused. */
	for (cut = 0; cut < 3; cut++) {
		static const off_t at[3] = {50, 1000, 4096 + 100};
		struct store *s2 = open_ok(f->path);

		store_close(s2);
		assert_int_equal(truncate(f->path, at[cut]), 0);
		expect_refused(f->path, TERN_EMALFORMED, NULL);
		unlink(f->path);
		s2 = open_ok(f->path);
		write_all(s2);
		store_close(s2);
	}
}

static void test_flipped_page(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);
	uint8_t page[4096];
	int fd;

	write_all(st);
	store_close(st);
	/* Overwrite page 2 (a table's root) with garbage. */
	memset(page, 0x5a, sizeof(page));
	fd = open(f->path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, page, sizeof(page), 4096), 4096);
	close(fd);
	expect_refused(f->path, TERN_EMALFORMED, "corrupt");
}

static void exec_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_foreign_sqlite(void **state)
{
	struct fixture *f = *state;

	exec_sql(f->path, "CREATE TABLE people(name TEXT)");
	expect_refused(f->path, TERN_EMALFORMED, "not a tern store");
}

static void test_newer_schema(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);

	store_close(st);
	exec_sql(f->path, "PRAGMA user_version = 99");
	expect_refused(f->path, TERN_EVERSION, "newer");
}

/* Version 0 with tern's application id (a store whose creation was cut
 * short) is migrated to the current schema. */
static void test_migration_from_zero(void **state)
{
	struct fixture *f = *state;
	struct store *st;
	struct seen s;
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", STORE_APP_ID);
	exec_sql(f->path, sql);
	st = open_ok(f->path);
	write_all(st);
	load(st, &s);
	assert_int_equal(s.n, 10);
	store_close(st);
}

/* The schema 2 fields round trip; NULL stays NULL (no username, listener
 * unknown, no grant), an empty username stays empty, and a put replaces
 * them all. */
static void test_owner_round_trip(void **state)
{
	static const char grant[] = "{\"sub\": [\"a/#\"]}";
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);
	struct store_session a = {.client_id = B("a"),
	                          .version = 5,
	                          .expiry = 60,
	                          .username = B("alice"),
	                          .has_listener = true,
	                          .listener = 3,
	                          .listener_kind = "mqtt+tls *:8883",
	                          .grant = B(grant)};
	struct store_session b = {.client_id = B("b"), .version = 4};
	struct store_session c = {.client_id = B("c"),
	                          .version = 4,
	                          .username = (const uint8_t *)"",
	                          .has_listener = true};
	struct seen s;
	static const char *const want[] = {
	        "owner a u=alice l=3 k=mqtt+tls *:8883 g={\"sub\": [\"a/#\"]}",
	        "owner b u=NULL l=?0 k=NULL g=NULL",
	        "owner c u= l=0 k=NULL g=NULL",
	};
	static const char *const want2[] = {
	        "owner a u=NULL l=?0 k=NULL g=NULL",
	        "owner b u=NULL l=?0 k=NULL g=NULL",
	        "owner c u= l=0 k=NULL g=NULL",
	};

	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_session_put(st, &a), 0);
	assert_int_equal(store_session_put(st, &b), 0);
	assert_int_equal(store_session_put(st, &c), 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	st = open_ok(f->path);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_load(st, &owner_visitor, &s), 0);
	expect_lines(&s, want, 3);
	/* A later put of the session without an owner clears it. */
	a = (struct store_session){.client_id = B("a"), .version = 5};
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_session_put(st, &a), 0);
	assert_int_equal(store_commit(st), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_load(st, &owner_visitor, &s), 0);
	expect_lines(&s, want2, 3);
	store_close(st);
}

/* PRAGMA user_version of the file at path. */
static int64_t user_version(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int64_t ver = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	        sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL),
	        SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		ver = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return ver;
}

/* The schema version 1 as ternd 1 created it (store.c's first migration,
 * copied here on purpose: the test must not follow edits to it). */
static const char v1_sql[] =
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
        "CREATE TABLE msgs(id INTEGER PRIMARY KEY, topic BLOB NOT NULL,"
        " payload BLOB NOT NULL, qos INTEGER NOT NULL,"
        " retain INTEGER NOT NULL, expiry_at INTEGER NOT NULL, props BLOB);"
        "CREATE TABLE retained(topic BLOB PRIMARY KEY,"
        " seq INTEGER NOT NULL, payload BLOB NOT NULL,"
        " qos INTEGER NOT NULL, expiry_at INTEGER NOT NULL, props BLOB)"
        " WITHOUT ROWID;"
        "CREATE TABLE sessions(client_id BLOB PRIMARY KEY,"
        " version INTEGER NOT NULL, expiry INTEGER NOT NULL,"
        " offline_since INTEGER NOT NULL, will_delay INTEGER NOT NULL,"
        " will BLOB) WITHOUT ROWID;"
        "CREATE TABLE subs(client_id BLOB NOT NULL, filter BLOB NOT NULL,"
        " qos INTEGER NOT NULL, no_local INTEGER NOT NULL,"
        " rap INTEGER NOT NULL, rh INTEGER NOT NULL,"
        " sub_id INTEGER NOT NULL, PRIMARY KEY(client_id, filter))"
        " WITHOUT ROWID;"
        "CREATE TABLE queue(client_id BLOB NOT NULL, seq INTEGER NOT NULL,"
        " msg_id INTEGER, qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
        " dup INTEGER NOT NULL, shared INTEGER NOT NULL,"
        " state INTEGER NOT NULL, pid INTEGER NOT NULL, subids BLOB,"
        " PRIMARY KEY(client_id, seq)) WITHOUT ROWID;"
        "CREATE INDEX queue_msg ON queue(msg_id);"
        "CREATE TABLE inq2(client_id BLOB NOT NULL, pid INTEGER NOT NULL,"
        " PRIMARY KEY(client_id, pid)) WITHOUT ROWID;"
        "INSERT INTO meta VALUES('last_alive', 1234);"
        "INSERT INTO sessions VALUES(CAST('dev1' AS BLOB), 5, 3600,"
        " 1700000000000, 30, x'0909090909');"
        "INSERT INTO sessions VALUES(CAST('dev2' AS BLOB), 4, 4294967295,"
        " 0, 0, NULL);"
        "INSERT INTO subs VALUES(CAST('dev1' AS BLOB),"
        " CAST('a/+' AS BLOB), 2, 1, 1, 1, 42);"
        "INSERT INTO msgs VALUES(5, CAST('a/b' AS BLOB),"
        " CAST('hello' AS BLOB), 2, 1, 1800000000000, x'010203');"
        "INSERT INTO queue VALUES(CAST('dev1' AS BLOB), 1, 5, 2, 0, 0, 0,"
        " 0, 0, NULL);"
        "INSERT INTO inq2 VALUES(CAST('dev1' AS BLOB), 9);"
        "INSERT INTO retained VALUES(CAST('r/t' AS BLOB), 3,"
        " CAST('kept' AS BLOB), 1, 0, NULL);";

/* A v1 store is migrated to v2 on open and keeps every row; its sessions
 * have no username, no known listener and no grant. Before that, a
 * read-only open (the dump) reads it as v1 without migrating it. */
static void test_migration_from_v1(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	struct seen s;
	char sql[160], err[256];
	static const char *const want[] = {
	        "session dev1 v5 e3600 off1700000000000 wd30 will5",
	        "session dev2 v4 e4294967295 off0 wd0 will999",
	        "sub dev1 a/+ q2 nl1 rap1 rh1 id42",
	        "msg 5 a/b hello q2 r1 x1800000000000 p3",
	        "q dev1 #1 m5 q2 r0 d0 s0 st0 pid0 ids0:0",
	        "inq2 dev1 9",
	        "ret r/t s3 kept q1 x0 p999",
	};
	static const char *const owners[] = {
	        "owner dev1 u=NULL l=?0 k=NULL g=NULL",
	        "owner dev2 u=NULL l=?0 k=NULL g=NULL",
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	snprintf(sql, sizeof(sql),
	         "PRAGMA application_id = %d; PRAGMA user_version = 1;",
	         STORE_APP_ID);
	exec_sql(f->path, v1_sql);
	exec_sql(f->path, sql);
	assert_int_equal(
	        store_open(f->path, STORE_OPEN_READONLY, &st, err, sizeof(err)),
	        0);
	assert_int_equal(store_schema(st), 1);
	load(st, &s);
	expect_lines(&s, want, 7);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_load(st, &owner_visitor, &s), 0);
	expect_lines(&s, owners, 2);
	out = open_memstream(&buf, &len);
	assert_int_equal(store_dump(st, out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "# tern store, schema 1,"));
	assert_non_null(strstr(buf,
	                       "session dev1 v5 expiry=3600s offline_since="
	                       "2023-11-14T22:13:20Z will=5 bytes "
	                       "delay=30s\n"));
	free(buf);
	store_close(st);
	assert_int_equal(user_version(f->path), 1);

	st = open_ok(f->path);
	assert_int_equal(store_schema(st), 2);
	load(st, &s);
	expect_lines(&s, want, 7);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_load(st, &owner_visitor, &s), 0);
	expect_lines(&s, owners, 2);
	assert_int_equal(store_get_alive(st), 1234);
	store_close(st);
	assert_int_equal(user_version(f->path), 2);
}

static void test_empty_file_is_new(void **state)
{
	struct fixture *f = *state;
	struct store *st;

	write_file(f->path, "", 0);
	st = open_ok(f->path);
	store_close(st);
}

static void test_move_bad_aside(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char err[512] = "", moved[512];
	struct stat sb;
	DIR *d;
	struct dirent *e;
	int found = 0;

	write_file(f->path, "this is not a database, not at all....", 38);
	assert_int_equal(
	        store_open(f->path, STORE_OPEN_MOVE_BAD, &st, err, sizeof(err)),
	        0);
	assert_non_null(st);
	assert_non_null(strstr(err, "moved it to"));
	store_close(st);
	d = opendir(f->dir);
	while ((e = readdir(d)))
		if (strstr(e->d_name, "tern.db.bad-") &&
		    !strstr(e->d_name, "-wal") && !strstr(e->d_name, "-shm")) {
			snprintf(moved, sizeof(moved), "%s/%s", f->dir,
			         e->d_name);
			found++;
		}
	closedir(d);
	assert_int_equal(found, 1);
	assert_int_equal(stat(moved, &sb), 0);
	assert_int_equal(sb.st_size, 38);
}

static void test_readonly(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char err[512] = "";
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	/* A missing file is not created by a read-only open. */
	assert_int_not_equal(
	        store_open(f->path, STORE_OPEN_READONLY, &st, err, sizeof(err)),
	        0);
	assert_int_equal(access(f->path, F_OK), -1);
	st = open_ok(f->path);
	write_all(st);
	store_close(st);
	assert_int_equal(
	        store_open(f->path, STORE_OPEN_READONLY, &st, err, sizeof(err)),
	        0);
	out = open_memstream(&buf, &len);
	assert_int_equal(store_dump(st, out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "session dev1 v5 expiry=3600s"));
	assert_non_null(strstr(buf, "queue dev1 #2 msg=6 qos=1 wait-puback "
	                            "pid=77 dup retain"));
	assert_non_null(strstr(buf, "retained r/t qos=1"));
	free(buf);
	store_close(st);
}

/* --dump-store shows a session's owner: the username, the listener and
 * the grant's JSON. */
static void test_dump_owner(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f->path);
	struct store_session a = {.client_id = B("a"),
	                          .version = 5,
	                          .expiry = 60,
	                          .username = B("al\x01"
	                                        "ce"),
	                          .has_listener = true,
	                          .listener = 1,
	                          .listener_kind = "websockets *:8080",
	                          .grant = B("{\"all\":[\"x/#\"]}")};
	char err[256] = "", *buf = NULL;
	size_t len = 0;
	FILE *out;

	assert_int_equal(store_begin(st), 0);
	assert_int_equal(store_session_put(st, &a), 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	assert_int_equal(
	        store_open(f->path, STORE_OPEN_READONLY, &st, err, sizeof(err)),
	        0);
	out = open_memstream(&buf, &len);
	assert_int_equal(store_dump(st, out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "# tern store, schema 2"));
	assert_non_null(strstr(buf, " user=al\\x01ce listener=1 "
	                            "(websockets *:8080) "
	                            "grant={\"all\":[\"x/#\"]}\n"));
	free(buf);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_create_reopen, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_round_trip, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_updates_and_deletes, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_qrow_clear_and_rollback,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_size_limit, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_random_bytes, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_truncated, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_flipped_page, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_foreign_sqlite, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_newer_schema, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_migration_from_zero, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_empty_file_is_new, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_move_bad_aside, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_owner_round_trip, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_migration_from_v1, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_dump_owner, setup,
	                                        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
