/*
 * Trusted proxy lists: address prefixes (CIDR blocks) read from the
 * configuration, matched against peer addresses, and used to pick the real
 * client out of an X-Forwarded-For header. Only a peer in the list may
 * replace its address with one it reports (a PROXY header, X-Forwarded-For);
 * from anyone else those are ignored (BAD_INPUTS.md).
 *
 * IPv4-mapped IPv6 addresses ("::ffff:1.2.3.4") are treated as the IPv4
 * address they carry, in the list and in the hosts matched against it, since
 * a dual-stack listener sees IPv4 peers that way. IPv4 and IPv6 are otherwise
 * separate: "::/0" does not match IPv4 peers; list "0.0.0.0/0 ::/0" to trust
 * everyone.
 */
#ifndef TERN_NET_CIDR_H
#define TERN_NET_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One prefix: the first bits bits of addr (4 bytes used for AF_INET). */
struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint8_t bits;
};

/* An array of n prefixes owned by the list (free with cidr_list_free). */
struct cidr_list {
	struct cidr *v;
	size_t n;
};

/*
 * Parses a list of items separated by whitespace and/or commas, each a
 * numeric address ("127.0.0.1", "::1": a host) or address/bits ("10.0.0.0/8",
 * "fd00::/8"; bits 0-32 for IPv4, 0-128 for IPv6, decimal). Address bits
 * beyond the prefix are ignored ("10.1.2.3/8" is 10.0.0.0/8), as in nginx.
 * An empty or blank text (or NULL) gives an empty list.
 *
 * On success returns 0 and fills *out, which the caller frees with
 * cidr_list_free. On failure *out is empty and the return is TERN_EINVAL,
 * with the offending item copied into err (truncated to errlen, always
 * NUL-terminated; err may be NULL when errlen is 0), or TERN_ENOMEM.
 */
int cidr_list_parse(const char *text, struct cidr_list *out, char *err,
                    size_t errlen);

/* Frees the list's array and empties it. Accepts NULL and empty lists. */
void cidr_list_free(struct cidr_list *l);

/*
 * Whether the numeric host ("1.2.3.4", "::1", "::ffff:1.2.3.4", as
 * sock_format and proxy_parse write them; no brackets, no port) lies in one
 * of the list's prefixes. False for a NULL or empty list and for text that is
 * not a numeric address.
 */
bool cidr_list_match(const struct cidr_list *l, const char *host);

/*
 * Finds the real client in an X-Forwarded-For value[0..len) (not
 * NUL-terminated; "client, proxy1, proxy2", each proxy appending the address
 * it received the request from). Call it only when the socket peer itself is
 * trusted; otherwise the header is the client's own claim and is ignored.
 *
 * Walks the entries from the right, skipping those in trusted; the first
 * untrusted entry is the client. Entries to its left were written by
 * untrusted parties and are never looked at, so spoofed or garbage left-most
 * entries change nothing. When every entry is trusted, the left-most is the
 * client. Entries are bare numeric addresses checked with inet_pton, with
 * spaces and tabs around them ignored; an invalid or empty entry reached by
 * the walk (including one with a port or brackets, or "unknown") makes the
 * whole result false, so the caller keeps the socket address.
 *
 * On true, out (outlen bytes, SOCK_ADDRSTRLEN is enough) holds the client in
 * sock_format's form (canonical inet_ntop text, IPv4-mapped as IPv4). Returns
 * false, leaving out untouched, when no valid client was found or it does
 * not fit in out.
 */
bool cidr_xff_client(const struct cidr_list *trusted, const char *value,
                     size_t len, char *out, size_t outlen);

#endif
