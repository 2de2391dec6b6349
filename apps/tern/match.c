/* Topic matching (see match.h): one level of filter against one level of
 * topic at a time. */
#include "match.h"

#include <string.h>

bool match_topic(const char *filter, const char *topic, size_t len)
{
	const char *t = topic, *end = topic + len;

	if (len && *topic == '$' && (*filter == '+' || *filter == '#'))
		return false;
	for (;;) {
		const char *fsep = strchr(filter, '/');
		size_t flen = fsep ? (size_t)(fsep - filter) : strlen(filter);
		const char *tsep = memchr(t, '/', (size_t)(end - t));
		size_t tlen = tsep ? (size_t)(tsep - t) : (size_t)(end - t);

		/* "#" matches this level and everything below, and also the
		 * parent ("a/#" matches "a"), handled below. */
		if (flen == 1 && *filter == '#')
			return true;
		if (!(flen == 1 && *filter == '+') &&
		    (flen != tlen || memcmp(filter, t, flen) != 0))
			return false;
		if (!fsep || !tsep)
			return !fsep && !tsep
			               ? true
			               : (!tsep && fsep && !strcmp(fsep, "/#"));
		filter = fsep + 1;
		t = tsep + 1;
	}
}
