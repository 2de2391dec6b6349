/*
 * WebSocket framing (RFC 6455 §5), server side, pure: no I/O, no allocation,
 * no globals. The decoder turns the bytes a client sends into the byte
 * stream carried by its binary messages (unmasked in place), and reports
 * control frames; the encoder writes the small header of a server frame
 * (servers never mask, so one encoded MQTT packet serves TCP and WebSocket
 * clients alike, DESIGN.md §4).
 *
 * MQTT over WebSocket (MQTT 3.1.1 §6, MQTT 5 §6) uses binary messages only:
 * a text message is an error (close 1003). MQTT packets may span frames and
 * frames may hold several packets; the decoder does not care where packets
 * begin or end.
 *
 * With permessage-deflate (RFC 7692) negotiated, a message whose first
 * frame has RSV1 set is compressed: the decoder still unmasks its payload
 * into the output, but stops when such a message is complete so that the
 * caller can inflate it (WS_EV_MESSAGE). Uncompressed messages flow as
 * before, without a stop at their end.
 */
#ifndef TERN_NET_WS_H
#define TERN_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

/* Close status codes (RFC 6455 §7.4.1). */
enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003, /* e.g. a text message */
	WS_CLOSE_INVALID = 1007,     /* invalid UTF-8 in a close reason */
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011,
};

/* What ws_decode() stopped for. */
enum ws_event_kind {
	WS_EV_NONE = 0, /* all input consumed (or output full) */
	WS_EV_PING,     /* a complete ping: answer with a pong of ctl[] */
	WS_EV_PONG,     /* a complete pong (ignored by the broker) */
	WS_EV_CLOSE,    /* a complete, valid close frame from the client */
	WS_EV_MESSAGE,  /* a compressed message is complete (see zlen) */
};

struct ws_decoder {
	/* Limits and options, set by the caller before use. */
	uint64_t max_message; /* largest binary message (sum of fragments) */
	bool compression;     /* permessage-deflate: RSV1 marks a compressed
	                       * message (on its first frame only) */
	bool client;          /* decoding server frames (we are the client):
	                       * frames must be unmasked, masked ones are
	                       * refused (RFC 6455 §5.1) */

	/*
	 * Output bytes of the open compressed message so far, always the
	 * last zlen bytes before *out: ws_decode() returns with them in
	 * place (also across calls, where the caller must keep them right
	 * before the next call's *out). With WS_EV_MESSAGE, the whole
	 * compressed message is buf[*out - zlen .. *out). 0 when no
	 * compressed message is open.
	 */
	uint64_t zlen;

	/* Private state. */
	uint8_t hdr[14]; /* partial frame header */
	uint8_t hdr_len;
	bool in_frame;  /* reading a payload */
	uint8_t opcode; /* opcode of the current frame */
	bool fin;
	uint8_t mask[4];
	bool masked;          /* mask is not all zero */
	uint64_t remaining;   /* payload bytes left in the current frame */
	uint64_t offset;      /* payload bytes done (for the mask phase) */
	bool in_message;      /* a fragmented binary message is open */
	uint64_t message_len; /* bytes of the open message so far */
	bool zopen;           /* the open data message is compressed */

	/* The last control frame's payload (valid with WS_EV_*). */
	uint8_t ctl[125];
	uint8_t ctl_len;
	uint16_t close_code; /* with WS_EV_CLOSE: code sent, 1005 if none */
	uint64_t frames;     /* frame headers accepted so far (statistics) */
};

/* Prepares a decoder; max_message 0 means no limit; compression off. */
void ws_decoder_init(struct ws_decoder *d, uint64_t max_message);

/*
 * Prepares a decoder for the client side of a connection: it decodes the
 * server's frames, which must not be masked. Everything else (limits,
 * events, errors) is as for ws_decoder_init(); the "unmasked client frame"
 * error becomes "masked server frame".
 */
void ws_decoder_init_client(struct ws_decoder *d, uint64_t max_message);

/*
 * Decodes client bytes buf[0..len), in place: the unmasked payload bytes of
 * binary messages are written to buf[*out .. ) — always at or before the
 * position they were read from, so input and output share the buffer — and
 * *out advances by their count. *in (starting at 0) advances over what was
 * consumed. Stops at the end of input, or after a complete control frame or
 * compressed message (returning its event: the caller handles it and calls
 * again with the same buffer and counters, or with counters it moved along
 * with the bytes they count).
 *
 * Returns an enum ws_event_kind (>= 0), or a negative TERN_E* code with
 * *close_code set to the WebSocket close code to send:
 *   TERN_EPROTO (1002): unmasked client frame, RSV2 or RSV3 set, RSV1
 *     set without compression or on a continuation or control frame, reserved
 *     opcode, fragmented or >125-byte control frame, continuation without a
 *     message, a new data frame inside a fragmented message, a close
 *     payload of 1 byte, an invalid close code;
 *   TERN_EUTF8 (1007): a close reason that is not UTF-8;
 *   TERN_EINVAL (1003): a text message;
 *   TERN_ETOOBIG (1009): a frame or message above max_message, or a 64-bit
 *     length with the top bit set (checked before any payload is read).
 */
int ws_decode(struct ws_decoder *d, uint8_t *buf, size_t len, size_t *in,
              size_t *out, uint16_t *close_code);

/* Largest header ws_header() writes. */
#define WS_MAX_HEADER 10

/*
 * Writes the header of an unmasked server frame with FIN set, `opcode` and
 * a payload of `len` bytes into out (at least WS_MAX_HEADER bytes). Returns
 * the header size: 2, 4 or 10.
 */
size_t ws_header(uint8_t *out, uint8_t opcode, uint64_t len);

/* ws_header() with RSV1 set: the first frame of a compressed message. */
size_t ws_header_compressed(uint8_t *out, uint8_t opcode, uint64_t len);

/* Size of ws_header()'s output for a payload of len bytes. */
size_t ws_header_size(uint64_t len);

/*
 * Writes a close frame (header and payload: code, then reason) into out,
 * which must hold WS_MAX_HEADER + 2 + reason_len bytes; reason_len <= 123.
 * Returns its size.
 */
size_t ws_close_frame(uint8_t *out, uint16_t code, const char *reason,
                      size_t reason_len);

/* Largest header ws_client_header() writes (10 + the 4-byte mask). */
#define WS_MAX_CLIENT_HEADER 14

/*
 * Writes the header of a masked client frame with FIN set, `opcode`, a
 * payload of `len` bytes and the masking key `mask` into out (at least
 * WS_MAX_CLIENT_HEADER bytes). Returns the header size: 6, 8 or 14. The
 * caller masks the payload with ws_unmask(payload, len, mask, 0) (masking
 * and unmasking are the same XOR). RFC 6455 §5.3 wants a fresh,
 * unpredictable mask per frame: see ws_random_mask().
 */
size_t ws_client_header(uint8_t *out, uint8_t opcode, uint64_t len,
                        const uint8_t mask[4]);

/*
 * Writes a whole masked client control frame (ping, pong or close) with
 * payload p[0..len) (len <= 125) into out, which must hold
 * WS_MAX_CLIENT_HEADER + len bytes. Returns its size.
 */
size_t ws_client_control(uint8_t *out, uint8_t opcode, const uint8_t *p,
                         size_t len, const uint8_t mask[4]);

/*
 * Fills mask with 4 bytes from the kernel's random source (getrandom(2)).
 * The one function here that is not pure; returns 0 or TERN_EIO.
 */
int ws_random_mask(uint8_t mask[4]);

/*
 * Fills p[0..n) from the same source, for callers that take many masks
 * at once (one system call for many frames). Returns 0 or TERN_EIO.
 */
int ws_random_bytes(uint8_t *p, size_t n);

/*
 * XORs p[0..len) with the mask, starting `offset` bytes into the payload;
 * word-at-a-time. Exposed for tests and benchmarks.
 */
void ws_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset);

/*
 * Writes src[0..len) masked with mask into dst in one pass: a client
 * frame's payload, instead of a copy and then ws_unmask() over it. dst and
 * src must not overlap unless dst <= src.
 */
void ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                  const uint8_t mask[4]);

#endif
