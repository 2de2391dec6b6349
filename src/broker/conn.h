/*
 * A client connection and its state machine:
 *
 *   CONNECTING --CONNECT ok--> ACTIVE --DISCONNECT/error/timeout--> CLOSED
 *        \--------- bad first packet / deadline ----------------------^
 *
 * A connection belongs to one worker and is touched only by it. It owns its
 * read buffer and output queue, holds a reference to its session while
 * attached, and its will until the connection ends.
 *
 * Packet handlers live one file per packet family (handle_*.c) and are
 * dispatched from a table in conn.c; they return 0 to go on or a negative
 * code after having called conn_close().
 */
#ifndef TERN_BROKER_CONN_H
#define TERN_BROKER_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/tbucket.h"
#include "event/loop.h"
#include "mqtt/packet.h"
#include "net/outq.h"
#include "net/sock.h"

struct held_ack;
struct listener_sock;
struct tls_conn;
struct msg;
struct qmsg;
struct session;
struct worker;

enum conn_state {
	CONN_HTTP = 0,   /* WebSocket listener: reading the HTTP request */
	CONN_CONNECTING, /* waiting for CONNECT */
	CONN_ACTIVE,
	CONN_CLOSED,
};

/* Topic Alias Maximum we grant clients (v5 CONNACK). */
#define CONN_TOPIC_ALIAS_MAX 32
/* Most outbound aliases we assign to one connection (first come, kept for
 * the connection's life; the client's Topic Alias Maximum may lower it). */
#define CONN_ALIAS_OUT_MAX 16

/*
 * Topic aliases of a v5 connection, allocated when the first one is set:
 * most clients never use aliases, and the tables are 400 bytes, which an
 * idle connection should not carry (docs/benchmarks.md, Findings).
 */
struct conn_aliases {
	/* Inbound (alias -> topic), index 1..CONN_TOPIC_ALIAS_MAX. */
	char *in[CONN_TOPIC_ALIAS_MAX + 1];
	/* Outbound aliases we assigned, index 1..nout. */
	char *out[CONN_ALIAS_OUT_MAX + 1];
	uint16_t nout;
};

/*
 * Publish rate limits of a connection (max_publish_rate,
 * max_publish_bytes_rate), allocated at its first PUBLISH when either is
 * set, so connections pay nothing for them otherwise.
 */
struct conn_rate {
	struct tbucket msgs, bytes;
	uint64_t until; /* reading paused until this clock_ms() */
};

/*
 * Fields are grouped by size so the struct has no holes: every idle
 * connection carries it, and its size is most of the broker's memory per
 * idle connection.
 */
struct conn {
	struct loop_io io;
	struct worker *w;
	struct listener_sock *ls;
	uint64_t id;
	/* "host:port" and the bare host: one allocation, owned (set at
	 * accept, changed by conn_set_real_address). */
	char *peer;
	const char *host;

	/* Input: MQTT bytes not yet parsed in rbuf[0..rlen), then (WebSocket
	 * only) rraw raw bytes not yet decoded. */
	uint8_t *rbuf;
	size_t rlen, rraw, rcap;
	struct conn_ws *ws;   /* WebSocket state; NULL for plain MQTT */
	struct tls_conn *tls; /* TLS state; NULL for plain TCP */
	struct outq oq;

	struct conn *next, *prev; /* worker's list */
	struct conn *flush_next;

	uint64_t accepted_at;
	uint64_t last_rx; /* clock_ms() of the last packet received */
	char *client_id;
	char *username;
	struct session *s;       /* reference while attached */
	struct conn_aliases *al; /* NULL until an alias is used */
	struct conn_rate *rate;  /* NULL until a rate limit applies */

	/* Back-pressure: reading paused until throttle_s drains or
	 * throttle_until passes (worker_check_throttled). */
	struct session *throttle_s;
	uint64_t throttle_until;
	struct conn *throttle_next;

	/* Fairness: w->delivered when this turn began; on w->pending when
	 * the turn ran out with packets still buffered (conn_continue). */
	uint64_t turn_start;
	struct conn *pending_next;

	/* Acknowledgements held until the store commits (conn_ack.c), a
	 * ring in arrival order; while non-empty the connection is on its
	 * worker's ackwait list. Reading pauses while too many are held. */
	struct held_ack *acks;
	struct conn *ackwait_next;
	uint32_t ack_head, nacks, ack_cap;

	struct msg *will;
	/* A JWT's topics claim (auth.h; NULL: none), one reference, and
	 * when the token runs out (clock_ms(); 0: never): the connection is
	 * closed then (conn_check_timeouts). */
	struct auth_grant *grant;
	uint64_t token_until;
	uint32_t will_delay;
	uint32_t session_expiry;
	/* v5 limits the client declared in CONNECT. */
	uint32_t client_max_packet; /* 0 = none */
	uint16_t client_alias_max;
	uint16_t keepalive; /* effective, seconds; 0 = none */

	uint8_t state;     /* enum conn_state */
	uint8_t transport; /* TR_* */
	uint8_t version;
	bool rbuf_borrowed; /* rbuf is the worker's scratch buffer */
	bool proxy_pending; /* a PROXY protocol header must come first */
	bool tls_ready;     /* handshake done */
	/* host is counted for max_connections_per_address (only ever the
	 * TCP peer: a host a trusted proxy names is never counted). */
	bool cap_taken;
	bool in_flush;
	bool throttled;
	bool pending;
	bool in_ackwait;
	bool ack_paused;
	bool will_now; /* DISCONNECT 0x04: publish the will */
	bool normal_disconnect;
	bool stopping; /* closed because ternd stops (worker_free) */
	/* Wrote something since the last tick (conn_check_timeouts keeps
	 * a busy queue's grown buffers). Fills the last padding byte. */
	bool tx_recent;
};

/* Accepts fd from listener ls on worker w (fd ownership moves here). */
void conn_accept(struct worker *w, struct listener_sock *ls, int fd,
                 const char *peer, const char *host);

/*
 * Closes the connection. For a v5 client in ACTIVE state with reason >=
 * 0x80 a DISCONNECT with that reason is sent first (best effort). `why` is
 * logged. Publishes or schedules the will unless the client disconnected
 * normally. The struct is freed at the end of the loop iteration.
 */
void conn_close(struct conn *c, uint8_t reason, const char *why);

/* Frees a closed connection (worker, end of iteration). */
void conn_free(struct conn *c);

/*
 * Encodes p for this connection's protocol version and queues it. Returns
 * 0, TERN_ETOOBIG if it exceeds the client's Maximum Packet Size (nothing
 * queued), or TERN_ENOMEM.
 */
int conn_send(struct conn *c, const struct mqtt_packet *p);

/* The connection's topic alias tables, allocated on first use. Returns
 * NULL when out of memory. */
struct conn_aliases *conn_aliases(struct conn *c);

/* Queues an ack-type packet (PUBACK..PUBCOMP) with a v5 reason code. */
int conn_send_ack(struct conn *c, uint8_t type, uint16_t pid, uint8_t reason);

/*
 * Queues one PUBLISH for a queued message: header into the arena, payload
 * by reference. Returns 0, TERN_ETOOBIG (message too large for the client:
 * the caller drops it), or TERN_ENOMEM.
 */
int conn_send_publish(struct conn *c, const struct qmsg *q, uint64_t now);

/*
 * Moves messages from the session queue to the connection while the output
 * queue is below its high-water mark and the inflight window allows.
 * Caller holds s->mu and s is attached to c.
 */
void conn_pump_locked(struct conn *c, struct session *s);

/*
 * Parses and handles every complete MQTT packet in rbuf[0..rlen). Returns 0,
 * or <0 when the connection was closed.
 */
int conn_parse(struct conn *c);

/* Writes as much queued output as the socket takes. Returns 0 or <0 when
 * the connection was closed. */
int conn_flush(struct conn *c);

/*
 * Locks c's session and checks that it is still attached to c (a takeover
 * on another worker may have detached it). Returns the session locked, or
 * NULL (nothing locked).
 */
struct session *conn_session_lock(struct conn *c);

/*
 * Holds back a publisher whose messages fill the queue of session s (a
 * reference moves to c): reading stops until s drains or a short deadline
 * passes, so a fast publisher is slowed to its consumers' pace instead of
 * overflowing their queues. Owning worker only.
 */
void conn_throttle(struct conn *c, struct session *s);

/*
 * Stops reading c until conn_check_throttle finds that nothing holds it
 * back any more: neither a backlogged session (conn_throttle) nor a rate
 * limit (c->rate->until). Owning worker only.
 */
void conn_pause(struct conn *c);

/*
 * Checks a throttled connection: resumes reading (and parses what is
 * buffered) once its session drained or the deadline passed, and its rate
 * limit's pause is over. Returns true when it was resumed.
 */
bool conn_check_throttle(struct conn *c, uint64_t now);

/* Resumes reading after a pause (throttle or held acks) once neither
 * holds it any more, and handles what was buffered meanwhile. */
void conn_resume(struct conn *c);

/*
 * Goes on with c's buffered packets when its turn ran out (worker.c, for
 * every connection on w->pending): a new turn, then as conn_resume without
 * re-arming input.
 */
void conn_continue(struct conn *c);

/*
 * Acknowledgements that may wait for the store (conn_ack.c). conn_ack_send
 * queues PUBACK/PUBREC/PUBCOMP to be sent once persist_committed() reaches
 * ticket; ticket 0 means "no store write of its own", sent at once unless
 * earlier acks are held, since acknowledgements keep their order (MQTT
 * 4.6). conn_ack_release sends those whose commit happened and returns
 * whether some remain; conn_ack_drop forgets them (connection closing).
 */
void conn_ack_send(struct conn *c, uint8_t type, uint16_t pid, uint8_t reason,
                   uint64_t ticket);
bool conn_ack_release(struct conn *c, uint64_t committed);
/* The same for a whole packet (SUBACK, UNSUBACK), encoded now if held. */
void conn_ack_send_packet(struct conn *c, const struct mqtt_packet *p,
                          uint64_t ticket);
void conn_ack_drop(struct conn *c);

/* Per-tick check of deadlines (CONNECT deadline, keepalive). */
void conn_check_timeouts(struct conn *c, uint64_t now);

/* Packet handlers (handle_*.c). */
int handle_connect(struct conn *c, struct mqtt_packet *p);
/*
 * A CONNECT that failed to decode (rc, err from mqtt_decode): an unknown
 * protocol gets CONNACK 0x01/0x84, a v5 CONNECT gets a CONNACK with the
 * reason code, then the connection closes.
 */
int handle_connect_invalid(struct conn *c, const uint8_t *body, size_t len,
                           int rc, const struct mqtt_error *err);
int handle_publish(struct conn *c, struct mqtt_packet *p);
int handle_puback(struct conn *c, struct mqtt_packet *p);
int handle_pubrec(struct conn *c, struct mqtt_packet *p);
int handle_pubrel(struct conn *c, struct mqtt_packet *p);
int handle_pubcomp(struct conn *c, struct mqtt_packet *p);
int handle_subscribe(struct conn *c, struct mqtt_packet *p);
int handle_unsubscribe(struct conn *c, struct mqtt_packet *p);
int handle_pingreq(struct conn *c, struct mqtt_packet *p);
int handle_disconnect(struct conn *c, struct mqtt_packet *p);
int handle_auth(struct conn *c, struct mqtt_packet *p);

/*
 * WebSocket connections (conn_ws.c). conn_ws_input() handles the rraw raw
 * bytes: the HTTP upgrade (or a plain HTTP request, answered and closed)
 * and then frames, whose payload is appended to the MQTT bytes. Returns 0,
 * or <0 when the connection was closed. conn_ws_frame() wraps the output
 * queued since the last call in one binary frame (before each write).
 */
struct conn_ws;
int conn_ws_start(struct conn *c);
int conn_ws_input(struct conn *c);
int conn_ws_frame(struct conn *c);
/* Queues a close frame (best effort, at conn_close). */
void conn_ws_close(struct conn *c, uint16_t code);
void conn_ws_free(struct conn *c);

/*
 * Replaces the client's address with `host` (and port, 0 if unknown) as
 * told by a trusted proxy, and logs the change.
 */
void conn_set_real_address(struct conn *c, const char *host, uint16_t port,
                           const char *how);

/* Whether the socket peer is one of the listener's trusted proxies. */
bool conn_peer_trusted(const struct conn *c);

/* Name of a transport for logs ("tcp", "ws", ...). */
const char *conn_transport_name(int transport);

#endif
