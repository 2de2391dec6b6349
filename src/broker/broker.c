/*
 * Broker lifetime: creating the shared state and the workers (listener
 * sockets are opened here, before any thread starts, so a port conflict is
 * a start-up error), starting the threads, and the orderly stop.
 */
#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "broker/addrcap.h"
#include "broker/auth.h"
#include "broker/memlimit.h"
#include "broker/persist.h"
#include "broker/retain.h"
#include "broker/session.h"
#include "broker/subs.h"
#include "broker/worker.h"
#include "net/cidr.h"
#include "net/tls.h"

int broker_init(struct broker *b, const struct config *cfg, struct auth *auth,
                int nworkers)
{
	int i;

	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->auth = auth;
	pthread_mutex_init(&b->auth_mu, NULL);
	b->start_ms = clock_ms();
	pthread_mutex_init(&b->sess_mu, NULL);
	b->subs = subs_new();
	b->retain = retain_new();
	b->workers = calloc((size_t)nworkers, sizeof(*b->workers));
	b->listener_conns =
	        calloc(cfg->nlisteners + 1, sizeof(*b->listener_conns));
	b->trusted = calloc(cfg->nlisteners + 1, sizeof(*b->trusted));
	b->tls = calloc(cfg->nlisteners + 1, sizeof(*b->tls));
	b->addrcap = addrcap_new();
	pthread_mutex_init(&b->tls_mu, NULL);
	if (!b->subs || !b->retain || !b->workers || !b->listener_conns ||
	    !b->trusted || !b->tls || !b->addrcap)
		return TERN_ENOMEM;
	if (broker_load_tls(b, cfg) != 0)
		return TERN_ECONFIG;
	memlimit_init(b);
	for (i = 0; i < (int)cfg->nlisteners; i++) {
		char err[128];

		if (cidr_list_parse(cfg->listeners[i].trusted_proxies,
		                    &b->trusted[i], err, sizeof(err)) != 0) {
			log_msg(LOG_ERR, "trusted_proxies: bad entry '%s'.",
			        err);
			return TERN_ECONFIG;
		}
	}
	/* The store loads before any listening socket exists, so no client
	 * sees the broker without its sessions. */
	{
		char err[1024] = "";
		int rc = persist_open(b, nworkers, err, sizeof(err));

		if (rc != 0) {
			log_msg(LOG_ERR, "Store: %s.", err);
			b->store_error = true;
			return rc;
		}
	}
	for (i = 0; i < nworkers; i++) {
		b->workers[i] = worker_new(b, i);
		if (!b->workers[i])
			return TERN_EIO;
		b->nworkers++;
	}
	return 0;
}

int broker_start(struct broker *b)
{
	int i;

	if (b->persist && persist_start(b->persist) != 0)
		return TERN_EIO;
	for (i = 0; i < b->nworkers; i++) {
		struct worker *w = b->workers[i];

		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			log_msg(LOG_ERR, "Cannot start worker thread %d.", i);
			return TERN_EIO;
		}
		w->started = true;
	}
	return 0;
}

/* Drops every session left in the table (shutdown only). */
static void broker_free_sessions(struct broker *b)
{
	size_t i;

	for (i = 0; i < b->sessions.nbuckets; i++) {
		while (b->sessions.buckets[i]) {
			struct session *s = b->sessions.buckets[i];

			pthread_mutex_lock(&s->mu);
			session_clear_subs(b, s);
			pthread_mutex_unlock(&s->mu);
			session_remove(b, s);
		}
	}
	free(b->sessions.buckets);
	b->sessions.buckets = NULL;
}

void broker_stop(struct broker *b)
{
	int i;

	atomic_store(&b->stopping, true);
	for (i = 0; i < b->nworkers; i++)
		if (b->workers[i]->started)
			loop_wake(b->workers[i]->loop);
	for (i = 0; i < b->nworkers; i++)
		if (b->workers[i]->started)
			pthread_join(b->workers[i]->thread, NULL);
	persist_stop_thread(b->persist);
	for (i = 0; i < b->nworkers; i++)
		worker_free(b->workers[i]);
	/* After the workers (their last writes, sessions going offline)
	 * and before the sessions are freed. */
	persist_stop(b->persist);
	b->persist = NULL;
	free(b->workers);
	b->workers = NULL;
	pthread_mutex_lock(&b->sess_mu);
	broker_free_sessions(b);
	pthread_mutex_unlock(&b->sess_mu);
	subs_free(b->subs);
	retain_free(b->retain);
	free(b->listener_conns);
	addrcap_free(b->addrcap);
	for (i = 0; b->trusted && i < (int)b->cfg->nlisteners; i++)
		cidr_list_free(&b->trusted[i]);
	free(b->trusted);
	for (i = 0; b->tls && i < (int)b->cfg->nlisteners; i++)
		tls_ctx_unref(b->tls[i]);
	free(b->tls);
	b->tls = NULL;
	pthread_mutex_destroy(&b->tls_mu);
	auth_unref(b->auth);
	b->auth = NULL;
	pthread_mutex_destroy(&b->auth_mu);
	pthread_mutex_destroy(&b->sess_mu);
}

static void listener_tls_opts(const struct listener_cfg *l, struct tls_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->certfile = l->certfile;
	o->keyfile = l->keyfile;
	o->keyfile_password = l->keyfile_password;
	o->cafile = l->cafile;
	o->capath = l->capath;
	o->crlfile = l->crlfile;
	o->ciphers = l->ciphers;
	o->ciphersuites = l->ciphers_tls13;
	o->groups = l->tls_groups;
	o->tls_version = l->tls_version;
	o->require_certificate = l->require_certificate;
	/* ALPN: "mqtt" for MQTT, "http/1.1" for WebSocket listeners. */
	if (l->protocol == PROTO_WEBSOCKETS) {
		o->alpn = "\x08http/1.1";
		o->alpn_len = 9;
	} else {
		o->alpn = "\x04mqtt";
		o->alpn_len = 5;
	}
}

int broker_load_tls(struct broker *b, const struct config *cfg)
{
	size_t i, n = b->cfg->nlisteners;
	struct tls_ctx **fresh = calloc(n + 1, sizeof(*fresh));
	int rc = 0;

	if (!fresh)
		return TERN_ENOMEM;
	for (i = 0; i < n && i < cfg->nlisteners && rc == 0; i++) {
		const struct listener_cfg *l = &cfg->listeners[i];
		struct tls_opts o;
		char err[512];

		if (!l->certfile && !l->keyfile)
			continue;
		listener_tls_opts(l, &o);
		rc = tls_ctx_new(&o, &fresh[i], err, sizeof(err));
		if (rc != 0)
			log_msg(LOG_ERR, "Listener on port %u: %s.", l->port,
			        err);
	}
	if (rc == 0) {
		pthread_mutex_lock(&b->tls_mu);
		for (i = 0; i < n; i++) {
			struct tls_ctx *old = b->tls[i];

			b->tls[i] = fresh[i];
			fresh[i] = old;
		}
		pthread_mutex_unlock(&b->tls_mu);
	}
	for (i = 0; i < n; i++)
		tls_ctx_unref(fresh[i]);
	free(fresh);
	return rc ? TERN_ECONFIG : 0;
}

int broker_check_tls(const struct config *cfg, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < cfg->nlisteners; i++) {
		const struct listener_cfg *l = &cfg->listeners[i];
		struct tls_ctx *ctx = NULL;
		struct tls_opts o;
		char why[512];

		if (!l->certfile && !l->keyfile)
			continue;
		listener_tls_opts(l, &o);
		if (tls_ctx_new(&o, &ctx, why, sizeof(why)) != 0) {
			snprintf(err, errlen, "listener %u: %s", l->port, why);
			return TERN_ECONFIG;
		}
		tls_ctx_unref(ctx);
	}
	return 0;
}

struct tls_ctx *broker_tls_ctx(struct broker *b, size_t i)
{
	struct tls_ctx *c;

	pthread_mutex_lock(&b->tls_mu);
	c = b->tls[i] ? tls_ctx_ref(b->tls[i]) : NULL;
	pthread_mutex_unlock(&b->tls_mu);
	return c;
}

void broker_set_auth(struct broker *b, struct auth *a)
{
	struct auth *old;

	pthread_mutex_lock(&b->auth_mu);
	old = b->auth;
	b->auth = a;
	pthread_mutex_unlock(&b->auth_mu);
	atomic_fetch_add(&b->auth_gen, 1);
	/* Workers switch before their next connection event (conn.c) or
	 * iteration; waking the idle ones lets them drop the old snapshot,
	 * and whatever it holds, now rather than at their next event. */
	for (int i = 0; i < b->nworkers; i++)
		if (b->workers[i])
			loop_wake(b->workers[i]->loop);
	auth_unref(old);
}

struct auth *broker_get_auth(struct broker *b)
{
	struct auth *a;

	pthread_mutex_lock(&b->auth_mu);
	a = auth_ref(b->auth);
	pthread_mutex_unlock(&b->auth_mu);
	return a;
}

void broker_count_client(struct broker *b, int transport, int delta)
{
	int_fast64_t now, max;

	STAT_ADD(b, transport_connected[transport], delta);
	now = atomic_fetch_add(&b->st.clients_connected, delta) + delta;
	max = atomic_load(&b->st.clients_maximum);
	while (now > max &&
	       !atomic_compare_exchange_weak(&b->st.clients_maximum, &max, now))
		;
}
