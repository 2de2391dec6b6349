/*
 * The durable store (DESIGN.md §6): a pure storage API over one SQLite file
 * in WAL mode. It knows records, not brokers: retained messages, sessions,
 * subscriptions, messages (stored once) and the queue rows that reference
 * them, and incoming QoS 2 packet ids. The broker's group commit
 * (src/broker/persist.c) decides what to write and when; this layer only
 * writes it, inside transactions the caller opens and commits.
 *
 * Strings (client ids, topics, filters) are byte strings with a length;
 * nothing here needs them NUL-terminated. Times are wall-clock milliseconds
 * since the Unix epoch, so that expiry keeps counting while ternd is down.
 *
 * Threads: a store is used by one thread at a time (the broker's store
 * thread, or main before the workers start). Pointers in records passed to
 * load callbacks are valid only during the callback.
 *
 * Errors: 0, or TERN_EMALFORMED (corrupt, truncated or not a tern store),
 * TERN_EVERSION (written by a newer tern), TERN_ELIMIT (the store is full:
 * disk or persistence_max_bytes), TERN_EIO (other SQLite or file failure),
 * TERN_ENOMEM. Opening writes a sentence saying what is wrong into err.
 */
#ifndef TERN_STORE_STORE_H
#define TERN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct store;

/* The schema this code writes (PRAGMA user_version). */
#define STORE_SCHEMA_VERSION 2
/* PRAGMA application_id of a tern store: "tern" in ASCII. */
#define STORE_APP_ID 0x7465726e

enum store_open_flags {
	/* A corrupt, foreign or newer file is renamed to PATH.bad-<time>
	 * (with its -wal and -shm) and an empty store is created. */
	STORE_OPEN_MOVE_BAD = 1 << 0,
	/* Open an existing file read-only (dump); never create or migrate. */
	STORE_OPEN_READONLY = 1 << 1,
};

/* One message row, referenced by queue rows (msg_id). */
struct store_msg {
	uint64_t id;
	const uint8_t *topic;
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
	uint8_t qos;
	bool retain;
	int64_t expiry_at;    /* wall ms; 0 = no expiry */
	const uint8_t *props; /* opaque to the store; NULL = none */
	size_t props_len;
};

/* A retained message; seq orders writes from different threads (a put or
 * delete with a lower seq than the stored one is ignored). */
struct store_retained {
	const uint8_t *topic;
	size_t topic_len;
	uint64_t seq;
	const uint8_t *payload;
	size_t payload_len;
	uint8_t qos;
	int64_t expiry_at;
	const uint8_t *props;
	size_t props_len;
};

struct store_session {
	const uint8_t *client_id;
	size_t client_id_len;
	uint8_t version; /* MQTT protocol level */
	uint32_t expiry; /* session expiry interval, s; UINT32_MAX never */
	int64_t offline_since; /* wall ms; 0 = was online */
	uint32_t will_delay;   /* s */
	const uint8_t *will;   /* opaque encoded will; NULL = none */
	size_t will_len;
	/* Schema 2: who the session belongs to, so that the rules that
	 * applied to it before a restart apply after it (a v1 row reads as
	 * NULL / unknown). The username (NULL = none); the index of the
	 * listener of its last connection, valid when has_listener, with a
	 * description of that listener (NUL-terminated, NULL = none) so a
	 * loader can tell whether the same index still means the same
	 * listener; and the raw JSON text of its token's topics claim (NULL
	 * = no grant). Never the token itself: it is a bearer credential. */
	const uint8_t *username;
	size_t username_len;
	bool has_listener;
	uint32_t listener;
	const char *listener_kind;
	const uint8_t *grant;
	size_t grant_len;
};

struct store_sub {
	const uint8_t *client_id;
	size_t client_id_len;
	const uint8_t *filter;
	size_t filter_len;
	uint8_t qos;
	bool no_local;
	bool retain_as_published;
	uint8_t retain_handling;
	uint32_t sub_id;
};

/* A message queued for, or in flight to, a session. state 0 = queued. */
struct store_qrow {
	const uint8_t *client_id;
	size_t client_id_len;
	uint64_t seq;    /* per session, increasing in queue order */
	uint64_t msg_id; /* 0 = none (QoS 2 past PUBREC) */
	uint8_t qos;
	bool retain;
	bool dup;
	bool shared;
	uint8_t state;
	uint16_t pid;
	const uint32_t *subids;
	uint16_t nsubids;
};

/*
 * What store_load() calls, in this order: every session, every
 * subscription, every message, every queue row (by client id, then seq),
 * every incoming QoS 2 id, every retained message. A callback returning
 * non-zero stops the load with that value. NULL callbacks are skipped.
 */
struct store_visitor {
	int (*session)(void *ctx, const struct store_session *s);
	int (*sub)(void *ctx, const struct store_sub *s);
	int (*msg)(void *ctx, const struct store_msg *m);
	int (*qrow)(void *ctx, const struct store_qrow *q);
	int (*inq2)(void *ctx, const uint8_t *client_id, size_t len,
	            uint16_t pid);
	int (*retained)(void *ctx, const struct store_retained *r);
};

/*
 * Opens (creating if missing, unless STORE_OPEN_READONLY) the store at
 * path, checks it (SQLite header, PRAGMA quick_check, application id,
 * schema version) and migrates an older schema (read-only: reads it as it
 * is, see store_schema). On success *out owns the
 * store. On failure err says what is wrong and what to do.
 */
int store_open(const char *path, unsigned flags, struct store **out, char *err,
               size_t errlen);

/* Closes the store (checkpointing the WAL). NULL is ok. */
void store_close(struct store *st);

/* Limits the main database file to about max_bytes (0 = no limit); writes
 * beyond it fail with TERN_ELIMIT. */
int store_set_max_bytes(struct store *st, uint64_t max_bytes);

/* Transactions. Every write below must happen between begin and
 * commit/rollback. After a failed write the caller rolls back. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* Writes. Each returns 0 or a TERN_E* code. */
int store_msg_put(struct store *st, const struct store_msg *m); /* or keep */
/* Deletes message id unless a queue row still references it. */
int store_msg_gc(struct store *st, uint64_t id);
/* The same, at commit (a row stopped referencing id in this
 * transaction; later writes of the transaction may still refer to it). */
int store_msg_unref(struct store *st, uint64_t id);
int store_retained_put(struct store *st, const struct store_retained *r);
int store_retained_del(struct store *st, const uint8_t *topic, size_t len,
                       uint64_t seq);
int store_session_put(struct store *st, const struct store_session *s);
/* Deletes the session with its subscriptions, queue and QoS 2 ids. */
int store_session_del(struct store *st, const uint8_t *cid, size_t len);
int store_sub_put(struct store *st, const struct store_sub *s);
int store_sub_del(struct store *st, const uint8_t *cid, size_t cid_len,
                  const uint8_t *filter, size_t filter_len);
int store_qrow_put(struct store *st, const struct store_qrow *q);
/* Updates state, pid and dup of a row; msg_id too (0 clears it). */
int store_qrow_update(struct store *st, const struct store_qrow *q);
int store_qrow_del(struct store *st, const uint8_t *cid, size_t len,
                   uint64_t seq);
/* Deletes every queue row of a session. */
int store_qrow_clear(struct store *st, const uint8_t *cid, size_t len);
int store_inq2_put(struct store *st, const uint8_t *cid, size_t len,
                   uint16_t pid);
int store_inq2_del(struct store *st, const uint8_t *cid, size_t len,
                   uint16_t pid);
/* Writes meta key "last_alive" (wall ms): when the broker last committed. */
int store_set_alive(struct store *st, int64_t wall_ms);
/* Reads it back; 0 when never written. */
int64_t store_get_alive(struct store *st);

/* Reads everything back (see struct store_visitor). */
int store_load(struct store *st, const struct store_visitor *v, void *ctx);

/* Deletes messages no queue row references (after a load that skipped
 * expired rows). */
int store_gc_all(struct store *st);

/* Runs a WAL checkpoint (TRUNCATE). */
int store_checkpoint(struct store *st);

/* Pages in use times page size, in bytes. */
uint64_t store_size(struct store *st);

/* The schema version of the open file: STORE_SCHEMA_VERSION, or an older
 * one for a read-only open, which reads an older file without migrating
 * it (its sessions have no owner: no username, listener or grant). */
int store_schema(const struct store *st);

/* Prints every record in human-readable form. Returns 0 or an error. */
int store_dump(struct store *st, FILE *out);

#endif
