/*
 * JWT verification (see jwt.h for what is accepted). A token is checked in
 * the order that spends the least on forgeries: its shape and size, the
 * header's alg against the configured keys, the signature over the first
 * two parts as written, and only then the claims. Every part is decoded
 * into a buffer of its own, bounded by JWT_MAX_TOKEN, and the JSON reader
 * (base/json.h) validates each object before any member is used.
 */
#include "broker/jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "base/error.h"
#include "base/json.h"
#include "broker/acl.h"
#include "mqtt/packet.h"

/* NumericDates past the year 9999 are refused as nonsense. */
#define JWT_MAX_DATE 253402300799LL
/* A PEM public key is a few kilobytes at most. */
#define JWT_MAX_PEM (1 << 20)

struct jwt {
	uint8_t *secret; /* owned; NULL: no HS256 */
	size_t secret_len;
	EVP_PKEY *rsa; /* owned; NULL: no RS256 */
	char *username_claim;
	char *acl_claim;
	char *issuer;   /* NULL: not checked */
	char *audience; /* NULL: not checked */
	int64_t leeway;
	bool require_exp;
};

/* The three parts of a compact JWS, pointing into the token. */
struct parts {
	const char *h, *p, *s;
	size_t hlen, plen, slen;
};

static const char *const result_names[JWT_NRESULTS] = {
        [JWT_OK] = "ok",
        [JWT_MALFORMED] = "malformed",
        [JWT_BAD_ALG] = "bad_alg",
        [JWT_BAD_SIGNATURE] = "bad_signature",
        [JWT_EXPIRED] = "expired",
        [JWT_NOT_YET_VALID] = "not_yet_valid",
        [JWT_BAD_CLAIMS] = "bad_claims",
        [JWT_NOMEM] = "no_memory",
};

const char *jwt_result_name(enum jwt_result r)
{
	return (unsigned)r < JWT_NRESULTS ? result_names[r] : "unknown";
}

static char *dup_str(const char *s, const char *dflt)
{
	const char *v = s ? s : dflt;

	return v ? strdup(v) : NULL;
}

void jwt_free(struct jwt *j)
{
	if (!j)
		return;
	if (j->secret)
		OPENSSL_clear_free(j->secret, j->secret_len);
	EVP_PKEY_free(j->rsa);
	free(j->username_claim);
	free(j->acl_claim);
	free(j->issuer);
	free(j->audience);
	free(j);
}

/* Reads an RSA public key of at least JWT_MIN_RSA_BITS from PEM text. */
static int load_rsa(struct jwt *j, const char *pem, size_t len, char *err,
                    size_t errlen)
{
	BIO *bio;

	if (len > JWT_MAX_PEM) {
		snprintf(err, errlen, "public key file over %d bytes",
		         JWT_MAX_PEM);
		return TERN_ECONFIG;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return TERN_ENOMEM;
	j->rsa = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!j->rsa) {
		snprintf(err, errlen,
		         "no PEM public key (BEGIN PUBLIC KEY) found");
		return TERN_ECONFIG;
	}
	if (EVP_PKEY_get_base_id(j->rsa) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "the public key is not an RSA key");
		return TERN_ECONFIG;
	}
	if (EVP_PKEY_get_bits(j->rsa) < JWT_MIN_RSA_BITS) {
		snprintf(err, errlen, "RSA key of %d bits; at least %d needed",
		         EVP_PKEY_get_bits(j->rsa), JWT_MIN_RSA_BITS);
		return TERN_ECONFIG;
	}
	return 0;
}

static int set_secret(struct jwt *j, const uint8_t *s, size_t len, char *err,
                      size_t errlen)
{
	if (len < JWT_MIN_SECRET) {
		snprintf(err, errlen,
		         "HS256 secret of %zu bytes; at least %d needed", len,
		         JWT_MIN_SECRET);
		return TERN_ECONFIG;
	}
	j->secret = malloc(len);
	if (!j->secret)
		return TERN_ENOMEM;
	memcpy(j->secret, s, len);
	j->secret_len = len;
	return 0;
}

int jwt_new(const struct jwt_opts *o, struct jwt **out, char *err,
            size_t errlen)
{
	struct jwt *j = calloc(1, sizeof(*j));
	int rc = TERN_ENOMEM;

	*out = NULL;
	if (!j)
		goto fail;
	if (!o->hs256_secret && !o->rs256_pem) {
		snprintf(err, errlen, "no JWT key configured");
		rc = TERN_ECONFIG;
		goto fail;
	}
	if (o->hs256_secret &&
	    (rc = set_secret(j, o->hs256_secret, o->hs256_len, err, errlen)))
		goto fail;
	if (o->rs256_pem &&
	    (rc = load_rsa(j, o->rs256_pem, o->rs256_pem_len, err, errlen)))
		goto fail;
	rc = TERN_ENOMEM;
	j->username_claim = dup_str(o->username_claim, "sub");
	j->acl_claim = dup_str(o->acl_claim, "acl");
	j->issuer = dup_str(o->issuer, NULL);
	j->audience = dup_str(o->audience, NULL);
	if (!j->username_claim || !j->acl_claim || (o->issuer && !j->issuer) ||
	    (o->audience && !j->audience))
		goto fail;
	j->leeway = o->leeway;
	j->require_exp = o->require_exp;
	*out = j;
	return 0;
fail:
	if (rc == TERN_ENOMEM)
		snprintf(err, errlen, "out of memory");
	jwt_free(j);
	return rc;
}

/* ---- base64url ---- */

/* The value of a base64url character, or -1. */
static int b64val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/*
 * Decodes base64url without padding into out (which has room for len * 3 /
 * 4 bytes). Returns the decoded length, or -1 for a character outside the
 * alphabet, a length of 1 mod 4 (no encoding ends so), or leftover bits
 * that are not zero (a second spelling of the same bytes).
 */
static long b64url_decode(const char *s, size_t len, uint8_t *out)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t n = 0;

	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64val((unsigned char)s[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	return (long)n;
}

/* Decodes one part into a new buffer (*out, NUL-terminated, freed by the
 * caller). Returns its length or -1 (malformed) / -2 (no memory). */
static long decode_part(const char *s, size_t len, uint8_t **out)
{
	long n;

	*out = malloc(len * 3 / 4 + 1);
	if (!*out)
		return -2;
	n = b64url_decode(s, len, *out);
	if (n < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	(*out)[n] = '\0';
	return n;
}

bool jwt_looks_like(const uint8_t *p, size_t len)
{
	size_t dots = 0, run = 0;

	if (len == 0 || len > JWT_MAX_TOKEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '.') {
			if (run == 0 || ++dots > 2)
				return false;
			run = 0;
		} else if (b64val(p[i]) < 0) {
			return false;
		} else {
			run++;
		}
	}
	return dots == 2;
}

static bool split(const uint8_t *token, size_t len, struct parts *pt)
{
	const char *t = (const char *)token;
	const char *d1, *d2;

	if (!jwt_looks_like(token, len))
		return false;
	d1 = memchr(t, '.', len);
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - t));
	pt->h = t;
	pt->hlen = (size_t)(d1 - t);
	pt->p = d1 + 1;
	pt->plen = (size_t)(d2 - pt->p);
	pt->s = d2 + 1;
	pt->slen = len - (size_t)(pt->s - t);
	return true;
}

/* ---- JSON helpers ---- */

/* Whether a JSON string value, unescaped, equals the C string want. */
static bool json_equals(const struct json_val *v, const char *want)
{
	char buf[1024];
	size_t wlen = strlen(want);
	int n;

	if (v->type != JSON_STRING || v->len > sizeof(buf))
		return false;
	n = json_string(v, buf, sizeof(buf));
	return n >= 0 && (size_t)n == wlen && memcmp(buf, want, wlen) == 0;
}

/* Unescapes a JSON string into a new NUL-terminated string; refuses
 * U+0000 (never valid in MQTT strings). NULL on error, *nomem set when
 * allocation failed. */
static char *json_dup(const struct json_val *v, bool *nomem)
{
	char *s;
	int n;

	if (v->type != JSON_STRING)
		return NULL;
	s = malloc(v->len + 1);
	if (!s) {
		*nomem = true;
		return NULL;
	}
	n = json_string(v, s, v->len);
	if (n <= 0 || memchr(s, '\0', (size_t)n)) {
		free(s);
		return NULL;
	}
	s[n] = '\0';
	return s;
}

/*
 * A NumericDate: an integer, or a decimal whose fraction is dropped
 * (round_up false) or rounds up (true), so either way validity shrinks.
 * Exponents are refused. Returns 0 or -1.
 */
static int numeric_date(const struct json_val *v, bool round_up, int64_t *out)
{
	struct json_val ip = *v;
	const char *dot;
	bool frac = false;

	if (v->type != JSON_NUMBER || memchr(v->p, 'e', v->len) ||
	    memchr(v->p, 'E', v->len))
		return -1;
	dot = memchr(v->p, '.', v->len);
	if (dot) {
		ip.len = (size_t)(dot - v->p);
		for (const char *q = dot + 1; q < v->p + v->len; q++)
			frac |= *q != '0';
	}
	if (json_int(&ip, 0, JWT_MAX_DATE, out) != 0)
		return -1;
	if (frac && round_up)
		(*out)++;
	return 0;
}

/* ---- header and signature ---- */

enum alg { ALG_HS256, ALG_RS256 };

/* Reads the header: alg must name a configured key; crit is refused. */
static enum jwt_result check_header(const struct jwt *j, const char *h,
                                    size_t len, enum alg *alg)
{
	static const char *const names[] = {"alg", "crit"};
	struct json_val v[2];

	if (json_object_get(h, len, names, v, 2) != 0 ||
	    v[0].type != JSON_STRING)
		return JWT_MALFORMED;
	if (v[1].type != JSON_ABSENT)
		return JWT_BAD_ALG;
	if (j->secret && json_equals(&v[0], "HS256")) {
		*alg = ALG_HS256;
		return JWT_OK;
	}
	if (j->rsa && json_equals(&v[0], "RS256")) {
		*alg = ALG_RS256;
		return JWT_OK;
	}
	return JWT_BAD_ALG;
}

static enum jwt_result verify_hs256(const struct jwt *j, const char *in,
                                    size_t inlen, const uint8_t *sig,
                                    size_t siglen)
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;

	if (!HMAC(EVP_sha256(), j->secret, (int)j->secret_len,
	          (const uint8_t *)in, inlen, mac, &maclen))
		return JWT_NOMEM;
	/* The length is public (32); only the bytes need constant time. */
	if (siglen != maclen || CRYPTO_memcmp(mac, sig, maclen) != 0)
		return JWT_BAD_SIGNATURE;
	return JWT_OK;
}

static enum jwt_result verify_rs256(const struct jwt *j, const char *in,
                                    size_t inlen, const uint8_t *sig,
                                    size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	enum jwt_result r = JWT_NOMEM;

	if (!ctx)
		return JWT_NOMEM;
	if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, j->rsa) != 1)
		goto out;
	/* PKCS#1 v1.5 is the default padding for an RSA key; 1 is the only
	 * success, 0 and negative values are failures alike. */
	r = EVP_DigestVerify(ctx, sig, siglen, (const uint8_t *)in, inlen) == 1
	            ? JWT_OK
	            : JWT_BAD_SIGNATURE;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/* ---- claims ---- */

enum {
	C_EXP,
	C_NBF,
	C_ISS,
	C_AUD,
	C_USER,
	C_ACL,
	C_N,
};

static enum jwt_result check_times(const struct jwt *j,
                                   const struct json_val *v, int64_t now,
                                   struct jwt_claims *out)
{
	int64_t exp = 0, nbf = 0;

	if (v[C_EXP].type == JSON_ABSENT) {
		if (j->require_exp)
			return JWT_BAD_CLAIMS;
	} else if (numeric_date(&v[C_EXP], false, &exp) != 0) {
		return JWT_BAD_CLAIMS;
	} else if (now >= exp + j->leeway) {
		/* RFC 7519 §4.1.4: not accepted on or after exp. */
		return JWT_EXPIRED;
	}
	if (v[C_NBF].type != JSON_ABSENT) {
		if (numeric_date(&v[C_NBF], true, &nbf) != 0)
			return JWT_BAD_CLAIMS;
		if (now + j->leeway < nbf)
			return JWT_NOT_YET_VALID;
	}
	out->exp = exp;
	out->until = exp ? exp + j->leeway : 0;
	return JWT_OK;
}

/* aud: one string or an array of strings, one of which must match. */
static bool audience_ok(const struct jwt *j, const struct json_val *aud)
{
	struct json_val el;
	size_t pos = 0;

	if (!j->audience)
		return true;
	if (aud->type == JSON_STRING)
		return json_equals(aud, j->audience);
	if (aud->type != JSON_ARRAY)
		return false;
	while (json_array_next(aud, &pos, &el) == 1)
		if (json_equals(&el, j->audience))
			return true;
	return false;
}

/* Adds the filters of one array of the topics claim with `access`. */
static enum jwt_result add_filters(struct acl *acl, const struct json_val *arr,
                                   int access)
{
	struct json_val el;
	size_t pos = 0;
	int rc;

	if (arr->type == JSON_ABSENT)
		return JWT_OK;
	if (arr->type != JSON_ARRAY)
		return JWT_BAD_CLAIMS;
	while ((rc = json_array_next(arr, &pos, &el)) == 1) {
		bool nomem = false;
		char *f = json_dup(&el, &nomem);

		if (!f)
			return nomem ? JWT_NOMEM : JWT_BAD_CLAIMS;
		rc = mqtt_topic_filter_check((const uint8_t *)f, strlen(f));
		if (rc == 0)
			rc = acl_add_pattern(acl, f, strlen(f), access);
		free(f);
		if (rc == TERN_ENOMEM)
			return JWT_NOMEM;
		if (rc != 0)
			return JWT_BAD_CLAIMS;
	}
	return rc == 0 ? JWT_OK : JWT_BAD_CLAIMS;
}

static enum jwt_result parse_acl(const struct json_val *v, struct acl **out)
{
	static const char *const names[] = {"pub", "sub", "all"};
	static const int access[] = {ACL_WRITE, ACL_READ, ACL_READ | ACL_WRITE};
	struct json_val m[3];
	enum jwt_result r = JWT_OK;

	*out = NULL;
	if (v->type == JSON_ABSENT)
		return JWT_OK;
	if (v->type != JSON_OBJECT ||
	    json_object_get(v->p, v->len, names, m, 3))
		return JWT_BAD_CLAIMS;
	if (acl_new(out) != 0)
		return JWT_NOMEM;
	for (size_t i = 0; i < 3 && r == JWT_OK; i++)
		r = add_filters(*out, &m[i], access[i]);
	if (r != JWT_OK) {
		acl_free(*out);
		*out = NULL;
	}
	return r;
}

static enum jwt_result check_claims(const struct jwt *j, const char *p,
                                    size_t len, int64_t now,
                                    struct jwt_claims *out)
{
	const char *names[C_N] = {
	        "exp", "nbf", "iss", "aud", j->username_claim, j->acl_claim};
	struct json_val v[C_N];
	enum jwt_result r;
	bool nomem = false;

	if (json_object_get(p, len, names, v, C_N) != 0)
		return JWT_MALFORMED;
	if ((r = check_times(j, v, now, out)) != JWT_OK)
		return r;
	if (j->issuer && !json_equals(&v[C_ISS], j->issuer))
		return JWT_BAD_CLAIMS;
	if (!audience_ok(j, &v[C_AUD]))
		return JWT_BAD_CLAIMS;
	out->username = json_dup(&v[C_USER], &nomem);
	if (!out->username)
		return nomem ? JWT_NOMEM : JWT_BAD_CLAIMS;
	if ((r = parse_acl(&v[C_ACL], &out->acl)) != JWT_OK || !out->acl)
		return r;
	/* parse_acl accepted an object: its text is the grant's record. */
	if (!(out->acl_json = malloc(v[C_ACL].len)))
		return JWT_NOMEM;
	memcpy(out->acl_json, v[C_ACL].p, v[C_ACL].len);
	out->acl_json_len = v[C_ACL].len;
	return JWT_OK;
}

enum jwt_result jwt_acl_parse(const char *json, size_t len, struct acl **out)
{
	/* parse_acl checks that the text is exactly one object. */
	struct json_val v = {JSON_OBJECT, json, len};

	*out = NULL;
	if (!json || !len)
		return JWT_BAD_CLAIMS;
	return parse_acl(&v, out);
}

void jwt_claims_free(struct jwt_claims *c)
{
	if (!c)
		return;
	free(c->username);
	acl_free(c->acl);
	free(c->acl_json);
	memset(c, 0, sizeof(*c));
}

static enum jwt_result decode_result(long n)
{
	return n == -2 ? JWT_NOMEM : JWT_MALFORMED;
}

enum jwt_result jwt_verify(const struct jwt *j, const uint8_t *token,
                           size_t len, int64_t now, struct jwt_claims *out)
{
	uint8_t *hdr = NULL, *sig = NULL, *pay = NULL;
	struct parts pt;
	enum jwt_result r = JWT_MALFORMED;
	enum alg alg = ALG_HS256;
	long hn, sn, pn;

	memset(out, 0, sizeof(*out));
	if (!split(token, len, &pt))
		return JWT_MALFORMED;
	if ((hn = decode_part(pt.h, pt.hlen, &hdr)) < 0) {
		r = decode_result(hn);
		goto out;
	}
	if ((r = check_header(j, (const char *)hdr, (size_t)hn, &alg)))
		goto out;
	if ((sn = decode_part(pt.s, pt.slen, &sig)) < 0) {
		r = decode_result(sn);
		goto out;
	}
	/* The signing input is the first two parts exactly as sent. */
	r = alg == ALG_HS256 ? verify_hs256(j, pt.h, pt.hlen + 1 + pt.plen, sig,
	                                    (size_t)sn)
	                     : verify_rs256(j, pt.h, pt.hlen + 1 + pt.plen, sig,
	                                    (size_t)sn);
	if (r != JWT_OK)
		goto out;
	if ((pn = decode_part(pt.p, pt.plen, &pay)) < 0) {
		r = decode_result(pn);
		goto out;
	}
	r = check_claims(j, (const char *)pay, (size_t)pn, now, out);
out:
	if (r != JWT_OK)
		jwt_claims_free(out);
	free(pay);
	free(sig);
	free(hdr);
	return r;
}
