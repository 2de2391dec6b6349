/*
 * Reconnect delays: exponential backoff with jitter. Pure, so tests can
 * check the bounds without waiting.
 */
#ifndef TERN_CLIENT_BACKOFF_H
#define TERN_CLIENT_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint32_t initial_ms; /* 0: reconnecting is off */
	uint32_t max_ms;
	double factor; /* >= 1 */
};

/*
 * The delay before reconnect attempt `n` (0 for the first after a loss):
 * base = min(max_ms, initial_ms * factor^n), then "equal jitter": a value
 * in [base/2, base] picked by r (any 32-bit random number). Spreading the
 * delay keeps a crowd of clients from reconnecting in step after a broker
 * restart; keeping half of it keeps the growth.
 */
uint32_t backoff_delay(const struct backoff *b, unsigned n, uint32_t r);

#endif
