/*
 * /metrics and the JSON admin API; see http_api.h. Requests are routed
 * through one table (method, path, whether the path continues with a
 * client id); each handler fills a JSON writer and a status.
 *
 * Listing clients walks the session table under broker.sess_mu and locks
 * each session in turn (the documented lock order); it reads what the
 * session records about its connection (transport, peer, version), never
 * the connection itself, which belongs to its worker.
 */
#include "broker/http_api.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/json.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/memlimit.h"
#include "broker/metrics.h"
#include "broker/msg.h"
#include "broker/passwd.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/subs.h"
#include "broker/worker.h"
#include "http/http.h"
#include "mqtt/packet.h"

/* Most clients one listing returns; the rest is summarised by a count. */
#define API_MAX_LIST 10000
/* Longest client id a path may name, decoded. */
#define API_MAX_ID 1024

struct api {
	const struct http_api_req *r;
	struct broker *b;
	struct json_w j;
	int status;
	const char *reason;
};

static bool method_is(const struct http_request *req, const char *m)
{
	return req->method.len == strlen(m) &&
	       memcmp(req->method.p, m, req->method.len) == 0;
}

bool http_api_is_loopback(const char *host)
{
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
	       strncmp(host, "::ffff:127.", 11) == 0;
}

/* ---- credentials ---- */

static bool api_configured(const struct http_api_req *r)
{
	const struct config *cfg = r->w->b->cfg;

	return cfg->admin_token ||
	       (cfg->admin_user && r->w->auth && r->w->auth->admin_pw);
}

/* Basic sends the password in clear: only over TLS or on this machine. */
static bool basic_allowed(const struct http_api_req *r)
{
	return r->tls || http_api_is_loopback(r->host);
}

static bool check_bearer(const struct http_api_req *r, const char *p, size_t n)
{
	const char *tok = r->w->b->cfg->admin_token;

	return tok && strlen(tok) == n && CRYPTO_memcmp(tok, p, n) == 0;
}

/* Checks "user:password" sent as Basic credentials (base64 in p[0..n)). */
static bool check_basic(const struct http_api_req *r, const char *p, size_t n)
{
	const struct config *cfg = r->w->b->cfg;
	struct http_basic c;

	if (!cfg->admin_user || !r->w->auth || !r->w->auth->admin_pw ||
	    !basic_allowed(r) || http_basic_decode(p, n, &c) != 0 ||
	    strcmp(c.user, cfg->admin_user) != 0)
		return false;
	return passwd_check(r->w->auth->admin_pw, cfg->admin_user,
	                    (const uint8_t *)c.pass, c.plen);
}

static bool authorized(const struct http_api_req *r)
{
	const struct http_header *h = http_find(r->req, "Authorization");
	const char *v;
	size_t n;

	if (!h)
		return false;
	v = h->value.p;
	n = h->value.len;
	if (n > 7 && strncasecmp(v, "Bearer ", 7) == 0)
		return check_bearer(r, v + 7, n - 7);
	if (n > 6 && strncasecmp(v, "Basic ", 6) == 0)
		return check_basic(r, v + 6, n - 6);
	return false;
}

/* ---- replies ---- */

static void set_status(struct api *a, int status, const char *reason)
{
	a->status = status;
	a->reason = reason;
}

/* An error reply: {"error": why}. */
static void fail(struct api *a, int status, const char *reason, const char *why)
{
	json_w_free(&a->j);
	set_status(a, status, reason);
	json_obj_begin(&a->j, NULL);
	json_str(&a->j, "error", why);
	json_obj_end(&a->j);
}

/* ---- handlers ---- */

static const char *version_name(uint8_t v)
{
	return v == 5 ? "5.0" : v == 4 ? "3.1.1" : v == 3 ? "3.1" : "?";
}

/* One client's summary; caller holds s->mu. */
static void put_client(struct api *a, const struct session *s, uint64_t now)
{
	bool online = s->conn != NULL;

	json_str(&a->j, "id", s->client_id);
	json_str(&a->j, "username", s->username);
	json_bool(&a->j, "connected", online);
	json_str(&a->j, "protocol", version_name(s->version));
	json_str(&a->j, "transport", conn_transport_name(s->transport));
	json_str(&a->j, "peer", s->peer);
	if (online)
		json_u64(&a->j, "connected_seconds",
		         (now - s->connected_at) / 1000);
	else
		json_u64(&a->j, "offline_seconds",
		         (now - s->offline_since) / 1000);
	json_u64(&a->j, "session_expiry", s->expiry);
	json_u64(&a->j, "subscriptions", s->nsubs);
	json_u64(&a->j, "queued", s->qlen);
	json_u64(&a->j, "inflight", s->ninfl);
}

static void put_subs(struct api *a, const struct session *s, bool with_id)
{
	for (uint32_t i = 0; i < s->nsubs; i++) {
		const struct sub_rec *r = &s->subsv[i];

		json_obj_begin(&a->j, NULL);
		if (with_id)
			json_str(&a->j, "client", s->client_id);
		json_str(&a->j, "topic", r->filter);
		json_u64(&a->j, "qos", r->opts.qos);
		if (s->version == 5) {
			json_bool(&a->j, "no_local", r->opts.no_local);
			json_bool(&a->j, "retain_as_published",
			          r->opts.retain_as_published);
			json_u64(&a->j, "retain_handling",
			         r->opts.retain_handling);
		}
		json_obj_end(&a->j);
	}
}

/* Calls fn on every session (locked) under sess_mu; returns how many
 * were skipped because the listing reached API_MAX_LIST. */
static size_t each_session(struct api *a,
                           void (*fn)(struct api *, struct session *))
{
	struct session_table *t = &a->b->sessions;
	size_t seen = 0;

	pthread_mutex_lock(&a->b->sess_mu);
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct session *s = t->buckets[i]; s; s = s->hnext) {
			if (++seen > API_MAX_LIST)
				continue;
			pthread_mutex_lock(&s->mu);
			fn(a, s);
			pthread_mutex_unlock(&s->mu);
		}
	pthread_mutex_unlock(&a->b->sess_mu);
	return seen > API_MAX_LIST ? seen - API_MAX_LIST : 0;
}

static void list_client(struct api *a, struct session *s)
{
	json_obj_begin(&a->j, NULL);
	put_client(a, s, clock_ms());
	json_obj_end(&a->j);
}

static void list_subs(struct api *a, struct session *s)
{
	put_subs(a, s, true);
}

static void api_clients(struct api *a, const char *id)
{
	size_t more;

	json_obj_begin(&a->j, NULL);
	json_arr_begin(&a->j, "clients");
	more = each_session(a, list_client);
	json_arr_end(&a->j);
	json_u64(&a->j, "not_listed", more);
	json_obj_end(&a->j);
}

static void api_subscriptions(struct api *a, const char *id)
{
	size_t more;

	json_obj_begin(&a->j, NULL);
	json_arr_begin(&a->j, "subscriptions");
	more = each_session(a, list_subs);
	json_arr_end(&a->j);
	json_u64(&a->j, "count", subs_count(a->b->subs));
	json_u64(&a->j, "sessions_not_listed", more);
	json_obj_end(&a->j);
}

/* Finds a session by id and locks it (under sess_mu, then s->mu). */
static struct session *find_locked(struct api *a, const char *id)
{
	struct session *s;

	pthread_mutex_lock(&a->b->sess_mu);
	s = session_find(a->b, id);
	if (s)
		pthread_mutex_lock(&s->mu);
	pthread_mutex_unlock(&a->b->sess_mu);
	return s;
}

static void api_client(struct api *a, const char *id)
{
	struct session *s = find_locked(a, id);

	if (!s) {
		fail(a, 404, "Not Found", "no such client");
		return;
	}
	json_obj_begin(&a->j, NULL);
	put_client(a, s, clock_ms());
	json_arr_begin(&a->j, "subscription_list");
	put_subs(a, s, false);
	json_arr_end(&a->j);
	json_obj_end(&a->j);
	pthread_mutex_unlock(&s->mu);
}

/*
 * Disconnects a client: its worker closes the connection at its next
 * inbox drain, sending DISCONNECT 0x98 (Administrative action) to a v5
 * client, as a session takeover does with 0x8E.
 */
static void api_kick(struct api *a, const char *id)
{
	struct session *s = find_locked(a, id);
	bool online;

	if (!s) {
		fail(a, 404, "Not Found", "no such client");
		return;
	}
	online = s->conn != NULL && s->w != NULL;
	if (online)
		worker_post_kick(s->w, s->conn_id, MQTT_RC_ADMIN_ACTION);
	pthread_mutex_unlock(&s->mu);
	if (!online) {
		fail(a, 409, "Conflict", "client not connected");
		return;
	}
	set_status(a, 202, "Accepted");
	json_obj_begin(&a->j, NULL);
	json_str(&a->j, "kicked", id);
	json_obj_end(&a->j);
}

/* Reads the publish body's payload: text, or base64 with
 * "encoding": "base64". Returns its length or <0; *out is malloc'd. */
static int publish_payload(const struct json_val *pl,
                           const struct json_val *enc, char **out)
{
	char *text = malloc(pl->len + 1), *bin = NULL;
	int n, m;

	*out = NULL;
	if (!text)
		return TERN_ENOMEM;
	n = json_string(pl, text, pl->len + 1);
	if (n < 0 || enc->type == JSON_ABSENT) {
		*out = text;
		return n;
	}
	if (enc->len != 6 || memcmp(enc->p, "base64", 6) != 0 || n % 4)
		goto bad;
	bin = malloc((size_t)n / 4 * 3 + 1);
	if (!bin)
		goto bad;
	m = EVP_DecodeBlock((unsigned char *)bin, (unsigned char *)text, n);
	if (m < 0)
		goto bad;
	if (n)
		m -= (text[n - 1] == '=') + (text[n - 2] == '=');
	free(text);
	*out = bin;
	return m;
bad:
	free(text);
	free(bin);
	return TERN_EINVAL;
}

/* Checks the publish body's topic and copies it NUL-terminated. */
static int publish_topic(const struct json_val *t, char *out, size_t cap)
{
	int n;

	if (t->type != JSON_STRING)
		return TERN_EINVAL;
	n = json_string(t, out, cap - 1);
	if (n <= 0 || memchr(out, '\0', (size_t)n) ||
	    mqtt_topic_name_check((const uint8_t *)out, (size_t)n) != 0)
		return TERN_EINVAL;
	out[n] = '\0';
	return 0;
}

static void api_publish(struct api *a, const char *id)
{
	static const char *const names[] = {"topic", "payload", "qos", "retain",
	                                    "encoding"};
	struct json_val v[5];
	char topic[65536], *payload = NULL;
	int64_t qos = 0;
	int n;
	struct msg *m;

	if (!a->r->body ||
	    json_object_get(a->r->body, a->r->blen, names, v, 5) != 0) {
		fail(a, 400, "Bad Request", "body is not a JSON object");
		return;
	}
	if (publish_topic(&v[0], topic, sizeof(topic)) != 0) {
		fail(a, 400, "Bad Request",
		     "topic missing or not a topic name");
		return;
	}
	if ((v[2].type != JSON_ABSENT && json_int(&v[2], 0, 2, &qos) != 0) ||
	    (v[3].type != JSON_ABSENT && v[3].type != JSON_TRUE &&
	     v[3].type != JSON_FALSE) ||
	    (v[1].type != JSON_ABSENT && v[1].type != JSON_STRING) ||
	    (v[4].type != JSON_ABSENT && v[4].type != JSON_STRING)) {
		fail(a, 400, "Bad Request",
		     "qos is 0-2, retain a boolean, payload a string");
		return;
	}
	n = v[1].type == JSON_STRING ? publish_payload(&v[1], &v[4], &payload)
	                             : 0;
	if (n < 0) {
		fail(a, 400, "Bad Request", "payload is not valid");
		return;
	}
	m = msg_new_simple(topic, payload, (size_t)n, (uint8_t)qos,
	                   v[3].type == JSON_TRUE, clock_ms());
	free(payload);
	if (!m) {
		fail(a, 500, "Internal Server Error", "out of memory");
		return;
	}
	msg_charge(m, &a->b->mem.msgs); /* memory_limit, as from a client */
	n = broker_publish(a->b, a->r->w, m, NULL);
	msg_unref(m);
	json_obj_begin(&a->j, NULL);
	json_u64(&a->j, "matched", n > 0 ? (uint64_t)n : 0);
	json_obj_end(&a->j);
}

#define LOAD(f)  ((uint64_t)atomic_load_explicit(&b->st.f, memory_order_relaxed))
#define LOADI(f) ((int64_t)atomic_load_explicit(&b->st.f, memory_order_relaxed))

static void api_stats(struct api *a, const char *id)
{
	static const char *const tr[TR_COUNT] = {"tcp", "tls", "ws", "wss"};
	struct broker *b = a->b;
	size_t sessions;

	pthread_mutex_lock(&b->sess_mu);
	sessions = b->sessions.count;
	pthread_mutex_unlock(&b->sess_mu);
	json_obj_begin(&a->j, NULL);
	json_u64(&a->j, "uptime_seconds", (clock_ms() - b->start_ms) / 1000);
	json_i64(&a->j, "clients_connected", LOADI(clients_connected));
	json_i64(&a->j, "clients_maximum", LOADI(clients_maximum));
	json_obj_begin(&a->j, "connections");
	for (int t = 0; t < TR_COUNT; t++)
		json_i64(&a->j, tr[t], LOADI(transport_connected[t]));
	json_obj_end(&a->j);
	json_u64(&a->j, "sessions", sessions);
	json_i64(&a->j, "sessions_offline", LOADI(sessions_offline));
	json_u64(&a->j, "subscriptions", subs_count(b->subs));
	json_u64(&a->j, "retained_messages", retain_count(b->retain));
	json_u64(&a->j, "messages_received", LOAD(pub_received));
	json_u64(&a->j, "messages_sent", LOAD(pub_sent));
	json_u64(&a->j, "messages_dropped", LOAD(pub_dropped));
	json_u64(&a->j, "bytes_received", LOAD(bytes_received));
	json_u64(&a->j, "bytes_sent", LOAD(bytes_sent));
	json_i64(&a->j, "queued_messages", LOADI(queued_messages));
	json_i64(&a->j, "queued_bytes", LOADI(queued_bytes));
	json_u64(&a->j, "memory_bytes", memlimit_current(b));
	json_u64(&a->j, "memory_limit", b->mem.limit);
	json_u64(&a->j, "workers", (uint64_t)b->nworkers);
	json_obj_end(&a->j);
}

/* ---- routing ---- */

struct route {
	const char *method;
	const char *path;
	bool with_id; /* path continues with "/{client id}" */
	void (*fn)(struct api *a, const char *id);
};

static const struct route routes[] = {
        {"GET", "/api/v1/clients", false, api_clients},
        {"GET", "/api/v1/clients", true, api_client},
        {"DELETE", "/api/v1/clients", true, api_kick},
        {"GET", "/api/v1/subscriptions", false, api_subscriptions},
        {"POST", "/api/v1/publish", false, api_publish},
        {"GET", "/api/v1/stats", false, api_stats},
};

/*
 * Matches the path against a route: *id gets the decoded client id of a
 * with_id route. Returns 1 on a match, 0 if not, -1 for a bad id.
 */
static int route_match(const struct route *rt, const struct http_str *path,
                       char *id, size_t cap)
{
	size_t n = strlen(rt->path);

	if (path->len < n || memcmp(path->p, rt->path, n) != 0)
		return 0;
	if (!rt->with_id)
		return path->len == n;
	if (path->len <= n + 1 || path->p[n] != '/')
		return 0;
	return http_pct_decode(path->p + n + 1, path->len - n - 1, id, cap) > 0
	               ? 1
	               : -1;
}

static void api_route(struct api *a)
{
	const struct http_request *req = a->r->req;
	char id[API_MAX_ID + 1];
	bool path_known = false;

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int m = route_match(&routes[i], &req->path, id, sizeof(id));

		if (m < 0) {
			fail(a, 400, "Bad Request", "bad client id in path");
			return;
		}
		if (!m)
			continue;
		path_known = true;
		if (method_is(req, routes[i].method)) {
			routes[i].fn(a, id);
			return;
		}
	}
	if (path_known)
		fail(a, 405, "Method Not Allowed", "method not allowed");
	else
		fail(a, 404, "Not Found", "no such endpoint");
}

/* The 401 reply, naming the schemes this connection may use. */
static void unauthorized(struct api *a, struct http_api_reply *out)
{
	fail(a, 401, "Unauthorized", "credentials required");
	snprintf(out->extra, sizeof(out->extra), "WWW-Authenticate: %s\r\n",
	         basic_allowed(a->r) && a->r->w->b->cfg->admin_user
	                 ? "Basic realm=\"tern\", charset=\"UTF-8\""
	                 : "Bearer realm=\"tern\"");
}

static void reply_metrics(const struct http_api_req *r,
                          struct http_api_reply *out)
{
	const struct config *cfg = r->w->b->cfg;

	if (!cfg->metrics_public && !http_api_is_loopback(r->host) &&
	    !(api_configured(r) && authorized(r))) {
		*out = (struct http_api_reply){
		        .status = api_configured(r) ? 401 : 403,
		        .reason = api_configured(r) ? "Unauthorized"
		                                    : "Forbidden",
		        .type = "text/plain; charset=utf-8",
		};
		if (api_configured(r))
			snprintf(out->extra, sizeof(out->extra),
			         "WWW-Authenticate: Bearer realm=\"tern\"\r\n");
		out->body = strdup("metrics need credentials from here\n");
		out->len = out->body ? strlen(out->body) : 0;
		return;
	}
	out->status = 200;
	out->reason = "OK";
	out->type = METRICS_CONTENT_TYPE;
	if (metrics_render(r->w->b, &out->body, &out->len) != 0) {
		out->status = 500;
		out->reason = "Internal Server Error";
		out->body = NULL;
		out->len = 0;
	}
}

bool http_api_wants_body(const struct http_request *req)
{
	return method_is(req, "POST") || method_is(req, "PUT");
}

bool http_api_handle(const struct http_api_req *r, struct http_api_reply *out)
{
	const struct http_str *path = &r->req->path;
	struct api a = {.r = r, .b = r->w->b, .status = 200, .reason = "OK"};

	memset(out, 0, sizeof(*out));
	if (path->len == 8 && memcmp(path->p, "/metrics", 8) == 0) {
		reply_metrics(r, out);
		return true;
	}
	if (path->len < 5 || memcmp(path->p, "/api/", 5) != 0)
		return false;
	json_w_init(&a.j);
	if (!api_configured(r))
		fail(&a, 404, "Not Found", "the admin API is not configured");
	else if (!authorized(r))
		unauthorized(&a, out);
	else
		api_route(&a);
	if (json_w_finish(&a.j) != 0) {
		json_w_free(&a.j);
		set_status(&a, 500, "Internal Server Error");
	}
	out->status = a.status;
	out->reason = a.reason;
	out->type = "application/json";
	out->body = a.j.buf;
	out->len = a.j.len;
	return true;
}
