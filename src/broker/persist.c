/*
 * Group commit (see persist.h for the ordering and ticket rules): the
 * operations workers append, the batches they go to, and the store thread
 * that takes every batch each round, compacts the operations (a message
 * queued and acknowledged within one round never touches the disk),
 * applies them in one transaction and tells the workers. Loading a store at
 * start is in persist_load.c.
 *
 * When a round fails (disk full, persistence_max_bytes, I/O error) its
 * operations stay in memory and the round is retried, first whole, then
 * the deletions alone (they free space: subscribers draining their queues
 * is how a full store recovers); tickets do not advance meanwhile, so
 * acknowledgements that promise durability are held, not sent.
 */
#include "broker/persist_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/msg.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "event/loop.h"

/* How long `persistence_sync batch` gathers before committing. */
#define PERSIST_BATCH_MS 50
/* How soon a failed round is retried. */
#define PERSIST_RETRY_MS 250

/* The calling thread's default batch, and what it appended. A thread-local
 * because session functions deep in the call tree append without knowing
 * their worker; it is only a hint (any batch is correct, see persist.h). */
static __thread struct persist *tls_p;
static __thread struct pbatch *tls_home;
static __thread uint64_t tls_ops;
static __thread bool tls_dirty;

int64_t persist_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void persist_thread_init(struct persist *p, int i)
{
	tls_p = p;
	tls_home = i >= 0 && i < p->nbatches - 1 ? &p->batches[i]
	                                         : &p->batches[p->nbatches - 1];
}

uint64_t persist_thread_ops(void)
{
	return tls_ops;
}

static struct pbatch *home(struct persist *p)
{
	return tls_p == p && tls_home ? tls_home : &p->batches[p->nbatches - 1];
}

/*
 * Returns the batch (locked) that s's next operation goes to: the one
 * holding its pending operations while not yet taken, else ours.
 */
static struct pbatch *batch_for(struct persist *p, struct session *s)
{
	struct pbatch *pb = s ? s->pb : NULL;

	if (pb) {
		pthread_mutex_lock(&pb->mu);
		if (pb->gen == s->pb_gen)
			return pb;
		pthread_mutex_unlock(&pb->mu);
	}
	pb = home(p);
	pthread_mutex_lock(&pb->mu);
	if (s) {
		s->pb = pb;
		s->pb_gen = pb->gen;
	}
	return pb;
}

/* Appends a copy of *op (its references move to the batch). On OOM the
 * operation is lost: counted and logged, the references dropped. */
static void append(struct persist *p, struct session *s, struct pop *op)
{
	struct pbatch *pb = batch_for(p, s);

	if (pb->n == pb->cap) {
		size_t ncap = pb->cap ? pb->cap * 2 : 256;
		struct pop *v = realloc(pb->v, ncap * sizeof(*v));

		if (!v) {
			pthread_mutex_unlock(&pb->mu);
			log_msg(LOG_ERR,
			        "Out of memory queueing a store write; "
			        "it is lost.");
			STAT_ADD(p->b, store_errors, 1);
			pop_release(op);
			return;
		}
		pb->v = v;
		pb->cap = ncap;
	}
	pb->v[pb->n++] = *op;
	pthread_mutex_unlock(&pb->mu);
	tls_ops++;
	tls_dirty = true;
}

void pop_release(struct pop *op)
{
	if (op->kind == OP_SESS_PUT && op->ptr)
		auth_grant_unref(((struct pop_owner *)op->ptr)->grant);
	session_unref(op->s);
	msg_unref(op->m);
	free(op->ptr);
	op->s = NULL;
	op->m = NULL;
	op->ptr = NULL;
}

static void op_init(struct pop *op, uint8_t kind, struct session *s)
{
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->s = s ? session_ref(s) : NULL;
}

/* A copy of who s belongs to (caller holds s->mu); NULL on OOM. */
static struct pop_owner *owner_of(const struct session *s)
{
	size_t ulen = s->username ? strlen(s->username) : 0;
	struct pop_owner *o = malloc(sizeof(*o) + ulen);

	if (!o)
		return NULL;
	o->grant = auth_grant_ref(s->grant);
	o->has_listener =
	        s->listener != AUTH_ANY_LISTENER && s->listener <= UINT32_MAX;
	o->listener = o->has_listener ? (uint32_t)s->listener : 0;
	o->has_user = s->username != NULL;
	o->user_len = ulen;
	memcpy(o->user, s->username ? s->username : "", ulen);
	return o;
}

void persist_session_put(struct session *s, const struct msg *will,
                         uint32_t will_delay, int64_t offline_wall)
{
	struct pop op;

	op_init(&op, OP_SESS_PUT, s);
	/* Without its owner the record would restore with fewer rules
	 * than it had (no grant): better not written at all. */
	if (!(op.ptr = owner_of(s))) {
		log_msg(LOG_ERR, "Out of memory queueing a store write; "
		                 "it is lost.");
		STAT_ADD(s->p->b, store_errors, 1);
		pop_release(&op);
		return;
	}
	op.version = s->version;
	op.u32 = s->expiry;
	op.wall = offline_wall;
	op.m = will ? msg_ref((struct msg *)will) : NULL;
	op.will_delay = will_delay;
	append(s->p, s, &op);
}

void persist_session_end(struct session *s)
{
	struct persist *p = s->p;
	struct pop op;

	if (!p)
		return;
	op_init(&op, OP_SESS_DEL, s);
	append(p, s, &op);
	s->p = NULL;
}

void persist_sub_put(struct session *s, const struct sub_rec *r)
{
	struct pop op;

	op_init(&op, OP_SUB_PUT, s);
	op.ptr = malloc(r->len ? r->len : 1);
	if (!op.ptr) {
		pop_release(&op);
		return;
	}
	memcpy(op.ptr, r->filter, r->len);
	op.len = r->len;
	op.opts = r->opts;
	append(s->p, s, &op);
}

void persist_sub_del(struct session *s, const char *filter, uint16_t len)
{
	struct pop op;

	op_init(&op, OP_SUB_DEL, s);
	op.ptr = malloc(len ? len : 1);
	if (!op.ptr) {
		pop_release(&op);
		return;
	}
	memcpy(op.ptr, filter, len);
	op.len = len;
	append(s->p, s, &op);
}

/* Gives m its store id (once, any thread). */
static uint64_t msg_store_id(struct persist *p, struct msg *m)
{
	uint64_t id = atomic_load(&m->store_id), fresh;

	if (id)
		return id;
	fresh = atomic_fetch_add(&p->next_msg_id, 1);
	if (atomic_compare_exchange_strong(&m->store_id, &id, fresh))
		return fresh;
	return id;
}

static void queue_fields(struct pop *op, const struct qmsg *q)
{
	op->seq = q->seq;
	op->qos = q->qos;
	op->retain = q->retain;
	op->dup = q->dup;
	op->shared = q->shared;
	op->state = q->state;
	op->pid = q->pid;
}

void persist_queue_put(struct session *s, struct qmsg *q)
{
	struct pop op;

	q->seq = ++s->store_seq;
	op_init(&op, OP_Q_PUT, s);
	queue_fields(&op, q);
	op.m = msg_ref(q->m);
	op.msg_id = msg_store_id(s->p, q->m);
	if (q->nsubids) {
		op.ptr = malloc(q->nsubids * sizeof(uint32_t));
		if (op.ptr) {
			memcpy(op.ptr, q->subids,
			       q->nsubids * sizeof(uint32_t));
			op.nsubids = q->nsubids;
		}
	}
	append(s->p, s, &op);
}

void persist_queue_update(struct session *s, const struct qmsg *q)
{
	struct pop op;

	if (!q->seq)
		return;
	op_init(&op, OP_Q_UPD, s);
	queue_fields(&op, q);
	/* Past PUBREC the row needs no message any more. */
	if (q->m && q->state == QS_WAIT_PUBCOMP)
		op.gc_id = msg_store_id(s->p, q->m);
	else if (q->m)
		op.msg_id = msg_store_id(s->p, q->m);
	append(s->p, s, &op);
}

void persist_queue_del(struct session *s, const struct qmsg *q)
{
	struct pop op;

	if (!q->seq)
		return;
	op_init(&op, OP_Q_DEL, s);
	op.seq = q->seq;
	append(s->p, s, &op);
}

void persist_inq2(struct session *s, uint16_t pid, bool add)
{
	struct pop op;

	op_init(&op, add ? OP_INQ2_PUT : OP_INQ2_DEL, s);
	op.pid = pid;
	append(s->p, s, &op);
}

void persist_retained(struct persist *p, struct msg *m, uint64_t seq)
{
	struct pop op;

	/* $SYS topics are rebuilt every sys_interval; storing them would
	 * only cost writes. */
	if (m->topic_len >= 4 && memcmp(m->topic, "$SYS", 4) == 0)
		return;
	op_init(&op, m->payload_len ? OP_RET_PUT : OP_RET_DEL, NULL);
	op.m = msg_ref(m);
	op.seq = seq;
	append(p, NULL, &op);
}

static size_t ended_slot(const char *client_id)
{
	uint64_t h = 1469598103934665603ull;

	while (*client_id)
		h = (h ^ (uint8_t)*client_id++) * 1099511628211ull;
	return (size_t)(h % PERSIST_ENDED_SLOTS);
}

void persist_session_removed(struct persist *p, struct session *s)
{
	size_t i = ended_slot(s->client_id);

	/* A collision only makes another session's writes follow this
	 * batch, which is always allowed. s->mu may or may not be held:
	 * the session has ended (s->p is NULL), so nothing writes pb. */
	p->ended[i].pb = s->pb;
	p->ended[i].gen = s->pb_gen;
}

void persist_session_inserted(struct persist *p, struct session *s)
{
	size_t i = ended_slot(s->client_id);

	if (!p->ended[i].pb || s->pb)
		return;
	s->pb = p->ended[i].pb;
	s->pb_gen = p->ended[i].gen;
}

uint64_t persist_ack_ticket(struct persist *p, uint64_t ops0)
{
	if (!p || tls_ops == ops0 || !persist_gates_acks(p))
		return 0;
	return persist_ticket(p);
}

uint64_t persist_ticket(struct persist *p)
{
	return atomic_load(&p->round_started) + 1;
}

uint64_t persist_committed(struct persist *p)
{
	return atomic_load(&p->round_committed);
}

bool persist_gates_acks(struct persist *p)
{
	return p->mode == PERSIST_ALWAYS || atomic_load(&p->failing);
}

void persist_kick(struct persist *p, int w_index, bool want_wake)
{
	if (want_wake)
		atomic_store(&p->want_wake[w_index], true);
	if (!tls_dirty && !want_wake)
		return;
	tls_dirty = false;
	pthread_mutex_lock(&p->mu);
	if (!p->pending) {
		p->pending = true;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->mu);
}

void persist_request_checkpoint(struct persist *p)
{
	pthread_mutex_lock(&p->mu);
	p->checkpoint = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
}

void persist_set_max_bytes(struct persist *p, uint64_t max_bytes)
{
	atomic_store(&p->max_bytes, max_bytes);
	atomic_store(&p->max_bytes_changed, true);
	persist_request_checkpoint(p);
}

/* Moves every batch's operations to p->ops, in batch order. */
static int take_batches(struct persist *p)
{
	int i;

	for (i = 0; i < p->nbatches; i++) {
		struct pbatch *pb = &p->batches[i];

		pthread_mutex_lock(&pb->mu);
		if (p->nops + pb->n > p->ops_cap) {
			size_t ncap = (p->nops + pb->n) * 2;
			struct pop *v = realloc(p->ops, ncap * sizeof(*v));

			if (!v) {
				pthread_mutex_unlock(&pb->mu);
				return TERN_ENOMEM;
			}
			p->ops = v;
			p->ops_cap = ncap;
		}
		if (pb->n)
			memcpy(p->ops + p->nops, pb->v, pb->n * sizeof(*pb->v));
		p->nops += pb->n;
		pb->n = 0;
		pb->gen++;
		pthread_mutex_unlock(&pb->mu);
	}
	return 0;
}

/* Drops operations marked dead and, with `done`, those applied. */
static void ops_sweep(struct persist *p, bool (*gone)(const struct pop *))
{
	size_t i, k = 0;

	for (i = 0; i < p->nops; i++) {
		if (p->ops[i].dead || gone(&p->ops[i]))
			pop_release(&p->ops[i]);
		else
			p->ops[k++] = p->ops[i];
	}
	p->nops = k;
}

static bool gone_all(const struct pop *op)
{
	(void)op;
	return true;
}

static bool gone_none(const struct pop *op)
{
	(void)op;
	return false;
}

static void wake_workers(struct persist *p)
{
	struct broker *b = p->b;
	int i;

	/* Only the store thread wakes workers; after persist_stop_thread
	 * the workers may be gone. */
	if (!p->started)
		return;
	for (i = 0; i < b->nworkers && i < p->nbatches - 1; i++)
		if (atomic_exchange(&p->want_wake[i], false))
			loop_wake(b->workers[i]->loop);
}

/* Logs the first failure of an episode and the recovery. */
static void note_failure(struct persist *p, int rc)
{
	STAT_ADD(p->b, store_errors, 1);
	if (atomic_exchange(&p->failing, true))
		return;
	log_msg(LOG_ERR,
	        "Store write failed (%s): QoS 1/2 messages are not "
	        "acknowledged until it can be written; retrying.",
	        rc == TERN_ELIMIT ? "store full" : tern_strerror(rc));
}

static void note_success(struct persist *p)
{
	if (atomic_exchange(&p->failing, false))
		log_msg(LOG_NOTICE, "Store writable again; acknowledgements "
		                    "resume.");
}

/* One round: take, compact, apply, commit, publish the ticket. */
static void persist_round(struct persist *p)
{
	uint64_t r = atomic_fetch_add(&p->round_started, 1) + 1;
	int rc;

	if (take_batches(p) != 0) {
		note_failure(p, TERN_ENOMEM);
		return;
	}
	if (atomic_exchange(&p->max_bytes_changed, false))
		store_set_max_bytes(p->st, atomic_load(&p->max_bytes));
	if (p->nops) {
		persist_compact(p);
		rc = persist_apply(p, APPLY_ALL);
		if (rc != 0) {
			note_failure(p, rc);
			/* Deletions alone free space; what they delete
			 * is committed, so they can leave the list. */
			if (persist_apply(p, APPLY_DELETES) == 0)
				ops_sweep(p, pop_is_delete);
			else
				ops_sweep(p, gone_none);
			return;
		}
		ops_sweep(p, gone_all);
		STAT_ADD(p->b, store_commits, 1);
	}
	note_success(p);
	atomic_store(&p->round_committed, r);
	wake_workers(p);
}

/* Waits PERSIST_RETRY_MS unless stopping or asked to checkpoint: a
 * failing store is retried at that pace, however busy the workers are. */
static void wait_retry(struct persist *p)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += PERSIST_RETRY_MS * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (!p->stopping && !p->checkpoint)
		if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT)
			break;
}

/* Waits for work; returns false when stopping. */
static bool persist_wait(struct persist *p, bool *checkpoint)
{
	bool go;

	pthread_mutex_lock(&p->mu);
	if (atomic_load(&p->failing))
		wait_retry(p);
	else
		while (!p->pending && !p->stopping && !p->checkpoint)
			pthread_cond_wait(&p->cond, &p->mu);
	p->pending = false;
	*checkpoint = p->checkpoint;
	p->checkpoint = false;
	go = !p->stopping;
	pthread_mutex_unlock(&p->mu);
	return go;
}

static void *persist_main(void *arg)
{
	struct persist *p = arg;
	bool checkpoint;

	while (persist_wait(p, &checkpoint)) {
		/* batch mode: let writes gather; acks do not wait. */
		if (p->mode == PERSIST_BATCH && !atomic_load(&p->failing)) {
			struct timespec ts = {0, PERSIST_BATCH_MS * 1000000L};

			nanosleep(&ts, NULL);
		}
		persist_round(p);
		if (checkpoint && store_checkpoint(p->st) == 0)
			log_msg(LOG_NOTICE, "Store checkpointed.");
	}
	return NULL;
}

int persist_start(struct persist *p)
{
	if (pthread_create(&p->thread, NULL, persist_main, p) != 0) {
		log_msg(LOG_ERR, "Cannot start the store thread.");
		return TERN_EIO;
	}
	p->started = true;
	return 0;
}

void persist_stop_thread(struct persist *p)
{
	if (!p || !p->started)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	p->started = false;
}

void persist_stop(struct persist *p)
{
	int i, tries;

	if (!p)
		return;
	persist_stop_thread(p);
	/* The workers are gone: flush what they left, a few attempts if the
	 * store is failing. */
	for (tries = 0; p->st && tries < 3; tries++) {
		persist_round(p);
		if (!p->nops)
			break;
	}
	if (p->nops)
		log_msg(LOG_ERR,
		        "Store: %zu writes could not be saved at shutdown.",
		        p->nops);
	take_batches(p);
	ops_sweep(p, gone_all);
	for (i = 0; i < p->nbatches; i++) {
		free(p->batches[i].v);
		pthread_mutex_destroy(&p->batches[i].mu);
	}
	store_close(p->st);
	for (i = 0; p->lkind && i < (int)p->nlkind; i++)
		free(p->lkind[i]);
	free(p->lkind);
	free(p->ops);
	free(p->enc);
	free(p->batches);
	free(p->want_wake);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cond);
	free(p);
}
