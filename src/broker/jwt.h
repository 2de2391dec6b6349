/*
 * JSON Web Tokens (RFC 7519) in the compact JWS form (RFC 7515), checked as
 * CONNECT passwords. The module is pure: it opens no sockets and reads no
 * files or clocks; the caller hands in key bytes, the token and the time.
 * A verifier (struct jwt) is immutable once made, so every worker may use
 * one without a lock.
 *
 * What is accepted, everything else failing closed:
 * - HEADER.PAYLOAD.SIGNATURE, each part base64url without padding (RFC 7515
 *   §2); a character outside the alphabet, '=' padding, a length that no
 *   encoding has, or non-zero leftover bits make the token malformed.
 *   Tokens longer than JWT_MAX_TOKEN bytes are refused before decoding.
 * - alg "HS256" (HMAC-SHA256, compared in constant time) when a secret is
 *   configured, "RS256" (RSASSA-PKCS1-v1_5 with SHA-256) when an RSA public
 *   key is. Any other alg, "none" included, or one whose key is not
 *   configured, is refused: an HS256 token is never checked against the RSA
 *   public key, so the key-confusion attack finds nothing to use. A header
 *   with "crit" is refused (no extension is understood).
 * - exp (required unless require_exp is false) and nbf, NumericDates
 *   (integers; a fraction is cut in the direction that shortens validity),
 *   each with `leeway` seconds of allowance for clock skew.
 * - iss and aud compared with the configured values when set (aud may be a
 *   string or an array of strings).
 * - the username claim (default "sub"): a non-empty string without U+0000.
 * - the topics claim (default "acl"), optional: an object whose members
 *   "pub", "sub" and "all" are arrays of topic filters granting write,
 *   read (subscribe and delivery) and both. When present it is turned into
 *   an ACL of pattern rules (acl.h), so "%c" and "%u" levels stand for the
 *   client id and username with acl.c's rule that a value holding '/', '+'
 *   or '#' never expands into a wildcard. Other members are ignored; a
 *   member that is not an array of valid filters refuses the token.
 */
#ifndef TERN_BROKER_JWT_H
#define TERN_BROKER_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;
struct jwt;

/* Longest token accepted (bytes); the CONNECT password may be longer. */
#define JWT_MAX_TOKEN 8192
/* Shortest HS256 secret: the hash size, as RFC 7518 §3.2 requires. */
#define JWT_MIN_SECRET 32
/* Smallest RSA key accepted (RFC 7518 §3.3). */
#define JWT_MIN_RSA_BITS 2048

/* Settings of a verifier; strings are copied by jwt_new(). */
struct jwt_opts {
	const uint8_t *hs256_secret; /* NULL: HS256 refused */
	size_t hs256_len;
	const char *rs256_pem; /* RSA public key (PEM); NULL: RS256 refused */
	size_t rs256_pem_len;
	const char *username_claim; /* NULL: "sub" */
	const char *acl_claim;      /* NULL: "acl" */
	const char *issuer;         /* NULL: iss not checked */
	const char *audience;       /* NULL: aud not checked */
	uint32_t leeway;            /* seconds */
	bool require_exp;
};

/* Why a token was refused; names for logs and counters: jwt_result_name. */
enum jwt_result {
	JWT_OK = 0,
	JWT_MALFORMED,     /* not a compact JWS of JSON objects, too long */
	JWT_BAD_ALG,       /* none, unknown, or not configured */
	JWT_BAD_SIGNATURE, /* signature does not verify */
	JWT_EXPIRED,       /* exp passed */
	JWT_NOT_YET_VALID, /* nbf in the future */
	JWT_BAD_CLAIMS,    /* exp missing or not a date; iss, aud, username
	                    * or topics claim wrong */
	JWT_NOMEM,
	JWT_NRESULTS
};

/* What a verified token says; filled by jwt_verify(), freed by
 * jwt_claims_free(). */
struct jwt_claims {
	char *username;  /* the username claim; owned */
	int64_t exp;     /* NumericDate, 0 when the token has none */
	int64_t until;   /* exp + leeway: refused from then on; 0: never */
	struct acl *acl; /* the topics claim; owned; NULL when absent */
	/* The topics claim's JSON object exactly as the token held it
	 * (owned, not NUL-terminated; NULL when absent): what a durable
	 * session stores to rebuild acl with jwt_acl_parse() after a
	 * restart, instead of the token, which is a bearer credential. */
	char *acl_json;
	size_t acl_json_len;
};

/*
 * Makes a verifier. At least one key must be given; the secret must have
 * JWT_MIN_SECRET bytes and the PEM must hold an RSA public key of at least
 * JWT_MIN_RSA_BITS ("BEGIN PUBLIC KEY", as `openssl rsa -pubout` writes).
 * Returns 0 with *out (freed by jwt_free), TERN_ECONFIG with the reason in
 * err, or TERN_ENOMEM.
 */
int jwt_new(const struct jwt_opts *o, struct jwt **out, char *err,
            size_t errlen);

/* Frees a verifier; NULL is accepted. */
void jwt_free(struct jwt *j);

/*
 * Whether `password` has the shape of a compact JWS: three parts of
 * base64url characters joined by two dots, the first two non-empty (the
 * third is empty for alg "none", which must still count as a token so that
 * it is refused as one), at most JWT_MAX_TOKEN bytes.
 * Such a password is checked as a token, anything else is not one.
 */
bool jwt_looks_like(const uint8_t *password, size_t len);

/*
 * Verifies the `len` bytes of token at time `now` (Unix seconds). Returns
 * JWT_OK with *out filled (the caller frees it with jwt_claims_free), or
 * why the token is refused (*out then holds nothing to free).
 */
enum jwt_result jwt_verify(const struct jwt *j, const uint8_t *token,
                           size_t len, int64_t now, struct jwt_claims *out);

/*
 * Rebuilds the ACL of a topics claim from its JSON text (acl_json above)
 * with the parser jwt_verify() uses, so a session restored from the store
 * and a CONNECT with the same token cannot disagree. Returns JWT_OK with
 * *out (freed with acl_free), JWT_BAD_CLAIMS when the text is not a valid
 * topics claim (a JSON object, as jwt.h's header says), or JWT_NOMEM.
 */
enum jwt_result jwt_acl_parse(const char *json, size_t len, struct acl **out);

/* Frees what jwt_verify() put into c and zeroes it; NULL is accepted. */
void jwt_claims_free(struct jwt_claims *c);

/* A short lower-case name ("bad_signature") for logs and counters. */
const char *jwt_result_name(enum jwt_result r);

#endif
