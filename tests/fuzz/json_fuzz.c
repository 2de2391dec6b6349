/*
 * libFuzzer target for the JSON reader (src/base/json.c), which reads the
 * body of POST /api/v1/publish from anyone who can reach the admin API.
 * Every value it reports must lie inside the input, strings must decode
 * within their own length, and integers must read back in range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"topic", "payload", "qos", "retain",
	                                    "encoding"};
	const char *text = (const char *)data;
	struct json_val v[5];

	if (json_object_get(text, size, names, v, 5) != 0)
		return 0;
	for (int i = 0; i < 5; i++) {
		int64_t x;

		if (v[i].type == JSON_ABSENT)
			continue;
		CHECK(v[i].p >= text && v[i].p + v[i].len <= text + size);
		if (v[i].type == JSON_STRING) {
			char *out = malloc(v[i].len + 1);
			int n;

			CHECK(out != NULL);
			n = json_string(&v[i], out, v[i].len);
			CHECK(n <= (int)v[i].len);
			free(out);
		}
		if (json_int(&v[i], -5, 5, &x) == 0)
			CHECK(x >= -5 && x <= 5);
	}
	return 0;
}
