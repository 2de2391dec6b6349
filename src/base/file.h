/* Whole-file reads for the small text files tern loads (ACL, passwords). */
#ifndef TERN_BASE_FILE_H
#define TERN_BASE_FILE_H

#include <stddef.h>

/*
 * Reads the file at path into a NUL-terminated heap buffer (*out, freed by
 * the caller). A file containing a NUL byte is refused, since it cannot be
 * text. Returns 0, TERN_ECONFIG with "PATH: reason" in err, or TERN_ENOMEM.
 */
int file_read_text(const char *path, char **out, char *err, size_t errlen);

/*
 * Calls fn for each line of the NUL-terminated text (without its '\n'),
 * numbered from 1, and stops at the first non-zero return, which it
 * returns. A final line without '\n' counts; an empty text has no lines.
 */
int text_each_line(const char *text,
                   int (*fn)(void *ctx, unsigned line, const char *s,
                             size_t len),
                   void *ctx);

#endif
