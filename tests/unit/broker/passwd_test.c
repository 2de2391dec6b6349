/*
 * Tests of the password file module (src/broker/passwd.c): files written by
 * Debian's mosquitto_passwd (both $7$ and $6$) verify, wrong passwords and
 * unknown users are refused, $6$ and $7$ agree with digests computed here
 * independently, blank and malformed lines fail with file:line, and
 * passwd_make_line() round-trips. mosquitto_passwd must be installed
 * (scripts/deps.sh installs it); its absence fails the test.
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
#include <unistd.h>

#include <openssl/evp.h>

#include "base/error.h"
#include "broker/passwd.h"

/* Made by mosquitto_passwd 2.0.11 for alice / secret. */
#define ALICE_HASH                                                             \
	"$7$101$YOlesXlFnIEg6V35$i9yrucQOvXJSZK28mUJqY4mDJe1HH7l4ZUGfxuv6jD+/" \
	"dsQw4/HgGWb73OURclsOT5wCx0xfrVcQG+qSAY6f1w=="
/* Made by mosquitto_passwd -H sha512 for bob / pw2. */
#define BOB_HASH                                                               \
	"$6$EA9GsKYs5Xsoph0q$iY6g/lyiH9vKSL2jlOyqK9+7XRHXukjcMi5FxdU5QX0rR91m" \
	"j63zE0ksV1+7oJQxIHLFUMuOT+CpyqmpPaDk1w=="

static bool ok(const struct passwd_db *db, const char *user, const char *pw)
{
	return passwd_check(db, user, (const uint8_t *)pw, strlen(pw));
}

static struct passwd_db *parse(const char *text)
{
	struct passwd_db *db = NULL;
	char err[256] = "";
	int rc = passwd_parse(text, "t.pw", &db, err, sizeof(err));

	if (rc)
		print_error("passwd_parse: %d %s\n", rc, err);
	assert_int_equal(rc, 0);
	assert_non_null(db);
	return db;
}

static void parse_fails(const char *text, const char *msg)
{
	struct passwd_db *db = NULL;
	char err[256] = "";

	assert_int_equal(passwd_parse(text, "t.pw", &db, err, sizeof(err)),
	                 TERN_ECONFIG);
	assert_null(db);
	assert_string_equal(err, msg);
}

static void run(const char *cmd)
{
	int rc = system(cmd);

	if (rc != 0)
		print_error("command failed (%d): %s\n", rc, cmd);
	assert_int_equal(rc, 0);
}

static void test_mosquitto_passwd_file(void **state)
{
	char path[] = "/tmp/tern_pw_XXXXXX", cmd[512], err[512] = "";
	struct passwd_db *db = NULL;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd),
	         "mosquitto_passwd -c -b %s alice secret >/dev/null", path);
	run(cmd);
	snprintf(cmd, sizeof(cmd),
	         "mosquitto_passwd -H sha512 -b %s bob 'hunter 2' >/dev/null",
	         path);
	run(cmd);
	assert_int_equal(passwd_load(path, &db, err, sizeof(err)), 0);
	assert_true(ok(db, "alice", "secret"));
	assert_false(ok(db, "alice", "Secret"));
	assert_false(ok(db, "alice", "secre"));
	assert_false(ok(db, "alice", "secret "));
	/* HMAC pads keys with zeros: "secret\0" must still be refused. */
	assert_false(passwd_check(db, "alice", (const uint8_t *)"secret\0", 7));
	assert_false(
	        passwd_check(db, "alice", (const uint8_t *)"secret\0x", 8));
	assert_false(ok(db, "alice", ""));
	assert_true(ok(db, "bob", "hunter 2"));
	assert_false(ok(db, "bob", "hunter2"));
	assert_false(ok(db, "bob", "secret"));
	assert_false(ok(db, "dave", "secret"));
	assert_false(ok(db, "Alice", "secret"));
	assert_false(ok(db, "", "secret"));
	assert_false(ok(db, NULL, "secret"));
	passwd_free(db);
	unlink(path);
}

static void test_known_vectors(void **state)
{
	struct passwd_db *db = parse("# made by mosquitto_passwd\r\n"
	                             "alice:" ALICE_HASH "\r\n"
	                             "bob:" BOB_HASH "\n");

	assert_true(ok(db, "alice", "secret"));
	assert_false(ok(db, "alice", "pw2"));
	assert_true(ok(db, "bob", "pw2"));
	assert_false(ok(db, "bob", "secret"));
	assert_false(passwd_check(NULL, "alice", (const uint8_t *)"secret", 6));
	assert_false(passwd_check(db, "alice", NULL, 6));
	passwd_free(db);
	passwd_free(NULL);
}

/* Encodes n bytes as padded base64 into out (big enough). */
static void b64(const uint8_t *in, int n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, n);
}

static void test_sha512_independent(void **state)
{
	const uint8_t salt[12] = {1, 2, 3, 250, 251, 252, 0, 7, 8, 9, 10, 11};
	const char *pw = "p\xc3\xa4ss word";
	uint8_t buf[64], digest[64];
	char s64[32], d64[96], line[256];
	unsigned int dlen = 0;
	size_t plen = strlen(pw);
	struct passwd_db *db;

	memcpy(buf, pw, plen);
	memcpy(buf + plen, salt, sizeof(salt));
	assert_int_equal(EVP_Digest(buf, plen + sizeof(salt), digest, &dlen,
	                            EVP_sha512(), NULL),
	                 1);
	assert_int_equal(dlen, 64);
	b64(salt, sizeof(salt), s64);
	b64(digest, 64, d64);
	snprintf(line, sizeof(line), "zoe:$6$%s$%s\n", s64, d64);
	db = parse(line);
	assert_true(ok(db, "zoe", pw));
	assert_false(ok(db, "zoe", "p\xc3\xa4ss"));
	passwd_free(db);
}

static void test_pbkdf2_independent(void **state)
{
	const uint8_t salt[16] = "0123456789abcdef"; /* not mosquitto's 12 */
	uint8_t digest[64];
	char s64[32], d64[96], line[256];
	struct passwd_db *db;

	assert_int_equal(PKCS5_PBKDF2_HMAC("open sesame", 11, salt,
	                                   sizeof(salt), 1000, EVP_sha512(), 64,
	                                   digest),
	                 1);
	b64(salt, sizeof(salt), s64);
	b64(digest, 64, d64);
	snprintf(line, sizeof(line), "x y:$7$1000$%s$%s", s64, d64);
	db = parse(line);
	assert_true(ok(db, "x y", "open sesame"));
	assert_false(ok(db, "x y", "open sesame!"));
	assert_false(ok(db, "x", "open sesame"));
	passwd_free(db);
}

static void test_empty_file(void **state)
{
	struct passwd_db *db = parse("");

	assert_false(ok(db, "alice", "secret"));
	assert_false(ok(db, "", ""));
	passwd_free(db);
	db = parse("# nobody\n");
	assert_false(ok(db, "alice", "secret"));
	passwd_free(db);
}

static void test_blank_lines(void **state)
{
	parse_fails("\n", "t.pw:1: blank line");
	parse_fails("\r\n", "t.pw:1: blank line");
	parse_fails("alice:" ALICE_HASH "\n\nbob:" BOB_HASH "\n",
	            "t.pw:2: blank line");
	parse_fails("alice:" ALICE_HASH "\n\n", "t.pw:2: blank line");
	parse_fails("alice:" ALICE_HASH "\n   \n",
	            "t.pw:2: expected user:hash");
}

#define BAD_HASH                                                               \
	"t.pw:1: malformed or unsupported password hash "                      \
	"(expected $6$ or $7$)"

static void test_malformed_lines(void **state)
{
	parse_fails("alice\n", "t.pw:1: expected user:hash");
	parse_fails(":" ALICE_HASH "\n", "t.pw:1: empty user name");
	parse_fails("alice:secret\n", BAD_HASH);
	parse_fails("alice:\n", BAD_HASH);
	parse_fails("alice:$7$\n", BAD_HASH);
	parse_fails("alice:$5$abc$def\n", BAD_HASH);
	parse_fails("alice:" ALICE_HASH " \n", BAD_HASH);
	parse_fails("alice: " ALICE_HASH "\n", BAD_HASH);
	parse_fails("alice:$7$0$YOlesXlFnIEg6V35$AAAA\n", BAD_HASH);
	parse_fails("alice:$7$-1$YOlesXlFnIEg6V35$AAAA\n", BAD_HASH);
	parse_fails("alice:$7$99999999999$YOlesXlFnIEg6V35$"
	            "i9yrucQOvXJSZK28mUJqY4mDJe1HH7l4ZUGfxuv6jD+/"
	            "dsQw4/HgGWb73OURclsOT5wCx0xfrVcQG+qSAY6f1w==\n",
	            BAD_HASH);
	/* Digest one byte short, salt not base64, salt missing. */
	parse_fails("alice:$7$101$YOlesXlFnIEg6V35$"
	            "i9yrucQOvXJSZK28mUJqY4mDJe1HH7l4ZUGfxuv6jD+/"
	            "dsQw4/HgGWb73OURclsOT5wCx0xfrVcQG+qSAY6f1w=\n",
	            BAD_HASH);
	parse_fails("alice:$7$101$YOles*lFnIEg6V35$"
	            "i9yrucQOvXJSZK28mUJqY4mDJe1HH7l4ZUGfxuv6jD+/"
	            "dsQw4/HgGWb73OURclsOT5wCx0xfrVcQG+qSAY6f1w==\n",
	            BAD_HASH);
	parse_fails("alice:$7$101$$"
	            "i9yrucQOvXJSZK28mUJqY4mDJe1HH7l4ZUGfxuv6jD+/"
	            "dsQw4/HgGWb73OURclsOT5wCx0xfrVcQG+qSAY6f1w==\n",
	            BAD_HASH);
	parse_fails("bob:" BOB_HASH "$x\n", BAD_HASH);
	parse_fails("alice:" ALICE_HASH "\nbob:$6$EA9G$\n",
	            "t.pw:2: malformed or unsupported password hash "
	            "(expected $6$ or $7$)");
	parse_fails("alice:" ALICE_HASH "\nbob:" BOB_HASH "\nalice:" BOB_HASH
	            "\n",
	            "t.pw:3: duplicate user 'alice'");
}

static void test_make_line(void **state)
{
	char line[256], line2[256];
	struct passwd_db *db;
	int n = passwd_make_line("alice", "s3cret", 0, line, sizeof(line));

	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(line));
	assert_int_equal(strncmp(line, "alice:$7$101$", 13), 0);
	/* 12-byte salt and 64-byte digest in padded base64. */
	assert_int_equal(n, 13 + 16 + 1 + 88);
	assert_int_equal(
	        passwd_make_line("alice", "s3cret", 0, line2, sizeof(line2)),
	        n);
	assert_string_not_equal(line, line2); /* fresh salt each time */
	db = parse(line);
	assert_true(ok(db, "alice", "s3cret"));
	assert_false(ok(db, "alice", "s3cre"));
	passwd_free(db);

	n = passwd_make_line("b c", "", 2000, line, sizeof(line));
	assert_true(n > 0);
	assert_int_equal(strncmp(line, "b c:$7$2000$", 12), 0);
	db = parse(line);
	assert_true(ok(db, "b c", ""));
	assert_false(ok(db, "b c", " "));
	passwd_free(db);
}

static void test_make_line_errors(void **state)
{
	char line[256] = "x";

	assert_int_equal(passwd_make_line("", "p", 0, line, sizeof(line)),
	                 TERN_EINVAL);
	assert_int_equal(passwd_make_line("a:b", "p", 0, line, sizeof(line)),
	                 TERN_EINVAL);
	assert_int_equal(passwd_make_line("a\nb", "p", 0, line, sizeof(line)),
	                 TERN_EINVAL);
	assert_int_equal(passwd_make_line("#a", "p", 0, line, sizeof(line)),
	                 TERN_EINVAL);
	assert_int_equal(passwd_make_line(NULL, "p", 0, line, sizeof(line)),
	                 TERN_EINVAL);
	assert_int_equal(passwd_make_line("a", NULL, 0, line, sizeof(line)),
	                 TERN_EINVAL);
	assert_int_equal(passwd_make_line("alice", "p", 0, line, 118),
	                 TERN_ETOOBIG);
	assert_string_equal(line, "");
	assert_int_equal(passwd_make_line("alice", "p", 0, line, 119), 118);
}

static void test_load_errors(void **state)
{
	char path[] = "/tmp/tern_pw_XXXXXX", err[512] = "", want[600];
	struct passwd_db *db = NULL;
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("alice:" ALICE_HASH "\nbob\n", f);
	fclose(f);
	assert_int_equal(passwd_load(path, &db, err, sizeof(err)),
	                 TERN_ECONFIG);
	assert_null(db);
	snprintf(want, sizeof(want), "%s:2: expected user:hash", path);
	assert_string_equal(err, want);
	unlink(path);
	assert_int_equal(passwd_load(path, &db, err, sizeof(err)),
	                 TERN_ECONFIG);
	assert_null(db);
	assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_mosquitto_passwd_file),
	        cmocka_unit_test(test_known_vectors),
	        cmocka_unit_test(test_sha512_independent),
	        cmocka_unit_test(test_pbkdf2_independent),
	        cmocka_unit_test(test_empty_file),
	        cmocka_unit_test(test_blank_lines),
	        cmocka_unit_test(test_malformed_lines),
	        cmocka_unit_test(test_make_line),
	        cmocka_unit_test(test_make_line_errors),
	        cmocka_unit_test(test_load_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
