/*
 * Acknowledgements that wait for the durable store (persist.h): with
 * `persistence_sync always`, a PUBACK, PUBREC or PUBCOMP promises that the
 * message (or the QoS 2 state) is on disk, so it is held until the round
 * holding those writes has committed. Acks of one connection leave in the
 * order their packets arrived, held or not (MQTT 4.6).
 *
 * A client that keeps publishing while its acks are held (the store is
 * slow or full) stops being read once CONN_ACKS_MAX are held, so memory
 * stays bounded; MQTT 5 clients usually stop earlier, at our Receive
 * Maximum.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "base/error.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/worker.h"

/* Held acks at which the connection stops being read. */
#define CONN_ACKS_MAX 4096u

struct held_ack {
	uint64_t ticket;
	uint8_t *raw; /* an encoded packet (SUBACK, UNSUBACK), or NULL */
	uint32_t rawlen;
	uint16_t pid;
	uint8_t type;
	uint8_t reason;
};

static int ack_grow(struct conn *c)
{
	uint32_t ncap = c->ack_cap ? c->ack_cap * 2 : 16, i;
	struct held_ack *v = malloc(ncap * sizeof(*v));

	if (!v)
		return TERN_ENOMEM;
	for (i = 0; i < c->nacks; i++)
		v[i] = c->acks[(c->ack_head + i) % c->ack_cap];
	free(c->acks);
	c->acks = v;
	c->ack_cap = ncap;
	c->ack_head = 0;
	return 0;
}

/* Appends an entry to the ring; NULL after closing the connection. */
static struct held_ack *ack_push(struct conn *c, uint64_t ticket)
{
	struct worker *w = c->w;
	struct held_ack *a;

	if (c->nacks == c->ack_cap && ack_grow(c) != 0) {
		/* Sending it early would break the promise; the client
		 * resends after reconnecting. */
		conn_close(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return NULL;
	}
	a = &c->acks[(c->ack_head + c->nacks++) % c->ack_cap];
	memset(a, 0, sizeof(*a));
	a->ticket = ticket;
	if (ticket)
		STAT_ADD(w->b, acks_held, 1);
	if (!c->in_ackwait) {
		c->in_ackwait = true;
		c->ackwait_next = w->ackwait;
		w->ackwait = c;
	}
	if (c->nacks >= CONN_ACKS_MAX && !c->ack_paused) {
		c->ack_paused = true;
		loop_modify(w->loop, &c->io, c->io.events & ~(uint32_t)EPOLLIN);
	}
	return a;
}

void conn_ack_send(struct conn *c, uint8_t type, uint16_t pid, uint8_t reason,
                   uint64_t ticket)
{
	struct held_ack *a;

	if (!ticket && !c->nacks) {
		conn_send_ack(c, type, pid, reason);
		return;
	}
	if (!(a = ack_push(c, ticket)))
		return;
	a->pid = pid;
	a->type = type;
	a->reason = reason;
}

void conn_ack_send_packet(struct conn *c, const struct mqtt_packet *p,
                          uint64_t ticket)
{
	size_t n;
	uint8_t *raw;
	struct held_ack *a;
	int rc;

	if (!ticket && !c->nacks) {
		conn_send(c, p);
		return;
	}
	n = mqtt_encoded_size(p, c->version);
	raw = malloc(n);
	if (!raw || (rc = mqtt_encode(p, c->version, raw, n)) < 0) {
		free(raw);
		conn_close(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
		return;
	}
	if (!(a = ack_push(c, ticket))) {
		free(raw);
		return;
	}
	a->raw = raw;
	a->rawlen = (uint32_t)rc;
}

/* Queues a held encoded packet for writing. */
static void ack_send_raw(struct conn *c, struct held_ack *a)
{
	uint8_t *dst = outq_reserve(&c->oq, a->rawlen);

	if (dst) {
		memcpy(dst, a->raw, a->rawlen);
		outq_commit(&c->oq, a->rawlen, a->rawlen);
		STAT_ADD(c->w->b, msgs_sent, 1);
		worker_want_flush(c->w, c);
	}
	free(a->raw);
	a->raw = NULL;
}

bool conn_ack_release(struct conn *c, uint64_t committed)
{
	while (c->nacks && c->acks[c->ack_head].ticket <= committed) {
		struct held_ack *a = &c->acks[c->ack_head];

		if (a->raw)
			ack_send_raw(c, a);
		else
			conn_send_ack(c, a->type, a->pid, a->reason);
		c->ack_head = (c->ack_head + 1) % c->ack_cap;
		c->nacks--;
	}
	if (c->ack_paused && c->nacks < CONN_ACKS_MAX / 2) {
		c->ack_paused = false;
		conn_resume(c);
	}
	return c->nacks != 0;
}

void conn_ack_drop(struct conn *c)
{
	struct conn **pp;

	if (c->in_ackwait) {
		for (pp = &c->w->ackwait; *pp; pp = &(*pp)->ackwait_next)
			if (*pp == c) {
				*pp = c->ackwait_next;
				break;
			}
		c->in_ackwait = false;
	}
	for (; c->nacks; c->nacks--) {
		free(c->acks[c->ack_head].raw);
		c->ack_head = (c->ack_head + 1) % c->ack_cap;
	}
	free(c->acks);
	c->acks = NULL;
	c->ack_cap = 0;
	c->ack_head = 0;
}
