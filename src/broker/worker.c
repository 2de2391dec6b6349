/*
 * Worker threads: the loop iteration described in worker.h, accepting on
 * the per-worker listener sockets, the inbox other threads post to, and the
 * periodic tick (deadlines; on worker 0 also session expiry, delayed wills
 * and $SYS).
 */
#include "broker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/memlimit.h"
#include "broker/msg.h"
#include "broker/persist.h"
#include "broker/session.h"
#include "broker/sys.h"
#include "net/sock.h"

/* The read buffer a worker lends to its connections: one 64 KiB read
 * (CONN_READ_CHUNK) plus room to spare. */
#define WORKER_SCRATCH (128u << 10)

/* Deadlines (keepalive, CONNECT, will delay) are checked this often. */
#define WORKER_TICK_MS 250
/* A worker wakes the workers it posted to at the end of its iteration,
 * or earlier once this many posts wait, so that a long iteration does not
 * hold the deliveries back. */
#define WORKER_WAKE_BATCH 64
/* Output buffers of each kind a worker keeps for its connections
 * (outq_pool): at most ~58 KiB; a connect storm beyond 64 replies in one
 * loop iteration gives the rest back to malloc. */
#define WORKER_OQ_POOL 64

/*
 * Reserves a place for a new connection under max_connections (global and
 * of its listener), or logs the refusal and returns false. Workers accept
 * in parallel, so a load-then-compare would let two of them take the last
 * place: the place is taken with one atomic add and given back when it was
 * over. A reserved place is released with worker_unreserve() once
 * conn_accept() has counted the connection (or failed), so the counters
 * are one too high for that moment, never too low.
 */
static bool worker_reserve(struct broker *b, const struct listener_sock *ls,
                           const char *peer)
{
	int global = b->cfg->max_connections, local = ls->cfg->max_connections;
	atomic_int_fast64_t *all = &b->st.connections;

	if (atomic_fetch_add(all, 1) >= global && global >= 0) {
		atomic_fetch_sub(all, 1);
		STAT_LIMIT(b, LIM_MAX_CONNECTIONS);
		log_msg(LOG_NOTICE,
		        "Connection from %s refused: max_connections (%d) "
		        "reached.",
		        peer, global);
		return false;
	}
	if (atomic_fetch_add(&b->listener_conns[ls->index], 1) >= local &&
	    local >= 0) {
		atomic_fetch_sub(&b->listener_conns[ls->index], 1);
		atomic_fetch_sub(all, 1);
		STAT_LIMIT(b, LIM_LISTENER_CONNECTIONS);
		log_msg(LOG_NOTICE,
		        "Connection from %s refused: max_connections (%d) of "
		        "the listener on port %u reached.",
		        peer, local, ls->port);
		return false;
	}
	return true;
}

static void worker_unreserve(struct broker *b, const struct listener_sock *ls)
{
	atomic_fetch_sub(&b->listener_conns[ls->index], 1);
	atomic_fetch_sub(&b->st.connections, 1);
}

/* Opens the spare descriptor if it is not held. */
static void worker_take_spare(struct worker *w)
{
	if (w->spare_fd < 0)
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/*
 * accept() failed for want of descriptors: frees the spare one to accept
 * the waiting connection and close it at once, so that the client sees a
 * close instead of hanging in the backlog and the level-triggered listening
 * socket does not wake the loop again for it. Returns whether one was
 * dropped.
 */
static bool worker_drop_excess(struct worker *w, int lfd)
{
	int fd;

	worker_take_spare(w);
	if (w->spare_fd < 0)
		return false;
	close(w->spare_fd);
	w->spare_fd = -1;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		close(fd);
	worker_take_spare(w);
	if (fd < 0)
		return false;
	w->accept_dropped++;
	return true;
}

/* Logs a failed accept() at most once a second, with the number of
 * connections dropped meanwhile, so a descriptor shortage cannot flood the
 * log. */
static void worker_log_accept_error(struct worker *w,
                                    const struct listener_sock *ls, int err)
{
	uint64_t now = clock_ms();

	if (w->accept_err_logged && now - w->accept_err_logged < 1000)
		return;
	log_msg(LOG_ERR,
	        "accept on port %u: %s (%lu connections dropped since the "
	        "last such message)",
	        ls->port, strerror(err), w->accept_dropped);
	w->accept_err_logged = now;
	w->accept_dropped = 0;
}

static void worker_on_accept(struct loop_io *io, uint32_t events)
{
	struct listener_sock *ls = (struct listener_sock *)io;
	struct worker *w = ls->w;
	struct broker *b = w->b;
	char peer[SOCK_ADDRSTRLEN], host[SOCK_ADDRSTRLEN];
	int i;

	(void)events;
	/* Bounded so that a connect storm cannot starve established
	 * clients of this worker. */
	for (i = 0; i < 64; i++) {
		int fd = sock_accept(io->fd, peer, host);

		if (fd == TERN_EAGAIN)
			return;
		if (fd < 0) {
			int err = errno;

			if ((err == EMFILE || err == ENFILE) &&
			    worker_drop_excess(w, io->fd)) {
				worker_log_accept_error(w, ls, err);
				continue;
			}
			worker_log_accept_error(w, ls, err);
			return;
		}
		if (!worker_reserve(b, ls, peer)) {
			close(fd);
			continue;
		}
		conn_accept(w, ls, fd, peer, host);
		worker_unreserve(b, ls);
	}
}

/* Opens this worker's sockets for one listener (two in local-only mode). */
static int worker_listen(struct worker *w, const struct listener_cfg *lc)
{
	const struct config *cfg = w->b->cfg;
	const char *local[] = {"127.0.0.1", "::1"};
	const char *single[] = {lc->bind};
	const char **addrs = single;
	int naddr = 1, i;

	if (cfg->local_only && !lc->bind) {
		addrs = local;
		naddr = 2;
	}
	for (i = 0; i < naddr; i++) {
		struct listener_sock *ls = &w->lsocks[w->nlsocks];
		/* The first worker checks that no other process listens
		 * there: the others then join its SO_REUSEPORT group. */
		int fd = w->id == 0 && sock_port_free(addrs[i], lc->port) != 0
		                 ? TERN_EIO
		                 : sock_listen(addrs[i], lc->port, 1);

		if (fd < 0) {
			/* A machine without IPv6 still serves 127.0.0.1. */
			if (addrs == local && i == 1)
				continue;
			log_msg(LOG_ERR, "Cannot listen on %s port %u: %s.",
			        addrs[i] ? addrs[i] : "*", lc->port,
			        strerror(errno));
			return TERN_EIO;
		}
		memset(ls, 0, sizeof(*ls));
		ls->io.fd = fd;
		ls->io.cb = worker_on_accept;
		ls->w = w;
		ls->cfg = lc;
		ls->index = (size_t)(lc - cfg->listeners);
		ls->port = lc->port;
		if (lc->protocol == PROTO_WEBSOCKETS)
			ls->transport = lc->certfile ? TR_WSS : TR_WS;
		else
			ls->transport = lc->certfile ? TR_TLS : TR_TCP;
		w->nlsocks++;
		if (loop_add(w->loop, &ls->io, EPOLLIN) != 0)
			return TERN_EIO;
		if (w->id == 0)
			log_msg(LOG_NOTICE,
			        "Opening ipv%c listen socket on "
			        "port %u (%s).",
			        addrs[i] && strchr(addrs[i], ':') ? '6' : '4',
			        lc->port, addrs[i] ? addrs[i] : "all");
	}
	return 0;
}

struct worker *worker_new(struct broker *b, int id)
{
	const struct config *cfg = b->cfg;
	struct worker *w = calloc(1, sizeof(*w));
	size_t i;

	if (!w)
		return NULL;
	w->b = b;
	w->id = id;
	outq_pool_init(&w->oqpool, WORKER_OQ_POOL);
	w->spare_fd = -1;
	worker_take_spare(w);
	pthread_mutex_init(&w->inbox_mu, NULL);
	w->loop = loop_new();
	w->lsocks = calloc(cfg->nlisteners * 2 + 1, sizeof(*w->lsocks));
	w->scratch_cap = WORKER_SCRATCH;
	w->scratch = malloc(w->scratch_cap);
	if (!w->loop || !w->lsocks || !w->scratch)
		goto fail;
	for (i = 0; i < cfg->nlisteners; i++)
		if (worker_listen(w, &cfg->listeners[i]) != 0)
			goto fail;
	return w;
fail:
	worker_free(w);
	return NULL;
}

/* Writes out every connection queued for a flush; closed ones are only
 * taken off the list. Flushing may queue more (a will published on a
 * write error): the list is empty on return. */
static void worker_flush_all(struct worker *w)
{
	while (w->flush_list) {
		struct conn *c = w->flush_list;

		w->flush_list = c->flush_next;
		c->in_flush = false;
		if (c->state != CONN_CLOSED)
			conn_flush(c);
	}
}

/*
 * Frees the connections closed this round. One may still be on the flush
 * list: queued for a flush, then closed before the list was walked (a
 * held-back publisher let go after the round's flush sends a PUBACK, then
 * reads a malformed packet). So the list is emptied first.
 */
static void worker_free_dead(struct worker *w)
{
	if (w->dead)
		worker_flush_all(w);
	while (w->dead) {
		struct conn *c = w->dead;

		w->dead = c->next;
		conn_free(c);
	}
}

void worker_free(struct worker *w)
{
	int i;
	size_t k;

	if (!w)
		return;
	while (w->conns) {
		struct conn *c = w->conns;

		/* Shutdown is not a client failure: wills are not sent now;
		 * a durable session keeps its will through the restart
		 * (conn_take_will), the others drop it. */
		c->stopping = true;
		c->normal_disconnect = true;
		conn_close(c, MQTT_RC_SERVER_SHUTTING_DOWN, "broker stopping");
	}
	worker_free_dead(w);
	outq_pool_free(&w->oqpool);
	for (i = 0; i < w->nlsocks; i++)
		close(w->lsocks[i].io.fd);
	if (w->spare_fd >= 0)
		close(w->spare_fd);
	for (k = 0; k < w->ninbox; k++)
		session_unref(w->inbox[k].s);
	free(w->inbox);
	free(w->inbox_spare);
	auth_unref(w->auth);
	free(w->lsocks);
	free(w->scratch);
	loop_free(w->loop);
	pthread_mutex_destroy(&w->inbox_mu);
	free(w);
}

/* Appends to the inbox; returns true if the worker must be woken. */
static bool worker_inbox_push(struct worker *to, const struct inbox_item *it)
{
	bool wake;

	pthread_mutex_lock(&to->inbox_mu);
	if (to->ninbox == to->inbox_cap) {
		size_t ncap = to->inbox_cap ? to->inbox_cap * 2 : 64;
		struct inbox_item *v = realloc(to->inbox, ncap * sizeof(*v));

		if (!v) {
			pthread_mutex_unlock(&to->inbox_mu);
			log_msg(LOG_ERR, "Out of memory in worker inbox.");
			return false;
		}
		to->inbox = v;
		to->inbox_cap = ncap;
	}
	to->inbox[to->ninbox++] = *it;
	wake = to->ninbox == 1;
	pthread_mutex_unlock(&to->inbox_mu);
	return wake;
}

/* The worker whose thread this is; NULL on other threads (the store
 * thread, the main thread). */
static _Thread_local struct worker *worker_self;

/* Wakes every worker posted to since the last round. */
static void worker_wake_due(struct worker *w)
{
	unsigned i;

	for (i = 0; i < w->nwake_due; i++)
		loop_wake(w->wake_due[i]->loop);
	w->nwake_due = 0;
	w->posts_due = 0;
}

/*
 * After a post to `to`: wakes it now from a thread that is not a worker,
 * else remembers it for worker_wake_due() at the end of this worker's
 * iteration. In a fan-in each delivery to a subscriber on another worker
 * woke that worker (an eventfd write, an epoll wake-up and a read); now
 * the deliveries of one iteration share one wake-up.
 */
static void worker_wake_later(struct worker *to, bool wake)
{
	struct worker *self = worker_self;
	unsigned i;

	if (!self) {
		if (wake)
			loop_wake(to->loop);
		return;
	}
	if (wake) {
		for (i = 0; i < self->nwake_due; i++)
			if (self->wake_due[i] == to)
				break;
		if (i == self->nwake_due) {
			if (i == WORKER_WAKE_DUE)
				loop_wake(to->loop);
			else
				self->wake_due[self->nwake_due++] = to;
		}
	}
	if (++self->posts_due >= WORKER_WAKE_BATCH && self->nwake_due)
		worker_wake_due(self);
}

void worker_post_pump(struct worker *to, struct session *s)
{
	struct inbox_item it = {.kind = INBOX_PUMP, .s = session_ref(s)};

	worker_wake_later(to, worker_inbox_push(to, &it));
}

void worker_post_kick(struct worker *to, uint64_t conn_id, uint8_t reason)
{
	struct inbox_item it = {
	        .kind = INBOX_KICK, .reason = reason, .conn_id = conn_id};

	worker_wake_later(to, worker_inbox_push(to, &it));
}

void worker_want_flush(struct worker *w, struct conn *c)
{
	if (c->in_flush || c->state == CONN_CLOSED)
		return;
	c->in_flush = true;
	c->flush_next = w->flush_list;
	w->flush_list = c;
}

static const char *worker_kick_why(uint8_t reason)
{
	switch (reason) {
	case MQTT_RC_ADMIN_ACTION: return "disconnected through the admin API";
	case MQTT_RC_QUOTA_EXCEEDED: return "memory_limit exceeded";
	default: return "taken over by a new connection";
	}
}

static void worker_kick(struct worker *w, uint64_t conn_id, uint8_t reason)
{
	struct conn *c;

	for (c = w->conns; c; c = c->next)
		if (c->id == conn_id) {
			conn_close(c, reason, worker_kick_why(reason));
			return;
		}
}

static void worker_pump(struct worker *w, struct session *s)
{
	atomic_store(&s->ready, false);
	pthread_mutex_lock(&s->mu);
	if (s->w == w && s->conn)
		conn_pump_locked(s->conn, s);
	pthread_mutex_unlock(&s->mu);
}

/* Handles everything posted to us; swaps buffers to keep the lock short. */
static void worker_drain_inbox(struct worker *w)
{
	struct inbox_item *items;
	size_t n, cap, i;

	pthread_mutex_lock(&w->inbox_mu);
	items = w->inbox;
	n = w->ninbox;
	cap = w->inbox_cap;
	w->inbox = w->inbox_spare;
	w->inbox_cap = w->spare_cap;
	w->ninbox = 0;
	pthread_mutex_unlock(&w->inbox_mu);

	for (i = 0; i < n; i++) {
		if (items[i].kind == INBOX_PUMP) {
			worker_pump(w, items[i].s);
			session_unref(items[i].s);
		} else {
			worker_kick(w, items[i].conn_id, items[i].reason);
		}
	}
	w->inbox_spare = items;
	w->spare_cap = cap;
}

static void worker_tick(struct worker *w, uint64_t now)
{
	struct conn *c, *next;

	for (c = w->conns; c; c = next) {
		next = c->next;
		conn_check_timeouts(c, now);
	}
	memlimit_sample(w);
	memlimit_enforce(w->b, now);
	if (w->id != 0)
		return;
	sys_sweep_sessions(w->b, w, now);
	if (w->b->cfg->sys_interval > 0 && now >= w->next_sys) {
		sys_publish(w->b, w, now);
		w->next_sys = now + (uint64_t)w->b->cfg->sys_interval * 1000u;
	}
}

void worker_refresh_auth(struct worker *w)
{
	unsigned gen = atomic_load(&w->b->auth_gen);

	if (w->auth && gen == w->auth_gen)
		return;
	auth_unref(w->auth);
	w->auth = broker_get_auth(w->b);
	w->auth_gen = gen;
}

/* Resumes held-back publishers whose consumers drained. */
static void worker_check_throttled(struct worker *w, uint64_t now)
{
	struct conn *c = w->throttled, *next;

	for (; c; c = next) {
		next = c->throttle_next;
		conn_check_throttle(c, now);
	}
}

/* Sends the acknowledgements whose store round has committed. The list is
 * taken first: sending may parse buffered packets, which hold new acks,
 * or close connections, which unlink themselves. */
static void worker_release_acks(struct worker *w)
{
	uint64_t committed = persist_committed(w->b->persist);
	struct conn *c = w->ackwait, *next;

	w->ackwait = NULL;
	for (; c; c = next) {
		next = c->ackwait_next;
		c->ackwait_next = NULL;
		if (!c->in_ackwait)
			continue; /* closed meanwhile */
		c->in_ackwait = false;
		if (c->state == CONN_CLOSED)
			continue;
		if (conn_ack_release(c, committed) && !c->in_ackwait) {
			c->in_ackwait = true;
			c->ackwait_next = w->ackwait;
			w->ackwait = c;
		}
	}
}

/* Gives every connection whose turn ran out (conn_parse) another one,
 * after the events of this iteration had theirs. */
static void worker_run_pending(struct worker *w)
{
	struct conn *c = w->pending, *next;

	/* conn_continue may put c back on a new list; one closed meanwhile
	 * is still allocated until worker_free_dead. */
	w->pending = NULL;
	for (; c; c = next) {
		next = c->pending_next;
		conn_continue(c);
	}
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct broker *b = w->b;

	if (b->persist)
		persist_thread_init(b->persist, w->id);
	worker_self = w;
	worker_refresh_auth(w);
	w->next_tick = clock_ms() + WORKER_TICK_MS;
	w->next_sys = clock_ms();
	while (!atomic_load(&b->stopping)) {
		uint64_t now = clock_ms();
		int timeout =
		        now >= w->next_tick ? 0 : (int)(w->next_tick - now);

		/* Held-back publishers are re-checked every millisecond;
		 * connections whose turn ran out go on at once. */
		if (w->throttled && timeout > 1)
			timeout = 1;
		if (w->pending)
			timeout = 0;

		if (loop_run_once(w->loop, timeout) < 0) {
			log_msg(LOG_ERR, "epoll_wait: %s", strerror(errno));
			break;
		}
		if (loop_take_wakeup(w->loop))
			worker_drain_inbox(w);
		if (w->ackwait)
			worker_release_acks(w);
		worker_refresh_auth(w);
		now = clock_ms();
		if (now >= w->next_tick) {
			worker_tick(w, now);
			w->next_tick = now + WORKER_TICK_MS;
		}
		if (w->pending)
			worker_run_pending(w);
		/* Before our own writes, so the targets work meanwhile. */
		worker_wake_due(w);
		worker_flush_all(w);
		if (w->throttled)
			worker_check_throttled(w, clock_ms());
		worker_free_dead(w);
		if (b->persist)
			persist_kick(b->persist, w->id, w->ackwait != NULL);
		/* Posts made by the steps after the first round. */
		worker_wake_due(w);
	}
	worker_wake_due(w);
	return NULL;
}
