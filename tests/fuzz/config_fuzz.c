/*
 * libFuzzer target for ternd's configuration reader (src/broker/config.c,
 * config_parse). Each input is a whole config file. Beyond memory safety it
 * checks what users rely on: an error names the file and a line
 * ("fuzz:LINE: reason"), parsing is deterministic, config_free() twice is
 * safe, and a config that parsed can be finished with at least one
 * listener. Inputs naming include_dir are skipped: that key reads
 * directories, and a fuzzer must not wander the file system.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "broker/config.h"
#include "fuzz.h"

/* Parses text and returns the result code; err receives the message. */
static int parse(const char *text, struct config *c, char *err, size_t cap)
{
	config_init(c);
	return config_parse(c, text, "fuzz", err, cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, again;
	char err[256], err2[256];
	char *text;
	int rc, rc2, anon;

	if (memmem(data, size, "include_dir", 11))
		return 0;
	if (!(text = malloc(size + 1)))
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	rc = parse(text, &c, err, sizeof(err));
	rc2 = parse(text, &again, err2, sizeof(err2));
	CHECK(rc2 == rc);
	if (rc != 0) {
		CHECK(rc == TERN_ECONFIG);
		CHECK(strncmp(err, "fuzz:", 5) == 0);
		CHECK(err[5] >= '1' && err[5] <= '9');
		CHECK(strcmp(err, err2) == 0);
	} else {
		CHECK(again.nlisteners == c.nlisteners);
		CHECK(again.sec.allow_anonymous == c.sec.allow_anonymous);
		anon = c.sec.allow_anonymous;
		CHECK(config_finish(&c) == 0);
		CHECK(c.nlisteners >= 1);
		/* Fail closed: anonymous access is only ever what the file
		 * said, or the local-only default of a file with no
		 * listener (Mosquitto 2.0). */
		if (anon >= 0)
			CHECK(c.sec.allow_anonymous == anon);
		else
			CHECK(c.sec.allow_anonymous == (c.local_only ? 1 : 0));
	}
	config_free(&again);
	config_free(&c);
	config_free(&c);
	free(text);
	return 0;
}
