/*
 * libFuzzer target for the PROXY protocol parser (src/net/proxy.c). Each
 * input is the first bytes of a connection. Beyond not crashing, the parser
 * must keep its contract: a header it accepts lies within the input and the
 * cap, parses the same from exactly its own bytes, and every shorter prefix
 * of it asks for more bytes; what it reports is a well-formed numeric
 * address; and proxy_maybe never rejects bytes the parser would wait on or
 * accept.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/error.h"
#include "fuzz.h"
#include "net/proxy.h"

/* A host field is NUL-terminated and, when set, a numeric address. */
static void check_host(const char *host, bool local)
{
	uint8_t bin[16];

	CHECK(memchr(host, '\0', 64) != NULL);
	if (local) {
		CHECK(host[0] == '\0');
		return;
	}
	CHECK(inet_pton(AF_INET, host, bin) == 1 ||
	      inet_pton(AF_INET6, host, bin) == 1);
}

static void check_info(const struct proxy_info *pi)
{
	if (pi->local) {
		CHECK(pi->family == AF_UNSPEC);
		CHECK(pi->src_port == 0 && pi->dst_port == 0);
	} else {
		CHECK(pi->family == AF_INET || pi->family == AF_INET6);
	}
	check_host(pi->src_host, pi->local);
	check_host(pi->dst_host, pi->local);
}

/* The header data[0..n) parses alone to the same result, and no less. */
static void check_complete(const uint8_t *data, size_t n,
                           const struct proxy_info *pi)
{
	struct proxy_info again;
	size_t k;

	memset(&again, 0, sizeof(again));
	CHECK(proxy_parse(data, n, &again) == (int)n);
	CHECK(again.local == pi->local && again.family == pi->family);
	CHECK(again.src_port == pi->src_port && again.dst_port == pi->dst_port);
	CHECK(strcmp(again.src_host, pi->src_host) == 0);
	CHECK(strcmp(again.dst_host, pi->dst_host) == 0);
	for (k = 0; k < n; k++)
		CHECK(proxy_parse(data, k, &again) == TERN_EAGAIN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_info pi;
	int rc, maybe;

	memset(&pi, 0, sizeof(pi));
	rc = proxy_parse(data, size, &pi);
	maybe = proxy_maybe(data, size);
	CHECK(rc > 0 || rc == TERN_EAGAIN || rc == TERN_EMALFORMED ||
	      rc == TERN_ETOOBIG);
	if (!maybe)
		CHECK(rc == TERN_EMALFORMED);
	if (rc == TERN_EAGAIN)
		CHECK(size < PROXY_V2_MAX);
	if (rc <= 0)
		return 0;
	CHECK((size_t)rc <= size && rc <= PROXY_V2_MAX);
	check_info(&pi);
	check_complete(data, (size_t)rc, &pi);
	return 0;
}
