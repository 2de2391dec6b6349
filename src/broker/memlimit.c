/*
 * memory_limit: accounting (the broker's mem counters), the default limit,
 * and the enforcement round (memlimit.h).
 */
#include "broker/memlimit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/msg.h"
#include "broker/persist.h"
#include "broker/session.h"
#include "broker/worker.h"

/* Reads one unsigned number from a file; 0 when absent or not a number
 * (cgroup v2 writes "max" for no limit). */
static uint64_t memlimit_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	uint64_t v = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%" SCNu64, &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

uint64_t memlimit_default(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	uint64_t avail =
	        pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
	const char *cg[] = {"/sys/fs/cgroup/memory.max",
	                    "/sys/fs/cgroup/memory/memory.limit_in_bytes"};

	/* In a container the cgroup limit is what the OOM killer goes by;
	 * v1 reports "no limit" as a huge number, which min() ignores. */
	for (size_t i = 0; i < sizeof(cg) / sizeof(cg[0]); i++) {
		uint64_t v = memlimit_read_file(cg[i]);

		if (v && (!avail || v < avail))
			avail = v;
	}
	return avail / 2;
}

void memlimit_init(struct broker *b)
{
	uint64_t v = b->cfg->memory_limit;

	b->mem.limit = v == CONFIG_MEMORY_AUTO ? memlimit_default() : v;
	if (b->mem.limit)
		log_msg(LOG_INFO, "memory_limit: %" PRIu64 " bytes%s.",
		        b->mem.limit,
		        v == CONFIG_MEMORY_AUTO
		                ? " (half of the memory available)"
		                : "");
}

uint64_t memlimit_current(struct broker *b)
{
	int64_t n = atomic_load_explicit(&b->mem.msgs, memory_order_relaxed) +
	            atomic_load_explicit(&b->mem.bufs, memory_order_relaxed);

	return n > 0 ? (uint64_t)n : 0;
}

bool memlimit_over(struct broker *b)
{
	return b->mem.limit && memlimit_current(b) > b->mem.limit;
}

size_t memlimit_conn_bytes(const struct conn *c)
{
	size_t n = c->oq.arena_cap + c->oq.cap * sizeof(struct outq_ent);

	if (c->rbuf && !c->rbuf_borrowed)
		n += c->rcap;
	return n;
}

void memlimit_sample(struct worker *w)
{
	const struct conn *c;
	int64_t sum = 0;

	for (c = w->conns; c; c = c->next)
		sum += (int64_t)memlimit_conn_bytes(c);
	atomic_fetch_add_explicit(&w->b->mem.bufs, sum - w->mem_bufs,
	                          memory_order_relaxed);
	w->mem_bufs = sum;
}

/* Queued plus in-flight payload bytes of a session (caller holds s->mu). */
static uint64_t memlimit_held(const struct session *s)
{
	uint64_t n = s->qbytes;

	for (uint32_t i = 0; i < s->ninfl; i++)
		if (s->infl[i].m)
			n += s->infl[i].m->payload_len;
	return n;
}

/* The session holding the most, with a reference, or NULL if none holds
 * anything. Walks the session table under sess_mu. */
static struct session *memlimit_pick(struct broker *b)
{
	struct session *best = NULL;
	uint64_t most = 0;

	pthread_mutex_lock(&b->sess_mu);
	for (size_t i = 0; i < b->sessions.nbuckets; i++) {
		for (struct session *s = b->sessions.buckets[i]; s;
		     s = s->hnext) {
			uint64_t held;

			pthread_mutex_lock(&s->mu);
			held = memlimit_held(s);
			pthread_mutex_unlock(&s->mu);
			if (held > most) {
				most = held;
				best = s;
			}
		}
	}
	if (best)
		session_ref(best);
	pthread_mutex_unlock(&b->sess_mu);
	return best;
}

/* Drops s's queued messages, counted (caller holds s->mu). In-flight
 * messages stay: they are bounded by the inflight window, and a durable
 * session resends them after a reconnect. Returns the number dropped. */
static uint32_t memlimit_drop_queue(struct broker *b, struct session *s)
{
	struct qmsg q;
	uint32_t n = 0;

	while (session_dequeue(b, s, &q)) {
		if (s->p)
			persist_queue_del(s, &q);
		qmsg_release(&q);
		STAT_DROP(b, DROP_MEMORY_LIMIT);
		n++;
	}
	return n;
}

void memlimit_enforce(struct broker *b, uint64_t now)
{
	uint64_t next = atomic_load(&b->mem.next_enforce);
	struct session *s;
	struct worker *w;
	uint64_t conn_id, held;
	uint32_t dropped;

	if (now < next || !memlimit_over(b) ||
	    !atomic_compare_exchange_strong(&b->mem.next_enforce, &next,
	                                    now + MEMLIMIT_ENFORCE_MS))
		return;
	STAT_ADD(b, mem_limit_hits, 1);
	if (!(s = memlimit_pick(b)))
		return;
	pthread_mutex_lock(&s->mu);
	held = memlimit_held(s);
	dropped = memlimit_drop_queue(b, s);
	w = s->w;
	conn_id = s->conn_id;
	pthread_mutex_unlock(&s->mu);
	log_msg(LOG_WARNING,
	        "memory_limit (%" PRIu64 " bytes) exceeded: %" PRIu64
	        " bytes accounted; client %s held the most (%" PRIu64
	        " bytes), %" PRIu32 " queued messages dropped%s.",
	        b->mem.limit, memlimit_current(b), s->client_id, held, dropped,
	        w ? ", disconnecting it" : "");
	if (w) {
		STAT_ADD(b, mem_disconnects, 1);
		STAT_LIMIT(b, LIM_MEMORY);
		worker_post_kick(w, conn_id, MQTT_RC_QUOTA_EXCEEDED);
	}
	session_unref(s);
}
