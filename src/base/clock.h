/* Time sources. Monotonic milliseconds for deadlines; wall clock for logs. */
#ifndef TERN_BASE_CLOCK_H
#define TERN_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds from an arbitrary fixed point; never goes backwards. */
static inline uint64_t clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Seconds since the Unix epoch. */
static inline uint64_t clock_unix_s(void)
{
	return (uint64_t)time(NULL);
}

#endif
