/*
 * Topic name and topic filter rules (MQTT 3.1.1 §4.7, 5.0 §4.7 and §4.8.2
 * for shared subscriptions). Each check is one linear pass with no
 * recursion, so a 65,535-byte topic of '/' costs the same as any other
 * topic of that length.
 */
#include "base/utf8.h"
#include "mqtt/codec_internal.h"

#define SHARE_PREFIX     "$share/"
#define SHARE_PREFIX_LEN 7

int mqtt_topic_name_check(const uint8_t *s, size_t len)
{
	if (len == 0 || len > UINT16_MAX)
		return TERN_EPROTO;
	if (memchr(s, '+', len) || memchr(s, '#', len))
		return TERN_EPROTO;
	return utf8_check_mqtt(s, len);
}

/*
 * Checks a filter that is not a shared subscription: '+' must fill a whole
 * level, '#' must fill the whole last level.
 */
static int plain_filter_check(const uint8_t *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		bool starts = i == 0 || s[i - 1] == '/';
		bool ends = i + 1 == len || s[i + 1] == '/';

		if (s[i] == '+' && !(starts && ends))
			return TERN_EPROTO;
		if (s[i] == '#' && !(starts && i + 1 == len))
			return TERN_EPROTO;
	}
	return 0;
}

int mqtt_topic_filter_check(const uint8_t *s, size_t len)
{
	struct mqtt_str group, filter;
	int rc;

	if (len == 0 || len > UINT16_MAX)
		return TERN_EPROTO;
	rc = utf8_check_mqtt(s, len);
	if (rc < 0)
		return rc;
	rc = mqtt_share_split(s, len, &group, &filter);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return plain_filter_check(filter.p, filter.len);
	return plain_filter_check(s, len);
}

int mqtt_share_split(const uint8_t *s, size_t len, struct mqtt_str *group,
                     struct mqtt_str *filter)
{
	const uint8_t *g, *slash;
	size_t rest;

	if (len < SHARE_PREFIX_LEN || memcmp(s, SHARE_PREFIX, SHARE_PREFIX_LEN))
		return 0;
	if (len > UINT16_MAX)
		return TERN_EPROTO;
	g = s + SHARE_PREFIX_LEN;
	rest = len - SHARE_PREFIX_LEN;
	/* §4.8.2: a non-empty ShareName without '/', '+' or '#', then '/'
	 * and a non-empty Topic Filter. */
	slash = memchr(g, '/', rest);
	if (!slash || slash == g || (size_t)(slash - g) + 1 == rest)
		return TERN_EPROTO;
	if (memchr(g, '+', (size_t)(slash - g)) ||
	    memchr(g, '#', (size_t)(slash - g)))
		return TERN_EPROTO;
	group->p = g;
	group->len = (uint16_t)(slash - g);
	filter->p = slash + 1;
	filter->len = (uint16_t)(rest - (size_t)(slash - g) - 1);
	return 1;
}
