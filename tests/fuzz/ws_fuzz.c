/*
 * libFuzzer target for the WebSocket decoder (src/net/ws.c). The input is
 * client bytes (or, with bit 3 of the first byte, server bytes decoded in
 * client mode, as libtern does); its first byte picks the limit and whether
 * compressed messages (RSV1, permessage-deflate) are allowed, and seeds
 * the chunking. The
 * bytes are decoded twice, the way the broker does (append a chunk to a
 * read buffer, decode in place, take the output away): once in one piece
 * and once in random chunks. Both runs must keep out <= in and consume all
 * input on WS_EV_NONE, and must agree on the output stream, the control
 * events and the final error with its close code: chunking never changes
 * what a client's bytes mean.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "fuzz.h"
#include "net/ws.h"

/* What one run saw. */
struct run {
	int rc;          /* final: 0 or a TERN_E* code */
	uint16_t cc;     /* close code with an error */
	uint8_t *stream; /* output of binary messages */
	size_t len;
	uint64_t events; /* a hash of the control events and payloads */
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	return (h ^ v) * 0x100000001B3ULL;
}

static uint64_t hash_event(uint64_t h, int ev, const struct ws_decoder *d)
{
	h = mix(h, (uint64_t)ev);
	CHECK(d->ctl_len <= 125);
	for (uint8_t i = 0; i < d->ctl_len; i++)
		h = mix(h, d->ctl[i]);
	if (ev == WS_EV_MESSAGE) {
		CHECK(d->compression);
		h = mix(h, d->zlen);
	}
	if (ev == WS_EV_CLOSE) {
		CHECK(d->close_code >= 1000 && d->close_code < 5000);
		h = mix(h, d->close_code);
	}
	return h;
}

/* Decodes rb[0..fill) until input runs out or an error; 0 or TERN_E*. */
static int drain(struct ws_decoder *d, uint8_t *rb, size_t fill, size_t *in,
                 size_t *out, struct run *r)
{
	int rc;

	while ((rc = ws_decode(d, rb, fill, in, out, &r->cc)) > 0) {
		CHECK(*out <= *in && *in <= fill);
		CHECK(!d->max_message || d->message_len <= d->max_message);
		r->events = hash_event(r->events, rc, d);
	}
	CHECK(*out <= *in && *in <= fill);
	if (rc == 0)
		CHECK(*in == fill);
	else
		CHECK(r->cc >= 1002 && r->cc <= 1009);
	return rc;
}

static void one_run(const uint8_t *data, size_t size, uint64_t max,
                    bool compression, bool client, uint32_t seed, struct run *r)
{
	uint8_t *rb = malloc(size ? size : 1);
	struct ws_decoder d;
	size_t pos = 0;

	CHECK(rb && r->stream);
	if (client)
		ws_decoder_init_client(&d, max);
	else
		ws_decoder_init(&d, max);
	d.compression = compression;
	r->rc = 0;
	r->len = 0;
	r->events = 0;
	while (pos < size && r->rc == 0) {
		size_t n = size - pos, in = 0, out = 0;

		if (seed) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % 64;
			n = n > size - pos ? size - pos : n;
		}
		/* An exact-size buffer, so ASan sees any overread. */
		memcpy(rb, data + pos, n);
		pos += n;
		r->rc = drain(&d, rb, n, &in, &out, r);
		memcpy(r->stream + r->len, rb, out);
		r->len += out;
	}
	free(rb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t limits[4] = {0, 1, 125, 4096};
	struct run whole, chunked;
	bool compression, client;
	uint64_t max;
	uint32_t seed;

	if (size < 1)
		return 0;
	max = limits[data[0] & 3];
	compression = data[0] & 4;
	client = data[0] & 8;
	seed = data[0] | 1u;
	data++;
	size--;
	whole.stream = malloc(size + 1);
	chunked.stream = malloc(size + 1);
	one_run(data, size, max, compression, client, 0, &whole);
	one_run(data, size, max, compression, client, seed, &chunked);
	CHECK(whole.rc == chunked.rc);
	if (whole.rc < 0)
		CHECK(whole.cc == chunked.cc);
	CHECK(whole.events == chunked.events);
	/* Output is compared only without errors: the bytes decoded before
	 * an error are not taken by the broker. */
	if (whole.rc == 0) {
		CHECK(whole.len == chunked.len);
		CHECK(memcmp(whole.stream, chunked.stream, whole.len) == 0);
	}
	free(whole.stream);
	free(chunked.stream);
	return 0;
}
