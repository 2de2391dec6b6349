/*
 * Connections per source address, for max_connections_per_address: a
 * count per address string, shared by every worker under one mutex (it is
 * touched once when a connection is accepted and once when it closes, so
 * the lock is never held for long). An address whose count drops to zero
 * is forgotten, so memory follows the addresses connected now, not every
 * address ever seen.
 */
#ifndef TERN_BROKER_ADDRCAP_H
#define TERN_BROKER_ADDRCAP_H

#include <stdbool.h>
#include <stddef.h>

struct addrcap;

/* Creates an empty table. Returns NULL when out of memory. */
struct addrcap *addrcap_new(void);

/* Frees the table; NULL is accepted. */
void addrcap_free(struct addrcap *a);

/*
 * Counts one more connection from `addr` (NUL-terminated) if it has fewer
 * than `limit` (limit >= 0). Returns true when counted; false at the limit
 * or when out of memory (refusing is the safe answer then). Every true
 * needs one addrcap_release().
 */
bool addrcap_take(struct addrcap *a, const char *addr, int limit);

/* Counts one connection from `addr` less. Unknown addresses are ignored. */
void addrcap_release(struct addrcap *a, const char *addr);

/* Connections counted for `addr` now (0 if none). */
size_t addrcap_count(struct addrcap *a, const char *addr);

#endif
