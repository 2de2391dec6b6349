/*
 * Tests for the client's connection logic (src/client/conn.c, client.c,
 * loop.c) against a fake server speaking raw bytes on a loopback listener,
 * all in one thread: the test drives the client with
 * tern_client_loop_once() while it reads and writes the server's side, so
 * nothing depends on scheduling. The fake server encodes and decodes with
 * the shared codec, or writes hand-made bytes where the point is that they
 * are wrong.
 *
 * Covered: malformed and refusing CONNACKs, a malformed PUBLISH, a packet
 * above maximum_packet_size, keepalive detecting a silent server, the
 * offline queue bound under each policy, the QoS 2 exchanges both ways
 * (exactly-once delivery of a repeated PUBLISH), retransmission with DUP
 * after a reconnect with and without a session, the inflight window, topic
 * aliases, resubscription, and blocking calls refused in callbacks.
 */
/* cmocka needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "mqtt/packet.h"
#include "tern/tern.h"

#define WAIT_MS 3000 /* the longest any step may take */

struct fake {
	int lfd, sfd, port;
	uint8_t in[1 << 17]; /* bytes from the client */
	size_t len;
	uint8_t body[1 << 17]; /* the last packet read, decoded from here */
	uint8_t version;
};

/* What the callbacks saw. */
static struct {
	int nconn, conn_rc, conn_reason;
	bool sp;
	char why[256];
	int ndisc, disc_rc, disc_reason;
	int nmsg;
	char topic[128], payload[256];
	int qos, packet_id, alias;
	char content_type[32], up_key[16], up_value[16];
	size_t corr_len, nup;
	int npub;
	tern_token pub_token[64];
	int pub_rc[64], pub_reason[64];
	int nsub;
	uint8_t codes[8];
	int blocking_rc;
} ev;

static struct fake F;

static void on_connect(tern_client *c, int rc, int reason, bool sp,
                       const char *why, void *ud)
{
	(void)c;
	(void)ud;
	ev.nconn++;
	ev.conn_rc = rc;
	ev.conn_reason = reason;
	ev.sp = sp;
	snprintf(ev.why, sizeof(ev.why), "%s", why);
}

static void on_disconnect(tern_client *c, int rc, int reason, void *ud)
{
	(void)c;
	(void)ud;
	ev.ndisc++;
	ev.disc_rc = rc;
	ev.disc_reason = reason;
}

static void on_message(tern_client *c, const struct tern_message *m, void *ud)
{
	(void)ud;
	ev.nmsg++;
	snprintf(ev.topic, sizeof(ev.topic), "%s", m->topic);
	snprintf(ev.payload, sizeof(ev.payload), "%.*s", (int)m->payload_len,
	         (const char *)m->payload);
	ev.qos = m->qos;
	ev.packet_id = m->packet_id;
	ev.alias = m->topic_alias;
	if (m->props->content_type)
		snprintf(ev.content_type, sizeof(ev.content_type), "%s",
		         m->props->content_type);
	ev.corr_len = m->props->correlation_len;
	ev.nup = m->props->user_prop_count;
	if (ev.nup) {
		snprintf(ev.up_key, sizeof(ev.up_key), "%s",
		         m->props->user_props[0].key);
		snprintf(ev.up_value, sizeof(ev.up_value), "%s",
		         m->props->user_props[0].value);
	}
	/* A blocking call from a callback must be refused, not hang. */
	ev.blocking_rc = tern_client_publish_wait(c, "x", "", 0, 1, false, NULL,
	                                          100, NULL);
}

static void on_publish(tern_client *c, tern_token t, int rc, int reason,
                       void *ud)
{
	(void)c;
	(void)ud;
	if (ev.npub < 64) {
		ev.pub_token[ev.npub] = t;
		ev.pub_rc[ev.npub] = rc;
		ev.pub_reason[ev.npub] = reason;
	}
	ev.npub++;
}

/* With chain > 0, every completion publishes the next message. */
static int chain;

static void on_publish_chain(tern_client *c, tern_token t, int rc, int reason,
                             void *ud)
{
	on_publish(c, t, rc, reason, ud);
	if (chain > 0 && rc == 0) {
		chain--;
		assert_int_equal(tern_client_publish(c, "c", "x", 1, 0, false,
		                                     NULL, NULL),
		                 0);
	}
}

static void on_subscribe(tern_client *c, tern_token t, const uint8_t *codes,
                         size_t n, void *ud)
{
	(void)c;
	(void)t;
	(void)ud;
	ev.nsub++;
	memcpy(ev.codes, codes, n < 8 ? n : 8);
}

static int setup(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);

	(void)state;
	memset(&ev, 0, sizeof(ev));
	memset(&F, 0, sizeof(F));
	F.sfd = -1;
	F.version = MQTT_V5;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	F.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(F.lfd >= 0);
	assert_int_equal(bind(F.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(F.lfd, 8), 0);
	assert_int_equal(getsockname(F.lfd, (struct sockaddr *)&a, &alen), 0);
	F.port = ntohs(a.sin_port);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (F.sfd >= 0)
		close(F.sfd);
	close(F.lfd);
	return 0;
}

static tern_client *client(struct tern_options *o)
{
	char url[64], err[256] = "";
	tern_client *c;

	snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", F.port);
	o->url = url;
	o->cb.on_connect = on_connect;
	o->cb.on_disconnect = on_disconnect;
	o->cb.on_message = on_message;
	o->cb.on_publish = on_publish;
	o->cb.on_subscribe = on_subscribe;
	F.version = (uint8_t)o->version;
	c = tern_client_new(o, err, sizeof(err));
	if (c == NULL)
		fail_msg("tern_client_new: %s", err);
	return c;
}

static void opts(struct tern_options *o, int version)
{
	tern_options_init(o);
	o->version = version;
	o->reconnect_initial_ms = 0;
	o->client_id = "t1";
}

/* Drives the client for about ms milliseconds. */
static void drive(tern_client *c, int ms)
{
	uint64_t end = clock_ms() + (uint64_t)ms;

	while (clock_ms() < end)
		assert_int_equal(tern_client_loop_once(c, 5), 0);
}

/* Drives the client until *flag is non-zero (or fails the test). */
#define DRIVE_UNTIL(c, cond)                                                   \
	do {                                                                   \
		uint64_t end_ = clock_ms() + WAIT_MS;                          \
		while (!(cond) && clock_ms() < end_)                           \
			tern_client_loop_once((c), 5);                         \
		if (!(cond))                                                   \
			fail_msg("timed out waiting for %s", #cond);           \
	} while (0)

static void fake_accept(tern_client *c)
{
	uint64_t end = clock_ms() + WAIT_MS;

	if (F.sfd >= 0)
		close(F.sfd);
	F.sfd = -1;
	F.len = 0;
	while (F.sfd < 0 && clock_ms() < end) {
		tern_client_loop_once(c, 5);
		F.sfd = accept4(F.lfd, NULL, NULL, SOCK_NONBLOCK);
	}
	if (F.sfd < 0)
		fail_msg("the client never connected");
}

/* Reads the next packet from the client into *p (decoded from F.body).
 * Returns its type, or 0 when the client closed the connection. */
static int fake_read(tern_client *c, struct mqtt_packet *p)
{
	uint64_t end = clock_ms() + WAIT_MS;

	for (;;) {
		struct mqtt_fixed fh;
		struct mqtt_error err;
		int n = mqtt_fixed_header(F.in, F.len, &fh);
		ssize_t k;

		if (n > 0 && F.len >= n + fh.remaining) {
			memcpy(F.body, F.in + n, fh.remaining);
			if (mqtt_decode(&fh, F.body, fh.remaining, F.version, p,
			                &err) < 0)
				fail_msg("client sent a bad %s: %s",
				         mqtt_type_name(fh.type), err.what);
			memmove(F.in, F.in + n + fh.remaining,
			        F.len - n - fh.remaining);
			F.len -= n + fh.remaining;
			return p->type;
		}
		k = read(F.sfd, F.in + F.len, sizeof(F.in) - F.len);
		if (k == 0)
			return 0;
		if (k > 0) {
			F.len += (size_t)k;
			continue;
		}
		if (errno != EAGAIN)
			return 0;
		if (clock_ms() > end)
			fail_msg("no packet from the client");
		tern_client_loop_once(c, 5);
	}
}

/* Expects a packet of `type` next. */
static void expect(tern_client *c, struct mqtt_packet *p, int type)
{
	int got = fake_read(c, p);

	if (got != type)
		fail_msg("expected %s, got %s", mqtt_type_name((uint8_t)type),
		         got ? mqtt_type_name((uint8_t)got) : "close");
}

static void fake_write(const void *b, size_t n)
{
	assert_int_equal(write(F.sfd, b, n), (ssize_t)n);
}

static void fake_send(const struct mqtt_packet *p)
{
	uint8_t b[4096];
	int n = mqtt_encode(p, F.version, b, sizeof(b));

	assert_true(n > 0);
	fake_write(b, (size_t)n);
}

static void send_connack(bool sp, const struct mqtt_props *props)
{
	struct mqtt_packet p = {.type = MQTT_CONNACK};

	p.u.connack.session_present = sp;
	if (props)
		p.u.connack.props = *props;
	fake_send(&p);
}

static void send_ack(int type, uint16_t id)
{
	struct mqtt_packet p = {.type = (uint8_t)type};

	p.u.ack.packet_id = id;
	fake_send(&p);
}

/* Accepts, reads CONNECT, answers with CONNACK, waits for on_connect. */
static void handshake(tern_client *c, bool sp, const struct mqtt_props *pr)
{
	struct mqtt_packet p;
	int before = ev.nconn;

	fake_accept(c);
	expect(c, &p, MQTT_CONNECT);
	send_connack(sp, pr);
	DRIVE_UNTIL(c, ev.nconn > before);
	assert_int_equal(ev.conn_rc, 0);
	assert_true(tern_client_is_connected(c));
}

static tern_client *connected(int version, struct tern_options *o)
{
	struct tern_options d;
	tern_client *c;

	if (o == NULL) {
		opts(&d, version);
		o = &d;
	}
	c = client(o);
	assert_int_equal(tern_client_connect_async(c), 0);
	handshake(c, false, NULL);
	return c;
}

/* --- CONNACK ------------------------------------------------------------ */

static void test_connack_malformed(void **state)
{
	static const uint8_t bad[] = {0x20, 0x02, 0x02, 0x00}; /* flags 0x02 */
	struct tern_options o;
	struct mqtt_packet p;
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_311);
	c = client(&o);
	assert_int_equal(tern_client_connect_async(c), 0);
	fake_accept(c);
	expect(c, &p, MQTT_CONNECT);
	assert_int_equal(p.u.connect.version, MQTT_V311);
	assert_int_equal(p.u.connect.keepalive, 60);
	fake_write(bad, sizeof(bad));
	DRIVE_UNTIL(c, ev.nconn == 1);
	assert_int_equal(ev.conn_rc, TERN_EPROTO);
	if (strstr(ev.why, "CONNACK") == NULL)
		fail_msg("why: %s", ev.why);
	assert_false(tern_client_is_connected(c));
	/* No retry: reconnecting is off. The connection is closed. */
	assert_int_equal(fake_read(c, &p), 0);
	tern_client_destroy(c);
}

static void test_connack_refused(void **state)
{
	static const uint8_t refused[] = {0x20, 0x02, 0x00, 0x05};
	struct tern_options o;
	struct mqtt_packet p;
	tern_client *c;
	int rc;

	(void)state;
	opts(&o, TERN_MQTT_311);
	c = client(&o);
	assert_int_equal(tern_client_connect_async(c), 0);
	fake_accept(c);
	expect(c, &p, MQTT_CONNECT);
	fake_write(refused, sizeof(refused));
	DRIVE_UNTIL(c, ev.nconn == 1);
	assert_int_equal(ev.conn_rc, TERN_EREFUSED);
	assert_int_equal(ev.conn_reason, 5);
	/* A publish now waits in the offline queue. */
	rc = tern_client_publish(c, "a", "x", 1, 1, false, NULL, NULL);
	assert_int_equal(rc, 0);
	tern_client_destroy(c);
	assert_int_equal(ev.npub, 1);
	assert_int_equal(ev.pub_rc[0], TERN_ECANCELED);
}

static void test_connect_timeout(void **state)
{
	struct tern_options o;
	struct mqtt_packet p;
	tern_client *c;
	uint64_t t0;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.connect_timeout_ms = 300;
	c = client(&o);
	t0 = clock_ms();
	assert_int_equal(tern_client_connect_async(c), 0);
	fake_accept(c);
	expect(c, &p, MQTT_CONNECT);
	/* No CONNACK. */
	DRIVE_UNTIL(c, ev.nconn == 1);
	assert_int_equal(ev.conn_rc, TERN_ETIMEDOUT);
	assert_true(clock_ms() - t0 >= 290);
	assert_true(clock_ms() - t0 < 2000);
	tern_client_destroy(c);
}

/* --- bad packets after CONNACK ------------------------------------------- */

static void test_publish_malformed(void **state)
{
	/* PUBLISH with QoS 3. */
	static const uint8_t bad[] = {0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01};
	struct mqtt_packet p;
	tern_client *c;

	(void)state;
	c = connected(TERN_MQTT_5, NULL);
	fake_write(bad, sizeof(bad));
	DRIVE_UNTIL(c, ev.ndisc == 1);
	assert_int_equal(ev.disc_rc, TERN_EPROTO);
	assert_int_equal(ev.nmsg, 0);
	/* v5: the client says why before closing. */
	expect(c, &p, MQTT_DISCONNECT);
	assert_int_equal(p.u.disconnect.reason, MQTT_RC_MALFORMED);
	assert_int_equal(fake_read(c, &p), 0);
	tern_client_destroy(c);
}

static void test_oversize_packet(void **state)
{
	struct tern_options o;
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	uint8_t payload[200] = {0};
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.maximum_packet_size = 64;
	c = connected(TERN_MQTT_5, &o);
	/* A packet within the limit is fine. */
	p.u.publish.topic = (struct mqtt_str){(const uint8_t *)"t", 1};
	p.u.publish.payload = payload;
	p.u.publish.payload_len = 10;
	fake_send(&p);
	DRIVE_UNTIL(c, ev.nmsg == 1);
	p.u.publish.payload_len = sizeof(payload);
	fake_send(&p);
	DRIVE_UNTIL(c, ev.ndisc == 1);
	assert_int_equal(ev.disc_rc, TERN_ETOOBIG);
	assert_int_equal(ev.nmsg, 1);
	expect(c, &p, MQTT_DISCONNECT);
	assert_int_equal(p.u.disconnect.reason, MQTT_RC_PACKET_TOO_LARGE);
	tern_client_destroy(c);
}

static void test_keepalive_detects_silence(void **state)
{
	struct tern_options o;
	struct mqtt_packet p;
	tern_client *c;
	uint64_t t0;

	(void)state;
	opts(&o, TERN_MQTT_311);
	o.keepalive = 1;
	c = connected(TERN_MQTT_311, &o);
	/* Answered pings keep the connection up. */
	for (int i = 0; i < 2; i++) {
		expect(c, &p, MQTT_PINGREQ);
		p.type = MQTT_PINGRESP;
		fake_send(&p);
	}
	drive(c, 200);
	assert_int_equal(ev.ndisc, 0);
	/* The next ping goes unanswered: the client gives up after one
	 * keepalive period. */
	expect(c, &p, MQTT_PINGREQ);
	t0 = clock_ms();
	DRIVE_UNTIL(c, ev.ndisc == 1);
	assert_int_equal(ev.disc_rc, TERN_ETIMEDOUT);
	assert_true(clock_ms() - t0 >= 900);
	assert_true(clock_ms() - t0 <= 1600);
	tern_client_destroy(c);
}

static void test_connack_before_anything_else(void **state)
{
	struct tern_options o;
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_5);
	c = client(&o);
	assert_int_equal(tern_client_connect_async(c), 0);
	fake_accept(c);
	expect(c, &p, MQTT_CONNECT);
	p.type = MQTT_PUBLISH;
	memset(&p.u.publish, 0, sizeof(p.u.publish));
	p.u.publish.topic = (struct mqtt_str){(const uint8_t *)"t", 1};
	fake_send(&p);
	DRIVE_UNTIL(c, ev.nconn == 1);
	assert_int_equal(ev.conn_rc, TERN_EPROTO);
	assert_int_equal(ev.nmsg, 0);
	tern_client_destroy(c);
}

/* --- the offline queue ---------------------------------------------------- */

static void queue_policy(int policy)
{
	struct tern_options o;
	struct tern_stats st;
	struct mqtt_packet p;
	tern_client *c;
	tern_token t[6];
	char body[2] = "0";

	opts(&o, TERN_MQTT_311);
	o.max_queued = 3;
	o.queue_policy = policy;
	c = client(&o);
	for (int i = 1; i <= 5; i++) {
		int rc = tern_client_publish(c, "q", body, 1, 1, false, NULL,
		                             &t[i]);

		body[0]++;
		if (policy == TERN_QUEUE_REFUSE && i > 3)
			assert_int_equal(rc, TERN_ELIMIT);
		else
			assert_int_equal(rc, 0);
	}
	tern_client_stats(c, &st);
	assert_int_equal(st.queued, 3);
	if (policy == TERN_QUEUE_DROP_OLDEST) {
		assert_int_equal(ev.npub, 2);
		assert_int_equal(ev.pub_token[0], t[1]);
		assert_int_equal(ev.pub_token[1], t[2]);
		assert_int_equal(ev.pub_rc[0], TERN_ELIMIT);
		assert_int_equal(st.dropped, 2);
	} else if (policy == TERN_QUEUE_DROP_NEWEST) {
		assert_int_equal(ev.npub, 2);
		assert_int_equal(ev.pub_token[0], t[4]);
		assert_int_equal(ev.pub_token[1], t[5]);
		assert_int_equal(ev.pub_rc[1], TERN_ELIMIT);
	} else {
		assert_int_equal(ev.npub, 0);
	}
	/* Once connected, the survivors go out in order. */
	assert_int_equal(tern_client_connect_async(c), 0);
	handshake(c, false, NULL);
	for (int i = 0; i < 3; i++) {
		char want =
		        policy == TERN_QUEUE_DROP_OLDEST ? '2' + i : '0' + i;

		expect(c, &p, MQTT_PUBLISH);
		assert_int_equal(p.u.publish.payload[0], want);
		assert_false(p.u.publish.dup);
	}
	tern_client_destroy(c);
}

static void test_queue_drop_oldest(void **state)
{
	(void)state;
	queue_policy(TERN_QUEUE_DROP_OLDEST);
}

static void test_queue_drop_newest(void **state)
{
	(void)state;
	queue_policy(TERN_QUEUE_DROP_NEWEST);
}

static void test_queue_refuse(void **state)
{
	(void)state;
	queue_policy(TERN_QUEUE_REFUSE);
}

/* --- QoS 2 ---------------------------------------------------------------- */

static void test_qos2_outgoing(void **state)
{
	struct mqtt_packet p;
	tern_client *c;
	tern_token t;
	uint16_t id;

	(void)state;
	c = connected(TERN_MQTT_5, NULL);
	assert_int_equal(
	        tern_client_publish(c, "q2", "hi", 2, 2, false, NULL, &t), 0);
	expect(c, &p, MQTT_PUBLISH);
	assert_int_equal(p.u.publish.qos, 2);
	id = p.u.publish.packet_id;
	assert_int_not_equal(id, 0);
	send_ack(MQTT_PUBREC, id);
	expect(c, &p, MQTT_PUBREL);
	assert_int_equal(p.u.ack.packet_id, id);
	assert_int_equal(ev.npub, 0); /* not complete before PUBCOMP */
	send_ack(MQTT_PUBCOMP, id);
	DRIVE_UNTIL(c, ev.npub == 1);
	assert_int_equal(ev.pub_token[0], t);
	assert_int_equal(ev.pub_rc[0], 0);
	tern_client_destroy(c);
}

static void test_qos2_incoming_once(void **state)
{
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	struct mqtt_packet r;
	tern_client *c;

	(void)state;
	c = connected(TERN_MQTT_5, NULL);
	p.u.publish.qos = 2;
	p.u.publish.packet_id = 7;
	p.u.publish.topic = (struct mqtt_str){(const uint8_t *)"in/2", 4};
	p.u.publish.payload = (const uint8_t *)"once";
	p.u.publish.payload_len = 4;
	fake_send(&p);
	expect(c, &r, MQTT_PUBREC);
	assert_int_equal(r.u.ack.packet_id, 7);
	/* The server did not see our PUBREC: it sends again, with DUP. */
	p.u.publish.dup = true;
	fake_send(&p);
	expect(c, &r, MQTT_PUBREC);
	assert_int_equal(ev.nmsg, 1);
	assert_string_equal(ev.topic, "in/2");
	assert_string_equal(ev.payload, "once");
	assert_int_equal(ev.qos, 2);
	assert_int_equal(ev.packet_id, 7);
	assert_int_equal(ev.blocking_rc, TERN_EINVAL);
	send_ack(MQTT_PUBREL, 7);
	expect(c, &r, MQTT_PUBCOMP);
	assert_int_equal(r.u.ack.packet_id, 7);
	assert_int_equal(r.u.ack.reason, 0);
	/* After PUBREL the id is free: the same id is a new message. */
	p.u.publish.dup = false;
	fake_send(&p);
	expect(c, &r, MQTT_PUBREC);
	assert_int_equal(ev.nmsg, 2);
	tern_client_destroy(c);
}

/* v5: QoS 2 messages waiting for PUBREL beyond our Receive Maximum are
 * a protocol error (0x93); released ones make room again. */
static void test_receive_maximum_enforced(void **state)
{
	struct tern_options o;
	struct mqtt_packet p = {.type = MQTT_PUBLISH}, r;
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.receive_maximum = 2;
	c = connected(TERN_MQTT_5, &o);
	p.u.publish.qos = 2;
	p.u.publish.topic = (struct mqtt_str){(const uint8_t *)"rm", 2};
	for (uint16_t id = 1; id <= 2; id++) {
		p.u.publish.packet_id = id;
		fake_send(&p);
		expect(c, &r, MQTT_PUBREC);
	}
	send_ack(MQTT_PUBREL, 1);
	expect(c, &r, MQTT_PUBCOMP);
	p.u.publish.packet_id = 3;
	fake_send(&p);
	expect(c, &r, MQTT_PUBREC);
	assert_int_equal(ev.nmsg, 3);
	/* 2 and 3 wait for PUBREL: a fourth is one too many. */
	p.u.publish.packet_id = 4;
	fake_send(&p);
	expect(c, &r, MQTT_DISCONNECT);
	assert_int_equal(r.u.disconnect.reason, MQTT_RC_RECEIVE_MAX_EXCEEDED);
	DRIVE_UNTIL(c, ev.ndisc == 1);
	assert_int_equal(ev.disc_rc, TERN_EPROTO);
	assert_int_equal(ev.nmsg, 3);
	tern_client_destroy(c);
}

/* --- reconnects -------------------------------------------------------------
 */

static void test_retransmit_after_reconnect(void **state)
{
	struct tern_options o;
	struct mqtt_packet p;
	tern_client *c;
	uint16_t id1, id2;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.clean_start = false;
	o.session_expiry = 60;
	o.reconnect_initial_ms = 50;
	o.reconnect_max_ms = 100;
	c = connected(TERN_MQTT_5, &o);
	assert_int_equal(
	        tern_client_publish(c, "r1", "a", 1, 1, false, NULL, NULL), 0);
	assert_int_equal(
	        tern_client_publish(c, "r2", "b", 1, 2, false, NULL, NULL), 0);
	expect(c, &p, MQTT_PUBLISH);
	id1 = p.u.publish.packet_id;
	expect(c, &p, MQTT_PUBLISH);
	id2 = p.u.publish.packet_id;
	send_ack(MQTT_PUBREC, id2);
	expect(c, &p, MQTT_PUBREL);
	/* The connection breaks before PUBACK and PUBCOMP. */
	close(F.sfd);
	F.sfd = -1;
	DRIVE_UNTIL(c, ev.ndisc == 1);
	assert_int_equal(ev.disc_rc, TERN_ECLOSED);
	/* Session present: the same ids again, PUBLISH with DUP, PUBREL. */
	handshake(c, true, NULL);
	assert_true(ev.sp);
	expect(c, &p, MQTT_PUBLISH);
	assert_true(p.u.publish.dup);
	assert_int_equal(p.u.publish.packet_id, id1);
	expect(c, &p, MQTT_PUBREL);
	assert_int_equal(p.u.ack.packet_id, id2);
	assert_int_equal(ev.npub, 0);
	send_ack(MQTT_PUBCOMP, id2);
	DRIVE_UNTIL(c, ev.npub == 1);
	/* Again, now the server lost the session: the QoS 1 message goes
	 * out as a new one. */
	close(F.sfd);
	F.sfd = -1;
	DRIVE_UNTIL(c, ev.ndisc == 2);
	handshake(c, false, NULL);
	expect(c, &p, MQTT_PUBLISH);
	assert_false(p.u.publish.dup);
	assert_memory_equal(p.u.publish.topic.p, "r1", 2);
	send_ack(MQTT_PUBACK, p.u.publish.packet_id);
	DRIVE_UNTIL(c, ev.npub == 2);
	assert_int_equal(ev.pub_rc[1], 0);
	tern_client_destroy(c);
}

static void test_resubscribe_without_session(void **state)
{
	struct tern_options o;
	struct tern_sub s[2] = {{.filter = "a/#", .qos = 1},
	                        {.filter = "b/+", .qos = 2, .no_local = true}};
	const char *un[] = {"a/#"};
	struct mqtt_packet p;
	struct mqtt_sub_entry e;
	uint32_t pos = 0;
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.reconnect_initial_ms = 20;
	c = connected(TERN_MQTT_5, &o);
	assert_int_equal(tern_client_subscribe(c, s, 2, 42, NULL), 0);
	expect(c, &p, MQTT_SUBSCRIBE);
	assert_int_equal(p.u.subscribe.count, 2);
	assert_int_equal(p.u.subscribe.props.sub_id, 42);
	{
		struct mqtt_packet a = {.type = MQTT_SUBACK};
		uint8_t codes[2] = {1, 2};

		a.u.suback.packet_id = p.u.subscribe.packet_id;
		a.u.suback.codes = codes;
		a.u.suback.count = 2;
		fake_send(&a);
	}
	DRIVE_UNTIL(c, ev.nsub == 1);
	assert_int_equal(ev.codes[1], 2);
	close(F.sfd);
	F.sfd = -1;
	DRIVE_UNTIL(c, ev.ndisc == 1);
	handshake(c, false, NULL);
	expect(c, &p, MQTT_SUBSCRIBE);
	assert_int_equal(p.u.subscribe.count, 2);
	assert_int_equal(p.u.subscribe.props.sub_id, 42);
	assert_int_equal(mqtt_sub_next(&p.u.subscribe, true, MQTT_V5, &pos, &e),
	                 1);
	assert_int_equal(mqtt_sub_next(&p.u.subscribe, true, MQTT_V5, &pos, &e),
	                 1);
	assert_true(e.no_local);
	/* Unsubscribed filters are not made again. */
	assert_int_equal(tern_client_unsubscribe(c, un, 1, NULL), 0);
	expect(c, &p, MQTT_UNSUBSCRIBE);
	close(F.sfd);
	F.sfd = -1;
	DRIVE_UNTIL(c, ev.ndisc == 2);
	handshake(c, false, NULL);
	/* The unacknowledged UNSUBSCRIBE first or the SUBSCRIBE of b/+. */
	for (int i = 0; i < 2; i++) {
		int t = fake_read(c, &p);

		if (t == MQTT_SUBSCRIBE) {
			assert_int_equal(p.u.subscribe.count, 1);
			pos = 0;
			mqtt_sub_next(&p.u.subscribe, true, MQTT_V5, &pos, &e);
			assert_memory_equal(e.filter.p, "b/+", 3);
		} else {
			assert_int_equal(t, MQTT_UNSUBSCRIBE);
		}
	}
	tern_client_destroy(c);
}

/* A completion callback that publishes again, 20,000 times in a row:
 * handled iteratively, every message completes and goes out in order. */
static void test_publish_from_callback_chain(void **state)
{
	struct tern_options o;
	char url[64];
	tern_client *c;
	size_t got = 0;
	uint64_t end;

	(void)state;
	opts(&o, TERN_MQTT_311);
	snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", F.port);
	o.url = url;
	o.cb.on_connect = on_connect;
	o.cb.on_publish = on_publish_chain;
	F.version = MQTT_V311;
	c = tern_client_new(&o, NULL, 0);
	assert_non_null(c);
	assert_int_equal(tern_client_connect_async(c), 0);
	handshake(c, false, NULL);
	chain = 20000;
	assert_int_equal(
	        tern_client_publish(c, "c", "x", 1, 0, false, NULL, NULL), 0);
	/* Each PUBLISH "c"/"x" is 6 bytes on the wire. */
	end = clock_ms() + WAIT_MS;
	while (got < 20001 * 6 && clock_ms() < end) {
		ssize_t k = read(F.sfd, F.in, sizeof(F.in));

		if (k > 0)
			got += (size_t)k;
		tern_client_loop_once(c, 1);
	}
	assert_int_equal(chain, 0);
	assert_int_equal(ev.npub, 20001);
	assert_int_equal(got, 20001 * 6);
	tern_client_destroy(c);
}

/* v5 user properties on SUBSCRIBE (kept for resubscription) and
 * UNSUBSCRIBE; Request Problem Information in CONNECT only when set. */
static void test_op_user_props(void **state)
{
	static const struct tern_user_prop up[] = {{"k", "v"}, {"a", "bc"}};
	struct tern_options o;
	struct tern_sub s = {.filter = "u/#", .qos = 1};
	const char *un[] = {"x/y"};
	struct mqtt_packet p;
	struct mqtt_str k, v;
	uint32_t pos = 0;
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.reconnect_initial_ms = 20;
	o.request_problem_info = 0;
	c = client(&o);
	assert_int_equal(tern_client_connect_async(c), 0);
	fake_accept(c);
	expect(c, &p, MQTT_CONNECT);
	assert_true(p.u.connect.props.present &
	            MQTT_PBIT(MQTT_PROP_REQUEST_PROBLEM_INFO));
	assert_int_equal(p.u.connect.props.request_problem_info, 0);
	send_connack(false, NULL);
	DRIVE_UNTIL(c, ev.nconn == 1);
	assert_int_equal(tern_client_subscribe_props(c, &s, 1, 0, up, 2, NULL),
	                 0);
	expect(c, &p, MQTT_SUBSCRIBE);
	assert_int_equal(p.u.subscribe.props.user_prop_count, 2);
	assert_int_equal(
	        mqtt_user_prop_next(&p.u.subscribe.props, &pos, &k, &v), 1);
	assert_memory_equal(k.p, "k", 1);
	assert_memory_equal(v.p, "v", 1);
	assert_int_equal(
	        tern_client_unsubscribe_props(c, un, 1, up + 1, 1, NULL), 0);
	expect(c, &p, MQTT_UNSUBSCRIBE);
	assert_int_equal(p.u.subscribe.props.user_prop_count, 1);
	/* Invalid properties are refused. */
	{
		const struct tern_user_prop bad = {"k", NULL};

		assert_int_equal(
		        tern_client_subscribe_props(c, &s, 1, 0, &bad, 1, NULL),
		        TERN_EINVAL);
	}
	close(F.sfd);
	F.sfd = -1;
	DRIVE_UNTIL(c, ev.ndisc == 1);
	handshake(c, false, NULL);
	/* Resubscribed with the same properties (the UNSUBSCRIBE follows). */
	expect(c, &p, MQTT_SUBSCRIBE);
	assert_int_equal(p.u.subscribe.props.user_prop_count, 2);
	tern_client_destroy(c);
	/* Not set: not sent. */
	opts(&o, TERN_MQTT_5);
	c = client(&o);
	assert_int_equal(tern_client_connect_async(c), 0);
	fake_accept(c);
	expect(c, &p, MQTT_CONNECT);
	assert_false(p.u.connect.props.present &
	             MQTT_PBIT(MQTT_PROP_REQUEST_PROBLEM_INFO));
	tern_client_destroy(c);
}

/* A v5 DISCONNECT with a reason, session expiry, reason string and a user
 * property; the connection then closes with rc 0 and no reconnect. */
static void test_disconnect_with(void **state)
{
	static const struct tern_user_prop up = {"why", "done"};
	struct tern_disconnect d = {.reason = 0x04,
	                            .has_session_expiry = true,
	                            .session_expiry = 30,
	                            .reason_string = "bye",
	                            .user_props = &up,
	                            .user_prop_count = 1};
	struct tern_disconnect bad = {.reason = 256};
	struct tern_options o;
	struct mqtt_packet p;
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.session_expiry = 60;
	o.reconnect_initial_ms = 20;
	c = connected(TERN_MQTT_5, &o);
	assert_int_equal(tern_client_disconnect_with(c, &bad), TERN_EINVAL);
	assert_int_equal(tern_client_disconnect_with(c, &d), 0);
	expect(c, &p, MQTT_DISCONNECT);
	assert_int_equal(p.u.disconnect.reason, 0x04);
	assert_int_equal(p.u.disconnect.props.session_expiry, 30);
	assert_int_equal(p.u.disconnect.props.reason_string.len, 3);
	assert_int_equal(p.u.disconnect.props.user_prop_count, 1);
	DRIVE_UNTIL(c, ev.ndisc == 1);
	assert_int_equal(ev.disc_rc, 0);
	assert_int_equal(fake_read(c, &p), 0);
	drive(c, 100);
	assert_int_equal(accept4(F.lfd, NULL, NULL, SOCK_NONBLOCK), -1);
	tern_client_destroy(c);
}

/* The URL's user info is used; explicit options win over the URL. */
static void test_url_and_overrides(void **state)
{
	struct tern_options o;
	struct mqtt_packet p;
	char err[128];
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.url = "mqtt://alice:se%3Acret@nowhere.invalid:1/";
	o.host = "127.0.0.1";
	o.port = F.port;
	o.cb.on_connect = on_connect;
	c = tern_client_new(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(tern_client_connect_async(c), 0);
	fake_accept(c);
	expect(c, &p, MQTT_CONNECT);
	assert_true(p.u.connect.has_username && p.u.connect.has_password);
	assert_int_equal(p.u.connect.username.len, 5);
	assert_memory_equal(p.u.connect.username.p, "alice", 5);
	assert_int_equal(p.u.connect.password.len, 7);
	assert_memory_equal(p.u.connect.password.p, "se:cret", 7);
	tern_client_destroy(c);
	o.username = "bob";
	o.password = "pw";
	c = tern_client_new(&o, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(tern_client_connect_async(c), 0);
	fake_accept(c);
	expect(c, &p, MQTT_CONNECT);
	assert_memory_equal(p.u.connect.username.p, "bob", 3);
	assert_int_equal(p.u.connect.password.len, 2);
	tern_client_destroy(c);
	/* Bad options are refused with a sentence. */
	o.url = "http://x";
	assert_null(tern_client_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "http://x"));
	o.url = "mqtt://h";
	o.version = 3;
	assert_null(tern_client_new(&o, err, sizeof(err)));
	o.version = TERN_MQTT_5;
	o.will_topic = "a/+";
	assert_null(tern_client_new(&o, err, sizeof(err)));
}

/* A subscription unsubscribed before its SUBACK is not made again. */
static void test_unsubscribe_before_suback(void **state)
{
	struct tern_options o;
	struct tern_sub s = {.filter = "gone/#", .qos = 1};
	const char *un[] = {"gone/#"};
	struct mqtt_packet p, a = {.type = MQTT_SUBACK};
	uint8_t code = 1;
	uint16_t sid;
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.reconnect_initial_ms = 20;
	c = connected(TERN_MQTT_5, &o);
	assert_int_equal(tern_client_subscribe(c, &s, 1, 0, NULL), 0);
	assert_int_equal(tern_client_unsubscribe(c, un, 1, NULL), 0);
	expect(c, &p, MQTT_SUBSCRIBE);
	sid = p.u.subscribe.packet_id;
	expect(c, &p, MQTT_UNSUBSCRIBE);
	a.u.suback.packet_id = sid;
	a.u.suback.codes = &code;
	a.u.suback.count = 1;
	fake_send(&a);
	a.type = MQTT_UNSUBACK;
	a.u.suback.packet_id = p.u.subscribe.packet_id;
	code = 0;
	fake_send(&a);
	DRIVE_UNTIL(c, ev.nsub == 1);
	drive(c, 50);
	close(F.sfd);
	F.sfd = -1;
	DRIVE_UNTIL(c, ev.ndisc == 1);
	handshake(c, false, NULL);
	/* Nothing to resubscribe: the first packet is our marker. */
	tern_client_publish(c, "marker", "m", 1, 0, false, NULL, NULL);
	expect(c, &p, MQTT_PUBLISH);
	assert_memory_equal(p.u.publish.topic.p, "marker", 6);
	tern_client_destroy(c);
}

/* --- flow
 * ----------------------------------------------------------------------- */

static void test_inflight_window(void **state)
{
	struct mqtt_props pr = {0};
	struct tern_options o;
	struct mqtt_packet p;
	tern_client *c;
	uint16_t ids[5];

	(void)state;
	opts(&o, TERN_MQTT_5);
	c = client(&o);
	assert_int_equal(tern_client_connect_async(c), 0);
	pr.present = MQTT_PBIT(MQTT_PROP_RECEIVE_MAXIMUM);
	pr.receive_maximum = 2;
	handshake(c, false, &pr);
	for (int i = 0; i < 5; i++)
		assert_int_equal(tern_client_publish(c, "w", "x", 1, 1, false,
		                                     NULL, NULL),
		                 0);
	expect(c, &p, MQTT_PUBLISH);
	ids[0] = p.u.publish.packet_id;
	expect(c, &p, MQTT_PUBLISH);
	ids[1] = p.u.publish.packet_id;
	/* The window is full: nothing more until an ack. */
	drive(c, 100);
	{
		uint8_t b[16];

		assert_int_equal(read(F.sfd, b, sizeof(b)), -1);
	}
	send_ack(MQTT_PUBACK, ids[0]);
	expect(c, &p, MQTT_PUBLISH);
	ids[2] = p.u.publish.packet_id;
	send_ack(MQTT_PUBACK, ids[1]);
	send_ack(MQTT_PUBACK, ids[2]);
	expect(c, &p, MQTT_PUBLISH);
	expect(c, &p, MQTT_PUBLISH);
	tern_client_destroy(c);
}

static void test_topic_alias_outbound(void **state)
{
	struct mqtt_props pr = {0};
	struct tern_options o;
	struct mqtt_packet p;
	tern_client *c;
	uint16_t alias;

	(void)state;
	opts(&o, TERN_MQTT_5);
	c = client(&o);
	assert_int_equal(tern_client_connect_async(c), 0);
	pr.present = MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
	pr.topic_alias_maximum = 4;
	handshake(c, false, &pr);
	for (int i = 0; i < 2; i++)
		tern_client_publish(c, "long/topic/name", "x", 1, 0, false,
		                    NULL, NULL);
	expect(c, &p, MQTT_PUBLISH);
	assert_int_equal(p.u.publish.topic.len, 15);
	assert_true(p.u.publish.props.present &
	            MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS));
	alias = p.u.publish.props.topic_alias;
	assert_true(alias >= 1 && alias <= 4);
	expect(c, &p, MQTT_PUBLISH);
	assert_int_equal(p.u.publish.topic.len, 0);
	assert_int_equal(p.u.publish.props.topic_alias, alias);
	tern_client_destroy(c);
}

static void test_topic_alias_inbound(void **state)
{
	struct tern_options o;
	struct mqtt_packet p = {.type = MQTT_PUBLISH}, r;
	tern_client *c;

	(void)state;
	opts(&o, TERN_MQTT_5);
	o.topic_alias_maximum = 2;
	c = connected(TERN_MQTT_5, &o);
	p.u.publish.topic = (struct mqtt_str){(const uint8_t *)"in/a", 4};
	p.u.publish.props.present = MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS);
	p.u.publish.props.topic_alias = 2;
	p.u.publish.payload = (const uint8_t *)"1";
	p.u.publish.payload_len = 1;
	fake_send(&p);
	p.u.publish.topic.len = 0;
	p.u.publish.payload = (const uint8_t *)"2";
	fake_send(&p);
	DRIVE_UNTIL(c, ev.nmsg == 2);
	assert_string_equal(ev.topic, "in/a");
	assert_string_equal(ev.payload, "2");
	assert_int_equal(ev.alias, 2);
	assert_int_equal(ev.packet_id, 0);
	/* An alias above our maximum is a protocol error. */
	p.u.publish.props.topic_alias = 3;
	fake_send(&p);
	DRIVE_UNTIL(c, ev.ndisc == 1);
	assert_int_equal(ev.disc_rc, TERN_EPROTO);
	expect(c, &r, MQTT_DISCONNECT);
	assert_int_equal(r.u.disconnect.reason, MQTT_RC_TOPIC_ALIAS_INVALID);
	tern_client_destroy(c);
}

static void test_v5_props_received(void **state)
{
	static const uint8_t up[] = {0x26, 0, 1, 'k', 0, 2, 'v', '1'};
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	tern_client *c;

	(void)state;
	c = connected(TERN_MQTT_5, NULL);
	p.u.publish.topic = (struct mqtt_str){(const uint8_t *)"p", 1};
	p.u.publish.props.present = MQTT_PBIT(MQTT_PROP_CONTENT_TYPE) |
	                            MQTT_PBIT(MQTT_PROP_USER_PROPERTY) |
	                            MQTT_PBIT(MQTT_PROP_CORRELATION_DATA);
	p.u.publish.props.content_type =
	        (struct mqtt_str){(const uint8_t *)"text/plain", 10};
	p.u.publish.props.correlation_data =
	        (struct mqtt_bin){(const uint8_t *)"\0\1", 2};
	p.u.publish.props.user_props = up;
	p.u.publish.props.user_props_len = sizeof(up);
	p.u.publish.props.user_prop_count = 1;
	fake_send(&p);
	DRIVE_UNTIL(c, ev.nmsg == 1);
	assert_string_equal(ev.content_type, "text/plain");
	assert_int_equal(ev.corr_len, 2);
	assert_int_equal(ev.nup, 1);
	assert_string_equal(ev.up_key, "k");
	assert_string_equal(ev.up_value, "v1");
	tern_client_destroy(c);
}

/* The external-loop contract: poll the fd for the wanted events, call
 * loop_once when ready or when the timeout says. */
static void test_external_poll(void **state)
{
	struct tern_options o;
	struct mqtt_packet p;
	tern_client *c;
	uint64_t end;
	int t;

	(void)state;
	opts(&o, TERN_MQTT_311);
	o.keepalive = 30;
	c = client(&o);
	assert_int_equal(tern_client_fd(c), -1);
	assert_int_equal(tern_client_wanted_events(c), 0);
	assert_int_equal(tern_client_timeout_ms(c), -1);
	assert_int_equal(tern_client_connect_async(c), 0);
	assert_true(tern_client_fd(c) >= 0);
	/* Connecting: the socket must become writable. */
	assert_true(tern_client_wanted_events(c) & TERN_EV_WRITE);
	t = tern_client_timeout_ms(c);
	assert_true(t > 0 && t <= 10000);
	while ((F.sfd = accept4(F.lfd, NULL, NULL, SOCK_NONBLOCK)) < 0)
		usleep(1000);
	F.len = 0;
	end = clock_ms() + WAIT_MS;
	while (ev.nconn == 0 && clock_ms() < end) {
		int ev_ = tern_client_wanted_events(c);
		struct pollfd pfd = {
		        .fd = tern_client_fd(c),
		        .events = (short)((ev_ & TERN_EV_READ ? POLLIN : 0) |
		                          (ev_ & TERN_EV_WRITE ? POLLOUT : 0)),
		};
		uint8_t b[256];
		ssize_t k;

		poll(&pfd, 1, 10);
		assert_int_equal(tern_client_loop_once(c, 0), 0);
		k = read(F.sfd, b, sizeof(b));
		if (k > 0 && b[0] == 0x10)
			send_connack(false, NULL);
	}
	assert_int_equal(ev.nconn, 1);
	assert_int_equal(ev.conn_rc, 0);
	/* Connected and idle: read interest only; the next timer is the
	 * keepalive's. */
	assert_int_equal(tern_client_wanted_events(c), TERN_EV_READ);
	t = tern_client_timeout_ms(c);
	assert_true(t > 29000 && t <= 30000);
	/* While the threaded loop runs, loop_once is refused. */
	assert_int_equal(tern_client_loop_start(c), 0);
	assert_int_equal(tern_client_loop_start(c), TERN_EEXIST);
	assert_int_equal(tern_client_loop_once(c, 0), TERN_EINVAL);
	/* Blocking calls wait for the loop thread. */
	assert_int_equal(tern_client_publish_wait(c, "x", "y", 1, 0, false,
	                                          NULL, 1000, NULL),
	                 0);
	assert_int_equal(tern_client_loop_stop(c), 0);
	expect(c, &p, MQTT_PUBLISH);
	tern_client_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_connack_malformed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_connack_refused, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_connect_timeout, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_publish_malformed, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_oversize_packet, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_keepalive_detects_silence,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_connack_before_anything_else, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_queue_drop_oldest, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_queue_drop_newest, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_queue_refuse, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_qos2_outgoing, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_qos2_incoming_once, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_receive_maximum_enforced,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_retransmit_after_reconnect,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_resubscribe_without_session, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_publish_from_callback_chain, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_op_user_props, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_disconnect_with, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_url_and_overrides, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_unsubscribe_before_suback,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_inflight_window, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_topic_alias_outbound,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_topic_alias_inbound, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_v5_props_received, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_external_poll, setup,
	                                        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
