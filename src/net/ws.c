/*
 * WebSocket framing (RFC 6455 §5), server side. The decoder is a small
 * state machine fed whatever bytes the socket gave: it collects a frame
 * header (which may arrive a byte at a time) in d->hdr, validates it before
 * any payload is read, then unmasks binary payload in place, moving it down
 * over the headers it consumed, so the caller's read buffer ends up holding
 * the plain MQTT byte stream. Control frames are short (<= 125 bytes) and
 * may arrive between the fragments of a message, so their payload is copied
 * into d->ctl and reported once complete.
 *
 * Length fields that are not in their minimal form (say, 5 encoded in 16
 * bits) are accepted: RFC 6455 §5.2 asks senders for the minimal form but
 * rejecting the others buys nothing, since limits apply to the value.
 */
#include "net/ws.h"

#include <string.h>
#include <sys/random.h>

#include "base/error.h"
#include "base/utf8.h"

#define WS_FIN         0x80
#define WS_RSV         0x70
#define WS_RSV1        0x40
#define WS_OPCODE      0x0F
#define WS_MASKED      0x80
#define WS_LEN7        0x7F
#define WS_MAX_CONTROL 125

void ws_decoder_init(struct ws_decoder *d, uint64_t max_message)
{
	memset(d, 0, sizeof(*d));
	d->max_message = max_message;
}

void ws_decoder_init_client(struct ws_decoder *d, uint64_t max_message)
{
	ws_decoder_init(d, max_message);
	d->client = true;
}

/*
 * Unmasks src[0..len) into dst, starting `offset` bytes into the payload.
 * dst may equal src or lie before it (the in-place decode): going forward,
 * each word is loaded before a store can reach it, since a store at
 * dst + i ends before src + i + 8.
 */
static void unmask_move(uint8_t *dst, const uint8_t *src, size_t len,
                        const uint8_t mask[4], uint64_t offset)
{
	/* 16 bytes as one value, which GCC and clang keep in an SSE2
	 * register; an array of four words was spilled to the stack on every
	 * round (and 32-byte vectors are, without AVX). */
	typedef uint64_t block __attribute__((vector_size(16)));
	uint8_t pat[8];
	uint64_t word, m;
	block mb, b0, b1, b2, b3;
	size_t i = 0;

	/* The mask rotated to this offset, twice: one 64-bit XOR pattern. */
	for (int k = 0; k < 8; k++)
		pat[k] = mask[(offset + (uint64_t)k) & 3];
	memcpy(&m, pat, sizeof(m));
	mb = (block){m, m};
	/* memcpy keeps unaligned loads and stores defined; it compiles to
	 * plain vector moves. 64 bytes a round, all loaded before any is
	 * stored, which keeps the in-place rule above. */
	for (; len - i >= 64; i += 64) {
		memcpy(&b0, src + i, sizeof(b0));
		memcpy(&b1, src + i + 16, sizeof(b1));
		memcpy(&b2, src + i + 32, sizeof(b2));
		memcpy(&b3, src + i + 48, sizeof(b3));
		b0 ^= mb;
		b1 ^= mb;
		b2 ^= mb;
		b3 ^= mb;
		memcpy(dst + i, &b0, sizeof(b0));
		memcpy(dst + i + 16, &b1, sizeof(b1));
		memcpy(dst + i + 32, &b2, sizeof(b2));
		memcpy(dst + i + 48, &b3, sizeof(b3));
	}
	for (; len - i >= 8; i += 8) {
		memcpy(&word, src + i, sizeof(word));
		word ^= m;
		memcpy(dst + i, &word, sizeof(word));
	}
	for (; i < len; i++)
		dst[i] = src[i] ^ pat[i & 7];
}

void ws_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset)
{
	unmask_move(p, p, len, mask, offset);
}

void ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                  const uint8_t mask[4])
{
	unmask_move(dst, src, len, mask, 0);
}

static bool is_control(uint8_t opcode)
{
	return opcode & 0x08;
}

static bool is_known(uint8_t opcode)
{
	return opcode <= WS_OP_BINARY ||
	       (opcode >= WS_OP_CLOSE && opcode <= WS_OP_PONG);
}

static int fail(uint16_t *close_code, uint16_t code, int err)
{
	*close_code = code;
	return err;
}

/* Copies header bytes from the input until d->hdr holds `want` of them. */
static void take(struct ws_decoder *d, const uint8_t *buf, size_t len,
                 size_t *in, size_t want)
{
	size_t n = want - d->hdr_len;

	if (n > len - *in)
		n = len - *in;
	memcpy(d->hdr + d->hdr_len, buf + *in, n);
	d->hdr_len += (uint8_t)n;
	*in += n;
}

/*
 * Checks the first two header bytes, so a bad frame is refused before its
 * extended length or mask arrive.
 */
static int check_base(const struct ws_decoder *d, uint16_t *cc)
{
	uint8_t b0 = d->hdr[0], b1 = d->hdr[1];
	uint8_t op = b0 & WS_OPCODE;

	/* RSV1 means "compressed" on the first frame of a data message when
	 * permessage-deflate was negotiated (RFC 7692 §6); no other RSV bit
	 * has a meaning. */
	if ((b0 & WS_RSV & ~WS_RSV1) || !is_known(op))
		return fail(cc, WS_CLOSE_PROTOCOL, TERN_EPROTO);
	if ((b0 & WS_RSV1) &&
	    (!d->compression || is_control(op) || op == WS_OP_CONT))
		return fail(cc, WS_CLOSE_PROTOCOL, TERN_EPROTO);
	/* Clients mask every frame, servers none (RFC 6455 §5.1). */
	if (!(b1 & WS_MASKED) != d->client)
		return fail(cc, WS_CLOSE_PROTOCOL, TERN_EPROTO);
	if (is_control(op)) {
		if (!(b0 & WS_FIN) || (b1 & WS_LEN7) > WS_MAX_CONTROL)
			return fail(cc, WS_CLOSE_PROTOCOL, TERN_EPROTO);
		return 0;
	}
	if (op == WS_OP_TEXT)
		return fail(cc, WS_CLOSE_UNSUPPORTED, TERN_EINVAL);
	if (op == WS_OP_CONT && !d->in_message)
		return fail(cc, WS_CLOSE_PROTOCOL, TERN_EPROTO);
	if (op == WS_OP_BINARY && d->in_message)
		return fail(cc, WS_CLOSE_PROTOCOL, TERN_EPROTO);
	return 0;
}

/*
 * Full header size once the first two bytes are known: 6, 8 or 14 with a
 * mask (client frames), 2, 4 or 10 without (server frames).
 */
static size_t header_size(const uint8_t *hdr)
{
	uint8_t len7 = hdr[1] & WS_LEN7;
	size_t mask = hdr[1] & WS_MASKED ? 4 : 0;

	if (len7 == 126)
		return 2 + 2 + mask;
	if (len7 == 127)
		return 2 + 8 + mask;
	return 2 + mask;
}

static uint64_t payload_len(const uint8_t *hdr)
{
	uint8_t len7 = hdr[1] & WS_LEN7;
	uint64_t n = 0;

	if (len7 < 126)
		return len7;
	if (len7 == 126)
		return (uint64_t)hdr[2] << 8 | hdr[3];
	for (int i = 0; i < 8; i++)
		n = n << 8 | hdr[2 + i];
	return n;
}

/*
 * Adds a data frame's declared length to its message and checks the limit
 * before any payload is read. message_len never exceeds max_message (when
 * set), so the subtraction cannot wrap.
 */
static int account(struct ws_decoder *d, uint64_t n, uint16_t *cc)
{
	if (d->opcode == WS_OP_BINARY) {
		d->message_len = 0;
		d->zopen = d->hdr[0] & WS_RSV1;
	}
	if (d->max_message && n > d->max_message - d->message_len)
		return fail(cc, WS_CLOSE_TOO_BIG, TERN_ETOOBIG);
	/* Without a limit, saturate rather than wrap. */
	d->message_len = n > UINT64_MAX - d->message_len ? UINT64_MAX
	                                                 : d->message_len + n;
	d->in_message = !d->fin;
	return 0;
}

/* Takes in a complete header: the frame's payload comes next. */
static int start_frame(struct ws_decoder *d, uint16_t *cc)
{
	size_t hs = header_size(d->hdr);
	uint64_t n = payload_len(d->hdr);

	d->opcode = d->hdr[0] & WS_OPCODE;
	d->fin = d->hdr[0] & WS_FIN;
	if (d->hdr[1] & WS_MASKED)
		memcpy(d->mask, d->hdr + hs - 4, 4);
	else
		memset(d->mask, 0, 4);
	d->masked = (d->mask[0] | d->mask[1] | d->mask[2] | d->mask[3]) != 0;
	d->hdr_len = 0;
	if (n >> 63)
		return fail(cc, WS_CLOSE_TOO_BIG, TERN_ETOOBIG);
	if (is_control(d->opcode)) {
		d->ctl_len = 0;
	} else {
		int rc = account(d, n, cc);

		if (rc < 0)
			return rc;
	}
	d->remaining = n;
	d->offset = 0;
	d->in_frame = true;
	d->frames++;
	return 0;
}

/* Reads header bytes; 1 when the header is complete, 0 for more input. */
static int read_header(struct ws_decoder *d, const uint8_t *buf, size_t len,
                       size_t *in, uint16_t *cc)
{
	size_t need;
	int rc;

	if (d->hdr_len < 2) {
		take(d, buf, len, in, 2);
		if (d->hdr_len < 2)
			return 0;
		rc = check_base(d, cc);
		if (rc < 0)
			return rc;
	}
	need = header_size(d->hdr);
	take(d, buf, len, in, need);
	if (d->hdr_len < need)
		return 0;
	rc = start_frame(d, cc);
	return rc < 0 ? rc : 1;
}

/* RFC 6455 §7.4: the codes an endpoint may send in a close frame. */
static bool close_code_valid(uint16_t code)
{
	if (code >= 1000 && code <= 1003)
		return true;
	/* 1012-1014 were registered with IANA after the RFC. */
	if (code >= 1007 && code <= 1014)
		return true;
	return code >= 3000 && code <= 4999;
}

static int close_event(struct ws_decoder *d, uint16_t *cc)
{
	if (d->ctl_len == 0) {
		d->close_code = 1005; /* "no status received" */
		return WS_EV_CLOSE;
	}
	if (d->ctl_len == 1)
		return fail(cc, WS_CLOSE_PROTOCOL, TERN_EPROTO);
	d->close_code = (uint16_t)(d->ctl[0] << 8 | d->ctl[1]);
	if (!close_code_valid(d->close_code))
		return fail(cc, WS_CLOSE_PROTOCOL, TERN_EPROTO);
	if (utf8_check(d->ctl + 2, d->ctl_len - 2u) < 0)
		return fail(cc, WS_CLOSE_INVALID, TERN_EUTF8);
	return WS_EV_CLOSE;
}

/* A frame's payload is complete; returns the event it makes, if any. */
static int end_frame(struct ws_decoder *d, uint16_t *cc)
{
	d->in_frame = false;
	switch (d->opcode) {
	case WS_OP_PING: return WS_EV_PING;
	case WS_OP_PONG: return WS_EV_PONG;
	case WS_OP_CLOSE: return close_event(d, cc);
	default: break;
	}
	if (d->fin && d->zopen) {
		d->zopen = false;
		return WS_EV_MESSAGE;
	}
	return WS_EV_NONE;
}

/* Moves as much of the current payload as the input holds. */
static void read_payload(struct ws_decoder *d, uint8_t *buf, size_t len,
                         size_t *in, size_t *out)
{
	size_t n = len - *in;
	uint8_t *dst;

	if (n > d->remaining)
		n = (size_t)d->remaining;
	if (n == 0)
		return;
	if (is_control(d->opcode)) {
		dst = d->ctl + d->ctl_len;
		d->ctl_len += (uint8_t)n;
	} else {
		dst = buf + *out;
		*out += n;
		if (d->zopen)
			d->zlen += n;
	}
	/* Unmasking and moving down in one pass over the payload; a server's
	 * frames (and a client's with a zero key) only move, which libc's
	 * memmove does with the widest vectors the CPU has. */
	if (d->masked)
		unmask_move(dst, buf + *in, n, d->mask, d->offset);
	else if (dst != buf + *in)
		memmove(dst, buf + *in, n);
	*in += n;
	d->remaining -= n;
	d->offset += n;
}

int ws_decode(struct ws_decoder *d, uint8_t *buf, size_t len, size_t *in,
              size_t *out, uint16_t *close_code)
{
	int rc;

	/* A compressed message reported last time is the caller's now. */
	if (!d->zopen)
		d->zlen = 0;
	/* An empty frame completes with its header, so the loop also runs
	 * once a header is read even when no input is left. */
	while (*in < len || d->in_frame) {
		if (!d->in_frame) {
			rc = read_header(d, buf, len, in, close_code);
			if (rc <= 0)
				return rc;
		}
		read_payload(d, buf, len, in, out);
		if (d->remaining > 0)
			return WS_EV_NONE;
		rc = end_frame(d, close_code);
		if (rc != WS_EV_NONE)
			return rc;
	}
	return WS_EV_NONE;
}

size_t ws_header_size(uint64_t len)
{
	if (len < 126)
		return 2;
	if (len <= 0xFFFF)
		return 4;
	return 10;
}

size_t ws_header_compressed(uint8_t *out, uint8_t opcode, uint64_t len)
{
	size_t n = ws_header(out, opcode, len);

	out[0] |= WS_RSV1;
	return n;
}

size_t ws_header(uint8_t *out, uint8_t opcode, uint64_t len)
{
	size_t n = ws_header_size(len);

	out[0] = WS_FIN | (opcode & WS_OPCODE);
	if (n == 2) {
		out[1] = (uint8_t)len;
	} else if (n == 4) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
	} else {
		out[1] = 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	}
	return n;
}

size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason,
                      size_t reason_len)
{
	size_t n;

	/* A control payload holds at most 125 bytes: 2 for the code. */
	if (reason_len > WS_MAX_CONTROL - 2)
		reason_len = WS_MAX_CONTROL - 2;
	n = ws_header(out, WS_OP_CLOSE, 2 + reason_len);
	out[n++] = (uint8_t)(code >> 8);
	out[n++] = (uint8_t)code;
	if (reason_len)
		memcpy(out + n, reason, reason_len);
	return n + reason_len;
}

size_t ws_client_header(uint8_t *out, uint8_t opcode, uint64_t len,
                        const uint8_t mask[4])
{
	size_t n = ws_header(out, opcode, len);

	out[1] |= WS_MASKED;
	memcpy(out + n, mask, 4);
	return n + 4;
}

size_t ws_client_control(uint8_t *out, uint8_t opcode, const uint8_t *p,
                         size_t len, const uint8_t mask[4])
{
	size_t n;

	if (len > WS_MAX_CONTROL)
		len = WS_MAX_CONTROL;
	n = ws_client_header(out, opcode, len, mask);
	if (len) {
		memcpy(out + n, p, len);
		ws_unmask(out + n, len, mask, 0);
	}
	return n + len;
}

int ws_random_mask(uint8_t mask[4])
{
	return ws_random_bytes(mask, 4);
}

int ws_random_bytes(uint8_t *p, size_t n)
{
	/* getrandom(2) returns up to 256 bytes whole once the pool is
	 * initialised; a larger or interrupted request may come back short. */
	while (n) {
		ssize_t got = getrandom(p, n, 0);

		if (got <= 0)
			return TERN_EIO;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}
