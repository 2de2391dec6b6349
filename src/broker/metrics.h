/*
 * /metrics: the broker's counters and gauges in the Prometheus text
 * exposition format (version 0.0.4), read from the relaxed atomics of
 * struct broker_stats and the sizes of the shared tables. Any worker may
 * call it; it takes broker.sess_mu briefly for the session count.
 */
#ifndef TERN_BROKER_METRICS_H
#define TERN_BROKER_METRICS_H

#include <stddef.h>

struct broker;

/* The Content-Type of the text metrics_render makes. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Renders every metric into a new malloc'd buffer (*out, *len; the caller
 * frees it). Returns 0 or TERN_ENOMEM.
 */
int metrics_render(struct broker *b, char **out, size_t *len);

#endif
