/*
 * Mosquitto password hashes: the "HASH" half of a "USER:HASH" line of a
 * password file, as mosquitto_passwd writes it, is one of
 *
 *   $7$ITERATIONS$SALT$DIGEST   PBKDF2-HMAC-SHA512 (mosquitto 2.0 default)
 *   $6$SALT$DIGEST              SHA-512 of the password then the salt
 *
 * with SALT and DIGEST in padded base64 and a 64-byte DIGEST.
 *
 * This module reads, computes and writes one hash; the file around it is
 * its users' business: the broker's password database (src/broker/passwd.c)
 * verifies with it and `tern passwd` (apps/tern/passwd.c) writes with it.
 * It lives in base, the lowest layer, because those two are in different
 * layers and the command-line tool must not link the broker to hash a
 * password; its only dependency is OpenSSL's libcrypto.
 */
#ifndef TERN_BASE_PWHASH_H
#define TERN_BASE_PWHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PWHASH_DIGEST_LEN 64
#define PWHASH_SALT_MAX   64
#define PWHASH_SALT_LEN   12  /* what mosquitto_passwd makes */
#define PWHASH_ITERATIONS 101 /* mosquitto 2.0's default */

/* Longest hash pwhash_format() writes, NUL included. */
#define PWHASH_TEXT_MAX                                                        \
	(16 + 4 * ((PWHASH_SALT_MAX + 2) / 3) +                                \
	 4 * ((PWHASH_DIGEST_LEN + 2) / 3) + 1)

enum pwhash_type { PWHASH_SHA512 = 6, PWHASH_PBKDF2 = 7 };

struct pwhash {
	enum pwhash_type type;
	int iterations; /* PWHASH_PBKDF2 only */
	size_t saltlen; /* 1 to PWHASH_SALT_MAX */
	uint8_t salt[PWHASH_SALT_MAX];
	uint8_t digest[PWHASH_DIGEST_LEN];
};

/*
 * Decodes the len bytes at s ("$7$..." or "$6$...", nothing after) into
 * *out. Returns true, or false if s is not such a hash (a plaintext
 * password, a truncated digest, a salt that is not base64...).
 */
bool pwhash_parse(const char *s, size_t len, struct pwhash *out);

/*
 * Computes h's digest (h's type, salt and iterations) of the len-byte
 * password pw into out. Returns false if OpenSSL fails. pw may be NULL
 * when len is 0.
 */
bool pwhash_compute(const struct pwhash *h, const uint8_t *pw, size_t len,
                    uint8_t out[PWHASH_DIGEST_LEN]);

/*
 * Makes a new hash of the NUL-terminated password into *out: type
 * PWHASH_PBKDF2 with `iterations` rounds (PWHASH_ITERATIONS when <= 0) or
 * PWHASH_SHA512, and a fresh PWHASH_SALT_LEN-byte salt from RAND_bytes.
 * Returns 0, TERN_EINVAL for a bad type or a password longer than INT_MAX,
 * or TERN_EIO if OpenSSL fails.
 */
int pwhash_make(enum pwhash_type type, int iterations, const char *password,
                struct pwhash *out);

/*
 * Writes h as text ("$7$ITER$SALT$DIGEST" or "$6$SALT$DIGEST") into out,
 * NUL-terminated. Returns the length without the NUL, or TERN_ETOOBIG if
 * cap is too small (PWHASH_TEXT_MAX always suffices).
 */
int pwhash_format(const struct pwhash *h, char *out, size_t cap);

/* Wipes h (the digest is as secret as the password it stands for). */
void pwhash_wipe(struct pwhash *h);

#endif
