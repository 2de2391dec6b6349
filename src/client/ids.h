/*
 * Sets of packet ids (65536 bits): the ids we use, and the QoS 2 ids
 * received whose PUBREL has not come yet.
 */
#ifndef TERN_CLIENT_IDS_H
#define TERN_CLIENT_IDS_H

#include <stdbool.h>
#include <stdint.h>

static inline bool ids_has(const uint8_t *set, uint16_t id)
{
	return set[id >> 3] & (1u << (id & 7));
}

static inline void ids_set(uint8_t *set, uint16_t id, bool on)
{
	if (on)
		set[id >> 3] |= (uint8_t)(1u << (id & 7));
	else
		set[id >> 3] &= (uint8_t) ~(1u << (id & 7));
}

#endif
