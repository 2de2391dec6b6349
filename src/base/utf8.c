/*
 * UTF-8 validation (RFC 3629) with the extra MQTT rule that U+0000 is
 * forbidden (MQTT 3.1.1 §1.5.3, 5.0 §1.5.4). The checker walks the input
 * once, so its cost is linear and it never reads past s + len. Non-characters
 * such as U+FFFF are allowed: MQTT only says a receiver MAY reject them.
 */
#include "base/utf8.h"

#include <stdbool.h>

#include "base/error.h"

/*
 * Length of the sequence that starts with lead byte c, or 0 if c cannot
 * start a sequence (a continuation byte, or 0xC0/0xC1/0xF5..0xFF, which
 * could only begin overlong or out-of-range forms).
 */
static size_t seq_len(uint8_t c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return 2;
	if (c >= 0xE0 && c <= 0xEF)
		return 3;
	if (c >= 0xF0 && c <= 0xF4)
		return 4;
	return 0;
}

/*
 * The allowed range of the second byte depends on the lead byte: this is
 * where overlong forms (E0, F0), surrogates (ED) and code points above
 * U+10FFFF (F4) are excluded (RFC 3629 §4).
 */
static bool second_ok(uint8_t lead, uint8_t c)
{
	switch (lead) {
	case 0xE0: return c >= 0xA0 && c <= 0xBF;
	case 0xED: return c >= 0x80 && c <= 0x9F;
	case 0xF0: return c >= 0x90 && c <= 0xBF;
	case 0xF4: return c >= 0x80 && c <= 0x8F;
	default: return c >= 0x80 && c <= 0xBF;
	}
}

static int check(const uint8_t *s, size_t len, bool allow_nul)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		size_t n = seq_len(c);

		if (c == 0 && !allow_nul)
			return TERN_EUTF8;
		if (n == 0 || n > len - i)
			return TERN_EUTF8;
		if (n > 1 && !second_ok(c, s[i + 1]))
			return TERN_EUTF8;
		for (size_t k = 2; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return TERN_EUTF8;
		i += n;
	}
	return 0;
}

int utf8_check_mqtt(const uint8_t *s, size_t len)
{
	return check(s, len, false);
}

int utf8_check(const uint8_t *s, size_t len)
{
	return check(s, len, true);
}
