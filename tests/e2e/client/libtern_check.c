/*
 * The end-to-end driver of tests/e2e/libtern.test.mjs: a small interpreter
 * that runs libtern clients on the threaded loop and is scripted over
 * stdin, one command a line, so a test can interleave client actions with
 * its own (cutting a proxy, killing the broker). Every reply and every
 * callback is one JSON object on stdout.
 *
 * Commands (values are single words; "%20" stands for a space):
 *   new NAME URL [key=value...]   options: version client_id clean keepalive
 *       cafile certfile keyfile insecure noverify ri rmax rfactor
 *       session_expiry will_topic will_payload will_qos will_retain
 *       will_ct alias_max max_queued policy inflight connect_timeout
 *       maxpacket username password alpn tls_version topic_alias
 *   connect NAME [timeout_ms]         -> {"ok":"connect","rc":..,"sp":..}
 *   connect_async NAME
 *   sub NAME FILTER QOS [nl=1] [rap=1] [rh=N] [id=N]
 *                                     -> {"ok":"sub","rc":..,"codes":[..]}
 *   unsub NAME FILTER                 -> {"ok":"unsub","rc":..}
 *   pub NAME TOPIC QOS PAYLOAD [retain=1] [ct=] [rt=] [cd=] [up=k:v]
 *       [exp=N] [pf=N] [wait=0]      -> {"ok":"pub","rc":..,"reason":..}
 *   disconnect NAME                   -> {"ok":"disconnect","rc":..}
 *   destroy NAME                      (no DISCONNECT: the will goes out)
 *   stats NAME                        -> {"ok":"stats",...}
 *   echo WORD                         -> {"ok":"echo","word":..}
 * Events: {"ev":"connect"|"disconnect"|"msg"|"pubdone"|"sub","name":..}.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/tern.h"

#define MAX_CLIENTS 16

struct entry {
	char name[32];
	tern_client *c;
};

static struct entry clients[MAX_CLIENTS];
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

/* One JSON line, whole, under a lock (callbacks run on loop threads). */
static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void emit(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_mu);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_mu);
}

/* Writes s (n bytes) as a JSON string into out (cap bytes). */
static const char *js(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;

	out[o++] = '"';
	for (size_t i = 0; i < n && o + 8 < cap; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7F) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static const char *name_of(void *ud)
{
	return ((struct entry *)ud)->name;
}

static void on_connect(tern_client *c, int rc, int reason, bool sp,
                       const char *why, void *ud)
{
	char w[512];

	(void)c;
	emit("{\"ev\":\"connect\",\"name\":\"%s\",\"rc\":%d,\"reason\":%d,"
	     "\"sp\":%s,\"why\":%s}",
	     name_of(ud), rc, reason, sp ? "true" : "false",
	     js(w, sizeof(w), why, strlen(why)));
}

static void on_disconnect(tern_client *c, int rc, int reason, void *ud)
{
	(void)c;
	emit("{\"ev\":\"disconnect\",\"name\":\"%s\",\"rc\":%d,\"reason\":%d}",
	     name_of(ud), rc, reason);
}

static void on_message(tern_client *c, const struct tern_message *m, void *ud)
{
	const struct tern_props *p = m->props;
	char topic[600], payload[4200], ct[300], rt[600], cd[300];
	char up[1200] = "[", ids[200] = "[";
	size_t n = 1;

	(void)c;
	for (size_t i = 0; i < p->user_prop_count; i++) {
		char k[200], v[200];

		n += (size_t)snprintf(up + n, sizeof(up) - n, "%s[%s,%s]",
		                      i ? "," : "",
		                      js(k, sizeof(k), p->user_props[i].key,
		                         strlen(p->user_props[i].key)),
		                      js(v, sizeof(v), p->user_props[i].value,
		                         strlen(p->user_props[i].value)));
		if (n >= sizeof(up) - 2)
			break;
	}
	snprintf(up + n, sizeof(up) - n, "]");
	n = 1;
	for (size_t i = 0; i < p->sub_id_count && n < sizeof(ids) - 16; i++)
		n += (size_t)snprintf(ids + n, sizeof(ids) - n, "%s%u",
		                      i ? "," : "", p->sub_ids[i]);
	snprintf(ids + n, sizeof(ids) - n, "]");
	emit("{\"ev\":\"msg\",\"name\":\"%s\",\"topic\":%s,\"qos\":%d,"
	     "\"retain\":%s,\"dup\":%s,\"payload\":%s,\"len\":%zu,\"ct\":%s,"
	     "\"rt\":%s,\"cd\":%s,\"up\":%s,\"ids\":%s,\"exp\":%lld,"
	     "\"pf\":%d}",
	     name_of(ud), js(topic, sizeof(topic), m->topic, m->topic_len),
	     m->qos, m->retain ? "true" : "false", m->dup ? "true" : "false",
	     js(payload, sizeof(payload), m->payload,
	        m->payload_len < 4000 ? m->payload_len : 4000),
	     m->payload_len,
	     p->content_type ? js(ct, sizeof(ct), p->content_type,
	                          strlen(p->content_type))
	                     : "null",
	     p->response_topic ? js(rt, sizeof(rt), p->response_topic,
	                            strlen(p->response_topic))
	                       : "null",
	     p->correlation_data ? js(cd, sizeof(cd), p->correlation_data,
	                              p->correlation_len)
	                         : "null",
	     up, ids,
	     p->has_message_expiry ? (long long)p->message_expiry : -1LL,
	     p->has_payload_format ? p->payload_format : -1);
}

static void on_publish(tern_client *c, tern_token t, int rc, int reason,
                       void *ud)
{
	(void)c;
	emit("{\"ev\":\"pubdone\",\"name\":\"%s\",\"token\":%llu,\"rc\":%d,"
	     "\"reason\":%d}",
	     name_of(ud), (unsigned long long)t, rc, reason);
}

static void on_subscribe(tern_client *c, tern_token t, const uint8_t *codes,
                         size_t n, void *ud)
{
	(void)c;
	emit("{\"ev\":\"sub\",\"name\":\"%s\",\"token\":%llu,\"n\":%zu,"
	     "\"code0\":%d}",
	     name_of(ud), (unsigned long long)t, n, n ? codes[0] : -1);
}

static void on_log(tern_client *c, int level, const char *line, void *ud)
{
	(void)c;
	if (level <= TERN_LOG_INFO)
		fprintf(stderr, "[%s] %s\n", name_of(ud), line);
}

/* "%20" back to a space, in place. */
static char *unescape(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '%' && p[1] == '2' && p[2] == '0') {
			*o++ = ' ';
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return s;
}

static struct entry *find(const char *name)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].c && strcmp(clients[i].name, name) == 0)
			return &clients[i];
	return NULL;
}

/* key=value arguments after the fixed ones. */
static const char *arg(char **argv, int argc, const char *key)
{
	size_t k = strlen(key);

	for (int i = 0; i < argc; i++)
		if (strncmp(argv[i], key, k) == 0 && argv[i][k] == '=')
			return argv[i] + k + 1;
	return NULL;
}

static long num(char **argv, int argc, const char *key, long dflt)
{
	const char *v = arg(argv, argc, key);

	return v ? strtol(v, NULL, 10) : dflt;
}

static void cmd_new(char **a, int n)
{
	struct tern_options o;
	struct entry *e = NULL;
	char err[512], w[600];
	static struct tern_props will_props[MAX_CLIENTS];

	for (int i = 0; i < MAX_CLIENTS && e == NULL; i++)
		if (clients[i].c == NULL)
			e = &clients[i];
	if (n < 3 || e == NULL) {
		emit("{\"ok\":\"new\",\"rc\":-6}");
		return;
	}
	tern_options_init(&o);
	snprintf(e->name, sizeof(e->name), "%s", a[1]);
	o.url = a[2];
	o.version = (int)num(a, n, "version", 5);
	o.client_id = arg(a, n, "client_id");
	o.clean_start = num(a, n, "clean", 1) != 0;
	o.keepalive = (uint16_t)num(a, n, "keepalive", 60);
	o.cafile = arg(a, n, "cafile");
	o.certfile = arg(a, n, "certfile");
	o.keyfile = arg(a, n, "keyfile");
	o.tls_insecure = num(a, n, "insecure", 0) != 0;
	o.tls_no_verify = num(a, n, "noverify", 0) != 0;
	o.alpn = arg(a, n, "alpn");
	o.tls_version = arg(a, n, "tls_version");
	o.reconnect_initial_ms = (int)num(a, n, "ri", 0);
	o.reconnect_max_ms = (int)num(a, n, "rmax", 2000);
	o.reconnect_factor = (double)num(a, n, "rfactor", 2);
	o.session_expiry = (uint32_t)num(a, n, "session_expiry", 0);
	o.topic_alias_maximum = (uint16_t)num(a, n, "alias_max", 0);
	o.topic_alias = num(a, n, "topic_alias", 1) != 0;
	o.max_queued = (size_t)num(a, n, "max_queued", 1000);
	o.queue_policy = (int)num(a, n, "policy", 0);
	o.max_inflight = (uint16_t)num(a, n, "inflight", 20);
	o.connect_timeout_ms = (int)num(a, n, "connect_timeout", 5000);
	o.maximum_packet_size = (uint32_t)num(a, n, "maxpacket", 0);
	o.username = arg(a, n, "username");
	o.password = arg(a, n, "password");
	o.will_topic = arg(a, n, "will_topic");
	if (o.will_topic) {
		struct tern_props *wp = &will_props[e - clients];

		o.will_payload = arg(a, n, "will_payload");
		o.will_payload_len =
		        o.will_payload ? strlen(o.will_payload) : 0;
		o.will_qos = (int)num(a, n, "will_qos", 0);
		o.will_retain = num(a, n, "will_retain", 0) != 0;
		memset(wp, 0, sizeof(*wp));
		wp->content_type = arg(a, n, "will_ct");
		o.will_props = *wp;
	}
	o.cb = (struct tern_callbacks){
	        .on_connect = on_connect,
	        .on_disconnect = on_disconnect,
	        .on_message = on_message,
	        .on_publish = on_publish,
	        .on_subscribe = on_subscribe,
	        .on_log = on_log,
	};
	o.userdata = e;
	e->c = tern_client_new(&o, err, sizeof(err));
	if (e->c == NULL) {
		emit("{\"ok\":\"new\",\"rc\":-16,\"err\":%s}",
		     js(w, sizeof(w), err, strlen(err)));
		return;
	}
	tern_client_loop_start(e->c);
	emit("{\"ok\":\"new\",\"rc\":0}");
}

static void cmd_pub(struct entry *e, char **a, int n)
{
	struct tern_props p = {0};
	struct tern_user_prop up = {0};
	char upbuf[256];
	const char *v;
	int rc, reason = -1;

	if (n < 5) {
		emit("{\"ok\":\"pub\",\"rc\":-6}");
		return;
	}
	p.content_type = arg(a, n, "ct");
	p.response_topic = arg(a, n, "rt");
	if ((v = arg(a, n, "cd")) != NULL) {
		p.correlation_data = v;
		p.correlation_len = strlen(v);
	}
	if ((v = arg(a, n, "up")) != NULL && strchr(v, ':')) {
		snprintf(upbuf, sizeof(upbuf), "%s", v);
		*strchr(upbuf, ':') = '\0';
		up.key = upbuf;
		up.value = upbuf + strlen(upbuf) + 1;
		p.user_props = &up;
		p.user_prop_count = 1;
	}
	if ((v = arg(a, n, "exp")) != NULL) {
		p.has_message_expiry = true;
		p.message_expiry = (uint32_t)strtoul(v, NULL, 10);
	}
	if ((v = arg(a, n, "pf")) != NULL) {
		p.has_payload_format = true;
		p.payload_format = (uint8_t)atoi(v);
	}
	if (num(a, n, "wait", 1)) {
		rc = tern_client_publish_wait(
		        e->c, a[2], a[4], strlen(a[4]), atoi(a[3]),
		        num(a, n, "retain", 0) != 0, &p, 5000, &reason);
		emit("{\"ok\":\"pub\",\"rc\":%d,\"reason\":%d}", rc, reason);
	} else {
		tern_token t = 0;

		rc = tern_client_publish(e->c, a[2], a[4], strlen(a[4]),
		                         atoi(a[3]),
		                         num(a, n, "retain", 0) != 0, &p, &t);
		emit("{\"ok\":\"pub\",\"rc\":%d,\"token\":%llu}", rc,
		     (unsigned long long)t);
	}
}

static void cmd_sub(struct entry *e, char **a, int n)
{
	struct tern_sub s = {0};
	uint8_t code = 0xFF;
	int rc;

	if (n < 4) {
		emit("{\"ok\":\"sub\",\"rc\":-6}");
		return;
	}
	s.filter = a[2];
	s.qos = atoi(a[3]);
	s.no_local = num(a, n, "nl", 0) != 0;
	s.retain_as_published = num(a, n, "rap", 0) != 0;
	s.retain_handling = (int)num(a, n, "rh", 0);
	rc = tern_client_subscribe_wait(
	        e->c, &s, 1, (uint32_t)num(a, n, "id", 0), 5000, &code);
	emit("{\"ok\":\"sub\",\"rc\":%d,\"codes\":[%d]}", rc, code);
}

static void cmd_stats(struct entry *e)
{
	struct tern_stats s;

	tern_client_stats(e->c, &s);
	emit("{\"ok\":\"stats\",\"queued\":%zu,\"inflight\":%zu,"
	     "\"connects\":%llu,\"dropped\":%llu,\"recv_max\":%u,"
	     "\"alias_max\":%u,\"max_packet\":%u,\"connected\":%s}",
	     s.queued, s.inflight, (unsigned long long)s.connects,
	     (unsigned long long)s.dropped, s.server_receive_maximum,
	     s.server_topic_alias_maximum, s.server_maximum_packet_size,
	     tern_client_is_connected(e->c) ? "true" : "false");
}

static void run(char **a, int n)
{
	struct entry *e = n > 1 ? find(a[1]) : NULL;
	const char *cmd = a[0];
	int rc;

	if (strcmp(cmd, "new") == 0) {
		cmd_new(a, n);
		return;
	}
	if (strcmp(cmd, "echo") == 0) {
		emit("{\"ok\":\"echo\",\"word\":\"%s\"}", n > 1 ? a[1] : "");
		return;
	}
	if (e == NULL) {
		emit("{\"ok\":\"%s\",\"rc\":-12}", cmd);
		return;
	}
	if (strcmp(cmd, "connect") == 0) {
		bool sp = false;

		rc = tern_client_connect(e->c, n > 2 ? atoi(a[2]) : 5000, &sp);
		emit("{\"ok\":\"connect\",\"rc\":%d,\"sp\":%s,\"err\":\"%s\"}",
		     rc, sp ? "true" : "false", tern_strerror(rc));
	} else if (strcmp(cmd, "connect_async") == 0) {
		emit("{\"ok\":\"connect_async\",\"rc\":%d}",
		     tern_client_connect_async(e->c));
	} else if (strcmp(cmd, "pub") == 0) {
		cmd_pub(e, a, n);
	} else if (strcmp(cmd, "sub") == 0) {
		cmd_sub(e, a, n);
	} else if (strcmp(cmd, "unsub") == 0 && n > 2) {
		const char *f[1] = {a[2]};

		rc = tern_client_unsubscribe_wait(e->c, f, 1, 5000, NULL);
		emit("{\"ok\":\"unsub\",\"rc\":%d}", rc);
	} else if (strcmp(cmd, "disconnect") == 0) {
		rc = tern_client_disconnect(e->c, 2000);
		emit("{\"ok\":\"disconnect\",\"rc\":%d}", rc);
	} else if (strcmp(cmd, "destroy") == 0) {
		tern_client_destroy(e->c);
		e->c = NULL;
		emit("{\"ok\":\"destroy\",\"rc\":0}");
	} else if (strcmp(cmd, "stats") == 0) {
		cmd_stats(e);
	} else {
		emit("{\"ok\":\"%s\",\"rc\":-6}", cmd);
	}
}

int main(void)
{
	char line[8192];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin)) {
		char *a[32], *save = NULL;
		int n = 0;

		for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 32;
		     t = strtok_r(NULL, " \t\r\n", &save))
			a[n++] = unescape(t);
		if (n > 0)
			run(a, n);
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		tern_client_destroy(clients[i].c);
	return 0;
}
