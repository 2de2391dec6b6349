/*
 * Mosquitto-format password files (see passwd.h). Loading decodes every
 * line into an entry holding the user, the hash type, the iteration count,
 * the raw salt and the raw 64-byte digest, then sorts the entries by user
 * so a check is a binary search followed by one hash computation and a
 * constant-time comparison. The hashing is OpenSSL's libcrypto: PBKDF2 for
 * "$7$", plain SHA-512 over password then salt for "$6$", exactly as
 * mosquitto_passwd computes them.
 */
#include "broker/passwd.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base/error.h"
#include "base/file.h"

#define DIGEST_LEN         64
#define SALT_MAX           64
#define NEW_SALT_LEN       12  /* what mosquitto_passwd writes */
#define DEFAULT_ITERATIONS 101 /* mosquitto 2.0's default */

/* Longest user name quoted back in an error message. */
#define QUOTE_MAX 64

enum hash_type { HASH_SHA512 = 6, HASH_PBKDF2 = 7 };

struct entry {
	char *user; /* owned */
	size_t line;
	enum hash_type type;
	int iterations; /* $7$ only */
	size_t saltlen;
	uint8_t salt[SALT_MAX];
	uint8_t digest[DIGEST_LEN];
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

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/*
 * Decodes padded base64 into out (cap bytes). Returns the decoded length,
 * or -1 if s is not canonical-shaped base64 or does not fit. The checks
 * come first because EVP_DecodeBlock skips blanks, ignores padding in its
 * result and needs room for the padding bytes too.
 */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
	uint8_t tmp[3 * (SALT_MAX > DIGEST_LEN ? SALT_MAX : DIGEST_LEN) / 2];
	size_t pad = 0, n;

	if (len == 0 || len % 4 || len / 4 * 3 > sizeof(tmp))
		return -1;
	if (s[len - 1] == '=')
		pad = s[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!is_b64(s[i]))
			return -1;
	n = len / 4 * 3;
	if (n - pad > cap ||
	    EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len) != (int)n)
		return -1;
	memcpy(out, tmp, n - pad);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return (int)(n - pad);
}

/* Parses a positive decimal int of [s, s + len). */
static bool parse_iterations(const char *s, size_t len, int *out)
{
	long v = 0;

	if (len == 0 || len > 10)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > INT_MAX)
		return false;
	*out = (int)v;
	return true;
}

/* Decodes "SALT$DIGEST" (both base64) into e. */
static bool parse_salt_digest(const char *s, size_t len, struct entry *e)
{
	const char *d = memchr(s, '$', len);
	int n;

	if (!d)
		return false;
	n = b64_decode(s, (size_t)(d - s), e->salt, sizeof(e->salt));
	if (n <= 0)
		return false;
	e->saltlen = (size_t)n;
	d++;
	n = b64_decode(d, len - (size_t)(d - s), e->digest, sizeof(e->digest));
	return n == DIGEST_LEN;
}

/* Decodes the part after "user:" into e. */
static bool parse_hash(const char *s, size_t len, struct entry *e)
{
	const char *d;

	if (len > 3 && !memcmp(s, "$6$", 3)) {
		e->type = HASH_SHA512;
		return parse_salt_digest(s + 3, len - 3, e);
	}
	if (len <= 3 || memcmp(s, "$7$", 3))
		return false;
	e->type = HASH_PBKDF2;
	s += 3;
	len -= 3;
	d = memchr(s, '$', len);
	if (!d || !parse_iterations(s, (size_t)(d - s), &e->iterations))
		return false;
	d++;
	return parse_salt_digest(d, len - (size_t)(d - s), e);
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
	if (!parse_hash(colon, len - (size_t)(colon - s), e))
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

	d->type = HASH_PBKDF2;
	d->iterations = DEFAULT_ITERATIONS;
	d->saltlen = NEW_SALT_LEN;
	for (size_t i = 0; i < db->n; i++) {
		if (db->v[i].type == HASH_PBKDF2) {
			d->iterations = db->v[i].iterations;
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

static bool sha512_salted(const uint8_t *pw, size_t len, const uint8_t *salt,
                          size_t saltlen, uint8_t out[DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	bool ok;

	if (!ctx)
		return false;
	ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, pw, len) == 1 &&
	     EVP_DigestUpdate(ctx, salt, saltlen) == 1 &&
	     EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == DIGEST_LEN;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Computes e's digest of the password into out. */
static bool hash_password(const struct entry *e, const uint8_t *pw, size_t len,
                          uint8_t out[DIGEST_LEN])
{
	if (!pw)
		pw = (const uint8_t *)"";
	if (e->type == HASH_SHA512)
		return sha512_salted(pw, len, e->salt, e->saltlen, out);
	return PKCS5_PBKDF2_HMAC((const char *)pw, (int)len, e->salt,
	                         (int)e->saltlen, e->iterations, EVP_sha512(),
	                         DIGEST_LEN, out) == 1;
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
	     CRYPTO_memcmp(got, e ? e->digest : db->dummy.digest, DIGEST_LEN) ==
	             0;
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
	struct entry e = {.type = HASH_PBKDF2, .saltlen = NEW_SALT_LEN};
	char salt64[4 * ((NEW_SALT_LEN + 2) / 3) + 1];
	char digest64[4 * ((DIGEST_LEN + 2) / 3) + 1];
	size_t pwlen;
	int n, rc = TERN_EIO;

	if (!valid_new_user(user) || !password || !out)
		return TERN_EINVAL;
	pwlen = strlen(password);
	if (pwlen > INT_MAX)
		return TERN_EINVAL;
	e.iterations = iterations > 0 ? iterations : DEFAULT_ITERATIONS;
	if (RAND_bytes(e.salt, NEW_SALT_LEN) != 1 ||
	    !hash_password(&e, (const uint8_t *)password, pwlen, e.digest))
		goto done;
	EVP_EncodeBlock((unsigned char *)salt64, e.salt, NEW_SALT_LEN);
	EVP_EncodeBlock((unsigned char *)digest64, e.digest, DIGEST_LEN);
	n = snprintf(out, cap, "%s:$7$%d$%s$%s", user, e.iterations, salt64,
	             digest64);
	rc = n < 0 ? TERN_EIO : (size_t)n >= cap ? TERN_ETOOBIG : n;
done:
	if (rc < 0 && cap)
		out[0] = '\0'; /* never leave a truncated line behind */
	OPENSSL_cleanse(&e, sizeof(e));
	return rc;
}
