/*
 * The broker: state shared by all workers (DESIGN.md §3) — the subscription
 * index, the retained store, the session table, statistics — and the
 * start/stop of the worker threads.
 *
 * Lock order (outer to inner): broker.sess_mu, session.mu, then the index's
 * or retained store's own rwlock, then a worker's inbox lock.
 */
#ifndef TERN_BROKER_BROKER_H
#define TERN_BROKER_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/config.h"
#include "broker/jwt.h"

struct addrcap;

struct worker;
struct session;
struct msg;
struct auth;
struct cidr_list;
struct tls_ctx;
struct persist;

enum transport_kind { TR_TCP = 0, TR_TLS, TR_WS, TR_WSS, TR_COUNT };

/* stats.jwt_auth: one counter per enum jwt_result (JWT_OK counts
 * accepted tokens), then JWT_WRONG_USERNAME. */
#define JWT_WRONG_USERNAME JWT_NRESULTS
#define JWT_COUNTERS       (JWT_NRESULTS + 1)

/* Why a WebSocket handshake failed (counted per cause). */
enum ws_fail_cause {
	WSF_REQUEST = 0, /* malformed or oversized request, bad key, not GET */
	WSF_VERSION,     /* Sec-WebSocket-Version is not 13 */
	WSF_PATH,        /* not one of the listener's paths */
	WSF_ORIGIN,      /* Origin not allowed */
	WSF_SUBPROTOCOL, /* offered subprotocols, none supported */
	WSF_TIMEOUT,     /* handshake not done before the deadline */
	WSF_COUNT,
};

/* Why a message was dropped (counted per reason, and in pub_dropped). */
enum drop_reason {
	DROP_QUEUE_FULL = 0, /* the session's queue was at its bound */
	DROP_TOO_LARGE,      /* over the receiver's Maximum Packet Size */
	DROP_EXPIRED,        /* message expiry passed before delivery */
	DROP_NOT_AUTHORIZED, /* the ACL refused the PUBLISH */
	DROP_SIZE_LIMIT,     /* over message_size_limit */
	DROP_TOPIC_LIMIT,    /* over max_topic_length / max_topic_levels */
	DROP_MEMORY_LIMIT,   /* refused or dropped over memory_limit */
	DROP_COUNT,
};

/*
 * Limits (shared/DESIGN.md §5) that refused or closed something, counted
 * per limit: $SYS/broker/limits/NAME and tern_limit_hits_total{limit=NAME}
 * (names in sys_limit_names). Dropped messages are counted by reason in
 * drops[], refusals per source address in refused_per_address.
 */
enum limit_hit {
	LIM_MAX_CONNECTIONS = 0,  /* global max_connections, at accept */
	LIM_LISTENER_CONNECTIONS, /* a listener's max_connections */
	LIM_CONNECT_TIMEOUT,      /* no CONNECT (or handshake) in time */
	LIM_PACKET_SIZE,          /* a packet over max_packet_size */
	LIM_RECEIVE_MAXIMUM,      /* incoming QoS 2 over max_inflight */
	LIM_SUBSCRIPTIONS,        /* max_subscriptions_per_client */
	LIM_TOPIC_FILTER,         /* a filter over max_topic_length/levels */
	LIM_KEEPALIVE,            /* silent for 1.5 x the keep alive */
	LIM_MAX_KEEPALIVE,        /* v3 keep alive above max_keepalive */
	LIM_WS_FRAME,             /* WebSocket message over ws_max_frame_size */
	LIM_PUBLISH_RATE,         /* paused by max_publish_(bytes_)rate */
	LIM_MEMORY,               /* PUBLISH refused or client closed */
	LIM_COUNT,
};

/* Counters for $SYS and metrics; relaxed atomics, written by any worker. */
struct broker_stats {
	atomic_uint_fast64_t msgs_received; /* all packets */
	atomic_uint_fast64_t msgs_sent;
	atomic_uint_fast64_t pub_received; /* PUBLISH packets */
	atomic_uint_fast64_t pub_sent;
	atomic_uint_fast64_t pub_dropped;
	atomic_uint_fast64_t drops[DROP_COUNT]; /* pub_dropped by reason */
	atomic_uint_fast64_t bytes_received;
	atomic_uint_fast64_t bytes_sent;
	atomic_int_fast64_t clients_connected;
	atomic_int_fast64_t clients_maximum;
	atomic_uint_fast64_t clients_total_seen; /* CONNECTs accepted */
	atomic_int_fast64_t sessions_offline;    /* persistent, disconnected */
	atomic_int_fast64_t connections;         /* open sockets */
	atomic_int_fast64_t transport_connected[TR_COUNT];
	atomic_uint_fast64_t ws_upgrades; /* handshakes completed */
	atomic_uint_fast64_t ws_handshake_fail[WSF_COUNT];
	atomic_uint_fast64_t ws_protocol_errors; /* bad frames after upgrade */
	atomic_uint_fast64_t ws_frames_out;
	atomic_uint_fast64_t ws_frames_in;
	atomic_uint_fast64_t ws_bytes_in; /* payload bytes */
	atomic_uint_fast64_t ws_bytes_out;
	/* TLS handshake failures by cause (enum tls_fail), for mqtts [0]
	 * and wss [1]. */
	atomic_uint_fast64_t tls_fail[2][8];
	atomic_uint_fast64_t tls_handshakes[2];
	atomic_int_fast64_t queued_messages; /* in session queues */
	atomic_int_fast64_t queued_bytes;
	atomic_uint_fast64_t store_commits; /* durable store transactions */
	atomic_uint_fast64_t store_errors;  /* failed store writes */
	atomic_uint_fast64_t acks_held;     /* acks that waited for a commit */
	/* Connections refused by max_connections_per_address. */
	atomic_uint_fast64_t refused_per_address;
	atomic_uint_fast64_t limit_hits[LIM_COUNT]; /* enum limit_hit */
	/* Pauses of a client over max_publish_rate/max_publish_bytes_rate. */
	atomic_uint_fast64_t rate_limited;
	/* memory_limit (memlimit.h): PUBLISH packets refused over it,
	 * enforcement rounds that found it exceeded, clients disconnected. */
	atomic_uint_fast64_t mem_refused;
	atomic_uint_fast64_t mem_limit_hits;
	atomic_uint_fast64_t mem_disconnects;
	/* CONNECTs with a JWT by outcome (sys_jwt_cause): accepted, the
	 * enum jwt_result causes, and a username other than the token's. */
	atomic_uint_fast64_t jwt_auth[JWT_COUNTERS];
	/* Connections closed because their token's exp passed. */
	atomic_uint_fast64_t jwt_expired_disconnects;
};

/* The session table: client id -> session, chained hash. */
struct session_table {
	struct session **buckets;
	size_t nbuckets;
	size_t count;
};

struct broker {
	const struct config *cfg; /* immutable while workers run */
	struct subs *subs;
	struct retain *retain;
	struct worker **workers;
	int nworkers;

	pthread_mutex_t sess_mu; /* guards `sessions` */
	struct session_table sessions;

	atomic_int_fast64_t *listener_conns; /* open connections per listener */
	struct addrcap *addrcap;   /* open connections per source address */
	struct cidr_list *trusted; /* per listener: parsed trusted_proxies */
	/* Per listener TLS context (NULL: plain); swapped on SIGHUP under
	 * tls_mu, connections keep the one they started with. */
	pthread_mutex_t tls_mu;
	struct tls_ctx **tls;

	/* Current auth snapshot; swapped under auth_mu, generation bumped so
	 * workers notice without taking the lock. */
	pthread_mutex_t auth_mu;
	struct auth *auth;
	atomic_uint auth_gen;

	atomic_bool stopping;
	uint64_t start_ms;
	/* The durable store (persist.h); NULL with persistence off. */
	struct persist *persist;
	bool store_error; /* broker_init failed opening or loading it */
	atomic_uint_fast64_t next_conn_id;
	atomic_uint_fast64_t next_assigned_id;
	struct broker_stats st;

	/* Memory accounted against memory_limit (memlimit.h): bytes of
	 * messages (charged by msg_charge, given back when freed) and of
	 * connection buffers (each worker adds the change of its own sum at
	 * its tick). limit is the resolved memory_limit, 0 = off. */
	struct {
		atomic_int_fast64_t msgs;
		atomic_int_fast64_t bufs;
		uint64_t limit;
		atomic_uint_fast64_t next_enforce; /* clock_ms() */
	} mem;

	/* $SYS load averages; touched only by worker 0 (sys.c). */
	struct {
		double avg[8][3]; /* per counter: 1, 5, 15 minute averages */
		uint64_t last[8];
		uint64_t last_ms;
		uint64_t heap_max;
		uint64_t mem_max; /* memlimit_current() */
	} sys;
};

/*
 * Creates a broker for cfg (which must outlive it) with the auth snapshot
 * `auth` (ownership moves to the broker, also on failure). Opens every
 * listener socket for every worker, so port conflicts are reported here.
 * Returns 0 or a negative TERN_E* code with a message logged.
 */
int broker_init(struct broker *b, const struct config *cfg, struct auth *auth,
                int nworkers);

/* Starts the worker threads. Returns 0 or TERN_EIO. */
int broker_start(struct broker *b);

/*
 * Asks every worker to stop, waits for them (connections are closed, wills
 * of connected clients are not published: this is a clean shutdown), and
 * frees everything. Safe after a failed broker_init.
 */
void broker_stop(struct broker *b);

/*
 * Routes a message to every matching subscriber; takes no ownership of m.
 * `w` is the calling worker (for same-thread fast paths). Stores retained
 * messages when m->retain. If `backlog` is not NULL and an online
 * subscriber's queue is backlogged, *backlog gets a reference to one such
 * session (the caller holds the publisher back until it drains). Returns
 * the number of subscriptions matched.
 */
int broker_publish(struct broker *b, struct worker *w, struct msg *m,
                   struct session **backlog);

/*
 * Whether a will may be published now: its client (client_id, username, on
 * listener `listener`, or AUTH_ANY_LISTENER) must still have write access
 * to its topic under the broker's current auth snapshot, since an ACL
 * reload may have come after the CONNECT that checked it. A refused will
 * is counted (dropped, not_authorized) and logged at debug; the caller
 * drops it. Takes auth_mu briefly; call with no lock or with session
 * locks held (auth_mu is taken alone otherwise).
 */
bool broker_will_allowed(struct broker *b, const struct msg *will,
                         size_t listener, const char *client_id,
                         const char *username);

/* Messages of a leaving shared-subscription member, to hand on. */
struct redeliver {
	struct msg *m; /* reference */
	uint8_t qos;
	char *filter; /* "$share/group/filter" that brought it */
};

struct redeliver_list {
	struct redeliver *v;
	size_t n, cap;
};

/*
 * Collects the QoS 1/2 messages that s received through shared
 * subscriptions and has not completed (queued or in flight), so they can go
 * to another member of the group when s ends (MQTT 5 §4.8.2). Caller holds
 * s->mu and has not yet removed s's subscriptions.
 */
void route_collect_shared(const struct session *s, struct redeliver_list *out);

/* Delivers collected messages to other group members and empties l.
 * Call without locks, after s's subscriptions were removed. */
void route_redeliver(struct broker *b, struct worker *self,
                     struct redeliver_list *l);

/*
 * Installs a new auth snapshot (ownership moves to the broker); workers
 * switch to it before their next connection event (worker_refresh_auth)
 * and are woken if idle. Any thread.
 */
void broker_set_auth(struct broker *b, struct auth *a);

/*
 * Builds every listener's TLS context from cfg (listeners matched by
 * index). Installs them only if all succeed; otherwise logs and keeps the
 * current ones. Returns 0 or TERN_ECONFIG.
 */
int broker_load_tls(struct broker *b, const struct config *cfg);

/*
 * Builds (and frees) every listener's TLS context from cfg, to check
 * certificates and keys without starting (--test-config). Returns 0 or
 * TERN_ECONFIG with "listener PORT: reason" in err.
 */
int broker_check_tls(const struct config *cfg, char *err, size_t errlen);

/* A new reference to listener i's TLS context, or NULL (plain). */
struct tls_ctx *broker_tls_ctx(struct broker *b, size_t i);

/* Returns a new reference to the current auth snapshot. */
struct auth *broker_get_auth(struct broker *b);

/* Adds delta to a gauge and keeps clients_maximum up to date. */
void broker_count_client(struct broker *b, int transport, int delta);

#define STAT_ADD(b, field, n)                                                  \
	atomic_fetch_add_explicit(&(b)->st.field, (n), memory_order_relaxed)

/* Counts one refusal or close by a limit (enum limit_hit). */
#define STAT_LIMIT(b, lim) STAT_ADD(b, limit_hits[lim], 1)

/* Counts one dropped message with its reason (enum drop_reason). */
#define STAT_DROP(b, reason)                                                   \
	do {                                                                   \
		STAT_ADD(b, pub_dropped, 1);                                   \
		STAT_ADD(b, drops[reason], 1);                                 \
	} while (0)

#endif
