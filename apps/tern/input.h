/*
 * Where `tern pub` and `tern rr` get a payload: -m, -f FILE, -s (all of
 * stdin), -n, and -l (stdin line by line).
 */
#ifndef TERN_APPS_INPUT_H
#define TERN_APPS_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli_opts.h"

/*
 * Reads the one payload of -m, -f, -s or -n into a heap buffer (*out,
 * freed by the caller; NULL for an empty payload). Files and stdin are read
 * as bytes, NULs included. Returns 0, or -1 after printing why to stderr.
 */
int input_read(const struct cli_opts *o, uint8_t **out, size_t *len);

/*
 * Reads the next line of f for -l into *line (grown as needed, owned by the
 * caller) without its "\n" (or "\r\n"). Returns 1 for a line, 0 at the end,
 * -1 after printing a read error.
 */
int input_line(FILE *f, char **line, size_t *cap, size_t *len);

#endif
