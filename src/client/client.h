/*
 * The client object behind the opaque tern_client, shared by the modules
 * of libtern: client.c (the public calls and options), link.c (one
 * connection's life: connect, handshake, read, keepalive, loss and
 * reconnect), tx.c (packets we send, the queue drain), rx.c (packets we
 * receive), drive.c (waiting for I/O and timers, the loop thread, blocking
 * waits). Everything in struct tern_client is guarded by `mu`, a recursive
 * lock so that callbacks, which run with it held, may call back in.
 */
#ifndef TERN_CLIENT_CLIENT_H
#define TERN_CLIENT_CLIENT_H

#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/backoff.h"
#include "client/omsg.h"
#include "client/url.h"
#include "client/xport.h"
#include "mqtt/packet.h"
#include "tern/tern.h"

/* Outbound topic aliases a client assigns at most (a linear search). */
#define CLIENT_TX_ALIASES 64

enum cstate {
	CS_IDLE,       /* no connection wanted */
	CS_WAIT_RETRY, /* waiting for the backoff delay */
	CS_TCP,        /* non-blocking connect() in progress */
	CS_HANDSHAKE,  /* TLS and/or WebSocket upgrade */
	CS_CONNACK,    /* CONNECT sent */
	CS_UP,         /* connected */
	CS_CLOSING,    /* DISCONNECT queued; closing once written */
};

/* A SUBSCRIBE (kept while the subscription lives, for resubscribing) or
 * an UNSUBSCRIBE (until its UNSUBACK). */
struct op {
	struct op *next;
	bool unsub;
	bool acked;
	tern_token token;
	uint16_t packet_id; /* 0: not sent on this connection */
	uint32_t sub_id;
	uint8_t *up; /* v5 user properties, wire form (owned) */
	uint32_t up_len, up_count;
	size_t n;
	struct tern_sub *subs; /* filters owned */
};

enum { W_CONNECT, W_PUBLISH, W_SUB, W_UNSUB, W_IDLE };

/* A blocking call waiting for an outcome. */
struct waiter {
	struct waiter *next;
	int kind;
	tern_token token;
	bool done;
	int rc, reason;
	bool session_present;
	uint8_t *codes; /* SUBACK/UNSUBACK codes, ncodes entries */
	size_t ncodes;
};

struct tern_client {
	pthread_mutex_t mu;
	pthread_cond_t cv;

	/* Options, with every string owned by the client. */
	struct tern_options o;
	char *owned[24];
	int nowned;
	struct mqtt_props will_props;
	uint8_t *will_owned;
	uint8_t *connect_up; /* v5 CONNECT user properties, wire form */
	uint32_t connect_up_len, connect_up_count;
	char *assigned_id; /* from the server, reused on reconnect */
	struct url url;
	struct tls_ctx *tls;
	struct backoff backoff;
	uint8_t version;

	/* The connection. */
	enum cstate state;
	bool want_up;  /* reconnect after a loss */
	bool no_retry; /* a blocking connect's attempt: no retries */
	unsigned attempt;
	uint64_t gen; /* bumped when a connection ends */
	struct addrinfo *ai, *ai_cur;
	int fd;
	struct xport *x;
	uint64_t deadline; /* connect or close deadline */
	uint64_t retry_at;
	uint64_t last_tx, ping_at; /* ping_at: PINGREQ unanswered since */
	uint16_t keepalive;
	char why[320]; /* the last failure, for on_connect */

	uint8_t *rbuf;
	size_t rlen, rcap;
	uint8_t *wbuf;
	size_t wlen, woff, wcap;
	uint8_t *scratch; /* a received message's props, NUL-terminated */
	size_t scratch_cap;

	/* What the server allows (CONNACK). */
	uint16_t srv_recv_max, srv_alias_max;
	uint32_t srv_max_packet;
	char **tx_alias; /* alias -> topic we assigned, [1..tx_alias_n] */
	uint16_t tx_alias_n, tx_alias_cap;
	char **rx_alias; /* alias -> topic the server assigned */

	/* Session state. */
	struct omsg_list queue, inflight;
	struct op *ops;
	uint8_t ids[8192]; /* packet ids in use */
	uint16_t next_id;
	uint8_t rx_qos2[8192]; /* QoS 2 received, PUBREL not yet */
	unsigned rx_qos2_count;
	tern_token next_token;
	bool draining; /* tx_drain is running (callbacks may re-enter) */
	struct waiter *waiters;
	uint64_t connects, dropped;

	/* Who drives the client. */
	pthread_t thread;
	bool running, stopping;
	int wake[2];
	bool driving;
	pthread_t driver;
	int cb_depth;
	pthread_t cb_thread;
};

/* client.c */
void client_log(struct tern_client *c, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
bool client_in_callback(struct tern_client *c);
void client_op_free(struct op *op);
void client_cb_enter(struct tern_client *c);
void client_cb_leave(struct tern_client *c);
struct waiter *client_waiter(struct tern_client *c, int kind, tern_token token);
void client_wake(struct tern_client *c);

/* link.c: the connection's life */
void link_start(struct tern_client *c);
void link_io(struct tern_client *c, int revents);
void link_timers(struct tern_client *c, uint64_t now);
int64_t link_next_timer(struct tern_client *c, uint64_t now);
int link_wanted(struct tern_client *c);
int link_flush(struct tern_client *c);
/* Ends the connection with a DISCONNECT (d: v5 reason and properties,
 * NULL for a normal one) and stops reconnecting. */
void link_disconnect(struct tern_client *c, const struct mqtt_disconnect *d);
void link_close(struct tern_client *c, int rc, int reason, const char *why);
void link_violation(struct tern_client *c, int rc, uint8_t reason,
                    const char *why);
void link_fail(struct tern_client *c, int rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void link_refused(struct tern_client *c, int reason);
void link_report_connect(struct tern_client *c, int rc, int reason, bool sp,
                         const char *why);
void link_complete(struct tern_client *c, struct omsg *m, int rc, int reason);

/* tx.c: what we send */
uint16_t tx_id_alloc(struct tern_client *c);
int tx_packet(struct tern_client *c, const struct mqtt_packet *p);
void tx_connect(struct tern_client *c);
int tx_publish(struct tern_client *c, struct omsg *m, bool dup);
int tx_ack(struct tern_client *c, uint8_t type, uint16_t id, uint8_t reason);
bool tx_can_send_now(struct tern_client *c, int qos);
void tx_drain(struct tern_client *c);
int tx_send_op(struct tern_client *c, struct op *op);

/* rx.c: what we receive; 1 when the connection survived, else 0 */
int rx_dispatch(struct tern_client *c);

/* drive.c: poll, the loop thread, blocking waits */
void drive_once(struct tern_client *c, int timeout_ms);
int drive_wait(struct tern_client *c, struct waiter *w, int timeout_ms);

#endif
