/*
 * libFuzzer target for password files (src/broker/passwd.c, passwd_parse).
 * Each input is a whole file. Checks, beyond memory safety, that the
 * parser fails closed: a blank line anywhere but at the very end is an
 * error, an error names the file and line, and a file that loaded never
 * lets in a user it does not name. Then one line made
 * by passwd_make_line() for a user taken from the input must load and
 * accept exactly its own password. Inputs with $7$ iteration counts above
 * ITER_CAP only parse: checking them would measure PBKDF2, not the parser.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "broker/passwd.h"
#include "fuzz.h"

#define ITER_CAP 1000

/* Whether every "$7$N" in text has N <= ITER_CAP (or no digits). */
static bool cheap_hashes(const char *text)
{
	const char *p = text;

	while ((p = strstr(p, "$7$"))) {
		unsigned long n = 0;
		int digits = 0;

		for (p += 3; isdigit((unsigned char)*p); p++) {
			if (++digits > 6)
				return false;
			n = n * 10 + (unsigned long)(*p - '0');
		}
		if (n > ITER_CAP)
			return false;
	}
	return true;
}

/* Whether text holds an empty line that is not the end of the file. */
static bool has_inner_blank_line(const char *text)
{
	const char *p = text;

	for (;;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (!eol)
			return false;
		if (len == 0)
			return true;
		p = eol + 1;
	}
}

/* A user name for the round trip: the input's first word, made legal. */
static void pick_user(const char *text, char *out, size_t cap)
{
	size_t n = 0;

	for (const char *p = text; *p && n + 1 < cap && n < 32; p++) {
		if (*p == ':' || *p == '\n' || *p == '\r')
			break;
		out[n++] = *p;
	}
	if (n == 0)
		out[n++] = 'u';
	out[n] = '\0';
}

static void round_trip(const char *user)
{
	char line[512], err[128];
	struct passwd_db *db = NULL;
	int n = passwd_make_line(user, "secret", 1, line, sizeof(line));

	if (n < 0)
		return;
	CHECK(passwd_parse(line, "rt", &db, err, sizeof(err)) == 0);
	CHECK(passwd_check(db, user, (const uint8_t *)"secret", 6));
	CHECK(!passwd_check(db, user, (const uint8_t *)"secreT", 6));
	CHECK(!passwd_check(db, user, (const uint8_t *)"secret\0", 7));
	CHECK(!passwd_check(db, user, (const uint8_t *)"", 0));
	passwd_free(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct passwd_db *db = NULL;
	char err[256], user[40];
	char *text;
	int rc;

	if (!(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (strlen(text) != size)
		goto out; /* passwd_load refuses NUL bytes before parsing */

	rc = passwd_parse(text, "fuzz", &db, err, sizeof(err));
	if (rc != 0) {
		CHECK(db == NULL);
		CHECK(rc == TERN_ECONFIG);
		CHECK(strncmp(err, "fuzz:", 5) == 0);
	} else {
		CHECK(db != NULL);
		CHECK(!has_inner_blank_line(text));
		if (cheap_hashes(text))
			CHECK(!passwd_check(db, "\x01nobody",
			                    (const uint8_t *)"x", 1));
	}
	passwd_free(db);
	pick_user(text, user, sizeof(user));
	round_trip(user);
out:
	free(text);
	return 0;
}
