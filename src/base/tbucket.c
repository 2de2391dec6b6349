/*
 * Token buckets: the level is kept in milli-tokens so that a refill at
 * millisecond resolution is exact for any whole rate (rate tokens a second
 * are rate milli-tokens a millisecond), without floating point.
 */
#include "base/tbucket.h"

/* A take larger than this many tokens is charged as this many: far more
 * than any packet, and small enough that the debt cannot overflow. */
#define TBUCKET_TAKE_MAX (UINT64_C(1) << 40)

void tbucket_init(struct tbucket *t, uint64_t rate, uint64_t now_ms)
{
	t->rate = rate > TBUCKET_RATE_MAX ? TBUCKET_RATE_MAX : rate;
	t->level = (int64_t)(t->rate * 1000u);
	t->last_ms = now_ms;
}

/* Adds what the time since last_ms earned, up to one second's worth. */
static void tbucket_refill(struct tbucket *t, uint64_t now_ms)
{
	int64_t burst = (int64_t)(t->rate * 1000u);
	uint64_t elapsed, room;

	if (now_ms <= t->last_ms)
		return;
	elapsed = now_ms - t->last_ms;
	t->last_ms = now_ms;
	/* room / rate ms fill the bucket; comparing first keeps
	 * elapsed * rate from overflowing after a long quiet time. */
	room = (uint64_t)(burst - t->level);
	if (elapsed >= room / t->rate + 1)
		t->level = burst;
	else
		t->level += (int64_t)(elapsed * t->rate);
	if (t->level > burst)
		t->level = burst;
}

uint64_t tbucket_take(struct tbucket *t, uint64_t n, uint64_t now_ms)
{
	uint64_t debt;

	if (!t->rate)
		return 0;
	tbucket_refill(t, now_ms);
	if (n > TBUCKET_TAKE_MAX)
		n = TBUCKET_TAKE_MAX;
	t->level -= (int64_t)(n * 1000u);
	if (t->level >= 0)
		return 0;
	debt = (uint64_t)(-t->level);
	return (debt + t->rate - 1) / t->rate;
}
