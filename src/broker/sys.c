/*
 * Housekeeping run by worker 0: the $SYS topics (retained, every
 * sys_interval seconds, named as Mosquitto names them) and the sweep of
 * offline sessions for expiry and delayed wills.
 */
#include "broker/sys.h"

#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/memlimit.h"
#include "broker/msg.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/subs.h"
#include "net/tls.h"

const char *const sys_ws_causes[WSF_COUNT] = {
        [WSF_REQUEST] = "bad_request",
        [WSF_VERSION] = "bad_version",
        [WSF_PATH] = "bad_path",
        [WSF_ORIGIN] = "bad_origin",
        [WSF_SUBPROTOCOL] = "no_subprotocol",
        [WSF_TIMEOUT] = "timeout",
};

const char *const sys_tls_causes[TLSF_COUNT] = {
        [TLSF_NONE] = NULL,
        [TLSF_NO_CERT] = "no_certificate",
        [TLSF_BAD_CERT] = "bad_certificate",
        [TLSF_VERSION] = "protocol_version",
        [TLSF_NOT_TLS] = "not_tls",
        [TLSF_OTHER] = "other",
        [TLSF_TIMEOUT] = "timeout",
};

const char *sys_jwt_cause(int i)
{
	/* jwt.c names the refusals; the counters add the two outcomes only
	 * the broker knows. */
	if (i == JWT_OK)
		return "accepted";
	if (i == JWT_WRONG_USERNAME)
		return "wrong_username";
	return jwt_result_name((enum jwt_result)i);
}

const char *const sys_limit_names[LIM_COUNT] = {
        [LIM_MAX_CONNECTIONS] = "max_connections",
        [LIM_LISTENER_CONNECTIONS] = "max_connections_listener",
        [LIM_CONNECT_TIMEOUT] = "connect_timeout",
        [LIM_PACKET_SIZE] = "max_packet_size",
        [LIM_RECEIVE_MAXIMUM] = "receive_maximum",
        [LIM_SUBSCRIPTIONS] = "max_subscriptions_per_client",
        [LIM_TOPIC_FILTER] = "max_topic_filter",
        [LIM_KEEPALIVE] = "keepalive",
        [LIM_MAX_KEEPALIVE] = "max_keepalive",
        [LIM_WS_FRAME] = "ws_max_frame_size",
        [LIM_PUBLISH_RATE] = "publish_rate",
        [LIM_MEMORY] = "memory_limit",
};

#ifndef TERN_VERSION
#define TERN_VERSION "0.1.0"
#endif

static void sys_put(struct broker *b, struct worker *w, uint64_t now,
                    const char *topic, const char *value)
{
	struct msg *m =
	        msg_new_simple(topic, value, strlen(value), 0, true, now);

	if (!m)
		return;
	broker_publish(b, w, m, NULL);
	msg_unref(m);
}

static void sys_put_u64(struct broker *b, struct worker *w, uint64_t now,
                        const char *topic, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	sys_put(b, w, now, topic, buf);
}

#define LOAD(f) ((uint64_t)atomic_load_explicit(&b->st.f, memory_order_relaxed))

/*
 * Load averages as Mosquitto publishes them: per-minute rates smoothed over
 * 1, 5 and 15 minutes with an exponential moving average updated every
 * sys_interval.
 */
static void sys_put_load(struct broker *b, struct worker *w, uint64_t now)
{
	static const char *names[] = {
	        "messages/received", "messages/sent",   "publish/received",
	        "publish/sent",      "publish/dropped", "bytes/received",
	        "bytes/sent",        "connections",
	};
	static const double periods[3] = {60.0, 300.0, 900.0};
	static const char *suffix[3] = {"1min", "5min", "15min"};
	uint64_t cur[8] = {
	        LOAD(msgs_received), LOAD(msgs_sent),
	        LOAD(pub_received),  LOAD(pub_sent),
	        LOAD(pub_dropped),   LOAD(bytes_received),
	        LOAD(bytes_sent),    LOAD(clients_total_seen),
	};
	double dt =
	        b->sys.last_ms ? (double)(now - b->sys.last_ms) / 1000.0 : 0.0;
	char topic[96], buf[32];
	int i, k;

	for (i = 0; i < 8; i++) {
		double rate =
		        dt > 0 ? (double)(cur[i] - b->sys.last[i]) * 60.0 / dt
		               : 0.0;

		for (k = 0; k < 3; k++) {
			double f = dt > 0 ? exp(-dt / periods[k]) : 1.0;
			double *avg = &b->sys.avg[i][k];

			*avg = rate + f * (*avg - rate);
			snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s",
			         names[i], suffix[k]);
			snprintf(buf, sizeof(buf), "%.2f", *avg);
			sys_put(b, w, now, topic, buf);
		}
		b->sys.last[i] = cur[i];
	}
	b->sys.last_ms = now;
}

/* Heap in use as the C library reports it (all allocations, not only
 * tern's own), and the highest value seen. */
static void sys_put_heap(struct broker *b, struct worker *w, uint64_t now)
{
	struct mallinfo2 mi = mallinfo2();
	uint64_t cur = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;

	if (cur > b->sys.heap_max)
		b->sys.heap_max = cur;
	sys_put_u64(b, w, now, "$SYS/broker/heap/current", cur);
	sys_put_u64(b, w, now, "$SYS/broker/heap/maximum", b->sys.heap_max);
}

/* memory_limit (memlimit.h): the accounted bytes, their highest value seen,
 * the limit (0 = off) and what it did. */
static void sys_put_memory(struct broker *b, struct worker *w, uint64_t now)
{
	uint64_t cur = memlimit_current(b);

	if (cur > b->sys.mem_max)
		b->sys.mem_max = cur;
	sys_put_u64(b, w, now, "$SYS/broker/memory/current", cur);
	sys_put_u64(b, w, now, "$SYS/broker/memory/maximum", b->sys.mem_max);
	sys_put_u64(b, w, now, "$SYS/broker/memory/limit", b->mem.limit);
	sys_put_u64(b, w, now, "$SYS/broker/memory/limit_hits",
	            LOAD(mem_limit_hits));
	sys_put_u64(b, w, now, "$SYS/broker/memory/refused", LOAD(mem_refused));
	sys_put_u64(b, w, now, "$SYS/broker/memory/disconnects",
	            LOAD(mem_disconnects));
}

/* Times each limit refused or closed something (enum limit_hit), and
 * max_connections_per_address under the same prefix. */
static void sys_put_limits(struct broker *b, struct worker *w, uint64_t now)
{
	char topic[96];
	int i;

	for (i = 0; i < LIM_COUNT; i++) {
		snprintf(topic, sizeof(topic), "$SYS/broker/limits/%s",
		         sys_limit_names[i]);
		sys_put_u64(b, w, now, topic, LOAD(limit_hits[i]));
	}
	sys_put_u64(b, w, now, "$SYS/broker/limits/max_connections_per_address",
	            LOAD(refused_per_address));
}

/* WebSocket transport counters: handshakes, failures by cause, traffic. */
static void sys_put_ws(struct broker *b, struct worker *w, uint64_t now)
{
	char topic[96];
	int i;

	sys_put_u64(b, w, now, "$SYS/broker/transport/ws/handshakes",
	            LOAD(ws_upgrades));
	for (i = 0; i < WSF_COUNT; i++) {
		snprintf(topic, sizeof(topic),
		         "$SYS/broker/transport/ws/handshake_failures/%s",
		         sys_ws_causes[i]);
		sys_put_u64(b, w, now, topic, LOAD(ws_handshake_fail[i]));
	}
	sys_put_u64(b, w, now, "$SYS/broker/transport/ws/protocol_errors",
	            LOAD(ws_protocol_errors));
	sys_put_u64(b, w, now, "$SYS/broker/transport/ws/frames/sent",
	            LOAD(ws_frames_out));
	sys_put_u64(b, w, now, "$SYS/broker/transport/ws/frames/received",
	            LOAD(ws_frames_in));
	sys_put_u64(b, w, now, "$SYS/broker/transport/ws/bytes/received",
	            LOAD(ws_bytes_in));
	sys_put_u64(b, w, now, "$SYS/broker/transport/ws/bytes/sent",
	            LOAD(ws_bytes_out));
}

/* TLS handshakes and failures by cause, for mqtts ("tls") and wss. */
static void sys_put_tls(struct broker *b, struct worker *w, uint64_t now)
{
	static const char *tr[2] = {"tls", "wss"};
	char topic[112];
	int t, i;

	for (t = 0; t < 2; t++) {
		snprintf(topic, sizeof(topic),
		         "$SYS/broker/transport/%s/handshakes", tr[t]);
		sys_put_u64(b, w, now, topic, LOAD(tls_handshakes[t]));
		for (i = 1; i < TLSF_COUNT; i++) {
			snprintf(topic, sizeof(topic),
			         "$SYS/broker/transport/%s/handshake_failures/"
			         "%s",
			         tr[t], sys_tls_causes[i]);
			sys_put_u64(b, w, now, topic, LOAD(tls_fail[t][i]));
		}
	}
}

/* CONNECTs with a JWT: accepted, refused by cause, and connections
 * closed when their token expired. */
static void sys_put_jwt(struct broker *b, struct worker *w, uint64_t now)
{
	char topic[96];

	sys_put_u64(b, w, now, "$SYS/broker/auth/jwt/accepted",
	            LOAD(jwt_auth[JWT_OK]));
	for (int i = JWT_OK + 1; i < JWT_COUNTERS; i++) {
		snprintf(topic, sizeof(topic),
		         "$SYS/broker/auth/jwt/refused/%s", sys_jwt_cause(i));
		sys_put_u64(b, w, now, topic, LOAD(jwt_auth[i]));
	}
	sys_put_u64(b, w, now, "$SYS/broker/auth/jwt/expired_disconnects",
	            LOAD(jwt_expired_disconnects));
}

void sys_publish(struct broker *b, struct worker *w, uint64_t now)
{
	static const char *tr[TR_COUNT] = {"tcp", "tls", "ws", "wss"};
	char topic[96], buf[64];
	int i;

	sys_put(b, w, now, "$SYS/broker/version", "tern version " TERN_VERSION);
	snprintf(buf, sizeof(buf), "%" PRIu64 " seconds",
	         (now - b->start_ms) / 1000u);
	sys_put(b, w, now, "$SYS/broker/uptime", buf);
	sys_put_u64(b, w, now, "$SYS/broker/clients/connected",
	            LOAD(clients_connected));
	sys_put_u64(b, w, now, "$SYS/broker/clients/active",
	            LOAD(clients_connected));
	sys_put_u64(b, w, now, "$SYS/broker/clients/disconnected",
	            LOAD(sessions_offline));
	sys_put_u64(b, w, now, "$SYS/broker/clients/inactive",
	            LOAD(sessions_offline));
	sys_put_u64(b, w, now, "$SYS/broker/clients/maximum",
	            LOAD(clients_maximum));
	sys_put_u64(b, w, now, "$SYS/broker/clients/total",
	            LOAD(clients_connected) + LOAD(sessions_offline));
	sys_put_u64(b, w, now, "$SYS/broker/messages/received",
	            LOAD(msgs_received));
	sys_put_u64(b, w, now, "$SYS/broker/messages/sent", LOAD(msgs_sent));
	sys_put_u64(b, w, now, "$SYS/broker/publish/messages/received",
	            LOAD(pub_received));
	sys_put_u64(b, w, now, "$SYS/broker/publish/messages/sent",
	            LOAD(pub_sent));
	sys_put_u64(b, w, now, "$SYS/broker/publish/messages/dropped",
	            LOAD(pub_dropped));
	sys_put_u64(b, w, now, "$SYS/broker/connections/refused/per_address",
	            LOAD(refused_per_address));
	sys_put_u64(b, w, now, "$SYS/broker/publish/rate_limited",
	            LOAD(rate_limited));
	sys_put_limits(b, w, now);
	sys_put_u64(b, w, now, "$SYS/broker/bytes/received",
	            LOAD(bytes_received));
	sys_put_u64(b, w, now, "$SYS/broker/bytes/sent", LOAD(bytes_sent));
	sys_put_u64(b, w, now, "$SYS/broker/subscriptions/count",
	            subs_count(b->subs));
	sys_put_u64(b, w, now, "$SYS/broker/retained messages/count",
	            retain_count(b->retain));
	sys_put_u64(b, w, now, "$SYS/broker/store/messages/count",
	            LOAD(queued_messages));
	sys_put_u64(b, w, now, "$SYS/broker/store/messages/bytes",
	            LOAD(queued_bytes));
	if (b->persist) {
		sys_put_u64(b, w, now, "$SYS/broker/store/commits",
		            LOAD(store_commits));
		sys_put_u64(b, w, now, "$SYS/broker/store/errors",
		            LOAD(store_errors));
		sys_put_u64(b, w, now, "$SYS/broker/store/acks_held",
		            LOAD(acks_held));
	}
	sys_put_load(b, w, now);
	sys_put_heap(b, w, now);
	sys_put_memory(b, w, now);
	for (i = 0; i < TR_COUNT; i++) {
		snprintf(topic, sizeof(topic),
		         "$SYS/broker/transport/%s/connected", tr[i]);
		sys_put_u64(b, w, now, topic, LOAD(transport_connected[i]));
	}
	sys_put_ws(b, w, now);
	sys_put_tls(b, w, now);
	sys_put_jwt(b, w, now);
}

/* Collects wills to publish once the session table lock is released. */
struct will_list {
	struct msg **v;
	size_t n, cap;
};

static void will_list_add(struct will_list *l, struct msg *m)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 8;
		struct msg **v = realloc(l->v, ncap * sizeof(*v));

		if (!v) {
			msg_unref(m);
			return;
		}
		l->v = v;
		l->cap = ncap;
	}
	l->v[l->n++] = m;
}

/* Checks one offline session; returns true if it ended. Holds both locks.
 * A due will is checked against the ACL here, while the session still
 * names its client (broker_will_allowed). */
static bool sys_sweep_one(struct broker *b, struct session *s, uint64_t now,
                          struct will_list *wills, struct redeliver_list *rl)
{
	bool expired = session_expired(s, now);

	if (s->will && (now >= s->will_at || expired)) {
		if (broker_will_allowed(b, s->will, s->listener, s->client_id,
		                        s->username))
			will_list_add(wills, s->will);
		else
			msg_unref(s->will);
		s->will = NULL;
		/* The stored record must not publish it again. */
		if (!expired && s->p)
			persist_session_put(
			        s, NULL, 0,
			        persist_wall_ms() -
			                (int64_t)(now - s->offline_since));
	}
	if (!expired)
		return false;
	route_collect_shared(s, rl);
	session_clear_subs(b, s);
	session_clear_messages(b, s);
	return true;
}

void sys_sweep_sessions(struct broker *b, struct worker *w, uint64_t now)
{
	struct will_list wills = {0};
	struct redeliver_list rl = {0};
	size_t i;

	pthread_mutex_lock(&b->sess_mu);
	for (i = 0; i < b->sessions.nbuckets; i++) {
		struct session *s = b->sessions.buckets[i], *next;

		for (; s; s = next) {
			bool ended;

			next = s->hnext;
			pthread_mutex_lock(&s->mu);
			ended = !s->w && sys_sweep_one(b, s, now, &wills, &rl);
			pthread_mutex_unlock(&s->mu);
			if (ended) {
				log_msg(LOG_NOTICE, "Session of %s expired.",
				        s->client_id);
				STAT_ADD(b, sessions_offline, -1);
				session_remove(b, s); /* may free s */
			}
		}
	}
	pthread_mutex_unlock(&b->sess_mu);
	if (rl.n)
		route_redeliver(b, w, &rl);
	for (i = 0; i < wills.n; i++) {
		broker_publish(b, w, wills.v[i], NULL);
		msg_unref(wills.v[i]);
	}
	free(wills.v);
}
