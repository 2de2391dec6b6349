/*
 * libFuzzer target for trusted proxy lists (src/net/cidr.c). Each input is
 * used twice: as an X-Forwarded-For value, which comes straight from
 * clients, against a fixed trusted list; and as the text of a list, whose
 * every parsed prefix must then contain its own address. A client picked
 * from X-Forwarded-For must be a numeric address in sock_format's form.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "net/cidr.h"
#include "net/sock.h"

static void fuzz_xff(const char *value, size_t len)
{
	static struct cidr_list trusted;
	char out[SOCK_ADDRSTRLEN];
	uint8_t bin[16];

	if (!trusted.v)
		CHECK(cidr_list_parse("10.0.0.0/8 fd00::/8 ::ffff:1.2.0.0/112",
		                      &trusted, NULL, 0) == 0);
	if (!cidr_xff_client(&trusted, value, len, out, sizeof(out)))
		return;
	CHECK(inet_pton(AF_INET, out, bin) == 1 ||
	      inet_pton(AF_INET6, out, bin) == 1);
	CHECK(strncmp(out, "::ffff:", 7) != 0 || !strchr(out, '.'));
}

static void fuzz_list(const char *text)
{
	struct cidr_list l;
	char err[32], host[INET6_ADDRSTRLEN];
	struct cidr_list one;
	size_t i;

	if (cidr_list_parse(text, &l, err, sizeof(err)) != 0) {
		CHECK(l.v == NULL && l.n == 0);
		return;
	}
	for (i = 0; i < l.n; i++) {
		CHECK(l.v[i].bits <= (l.v[i].family == AF_INET ? 32 : 128));
		CHECK(inet_ntop(l.v[i].family, l.v[i].addr, host,
		                sizeof(host)) != NULL);
		one.v = &l.v[i];
		one.n = 1;
		CHECK(cidr_list_match(&one, host));
	}
	cidr_list_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_xff(text, size);
	fuzz_list(text);
	free(text);
	return 0;
}
