/*
 * mqtt_load: the load generator behind `make bench` (bench/run.sh).
 *
 * One process, one thread and one epoll loop drive every connection through
 * non-blocking sockets to a broker on the loopback interface. Publishers send
 * PUBLISH packets whose payload starts with the send time (CLOCK_MONOTONIC,
 * ns), the publisher's index and a sequence number; subscribers read them
 * back and compute end-to-end latency, and per publisher the loss,
 * duplicates and reordering. Every resource is bounded: each connection has
 * a fixed-size output buffer, latency goes into a fixed log-linear
 * histogram, and the run ends after the duration plus a drain timeout
 * whatever the broker does.
 *
 * Packets are encoded and decoded with tern's own codec (src/mqtt/packet.h),
 * which also validates everything the broker sends.
 *
 * Publishing starts once every connection is up and subscribed, and lasts
 * -d seconds. The throughput reported is the number of messages delivered
 * while publishers were publishing, per second; the drain that follows only
 * completes the accounting of loss, duplicates and latency. With --pid the
 * broker's CPU time (utime + stime from /proc/PID/stat) is read when
 * publishing starts and when the run ends, and reported per delivered
 * message.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "mqtt/packet.h"

#define NS_PER_S    1000000000ull
#define PAYLOAD_MIN 16      /* send time, publisher index, sequence */
#define OUT_CAP     65536   /* bytes of output buffered per connection */
#define IN_MIN      65536   /* minimum input buffer per connection */
#define ACK_ROOM    16      /* output space kept free for one ack */
#define MAX_CONNS   10000   /* publishers + subscribers */
#define MAX_PAIRS   4000000 /* publisher x subscriber tracking entries */
#define MAX_TOPIC   256
#define SETUP_NS    (10 * NS_PER_S)
#define IDLE_NS     (NS_PER_S) /* drain ends after this long with no input */
#define MAX_EVENTS  256
#define TIMER_TAG   UINT32_MAX
#define ID_WORDS    (65536 / 64)

/* Latency histogram: 32 linear sub-buckets per power of two (3% error). */
#define H_SUB_BITS 5
#define H_SUB      (1u << H_SUB_BITS)
#define H_BUCKETS  ((64 - H_SUB_BITS + 1) * H_SUB)

struct options {
	unsigned pubs;
	unsigned subs;
	unsigned qos;
	unsigned payload;
	unsigned window;
	unsigned version;
	double duration;
	double drain;
	double rate;
	const char *topic;
	const char *filter;
	const char *host;
	uint16_t port;
	int pid;
};

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[H_BUCKETS];
};

/* Bytes [head, tail) of p are pending. */
struct buf {
	uint8_t *p;
	size_t cap;
	size_t head;
	size_t tail;
};

/*
 * What one subscriber has seen from one publisher: `next` is one beyond the
 * highest sequence number seen, bit k of `seen` says whether sequence
 * next-1-k arrived. Older sequences cannot be told apart from duplicates and
 * are counted as late.
 */
struct track {
	uint32_t next;
	uint64_t seen;
};

enum role { ROLE_PUB, ROLE_SUB };

enum state { ST_CONNECTING, ST_CONNACK, ST_SUBACK, ST_READY, ST_DEAD };

enum phase { PH_SETUP, PH_RUN, PH_DRAIN, PH_DONE };

/* How the drain ended: all delivered, nothing more arriving, or timeout. */
enum tail { TAIL_COMPLETE, TAIL_IDLE, TAIL_TIMEOUT };

static const char *const tail_names[] = {"complete", "idle", "timeout"};

struct conn {
	int fd;
	enum role role;
	enum state state;
	uint32_t idx;
	uint32_t events; /* interest currently registered with epoll */
	bool blocked;    /* input parsing paused until output drains */
	struct buf in;
	struct buf out;
	char topic[MAX_TOPIC]; /* publisher: topic name; subscriber: filter */
	uint16_t topic_len;
	/* Publisher. */
	uint32_t seq;    /* next sequence number */
	uint64_t due;    /* with a rate: when message `seq` is due */
	uint32_t window; /* QoS>0 messages allowed in flight */
	uint32_t inflight;
	uint16_t next_id;
	uint64_t *wait_ack;  /* packet ids awaiting PUBACK or PUBREC */
	uint64_t *wait_comp; /* packet ids awaiting PUBCOMP */
	size_t pkt_size;     /* upper bound of one encoded PUBLISH */
	uint64_t published;
	uint64_t completed;
	uint32_t fan; /* subscribers whose filter matches the topic */
	/* Subscriber. */
	struct track *track; /* one per publisher */
};

struct stats {
	uint64_t delivered; /* first arrivals of a (publisher, sequence) */
	uint64_t in_window; /* of those, arrived while publishing */
	uint64_t duplicates;
	uint64_t reordered;
	uint64_t late;
	uint64_t foreign; /* payloads this run did not send */
	uint64_t errors;
};

struct load {
	struct options o;
	int ep;
	int tfd;
	struct conn *c; /* publishers first, then subscribers */
	unsigned nconn;
	enum phase phase;
	enum tail tail;
	uint64_t t_setup_end;
	uint64_t t_start;
	uint64_t t_end;
	uint64_t t_drain_end;
	uint64_t t_stop;
	uint64_t t_last_rx;
	uint64_t t_last_delivery;
	uint64_t timer_at; /* absolute time the timerfd is armed for, or 0 */
	uint64_t period;   /* ns between messages of one publisher */
	uint8_t *payload;
	struct hist lat;
	struct stats st;
	long long broker_ticks0;
	long long broker_ticks1;
	struct rusage ru0;
	struct rusage ru1;
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < H_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	return (e - H_SUB_BITS + 1) * H_SUB +
	       (unsigned)((v >> (e - H_SUB_BITS)) & (H_SUB - 1));
}

/* The middle of bucket i, the value reported for it. */
static uint64_t hist_value(unsigned i)
{
	unsigned e, sub;

	if (i < H_SUB)
		return i;
	e = i / H_SUB + H_SUB_BITS - 1;
	sub = i % H_SUB;
	return ((uint64_t)(H_SUB + sub) << (e - H_SUB_BITS)) +
	       ((1ull << (e - H_SUB_BITS)) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* The value below which a fraction q of the samples lie (0 when empty). */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want = (uint64_t)(q * (double)h->count + 0.999999);
	uint64_t sum = 0;
	unsigned i;

	if (want == 0)
		want = 1;
	for (i = 0; i < H_BUCKETS; i++) {
		sum += h->b[i];
		if (sum >= want) {
			uint64_t v = hist_value(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/*
 * MQTT topic matching (MQTT 4.7), used only to count the deliveries to
 * expect: '+' matches one level, '#' the rest, and wildcards at the first
 * level do not match topics that begin with '$'.
 */
static bool topic_match(const char *f, const char *t)
{
	if ((*f == '+' || *f == '#') && *t == '$')
		return false;
	for (;;) {
		if (f[0] == '#')
			return true;
		if (f[0] == '+') {
			while (*t && *t != '/')
				t++;
			f++;
		} else {
			while (*f && *f != '/' && *f == *t) {
				f++;
				t++;
			}
			if ((*f && *f != '/') || (*t && *t != '/'))
				return false;
		}
		if (!*f && !*t)
			return true;
		/* "a/#" also matches "a". */
		if (!*t && f[0] == '/' && f[1] == '#' && !f[2])
			return true;
		if (!*f || !*t)
			return false;
		f++;
		t++;
	}
}

/* Writes pattern with every "%i" replaced by index; -1 if it does not fit. */
static int expand(const char *pattern, unsigned index, char *out, size_t cap)
{
	size_t n = 0;
	const char *p;

	for (p = pattern; *p; p++) {
		int w;

		if (p[0] == '%' && p[1] == 'i') {
			w = snprintf(out + n, cap - n, "%u", index);
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

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: mqtt_load [options]\n"
	        "  -P N        publishers (default 1)\n"
	        "  -S N        subscribers (default 1)\n"
	        "  -t PATTERN  publisher topic; %%i is the publisher index "
	        "(default bench/%%i)\n"
	        "  -f PATTERN  subscriber filter; %%i is the subscriber index\n"
	        "              (default: the topic pattern)\n"
	        "  -q QOS      0, 1 or 2 for publishes and subscriptions "
	        "(default 0)\n"
	        "  -s BYTES    payload size, at least %d (default 64)\n"
	        "  -d SECONDS  publishing time (default 5)\n"
	        "  -r RATE     messages/s per publisher; 0 = as fast as "
	        "possible (default 0)\n"
	        "  -w N        QoS>0 messages in flight per publisher "
	        "(default 32)\n"
	        "  -V 4|5      MQTT 3.1.1 or 5 (default 4)\n"
	        "  -h HOST     127.0.0.1, ::1 or localhost (default "
	        "127.0.0.1)\n"
	        "  -p PORT     broker port (default 1883)\n"
	        "  --drain S   seconds to wait for the tail (default 5)\n"
	        "  --pid PID   broker process whose CPU time to report\n"
	        "  --help      this help\n",
	        PAYLOAD_MIN);
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
	return (errno || end == s || *end || *out < 0) ? -1 : 0;
}

/* Resolves host to a loopback address; anything else is refused. */
static int parse_host(struct load *L)
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

static int parse_opt(struct options *o, int ch, const char *arg)
{
	unsigned long v;

	switch (ch) {
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
		if (parse_uint(arg, 16 * 1024 * 1024, &v) || v < PAYLOAD_MIN)
			return -1;
		o->payload = (unsigned)v;
		return 0;
	case 'w':
		if (parse_uint(arg, 65000, &v) || v == 0)
			return -1;
		o->window = (unsigned)v;
		return 0;
	case 'V':
		if (parse_uint(arg, 5, &v) || v < 4)
			return -1;
		o->version = (unsigned)v;
		return 0;
	case 'p':
		if (parse_uint(arg, 65535, &v) || v == 0)
			return -1;
		o->port = (uint16_t)v;
		return 0;
	case 'X':
		if (parse_uint(arg, 1u << 30, &v) || v == 0)
			return -1;
		o->pid = (int)v;
		return 0;
	case 'd': return parse_double(arg, &o->duration);
	case 'D': return parse_double(arg, &o->drain);
	case 'r': return parse_double(arg, &o->rate);
	case 't': o->topic = arg; return 0;
	case 'f': o->filter = arg; return 0;
	case 'h': o->host = arg; return 0;
	}
	return -1;
}

/* Returns 0 to run, 1 after --help, -1 on a usage error. */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	        {"drain", required_argument, NULL, 'D'},
	        {"pid", required_argument, NULL, 'X'},
	        {"help", no_argument, NULL, 'H'},
	        {NULL, 0, NULL, 0},
	};
	int ch;

	*o = (struct options){
	        .pubs = 1,
	        .subs = 1,
	        .payload = 64,
	        .window = 32,
	        .version = MQTT_V311,
	        .duration = 5,
	        .drain = 5,
	        .topic = "bench/%i",
	        .host = "127.0.0.1",
	        .port = 1883,
	};
	while ((ch = getopt_long(argc, argv, "P:S:t:f:q:s:d:r:w:V:h:p:",
	                         longopts, NULL)) != -1) {
		if (ch == 'H') {
			usage(stdout);
			return 1;
		}
		if (ch == '?' || parse_opt(o, ch, optarg) != 0) {
			if (ch != '?')
				fprintf(stderr, "mqtt_load: bad value '%s'\n",
				        optarg);
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc || o->pubs + o->subs == 0 || o->duration <= 0 ||
	    o->duration > 3600 || o->drain > 3600 ||
	    (uint64_t)o->pubs * o->subs > MAX_PAIRS ||
	    o->pubs + o->subs > MAX_CONNS) {
		fprintf(stderr, "mqtt_load: bad arguments\n");
		usage(stderr);
		return -1;
	}
	if (!o->filter)
		o->filter = o->topic;
	return 0;
}

static size_t buf_len(const struct buf *b)
{
	return b->tail - b->head;
}

/* Contiguous free space at the tail after moving pending bytes forward. */
static size_t buf_room(struct buf *b)
{
	if (b->head == b->tail) {
		b->head = 0;
		b->tail = 0;
	} else if (b->head > 0 && b->cap - b->tail < b->cap / 2) {
		memmove(b->p, b->p + b->head, b->tail - b->head);
		b->tail -= b->head;
		b->head = 0;
	}
	return b->cap - b->tail;
}

static void conn_fail(struct load *L, struct conn *c, const char *why)
{
	if (c->state == ST_DEAD)
		return;
	fprintf(stderr, "mqtt_load: %s %u: %s\n",
	        c->role == ROLE_PUB ? "publisher" : "subscriber", c->idx, why);
	L->st.errors++;
	epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->state = ST_DEAD;
	c->inflight = 0;
}

/* Encodes p into c's output buffer; fails the connection if it cannot. */
static int conn_send(struct load *L, struct conn *c,
                     const struct mqtt_packet *p)
{
	int n = mqtt_encode(p, (uint8_t)L->o.version, c->out.p + c->out.tail,
	                    buf_room(&c->out));

	if (n < 0) {
		conn_fail(L, c, tern_strerror(n));
		return -1;
	}
	c->out.tail += (size_t)n;
	return 0;
}

static int send_ack(struct load *L, struct conn *c, uint8_t type, uint16_t id)
{
	struct mqtt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.u.ack.packet_id = id;
	return conn_send(L, c, &p);
}

static bool id_get(const uint64_t *m, uint16_t id)
{
	return m[id >> 6] >> (id & 63) & 1;
}

static void id_put(uint64_t *m, uint16_t id, bool on)
{
	if (on)
		m[id >> 6] |= 1ull << (id & 63);
	else
		m[id >> 6] &= ~(1ull << (id & 63));
}

/* A packet id used by no message in flight; one exists as window < 65535. */
static uint16_t id_alloc(struct conn *c)
{
	for (;;) {
		uint16_t id = c->next_id;

		c->next_id = (uint16_t)(id == 65535 ? 1 : id + 1);
		if (!id_get(c->wait_ack, id) && !id_get(c->wait_comp, id))
			return id;
	}
}

static bool pub_can_send(const struct load *L, struct conn *c)
{
	if (c->state != ST_READY)
		return false;
	if (L->o.qos > 0 && c->inflight >= c->window)
		return false;
	return buf_room(&c->out) >= c->pkt_size + ACK_ROOM;
}

/* Appends one PUBLISH stamped with `stamp` to c's output. */
static void pub_send(struct load *L, struct conn *c, uint64_t stamp)
{
	struct mqtt_publish p;
	uint8_t *dst = c->out.p + c->out.tail;
	int n;

	memset(&p, 0, sizeof(p));
	p.qos = (uint8_t)L->o.qos;
	p.topic.p = (const uint8_t *)c->topic;
	p.topic.len = c->topic_len;
	p.payload = L->payload;
	p.payload_len = L->o.payload;
	if (p.qos)
		p.packet_id = id_alloc(c);
	n = mqtt_encode_publish_head(&p, (uint8_t)L->o.version, dst,
	                             c->out.cap - c->out.tail);
	if (n < 0) {
		conn_fail(L, c, tern_strerror(n));
		return;
	}
	memcpy(dst + n, L->payload, L->o.payload);
	memcpy(dst + n, &stamp, 8);
	memcpy(dst + n + 8, &c->idx, 4);
	memcpy(dst + n + 12, &c->seq, 4);
	c->out.tail += (size_t)n + L->o.payload;
	c->seq++;
	c->published++;
	if (p.qos) {
		id_put(c->wait_ack, p.packet_id, true);
		c->inflight++;
	}
}

/*
 * Sends what publisher c may send now. Without a rate that is as much as
 * the window and the output buffer allow, stamped with the current time.
 * With a rate, messages are stamped with the time they were due, so time
 * spent waiting for the window or the socket counts as latency.
 */
static void pub_fill(struct load *L, struct conn *c, uint64_t now)
{
	while (pub_can_send(L, c)) {
		uint64_t stamp;

		if (L->o.rate > 0) {
			if (c->due > now || c->due >= L->t_end)
				return;
			stamp = c->due;
			c->due += L->period;
		} else {
			stamp = now_ns();
			if (stamp >= L->t_end)
				return;
		}
		pub_send(L, c, stamp);
	}
}

/* Records one PUBLISH that reached subscriber c at time now. */
static void sub_deliver(struct load *L, struct conn *c,
                        const struct mqtt_publish *p, uint64_t now)
{
	uint64_t stamp;
	uint32_t pub, seq;
	struct track *t;

	if (p->payload_len < PAYLOAD_MIN) {
		L->st.foreign++;
		return;
	}
	memcpy(&stamp, p->payload, 8);
	memcpy(&pub, p->payload + 8, 4);
	memcpy(&seq, p->payload + 12, 4);
	if (pub >= L->o.pubs || stamp > now || stamp < L->t_start) {
		L->st.foreign++;
		return;
	}
	t = &c->track[pub];
	if (seq >= t->next) {
		uint32_t shift = seq - t->next + 1;

		t->seen = shift >= 64 ? 1 : t->seen << shift | 1;
		t->next = seq + 1;
	} else if (t->next - 1 - seq >= 64) {
		L->st.late++;
	} else if (t->seen >> (t->next - 1 - seq) & 1) {
		L->st.duplicates++;
		return;
	} else {
		t->seen |= 1ull << (t->next - 1 - seq);
		L->st.reordered++;
	}
	L->st.delivered++;
	L->st.in_window += now < L->t_end;
	L->t_last_delivery = now;
	hist_add(&L->lat, now - stamp);
}

static void on_connack(struct load *L, struct conn *c,
                       const struct mqtt_connack *ca)
{
	struct mqtt_packet p;
	struct mqtt_sub_entry e;
	char why[64];

	if (c->state != ST_CONNACK) {
		conn_fail(L, c, "unexpected CONNACK");
		return;
	}
	if (ca->reason != 0) {
		snprintf(why, sizeof(why), "CONNACK refused: 0x%02x",
		         ca->reason);
		conn_fail(L, c, why);
		return;
	}
	if (ca->props.present & MQTT_PBIT(MQTT_PROP_RECEIVE_MAXIMUM) &&
	    ca->props.receive_maximum < c->window)
		c->window = ca->props.receive_maximum;
	if (c->role == ROLE_PUB) {
		c->state = ST_READY;
		return;
	}
	memset(&p, 0, sizeof(p));
	memset(&e, 0, sizeof(e));
	e.filter.p = (const uint8_t *)c->topic;
	e.filter.len = c->topic_len;
	e.qos = (uint8_t)L->o.qos;
	p.type = MQTT_SUBSCRIBE;
	p.u.subscribe.packet_id = 1;
	p.u.subscribe.list = &e;
	p.u.subscribe.count = 1;
	if (conn_send(L, c, &p) == 0)
		c->state = ST_SUBACK;
}

static void on_suback(struct load *L, struct conn *c,
                      const struct mqtt_suback *s)
{
	if (c->state != ST_SUBACK || s->count != 1 || s->codes[0] >= 0x80) {
		conn_fail(L, c, "subscription refused");
		return;
	}
	c->state = ST_READY;
}

/* PUBACK, PUBREC and PUBCOMP of our own publishes. */
static void on_pub_ack(struct load *L, struct conn *c, uint8_t type,
                       uint16_t id)
{
	bool want_rec = L->o.qos == 2;

	if (type == MQTT_PUBCOMP) {
		if (L->o.qos != 2 || !id_get(c->wait_comp, id))
			goto bad;
		id_put(c->wait_comp, id, false);
	} else {
		if (want_rec != (type == MQTT_PUBREC) ||
		    !id_get(c->wait_ack, id))
			goto bad;
		id_put(c->wait_ack, id, false);
		if (type == MQTT_PUBREC) {
			id_put(c->wait_comp, id, true);
			send_ack(L, c, MQTT_PUBREL, id);
			return;
		}
	}
	c->inflight--;
	c->completed++;
	return;
bad:
	conn_fail(L, c, "acknowledgement for a packet id not in flight");
}

static void on_packet(struct load *L, struct conn *c,
                      const struct mqtt_packet *p, uint64_t now)
{
	switch (p->type) {
	case MQTT_CONNACK: on_connack(L, c, &p->u.connack); return;
	case MQTT_SUBACK: on_suback(L, c, &p->u.suback); return;
	case MQTT_PINGRESP: return;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		if (c->role == ROLE_PUB) {
			on_pub_ack(L, c, p->type, p->u.ack.packet_id);
			return;
		}
		break;
	case MQTT_PUBREL:
		if (c->role == ROLE_SUB) {
			send_ack(L, c, MQTT_PUBCOMP, p->u.ack.packet_id);
			return;
		}
		break;
	case MQTT_PUBLISH:
		if (c->role == ROLE_SUB && c->state == ST_READY) {
			sub_deliver(L, c, &p->u.publish, now);
			if (p->u.publish.qos)
				send_ack(L, c,
				         p->u.publish.qos == 1 ? MQTT_PUBACK
				                               : MQTT_PUBREC,
				         p->u.publish.packet_id);
			return;
		}
		break;
	case MQTT_DISCONNECT:
		conn_fail(L, c, "DISCONNECT from the broker");
		return;
	}
	conn_fail(L, c, "unexpected packet");
}

/* Handles every complete packet in c's input while output has room. */
static void conn_parse(struct load *L, struct conn *c, uint64_t now)
{
	while (c->state != ST_DEAD && buf_len(&c->in) > 0) {
		const uint8_t *b;
		struct mqtt_fixed fh;
		struct mqtt_packet p;
		struct mqtt_error err;
		int n;

		if (buf_room(&c->out) < ACK_ROOM) {
			c->blocked = true;
			return;
		}
		b = c->in.p + c->in.head;
		n = mqtt_fixed_header(b, buf_len(&c->in), &fh);
		if (n == TERN_EAGAIN)
			break;
		if (n < 0 || n + (size_t)fh.remaining > c->in.cap) {
			conn_fail(L, c, "bad or oversized packet");
			return;
		}
		if (buf_len(&c->in) < n + (size_t)fh.remaining)
			break;
		if (mqtt_decode(&fh, b + n, fh.remaining, (uint8_t)L->o.version,
		                &p, &err) != 0) {
			conn_fail(L, c, err.what);
			return;
		}
		on_packet(L, c, &p, now);
		c->in.head += (size_t)n + fh.remaining;
	}
	c->blocked = false;
	buf_room(&c->in);
}

static void conn_read(struct load *L, struct conn *c)
{
	ssize_t n = read(c->fd, c->in.p + c->in.tail, buf_room(&c->in));

	if (n == 0) {
		conn_fail(L, c, "connection closed by the broker");
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_fail(L, c, strerror(errno));
		return;
	}
	c->in.tail += (size_t)n;
	L->t_last_rx = now_ns();
	conn_parse(L, c, L->t_last_rx);
}

static void conn_write(struct load *L, struct conn *c)
{
	while (buf_len(&c->out) > 0) {
		ssize_t n =
		        write(c->fd, c->out.p + c->out.head, buf_len(&c->out));

		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_fail(L, c, strerror(errno));
			return;
		}
		c->out.head += (size_t)n;
	}
}

static void conn_start(struct load *L, struct conn *c)
{
	struct mqtt_packet p;
	char id[64];
	int err = 0;
	socklen_t len = sizeof(err);
	double life = L->o.duration + L->o.drain + SETUP_NS / NS_PER_S + 60;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
	    err != 0) {
		conn_fail(L, c, strerror(err ? err : errno));
		return;
	}
	snprintf(id, sizeof(id), "mqtt_load-%d-%c%u", (int)getpid(),
	         c->role == ROLE_PUB ? 'p' : 's', c->idx);
	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	p.u.connect.version = (uint8_t)L->o.version;
	p.u.connect.clean = true;
	p.u.connect.keepalive = (uint16_t)(life > 65535 ? 65535 : life);
	p.u.connect.client_id.p = (const uint8_t *)id;
	p.u.connect.client_id.len = (uint16_t)strlen(id);
	if (conn_send(L, c, &p) == 0)
		c->state = ST_CONNACK;
}

/* Registers the interest c needs now, if it changed. */
static void conn_interest(struct load *L, struct conn *c)
{
	struct epoll_event ev;
	uint32_t want = 0;

	if (c->state == ST_DEAD)
		return;
	if (c->state == ST_CONNECTING || buf_len(&c->out) > 0)
		want |= EPOLLOUT;
	if (c->state != ST_CONNECTING && !c->blocked && c->in.tail < c->in.cap)
		want |= EPOLLIN;
	if (want == c->events)
		return;
	ev.events = want;
	ev.data.u32 = (uint32_t)(c - L->c);
	if (epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		conn_fail(L, c, strerror(errno));
	c->events = want;
}

static void conn_event(struct load *L, struct conn *c, uint32_t events)
{
	if (c->state == ST_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_start(L, c);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_read(L, c);
	if (c->state != ST_DEAD && (events & EPOLLOUT))
		conn_write(L, c);
}

static int conn_open(struct load *L, struct conn *c)
{
	struct epoll_event ev;
	int one = 1;

	c->fd = socket(L->addr.ss_family,
	               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&L->addr, L->addrlen) != 0 &&
	    errno != EINPROGRESS)
		return -1;
	c->state = ST_CONNECTING;
	c->events = EPOLLOUT;
	ev.events = c->events;
	ev.data.u32 = (uint32_t)(c - L->c);
	return epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* Allocates connection c (publisher or subscriber number idx). */
static int conn_init(struct load *L, struct conn *c, enum role role,
                     unsigned idx)
{
	const char *pattern = role == ROLE_PUB ? L->o.topic : L->o.filter;
	int n = expand(pattern, idx, c->topic, sizeof(c->topic));
	size_t topic_max = 0;

	c->role = role;
	c->idx = idx;
	c->window = L->o.window;
	c->next_id = 1;
	if (n <= 0)
		return -1;
	c->topic_len = (uint16_t)n;
	if (role == ROLE_PUB) {
		if (mqtt_topic_name_check((const uint8_t *)c->topic,
		                          c->topic_len) != 0)
			return -1;
		c->pkt_size = 5 + 2 + c->topic_len + 2 + 1 + L->o.payload;
		c->wait_ack = calloc(ID_WORDS, sizeof(uint64_t));
		c->wait_comp = calloc(ID_WORDS, sizeof(uint64_t));
		if (!c->wait_ack || !c->wait_comp)
			return -1;
	} else {
		if (mqtt_topic_filter_check((const uint8_t *)c->topic,
		                            c->topic_len) != 0)
			return -1;
		c->track =
		        calloc(L->o.pubs ? L->o.pubs : 1, sizeof(struct track));
		if (!c->track)
			return -1;
	}
	topic_max = MAX_TOPIC + 16 + (size_t)L->o.payload;
	c->in.cap = topic_max * 2 > IN_MIN ? topic_max * 2 : IN_MIN;
	c->out.cap = c->pkt_size + ACK_ROOM > OUT_CAP ? c->pkt_size + ACK_ROOM
	                                              : OUT_CAP;
	c->in.p = malloc(c->in.cap);
	c->out.p = malloc(c->out.cap);
	return c->in.p && c->out.p ? 0 : -1;
}

static void conn_free(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in.p);
	free(c->out.p);
	free(c->wait_ack);
	free(c->wait_comp);
	free(c->track);
}

/* Broker CPU time in clock ticks, or -1 when unknown. */
static long long proc_ticks(int pid)
{
	char path[64], line[1024];
	unsigned long long ut, st;
	const char *p;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	/* The command name may hold spaces and parentheses. */
	p = strrchr(line, ')');
	if (!p || sscanf(p + 2,
	                 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	                 "%llu %llu",
	                 &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static uint64_t expected_deliveries(const struct load *L)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < L->o.pubs; i++)
		n += L->c[i].published * L->c[i].fan;
	return n;
}

static void start_run(struct load *L, uint64_t now)
{
	unsigned i;

	L->phase = PH_RUN;
	L->t_start = now;
	L->t_end = now + (uint64_t)(L->o.duration * NS_PER_S);
	L->t_last_rx = now;
	L->broker_ticks0 = proc_ticks(L->o.pid);
	getrusage(RUSAGE_SELF, &L->ru0);
	/* Publishers start spread over one period, not all at once. */
	for (i = 0; i < L->o.pubs; i++)
		L->c[i].due = now + L->period * i / L->o.pubs;
}

static void stop_run(struct load *L, uint64_t now)
{
	L->phase = PH_DONE;
	L->t_stop = now;
	L->broker_ticks1 = proc_ticks(L->o.pid);
	getrusage(RUSAGE_SELF, &L->ru1);
}

/*
 * Whether the run is over: everything sent, acked and delivered, or
 * everything sent and acked and nothing arrived for a while (the rest is
 * lost), or the drain timeout passed.
 */
static bool drained(struct load *L, uint64_t now)
{
	unsigned i;

	L->tail = TAIL_TIMEOUT;
	if (now >= L->t_drain_end)
		return true;
	for (i = 0; i < L->o.pubs; i++)
		if (L->c[i].state != ST_DEAD &&
		    (buf_len(&L->c[i].out) > 0 || L->c[i].inflight > 0))
			return false;
	L->tail = TAIL_COMPLETE;
	if (L->st.delivered >= expected_deliveries(L))
		return true;
	L->tail = TAIL_IDLE;
	return now - L->t_last_rx >= IDLE_NS;
}

/* Moves from one phase to the next; returns -1 when setup fails. */
static int advance(struct load *L, uint64_t now)
{
	unsigned i, ready = 0, dead = 0;

	for (i = 0; i < L->nconn; i++) {
		ready += L->c[i].state == ST_READY;
		dead += L->c[i].state == ST_DEAD;
	}
	if (dead == L->nconn) {
		fprintf(stderr, "mqtt_load: every connection is gone\n");
		if (L->phase == PH_SETUP)
			return -1;
		stop_run(L, now);
		return 0;
	}
	switch (L->phase) {
	case PH_SETUP:
		if (dead > 0 || now > L->t_setup_end) {
			fprintf(stderr,
			        "mqtt_load: setup failed (%u of %u "
			        "connections ready)\n",
			        ready, L->nconn);
			return -1;
		}
		if (ready == L->nconn)
			start_run(L, now);
		break;
	case PH_RUN:
		if (now >= L->t_end) {
			L->phase = PH_DRAIN;
			L->t_drain_end =
			        L->t_end + (uint64_t)(L->o.drain * NS_PER_S);
		}
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

		if (c->due < L->t_end && pub_can_send(L, c) &&
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
static int poll_timeout(struct load *L)
{
	unsigned i;

	switch (L->phase) {
	case PH_SETUP: return 10;
	case PH_DRAIN: return 10;
	case PH_DONE: return 0;
	case PH_RUN: break;
	}
	if (L->o.rate > 0)
		return 10;
	for (i = 0; i < L->o.pubs; i++)
		if (pub_can_send(L, &L->c[i]))
			return 0;
	return 10;
}

static int loop(struct load *L)
{
	struct epoll_event ev[MAX_EVENTS];
	unsigned i;

	while (L->phase != PH_DONE) {
		int n = epoll_wait(L->ep, ev, MAX_EVENTS, poll_timeout(L));
		uint64_t now;

		if (n < 0 && errno != EINTR)
			return -1;
		for (i = 0; n > 0 && i < (unsigned)n; i++) {
			uint64_t ticks;

			if (ev[i].data.u32 == TIMER_TAG) {
				/* Expired or not, it is no longer armed. */
				if (read(L->tfd, &ticks, sizeof(ticks)) < 0 &&
				    errno != EAGAIN)
					return -1;
				L->timer_at = 0;
				continue;
			}
			conn_event(L, &L->c[ev[i].data.u32], ev[i].events);
		}
		now = now_ns();
		for (i = 0; L->phase == PH_RUN && i < L->o.pubs; i++)
			pub_fill(L, &L->c[i], now);
		/* One batched write per connection per loop turn. */
		for (i = 0; i < L->nconn; i++) {
			struct conn *c = &L->c[i];

			if (c->state == ST_DEAD)
				continue;
			conn_write(L, c);
			if (c->blocked && buf_room(&c->out) >= ACK_ROOM) {
				conn_parse(L, c, now_ns());
				conn_write(L, c);
			}
			conn_interest(L, c);
		}
		arm_timer(L);
		if (advance(L, now_ns()) != 0)
			return -1;
	}
	return 0;
}

static void disconnect_all(struct load *L)
{
	struct mqtt_packet p;
	unsigned i;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_DISCONNECT;
	for (i = 0; i < L->nconn; i++) {
		struct conn *c = &L->c[i];

		if (c->state == ST_DEAD)
			continue;
		c->out.head = c->out.tail = 0;
		if (conn_send(L, c, &p) == 0)
			conn_write(L, c);
	}
}

static double tv_us(const struct timeval *a, const struct timeval *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e6 +
	       (double)(b->tv_usec - a->tv_usec);
}

static void report(const struct load *L)
{
	const struct options *o = &L->o;
	uint64_t published = 0, completed = 0, expected;
	uint64_t end = L->t_last_delivery > L->t_start ? L->t_last_delivery
	                                               : L->t_stop;
	double elapsed = (double)(end - L->t_start) / NS_PER_S;
	double sent_s = o->duration;
	double rate, total_rate, lost, bcpu = -1, ccpu, lat[5];
	static const double q[5] = {0.5, 0.9, 0.99, 0.999, 1.0};
	unsigned i;

	for (i = 0; i < o->pubs; i++) {
		published += L->c[i].published;
		completed += L->c[i].completed;
	}
	expected = expected_deliveries(L);
	lost = expected > L->st.delivered ? (double)(expected - L->st.delivered)
	                                  : 0;
	rate = (double)L->st.in_window / o->duration;
	total_rate = elapsed > 0 ? (double)L->st.delivered / elapsed : 0;
	ccpu = tv_us(&L->ru0.ru_utime, &L->ru1.ru_utime) +
	       tv_us(&L->ru0.ru_stime, &L->ru1.ru_stime);
	ccpu = L->st.delivered ? ccpu / (double)L->st.delivered : 0;
	if (L->broker_ticks0 >= 0 && L->broker_ticks1 >= 0 && L->st.delivered)
		bcpu = (double)(L->broker_ticks1 - L->broker_ticks0) * 1e6 /
		       (double)sysconf(_SC_CLK_TCK) / (double)L->st.delivered;
	for (i = 0; i < 5; i++)
		lat[i] = (double)(i == 4 ? L->lat.max
		                         : hist_quantile(&L->lat, q[i])) /
		         1e3;

	printf("mqtt_load: MQTT %s QoS %u, %u pub -> %u sub, %u B payload, "
	       "%.1f s, rate %s\n",
	       o->version == MQTT_V5 ? "5" : "3.1.1", o->qos, o->pubs, o->subs,
	       o->payload, o->duration, o->rate > 0 ? "limited" : "max");
	printf("  published   %" PRIu64 " (%.0f/s), %" PRIu64 " acked\n",
	       published, (double)published / sent_s, completed);
	printf("  delivered   %" PRIu64 " of %" PRIu64 " expected; %.0f/s "
	       "while publishing, %.0f/s over %.2f s; tail %s\n",
	       L->st.delivered, expected, rate, total_rate, elapsed,
	       tail_names[L->tail]);
	printf("  lost %.0f  duplicates %" PRIu64 "  reordered %" PRIu64
	       "  late %" PRIu64 "  foreign %" PRIu64 "  errors %" PRIu64 "\n",
	       lost, L->st.duplicates, L->st.reordered, L->st.late,
	       L->st.foreign, L->st.errors);
	printf("  latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  "
	       "max %.1f\n",
	       lat[0], lat[1], lat[2], lat[3], lat[4]);
	printf("  CPU us/msg  broker %.3f  mqtt_load %.3f\n", bcpu, ccpu);
	printf("{\"version\":%u,\"qos\":%u,\"publishers\":%u,"
	       "\"subscribers\":%u,\"payload\":%u,\"duration_s\":%.3f,"
	       "\"rate\":%.1f,\"published\":%" PRIu64 ",\"acked\":%" PRIu64
	       ",\"expected\":%" PRIu64 ",\"delivered\":%" PRIu64
	       ",\"lost\":%.0f,\"duplicates\":%" PRIu64
	       ",\"reordered\":%" PRIu64 ",\"late\":%" PRIu64
	       ",\"errors\":%" PRIu64 ",\"tail\":\"%s\",\"elapsed_s\":%.3f,"
	       "\"delivered_per_s\":%.1f,\"delivered_per_s_total\":%.1f,"
	       "\"lat_p50_us\":%.1f,"
	       "\"lat_p90_us\":%.1f,\"lat_p99_us\":%.1f,"
	       "\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f,"
	       "\"broker_cpu_us_per_msg\":%.3f,"
	       "\"client_cpu_us_per_msg\":%.3f}\n",
	       o->version, o->qos, o->pubs, o->subs, o->payload, o->duration,
	       o->rate, published, completed, expected, L->st.delivered, lost,
	       L->st.duplicates, L->st.reordered, L->st.late, L->st.errors,
	       tail_names[L->tail], elapsed, rate, total_rate, lat[0], lat[1],
	       lat[2], lat[3], lat[4], bcpu, ccpu);
}

/* Sets up connections; counts, for each publisher, matching subscribers. */
static int setup(struct load *L)
{
	struct epoll_event ev;
	unsigned i, j;

	L->nconn = L->o.pubs + L->o.subs;
	L->c = calloc(L->nconn, sizeof(*L->c));
	L->payload = malloc(L->o.payload);
	L->ep = epoll_create1(EPOLL_CLOEXEC);
	L->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!L->c || !L->payload || L->ep < 0 || L->tfd < 0)
		return -1;
	for (i = 0; i < L->nconn; i++)
		L->c[i].fd = -1;
	memset(L->payload, 'x', L->o.payload);
	ev.events = EPOLLIN;
	ev.data.u32 = TIMER_TAG;
	if (epoll_ctl(L->ep, EPOLL_CTL_ADD, L->tfd, &ev) != 0)
		return -1;
	for (i = 0; i < L->nconn; i++) {
		bool pub = i < L->o.pubs;

		if (conn_init(L, &L->c[i], pub ? ROLE_PUB : ROLE_SUB,
		              pub ? i : i - L->o.pubs) != 0) {
			fprintf(stderr, "mqtt_load: bad topic or filter, or "
			                "out of memory\n");
			return -1;
		}
	}
	for (i = 0; i < L->o.pubs; i++)
		for (j = L->o.pubs; j < L->nconn; j++)
			L->c[i].fan +=
			        topic_match(L->c[j].topic, L->c[i].topic);
	L->t_setup_end = now_ns() + SETUP_NS;
	for (i = 0; i < L->nconn; i++)
		if (conn_open(L, &L->c[i]) != 0) {
			fprintf(stderr, "mqtt_load: connect: %s\n",
			        strerror(errno));
			return -1;
		}
	return 0;
}

int main(int argc, char **argv)
{
	struct load *L = calloc(1, sizeof(*L));
	int rc = 2, a;
	unsigned i;

	if (!L)
		return 2;
	L->ep = L->tfd = -1;
	a = parse_args(argc, argv, &L->o);
	if (a != 0) {
		rc = a > 0 ? 0 : 2;
		goto out;
	}
	if (parse_host(L) != 0) {
		fprintf(stderr, "mqtt_load: '%s' is not a loopback address\n",
		        L->o.host);
		goto out;
	}
	L->period = L->o.rate > 0 ? (uint64_t)(NS_PER_S / L->o.rate) : 0;
	if (setup(L) != 0 || loop(L) != 0)
		goto out;
	disconnect_all(L);
	report(L);
	rc = L->st.errors ? 1 : 0;
out:
	for (i = 0; L->c && i < L->nconn; i++)
		conn_free(&L->c[i]);
	free(L->c);
	free(L->payload);
	if (L->ep >= 0)
		close(L->ep);
	if (L->tfd >= 0)
		close(L->tfd);
	free(L);
	return rc;
}
