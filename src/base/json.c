/* The JSON writer and reader; see json.h. */
#include "base/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/utf8.h"

void json_w_init(struct json_w *w)
{
	memset(w, 0, sizeof(*w));
	w->first[0] = true;
}

void json_w_free(struct json_w *w)
{
	free(w->buf);
	json_w_init(w);
}

int json_w_finish(struct json_w *w)
{
	if (w->oom)
		return TERN_ENOMEM;
	return w->depth == 0 ? 0 : TERN_EINVAL;
}

/* Appends n bytes, keeping the buffer NUL-terminated. */
static void put(struct json_w *w, const char *s, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n + 1 > w->cap) {
		size_t ncap = w->cap ? w->cap : 256;
		char *nb;

		while (ncap < w->len + n + 1)
			ncap *= 2;
		nb = realloc(w->buf, ncap);
		if (!nb) {
			w->oom = true;
			return;
		}
		w->buf = nb;
		w->cap = ncap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void put_escaped(struct json_w *w, const char *s, size_t n)
{
	size_t i, run = 0;

	put(w, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[8];

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		put(w, s + run, i - run);
		run = i + 1;
		switch (ch) {
		case '"': put(w, "\\\"", 2); break;
		case '\\': put(w, "\\\\", 2); break;
		case '\n': put(w, "\\n", 2); break;
		case '\r': put(w, "\\r", 2); break;
		case '\t': put(w, "\\t", 2); break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
			put(w, esc, 6);
		}
	}
	put(w, s + run, n - run);
	put(w, "\"", 1);
}

/* The comma and key before a value. */
static void member(struct json_w *w, const char *key)
{
	int d = w->depth < JSON_MAX_DEPTH ? w->depth : JSON_MAX_DEPTH - 1;

	if (!w->first[d])
		put(w, ",", 1);
	w->first[d] = false;
	if (key) {
		put_escaped(w, key, strlen(key));
		put(w, ":", 1);
	}
}

static void open_(struct json_w *w, const char *key, const char *brace)
{
	member(w, key);
	put(w, brace, 1);
	if (w->depth + 1 >= JSON_MAX_DEPTH) {
		w->oom = true; /* deeper than anything tern writes */
		return;
	}
	w->first[++w->depth] = true;
}

static void close_(struct json_w *w, const char *brace)
{
	if (w->depth > 0)
		w->depth--;
	put(w, brace, 1);
}

void json_obj_begin(struct json_w *w, const char *key)
{
	open_(w, key, "{");
}

void json_obj_end(struct json_w *w)
{
	close_(w, "}");
}

void json_arr_begin(struct json_w *w, const char *key)
{
	open_(w, key, "[");
}

void json_arr_end(struct json_w *w)
{
	close_(w, "]");
}

void json_strn(struct json_w *w, const char *key, const char *s, size_t len)
{
	member(w, key);
	put_escaped(w, s, len);
}

void json_str(struct json_w *w, const char *key, const char *s)
{
	if (!s) {
		json_null(w, key);
		return;
	}
	json_strn(w, key, s, strlen(s));
}

void json_u64(struct json_w *w, const char *key, uint64_t v)
{
	char buf[24];

	member(w, key);
	put(w, buf, (size_t)snprintf(buf, sizeof(buf), "%" PRIu64, v));
}

void json_i64(struct json_w *w, const char *key, int64_t v)
{
	char buf[24];

	member(w, key);
	put(w, buf, (size_t)snprintf(buf, sizeof(buf), "%" PRId64, v));
}

void json_bool(struct json_w *w, const char *key, bool v)
{
	member(w, key);
	put(w, v ? "true" : "false", v ? 4 : 5);
}

void json_null(struct json_w *w, const char *key)
{
	member(w, key);
	put(w, "null", 4);
}

/* ---- reader ---- */

struct rd {
	const char *s;
	size_t len, i;
};

static void skip_ws(struct rd *r)
{
	while (r->i < r->len && (r->s[r->i] == ' ' || r->s[r->i] == '\t' ||
	                         r->s[r->i] == '\n' || r->s[r->i] == '\r'))
		r->i++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads 4 hex digits at p (which has at least 4 bytes). */
static int hex4(const char *p)
{
	int v = 0;

	for (int k = 0; k < 4; k++) {
		int h = hexval(p[k]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* A string starting at the quote; v gets the bytes inside the quotes. */
static int read_string(struct rd *r, struct json_val *v)
{
	size_t start = ++r->i;

	while (r->i < r->len) {
		unsigned char ch = (unsigned char)r->s[r->i];

		if (ch == '"') {
			v->type = JSON_STRING;
			v->p = r->s + start;
			v->len = r->i - start;
			r->i++;
			return utf8_check((const uint8_t *)v->p, v->len) == 0
			               ? 0
			               : TERN_EMALFORMED;
		}
		if (ch < 0x20)
			return TERN_EMALFORMED;
		if (ch == '\\') {
			if (r->i + 1 >= r->len)
				return TERN_EMALFORMED;
			ch = (unsigned char)r->s[r->i + 1];
			if (ch == 'u') {
				if (r->i + 6 > r->len ||
				    hex4(r->s + r->i + 2) < 0)
					return TERN_EMALFORMED;
				r->i += 6;
				continue;
			}
			if (!strchr("\"\\/bfnrt", ch) || ch == '\0')
				return TERN_EMALFORMED;
			r->i += 2;
			continue;
		}
		r->i++;
	}
	return TERN_EMALFORMED;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A number as RFC 8259 §6 writes it. */
static int read_number(struct rd *r, struct json_val *v)
{
	size_t start = r->i;

	if (r->i < r->len && r->s[r->i] == '-')
		r->i++;
	if (r->i >= r->len || !is_digit(r->s[r->i]))
		return TERN_EMALFORMED;
	if (r->s[r->i] == '0')
		r->i++;
	else
		while (r->i < r->len && is_digit(r->s[r->i]))
			r->i++;
	if (r->i < r->len && r->s[r->i] == '.') {
		r->i++;
		if (r->i >= r->len || !is_digit(r->s[r->i]))
			return TERN_EMALFORMED;
		while (r->i < r->len && is_digit(r->s[r->i]))
			r->i++;
	}
	if (r->i < r->len && (r->s[r->i] == 'e' || r->s[r->i] == 'E')) {
		r->i++;
		if (r->i < r->len && (r->s[r->i] == '+' || r->s[r->i] == '-'))
			r->i++;
		if (r->i >= r->len || !is_digit(r->s[r->i]))
			return TERN_EMALFORMED;
		while (r->i < r->len && is_digit(r->s[r->i]))
			r->i++;
	}
	v->type = JSON_NUMBER;
	v->p = r->s + start;
	v->len = r->i - start;
	return 0;
}

static int read_word(struct rd *r, const char *word, enum json_type t,
                     struct json_val *v)
{
	size_t n = strlen(word);

	if (r->len - r->i < n || memcmp(r->s + r->i, word, n) != 0)
		return TERN_EMALFORMED;
	v->type = t;
	v->p = r->s + r->i;
	v->len = n;
	r->i += n;
	return 0;
}

static int read_value(struct rd *r, struct json_val *v, int depth);

/*
 * An object or array starting at its opening bracket. Members of the
 * top-level object (depth 0) whose keys are wanted are stored.
 */
static int read_container(struct rd *r, struct json_val *v, int depth,
                          const char *const *names, struct json_val *vals,
                          size_t n)
{
	bool obj = r->s[r->i] == '{';
	char close = obj ? '}' : ']';
	size_t start = r->i++;
	int rc;

	if (depth >= JSON_MAX_DEPTH)
		return TERN_ETOOBIG;
	skip_ws(r);
	if (r->i < r->len && r->s[r->i] == close) {
		r->i++;
		goto done;
	}
	for (;;) {
		struct json_val key = {0}, val = {0};

		skip_ws(r);
		if (obj) {
			if (r->i >= r->len || r->s[r->i] != '"')
				return TERN_EMALFORMED;
			if ((rc = read_string(r, &key)) != 0)
				return rc;
			skip_ws(r);
			if (r->i >= r->len || r->s[r->i] != ':')
				return TERN_EMALFORMED;
			r->i++;
			skip_ws(r);
		}
		if ((rc = read_value(r, &val, depth + 1)) != 0)
			return rc;
		for (size_t k = 0; obj && k < n; k++)
			if (strlen(names[k]) == key.len &&
			    memcmp(names[k], key.p, key.len) == 0)
				vals[k] = val;
		skip_ws(r);
		if (r->i >= r->len)
			return TERN_EMALFORMED;
		if (r->s[r->i] == close) {
			r->i++;
			break;
		}
		if (r->s[r->i] != ',')
			return TERN_EMALFORMED;
		r->i++;
	}
done:
	v->type = obj ? JSON_OBJECT : JSON_ARRAY;
	v->p = r->s + start;
	v->len = r->i - start;
	return 0;
}

static int read_value(struct rd *r, struct json_val *v, int depth)
{
	if (r->i >= r->len)
		return TERN_EMALFORMED;
	switch (r->s[r->i]) {
	case '"': return read_string(r, v);
	case '{':
	case '[': return read_container(r, v, depth, NULL, NULL, 0);
	case 't': return read_word(r, "true", JSON_TRUE, v);
	case 'f': return read_word(r, "false", JSON_FALSE, v);
	case 'n': return read_word(r, "null", JSON_NULL, v);
	default: return read_number(r, v);
	}
}

int json_object_get(const char *text, size_t len, const char *const *names,
                    struct json_val *vals, size_t n)
{
	struct rd r = {.s = text, .len = len};
	struct json_val top;
	int rc;

	memset(vals, 0, n * sizeof(*vals));
	skip_ws(&r);
	if (r.i >= r.len || r.s[r.i] != '{')
		return TERN_EMALFORMED;
	rc = read_container(&r, &top, 0, names, vals, n);
	if (rc != 0)
		return rc;
	skip_ws(&r);
	return r.i == r.len ? 0 : TERN_EMALFORMED;
}

int json_array_next(const struct json_val *arr, size_t *pos,
                    struct json_val *out)
{
	struct rd r = {.s = arr->p, .len = arr->len, .i = *pos};
	int rc;

	if (arr->type != JSON_ARRAY || arr->len < 2 || arr->p[0] != '[')
		return TERN_EMALFORMED;
	if (r.i == 0)
		r.i = 1; /* past the '[' */
	skip_ws(&r);
	if (r.i >= r.len || r.s[r.i] == ']')
		return 0;
	/* Depth 1: the array was checked as a whole, nested values too. */
	if ((rc = read_value(&r, out, 1)) != 0)
		return rc;
	skip_ws(&r);
	if (r.i < r.len && r.s[r.i] == ',')
		r.i++;
	*pos = r.i;
	return 1;
}

/* Writes code point cp as UTF-8; returns its length. */
static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decodes the \u escape at p[i] (validated by the reader), a surrogate
 * pair taking two; advances *i past it. Returns the code point or -1. */
static long unicode_escape(const char *p, size_t len, size_t *i)
{
	long cp = hex4(p + *i + 2), lo;

	*i += 6;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return -1;
	if (cp < 0xd800 || cp > 0xdbff)
		return cp;
	if (*i + 6 > len || p[*i] != '\\' || p[*i + 1] != 'u')
		return -1;
	lo = hex4(p + *i + 2);
	if (lo < 0xdc00 || lo > 0xdfff)
		return -1;
	*i += 6;
	return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
}

int json_string(const struct json_val *v, char *out, size_t cap)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *p = v->p;
	size_t i = 0, o = 0;

	while (i < v->len) {
		char tmp[4];
		size_t n = 1;

		if (p[i] != '\\') {
			tmp[0] = p[i++];
		} else if (p[i + 1] == 'u') {
			long cp = unicode_escape(p, v->len, &i);

			if (cp < 0)
				return TERN_EMALFORMED;
			n = put_utf8(tmp, (unsigned)cp);
		} else {
			tmp[0] = to[strchr(from, p[i + 1]) - from];
			i += 2;
		}
		if (o + n > cap)
			return TERN_ETOOBIG;
		memcpy(out + o, tmp, n);
		o += n;
	}
	return (int)o;
}

int json_int(const struct json_val *v, int64_t lo, int64_t hi, int64_t *out)
{
	int64_t x = 0;
	size_t i = 0;
	bool neg = false;

	if (v->type != JSON_NUMBER || v->len == 0)
		return TERN_EINVAL;
	if (v->p[0] == '-') {
		neg = true;
		i++;
	}
	if (i == v->len)
		return TERN_EINVAL;
	for (; i < v->len; i++) {
		if (!is_digit(v->p[i]) || x > (INT64_MAX - 9) / 10)
			return TERN_EINVAL;
		x = x * 10 + (v->p[i] - '0');
	}
	if (neg)
		x = -x;
	if (x < lo || x > hi)
		return TERN_EINVAL;
	*out = x;
	return 0;
}
