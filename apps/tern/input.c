/* Payload sources of `tern pub` and `tern rr` (see input.h). */
#include "input.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* Reads all of f; binary-safe, so a payload may contain NUL bytes. */
static int read_stream(FILE *f, const char *what, const char *prog,
                       uint8_t **out, size_t *len)
{
	uint8_t *buf = NULL, *bigger;
	size_t cap = 0, n = 0, got;

	do {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 65536;
			if (!(bigger = realloc(buf, cap)))
				goto nomem;
			buf = bigger;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		fprintf(stderr, "%s: reading %s: %s\n", prog, what,
		        strerror(errno));
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
nomem:
	fprintf(stderr, "%s: out of memory reading %s\n", prog, what);
	free(buf);
	return -1;
}

static int read_file(const struct cli_opts *o, uint8_t **out, size_t *len)
{
	FILE *f = fopen(o->file, "rb");
	int rc;

	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", o->prog, o->file,
		        strerror(errno));
		return -1;
	}
	rc = read_stream(f, o->file, o->prog, out, len);
	fclose(f);
	return rc;
}

int input_read(const struct cli_opts *o, uint8_t **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	switch (o->msg_src) {
	case MSG_ARG:
		*len = strlen(o->message);
		if (!*len)
			return 0;
		if (!(*out = malloc(*len))) {
			fprintf(stderr, "%s: out of memory\n", o->prog);
			return -1;
		}
		memcpy(*out, o->message, *len);
		return 0;
	case MSG_FILE: return read_file(o, out, len);
	case MSG_STDIN: return read_stream(stdin, "stdin", o->prog, out, len);
	default: return 0;
	}
}

int input_line(FILE *f, char **line, size_t *cap, size_t *len)
{
	ssize_t n;

	errno = 0;
	n = getline(line, cap, f);
	if (n < 0) {
		if (ferror(f)) {
			fprintf(stderr, "tern pub: reading stdin: %s\n",
			        strerror(errno));
			return -1;
		}
		return 0;
	}
	if (n > 0 && (*line)[n - 1] == '\n')
		n--;
	if (n > 0 && (*line)[n - 1] == '\r')
		n--;
	*len = (size_t)n;
	return 1;
}
