/*
 * The MQTT codec: packets of MQTT 3.1 (level 3), 3.1.1 (level 4) and 5.0
 * (level 5), both directions. The codec is pure (DESIGN.md §2): bytes in,
 * structs out and structs in, bytes out; no I/O, no globals, no allocation.
 *
 * Decoding is zero-copy: every string, binary field and payload in a decoded
 * packet points into the caller's buffer, which must outlive the struct.
 * Strings are NOT NUL-terminated.
 *
 * Usage on a stream:
 *   n = mqtt_fixed_header(buf, len, &fh);      // TERN_EAGAIN until complete
 *   if (n > 0 && len >= n + fh.remaining)
 *       rc = mqtt_decode(&fh, buf + n, fh.remaining, version, &pkt, &err);
 */
#ifndef TERN_MQTT_PACKET_H
#define TERN_MQTT_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15, /* v5 only */
};

/* Protocol levels as carried in CONNECT. */
enum { MQTT_V31 = 3, MQTT_V311 = 4, MQTT_V5 = 5 };

/* The largest remaining length the variable byte integer can express. */
#define MQTT_MAX_REMAINING 268435455u

/* Reason codes (MQTT 5 §2.4); v3 CONNACK return codes are 0x00-0x05. */
enum mqtt_reason {
	MQTT_RC_SUCCESS = 0x00, /* also: normal disconnect, granted QoS 0 */
	MQTT_RC_GRANTED_QOS1 = 0x01,
	MQTT_RC_GRANTED_QOS2 = 0x02,
	MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
	MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	MQTT_RC_CONTINUE_AUTH = 0x18,
	MQTT_RC_REAUTHENTICATE = 0x19,
	MQTT_RC_UNSPECIFIED = 0x80,
	MQTT_RC_MALFORMED = 0x81,
	MQTT_RC_PROTOCOL_ERROR = 0x82,
	MQTT_RC_IMPL_SPECIFIC = 0x83,
	MQTT_RC_UNSUPPORTED_VERSION = 0x84,
	MQTT_RC_CLIENT_ID_INVALID = 0x85,
	MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
	MQTT_RC_NOT_AUTHORIZED = 0x87,
	MQTT_RC_SERVER_UNAVAILABLE = 0x88,
	MQTT_RC_SERVER_BUSY = 0x89,
	MQTT_RC_BANNED = 0x8A,
	MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
	MQTT_RC_BAD_AUTH_METHOD = 0x8C,
	MQTT_RC_KEEPALIVE_TIMEOUT = 0x8D,
	MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,
	MQTT_RC_PACKET_ID_IN_USE = 0x91,
	MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
	MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
	MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
	MQTT_RC_PACKET_TOO_LARGE = 0x95,
	MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	MQTT_RC_QUOTA_EXCEEDED = 0x97,
	MQTT_RC_ADMIN_ACTION = 0x98,
	MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
	MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
	MQTT_RC_SERVER_MOVED = 0x9D,
	MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	MQTT_RC_MAX_CONNECT_TIME = 0xA0,
	MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
	MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* v3 CONNACK return codes. */
enum {
	MQTT3_CONNACK_ACCEPTED = 0,
	MQTT3_CONNACK_BAD_VERSION = 1,
	MQTT3_CONNACK_ID_REJECTED = 2,
	MQTT3_CONNACK_UNAVAILABLE = 3,
	MQTT3_CONNACK_BAD_CREDENTIALS = 4,
	MQTT3_CONNACK_NOT_AUTHORIZED = 5,
};

/* v5 property identifiers (MQTT 5 §2.2.2.2). */
enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT = 0x01,
	MQTT_PROP_MESSAGE_EXPIRY = 0x02,
	MQTT_PROP_CONTENT_TYPE = 0x03,
	MQTT_PROP_RESPONSE_TOPIC = 0x08,
	MQTT_PROP_CORRELATION_DATA = 0x09,
	MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
	MQTT_PROP_SESSION_EXPIRY = 0x11,
	MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
	MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
	MQTT_PROP_AUTH_METHOD = 0x15,
	MQTT_PROP_AUTH_DATA = 0x16,
	MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
	MQTT_PROP_WILL_DELAY = 0x18,
	MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
	MQTT_PROP_RESPONSE_INFO = 0x1A,
	MQTT_PROP_SERVER_REFERENCE = 0x1C,
	MQTT_PROP_REASON_STRING = 0x1F,
	MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
	MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
	MQTT_PROP_TOPIC_ALIAS = 0x23,
	MQTT_PROP_MAXIMUM_QOS = 0x24,
	MQTT_PROP_RETAIN_AVAILABLE = 0x25,
	MQTT_PROP_USER_PROPERTY = 0x26,
	MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
	MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Bit for property id `id` in mqtt_props.present. Ids are all < 64. */
#define MQTT_PBIT(id) (UINT64_C(1) << (id))

struct mqtt_str {
	const uint8_t
	        *p; /* points into the decode buffer; not NUL-terminated */
	uint16_t len;
};

struct mqtt_bin {
	const uint8_t *p;
	uint32_t len;
};

/*
 * v5 properties of one packet (or of a will). A field is meaningful only when
 * its bit is set in `present`. User properties stay in their wire encoding
 * (a run of 0x26 key value entries) so they can be forwarded as one memcpy;
 * iterate them with mqtt_user_prop_next().
 */
struct mqtt_props {
	uint64_t present;
	uint8_t payload_format;
	uint8_t request_problem_info;
	uint8_t request_response_info;
	uint8_t maximum_qos;
	uint8_t retain_available;
	uint8_t wildcard_sub_available;
	uint8_t sub_id_available;
	uint8_t shared_sub_available;
	uint16_t server_keep_alive;
	uint16_t receive_maximum;
	uint16_t topic_alias_maximum;
	uint16_t topic_alias;
	uint32_t message_expiry;
	uint32_t session_expiry;
	uint32_t will_delay;
	uint32_t maximum_packet_size;
	struct mqtt_str content_type;
	struct mqtt_str response_topic;
	struct mqtt_bin correlation_data;
	struct mqtt_str assigned_client_id;
	struct mqtt_str auth_method;
	struct mqtt_bin auth_data;
	struct mqtt_str response_info;
	struct mqtt_str server_reference;
	struct mqtt_str reason_string;
	/* Decoding: the first subscription identifier; sub_id_count says how
	 * many were present (a server->client PUBLISH may carry several; use
	 * mqtt_sub_id_next over sub_ids_raw to read them all).
	 * Encoding: sub_ids/sub_id_count are written, sub_id is ignored. */
	uint32_t sub_id;
	uint32_t sub_id_count;
	const uint32_t *sub_ids;
	const uint8_t *sub_ids_raw; /* decode only: whole property block */
	uint32_t sub_ids_raw_len;
	/* User properties, wire-encoded; user_props_len bytes. */
	const uint8_t *user_props;
	uint32_t user_props_len;
	uint32_t user_prop_count;
};

struct mqtt_fixed {
	uint8_t type;       /* enum mqtt_type */
	uint8_t flags;      /* low nibble of the first byte */
	uint32_t remaining; /* remaining length */
};

struct mqtt_connect {
	uint8_t version; /* MQTT_V31, MQTT_V311, MQTT_V5 */
	bool clean;      /* clean session (v3) / clean start (v5) */
	uint16_t keepalive;
	struct mqtt_str client_id;
	bool will;
	uint8_t will_qos;
	bool will_retain;
	struct mqtt_str will_topic;
	struct mqtt_bin will_payload;
	struct mqtt_props will_props;
	bool has_username;
	struct mqtt_str username;
	bool has_password;
	struct mqtt_bin password;
	struct mqtt_props props;
};

struct mqtt_connack {
	bool session_present;
	uint8_t reason; /* v3 return code or v5 reason code */
	struct mqtt_props props;
};

struct mqtt_publish {
	uint8_t qos;
	bool dup;
	bool retain;
	struct mqtt_str
	        topic;      /* may be empty in v5 when a topic alias is set */
	uint16_t packet_id; /* 0 for QoS 0 */
	struct mqtt_props props;
	const uint8_t *payload;
	uint32_t payload_len;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
struct mqtt_ack {
	uint16_t packet_id;
	uint8_t reason; /* MQTT_RC_SUCCESS when absent */
	struct mqtt_props props;
};

/* One entry of SUBSCRIBE (options) or UNSUBSCRIBE (filter only). */
struct mqtt_sub_entry {
	struct mqtt_str filter;
	uint8_t qos;
	bool no_local;
	bool retain_as_published;
	uint8_t retain_handling; /* 0, 1 or 2 */
};

/*
 * SUBSCRIBE and UNSUBSCRIBE. The entries stay in wire form (entries,
 * entries_len) and are read with mqtt_sub_next(); mqtt_decode() has already
 * validated every entry, so iteration cannot fail. For encoding, set
 * `list`/`count` instead.
 */
struct mqtt_subscribe {
	uint16_t packet_id;
	struct mqtt_props props;
	const uint8_t *entries;
	uint32_t entries_len;
	uint32_t count;
	const struct mqtt_sub_entry *list; /* encode only */
};

/* SUBACK and UNSUBACK: one reason code per entry (UNSUBACK v3 has none). */
struct mqtt_suback {
	uint16_t packet_id;
	struct mqtt_props props;
	const uint8_t *codes;
	uint32_t count;
};

/* DISCONNECT and AUTH. */
struct mqtt_disconnect {
	uint8_t reason;
	struct mqtt_props props;
};

struct mqtt_packet {
	uint8_t type;
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_ack ack;
		struct mqtt_subscribe subscribe;   /* also UNSUBSCRIBE */
		struct mqtt_suback suback;         /* also UNSUBACK */
		struct mqtt_disconnect disconnect; /* also AUTH */
	} u;
};

/*
 * Why a decode failed: the reason code to put on the wire (v5 CONNACK or
 * DISCONNECT; for CONNECT, v3 return code in connack_rc) and a static
 * sentence for the log.
 */
struct mqtt_error {
	uint8_t reason;     /* v5 reason code, e.g. MQTT_RC_MALFORMED */
	uint8_t connack_rc; /* v3 CONNACK code when a CONNECT was refused, else
	                       0 */
	const char *what;   /* static string, e.g. "QoS 3 in PUBLISH" */
};

/*
 * Parses the fixed header at buf. Returns the header's size (2..5) with *out
 * filled, TERN_EAGAIN if buf holds only part of it, or TERN_EMALFORMED when
 * the remaining length takes more than 4 bytes. Does not look at flags.
 */
int mqtt_fixed_header(const uint8_t *buf, size_t len, struct mqtt_fixed *out);

/*
 * Decodes one complete packet body (the `fh->remaining` bytes following the
 * fixed header). `version` is the connection's protocol level; for CONNECT
 * it is ignored and the level is read from the packet. Validates everything
 * the spec requires of a packet in isolation: fixed-header flags, lengths,
 * UTF-8 (MQTT 1.5.3), topic names and filters, QoS values, packet id != 0
 * where required, reserved bits, property ids allowed in that packet type,
 * duplicates and value ranges. State-dependent checks (topic alias range,
 * receive maximum, packet ids in use) are the caller's.
 *
 * Returns 0 on success. On failure returns TERN_EMALFORMED, TERN_EPROTO,
 * TERN_EUTF8 or TERN_EVERSION (unsupported protocol name/level in CONNECT;
 * then err->connack_rc / err->reason say what CONNACK to send) and fills
 * *err. Pointers in *out point into body.
 */
int mqtt_decode(const struct mqtt_fixed *fh, const uint8_t *body, size_t len,
                uint8_t version, struct mqtt_packet *out,
                struct mqtt_error *err);

/*
 * Reads the next SUBSCRIBE/UNSUBSCRIBE entry. `*pos` starts at 0. Returns 1
 * with *e filled, 0 at the end. `is_sub` selects SUBSCRIBE (with options).
 */
int mqtt_sub_next(const struct mqtt_subscribe *s, bool is_sub, uint8_t version,
                  uint32_t *pos, struct mqtt_sub_entry *e);

/* Reads the next user property of props; *pos starts at 0. Returns 1 or 0. */
int mqtt_user_prop_next(const struct mqtt_props *props, uint32_t *pos,
                        struct mqtt_str *key, struct mqtt_str *value);

/* Reads the next subscription identifier of decoded props (*pos from 0). */
int mqtt_sub_id_next(const struct mqtt_props *props, uint32_t *pos,
                     uint32_t *id);

/*
 * Size in bytes of the whole encoded packet (fixed header included) for the
 * given protocol level. For PUBLISH the payload is included.
 */
size_t mqtt_encoded_size(const struct mqtt_packet *p, uint8_t version);

/*
 * Encodes p for protocol level `version` into out (capacity cap). Returns the
 * number of bytes written, or TERN_ETOOBIG if cap is too small, or
 * TERN_EINVAL if p cannot be expressed in that version. Properties are
 * written only for v5.
 */
int mqtt_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *out,
                size_t cap);

/*
 * Encodes a PUBLISH without its payload: fixed header (whose remaining length
 * counts the payload), topic, packet id and properties. The caller sends the
 * payload bytes after it (zero-copy fan-out). Same returns as mqtt_encode.
 */
int mqtt_encode_publish_head(const struct mqtt_publish *p, uint8_t version,
                             uint8_t *out, size_t cap);

/* Size of the encoded properties block, length prefix included. */
size_t mqtt_props_size(const struct mqtt_props *props);

/*
 * Topic rules (MQTT 4.7). Names: non-empty, no '+' or '#', valid UTF-8
 * without U+0000. Filters: non-empty, '#' only as the whole last level, '+'
 * only as a whole level; "$share/{group}/{filter}" requires a non-empty group
 * without '+', '#' or '/', and a non-empty valid filter.
 * Return 0 or a negative TERN_E* code.
 */
int mqtt_topic_name_check(const uint8_t *s, size_t len);
int mqtt_topic_filter_check(const uint8_t *s, size_t len);

/*
 * Splits "$share/group/filter". Returns 1 if s is a shared subscription
 * (group and filter then point into s), 0 if it is not, TERN_EPROTO if it is
 * malformed.
 */
int mqtt_share_split(const uint8_t *s, size_t len, struct mqtt_str *group,
                     struct mqtt_str *filter);

/* Human-readable packet type name ("PUBLISH"), for logs. */
const char *mqtt_type_name(uint8_t type);

#endif
