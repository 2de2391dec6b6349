/*
 * How `tern sub` and `tern rr` print a message: Mosquitto's -F format
 * strings (%t, %p, %x, %j, @Y, \n ...), the -v "topic payload" line and the
 * JSON object of %j/%J/--json. Everything here is pure: a message described
 * by struct fmt_msg goes in, bytes come out in a growable buffer, so the
 * output depends on nothing but the message, the format and TZ
 * (tests/e2e/tern_cli.test.mjs checks every specifier with TZ=UTC).
 */
#ifndef TERN_APPS_FORMAT_H
#define TERN_APPS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One MQTT v5 user property; neither string is NUL-terminated. */
struct fmt_kv {
	const char *key;
	size_t key_len;
	const char *val;
	size_t val_len;
};

/*
 * A received message as the formatter sees it. Nothing is owned: every
 * pointer is borrowed from the caller for the duration of one call. A NULL
 * pointer means "property absent"; the has_* flags do the same for numbers.
 */
struct fmt_msg {
	const char *topic;
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
	int qos;
	bool retain;
	uint16_t mid;         /* packet id; 0 for QoS 0 */
	struct timespec when; /* receive time (CLOCK_REALTIME) */

	const char *content_type;
	size_t content_type_len;
	const char *response_topic;
	size_t response_topic_len;
	const uint8_t *correlation;
	size_t correlation_len;
	bool has_expiry;
	uint32_t expiry;
	bool has_pfi;
	uint8_t pfi;
	bool has_alias;
	uint16_t alias;
	const uint32_t *sub_ids;
	size_t n_sub_ids;
	const struct fmt_kv *user_props;
	size_t n_user_props;
};

/* A growable output buffer; start it zeroed, free it with fmt_buf_free. */
struct fmt_buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Frees the buffer's memory and zeroes it; NULL-safe. */
void fmt_buf_free(struct fmt_buf *b);

/*
 * Appends the message formatted by the -F string fmt to out. Local time
 * (TZ) is used for %I, %j/%J and @ sequences. Returns 0, TERN_EINVAL for a
 * bad format string (with a message in err, which may be NULL) or
 * TERN_ENOMEM; out may hold partial output after an error.
 */
int fmt_render(const char *fmt, const struct fmt_msg *m, struct fmt_buf *out,
               char *err, size_t errlen);

/* Checks a -F string once up front so bad input fails before connecting. */
int fmt_check(const char *fmt, char *err, size_t errlen);

/*
 * Appends the message as one JSON object (no newline): tst (RFC 3339 with
 * microseconds), topic, qos, retain, payloadlen, mid (QoS > 0), properties
 * (when any) and payload. The payload is a JSON string when it is UTF-8;
 * with parse_payload it is embedded as is when it is itself valid JSON.
 * A payload that is not UTF-8 is given as "payload_hex" instead. Returns 0
 * or TERN_ENOMEM.
 */
int fmt_json(const struct fmt_msg *m, bool parse_payload, struct fmt_buf *out);

/* True when s[0..len) is one valid JSON text (RFC 8259) in UTF-8. */
bool fmt_json_valid(const uint8_t *s, size_t len);

#endif
