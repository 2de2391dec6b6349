/* See file.h. */
#include "base/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

int file_read_text(const char *path, char **out, char *err, size_t errlen)
{
	FILE *f = NULL;
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0, got;
	int rc = TERN_ECONFIG;

	f = fopen(path, "rb");
	if (!f)
		goto io_fail;
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				rc = TERN_ENOMEM;
				goto fail;
			}
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got);
	if (ferror(f))
		goto io_fail;
	buf[len] = '\0';
	if (memchr(buf, '\0', len)) {
		if (err && errlen)
			snprintf(err, errlen, "%s: contains a NUL byte", path);
		goto fail;
	}
	fclose(f);
	*out = buf;
	return 0;
io_fail:
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
fail:
	if (rc == TERN_ENOMEM && err && errlen)
		snprintf(err, errlen, "%s: out of memory", path);
	if (f)
		fclose(f);
	free(buf);
	return rc;
}

int text_each_line(const char *text,
                   int (*fn)(void *ctx, unsigned line, const char *s,
                             size_t len),
                   void *ctx)
{
	const char *s = text, *nl;
	unsigned line;
	int rc;

	for (line = 1; *s; line++) {
		nl = strchr(s, '\n');
		rc = fn(ctx, line, s, nl ? (size_t)(nl - s) : strlen(s));
		if (rc || !nl)
			return rc;
		s = nl + 1;
	}
	return 0;
}
