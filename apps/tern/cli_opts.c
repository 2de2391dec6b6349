/*
 * Command-line parsing for `tern pub|sub|rr` (see cli_opts.h). The flags are
 * one declarative table: name, argument, the subcommands that take it, a setter
 * and its --help line. getopt_long's tables and each subcommand's --help
 * are generated from it, so a flag cannot be accepted but undocumented.
 * Setters only record; finish() then resolves what depends on several
 * flags (URL against -h/-p, TLS, passwords, defaults) and checks the
 * combinations Mosquitto's clients refuse.
 */
#include "cli_opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/file.h"
#include "format.h"

#define ALL (CLI_PUB | CLI_SUB | CLI_RR)
#define PUB CLI_PUB
#define SUB CLI_SUB
#define RR  CLI_RR
#define V5  8 /* in a flag's cmds: the flag needs MQTT 5 */

/* What the setters record before finish() resolves it. */
struct ctx {
	struct cli_opts *o;
	int argc;
	char **argv;
	const char *url;
	const char *host;
	int port;
	const char *id;
	const char *id_prefix;
	const char *username;
	char *password; /* owned copy of -P */
	const char *pw_file;
	const char *pw_env;
	bool version_set;
	bool count_set;
	int n_sources;
	bool v5_only; /* a flag that needs MQTT 5 was given */
};

static int fail(const struct ctx *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Prints "tern sub: message" to stderr; returns -1 for the caller. */
static int fail(const struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", c->o->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -1;
}

static int parse_long(const struct ctx *c, const char *what, const char *s,
                      long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return fail(c, "%s must be a number from %ld to %ld, not '%s'",
		            what, min, max, s);
	*out = v;
	return 0;
}

static int parse_int(const struct ctx *c, const char *what, const char *s,
                     long min, long max, int *out)
{
	long v;

	if (parse_long(c, what, s, min, max, &v))
		return -1;
	*out = (int)v;
	return 0;
}

static int set_qos_value(const struct ctx *c, const char *what, const char *s,
                         int *out)
{
	return parse_int(c, what, s, 0, 2, out);
}

/* -------------------------------------------------------- setters */

typedef int (*setter)(struct ctx *c, const char *arg);

/* How a flag is stored: most only record their argument (or true) at an
 * offset in struct cli_opts or struct ctx; the rest have a setter. */
enum kind {
	K_FN,
	K_BOOL, /* bool in cli_opts, set to true */
	K_STR,  /* const char * in cli_opts */
	K_CTX,  /* const char * in ctx, resolved by finish() */
};

static int set_port(struct ctx *c, const char *a)
{
	return parse_int(c, "port (-p)", a, 1, 65535, &c->port);
}

static int add_topic(struct ctx *c, const char **list, int *n, const char *a)
{
	if (*n == CLI_MAX_TOPICS)
		return fail(c, "at most %d topics", CLI_MAX_TOPICS);
	if (!*a)
		return fail(c, "a topic cannot be empty");
	list[(*n)++] = a;
	return 0;
}

static int set_topic(struct ctx *c, const char *a)
{
	if (c->o->cmd != CLI_SUB && c->o->n_topics)
		return fail(c, "only one topic (-t) can be given");
	return add_topic(c, c->o->topics, &c->o->n_topics, a);
}

static int set_filter_out(struct ctx *c, const char *a)
{
	return add_topic(c, c->o->filter_out, &c->o->n_filter_out, a);
}

static int set_source(struct ctx *c, enum cli_msg_src src)
{
	if (c->n_sources++)
		return fail(c, "give only one of -m, -f, -l, -s and -n");
	c->o->msg_src = src;
	return 0;
}

static int set_message(struct ctx *c, const char *a)
{
	c->o->message = a;
	return set_source(c, MSG_ARG);
}

static int set_file(struct ctx *c, const char *a)
{
	c->o->file = a;
	return set_source(c, MSG_FILE);
}

static int set_lines(struct ctx *c, const char *a)
{
	return set_source(c, MSG_LINES);
}

static int set_stdin(struct ctx *c, const char *a)
{
	return set_source(c, MSG_STDIN);
}

static int set_null(struct ctx *c, const char *a)
{
	return set_source(c, MSG_NULL);
}

static int set_qos(struct ctx *c, const char *a)
{
	return set_qos_value(c, "QoS (-q)", a, &c->o->qos);
}

static int set_keepalive(struct ctx *c, const char *a)
{
	return parse_int(c, "keepalive (-k)", a, 0, 65535, &c->o->keepalive);
}

/*
 * -P: the password is copied and the argument overwritten, so that `ps`
 * shows it only for the instant before this runs. That is a mitigation,
 * not a fix: --pw-file and TERN_PASSWORD keep it off the command line.
 */
static int set_password(struct ctx *c, const char *a)
{
	free(c->password);
	c->password = strdup(a);
	if (!c->password)
		return fail(c, "out of memory");
	memset((char *)a, '*', strlen(a));
	return 0;
}

static const struct {
	const char *name;
	int version;
} versions[] = {
        {"5", 5},     {"mqttv5", 5}, {"311", 4},     {"mqttv311", 4},
        {"3.1.1", 4}, {"31", 3},     {"mqttv31", 3}, {"3.1", 3},
};

static int set_version(struct ctx *c, const char *a)
{
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		if (!strcmp(a, versions[i].name)) {
			c->o->version = versions[i].version;
			c->version_set = true;
			return 0;
		}
	return fail(c, "unknown protocol version '%s' (use 5, 311 or 31)", a);
}

static int set_persistent(struct ctx *c, const char *a)
{
	c->o->clean = false;
	return 0;
}

static int set_session_expiry(struct ctx *c, const char *a)
{
	long v;

	/* -1 means "never expires", as with Mosquitto's clients. */
	if (!strcmp(a, "-1")) {
		v = 0xFFFFFFFFL;
	} else if (parse_long(c, "session expiry (-x)", a, 0, 0xFFFFFFFFL,
	                      &v)) {
		return -1;
	}
	c->o->has_session_expiry = true;
	c->o->session_expiry = (uint32_t)v;
	return 0;
}

static int set_will_qos(struct ctx *c, const char *a)
{
	return set_qos_value(c, "--will-qos", a, &c->o->will_qos);
}

static int set_tls_version(struct ctx *c, const char *a)
{
	if (strcmp(a, "tlsv1.2") && strcmp(a, "tlsv1.3"))
		return fail(c, "--tls-version must be tlsv1.2 or tlsv1.3");
	c->o->tls_version = a;
	return 0;
}

static int set_repeat(struct ctx *c, const char *a)
{
	return parse_long(c, "--repeat", a, 1, 1000000000L, &c->o->repeat);
}

static int set_repeat_delay(struct ctx *c, const char *a)
{
	char *end;
	double v = strtod(a, &end);

	if (end == a || *end || !(v >= 0 && v <= 86400))
		return fail(c,
		            "--repeat-delay must be seconds from 0 to 86400");
	c->o->repeat_delay = v;
	return 0;
}

static int set_count(struct ctx *c, const char *a)
{
	c->count_set = true;
	return parse_long(c, "count (-C)", a, 1, 1000000000L, &c->o->count);
}

static int set_timeout(struct ctx *c, const char *a)
{
	return parse_long(c, "timeout (-W)", a, 1, 86400, &c->o->timeout);
}

static int set_rh(struct ctx *c, const char *a)
{
	return parse_int(c, "retain handling (--rh)", a, 0, 2,
	                 &c->o->retain_handling);
}

/* ------------------------------------------------ -D properties */

static const struct {
	const char *name;
	enum cli_prop_cmd cmd;
} prop_cmds[] = {
        {"connect", PROP_CONNECT},       {"publish", PROP_PUBLISH},
        {"subscribe", PROP_SUBSCRIBE},   {"unsubscribe", PROP_UNSUBSCRIBE},
        {"disconnect", PROP_DISCONNECT}, {"will", PROP_WILL},
};

#define C PROP_CONNECT
#define P PROP_PUBLISH
#define S PROP_SUBSCRIBE
#define U PROP_UNSUBSCRIBE
#define D PROP_DISCONNECT
#define W PROP_WILL

/* The properties a client may send, and in which packets (MQTT 5.0
 * §2.2.2.2); Mosquitto's names. */
static const struct {
	const char *name;
	uint8_t id;
	enum cli_prop_type type;
	unsigned cmds;
} prop_defs[] = {
        {"payload-format-indicator", 0x01, PT_BYTE, P | W},
        {"message-expiry-interval", 0x02, PT_U32, P | W},
        {"content-type", 0x03, PT_STRING, P | W},
        {"response-topic", 0x08, PT_STRING, P | W},
        {"correlation-data", 0x09, PT_BINARY, P | W},
        {"subscription-identifier", 0x0B, PT_VARINT, S},
        {"session-expiry-interval", 0x11, PT_U32, C | D},
        {"authentication-method", 0x15, PT_STRING, C},
        {"authentication-data", 0x16, PT_BINARY, C},
        {"request-problem-information", 0x17, PT_BYTE, C},
        {"will-delay-interval", 0x18, PT_U32, W},
        {"request-response-information", 0x19, PT_BYTE, C},
        {"reason-string", 0x1F, PT_STRING, D},
        {"receive-maximum", 0x21, PT_U16, C},
        {"topic-alias-maximum", 0x22, PT_U16, C},
        {"topic-alias", 0x23, PT_U16, P},
        {"user-property", 0x26, PT_PAIR, C | P | S | U | D | W},
        {"maximum-packet-size", 0x27, PT_U32, C},
};

#undef C
#undef P
#undef S
#undef U
#undef D
#undef W

/* The packets each subcommand sends, so a -D that would be ignored is an
 * error instead. */
static unsigned cmd_packets(enum cli_cmd cmd)
{
	switch (cmd) {
	case CLI_PUB:
		return PROP_CONNECT | PROP_PUBLISH | PROP_DISCONNECT |
		       PROP_WILL;
	case CLI_SUB:
		return PROP_CONNECT | PROP_SUBSCRIBE | PROP_UNSUBSCRIBE |
		       PROP_DISCONNECT | PROP_WILL;
	default:
		return PROP_CONNECT | PROP_PUBLISH | PROP_SUBSCRIBE |
		       PROP_DISCONNECT | PROP_WILL;
	}
}

/* Takes the next argv word as an extra argument of the current flag. */
static const char *next_arg(struct ctx *c, const char *what)
{
	if (optind >= c->argc) {
		fail(c, "-D needs %s", what);
		return NULL;
	}
	return c->argv[optind++];
}

static int prop_value(struct ctx *c, struct cli_prop *p, const char *name,
                      const char *v)
{
	static const long max[] = {[PT_BYTE] = 255,
	                           [PT_U16] = 65535,
	                           [PT_U32] = 0xFFFFFFFFL,
	                           [PT_VARINT] = 268435455};
	long n;

	if (p->type == PT_STRING || p->type == PT_BINARY ||
	    p->type == PT_PAIR) {
		p->str = v;
		return 0;
	}
	if (parse_long(c, name, v, p->type == PT_VARINT ? 1 : 0, max[p->type],
	               &n))
		return -1;
	p->num = (uint32_t)n;
	return 0;
}

/* -D CMD NAME VALUE (user-property: -D CMD user-property KEY VALUE). */
static int set_property(struct ctx *c, const char *a)
{
	struct cli_prop *p = &c->o->props[c->o->n_props];
	const char *name, *value;
	size_t i;

	if (c->o->n_props == CLI_MAX_PROPS)
		return fail(c, "at most %d -D properties", CLI_MAX_PROPS);
	for (i = 0; i < sizeof(prop_cmds) / sizeof(prop_cmds[0]); i++)
		if (!strcmp(a, prop_cmds[i].name))
			break;
	if (i == sizeof(prop_cmds) / sizeof(prop_cmds[0]))
		return fail(c,
		            "-D: unknown packet '%s' (connect, publish, "
		            "subscribe, unsubscribe, disconnect, will)",
		            a);
	p->cmd = prop_cmds[i].cmd;
	if (!(cmd_packets(c->o->cmd) & p->cmd))
		return fail(c, "-D %s: %s sends no such packet", a, c->o->prog);
	if (!(name = next_arg(c, "a property name")))
		return -1;
	for (i = 0; i < sizeof(prop_defs) / sizeof(prop_defs[0]); i++)
		if (!strcmp(name, prop_defs[i].name))
			break;
	if (i == sizeof(prop_defs) / sizeof(prop_defs[0]))
		return fail(c, "-D: unknown property '%s'", name);
	if (!(prop_defs[i].cmds & p->cmd))
		return fail(c, "-D: %s is not allowed in %s", name, a);
	p->id = prop_defs[i].id;
	p->name = prop_defs[i].name;
	p->type = prop_defs[i].type;
	if (!(value = next_arg(c, "a value")) || prop_value(c, p, name, value))
		return -1;
	if (p->type == PT_PAIR && !(p->str2 = next_arg(c, "a value")))
		return -1;
	c->o->n_props++;
	return 0;
}

/* ------------------------------------------------------ the table */

#define FN(fn) K_FN, 0, fn
#define B(fld) K_BOOL, offsetof(struct cli_opts, fld), NULL
#define S(fld) K_STR, offsetof(struct cli_opts, fld), NULL
#define X(fld) K_CTX, offsetof(struct ctx, fld), NULL

static const struct flag {
	const char *lng;
	char shrt;
	const char *arg; /* argument name in --help; NULL: no argument */
	unsigned cmds;   /* CLI_* bits, and V5 */
	enum kind kind;
	size_t off;
	setter set;
	const char *help;
} flags[] = {
        {"host", 'h', "HOST", ALL, X(host), "broker host (localhost)"},
        {"port", 'p', "PORT", ALL, FN(set_port),
         "port (1883; 8883 with TLS options)"},
        {"url", 'L', "URL", ALL, X(url),
         "mqtt|mqtts|ws|wss://[user[:pass]@]host[:port][/path]"},
        {"topic", 't', "TOPIC", ALL, FN(set_topic),
         "topic (sub: filter, repeatable)"},
        {"filter-out", 'T', "FILTER", SUB, FN(set_filter_out),
         "do not print messages matching FILTER (repeatable)"},
        {"message", 'm', "TEXT", PUB | RR, FN(set_message), "payload"},
        {"file", 'f', "FILE", PUB | RR, FN(set_file), "payload: a whole file"},
        {"stdin-line", 'l', NULL, PUB, FN(set_lines),
         "one message per line of stdin"},
        {"stdin-file", 's', NULL, PUB | RR, FN(set_stdin),
         "payload: all of stdin"},
        {"null-message", 'n', NULL, PUB | RR, FN(set_null),
         "zero-length payload"},
        {"qos", 'q', "0|1|2", ALL, FN(set_qos), "quality of service (0)"},
        {"retain", 'r', NULL, PUB, B(retain), "publish retained"},
        {"id", 'i', "ID", ALL, X(id), "client id (tern-CMD-PID-RANDOM)"},
        {"id-prefix", 'I', "PREFIX", ALL, X(id_prefix),
         "client id PREFIX followed by the process id"},
        {"keepalive", 'k', "SECONDS", ALL, FN(set_keepalive),
         "keepalive (60; 0 disables)"},
        {"username", 'u', "USER", ALL, X(username), "username"},
        {"pw", 'P', "PASSWORD", ALL, FN(set_password),
         "password (visible in ps: prefer --pw-file or TERN_PASSWORD)"},
        {"pw-file", 0, "FILE", ALL, X(pw_file),
         "read the password from the first line of FILE"},
        {"password-file", 0, "FILE", ALL, X(pw_file),
         "the same as --pw-file (as in tern passwd)"},
        {"password-env", 0, "VAR", ALL, X(pw_env),
         "read the password from environment variable VAR"},
        {"protocol-version", 'V', "5|311|31", ALL, FN(set_version),
         "MQTT version (pub/sub: 311, rr: 5)"},
        {"disable-clean-session", 'c', NULL, ALL, FN(set_persistent),
         "persistent session (needs -i)"},
        {"session-expiry-interval", 'x', "SECONDS", ALL | V5,
         FN(set_session_expiry), "MQTT 5 session expiry (-1: never)"},
        {"property", 'D', "CMD NAME VALUE", ALL | V5, FN(set_property),
         "MQTT 5 property, e.g. -D publish content-type text/plain"},
        {"will-topic", 0, "TOPIC", ALL, S(will_topic), "will topic"},
        {"will-payload", 0, "TEXT", ALL, S(will_payload), "will payload"},
        {"will-qos", 0, "0|1|2", ALL, FN(set_will_qos), "will QoS"},
        {"will-retain", 0, NULL, ALL, B(will_retain), "retained will"},
        {"cafile", 0, "FILE", ALL, S(cafile),
         "trusted CA certificates (PEM); enables TLS"},
        {"capath", 0, "DIR", ALL, S(capath),
         "directory of trusted CAs (c_rehash); enables TLS"},
        {"cert", 0, "FILE", ALL, S(cert), "client certificate (PEM)"},
        {"key", 0, "FILE", ALL, S(key), "client private key (PEM)"},
        {"insecure", 0, NULL, ALL, B(insecure),
         "do not check the server's host name"},
        {"tls-version", 0, "VERSION", ALL, FN(set_tls_version),
         "minimum TLS version: tlsv1.2 or tlsv1.3"},
        {"repeat", 0, "N", PUB, FN(set_repeat), "publish the message N times"},
        {"repeat-delay", 0, "SECONDS", PUB, FN(set_repeat_delay),
         "pause between repeats (fractions allowed)"},
        {"verbose", 'v', NULL, SUB | RR, B(verbose), "print 'topic payload'"},
        {"format", 'F', "FORMAT", SUB | RR, S(format),
         "output format (%t %p %j ..., see docs/cli.md)"},
        {"json", 0, NULL, SUB | RR, B(json),
         "print each message as a JSON object (like -F %j)"},
        {"no-eol", 'N', NULL, SUB | RR, B(no_eol),
         "no newline after each message"},
        {"count", 'C', "N", SUB | RR, FN(set_count), "exit after N messages"},
        {"timeout", 'W', "SECONDS", SUB | RR, FN(set_timeout),
         "give up after SECONDS from connecting (exit 27)"},
        {"no-retained", 'R', NULL, SUB, B(no_retained),
         "do not print retained messages"},
        {"retained-only", 0, NULL, SUB, B(retained_only),
         "print retained messages; exit at the first live one"},
        {"remove-retained", 0, NULL, SUB, B(remove_retained),
         "clear each retained message received"},
        {"exit-after-suback", 'E', NULL, SUB, B(exit_after_suback),
         "exit once subscribed"},
        {"nl", 0, NULL, SUB | V5, B(no_local), "MQTT 5 no-local"},
        {"rap", 0, NULL, SUB | V5, B(retain_as_published),
         "MQTT 5 retain-as-published"},
        {"rh", 0, "0|1|2", SUB | V5, FN(set_rh), "MQTT 5 retain handling"},
        {"response-topic", 'e', "TOPIC", RR, S(response_topic),
         "topic the response is expected on"},
        {"correlation-data", 0, "TEXT", RR, S(correlation),
         "correlation data (random by default)"},
        {"debug", 'd', NULL, ALL, B(debug), "print protocol events"},
        {"quiet", 0, NULL, ALL, B(quiet), "print no errors"},
};

#undef FN
#undef B
#undef S
#undef X

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static int apply(struct ctx *c, const struct flag *fl, const char *arg)
{
	if (fl->cmds & V5)
		c->v5_only = true;
	switch (fl->kind) {
	case K_BOOL: *(bool *)((char *)c->o + fl->off) = true; return 0;
	case K_STR: *(const char **)((char *)c->o + fl->off) = arg; return 0;
	case K_CTX: *(const char **)((char *)c + fl->off) = arg; return 0;
	default: return fl->set(c, arg);
	}
}

/* getopt_long's value for a long-only flag: its index, above any char. */
#define LONG_ONLY 256
#define HELP_VAL  (LONG_ONLY + (int)NFLAGS)

static const char *cmd_name(enum cli_cmd cmd)
{
	return cmd == CLI_PUB ? "pub" : cmd == CLI_SUB ? "sub" : "rr";
}

void cli_opts_usage(enum cli_cmd cmd, FILE *f)
{
	static const char *what[] = {[CLI_PUB] = "publish a message",
	                             [CLI_SUB] = "print messages",
	                             [CLI_RR] = "send an MQTT 5 request and "
	                                        "print the response"};

	fprintf(f, "usage: tern %s [OPTIONS]: %s\n\n", cmd_name(cmd),
	        what[cmd]);
	for (size_t i = 0; i < NFLAGS; i++) {
		const struct flag *fl = &flags[i];
		char left[80];

		if (!(fl->cmds & cmd))
			continue;
		snprintf(left, sizeof(left), "%c%c%s--%s%s%s",
		         fl->shrt ? '-' : ' ', fl->shrt ? fl->shrt : ' ',
		         fl->shrt ? ", " : "  ", fl->lng, fl->arg ? " " : "",
		         fl->arg ? fl->arg : "");
		fprintf(f, "  %-36s %s\n", left, fl->help);
	}
	fprintf(f, "  %-36s %s\n", "    --help", "this help");
	fprintf(f, "\nThe password comes from the first of -P, --pw-file, "
	           "--password-env,\nthe -L URL, and the environment variable "
	           "TERN_PASSWORD (used only\nwith a username).\n");
	if (cmd != CLI_PUB)
		fprintf(f, "Exit status 27: -W timed out.\n");
}

/* Builds getopt_long's tables for the flags cmd takes. */
static void build_getopt(enum cli_cmd cmd, char *shorts, struct option *lo)
{
	size_t s = 0, l = 0;

	/* '+': stop at the first non-option, so -D may take words after its
	 * argument without getopt permuting them away. */
	shorts[s++] = '+';
	for (size_t i = 0; i < NFLAGS; i++) {
		const struct flag *fl = &flags[i];

		if (!(fl->cmds & cmd))
			continue;
		if (fl->shrt) {
			shorts[s++] = fl->shrt;
			if (fl->arg)
				shorts[s++] = ':';
		}
		lo[l++] = (struct option){
		        fl->lng, fl->arg ? required_argument : no_argument,
		        NULL, fl->shrt ? fl->shrt : LONG_ONLY + (int)i};
	}
	lo[l++] = (struct option){"help", no_argument, NULL, HELP_VAL};
	lo[l] = (struct option){NULL, 0, NULL, 0};
	shorts[s] = '\0';
}

static const struct flag *flag_for(enum cli_cmd cmd, int val)
{
	if (val >= LONG_ONLY && val < HELP_VAL)
		return &flags[val - LONG_ONLY];
	for (size_t i = 0; i < NFLAGS; i++)
		if (flags[i].shrt == val && (flags[i].cmds & cmd))
			return &flags[i];
	return NULL;
}

/* ------------------------------------------------------ -L URLs */

static const struct {
	const char *name;
	enum cli_scheme scheme;
	int port;
} schemes[] = {
        {"mqtt", SCHEME_MQTT, 1883},   {"tcp", SCHEME_MQTT, 1883},
        {"mqtts", SCHEME_MQTTS, 8883}, {"ssl", SCHEME_MQTTS, 8883},
        {"ws", SCHEME_WS, 80},         {"wss", SCHEME_WSS, 443},
};

const char *cli_opts_scheme_name(enum cli_scheme s)
{
	static const char *names[] = {"mqtt", "mqtts", "ws", "wss"};

	return names[s];
}

static int default_port(enum cli_scheme s)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (schemes[i].scheme == s)
			return schemes[i].port;
	return 1883;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* A heap copy of s[0..n) with %XX decoded (user info may need it). */
static char *pct_dup(const char *s, size_t n)
{
	char *out = malloc(n + 1), *d = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
		    (lo = hexval(s[i + 2])) >= 0) {
			*d++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*d++ = s[i];
		}
	}
	*d = '\0';
	return out;
}

struct url {
	enum cli_scheme scheme;
	char *user;
	char *pass;
	char *host;
	int port;
	char *path;
};

static void url_free(struct url *u)
{
	free(u->user);
	if (u->pass)
		explicit_bzero(u->pass, strlen(u->pass));
	free(u->pass);
	free(u->host);
	free(u->path);
}

static int url_scheme(struct ctx *c, const char *s, size_t n, struct url *u)
{
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strlen(schemes[i].name) == n &&
		    !strncmp(s, schemes[i].name, n)) {
			u->scheme = schemes[i].scheme;
			u->port = schemes[i].port;
			return 0;
		}
	return fail(c, "URL scheme must be mqtt, mqtts, ws or wss: '%.*s'",
	            (int)n, s);
}

/* user[:pass]@ at the start of the authority, if present. */
static int url_userinfo(const char *a, size_t n, struct url *u)
{
	const char *at = memrchr(a, '@', n);
	const char *colon;

	if (!at)
		return 0;
	colon = memchr(a, ':', (size_t)(at - a));
	u->user = pct_dup(a, (size_t)((colon ? colon : at) - a));
	if (colon)
		u->pass = pct_dup(colon + 1, (size_t)(at - colon - 1));
	return (!u->user || (colon && !u->pass)) ? TERN_ENOMEM
	                                         : (int)(at + 1 - a);
}

/* host, [v6]host, host:port or [v6]:port. */
static int url_hostport(struct ctx *c, const char *h, size_t n, struct url *u)
{
	const char *end = h + n, *port = NULL;
	long v;

	if (n && *h == '[') {
		const char *close = memchr(h, ']', n);

		if (!close)
			return fail(c, "URL: unclosed '[' in host");
		u->host = strndup(h + 1, (size_t)(close - h - 1));
		if (close + 1 < end && close[1] == ':')
			port = close + 2;
		else if (close + 1 != end)
			return fail(c, "URL: junk after ']'");
	} else {
		const char *colon = memchr(h, ':', n);

		u->host = strndup(h, (size_t)((colon ? colon : end) - h));
		port = colon ? colon + 1 : NULL;
	}
	if (!u->host)
		return fail(c, "out of memory");
	if (!*u->host)
		return fail(c, "URL has no host");
	if (port) {
		char tmp[8] = {0};

		if (end - port < 1 || end - port > 5)
			return fail(c, "URL: bad port");
		memcpy(tmp, port, (size_t)(end - port));
		if (parse_long(c, "URL port", tmp, 1, 65535, &v))
			return -1;
		u->port = (int)v;
	}
	return 0;
}

static int parse_url(struct ctx *c, const char *s, struct url *u)
{
	const char *sep = strstr(s, "://"), *auth, *slash;
	size_t alen;
	int n;

	if (!sep)
		return fail(c,
		            "URL must start with mqtt://, mqtts://, ws:// "
		            "or wss://: '%s'",
		            s);
	if (url_scheme(c, s, (size_t)(sep - s), u))
		return -1;
	auth = sep + 3;
	slash = strchr(auth, '/');
	alen = slash ? (size_t)(slash - auth) : strlen(auth);
	n = url_userinfo(auth, alen, u);
	if (n < 0)
		return fail(c, "out of memory");
	if (url_hostport(c, auth + n, alen - (size_t)n, u))
		return -1;
	u->path = strdup(slash ? slash : "");
	return u->path ? 0 : fail(c, "out of memory");
}

/* ------------------------------------------------------ finishing */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Reads the first line of the --pw-file (without its line end). A file
 * others can read is used but named, as ssh does with keys. */
static int read_pw_file(struct ctx *c, char **out)
{
	char err[256];
	char *text = NULL;
	struct stat st;

	if (stat(c->pw_file, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
		fprintf(stderr,
		        "%s: warning: %s is accessible to other users "
		        "(chmod 600 it)\n",
		        c->o->prog, c->pw_file);

	if (file_read_text(c->pw_file, &text, err, sizeof(err)) != 0)
		return fail(c, "--pw-file: %s", err);
	text[strcspn(text, "\r\n")] = '\0';
	*out = strdup(text);
	explicit_bzero(text, strlen(text));
	free(text);
	return *out ? 0 : fail(c, "out of memory");
}

/* -P, then --pw-file, --password-env, the URL, then TERN_PASSWORD (only
 * with a username). */
static int resolve_password(struct ctx *c, struct url *u)
{
	struct cli_opts *o = c->o;
	const char *env = getenv("TERN_PASSWORD");

	if (c->password) {
		o->password = c->password;
		c->password = NULL;
	} else if (c->pw_file) {
		if (read_pw_file(c, &o->password))
			return -1;
	} else if (c->pw_env) {
		if (!getenv(c->pw_env))
			return fail(c, "--password-env: %s is not set",
			            c->pw_env);
		if (!(o->password = strdup(getenv(c->pw_env))))
			return fail(c, "out of memory");
	} else if (u->pass) {
		o->password = u->pass;
		u->pass = NULL;
	} else if (env && o->username) {
		if (!(o->password = strdup(env)))
			return fail(c, "out of memory");
	}
	if (o->password && !o->username && o->version < 5)
		return fail(c, "a password needs a username (-u) before "
		               "MQTT 5");
	return 0;
}

static bool tls_options(const struct cli_opts *o)
{
	return o->cafile || o->capath || o->cert || o->key || o->insecure ||
	       o->tls_version;
}

/* Scheme, host, port and path from -L, overridden by -h and -p. */
static bool is_ws(enum cli_scheme s)
{
	return s == SCHEME_WS || s == SCHEME_WSS;
}

static int resolve_endpoint(struct ctx *c, struct url *u)
{
	struct cli_opts *o = c->o;
	const char *path = u->path ? u->path : "";

	if (c->url) {
		if (tls_options(o) &&
		    (u->scheme == SCHEME_MQTT || u->scheme == SCHEME_WS))
			return fail(c,
			            "TLS options given for a %s:// URL; use "
			            "%s://",
			            cli_opts_scheme_name(u->scheme),
			            u->scheme == SCHEME_WS ? "wss" : "mqtts");
		o->scheme = u->scheme;
	} else if (tls_options(o)) {
		o->scheme = SCHEME_MQTTS;
	}
	o->host = strdup(c->host ? c->host : u->host ? u->host : "localhost");
	if (!o->host)
		return fail(c, "out of memory");
	o->port = c->port ? c->port
	                  : (c->url ? u->port : default_port(o->scheme));
	if (is_ws(o->scheme)) {
		if (!(o->path = strdup(*path ? path : "/mqtt")))
			return fail(c, "out of memory");
	} else if (path[0] == '/' && path[1] && !o->n_topics) {
		/* Mosquitto's -L mqtt://host/topic names the topic. */
		if (!(o->url_topic = strdup(path + 1)))
			return fail(c, "out of memory");
		o->topics[o->n_topics++] = o->url_topic;
	}
	return 0;
}

static int resolve_client_id(struct ctx *c)
{
	struct cli_opts *o = c->o;
	struct timespec ts;
	char buf[128];

	if (c->id && c->id_prefix)
		return fail(c, "give -i or -I, not both");
	if (!o->clean && !c->id)
		return fail(c, "a persistent session (-c) needs a client id "
		               "(-i)");
	if (c->id) {
		o->client_id = strdup(c->id);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		if (c->id_prefix)
			snprintf(buf, sizeof(buf), "%s%ld", c->id_prefix,
			         (long)getpid());
		else
			snprintf(buf, sizeof(buf), "tern-%s-%ld-%06lx",
			         cmd_name(o->cmd), (long)getpid(),
			         (unsigned long)(ts.tv_nsec & 0xFFFFFF));
		o->client_id = strdup(buf);
	}
	return o->client_id ? 0 : fail(c, "out of memory");
}

/* Flag combinations that make no sense, checked once all are known. */
static int check_combinations(struct ctx *c)
{
	struct cli_opts *o = c->o;

	if (!o->n_topics)
		return fail(c, "no topic: give -t TOPIC");
	if (o->cmd != CLI_SUB && o->msg_src == MSG_NONE)
		return fail(c, "nothing to publish: give -m, -f, -l, -s or -n");
	if (o->cmd == CLI_RR && !o->response_topic)
		return fail(c, "no response topic: give -e TOPIC");
	if (o->cmd == CLI_RR && o->version != 5)
		return fail(c, "request/response needs MQTT 5 (-V 5)");
	if (c->v5_only && o->version != 5)
		return fail(c, "-D, -x, --nl, --rap and --rh need MQTT 5 "
		               "(-V 5)");
	if ((o->will_payload || o->will_qos || o->will_retain) &&
	    !o->will_topic)
		return fail(c, "--will-payload, --will-qos and --will-retain "
		               "need --will-topic");
	if (o->no_retained && o->retained_only)
		return fail(c, "-R and --retained-only contradict each other");
	if (o->msg_src == MSG_LINES && o->repeat > 1)
		return fail(c, "--repeat does not combine with -l");
	if ((o->cert != NULL) != (o->key != NULL))
		return fail(c, "--cert and --key go together");
	if (o->format && o->json)
		return fail(c, "give -F or --json, not both");
	if (o->format) {
		char err[128];

		if (fmt_check(o->format, err, sizeof(err)))
			return fail(c, "-F: %s", err);
	}
	return 0;
}

static int finish(struct ctx *c)
{
	struct cli_opts *o = c->o;
	struct url u = {0};
	int rc = -1;

	if (optind < c->argc) {
		fail(c, "unexpected argument '%s'", c->argv[optind]);
		goto out;
	}
	if (c->url && parse_url(c, c->url, &u))
		goto out;
	if (resolve_endpoint(c, &u))
		goto out;
	o->username = dup_or_null(c->username ? c->username : u.user);
	if ((c->username || u.user) && !o->username) {
		fail(c, "out of memory");
		goto out;
	}
	if (!c->version_set && o->cmd == CLI_RR)
		o->version = 5;
	if (!c->count_set && o->cmd == CLI_RR)
		o->count = 1;
	/* -c alone would keep nothing under MQTT 5, whose sessions end at
	 * disconnect unless an expiry is given. */
	if (!o->clean && o->version == 5 && !o->has_session_expiry) {
		o->has_session_expiry = true;
		o->session_expiry = 0xFFFFFFFFu;
	}
	if (resolve_password(c, &u) || resolve_client_id(c) ||
	    check_combinations(c))
		goto out;
	rc = 0;
out:
	url_free(&u);
	return rc;
}

static void defaults(struct cli_opts *o, enum cli_cmd cmd)
{
	static const char *progs[] = {[CLI_PUB] = "tern pub",
	                              [CLI_SUB] = "tern sub",
	                              [CLI_RR] = "tern rr"};

	memset(o, 0, sizeof(*o));
	o->cmd = cmd;
	o->prog = progs[cmd];
	o->keepalive = 60;
	o->version = 4;
	o->clean = true;
	o->repeat = 1;
}

int cli_opts_parse(struct cli_opts *o, enum cli_cmd cmd, int argc, char **argv)
{
	struct option lo[NFLAGS + 2];
	char shorts[2 * NFLAGS + 2];
	struct ctx c = {.o = o, .argc = argc, .argv = argv};
	int ch, rc = 0;

	defaults(o, cmd);
	build_getopt(cmd, shorts, lo);
	optind = 1;
	opterr = 0;
	while (!rc && (ch = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		const struct flag *fl = flag_for(cmd, ch);

		if (ch == HELP_VAL) {
			cli_opts_usage(cmd, stdout);
			rc = 1;
		} else if (!fl) {
			rc = fail(&c,
			          "unknown or incomplete option '%s' "
			          "(see --help)",
			          argv[optind - 1]);
		} else {
			rc = apply(&c, fl, optarg);
		}
	}
	if (!rc)
		rc = finish(&c);
	if (c.password) {
		explicit_bzero(c.password, strlen(c.password));
		free(c.password);
	}
	return rc;
}

void cli_opts_free(struct cli_opts *o)
{
	if (o->password)
		explicit_bzero(o->password, strlen(o->password));
	free(o->password);
	free(o->host);
	free(o->path);
	free(o->client_id);
	free(o->username);
	free(o->url_topic);
	o->url_topic = NULL;
	o->password = o->host = o->path = o->client_id = o->username = NULL;
}
