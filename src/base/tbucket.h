/*
 * Token buckets for rate limits (max_publish_rate, max_publish_bytes_rate).
 * A bucket earns `rate` tokens a second and holds at most one second's
 * worth, so a client may burst that much after a quiet second. It is
 * refilled from the monotonic clock the caller passes in when tokens are
 * taken: nothing runs per bucket while nobody takes from it (no timer).
 *
 * A take never fails: it may run the bucket into debt, so a message larger
 * than the burst still passes once, and the caller waits until the debt is
 * paid (tbucket_take returns how long). Over time the rate is `rate`.
 *
 * Plain data owned by one thread (a connection's worker); no locking.
 */
#ifndef TERN_BASE_TBUCKET_H
#define TERN_BASE_TBUCKET_H

#include <stdint.h>

/* The largest rate a bucket takes; tbucket_init clamps to it. Keeps a
 * second's worth in milli-tokens far from overflowing int64_t. */
#define TBUCKET_RATE_MAX (UINT64_C(1) << 40)

struct tbucket {
	uint64_t rate;    /* tokens per second; 0 = unlimited */
	int64_t level;    /* milli-tokens (1/1000 token); < 0 is debt */
	uint64_t last_ms; /* clock value of the last refill */
};

/* Sets up a full bucket (one second's worth) at now_ms; rate 0 means
 * unlimited. */
void tbucket_init(struct tbucket *t, uint64_t rate, uint64_t now_ms);

/*
 * Refills for the time since the last call, then takes n tokens. Returns 0
 * when the bucket is not in debt afterwards, else the milliseconds until
 * the debt is paid (at least 1). A clock that goes backwards refills
 * nothing. An unlimited bucket always returns 0.
 */
uint64_t tbucket_take(struct tbucket *t, uint64_t n, uint64_t now_ms);

#endif
