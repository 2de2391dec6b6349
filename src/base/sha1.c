/*
 * SHA-1 as FIPS 180-4 §6.1.2 describes it: the message padded with 0x80,
 * zeros and its length in bits (big-endian) to whole 64-byte blocks, each
 * block expanded to 80 words and mixed into five 32-bit state words.
 */
#include "base/sha1.h"

#include <string.h>

static uint32_t rotl(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* One round (§6.1.2 step 3) with f's value for it and the constant k. */
#define SHA1_ROUND(f, k, wi)                                                   \
	do {                                                                   \
		uint32_t t_ = rotl(a, 5) + (f) + e + (k) + (wi);               \
		e = d;                                                         \
		d = c;                                                         \
		c = rotl(b, 30);                                               \
		b = a;                                                         \
		a = t_;                                                        \
	} while (0)

/* One 64-byte block into the state h (§6.1.2 steps 1-4). The 80 rounds
 * run as four loops of 20, one per function, so no round branches. */
static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	int i;

	for (i = 0; i < 16; i++)
		w[i] = get_be32(p + 4 * i);
	for (; i < 80; i++)
		w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (i = 0; i < 20; i++)
		SHA1_ROUND(d ^ (b & (c ^ d)), 0x5A827999u, w[i]);
	for (; i < 40; i++)
		SHA1_ROUND(b ^ c ^ d, 0x6ED9EBA1u, w[i]);
	for (; i < 60; i++)
		SHA1_ROUND((b & c) | (d & (b | c)), 0x8F1BBCDCu, w[i]);
	for (; i < 80; i++)
		SHA1_ROUND(b ^ c ^ d, 0xCA62C1D6u, w[i]);
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void sha1(const void *data, size_t len, uint8_t out[SHA1_LEN])
{
	uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u,
	                 0xC3D2E1F0u};
	uint64_t bits = (uint64_t)len * 8;
	const uint8_t *p = data;
	uint8_t tail[128];
	size_t n;
	int i;

	for (; len >= 64; len -= 64, p += 64)
		sha1_block(h, p);
	/* The rest, 0x80, zeros, and the 8-byte length: one block if they
	 * fit in 64 bytes, else two. */
	memset(tail, 0, sizeof(tail));
	if (len)
		memcpy(tail, p, len);
	tail[len] = 0x80;
	n = len + 1 + 8 <= 64 ? 64 : 128;
	for (i = 0; i < 8; i++)
		tail[n - 1 - (size_t)i] = (uint8_t)(bits >> (8 * i));
	sha1_block(h, tail);
	if (n == 128)
		sha1_block(h, tail + 64);
	for (i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}
