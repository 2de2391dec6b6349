/* Message output of `tern sub` and `tern rr` (see output.h). */
#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* -v: "topic payload"; an empty payload prints as "(null)", as
 * mosquitto_sub -v does, so that the line still has two fields. */
static int render_verbose(const struct fmt_msg *m, struct fmt_buf *b)
{
	struct fmt_msg plain = *m;

	if (!m->payload_len) {
		plain.payload = (const uint8_t *)"(null)";
		plain.payload_len = 6;
	}
	return fmt_render("%t %p", &plain, b, NULL, 0);
}

static int render(const struct cli_opts *o, const struct fmt_msg *m,
                  struct fmt_buf *b)
{
	if (o->format)
		return fmt_render(o->format, m, b, NULL, 0);
	if (o->json)
		return fmt_json(m, false, b);
	if (o->verbose)
		return render_verbose(m, b);
	return fmt_render("%p", m, b, NULL, 0);
}

int output_message(const struct cli_opts *o, const struct fmt_msg *m,
                   struct fmt_buf *scratch)
{
	scratch->len = 0;
	if (render(o, m, scratch) != 0 ||
	    (!o->no_eol && fmt_render("\\n", m, scratch, NULL, 0) != 0)) {
		fprintf(stderr, "%s: out of memory formatting a message\n",
		        o->prog);
		return -1;
	}
	if ((scratch->len &&
	     fwrite(scratch->data, 1, scratch->len, stdout) != scratch->len) ||
	    fflush(stdout) != 0) {
		if (!o->quiet)
			fprintf(stderr, "%s: writing output: %s\n", o->prog,
			        strerror(errno));
		return -1;
	}
	return 0;
}
