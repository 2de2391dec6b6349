/*
 * Tests of the socket helpers (src/net/sock.c) on loopback: listeners on
 * port 0, SO_REUSEPORT sharing a port, accept setting non-blocking,
 * close-on-exec and TCP_NODELAY and naming the peer, and sock_format for
 * IPv4, IPv6 and IPv4-mapped IPv6 addresses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h relies on the four headers above. */
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/error.h"
#include "net/sock.h"

/* The port a socket is bound to. */
static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	assert_int_equal(ss.ss_family, AF_INET6);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A blocking client connected to addr:port (family from addr). */
static int connect_to(const char *addr, uint16_t port)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	int fd;

	if (inet_pton(AF_INET, addr, &v4.sin_addr) == 1) {
		v4.sin_port = htons(port);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fd >= 0);
		assert_int_equal(
		        connect(fd, (struct sockaddr *)&v4, sizeof(v4)), 0);
		return fd;
	}
	assert_int_equal(inet_pton(AF_INET6, addr, &v6.sin6_addr), 1);
	v6.sin6_port = htons(port);
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&v6, sizeof(v6)), 0);
	return fd;
}

/* Accepts one pending connection, waiting at most two seconds. */
static int accept_one(int lfd, char *peer, char *host)
{
	struct pollfd p = {.fd = lfd, .events = POLLIN};

	assert_int_equal(poll(&p, 1, 2000), 1);
	return sock_accept(lfd, peer, host);
}

static void test_listen_accept_v4(void **state)
{
	char peer[SOCK_ADDRSTRLEN], host[SOCK_ADDRSTRLEN], want[64];
	int lfd, cfd, afd, nodelay = 0;
	socklen_t sl = sizeof(nodelay);
	uint16_t port;

	lfd = sock_listen("127.0.0.1", 0, 0);
	assert_true(lfd >= 0);
	assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
	port = local_port(lfd);
	assert_int_not_equal(port, 0);

	/* Nothing pending yet. */
	assert_int_equal(sock_accept(lfd, peer, host), TERN_EAGAIN);

	cfd = connect_to("127.0.0.1", port);
	afd = accept_one(lfd, peer, host);
	assert_true(afd >= 0);
	assert_int_equal(
	        getsockopt(afd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &sl), 0);
	assert_int_not_equal(nodelay, 0);
	assert_true(fcntl(afd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(afd, F_GETFD) & FD_CLOEXEC);

	/* The peer is the client's own address and port. */
	snprintf(want, sizeof(want), "127.0.0.1:%u", local_port(cfd));
	assert_string_equal(peer, want);
	assert_string_equal(host, "127.0.0.1");

	/* The accepted socket is connected to the client. */
	assert_int_equal(write(cfd, "ping", 4), 4);
	{
		struct pollfd p = {.fd = afd, .events = POLLIN};
		char buf[8];

		assert_int_equal(poll(&p, 1, 2000), 1);
		assert_int_equal(read(afd, buf, sizeof(buf)), 4);
		assert_memory_equal(buf, "ping", 4);
	}
	close(afd);
	close(cfd);
	close(lfd);
}

static void test_reuseport(void **state)
{
	int a, b, c;
	uint16_t port;

	a = sock_listen("127.0.0.1", 0, 1);
	assert_true(a >= 0);
	port = local_port(a);
	b = sock_listen("127.0.0.1", port, 1);
	assert_true(b >= 0);
	assert_int_equal(local_port(b), port);

	/* Without SO_REUSEPORT the port is taken. */
	errno = 0;
	c = sock_listen("127.0.0.1", port, 0);
	assert_int_equal(c, TERN_EIO);
	assert_int_equal(errno, EADDRINUSE);
	close(a);
	close(b);
}

static void test_reuseport_both_accept(void **state)
{
	char peer[SOCK_ADDRSTRLEN], host[SOCK_ADDRSTRLEN];
	int l[2], cfd[32], i, got[2] = {0, 0}, spins;
	uint16_t port;

	l[0] = sock_listen("127.0.0.1", 0, 1);
	assert_true(l[0] >= 0);
	port = local_port(l[0]);
	l[1] = sock_listen("127.0.0.1", port, 1);
	assert_true(l[1] >= 0);
	/* The kernel spreads connections by hash; every one is accepted by
	 * exactly one of the listeners. */
	for (i = 0; i < 32; i++)
		cfd[i] = connect_to("127.0.0.1", port);
	for (spins = 0; got[0] + got[1] < 32 && spins < 200; spins++) {
		struct pollfd p[2] = {{.fd = l[0], .events = POLLIN},
		                      {.fd = l[1], .events = POLLIN}};
		int j, fd;

		assert_true(poll(p, 2, 2000) > 0);
		for (j = 0; j < 2; j++)
			while ((fd = sock_accept(l[j], peer, host)) >= 0) {
				got[j]++;
				close(fd);
			}
	}
	assert_int_equal(got[0] + got[1], 32);
	for (i = 0; i < 32; i++)
		close(cfd[i]);
	close(l[0]);
	close(l[1]);
}

static void test_listen_bad_address(void **state)
{
	errno = 0;
	assert_int_equal(sock_listen("not-an-address", 0, 0), TERN_EIO);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(sock_listen("256.1.1.1", 0, 0), TERN_EIO);
	assert_int_equal(errno, EINVAL);
}

static void test_listen_localhost(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd = sock_listen("localhost", 0, 0);

	assert_true(fd >= 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	assert_int_equal(sin.sin_family, AF_INET);
	assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
	close(fd);
}

/* Skips (passes) when the host has no IPv6 loopback. */
static void test_listen_accept_v6(void **state)
{
	char peer[SOCK_ADDRSTRLEN], host[SOCK_ADDRSTRLEN], want[64];
	int lfd, cfd, afd, v6only = 0;
	socklen_t sl = sizeof(v6only);
	uint16_t port;

	lfd = sock_listen("::1", 0, 0);
	if (lfd < 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL))
		skip();
	assert_true(lfd >= 0);
	/* An explicit IPv6 address is IPv6 only. */
	assert_int_equal(
	        getsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &sl), 0);
	assert_int_equal(v6only, 1);
	port = local_port(lfd);
	cfd = connect_to("::1", port);
	afd = accept_one(lfd, peer, host);
	assert_true(afd >= 0);
	snprintf(want, sizeof(want), "[::1]:%u", local_port(cfd));
	assert_string_equal(peer, want);
	assert_string_equal(host, "::1");
	close(afd);
	close(cfd);
	close(lfd);
}

/* All addresses: dual-stack, IPv4 peers shown without the ::ffff: prefix. */
static void test_dual_stack_mapped_peer(void **state)
{
	char peer[SOCK_ADDRSTRLEN], host[SOCK_ADDRSTRLEN], want[64];
	int lfd, cfd, afd, v6only = 1;
	socklen_t sl = sizeof(v6only);
	uint16_t port;

	lfd = sock_listen(NULL, 0, 0);
	if (lfd < 0 && errno == EAFNOSUPPORT)
		skip();
	assert_true(lfd >= 0);
	assert_int_equal(
	        getsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &sl), 0);
	assert_int_equal(v6only, 0);
	port = local_port(lfd);
	cfd = connect_to("127.0.0.1", port);
	afd = accept_one(lfd, peer, host);
	assert_true(afd >= 0);
	snprintf(want, sizeof(want), "127.0.0.1:%u", local_port(cfd));
	assert_string_equal(peer, want);
	assert_string_equal(host, "127.0.0.1");
	close(afd);
	close(cfd);
	close(lfd);
}

static void test_format(void **state)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET,
	                         .sin_port = htons(1883)};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6,
	                          .sin6_port = htons(8883)};
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	char out[SOCK_ADDRSTRLEN], host[SOCK_ADDRSTRLEN];

	assert_int_equal(inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr), 1);
	sock_format((struct sockaddr *)&v4, out, sizeof(out), host);
	assert_string_equal(out, "192.0.2.7:1883");
	assert_string_equal(host, "192.0.2.7");

	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr), 1);
	sock_format((struct sockaddr *)&v6, out, sizeof(out), host);
	assert_string_equal(out, "[2001:db8::1]:8883");
	assert_string_equal(host, "2001:db8::1");

	/* IPv4-mapped: shown as the IPv4 address it stands for. */
	assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.1", &v6.sin6_addr),
	                 1);
	sock_format((struct sockaddr *)&v6, out, sizeof(out), host);
	assert_string_equal(out, "192.0.2.1:8883");
	assert_string_equal(host, "192.0.2.1");

	/* Not IPv4-mapped, although the text starts with ::ffff: too. */
	assert_int_equal(inet_pton(AF_INET6, "::ffff:1:2:3", &v6.sin6_addr), 1);
	sock_format((struct sockaddr *)&v6, out, sizeof(out), NULL);
	assert_string_equal(out, "[::ffff:1:2:3]:8883");

	/* The longest IPv6 text fits. */
	assert_int_equal(inet_pton(AF_INET6,
	                           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	                           &v6.sin6_addr),
	                 1);
	v6.sin6_port = htons(65535);
	sock_format((struct sockaddr *)&v6, out, sizeof(out), host);
	assert_string_equal(out,
	                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");

	/* A short buffer truncates instead of overflowing. */
	sock_format((struct sockaddr *)&v4, out, 6, NULL);
	assert_string_equal(out, "192.0");

	sock_format((struct sockaddr *)&un, out, sizeof(out), host);
	assert_string_equal(out, "unknown");
	assert_string_equal(host, "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_listen_accept_v4),
	        cmocka_unit_test(test_reuseport),
	        cmocka_unit_test(test_reuseport_both_accept),
	        cmocka_unit_test(test_listen_bad_address),
	        cmocka_unit_test(test_listen_localhost),
	        cmocka_unit_test(test_listen_accept_v6),
	        cmocka_unit_test(test_dual_stack_mapped_peer),
	        cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
