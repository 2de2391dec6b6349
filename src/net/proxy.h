/*
 * PROXY protocol receiver (HAProxy's "The PROXY protocol", versions 1 and 2):
 * a load balancer in front of the broker prepends one header to the
 * connection naming the real client, and this module decodes it. The parser
 * is pure (no allocation, no I/O): the connection code feeds it the first
 * bytes read and drops the header's length from its input buffer once
 * complete.
 *
 * Security: a PROXY header rewrites the client's address, so a listener must
 * only accept it from trusted peers (cidr.h) and must then require it: the
 * spec forbids guessing whether a header is present, which would let any
 * client spoof its address.
 */
#ifndef TERN_NET_PROXY_H
#define TERN_NET_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest v1 line including its CRLF (spec §2.1). */
#define PROXY_V1_MAX 107
/* Cap on a v2 header, TLVs included; the spec keeps headers under 536. */
#define PROXY_V2_MAX 4096

struct proxy_info {
	/*
	 * True for a v2 LOCAL command, a v1 "UNKNOWN" line, and v2 address
	 * families or transports tern does not use (UNIX, UNSPEC, DGRAM):
	 * the caller keeps the socket's own addresses.
	 */
	bool local;
	/* AF_INET or AF_INET6 as declared by the header; AF_UNSPEC if local. */
	int family;
	/*
	 * Numeric hosts in the form sock_format() gives (inet_ntop, with an
	 * IPv4-mapped IPv6 address shown as dotted IPv4 even when family is
	 * AF_INET6). Empty strings and zero ports when local.
	 */
	char src_host[64];
	uint16_t src_port;
	char dst_host[64];
	uint16_t dst_port;
};

/*
 * Parses a PROXY header (v1 or v2, told apart by the first byte) at the start
 * of buf[0..len). On success fills *out and returns the header's length in
 * bytes (> 0), which the caller drops from its input. Otherwise *out is left
 * untouched and the return is:
 *   TERN_EAGAIN     buf is a valid beginning of a header; read more
 *                   (a v1 line is complete within 107 bytes, a v2 header
 *                   within 16 + its length field);
 *   TERN_ETOOBIG    a v2 header declares more than PROXY_V2_MAX bytes;
 *   TERN_EMALFORMED anything else: not a PROXY header, a v1 line that does
 *                   not exactly follow the grammar (one space between
 *                   fields, canonical addresses, ports without leading
 *                   zeroes, CRLF within 107 bytes), or a v2 header with a
 *                   wrong version, command, family or transport, an
 *                   address block shorter than its family needs, or TLVs
 *                   that do not exactly fill the rest of the header.
 * v2 TLVs are skipped without interpretation (a CRC32C TLV is not checked).
 */
int proxy_parse(const uint8_t *buf, size_t len, struct proxy_info *out);

/*
 * Returns 1 when buf[0..len) could still be or become a PROXY header (its
 * first bytes are a prefix of "PROXY " or of the 12-byte v2 signature, or
 * start with either), else 0. An empty buffer returns 1. Lets a listener
 * that requires PROXY tell early that a client sent plain MQTT.
 */
int proxy_maybe(const uint8_t *buf, size_t len);

#endif
