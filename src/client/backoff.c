/* Exponential backoff with jitter (see backoff.h). */
#include "client/backoff.h"

uint32_t backoff_delay(const struct backoff *b, unsigned n, uint32_t r)
{
	double base = b->initial_ms;
	uint32_t d, half;

	if (b->initial_ms == 0)
		return 0;
	/* Multiply step by step and stop at the cap: no overflow, and no
	 * libm for pow(). */
	for (unsigned i = 0; i < n && base < b->max_ms; i++)
		base *= b->factor < 1.0 ? 1.0 : b->factor;
	d = base >= b->max_ms ? b->max_ms : (uint32_t)base;
	half = d / 2;
	return half + (uint32_t)((uint64_t)r % ((uint64_t)(d - half) + 1));
}
