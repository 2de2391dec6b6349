/*
 * libtern glue for the tern CLI (see client.h). Everything that maps a
 * command-line choice onto a libtern option lives here, so pub.c, sub.c and
 * rr.c only describe their own flow.
 */
#include "client.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"

/* The process's one global: set from signal handlers (STYLE.md #10). */
static volatile sig_atomic_t stop_requested;

/* ------------------------------------------------------ messages */

static void vprint(const struct cli_opts *o, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", o->prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void client_err(const struct cli_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (o->quiet)
		return;
	va_start(ap, fmt);
	vprint(o, fmt, ap);
	va_end(ap);
}

void client_debug(const struct cli_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (!o->debug)
		return;
	va_start(ap, fmt);
	vprint(o, fmt, ap);
	va_end(ap);
}

/* MQTT 3.1.1 CONNACK return codes (§3.2.2.3). */
static const char *const connack311[] = {
        "accepted",
        "unacceptable protocol version",
        "identifier rejected",
        "server unavailable",
        "bad user name or password",
        "not authorized",
};

/* MQTT 5 reason codes (§2.4) that a client can be told. */
static const struct {
	int code;
	const char *name;
} reasons5[] = {
        {0x00, "success"},
        {0x01, "granted QoS 1"},
        {0x02, "granted QoS 2"},
        {0x10, "no matching subscribers"},
        {0x80, "unspecified error"},
        {0x81, "malformed packet"},
        {0x82, "protocol error"},
        {0x83, "implementation specific error"},
        {0x84, "unsupported protocol version"},
        {0x85, "client identifier not valid"},
        {0x86, "bad user name or password"},
        {0x87, "not authorized"},
        {0x88, "server unavailable"},
        {0x89, "server busy"},
        {0x8A, "banned"},
        {0x8B, "server shutting down"},
        {0x8C, "bad authentication method"},
        {0x8D, "keep alive timeout"},
        {0x8E, "session taken over"},
        {0x8F, "topic filter invalid"},
        {0x90, "topic name invalid"},
        {0x91, "packet identifier in use"},
        {0x93, "receive maximum exceeded"},
        {0x95, "packet too large"},
        {0x96, "message rate too high"},
        {0x97, "quota exceeded"},
        {0x98, "administrative action"},
        {0x99, "payload format invalid"},
        {0x9A, "retain not supported"},
        {0x9B, "QoS not supported"},
        {0x9C, "use another server"},
        {0x9D, "server moved"},
        {0x9E, "shared subscriptions not supported"},
        {0x9F, "connection rate exceeded"},
        {0xA1, "subscription identifiers not supported"},
        {0xA2, "wildcard subscriptions not supported"},
};

const char *client_reason(int version, int code, bool connack)
{
	if (version < TERN_MQTT_5) {
		if (connack && code >= 0 && code < 6)
			return connack311[code];
		if (code == 0x80)
			return "failure";
	}
	for (size_t i = 0; i < sizeof(reasons5) / sizeof(reasons5[0]); i++)
		if (reasons5[i].code == code)
			return reasons5[i].name;
	return "unknown reason";
}

/* ------------------------------------------------------ properties */

/* The -D properties libtern has an API for, per packet. */
static const struct {
	unsigned cmds;
	uint8_t id;
} supported[] = {
        {PROP_CONNECT, 0x11}, /* session expiry */
        {PROP_CONNECT, 0x19}, /* request response information */
        {PROP_CONNECT, 0x21}, /* receive maximum */
        {PROP_CONNECT, 0x22}, /* topic alias maximum */
        {PROP_CONNECT, 0x27}, /* maximum packet size */
        {PROP_CONNECT | PROP_PUBLISH | PROP_WILL, 0x26}, /* user property */
        {PROP_PUBLISH | PROP_WILL, 0x01}, /* payload format indicator */
        {PROP_PUBLISH | PROP_WILL, 0x02}, /* message expiry interval */
        {PROP_PUBLISH | PROP_WILL, 0x03}, /* content type */
        {PROP_PUBLISH | PROP_WILL, 0x08}, /* response topic */
        {PROP_PUBLISH | PROP_WILL, 0x09}, /* correlation data */
        {PROP_WILL, 0x18},                /* will delay interval */
        {PROP_SUBSCRIBE, 0x0B},           /* subscription identifier */
};

int client_check(const struct cli_opts *o)
{
	for (int i = 0; i < o->n_props; i++) {
		const struct cli_prop *p = &o->props[i];
		bool ok = false;

		for (size_t j = 0; j < sizeof(supported) / sizeof(supported[0]);
		     j++)
			ok |= supported[j].id == p->id &&
			      (supported[j].cmds & p->cmd);
		if (!ok) {
			client_err(o,
			           "-D: %s in this packet is not supported by "
			           "libtern yet",
			           p->name);
			return -1;
		}
	}
	if (o->version == 3) {
		client_err(o, "MQTT 3.1 is not supported; use -V 311 or 5");
		return -1;
	}
	return 0;
}

void client_props(const struct cli_opts *o, enum cli_prop_cmd packet,
                  struct client_props *p)
{
	struct tern_props *t = &p->props;

	memset(p, 0, sizeof(*p));
	t->user_props = p->user;
	for (int i = 0; i < o->n_props; i++) {
		const struct cli_prop *q = &o->props[i];

		if (q->cmd != packet)
			continue;
		switch (q->id) {
		case 0x01:
			t->has_payload_format = true;
			t->payload_format = (uint8_t)q->num;
			break;
		case 0x02:
			t->has_message_expiry = true;
			t->message_expiry = q->num;
			break;
		case 0x03: t->content_type = q->str; break;
		case 0x08: t->response_topic = q->str; break;
		case 0x09:
			t->correlation_data = q->str;
			t->correlation_len = strlen(q->str);
			break;
		case 0x26:
			p->user[t->user_prop_count++] =
			        (struct tern_user_prop){q->str, q->str2};
			break;
		default: break;
		}
	}
}

/* CONNECT properties and the will delay from -D connect / -D will. */
static void connect_props(const struct cli_opts *o, struct tern_options *t,
                          struct tern_user_prop *user)
{
	size_t n = 0;

	for (int i = 0; i < o->n_props; i++) {
		const struct cli_prop *q = &o->props[i];

		if (q->cmd == PROP_WILL && q->id == 0x18)
			t->will_delay = q->num;
		if (q->cmd != PROP_CONNECT)
			continue;
		switch (q->id) {
		case 0x11: t->session_expiry = q->num; break;
		case 0x19: t->request_response_info = q->num != 0; break;
		case 0x21: t->receive_maximum = (uint16_t)q->num; break;
		case 0x22: t->topic_alias_maximum = (uint16_t)q->num; break;
		case 0x27: t->maximum_packet_size = q->num; break;
		case 0x26:
			user[n++] = (struct tern_user_prop){q->str, q->str2};
			break;
		default: break;
		}
	}
	t->user_props = n ? user : NULL;
	t->user_prop_count = n;
}

/* ------------------------------------------------------ callbacks */

static void on_connect(tern_client *c, int rc, int reason, bool session_present,
                       const char *why, void *ud)
{
	struct client_state *st = ud;

	st->connect_reason = reason;
	st->connected = rc == 0;
	if (rc == 0 && st->was_connected)
		client_err(st->o, "reconnected");
	st->was_connected |= rc == 0;
	if (rc != 0)
		snprintf(st->why, sizeof(st->why), "%s", why ? why : "");
}

static void on_disconnect(tern_client *c, int rc, int reason, void *ud)
{
	struct client_state *st = ud;

	if (!st->connected)
		return;
	st->connected = false;
	if (rc == 0)
		return;
	if (st->reconnect) {
		client_err(st->o, "connection lost: %s; reconnecting",
		           tern_strerror(rc));
		return;
	}
	st->lost = true;
	st->lost_rc = rc;
	st->lost_reason = reason;
}

static void on_log(tern_client *c, int level, const char *line, void *ud)
{
	struct client_state *st = ud;

	client_debug(st->o, "%s", line);
}

/* ------------------------------------------------------ connecting */

/* libtern takes a URL; ours is rebuilt from the resolved parts so that -h
 * and -p have already been applied (IPv6 literals need brackets). */
static void make_url(const struct cli_opts *o, char *buf, size_t len)
{
	bool v6 = strchr(o->host, ':') != NULL;

	snprintf(buf, len, "%s://%s%s%s:%d%s", cli_opts_scheme_name(o->scheme),
	         v6 ? "[" : "", o->host, v6 ? "]" : "", o->port,
	         o->path ? o->path : "");
}

static void fill_options(const struct client_state *st, struct tern_options *t,
                         char *url, size_t urllen, struct client_props *will,
                         struct tern_user_prop *user)
{
	const struct cli_opts *o = st->o;

	make_url(o, url, urllen);
	t->url = url;
	t->version = o->version == 5 ? TERN_MQTT_5 : TERN_MQTT_311;
	t->client_id = o->client_id;
	t->clean_start = o->clean;
	t->keepalive = (uint16_t)o->keepalive;
	t->username = o->username;
	t->password = o->password;
	if (o->will_topic) {
		client_props(o, PROP_WILL, will);
		t->will_topic = o->will_topic;
		t->will_payload = o->will_payload ? o->will_payload : "";
		t->will_payload_len =
		        o->will_payload ? strlen(o->will_payload) : 0;
		t->will_qos = o->will_qos;
		t->will_retain = o->will_retain;
		t->will_props = will->props;
	}
	connect_props(o, t, user);
	if (o->has_session_expiry)
		t->session_expiry = o->session_expiry;
	t->cafile = o->cafile;
	t->capath = o->capath;
	t->certfile = o->cert;
	t->keyfile = o->key;
	t->tls_insecure = o->insecure;
	t->tls_version = o->tls_version;
	/* `tern sub` keeps going across broker restarts, as mosquitto_sub
	 * does (libtern resubscribes); pub and rr report the loss instead of
	 * retrying behind the user's back. */
	if (!st->reconnect)
		t->reconnect_initial_ms = 0;
}

/* The exit status and message for a failed tern_client_connect(). */
static int connect_failed(struct client_state *st, int rc)
{
	const struct cli_opts *o = st->o;

	if (rc == TERN_EREFUSED) {
		client_err(o, "connection refused: %s (reason 0x%02x)",
		           client_reason(o->version, st->connect_reason, true),
		           st->connect_reason);
		return EXIT_REFUSED;
	}
	/* libtern's sentence names the cause (refused, TLS verification,
	 * WebSocket handshake); tern_strerror is the fallback. */
	client_err(o, "cannot connect to %s://%s:%d: %s",
	           cli_opts_scheme_name(o->scheme), o->host, o->port,
	           st->why[0] ? st->why : tern_strerror(rc));
	return EXIT_NETWORK;
}

int client_open(struct client_state *st, const struct tern_callbacks *cb,
                tern_client **out)
{
	const struct cli_opts *o = st->o;
	struct tern_options t;
	struct client_props will;
	struct tern_user_prop user[CLI_MAX_PROPS];
	char url[512], err[256] = "";
	tern_client *c;
	int rc;

	*out = NULL;
	st->lost_reason = -1;
	if (client_check(o))
		return EXIT_USAGE;
	tern_options_init(&t);
	fill_options(st, &t, url, sizeof(url), &will, user);
	if (cb)
		t.cb = *cb;
	t.cb.on_connect = on_connect;
	t.cb.on_disconnect = on_disconnect;
	t.cb.on_log = on_log;
	t.userdata = st;
	c = tern_client_new(&t, err, sizeof(err));
	if (!c) {
		client_err(o, "%s", err[0] ? err : "cannot create the client");
		return EXIT_USAGE;
	}
	rc = tern_client_connect(c, -1, NULL);
	if (rc != 0) {
		tern_client_destroy(c);
		return connect_failed(st, rc);
	}
	*out = c;
	return EXIT_OK;
}

void client_close(tern_client *c, int timeout_ms)
{
	if (!c)
		return;
	if (tern_client_is_connected(c))
		tern_client_disconnect(c, timeout_ms);
	tern_client_destroy(c);
}

/* ------------------------------------------------------ messages in */

void client_fmt_msg(const struct tern_message *m, struct fmt_msg *out,
                    struct fmt_kv *kv)
{
	const struct tern_props *p = m->props;
	size_t n = p->user_prop_count < CLI_MAX_PROPS ? p->user_prop_count
	                                              : CLI_MAX_PROPS;

	memset(out, 0, sizeof(*out));
	clock_gettime(CLOCK_REALTIME, &out->when);
	out->topic = m->topic;
	out->topic_len = m->topic_len;
	out->payload = m->payload;
	out->payload_len = m->payload_len;
	out->qos = m->qos;
	out->retain = m->retain;
	out->mid = m->packet_id;
	out->has_alias = m->topic_alias != 0;
	out->alias = m->topic_alias;
	out->content_type = p->content_type;
	out->content_type_len = p->content_type ? strlen(p->content_type) : 0;
	out->response_topic = p->response_topic;
	out->response_topic_len =
	        p->response_topic ? strlen(p->response_topic) : 0;
	out->correlation = p->correlation_data;
	out->correlation_len = p->correlation_len;
	out->has_expiry = p->has_message_expiry;
	out->expiry = p->message_expiry;
	out->has_pfi = p->has_payload_format;
	out->pfi = p->payload_format;
	out->sub_ids = p->sub_ids;
	out->n_sub_ids = p->sub_id_count;
	for (size_t i = 0; i < n; i++)
		kv[i] = (struct fmt_kv){
		        p->user_props[i].key, strlen(p->user_props[i].key),
		        p->user_props[i].value, strlen(p->user_props[i].value)};
	out->user_props = kv;
	out->n_user_props = n;
}

/* ------------------------------------------------------ running */

static void on_stop_signal(int sig)
{
	stop_requested = 1;
}

void client_signals(void)
{
	/* No SA_RESTART: a signal should cut a poll short. */
	struct sigaction sa = {.sa_handler = on_stop_signal};

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	client_ignore_sigpipe();
}

void client_ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

int client_lost(const struct client_state *st)
{
	int reason = st->lost_reason;

	if (reason >= 0)
		client_err(st->o, "connection lost: %s (server: %s, 0x%02x)",
		           tern_strerror(st->lost_rc),
		           client_reason(TERN_MQTT_5, reason, false), reason);
	else
		client_err(st->o, "connection lost: %s",
		           tern_strerror(st->lost_rc));
	return EXIT_LOST;
}

/* Polls in slices of at most 100 ms so that the signal flag and the
 * deadline are looked at even when libtern restarts an interrupted poll. */
int client_run(struct client_state *st, tern_client *c, const bool *done,
               long timeout_s, uint64_t start_ms)
{
	uint64_t deadline =
	        timeout_s ? start_ms + (uint64_t)timeout_s * 1000 : 0;

	while (!*done && !stop_requested) {
		int wait = 100;

		if (st->lost)
			return client_lost(st);
		if (deadline) {
			uint64_t now = clock_ms();

			if (now >= deadline) {
				client_err(st->o, "timed out after %ld s",
				           timeout_s);
				return EXIT_TIMEOUT;
			}
			if (deadline - now < (uint64_t)wait)
				wait = (int)(deadline - now);
		}
		tern_client_loop_once(c, wait);
	}
	return EXIT_OK;
}
