/*
 * Printing a received message for `tern sub` and `tern rr`: the payload
 * alone, -v "topic payload", -F FORMAT or --json, each followed by a
 * newline unless -N.
 */
#ifndef TERN_APPS_OUTPUT_H
#define TERN_APPS_OUTPUT_H

#include "cli_opts.h"
#include "format.h"

/*
 * Formats m as o asks into scratch (reused between calls; the caller frees
 * it with fmt_buf_free) and writes it to stdout, flushed so that a pipe
 * reader sees each message at once. Returns 0, or -1 after printing why
 * (out of memory, or stdout closed).
 */
int output_message(const struct cli_opts *o, const struct fmt_msg *m,
                   struct fmt_buf *scratch);

#endif
