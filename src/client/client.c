/*
 * The public calls of libtern (include/tern/tern.h) that are not about
 * driving the loop: options and their copies, creating and destroying a
 * client, connect and disconnect, publish, subscribe, unsubscribe, and the
 * blocking variants built on waiters (drive.c). Each call takes the
 * client's lock, changes state, lets link.c write what it can at once and
 * wakes the loop thread so that it polls for the new state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/utf8.h"
#include "client/client.h"
#include "net/tls.h"

#define TERN_DEFAULT_KEEPALIVE 60

void tern_options_init(struct tern_options *o)
{
	memset(o, 0, sizeof(*o));
	o->version = TERN_MQTT_5;
	o->clean_start = true;
	o->keepalive = TERN_DEFAULT_KEEPALIVE;
	o->max_inflight = 20;
	o->max_queued = 1000;
	o->queue_policy = TERN_QUEUE_DROP_OLDEST;
	o->topic_alias = true;
	o->connect_timeout_ms = 10000;
	o->reconnect_initial_ms = 1000;
	o->reconnect_max_ms = 30000;
	o->reconnect_factor = 2.0;
	o->request_problem_info = -1;
}

/* --- helpers shared by the modules ------------------------------------ */

void client_log(struct tern_client *c, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (c->o.cb.on_log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	client_cb_enter(c);
	c->o.cb.on_log(c, level, line, c->o.userdata);
	client_cb_leave(c);
}

bool client_in_callback(struct tern_client *c)
{
	return c->cb_depth > 0 && pthread_equal(c->cb_thread, pthread_self());
}

void client_cb_enter(struct tern_client *c)
{
	if (c->cb_depth++ == 0)
		c->cb_thread = pthread_self();
}

void client_cb_leave(struct tern_client *c)
{
	c->cb_depth--;
}

struct waiter *client_waiter(struct tern_client *c, int kind, tern_token token)
{
	for (struct waiter *w = c->waiters; w; w = w->next)
		if (w->kind == kind && w->token == token && !w->done)
			return w;
	return NULL;
}

void client_wake(struct tern_client *c)
{
	ssize_t n;

	/* Only a thread inside poll() needs waking; a full pipe already
	 * holds a wake-up. */
	if (!c->running && !c->driving)
		return;
	n = write(c->wake[1], "", 1);
	(void)n;
}

static void waiter_add(struct tern_client *c, struct waiter *w)
{
	w->next = c->waiters;
	c->waiters = w;
}

static void waiter_remove(struct tern_client *c, struct waiter *w)
{
	for (struct waiter **pp = &c->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			return;
		}
}

void client_op_free(struct op *op)
{
	if (op == NULL)
		return;
	for (size_t i = 0; i < op->n; i++)
		free((char *)op->subs[i].filter);
	free(op->subs);
	free(op->up);
	free(op);
}

/* --- options ------------------------------------------------------------ */

/* Replaces *s with an owned copy. */
static int own(struct tern_client *c, const char **s)
{
	char *p;

	if (*s == NULL)
		return 0;
	if (c->nowned == (int)(sizeof(c->owned) / sizeof(c->owned[0])))
		return TERN_ENOMEM;
	p = strdup(*s);
	if (p == NULL)
		return TERN_ENOMEM;
	c->owned[c->nowned++] = p;
	*s = p;
	return 0;
}

static int own_bytes(struct tern_client *c, const void **p, size_t n)
{
	char *q;

	if (*p == NULL)
		return 0;
	if (c->nowned == (int)(sizeof(c->owned) / sizeof(c->owned[0])))
		return TERN_ENOMEM;
	q = malloc(n ? n : 1);
	if (q == NULL)
		return TERN_ENOMEM;
	memcpy(q, *p, n);
	c->owned[c->nowned++] = q;
	*p = q;
	return 0;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Copies every string of the options the client keeps. */
static int own_options(struct tern_client *c)
{
	struct tern_options *o = &c->o;
	const char **strs[] = {
	        &o->url,
	        &o->host,
	        &o->path,
	        &o->client_id,
	        &o->username,
	        &o->will_topic,
	        &o->cafile,
	        &o->capath,
	        &o->certfile,
	        &o->keyfile,
	        &o->keyfile_password,
	        &o->tls_version,
	        &o->alpn,
	};
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < sizeof(strs) / sizeof(strs[0]); i++)
		rc = own(c, strs[i]);
	if (rc == 0 && o->password) {
		if (o->password_len == 0)
			o->password_len = strlen(o->password);
		rc = own_bytes(c, (const void **)&o->password, o->password_len);
	}
	if (rc == 0)
		rc = own_bytes(c, &o->will_payload, o->will_payload_len);
	return rc;
}

/* URL plus explicit overrides into c->url. */
static int resolve_url(struct tern_client *c, char *err, size_t errlen)
{
	const struct tern_options *o = &c->o;
	int rc;

	if (o->url == NULL && o->host == NULL)
		return fail(err, errlen, TERN_EINVAL, "no url or host given");
	if (o->url) {
		rc = url_parse(o->url, &c->url);
		if (rc < 0)
			return fail(err, errlen, rc, "invalid url '%s'",
			            o->url);
	} else {
		url_parse("mqtt://localhost", &c->url);
	}
	if (o->host && snprintf(c->url.host, sizeof(c->url.host), "%s",
	                        o->host) >= (int)sizeof(c->url.host))
		return fail(err, errlen, TERN_ETOOBIG, "host name too long");
	if (o->port > 0 && o->port <= 65535)
		c->url.port = o->port;
	if (o->path && snprintf(c->url.path, sizeof(c->url.path), "%s",
	                        o->path) >= (int)sizeof(c->url.path))
		return fail(err, errlen, TERN_ETOOBIG, "path too long");
	/* The URL's user info fills what the options leave unset. */
	if (c->url.has_user && o->username == NULL) {
		c->o.username = c->url.user;
		if (c->url.has_pass && o->password == NULL) {
			c->o.password = c->url.pass;
			c->o.password_len = strlen(c->url.pass);
		}
	}
	return 0;
}

/* "mqtt,x" -> wire-format ALPN "\4mqtt\1x". */
static int alpn_wire(const char *list, char *out, size_t cap, size_t *len)
{
	size_t n = 0;

	while (*list) {
		const char *comma = strchr(list, ',');
		size_t k = comma ? (size_t)(comma - list) : strlen(list);

		if (k == 0 || k > 255 || n + 1 + k > cap)
			return TERN_EINVAL;
		out[n++] = (char)k;
		memcpy(out + n, list, k);
		n += k;
		list += k + (comma ? 1 : 0);
	}
	*len = n;
	return 0;
}

static int make_tls(struct tern_client *c, char *err, size_t errlen)
{
	const struct tern_options *o = &c->o;
	struct tls_client_opts t = {
	        .cafile = o->cafile,
	        .capath = o->capath,
	        .certfile = o->certfile,
	        .keyfile = o->keyfile,
	        .keyfile_password = o->keyfile_password,
	        .tls_version = o->tls_version,
	        .no_verify = o->tls_no_verify,
	};
	char alpn[256];
	char msg[256] = "";
	int rc;

	if (!c->url.tls)
		return 0;
	if (o->alpn) {
		if (alpn_wire(o->alpn, alpn, sizeof(alpn), &t.alpn_len) < 0)
			return fail(err, errlen, TERN_EINVAL,
			            "invalid alpn list '%s'", o->alpn);
		t.alpn = alpn;
	}
	rc = tls_client_ctx_new(&t, &c->tls, msg, sizeof(msg));
	if (rc < 0)
		return fail(err, errlen, rc, "%s", msg);
	return 0;
}

static int check_options(const struct tern_options *o, char *err, size_t errlen)
{
	if (o->version != TERN_MQTT_5 && o->version != TERN_MQTT_311)
		return fail(err, errlen, TERN_EINVAL,
		            "version must be 4 (3.1.1) or 5");
	if (o->will_topic &&
	    (mqtt_topic_name_check((const uint8_t *)o->will_topic,
	                           strlen(o->will_topic)) < 0 ||
	     o->will_qos < 0 || o->will_qos > 2))
		return fail(err, errlen, TERN_EINVAL, "invalid will");
	if (o->client_id && utf8_check_mqtt((const uint8_t *)o->client_id,
	                                    strlen(o->client_id)) < 0)
		return fail(err, errlen, TERN_EUTF8, "invalid client id");
	if (o->version == TERN_MQTT_311 && !o->clean_start &&
	    (o->client_id == NULL || o->client_id[0] == '\0'))
		return fail(err, errlen, TERN_EINVAL,
		            "MQTT 3.1.1 needs a client id without "
		            "clean_start");
	if (o->queue_policy < TERN_QUEUE_DROP_OLDEST ||
	    o->queue_policy > TERN_QUEUE_REFUSE)
		return fail(err, errlen, TERN_EINVAL, "invalid queue_policy");
	if (o->reconnect_initial_ms < 0 || o->reconnect_max_ms < 0 ||
	    o->connect_timeout_ms < 0)
		return fail(err, errlen, TERN_EINVAL, "negative time");
	return 0;
}

static int setup(struct tern_client *c, const struct tern_options *o, char *err,
                 size_t errlen)
{
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	int rc;

	c->o = *o;
	c->fd = -1;
	c->wake[0] = c->wake[1] = -1;
	c->next_id = 1;
	c->next_token = 1;
	rc = check_options(o, err, errlen);
	if (rc < 0)
		return rc;
	if (own_options(c) < 0)
		return fail(err, errlen, TERN_ENOMEM, "out of memory");
	rc = resolve_url(c, err, errlen);
	if (rc < 0)
		return rc;
	c->version = (uint8_t)o->version;
	if (c->o.connect_timeout_ms == 0)
		c->o.connect_timeout_ms = 10000;
	c->backoff.initial_ms = (uint32_t)o->reconnect_initial_ms;
	c->backoff.max_ms =
	        (uint32_t)(o->reconnect_max_ms ? o->reconnect_max_ms
	                                       : o->reconnect_initial_ms);
	c->backoff.factor =
	        o->reconnect_factor < 1.0 ? 1.0 : o->reconnect_factor;
	rc = omsg_props(&o->will_props, &c->will_props, &c->will_owned);
	if (rc == 0)
		rc = omsg_user_props(o->user_props, o->user_prop_count,
		                     &c->connect_up, &c->connect_up_len,
		                     &c->connect_up_count);
	if (rc < 0)
		return fail(err, errlen, rc, "invalid v5 properties: %s",
		            tern_strerror(rc));
	c->o.will_props = (struct tern_props){0};
	c->o.user_props = NULL;
	c->o.user_prop_count = 0;
	rc = make_tls(c, err, errlen);
	if (rc < 0)
		return rc;
	c->tx_alias = calloc(CLIENT_TX_ALIASES + 1, sizeof(char *));
	if (o->topic_alias_maximum)
		c->rx_alias = calloc((size_t)o->topic_alias_maximum + 1,
		                     sizeof(char *));
	if (c->tx_alias == NULL || (o->topic_alias_maximum && !c->rx_alias))
		return fail(err, errlen, TERN_ENOMEM, "out of memory");
	if (pipe2(c->wake, O_NONBLOCK | O_CLOEXEC) < 0)
		return fail(err, errlen, TERN_EIO, "pipe: %s", strerror(errno));
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&c->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

/* Frees what setup() made; the lock only when it was made. */
static void release(struct tern_client *c, bool locks)
{
	struct op *op;
	struct omsg *m;

	freeaddrinfo(c->ai);
	for (int i = 0; i < c->nowned; i++)
		free(c->owned[i]);
	free(c->will_owned);
	free(c->connect_up);
	free(c->assigned_id);
	tls_ctx_unref(c->tls);
	for (unsigned i = 0; c->tx_alias && i <= CLIENT_TX_ALIASES; i++)
		free(c->tx_alias[i]);
	free(c->tx_alias);
	for (unsigned i = 0; c->rx_alias && i <= c->o.topic_alias_maximum; i++)
		free(c->rx_alias[i]);
	free(c->rx_alias);
	while ((m = omsg_pop(&c->queue)) != NULL)
		omsg_free(m);
	while ((m = omsg_pop(&c->inflight)) != NULL)
		omsg_free(m);
	while ((op = c->ops) != NULL) {
		c->ops = op->next;
		client_op_free(op);
	}
	free(c->rbuf);
	free(c->wbuf);
	free(c->scratch);
	if (c->wake[0] >= 0)
		close(c->wake[0]);
	if (c->wake[1] >= 0)
		close(c->wake[1]);
	if (locks) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
	}
	free(c);
}

tern_client *tern_client_new(const struct tern_options *o, char *err,
                             size_t errlen)
{
	struct tern_client *c;

	if (err && errlen)
		err[0] = '\0';
	if (o == NULL) {
		fail(err, errlen, TERN_EINVAL, "no options");
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		fail(err, errlen, TERN_ENOMEM, "out of memory");
		return NULL;
	}
	if (setup(c, o, err, errlen) < 0) {
		/* The lock is made last: made means setup succeeded. */
		release(c, false);
		return NULL;
	}
	return c;
}

void tern_client_destroy(tern_client *c)
{
	struct omsg *m;

	if (c == NULL)
		return;
	tern_client_loop_stop(c);
	pthread_mutex_lock(&c->mu);
	c->want_up = false;
	if (c->x)
		c->x->ops->shutdown(c->x);
	if (c->x)
		xport_free(c->x);
	else if (c->fd >= 0)
		close(c->fd);
	c->x = NULL;
	c->fd = -1;
	c->state = CS_IDLE;
	while ((m = omsg_pop(&c->inflight)) != NULL)
		link_complete(c, m, TERN_ECANCELED, -1);
	while ((m = omsg_pop(&c->queue)) != NULL)
		link_complete(c, m, TERN_ECANCELED, -1);
	pthread_mutex_unlock(&c->mu);
	release(c, true);
}

/* --- connect / disconnect ------------------------------------------------ */

int tern_client_connect_async(tern_client *c)
{
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	if (c->state != CS_IDLE && c->state != CS_WAIT_RETRY) {
		rc = TERN_EEXIST;
	} else {
		c->want_up = true;
		c->attempt = 0;
		link_start(c);
		client_wake(c);
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int tern_client_connect(tern_client *c, int timeout_ms, bool *session_present)
{
	struct waiter w = {.kind = W_CONNECT};
	int rc;

	pthread_mutex_lock(&c->mu);
	if (client_in_callback(c)) {
		pthread_mutex_unlock(&c->mu);
		return TERN_EINVAL;
	}
	if (c->state == CS_UP) {
		pthread_mutex_unlock(&c->mu);
		return TERN_EEXIST;
	}
	if (timeout_ms < 0)
		timeout_ms = c->o.connect_timeout_ms + 1000;
	waiter_add(c, &w);
	if (c->state == CS_IDLE || c->state == CS_WAIT_RETRY) {
		c->want_up = true;
		c->no_retry = true;
		c->attempt = 0;
		link_start(c);
		client_wake(c);
	}
	rc = drive_wait(c, &w, timeout_ms);
	waiter_remove(c, &w);
	if (rc == 0)
		rc = w.rc;
	if (session_present)
		*session_present = w.session_present;
	/* A timeout gives up this attempt too: the client is idle after a
	 * failed blocking connect. */
	if (rc < 0 && c->state != CS_UP && c->no_retry)
		link_disconnect(c, NULL);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int tern_client_disconnect_async(tern_client *c)
{
	pthread_mutex_lock(&c->mu);
	link_disconnect(c, NULL);
	client_wake(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int tern_client_disconnect_with(tern_client *c, const struct tern_disconnect *d)
{
	struct mqtt_disconnect md = {0};
	uint8_t *up = NULL;
	uint32_t uplen = 0, upcount = 0;
	int rc;

	if (d == NULL)
		return tern_client_disconnect_async(c);
	if (d->reason < 0 || d->reason > 255 ||
	    (d->reason_string &&
	     (strlen(d->reason_string) > 65535 ||
	      utf8_check_mqtt((const uint8_t *)d->reason_string,
	                      strlen(d->reason_string)) < 0)))
		return TERN_EINVAL;
	rc = omsg_user_props(d->user_props, d->user_prop_count, &up, &uplen,
	                     &upcount);
	if (rc < 0)
		return rc == TERN_EUTF8 ? TERN_EINVAL : rc;
	md.reason = (uint8_t)d->reason;
	if (d->has_session_expiry) {
		md.props.present |= MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY);
		md.props.session_expiry = d->session_expiry;
	}
	if (d->reason_string) {
		md.props.present |= MQTT_PBIT(MQTT_PROP_REASON_STRING);
		md.props.reason_string.p = (const uint8_t *)d->reason_string;
		md.props.reason_string.len = (uint16_t)strlen(d->reason_string);
	}
	if (up) {
		md.props.present |= MQTT_PBIT(MQTT_PROP_USER_PROPERTY);
		md.props.user_props = up;
		md.props.user_props_len = uplen;
		md.props.user_prop_count = upcount;
	}
	pthread_mutex_lock(&c->mu);
	/* The packet is encoded into the output now: up can go after. */
	link_disconnect(c, &md);
	client_wake(c);
	pthread_mutex_unlock(&c->mu);
	free(up);
	return 0;
}

int tern_client_disconnect(tern_client *c, int timeout_ms)
{
	struct waiter w = {.kind = W_IDLE};
	uint64_t end;
	int rc = 0;

	pthread_mutex_lock(&c->mu);
	if (client_in_callback(c)) {
		pthread_mutex_unlock(&c->mu);
		return TERN_EINVAL;
	}
	end = clock_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	/* First let the messages complete, if asked and connected. */
	while (c->state == CS_UP && (c->queue.count || c->inflight.count) &&
	       clock_ms() < end) {
		struct waiter none = {.kind = -1};

		drive_wait(
		        c, &none,
		        (int)(end - clock_ms() < 50 ? end - clock_ms() : 50));
	}
	if (c->state == CS_UP && (c->queue.count || c->inflight.count))
		rc = TERN_ETIMEDOUT;
	if (c->state != CS_IDLE) {
		waiter_add(c, &w);
		link_disconnect(c, NULL);
		client_wake(c);
		if (c->state != CS_IDLE)
			drive_wait(c, &w, 3000);
		waiter_remove(c, &w);
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* --- publish -------------------------------------------------------------- */

/* Applies the queue bound to a new message; 1 when m was consumed. */
static int enqueue(struct tern_client *c, struct omsg *m)
{
	struct omsg *old;

	if (tx_can_send_now(c, m->qos) || c->queue.count < c->o.max_queued) {
		omsg_push(&c->queue, m);
		return 0;
	}
	switch (c->o.queue_policy) {
	case TERN_QUEUE_DROP_NEWEST:
		c->dropped++;
		link_complete(c, m, TERN_ELIMIT, -1);
		return 0;
	case TERN_QUEUE_DROP_OLDEST:
		old = omsg_pop(&c->queue);
		if (old == NULL)
			break;
		c->dropped++;
		omsg_push(&c->queue, m);
		link_complete(c, old, TERN_ELIMIT, -1);
		return 0;
	default: break;
	}
	omsg_free(m);
	return TERN_ELIMIT;
}

static int publish_locked(tern_client *c, const char *topic,
                          const void *payload, size_t len, int qos, bool retain,
                          const struct tern_props *props, tern_token *token)
{
	struct omsg *m;
	int rc = omsg_new(topic, payload, len, qos, retain,
	                  c->version == MQTT_V5 ? props : NULL, &m);

	if (rc < 0)
		return rc == TERN_EUTF8 ? TERN_EINVAL : rc;
	/* A rough size check now; the exact one is made when sent. */
	if (c->srv_max_packet && len + m->topic_len > c->srv_max_packet) {
		omsg_free(m);
		return TERN_ETOOBIG;
	}
	m->token = c->next_token++;
	if (token)
		*token = m->token;
	rc = enqueue(c, m);
	if (rc == 0) {
		tx_drain(c);
		client_wake(c);
	}
	return rc;
}

int tern_client_publish(tern_client *c, const char *topic, const void *payload,
                        size_t len, int qos, bool retain,
                        const struct tern_props *props, tern_token *token)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	rc = publish_locked(c, topic, payload, len, qos, retain, props, token);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int tern_client_publish_wait(tern_client *c, const char *topic,
                             const void *payload, size_t len, int qos,
                             bool retain, const struct tern_props *props,
                             int timeout_ms, int *reason)
{
	struct waiter w = {.kind = W_PUBLISH};
	tern_token token;
	int rc;

	pthread_mutex_lock(&c->mu);
	if (client_in_callback(c)) {
		pthread_mutex_unlock(&c->mu);
		return TERN_EINVAL;
	}
	/* The waiter goes in first: QoS 0 may complete inside publish. */
	w.token = c->next_token;
	waiter_add(c, &w);
	rc = publish_locked(c, topic, payload, len, qos, retain, props, &token);
	if (rc == 0)
		rc = drive_wait(c, &w, timeout_ms);
	waiter_remove(c, &w);
	if (rc == 0)
		rc = w.rc;
	if (reason)
		*reason = w.reason;
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* --- subscribe / unsubscribe ------------------------------------------------
 */

static int make_op(bool unsub, const struct tern_sub *subs,
                   const char *const *filters, size_t n, uint32_t sub_id,
                   const struct tern_user_prop *up, size_t nup, struct op **out)
{
	struct op *op;
	int rc;

	*out = NULL;
	if (n == 0 || n > 1000 || sub_id > 268435455u || (nup && up == NULL))
		return TERN_EINVAL;
	for (size_t i = 0; i < n; i++) {
		const char *f = unsub ? filters[i] : subs[i].filter;

		if (f == NULL || strlen(f) > 65535 ||
		    mqtt_topic_filter_check((const uint8_t *)f, strlen(f)) < 0)
			return TERN_EINVAL;
		if (!unsub && (subs[i].qos < 0 || subs[i].qos > 2 ||
		               subs[i].retain_handling < 0 ||
		               subs[i].retain_handling > 2))
			return TERN_EINVAL;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL)
		return TERN_ENOMEM;
	op->subs = calloc(n, sizeof(*op->subs));
	if (op->subs == NULL) {
		free(op);
		return TERN_ENOMEM;
	}
	op->unsub = unsub;
	op->sub_id = sub_id;
	rc = omsg_user_props(up, nup, &op->up, &op->up_len, &op->up_count);
	if (rc < 0) {
		free(op->subs);
		free(op);
		return rc == TERN_EUTF8 ? TERN_EINVAL : rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (!unsub)
			op->subs[i] = subs[i];
		op->subs[i].filter =
		        strdup(unsub ? filters[i] : subs[i].filter);
		op->n++;
		if (op->subs[i].filter == NULL) {
			for (size_t k = 0; k < op->n; k++)
				free((char *)op->subs[k].filter);
			free(op->subs);
			free(op);
			return TERN_ENOMEM;
		}
	}
	*out = op;
	return 0;
}

/* Forgets the filters of an unsubscribe in the remembered subscriptions. */
static void forget(struct tern_client *c, const struct op *un)
{
	for (struct op **pp = &c->ops; *pp;) {
		struct op *op = *pp;
		size_t k = 0;

		if (op->unsub || op == un) {
			pp = &op->next;
			continue;
		}
		for (size_t i = 0; i < op->n; i++) {
			bool gone = false;

			for (size_t j = 0; j < un->n && !gone; j++)
				gone = strcmp(op->subs[i].filter,
				              un->subs[j].filter) == 0;
			if (gone)
				free((char *)op->subs[i].filter);
			else
				op->subs[k++] = op->subs[i];
		}
		op->n = k;
		/* An empty subscription whose SUBACK is still due stays
		 * until then, so that its waiter hears back. */
		if (k == 0 && (op->acked || op->packet_id == 0)) {
			*pp = op->next;
			free(op->subs);
			free(op);
			continue;
		}
		pp = &op->next;
	}
}

static int add_op(tern_client *c, struct op *op, tern_token *token)
{
	struct op **pp = &c->ops;
	int rc;

	op->token = c->next_token++;
	if (token)
		*token = op->token;
	while (*pp)
		pp = &(*pp)->next;
	*pp = op;
	if (op->unsub)
		forget(c, op);
	rc = tx_send_op(c, op);
	if (rc == 0)
		link_flush(c);
	client_wake(c);
	return rc < 0 ? rc : 0;
}

/* The arguments of one SUBSCRIBE or UNSUBSCRIBE call. */
struct op_args {
	bool unsub;
	const struct tern_sub *subs;
	const char *const *filters;
	size_t n;
	uint32_t sub_id;
	const struct tern_user_prop *up;
	size_t nup;
};

static int op_call(tern_client *c, const struct op_args *a, int timeout_ms,
                   uint8_t *codes, tern_token *token, bool wait)
{
	struct waiter w = {.kind = a->unsub ? W_UNSUB : W_SUB};
	size_t n = a->n;
	struct op *op;
	int rc = make_op(a->unsub, a->subs, a->filters, a->n, a->sub_id, a->up,
	                 a->nup, &op);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&c->mu);
	if (wait && client_in_callback(c)) {
		pthread_mutex_unlock(&c->mu);
		client_op_free(op);
		return TERN_EINVAL;
	}
	if (wait) {
		w.token = c->next_token;
		w.codes = codes;
		w.ncodes = codes ? n : 0;
		waiter_add(c, &w);
	}
	rc = add_op(c, op, token);
	if (wait) {
		if (rc == 0)
			rc = drive_wait(c, &w, timeout_ms);
		waiter_remove(c, &w);
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int tern_client_subscribe(tern_client *c, const struct tern_sub *subs, size_t n,
                          uint32_t sub_id, tern_token *token)
{
	struct op_args a = {.subs = subs, .n = n, .sub_id = sub_id};

	return op_call(c, &a, 0, NULL, token, false);
}

int tern_client_subscribe_props(tern_client *c, const struct tern_sub *subs,
                                size_t n, uint32_t sub_id,
                                const struct tern_user_prop *up, size_t nup,
                                tern_token *token)
{
	struct op_args a = {
	        .subs = subs, .n = n, .sub_id = sub_id, .up = up, .nup = nup};

	return op_call(c, &a, 0, NULL, token, false);
}

int tern_client_subscribe_wait(tern_client *c, const struct tern_sub *subs,
                               size_t n, uint32_t sub_id, int timeout_ms,
                               uint8_t *codes)
{
	struct op_args a = {.subs = subs, .n = n, .sub_id = sub_id};

	return op_call(c, &a, timeout_ms, codes, NULL, true);
}

int tern_client_unsubscribe(tern_client *c, const char *const *filters,
                            size_t n, tern_token *token)
{
	struct op_args a = {.unsub = true, .filters = filters, .n = n};

	return op_call(c, &a, 0, NULL, token, false);
}

int tern_client_unsubscribe_props(tern_client *c, const char *const *filters,
                                  size_t n, const struct tern_user_prop *up,
                                  size_t nup, tern_token *token)
{
	struct op_args a = {.unsub = true,
	                    .filters = filters,
	                    .n = n,
	                    .up = up,
	                    .nup = nup};

	return op_call(c, &a, 0, NULL, token, false);
}

int tern_client_unsubscribe_wait(tern_client *c, const char *const *filters,
                                 size_t n, int timeout_ms, uint8_t *codes)
{
	struct op_args a = {.unsub = true, .filters = filters, .n = n};

	return op_call(c, &a, timeout_ms, codes, NULL, true);
}

/* --- state ------------------------------------------------------------------
 */

bool tern_client_is_connected(tern_client *c)
{
	bool up;

	pthread_mutex_lock(&c->mu);
	up = c->state == CS_UP;
	pthread_mutex_unlock(&c->mu);
	return up;
}

void tern_client_stats(tern_client *c, struct tern_stats *out)
{
	pthread_mutex_lock(&c->mu);
	memset(out, 0, sizeof(*out));
	out->queued = c->queue.count;
	out->inflight = c->inflight.count;
	out->connects = c->connects;
	out->dropped = c->dropped;
	out->server_receive_maximum = c->srv_recv_max;
	out->server_topic_alias_maximum = c->srv_alias_max;
	out->server_maximum_packet_size = c->srv_max_packet;
	pthread_mutex_unlock(&c->mu);
}
