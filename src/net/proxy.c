/*
 * PROXY protocol v1 and v2 decoding; see proxy.h. The first byte picks the
 * version ('P' for the v1 text line, CR for the v2 signature). Both parsers
 * reject early what can never become a valid header, so a peer cannot keep
 * the connection waiting with bytes that are already wrong, and both read
 * the wire field by field. Addresses are formatted like sock_format() so the
 * rest of the broker sees one address form whatever the source.
 */
#include "net/proxy.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "base/error.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";
#define V1_SIG_LEN (sizeof(v1_sig) - 1)

#define V2_HDR_LEN   16
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1

/* v2 address families (high nibble of byte 14) and transports (low). */
enum { V2_AF_UNSPEC, V2_AF_INET, V2_AF_INET6, V2_AF_UNIX };
enum { V2_TP_UNSPEC, V2_TP_STREAM, V2_TP_DGRAM };

/* A field of a v1 line: bytes [p, p + n). */
struct span {
	const char *p;
	size_t n;
};

/* Whether buf's first bytes (as many as there are) match sig. */
static int starts_like(const uint8_t *buf, size_t len, const void *sig,
                       size_t siglen)
{
	return memcmp(buf, sig, len < siglen ? len : siglen) == 0;
}

int proxy_maybe(const uint8_t *buf, size_t len)
{
	return starts_like(buf, len, v1_sig, V1_SIG_LEN) ||
	       starts_like(buf, len, v2_sig, sizeof(v2_sig));
}

/*
 * Formats a binary address like sock_format(): inet_ntop, then an
 * IPv4-mapped IPv6 address as bare dotted IPv4.
 */
static void host_format(int family, const void *addr, char out[64])
{
	if (!inet_ntop(family, addr, out, 64)) {
		out[0] = '\0';
		return;
	}
	if (strncmp(out, "::ffff:", 7) == 0 && strchr(out + 7, '.'))
		memmove(out, out + 7, strlen(out + 7) + 1);
}

/* ---- version 1: "PROXY TCP4 src dst sport dport\r\n" ---- */

/*
 * Finds the CRLF ending a v1 line. Returns the line's length including CRLF,
 * TERN_EAGAIN while none has arrived, or TERN_EMALFORMED for a control byte,
 * a lone CR or LF, or no CRLF within PROXY_V1_MAX bytes.
 */
static int v1_line_len(const uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len && i < PROXY_V1_MAX; i++) {
		if (buf[i] == '\r') {
			if (i + 2 > PROXY_V1_MAX)
				return TERN_EMALFORMED;
			if (i + 1 == len)
				return TERN_EAGAIN;
			return buf[i + 1] == '\n' ? (int)(i + 2)
			                          : TERN_EMALFORMED;
		}
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return TERN_EMALFORMED;
	}
	return len >= PROXY_V1_MAX ? TERN_EMALFORMED : TERN_EAGAIN;
}

/*
 * Splits s[0..n) at single spaces into at most max fields. Returns the field
 * count, or -1 for an empty field (two spaces, a leading or trailing space)
 * or too many fields.
 */
static int v1_split(const char *s, size_t n, struct span *f, int max)
{
	int k = 0;
	size_t start = 0, i;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ')
			continue;
		if (i == start || k == max)
			return -1;
		f[k].p = s + start;
		f[k].n = i - start;
		k++;
		start = i + 1;
	}
	return k;
}

static int span_is(struct span f, const char *word)
{
	return f.n == strlen(word) && memcmp(f.p, word, f.n) == 0;
}

/* A decimal port in [0, 65535] without leading zeroes. */
static int v1_port(struct span f, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (f.n == 0 || f.n > 5 || (f.n > 1 && f.p[0] == '0'))
		return -1;
	for (i = 0; i < f.n; i++) {
		if (f.p[i] < '0' || f.p[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(f.p[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* Whether a dotted IPv4 text has a number with a leading zero ("01"). */
static int v4_leading_zero(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (s[i] == '0' && (i == 0 || s[i - 1] == '.') &&
		    s[i + 1] >= '0' && s[i + 1] <= '9')
			return 1;
	return 0;
}

/* Parses a canonical address of family into out (host_format form). */
static int v1_addr(struct span f, int family, char out[64])
{
	char text[INET6_ADDRSTRLEN];
	uint8_t bin[16];

	if (f.n >= sizeof(text))
		return -1;
	memcpy(text, f.p, f.n);
	text[f.n] = '\0';
	/* The spec forbids octal-looking numbers; not every libc rejects
	 * them. */
	if (family == AF_INET && v4_leading_zero(text))
		return -1;
	if (inet_pton(family, text, bin) != 1)
		return -1;
	host_format(family, bin, out);
	return 0;
}

/* Parses the fields of a TCP4 / TCP6 line (without its CRLF). */
static int v1_fields(const char *line, size_t n, struct proxy_info *pi)
{
	struct span f[6];

	if (v1_split(line, n, f, 6) != 6)
		return TERN_EMALFORMED;
	if (span_is(f[1], "TCP4"))
		pi->family = AF_INET;
	else if (span_is(f[1], "TCP6"))
		pi->family = AF_INET6;
	else
		return TERN_EMALFORMED;
	if (v1_addr(f[2], pi->family, pi->src_host) != 0 ||
	    v1_addr(f[3], pi->family, pi->dst_host) != 0 ||
	    v1_port(f[4], &pi->src_port) != 0 ||
	    v1_port(f[5], &pi->dst_port) != 0)
		return TERN_EMALFORMED;
	return 0;
}

static int v1_parse(const uint8_t *buf, size_t len, struct proxy_info *pi)
{
	const char *line = (const char *)buf;
	int total = v1_line_len(buf, len);
	size_t n;

	if (total < 0)
		return total;
	n = (size_t)total - 2;
	/* "UNKNOWN" may be followed by anything, which must be ignored. */
	if (n >= 13 && memcmp(line + V1_SIG_LEN, "UNKNOWN", 7) == 0 &&
	    (n == 13 || line[13] == ' ')) {
		pi->local = true;
		return total;
	}
	if (v1_fields(line, n, pi) != 0)
		return TERN_EMALFORMED;
	return total;
}

/* ---- version 2: signature, ver/cmd, fam/transport, length, block ---- */

/*
 * Checks the fixed header bytes as soon as they arrive, so that a wrong
 * version, command, family or transport fails before the rest is awaited.
 */
static int v2_check_fixed(const uint8_t *buf, size_t len)
{
	if (len > 12 && ((buf[12] >> 4) != 2 || (buf[12] & 0xF) > 1))
		return TERN_EMALFORMED;
	/* LOCAL ignores the family byte, so only PROXY needs a valid one. */
	if (len > 13 && (buf[12] & 0xF) == V2_CMD_PROXY &&
	    ((buf[13] >> 4) > V2_AF_UNIX || (buf[13] & 0xF) > V2_TP_DGRAM))
		return TERN_EMALFORMED;
	return 0;
}

/*
 * The address block's size for a family/transport byte, or 0 when the
 * family or transport is UNSPEC: then the block's layout is unknown and it is
 * ignored whole (spec: the receiver should ignore address information).
 */
static size_t v2_addr_len(uint8_t fam)
{
	static const size_t sizes[] = {0, 12, 36, 216};

	if ((fam & 0xF) == V2_TP_UNSPEC)
		return 0;
	return sizes[fam >> 4];
}

/* Whether p[0..n) is a sequence of whole TLVs (type, 16-bit length, value). */
static int v2_tlvs_ok(const uint8_t *p, size_t n)
{
	size_t l;

	while (n > 0) {
		if (n < 3)
			return 0;
		l = (size_t)p[1] << 8 | p[2];
		if (l > n - 3)
			return 0;
		p += 3 + l;
		n -= 3 + l;
	}
	return 1;
}

/* Fills pi from a TCP or UDP address block over IPv4 or IPv6. */
static void v2_addresses(const uint8_t *a, uint8_t fam, struct proxy_info *pi)
{
	size_t alen = (fam >> 4) == V2_AF_INET ? 4 : 16;
	const uint8_t *ports = a + 2 * alen;

	pi->family = alen == 4 ? AF_INET : AF_INET6;
	host_format(pi->family, a, pi->src_host);
	host_format(pi->family, a + alen, pi->dst_host);
	pi->src_port = (uint16_t)(ports[0] << 8 | ports[1]);
	pi->dst_port = (uint16_t)(ports[2] << 8 | ports[3]);
}

static int v2_parse(const uint8_t *buf, size_t len, struct proxy_info *pi)
{
	size_t body, total, need;
	uint8_t fam;
	int rc = v2_check_fixed(buf, len);

	if (rc != 0)
		return rc;
	if (len < V2_HDR_LEN)
		return TERN_EAGAIN;
	body = (size_t)buf[14] << 8 | buf[15];
	total = V2_HDR_LEN + body;
	if (total > PROXY_V2_MAX)
		return TERN_ETOOBIG;
	if (len < total)
		return TERN_EAGAIN;
	fam = buf[13];
	pi->local = true;
	if ((buf[12] & 0xF) == V2_CMD_LOCAL)
		return (int)total;
	need = v2_addr_len(fam);
	if (need == 0)
		return (int)total;
	if (body < need || !v2_tlvs_ok(buf + V2_HDR_LEN + need, body - need))
		return TERN_EMALFORMED;
	/* tern serves TCP only: UNIX and datagram sources fall back to the
	 * socket's own address, as the spec allows for unsupported ones. */
	if ((fam & 0xF) == V2_TP_STREAM &&
	    ((fam >> 4) == V2_AF_INET || (fam >> 4) == V2_AF_INET6)) {
		pi->local = false;
		v2_addresses(buf + V2_HDR_LEN, fam, pi);
	}
	return (int)total;
}

int proxy_parse(const uint8_t *buf, size_t len, struct proxy_info *out)
{
	struct proxy_info pi;
	int rc;

	memset(&pi, 0, sizeof(pi));
	pi.family = AF_UNSPEC;
	if (len == 0)
		return TERN_EAGAIN;
	if (buf[0] == v1_sig[0] && starts_like(buf, len, v1_sig, V1_SIG_LEN))
		rc = v1_parse(buf, len, &pi);
	else if (starts_like(buf, len, v2_sig, sizeof(v2_sig)))
		rc = v2_parse(buf, len, &pi);
	else
		return TERN_EMALFORMED;
	if (rc > 0)
		*out = pi;
	return rc;
}
