/*
 * Mosquitto password hashes (see pwhash.h). The hashing is OpenSSL's
 * libcrypto: PBKDF2 for "$7$", plain SHA-512 over password then salt for
 * "$6$", exactly as mosquitto_passwd computes them. Base64 is decoded with
 * strict checks first, because EVP_DecodeBlock skips blanks and ignores
 * padding in its result.
 */
#include "base/pwhash.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base/error.h"

static bool is_b64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/*
 * Decodes padded base64 into out (cap bytes). Returns the decoded length,
 * or -1 if s is not canonical-shaped base64 or does not fit.
 */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
	uint8_t tmp[3 *
	            (PWHASH_SALT_MAX > PWHASH_DIGEST_LEN ? PWHASH_SALT_MAX
	                                                 : PWHASH_DIGEST_LEN) /
	            2];
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

/* Decodes "SALT$DIGEST" (both base64) into h. */
static bool parse_salt_digest(const char *s, size_t len, struct pwhash *h)
{
	const char *d = memchr(s, '$', len);
	int n;

	if (!d)
		return false;
	n = b64_decode(s, (size_t)(d - s), h->salt, sizeof(h->salt));
	if (n <= 0)
		return false;
	h->saltlen = (size_t)n;
	d++;
	n = b64_decode(d, len - (size_t)(d - s), h->digest, sizeof(h->digest));
	return n == PWHASH_DIGEST_LEN;
}

bool pwhash_parse(const char *s, size_t len, struct pwhash *out)
{
	const char *d;

	memset(out, 0, sizeof(*out));
	if (len > 3 && !memcmp(s, "$6$", 3)) {
		out->type = PWHASH_SHA512;
		return parse_salt_digest(s + 3, len - 3, out);
	}
	if (len <= 3 || memcmp(s, "$7$", 3))
		return false;
	out->type = PWHASH_PBKDF2;
	s += 3;
	len -= 3;
	d = memchr(s, '$', len);
	if (!d || !parse_iterations(s, (size_t)(d - s), &out->iterations))
		return false;
	d++;
	return parse_salt_digest(d, len - (size_t)(d - s), out);
}

static bool sha512_salted(const uint8_t *pw, size_t len, const uint8_t *salt,
                          size_t saltlen, uint8_t out[PWHASH_DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	bool ok;

	if (!ctx)
		return false;
	ok = EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, pw, len) == 1 &&
	     EVP_DigestUpdate(ctx, salt, saltlen) == 1 &&
	     EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == PWHASH_DIGEST_LEN;
	EVP_MD_CTX_free(ctx);
	return ok;
}

bool pwhash_compute(const struct pwhash *h, const uint8_t *pw, size_t len,
                    uint8_t out[PWHASH_DIGEST_LEN])
{
	if (!pw)
		pw = (const uint8_t *)"";
	if (len > INT_MAX)
		return false;
	if (h->type == PWHASH_SHA512)
		return sha512_salted(pw, len, h->salt, h->saltlen, out);
	return PKCS5_PBKDF2_HMAC((const char *)pw, (int)len, h->salt,
	                         (int)h->saltlen, h->iterations, EVP_sha512(),
	                         PWHASH_DIGEST_LEN, out) == 1;
}

int pwhash_make(enum pwhash_type type, int iterations, const char *password,
                struct pwhash *out)
{
	size_t len = password ? strlen(password) : 0;

	memset(out, 0, sizeof(*out));
	if ((type != PWHASH_PBKDF2 && type != PWHASH_SHA512) || len > INT_MAX)
		return TERN_EINVAL;
	out->type = type;
	out->iterations = type == PWHASH_SHA512 ? 0
	                  : iterations > 0      ? iterations
	                                        : PWHASH_ITERATIONS;
	out->saltlen = PWHASH_SALT_LEN;
	if (RAND_bytes(out->salt, PWHASH_SALT_LEN) != 1 ||
	    !pwhash_compute(out, (const uint8_t *)password, len, out->digest)) {
		pwhash_wipe(out);
		return TERN_EIO;
	}
	return 0;
}

int pwhash_format(const struct pwhash *h, char *out, size_t cap)
{
	char salt64[4 * ((PWHASH_SALT_MAX + 2) / 3) + 1];
	char digest64[4 * ((PWHASH_DIGEST_LEN + 2) / 3) + 1];
	int n;

	EVP_EncodeBlock((unsigned char *)salt64, h->salt, (int)h->saltlen);
	EVP_EncodeBlock((unsigned char *)digest64, h->digest,
	                PWHASH_DIGEST_LEN);
	if (h->type == PWHASH_SHA512)
		n = snprintf(out, cap, "$6$%s$%s", salt64, digest64);
	else
		n = snprintf(out, cap, "$7$%d$%s$%s", h->iterations, salt64,
		             digest64);
	OPENSSL_cleanse(digest64, sizeof(digest64));
	if (n < 0 || (size_t)n >= cap) {
		if (cap)
			out[0] = '\0'; /* never leave a truncated hash */
		return TERN_ETOOBIG;
	}
	return n;
}

void pwhash_wipe(struct pwhash *h)
{
	OPENSSL_cleanse(h, sizeof(*h));
}
