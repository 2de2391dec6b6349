/*
 * Trusted proxy lists; see cidr.h. Every address, whether from the
 * configuration, a socket or a header, goes through inet_pton into a
 * struct cidr (a host is a full-length prefix) and IPv4-mapped IPv6 is folded
 * into IPv4 there, so matching is one byte-wise prefix comparison and text
 * forms never have to agree. X-Forwarded-For is walked right to left
 * because only its right end was written by proxies we trust.
 */
#include "net/cidr.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/error.h"

/* Longest list item: an IPv6 address text plus "/128". */
#define ITEM_MAX (INET6_ADDRSTRLEN + 4)

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};

static int is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	       c == '\v' || c == '\f';
}

/*
 * Parses the numeric address s (NUL-terminated) into c as a host: family,
 * address and full-length bits. Returns 0 or -1.
 */
static int addr_parse(const char *s, struct cidr *c)
{
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, s, c->addr) == 1) {
		c->family = AF_INET;
		c->bits = 32;
		return 0;
	}
	if (inet_pton(AF_INET6, s, c->addr) == 1) {
		c->family = AF_INET6;
		c->bits = 128;
		return 0;
	}
	return -1;
}

/*
 * Folds an IPv6 prefix inside ::ffff:0:0/96 into the IPv4 prefix it
 * denotes; shorter prefixes also cover non-mapped space and stay IPv6.
 */
static void unmap(struct cidr *c)
{
	if (c->family != AF_INET6 || c->bits < 96 ||
	    memcmp(c->addr, v4_mapped_prefix, 12) != 0)
		return;
	memmove(c->addr, c->addr + 12, 4);
	memset(c->addr + 4, 0, 12);
	c->family = AF_INET;
	c->bits -= 96;
}

/* Clears the address bits beyond the prefix length. */
static void mask(struct cidr *c)
{
	unsigned i;

	for (i = 0; i < 16; i++) {
		unsigned keep = c->bits > i * 8 ? c->bits - i * 8 : 0;
		if (keep < 8)
			c->addr[i] &= (uint8_t)(0xff00 >> keep);
	}
}

/* Parses the decimal prefix length s into c->bits (at most max). */
static int bits_parse(const char *s, unsigned max, struct cidr *c)
{
	unsigned v = 0;
	size_t i, n = strlen(s);

	if (n == 0 || n > 3)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	c->bits = (uint8_t)v;
	return 0;
}

/* Parses one list item s[0..n): "addr" or "addr/bits". */
static int item_parse(const char *s, size_t n, struct cidr *c)
{
	char text[ITEM_MAX];
	char *slash;

	if (n >= sizeof(text))
		return -1;
	memcpy(text, s, n);
	text[n] = '\0';
	slash = strchr(text, '/');
	if (slash)
		*slash = '\0';
	if (addr_parse(text, c) != 0)
		return -1;
	if (slash && bits_parse(slash + 1, c->bits, c) != 0)
		return -1;
	unmap(c);
	mask(c);
	return 0;
}

/* Copies the item s[0..n) into err for the error message. */
static void set_err(char *err, size_t errlen, const char *s, size_t n)
{
	if (!err || errlen == 0)
		return;
	if (n >= errlen)
		n = errlen - 1;
	memcpy(err, s, n);
	err[n] = '\0';
}

/* Finds the next item at or after *pos; returns its length (0 at the end). */
static size_t next_item(const char *text, size_t *pos)
{
	size_t n = 0;

	while (text[*pos] && is_sep(text[*pos]))
		(*pos)++;
	while (text[*pos + n] && !is_sep(text[*pos + n]))
		n++;
	return n;
}

static size_t count_items(const char *text)
{
	size_t pos = 0, n, count = 0;

	while ((n = next_item(text, &pos)) > 0) {
		count++;
		pos += n;
	}
	return count;
}

int cidr_list_parse(const char *text, struct cidr_list *out, char *err,
                    size_t errlen)
{
	struct cidr_list l = {NULL, 0};
	size_t pos = 0, n, count;

	if (!text)
		text = "";
	count = count_items(text);
	set_err(err, errlen, "", 0);
	if (count > 0) {
		l.v = calloc(count, sizeof(*l.v));
		if (!l.v)
			goto nomem;
	}
	while ((n = next_item(text, &pos)) > 0) {
		if (item_parse(text + pos, n, &l.v[l.n]) != 0) {
			set_err(err, errlen, text + pos, n);
			goto fail;
		}
		l.n++;
		pos += n;
	}
	*out = l;
	return 0;
nomem:
	out->v = NULL;
	out->n = 0;
	return TERN_ENOMEM;
fail:
	cidr_list_free(&l);
	*out = l;
	return TERN_EINVAL;
}

void cidr_list_free(struct cidr_list *l)
{
	if (!l)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Whether the first c->bits bits of addr equal those of c. */
static bool prefix_has(const struct cidr *c, const struct cidr *host)
{
	unsigned whole = c->bits / 8, rest = c->bits % 8;
	uint8_t m = (uint8_t)(0xff00 >> rest);

	if (c->family != host->family)
		return false;
	if (memcmp(c->addr, host->addr, whole) != 0)
		return false;
	return rest == 0 || (c->addr[whole] & m) == (host->addr[whole] & m);
}

static bool list_has(const struct cidr_list *l, const struct cidr *host)
{
	size_t i;

	for (i = 0; l && i < l->n; i++)
		if (prefix_has(&l->v[i], host))
			return true;
	return false;
}

/* Parses a host address s[0..n) into h, IPv4-mapped folded to IPv4. */
static int host_parse(const char *s, size_t n, struct cidr *h)
{
	char text[INET6_ADDRSTRLEN];

	/* Header bytes may hold a NUL that would hide a trailing part. */
	if (n >= sizeof(text) || memchr(s, '\0', n))
		return -1;
	memcpy(text, s, n);
	text[n] = '\0';
	if (addr_parse(text, h) != 0)
		return -1;
	unmap(h);
	return 0;
}

bool cidr_list_match(const struct cidr_list *l, const char *host)
{
	struct cidr h;

	if (!host || host_parse(host, strlen(host), &h) != 0)
		return false;
	return list_has(l, &h);
}

/*
 * The X-Forwarded-For entry ending at value[end] (exclusive), trimmed of
 * spaces and tabs; *start is set to where it begins, after its comma.
 */
static void xff_entry(const char *value, size_t end, size_t *start,
                      size_t *from, size_t *to)
{
	size_t s = end;

	while (s > 0 && value[s - 1] != ',')
		s--;
	*start = s;
	*from = s;
	*to = end;
	while (*from < *to && (value[*from] == ' ' || value[*from] == '\t'))
		(*from)++;
	while (*to > *from && (value[*to - 1] == ' ' || value[*to - 1] == '\t'))
		(*to)--;
}

/* Writes h in sock_format's text form into out; false if it does not fit. */
static bool host_format(const struct cidr *h, char *out, size_t outlen)
{
	char text[INET6_ADDRSTRLEN];

	if (!inet_ntop(h->family, h->addr, text, sizeof(text)) ||
	    strlen(text) >= outlen)
		return false;
	memcpy(out, text, strlen(text) + 1);
	return true;
}

bool cidr_xff_client(const struct cidr_list *trusted, const char *value,
                     size_t len, char *out, size_t outlen)
{
	struct cidr h;
	size_t end = len, start, from, to;

	if (!value)
		return false;
	for (;;) {
		xff_entry(value, end, &start, &from, &to);
		if (host_parse(value + from, to - from, &h) != 0)
			return false;
		/* The first untrusted entry, or the last one left. */
		if (!list_has(trusted, &h) || start == 0)
			return host_format(&h, out, outlen);
		end = start - 1;
	}
}
