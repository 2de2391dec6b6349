/*
 * Tests of JWT verification (src/broker/jwt.c). Fixed vectors come from
 * outside tern: RFC 7515 Appendix A.1 (HS256), and tokens minted with
 * Node's crypto (createHmac, sign with an RSA key made by `openssl
 * genpkey`), whose public keys are below. Variations of claims are minted
 * here with OpenSSL's HMAC and a base64url encoder of this file's own.
 * Covered: both algorithms, wrong keys, tampering, alg none / unknown /
 * not configured, HS256 signed with the RSA public key (key confusion),
 * strict base64url, exp / nbf with leeway, iss / aud, the username claim,
 * the topics claim turned into an ACL (and its refusals), key checks at
 * jwt_new, and the token length limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/error.h"
#include "broker/acl.h"
#include "broker/jwt.h"

/* The 2048-bit key the Node-minted RS256 tokens are signed with. */
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

static const char rsa1024_pub[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDjFkOMRJCt3Mc0cXDiX1prMaee\n"
        "iIeMtE7RYz1n6ZyXnKLSPmjT10K0ApfXw1vXWtHTVg63rChDjffFX/Eo9WG8N5LU\n"
        "rZ308CYNJksTf6wn7lORGcPZ7Vbi24/0WMRpiN8gPJOM+DEy5P1ku1XNTF3QLsXG\n"
        "dGOaqw7wxBpARIZlCwIDAQAB\n"
        "-----END PUBLIC KEY-----\n";

static const char ec_pub[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEHKSqR2Fj10tDOi9FE6ueL9rpNvui\n"
        "krNANcbV5FSscSEkVPbOuMLvs7W3nGXqz3y1EwzBVgpKd2+Y78A4+8iY5A==\n"
        "-----END PUBLIC KEY-----\n";

/* Secret of the Node-minted HS256 tokens and of the ones minted here. */
static const char secret[] = "tern-unit-test-secret-0123456789abcdef";

/* Node: {"alg":"HS256","typ":"JWT"} . {"sub":"alice","exp":2000000000,
 * "acl":{"pub":["alice/out"],"sub":["alice/in/#"]}} */
#define PAYLOAD_ALICE                                                          \
	"eyJzdWIiOiJhbGljZSIsImV4cCI6MjAwMDAwMDAwMCwiYWNsIjp7InB1YiI6WyJhbGlj" \
	"ZS9vdXQiXSwic3ViIjpbImFsaWNlL2luLyMiXX19"
#define HDR_HS "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
#define HDR_RS "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"

static const char hs_good[] =
        HDR_HS "." PAYLOAD_ALICE ".8dYJU_Gi9gF2O-mWGxjlUOl_k5BsO8yBQHW9wB8ypLw";
/* The same claims under another secret. */
static const char hs_wrong_key[] =
        HDR_HS "." PAYLOAD_ALICE ".RUL582xmdZ6AYShiex5nifdaRn2Z1rZB2aFVCzoLIAE";
/* HS256 with the RSA public key's PEM text as the HMAC secret. */
static const char hs_confusion[] =
        HDR_HS "." PAYLOAD_ALICE ".IAz4y4Y4oPbtET7Pgq7vP8Sy886dtf-2RCdci-vb2UY";
static const char rs_good[] =
        HDR_RS "." PAYLOAD_ALICE
               ".qnpEAzfG0EtLMxcMUSMA-WeSU_uAi4n200cSFSMIJkVsvLr00tr_OHmw1Bz97"
               "S25YRUC0ne7xHcAqvOsCAtLSd4M6LZdCSJfAOaswWoCf82ZbYI0gkL-qCAK63tq"
               "44jpLPJuTqQMh7IXChmcAEM9WffZcApNbQt_fgN-m_-TQGjwQCxeYdPr8O8lFE7"
               "KxiAOAmaoCBX1QhFp8qhtwkGPlnBFaPw11Ul0FPcaAvLKHGNUAykSQnD3fp5E9p"
               "17iHMcYOE318NLm4GlNjdwijrFkqvr4yNPhfhKRaI1Gf0en8Szv8kX_ks11lpPf"
               "vM7ZVzl66nNlahiRCS_4D41xYgnbA";
/* Signed by another 2048-bit RSA key. */
static const char rs_other_key[] =
        HDR_RS "." PAYLOAD_ALICE
               ".F5pykN4QQe6xCcpNNfhgiZu5igJeUk4AZGOLPKYShasu0x5qZoWkoQBdixr8a"
               "G-px85WAiqVsApYSu8l8ucR72DmvM-a6LqBsiP-Hpo-so06ET8nGHcxHxBSb6u4"
               "sFvNl0KbiZgXeUUj91yhNYQIdStewG95t5xTyUYM02pzw21OxYsJoX_f2_imcB3"
               "m9NCl4EpzKQsqr8pEeqTs7j5NY52o0ytWKjdP0xiMU3uxOK3n3WXTNOdWnaOu8f"
               "fxIGNZJd_kONV_ska8rXHvXsCx9y34bLKF98fEhU821qcRVCw_UALkXQFbp8lbg"
               "9QdaegxMLyn6lBAJGQT0yqJpMiJ0Q";

#define NOW 1900000000LL

static struct jwt *make(const struct jwt_opts *o)
{
	struct jwt *j = NULL;
	char err[256] = "";
	int rc = jwt_new(o, &j, err, sizeof(err));

	if (rc)
		print_error("jwt_new: %d %s\n", rc, err);
	assert_int_equal(rc, 0);
	assert_non_null(j);
	return j;
}

static struct jwt_opts hs_opts(void)
{
	return (struct jwt_opts){.hs256_secret = (const uint8_t *)secret,
	                         .hs256_len = strlen(secret),
	                         .require_exp = true};
}

static struct jwt_opts rs_opts(void)
{
	return (struct jwt_opts){.rs256_pem = rsa_pub,
	                         .rs256_pem_len = strlen(rsa_pub),
	                         .require_exp = true};
}

static enum jwt_result verify_at(const struct jwt *j, const char *tok,
                                 int64_t now)
{
	struct jwt_claims c;
	enum jwt_result r =
	        jwt_verify(j, (const uint8_t *)tok, strlen(tok), now, &c);

	if (r == JWT_OK)
		assert_non_null(c.username);
	else
		assert_null(c.username);
	jwt_claims_free(&c);
	return r;
}

static enum jwt_result verify(const struct jwt *j, const char *tok)
{
	return verify_at(j, tok, NOW);
}

/* base64url without padding, written independently of jwt.c. */
static void b64url(const uint8_t *in, size_t len, char *out)
{
	static const char abc[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
	        "tuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (n > 2)
			v |= in[i + 2];
		out[o++] = abc[(v >> 18) & 63];
		out[o++] = abc[(v >> 12) & 63];
		if (n > 1)
			out[o++] = abc[(v >> 6) & 63];
		if (n > 2)
			out[o++] = abc[v & 63];
	}
	out[o] = '\0';
}

/* Mints an HS256 token (header and payload JSON as given) into out. */
static const char *mint(const char *hdr, const char *payload, char *out)
{
	uint8_t mac[32];
	unsigned maclen = 0;
	size_t n;

	b64url((const uint8_t *)hdr, strlen(hdr), out);
	n = strlen(out);
	out[n++] = '.';
	b64url((const uint8_t *)payload, strlen(payload), out + n);
	n = strlen(out);
	assert_non_null(HMAC(EVP_sha256(), secret, (int)strlen(secret),
	                     (const uint8_t *)out, n, mac, &maclen));
	out[n++] = '.';
	b64url(mac, maclen, out + n);
	return out;
}

static const char *mint_hs(const char *payload, char *out)
{
	return mint("{\"alg\":\"HS256\"}", payload, out);
}

static void test_rfc7515_a1(void **state)
{
	static const char key_b64[] = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQ"
	                              "Lr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1"
	                              "Z9CAow";
	static const char tok[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
	                          "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAs"
	                          "DQogImh0dHA6Ly9leGF"
	                          "tcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
	                          "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	/* The JWK "k" member, decoded with the standard decoder. */
	char std[sizeof(key_b64) + 4];
	uint8_t key[64];
	struct jwt_opts o = {.require_exp = true, .username_claim = "iss"};
	struct jwt_claims c;
	struct jwt *j;
	size_t n = strlen(key_b64);

	memcpy(std, key_b64, n);
	for (size_t i = 0; i < n; i++)
		std[i] = std[i] == '-' ? '+' : std[i] == '_' ? '/' : std[i];
	while (n % 4)
		std[n++] = '=';
	assert_int_equal(EVP_DecodeBlock(key, (const uint8_t *)std, (int)n),
	                 66); /* 64 bytes and two of padding */
	o.hs256_secret = key;
	o.hs256_len = 64;
	j = make(&o);
	assert_int_equal(jwt_verify(j, (const uint8_t *)tok, strlen(tok),
	                            1300819379, &c),
	                 JWT_OK);
	assert_string_equal(c.username, "joe");
	assert_int_equal(c.exp, 1300819380);
	assert_int_equal(c.until, 1300819380);
	assert_null(c.acl);
	jwt_claims_free(&c);
	/* exp is exclusive: at 1300819380 it has expired. */
	assert_int_equal(verify_at(j, tok, 1300819380), JWT_EXPIRED);
	jwt_free(j);
}

static void test_hs256(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j = make(&o);
	struct jwt_claims c;

	assert_int_equal(jwt_verify(j, (const uint8_t *)hs_good,
	                            strlen(hs_good), NOW, &c),
	                 JWT_OK);
	assert_string_equal(c.username, "alice");
	assert_int_equal(c.exp, 2000000000);
	assert_non_null(c.acl);
	assert_true(acl_check(c.acl, "c", "alice", "alice/out", 9, ACL_WRITE));
	assert_false(acl_check(c.acl, "c", "alice", "alice/out", 9, ACL_READ));
	assert_true(acl_check(c.acl, "c", "alice", "alice/in/x", 10, ACL_READ));
	assert_true(acl_check(c.acl, "c", "alice", "alice/in/#", 10,
	                      ACL_SUBSCRIBE));
	assert_false(acl_check(c.acl, "c", "alice", "#", 1, ACL_SUBSCRIBE));
	assert_false(
	        acl_check(c.acl, "c", "alice", "alice/in/x", 10, ACL_WRITE));
	jwt_claims_free(&c);
	assert_int_equal(verify(j, hs_wrong_key), JWT_BAD_SIGNATURE);
	assert_int_equal(verify(j, hs_confusion), JWT_BAD_SIGNATURE);
	/* Only HS256 is configured: an RS256 token is refused unchecked. */
	assert_int_equal(verify(j, rs_good), JWT_BAD_ALG);
	jwt_free(j);
}

static void test_rs256(void **state)
{
	struct jwt_opts o = rs_opts();
	struct jwt *j = make(&o);
	struct jwt_claims c;
	char *t = strdup(rs_good);

	assert_int_equal(jwt_verify(j, (const uint8_t *)rs_good,
	                            strlen(rs_good), NOW, &c),
	                 JWT_OK);
	assert_string_equal(c.username, "alice");
	jwt_claims_free(&c);
	assert_int_equal(verify(j, rs_other_key), JWT_BAD_SIGNATURE);
	/* Key confusion: HS256 keyed with the public key's PEM text. Only
	 * an RSA key is configured, so HS256 is not even tried. */
	assert_int_equal(verify(j, hs_confusion), JWT_BAD_ALG);
	assert_int_equal(verify(j, hs_good), JWT_BAD_ALG);
	/* One flipped bit in the signature. */
	t[strlen(t) - 5] ^= 1;
	assert_int_equal(verify(j, t), JWT_BAD_SIGNATURE);
	free(t);
	jwt_free(j);
}

/* Both keys: each alg uses its own key, never the other one. */
static void test_both_keys(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j;

	o.rs256_pem = rsa_pub;
	o.rs256_pem_len = strlen(rsa_pub);
	j = make(&o);
	assert_int_equal(verify(j, hs_good), JWT_OK);
	assert_int_equal(verify(j, rs_good), JWT_OK);
	assert_int_equal(verify(j, hs_confusion), JWT_BAD_SIGNATURE);
	jwt_free(j);
}

static void test_tampered(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j = make(&o);
	char tok[1024], *t;
	const char *dot;

	/* Same header and signature, payload with "bob" for "alice":
	 * {"sub":"bob","exp":2000000000} */
	snprintf(tok, sizeof(tok), "%s.%s.%s", HDR_HS,
	         "eyJzdWIiOiJib2IiLCJleHAiOjIwMDAwMDAwMDB9",
	         strrchr(hs_good, '.') + 1);
	assert_int_equal(verify(j, tok), JWT_BAD_SIGNATURE);
	/* A flipped character in the payload. */
	t = strdup(hs_good);
	dot = strchr(t, '.');
	t[dot - t + 5] = t[dot - t + 5] == 'A' ? 'B' : 'A';
	assert_int_equal(verify(j, t), JWT_BAD_SIGNATURE);
	/* A signature cut short or grown by one byte. */
	strcpy(t, hs_good);
	t[strlen(t) - 3] = '\0';
	assert_int_equal(verify(j, t), JWT_BAD_SIGNATURE);
	snprintf(tok, sizeof(tok), "%sAAAA", hs_good);
	assert_int_equal(verify(j, tok), JWT_BAD_SIGNATURE);
	free(t);
	jwt_free(j);
}

static void test_bad_alg(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j = make(&o);
	char tok[1024];
	static const char *const headers[] = {
	        "{\"alg\":\"none\"}",
	        "{\"alg\":\"None\"}",
	        "{\"alg\":\"hs256\"}",
	        "{\"alg\":\"HS512\"}",
	        "{\"alg\":\"ES256\"}",
	        "{\"alg\":\"HS256 \"}",
	        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
	};
	const char *pay = "{\"sub\":\"a\",\"exp\":2000000000}";

	for (size_t i = 0; i < sizeof(headers) / sizeof(*headers); i++)
		assert_int_equal(verify(j, mint(headers[i], pay, tok)),
		                 JWT_BAD_ALG);
	/* alg none with an empty signature, as such tokens are sent. */
	mint("{\"alg\":\"none\"}", pay, tok);
	strrchr(tok, '.')[1] = '\0';
	assert_true(jwt_looks_like((const uint8_t *)tok, strlen(tok)));
	assert_int_equal(verify(j, tok), JWT_BAD_ALG);
	/* A header without alg, alg not a string, a header not an object. */
	assert_int_equal(verify(j, mint("{\"typ\":\"JWT\"}", pay, tok)),
	                 JWT_MALFORMED);
	assert_int_equal(verify(j, mint("{\"alg\":7}", pay, tok)),
	                 JWT_MALFORMED);
	assert_int_equal(verify(j, mint("[\"HS256\"]", pay, tok)),
	                 JWT_MALFORMED);
	/* Escaped spellings of HS256 are the same string in JSON. */
	assert_int_equal(
	        verify(j, mint("{\"alg\":\"HS\\u0032\\u00356\"}", pay, tok)),
	        JWT_OK);
	jwt_free(j);
}

static void test_base64url_strict(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j = make(&o);
	char tok[1024];
	const char *sig = strrchr(hs_good, '.') + 1;

	/* Padding, the standard alphabet, blanks: not base64url. */
	snprintf(tok, sizeof(tok), "%s=", hs_good);
	assert_int_equal(verify(j, tok), JWT_MALFORMED);
	snprintf(tok, sizeof(tok), "%s", hs_good);
	tok[strlen(HDR_HS) + 3] = '+';
	assert_int_equal(verify(j, tok), JWT_MALFORMED);
	snprintf(tok, sizeof(tok), "%s ", hs_good);
	assert_int_equal(verify(j, tok), JWT_MALFORMED);
	/* Wrong number of parts; empty header or payload. */
	assert_int_equal(verify(j, HDR_HS "." PAYLOAD_ALICE), JWT_MALFORMED);
	snprintf(tok, sizeof(tok), "%s.x", hs_good);
	assert_int_equal(verify(j, tok), JWT_MALFORMED);
	snprintf(tok, sizeof(tok), ".%s.%s", PAYLOAD_ALICE, sig);
	assert_int_equal(verify(j, tok), JWT_MALFORMED);
	snprintf(tok, sizeof(tok), "%s..%s", HDR_HS, sig);
	assert_int_equal(verify(j, tok), JWT_MALFORMED);
	assert_int_equal(verify(j, ""), JWT_MALFORMED);
	/* A signature of 4k+1 characters has no decoding. */
	snprintf(tok, sizeof(tok), "%sAA", hs_good);
	assert_int_equal(strlen(sig) % 4, 3);
	assert_int_equal(verify(j, tok), JWT_MALFORMED);
	/* The last signature character with non-zero leftover bits: a
	 * second spelling of the same bytes, refused. 43 characters carry
	 * 258 bits for 256, so the last one's two low bits must be 0. */
	snprintf(tok, sizeof(tok), "%s", hs_good);
	assert_int_equal(tok[strlen(tok) - 1], 'w');
	tok[strlen(tok) - 1] = 'x';
	assert_int_equal(verify(j, tok), JWT_MALFORMED);
	/* The payload is not JSON, or JSON but not an object. */
	assert_int_equal(verify(j, mint_hs("not json", tok)), JWT_MALFORMED);
	assert_int_equal(verify(j, mint_hs("[1,2]", tok)), JWT_MALFORMED);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":1", tok)),
	                 JWT_MALFORMED);
	jwt_free(j);
}

static void test_times(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j = make(&o), *lee, *noexp;
	char tok[1024];

	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\"}", tok)),
	                 JWT_BAD_CLAIMS);
	assert_int_equal(
	        verify(j, mint_hs("{\"sub\":\"a\",\"exp\":1899999999}", tok)),
	        JWT_EXPIRED);
	assert_int_equal(
	        verify(j, mint_hs("{\"sub\":\"a\",\"exp\":1900000000}", tok)),
	        JWT_EXPIRED);
	assert_int_equal(
	        verify(j, mint_hs("{\"sub\":\"a\",\"exp\":1900000001}", tok)),
	        JWT_OK);
	/* Fractions shorten validity; exponents, strings, negatives are
	 * not NumericDates. */
	assert_int_equal(
	        verify(j, mint_hs("{\"sub\":\"a\",\"exp\":1900000000.9}", tok)),
	        JWT_EXPIRED);
	assert_int_equal(
	        verify(j, mint_hs("{\"sub\":\"a\",\"exp\":1.9e9}", tok)),
	        JWT_BAD_CLAIMS);
	assert_int_equal(
	        verify(j,
	               mint_hs("{\"sub\":\"a\",\"exp\":\"2000000000\"}", tok)),
	        JWT_BAD_CLAIMS);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":-1}", tok)),
	                 JWT_BAD_CLAIMS);
	assert_int_equal(
	        verify(j,
	               mint_hs("{\"sub\":\"a\",\"exp\":99999999999999999999}",
	                       tok)),
	        JWT_BAD_CLAIMS);
	/* nbf: valid from nbf on. */
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"nbf\":1900000001}",
	                                   tok)),
	                 JWT_NOT_YET_VALID);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"nbf\":1900000000}",
	                                   tok)),
	                 JWT_OK);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"nbf\":1899999999.5}",
	                                   tok)),
	                 JWT_OK);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"nbf\":1900000000.5}",
	                                   tok)),
	                 JWT_NOT_YET_VALID);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"nbf\":null}",
	                                   tok)),
	                 JWT_BAD_CLAIMS);

	o.leeway = 30;
	lee = make(&o);
	assert_int_equal(
	        verify(lee, mint_hs("{\"sub\":\"a\",\"exp\":1899999971}", tok)),
	        JWT_OK);
	assert_int_equal(
	        verify(lee, mint_hs("{\"sub\":\"a\",\"exp\":1899999970}", tok)),
	        JWT_EXPIRED);
	assert_int_equal(
	        verify(lee, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                            "\"nbf\":1900000030}",
	                            tok)),
	        JWT_OK);
	assert_int_equal(
	        verify(lee, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                            "\"nbf\":1900000031}",
	                            tok)),
	        JWT_NOT_YET_VALID);

	o.leeway = 0;
	o.require_exp = false;
	noexp = make(&o);
	assert_int_equal(verify(noexp, mint_hs("{\"sub\":\"a\"}", tok)),
	                 JWT_OK);
	/* Not required, but checked when present. */
	assert_int_equal(
	        verify(noexp, mint_hs("{\"sub\":\"a\",\"exp\":5}", tok)),
	        JWT_EXPIRED);
	jwt_free(noexp);
	jwt_free(lee);
	jwt_free(j);
}

static void test_iss_aud(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j;
	char tok[1024];

	o.issuer = "https://auth.example";
	o.audience = "tern";
	j = make(&o);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"iss\":\"https://auth.example\","
	                                   "\"aud\":\"tern\"}",
	                                   tok)),
	                 JWT_OK);
	assert_int_equal(
	        verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                          "\"iss\":\"https:\\/\\/auth.example\","
	                          "\"aud\":[\"x\",\"tern\"]}",
	                          tok)),
	        JWT_OK);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"iss\":\"https://evil.example\","
	                                   "\"aud\":\"tern\"}",
	                                   tok)),
	                 JWT_BAD_CLAIMS);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"aud\":\"tern\"}",
	                                   tok)),
	                 JWT_BAD_CLAIMS);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"iss\":\"https://auth.example\","
	                                   "\"aud\":[\"x\",\"terns\"]}",
	                                   tok)),
	                 JWT_BAD_CLAIMS);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"iss\":\"https://auth.example\"}",
	                                   tok)),
	                 JWT_BAD_CLAIMS);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\",\"exp\":2000000000,"
	                                   "\"iss\":\"https://auth.example\","
	                                   "\"aud\":[[\"tern\"]]}",
	                                   tok)),
	                 JWT_BAD_CLAIMS);
	jwt_free(j);
}

static void test_username_claim(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j = make(&o), *em;
	struct jwt_claims c;
	char tok[1024];

	assert_int_equal(verify(j, mint_hs("{\"exp\":2000000000}", tok)),
	                 JWT_BAD_CLAIMS);
	assert_int_equal(
	        verify(j, mint_hs("{\"sub\":\"\",\"exp\":2000000000}", tok)),
	        JWT_BAD_CLAIMS);
	assert_int_equal(
	        verify(j, mint_hs("{\"sub\":7,\"exp\":2000000000}", tok)),
	        JWT_BAD_CLAIMS);
	assert_int_equal(verify(j, mint_hs("{\"sub\":\"a\\u0000b\","
	                                   "\"exp\":2000000000}",
	                                   tok)),
	                 JWT_BAD_CLAIMS);
	o.username_claim = "email";
	em = make(&o);
	mint_hs("{\"sub\":\"a\",\"email\":\"b\\u00e9@x\",\"exp\":2000000000}",
	        tok);
	assert_int_equal(
	        jwt_verify(em, (const uint8_t *)tok, strlen(tok), NOW, &c),
	        JWT_OK);
	assert_string_equal(c.username, "b\xc3\xa9@x");
	jwt_claims_free(&c);
	jwt_free(em);
	jwt_free(j);
}

static void test_acl_claim(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j = make(&o);
	struct jwt_claims c;
	char tok[1024];

	mint_hs("{\"sub\":\"u\",\"exp\":2000000000,\"acl\":{\"all\":"
	        "[\"dev/%c/#\",\"users/%u/+\"],\"sub\":[\"news\"]}}",
	        tok);
	assert_int_equal(
	        jwt_verify(j, (const uint8_t *)tok, strlen(tok), NOW, &c),
	        JWT_OK);
	assert_true(acl_check(c.acl, "d1", "u", "dev/d1/x", 8, ACL_WRITE));
	assert_true(acl_check(c.acl, "d1", "u", "dev/d1/x", 8, ACL_READ));
	assert_false(acl_check(c.acl, "d2", "u", "dev/d1/x", 8, ACL_WRITE));
	assert_true(acl_check(c.acl, "d1", "u", "users/u/a", 9, ACL_WRITE));
	assert_true(acl_check(c.acl, "d1", "u", "news", 4, ACL_SUBSCRIBE));
	assert_false(acl_check(c.acl, "d1", "u", "news", 4, ACL_WRITE));
	/* A client id or username holding wildcards never expands. */
	assert_false(acl_check(c.acl, "#", "u", "dev/x/y", 7, ACL_WRITE));
	assert_false(acl_check(c.acl, "+", "u", "dev/+/#", 7, ACL_SUBSCRIBE));
	assert_false(acl_check(c.acl, "a/b", "u", "dev/a/b", 7, ACL_WRITE));
	assert_false(acl_check(c.acl, "d1", "#", "users/#", 7, ACL_SUBSCRIBE));
	jwt_claims_free(&c);

	/* An empty claim grants nothing. */
	mint_hs("{\"sub\":\"u\",\"exp\":2000000000,\"acl\":{}}", tok);
	assert_int_equal(
	        jwt_verify(j, (const uint8_t *)tok, strlen(tok), NOW, &c),
	        JWT_OK);
	assert_non_null(c.acl);
	assert_false(acl_check(c.acl, "d1", "u", "a", 1, ACL_WRITE));
	assert_false(acl_check(c.acl, "d1", "u", "a", 1, ACL_READ));
	jwt_claims_free(&c);

	/* Refused: not an object, not arrays, not strings, bad filters,
	 * %c sharing a level, U+0000. */
	static const char *const bad[] = {
	        "[\"a\"]",
	        "{\"pub\":\"a\"}",
	        "{\"pub\":[1]}",
	        "{\"sub\":[\"a/#/b\"]}",
	        "{\"all\":[\"a+\"]}",
	        "{\"pub\":[\"x%c\"]}",
	        "{\"pub\":[\"\"]}",
	        "{\"pub\":[\"a\\u0000\"]}",
	        "\"all\"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char pay[256];

		snprintf(pay, sizeof(pay),
		         "{\"sub\":\"u\",\"exp\":2000000000,\"acl\":%s}",
		         bad[i]);
		assert_int_equal(verify(j, mint_hs(pay, tok)), JWT_BAD_CLAIMS);
	}
	jwt_free(j);

	/* Another claim name; "acl" is then an ordinary claim. */
	o.acl_claim = "topics";
	j = make(&o);
	mint_hs("{\"sub\":\"u\",\"exp\":2000000000,\"acl\":7,"
	        "\"topics\":{\"pub\":[\"t\"]}}",
	        tok);
	assert_int_equal(
	        jwt_verify(j, (const uint8_t *)tok, strlen(tok), NOW, &c),
	        JWT_OK);
	assert_true(acl_check(c.acl, "d1", "u", "t", 1, ACL_WRITE));
	jwt_claims_free(&c);
	jwt_free(j);
}

/* The topics claim's text is kept as the token held it (what a durable
 * session stores), and jwt_acl_parse() turns it into the same rules; the
 * bad claims jwt_verify refuses it refuses too. */
static void test_acl_json(void **state)
{
	static const char claim[] = "{ \"sub\" : [\"in/%u/#\"], "
	                            "\"pub\":[\"out/%c\"] }";
	static const char *const bad[] = {
	        "[\"a\"]",
	        "{\"pub\":\"a\"}",
	        "{\"sub\":[\"a/#/b\"]}",
	        "{\"pub\":[\"a\\u0000\"]}",
	        "\"all\"",
	        "{",
	        "{} x",
	        "",
	};
	struct jwt_opts o = hs_opts();
	struct jwt *j = make(&o);
	struct jwt_claims c;
	struct acl *acl = NULL;
	char tok[1024], pay[256];

	(void)state;
	snprintf(pay, sizeof(pay),
	         "{\"sub\":\"u\",\"exp\":2000000000,\"acl\":%s}", claim);
	mint_hs(pay, tok);
	assert_int_equal(
	        jwt_verify(j, (const uint8_t *)tok, strlen(tok), NOW, &c),
	        JWT_OK);
	assert_int_equal(c.acl_json_len, strlen(claim));
	assert_memory_equal(c.acl_json, claim, strlen(claim));
	assert_int_equal(jwt_acl_parse(c.acl_json, c.acl_json_len, &acl),
	                 JWT_OK);
	assert_true(acl_check(acl, "d", "u", "in/u/x", 6, ACL_READ));
	assert_false(acl_check(acl, "d", "v", "in/u/x", 6, ACL_READ));
	assert_true(acl_check(acl, "d", "u", "out/d", 5, ACL_WRITE));
	assert_false(acl_check(acl, "d", "u", "out/d", 5, ACL_READ));
	acl_free(acl);
	jwt_claims_free(&c);
	assert_null(c.acl_json);

	/* No claim, no text. */
	mint_hs("{\"sub\":\"u\",\"exp\":2000000000}", tok);
	assert_int_equal(
	        jwt_verify(j, (const uint8_t *)tok, strlen(tok), NOW, &c),
	        JWT_OK);
	assert_null(c.acl_json);
	jwt_claims_free(&c);

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		acl = (struct acl *)1;
		assert_int_equal(jwt_acl_parse(bad[i], strlen(bad[i]), &acl),
		                 JWT_BAD_CLAIMS);
		assert_null(acl);
	}
	assert_int_equal(jwt_acl_parse(NULL, 0, &acl), JWT_BAD_CLAIMS);
	jwt_free(j);
}

static void test_keys(void **state)
{
	struct jwt *j = NULL;
	char err[256];
	struct jwt_opts o = {0};

	assert_int_equal(jwt_new(&o, &j, err, sizeof(err)), TERN_ECONFIG);
	assert_string_equal(err, "no JWT key configured");
	o.hs256_secret = (const uint8_t *)secret;
	o.hs256_len = JWT_MIN_SECRET - 1;
	assert_int_equal(jwt_new(&o, &j, err, sizeof(err)), TERN_ECONFIG);
	assert_string_equal(err,
	                    "HS256 secret of 31 bytes; at least 32 needed");
	assert_null(j);
	o = (struct jwt_opts){.rs256_pem = rsa1024_pub,
	                      .rs256_pem_len = strlen(rsa1024_pub)};
	assert_int_equal(jwt_new(&o, &j, err, sizeof(err)), TERN_ECONFIG);
	assert_string_equal(err, "RSA key of 1024 bits; at least 2048 needed");
	o.rs256_pem = ec_pub;
	o.rs256_pem_len = strlen(ec_pub);
	assert_int_equal(jwt_new(&o, &j, err, sizeof(err)), TERN_ECONFIG);
	assert_string_equal(err, "the public key is not an RSA key");
	o.rs256_pem = secret;
	o.rs256_pem_len = strlen(secret);
	assert_int_equal(jwt_new(&o, &j, err, sizeof(err)), TERN_ECONFIG);
	assert_string_equal(err, "no PEM public key (BEGIN PUBLIC KEY) found");
	assert_null(j);
}

static void test_length_limit(void **state)
{
	struct jwt_opts o = hs_opts();
	struct jwt *j = make(&o);
	size_t n = JWT_MAX_TOKEN + 1;
	char *big = malloc(n + 1), *pay = malloc(n), *tok = malloc(2 * n);

	assert_non_null(big);
	assert_non_null(pay);
	assert_non_null(tok);
	memset(big, 'A', n);
	big[10] = '.';
	big[20] = '.';
	big[n] = '\0';
	assert_false(jwt_looks_like((const uint8_t *)big, n));
	assert_true(jwt_looks_like((const uint8_t *)big, JWT_MAX_TOKEN));
	assert_int_equal(verify(j, big), JWT_MALFORMED);
	/* A well-signed token just over the limit is refused too. */
	snprintf(pay, n, "{\"sub\":\"a\",\"exp\":2000000000,\"x\":\"%0*d\"}",
	         (int)(JWT_MAX_TOKEN * 3 / 4 - 40), 0);
	mint_hs(pay, tok);
	assert_true(strlen(tok) > JWT_MAX_TOKEN);
	assert_int_equal(verify(j, tok), JWT_MALFORMED);
	free(tok);
	free(pay);
	free(big);
	jwt_free(j);
}

static void test_looks_like(void **state)
{
	static const char *const yes[] = {"a.b.c", "a.b.", hs_good};
	static const char *const no[] = {"",        "abc",     "a.b",
	                                 "a.b.c.d", ".b.c",    "a..c",
	                                 "a.b.c=",  "a b.c.d", "hunter2"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
		assert_true(jwt_looks_like((const uint8_t *)yes[i],
		                           strlen(yes[i])));
	for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
		assert_false(
		        jwt_looks_like((const uint8_t *)no[i], strlen(no[i])));
	assert_string_equal(jwt_result_name(JWT_BAD_SIGNATURE),
	                    "bad_signature");
	assert_string_equal(jwt_result_name(JWT_NRESULTS), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rfc7515_a1),
	        cmocka_unit_test(test_hs256),
	        cmocka_unit_test(test_rs256),
	        cmocka_unit_test(test_both_keys),
	        cmocka_unit_test(test_tampered),
	        cmocka_unit_test(test_bad_alg),
	        cmocka_unit_test(test_base64url_strict),
	        cmocka_unit_test(test_times),
	        cmocka_unit_test(test_iss_aud),
	        cmocka_unit_test(test_username_claim),
	        cmocka_unit_test(test_acl_claim),
	        cmocka_unit_test(test_acl_json),
	        cmocka_unit_test(test_keys),
	        cmocka_unit_test(test_length_limit),
	        cmocka_unit_test(test_looks_like),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
