/*
 * Private to persist*.c: the operation, batch and store-thread structures
 * shared by persist.c (appending, the store thread), persist_apply.c
 * (compacting and writing a round) and persist_load.c (opening and
 * loading). Nothing else includes this file.
 */
#ifndef TERN_BROKER_PERSIST_INT_H
#define TERN_BROKER_PERSIST_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/persist.h"
#include "broker/subs.h"
#include "store/store.h"

enum persist_mode { PERSIST_OFF = 0, PERSIST_BATCH, PERSIST_ALWAYS };

enum pop_kind {
	OP_SESS_PUT = 1,
	OP_SESS_DEL,
	OP_SUB_PUT,
	OP_SUB_DEL,
	OP_Q_PUT,
	OP_Q_UPD,
	OP_Q_DEL,
	OP_INQ2_PUT,
	OP_INQ2_DEL,
	OP_RET_PUT,
	OP_RET_DEL,
};

/* SESS_PUT's ptr: who the session belongs to, taken on the thread that
 * made the operation (under the session's mu), so that the store thread
 * never reads the session's mutable fields. Owns a grant reference. */
struct pop_owner {
	struct auth_grant *grant; /* NULL: no topics claim */
	uint32_t listener;
	bool has_listener; /* false: not known (restored, not reconnected) */
	bool has_user;
	size_t user_len;
	char user[]; /* user_len bytes */
};

/* One change to durable state. Owns a session reference (s), a message
 * reference (m: queued message, retained message or will) and ptr. */
struct pop {
	uint8_t kind;
	bool dead; /* cancelled by compaction */
	uint8_t qos, state, version;
	bool retain, dup, shared;
	uint16_t pid, nsubids, len;
	uint32_t u32;        /* SESS_PUT: session expiry */
	uint32_t will_delay; /* SESS_PUT: seconds from wall */
	struct session *s;
	struct msg *m;
	uint64_t seq;    /* queue row number, or retained write number */
	uint64_t msg_id; /* Q_PUT/Q_UPD: the message's store id */
	uint64_t gc_id;  /* Q_UPD: a message the row stops referencing */
	int64_t wall;    /* SESS_PUT: offline since, wall ms; 0 online */
	void *ptr;       /* SUB_*: filter bytes (len); Q_PUT: subids; SESS_PUT:
	                  * struct pop_owner */
	struct subs_opts opts;
};

struct pbatch {
	pthread_mutex_t mu;
	struct pop *v;
	size_t n, cap;
	uint64_t gen; /* bumped each time the store thread takes it */
};

#define PERSIST_ENDED_SLOTS 1024

struct persist {
	struct broker *b;
	struct store *st;
	int mode; /* enum persist_mode */

	/* One batch per worker, then one for every other thread. */
	struct pbatch *batches;
	int nbatches;

	pthread_t thread;
	bool started;
	pthread_mutex_t mu; /* guards the four flags below */
	pthread_cond_t cond;
	bool pending, stopping, checkpoint;

	atomic_uint_fast64_t round_started, round_committed;
	atomic_bool failing;
	atomic_uint_fast64_t max_bytes;
	atomic_bool max_bytes_changed;
	atomic_uint_fast64_t next_msg_id;
	atomic_bool *want_wake; /* per worker: wake after the next commit */

	/* Store thread only: operations taken and not yet committed (a
	 * failed round's stay for the retry), and an encoding buffer. */
	struct pop *ops;
	size_t nops, ops_cap;
	uint8_t *enc;
	size_t enc_cap;

	/* Listener i's description (persist_listener_kind), stored with a
	 * session of listener i; made at open, immutable (the listeners do
	 * not change while ternd runs). */
	char **lkind;
	size_t nlkind;

	/* Batch markers of sessions that left the table (broker.sess_mu). */
	struct {
		struct pbatch *pb;
		uint64_t gen;
	} ended[PERSIST_ENDED_SLOTS];
};

enum apply_mode { APPLY_ALL, APPLY_DELETES };

/* What identifies listener i of cfg across restarts, as stored with a
 * session: protocol, TLS, address, port and whether a `listener` line made
 * it ("mqtt+tls 0.0.0.0:8883"). malloc'd; NULL on OOM. */
struct listener_cfg;
char *persist_listener_kind(const struct listener_cfg *l);

/* Releases an operation's references. */
void pop_release(struct pop *op);
/* Whether an operation only removes data (applies without free space). */
bool pop_is_delete(const struct pop *op);
/* Cancels operations made redundant by later ones in p->ops. */
void persist_compact(struct persist *p);
/* Writes p->ops (all, or the deletions only) in one transaction. */
int persist_apply(struct persist *p, enum apply_mode mode);

/*
 * Encodes a message as an MQTT 5 PUBLISH into p->enc: with the payload and
 * the message expiry (wills), or topic and properties only (queued and
 * retained messages, whose payload has its own column). Returns the length
 * or a negative TERN_E* code; 0 when there is nothing worth storing
 * (props_only and no properties).
 */
int persist_encode(struct persist *p, const struct msg *m, bool props_only);

/*
 * The reverse: a message from stored parts. props/will blob as encoded
 * above (NULL: none). For a blob with payload, topic and payload come from
 * the blob. expiry_at is wall ms (0: none). Returns the message, or NULL
 * with *expired set when it expired, or NULL on a bad blob or OOM.
 */
struct msg *persist_decode(const uint8_t *topic, size_t topic_len,
                           const uint8_t *payload, size_t payload_len,
                           uint8_t qos, bool retain, int64_t expiry_at,
                           const uint8_t *blob, size_t blob_len, bool *expired);

/* Wall-clock expiry time of m (0: none). */
int64_t persist_expiry_at(const struct msg *m, int64_t wall_now,
                          uint64_t mono_now);

#endif
