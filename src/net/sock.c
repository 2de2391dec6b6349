/* Listening and accepting TCP sockets; see sock.h. */
#include "net/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"

/* Parses bind_addr into ss; returns the address length or 0 if invalid. */
static socklen_t sock_parse(const char *bind_addr, uint16_t port,
                            struct sockaddr_storage *ss)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (!bind_addr || !*bind_addr) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		v6->sin6_addr = in6addr_any;
		return sizeof(*v6);
	}
	if (inet_pton(AF_INET, bind_addr, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
		return sizeof(*v4);
	}
	if (inet_pton(AF_INET6, bind_addr, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		return sizeof(*v6);
	}
	if (strcmp(bind_addr, "localhost") == 0)
		return sock_parse("127.0.0.1", port, ss);
	return 0;
}

/* A stream socket bound to bind_addr:port, not yet listening; -1 with
 * errno on failure. */
static int bound_socket(const char *bind_addr, uint16_t port, int reuseport)
{
	struct sockaddr_storage ss;
	socklen_t sl = sock_parse(bind_addr, port, &ss);
	int one = 1, zero = 0, fd;

	if (!sl) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	            0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		goto fail;
	/* An explicit IPv6 address binds only IPv6; "all" is dual-stack. */
	if (ss.ss_family == AF_INET6) {
		int v6only = (bind_addr && *bind_addr) ? 1 : 0;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only ? &one : &zero,
		           sizeof(int));
	}
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0)
		goto fail;
	return fd;
fail : {
	int e = errno;
	close(fd);
	errno = e;
}
	return -1;
}

int sock_listen(const char *bind_addr, uint16_t port, int reuseport)
{
	int fd = bound_socket(bind_addr, port, reuseport);

	if (fd < 0)
		return TERN_EIO;
	if (listen(fd, 4096) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return TERN_EIO;
	}
	return fd;
}

int sock_port_free(const char *bind_addr, uint16_t port)
{
	/* Without SO_REUSEPORT the bind conflicts with any socket listening
	 * there, whether or not that one set SO_REUSEPORT. */
	int fd = bound_socket(bind_addr, port, 0);

	if (fd < 0)
		return errno == EADDRINUSE ? TERN_EIO : 0;
	close(fd);
	return 0;
}

void sock_format(const struct sockaddr *sa, char *out, size_t cap, char *host)
{
	char h[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const void *)sa;
		inet_ntop(AF_INET, &v4->sin_addr, h, sizeof(h));
		port = ntohs(v4->sin_port);
		snprintf(out, cap, "%s:%u", h, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const void *)sa;
		inet_ntop(AF_INET6, &v6->sin6_addr, h, sizeof(h));
		port = ntohs(v6->sin6_port);
		/* Show IPv4-mapped peers of a dual-stack socket as IPv4. */
		if (strncmp(h, "::ffff:", 7) == 0 && strchr(h + 7, '.'))
			memmove(h, h + 7, strlen(h + 7) + 1);
		if (strchr(h, ':'))
			snprintf(out, cap, "[%s]:%u", h, port);
		else
			snprintf(out, cap, "%s:%u", h, port);
	} else {
		snprintf(out, cap, "unknown");
	}
	if (host)
		snprintf(host, SOCK_ADDRSTRLEN, "%s", h);
}

int sock_accept(int lfd, char *peer, char *host)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1;
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
	                 SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK ||
		        errno == EINTR || errno == ECONNABORTED)
		               ? TERN_EAGAIN
		               : TERN_EIO;
	/* Batching happens in user space (DESIGN.md §4), so Nagle only adds
	 * latency. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sock_format((struct sockaddr *)&ss, peer, SOCK_ADDRSTRLEN, host);
	return fd;
}
