/*
 * Tests for src/net/ws.c: the server frame encoder, word-at-a-time
 * unmasking against a byte-at-a-time reference, and the in-place decoder.
 * The decoder is fed a known byte stream cut into frames, fragments and
 * interleaved pings, in one piece, a byte at a time and in random chunks,
 * and must hand back exactly that stream. Every row of the WebSocket table
 * of BAD_INPUTS.md that the codec can see has a test with the close code
 * the broker sends. With compression on, compressed messages (RSV1) must
 * come back whole with their boundaries, whatever the chunking.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "net/ws.h"

#define FIN   0x80
#define BIN   (FIN | WS_OP_BINARY)
#define PING  (FIN | WS_OP_PING)
#define PONG  (FIN | WS_OP_PONG)
#define CLOSE (FIN | WS_OP_CLOSE)

/* Length field forms for enc_ex(). */
enum { LEN_MIN, LEN_16, LEN_64 };

static uint32_t rng_state = 0x12345678;

/* xorshift32: deterministic, so a failure replays. */
static uint32_t rnd(void)
{
	uint32_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return rng_state = x;
}

/* Encodes a client frame: first byte b0, masked unless `unmasked`. */
static size_t enc_ex(uint8_t *o, uint8_t b0, const void *payload, size_t n,
                     int form, int unmasked)
{
	const uint8_t *pl = payload;
	uint8_t mbit = unmasked ? 0 : 0x80;
	uint32_t m = rnd();
	uint8_t mask[4] = {(uint8_t)m, (uint8_t)(m >> 8), (uint8_t)(m >> 16),
	                   (uint8_t)(m >> 24)};
	size_t h = 0;

	o[h++] = b0;
	if (form == LEN_MIN && n < 126) {
		o[h++] = mbit | (uint8_t)n;
	} else if (form != LEN_64 && n <= 0xFFFF) {
		o[h++] = mbit | 126;
		o[h++] = (uint8_t)(n >> 8);
		o[h++] = (uint8_t)n;
	} else {
		o[h++] = mbit | 127;
		for (int i = 7; i >= 0; i--)
			o[h++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	if (!unmasked) {
		memcpy(o + h, mask, 4);
		h += 4;
	}
	for (size_t i = 0; i < n; i++)
		o[h + i] = pl[i] ^ (unmasked ? 0 : mask[i & 3]);
	return h + n;
}

static size_t enc(uint8_t *o, uint8_t b0, const void *payload, size_t n)
{
	return enc_ex(o, b0, payload, n, LEN_MIN, 0);
}

/* What decoding a whole buffer produced. */
struct result {
	int rc;         /* last return value */
	uint16_t cc;    /* close code with an error */
	size_t in, out; /* counters after the last call */
	int events[16]; /* events seen, in order */
	int nevents;
};

/* Decodes buf[0..len) in one go, collecting events, until an error. */
static struct result dec(struct ws_decoder *d, uint8_t *buf, size_t len)
{
	struct result r = {0};

	r.cc = 0xFFFF;
	do {
		r.rc = ws_decode(d, buf, len, &r.in, &r.out, &r.cc);
		assert_true(r.out <= r.in);
		if (r.rc > 0 && r.nevents < 16)
			r.events[r.nevents++] = r.rc;
	} while (r.rc > 0);
	return r;
}

/* Expects decoding `frame` from a fresh decoder to fail with rc, code. */
static void expect_fail(const uint8_t *frame, size_t len, uint64_t max, int rc,
                        uint16_t code)
{
	struct ws_decoder d;
	uint8_t buf[512];
	struct result r;

	assert_true(len <= sizeof(buf));
	memcpy(buf, frame, len);
	ws_decoder_init(&d, max);
	r = dec(&d, buf, len);
	assert_int_equal(r.rc, rc);
	assert_int_equal(r.cc, code);
}

/* ------------------------------------------------------------------ */
/* Encoder */

static void test_header_sizes(void **state)
{
	static const struct {
		uint64_t len;
		size_t size;
		uint8_t b1;
	} cases[] = {
	        {0, 2, 0},
	        {1, 2, 1},
	        {125, 2, 125},
	        {126, 4, 126},
	        {65535, 4, 126},
	        {65536, 10, 127},
	        {1ULL << 32, 10, 127},
	        {UINT64_MAX >> 1, 10, 127},
	};
	uint8_t h[WS_MAX_HEADER];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = ws_header(h, WS_OP_BINARY, cases[i].len);
		uint64_t got = cases[i].len < 126 ? h[1] : 0;

		assert_int_equal(n, cases[i].size);
		assert_int_equal(ws_header_size(cases[i].len), cases[i].size);
		assert_int_equal(h[0], 0x82);
		assert_int_equal(h[1], cases[i].b1);
		if (n == 4)
			got = (uint64_t)h[2] << 8 | h[3];
		for (size_t j = 2; n == 10 && j < 10; j++)
			got = got << 8 | h[j];
		assert_int_equal(got, cases[i].len);
	}
}

static void test_close_frame(void **state)
{
	uint8_t o[WS_MAX_HEADER + 125];
	static const uint8_t want[] = {0x88, 5, 0x03, 0xE9, 'b', 'y', 'e'};
	char big[200];
	size_t n;

	n = ws_close_frame(o, WS_CLOSE_GOING_AWAY, "bye", 3);
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(o, want, sizeof(want));
	n = ws_close_frame(o, WS_CLOSE_PROTOCOL, NULL, 0);
	assert_int_equal(n, 4);
	assert_int_equal(o[1], 2);
	assert_int_equal(o[2] << 8 | o[3], 1002);
	/* An over-long reason is cut so the payload stays at 125 bytes. */
	memset(big, 'x', sizeof(big));
	n = ws_close_frame(o, WS_CLOSE_POLICY, big, sizeof(big));
	assert_int_equal(n, 2 + 125);
	assert_int_equal(o[1], 125);
}

/* ------------------------------------------------------------------ */
/* Unmasking */

static void unmask_ref(uint8_t *p, size_t len, const uint8_t mask[4],
                       uint64_t offset)
{
	for (size_t i = 0; i < len; i++)
		p[i] ^= mask[(offset + i) % 4];
}

static void test_unmask_matches_reference(void **state)
{
	static const uint8_t mask[4] = {0xA1, 0x3C, 0x5E, 0xF7};
	uint8_t a[128], b[128];

	/* Every payload offset 0..15 (also the 64-bit wrap of the phase),
	 * every length 0..100, every misalignment of the pointer. */
	for (uint64_t off = 0; off < 16; off++)
		for (size_t len = 0; len <= 100; len++)
			for (size_t al = 0; al < 8; al++) {
				for (size_t i = 0; i < sizeof(a); i++)
					a[i] = b[i] = (uint8_t)rnd();
				ws_unmask(a + al, len, mask, off);
				unmask_ref(b + al, len, mask, off);
				assert_memory_equal(a, b, sizeof(a));
			}
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = b[i] = (uint8_t)i;
	ws_unmask(a, 77, mask, UINT64_MAX - 2);
	unmask_ref(b, 77, mask, UINT64_MAX - 2);
	assert_memory_equal(a, b, sizeof(a));
}

/* Unmasking a payload in pieces of any size gives the same bytes. */
static void test_unmask_split(void **state)
{
	static const uint8_t mask[4] = {1, 2, 3, 4};
	uint8_t a[100], b[100];

	for (size_t cut = 0; cut <= sizeof(a); cut++) {
		for (size_t i = 0; i < sizeof(a); i++)
			a[i] = b[i] = (uint8_t)(i * 7);
		ws_unmask(a, cut, mask, 0);
		ws_unmask(a + cut, sizeof(a) - cut, mask, cut);
		unmask_ref(b, sizeof(b), mask, 0);
		assert_memory_equal(a, b, sizeof(a));
	}
}

/* A one-pass masked copy gives the bytes of a copy and then ws_unmask(),
 * into a separate buffer and moved down within one (dst < src). */
static void test_mask_copy(void **state)
{
	static const uint8_t mask[4] = {0x5A, 0x01, 0xC3, 0x7E};
	uint8_t src[160], a[160], b[160];

	for (size_t len = 0; len <= 100; len++)
		for (size_t al = 0; al < 8; al++) {
			for (size_t i = 0; i < sizeof(src); i++)
				src[i] = (uint8_t)rnd();
			memset(a, 0xEE, sizeof(a));
			memset(b, 0xEE, sizeof(b));
			ws_mask_copy(a + al, src + 8 - al, len, mask);
			memcpy(b + al, src + 8 - al, len);
			ws_unmask(b + al, len, mask, 0);
			assert_memory_equal(a, b, sizeof(a));
			/* In place, moved down by 1..14 bytes (a header). */
			for (size_t k = 1; k <= 14; k++) {
				memcpy(a, src, sizeof(a));
				ws_mask_copy(a + 16 - k, a + 16, len, mask);
				memcpy(b + 16 - k, src + 16, len);
				ws_unmask(b + 16 - k, len, mask, 0);
				assert_memory_equal(a + 16 - k, b + 16 - k,
				                    len);
			}
		}
}

/* ------------------------------------------------------------------ */
/* Decoding valid input */

static void test_binary_in_place(void **state)
{
	static const uint8_t pingreq[] = {0xC0, 0x00};
	uint8_t buf[64];
	struct ws_decoder d;
	size_t n = enc(buf, BIN, pingreq, sizeof(pingreq));
	struct result r;

	ws_decoder_init(&d, 0);
	r = dec(&d, buf, n);
	assert_int_equal(r.rc, WS_EV_NONE);
	assert_int_equal(r.in, n);
	assert_int_equal(r.out, 2);
	assert_memory_equal(buf, pingreq, 2);
}

static void test_empty_frames(void **state)
{
	uint8_t buf[64];
	struct ws_decoder d;
	size_t n = 0;
	struct result r;

	n += enc(buf + n, BIN, "", 0);
	n += enc(buf + n, WS_OP_BINARY, "", 0); /* empty first fragment */
	n += enc(buf + n, WS_OP_CONT, "ab", 2);
	n += enc(buf + n, FIN | WS_OP_CONT, "", 0);
	n += enc(buf + n, PING, "", 0);
	ws_decoder_init(&d, 0);
	r = dec(&d, buf, n);
	assert_int_equal(r.rc, WS_EV_NONE);
	assert_int_equal(r.nevents, 1);
	assert_int_equal(r.events[0], WS_EV_PING);
	assert_int_equal(d.ctl_len, 0);
	assert_int_equal(r.in, n);
	assert_int_equal(r.out, 2);
	assert_memory_equal(buf, "ab", 2);
}

static void check_length_form(size_t len, int form)
{
	uint8_t *payload = malloc(len), *buf = malloc(len + 14);
	struct ws_decoder d;
	struct result r;
	size_t n;

	assert_non_null(payload);
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		payload[i] = (uint8_t)(i * 31 + 7);
	n = enc_ex(buf, BIN, payload, len, form, 0);
	ws_decoder_init(&d, 1 << 20);
	r = dec(&d, buf, n);
	assert_int_equal(r.rc, WS_EV_NONE);
	assert_int_equal(r.in, n);
	assert_int_equal(r.out, len);
	assert_memory_equal(buf, payload, len);
	free(payload);
	free(buf);
}

/* 7-, 16- and 64-bit lengths, including non-minimal forms (accepted). */
static void test_lengths(void **state)
{
	check_length_form(125, LEN_MIN);
	check_length_form(126, LEN_MIN);
	check_length_form(300, LEN_MIN);
	check_length_form(65535, LEN_MIN);
	check_length_form(65536, LEN_MIN);
	check_length_form(70000, LEN_MIN);
	check_length_form(5, LEN_16);
	check_length_form(5, LEN_64);
	check_length_form(300, LEN_64);
}

static void test_ping_pong_events(void **state)
{
	uint8_t buf[300];
	struct ws_decoder d;
	size_t n = 0, in = 0, out = 0;
	uint16_t cc = 0;
	uint8_t big[125];

	memset(big, 0x5A, sizeof(big));
	n += enc(buf + n, PING, "hello", 5);
	n += enc(buf + n, PONG, "x", 1);
	n += enc(buf + n, PING, big, sizeof(big));
	ws_decoder_init(&d, 0);
	assert_int_equal(ws_decode(&d, buf, n, &in, &out, &cc), WS_EV_PING);
	assert_int_equal(d.ctl_len, 5);
	assert_memory_equal(d.ctl, "hello", 5);
	assert_int_equal(ws_decode(&d, buf, n, &in, &out, &cc), WS_EV_PONG);
	assert_int_equal(d.ctl_len, 1);
	assert_int_equal(ws_decode(&d, buf, n, &in, &out, &cc), WS_EV_PING);
	assert_int_equal(d.ctl_len, 125);
	assert_memory_equal(d.ctl, big, 125);
	assert_int_equal(ws_decode(&d, buf, n, &in, &out, &cc), WS_EV_NONE);
	assert_int_equal(in, n);
	assert_int_equal(out, 0);
}

/* ------------------------------------------------------------------ */
/* Streams: a known byte sequence through frames and chunkings */

#define STREAM_LEN 6000
#define WIRE_CAP   (STREAM_LEN * 2 + 4096)

struct wire {
	uint8_t bytes[WIRE_CAP];
	size_t len;
	uint8_t pings[64][125]; /* payloads of the pings, in order */
	size_t ping_len[64];
	int npings;
};

static void add_control(struct wire *w)
{
	size_t n = rnd() % 126;
	uint8_t p[125];
	uint8_t op = rnd() % 3 ? PING : PONG;

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd();
	if (op == PING && w->npings < 64) {
		memcpy(w->pings[w->npings], p, n);
		w->ping_len[w->npings++] = n;
	} else {
		op = PONG;
	}
	w->len += enc(w->bytes + w->len, op, p, n);
}

/*
 * Cuts stream[0..len) into messages of 1-4 fragments of random sizes
 * (empty ones included), with pings and pongs between fragments and
 * between messages.
 */
static void build_wire(struct wire *w, const uint8_t *stream, size_t len)
{
	size_t pos = 0;

	w->len = 0;
	w->npings = 0;
	while (pos < len) {
		int frags = 1 + (int)(rnd() % 4);

		for (int f = 0; f < frags; f++) {
			size_t n = rnd() % 3 == 0 ? rnd() % 8 : rnd() % 400;
			uint8_t b0 = f == 0 ? WS_OP_BINARY : WS_OP_CONT;
			int form = rnd() % 8 == 0 ? LEN_64 : LEN_MIN;

			if (n > len - pos)
				n = len - pos;
			if (f == frags - 1)
				b0 |= FIN;
			w->len += enc_ex(w->bytes + w->len, b0, stream + pos, n,
			                 form, 0);
			pos += n;
			if (rnd() % 3 == 0)
				add_control(w);
		}
	}
	assert_true(w->len <= WIRE_CAP);
}

/*
 * Feeds the wire to a decoder in chunks of chunk() bytes, acting like the
 * broker: bytes are appended to a read buffer, decoded, and the output is
 * taken away (when `keep` is 0) or left in front of what follows.
 */
static void feed(const struct wire *w, const uint8_t *stream, size_t len,
                 size_t (*chunk)(void), int keep)
{
	static uint8_t rb[WIRE_CAP], got[STREAM_LEN];
	struct ws_decoder d;
	size_t pos = 0, fill = 0, in = 0, out = 0, glen = 0;
	int pings = 0, rc;
	uint16_t cc = 0;

	ws_decoder_init(&d, 4096);
	while (pos < w->len) {
		size_t n = chunk();

		if (n > w->len - pos)
			n = w->len - pos;
		memcpy(rb + fill, w->bytes + pos, n);
		fill += n;
		pos += n;
		while ((rc = ws_decode(&d, rb, fill, &in, &out, &cc)) > 0) {
			assert_true(out <= in);
			if (rc != WS_EV_PING)
				continue;
			assert_true(pings < w->npings);
			assert_int_equal(d.ctl_len, w->ping_len[pings]);
			assert_memory_equal(d.ctl, w->pings[pings], d.ctl_len);
			pings++;
		}
		assert_int_equal(rc, WS_EV_NONE);
		assert_int_equal(in, fill);
		if (keep && rnd() % 4)
			continue; /* leave output and gap for the next call */
		memcpy(got + glen, rb, out);
		glen += out;
		in = out = fill = 0;
	}
	memcpy(got + glen, rb, out);
	glen += out;
	assert_int_equal(pings, w->npings);
	assert_int_equal(glen, len);
	assert_memory_equal(got, stream, len);
}

static size_t one_byte(void)
{
	return 1;
}

static size_t random_chunk(void)
{
	return 1 + rnd() % 97;
}

static size_t whole(void)
{
	return WIRE_CAP;
}

static void test_stream_chunkings(void **state)
{
	static struct wire w;
	static uint8_t stream[STREAM_LEN];

	for (int round = 0; round < 20; round++) {
		size_t len = 1 + rnd() % STREAM_LEN;

		for (size_t i = 0; i < len; i++)
			stream[i] = (uint8_t)rnd();
		build_wire(&w, stream, len);
		feed(&w, stream, len, whole, 0);
		feed(&w, stream, len, one_byte, 0);
		feed(&w, stream, len, random_chunk, 0);
		feed(&w, stream, len, random_chunk, 1);
	}
}

/* Two MQTT packets in one frame, then one packet across three frames. */
static void test_mqtt_packets_and_frames(void **state)
{
	static const uint8_t two[] = {0xC0, 0x00, 0x30, 0x05, 0x00,
	                              0x01, 't',  'h',  'i'};
	static const uint8_t pub[] = {0x30, 0x07, 0x00, 0x03, 'a',
	                              '/',  'b',  'x',  'y'};
	uint8_t buf[128];
	struct ws_decoder d;
	struct result r;
	size_t n = 0;

	n += enc(buf + n, BIN, two, sizeof(two));
	n += enc(buf + n, BIN, pub, 2);
	n += enc(buf + n, BIN, pub + 2, 4);
	n += enc(buf + n, WS_OP_BINARY, pub + 6, 1);
	n += enc(buf + n, PING, "p", 1);
	n += enc(buf + n, FIN | WS_OP_CONT, pub + 7, 2);
	ws_decoder_init(&d, 64);
	r = dec(&d, buf, n);
	assert_int_equal(r.rc, WS_EV_NONE);
	assert_int_equal(r.nevents, 1);
	assert_int_equal(r.out, sizeof(two) + sizeof(pub));
	assert_memory_equal(buf, two, sizeof(two));
	assert_memory_equal(buf + sizeof(two), pub, sizeof(pub));
}

/* ------------------------------------------------------------------ */
/* Limits */

static void test_limit_exact_and_over(void **state)
{
	uint8_t buf[256], p[101] = {0};
	struct ws_decoder d;
	struct result r;
	size_t n;

	/* A single frame of exactly max_message bytes passes. */
	n = enc(buf, BIN, p, 100);
	ws_decoder_init(&d, 100);
	r = dec(&d, buf, n);
	assert_int_equal(r.rc, WS_EV_NONE);
	assert_int_equal(r.out, 100);

	/* One byte more is refused from the header alone. */
	n = enc(buf, BIN, p, 101);
	expect_fail(buf, 6, 100, TERN_ETOOBIG, WS_CLOSE_TOO_BIG);

	/* Fragments add up: 60 + 41 > 100, refused at the second header. */
	n = enc(buf, WS_OP_BINARY, p, 60);
	n += enc(buf + n, FIN | WS_OP_CONT, p, 41);
	expect_fail(buf, n - 41, 100, TERN_ETOOBIG, WS_CLOSE_TOO_BIG);

	/* A new message starts counting from zero. */
	n = enc(buf, BIN, p, 60);
	n += enc(buf + n, BIN, p, 60);
	ws_decoder_init(&d, 100);
	r = dec(&d, buf, n);
	assert_int_equal(r.rc, WS_EV_NONE);
	assert_int_equal(r.out, 120);
}

static void test_huge_lengths(void **state)
{
	/* 64-bit length with the top bit set: never a valid length. */
	uint8_t top[] = {BIN, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
	uint8_t huge[] = {BIN,  0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF,
	                  0xFF, 0xFF, 0xFF, 1,    2,    3,    4};
	uint8_t cont[] = {FIN | WS_OP_CONT,
	                  0xFF,
	                  0x7F,
	                  0xFF,
	                  0xFF,
	                  0xFF,
	                  0xFF,
	                  0xFF,
	                  0xFF,
	                  0xFF,
	                  1,
	                  2,
	                  3,
	                  4};
	uint8_t buf[64];
	size_t n;

	expect_fail(top, sizeof(top), 0, TERN_ETOOBIG, WS_CLOSE_TOO_BIG);
	expect_fail(top, sizeof(top), 1000, TERN_ETOOBIG, WS_CLOSE_TOO_BIG);
	expect_fail(huge, sizeof(huge), 1 << 20, TERN_ETOOBIG,
	            WS_CLOSE_TOO_BIG);

	/* A huge continuation: the running total is over the limit. */
	n = enc(buf, WS_OP_BINARY, "abc", 3);
	memcpy(buf + n, cont, sizeof(cont));
	expect_fail(buf, n + sizeof(cont), 1 << 20, TERN_ETOOBIG,
	            WS_CLOSE_TOO_BIG);
}

/* Without a limit, a huge declared frame just waits for its payload. */
static void test_no_limit(void **state)
{
	uint8_t huge[] = {BIN,  0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	                  0xFF, 0xFF, 1,    2,    3,    4,    9,    9};
	struct ws_decoder d;
	struct result r;

	ws_decoder_init(&d, 0);
	r = dec(&d, huge, sizeof(huge));
	assert_int_equal(r.rc, WS_EV_NONE);
	assert_int_equal(r.out, 2);
	assert_true(d.in_frame);
}

/* ------------------------------------------------------------------ */
/* Protocol errors */

static void test_text_refused(void **state)
{
	uint8_t buf[32];
	size_t n = enc(buf, FIN | WS_OP_TEXT, "{}", 2);

	expect_fail(buf, n, 0, TERN_EINVAL, WS_CLOSE_UNSUPPORTED);
	/* Refused from the first two bytes, before the payload. */
	expect_fail(buf, 2, 0, TERN_EINVAL, WS_CLOSE_UNSUPPORTED);
	n = enc(buf, WS_OP_TEXT, "{", 1);
	expect_fail(buf, n, 0, TERN_EINVAL, WS_CLOSE_UNSUPPORTED);
}

static void test_unmasked_refused(void **state)
{
	uint8_t buf[32];
	size_t n = enc_ex(buf, BIN, "ab", 2, LEN_MIN, 1);

	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	expect_fail(buf, 2, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc_ex(buf, PING, "", 0, LEN_MIN, 1);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
}

static void test_rsv_refused(void **state)
{
	uint8_t buf[32];

	for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
		size_t n = enc(buf, BIN | rsv, "ab", 2);

		expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
		n = enc(buf, PING | rsv, "", 0);
		expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	}
}

static void test_reserved_opcodes(void **state)
{
	static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
	uint8_t buf[32];

	for (size_t i = 0; i < sizeof(ops); i++) {
		size_t n = enc(buf, FIN | ops[i], "ab", 2);

		expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
		n = enc(buf, FIN | ops[i], "", 0);
		expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	}
}

static void test_bad_control_frames(void **state)
{
	uint8_t buf[256], p[126] = {0};
	size_t n;

	/* Fragmented control frames. */
	n = enc(buf, WS_OP_PING, "a", 1);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc(buf, WS_OP_CLOSE, "", 0);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc(buf, WS_OP_PONG, "", 0);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	/* Over 125 bytes, in the 16-bit form and as a non-minimal 126. */
	n = enc(buf, PING, p, 126);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc_ex(buf, PONG, p, 5, LEN_16, 0);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc_ex(buf, CLOSE, p, 2, LEN_64, 0);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
}

static void test_bad_fragmentation(void **state)
{
	uint8_t buf[64];
	size_t n;

	/* Continuation with nothing to continue. */
	n = enc(buf, FIN | WS_OP_CONT, "ab", 2);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc(buf, WS_OP_CONT, "ab", 2);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	/* ... nor after a finished message. */
	n = enc(buf, BIN, "ab", 2);
	n += enc(buf + n, FIN | WS_OP_CONT, "c", 1);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	/* A new data frame while a message is open. */
	n = enc(buf, WS_OP_BINARY, "ab", 2);
	n += enc(buf + n, BIN, "c", 1);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc(buf, WS_OP_BINARY, "ab", 2);
	n += enc(buf + n, FIN | WS_OP_TEXT, "c", 1);
	expect_fail(buf, n, 0, TERN_EINVAL, WS_CLOSE_UNSUPPORTED);
}

/* ------------------------------------------------------------------ */
/* Close frames */

static int close_with(const uint8_t *payload, size_t n, uint16_t *cc,
                      struct ws_decoder *d)
{
	uint8_t buf[256];
	size_t len = enc(buf, CLOSE, payload, n), in = 0, out = 0;

	ws_decoder_init(d, 0);
	*cc = 0xFFFF;
	return ws_decode(d, buf, len, &in, &out, cc);
}

static void test_close_valid(void **state)
{
	static const uint16_t codes[] = {1000, 1001, 1002, 1003, 1007, 1008,
	                                 1009, 1010, 1011, 1012, 1013, 1014,
	                                 3000, 3999, 4000, 4999};
	static const uint8_t utf8[] = {0x03, 0xE8, 0xC3, 0xA9, 0xE2, 0x82,
	                               0xAC, 0xF0, 0x9F, 0x98, 0x80};
	struct ws_decoder d;
	uint16_t cc;

	assert_int_equal(close_with(NULL, 0, &cc, &d), WS_EV_CLOSE);
	assert_int_equal(d.close_code, 1005);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		uint8_t p[] = {(uint8_t)(codes[i] >> 8), (uint8_t)codes[i]};

		assert_int_equal(close_with(p, 2, &cc, &d), WS_EV_CLOSE);
		assert_int_equal(d.close_code, codes[i]);
		assert_int_equal(d.ctl_len, 2);
	}
	assert_int_equal(close_with(utf8, sizeof(utf8), &cc, &d), WS_EV_CLOSE);
	assert_int_equal(d.close_code, 1000);
	assert_int_equal(d.ctl_len, sizeof(utf8));
	assert_memory_equal(d.ctl + 2, utf8 + 2, sizeof(utf8) - 2);
}

static void test_close_invalid(void **state)
{
	static const uint16_t codes[] = {0,    999,  1004, 1005, 1006, 1015,
	                                 1016, 1100, 2000, 2999, 5000, 65535};
	static const uint8_t bad_utf8[][6] = {
	        {0x03, 0xE8, 0xFF},             /* never valid */
	        {0x03, 0xE8, 0xC3},             /* truncated */
	        {0x03, 0xE8, 0xC0, 0x80},       /* overlong */
	        {0x03, 0xE8, 0xED, 0xA0, 0x80}, /* surrogate */
	};
	static const size_t bad_len[] = {3, 3, 4, 5};
	struct ws_decoder d;
	uint16_t cc;

	assert_int_equal(close_with((const uint8_t *)"\x03", 1, &cc, &d),
	                 TERN_EPROTO);
	assert_int_equal(cc, WS_CLOSE_PROTOCOL);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		uint8_t p[] = {(uint8_t)(codes[i] >> 8), (uint8_t)codes[i]};

		assert_int_equal(close_with(p, 2, &cc, &d), TERN_EPROTO);
		assert_int_equal(cc, WS_CLOSE_PROTOCOL);
	}
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(close_with(bad_utf8[i], bad_len[i], &cc, &d),
		                 TERN_EUTF8);
		assert_int_equal(cc, WS_CLOSE_INVALID);
	}
}

/* A close split across calls and inside a fragmented message. */
static void test_close_split(void **state)
{
	uint8_t buf[64];
	struct ws_decoder d;
	size_t n = 0, in = 0, out = 0;
	uint16_t cc = 0;
	int rc = WS_EV_NONE;

	n += enc(buf + n, WS_OP_BINARY, "ab", 2);
	n += enc(buf + n, CLOSE, "\x03\xe8ok", 4);
	ws_decoder_init(&d, 0);
	for (size_t len = 1; len <= n && rc == WS_EV_NONE; len++) {
		rc = ws_decode(&d, buf, len, &in, &out, &cc);
		assert_int_equal(in, len);
	}
	assert_int_equal(rc, WS_EV_CLOSE);
	assert_int_equal(in, n);
	assert_int_equal(d.close_code, 1000);
	assert_int_equal(d.ctl_len, 4);
	assert_memory_equal(d.ctl + 2, "ok", 2);
	assert_int_equal(out, 2);
	assert_memory_equal(buf, "ab", 2);
}

/* ------------------------------------------------------------------ */
/* Compressed messages (permessage-deflate: RSV1 on the first frame) */

#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10

/* Decoding `frame` with compression on fails with rc, code. */
static void expect_fail_z(const uint8_t *frame, size_t len, int rc,
                          uint16_t code)
{
	struct ws_decoder d;
	uint8_t buf[512];
	struct result r;

	memcpy(buf, frame, len);
	ws_decoder_init(&d, 0);
	d.compression = true;
	r = dec(&d, buf, len);
	assert_int_equal(r.rc, rc);
	assert_int_equal(r.cc, code);
}

static void test_compressed_header(void **state)
{
	uint8_t h[WS_MAX_HEADER];

	assert_int_equal(ws_header_compressed(h, WS_OP_BINARY, 5), 2);
	assert_int_equal(h[0], FIN | RSV1 | WS_OP_BINARY);
	assert_int_equal(h[1], 5);
	assert_int_equal(ws_header_compressed(h, WS_OP_BINARY, 70000), 10);
	assert_int_equal(h[0], 0xC2);
	assert_int_equal(h[1], 127);
}

static void test_compressed_rsv_rules(void **state)
{
	uint8_t buf[64];
	size_t n;

	/* RSV1 only on the first frame of a data message. */
	n = enc(buf, WS_OP_BINARY | RSV1, "ab", 2);
	n += enc(buf + n, FIN | WS_OP_CONT | RSV1, "c", 1);
	expect_fail_z(buf, n, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc(buf, PING | RSV1, "", 0);
	expect_fail_z(buf, n, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc(buf, CLOSE | RSV1, "\x03\xe8", 2);
	expect_fail_z(buf, n, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	/* RSV2 and RSV3 stay reserved. */
	n = enc(buf, BIN | RSV2, "ab", 2);
	expect_fail_z(buf, n, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	n = enc(buf, BIN | RSV1 | RSV3, "ab", 2);
	expect_fail_z(buf, n, TERN_EPROTO, WS_CLOSE_PROTOCOL);
	/* A compressed text message is still a text message. */
	n = enc(buf, FIN | WS_OP_TEXT | RSV1, "ab", 2);
	expect_fail_z(buf, n, TERN_EINVAL, WS_CLOSE_UNSUPPORTED);
	/* Without compression, RSV1 is a protocol error (1002). */
	n = enc(buf, BIN | RSV1, "ab", 2);
	expect_fail(buf, n, 0, TERN_EPROTO, WS_CLOSE_PROTOCOL);
}

static void test_compressed_events(void **state)
{
	uint8_t buf[128];
	struct ws_decoder d;
	size_t n = 0, in = 0, out = 0;
	uint16_t cc = 0;

	n += enc(buf + n, BIN, "ab", 2);
	n += enc(buf + n, BIN | RSV1, "xyz", 3);
	n += enc(buf + n, BIN, "cd", 2);
	n += enc(buf + n, WS_OP_BINARY | RSV1, "12", 2);
	n += enc(buf + n, PING, "p", 1);
	n += enc(buf + n, WS_OP_CONT, "34", 2);
	n += enc(buf + n, FIN | WS_OP_CONT, "5", 1);
	n += enc(buf + n, BIN | RSV1, "", 0);
	ws_decoder_init(&d, 0);
	d.compression = true;
	/* Plain bytes flow on; a compressed message stops at its end. */
	assert_int_equal(ws_decode(&d, buf, n, &in, &out, &cc), WS_EV_MESSAGE);
	assert_int_equal(out, 5);
	assert_int_equal(d.zlen, 3);
	assert_memory_equal(buf, "abxyz", 5);
	/* Open compressed bytes are reported with a control frame. */
	assert_int_equal(ws_decode(&d, buf, n, &in, &out, &cc), WS_EV_PING);
	assert_int_equal(d.zlen, 2);
	assert_int_equal(ws_decode(&d, buf, n, &in, &out, &cc), WS_EV_MESSAGE);
	assert_int_equal(d.zlen, 5);
	assert_int_equal(out, 12);
	assert_memory_equal(buf, "abxyzcd12345", 12);
	/* An empty compressed message is an event too. */
	assert_int_equal(ws_decode(&d, buf, n, &in, &out, &cc), WS_EV_MESSAGE);
	assert_int_equal(d.zlen, 0);
	assert_int_equal(ws_decode(&d, buf, n, &in, &out, &cc), WS_EV_NONE);
	assert_int_equal(in, n);
	assert_int_equal(d.zlen, 0);
}

/* The expected cut of a stream into messages, some compressed. */
struct zwire {
	struct wire w;
	size_t zstart[256], zlen[256]; /* compressed messages, in order */
	int nz;
};

static void build_zwire(struct zwire *z, const uint8_t *stream, size_t len)
{
	struct wire *w = &z->w;
	size_t pos = 0;

	w->len = 0;
	w->npings = 0;
	z->nz = 0;
	while (pos < len) {
		int frags = 1 + (int)(rnd() % 4);
		bool comp = rnd() % 2 && z->nz < 256;

		if (comp)
			z->zstart[z->nz] = pos;
		for (int f = 0; f < frags; f++) {
			size_t n = rnd() % 3 == 0 ? rnd() % 8 : rnd() % 400;
			uint8_t b0 = f == 0 ? WS_OP_BINARY : WS_OP_CONT;

			if (n > len - pos)
				n = len - pos;
			if (f == frags - 1)
				b0 |= FIN;
			if (f == 0 && comp)
				b0 |= RSV1;
			w->len += enc(w->bytes + w->len, b0, stream + pos, n);
			pos += n;
			if (rnd() % 3 == 0)
				add_control(w);
		}
		if (comp) {
			z->zlen[z->nz] = pos - z->zstart[z->nz];
			z->nz++;
		}
	}
	assert_true(w->len <= WIRE_CAP);
}

/*
 * Feeds a zwire like conn_ws.c does: plain output is taken at once, the
 * open compressed message's bytes (d.zlen) stay at the front of the read
 * buffer for the next call, a complete one is taken with its boundaries.
 */
static void feed_z(const struct zwire *z, const uint8_t *stream, size_t len,
                   size_t (*chunk)(void))
{
	static uint8_t rb[WIRE_CAP], got[STREAM_LEN];
	struct ws_decoder d;
	size_t pos = 0, fill = 0, keep = 0, glen = 0;
	int nz = 0, rc = 0;
	uint16_t cc = 0;

	ws_decoder_init(&d, 4096);
	d.compression = true;
	while (pos < z->w.len) {
		size_t n = chunk(), in = keep, out = keep;

		if (n > z->w.len - pos)
			n = z->w.len - pos;
		memcpy(rb + fill, z->w.bytes + pos, n);
		fill += n;
		pos += n;
		while ((rc = ws_decode(&d, rb, fill, &in, &out, &cc)) > 0) {
			assert_true(d.zlen <= out);
			if (rc != WS_EV_MESSAGE)
				continue;
			assert_true(nz < z->nz);
			assert_int_equal(d.zlen, z->zlen[nz]);
			assert_int_equal(glen + out - d.zlen, z->zstart[nz]);
			nz++;
			memcpy(got + glen, rb, out);
			glen += out;
			memmove(rb, rb + in, fill - in);
			fill -= in;
			in = out = 0;
		}
		assert_int_equal(rc, WS_EV_NONE);
		assert_int_equal(in, fill);
		/* Take the plain bytes, keep the open compressed ones. */
		keep = (size_t)d.zlen;
		memcpy(got + glen, rb, out - keep);
		glen += out - keep;
		memmove(rb, rb + out - keep, keep);
		fill = keep;
	}
	assert_int_equal(keep, 0);
	assert_int_equal(nz, z->nz);
	assert_int_equal(glen, len);
	assert_memory_equal(got, stream, len);
}

static void test_compressed_stream_chunkings(void **state)
{
	static struct zwire z;
	static uint8_t stream[STREAM_LEN];

	for (int round = 0; round < 20; round++) {
		size_t len = 1 + rnd() % STREAM_LEN;

		for (size_t i = 0; i < len; i++)
			stream[i] = (uint8_t)rnd();
		build_zwire(&z, stream, len);
		feed_z(&z, stream, len, whole);
		feed_z(&z, stream, len, one_byte);
		feed_z(&z, stream, len, random_chunk);
	}
}

/* ------------------------------------------------------------------ */
/* Client mode: masked frames out, unmasked server frames in */

/* A client frame of every length form, decoded by the server decoder. */
static void test_client_frames_round_trip(void **state)
{
	static const size_t lens[] = {0, 1, 125, 126, 65535, 65536};
	static uint8_t buf[65536 + WS_MAX_CLIENT_HEADER];
	const uint8_t mask[4] = {0xA1, 0x00, 0x5C, 0xFF};
	struct ws_decoder d;

	(void)state;
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t n = lens[i], h;
		struct result r;

		h = ws_client_header(buf, WS_OP_BINARY, n, mask);
		assert_int_equal(h, ws_header_size(n) + 4);
		assert_int_equal(buf[1] & 0x80, 0x80);
		assert_memory_equal(buf + h - 4, mask, 4);
		for (size_t k = 0; k < n; k++)
			buf[h + k] = (uint8_t)(k * 7);
		ws_unmask(buf + h, n, mask, 0);
		if (n > 2)
			assert_int_equal(buf[h + 2], 14 ^ 0x5C);
		ws_decoder_init(&d, 0);
		r = dec(&d, buf, h + n);
		assert_int_equal(r.rc, WS_EV_NONE);
		assert_int_equal(r.out, n);
		for (size_t k = 0; k < n; k++)
			assert_int_equal(buf[k], (uint8_t)(k * 7));
	}
}

static void test_client_control_frame(void **state)
{
	const uint8_t mask[4] = {1, 2, 3, 4};
	uint8_t buf[WS_MAX_CLIENT_HEADER + 125];
	struct ws_decoder d;
	struct result r;
	size_t n;

	(void)state;
	n = ws_client_control(buf, WS_OP_PONG, (const uint8_t *)"abc", 3, mask);
	assert_int_equal(n, 2 + 4 + 3);
	ws_decoder_init(&d, 0);
	r = dec(&d, buf, n);
	assert_int_equal(r.nevents, 1);
	assert_int_equal(r.events[0], WS_EV_PONG);
	assert_int_equal(d.ctl_len, 3);
	assert_memory_equal(d.ctl, "abc", 3);
}

/* Server frames (unmasked, fragmented, with a ping between the
 * fragments) come out as the plain stream, whatever the chunking. */
static size_t server_wire(uint8_t *wire)
{
	size_t len = 0;

	len += ws_header(wire + len, WS_OP_BINARY, 3);
	wire[0] &= 0x7F; /* not FIN: a first fragment */
	memcpy(wire + len, "MQT", 3);
	len += 3;
	len += ws_header(wire + len, WS_OP_PING, 2);
	memcpy(wire + len, "hi", 2);
	len += 2;
	len += ws_header(wire + len, WS_OP_CONT, 2);
	memcpy(wire + len, "T!", 2);
	return len + 2;
}

static void test_client_decodes_server_frames(void **state)
{
	uint8_t wire[64], buf[64], stream[64];
	size_t len = server_wire(wire);

	(void)state;
	for (size_t chunk = 1; chunk <= len; chunk++) {
		struct ws_decoder d;
		size_t fed = 0, got = 0, fill = 0, pings = 0;
		uint16_t cc;
		int rc;

		ws_decoder_init_client(&d, 0);
		/* A reader's buffer: append a chunk, decode in place, take
		 * the output away, keep the undecoded rest. */
		while (fed < len) {
			size_t add = len - fed < chunk ? len - fed : chunk;
			size_t in = 0, out = 0;

			memcpy(buf + fill, wire + fed, add);
			fed += add;
			fill += add;
			do {
				rc = ws_decode(&d, buf, fill, &in, &out, &cc);
				assert_true(rc >= 0);
				if (rc == WS_EV_PING) {
					pings++;
					assert_memory_equal(d.ctl, "hi", 2);
				}
			} while (rc > 0);
			memcpy(stream + got, buf, out);
			got += out;
			memmove(buf, buf + in, fill - in);
			fill -= in;
		}
		assert_int_equal(got, 5);
		assert_memory_equal(stream, "MQTT!", 5);
		assert_int_equal(pings, 1);
	}
}

static void test_client_refuses_masked(void **state)
{
	const uint8_t mask[4] = {9, 9, 9, 9};
	uint8_t buf[32];
	struct ws_decoder d;
	struct result r;
	size_t n;

	(void)state;
	n = ws_client_header(buf, WS_OP_BINARY, 2, mask);
	buf[n] = buf[n + 1] = 0;
	ws_decoder_init_client(&d, 0);
	r = dec(&d, buf, n + 2);
	assert_int_equal(r.rc, TERN_EPROTO);
	assert_int_equal(r.cc, WS_CLOSE_PROTOCOL);
	/* The limit and text rules hold in client mode too. */
	n = ws_header(buf, WS_OP_BINARY, 100);
	ws_decoder_init_client(&d, 10);
	r = dec(&d, buf, n);
	assert_int_equal(r.rc, TERN_ETOOBIG);
	assert_int_equal(r.cc, WS_CLOSE_TOO_BIG);
	n = ws_header(buf, WS_OP_TEXT, 1);
	buf[n] = 'x';
	ws_decoder_init_client(&d, 0);
	r = dec(&d, buf, n + 1);
	assert_int_equal(r.rc, TERN_EINVAL);
	/* And the server side still refuses unmasked frames. */
	n = ws_header(buf, WS_OP_BINARY, 1);
	ws_decoder_init(&d, 0);
	r = dec(&d, buf, n + 1);
	assert_int_equal(r.rc, TERN_EPROTO);
}

static void test_random_mask(void **state)
{
	uint8_t m[4][4];
	bool all_same = true;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(ws_random_mask(m[i]), 0);
	for (int i = 1; i < 4; i++)
		all_same &= memcmp(m[0], m[i], 4) == 0;
	assert_false(all_same);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_header_sizes),
	        cmocka_unit_test(test_close_frame),
	        cmocka_unit_test(test_unmask_matches_reference),
	        cmocka_unit_test(test_mask_copy),
	        cmocka_unit_test(test_unmask_split),
	        cmocka_unit_test(test_binary_in_place),
	        cmocka_unit_test(test_empty_frames),
	        cmocka_unit_test(test_lengths),
	        cmocka_unit_test(test_ping_pong_events),
	        cmocka_unit_test(test_stream_chunkings),
	        cmocka_unit_test(test_mqtt_packets_and_frames),
	        cmocka_unit_test(test_limit_exact_and_over),
	        cmocka_unit_test(test_huge_lengths),
	        cmocka_unit_test(test_no_limit),
	        cmocka_unit_test(test_text_refused),
	        cmocka_unit_test(test_unmasked_refused),
	        cmocka_unit_test(test_rsv_refused),
	        cmocka_unit_test(test_reserved_opcodes),
	        cmocka_unit_test(test_bad_control_frames),
	        cmocka_unit_test(test_bad_fragmentation),
	        cmocka_unit_test(test_close_valid),
	        cmocka_unit_test(test_close_invalid),
	        cmocka_unit_test(test_close_split),
	        cmocka_unit_test(test_compressed_header),
	        cmocka_unit_test(test_compressed_rsv_rules),
	        cmocka_unit_test(test_compressed_events),
	        cmocka_unit_test(test_compressed_stream_chunkings),
	        cmocka_unit_test(test_client_frames_round_trip),
	        cmocka_unit_test(test_client_control_frame),
	        cmocka_unit_test(test_client_decodes_server_frames),
	        cmocka_unit_test(test_client_refuses_masked),
	        cmocka_unit_test(test_random_mask),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
