/*
 * Outgoing messages and the FIFO lists that hold them: the offline queue
 * (not yet handed to a connection) and the inflight list (QoS 1/2 sent,
 * waiting for PUBACK / PUBREC / PUBCOMP, in the order sent). A message owns
 * copies of everything publish was given.
 */
#ifndef TERN_CLIENT_OMSG_H
#define TERN_CLIENT_OMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqtt/packet.h"
#include "tern/tern.h"

enum omsg_state {
	OM_QUEUED,  /* in the offline queue */
	OM_PUBLISH, /* PUBLISH sent, waiting for PUBACK or PUBREC */
	OM_PUBREL,  /* PUBREL sent, waiting for PUBCOMP (QoS 2) */
};

struct omsg {
	struct omsg *next;
	tern_token token;
	uint16_t packet_id; /* while inflight */
	uint8_t qos;
	bool retain;
	bool sent; /* a PUBLISH went out once: DUP when sent again */
	uint8_t state;
	char *topic;
	uint16_t topic_len;
	uint8_t *payload;
	size_t len;
	/* v5: owned copies behind props' pointers. */
	struct mqtt_props props;
	uint8_t *owned; /* one block: strings, correlation data, user props */
};

struct omsg_list {
	struct omsg *head, *tail;
	size_t count;
};

/*
 * Makes a message from publish's arguments, checking the topic (a valid
 * topic name), QoS and properties (valid UTF-8). Returns 0 and *out, or
 * TERN_EINVAL, TERN_EUTF8, TERN_ENOMEM.
 */
int omsg_new(const char *topic, const void *payload, size_t len, int qos,
             bool retain, const struct tern_props *props, struct omsg **out);
void omsg_free(struct omsg *m);

/*
 * Encodes the user properties as they go on the wire (0x26, key, value),
 * into a malloc'd block. Returns 0 (with *out NULL when n is 0), TERN_EUTF8
 * or TERN_ENOMEM.
 */
int omsg_user_props(const struct tern_user_prop *up, size_t n, uint8_t **out,
                    uint32_t *len, uint32_t *count);

/* Fills p (zeroed) from the public props; pointers refer to `owned`,
 * allocated here (free it). Returns 0, TERN_EUTF8, TERN_EINVAL, ENOMEM. */
int omsg_props(const struct tern_props *in, struct mqtt_props *p,
               uint8_t **owned);

void omsg_push(struct omsg_list *l, struct omsg *m);
void omsg_push_front(struct omsg_list *l, struct omsg *m);
struct omsg *omsg_pop(struct omsg_list *l);
/* Removes and returns the message with packet id `id`, or NULL. */
struct omsg *omsg_take_id(struct omsg_list *l, uint16_t id);
struct omsg *omsg_find_id(struct omsg_list *l, uint16_t id);

#endif
