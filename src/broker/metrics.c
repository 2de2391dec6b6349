/*
 * The Prometheus text of /metrics; see metrics.h. Each family is written
 * with its # HELP and # TYPE lines first; names follow Prometheus' habits
 * (tern_ prefix, _total for counters, base units). Labels are fixed words,
 * never client-supplied text, so nothing needs escaping.
 */
#include "broker/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/error.h"
#include "broker/broker.h"
#include "broker/memlimit.h"
#include "broker/retain.h"
#include "broker/subs.h"
#include "broker/sys.h"
#include "net/tls.h"

#define LOAD(f)  ((uint64_t)atomic_load_explicit(&b->st.f, memory_order_relaxed))
#define LOADI(f) ((int64_t)atomic_load_explicit(&b->st.f, memory_order_relaxed))

static const char *const transports[TR_COUNT] = {"tcp", "tls", "ws", "wss"};

static void family(FILE *f, const char *name, const char *type,
                   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family of one unlabelled sample. */
static void one(FILE *f, const char *name, const char *type, const char *help,
                int64_t v)
{
	family(f, name, type, help);
	fprintf(f, "%s %" PRId64 "\n", name, v);
}

/* Counters that are plain totals, as a table (STYLE.md #11). */
struct counter {
	const char *name, *help;
	size_t off; /* of an atomic_uint_fast64_t in broker_stats */
};

#define C(n, f, h)                                                             \
	{                                                                      \
		n, h, offsetof(struct broker_stats, f)                         \
	}
static const struct counter counters[] = {
        C("tern_packets_received_total", msgs_received,
          "MQTT packets received."),
        C("tern_packets_sent_total", msgs_sent, "MQTT packets sent."),
        C("tern_messages_received_total", pub_received,
          "PUBLISH packets received from clients."),
        C("tern_messages_sent_total", pub_sent,
          "PUBLISH packets sent to clients."),
        C("tern_bytes_received_total", bytes_received,
          "Bytes read from client sockets."),
        C("tern_bytes_sent_total", bytes_sent,
          "Bytes written to client sockets."),
        C("tern_connects_total", clients_total_seen, "CONNECTs accepted."),
        C("tern_ws_handshakes_total", ws_upgrades,
          "WebSocket upgrades completed."),
        C("tern_ws_protocol_errors_total", ws_protocol_errors,
          "WebSocket connections failed for bad frames."),
        C("tern_ws_frames_received_total", ws_frames_in,
          "WebSocket frames received."),
        C("tern_ws_frames_sent_total", ws_frames_out, "WebSocket frames sent."),
        C("tern_store_commits_total", store_commits,
          "Durable store transactions committed."),
        C("tern_store_errors_total", store_errors,
          "Durable store writes that failed."),
        C("tern_rate_limited_total", rate_limited,
          "Times a client was paused by max_publish_rate or "
          "max_publish_bytes_rate."),
        C("tern_memory_limit_hits_total", mem_limit_hits,
          "Enforcement rounds that found memory_limit exceeded."),
        C("tern_memory_refused_total", mem_refused,
          "PUBLISH packets refused over memory_limit."),
        C("tern_memory_disconnects_total", mem_disconnects,
          "Clients disconnected over memory_limit."),
};
#undef C

static void put_counters(FILE *f, struct broker *b)
{
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		atomic_uint_fast64_t *p =
		        (atomic_uint_fast64_t *)((char *)&b->st +
		                                 counters[i].off);

		family(f, counters[i].name, "counter", counters[i].help);
		fprintf(f, "%s %" PRIu64 "\n", counters[i].name,
		        (uint64_t)atomic_load_explicit(p,
		                                       memory_order_relaxed));
	}
}

/* Refusals and closes by each limit (enum limit_hit), with
 * max_connections_per_address in the same family. */
static void put_limits(FILE *f, struct broker *b)
{
	family(f, "tern_limit_hits_total", "counter",
	       "Times a limit refused or closed something, by limit.");
	for (int i = 0; i < LIM_COUNT; i++)
		fprintf(f, "tern_limit_hits_total{limit=\"%s\"} %" PRIu64 "\n",
		        sys_limit_names[i], LOAD(limit_hits[i]));
	fprintf(f,
	        "tern_limit_hits_total{limit=\"max_connections_per_address\"} "
	        "%" PRIu64 "\n",
	        LOAD(refused_per_address));
}

static void put_drops(FILE *f, struct broker *b)
{
	static const char *const reasons[DROP_COUNT] = {
	        [DROP_QUEUE_FULL] = "queue_full",
	        [DROP_TOO_LARGE] = "too_large",
	        [DROP_EXPIRED] = "expired",
	        [DROP_NOT_AUTHORIZED] = "not_authorized",
	        [DROP_SIZE_LIMIT] = "size_limit",
	        [DROP_TOPIC_LIMIT] = "topic_limit",
	        [DROP_MEMORY_LIMIT] = "memory_limit",
	};

	family(f, "tern_messages_dropped_total", "counter",
	       "Messages dropped, by reason: a session queue at its bound, "
	       "over the receiver's maximum packet size, expired, refused "
	       "by the ACL, over message_size_limit, over max_topic_length "
	       "or max_topic_levels, over memory_limit.");
	for (int i = 0; i < DROP_COUNT; i++)
		fprintf(f,
		        "tern_messages_dropped_total{reason=\"%s\"} %" PRIu64
		        "\n",
		        reasons[i], LOAD(drops[i]));
}

/*
 * The durable store's files on disk (the database and its write-ahead
 * log), when persistence is on; stat() is cheap and needs no lock.
 */
static void put_store(FILE *f, struct broker *b)
{
	const struct config *cfg = b->cfg;
	char path[4096];
	struct stat st;
	int64_t total = 0;

	if (!cfg->persistence)
		return;
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s%s%s%s",
		         cfg->persistence_location ? cfg->persistence_location
		                                   : "",
		         cfg->persistence_location ? "/" : "",
		         cfg->persistence_file ? cfg->persistence_file
		                               : "tern.db",
		         i ? "-wal" : "");
		if (stat(path, &st) == 0)
			total += (int64_t)st.st_size;
	}
	one(f, "tern_store_file_bytes", "gauge",
	    "Bytes of the durable store's files (database and its log).",
	    total);
}

static void put_transports(FILE *f, struct broker *b)
{
	family(f, "tern_connections", "gauge",
	       "Connected MQTT clients by transport.");
	for (int t = 0; t < TR_COUNT; t++)
		fprintf(f, "tern_connections{transport=\"%s\"} %" PRId64 "\n",
		        transports[t], LOADI(transport_connected[t]));
	family(f, "tern_ws_handshake_failures_total", "counter",
	       "WebSocket handshakes refused, by cause.");
	for (int i = 0; i < WSF_COUNT; i++)
		fprintf(f,
		        "tern_ws_handshake_failures_total{cause=\"%s\"} "
		        "%" PRIu64 "\n",
		        sys_ws_causes[i], LOAD(ws_handshake_fail[i]));
	family(f, "tern_tls_handshakes_total", "counter",
	       "TLS handshakes completed, by transport.");
	for (int t = 0; t < 2; t++)
		fprintf(f,
		        "tern_tls_handshakes_total{transport=\"%s\"} %" PRIu64
		        "\n",
		        t ? "wss" : "tls", LOAD(tls_handshakes[t]));
	family(f, "tern_tls_handshake_failures_total", "counter",
	       "TLS handshakes failed, by transport and cause.");
	for (int t = 0; t < 2; t++)
		for (int i = 1; i < TLSF_COUNT; i++)
			fprintf(f,
			        "tern_tls_handshake_failures_total{transport="
			        "\"%s\",cause=\"%s\"} %" PRIu64 "\n",
			        t ? "wss" : "tls", sys_tls_causes[i],
			        LOAD(tls_fail[t][i]));
}

static void put_jwt(FILE *f, struct broker *b)
{
	family(f, "tern_jwt_auth_total", "counter",
	       "CONNECTs with a JSON Web Token, accepted or refused by cause.");
	for (int i = 0; i < JWT_COUNTERS; i++)
		fprintf(f, "tern_jwt_auth_total{result=\"%s\"} %" PRIu64 "\n",
		        sys_jwt_cause(i), LOAD(jwt_auth[i]));
	one(f, "tern_jwt_expired_disconnects_total", "counter",
	    "Connections closed because their token expired.",
	    (int64_t)LOAD(jwt_expired_disconnects));
}

static void put_gauges(FILE *f, struct broker *b)
{
	size_t sessions;

	pthread_mutex_lock(&b->sess_mu);
	sessions = b->sessions.count;
	pthread_mutex_unlock(&b->sess_mu);
	one(f, "tern_sockets", "gauge", "Open client sockets.",
	    LOADI(connections));
	one(f, "tern_clients_connected", "gauge", "Connected MQTT clients.",
	    LOADI(clients_connected));
	one(f, "tern_clients_maximum", "gauge",
	    "Most MQTT clients connected at once.", LOADI(clients_maximum));
	one(f, "tern_sessions", "gauge", "Sessions, online and offline.",
	    (int64_t)sessions);
	one(f, "tern_sessions_offline", "gauge",
	    "Persistent sessions whose client is away.",
	    LOADI(sessions_offline));
	one(f, "tern_subscriptions", "gauge", "Subscriptions.",
	    (int64_t)subs_count(b->subs));
	one(f, "tern_retained_messages", "gauge", "Retained messages.",
	    (int64_t)retain_count(b->retain));
	one(f, "tern_retained_bytes", "gauge",
	    "Payload bytes of retained messages.",
	    (int64_t)retain_bytes(b->retain));
	one(f, "tern_queued_messages", "gauge",
	    "Messages queued for clients, in flight included.",
	    LOADI(queued_messages));
	one(f, "tern_queued_bytes", "gauge",
	    "Payload bytes queued for clients.", LOADI(queued_bytes));
	one(f, "tern_memory_bytes", "gauge",
	    "Bytes accounted against memory_limit: messages from clients "
	    "and connection buffers.",
	    (int64_t)memlimit_current(b));
	one(f, "tern_memory_limit_bytes", "gauge",
	    "memory_limit in bytes; 0 = off.", (int64_t)b->mem.limit);
	one(f, "tern_uptime_seconds", "gauge", "Seconds since start.",
	    (int64_t)((clock_ms() - b->start_ms) / 1000));
}

int metrics_render(struct broker *b, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (!f)
		return TERN_ENOMEM;
	put_gauges(f, b);
	put_transports(f, b);
	put_jwt(f, b);
	put_counters(f, b);
	put_drops(f, b);
	put_limits(f, b);
	put_store(f, b);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return TERN_ENOMEM;
	}
	*out = buf;
	*len = n;
	return 0;
}
