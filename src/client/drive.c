/*
 * Driving a client: one poll over the client's socket and its wake-up pipe,
 * then I/O and timers (drive_once); the loop thread repeats it; blocking
 * calls either wait on the condition variable while another thread drives,
 * or drive themselves (drive_wait). The lock is released only around
 * poll(), so the state a waiter wakes to is always consistent.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "client/client.h"

static void drain_wake(struct tern_client *c)
{
	char buf[64];

	while (read(c->wake[0], buf, sizeof(buf)) > 0)
		;
}

/* Called with the lock held once (never from a callback). */
void drive_once(struct tern_client *c, int timeout_ms)
{
	struct pollfd pfd[2];
	int nfds = 1, events, n;
	int64_t t = link_next_timer(c, clock_ms());
	uint64_t gen = c->gen;

	c->driving = true;
	c->driver = pthread_self();
	pfd[0] = (struct pollfd){.fd = c->wake[0], .events = POLLIN};
	events = link_wanted(c);
	if (c->fd >= 0 && events) {
		pfd[1] = (struct pollfd){
		        .fd = c->fd,
		        .events =
		                (short)((events & TERN_EV_READ ? POLLIN : 0) |
		                        (events & TERN_EV_WRITE ? POLLOUT : 0)),
		};
		nfds = 2;
	}
	if (t >= 0 && (timeout_ms < 0 || t < timeout_ms))
		timeout_ms = (int)t;
	pthread_mutex_unlock(&c->mu);
	n = poll(pfd, (nfds_t)nfds, timeout_ms);
	pthread_mutex_lock(&c->mu);
	if (n > 0 && pfd[0].revents)
		drain_wake(c);
	/* The connection may have changed while the lock was free. */
	if (n > 0 && nfds == 2 && pfd[1].revents && c->gen == gen)
		link_io(c, pfd[1].revents);
	link_timers(c, clock_ms());
	c->driving = false;
	pthread_cond_broadcast(&c->cv);
}

static void deadline_ts(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int drive_wait(struct tern_client *c, struct waiter *w, int timeout_ms)
{
	uint64_t end = clock_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);

	while (!w->done) {
		uint64_t now = clock_ms();
		uint64_t left = end > now ? end - now : 0;

		if (left == 0)
			return TERN_ETIMEDOUT;
		if (c->running || c->driving) {
			struct timespec ts;

			/* Wake up now and then: a thread that drove the
			 * client may have stopped doing so. */
			deadline_ts(&ts, left < 100 ? left : 100);
			pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		} else {
			drive_once(c, (int)left);
		}
	}
	return 0;
}

static void *loop_main(void *arg)
{
	struct tern_client *c = arg;

	pthread_mutex_lock(&c->mu);
	while (!c->stopping)
		drive_once(c, 1000);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int tern_client_loop_start(tern_client *c)
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	if (client_in_callback(c))
		rc = TERN_EINVAL;
	else if (c->running)
		rc = TERN_EEXIST;
	if (rc == 0) {
		c->stopping = false;
		if (pthread_create(&c->thread, NULL, loop_main, c) != 0)
			rc = TERN_EIO;
		else
			c->running = true;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int tern_client_loop_stop(tern_client *c)
{
	pthread_t th;

	pthread_mutex_lock(&c->mu);
	if (client_in_callback(c)) {
		pthread_mutex_unlock(&c->mu);
		return TERN_EINVAL;
	}
	if (!c->running) {
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	c->stopping = true;
	th = c->thread;
	client_wake(c);
	pthread_mutex_unlock(&c->mu);
	pthread_join(th, NULL);
	pthread_mutex_lock(&c->mu);
	c->running = false;
	c->stopping = false;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int tern_client_loop_once(tern_client *c, int timeout_ms)
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	if (c->running || client_in_callback(c) || c->driving)
		rc = TERN_EINVAL;
	else
		drive_once(c, timeout_ms < 0 ? 0 : timeout_ms);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int tern_client_fd(tern_client *c)
{
	int fd;

	pthread_mutex_lock(&c->mu);
	fd = c->fd;
	pthread_mutex_unlock(&c->mu);
	return fd;
}

int tern_client_wanted_events(tern_client *c)
{
	int ev;

	pthread_mutex_lock(&c->mu);
	ev = link_wanted(c);
	pthread_mutex_unlock(&c->mu);
	return ev;
}

int tern_client_timeout_ms(tern_client *c)
{
	int64_t t;

	pthread_mutex_lock(&c->mu);
	t = link_next_timer(c, clock_ms());
	pthread_mutex_unlock(&c->mu);
	return t > 0x7FFFFFFF ? 0x7FFFFFFF : (int)t;
}
