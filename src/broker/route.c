/*
 * Routing one PUBLISH (DESIGN.md §4, step 3-5): store it if retained, find
 * matching subscriptions in the shared index under its read lock, merge the
 * matches of each session (one delivery at the highest granted QoS, with the
 * identifiers of every matching subscription), and hand the message to each
 * session's queue. A session attached to this worker is pumped at once; one
 * attached elsewhere is posted to that worker's inbox.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/msg.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/worker.h"

struct match {
	struct session *s; /* reference taken under the index lock */
	struct subs_opts opts;
	bool shared;
};

struct route_ctx {
	struct msg *m;
	struct match *v;
	size_t n, cap;
	bool oom;
};

static void route_on_match(void *ctx, void *owner, const struct subs_opts *opts,
                           bool shared)
{
	struct route_ctx *r = ctx;
	struct session *s = owner;

	/* MQTT 5 §3.8.3.1: no-local means not back to the publisher. */
	if (opts->no_local && r->m->origin == s)
		return;
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 16;
		struct match *v = realloc(r->v, ncap * sizeof(*v));

		if (!v) {
			r->oom = true;
			return;
		}
		r->v = v;
		r->cap = ncap;
	}
	r->v[r->n].s = session_ref(s);
	r->v[r->n].opts = *opts;
	r->v[r->n].shared = shared;
	r->n++;
}

/* Prefer shared-group members that are online. Reads s->w racily on
 * purpose: a stale answer only changes which member gets the message. */
static bool route_accept_shared(void *ctx, void *owner)
{
	struct session *s = owner;

	(void)ctx;
	return __atomic_load_n(&s->w, __ATOMIC_RELAXED) != NULL;
}

/* Orders by session, non-shared first, so each session's ordinary
 * matches are adjacent and can be merged. */
static int match_cmp(const void *a, const void *b)
{
	const struct match *x = a, *y = b;

	if (x->s != y->s)
		return (x->s > y->s) - (x->s < y->s);
	return (int)x->shared - (int)y->shared;
}

/* Sessions in the duplicate check's table on the stack; more take a
 * heap table. */
#define ROUTE_SEEN_STACK 256

/* Fibonacci hashing of the address; allocations are 16-byte aligned, so
 * the low bits carry nothing. */
static size_t route_seen_slot(const struct session *s)
{
	uint64_t h = (uint64_t)(uintptr_t)s >> 4;

	return (size_t)((h * 0x9E3779B97F4A7C15ull) >> 40);
}

/*
 * Whether some session occurs more than once in v[0..n): only then do the
 * matches need sorting so that one session's matches are adjacent. In a
 * fan-out every match is a different session, and qsort was a quarter of
 * the broker's user-space instructions per delivery (1 -> 100, callgrind);
 * this check is one pass over an open-addressed set of the pointers.
 * Answers true when it cannot tell (no memory): sorting is always right.
 */
static bool route_has_repeats(const struct match *v, size_t n)
{
	const struct session *stack[ROUTE_SEEN_STACK], **set = stack;
	size_t cap = 16, mask, i, k;
	bool repeat = false;

	while (cap < 2 * n)
		cap *= 2;
	if (cap > ROUTE_SEEN_STACK)
		set = calloc(cap, sizeof(*set));
	else
		memset(stack, 0, cap * sizeof(*set));
	if (!set)
		return true;
	mask = cap - 1;
	for (i = 0; i < n && !repeat; i++) {
		k = route_seen_slot(v[i].s) & mask;
		while (set[k] && set[k] != v[i].s)
			k = (k + 1) & mask;
		if (set[k])
			repeat = true;
		else
			set[k] = v[i].s;
	}
	if (set != stack)
		free(set);
	return repeat;
}

/*
 * Delivers m to one session with the merged options of its matches.
 * Returns true when the session is online and its queue is backlogged, so
 * the publisher should be held back (see conn_throttle).
 */
static bool route_deliver(struct broker *b, struct worker *self,
                          struct session *s, struct msg *m, uint8_t qos,
                          bool retain, bool shared, uint32_t *ids,
                          uint16_t nids)
{
	struct worker *owner;
	bool backlog;

	pthread_mutex_lock(&s->mu);
	owner = s->w;
	/* Read access is checked at every delivery, so an ACL reload applies
	 * to existing subscriptions too. */
	if (self &&
	    (!auth_allows(self->auth, s->listener, s->client_id, s->username,
	                  m->topic, m->topic_len, ACL_READ) ||
	     !auth_grant_allows(s->grant, s->client_id, s->username, m->topic,
	                        m->topic_len, ACL_READ))) {
		pthread_mutex_unlock(&s->mu);
		free(ids);
		return false;
	}
	if (!owner && qos == 0) {
		/* QoS 0 is not queued for offline sessions (as Mosquitto). */
		pthread_mutex_unlock(&s->mu);
		free(ids);
		return false;
	}
	if (session_enqueue(b, s, m, qos, retain, shared, ids, nids) != 0) {
		pthread_mutex_unlock(&s->mu);
		return false;
	}
	if (owner == self)
		conn_pump_locked(s->conn, s);
	/* The clock is read only for a queue above its mark: read for
	 * every delivery, clock_gettime was 1 % of a fan-out's CPU time. */
	backlog = owner && !session_drained(b, s) &&
	          session_backlogged(b, s, clock_ms());
	pthread_mutex_unlock(&s->mu);
	if (owner && owner != self && !atomic_exchange(&s->ready, true))
		worker_post_pump(owner, s);
	return backlog;
}

/* Merges the matches v[0..n) of one session and delivers. */
static bool route_group(struct broker *b, struct worker *self, struct msg *m,
                        struct match *v, size_t n)
{
	uint8_t qos = 0;
	bool retain = false;
	uint32_t *ids = NULL;
	uint16_t nids = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (v[i].opts.qos > qos)
			qos = v[i].opts.qos;
		if (v[i].opts.retain_as_published)
			retain = m->retain;
		if (v[i].opts.sub_id)
			nids++;
	}
	if (qos > m->qos)
		qos = m->qos;
	if (nids && (ids = malloc(nids * sizeof(*ids)))) {
		nids = 0;
		for (i = 0; i < n; i++)
			if (v[i].opts.sub_id)
				ids[nids++] = v[i].opts.sub_id;
	} else {
		nids = 0;
	}
	return route_deliver(b, self, v[0].s, m, qos, retain, v[0].shared, ids,
	                     nids);
}

int broker_publish(struct broker *b, struct worker *self, struct msg *m,
                   struct session **backlog)
{
	static const struct subs_visitor visitor = {route_on_match,
	                                            route_accept_shared};
	struct route_ctx r = {.m = m};
	size_t i, j;

	if (m->retain) {
		uint64_t seq;

		if (retain_put(b->retain, m, &seq) != 0)
			log_msg(LOG_ERR,
			        "Out of memory storing retained message.");
		else if (b->persist)
			persist_retained(b->persist, m, seq);
	}
	subs_match(b->subs, m->topic, m->topic_len, &visitor, &r);
	if (r.oom)
		log_msg(LOG_ERR, "Out of memory routing a message on %s.",
		        m->topic);
	if (r.n > 1 && route_has_repeats(r.v, r.n))
		qsort(r.v, r.n, sizeof(*r.v), match_cmp);
	for (i = 0; i < r.n; i = j) {
		/* Ordinary matches of one session merge into one delivery
		 * (MQTT 5 §4.8.1 / 3.1.1 §3.3.5); each shared-group match is
		 * a delivery of its own, as Mosquitto does. */
		j = i + 1;
		if (!r.v[i].shared)
			while (j < r.n && r.v[j].s == r.v[i].s &&
			       !r.v[j].shared)
				j++;
		if (route_group(b, self, m, &r.v[i], j - i) && backlog &&
		    !*backlog)
			*backlog = session_ref(r.v[i].s);
	}
	for (i = 0; i < r.n; i++)
		session_unref(r.v[i].s);
	free(r.v);
	return (int)r.n;
}

/* The shared subscription of s (a "$share/..." record) that brought m. */
static const struct sub_rec *route_shared_rec(const struct session *s,
                                              const struct msg *m)
{
	uint32_t i;

	for (i = 0; i < s->nsubs; i++) {
		const struct sub_rec *r = &s->subsv[i];
		struct mqtt_str group, inner;

		if (mqtt_share_split((const uint8_t *)r->filter, r->len, &group,
		                     &inner) == 1 &&
		    subs_topic_matches((const char *)inner.p, inner.len,
		                       m->topic, m->topic_len))
			return r;
	}
	return NULL;
}

static int redeliver_push(struct redeliver_list *l, struct msg *m, uint8_t qos,
                          const struct sub_rec *r)
{
	struct redeliver *e;

	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 8;
		struct redeliver *v = realloc(l->v, ncap * sizeof(*v));

		if (!v)
			return TERN_ENOMEM;
		l->v = v;
		l->cap = ncap;
	}
	e = &l->v[l->n];
	e->filter = strndup(r->filter, r->len);
	if (!e->filter)
		return TERN_ENOMEM;
	e->m = msg_ref(m);
	e->qos = qos;
	l->n++;
	return 0;
}

static void redeliver_take(const struct session *s, const struct qmsg *q,
                           struct redeliver_list *out)
{
	const struct sub_rec *r;

	/* QoS 0 may be lost anyway; a QoS 2 message past PUBREC (m is
	 * NULL) has been received by the client and must not repeat. */
	if (!q->shared || !q->qos || !q->m)
		return;
	r = route_shared_rec(s, q->m);
	if (r)
		redeliver_push(out, q->m, q->qos, r);
}

void route_collect_shared(const struct session *s, struct redeliver_list *out)
{
	uint32_t i;

	for (i = 0; i < s->ninfl; i++)
		redeliver_take(s, &s->infl[i], out);
	for (i = 0; i < s->qlen; i++)
		redeliver_take(s, &s->q[(s->qhead + i) % s->qcap], out);
}

struct pick_ctx {
	struct session *s;
	uint8_t qos;
};

static void redeliver_on_pick(void *ctx, void *owner,
                              const struct subs_opts *opts, bool shared)
{
	struct pick_ctx *p = ctx;

	(void)shared;
	p->s = session_ref(owner);
	p->qos = opts->qos;
}

void route_redeliver(struct broker *b, struct worker *self,
                     struct redeliver_list *l)
{
	static const struct subs_visitor visitor = {redeliver_on_pick,
	                                            route_accept_shared};
	size_t i;

	for (i = 0; i < l->n; i++) {
		struct redeliver *e = &l->v[i];
		struct pick_ctx p = {0};

		if (subs_pick_shared(b->subs, e->filter, strlen(e->filter),
		                     &visitor, &p) == 1) {
			uint8_t qos = e->qos < p.qos ? e->qos : p.qos;

			route_deliver(b, self, p.s, e->m, qos, false, true,
			              NULL, 0);
			session_unref(p.s);
		}
		msg_unref(e->m);
		free(e->filter);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

bool broker_will_allowed(struct broker *b, const struct msg *will,
                         size_t listener, const char *client_id,
                         const char *username)
{
	struct auth *a;
	bool ok;

	/* The will was checked at CONNECT, but the ACL may have been
	 * reloaded since: the client must still be allowed to write there
	 * now. The broker's snapshot, not the worker's: a reload that came
	 * while the worker waited for the event that ends the connection is
	 * not in the worker's copy yet. Wills are rare; the lock is cheap. */
	a = broker_get_auth(b);
	ok = auth_allows(a, listener, client_id, username, will->topic,
	                 will->topic_len, ACL_WRITE);
	auth_unref(a);
	if (ok)
		return true;
	STAT_DROP(b, DROP_NOT_AUTHORIZED);
	if (log_enabled(LOG_DEBUG))
		log_msg(LOG_DEBUG,
		        "Will of %s to %.*s dropped: no longer authorised.",
		        client_id, (int)will->topic_len, will->topic);
	return false;
}
