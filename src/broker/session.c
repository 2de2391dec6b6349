/*
 * Session records, the session table, and the per-session message queues.
 * Everything here runs with the relevant lock held by the caller (see
 * session.h); this file takes no locks itself except in session_unref's
 * final free, where nobody else can hold a reference.
 */
#include "broker/session.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/msg.h"
#include "broker/persist.h"

struct session *session_new(const char *client_id)
{
	struct session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->client_id = strdup(client_id);
	if (!s->client_id) {
		free(s);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	atomic_init(&s->ready, false);
	pthread_mutex_init(&s->mu, NULL);
	s->next_pid = 1;
	s->recv_max = 65535;
	s->listener = AUTH_ANY_LISTENER;
	return s;
}

void qmsg_release(struct qmsg *q)
{
	msg_unref(q->m);
	free(q->subids);
	q->m = NULL;
	q->subids = NULL;
	q->nsubids = 0;
}

static void session_free(struct session *s)
{
	uint32_t i;

	for (i = 0; i < s->qlen; i++)
		qmsg_release(&s->q[(s->qhead + i) % s->qcap]);
	for (i = 0; i < s->ninfl; i++)
		qmsg_release(&s->infl[i]);
	for (i = 0; i < s->nsubs; i++)
		free(s->subsv[i].filter);
	msg_unref(s->will);
	free(s->q);
	free(s->infl);
	free(s->subsv);
	free(s->in_qos2);
	pthread_mutex_destroy(&s->mu);
	free(s->client_id);
	free(s->username);
	auth_grant_unref(s->grant);
	free(s);
}

void session_unref(struct session *s)
{
	if (s &&
	    atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		session_free(s);
}

/* FNV-1a: client ids are short and attacker-chosen only up to 65535 bytes;
 * the table is private to the process, so a simple hash is enough here. */
static size_t session_hash(const char *id)
{
	uint64_t h = 1469598103934665603ull;

	while (*id)
		h = (h ^ (uint8_t)*id++) * 1099511628211ull;
	return (size_t)h;
}

struct session *session_find(struct broker *b, const char *client_id)
{
	struct session_table *t = &b->sessions;
	struct session *s;

	if (!t->nbuckets)
		return NULL;
	s = t->buckets[session_hash(client_id) % t->nbuckets];
	for (; s; s = s->hnext)
		if (strcmp(s->client_id, client_id) == 0)
			return s;
	return NULL;
}

static int session_table_grow(struct session_table *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 256, i;
	struct session **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return TERN_ENOMEM;
	for (i = 0; i < t->nbuckets; i++) {
		struct session *s = t->buckets[i], *next;

		for (; s; s = next) {
			size_t h = session_hash(s->client_id) % n;

			next = s->hnext;
			s->hnext = nb[h];
			nb[h] = s;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->nbuckets = n;
	return 0;
}

int session_insert(struct broker *b, struct session *s)
{
	struct session_table *t = &b->sessions;
	size_t h;

	if (t->count >= t->nbuckets && session_table_grow(t) != 0)
		return TERN_ENOMEM;
	h = session_hash(s->client_id) % t->nbuckets;
	s->hnext = t->buckets[h];
	t->buckets[h] = session_ref(s);
	s->in_table = true;
	t->count++;
	if (b->persist)
		persist_session_inserted(b->persist, s);
	return 0;
}

void session_remove(struct broker *b, struct session *s)
{
	struct session_table *t = &b->sessions;
	struct session **pp;

	if (!s->in_table)
		return;
	pp = &t->buckets[session_hash(s->client_id) % t->nbuckets];
	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == s) {
			if (b->persist)
				persist_session_removed(b->persist, s);
			*pp = s->hnext;
			s->hnext = NULL;
			s->in_table = false;
			t->count--;
			session_unref(s);
			return;
		}
	}
}

void session_clear_subs(struct broker *b, struct session *s)
{
	uint32_t i;

	for (i = 0; i < s->nsubs; i++) {
		subs_remove(b->subs, s->subsv[i].filter, s->subsv[i].len, s);
		free(s->subsv[i].filter);
	}
	s->nsubs = 0;
}

void session_clear_messages(struct broker *b, struct session *s)
{
	struct qmsg q;
	uint32_t i;

	/* Only an ending session is cleared: its stored record goes with
	 * everything under it, and nothing more is written for it. */
	persist_session_end(s);
	while (session_dequeue(b, s, &q))
		qmsg_release(&q);
	for (i = 0; i < s->ninfl; i++)
		qmsg_release(&s->infl[i]);
	s->ninfl = 0;
	s->nin_qos2 = 0;
}

struct sub_rec *session_sub_put(struct session *s, const char *filter,
                                uint16_t len, bool *added)
{
	struct sub_rec *r;
	uint32_t i;

	for (i = 0; i < s->nsubs; i++) {
		r = &s->subsv[i];
		if (r->len == len && memcmp(r->filter, filter, len) == 0) {
			*added = false;
			return r;
		}
	}
	if (s->nsubs == s->subs_cap) {
		uint32_t ncap = s->subs_cap ? s->subs_cap * 2 : 4;
		struct sub_rec *v = realloc(s->subsv, ncap * sizeof(*v));

		if (!v)
			return NULL;
		s->subsv = v;
		s->subs_cap = ncap;
	}
	r = &s->subsv[s->nsubs];
	r->filter = malloc((size_t)len + 1);
	if (!r->filter)
		return NULL;
	memcpy(r->filter, filter, len);
	r->filter[len] = '\0';
	r->len = len;
	memset(&r->opts, 0, sizeof(r->opts));
	s->nsubs++;
	*added = true;
	return r;
}

int session_sub_del(struct session *s, const char *filter, uint16_t len)
{
	uint32_t i;

	for (i = 0; i < s->nsubs; i++) {
		struct sub_rec *r = &s->subsv[i];

		if (r->len == len && memcmp(r->filter, filter, len) == 0) {
			free(r->filter);
			s->subsv[i] = s->subsv[--s->nsubs];
			return 0;
		}
	}
	return TERN_ENOENT;
}

static int session_queue_grow(struct session *s)
{
	uint32_t ncap = s->qcap ? s->qcap * 2 : 16, i;
	struct qmsg *nq = malloc(ncap * sizeof(*nq));

	if (!nq)
		return TERN_ENOMEM;
	for (i = 0; i < s->qlen; i++)
		nq[i] = s->q[(s->qhead + i) % s->qcap];
	free(s->q);
	s->q = nq;
	s->qcap = ncap;
	s->qhead = 0;
	return 0;
}

/*
 * Logs drops at a full queue: at most one line a second per session, with
 * the count since the last one. A stalled subscriber under a flood drops
 * every message, and a line each (at debug level, which the tests run at)
 * had the worker spend more time writing the log than routing.
 */
static void session_log_drop(struct session *s)
{
	uint64_t now;

	if (!log_enabled(LOG_DEBUG))
		return;
	s->drops_unlogged++;
	now = clock_ms();
	if (s->drop_logged_at && now - s->drop_logged_at < 1000)
		return;
	log_msg(LOG_DEBUG, "Queue full for %s; %" PRIu64 " message(s) dropped.",
	        s->client_id, s->drops_unlogged);
	s->drops_unlogged = 0;
	s->drop_logged_at = now;
}

int session_enqueue(struct broker *b, struct session *s, struct msg *m,
                    uint8_t qos, bool retain, bool shared, uint32_t *subids,
                    uint16_t nsubids)
{
	const struct config *c = b->cfg;
	struct qmsg *e;

	/* An empty queue takes one message whatever its size: every message
	 * passes through the queue, and one larger than max_queued_bytes
	 * would otherwise never reach even a client that keeps up. */
	if ((c->max_queued_messages > 0 &&
	     s->qlen >= (uint32_t)c->max_queued_messages) ||
	    (c->max_queued_bytes > 0 && s->qlen > 0 &&
	     s->qbytes + m->payload_len > c->max_queued_bytes) ||
	    (s->qlen == s->qcap && session_queue_grow(s) != 0)) {
		free(subids);
		STAT_DROP(b, DROP_QUEUE_FULL);
		session_log_drop(s);
		return TERN_ELIMIT;
	}
	e = &s->q[(s->qhead + s->qlen) % s->qcap];
	memset(e, 0, sizeof(*e));
	e->m = msg_ref(m);
	e->qos = qos;
	e->retain = retain;
	e->shared = shared;
	e->subids = subids;
	e->nsubids = nsubids;
	/* QoS 0 is never stored: it may be lost anyway. */
	if (s->p && qos)
		persist_queue_put(s, e);
	s->qlen++;
	s->qbytes += m->payload_len;
	STAT_ADD(b, queued_messages, 1);
	STAT_ADD(b, queued_bytes, (int64_t)m->payload_len);
	return 0;
}

/* Queue length (messages) at which back-pressure starts. */
#define SESSION_HIGH_WATER 1000u

static uint32_t session_high_water(const struct broker *b)
{
	int max = b->cfg->max_queued_messages;

	uint32_t hw = max > 0 ? (uint32_t)(max + 1) / 2 : SESSION_HIGH_WATER;

	/* A deeper queue only adds latency once the consumer is busy. */
	return hw < SESSION_HIGH_WATER ? hw : SESSION_HIGH_WATER;
}

bool session_backlogged(const struct broker *b, struct session *s, uint64_t now)
{
	uint64_t maxb = b->cfg->max_queued_bytes;

	if (now < s->slow_until)
		return false;
	if (s->qlen <= session_high_water(b) &&
	    (!maxb || s->qbytes <= maxb / 2)) {
		s->backlog_since = 0;
		return false;
	}
	if (!s->backlog_since) {
		s->backlog_since = now;
	} else if (now - s->backlog_since >= SESSION_STALL_MS) {
		/* Stalled whoever waited: with many stalled subscribers a
		 * publisher was held back 250 ms for each in turn, as only the
		 * one it waited for was marked (conn_backlog_over). */
		s->slow_until = now + SESSION_SLOW_MS;
		s->backlog_since = 0;
		return false;
	}
	return true;
}

bool session_drained(const struct broker *b, const struct session *s)
{
	uint64_t maxb = b->cfg->max_queued_bytes;

	return s->qlen <= session_high_water(b) &&
	       (!maxb || s->qbytes <= maxb / 2);
}

bool session_dequeue(struct broker *b, struct session *s, struct qmsg *out)
{
	if (!s->qlen)
		return false;
	*out = s->q[s->qhead];
	s->qhead = (s->qhead + 1) % s->qcap;
	s->qlen--;
	s->qbytes -= out->m->payload_len;
	if (s->backlog_since && session_drained(b, s))
		s->backlog_since = 0;
	STAT_ADD(b, queued_messages, -1);
	STAT_ADD(b, queued_bytes, -(int64_t)out->m->payload_len);
	return true;
}

bool session_expired(const struct session *s, uint64_t now)
{
	return !s->w && s->expiry != UINT32_MAX &&
	       now - s->offline_since >= (uint64_t)s->expiry * 1000u;
}

int session_infl_find(const struct session *s, uint16_t pid)
{
	uint32_t i;

	for (i = 0; i < s->ninfl; i++)
		if (s->infl[i].pid == pid)
			return (int)i;
	return -1;
}

uint16_t session_next_pid(struct session *s)
{
	for (;;) {
		uint16_t pid = s->next_pid++;

		if (s->next_pid == 0)
			s->next_pid = 1;
		if (pid != 0 && session_infl_find(s, pid) < 0)
			return pid;
	}
}

void session_infl_remove(struct session *s, int i)
{
	if (s->p)
		persist_queue_del(s, &s->infl[i]);
	qmsg_release(&s->infl[i]);
	/* Keep send order: retransmission after reconnect must preserve it. */
	memmove(&s->infl[i], &s->infl[i + 1],
	        (s->ninfl - (uint32_t)i - 1) * sizeof(*s->infl));
	s->ninfl--;
}

bool session_inq2_has(const struct session *s, uint16_t pid)
{
	uint32_t i;

	for (i = 0; i < s->nin_qos2; i++)
		if (s->in_qos2[i] == pid)
			return true;
	return false;
}

int session_inq2_add(struct session *s, uint16_t pid)
{
	if (s->nin_qos2 == s->in_qos2_cap) {
		uint32_t ncap = s->in_qos2_cap ? s->in_qos2_cap * 2 : 8;
		uint16_t *v = realloc(s->in_qos2, ncap * sizeof(*v));

		if (!v)
			return TERN_ENOMEM;
		s->in_qos2 = v;
		s->in_qos2_cap = ncap;
	}
	s->in_qos2[s->nin_qos2++] = pid;
	if (s->p)
		persist_inq2(s, pid, true);
	return 0;
}

bool session_inq2_del(struct session *s, uint16_t pid)
{
	uint32_t i;

	for (i = 0; i < s->nin_qos2; i++)
		if (s->in_qos2[i] == pid) {
			s->in_qos2[i] = s->in_qos2[--s->nin_qos2];
			if (s->p)
				persist_inq2(s, pid, false);
			return true;
		}
	return false;
}

int session_queue_push(struct broker *b, struct session *s,
                       const struct qmsg *q)
{
	if (s->qlen == s->qcap && session_queue_grow(s) != 0)
		return TERN_ENOMEM;
	s->q[(s->qhead + s->qlen) % s->qcap] = *q;
	s->qlen++;
	s->qbytes += q->m->payload_len;
	STAT_ADD(b, queued_messages, 1);
	STAT_ADD(b, queued_bytes, (int64_t)q->m->payload_len);
	return 0;
}

int session_infl_push(struct session *s, const struct qmsg *q)
{
	if (s->ninfl == s->infl_cap) {
		uint32_t ncap = s->infl_cap ? s->infl_cap * 2 : 8;
		struct qmsg *v = realloc(s->infl, ncap * sizeof(*v));

		if (!v)
			return TERN_ENOMEM;
		s->infl = v;
		s->infl_cap = ncap;
	}
	s->infl[s->ninfl++] = *q;
	return 0;
}
