/*
 * `tern bench`: the load generator's shared types. One process, one thread
 * and one epoll loop drive every connection through non-blocking sockets.
 * The modules:
 *
 *   bench.c         the command: subcommands, the run's phases, the loop
 *   bench_opts.c    options, URLs, topic templates
 *   bench_conn.c    connections and transports (TCP, TLS, WebSocket)
 *   bench_proto.c   the MQTT side: CONNECT, SUBSCRIBE, publishing, acks,
 *                   and what a subscriber makes of each message
 *   bench_stats.c   the latency histogram, per-publisher tracking, /proc
 *   bench_report.c  live rates on stderr and the final report and JSON line
 *
 * The payload of every message starts with 16 bytes, little-endian:
 *
 *   bytes 0-7    the time the message was due (CLOCK_MONOTONIC, ns)
 *   bytes 8-11   the publisher's id (its index plus --id-base)
 *   bytes 12-15  the publisher's sequence number, from 0
 *
 * so that a subscriber, in this process or another one on the same
 * machine (the monotonic clock is shared), measures end-to-end latency and
 * per publisher loss, duplicates and reordering. The rest is filler.
 */
#ifndef TERN_APPS_BENCH_H
#define TERN_APPS_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "mqtt/packet.h"

#define NS_PER_S       1000000000ull
#define PAYLOAD_MIN    16     /* send time, publisher id, sequence */
#define OUT_CAP        65536  /* bytes of output buffered per connection */
#define IN_MIN         65536  /* minimum input buffer per connection */
#define ACK_ROOM       16     /* output space kept free for one ack */
#define MAX_CONNS      10000  /* publishers + subscribers */
#define MAX_IDLE       500000 /* `conn` connections (files permitting) */
#define CONN_BUF       2048   /* input and output buffers with `conn` */
#define IDLE_KEEPALIVE 300    /* CONNECT keepalive with `conn`, seconds */
#define MAX_IDLE_S     86400  /* --idle */
#define MAX_ERR_LOG    10     /* connection failures printed */
#define MAX_HOST       256
#define MAX_PATH       256
#define MAX_PREFIX     64
#define MAX_PAIRS      4000000 /* publisher x subscriber tracking entries */
#define MAX_PUB_ID     1048576 /* `sub`: publisher ids tracked */
#define MAX_TOPIC      256
#define SETUP_NS       (10 * NS_PER_S)
#define IDLE_NS        (NS_PER_S)     /* drain ends after this long idle */
#define BUSY_PROBE_NS  (NS_PER_S / 4) /* drain: broker CPU read this often */
#define BUSY_PERMILLE  100 /* broker CPU share (per mille) that is not idle */
#define MAX_EVENTS     256
#define READ_BURST     16 /* input buffers read per readable event */
#define TIMER_TAG      UINT32_MAX
#define ID_WORDS       (65536 / 64)
#define MAX_SRC_ADDRS  250   /* 127.0.0.1 to 127.0.0.250 */
#define PORTS_PER_SRC  25000 /* connections per source address */

/* Latency histogram: 32 linear sub-buckets per power of two (3% error). */
#define H_SUB_BITS 5
#define H_SUB      (1u << H_SUB_BITS)
#define H_BUCKETS  ((64 - H_SUB_BITS + 1) * H_SUB)

enum mode { MODE_PUBSUB, MODE_PUB, MODE_SUB, MODE_CONN };

struct options {
	enum mode mode;
	unsigned pubs;
	unsigned subs;
	unsigned conns; /* `conn`: connections to open */
	unsigned qos;
	unsigned payload;
	unsigned window;
	unsigned version;
	double duration; /* seconds; 0 = until -n, a signal or forever */
	double drain;
	double rate;      /* messages/s per publisher (`conn`: connects/s) */
	double interval;  /* -i: ms between two connects */
	uint64_t limit;   /* -n: messages to publish (`sub`: to receive) */
	uint32_t id_base; /* added to publisher indexes in payloads */
	const char *topic;
	const char *filter;
	const char *host;
	uint16_t port;
	int pid;
	bool ws;         /* MQTT over WebSocket */
	bool tls;        /* over TLS (mqtts://, wss://) */
	bool insecure;   /* TLS: no host name check (the chain still is) */
	bool quiet;      /* no per-second lines */
	bool per_pub;    /* JSON: figures per publisher */
	bool resume;     /* TLS: resume the latest session (bench_conn.c) */
	bool persistent; /* clean start 0 (--persistent) */
	uint32_t session_expiry; /* with it, MQTT 5: seconds */
	const char *cafile;
	const char *path; /* WebSocket request path */
	char prefix[MAX_PREFIX];
	char url_host[MAX_HOST];
	char url_path[MAX_PATH];
	unsigned par;       /* set-ups in flight at most */
	double idle;        /* `conn`: seconds to hold them */
	unsigned src_addrs; /* `conn`: loopback source addresses; 0 = auto */
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

/* What arrived from one publisher, over every subscriber. */
struct pubstat {
	uint64_t delivered;
	uint64_t duplicates;
	uint64_t reordered;
	uint64_t late;
	uint64_t span; /* sum over subscribers of track.next */
};

enum role { ROLE_PUB, ROLE_SUB, ROLE_IDLE };

enum state {
	ST_IDLE, /* not opened yet */
	ST_CONNECTING,
	ST_TLS,     /* TLS handshake */
	ST_UPGRADE, /* WebSocket: waiting for the 101 */
	ST_CONNACK,
	ST_SUBACK,
	ST_READY,
	ST_DEAD
};

struct wsc;      /* WebSocket state of a connection (bench_conn.c) */
struct tls_conn; /* src/net/tls.h */
struct tls_ctx;

enum phase { PH_SETUP, PH_RUN, PH_DRAIN, PH_DONE };

/* How the drain ended: all delivered, nothing more arriving, or timeout. */
enum tail { TAIL_COMPLETE, TAIL_IDLE, TAIL_TIMEOUT };

struct conn {
	int fd;
	enum role role;
	enum state state;
	uint32_t idx;
	uint32_t events; /* interest currently registered with epoll */
	bool blocked;    /* input parsing paused until output drains */
	struct buf in;
	struct buf out;
	struct buf wire; /* WebSocket: framed bytes to write (else unused) */
	struct wsc *ws;  /* WebSocket state, or NULL over TCP */
	struct tls_conn *tls;     /* TLS, or NULL */
	uint32_t tls_want;        /* epoll events OpenSSL waits for to go on */
	uint64_t t_open;          /* when connect() was called */
	char id[MAX_PREFIX + 16]; /* client id */
	char topic[MAX_TOPIC]; /* publisher: topic name; subscriber: filter */
	uint16_t topic_len;
	/* Publisher. */
	uint32_t seq;    /* next sequence number */
	uint64_t due;    /* with a rate: when message `seq` is due */
	uint64_t quota;  /* with -n: messages this publisher sends */
	uint32_t window; /* QoS>0 messages allowed in flight */
	uint32_t inflight;
	uint16_t next_id;
	uint64_t *wait_ack;  /* packet ids awaiting PUBACK or PUBREC */
	uint64_t *wait_comp; /* packet ids awaiting PUBCOMP */
	size_t pkt_size;     /* upper bound of one encoded PUBLISH */
	uint64_t published;
	uint64_t completed;
	uint32_t fan; /* subscribers whose filter matches the topic */
	/* Subscriber: one track per publisher id, ntrack of them. */
	struct track *track;
	uint32_t ntrack;
};

struct stats {
	uint64_t delivered; /* first arrivals of a (publisher, sequence) */
	uint64_t in_window; /* of those, arrived while publishing */
	uint64_t duplicates;
	uint64_t reordered;
	uint64_t late;
	uint64_t foreign; /* payloads this run did not send */
	uint64_t errors;
	uint64_t received; /* every PUBLISH that reached a subscriber */
};

/* Memory figures, -1 where unknown. */
struct memsnap {
	long long rss_kb;    /* broker VmRSS */
	long long tcp_inuse; /* /proc/net/sockstat{,6}: TCP sockets in use */
	long long tcp_mem;   /* and pages of socket buffers */
	long long slab_kb;   /* /proc/meminfo Slab (system-wide) */
};

/* The previous per-second line's counters. */
struct live {
	uint64_t at; /* when the next line is due */
	uint64_t published;
	uint64_t received;
	unsigned ready;
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
	uint64_t t_last_rx;    /* the last byte read, on any connection */
	uint64_t t_last_tx;    /* the last byte written, on any connection */
	uint64_t t_busy;       /* drain: the broker last seen using CPU */
	uint64_t probe_at;     /* drain: when its CPU time was last read */
	long long probe_ticks; /* and what it was then, or -1 */
	uint64_t t_first_delivery;
	uint64_t t_last_delivery;
	uint64_t timer_at;    /* absolute time the timerfd is armed for, or 0 */
	uint64_t period;      /* ns between messages of one publisher */
	uint64_t conn_period; /* ns between two connects */
	uint8_t *payload;
	struct hist lat;
	/* With a rate: how late each message was queued for its publisher's
	 * socket, after its due time (ns). Latency counts that lateness too,
	 * so this tells the load generator's share of a tail. */
	struct hist send_lag;
	struct stats st;
	struct pubstat *ps; /* per publisher id, nps of them */
	uint32_t nps;
	long long broker_ticks0;
	long long broker_ticks1;
	struct rusage ru0;
	struct rusage ru1;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned nsrc; /* source addresses used, 127.0.0.1 on */
	uint64_t rng;  /* xorshift64* state: WebSocket keys and masks */
	struct live live;
	/* Opening connections. */
	unsigned opened;
	unsigned ready;
	uint64_t next_open;
	uint64_t t_first_open;
	uint64_t t_all_ready;
	/* `conn` */
	struct hist setup_lat; /* connect() to CONNACK, ns */
	struct memsnap mem0;   /* before the first connection */
	struct memsnap mem1;   /* at the end of the idle time */
	/* TLS */
	struct tls_ctx *tls;
	bool tls_backlog; /* decrypted input waits in some connection */
	uint64_t handshakes;
	uint64_t resumed; /* handshakes that resumed a session */
	char tls_proto[16];
};

/* bench.c */
uint64_t bench_now(void);
extern volatile int bench_stop; /* SIGINT/SIGTERM: 1 = stop, 2 = now */

/* bench_opts.c */

/* Parses `tern bench MODE ...`: 0 to run, 1 after --help, -1 on a usage
 * error (said on stderr). */
int bench_opts_parse(int argc, char **argv, struct options *o);
/* Resolves o->host to a loopback address in L->addr; -1 if it is not. */
int bench_opts_resolve(struct load *L);
/* Writes pattern with "%i" replaced by index and "%c" by the client id;
 * returns the length or -1 if it does not fit. */
int bench_opts_expand(const char *pattern, unsigned index, const char *id,
                      char *out, size_t cap);
/* The mode's name: "pub", "sub", "conn" or "pubsub". */
const char *bench_mode_name(enum mode m);

/* bench_conn.c */
size_t bench_buf_len(const struct buf *b);
size_t bench_buf_room(struct buf *b);
size_t bench_conn_pending(const struct conn *c);
int bench_conn_init(struct load *L, struct conn *c, enum role role,
                    unsigned idx);
void bench_conn_free(struct conn *c);
int bench_conn_open(struct load *L, struct conn *c);
void bench_conn_fail(struct load *L, struct conn *c, const char *why);
void bench_conn_event(struct load *L, struct conn *c, uint32_t events);
void bench_conn_write(struct load *L, struct conn *c);
void bench_conn_interest(struct load *L, struct conn *c);
void bench_conn_tls_pending(struct load *L, struct conn *c);
int bench_conn_tls_init(struct load *L);
void bench_conn_tls_cleanup(struct load *L);
void bench_conn_disconnect_all(struct load *L);
uint64_t bench_rng(struct load *L);

/* bench_proto.c */
int bench_proto_send(struct load *L, struct conn *c,
                     const struct mqtt_packet *p);
void bench_proto_connect(struct load *L, struct conn *c);
bool bench_pub_can_send(const struct load *L, struct conn *c);
void bench_pub_fill(struct load *L, struct conn *c, uint64_t now);
void bench_proto_parse(struct load *L, struct conn *c, uint64_t now);
bool bench_topic_match(const char *f, const char *t);
/* A shared subscription "$share/GROUP/FILTER": the filter, and the group's
 * length in *glen; else f itself and *glen 0. */
const char *bench_share_split(const char *f, size_t *glen);

/* bench_stats.c */
void bench_hist_add(struct hist *h, uint64_t v);
uint64_t bench_hist_quantile(const struct hist *h, double q);
/* Records one message for subscriber c; false if it is not ours. */
void bench_stats_deliver(struct load *L, struct conn *c, const uint8_t *payload,
                         size_t len, uint64_t now);
/* Messages lost: expected minus delivered (pubsub) or sequence gaps. */
uint64_t bench_stats_lost(const struct load *L);
uint64_t bench_stats_expected(const struct load *L);
long long bench_proc_ticks(int pid);
void bench_mem_snap(const struct load *L, struct memsnap *m);
void bench_put_le32(uint8_t *p, uint32_t v);
void bench_put_le64(uint8_t *p, uint64_t v);

/* bench_report.c */
void bench_report_live(struct load *L, uint64_t now);
void bench_report_run(const struct load *L);
void bench_report_conn(const struct load *L);
/* pub, sub, pubsub: 0, or 1 after saying on stderr why the run failed. */
int bench_report_verdict(const struct load *L);

#endif
