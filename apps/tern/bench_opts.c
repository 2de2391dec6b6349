/*
 * `tern bench` options: the subcommand, emqtt-bench's flags (-c clients,
 * -i connect interval, -I publish interval, -s size, -q, -t with %i and
 * %c, -L URL, -d duration, -n count) and mqtt_load's older ones (-P, -S,
 * -r, -w), URLs of the four transports, and topic templates.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const char *const mode_names[] = {
        [MODE_PUBSUB] = "pubsub",
        [MODE_PUB] = "pub",
        [MODE_SUB] = "sub",
        [MODE_CONN] = "conn",
};

const char *bench_mode_name(enum mode m)
{
	return mode_names[m];
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tern bench pub|sub|pubsub|conn [options]\n"
	        "\n"
	        "  pub     publishers only (-c of them)\n"
	        "  sub     subscribers only (-c of them); with `tern bench "
	        "pub` in another\n"
	        "          process they measure latency, loss, duplicates "
	        "and reordering\n"
	        "  pubsub  publishers (-P) and subscribers (-S) in one "
	        "process\n"
	        "  conn    open -c connections (CONNECT only) and hold "
	        "them\n"
	        "\n"
	        "  -L URL      mqtt://HOST:PORT, mqtts://HOST:PORT, "
	        "ws://HOST:PORT/PATH or\n"
	        "              wss://HOST:PORT/PATH (loopback hosts only)\n"
	        "  -h HOST     127.0.0.1, ::1 or localhost (default "
	        "127.0.0.1); -p PORT (1883)\n"
	        "  -c N        clients (pubsub: N publishers and N "
	        "subscribers)\n"
	        "  -P N, -S N  pubsub: publishers, subscribers (default 1 "
	        "each)\n"
	        "  -i MS       milliseconds between two connects (default: "
	        "no pause)\n"
	        "  -I MS       milliseconds between two messages of a "
	        "publisher; 0 = as\n"
	        "              fast as possible (default). Messages carry "
	        "the time they\n"
	        "              were due, so a late send counts as latency\n"
	        "  -r RATE     the same as messages/s per publisher (conn: "
	        "connects/s)\n"
	        "  -t TOPIC    topic (sub: filter); %%i is the client index, "
	        "%%c the client id\n"
	        "              (default bench/%%i; sub: bench/#)\n"
	        "  -f FILTER   pubsub: the subscribers' filter (default: the "
	        "topic)\n"
	        "  -q QOS      0, 1 or 2 (default 0)\n"
	        "  -s BYTES    payload size, at least %d (default 64)\n"
	        "  -d SECONDS  publishing time (default 5 unless -n; sub: "
	        "until -n or a\n"
	        "              signal; conn: time to hold the connections)\n"
	        "  -n COUNT    messages to publish in all (sub: to "
	        "receive)\n"
	        "  -w N        QoS>0 messages in flight per publisher "
	        "(default 32)\n"
	        "  -V VERSION  5, 311 or 31 (default 311)\n"
	        "  --prefix P  client id prefix (default "
	        "tern-bench-PID-)\n"
	        "  --id-base N publisher ids in payloads start at N "
	        "(several pub processes)\n"
	        "  --drain S   seconds to wait for the tail (default 5)\n"
	        "  --pid PID   broker process whose CPU time (conn: and "
	        "memory) to report\n"
	        "  --par N     connection set-ups in flight at most "
	        "(default 100)\n"
	        "  --idle S    conn: seconds to hold the connections "
	        "(default 0)\n"
	        "  --src-addrs N  conn: source addresses 127.0.0.1..N "
	        "(default: one per\n"
	        "              %d connections)\n"
	        "  --cafile F  TLS: CA certificates (PEM) to verify the "
	        "broker with\n"
	        "  --insecure  TLS: skip the host name check (the chain is "
	        "still verified)\n"
	        "  --resume    TLS: resume sessions; the first connection "
	        "goes alone and\n"
	        "              the others resume its session\n"
	        "  --persistent S  clean start 0 (clean session 0), and "
	        "with -V 5 a\n"
	        "              Session Expiry Interval of S seconds\n"
	        "  --ws        MQTT over WebSocket (path /mqtt unless -L "
	        "says)\n"
	        "  --per-publisher  JSON: figures per publisher id\n"
	        "  --quiet     no per-second lines on stderr\n"
	        "\n"
	        "Rates go to stderr every second; the report and a final "
	        "JSON line to stdout.\n",
	        PAYLOAD_MIN, PORTS_PER_SRC);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return (errno || end == s || *end || *out < 0 || *out != *out) ? -1 : 0;
}

int bench_opts_resolve(struct load *L)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&L->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&L->addr;
	const char *h = L->o.host;

	memset(&L->addr, 0, sizeof(L->addr));
	if (strcmp(h, "localhost") == 0)
		h = "127.0.0.1";
	if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
		if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
			return -1;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(L->o.port);
		L->addrlen = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
			return -1;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(L->o.port);
		L->addrlen = sizeof(*a6);
		return 0;
	}
	return -1;
}

/*
 * -L mqtt://HOST[:PORT], ws://HOST[:PORT][/PATH], mqtts://HOST[:PORT] or
 * wss://HOST[:PORT][/PATH]; HOST may be [::1].
 */
static int parse_url(struct options *o, const char *url)
{
	static const struct {
		const char *scheme;
		bool ws, tls;
		uint16_t port;
	} schemes[] = {
	        {"mqtt://", false, false, 1883},
	        {"tcp://", false, false, 1883},
	        {"ws://", true, false, 80},
	        {"mqtts://", false, true, 8883},
	        {"ssl://", false, true, 8883},
	        {"wss://", true, true, 443},
	};
	const char *h = NULL, *end, *p;
	unsigned long port;
	size_t hl, i;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t n = strlen(schemes[i].scheme);

		if (strncmp(url, schemes[i].scheme, n) == 0) {
			o->ws = schemes[i].ws;
			o->tls = schemes[i].tls;
			o->port = schemes[i].port;
			h = url + n;
			break;
		}
	}
	if (!h)
		return -1;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			return -1;
		hl = (size_t)(end - h - 1);
		h++;
		p = end + 1;
	} else {
		hl = strcspn(h, ":/");
		p = h + hl;
	}
	if (hl == 0 || hl >= sizeof(o->url_host))
		return -1;
	memcpy(o->url_host, h, hl);
	o->url_host[hl] = '\0';
	o->host = o->url_host;
	if (*p == ':') {
		char num[8];
		size_t n = strcspn(p + 1, "/");

		if (n == 0 || n >= sizeof(num))
			return -1;
		memcpy(num, p + 1, n);
		num[n] = '\0';
		if (parse_uint(num, 65535, &port) || port == 0)
			return -1;
		o->port = (uint16_t)port;
		p += 1 + n;
	}
	if (*p && *p != '/')
		return -1;
	if (!o->ws)
		return *p && strcmp(p, "/") != 0 ? -1 : 0;
	if (strlen(p) >= sizeof(o->url_path) || strpbrk(p, " \r\n"))
		return -1;
	snprintf(o->url_path, sizeof(o->url_path), "%s", *p ? p : "/");
	o->path = o->url_path;
	return 0;
}

int bench_opts_expand(const char *pattern, unsigned index, const char *id,
                      char *out, size_t cap)
{
	size_t n = 0;
	const char *p;

	for (p = pattern; *p; p++) {
		int w;

		if (p[0] == '%' && p[1] == 'i') {
			w = snprintf(out + n, cap - n, "%u", index);
			p++;
		} else if (p[0] == '%' && p[1] == 'c') {
			w = snprintf(out + n, cap - n, "%s", id);
			p++;
		} else {
			w = snprintf(out + n, cap - n, "%c", *p);
		}
		if (w < 0 || (size_t)w >= cap - n)
			return -1;
		n += (size_t)w;
	}
	return (int)n;
}

/* Long options without a short letter. */
enum {
	OPT_DRAIN = 256,
	OPT_PID,
	OPT_WS,
	OPT_IDLE,
	OPT_PAR,
	OPT_CAFILE,
	OPT_INSECURE,
	OPT_PREFIX,
	OPT_ID_BASE,
	OPT_SRC_ADDRS,
	OPT_QUIET,
	OPT_PER_PUB,
	OPT_RESUME,
	OPT_PERSISTENT,
	OPT_HELP,
};

/* Flags that only some modes take: which (bits of 1 << mode). */
#define M_PUB    (1u << MODE_PUB)
#define M_SUB    (1u << MODE_SUB)
#define M_PUBSUB (1u << MODE_PUBSUB)
#define M_CONN   (1u << MODE_CONN)

static unsigned modes_of(int ch)
{
	switch (ch) {
	case 'P':
	case 'S':
	case 'f': return M_PUBSUB;
	case 's':
	case 'I':
	case 'w':
	case OPT_ID_BASE:
	case OPT_DRAIN: return M_PUB | M_PUBSUB;
	case 'r': return M_PUB | M_PUBSUB | M_CONN;
	case 't':
	case 'q':
	case 'n':
	case OPT_PERSISTENT:
	case OPT_PER_PUB: return M_PUB | M_SUB | M_PUBSUB;
	case OPT_IDLE:
	case OPT_SRC_ADDRS: return M_CONN;
	}
	return M_PUB | M_SUB | M_PUBSUB | M_CONN;
}

static int parse_opt(struct options *o, int ch, const char *arg)
{
	unsigned long v;
	double d;

	switch (ch) {
	case 'c':
		if (parse_uint(arg, MAX_IDLE, &v) || v == 0)
			return -1;
		o->conns = (unsigned)v;
		return 0;
	case 'P':
	case 'S':
		if (parse_uint(arg, MAX_CONNS, &v))
			return -1;
		*(ch == 'P' ? &o->pubs : &o->subs) = (unsigned)v;
		return 0;
	case 'q':
		if (parse_uint(arg, 2, &v))
			return -1;
		o->qos = (unsigned)v;
		return 0;
	case 's':
		if (parse_uint(arg, 256 * 1024 * 1024, &v) || v < PAYLOAD_MIN)
			return -1;
		o->payload = (unsigned)v;
		return 0;
	case 'w':
		if (parse_uint(arg, 65000, &v) || v == 0)
			return -1;
		o->window = (unsigned)v;
		return 0;
	case 'V':
		if (!strcmp(arg, "5") || !strcmp(arg, "mqttv5"))
			o->version = MQTT_V5;
		else if (!strcmp(arg, "311") || !strcmp(arg, "4") ||
		         !strcmp(arg, "mqttv311"))
			o->version = MQTT_V311;
		else if (!strcmp(arg, "31") || !strcmp(arg, "3") ||
		         !strcmp(arg, "mqttv31"))
			o->version = MQTT_V31;
		else
			return -1;
		return 0;
	case 'p':
		if (parse_uint(arg, 65535, &v) || v == 0)
			return -1;
		o->port = (uint16_t)v;
		return 0;
	case 'n':
		if (parse_uint(arg, ~0ul, &v) || v == 0)
			return -1;
		o->limit = v;
		return 0;
	case 'I':
		if (parse_double(arg, &d) || d > 3600e3)
			return -1;
		o->rate = d > 0 ? 1e3 / d : 0;
		return 0;
	case 'i':
		return parse_double(arg, &o->interval) || o->interval > 60e3
		               ? -1
		               : 0;
	case OPT_PID:
		if (parse_uint(arg, 1u << 30, &v) || v == 0)
			return -1;
		o->pid = (int)v;
		return 0;
	case OPT_PAR:
		if (parse_uint(arg, MAX_IDLE, &v) || v == 0)
			return -1;
		o->par = (unsigned)v;
		return 0;
	case OPT_ID_BASE:
		if (parse_uint(arg, MAX_PUB_ID - MAX_CONNS, &v))
			return -1;
		o->id_base = (uint32_t)v;
		return 0;
	case OPT_SRC_ADDRS:
		if (parse_uint(arg, MAX_SRC_ADDRS, &v) || v == 0)
			return -1;
		o->src_addrs = (unsigned)v;
		return 0;
	case OPT_PREFIX:
		if (strlen(arg) >= sizeof(o->prefix))
			return -1;
		snprintf(o->prefix, sizeof(o->prefix), "%s", arg);
		return 0;
	case OPT_IDLE:
		return parse_double(arg, &o->idle) || o->idle > MAX_IDLE_S ? -1
		                                                           : 0;
	case 'L': return parse_url(o, arg);
	case 'd': return parse_double(arg, &o->duration);
	case 'r': return parse_double(arg, &o->rate);
	case 't': o->topic = arg; return 0;
	case 'f': o->filter = arg; return 0;
	case 'h': o->host = arg; return 0;
	case OPT_DRAIN: return parse_double(arg, &o->drain);
	case OPT_WS: o->ws = true; return 0;
	case OPT_CAFILE: o->cafile = arg; return 0;
	case OPT_INSECURE: o->insecure = true; return 0;
	case OPT_QUIET: o->quiet = true; return 0;
	case OPT_PER_PUB: o->per_pub = true; return 0;
	case OPT_RESUME: o->resume = true; return 0;
	case OPT_PERSISTENT:
		if (parse_uint(arg, UINT32_MAX, &v))
			return -1;
		o->persistent = true;
		o->session_expiry = (uint32_t)v;
		return 0;
	}
	return -1;
}

/* The name of the long option whose value is ch. */
static const char *long_name(const struct option *opts, int ch)
{
	for (; opts->name; opts++)
		if (opts->val == ch)
			return opts->name;
	return "?";
}

static int parse_mode(const char *s, enum mode *m)
{
	for (unsigned i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]);
	     i++) {
		if (!strcmp(s, mode_names[i])) {
			*m = (enum mode)i;
			return 0;
		}
	}
	return -1;
}

/* Fills in what the mode implies once every flag is read. */
static int finish(struct options *o, bool pubsub_counts)
{
	switch (o->mode) {
	case MODE_PUB:
		o->pubs = o->conns ? o->conns : 1;
		o->subs = 0;
		break;
	case MODE_SUB:
		o->subs = o->conns ? o->conns : 1;
		o->pubs = 0;
		if (!o->filter)
			o->filter = o->topic ? o->topic : "bench/#";
		break;
	case MODE_PUBSUB:
		if (o->conns && !pubsub_counts)
			o->pubs = o->subs = o->conns;
		break;
	case MODE_CONN:
		if (!o->conns)
			o->conns = 1;
		if (o->duration > 0 && o->idle == 0)
			o->idle = o->duration;
		if (o->interval > 0 && o->rate == 0)
			o->rate = 1e3 / o->interval;
		return o->idle > MAX_IDLE_S ? -1 : 0;
	}
	if (!o->topic)
		o->topic = "bench/%i";
	if (!o->filter)
		o->filter = o->topic;
	if (o->duration == 0 && o->limit == 0 && o->mode != MODE_SUB)
		o->duration = 5;
	if (o->pubs + o->subs == 0 || o->pubs + o->subs > MAX_CONNS ||
	    (uint64_t)o->pubs * o->subs > MAX_PAIRS || o->duration > 86400 ||
	    o->drain > 3600)
		return -1;
	if (o->mode == MODE_PUBSUB && o->limit && o->limit < o->pubs)
		return -1;
	return 0;
}

int bench_opts_parse(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	        {"drain", required_argument, NULL, OPT_DRAIN},
	        {"pid", required_argument, NULL, OPT_PID},
	        {"ws", no_argument, NULL, OPT_WS},
	        {"idle", required_argument, NULL, OPT_IDLE},
	        {"par", required_argument, NULL, OPT_PAR},
	        {"cafile", required_argument, NULL, OPT_CAFILE},
	        {"insecure", no_argument, NULL, OPT_INSECURE},
	        {"prefix", required_argument, NULL, OPT_PREFIX},
	        {"id-base", required_argument, NULL, OPT_ID_BASE},
	        {"src-addrs", required_argument, NULL, OPT_SRC_ADDRS},
	        {"quiet", no_argument, NULL, OPT_QUIET},
	        {"per-publisher", no_argument, NULL, OPT_PER_PUB},
	        {"resume", no_argument, NULL, OPT_RESUME},
	        {"persistent", required_argument, NULL, OPT_PERSISTENT},
	        {"help", no_argument, NULL, OPT_HELP},
	        {NULL, 0, NULL, 0},
	};
	bool pubsub_counts = false;
	int ch;

	*o = (struct options){
	        .pubs = 1,
	        .subs = 1,
	        .payload = 64,
	        .window = 32,
	        .version = MQTT_V311,
	        .drain = 5,
	        .host = "127.0.0.1",
	        .port = 1883,
	        .path = "/mqtt",
	        .par = 100,
	};
	snprintf(o->prefix, sizeof(o->prefix), "tern-bench-%d-", (int)getpid());
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? -1 : 1;
	}
	if (parse_mode(argv[1], &o->mode)) {
		fprintf(stderr, "tern bench: unknown mode '%s'\n", argv[1]);
		usage(stderr);
		return -1;
	}
	optind = 2;
	while ((ch = getopt_long(argc, argv,
	                         "c:P:S:t:f:q:s:d:r:w:V:h:p:L:i:I:n:", longopts,
	                         NULL)) != -1) {
		if (ch == OPT_HELP) {
			usage(stdout);
			return 1;
		}
		if (ch == '?')
			goto bad;
		if (!(modes_of(ch) & (1u << o->mode))) {
			if (ch < 256)
				fprintf(stderr,
				        "tern bench %s: -%c does not apply\n",
				        mode_names[o->mode], ch);
			else
				fprintf(stderr,
				        "tern bench %s: --%s does not apply\n",
				        mode_names[o->mode],
				        long_name(longopts, ch));
			goto bad;
		}
		if (ch == 'P' || ch == 'S')
			pubsub_counts = true;
		if (parse_opt(o, ch, optarg) != 0) {
			fprintf(stderr, "tern bench: bad value '%s'\n", optarg);
			goto bad;
		}
	}
	if (optind != argc || finish(o, pubsub_counts) != 0) {
		fprintf(stderr, "tern bench: bad arguments\n");
		goto bad;
	}
	if ((o->cafile || o->insecure || o->resume) && !o->tls) {
		fprintf(stderr, "tern bench: --cafile, --insecure and --resume "
		                "need mqtts:// or wss://\n");
		return -1;
	}
	return 0;
bad:
	usage(stderr);
	return -1;
}
