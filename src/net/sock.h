/*
 * Socket helpers: listeners (one per worker with SO_REUSEPORT, DESIGN.md §3),
 * accept with the options every connection gets, and address formatting.
 */
#ifndef TERN_NET_SOCK_H
#define TERN_NET_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest "[ipv6]:port" string plus NUL. */
#define SOCK_ADDRSTRLEN 64

/*
 * Opens a non-blocking listening TCP socket on bind_addr (numeric IPv4 or
 * IPv6, NULL or "" = all addresses, dual-stack) and port, with SO_REUSEADDR
 * and, if reuseport, SO_REUSEPORT. Returns the fd or TERN_EIO (errno set).
 */
int sock_listen(const char *bind_addr, uint16_t port, int reuseport);

/*
 * Whether nothing listens on bind_addr:port yet, found by binding (not
 * listening) a socket without SO_REUSEPORT and closing it. Returns 0, or
 * TERN_EIO with errno EADDRINUSE. Sockets that set SO_REUSEPORT share a
 * port with any other process of the same user that sets it too, so a
 * second broker started on a busy port would bind, and clients would be
 * split between the two without a word; probing first makes that an
 * error. Other bind errors are left for sock_listen() to report.
 */
int sock_port_free(const char *bind_addr, uint16_t port);

/*
 * Accepts one connection: non-blocking, close-on-exec, TCP_NODELAY. Writes
 * the peer as "host:port" into peer (SOCK_ADDRSTRLEN bytes) and the bare
 * host into host (SOCK_ADDRSTRLEN). Returns the fd, TERN_EAGAIN when none is
 * pending, or TERN_EIO.
 */
int sock_accept(int lfd, char *peer, char *host);

/* Formats a socket address as "host:port" ("[v6]:port" for IPv6). */
void sock_format(const struct sockaddr *sa, char *out, size_t cap, char *host);

#endif
