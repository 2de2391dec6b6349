/*
 * The logger behind log.h. Settings live behind a mutex that is taken only to
 * write a line and to reconfigure, so a reload cannot tear a line; the enabled
 * mask is an atomic so log_enabled() costs a load on hot paths.
 */
#include "base/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint log_types = LOG_ERR | LOG_WARNING | LOG_NOTICE | LOG_INFO;
static unsigned log_dest = LOG_TO_STDERR;
static FILE *log_file;
static char *log_ts_format;
static int log_timestamps = 1;

int log_configure(unsigned dest, const char *file, unsigned types,
                  const char *ts_format, int timestamps)
{
	FILE *f = NULL;
	char *fmt = NULL;

	if ((dest & LOG_TO_FILE) && file) {
		f = fopen(file, "a");
		if (!f)
			return -1;
		setvbuf(f, NULL, _IOLBF, 0);
	}
	if (ts_format && !(fmt = strdup(ts_format))) {
		if (f)
			fclose(f);
		return -1;
	}
	pthread_mutex_lock(&log_mu);
	if (log_file)
		fclose(log_file);
	free(log_ts_format);
	log_file = f;
	log_ts_format = fmt;
	log_dest = dest;
	log_timestamps = timestamps;
	atomic_store(&log_types, types);
	pthread_mutex_unlock(&log_mu);
	return 0;
}

int log_enabled(enum log_level level)
{
	return (atomic_load_explicit(&log_types, memory_order_relaxed) &
	        (unsigned)level) != 0;
}

/* Formats the timestamp prefix into buf; called with log_mu held. */
static size_t log_prefix(char *buf, size_t cap)
{
	time_t now = time(NULL);
	struct tm tm;
	size_t n;

	if (!log_timestamps)
		return 0;
	if (!log_ts_format)
		return (size_t)snprintf(buf, cap, "%lld: ", (long long)now);
	localtime_r(&now, &tm);
	n = strftime(buf, cap - 2, log_ts_format, &tm);
	buf[n++] = ':';
	buf[n++] = ' ';
	return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	size_t n;
	va_list ap;
	int m;

	if (!log_enabled(level))
		return;
	pthread_mutex_lock(&log_mu);
	n = log_prefix(line, sizeof(line));
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m < sizeof(line) - n - 1 ? (size_t)m
	                                      : sizeof(line) - n - 2;
	line[n++] = '\n';
	if (log_dest & LOG_TO_STDOUT)
		fwrite(line, 1, n, stdout), fflush(stdout);
	if (log_dest & LOG_TO_STDERR)
		fwrite(line, 1, n, stderr);
	if ((log_dest & LOG_TO_FILE) && log_file)
		fwrite(line, 1, n, log_file);
	pthread_mutex_unlock(&log_mu);
}

void log_shutdown(void)
{
	pthread_mutex_lock(&log_mu);
	if (log_file)
		fclose(log_file);
	log_file = NULL;
	free(log_ts_format);
	log_ts_format = NULL;
	pthread_mutex_unlock(&log_mu);
}
