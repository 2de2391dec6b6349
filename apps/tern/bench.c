/*
 * `tern bench`: loads a broker and measures it (emqtt-bench's shape:
 * `bench pub|sub|conn`, plus `pubsub`, publishers and subscribers in one
 * process). One thread and one epoll loop drive every connection; see
 * bench.h for the modules and the payload format.
 *
 * A run has phases. SETUP opens the connections (-i apart, at most --par
 * setting up at once) until each has its CONNACK (and SUBACK). RUN
 * publishes for -d seconds or until -n messages are out (`sub`: receives
 * until -d, -n or a signal). DRAIN waits for what is still on its way:
 * acknowledgements, and in `pubsub` the deliveries, until everything
 * arrived, nothing moved for a second, or --drain passed. Every resource
 * is bounded, and the run ends whatever the broker does.
 *
 * The throughput reported is the number of messages delivered while
 * publishers were publishing, per second; the drain only completes the
 * accounting of loss, duplicates and latency. With --pid the broker's CPU
 * time (utime + stime from /proc/PID/stat) is read when publishing starts
 * and when the run ends, and reported per delivered message.
 *
 * `conn` measures connections instead: it opens -c connections (CONNECT,
 * nothing more) at -r per second or as fast as possible, reports how fast
 * they came up, each one's set-up time (connect() to CONNACK, TLS and the
 * upgrade included) and the broker's CPU time per connection, holds them
 * --idle seconds and reports the broker's resident memory and the kernel's
 * socket figures before and after. It raises its own file limit and uses
 * several loopback source addresses when one has too few ports.
 *
 * SIGINT or SIGTERM ends the run early with a report; a second one ends
 * the drain too.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cmd.h"
#include "net/tls.h"

/* The only global: how many SIGINT/SIGTERM arrived. */
volatile int bench_stop;

static void on_signal(int sig)
{
	(void)sig;
	if (bench_stop < 2)
		bench_stop++;
}

uint64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* Connections that count: publishers and subscribers, or `conn`'s. */
static unsigned counted(const struct load *L)
{
	return L->o.mode == MODE_CONN ? L->o.conns : L->nconn;
}

/*
 * --resume: the first connection goes alone, so that the others have its
 * session to resume (a TLS 1.3 ticket arrives after the handshake, with
 * the first reads). Without a session once it is up or gone (a server
 * that issues none), the rest go ahead with full handshakes.
 */
static bool resume_wait(struct load *L)
{
	return L->o.resume && L->opened >= 1 && L->ready + L->st.errors == 0 &&
	       !tls_client_has_session(L->tls);
}

/*
 * Opens the connections whose turn has come: -i apart (or all at once),
 * at most --par of them setting up at a time.
 */
static int open_due(struct load *L, uint64_t now)
{
	while (L->opened < counted(L) &&
	       L->opened - L->ready - L->st.errors < L->o.par &&
	       (!L->conn_period || L->next_open <= now) && !resume_wait(L)) {
		struct conn *c = &L->c[L->opened++];

		L->next_open += L->conn_period;
		if (bench_conn_open(L, c) != 0) {
			fprintf(stderr, "tern bench: connect: %s\n",
			        strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* When publishing starts: the clock of the run and the CPU snapshot. */
static void start_run(struct load *L, uint64_t now)
{
	unsigned i;

	L->phase = PH_RUN;
	L->t_start = now;
	L->t_end = L->o.duration > 0
	                   ? now + (uint64_t)(L->o.duration * NS_PER_S)
	                   : UINT64_MAX;
	L->t_last_rx = now;
	L->live.at = now + NS_PER_S;
	L->broker_ticks0 = bench_proc_ticks(L->o.pid);
	getrusage(RUSAGE_SELF, &L->ru0);
	/* Publishers start spread over one period, not all at once. */
	for (i = 0; i < L->o.pubs; i++)
		L->c[i].due = now + L->period * i / L->o.pubs;
}

static void stop_run(struct load *L, uint64_t now)
{
	L->phase = PH_DONE;
	L->t_stop = now;
	L->broker_ticks1 = bench_proc_ticks(L->o.pid);
	getrusage(RUSAGE_SELF, &L->ru1);
}

/* Every publisher has sent its share of -n (or died). */
static bool quotas_done(const struct load *L)
{
	if (!L->o.limit)
		return false;
	for (unsigned i = 0; i < L->o.pubs; i++)
		if (L->c[i].state != ST_DEAD &&
		    L->c[i].published < L->c[i].quota)
			return false;
	return true;
}

/*
 * With --pid, during the drain: reads the broker's CPU time every
 * BUSY_PROBE_NS and notes in t_busy when it used more than BUSY_PERMILLE
 * of a CPU since the last reading. A broker working through a backlog
 * (publishers' input still in its sockets, deep queues) may deliver
 * nothing for longer than IDLE_NS while it works, and is not idle.
 */
static void probe_broker(struct load *L, uint64_t now)
{
	long long t;

	if (L->o.pid <= 0 || now - L->probe_at < BUSY_PROBE_NS)
		return;
	t = bench_proc_ticks(L->o.pid);
	if (t >= 0 && L->probe_ticks >= 0 &&
	    (double)(t - L->probe_ticks) / (double)sysconf(_SC_CLK_TCK) * 1e3 >
	            (double)(now - L->probe_at) / NS_PER_S * BUSY_PERMILLE)
		L->t_busy = now;
	L->probe_ticks = t;
	L->probe_at = now;
}

/*
 * Nothing moved for IDLE_NS: no byte read or written on any connection,
 * and the broker (with --pid) not busy. Measured from the start of the
 * drain at the earliest: a broker that delivered nothing in the last
 * second of publishing may be behind, not done (the tail that once ended
 * at once with 0 of millions delivered).
 */
static bool quiet(const struct load *L, uint64_t now)
{
	uint64_t last = L->t_last_rx;

	if (L->t_last_tx > last)
		last = L->t_last_tx;
	if (L->t_busy > last)
		last = L->t_busy;
	return now - last >= IDLE_NS;
}

/*
 * Whether the run is over: everything sent, acked and delivered, or
 * everything sent and acked and nothing moved for a while (the rest is
 * lost), or the drain timeout passed.
 */
static bool drained(struct load *L, uint64_t now)
{
	unsigned i;

	probe_broker(L, now);
	L->tail = TAIL_TIMEOUT;
	if (now >= L->t_drain_end || bench_stop > 1)
		return true;
	for (i = 0; i < L->o.pubs; i++)
		if (L->c[i].state != ST_DEAD &&
		    (bench_conn_pending(&L->c[i]) > 0 || L->c[i].inflight > 0))
			return false;
	L->tail = TAIL_COMPLETE;
	if (L->o.mode == MODE_PUB || L->st.delivered >= bench_stats_expected(L))
		return true;
	L->tail = TAIL_IDLE;
	return quiet(L, now);
}

/* The RUN phase is over for this mode. */
static bool run_over(const struct load *L, uint64_t now)
{
	if (bench_stop || now >= L->t_end)
		return true;
	if (L->o.mode == MODE_SUB)
		return L->o.limit && L->st.delivered >= L->o.limit;
	return quotas_done(L);
}

/* Moves from one phase to the next; returns -1 when setup fails. */
static int advance(struct load *L, uint64_t now)
{
	unsigned i, dead = 0;

	for (i = 0; i < L->opened; i++)
		dead += L->c[i].state == ST_DEAD;
	if (L->opened == L->nconn && dead == L->nconn) {
		fprintf(stderr, "tern bench: every connection is gone\n");
		if (L->phase == PH_SETUP)
			return -1;
		stop_run(L, now);
		return 0;
	}
	switch (L->phase) {
	case PH_SETUP:
		if (dead > 0 || now > L->t_setup_end || bench_stop) {
			fprintf(stderr,
			        "tern bench: setup failed (%u of %u "
			        "connections ready)\n",
			        L->ready, L->nconn);
			return -1;
		}
		if (L->ready == L->nconn)
			start_run(L, now);
		break;
	case PH_RUN:
		if (!run_over(L, now))
			break;
		if (L->o.mode == MODE_SUB) {
			stop_run(L, now);
			break;
		}
		if (now < L->t_end)
			L->t_end = now;
		L->phase = PH_DRAIN;
		L->t_drain_end = now + (uint64_t)(L->o.drain * NS_PER_S);
		/* The idle time of the tail counts from here at the earliest.
		 */
		L->t_busy = now;
		L->probe_at = now;
		L->probe_ticks = bench_proc_ticks(L->o.pid);
		break;
	case PH_DRAIN:
		if (drained(L, now))
			stop_run(L, now);
		break;
	case PH_DONE: break;
	}
	return 0;
}

/* Arms the timerfd for the earliest publisher that waits only for time. */
static void arm_timer(struct load *L)
{
	struct itimerspec its;
	uint64_t at = 0;
	unsigned i;

	for (i = 0; L->phase == PH_RUN && L->o.rate > 0 && i < L->o.pubs; i++) {
		struct conn *c = &L->c[i];

		if (c->due < L->t_end && bench_pub_can_send(L, c) &&
		    (!c->quota || c->published < c->quota) &&
		    (at == 0 || c->due < at))
			at = c->due;
	}
	if (at == L->timer_at)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(at / NS_PER_S);
	its.it_value.tv_nsec = (long)(at % NS_PER_S);
	timerfd_settime(L->tfd, TFD_TIMER_ABSTIME, &its, NULL);
	L->timer_at = at;
}

/* How long epoll_wait may sleep, in ms. */
static int poll_timeout(struct load *L, uint64_t now)
{
	unsigned i;

	if (L->tls_backlog || bench_stop)
		return 0;
	switch (L->phase) {
	case PH_SETUP:
		if (L->conn_period && L->opened < counted(L))
			return L->next_open > now
			               ? (int)((L->next_open - now) / 1000000)
			               : 0;
		return 10;
	case PH_DRAIN: return 10;
	case PH_DONE: return 0;
	case PH_RUN: break;
	}
	if (L->o.rate > 0)
		return 10;
	for (i = 0; i < L->o.pubs; i++)
		if (bench_pub_can_send(L, &L->c[i]) &&
		    (!L->c[i].quota || L->c[i].published < L->c[i].quota))
			return 0;
	return 10;
}

/* The loop of pub, sub and pubsub. */
static int loop(struct load *L)
{
	struct epoll_event ev[MAX_EVENTS];
	unsigned i;

	L->next_open = bench_now();
	while (L->phase != PH_DONE) {
		uint64_t now = bench_now();
		int n;

		if (L->phase == PH_SETUP && open_due(L, now) != 0)
			return -1;
		n = epoll_wait(L->ep, ev, MAX_EVENTS, poll_timeout(L, now));
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "tern bench: epoll_wait: %s\n",
			        strerror(errno));
			return -1;
		}
		for (i = 0; n > 0 && i < (unsigned)n; i++) {
			uint64_t ticks;

			if (ev[i].data.u32 == TIMER_TAG) {
				/* Expired or not, it is no longer armed. */
				if (read(L->tfd, &ticks, sizeof(ticks)) < 0 &&
				    errno != EAGAIN) {
					fprintf(stderr,
					        "tern bench: timerfd: %s\n",
					        strerror(errno));
					return -1;
				}
				L->timer_at = 0;
				continue;
			}
			bench_conn_event(L, &L->c[ev[i].data.u32],
			                 ev[i].events);
		}
		now = bench_now();
		for (i = 0; L->phase == PH_RUN && i < L->o.pubs; i++)
			bench_pub_fill(L, &L->c[i], now);
		/* One batched write per connection per loop turn. */
		L->tls_backlog = false;
		for (i = 0; i < L->opened; i++) {
			struct conn *c = &L->c[i];

			if (c->state == ST_DEAD)
				continue;
			bench_conn_write(L, c);
			if (c->blocked && bench_buf_room(&c->out) >= ACK_ROOM) {
				bench_proto_parse(L, c, bench_now());
				bench_conn_write(L, c);
			}
			if (c->tls)
				bench_conn_tls_pending(L, c);
			bench_conn_interest(L, c);
		}
		now = bench_now();
		if (advance(L, now) != 0)
			return -1;
		/* After advance(): the turn that starts the run sets every
		 * publisher's first due time, and armed before it the timer
		 * stayed off, so the first messages waited out epoll_wait's
		 * 10 ms and showed as up to 10 ms of latency. */
		arm_timer(L);
		bench_report_live(L, now);
	}
	return 0;
}

/* How long the connection test may wait, in ms, at time now. */
static int conn_timeout(struct load *L, uint64_t now, uint64_t idle_end)
{
	uint64_t until;

	if (bench_stop)
		return 0;
	if (L->phase == PH_SETUP) {
		if (L->opened < L->o.conns && L->conn_period &&
		    L->opened - L->ready - L->st.errors < L->o.par)
			return L->next_open > now
			               ? (int)((L->next_open - now) / 1000000)
			               : 0;
		return 10;
	}
	until = idle_end > now ? idle_end - now : 0;
	if (until > NS_PER_S)
		until = NS_PER_S; /* the per-second line */
	return (int)((until + 999999) / 1000000);
}

/* `conn`: one turn of the loop, waiting at most timeout ms. */
static int conn_poll(struct load *L, int timeout)
{
	struct epoll_event ev[MAX_EVENTS];
	int n = epoll_wait(L->ep, ev, MAX_EVENTS, timeout), i;

	if (n < 0 && errno != EINTR)
		return -1;
	for (i = 0; i < n; i++) {
		struct conn *c = &L->c[ev[i].data.u32];

		bench_conn_event(L, c, ev[i].events);
		if (c->state == ST_DEAD)
			continue;
		bench_conn_write(L, c);
		bench_conn_interest(L, c);
	}
	return 0;
}

/*
 * `conn`: opens the connections at the rate asked (at most --par setting
 * up at once), then holds them --idle seconds. Returns -1 if it could not
 * run; connections that fail count as errors.
 */
static int conn_loop(struct load *L)
{
	uint64_t now, idle_end = 0, deadline;

	now = bench_now();
	L->next_open = now;
	deadline = now + SETUP_NS + L->conn_period * L->o.conns +
	           (uint64_t)L->o.conns * NS_PER_S / 100;
	L->t_first_open = now;
	L->live.at = now + NS_PER_S;
	L->broker_ticks0 = bench_proc_ticks(L->o.pid);
	getrusage(RUSAGE_SELF, &L->ru0);
	while (L->phase != PH_DONE) {
		now = bench_now();
		if (L->phase == PH_SETUP && open_due(L, now) != 0)
			return -1;
		if (L->phase == PH_SETUP &&
		    L->ready + L->st.errors == L->o.conns) {
			L->phase = PH_RUN;
			if (!L->ready)
				L->t_all_ready = now;
			L->broker_ticks1 = bench_proc_ticks(L->o.pid);
			getrusage(RUSAGE_SELF, &L->ru1);
			idle_end = now + (uint64_t)(L->o.idle * NS_PER_S);
		}
		if (L->phase == PH_SETUP && (now > deadline || bench_stop)) {
			fprintf(stderr,
			        "tern bench: %u of %u connections up after "
			        "%.0f s\n",
			        L->ready, L->o.conns,
			        (double)(now - L->t_first_open) / NS_PER_S);
			return -1;
		}
		if (L->phase == PH_RUN && (now >= idle_end || bench_stop)) {
			bench_mem_snap(L, &L->mem1);
			L->phase = PH_DONE;
			break;
		}
		bench_report_live(L, now);
		if (conn_poll(L, conn_timeout(L, now, idle_end)) != 0)
			return -1;
	}
	return 0;
}

/* `conn`: N connections that only CONNECT, opened by conn_loop(). */
static int conn_setup(struct load *L)
{
	unsigned i;

	L->nconn = L->o.conns;
	L->c = calloc(L->nconn, sizeof(*L->c));
	L->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!L->c || L->ep < 0)
		return -1;
	for (i = 0; i < L->nconn; i++)
		L->c[i].fd = -1;
	for (i = 0; i < L->nconn; i++)
		if (bench_conn_init(L, &L->c[i], ROLE_IDLE, i) != 0)
			return -1;
	bench_mem_snap(L, &L->mem0);
	return 0;
}

/*
 * Subscriber j's shared subscription is the first subscriber with the
 * same one (itself if it is the first), or -1 when j's filter is not
 * shared. A shared subscription is its share name and its filter
 * together (MQTT 5 4.8.2): the whole "$share/GROUP/FILTER" string.
 */
static void share_groups(const struct load *L, int *group)
{
	unsigned j, k, subs = L->o.subs, first = L->o.pubs;

	for (j = 0; j < subs; j++) {
		size_t gl;
		const char *f = L->c[first + j].topic;

		group[j] = -1;
		if (bench_share_split(f, &gl) == f)
			continue;
		group[j] = (int)j;
		for (k = 0; k < j; k++) {
			if (group[k] == (int)k &&
			    !strcmp(f, L->c[first + k].topic)) {
				group[j] = (int)k;
				break;
			}
		}
	}
}

/*
 * For each publisher, the deliveries one message makes: one per matching
 * subscriber, but one per shared subscription however many members it
 * has (MQTT 5 4.8.2: each message goes to one of them).
 */
static int count_fans(struct load *L)
{
	unsigned i, j, subs = L->o.subs;
	int *group = calloc(subs ? subs : 1, sizeof(*group));
	unsigned *mark = calloc(subs ? subs : 1, sizeof(*mark));

	if (!group || !mark) {
		free(group);
		free(mark);
		return -1;
	}
	share_groups(L, group);
	for (i = 0; i < L->o.pubs; i++) {
		for (j = 0; j < subs; j++) {
			size_t gl;
			const char *f = bench_share_split(
			        L->c[L->o.pubs + j].topic, &gl);

			if (!bench_topic_match(f, L->c[i].topic))
				continue;
			if (group[j] >= 0) {
				if (mark[group[j]] == i + 1)
					continue;
				mark[group[j]] = i + 1;
			}
			L->c[i].fan++;
		}
	}
	free(group);
	free(mark);
	return 0;
}

/* pub, sub, pubsub: the connections (publishers first), each publisher's
 * share of -n, and for each publisher the subscribers that match it. */
static int setup(struct load *L)
{
	struct epoll_event ev;
	unsigned i;

	L->nconn = L->o.pubs + L->o.subs;
	L->c = calloc(L->nconn, sizeof(*L->c));
	L->payload = malloc(L->o.payload);
	L->ep = epoll_create1(EPOLL_CLOEXEC);
	L->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!L->c || !L->payload || L->ep < 0 || L->tfd < 0) {
		fprintf(stderr, "tern bench: cannot set up the run: %s\n",
		        strerror(errno));
		return -1;
	}
	for (i = 0; i < L->nconn; i++)
		L->c[i].fd = -1;
	memset(L->payload, 'x', L->o.payload);
	ev.events = EPOLLIN;
	ev.data.u32 = TIMER_TAG;
	if (epoll_ctl(L->ep, EPOLL_CTL_ADD, L->tfd, &ev) != 0) {
		fprintf(stderr, "tern bench: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	for (i = 0; i < L->nconn; i++) {
		bool pub = i < L->o.pubs;

		if (bench_conn_init(L, &L->c[i], pub ? ROLE_PUB : ROLE_SUB,
		                    pub ? i : i - L->o.pubs) != 0) {
			fprintf(stderr, "tern bench: bad topic or filter, or "
			                "out of memory\n");
			return -1;
		}
		if (pub && L->o.limit)
			L->c[i].quota = L->o.limit / L->o.pubs +
			                (i < L->o.limit % L->o.pubs);
	}
	if (count_fans(L) != 0) {
		fprintf(stderr, "tern bench: out of memory\n");
		return -1;
	}
	L->t_setup_end = bench_now() + SETUP_NS + L->conn_period * L->nconn +
	                 (uint64_t)L->nconn * NS_PER_S / 100;
	return 0;
}

/* Raises the soft limit on open files to the hard one; checks it is
 * enough for the connections asked for. */
static int raise_fd_limit(const struct load *L)
{
	unsigned need =
	        (L->o.mode == MODE_CONN ? L->o.conns : L->o.pubs + L->o.subs) +
	        16;
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) != 0) {
		fprintf(stderr, "tern bench: getrlimit: %s\n", strerror(errno));
		return -1;
	}
	if (r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
		getrlimit(RLIMIT_NOFILE, &r);
	}
	if (r.rlim_cur < need) {
		fprintf(stderr, "tern bench: %u files needed, limit %llu\n",
		        need, (unsigned long long)r.rlim_cur);
		return -1;
	}
	return 0;
}

/* `conn` over IPv4: enough source addresses for the ports needed. */
static void pick_sources(struct load *L)
{
	unsigned n = L->o.src_addrs;

	if (L->o.mode != MODE_CONN || L->addr.ss_family != AF_INET)
		return;
	if (!n)
		n = (L->nconn + PORTS_PER_SRC - 1) / PORTS_PER_SRC;
	L->nsrc = n > MAX_SRC_ADDRS ? MAX_SRC_ADDRS : n;
}

static void seed(struct load *L)
{
	if (getrandom(&L->rng, sizeof(L->rng), 0) != sizeof(L->rng))
		L->rng = bench_now() ^ (uint64_t)getpid() << 32;
	if (L->rng == 0)
		L->rng = 1;
}

static void on_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* A broker that closes first fails the connection, not the run. */
	signal(SIGPIPE, SIG_IGN);
}

static void load_free(struct load *L)
{
	for (unsigned i = 0; L->c && i < L->nconn; i++)
		bench_conn_free(&L->c[i]);
	free(L->c);
	free(L->payload);
	free(L->ps);
	bench_conn_tls_cleanup(L);
	if (L->ep >= 0)
		close(L->ep);
	if (L->tfd >= 0)
		close(L->tfd);
	free(L);
}

int cmd_bench(int argc, char **argv)
{
	struct load *L = calloc(1, sizeof(*L));
	int rc = 2, a;

	if (!L)
		return 2;
	L->ep = L->tfd = -1;
	a = bench_opts_parse(argc, argv, &L->o);
	if (a != 0) {
		rc = a > 0 ? 0 : 2;
		goto out;
	}
	if (bench_opts_resolve(L) != 0) {
		fprintf(stderr, "tern bench: '%s' is not a loopback address\n",
		        L->o.host);
		goto out;
	}
	if (raise_fd_limit(L) != 0)
		goto out;
	L->period = L->o.rate > 0 && L->o.mode != MODE_CONN
	                    ? (uint64_t)(NS_PER_S / L->o.rate)
	                    : 0;
	L->conn_period =
	        L->o.mode == MODE_CONN
	                ? (L->o.rate > 0 ? (uint64_t)(NS_PER_S / L->o.rate) : 0)
	                : (uint64_t)(L->o.interval * 1e6);
	seed(L);
	on_signals();
	if (L->o.tls && bench_conn_tls_init(L) != 0)
		goto out;
	if (L->o.mode == MODE_CONN) {
		if (conn_setup(L) != 0) {
			fprintf(stderr,
			        "tern bench: cannot set up the run: %s\n",
			        strerror(errno));
			goto out;
		}
		pick_sources(L);
		if (conn_loop(L) != 0) {
			fprintf(stderr, "tern bench: connection test failed\n");
			goto out;
		}
		bench_conn_disconnect_all(L);
		bench_report_conn(L);
		rc = L->st.errors ? 1 : 0;
		goto out;
	}
	if (setup(L) != 0 || loop(L) != 0)
		goto out;
	bench_conn_disconnect_all(L);
	bench_report_run(L);
	rc = bench_report_verdict(L);
out:
	load_free(L);
	return rc;
}
