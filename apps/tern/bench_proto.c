/*
 * `tern bench`, the MQTT side of a connection: CONNECT and SUBSCRIBE, the
 * publishers' PUBLISH packets (encoded with tern's codec, src/mqtt/, into
 * the connection's output buffer, the payload stamped in place), QoS 1 and
 * 2 acknowledgements both ways, and every packet the broker sends, decoded
 * and validated by the same codec.
 */
#include <string.h>

#include "bench.h"

/*
 * MQTT topic matching (MQTT 4.7), used only to count the deliveries to
 * expect: '+' matches one level, '#' the rest, and wildcards at the first
 * level do not match topics that begin with '$'.
 */
bool bench_topic_match(const char *f, const char *t)
{
	if ((*f == '+' || *f == '#') && *t == '$')
		return false;
	for (;;) {
		if (f[0] == '#')
			return true;
		if (f[0] == '+') {
			while (*t && *t != '/')
				t++;
			f++;
		} else {
			while (*f && *f != '/' && *f == *t) {
				f++;
				t++;
			}
			if ((*f && *f != '/') || (*t && *t != '/'))
				return false;
		}
		if (!*f && !*t)
			return true;
		/* "a/#" also matches "a". */
		if (!*t && f[0] == '/' && f[1] == '#' && !f[2])
			return true;
		if (!*f || !*t)
			return false;
		f++;
		t++;
	}
}

const char *bench_share_split(const char *f, size_t *glen)
{
	static const char pre[] = "$share/";
	const char *g = f + sizeof(pre) - 1, *slash;

	*glen = 0;
	if (strncmp(f, pre, sizeof(pre) - 1) != 0)
		return f;
	slash = strchr(g, '/');
	if (!slash || slash == g)
		return f;
	*glen = (size_t)(slash - g);
	return slash + 1;
}

/* Encodes p into c's output buffer; fails the connection if it cannot. */
int bench_proto_send(struct load *L, struct conn *c,
                     const struct mqtt_packet *p)
{
	int n = mqtt_encode(p, (uint8_t)L->o.version, c->out.p + c->out.tail,
	                    bench_buf_room(&c->out));

	if (n < 0) {
		bench_conn_fail(L, c, tern_strerror(n));
		return -1;
	}
	c->out.tail += (size_t)n;
	return 0;
}

static int send_ack(struct load *L, struct conn *c, uint8_t type, uint16_t id)
{
	struct mqtt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = type;
	p.u.ack.packet_id = id;
	return bench_proto_send(L, c, &p);
}

static bool id_get(const uint64_t *m, uint16_t id)
{
	return m[id >> 6] >> (id & 63) & 1;
}

static void id_put(uint64_t *m, uint16_t id, bool on)
{
	if (on)
		m[id >> 6] |= 1ull << (id & 63);
	else
		m[id >> 6] &= ~(1ull << (id & 63));
}

/* A packet id used by no message in flight; one exists as window < 65535. */
static uint16_t id_alloc(struct conn *c)
{
	for (;;) {
		uint16_t id = c->next_id;

		c->next_id = (uint16_t)(id == 65535 ? 1 : id + 1);
		if (!id_get(c->wait_ack, id) && !id_get(c->wait_comp, id))
			return id;
	}
}

bool bench_pub_can_send(const struct load *L, struct conn *c)
{
	if (c->state != ST_READY)
		return false;
	if (L->o.qos > 0 && c->inflight >= c->window)
		return false;
	/* Over WebSocket, framed bytes count against the same budget. */
	if (c->ws &&
	    bench_conn_pending(c) + c->pkt_size + ACK_ROOM > c->out.cap)
		return false;
	return bench_buf_room(&c->out) >= c->pkt_size + ACK_ROOM;
}

/* Appends one PUBLISH stamped with `stamp` to c's output. */
static void pub_send(struct load *L, struct conn *c, uint64_t stamp)
{
	struct mqtt_publish p;
	uint8_t *dst = c->out.p + c->out.tail;
	int n;

	memset(&p, 0, sizeof(p));
	p.qos = (uint8_t)L->o.qos;
	p.topic.p = (const uint8_t *)c->topic;
	p.topic.len = c->topic_len;
	p.payload = L->payload;
	p.payload_len = L->o.payload;
	if (p.qos)
		p.packet_id = id_alloc(c);
	n = mqtt_encode_publish_head(&p, (uint8_t)L->o.version, dst,
	                             c->out.cap - c->out.tail);
	if (n < 0) {
		bench_conn_fail(L, c, tern_strerror(n));
		return;
	}
	memcpy(dst + n, L->payload, L->o.payload);
	bench_put_le64(dst + n, stamp);
	bench_put_le32(dst + n + 8, L->o.id_base + c->idx);
	bench_put_le32(dst + n + 12, c->seq);
	c->out.tail += (size_t)n + L->o.payload;
	c->seq++;
	c->published++;
	if (p.qos) {
		id_put(c->wait_ack, p.packet_id, true);
		c->inflight++;
	}
}

/*
 * Sends what publisher c may send now. Without a rate that is as much as
 * the window and the output buffer allow, stamped with the current time.
 * With a rate the load is open-loop: message k is due at start + k x
 * period whatever happened before, and is stamped with that time, not the
 * time it left. A publisher held back by the window, the socket or the
 * broker sends its backlog as soon as it can, each message stamped with
 * its due time, so the wait counts as latency instead of being hidden
 * (no coordinated omission).
 */
void bench_pub_fill(struct load *L, struct conn *c, uint64_t now)
{
	while (bench_pub_can_send(L, c)) {
		uint64_t stamp;

		if (c->quota && c->published >= c->quota)
			return;
		if (L->o.rate > 0) {
			if (c->due > now || c->due >= L->t_end)
				return;
			stamp = c->due;
			c->due += L->period;
			bench_hist_add(&L->send_lag, now - stamp);
		} else {
			stamp = bench_now();
			if (stamp >= L->t_end)
				return;
		}
		pub_send(L, c, stamp);
	}
}

static void on_connack(struct load *L, struct conn *c,
                       const struct mqtt_connack *ca)
{
	struct mqtt_packet p;
	struct mqtt_sub_entry e;
	char why[64];

	if (c->state != ST_CONNACK) {
		bench_conn_fail(L, c, "unexpected CONNACK");
		return;
	}
	if (ca->reason != 0) {
		snprintf(why, sizeof(why), "CONNACK refused: 0x%02x",
		         ca->reason);
		bench_conn_fail(L, c, why);
		return;
	}
	if (ca->props.present & MQTT_PBIT(MQTT_PROP_RECEIVE_MAXIMUM) &&
	    ca->props.receive_maximum < c->window)
		c->window = ca->props.receive_maximum;
	if (c->role == ROLE_IDLE) {
		uint64_t now = bench_now();

		bench_hist_add(&L->setup_lat, now - c->t_open);
		L->ready++;
		L->t_all_ready = now;
		c->state = ST_READY;
		return;
	}
	if (c->role == ROLE_PUB) {
		L->ready++;
		c->state = ST_READY;
		return;
	}
	memset(&p, 0, sizeof(p));
	memset(&e, 0, sizeof(e));
	e.filter.p = (const uint8_t *)c->topic;
	e.filter.len = c->topic_len;
	e.qos = (uint8_t)L->o.qos;
	p.type = MQTT_SUBSCRIBE;
	p.u.subscribe.packet_id = 1;
	p.u.subscribe.list = &e;
	p.u.subscribe.count = 1;
	if (bench_proto_send(L, c, &p) == 0)
		c->state = ST_SUBACK;
}

static void on_suback(struct load *L, struct conn *c,
                      const struct mqtt_suback *s)
{
	if (c->state != ST_SUBACK || s->count != 1 || s->codes[0] >= 0x80) {
		bench_conn_fail(L, c, "subscription refused");
		return;
	}
	L->ready++;
	c->state = ST_READY;
}

/* PUBACK, PUBREC and PUBCOMP of our own publishes. */
static void on_pub_ack(struct load *L, struct conn *c, uint8_t type,
                       uint16_t id)
{
	bool want_rec = L->o.qos == 2;

	if (type == MQTT_PUBCOMP) {
		if (L->o.qos != 2 || !id_get(c->wait_comp, id))
			goto bad;
		id_put(c->wait_comp, id, false);
	} else {
		if (want_rec != (type == MQTT_PUBREC) ||
		    !id_get(c->wait_ack, id))
			goto bad;
		id_put(c->wait_ack, id, false);
		if (type == MQTT_PUBREC) {
			id_put(c->wait_comp, id, true);
			send_ack(L, c, MQTT_PUBREL, id);
			return;
		}
	}
	c->inflight--;
	c->completed++;
	return;
bad:
	bench_conn_fail(L, c, "acknowledgement for a packet id not in flight");
}

static void on_packet(struct load *L, struct conn *c,
                      const struct mqtt_packet *p, uint64_t now)
{
	switch (p->type) {
	case MQTT_CONNACK: on_connack(L, c, &p->u.connack); return;
	case MQTT_SUBACK: on_suback(L, c, &p->u.suback); return;
	case MQTT_PINGRESP: return;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		if (c->role == ROLE_PUB) {
			on_pub_ack(L, c, p->type, p->u.ack.packet_id);
			return;
		}
		break;
	case MQTT_PUBREL:
		if (c->role == ROLE_SUB) {
			send_ack(L, c, MQTT_PUBCOMP, p->u.ack.packet_id);
			return;
		}
		break;
	case MQTT_PUBLISH:
		if (c->role == ROLE_SUB && c->state == ST_READY) {
			bench_stats_deliver(L, c, p->u.publish.payload,
			                    p->u.publish.payload_len, now);
			if (p->u.publish.qos)
				send_ack(L, c,
				         p->u.publish.qos == 1 ? MQTT_PUBACK
				                               : MQTT_PUBREC,
				         p->u.publish.packet_id);
			return;
		}
		break;
	case MQTT_DISCONNECT:
		bench_conn_fail(L, c, "DISCONNECT from the broker");
		return;
	}
	bench_conn_fail(L, c, "unexpected packet");
}

/* Handles every complete packet in c's input while output has room. */
void bench_proto_parse(struct load *L, struct conn *c, uint64_t now)
{
	while (c->state != ST_DEAD && bench_buf_len(&c->in) > 0) {
		const uint8_t *b;
		struct mqtt_fixed fh;
		struct mqtt_packet p;
		struct mqtt_error err;
		int n;

		if (bench_buf_room(&c->out) < ACK_ROOM) {
			c->blocked = true;
			return;
		}
		b = c->in.p + c->in.head;
		n = mqtt_fixed_header(b, bench_buf_len(&c->in), &fh);
		if (n == TERN_EAGAIN)
			break;
		if (n < 0 || n + (size_t)fh.remaining > c->in.cap) {
			bench_conn_fail(L, c, "bad or oversized packet");
			return;
		}
		if (bench_buf_len(&c->in) < n + (size_t)fh.remaining)
			break;
		if (mqtt_decode(&fh, b + n, fh.remaining, (uint8_t)L->o.version,
		                &p, &err) != 0) {
			bench_conn_fail(L, c, err.what);
			return;
		}
		on_packet(L, c, &p, now);
		c->in.head += (size_t)n + fh.remaining;
	}
	c->blocked = false;
	bench_buf_room(&c->in);
}

/* Queues CONNECT: the first packet of every connection. */
void bench_proto_connect(struct load *L, struct conn *c)
{
	struct mqtt_packet p;
	double life = L->o.duration + L->o.drain + SETUP_NS / NS_PER_S + 60;

	/* A run without a set end (`sub` until a signal, -n): the longest
	 * keepalive, as the loop sends no PINGREQ. */
	if (L->o.duration == 0)
		life = 65535;
	if (c->role == ROLE_IDLE)
		life = IDLE_KEEPALIVE;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNECT;
	p.u.connect.version = (uint8_t)L->o.version;
	/* --persistent: the broker keeps the session (and, with QoS > 0, the
	 * messages of a subscriber) as a durable client's; MQTT 5 says for
	 * how long. */
	p.u.connect.clean = !L->o.persistent || c->role == ROLE_IDLE;
	if (!p.u.connect.clean && L->o.version == MQTT_V5) {
		p.u.connect.props.present |=
		        MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY);
		p.u.connect.props.session_expiry = L->o.session_expiry;
	}
	p.u.connect.keepalive = (uint16_t)(life > 65535 ? 65535 : life);
	p.u.connect.client_id.p = (const uint8_t *)c->id;
	p.u.connect.client_id.len = (uint16_t)strlen(c->id);
	if (bench_proto_send(L, c, &p) == 0)
		c->state = ST_CONNACK;
}
