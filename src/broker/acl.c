/*
 * Mosquitto-format ACL files (see acl.h for the format and the decisions).
 * Parsing splits the text into lines and dispatches on the first word
 * through a small table; rules land in one of three places: the anonymous
 * list, a user section, or the pattern list. User sections are sorted by
 * name once loading ends, so a check finds a user's rules by binary search.
 *
 * Checking walks the rule topic and the client's topic level by level. The
 * one walk answers both questions acl_check() asks: whether a topic name
 * matches a rule, and whether a rule covers a whole subscription filter,
 * since a topic name is a filter without wildcards. Pattern levels "%c" and
 * "%u" are compared as literal values during the walk, never spliced into
 * the rule text, so a client id or username cannot smuggle wildcards in.
 */
#include "broker/acl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/file.h"

/* Read, write, or both; 0 marks a deny rule. */
#define ACL_RW (ACL_READ | ACL_WRITE)

/* Longest piece of user text quoted back in an error message. */
#define QUOTE_MAX 64

/* The length to print with "%.*s" when quoting len bytes of user text. */
#define QUOTE(len) ((int)((len) > QUOTE_MAX ? QUOTE_MAX : (len)))

struct rule {
	char *topic; /* owned, NUL-terminated */
	size_t len;
	int access; /* ACL_READ / ACL_WRITE bits, 0 = deny */
};

struct rules {
	struct rule *v;
	size_t n, cap;
};

struct section {
	char *user; /* owned */
	size_t seq; /* position in the file: keeps the sort stable */
	struct rules rules;
};

struct acl {
	struct rules anon;     /* topic lines before any user line */
	struct rules patterns; /* pattern lines, for every client */
	struct section *users; /* sorted by (user, seq) once parsed */
	size_t nusers, ucap;
};

struct parser {
	const char *name;
	size_t line;
	char *err;
	size_t errlen;
	struct acl *acl;
	struct rules *cur; /* where topic lines go: anon or a section */
};

/* The client being checked; lengths are cached for the level walk. */
struct who {
	const char *id;
	size_t idlen;
	const char *user;
	size_t userlen;
};

static int fail(struct parser *p, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int fail(struct parser *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!p->err || !p->errlen)
		return TERN_ECONFIG;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%zu: %s", p->name, p->line, msg);
	return TERN_ECONFIG;
}

static void rules_free(struct rules *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->v[i].topic);
	free(rs->v);
}

void acl_free(struct acl *a)
{
	if (!a)
		return;
	rules_free(&a->anon);
	rules_free(&a->patterns);
	for (size_t i = 0; i < a->nusers; i++) {
		free(a->users[i].user);
		rules_free(&a->users[i].rules);
	}
	free(a->users);
	free(a);
}

static char *dup_span(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	if (!d)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* Grows an array of `size`-byte items so one more fits. */
static int grow(void **v, size_t n, size_t *cap, size_t size)
{
	size_t ncap = *cap ? *cap * 2 : 8;
	void *nv;

	if (n < *cap)
		return 0;
	nv = realloc(*v, ncap * size);
	if (!nv)
		return TERN_ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

static int rules_add(struct rules *rs, const char *t, size_t len, int access)
{
	char *topic = NULL;

	if (grow((void **)&rs->v, rs->n, &rs->cap, sizeof(*rs->v)))
		return TERN_ENOMEM;
	topic = dup_span(t, len);
	if (!topic)
		return TERN_ENOMEM;
	rs->v[rs->n++] =
	        (struct rule){.topic = topic, .len = len, .access = access};
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Trims blanks on both sides of [*s, *s + *len). */
static void trim(const char **s, size_t *len)
{
	while (*len && is_space(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_space((*s)[*len - 1]))
		(*len)--;
}

/* Length of the first word of s; *rest points past it and its blanks. */
static size_t first_word(const char *s, size_t len, const char **rest,
                         size_t *restlen)
{
	size_t w = 0;

	while (w < len && !is_space(s[w]))
		w++;
	*rest = s + w;
	*restlen = len - w;
	trim(rest, restlen);
	return w;
}

static bool span_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && memcmp(s, word, len) == 0;
}

static size_t level_end(const char *s, size_t len, size_t pos)
{
	const char *slash = memchr(s + pos, '/', len - pos);

	return slash ? (size_t)(slash - s) : len;
}

static bool is_subst(const char *l, size_t len)
{
	return len == 2 && l[0] == '%' && (l[1] == 'c' || l[1] == 'u');
}

/* Whether one level of a rule topic is well formed; see valid_filter(). */
static bool valid_level(const char *l, size_t len, bool last, bool pattern)
{
	bool wild = memchr(l, '+', len) || memchr(l, '#', len);

	if (wild && !(len == 1 && (l[0] == '+' || (l[0] == '#' && last))))
		return false;
	if (!pattern || is_subst(l, len))
		return true;
	for (size_t i = 0; i + 1 < len; i++)
		if (l[i] == '%' && (l[i + 1] == 'c' || l[i + 1] == 'u'))
			return false;
	return true;
}

/* Whether t is a valid MQTT filter (and, for patterns, uses %c / %u only
 * as whole levels, as Mosquitto documents). */
static bool valid_filter(const char *t, size_t len, bool pattern)
{
	size_t pos = 0, end;

	if (len == 0 || len > 65535)
		return false;
	for (;;) {
		end = level_end(t, len, pos);
		if (!valid_level(t + pos, end - pos, end == len, pattern))
			return false;
		if (end == len)
			return true;
		pos = end + 1;
	}
}

static const struct {
	const char *word;
	int access;
} access_words[] = {
        {"read", ACL_READ},
        {"write", ACL_WRITE},
        {"readwrite", ACL_RW},
        {"deny", 0},
};

static int find_access(const char *w, size_t len)
{
	for (size_t i = 0; i < sizeof(access_words) / sizeof(*access_words);
	     i++)
		if (span_is(w, len, access_words[i].word))
			return access_words[i].access;
	return -1;
}

/* Handles `topic ...` (pattern false) and `pattern ...` (pattern true). */
static int on_rule(struct parser *p, const char *s, size_t len, bool pattern)
{
	const char *t;
	size_t tlen, wlen = first_word(s, len, &t, &tlen);
	int access = find_access(s, wlen);

	if (len == 0)
		return fail(p, "missing topic");
	if (access < 0 && tlen)
		return fail(p, "unknown access '%.*s'", QUOTE(wlen), s);
	if (access < 0) {
		access = ACL_RW;
		t = s;
		tlen = len;
	} else if (tlen == 0) {
		return fail(p, "missing topic after '%.*s'", QUOTE(wlen), s);
	}
	if (!valid_filter(t, tlen, pattern))
		return fail(p,
		            pattern ? "invalid pattern '%.*s'"
		                    : "invalid topic filter '%.*s'",
		            QUOTE(tlen), t);
	return rules_add(pattern ? &p->acl->patterns : p->cur, t, tlen, access);
}

static int on_topic(struct parser *p, const char *s, size_t len)
{
	return on_rule(p, s, len, false);
}

static int on_pattern(struct parser *p, const char *s, size_t len)
{
	return on_rule(p, s, len, true);
}

static int on_user(struct parser *p, const char *s, size_t len)
{
	struct acl *a = p->acl;
	struct section *sec;
	char *name = NULL;

	if (len == 0)
		return fail(p, "user needs a name");
	if (grow((void **)&a->users, a->nusers, &a->ucap, sizeof(*a->users)))
		return TERN_ENOMEM;
	name = dup_span(s, len);
	if (!name)
		return TERN_ENOMEM;
	sec = &a->users[a->nusers];
	*sec = (struct section){.user = name, .seq = a->nusers};
	a->nusers++;
	p->cur = &sec->rules;
	return 0;
}

static const struct {
	const char *word;
	int (*fn)(struct parser *p, const char *rest, size_t len);
} keywords[] = {
        {"topic", on_topic},
        {"pattern", on_pattern},
        {"user", on_user},
};

static int parse_line(struct parser *p, const char *s, size_t len)
{
	const char *rest;
	size_t restlen, wlen;

	trim(&s, &len);
	if (len == 0 || s[0] == '#')
		return 0;
	wlen = first_word(s, len, &rest, &restlen);
	for (size_t i = 0; i < sizeof(keywords) / sizeof(*keywords); i++)
		if (span_is(s, wlen, keywords[i].word))
			return keywords[i].fn(p, rest, restlen);
	return fail(p, "unknown keyword '%.*s'", QUOTE(wlen), s);
}

/* One line of text_each_line(); the line number goes into error messages. */
static int parse_one(void *ctx, unsigned line, const char *s, size_t len)
{
	struct parser *p = ctx;

	p->line = line;
	return parse_line(p, s, len);
}

static int parse_text(struct parser *p, const char *text)
{
	return text_each_line(text, parse_one, p);
}

static int section_cmp(const void *x, const void *y)
{
	const struct section *a = x, *b = y;
	int c = strcmp(a->user, b->user);

	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int acl_parse(const char *text, const char *name, struct acl **out, char *err,
              size_t errlen)
{
	struct parser p = {
	        .name = name ? name : "acl", .err = err, .errlen = errlen};
	int rc = TERN_ENOMEM;

	p.acl = calloc(1, sizeof(*p.acl));
	if (!p.acl)
		goto fail;
	p.cur = &p.acl->anon;
	rc = parse_text(&p, text ? text : "");
	if (rc)
		goto fail;
	if (p.acl->nusers)
		qsort(p.acl->users, p.acl->nusers, sizeof(*p.acl->users),
		      section_cmp);
	*out = p.acl;
	return 0;
fail:
	if (rc == TERN_ENOMEM && err && errlen)
		snprintf(err, errlen, "%s: out of memory", p.name);
	acl_free(p.acl);
	return rc;
}

int acl_load(const char *path, struct acl **out, char *err, size_t errlen)
{
	char *text = NULL;
	int rc = file_read_text(path, &text, err, errlen);

	if (rc)
		return rc;
	rc = acl_parse(text, path, out, err, errlen);
	free(text);
	return rc;
}

int acl_new(struct acl **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : TERN_ENOMEM;
}

int acl_add_pattern(struct acl *a, const char *topic, size_t len, int access)
{
	if ((access & ~ACL_RW) != 0 || access == 0 ||
	    memchr(topic, '\0', len) || !valid_filter(topic, len, true))
		return TERN_EINVAL;
	return rules_add(&a->patterns, topic, len, access);
}

/*
 * The value a rule level stands for: itself, or for "%c" / "%u" in a
 * pattern the client id / username. Returns false when a substituted value
 * must not match anything (see acl.h): missing, empty, holding '/', '+' or
 * '#', or a first level beginning with '$'.
 */
static bool level_value(const char **l, size_t *len, bool first,
                        const struct who *w)
{
	const char *v;
	size_t vlen;

	if (!w || !is_subst(*l, *len))
		return true;
	v = (*l)[1] == 'c' ? w->id : w->user;
	vlen = (*l)[1] == 'c' ? w->idlen : w->userlen;
	if (!v || vlen == 0 || strpbrk(v, "/+#") || (first && v[0] == '$'))
		return false;
	*l = v;
	*len = vlen;
	return true;
}

/* Whether one rule level (not '#') covers one level of the checked topic
 * or filter. */
static bool level_covers(const char *al, size_t alen, bool first,
                         const struct who *w, const char *fl, size_t flen)
{
	if (alen == 1 && al[0] == '+')
		return !(flen == 1 && fl[0] == '#') &&
		       !(first && flen && fl[0] == '$');
	if (flen == 1 && (fl[0] == '+' || fl[0] == '#'))
		return false;
	if (!level_value(&al, &alen, first, w))
		return false;
	return alen == flen && memcmp(al, fl, flen) == 0;
}

/*
 * Whether the rule topic a covers f: every topic that the filter f can
 * match is matched by a (for a topic name f, simply "a matches f"). w is
 * the client for a pattern rule, NULL for a plain one.
 */
static bool covers(const char *a, size_t alen, const struct who *w,
                   const char *f, size_t flen)
{
	size_t ap = 0, fp = 0, ae, fe;

	for (;;) {
		if (ap > alen)
			return fp > flen;
		ae = level_end(a, alen, ap);
		if (ae - ap == 1 && a[ap] == '#')
			return !(ap == 0 && f[0] == '$');
		if (fp > flen)
			return false;
		/* The filter "#" matches exactly the topics "+/#" does, as
		 * every topic has at least one level. */
		if (ap == 0 && flen == 1 && f[0] == '#')
			return alen == 3 && memcmp(a, "+/#", 3) == 0;
		fe = level_end(f, flen, fp);
		if (!level_covers(a + ap, ae - ap, ap == 0, w, f + fp, fe - fp))
			return false;
		ap = ae + 1;
		fp = fe + 1;
	}
}

/* want 0 looks for deny rules, otherwise for rules granting `want`. */
static bool rules_hit(const struct rules *rs, const struct who *w,
                      const char *f, size_t flen, int want)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->v[i];

		if (want ? !(r->access & want) : r->access != 0)
			continue;
		if (covers(r->topic, r->len, w, f, flen))
			return true;
	}
	return false;
}

/* Index of the first section of user, or nusers if there is none. */
static size_t first_section(const struct acl *a, const char *user)
{
	size_t lo = 0, hi = a->nusers, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(a->users[mid].user, user) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool any_hit(const struct acl *a, const struct who *w, const char *f,
                    size_t flen, int want)
{
	if (!w->user && rules_hit(&a->anon, NULL, f, flen, want))
		return true;
	if (w->user)
		for (size_t i = first_section(a, w->user);
		     i < a->nusers && !strcmp(a->users[i].user, w->user); i++)
			if (rules_hit(&a->users[i].rules, NULL, f, flen, want))
				return true;
	return rules_hit(&a->patterns, w, f, flen, want);
}

/* Replaces "$share/GROUP/FILTER" by FILTER; false if it is malformed. */
static bool strip_share(const char **t, size_t *len)
{
	static const char prefix[] = "$share/";
	const size_t plen = sizeof(prefix) - 1;
	const char *slash;

	if (*len < plen || memcmp(*t, prefix, plen) != 0)
		return true;
	slash = memchr(*t + plen, '/', *len - plen);
	if (!slash || slash == *t + plen)
		return false;
	if (memchr(*t + plen, '+', slash - (*t + plen)) ||
	    memchr(*t + plen, '#', slash - (*t + plen)))
		return false;
	*len -= (size_t)(slash + 1 - *t);
	*t = slash + 1;
	return *len > 0;
}

bool acl_check(const struct acl *a, const char *client_id, const char *username,
               const char *topic, size_t len, int access)
{
	struct who w = {
	        .id = client_id,
	        .idlen = client_id ? strlen(client_id) : 0,
	        .user = username,
	        .userlen = username ? strlen(username) : 0,
	};
	int want = access == ACL_SUBSCRIBE ? ACL_READ : access;

	if (!a || !topic || !len)
		return false;
	if (access != ACL_READ && access != ACL_WRITE &&
	    access != ACL_SUBSCRIBE)
		return false;
	if (access == ACL_SUBSCRIBE && !strip_share(&topic, &len))
		return false;
	if (any_hit(a, &w, topic, len, 0))
		return false;
	return any_hit(a, &w, topic, len, want);
}
