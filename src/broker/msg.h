/*
 * An application message as the broker holds it: one immutable, refcounted
 * object per PUBLISH received (DESIGN.md §4). Subscribers' output queues,
 * offline queues, the retained store and inflight windows all hold
 * references; nothing copies the payload per subscriber.
 *
 * Thread safety: the refcount is atomic; every other field is written once in
 * msg_new() and only read afterwards, so a message may be shared freely
 * between workers.
 */
#ifndef TERN_BROKER_MSG_H
#define TERN_BROKER_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/packet.h"

/*
 * The PUBLISH header of a message encoded once for one variant (protocol
 * family, QoS, RETAIN), shared by every subscriber of that variant
 * (DESIGN.md §4). For QoS 1/2 the packet id is a placeholder at pid_off
 * that each subscriber's copy patches.
 */
struct msg_enc {
	uint16_t len;
	uint16_t pid_off; /* 0 for QoS 0 */
	uint8_t bytes[];
};

/* Variants: 2 protocol families (3.x, 5) x 3 QoS x 2 RETAIN. */
#define MSG_ENC_VARIANTS 12

struct msg {
	atomic_uint refs;
	uint8_t qos; /* QoS as published */
	bool retain; /* RETAIN flag as published */
	bool has_expiry;
	uint32_t expiry;      /* message expiry interval (s) at receipt */
	uint64_t received_ms; /* clock_ms() at receipt, for expiry */
	const void *origin;   /* publishing session, compared for no-local */
	const char *topic;    /* NUL-terminated, inside data[] */
	uint16_t topic_len;
	const uint8_t *payload; /* inside data[] */
	uint32_t payload_len;
	/*
	 * The v5 properties forwarded to subscribers (payload format, content
	 * type, response topic, correlation data, user properties); pointers
	 * refer to data[]. Never holds topic alias or subscription ids.
	 */
	struct mqtt_props props;
	/* Id of the message's row in the durable store, 0 until a queue row
	 * refers to it (persist.c assigns it once, CAS). */
	_Atomic uint64_t store_id;
	/* The counter this message's bytes are charged to (msg_charge),
	 * given back when it is freed; NULL = not counted. alloc_len is the
	 * size of the one allocation. */
	atomic_int_fast64_t *charged;
	size_t alloc_len;
	/* Encoded headers, built on first use by any worker (CAS). */
	_Atomic(struct msg_enc *) enc[MSG_ENC_VARIANTS];
	uint8_t data[];
};

/*
 * Creates a message from a decoded PUBLISH whose topic is `topic` (the alias
 * already resolved by the caller). Copies topic, payload and forwarded
 * properties. The result has one reference, owned by the caller. `origin`
 * is only compared, never dereferenced. Returns NULL when out of memory.
 */
struct msg *msg_new(const struct mqtt_publish *pub, const char *topic,
                    size_t topic_len, const void *origin, uint64_t now_ms);

/* Creates a message from plain parts (used for $SYS and wills); no props. */
struct msg *msg_new_simple(const char *topic, const void *payload,
                           size_t payload_len, uint8_t qos, bool retain,
                           uint64_t now_ms);

/*
 * Charges the message's bytes to `counter` (memory_limit's accounting,
 * memlimit.h) until the message is freed. Call once, right after creating
 * it, before it is shared with other threads.
 */
void msg_charge(struct msg *m, atomic_int_fast64_t *counter);

/* Takes a reference; returns m for convenience. */
static inline struct msg *msg_ref(struct msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

/* Drops a reference and frees the message with the last one. NULL is ok. */
void msg_unref(struct msg *m);

/*
 * The shared encoded PUBLISH header for (version, qos, retain), without DUP,
 * subscription identifiers, topic alias or message expiry — callers needing
 * those encode per subscriber. Built once and kept until the message is
 * freed; any thread. Returns NULL when out of memory or on an encoding
 * error.
 */
const struct msg_enc *msg_encoded(struct msg *m, uint8_t version, uint8_t qos,
                                  bool retain);

/*
 * Whether the message has expired at now_ms, and if not, the remaining
 * expiry interval in seconds to forward (MQTT 5 §3.3.2.3.3).
 */
bool msg_expired(const struct msg *m, uint64_t now_ms, uint32_t *remaining);

#endif
