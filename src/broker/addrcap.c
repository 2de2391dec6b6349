/*
 * Connections per source address (see addrcap.h): a chained hash of
 * address -> count with a fixed number of buckets. Addresses are short
 * strings ("192.0.2.1", "2001:db8::1"), hashed with FNV-1a.
 */
#include "broker/addrcap.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Enough for tens of thousands of distinct addresses at short chains. */
#define ADDRCAP_BUCKETS 4096

struct entry {
	struct entry *next;
	size_t count;
	char addr[]; /* NUL-terminated */
};

struct addrcap {
	pthread_mutex_t mu;
	struct entry *buckets[ADDRCAP_BUCKETS];
};

static size_t bucket_of(const char *addr)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % ADDRCAP_BUCKETS;
}

/* The link that points at addr's entry (or at the NULL ending its chain);
 * caller holds the mutex. */
static struct entry **find(struct addrcap *a, const char *addr)
{
	struct entry **pe = &a->buckets[bucket_of(addr)];

	while (*pe && strcmp((*pe)->addr, addr) != 0)
		pe = &(*pe)->next;
	return pe;
}

struct addrcap *addrcap_new(void)
{
	struct addrcap *a = calloc(1, sizeof(*a));

	if (a)
		pthread_mutex_init(&a->mu, NULL);
	return a;
}

void addrcap_free(struct addrcap *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < ADDRCAP_BUCKETS; i++) {
		while (a->buckets[i]) {
			struct entry *e = a->buckets[i];

			a->buckets[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&a->mu);
	free(a);
}

bool addrcap_take(struct addrcap *a, const char *addr, int limit)
{
	struct entry **pe, *e;
	bool ok = false;
	size_t len;

	if (limit <= 0)
		return false;
	pthread_mutex_lock(&a->mu);
	pe = find(a, addr);
	if (*pe) {
		if ((*pe)->count < (size_t)limit) {
			(*pe)->count++;
			ok = true;
		}
	} else {
		len = strlen(addr);
		e = malloc(sizeof(*e) + len + 1);
		if (e) {
			e->next = NULL;
			e->count = 1;
			memcpy(e->addr, addr, len + 1);
			*pe = e;
			ok = true;
		}
	}
	pthread_mutex_unlock(&a->mu);
	return ok;
}

void addrcap_release(struct addrcap *a, const char *addr)
{
	struct entry **pe, *e;

	pthread_mutex_lock(&a->mu);
	pe = find(a, addr);
	e = *pe;
	if (e && --e->count == 0) {
		*pe = e->next;
		free(e);
	}
	pthread_mutex_unlock(&a->mu);
}

size_t addrcap_count(struct addrcap *a, const char *addr)
{
	struct entry *e;
	size_t n;

	pthread_mutex_lock(&a->mu);
	e = *find(a, addr);
	n = e ? e->count : 0;
	pthread_mutex_unlock(&a->mu);
	return n;
}
