/*
 * Declarations shared by the codec's files (packet.c, props.c, topic.c) and
 * nothing else: a bounds-checked reader over a packet body, a counting
 * writer, and the property block entry points. The writer writes only while
 * the bytes fit and always counts, so one function serves both "how big is
 * this" and "write it" and the two can never disagree.
 */
#ifndef TERN_MQTT_CODEC_INTERNAL_H
#define TERN_MQTT_CODEC_INTERNAL_H

#include <string.h>

#include "mqtt/packet.h"

/* Reads a body field by field; every read checks what is left. */
struct mqtt_rd {
	const uint8_t *p;
	size_t len;
	size_t pos;
};

static inline size_t rd_left(const struct mqtt_rd *r)
{
	return r->len - r->pos;
}

static inline bool rd_bytes(struct mqtt_rd *r, size_t n, const uint8_t **out)
{
	if (n > rd_left(r))
		return false;
	*out = r->p + r->pos;
	r->pos += n;
	return true;
}

static inline bool rd_u8(struct mqtt_rd *r, uint8_t *v)
{
	if (rd_left(r) < 1)
		return false;
	*v = r->p[r->pos++];
	return true;
}

static inline bool rd_u16(struct mqtt_rd *r, uint16_t *v)
{
	if (rd_left(r) < 2)
		return false;
	*v = (uint16_t)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
	r->pos += 2;
	return true;
}

static inline bool rd_u32(struct mqtt_rd *r, uint32_t *v)
{
	const uint8_t *b;

	if (!rd_bytes(r, 4, &b))
		return false;
	*v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
	     b[3];
	return true;
}

/* A two-byte length followed by that many bytes (string or binary data). */
static inline bool rd_str(struct mqtt_rd *r, struct mqtt_str *s)
{
	return rd_u16(r, &s->len) && rd_bytes(r, s->len, &s->p);
}

static inline bool rd_bin(struct mqtt_rd *r, struct mqtt_bin *b)
{
	uint16_t n;

	if (!rd_u16(r, &n))
		return false;
	b->len = n;
	return rd_bytes(r, n, &b->p);
}

/*
 * Decodes a variable byte integer (MQTT 5 §1.5.5) at p. Returns the bytes
 * used (1..4), TERN_EAGAIN if p ends inside it, TERN_EMALFORMED if it needs
 * a fifth byte or is not in its shortest form.
 */
int mqtt_vbi_decode(const uint8_t *p, size_t len, uint32_t *v);

/* Reads a variable byte integer inside a body; truncation is malformed. */
static inline int rd_vbi(struct mqtt_rd *r, uint32_t *v)
{
	int n = mqtt_vbi_decode(r->p + r->pos, rd_left(r), v);

	if (n < 0)
		return TERN_EMALFORMED;
	r->pos += (size_t)n;
	return 0;
}

/*
 * Counts every byte; stores a byte only while it fits in cap (p may be NULL
 * to count only). err records a value that cannot be encoded.
 */
struct mqtt_wr {
	uint8_t *p;
	size_t cap;
	size_t pos;
	int err;
};

static inline void wr_bytes(struct mqtt_wr *w, const void *src, size_t n)
{
	if (w->p && n && n <= w->cap && w->pos <= w->cap - n)
		memcpy(w->p + w->pos, src, n);
	w->pos += n;
}

static inline void wr_u8(struct mqtt_wr *w, uint8_t v)
{
	wr_bytes(w, &v, 1);
}

static inline void wr_u16(struct mqtt_wr *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

	wr_bytes(w, b, 2);
}

static inline void wr_u32(struct mqtt_wr *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16),
	                (uint8_t)(v >> 8), (uint8_t)v};

	wr_bytes(w, b, 4);
}

/* Writes a variable byte integer; values above the maximum set err. */
void wr_vbi(struct mqtt_wr *w, uint32_t v);

/* Strings and binary data carry a two-byte length; longer is EINVAL. */
void wr_lenbytes(struct mqtt_wr *w, const uint8_t *p, size_t len);

static inline void wr_str(struct mqtt_wr *w, const struct mqtt_str *s)
{
	wr_lenbytes(w, s->p, s->len);
}

static inline void wr_bin(struct mqtt_wr *w, const struct mqtt_bin *b)
{
	wr_lenbytes(w, b->p, b->len);
}

/*
 * Property contexts: the packet type, or 0 for the will
 * properties inside CONNECT (no packet has type 0).
 */
#define MQTT_CTX_WILL 0u

/*
 * Reads a property block (length prefix included) for context ctx into
 * *out, validating ids, duplicates and values. Returns 0, or a negative
 * TERN_E* code with *err filled.
 */
int mqtt_props_decode(struct mqtt_rd *r, unsigned ctx, struct mqtt_props *out,
                      struct mqtt_error *err);

/* Writes a property block (length prefix included). */
void mqtt_props_write(struct mqtt_wr *w, const struct mqtt_props *props);

/* Fills *err and returns rc, so a check reads `return fail(...)`. */
int mqtt_fail(struct mqtt_error *err, int rc, uint8_t reason, const char *what);

#endif
