/*
 * Mosquitto-format password files (see passwd.h). Loading decodes every
 * line into an entry holding the user, the hash type, the iteration count,
 * the raw salt and the raw 64-byte digest, then sorts the entries by user
 * so a check is a binary search followed by one hash computation and a
 * constant-time comparison. Reading and computing one hash is
 * base/pwhash.c, shared with `tern passwd`, which writes these files.
 */
#include "broker/passwd.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/error.h"
#include "base/file.h"
#include "base/pwhash.h"

#define DIGEST_LEN PWHASH_DIGEST_LEN

/* Longest user name quoted back in an error message. */
#define QUOTE_MAX 64

struct entry {
	char *user; /* owned */
	size_t line;
	struct pwhash h;
};

struct passwd_db {
	struct entry *v; /* sorted by user once parsed */
	size_t n, cap;
	struct entry dummy; /* hashed for unknown users; matches nothing */
};

struct parser {
	const char *name;
	size_t line;
	char *err;
	size_t errlen;
	struct passwd_db *db;
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

void passwd_free(struct passwd_db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->n; i++)
		free(db->v[i].user);
	if (db->v)
		OPENSSL_cleanse(db->v, db->cap * sizeof(*db->v));
	free(db->v);
	free(db);
}

static int grow(struct passwd_db *db)
{
	size_t ncap = db->cap ? db->cap * 2 : 16;
	struct entry *nv;

	if (db->n < db->cap)
		return 0;
	nv = realloc(db->v, ncap * sizeof(*nv));
	if (!nv)
		return TERN_ENOMEM;
	db->v = nv;
	db->cap = ncap;
	return 0;
}

static int parse_line(struct parser *p, const char *s, size_t len)
{
	struct passwd_db *db = p->db;
	const char *colon;
	struct entry *e;

	if (len && s[len - 1] == '\r')
		len--;
	if (len == 0)
		return fail(p, "blank line");
	if (s[0] == '#')
		return 0;
	colon = memchr(s, ':', len);
	if (!colon)
		return fail(p, "expected user:hash");
	if (colon == s)
		return fail(p, "empty user name");
	if (grow(db))
		return TERN_ENOMEM;
	e = &db->v[db->n];
	memset(e, 0, sizeof(*e));
	e->line = p->line;
	colon++;
	if (!pwhash_parse(colon, len - (size_t)(colon - s), &e->h))
		return fail(p, "malformed or unsupported password hash "
		               "(expected $6$ or $7$)");
	e->user = strndup(s, (size_t)(colon - 1 - s));
	if (!e->user)
		return TERN_ENOMEM;
	db->n++;
	return 0;
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

static int entry_cmp(const void *x, const void *y)
{
	const struct entry *a = x, *b = y;
	int c = strcmp(a->user, b->user);

	if (c)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

/* Sorts the entries and refuses a user given twice (at its later line). */
static int sort_entries(struct parser *p)
{
	struct passwd_db *db = p->db;

	if (db->n)
		qsort(db->v, db->n, sizeof(*db->v), entry_cmp);
	for (size_t i = 1; i < db->n; i++) {
		if (strcmp(db->v[i - 1].user, db->v[i].user))
			continue;
		p->line = db->v[i].line;
		return fail(p, "duplicate user '%.*s'", QUOTE_MAX,
		            db->v[i].user);
	}
	return 0;
}

/* The entry hashed for unknown users: costs what the file's users cost. */
static void make_dummy(struct passwd_db *db)
{
	struct entry *d = &db->dummy;

	d->h.type = PWHASH_PBKDF2;
	d->h.iterations = PWHASH_ITERATIONS;
	d->h.saltlen = PWHASH_SALT_LEN;
	for (size_t i = 0; i < db->n; i++) {
		if (db->v[i].h.type == PWHASH_PBKDF2) {
			d->h.iterations = db->v[i].h.iterations;
			break;
		}
	}
}

int passwd_parse(const char *text, const char *name, struct passwd_db **out,
                 char *err, size_t errlen)
{
	struct parser p = {
	        .name = name ? name : "passwd", .err = err, .errlen = errlen};
	int rc = TERN_ENOMEM;

	p.db = calloc(1, sizeof(*p.db));
	if (!p.db)
		goto fail;
	rc = parse_text(&p, text ? text : "");
	if (rc)
		goto fail;
	rc = sort_entries(&p);
	if (rc)
		goto fail;
	make_dummy(p.db);
	*out = p.db;
	return 0;
fail:
	if (rc == TERN_ENOMEM && err && errlen)
		snprintf(err, errlen, "%s: out of memory", p.name);
	passwd_free(p.db);
	return rc;
}

int passwd_load(const char *path, struct passwd_db **out, char *err,
                size_t errlen)
{
	char *text = NULL;
	int rc = file_read_text(path, &text, err, errlen);

	if (rc)
		return rc;
	rc = passwd_parse(text, path, out, err, errlen);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rc;
}

/* Computes e's digest of the password into out. */
static bool hash_password(const struct entry *e, const uint8_t *pw, size_t len,
                          uint8_t out[DIGEST_LEN])
{
	return pwhash_compute(&e->h, pw, len, out);
}

static const struct entry *find(const struct passwd_db *db, const char *user)
{
	size_t lo = 0, hi = db->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(user, db->v[mid].user);
		if (c == 0)
			return &db->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

bool passwd_check(const struct passwd_db *db, const char *user,
                  const uint8_t *password, size_t len)
{
	uint8_t got[DIGEST_LEN];
	const struct entry *e;
	bool ok;

	if (!db || !user || len > INT_MAX || (!password && len))
		return false;
	/* No file line can hold a hash of a password with a zero byte, and
	 * HMAC would take "pw\0" for "pw" (it pads keys with zeros). */
	if (len && memchr(password, '\0', len))
		return false;
	e = find(db, user);
	ok = hash_password(e ? e : &db->dummy, password, len, got) &&
	     CRYPTO_memcmp(got, e ? e->h.digest : db->dummy.h.digest,
	                   DIGEST_LEN) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return e && ok;
}

static bool valid_new_user(const char *user)
{
	return user && user[0] && user[0] != '#' && !strpbrk(user, ":\r\n");
}

int passwd_make_line(const char *user, const char *password, int iterations,
                     char *out, size_t cap)
{
	struct pwhash h;
	char text[PWHASH_TEXT_MAX];
	int n, rc;

	if (!valid_new_user(user) || !password || !out)
		return TERN_EINVAL;
	rc = pwhash_make(PWHASH_PBKDF2, iterations, password, &h);
	if (rc == 0)
		rc = pwhash_format(&h, text, sizeof(text));
	pwhash_wipe(&h);
	if (rc < 0)
		goto done;
	n = snprintf(out, cap, "%s:%s", user, text);
	rc = n < 0 ? TERN_EIO : (size_t)n >= cap ? TERN_ETOOBIG : n;
done:
	if (rc < 0 && cap)
		out[0] = '\0'; /* never leave a truncated line behind */
	OPENSSL_cleanse(text, sizeof(text));
	return rc;
}
