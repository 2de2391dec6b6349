/*
 * libtern: an MQTT 3.1.1 and 5.0 client over TCP, TLS, WebSocket and
 * WebSocket over TLS (URLs mqtt://, mqtts://, ws://, wss://).
 *
 *   struct tern_options o;
 *   tern_options_init(&o);
 *   o.url = "ws://localhost:8083/mqtt";
 *   tern_client *c = tern_client_new(&o, NULL, 0);
 *   tern_client_connect(c, 5000, NULL);
 *   ...
 *   tern_client_destroy(c);
 *
 * Errors: every function returning int returns 0 (or a count) on success
 * and a negative TERN_E* code on failure (<tern/error.h>); tern_strerror()
 * describes one. MQTT reason codes (what the server said) are passed to
 * callbacks and out-parameters as data, never as return values.
 *
 * Threads. A client is driven by one of:
 *   - the threaded loop: tern_client_loop_start() runs a thread that does
 *     all I/O, timers and callbacks until tern_client_loop_stop();
 *   - an external loop: the application polls tern_client_fd() for
 *     tern_client_wanted_events() and calls tern_client_loop_once() when
 *     it is ready or tern_client_timeout_ms() has passed;
 *   - neither: the blocking calls (tern_client_connect(),
 *     tern_client_publish_wait(), ...) drive the client themselves while
 *     they wait, so a simple program needs no loop at all, but nothing
 *     happens between calls (keepalive and incoming messages wait).
 * Every function may be called from any thread at any time, except:
 *   - tern_client_destroy(), which must be the last call, made once the
 *     threaded loop is stopped (it stops it if needed) and never from a
 *     callback;
 *   - tern_client_loop_once(), which must not run while the threaded loop
 *     runs (TERN_EINVAL) nor in two threads at once;
 *   - from inside a callback, only the non-blocking calls may be made
 *     (publish, subscribe, unsubscribe, connect_async, disconnect_async,
 *     the getters); blocking calls return TERN_EINVAL there, as do
 *     loop_start/stop and loop_once.
 * Callbacks run on the thread that drives the client (the loop thread, or
 * the caller of loop_once or of a blocking call), one at a time, with the
 * client's lock held: keep them short, other threads' calls wait. A
 * non-blocking call may also run callbacks on its caller's thread for what
 * it settles at once: on_publish for a QoS 0 message handed over or a
 * message dropped by the queue policy, on_connect for a connection attempt
 * that fails immediately (e.g. a name that does not resolve), on_disconnect
 * when a write finds the connection gone, and on_log.
 *
 * Reliability. Published messages are copied; QoS 1/2 messages stay in the
 * client until the server acknowledged them, are retransmitted with DUP
 * after a reconnect when the session is present, and are sent again (as
 * new) when the server lost the session. Messages published while no
 * connection is up, or beyond the inflight window, wait in the offline
 * queue (bounded by max_queued, overflow per queue_policy). Subscriptions
 * are remembered and made again after a reconnect when the server did not
 * keep the session. Reconnection uses exponential backoff with jitter.
 * Nothing is persisted: a process restart loses queued and inflight state.
 */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TERN_API __attribute__((visibility("default")))
#else
#define TERN_API
#endif

typedef struct tern_client tern_client;

/* A number naming one publish, subscribe or unsubscribe, > 0, unique
 * within a client; passed back to the completion callbacks. */
typedef uint64_t tern_token;

/* Protocol versions (the level in CONNECT). */
enum { TERN_MQTT_311 = 4, TERN_MQTT_5 = 5 };

/* What to do with a message published when the offline queue is full. */
enum tern_queue_policy {
	TERN_QUEUE_DROP_OLDEST = 0, /* default: the oldest queued message is
	                             * dropped (its completion callback gets
	                             * TERN_ELIMIT) */
	TERN_QUEUE_DROP_NEWEST = 1, /* the new message is dropped: publish
	                             * returns 0 but its completion callback
	                             * gets TERN_ELIMIT */
	TERN_QUEUE_REFUSE = 2,      /* publish returns TERN_ELIMIT */
};

/* One v5 user property: NUL-terminated UTF-8 key and value. */
struct tern_user_prop {
	const char *key;
	const char *value;
};

/*
 * v5 properties of a PUBLISH (or of the will). Zero-initialise; set the
 * has_ flags for the numeric ones. Ignored with MQTT 3.1.1. Strings are
 * NUL-terminated UTF-8; all are copied by the calls that take them.
 */
struct tern_props {
	bool has_payload_format;
	uint8_t payload_format; /* 0 bytes, 1 UTF-8 */
	bool has_message_expiry;
	uint32_t message_expiry; /* seconds */
	const char *content_type;
	const char *response_topic;
	const void *correlation_data;
	size_t correlation_len;
	const struct tern_user_prop *user_props;
	size_t user_prop_count;
	/* Received messages only: the subscription identifiers that matched
	 * (ignored when publishing). */
	const uint32_t *sub_ids;
	size_t sub_id_count;
};

/*
 * A received message, valid only during the on_message callback: copy what
 * you keep (topic, payload, property strings all point into the client's
 * buffers, which the next read reuses).
 */
struct tern_message {
	const char *topic; /* NUL-terminated (aliases resolved) */
	size_t topic_len;
	const void *payload; /* not NUL-terminated */
	size_t payload_len;
	int qos;
	bool retain;
	bool dup;
	const struct tern_props *props; /* never NULL; empty with 3.1.1 */
	uint16_t packet_id;   /* QoS 1/2: the server's packet id; 0 for QoS 0 */
	uint16_t topic_alias; /* v5: the alias the server used (topic is
	                       * resolved anyway), 0 for none */
};

/* One filter of a SUBSCRIBE. */
struct tern_sub {
	const char *filter;       /* NUL-terminated */
	int qos;                  /* 0, 1, 2: the maximum QoS wanted */
	bool no_local;            /* v5: not our own messages */
	bool retain_as_published; /* v5: keep the retain flag as sent */
	int retain_handling; /* v5: 0 send retained, 1 only if new, 2 never */
};

/* Log levels of the on_log callback. */
enum tern_log_level {
	TERN_LOG_ERROR = 0,
	TERN_LOG_WARNING = 1,
	TERN_LOG_INFO = 2,
	TERN_LOG_DEBUG = 3,
};

/*
 * Callbacks (all optional; `ud` is options.userdata). Pointer arguments
 * are valid only during the call.
 *
 * on_connect: after each connection attempt's outcome. rc 0: connected,
 *   `reason` is the CONNACK code (0), session_present as the server said.
 *   rc < 0: the attempt failed (TERN_ECONNECT, TERN_ETLS,
 *   TERN_ETIMEDOUT, TERN_EREFUSED with `reason` the CONNACK code, ...);
 *   `why` is a sentence (e.g. the TLS verification error), never NULL.
 * on_disconnect: a connection that was up went down. rc 0 when asked by
 *   tern_client_disconnect(); else the cause (TERN_ECLOSED, TERN_ETIMEDOUT
 *   for a keepalive timeout, TERN_EPROTO for a protocol violation by the
 *   server, TERN_ETOOBIG for a packet above maximum_packet_size, TERN_EIO).
 * `reason` is the v5 DISCONNECT reason code the server sent, or -1 when it sent
 * none. A reconnect follows when enabled and not asked to disconnect.
 * on_message: one received PUBLISH (duplicates of QoS 2 are suppressed).
 * on_publish: a publish is complete: QoS 0 handed to the connection's
 *   output (not a delivery guarantee), QoS
 *   1 PUBACK, QoS 2 PUBCOMP received (rc 0, `reason` the server's reason
 *   code, >= 0x80 meaning refused), or abandoned (rc TERN_ELIMIT when the
 *   offline queue dropped it, TERN_ETOOBIG when larger than the server's
 *   maximum packet size, TERN_ECANCELED when the client was destroyed).
 * on_subscribe: SUBACK for the subscription with `token`: one granted QoS
 *   or reason code (>= 0x80 failure) per filter, in order. Called again
 *   after a resubscription.
 * on_unsubscribe: UNSUBACK; v5 codes per filter (3.1.1: all 0, count n).
 * on_log: one line of the client's log (connection events, errors).
 */
struct tern_callbacks {
	void (*on_connect)(tern_client *c, int rc, int reason,
	                   bool session_present, const char *why, void *ud);
	void (*on_disconnect)(tern_client *c, int rc, int reason, void *ud);
	void (*on_message)(tern_client *c, const struct tern_message *m,
	                   void *ud);
	void (*on_publish)(tern_client *c, tern_token token, int rc, int reason,
	                   void *ud);
	void (*on_subscribe)(tern_client *c, tern_token token,
	                     const uint8_t *codes, size_t n, void *ud);
	void (*on_unsubscribe)(tern_client *c, tern_token token,
	                       const uint8_t *codes, size_t n, void *ud);
	void (*on_log)(tern_client *c, int level, const char *line, void *ud);
};

/*
 * Options. Initialise with tern_options_init(), then set what you need.
 * Strings are copied by tern_client_new(); the struct may be freed after.
 * Explicit fields override the URL (host, port, path, username, password).
 */
struct tern_options {
	/* Where: "mqtt://[user[:pass]@]host[:port]", mqtts://, ws://, wss://
	 * ("ws://host:8083/mqtt"; path defaults to /mqtt). Default ports:
	 * 1883, 8883, 80, 443. IPv6 literals in brackets. */
	const char *url;
	const char *host; /* override */
	int port;         /* override when > 0 */
	const char *path; /* override (WebSocket) */

	/* MQTT */
	int version;           /* TERN_MQTT_5 (default) or TERN_MQTT_311 */
	const char *client_id; /* NULL or "": server assigns (v5) or empty
	                        * (3.1.1, needs clean_start) */
	bool clean_start;      /* default true */
	uint16_t keepalive;    /* seconds, default 60; 0 none */
	const char *username;
	const char *password; /* may hold bytes: see password_len */
	size_t password_len;  /* 0: strlen(password) */

	/* Will (sent by the server when the connection is lost). */
	const char *will_topic; /* NULL: no will */
	const void *will_payload;
	size_t will_payload_len;
	int will_qos;
	bool will_retain;
	struct tern_props will_props; /* v5 */
	uint32_t will_delay;          /* v5 Will Delay Interval, seconds */

	/* v5 CONNECT properties (0 = not sent). */
	uint32_t session_expiry;      /* seconds; 0xFFFFFFFF never */
	uint16_t receive_maximum;     /* QoS 1/2 we accept at once */
	uint32_t maximum_packet_size; /* largest packet we accept; larger
	                               * ones close the connection */
	uint16_t topic_alias_maximum; /* aliases the server may use */
	bool request_response_info;
	int request_problem_info; /* -1 (default): not sent; 0 or 1 */
	const struct tern_user_prop *user_props;
	size_t user_prop_count;

	/* Flow */
	uint16_t max_inflight; /* QoS 1/2 messages unacknowledged at once,
	                        * default 20; the server's Receive Maximum
	                        * lowers it */
	size_t max_queued;     /* offline queue bound (messages), default
	                        * 1000; 0 = no queue: a message that cannot
	                        * be handed to the connection at once meets
	                        * queue_policy (TERN_ELIMIT) */
	int queue_policy;      /* enum tern_queue_policy */
	bool topic_alias;      /* v5: use outbound topic aliases when the
	                        * server allows them, default true */

	/* TLS (mqtts://, wss://) */
	const char *cafile; /* NULL and capath NULL: system trust store */
	const char *capath;
	const char *certfile; /* client certificate (mutual TLS) */
	const char *keyfile;
	const char *keyfile_password;
	bool tls_no_verify;      /* do not verify the server's certificate at
	                          * all (testing only) */
	bool tls_insecure;       /* verify the chain but not the host name */
	const char *tls_version; /* minimum: "tlsv1.2" (default), "tlsv1.3" */
	const char *alpn; /* comma-separated, e.g. "mqtt"; default none */

	/* Timing */
	int connect_timeout_ms;   /* TCP+TLS+WebSocket+CONNACK, default
	                           * 10000 */
	int reconnect_initial_ms; /* first delay, default 1000; 0 = never
	                           * reconnect */
	int reconnect_max_ms;     /* cap, default 30000 */
	double reconnect_factor;  /* growth per attempt, default 2.0 */

	struct tern_callbacks cb;
	void *userdata;
};

/* Fills o with the defaults above. */
TERN_API void tern_options_init(struct tern_options *o);

/*
 * Creates a client (not yet connected). Returns NULL on an invalid option
 * (bad URL, TLS files that cannot be read, ...) or out of memory; when err
 * is not NULL it receives a sentence (errlen bytes, NUL-terminated).
 * The caller owns the client and frees it with tern_client_destroy().
 */
TERN_API tern_client *tern_client_new(const struct tern_options *o, char *err,
                                      size_t errlen);

/*
 * Stops the threaded loop if running, closes the connection without
 * DISCONNECT (the will is published), completes every pending operation
 * with TERN_ECANCELED and frees the client. NULL is allowed.
 */
TERN_API void tern_client_destroy(tern_client *c);

/*
 * Starts connecting and returns at once; the outcome comes to on_connect.
 * With reconnect enabled, failed attempts are retried with backoff.
 * Returns 0, or TERN_EEXIST when already connecting or connected.
 */
TERN_API int tern_client_connect_async(tern_client *c);

/*
 * Connects and waits up to timeout_ms (< 0: options.connect_timeout_ms) for
 * the CONNACK. Returns 0 when connected, or the attempt's error
 * (TERN_ECONNECT, TERN_ETLS, TERN_EREFUSED, TERN_ETIMEDOUT, ...); after a
 * failure the client is idle (no retries: call again). *session_present
 * (may be NULL) receives the server's flag.
 */
TERN_API int tern_client_connect(tern_client *c, int timeout_ms,
                                 bool *session_present);

/*
 * Sends DISCONNECT (reason 0: the will is discarded), stops reconnecting
 * and closes once it is written. Queued and inflight messages are kept in
 * the client (a later connect resumes them). Non-blocking: returns 0 at
 * once; on_disconnect follows with rc 0.
 */
TERN_API int tern_client_disconnect_async(tern_client *c);

/* What a v5 DISCONNECT says (tern_client_disconnect_with). */
struct tern_disconnect {
	int reason; /* 0 normal, 0x04 "disconnect with will message", ... */
	bool has_session_expiry;
	uint32_t session_expiry; /* not above 0 if CONNECT sent 0 (§3.14) */
	const char *reason_string;
	const struct tern_user_prop *user_props;
	size_t user_prop_count;
};

/*
 * tern_client_disconnect_async() with a v5 reason code and properties
 * (copied; ignored with 3.1.1: the DISCONNECT is then a plain one). d NULL
 * is a normal disconnect. Returns 0 or TERN_EINVAL (reason outside 0..255,
 * invalid UTF-8), TERN_ENOMEM.
 */
TERN_API int tern_client_disconnect_with(tern_client *c,
                                         const struct tern_disconnect *d);

/*
 * The same, waiting up to timeout_ms for inflight QoS 1/2 messages and
 * queued messages to complete first (0: do not wait for them), then for
 * the DISCONNECT to be written. Returns 0, or TERN_ETIMEDOUT when messages
 * were still inflight at the deadline (the connection is closed anyway).
 */
TERN_API int tern_client_disconnect(tern_client *c, int timeout_ms);

/*
 * Publishes `len` bytes of payload to topic (copied). qos 0, 1 or 2;
 * props may be NULL (ignored with 3.1.1). *token (may be NULL) receives
 * the token on_publish will report. When not connected, or when the
 * inflight window is full, the message waits in the offline queue.
 * Returns 0, TERN_EINVAL (bad topic, QoS or property), TERN_ETOOBIG
 * (larger than the server's maximum packet size), TERN_ELIMIT (queue full
 * with TERN_QUEUE_REFUSE), TERN_ENOMEM. With the DROP policies a full
 * queue still returns 0 and on_publish reports TERN_ELIMIT for the
 * message dropped.
 */
TERN_API int tern_client_publish(tern_client *c, const char *topic,
                                 const void *payload, size_t len, int qos,
                                 bool retain, const struct tern_props *props,
                                 tern_token *token);

/*
 * Publishes and waits up to timeout_ms for completion (QoS 0: written;
 * QoS 1: PUBACK; QoS 2: PUBCOMP). Returns 0 with *reason (may be NULL) the
 * server's reason code, an error of tern_client_publish(), or
 * TERN_ETIMEDOUT (the message stays queued or inflight and completes
 * later through on_publish).
 */
TERN_API int tern_client_publish_wait(tern_client *c, const char *topic,
                                      const void *payload, size_t len, int qos,
                                      bool retain,
                                      const struct tern_props *props,
                                      int timeout_ms, int *reason);

/*
 * Subscribes to n filters in one SUBSCRIBE (copied). sub_id > 0 sets the v5
 * Subscription Identifier (1..268435455). When not connected, it is sent
 * on the next connection. The subscription is remembered and made again
 * after a reconnect that did not resume the session. Returns 0 with
 * *token (may be NULL), TERN_EINVAL (bad filter or option), TERN_ENOMEM.
 */
TERN_API int tern_client_subscribe(tern_client *c, const struct tern_sub *subs,
                                   size_t n, uint32_t sub_id,
                                   tern_token *token);

/*
 * tern_client_subscribe() with v5 user properties in the SUBSCRIBE (nup
 * entries of up, copied; sent again on resubscription; ignored with
 * 3.1.1). Same returns.
 */
TERN_API int tern_client_subscribe_props(tern_client *c,
                                         const struct tern_sub *subs, size_t n,
                                         uint32_t sub_id,
                                         const struct tern_user_prop *up,
                                         size_t nup, tern_token *token);

/*
 * Subscribes and waits up to timeout_ms for the SUBACK; codes (may be NULL,
 * else n entries) receives the granted QoS or failure code per filter.
 * Returns 0 (check the codes), an error of tern_client_subscribe(), or
 * TERN_ETIMEDOUT.
 */
TERN_API int tern_client_subscribe_wait(tern_client *c,
                                        const struct tern_sub *subs, size_t n,
                                        uint32_t sub_id, int timeout_ms,
                                        uint8_t *codes);

/*
 * Unsubscribes from n filters (they are also forgotten for
 * resubscription). Returns 0 with *token, TERN_EINVAL, TERN_ENOMEM.
 */
TERN_API int tern_client_unsubscribe(tern_client *c, const char *const *filters,
                                     size_t n, tern_token *token);

/* tern_client_unsubscribe() with v5 user properties in the UNSUBSCRIBE. */
TERN_API int tern_client_unsubscribe_props(tern_client *c,
                                           const char *const *filters, size_t n,
                                           const struct tern_user_prop *up,
                                           size_t nup, tern_token *token);

/* Unsubscribes and waits for the UNSUBACK (codes as for subscribe_wait). */
TERN_API int tern_client_unsubscribe_wait(tern_client *c,
                                          const char *const *filters, size_t n,
                                          int timeout_ms, uint8_t *codes);

/* Starts the loop thread. Returns 0, TERN_EEXIST if running, TERN_EIO. */
TERN_API int tern_client_loop_start(tern_client *c);

/* Stops and joins the loop thread (the connection stays as it is). */
TERN_API int tern_client_loop_stop(tern_client *c);

/* Event bits of tern_client_wanted_events(). */
enum { TERN_EV_READ = 1, TERN_EV_WRITE = 2 };

/*
 * External loop: the socket to poll (-1 while there is none: just wait
 * tern_client_timeout_ms()), the events wanted on it, and the
 * milliseconds until the client needs loop_once even without I/O (timers:
 * keepalive, reconnect, timeouts; -1 none). They change after every call
 * into the client, so read them again before each poll.
 */
TERN_API int tern_client_fd(tern_client *c);
TERN_API int tern_client_wanted_events(tern_client *c);
TERN_API int tern_client_timeout_ms(tern_client *c);

/*
 * Waits up to timeout_ms (0: do not wait) for I/O on the client's socket,
 * then does what is due: reads and dispatches packets, writes, timers,
 * reconnects, callbacks. Returns 0, or TERN_EINVAL when the threaded loop
 * runs or when called from a callback.
 */
TERN_API int tern_client_loop_once(tern_client *c, int timeout_ms);

/* Whether a connection is up (CONNACK received and not lost). */
TERN_API bool tern_client_is_connected(tern_client *c);

/* Counts for monitoring and tests. */
struct tern_stats {
	size_t queued;     /* in the offline queue */
	size_t inflight;   /* QoS 1/2 sent, not yet acknowledged */
	uint64_t connects; /* successful connections so far */
	uint64_t dropped;  /* messages dropped by the queue policy */
	uint16_t server_receive_maximum; /* from the last CONNACK */
	uint16_t server_topic_alias_maximum;
	uint32_t server_maximum_packet_size; /* 0: none given */
};
TERN_API void tern_client_stats(tern_client *c, struct tern_stats *out);

#ifdef __cplusplus
}
#endif

#endif
