/*
 * Tests for src/base/sha1.c: the FIPS 180 example digests, RFC 6455's
 * handshake example, and every length from 0 to 300 bytes (each padding
 * case: one block, two blocks, the length spilling into a second block)
 * against libcrypto's SHA-1.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "base/sha1.h"

/* The digest of s as 40 lowercase hex digits. */
static void hex_digest(const void *p, size_t len, char hex[41])
{
	uint8_t md[SHA1_LEN];
	int i;

	sha1(p, len, md);
	for (i = 0; i < SHA1_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void test_fips_examples(void **state)
{
	static const char two_blocks[] =
	        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static char million[1000000];
	char hex[41];

	(void)state;
	hex_digest("abc", 3, hex);
	assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
	hex_digest("", 0, hex);
	assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	hex_digest(two_blocks, strlen(two_blocks), hex);
	assert_string_equal(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	memset(million, 'a', sizeof(million));
	hex_digest(million, sizeof(million), hex);
	assert_string_equal(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

/* RFC 6455 §1.3: key "dGhlIHNhbXBsZSBub25jZQ==" + GUID gives the accept
 * "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", the base64 of this digest. */
static void test_rfc6455_example(void **state)
{
	static const char in[] = "dGhlIHNhbXBsZSBub25jZQ=="
	                         "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	uint8_t md[SHA1_LEN];
	unsigned char b64[32];

	(void)state;
	sha1(in, strlen(in), md);
	assert_int_equal(EVP_EncodeBlock(b64, md, SHA1_LEN), 28);
	assert_string_equal((const char *)b64, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_every_length_against_libcrypto(void **state)
{
	uint8_t buf[300], ours[SHA1_LEN], theirs[EVP_MAX_MD_SIZE];
	unsigned int n;
	size_t len, i;

	(void)state;
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (len = 0; len <= sizeof(buf); len++) {
		sha1(buf, len, ours);
		assert_true(EVP_Digest(buf, len, theirs, &n, EVP_sha1(), NULL));
		assert_int_equal(n, SHA1_LEN);
		if (memcmp(ours, theirs, SHA1_LEN) != 0)
			fail_msg("SHA-1 of %zu bytes differs from libcrypto's",
			         len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_fips_examples),
	        cmocka_unit_test(test_rfc6455_example),
	        cmocka_unit_test(test_every_length_against_libcrypto),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
