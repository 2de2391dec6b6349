/*
 * A small JSON writer and reader for the broker's HTTP API (http_api.c).
 *
 * The writer appends to a growing buffer: objects and arrays nest, commas
 * are placed by the writer, strings are escaped (control characters as
 * \u00XX, bytes >= 0x80 passed through, so the caller hands in UTF-8). An
 * allocation failure is remembered and reported once at json_w_finish, so
 * callers need not check every call.
 *
 * The reader is pure (STYLE.md #5): it checks that a whole text is one JSON
 * object and picks out the top-level members the caller names. Values point
 * into the text; json_string() unescapes a string value into a caller's
 * buffer. Nesting is bounded (JSON_MAX_DEPTH) so hostile input cannot
 * exhaust the stack.
 */
#ifndef TERN_BASE_JSON_H
#define TERN_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 32

struct json_w {
	char *buf; /* NUL-terminated while not failed; owned */
	size_t len, cap;
	bool oom;
	int depth;
	bool first[JSON_MAX_DEPTH]; /* no member yet at this depth */
};

/* Starts an empty writer (no allocation yet). */
void json_w_init(struct json_w *w);

/* Frees the buffer; the writer may be reused after json_w_init. */
void json_w_free(struct json_w *w);

/*
 * Returns 0 with the text in w->buf (w->len bytes, NUL-terminated; still
 * owned by w), or TERN_ENOMEM if any append failed or TERN_EINVAL if
 * objects or arrays were left open.
 */
int json_w_finish(struct json_w *w);

/*
 * Each call adds one value. `key` names the member inside an object and
 * must be NULL inside an array or at the top level. Strings are
 * NUL-terminated except for json_strn (len bytes, may hold zeros, which
 * are escaped).
 */
void json_obj_begin(struct json_w *w, const char *key);
void json_obj_end(struct json_w *w);
void json_arr_begin(struct json_w *w, const char *key);
void json_arr_end(struct json_w *w);
void json_str(struct json_w *w, const char *key, const char *s);
void json_strn(struct json_w *w, const char *key, const char *s, size_t len);
void json_u64(struct json_w *w, const char *key, uint64_t v);
void json_i64(struct json_w *w, const char *key, int64_t v);
void json_bool(struct json_w *w, const char *key, bool v);
void json_null(struct json_w *w, const char *key);

enum json_type {
	JSON_ABSENT = 0, /* member not present */
	JSON_STRING,
	JSON_NUMBER,
	JSON_TRUE,
	JSON_FALSE,
	JSON_NULL,
	JSON_OBJECT,
	JSON_ARRAY,
};

/* A value inside the parsed text. For a string, p/len are the bytes
 * between the quotes (escapes not yet decoded); otherwise the whole
 * value's text. */
struct json_val {
	enum json_type type;
	const char *p;
	size_t len;
};

/*
 * Parses text[0..len) as exactly one JSON object (whitespace around it
 * allowed) and, for each top-level member whose key equals names[i]
 * (compared as written, without decoding escapes), stores its value in
 * vals[i]; names not present get JSON_ABSENT. A key given twice keeps its
 * last value. Strings must be valid UTF-8 with valid escapes. Returns 0,
 * TERN_EMALFORMED for anything that is not such an object, or TERN_ETOOBIG
 * when nesting exceeds JSON_MAX_DEPTH.
 */
int json_object_get(const char *text, size_t len, const char *const *names,
                    struct json_val *vals, size_t n);

/*
 * Steps through the elements of a JSON_ARRAY value that json_object_get()
 * returned (so already validated). *pos starts at 0 and is advanced by each
 * call. Returns 1 with the next element in *out, 0 after the last one, or
 * TERN_EMALFORMED if arr is not such an array.
 */
int json_array_next(const struct json_val *arr, size_t *pos,
                    struct json_val *out);

/*
 * Decodes a JSON_STRING value's escapes into out[0..cap) as UTF-8 (never
 * longer than v->len, so cap = v->len always suffices). Returns the length
 * written, TERN_ETOOBIG if cap is too small, or TERN_EMALFORMED for a lone
 * surrogate escape. Not NUL-terminated.
 */
int json_string(const struct json_val *v, char *out, size_t cap);

/*
 * Reads a JSON_NUMBER value that is an integer between lo and hi. Returns
 * 0 with *out set, or TERN_EINVAL (fraction, exponent, out of range, or
 * not a number).
 */
int json_int(const struct json_val *v, int64_t lo, int64_t hi, int64_t *out);

#endif
