/*
 * libFuzzer target for JWT verification (src/broker/jwt.c: jwt_verify).
 * The first input byte picks how the rest is used:
 * - even: the rest is a token, verified as sent;
 * - odd: the rest is "HEADER\nPAYLOAD" (JSON texts, or anything), which
 *   this file encodes and signs with the verifier's HS256 secret, so the
 *   fuzzer reaches the claim checks behind a valid signature.
 * For every input it checks:
 * - a password that jwt_looks_like() refuses is JWT_MALFORMED;
 * - JWT_OK comes with a non-empty username without NUL, an exp that is 0
 *   or still in the future, and nothing else allocates (ASan sees leaks);
 * - a token signed here never fails with JWT_BAD_SIGNATURE;
 * - a token that verified, with any one byte of its signature changed, no
 *   longer does (JWT_BAD_SIGNATURE or JWT_MALFORMED);
 * - the verifier with only an RSA key never accepts an HS256 token;
 * - an accepted topics claim's text (what a durable session stores)
 *   parses again with jwt_acl_parse into the same rules, on a few topics.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "broker/acl.h"
#include "broker/jwt.h"
#include "fuzz.h"

#define NOW 1900000000LL

static const char secret[] = "fuzz-secret-fuzz-secret-0123456789";

/* A 2048-bit RSA public key (tests/unit/broker/jwt_test.c). */
static const char rsa_pub[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzA2uzY4mPJ3ZJHJaSv+u\n"
        "6dZjXQ+dW9LdgBil6WJ2OgZ99Wf7sgj4etkc58zr4V5DO72PU+kfgz8Lm1XWcsrE\n"
        "S/k9rLjvlBObAhUINp6Yg2E178i6eL6woWfHbNjxU5+T9crGURvxsJHDQ8Md96QC\n"
        "ShSP4flXwNPTFv7FrZj3ppkFbaNIS2ni6uOwjp8727lEolsaIlhP1HCS6X9/wub4\n"
        "GereUzhI1iMdyM3C+1GC7Tc4DdQXD5fpLHeiZcsxM2Bl9F84FHXnIuJ8a6uXpbFU\n"
        "AA2G5teOga+eo9yrwkmbipFgB+bZy9ANfKTmLfipLwo+g8JFGZJ9Mt3dBImVMd9A\n"
        "LwIDAQAB\n"
        "-----END PUBLIC KEY-----\n";

static struct jwt *hs_jwt, *rs_jwt;

static void setup(void)
{
	struct jwt_opts o = {.hs256_secret = (const uint8_t *)secret,
	                     .hs256_len = sizeof(secret) - 1,
	                     .issuer = "iss",
	                     .audience = "aud",
	                     .leeway = 5,
	                     .require_exp = true};
	char err[256];

	if (hs_jwt)
		return;
	CHECK(jwt_new(&o, &hs_jwt, err, sizeof(err)) == 0);
	o = (struct jwt_opts){.rs256_pem = rsa_pub,
	                      .rs256_pem_len = sizeof(rsa_pub) - 1,
	                      .require_exp = false};
	CHECK(jwt_new(&o, &rs_jwt, err, sizeof(err)) == 0);
}

/* base64url without padding; returns the length written. */
static size_t b64url(const uint8_t *in, size_t len, char *out)
{
	size_t n = (size_t)EVP_EncodeBlock((uint8_t *)out, in, (int)len);

	while (n && out[n - 1] == '=')
		n--;
	for (size_t i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	out[n] = '\0';
	return n;
}

/* Signs "HEADER\nPAYLOAD" into a new token (NULL if too large). */
static char *mint(const uint8_t *d, size_t len, size_t *outlen)
{
	const uint8_t *nl = memchr(d, '\n', len);
	size_t hl = nl ? (size_t)(nl - d) : len;
	size_t pl = nl ? len - hl - 1 : 0;
	uint8_t mac[32];
	unsigned maclen = 0;
	char *t;
	size_t n;

	if (len > 3 * JWT_MAX_TOKEN)
		return NULL;
	t = malloc(2 * len + 64);
	if (!t)
		return NULL;
	n = b64url(d, hl, t);
	t[n++] = '.';
	n += b64url(d + hl + (nl ? 1 : 0), pl, t + n);
	HMAC(EVP_sha256(), secret, sizeof(secret) - 1, (uint8_t *)t, n, mac,
	     &maclen);
	t[n++] = '.';
	n += b64url(mac, maclen, t + n);
	*outlen = n;
	return t;
}

/* The claim text a durable session stores gives the same rules again
 * (jwt_acl_parse), on a few topics built from the claims. */
static void check_rebuilt(const struct jwt_claims *c)
{
	const char *topics[] = {"#", c->username, "a", "a/b"};
	struct acl *again = NULL;
	enum jwt_result r = jwt_acl_parse(c->acl_json, c->acl_json_len, &again);

	if (r == JWT_NOMEM)
		return;
	CHECK(r == JWT_OK && again);
	for (size_t i = 0; i < sizeof(topics) / sizeof(*topics); i++) {
		size_t n = strlen(topics[i]);

		for (int a = ACL_READ; a <= ACL_SUBSCRIBE; a <<= 1)
			CHECK(acl_check(c->acl, "d", c->username, topics[i], n,
			                a) == acl_check(again, "d", c->username,
			                                topics[i], n, a));
	}
	acl_free(again);
}

static enum jwt_result verify(const struct jwt *j, const uint8_t *t, size_t len)
{
	struct jwt_claims c;
	enum jwt_result r = jwt_verify(j, t, len, NOW, &c);

	CHECK((unsigned)r < JWT_NRESULTS);
	if (!jwt_looks_like(t, len))
		CHECK(r == JWT_MALFORMED);
	if (r == JWT_OK) {
		CHECK(c.username && c.username[0]);
		CHECK(c.exp == 0 || c.exp + 5 > NOW);
		if (c.acl)
			/* A client id of "#" never matches a %c level. */
			CHECK(!acl_check(c.acl, "#", c.username, "#", 1,
			                 ACL_SUBSCRIBE) ||
			      acl_check(c.acl, NULL, c.username, "#", 1,
			                ACL_SUBSCRIBE));
		CHECK(!c.acl == !c.acl_json);
		if (c.acl)
			check_rebuilt(&c);
	} else {
		CHECK(!c.username && !c.acl && !c.acl_json);
	}
	jwt_claims_free(&c);
	return r;
}

/* Changes each signature byte of a verified token: never still valid. */
static void flip_signature(const uint8_t *t, size_t len)
{
	uint8_t *copy = malloc(len);
	const uint8_t *dot = memchr(t, '.', len);

	if (!copy)
		return;
	dot = memchr(dot + 1, '.', len - (size_t)(dot + 1 - t));
	for (size_t i = (size_t)(dot + 1 - t); i < len; i++) {
		memcpy(copy, t, len);
		copy[i] = copy[i] == 'A' ? 'B' : 'A';
		enum jwt_result r = verify(hs_jwt, copy, len);

		CHECK(r == JWT_BAD_SIGNATURE || r == JWT_MALFORMED);
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *tok = data + 1;
	size_t len = size ? size - 1 : 0;
	char *minted = NULL;
	enum jwt_result r;

	setup();
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		minted = mint(data + 1, size - 1, &len);
		if (!minted)
			return 0;
		tok = (const uint8_t *)minted;
	}
	r = verify(hs_jwt, tok, len);
	if (minted)
		CHECK(r != JWT_BAD_SIGNATURE);
	if (r == JWT_OK)
		flip_signature(tok, len);
	r = verify(rs_jwt, tok, len);
	if (minted)
		CHECK(r != JWT_OK);
	free(minted);
	return 0;
}
