/*
 * Logging: one line per event, Mosquitto-style text ("1764123456: New client
 * connected from ..."). Thread-safe; the line is formatted into a local
 * buffer and written with one call, so lines from workers never interleave.
 *
 * The logger's settings are process-wide (set at start-up and on SIGHUP),
 * which is the one piece of global state outside signal handling.
 */
#ifndef TERN_BASE_LOG_H
#define TERN_BASE_LOG_H

#include <stdarg.h>

/* Message classes; the bit positions match config's log_type bits. */
enum log_level {
	LOG_ERR = 1 << 0,
	LOG_WARNING = 1 << 1,
	LOG_NOTICE = 1 << 2,
	LOG_INFO = 1 << 3,
	LOG_DEBUG = 1 << 4,
	LOG_SUBSCRIBE = 1 << 5,
	LOG_UNSUBSCRIBE = 1 << 6,
};

/* Destinations (bits), matching config's log_dest bits. */
enum { LOG_TO_STDOUT = 1 << 0, LOG_TO_STDERR = 1 << 1, LOG_TO_FILE = 1 << 2 };

/*
 * Sets where and what to log. `types` is a mask of enum log_level; `file`
 * is used with LOG_TO_FILE (opened for append; returns -1 with errno if it
 * cannot be). `ts_format` is a strftime format or NULL for Unix seconds;
 * `timestamps` false omits them. Replaces earlier settings atomically.
 */
int log_configure(unsigned dest, const char *file, unsigned types,
                  const char *ts_format, int timestamps);

/* Whether messages of `level` are currently written (cheap). */
int log_enabled(enum log_level level);

/* Writes one line (no trailing newline needed) if `level` is enabled. */
void log_msg(enum log_level level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Closes the log file, if any. */
void log_shutdown(void);

#endif
