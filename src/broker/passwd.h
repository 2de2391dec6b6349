/*
 * Password files in Mosquitto's format, as written by mosquitto_passwd:
 * one "USER:HASH" line per user, where HASH is either
 *
 *   $7$ITERATIONS$SALT$DIGEST   PBKDF2-HMAC-SHA512 (mosquitto 2.0 default)
 *   $6$SALT$DIGEST              SHA-512 of the password then the salt
 *
 * with SALT and DIGEST in padded base64 (mosquitto_passwd makes 12-byte
 * salts; any salt of 1 to 64 bytes is read) and a 64-byte DIGEST. Lines
 * whose first character is '#' are comments. Anything else, including a
 * blank line, an empty user, a duplicate user or a plaintext password, is
 * an error naming the file and line, so that a damaged file stops the
 * broker (or a reload) instead of opening it.
 *
 * The module is pure: a loaded db is immutable and may be shared by every
 * worker without a lock. On reload the caller loads a new db and swaps it.
 */
#ifndef TERN_BROKER_PASSWD_H
#define TERN_BROKER_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct passwd_db;

/*
 * Loads the password file at `path`. Returns 0 and a new db in *out (freed
 * with passwd_free()), TERN_ECONFIG with "PATH:LINE: reason" (or "PATH:
 * reason" when the file cannot be read) in err, or TERN_ENOMEM. *out is
 * untouched on failure. An empty file is valid and knows no user. err may
 * be NULL.
 */
int passwd_load(const char *path, struct passwd_db **out, char *err,
                size_t errlen);

/* The same from the NUL-terminated `text`; `name` stands for the file name
 * in messages. Lines end with "\n" or "\r\n". */
int passwd_parse(const char *text, const char *name, struct passwd_db **out,
                 char *err, size_t errlen);

/* Frees a db; NULL is accepted. */
void passwd_free(struct passwd_db *db);

/*
 * Whether `user` (NUL-terminated) has the `len`-byte `password`. The digest
 * comparison takes constant time, and an unknown user costs the same
 * hashing as a known one (a dummy $7$ entry with the iteration count of the
 * file's first $7$ entry), so timing does not reveal which users exist.
 * A NULL db or user is refused, and so is a password holding a zero byte:
 * mosquitto_passwd cannot hash one, and PBKDF2's HMAC would otherwise take
 * "pw\0" for "pw".
 */
bool passwd_check(const struct passwd_db *db, const char *user,
                  const uint8_t *password, size_t len);

/*
 * Writes "user:$7$ITER$SALT$DIGEST" (no newline, NUL-terminated) into out
 * for `password` (NUL-terminated), with a fresh 12-byte salt from
 * RAND_bytes and `iterations` rounds (101, mosquitto 2.0's default, when
 * iterations <= 0). Returns the length written without the NUL,
 * TERN_EINVAL for an empty user or one holding ':' or a line break,
 * TERN_ETOOBIG if cap is too small, or TERN_EIO if OpenSSL fails.
 */
int passwd_make_line(const char *user, const char *password, int iterations,
                     char *out, size_t cap);

#endif
