/*
 * The output formatter of `tern sub` and `tern rr` (see format.h). A -F
 * string is walked once per message: literal runs are copied, and the three
 * lead characters start a sequence: '%' a message field (with Mosquitto's
 * printf-like flags, width and maximum width), '@' a strftime field of the
 * receive time, '\' an escaped character. The field conversions are a
 * table, so adding one is one line and one small function.
 */
#include "format.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/utf8.h"

void fmt_buf_free(struct fmt_buf *b)
{
	if (!b)
		return;
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Appends n bytes, keeping the buffer NUL-terminated for debugging. */
static int put(struct fmt_buf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n + 1) {
		size_t cap = b->cap ? b->cap : 256;
		char *d;

		while (cap - b->len < n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d)
			return TERN_ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int put_fmt(struct fmt_buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int put_fmt(struct fmt_buf *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return TERN_EINVAL;
	return put(b, tmp, (size_t)n);
}

static int put_hex(struct fmt_buf *b, const uint8_t *p, size_t n, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		char two[2] = {digits[p[i] >> 4], digits[p[i] & 15]};

		rc = put(b, two, 2);
	}
	return rc;
}

/* ------------------------------------------------------------- time */

static void local_tm(const struct fmt_msg *m, struct tm *tm)
{
	time_t t = m->when.tv_sec;

	localtime_r(&t, tm);
}

/* strftime into the buffer; an empty expansion appends nothing. */
static int put_strftime(struct fmt_buf *b, const char *f, const struct tm *tm)
{
	char tmp[128];
	size_t n = strftime(tmp, sizeof(tmp), f, tm);

	return put(b, tmp, n);
}

/* ISO 8601 as Mosquitto's %I prints it: 2016-08-10T09:47:38+0100. */
static int put_iso(struct fmt_buf *b, const struct fmt_msg *m)
{
	struct tm tm;

	local_tm(m, &tm);
	return put_strftime(b, "%Y-%m-%dT%H:%M:%S%z", &tm);
}

/* RFC 3339 with microseconds for JSON: 2016-08-10T09:47:38.123456+01:00. */
static int put_rfc3339(struct fmt_buf *b, const struct fmt_msg *m)
{
	struct tm tm;
	char zone[8];
	int rc;

	local_tm(m, &tm);
	if (strftime(zone, sizeof(zone), "%z", &tm) != 5)
		strcpy(zone, "+0000");
	rc = put_strftime(b, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rc)
		rc = put_fmt(b, ".%06ld%.3s:%s", m->when.tv_nsec / 1000, zone,
		             zone + 3);
	return rc;
}

/* ------------------------------------------------------------- JSON */

/* A JSON string of UTF-8 text: quotes, backslashes and controls escaped. */
static int json_str(struct fmt_buf *b, const char *s, size_t n)
{
	static const char named[] = {['\b'] = 'b',
	                             ['\f'] = 'f',
	                             ['\n'] = 'n',
	                             ['\r'] = 'r',
	                             ['\t'] = 't'};
	int rc;
	size_t run = 0;

	/* s may be NULL for an empty string: no pointer arithmetic on it. */
	if (!n)
		return put(b, "\"\"", 2);
	rc = put(b, "\"", 1);
	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		rc = put(b, s + run, i - run);
		run = i + 1;
		if (rc)
			break;
		if (c == '"' || c == '\\')
			rc = put_fmt(b, "\\%c", c);
		else if (c < sizeof(named) && named[c])
			rc = put_fmt(b, "\\%c", named[c]);
		else
			rc = put_fmt(b, "\\u%04x", c);
	}
	if (!rc)
		rc = put(b, s + run, n - run);
	if (!rc)
		rc = put(b, "\"", 1);
	return rc;
}

/* "key":value separators: a comma before every member but the first. */
static int json_key(struct fmt_buf *b, bool *first, const char *key)
{
	int rc = *first ? 0 : put(b, ",", 1);

	*first = false;
	if (!rc)
		rc = json_str(b, key, strlen(key));
	if (!rc)
		rc = put(b, ":", 1);
	return rc;
}

/* Binary data as a string when it is UTF-8, else as key-hex in hex. */
static int json_bytes(struct fmt_buf *b, bool *first, const char *key,
                      const uint8_t *p, size_t n)
{
	char hexkey[64];
	int rc;

	if (utf8_check(p, n) == 0) {
		rc = json_key(b, first, key);
		return rc ? rc : json_str(b, (const char *)p, n);
	}
	snprintf(hexkey, sizeof(hexkey), "%s%s", key,
	         strchr(key, '-') ? "-hex" : "_hex");
	rc = json_key(b, first, hexkey);
	if (!rc)
		rc = put(b, "\"", 1);
	if (!rc)
		rc = put_hex(b, p, n, false);
	return rc ? rc : put(b, "\"", 1);
}

static int json_uint(struct fmt_buf *b, bool *first, const char *key,
                     unsigned long v)
{
	int rc = json_key(b, first, key);

	return rc ? rc : put_fmt(b, "%lu", v);
}

static int json_user_props(struct fmt_buf *b, bool *first,
                           const struct fmt_msg *m)
{
	bool inner = true;
	int rc = json_key(b, first, "user-properties");

	if (!rc)
		rc = put(b, "{", 1);
	for (size_t i = 0; i < m->n_user_props && !rc; i++) {
		const struct fmt_kv *kv = &m->user_props[i];

		rc = inner ? 0 : put(b, ",", 1);
		inner = false;
		if (!rc)
			rc = json_str(b, kv->key, kv->key_len);
		if (!rc)
			rc = put(b, ":", 1);
		if (!rc)
			rc = json_str(b, kv->val, kv->val_len);
	}
	return rc ? rc : put(b, "}", 1);
}

static int json_sub_ids(struct fmt_buf *b, bool *first, const struct fmt_msg *m)
{
	int rc = json_key(b, first, "subscription-identifiers");

	if (!rc)
		rc = put(b, "[", 1);
	for (size_t i = 0; i < m->n_sub_ids && !rc; i++)
		rc = put_fmt(b, "%s%lu", i ? "," : "",
		             (unsigned long)m->sub_ids[i]);
	return rc ? rc : put(b, "]", 1);
}

static bool has_props(const struct fmt_msg *m)
{
	return m->content_type || m->n_user_props || m->correlation ||
	       m->response_topic || m->has_pfi || m->has_expiry ||
	       m->has_alias || m->n_sub_ids;
}

/* The "properties" object, in the order Mosquitto prints its keys. */
static int json_props(struct fmt_buf *b, const struct fmt_msg *m)
{
	bool first = true;
	int rc = put(b, "{", 1);

	if (!rc && m->content_type) {
		rc = json_key(b, &first, "content-type");
		if (!rc)
			rc = json_str(b, m->content_type, m->content_type_len);
	}
	if (!rc && m->n_user_props)
		rc = json_user_props(b, &first, m);
	if (!rc && m->correlation)
		rc = json_bytes(b, &first, "correlation-data", m->correlation,
		                m->correlation_len);
	if (!rc && m->response_topic) {
		rc = json_key(b, &first, "response-topic");
		if (!rc)
			rc = json_str(b, m->response_topic,
			              m->response_topic_len);
	}
	if (!rc && m->has_pfi)
		rc = json_uint(b, &first, "payload-format-indicator", m->pfi);
	if (!rc && m->has_expiry)
		rc = json_uint(b, &first, "message-expiry-interval", m->expiry);
	if (!rc && m->has_alias)
		rc = json_uint(b, &first, "topic-alias", m->alias);
	if (!rc && m->n_sub_ids)
		rc = json_sub_ids(b, &first, m);
	return rc ? rc : put(b, "}", 1);
}

static int json_payload(struct fmt_buf *b, bool *first, const struct fmt_msg *m,
                        bool parse)
{
	int rc;

	if (parse && fmt_json_valid(m->payload, m->payload_len)) {
		rc = json_key(b, first, "payload");
		return rc ? rc : put(b, m->payload, m->payload_len);
	}
	return json_bytes(b, first, "payload", m->payload, m->payload_len);
}

int fmt_json(const struct fmt_msg *m, bool parse_payload, struct fmt_buf *out)
{
	bool first = true;
	int rc = put(out, "{", 1);

	if (!rc)
		rc = json_key(out, &first, "tst");
	if (!rc)
		rc = put(out, "\"", 1);
	if (!rc)
		rc = put_rfc3339(out, m);
	if (!rc)
		rc = put(out, "\"", 1);
	if (!rc)
		rc = json_key(out, &first, "topic");
	if (!rc)
		rc = json_str(out, m->topic, m->topic_len);
	if (!rc)
		rc = json_uint(out, &first, "qos", (unsigned long)m->qos);
	if (!rc)
		rc = json_uint(out, &first, "retain", m->retain);
	if (!rc)
		rc = json_uint(out, &first, "payloadlen", m->payload_len);
	if (!rc && m->qos > 0)
		rc = json_uint(out, &first, "mid", m->mid);
	if (!rc && has_props(m)) {
		rc = json_key(out, &first, "properties");
		if (!rc)
			rc = json_props(out, m);
	}
	if (!rc)
		rc = json_payload(out, &first, m, parse_payload);
	return rc ? rc : put(out, "}", 1);
}

/* ------------------------------------------------- JSON validation */

/* A recursive-descent checker; depth is bounded so hostile payloads
 * cannot exhaust the stack. */
struct jp {
	const uint8_t *s;
	const uint8_t *end;
	int depth;
};

#define JSON_MAX_DEPTH 256

static bool jp_value(struct jp *p);

static void jp_ws(struct jp *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' ||
	                         *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static bool jp_eat(struct jp *p, char c)
{
	if (p->s < p->end && *p->s == (uint8_t)c) {
		p->s++;
		return true;
	}
	return false;
}

static bool jp_digits(struct jp *p)
{
	const uint8_t *start = p->s;

	while (p->s < p->end && *p->s >= '0' && *p->s <= '9')
		p->s++;
	return p->s > start;
}

static bool jp_number(struct jp *p)
{
	jp_eat(p, '-');
	if (!jp_eat(p, '0') && !jp_digits(p))
		return false;
	if (jp_eat(p, '.') && !jp_digits(p))
		return false;
	if (jp_eat(p, 'e') || jp_eat(p, 'E')) {
		if (!jp_eat(p, '+'))
			jp_eat(p, '-');
		if (!jp_digits(p))
			return false;
	}
	return true;
}

static bool jp_hex4(struct jp *p)
{
	for (int i = 0; i < 4; i++, p->s++)
		if (p->s >= p->end ||
		    !strchr("0123456789abcdefABCDEF", *p->s) || !*p->s)
			return false;
	return true;
}

static bool jp_string(struct jp *p)
{
	if (!jp_eat(p, '"'))
		return false;
	while (p->s < p->end) {
		uint8_t c = *p->s++;

		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		if (p->s >= p->end)
			return false;
		c = *p->s++;
		if (c == 'u') {
			if (!jp_hex4(p))
				return false;
		} else if (!c || !strchr("\"\\/bfnrt", c)) {
			return false;
		}
	}
	return false;
}

static bool jp_literal(struct jp *p, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(p->end - p->s) < n || memcmp(p->s, word, n) != 0)
		return false;
	p->s += n;
	return true;
}

/* Elements of an array (key == false) or members of an object. */
static bool jp_members(struct jp *p, char close, bool key)
{
	if (++p->depth > JSON_MAX_DEPTH)
		return false;
	jp_ws(p);
	if (jp_eat(p, close))
		return p->depth--, true;
	for (;;) {
		if (key) {
			jp_ws(p);
			if (!jp_string(p))
				return false;
			jp_ws(p);
			if (!jp_eat(p, ':'))
				return false;
		}
		if (!jp_value(p))
			return false;
		jp_ws(p);
		if (jp_eat(p, close))
			return p->depth--, true;
		if (!jp_eat(p, ','))
			return false;
	}
}

static bool jp_value(struct jp *p)
{
	jp_ws(p);
	if (p->s >= p->end)
		return false;
	switch (*p->s) {
	case '{': p->s++; return jp_members(p, '}', true);
	case '[': p->s++; return jp_members(p, ']', false);
	case '"': return jp_string(p);
	case 't': return jp_literal(p, "true");
	case 'f': return jp_literal(p, "false");
	case 'n': return jp_literal(p, "null");
	default: return jp_number(p);
	}
}

bool fmt_json_valid(const uint8_t *s, size_t len)
{
	struct jp p = {s, s + len, 0};

	if (utf8_check(s, len) != 0 || !jp_value(&p))
		return false;
	jp_ws(&p);
	return p.s == p.end;
}

/* ------------------------------------------------ % conversions */

/* What a conversion honours of Mosquitto's printf-like modifiers. */
enum {
	MOD_WIDTH = 1, /* %10t: minimum width */
	MOD_ZERO = 2,  /* %05l: zero padding */
	MOD_MAX = 4,   /* %.5t: maximum width */
};

struct spec {
	bool left;
	bool zero;
	int width;
	int max; /* -1: none */
};

typedef int (*conv_fn)(struct fmt_buf *b, const struct fmt_msg *m);

static int conv_topic(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put(b, m->topic, m->topic_len);
}

static int conv_payload(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put(b, m->payload, m->payload_len);
}

static int conv_hex(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put_hex(b, m->payload, m->payload_len, false);
}

static int conv_hex_upper(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put_hex(b, m->payload, m->payload_len, true);
}

static int conv_len(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put_fmt(b, "%zu", m->payload_len);
}

static int conv_mid(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put_fmt(b, "%u", (unsigned)m->mid);
}

static int conv_qos(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put_fmt(b, "%d", m->qos);
}

static int conv_retain(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put_fmt(b, "%d", m->retain ? 1 : 0);
}

static int conv_iso(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put_iso(b, m);
}

static int conv_unix(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put_fmt(b, "%lld.%09ld", (long long)m->when.tv_sec,
	               m->when.tv_nsec);
}

static int conv_json(struct fmt_buf *b, const struct fmt_msg *m)
{
	return fmt_json(m, false, b);
}

static int conv_json_parsed(struct fmt_buf *b, const struct fmt_msg *m)
{
	return fmt_json(m, true, b);
}

static int conv_ctype(struct fmt_buf *b, const struct fmt_msg *m)
{
	return m->content_type ? put(b, m->content_type, m->content_type_len)
	                       : 0;
}

static int conv_rtopic(struct fmt_buf *b, const struct fmt_msg *m)
{
	return m->response_topic
	               ? put(b, m->response_topic, m->response_topic_len)
	               : 0;
}

static int conv_corr(struct fmt_buf *b, const struct fmt_msg *m)
{
	return m->correlation ? put(b, m->correlation, m->correlation_len) : 0;
}

static int conv_expiry(struct fmt_buf *b, const struct fmt_msg *m)
{
	return m->has_expiry ? put_fmt(b, "%lu", (unsigned long)m->expiry) : 0;
}

static int conv_pfi(struct fmt_buf *b, const struct fmt_msg *m)
{
	return m->has_pfi ? put_fmt(b, "%u", (unsigned)m->pfi) : 0;
}

static int conv_alias(struct fmt_buf *b, const struct fmt_msg *m)
{
	return m->has_alias ? put_fmt(b, "%u", (unsigned)m->alias) : 0;
}

/* Several subscription identifiers (overlapping subscriptions) are
 * comma-separated. */
static int conv_subid(struct fmt_buf *b, const struct fmt_msg *m)
{
	int rc = 0;

	for (size_t i = 0; i < m->n_sub_ids && !rc; i++)
		rc = put_fmt(b, "%s%lu", i ? "," : "",
		             (unsigned long)m->sub_ids[i]);
	return rc;
}

/* User properties as key:value, separated by spaces (as Mosquitto). */
static int conv_uprops(struct fmt_buf *b, const struct fmt_msg *m)
{
	int rc = 0;

	for (size_t i = 0; i < m->n_user_props && !rc; i++) {
		const struct fmt_kv *kv = &m->user_props[i];

		rc = i ? put(b, " ", 1) : 0;
		if (!rc)
			rc = put(b, kv->key, kv->key_len);
		if (!rc)
			rc = put(b, ":", 1);
		if (!rc)
			rc = put(b, kv->val, kv->val_len);
	}
	return rc;
}

static int conv_percent(struct fmt_buf *b, const struct fmt_msg *m)
{
	return put(b, "%", 1);
}

static const struct conv {
	char c;
	unsigned mods;
	conv_fn fn;
} convs[] = {
        {'%', 0, conv_percent},
        {'A', MOD_WIDTH | MOD_ZERO, conv_alias},
        {'C', MOD_WIDTH | MOD_MAX, conv_ctype},
        {'D', 0, conv_corr},
        {'E', MOD_WIDTH | MOD_ZERO, conv_expiry},
        {'F', MOD_WIDTH | MOD_ZERO, conv_pfi},
        {'I', MOD_WIDTH | MOD_MAX, conv_iso},
        {'j', 0, conv_json},
        {'J', 0, conv_json_parsed},
        {'l', MOD_WIDTH | MOD_ZERO, conv_len},
        {'m', MOD_WIDTH | MOD_ZERO, conv_mid},
        {'P', 0, conv_uprops},
        {'p', MOD_WIDTH, conv_payload},
        {'q', 0, conv_qos},
        {'R', MOD_WIDTH | MOD_MAX, conv_rtopic},
        {'r', 0, conv_retain},
        {'S', MOD_WIDTH | MOD_ZERO, conv_subid},
        {'t', MOD_WIDTH | MOD_MAX, conv_topic},
        {'U', 0, conv_unix},
        {'x', MOD_WIDTH | MOD_ZERO, conv_hex},
        {'X', MOD_WIDTH | MOD_ZERO, conv_hex_upper},
};

static const struct conv *conv_find(char c)
{
	for (size_t i = 0; i < sizeof(convs) / sizeof(convs[0]); i++)
		if (convs[i].c == c)
			return &convs[i];
	return NULL;
}

/* Appends field, cut to the maximum width and padded to the minimum. */
static int put_padded(struct fmt_buf *b, const struct spec *sp, unsigned mods,
                      const char *field, size_t n)
{
	size_t width = (mods & MOD_WIDTH) ? (size_t)sp->width : 0;
	bool zero = (mods & MOD_ZERO) && sp->zero && !sp->left;
	int rc = 0;

	if ((mods & MOD_MAX) && sp->max >= 0 && n > (size_t)sp->max)
		n = (size_t)sp->max;
	for (size_t i = n; i < width && !sp->left && !rc; i++)
		rc = put(b, zero ? "0" : " ", 1);
	if (!rc)
		rc = put(b, field, n);
	for (size_t i = n; i < width && sp->left && !rc; i++)
		rc = put(b, " ", 1);
	return rc;
}

static int parse_num(const char **p)
{
	int v = 0;

	while (**p >= '0' && **p <= '9') {
		if (v < 100000)
			v = v * 10 + (**p - '0');
		(*p)++;
	}
	return v;
}

/* Reads "%[-0]*[width][.max]C" at *p (on the '%'); leaves *p on C. */
static int do_percent(const char **p, const struct fmt_msg *m,
                      struct fmt_buf *out, char *err, size_t errlen)
{
	struct spec sp = {false, false, 0, -1};
	struct fmt_buf field = {0};
	const struct conv *cv;
	const char *q = *p + 1;
	int rc;

	for (; *q == '-' || *q == '0'; q++)
		*(*q == '-' ? &sp.left : &sp.zero) = true;
	sp.width = parse_num(&q);
	if (*q == '.') {
		q++;
		sp.max = parse_num(&q);
	}
	cv = *q ? conv_find(*q) : NULL;
	if (!cv) {
		if (err)
			snprintf(err, errlen,
			         *q ? "unknown format field '%%%c'"
			            : "format ends in an unfinished '%%'",
			         *q);
		return TERN_EINVAL;
	}
	*p = q;
	rc = cv->fn(&field, m);
	if (!rc)
		rc = put_padded(out, &sp, cv->mods,
		                field.data ? field.data : "", field.len);
	fmt_buf_free(&field);
	return rc;
}

/* "@X": strftime's %X of the receive time; @N nanoseconds; @@ an '@'. */
static int do_at(const char **p, const struct fmt_msg *m, struct fmt_buf *out,
                 char *err, size_t errlen)
{
	char c = (*p)[1];
	char f[3] = {'%', c, '\0'};
	struct tm tm;

	if (!c) {
		if (err)
			snprintf(err, errlen,
			         "format ends in an unfinished '@'");
		return TERN_EINVAL;
	}
	(*p)++;
	if (c == '@')
		return put(out, "@", 1);
	if (c == 'N')
		return put_fmt(out, "%09ld", m->when.tv_nsec);
	local_tm(m, &tm);
	return put_strftime(out, f, &tm);
}

static const struct {
	char c;
	char out;
} escapes[] = {
        {'\\', '\\'}, {'0', '\0'}, {'a', '\a'}, {'e', '\033'},
        {'n', '\n'},  {'r', '\r'}, {'t', '\t'}, {'v', '\v'},
};

static int do_escape(const char **p, struct fmt_buf *out, char *err,
                     size_t errlen)
{
	char c = (*p)[1];

	for (size_t i = 0; c && i < sizeof(escapes) / sizeof(escapes[0]); i++)
		if (escapes[i].c == c) {
			(*p)++;
			return put(out, &escapes[i].out, 1);
		}
	if (err)
		snprintf(err, errlen,
		         c ? "unknown escape '\\%c'"
		           : "format ends in an unfinished '\\'",
		         c);
	return TERN_EINVAL;
}

int fmt_render(const char *fmt, const struct fmt_msg *m, struct fmt_buf *out,
               char *err, size_t errlen)
{
	int rc = 0;

	for (const char *p = fmt; *p && !rc; p++) {
		size_t run = strcspn(p, "%@\\");

		if (run) {
			rc = put(out, p, run);
			p += run - 1;
		} else if (*p == '%') {
			rc = do_percent(&p, m, out, err, errlen);
		} else if (*p == '@') {
			rc = do_at(&p, m, out, err, errlen);
		} else {
			rc = do_escape(&p, out, err, errlen);
		}
	}
	return rc;
}

int fmt_check(const char *fmt, char *err, size_t errlen)
{
	struct fmt_msg m = {.topic = "t", .topic_len = 1};
	struct fmt_buf b = {0};
	int rc = fmt_render(fmt, &m, &b, err, errlen);

	fmt_buf_free(&b);
	return rc;
}
