/*
 * libFuzzer target for libtern's receive path (src/client/rx.c and the
 * state it keeps): a real client connects to an in-process loopback
 * listener, gets a valid CONNACK (topic aliases and a receive maximum
 * allowed), publishes at QoS 1 and 2 and subscribes so that acks have
 * something to match, and then reads the fuzz input as bytes from the
 * server, followed by the end of the stream. Whatever the bytes, the client
 * must neither crash nor hang: it ends in a disconnect callback, and
 * destroying it completes every publish exactly once.
 *
 * The first input byte picks the protocol version and options; the rest
 * is the server's byte stream.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "tern/tern.h"

static int lfd = -1, port;
static int ndisc, nconn, npub;

static void on_connect(tern_client *c, int rc, int reason, bool sp,
                       const char *why, void *ud)
{
	(void)c, (void)reason, (void)sp, (void)ud;
	CHECK(why != NULL);
	nconn += rc == 0;
}

static void on_disconnect(tern_client *c, int rc, int reason, void *ud)
{
	(void)c, (void)rc, (void)reason, (void)ud;
	ndisc++;
}

static void on_message(tern_client *c, const struct tern_message *m, void *ud)
{
	(void)c, (void)ud;
	CHECK(m->topic != NULL && strlen(m->topic) == m->topic_len);
	CHECK(m->props != NULL && m->qos >= 0 && m->qos <= 2);
	for (size_t i = 0; i < m->props->user_prop_count; i++)
		CHECK(m->props->user_props[i].key &&
		      m->props->user_props[i].value);
}

static void on_publish(tern_client *c, tern_token t, int rc, int reason,
                       void *ud)
{
	(void)c, (void)t, (void)rc, (void)reason, (void)ud;
	npub++;
}

static void listen_once(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);

	if (lfd >= 0)
		return;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(lfd >= 0);
	CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(lfd, 16) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
	port = ntohs(a.sin_port);
}

/* Drives the client until cond or a bounded number of rounds. */
#define DRIVE(c, cond)                                                         \
	for (int r_ = 0; !(cond) && r_ < 2000; r_++)                           \
	tern_client_loop_once((c), 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t connack5[] = {0x20, 0x09, 0x00, 0x00, 0x06,
	                                   0x22, 0x00, 0x02, /* alias max 2 */
	                                   0x21, 0x00, 0x02 /* recv max 2 */};
	static const uint8_t connack3[] = {0x20, 0x02, 0x00, 0x00};
	struct tern_sub sub = {.filter = "f/#", .qos = 2};
	struct tern_options o;
	char url[64], buf[512];
	tern_client *c;
	bool v5;
	int sfd;

	if (size < 1)
		return 0;
	listen_once();
	v5 = !(data[0] & 1);
	tern_options_init(&o);
	snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", port);
	o.url = url;
	o.version = v5 ? TERN_MQTT_5 : TERN_MQTT_311;
	o.reconnect_initial_ms = 0;
	o.keepalive = 0;
	o.topic_alias_maximum = data[0] & 2 ? 3 : 0;
	o.maximum_packet_size = data[0] & 4 ? 64 : 0;
	o.cb.on_connect = on_connect;
	o.cb.on_disconnect = on_disconnect;
	o.cb.on_message = on_message;
	o.cb.on_publish = on_publish;
	ndisc = nconn = npub = 0;
	c = tern_client_new(&o, NULL, 0);
	CHECK(c != NULL);
	CHECK(tern_client_connect_async(c) == 0);
	DRIVE(c, tern_client_wanted_events(c) != TERN_EV_WRITE);
	sfd = accept(lfd, NULL, NULL);
	CHECK(sfd >= 0);
	/* The CONNECT, then our CONNACK. */
	DRIVE(c, recv(sfd, buf, sizeof(buf), MSG_DONTWAIT) > 0);
	if (v5)
		CHECK(send(sfd, connack5, sizeof(connack5), MSG_NOSIGNAL) ==
		      (ssize_t)sizeof(connack5));
	else
		CHECK(send(sfd, connack3, sizeof(connack3), MSG_NOSIGNAL) ==
		      (ssize_t)sizeof(connack3));
	DRIVE(c, nconn == 1);
	CHECK(nconn == 1);
	tern_client_publish(c, "a/b", "x", 1, 1, false, NULL, NULL);
	tern_client_publish(c, "a/b", "y", 1, 2, false, NULL, NULL);
	tern_client_publish(c, "a/c", "z", 1, 2, false, NULL, NULL);
	tern_client_subscribe(c, &sub, 1, v5 ? 5 : 0, NULL);
	/* The server's bytes, then the end of the stream. */
	for (size_t off = 1, rounds = 0; off < size && rounds < 10000;
	     rounds++) {
		ssize_t n = send(sfd, data + off, size - off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN)
			break;
		if (n > 0)
			off += (size_t)n;
		tern_client_loop_once(c, n > 0 ? 0 : 1);
	}
	shutdown(sfd, SHUT_WR);
	DRIVE(c, ndisc == 1);
	CHECK(ndisc == 1);
	CHECK(!tern_client_is_connected(c));
	tern_client_destroy(c);
	/* Every publish completed exactly once: acked, or canceled. */
	CHECK(npub == 3);
	close(sfd);
	return 0;
}
