/*
 * Opening the store at start and loading it into the broker before any
 * listener exists: sessions into the table (offline, their expiry counted
 * from when they went offline in wall-clock time, so the time ternd was
 * down counts), subscriptions into the index, queued messages in order,
 * inflight ones marked DUP, incoming QoS 2 ids, retained messages.
 * Whatever expired while ternd was down is dropped and deleted from the
 * store by the first round. Also `ternd --dump-store`.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/msg.h"
#include "broker/persist_int.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/subs.h"
#include "mqtt/packet.h"

#define PERSIST_DEFAULT_FILE "tern.db"

/* Messages by store id while loading (open addressing). */
struct msgmap {
	struct msg **m;
	uint64_t *id;
	size_t mask, n;
};

struct load {
	struct persist *p;
	struct broker *b;
	int64_t wall, alive;
	uint64_t mono;
	struct msgmap mm;
	uint64_t max_msg_id, max_ret_seq;
	size_t nsess, nqueued, ninfl, nret, nexpired;
};

static int msgmap_grow(struct msgmap *mm)
{
	size_t size = mm->mask ? (mm->mask + 1) * 2 : 1024, i;
	struct msgmap n = {calloc(size, sizeof(*n.m)),
	                   calloc(size, sizeof(*n.id)), size - 1, mm->n};

	if (!n.m || !n.id) {
		free(n.m);
		free(n.id);
		return TERN_ENOMEM;
	}
	for (i = 0; mm->mask && i <= mm->mask; i++) {
		size_t j = mm->id[i] & n.mask;

		if (!mm->m[i])
			continue;
		while (n.m[j])
			j = (j + 1) & n.mask;
		n.m[j] = mm->m[i];
		n.id[j] = mm->id[i];
	}
	free(mm->m);
	free(mm->id);
	*mm = n;
	return 0;
}

static int msgmap_put(struct msgmap *mm, uint64_t id, struct msg *m)
{
	size_t j;

	if ((mm->n + 1) * 2 > mm->mask + 1 && msgmap_grow(mm) != 0)
		return TERN_ENOMEM;
	for (j = id & mm->mask; mm->m[j]; j = (j + 1) & mm->mask)
		;
	mm->m[j] = m;
	mm->id[j] = id;
	mm->n++;
	return 0;
}

static struct msg *msgmap_get(const struct msgmap *mm, uint64_t id)
{
	size_t j;

	if (!mm->mask)
		return NULL;
	for (j = id & mm->mask; mm->m[j]; j = (j + 1) & mm->mask)
		if (mm->id[j] == id)
			return mm->m[j];
	return NULL;
}

static void msgmap_free(struct msgmap *mm)
{
	size_t i;

	for (i = 0; mm->mask && i <= mm->mask; i++)
		msg_unref(mm->m[i]);
	free(mm->m);
	free(mm->id);
}

/* A NUL-terminated copy of a stored client id; NULL if it holds a NUL. */
static char *cid_dup(const uint8_t *p, size_t len)
{
	char *s;

	if (!len || memchr(p, 0, len) || !(s = malloc(len + 1)))
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

static struct session *find(struct load *l, const uint8_t *cid, size_t len)
{
	char *id = cid_dup(cid, len);
	struct session *s = id ? session_find(l->b, id) : NULL;

	free(id);
	return s;
}

/* Deletes a session that expired while ternd was down. */
static void drop_session(struct load *l, const char *id)
{
	struct session *s = session_new(id);

	if (!s)
		return;
	s->p = l->p;
	persist_session_end(s);
	/* A new session for this id must not overtake the deletion. */
	persist_session_removed(l->p, s);
	session_unref(s);
	l->nexpired++;
}

/* Offline since (monotonic ms) for a wall-clock time `elapsed` ago; when
 * that is before the monotonic clock's origin (a reboot), the expiry
 * shrinks instead. */
static void set_offline(struct load *l, struct session *s, int64_t elapsed)
{
	if (elapsed < 0)
		elapsed = 0;
	if ((uint64_t)elapsed <= l->mono) {
		s->offline_since = l->mono - (uint64_t)elapsed;
		return;
	}
	s->offline_since = 0;
	if (s->expiry != UINT32_MAX) {
		uint64_t gone = ((uint64_t)elapsed - l->mono) / 1000u;

		s->expiry = gone >= s->expiry ? 0 : s->expiry - (uint32_t)gone;
	}
}

static void load_will(struct load *l, struct session *s,
                      const struct store_session *x, int64_t offline)
{
	bool expired;
	int64_t due;

	s->will = persist_decode(NULL, 0, NULL, 0, 0, false, 0, x->will,
	                         x->will_len, &expired);
	if (!s->will)
		return;
	msg_charge(s->will, &l->b->mem.msgs);
	due = offline + (int64_t)x->will_delay * 1000 - l->wall;
	s->will_at = l->mono + (due > 0 ? (uint64_t)due : 0);
}

char *persist_listener_kind(const struct listener_cfg *l)
{
	char buf[512];
	int n = snprintf(
	        buf, sizeof(buf), "%s%s%s %s:%u",
	        l->from_file ? "" : "default ",
	        l->protocol == PROTO_WEBSOCKETS ? "websockets" : "mqtt",
	        l->certfile ? "+tls" : "", l->bind ? l->bind : "*", l->port);

	return n > 0 && (size_t)n < sizeof(buf) ? strdup(buf) : NULL;
}

/*
 * The listener a restored session last connected on, whose rules apply to
 * its deliveries (auth.h). Only when this configuration's listener at that
 * index is the one it was (same description): listeners added, removed or
 * reordered between runs would otherwise hand the session another
 * listener's rules. Anything else is unknown, AUTH_ANY_LISTENER: only what
 * every listener allows, as for a client that has not said who it is.
 */
static size_t restored_listener(const struct load *l,
                                const struct store_session *x)
{
	const struct persist *p = l->p;

	if (!x->has_listener || x->listener >= p->nlkind || !x->listener_kind ||
	    !p->lkind[x->listener] ||
	    strcmp(p->lkind[x->listener], x->listener_kind) != 0)
		return AUTH_ANY_LISTENER;
	return x->listener;
}

/* The stored owner: username, listener, token grant. A grant that no
 * longer parses allows nothing (fail closed) until the client reconnects
 * with a token. */
static int load_owner(struct load *l, struct session *s,
                      const struct store_session *x)
{
	int rc;

	/* A username holding U+0000 is no MQTT username (corrupt): none,
	 * so %u rules do not match it. */
	if (x->username && !memchr(x->username, 0, x->username_len)) {
		if (!(s->username = malloc(x->username_len + 1)))
			return TERN_ENOMEM;
		memcpy(s->username, x->username, x->username_len);
		s->username[x->username_len] = '\0';
	}
	s->listener = restored_listener(l, x);
	if (!x->grant)
		return 0;
	rc = auth_grant_parse((const char *)x->grant, x->grant_len, &s->grant);
	if (rc == TERN_EINVAL) {
		log_msg(LOG_WARNING,
		        "Store: session %s has a token grant that does not "
		        "parse; it receives nothing until it reconnects.",
		        s->client_id);
		s->grant = auth_grant_deny_all((const char *)x->grant,
		                               x->grant_len);
		rc = s->grant ? 0 : TERN_ENOMEM;
	}
	return rc;
}

static int on_session(void *ctx, const struct store_session *x)
{
	struct load *l = ctx;
	char *id = cid_dup(x->client_id, x->client_id_len);
	/* Online when it was last written: offline since the last commit. */
	int64_t offline = x->offline_since ? x->offline_since
	                  : l->alive       ? l->alive
	                                   : l->wall;
	int64_t elapsed = l->wall - offline;
	struct session *s;

	if (!id)
		return 0;
	/* An expired session is dropped now, unless it has a will: then it
	 * is loaded (expired) and its end publishes the will (the first
	 * sweep, or a CONNECT for its id, whichever comes first). */
	if (x->expiry != UINT32_MAX && elapsed >= (int64_t)x->expiry * 1000 &&
	    !x->will) {
		drop_session(l, id);
		free(id);
		return 0;
	}
	s = session_new(id);
	free(id);
	if (!s || session_insert(l->b, s) != 0) {
		session_unref(s);
		return TERN_ENOMEM;
	}
	session_unref(s); /* the table holds it */
	s->version = x->version;
	s->expiry = x->expiry;
	if (load_owner(l, s, x) != 0)
		return TERN_ENOMEM;
	s->p = l->p;
	set_offline(l, s, elapsed);
	if (x->will)
		load_will(l, s, x, offline);
	STAT_ADD(l->b, sessions_offline, 1);
	l->nsess++;
	return 0;
}

static int on_sub(void *ctx, const struct store_sub *x)
{
	struct load *l = ctx;
	struct session *s = find(l, x->client_id, x->client_id_len);
	struct sub_rec *r;
	bool added;

	if (!s || x->filter_len > UINT16_MAX ||
	    mqtt_topic_filter_check(x->filter, x->filter_len) != 0)
		return 0;
	r = session_sub_put(s, (const char *)x->filter, (uint16_t)x->filter_len,
	                    &added);
	if (!r)
		return TERN_ENOMEM;
	r->opts.qos = x->qos > 2 ? 2 : x->qos;
	r->opts.no_local = x->no_local;
	r->opts.retain_as_published = x->retain_as_published;
	r->opts.retain_handling =
	        x->retain_handling > 2 ? 0 : x->retain_handling;
	r->opts.sub_id = x->sub_id;
	if (subs_add(l->b->subs, r->filter, r->len, s, &r->opts) < 0) {
		session_sub_del(s, r->filter, r->len);
		return 0;
	}
	return 0;
}

static int on_msg(void *ctx, const struct store_msg *x)
{
	struct load *l = ctx;
	bool expired;
	struct msg *m;

	if (x->id > l->max_msg_id)
		l->max_msg_id = x->id;
	m = persist_decode(x->topic, x->topic_len, x->payload, x->payload_len,
	                   x->qos, x->retain, x->expiry_at, x->props,
	                   x->props_len, &expired);
	if (!m)
		return 0; /* expired or unreadable: its rows are dropped */
	msg_charge(m, &l->b->mem.msgs); /* memory_limit, as when received */
	atomic_store(&m->store_id, x->id);
	if (msgmap_put(&l->mm, x->id, m) != 0) {
		msg_unref(m);
		return TERN_ENOMEM;
	}
	return 0;
}

/* A queue row that cannot be restored is deleted by the first round. */
static int drop_row(struct load *l, struct session *s,
                    const struct store_qrow *x)
{
	struct qmsg q = {0};

	q.seq = x->seq;
	persist_queue_del(s, &q);
	l->nexpired++;
	return 0;
}

static int on_qrow(void *ctx, const struct store_qrow *x)
{
	struct load *l = ctx;
	struct session *s = find(l, x->client_id, x->client_id_len);
	struct msg *m = x->msg_id ? msgmap_get(&l->mm, x->msg_id) : NULL;
	struct qmsg q = {0};
	int rc;

	if (!s)
		return 0;
	if (x->seq > s->store_seq)
		s->store_seq = x->seq;
	if ((!m && x->state != QS_WAIT_PUBCOMP) || x->qos < 1 || x->qos > 2 ||
	    x->state > QS_WAIT_PUBCOMP || (x->state && !x->pid))
		return drop_row(l, s, x);
	q.m = m ? msg_ref(m) : NULL;
	q.qos = x->qos;
	q.retain = x->retain;
	q.shared = x->shared;
	q.state = x->state;
	q.pid = x->pid;
	q.seq = x->seq;
	/* MQTT 4.4: what was in flight is sent again with DUP. */
	q.dup = x->state != 0;
	if (x->nsubids && (q.subids = malloc(x->nsubids * sizeof(uint32_t)))) {
		memcpy(q.subids, x->subids, x->nsubids * sizeof(uint32_t));
		q.nsubids = x->nsubids;
	}
	if (x->state) {
		rc = session_infl_push(s, &q);
		l->ninfl++;
	} else {
		rc = session_queue_push(l->b, s, &q);
		l->nqueued++;
	}
	if (rc != 0)
		qmsg_release(&q);
	return rc;
}

static int on_inq2(void *ctx, const uint8_t *cid, size_t len, uint16_t pid)
{
	struct load *l = ctx;
	struct session *s = find(l, cid, len);
	struct persist *keep;
	int rc;

	if (!s || !pid)
		return 0;
	keep = s->p; /* already stored: no write */
	s->p = NULL;
	rc = session_inq2_has(s, pid) ? 0 : session_inq2_add(s, pid);
	s->p = keep;
	return rc;
}

static int on_retained(void *ctx, const struct store_retained *x)
{
	struct load *l = ctx;
	bool expired;
	struct msg *m;

	if (x->seq > l->max_ret_seq)
		l->max_ret_seq = x->seq;
	m = persist_decode(x->topic, x->topic_len, x->payload, x->payload_len,
	                   x->qos, true, x->expiry_at, x->props, x->props_len,
	                   &expired);
	if (!m) {
		char topic[256];

		/* Delete it from the store (a write numbered after it). */
		if (!expired || x->topic_len >= sizeof(topic))
			return 0;
		memcpy(topic, x->topic, x->topic_len);
		topic[x->topic_len] = '\0';
		m = msg_new_simple(topic, "", 0, 0, true, l->mono);
		if (m)
			persist_retained(l->p, m, x->seq + 1);
		msg_unref(m);
		l->nexpired++;
		return 0;
	}
	msg_charge(m, &l->b->mem.msgs);
	if (m->payload_len)
		retain_set(l->b->retain, m);
	msg_unref(m);
	l->nret++;
	return 0;
}

static int load_all(struct persist *p, struct broker *b)
{
	static const struct store_visitor v = {
	        on_session, on_sub, on_msg, on_qrow, on_inq2, on_retained};
	struct load l = {0};
	int rc;

	l.p = p;
	l.b = b;
	l.wall = persist_wall_ms();
	l.mono = clock_ms();
	l.alive = store_get_alive(p->st);
	rc = store_load(p->st, &v, &l);
	msgmap_free(&l.mm);
	if (rc != 0)
		return rc;
	atomic_store(&p->next_msg_id, l.max_msg_id + 1);
	retain_seq_floor(b->retain, l.max_ret_seq + 1);
	log_msg(LOG_NOTICE,
	        "Store loaded: %zu sessions, %zu queued and %zu inflight "
	        "messages, %zu retained messages; %zu expired or unusable "
	        "records dropped.",
	        l.nsess, l.nqueued, l.ninfl, l.nret, l.nexpired);
	return 0;
}

/* Path of the store file: location (default ".") / file. */
static int store_path(const struct config *cfg, char *out, size_t len)
{
	const char *dir =
	        cfg->persistence_location ? cfg->persistence_location : ".";
	const char *file = cfg->persistence_file ? cfg->persistence_file
	                                         : PERSIST_DEFAULT_FILE;
	int n = snprintf(out, len, "%s%s%s", dir,
	                 dir[strlen(dir) - 1] == '/' ? "" : "/", file);

	return n > 0 && (size_t)n < len ? 0 : TERN_ETOOBIG;
}

static struct persist *persist_new(struct broker *b, int nworkers)
{
	struct persist *p = calloc(1, sizeof(*p));
	int i;

	if (!p)
		return NULL;
	p->b = b;
	p->nbatches = nworkers + 1;
	p->batches = calloc((size_t)p->nbatches, sizeof(*p->batches));
	p->want_wake = calloc((size_t)nworkers + 1, sizeof(*p->want_wake));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cond, NULL);
	for (i = 0; p->batches && i < p->nbatches; i++)
		pthread_mutex_init(&p->batches[i].mu, NULL);
	atomic_init(&p->next_msg_id, 1);
	if (!p->batches || !p->want_wake) {
		persist_stop(p);
		return NULL;
	}
	return p;
}

/* Describes every listener of cfg, once (persist.lkind). */
static int listener_kinds(struct persist *p, const struct config *cfg)
{
	size_t i;

	p->lkind = calloc(cfg->nlisteners + 1, sizeof(*p->lkind));
	if (!p->lkind)
		return TERN_ENOMEM;
	p->nlkind = cfg->nlisteners;
	for (i = 0; i < cfg->nlisteners; i++)
		if (!(p->lkind[i] = persist_listener_kind(&cfg->listeners[i])))
			return TERN_ENOMEM;
	return 0;
}

int persist_open(struct broker *b, int nworkers, char *err, size_t errlen)
{
	const struct config *cfg = b->cfg;
	char path[4096], why[1024] = "";
	struct persist *p;
	int rc;

	if (!cfg->persistence || cfg->persistence_sync == PERSIST_OFF)
		return 0;
	if (store_path(cfg, path, sizeof(path)) != 0) {
		snprintf(err, errlen, "persistence path too long");
		return TERN_ETOOBIG;
	}
	if (!(p = persist_new(b, nworkers)))
		return TERN_ENOMEM;
	p->mode = cfg->persistence_sync;
	rc = store_open(path,
	                cfg->persistence_corrupt ? STORE_OPEN_MOVE_BAD : 0,
	                &p->st, why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "%s", why);
		persist_stop(p);
		return rc;
	}
	if (why[0])
		log_msg(LOG_WARNING, "Store: %s.", why);
	if ((rc = listener_kinds(p, cfg)) != 0) {
		persist_stop(p);
		return rc;
	}
	store_set_max_bytes(p->st, cfg->persistence_max_bytes);
	atomic_store(&p->max_bytes, cfg->persistence_max_bytes);
	if ((rc = load_all(p, b)) != 0) {
		snprintf(err, errlen, "cannot load %s: %s", path,
		         tern_strerror(rc));
		persist_stop(p);
		return rc;
	}
	b->persist = p;
	log_msg(LOG_NOTICE, "Persistence: %s (sync %s).", path,
	        p->mode == PERSIST_ALWAYS ? "always" : "batch");
	return 0;
}

int persist_dump(const char *path)
{
	char file[4096], err[1024] = "";
	struct store *st = NULL;
	struct stat sb;
	int rc;

	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		snprintf(file, sizeof(file), "%s/%s", path,
		         PERSIST_DEFAULT_FILE);
	else
		snprintf(file, sizeof(file), "%s", path);
	rc = store_open(file, STORE_OPEN_READONLY, &st, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "ternd: %s\n", err);
		return rc;
	}
	rc = store_dump(st, stdout);
	store_close(st);
	if (rc != 0)
		fprintf(stderr, "ternd: reading %s: %s\n", file,
		        tern_strerror(rc));
	return rc;
}
