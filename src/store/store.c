/*
 * The SQLite store: opening with checks (a store that is corrupt, truncated,
 * foreign or newer is refused with a sentence saying so, or moved aside when
 * asked), the schema and its migrations, one prepared statement per write,
 * and the load that reads everything back in order.
 *
 * Durability settings: WAL journal with synchronous=FULL, so a committed
 * transaction survives a crash of the process and of the machine; the
 * caller batches many writes into one transaction (group commit), which is
 * what makes FULL affordable.
 */
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/error.h"

enum stmt_id {
	S_MSG_PUT,
	S_MSG_GC,
	S_RET_PUT,
	S_RET_DEL,
	S_SESS_PUT,
	S_SESS_DEL,
	S_SESS_DEL_SUBS,
	S_SESS_DEL_Q,
	S_SESS_DEL_INQ2,
	S_SUB_PUT,
	S_SUB_DEL,
	S_Q_PUT,
	S_Q_UPD,
	S_Q_DEL,
	S_INQ2_PUT,
	S_INQ2_DEL,
	S_ALIVE,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
        [S_MSG_PUT] = "INSERT OR IGNORE INTO msgs(id, topic, payload, qos, "
                      "retain, expiry_at, props) VALUES(?,?,?,?,?,?,?)",
        [S_MSG_GC] = "DELETE FROM msgs WHERE id = ?1 AND NOT EXISTS "
                     "(SELECT 1 FROM queue WHERE msg_id = ?1)",
        [S_RET_PUT] = "INSERT INTO retained(topic, seq, payload, qos, "
                      "expiry_at, props) VALUES(?,?,?,?,?,?) "
                      "ON CONFLICT(topic) DO UPDATE SET seq = excluded.seq, "
                      "payload = excluded.payload, qos = excluded.qos, "
                      "expiry_at = excluded.expiry_at, props = "
                      "excluded.props WHERE excluded.seq > retained.seq",
        [S_RET_DEL] = "DELETE FROM retained WHERE topic = ? AND seq < ?",
        [S_SESS_PUT] = "INSERT OR REPLACE INTO sessions(client_id, version, "
                       "expiry, offline_since, will_delay, will, username, "
                       "listener, listener_kind, grant) "
                       "VALUES(?,?,?,?,?,?,?,?,?,?)",
        [S_SESS_DEL] = "DELETE FROM sessions WHERE client_id = ?",
        [S_SESS_DEL_SUBS] = "DELETE FROM subs WHERE client_id = ?",
        [S_SESS_DEL_Q] = "DELETE FROM queue WHERE client_id = ? "
                         "RETURNING msg_id",
        [S_SESS_DEL_INQ2] = "DELETE FROM inq2 WHERE client_id = ?",
        [S_SUB_PUT] = "INSERT OR REPLACE INTO subs(client_id, filter, qos, "
                      "no_local, rap, rh, sub_id) VALUES(?,?,?,?,?,?,?)",
        [S_SUB_DEL] = "DELETE FROM subs WHERE client_id = ? AND filter = ?",
        [S_Q_PUT] = "INSERT OR REPLACE INTO queue(client_id, seq, msg_id, "
                    "qos, retain, dup, shared, state, pid, subids) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?)",
        [S_Q_UPD] = "UPDATE queue SET state = ?3, pid = ?4, dup = ?5, "
                    "msg_id = ?6 WHERE client_id = ?1 AND seq = ?2",
        [S_Q_DEL] = "DELETE FROM queue WHERE client_id = ? AND seq = ? "
                    "RETURNING msg_id",
        [S_INQ2_PUT] = "INSERT OR IGNORE INTO inq2(client_id, pid) "
                       "VALUES(?,?)",
        [S_INQ2_DEL] = "DELETE FROM inq2 WHERE client_id = ? AND pid = ?",
        [S_ALIVE] = "INSERT OR REPLACE INTO meta(key, value) "
                    "VALUES('last_alive', ?)",
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	bool readonly;
	int64_t version; /* the file's schema; older only when read-only */
	/* Message ids whose last queue row may have gone in this
	 * transaction; checked at commit. */
	uint64_t *gc;
	size_t ngc, gc_cap;
};

/* Schema version 2. Each entry of `migrations` takes the schema from
 * version i to i + 1; a new version appends an entry, never edits one. */
static const char *const migrations[] = {
        /* 0 -> 1: the first schema. */
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
        " PRIMARY KEY(client_id, pid)) WITHOUT ROWID;",
        /* 1 -> 2: whose session it is (struct store_session). A v1 row
         * gets NULLs: no username, listener unknown, no grant, which is
         * what a v1 ternd assumed when it loaded the row. */
        "ALTER TABLE sessions ADD COLUMN username BLOB;"
        "ALTER TABLE sessions ADD COLUMN listener INTEGER;"
        "ALTER TABLE sessions ADD COLUMN listener_kind TEXT;"
        "ALTER TABLE sessions ADD COLUMN grant BLOB;",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
                       STORE_SCHEMA_VERSION,
               "one migration per schema version");

static int errf(char *err, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int errf(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* Maps an SQLite result to tern's codes. */
static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW: return 0;
	case SQLITE_NOMEM: return TERN_ENOMEM;
	case SQLITE_FULL: return TERN_ELIMIT;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return TERN_EMALFORMED;
	default: return TERN_EIO;
	}
}

static int exec(struct store *st, const char *sql)
{
	return map_rc(sqlite3_exec(st->db, sql, NULL, NULL, NULL));
}

/* Runs a query returning one integer. */
static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(s, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	return rc;
}

/* PRAGMA quick_check: the whole file's structure, in one pass. */
static int check_integrity(sqlite3 *db, char *what, size_t len)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &s, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(s, 0);

		if (r && strcmp(r, "ok") == 0) {
			rc = SQLITE_OK;
		} else {
			snprintf(what, len, "%s", r ? r : "?");
			rc = SQLITE_CORRUPT;
		}
	} else {
		snprintf(what, len, "%s", sqlite3_errmsg(db));
		if (rc == SQLITE_OK || rc == SQLITE_DONE)
			rc = SQLITE_CORRUPT;
	}
	sqlite3_finalize(s);
	return rc;
}

/*
 * Checks that db is a tern store we can use, creating or migrating the
 * schema when writable. Returns 0 or a TERN_E* code with err set.
 */
static int check_schema(struct store *st, const char *path, char *err,
                        size_t errlen)
{
	int64_t app = 0, ver = 0, tables = 0;
	char what[256] = "";
	int rc;

	rc = check_integrity(st->db, what, sizeof(what));
	if (rc != SQLITE_OK) {
		errf(err, errlen,
		     "%s is corrupt or not an SQLite database (%s)", path,
		     what);
		return map_rc(rc) ? map_rc(rc) : TERN_EMALFORMED;
	}
	if (query_int(st->db, "PRAGMA application_id", &app) != SQLITE_OK ||
	    query_int(st->db, "PRAGMA user_version", &ver) != SQLITE_OK ||
	    query_int(st->db, "SELECT count(*) FROM sqlite_schema", &tables) !=
	            SQLITE_OK) {
		errf(err, errlen, "%s cannot be read: %s", path,
		     sqlite3_errmsg(st->db));
		return TERN_EMALFORMED;
	}
	if (app != STORE_APP_ID && !(app == 0 && tables == 0)) {
		errf(err, errlen,
		     "%s is an SQLite database but not a tern store "
		     "(application_id %" PRId64 ")",
		     path, app);
		return TERN_EMALFORMED;
	}
	if (ver > STORE_SCHEMA_VERSION) {
		errf(err, errlen,
		     "%s has schema version %" PRId64
		     ", newer than this ternd understands (%d); use a newer "
		     "ternd",
		     path, ver, STORE_SCHEMA_VERSION);
		return TERN_EVERSION;
	}
	st->version = ver;
	if (ver == STORE_SCHEMA_VERSION)
		return 0;
	/* A read-only open (the dump) reads an older schema as it is, so an
	 * operator can look at a store before a new ternd migrates it. */
	if (st->readonly && ver >= 1)
		return 0;
	if (st->readonly) {
		errf(err, errlen, "%s has schema version %" PRId64 " (old)",
		     path, ver);
		return TERN_EVERSION;
	}
	return 1; /* needs migrating from ver */
}

/* Applies migrations from version `from` up to the current one, in one
 * transaction, so a crash mid-way leaves the old version intact. */
static int migrate(struct store *st, int64_t from, char *err, size_t errlen)
{
	char sql[64];
	int rc = exec(st, "BEGIN IMMEDIATE");
	int64_t v;

	for (v = from; rc == 0 && v < STORE_SCHEMA_VERSION; v++)
		rc = exec(st, migrations[v]);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
	         STORE_SCHEMA_VERSION);
	if (rc == 0)
		rc = exec(st, sql);
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", STORE_APP_ID);
	if (rc == 0)
		rc = exec(st, sql);
	if (rc == 0)
		rc = exec(st, "COMMIT");
	if (rc != 0) {
		errf(err, errlen, "cannot create or migrate the schema: %s",
		     sqlite3_errmsg(st->db));
		exec(st, "ROLLBACK");
	}
	return rc;
}

static int prepare_all(struct store *st, char *err, size_t errlen)
{
	int i;

	for (i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
		                       SQLITE_PREPARE_PERSISTENT, &st->st[i],
		                       NULL) != SQLITE_OK) {
			errf(err, errlen, "cannot prepare statement %d: %s", i,
			     sqlite3_errmsg(st->db));
			return TERN_EIO;
		}
	}
	return 0;
}

/* Renames path (and its -wal/-shm) to path.bad-<unix time>. */
static int move_aside(const char *path, char *moved, size_t len)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	char from[4096], to[4096];
	long now = (long)time(NULL);
	size_t i;

	snprintf(moved, len, "%s.bad-%ld", path, now);
	for (i = 0; i < 3; i++) {
		snprintf(from, sizeof(from), "%s%s", path, sfx[i]);
		snprintf(to, sizeof(to), "%s.bad-%ld%s", path, now, sfx[i]);
		if (rename(from, to) != 0 && errno != ENOENT)
			return TERN_EIO;
	}
	return 0;
}

/* Opens and checks once; no moving aside. */
static int open_once(const char *path, unsigned flags, struct store **out,
                     char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	int oflags = SQLITE_OPEN_NOMUTEX;
	int64_t from = 0;
	int rc;

	if (!st)
		return TERN_ENOMEM;
	st->readonly = flags & STORE_OPEN_READONLY;
	oflags |= st->readonly ? SQLITE_OPEN_READONLY
	                       : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &st->db, oflags, NULL) != SQLITE_OK) {
		errf(err, errlen, "cannot open %s: %s", path,
		     st->db ? sqlite3_errmsg(st->db) : "out of memory");
		rc = TERN_EIO;
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, 1000);
	rc = check_schema(st, path, err, errlen);
	if (rc < 0)
		goto fail;
	if (!st->readonly) {
		/* WAL + FULL: a commit is durable once store_commit returns. */
		if ((rc = exec(st, "PRAGMA journal_mode=WAL")) != 0 ||
		    (rc = exec(st, "PRAGMA synchronous=FULL")) != 0) {
			errf(err, errlen, "cannot set WAL mode on %s: %s", path,
			     sqlite3_errmsg(st->db));
			goto fail;
		}
		exec(st, "PRAGMA wal_autocheckpoint=4000");
		if (rc == 0 && query_int(st->db, "PRAGMA user_version",
		                         &from) != SQLITE_OK)
			from = 0;
		if (from < STORE_SCHEMA_VERSION &&
		    (rc = migrate(st, from, err, errlen)) != 0)
			goto fail;
		st->version = STORE_SCHEMA_VERSION;
		if ((rc = prepare_all(st, err, errlen)) != 0)
			goto fail;
	}
	*out = st;
	return 0;
fail:
	store_close(st);
	return rc;
}

/* Whether an open failure means "the file is bad" (move-aside applies)
 * rather than "cannot open at all" (permissions, missing directory). */
static bool is_bad_file(int rc)
{
	return rc == TERN_EMALFORMED || rc == TERN_EVERSION;
}

int store_open(const char *path, unsigned flags, struct store **out, char *err,
               size_t errlen)
{
	char moved[4096], why[512] = "";
	int rc;

	*out = NULL;
	rc = open_once(path, flags, out, why, sizeof(why));
	if (rc == 0)
		return 0;
	if (!is_bad_file(rc) || !(flags & STORE_OPEN_MOVE_BAD)) {
		errf(err, errlen, "%s", why);
		return rc;
	}
	if (move_aside(path, moved, sizeof(moved)) != 0) {
		errf(err, errlen, "%s; moving it aside failed: %s", why,
		     strerror(errno));
		return TERN_EIO;
	}
	rc = open_once(path, flags, out, err, errlen);
	if (rc == 0)
		errf(err, errlen, "%s; moved it to %s and started empty", why,
		     moved);
	return rc;
}

void store_close(struct store *st)
{
	int i;

	if (!st)
		return;
	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->st[i]);
	if (st->db) {
		if (!st->readonly)
			sqlite3_wal_checkpoint_v2(st->db, NULL,
			                          SQLITE_CHECKPOINT_TRUNCATE,
			                          NULL, NULL);
		sqlite3_close(st->db);
	}
	free(st->gc);
	free(st);
}

int store_set_max_bytes(struct store *st, uint64_t max_bytes)
{
	char sql[96];
	int64_t page = 4096;

	query_int(st->db, "PRAGMA page_size", &page);
	if (page <= 0)
		page = 4096;
	/* SQLite's own maximum when no limit is asked for. */
	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRIu64,
	         max_bytes ? max_bytes / (uint64_t)page + 1 : 4294967294u);
	return exec(st, sql);
}

int store_begin(struct store *st)
{
	st->ngc = 0;
	return exec(st, "BEGIN IMMEDIATE");
}

/* Deletes messages whose last reference went in this transaction. */
static int gc_run(struct store *st)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < st->ngc && rc == 0; i++)
		rc = store_msg_gc(st, st->gc[i]);
	st->ngc = 0;
	return rc;
}

int store_commit(struct store *st)
{
	int rc = gc_run(st);

	if (rc == 0)
		rc = exec(st, "COMMIT");
	return rc;
}

void store_rollback(struct store *st)
{
	st->ngc = 0;
	if (!sqlite3_get_autocommit(st->db))
		exec(st, "ROLLBACK");
}

/* Runs a bound statement to completion and resets it. */
static int run(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	while (rc == SQLITE_ROW)
		rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return map_rc(rc);
}

static void bind_blob(sqlite3_stmt *s, int i, const void *p, size_t len)
{
	/* Zero-length blobs must not read as NULL (NOT NULL columns). */
	sqlite3_bind_blob64(s, i, p ? p : "", len, SQLITE_STATIC);
}

static void bind_opt_blob(sqlite3_stmt *s, int i, const void *p, size_t len)
{
	if (p)
		sqlite3_bind_blob64(s, i, p, len, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

int store_msg_put(struct store *st, const struct store_msg *m)
{
	sqlite3_stmt *s = st->st[S_MSG_PUT];

	sqlite3_bind_int64(s, 1, (int64_t)m->id);
	bind_blob(s, 2, m->topic, m->topic_len);
	bind_blob(s, 3, m->payload, m->payload_len);
	sqlite3_bind_int(s, 4, m->qos);
	sqlite3_bind_int(s, 5, m->retain);
	sqlite3_bind_int64(s, 6, m->expiry_at);
	bind_opt_blob(s, 7, m->props, m->props_len);
	return run(s);
}

int store_msg_gc(struct store *st, uint64_t id)
{
	sqlite3_stmt *s = st->st[S_MSG_GC];

	sqlite3_bind_int64(s, 1, (int64_t)id);
	return run(s);
}

int store_retained_put(struct store *st, const struct store_retained *r)
{
	sqlite3_stmt *s = st->st[S_RET_PUT];

	bind_blob(s, 1, r->topic, r->topic_len);
	sqlite3_bind_int64(s, 2, (int64_t)r->seq);
	bind_blob(s, 3, r->payload, r->payload_len);
	sqlite3_bind_int(s, 4, r->qos);
	sqlite3_bind_int64(s, 5, r->expiry_at);
	bind_opt_blob(s, 6, r->props, r->props_len);
	return run(s);
}

int store_retained_del(struct store *st, const uint8_t *topic, size_t len,
                       uint64_t seq)
{
	sqlite3_stmt *s = st->st[S_RET_DEL];

	bind_blob(s, 1, topic, len);
	sqlite3_bind_int64(s, 2, (int64_t)seq);
	return run(s);
}

int store_session_put(struct store *st, const struct store_session *x)
{
	sqlite3_stmt *s = st->st[S_SESS_PUT];

	bind_blob(s, 1, x->client_id, x->client_id_len);
	sqlite3_bind_int(s, 2, x->version);
	sqlite3_bind_int64(s, 3, x->expiry);
	sqlite3_bind_int64(s, 4, x->offline_since);
	sqlite3_bind_int64(s, 5, x->will_delay);
	bind_opt_blob(s, 6, x->will, x->will_len);
	bind_opt_blob(s, 7, x->username, x->username_len);
	if (x->has_listener)
		sqlite3_bind_int64(s, 8, x->listener);
	else
		sqlite3_bind_null(s, 8);
	if (x->listener_kind)
		sqlite3_bind_text(s, 9, x->listener_kind, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 9);
	bind_opt_blob(s, 10, x->grant, x->grant_len);
	return run(s);
}

static int gc_add(struct store *st, uint64_t id)
{
	if (!id)
		return 0;
	if (st->ngc == st->gc_cap) {
		size_t ncap = st->gc_cap ? st->gc_cap * 2 : 256;
		uint64_t *v = realloc(st->gc, ncap * sizeof(*v));

		if (!v)
			return TERN_ENOMEM;
		st->gc = v;
		st->gc_cap = ncap;
	}
	st->gc[st->ngc++] = id;
	return 0;
}

int store_msg_unref(struct store *st, uint64_t id)
{
	return gc_add(st, id);
}

/* Runs a DELETE ... RETURNING msg_id, remembering the ids for gc_run. */
static int run_returning_ids(struct store *st, sqlite3_stmt *s)
{
	int rc, rc2 = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (sqlite3_column_type(s, 0) == SQLITE_INTEGER && rc2 == 0)
			rc2 = gc_add(st, (uint64_t)sqlite3_column_int64(s, 0));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return map_rc(rc) ? map_rc(rc) : rc2;
}

static int del_by_client(struct store *st, enum stmt_id id, const uint8_t *c,
                         size_t len)
{
	sqlite3_stmt *s = st->st[id];

	bind_blob(s, 1, c, len);
	if (id == S_SESS_DEL_Q)
		return run_returning_ids(st, s);
	return run(s);
}

int store_qrow_clear(struct store *st, const uint8_t *cid, size_t len)
{
	return del_by_client(st, S_SESS_DEL_Q, cid, len);
}

int store_session_del(struct store *st, const uint8_t *cid, size_t len)
{
	int rc = del_by_client(st, S_SESS_DEL, cid, len);

	if (rc == 0)
		rc = del_by_client(st, S_SESS_DEL_SUBS, cid, len);
	if (rc == 0)
		rc = del_by_client(st, S_SESS_DEL_Q, cid, len);
	if (rc == 0)
		rc = del_by_client(st, S_SESS_DEL_INQ2, cid, len);
	return rc;
}

int store_sub_put(struct store *st, const struct store_sub *x)
{
	sqlite3_stmt *s = st->st[S_SUB_PUT];

	bind_blob(s, 1, x->client_id, x->client_id_len);
	bind_blob(s, 2, x->filter, x->filter_len);
	sqlite3_bind_int(s, 3, x->qos);
	sqlite3_bind_int(s, 4, x->no_local);
	sqlite3_bind_int(s, 5, x->retain_as_published);
	sqlite3_bind_int(s, 6, x->retain_handling);
	sqlite3_bind_int64(s, 7, x->sub_id);
	return run(s);
}

int store_sub_del(struct store *st, const uint8_t *cid, size_t cid_len,
                  const uint8_t *filter, size_t filter_len)
{
	sqlite3_stmt *s = st->st[S_SUB_DEL];

	bind_blob(s, 1, cid, cid_len);
	bind_blob(s, 2, filter, filter_len);
	return run(s);
}

static void bind_msg_id(sqlite3_stmt *s, int i, uint64_t id)
{
	if (id)
		sqlite3_bind_int64(s, i, (int64_t)id);
	else
		sqlite3_bind_null(s, i);
}

int store_qrow_put(struct store *st, const struct store_qrow *q)
{
	sqlite3_stmt *s = st->st[S_Q_PUT];

	bind_blob(s, 1, q->client_id, q->client_id_len);
	sqlite3_bind_int64(s, 2, (int64_t)q->seq);
	bind_msg_id(s, 3, q->msg_id);
	sqlite3_bind_int(s, 4, q->qos);
	sqlite3_bind_int(s, 5, q->retain);
	sqlite3_bind_int(s, 6, q->dup);
	sqlite3_bind_int(s, 7, q->shared);
	sqlite3_bind_int(s, 8, q->state);
	sqlite3_bind_int(s, 9, q->pid);
	bind_opt_blob(s, 10, q->nsubids ? q->subids : NULL,
	              q->nsubids * sizeof(uint32_t));
	return run(s);
}

int store_qrow_update(struct store *st, const struct store_qrow *q)
{
	sqlite3_stmt *s = st->st[S_Q_UPD];

	bind_blob(s, 1, q->client_id, q->client_id_len);
	sqlite3_bind_int64(s, 2, (int64_t)q->seq);
	sqlite3_bind_int(s, 3, q->state);
	sqlite3_bind_int(s, 4, q->pid);
	sqlite3_bind_int(s, 5, q->dup);
	bind_msg_id(s, 6, q->msg_id);
	return run(s);
}

int store_qrow_del(struct store *st, const uint8_t *cid, size_t len,
                   uint64_t seq)
{
	sqlite3_stmt *s = st->st[S_Q_DEL];

	bind_blob(s, 1, cid, len);
	sqlite3_bind_int64(s, 2, (int64_t)seq);
	return run_returning_ids(st, s);
}

static int inq2_op(struct store *st, enum stmt_id id, const uint8_t *cid,
                   size_t len, uint16_t pid)
{
	sqlite3_stmt *s = st->st[id];

	bind_blob(s, 1, cid, len);
	sqlite3_bind_int(s, 2, pid);
	return run(s);
}

int store_inq2_put(struct store *st, const uint8_t *cid, size_t len,
                   uint16_t pid)
{
	return inq2_op(st, S_INQ2_PUT, cid, len, pid);
}

int store_inq2_del(struct store *st, const uint8_t *cid, size_t len,
                   uint16_t pid)
{
	return inq2_op(st, S_INQ2_DEL, cid, len, pid);
}

int store_set_alive(struct store *st, int64_t wall_ms)
{
	sqlite3_stmt *s = st->st[S_ALIVE];

	sqlite3_bind_int64(s, 1, wall_ms);
	return run(s);
}

int64_t store_get_alive(struct store *st)
{
	int64_t v = 0;

	if (query_int(st->db, "SELECT value FROM meta WHERE key = 'last_alive'",
	              &v) != SQLITE_OK)
		return 0;
	return v;
}

/* Column helpers for the load. */
static const uint8_t *col_blob(sqlite3_stmt *s, int i, size_t *len)
{
	const uint8_t *p = sqlite3_column_blob(s, i);

	*len = (size_t)sqlite3_column_bytes(s, i);
	return p ? p : (const uint8_t *)"";
}

static const uint8_t *col_opt_blob(sqlite3_stmt *s, int i, size_t *len)
{
	if (sqlite3_column_type(s, i) == SQLITE_NULL) {
		*len = 0;
		return NULL;
	}
	return col_blob(s, i, len);
}

typedef int (*row_fn)(sqlite3_stmt *s, const struct store_visitor *v,
                      void *ctx);

static int row_session(sqlite3_stmt *s, const struct store_visitor *v,
                       void *ctx)
{
	struct store_session x;

	memset(&x, 0, sizeof(x));
	x.client_id = col_blob(s, 0, &x.client_id_len);
	x.version = (uint8_t)sqlite3_column_int(s, 1);
	x.expiry = (uint32_t)sqlite3_column_int64(s, 2);
	x.offline_since = sqlite3_column_int64(s, 3);
	x.will_delay = (uint32_t)sqlite3_column_int64(s, 4);
	x.will = col_opt_blob(s, 5, &x.will_len);
	x.username = col_opt_blob(s, 6, &x.username_len);
	/* An index that does not fit is no listener ternd could have. */
	if (sqlite3_column_type(s, 7) == SQLITE_INTEGER) {
		int64_t li = sqlite3_column_int64(s, 7);

		x.has_listener = li >= 0 && li <= UINT32_MAX;
		x.listener = x.has_listener ? (uint32_t)li : 0;
	}
	if (sqlite3_column_type(s, 8) != SQLITE_NULL)
		x.listener_kind = (const char *)sqlite3_column_text(s, 8);
	x.grant = col_opt_blob(s, 9, &x.grant_len);
	return v->session(ctx, &x);
}

static int row_sub(sqlite3_stmt *s, const struct store_visitor *v, void *ctx)
{
	struct store_sub x;

	memset(&x, 0, sizeof(x));
	x.client_id = col_blob(s, 0, &x.client_id_len);
	x.filter = col_blob(s, 1, &x.filter_len);
	x.qos = (uint8_t)sqlite3_column_int(s, 2);
	x.no_local = sqlite3_column_int(s, 3) != 0;
	x.retain_as_published = sqlite3_column_int(s, 4) != 0;
	x.retain_handling = (uint8_t)sqlite3_column_int(s, 5);
	x.sub_id = (uint32_t)sqlite3_column_int64(s, 6);
	return v->sub(ctx, &x);
}

static int row_msg(sqlite3_stmt *s, const struct store_visitor *v, void *ctx)
{
	struct store_msg x;

	memset(&x, 0, sizeof(x));
	x.id = (uint64_t)sqlite3_column_int64(s, 0);
	x.topic = col_blob(s, 1, &x.topic_len);
	x.payload = col_blob(s, 2, &x.payload_len);
	x.qos = (uint8_t)sqlite3_column_int(s, 3);
	x.retain = sqlite3_column_int(s, 4) != 0;
	x.expiry_at = sqlite3_column_int64(s, 5);
	x.props = col_opt_blob(s, 6, &x.props_len);
	return v->msg(ctx, &x);
}

static int row_qrow(sqlite3_stmt *s, const struct store_visitor *v, void *ctx)
{
	struct store_qrow x;
	uint32_t ids[64];
	size_t n;
	const uint8_t *raw;

	memset(&x, 0, sizeof(x));
	x.client_id = col_blob(s, 0, &x.client_id_len);
	x.seq = (uint64_t)sqlite3_column_int64(s, 1);
	x.msg_id = (uint64_t)sqlite3_column_int64(s, 2);
	x.qos = (uint8_t)sqlite3_column_int(s, 3);
	x.retain = sqlite3_column_int(s, 4) != 0;
	x.dup = sqlite3_column_int(s, 5) != 0;
	x.shared = sqlite3_column_int(s, 6) != 0;
	x.state = (uint8_t)sqlite3_column_int(s, 7);
	x.pid = (uint16_t)sqlite3_column_int(s, 8);
	raw = col_opt_blob(s, 9, &n);
	/* Stored as native uint32_t words; copied so alignment is ours. A
	 * row with more than 64 ids keeps the first 64. */
	if (raw && n >= sizeof(uint32_t)) {
		n /= sizeof(uint32_t);
		if (n > 64)
			n = 64;
		memcpy(ids, raw, n * sizeof(uint32_t));
		x.subids = ids;
		x.nsubids = (uint16_t)n;
	}
	return v->qrow(ctx, &x);
}

static int row_inq2(sqlite3_stmt *s, const struct store_visitor *v, void *ctx)
{
	size_t len;
	const uint8_t *c = col_blob(s, 0, &len);

	return v->inq2(ctx, c, len, (uint16_t)sqlite3_column_int(s, 1));
}

static int row_retained(sqlite3_stmt *s, const struct store_visitor *v,
                        void *ctx)
{
	struct store_retained x;

	memset(&x, 0, sizeof(x));
	x.topic = col_blob(s, 0, &x.topic_len);
	x.seq = (uint64_t)sqlite3_column_int64(s, 1);
	x.payload = col_blob(s, 2, &x.payload_len);
	x.qos = (uint8_t)sqlite3_column_int(s, 3);
	x.expiry_at = sqlite3_column_int64(s, 4);
	x.props = col_opt_blob(s, 5, &x.props_len);
	return v->retained(ctx, &x);
}

static int load_table(struct store *st, const char *sql, row_fn fn,
                      const struct store_visitor *v, void *ctx)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL), r = 0;

	if (rc != SQLITE_OK)
		return map_rc(rc) ? map_rc(rc) : TERN_EIO;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if ((r = fn(s, v, ctx)) != 0)
			break;
	sqlite3_finalize(s);
	if (r != 0)
		return r;
	return map_rc(rc);
}

int store_schema(const struct store *st)
{
	return (int)st->version;
}

/* Sessions; a schema 1 file (read-only) has no owner columns. */
static const char *session_sql(const struct store *st)
{
	if (st->version < 2)
		return "SELECT client_id, version, expiry, offline_since, "
		       "will_delay, will, NULL, NULL, NULL, NULL FROM sessions";
	return "SELECT client_id, version, expiry, offline_since, "
	       "will_delay, will, username, listener, listener_kind, grant "
	       "FROM sessions";
}

int store_load(struct store *st, const struct store_visitor *v, void *ctx)
{
	const struct {
		bool on; /* the visitor has this callback */
		const char *sql;
		row_fn fn;
	} steps[] = {
	        {v->session != NULL, session_sql(st), row_session},
	        {v->sub != NULL,
	         "SELECT client_id, filter, qos, no_local, rap, rh, sub_id "
	         "FROM subs ORDER BY client_id, filter",
	         row_sub},
	        {v->msg != NULL,
	         "SELECT id, topic, payload, qos, retain, expiry_at, props "
	         "FROM msgs ORDER BY id",
	         row_msg},
	        {v->qrow != NULL,
	         "SELECT client_id, seq, msg_id, qos, retain, dup, shared, "
	         "state, pid, subids FROM queue ORDER BY client_id, seq",
	         row_qrow},
	        {v->inq2 != NULL,
	         "SELECT client_id, pid FROM inq2 ORDER BY client_id, pid",
	         row_inq2},
	        {v->retained != NULL,
	         "SELECT topic, seq, payload, qos, expiry_at, props FROM "
	         "retained ORDER BY topic",
	         row_retained},
	};
	size_t i;
	int rc;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (!steps[i].on)
			continue;
		rc = load_table(st, steps[i].sql, steps[i].fn, v, ctx);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int store_gc_all(struct store *st)
{
	return exec(st, "DELETE FROM msgs WHERE NOT EXISTS "
	                "(SELECT 1 FROM queue WHERE queue.msg_id = msgs.id)");
}

int store_checkpoint(struct store *st)
{
	return map_rc(sqlite3_wal_checkpoint_v2(
	        st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL));
}

uint64_t store_size(struct store *st)
{
	int64_t pages = 0, size = 0;

	query_int(st->db, "PRAGMA page_count", &pages);
	query_int(st->db, "PRAGMA page_size", &size);
	return (uint64_t)pages * (uint64_t)size;
}
