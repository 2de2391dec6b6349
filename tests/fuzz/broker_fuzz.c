/*
 * libFuzzer target for the broker's handling of one client's bytes in the
 * state a connection carries: its protocol level, the maximums it
 * negotiated, topic aliases both ways, packet ids in flight and QoS 2 ids,
 * its subscriptions and session, its will; over TCP and over WebSocket
 * (frames, permessage-deflate, the HTTP upgrade and the other HTTP
 * endpoints of a websockets listener). packet_fuzz, ws_fuzz and http_fuzz
 * check those parsers one input at a time and reach none of this.
 *
 * A real broker (broker_init/broker_start, two worker threads, so that
 * connections of one client id land on either and session takeovers,
 * deliveries and kicks cross between them) runs in this process on two loopback
 * ports, MQTT and websockets, with `persistence true`, so persistent sessions
 * go through the store and the acknowledgements that wait for it. An input is:
 *  - byte 0: the CONNECT (MQTT 3.1, 3.1.1 or 5; clean start or not; a
 *    will; for v5, Receive Maximum 2, Topic Alias Maximum 4, Maximum Packet
 *    Size 512 and a session expiry), see make_connect;
 *  - byte 1, bits 2-3: who the CONNECT says it is: anonymous, user "u"
 *    with its password, "u" with a wrong one, or "+" without one (the
 *    broker has a password file and an ACL with %c/%u patterns);
 *  - byte 1, bits 0-1: the transport. 0 TCP; 1 WebSocket, 2 WebSocket with
 *    permessage-deflate (the harness upgrades and sends the CONNECT in a
 *    masked binary frame); 3 HTTP: no CONNECT, the rest of the input is
 *    the whole request (an upgrade, /metrics, the admin API with the token
 *    "fuzz-token" or Basic admin:a, the web client, anything); with
 *    transport 0 and bit 4 set, the input goes as it is, with no CONNECT
 *    before it, to a listener that expects a PROXY protocol header;
 *  - the rest, sent as it is, then the harness half-closes the socket.
 * Checked:
 *  - the broker closes every such connection within 5 s (the end of the
 *    bytes is the end of the client), so no input wedges the worker;
 *  - every complete packet the broker sent decodes at the client's level,
 *    the first is a CONNACK, and for v5 none is over the client's 512
 *    bytes and no topic alias is over its 4; over WebSocket the answer is
 *    a 101, then valid server frames (unmasked; compressed messages
 *    inflate; nothing after a close frame) carrying those packets; an
 *    HTTP answer starts with a complete response head (unless the
 *    connection was reset: the broker closed with input unread). The
 *    last packet or frame may be cut short: closing a connection for an
 *    error, the broker writes what the socket takes and drops the rest
 *    (with earlier inputs' retained messages queued, that can be much);
 *  - every 64 inputs, another client connects, subscribes and gets its own
 *    QoS 1 message back: the broker keeps serving others.
 * The broker restarts every 4096 inputs, so sessions and retained messages
 * from earlier inputs stay bounded; ASan and UBSan watch its thread too.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include "base/log.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/passwd.h"
#include "fuzz.h"
#include "http/http.h"
#include "mqtt/packet.h"
#include "net/ws.h"

#define RESTART_EVERY 4096
#define ALIVE_EVERY   64
#define MAX_REPLY     (1u << 20)

static struct {
	struct config cfg;
	struct broker b;
	bool up;
	int port; /* MQTT; port + 1 websockets, port + 2 MQTT after PROXY */
	unsigned inputs;
	bool verbose;   /* BROKER_FUZZ_VERBOSE set: print the packet types and
	                 * HTTP status of each answer (to check seeds) */
	char store[64]; /* broker_fuzz.PID: the store, password and ACL files,
	                 * on tmpfs where there is one */
} g;

static const char *const store_files[] = {"tern.db", "tern.db-wal",
                                          "tern.db-shm"};

/* Removes the store if it grew past 8 MiB. */
static void store_trim(void)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/tern.db", g.store);
	if (stat(path, &st) != 0 || st.st_size < (8 << 20))
		return;
	for (size_t i = 0; i < sizeof(store_files) / sizeof(store_files[0]);
	     i++) {
		snprintf(path, sizeof(path), "%s/%s", g.store, store_files[i]);
		unlink(path);
	}
}

static const char conf_fmt[] = "allow_anonymous true\n"
                               "log_dest none\n"
                               "max_inflight_messages 4\n"
                               "max_queued_messages 16\n"
                               "max_packet_size 4096\n"
                               "memory_limit 67108864\n"
                               "max_topic_levels 16\n"
                               "max_subscriptions_per_client 32\n"
                               "admin_token fuzz-token\n"
                               "persistence true\n"
                               "persistence_location %s\n"
                               "persistence_max_bytes 33554432\n"
                               "password_file %s/passwd\n"
                               "acl_file %s/acl\n"
                               "admin_user admin\n"
                               "admin_password_file %s/passwd\n"
                               "max_connections_per_address 1000\n"
                               "listener %d 127.0.0.1\n"
                               "listener %d 127.0.0.1\n"
                               "protocol websockets\n"
                               "ws_compression true\n"
                               "ws_max_frame_size 65536\n"
                               "trusted_proxies 127.0.0.0/8\n"
                               "listener %d 127.0.0.1\n"
                               "proxy_protocol true\n"
                               "trusted_proxies 127.0.0.0/8\n";

static void broker_down(void)
{
	if (!g.up)
		return;
	broker_stop(&g.b);
	config_free(&g.cfg);
	g.up = false;
}

/*
 * Users "u" (password "p") and "admin" (password "a", also the admin API's
 * Basic user), and an ACL in Mosquitto's syntax: anonymous
 * clients (the inputs' and the liveness check's) may use everything but
 * fz/deny/#; "u" has its own tree and patterns, so publishes, subscribes
 * and deliveries are checked and sometimes refused.
 */
static void write_auth_files(void)
{
	static const char acl[] = "topic readwrite #\n"
	                          "topic deny fz/deny/#\n"
	                          "user u\n"
	                          "topic readwrite u/#\n"
	                          "topic read alive/#\n"
	                          "topic read $SYS/#\n"
	                          "pattern readwrite p/%c/%u/#\n"
	                          "pattern read r/%u\n";
	char path[128], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/passwd", g.store);
	CHECK((f = fopen(path, "w")) != NULL);
	CHECK(passwd_make_line("u", "p", 101, line, sizeof(line)) > 0);
	fprintf(f, "%s\n", line);
	CHECK(passwd_make_line("admin", "a", 101, line, sizeof(line)) > 0);
	fprintf(f, "%s\n", line);
	fclose(f);
	snprintf(path, sizeof(path), "%s/acl", g.store);
	CHECK((f = fopen(path, "w")) != NULL);
	fputs(acl, f);
	fclose(f);
}

/* Removes dir and the files in it (one level: all there is here). */
static void remove_dir(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/*
 * Removes the directories of earlier runs that ended without at_exit (a
 * crash, or libFuzzer's exit on SIGINT or a timeout): broker_fuzz.PID
 * whose process is gone. Unbounded, they would fill tmpfs.
 */
static void remove_stale(const char *base)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(base);
	int pid;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (sscanf(e->d_name, "broker_fuzz.%d", &pid) != 1 ||
		    pid <= 0 || (kill(pid, 0) != 0 && errno != ESRCH) ||
		    kill(pid, 0) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
		remove_dir(path);
	}
	closedir(d);
}

static void at_exit(void)
{
	broker_down();
	remove_dir(g.store);
}

/*
 * Starts a broker on a free port of 20000-32767 (a few tries). Its store
 * stays from one start to the next, so each start loads what the clients
 * of the inputs before left (sessions, queues, QoS 2 ids, retained
 * messages, wills), unless it grew past 8 MiB.
 */
static void broker_up(void)
{
	char text[sizeof(conf_fmt) + 4 * sizeof(g.store) + 32], err[256];

	store_trim();

	for (int i = 0; i < 32 && !g.up; i++) {
		struct auth *auth = NULL;

		g.port = 20000 + (int)((getpid() * 7919u + (unsigned)i * 131u) %
		                       12766u);
		snprintf(text, sizeof(text), conf_fmt, g.store, g.store,
		         g.store, g.store, g.port, g.port + 1, g.port + 2);
		config_init(&g.cfg);
		CHECK(config_parse(&g.cfg, text, "broker_fuzz", err,
		                   sizeof(err)) == 0);
		CHECK(config_finish(&g.cfg) == 0);
		CHECK(log_configure(0, NULL, 0, NULL, 0) == 0);
		CHECK(auth_load(&g.cfg, &auth, err, sizeof(err)) == 0);
		if (broker_init(&g.b, &g.cfg, auth, 2) == 0 &&
		    broker_start(&g.b) == 0) {
			g.up = true;
			break;
		}
		broker_stop(&g.b);
		config_free(&g.cfg);
	}
	CHECK(g.up);
}

static int dial(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 5};
	/* Closing with a reset keeps hundreds of thousands of connections
	 * from sitting in TIME_WAIT; each is read to its end first. */
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	return fd;
}

/* Sends all of p; false if the broker closed first (it may, mid-input). */
static bool send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Appends an MQTT string (2-byte length, then the bytes). */
static size_t put_str(uint8_t *out, size_t o, const char *s)
{
	size_t n = strlen(s);

	out[o++] = (uint8_t)(n >> 8);
	out[o++] = (uint8_t)n;
	memcpy(out + o, s, n);
	return o + n;
}

/* Who the CONNECT says it is (input byte 1, bits 2-3). */
enum login { L_ANONYMOUS, L_USER, L_WRONG_PASSWORD, L_WILDCARD_USER };

/*
 * The CONNECT chosen by sel: bits 0-1 the level (3.1.1, 5, 5, 3.1), bit 2
 * clean start, bit 3 a will, bits 4-5 its QoS (3 is left as it is: a
 * protocol error), bit 6 will retain, bit 7 (v5) no session expiry; and
 * by login. Returns its length; *version gets the level.
 */
static size_t make_connect(uint8_t sel, enum login login, uint8_t *out,
                           uint8_t *version)
{
	static const uint8_t levels[] = {MQTT_V311, MQTT_V5, MQTT_V5, MQTT_V31};
	/* clang-format off */
	static const uint8_t props[] = {
		0x21, 0x00, 0x02,       /* Receive Maximum 2 */
		0x22, 0x00, 0x04,       /* Topic Alias Maximum 4 */
		0x27, 0, 0, 0x02, 0x00, /* Maximum Packet Size 512 */
		0x11, 0, 0, 0, 60,      /* Session Expiry 60 s (last) */
	};
	/* clang-format on */
	uint8_t v = levels[sel & 3], flags = 0, body[160];
	size_t n = 0;

	*version = v;
	n = put_str(body, n, v == MQTT_V31 ? "MQIsdp" : "MQTT");
	body[n++] = v;
	flags |= sel & 4 ? 0x02 : 0;
	if (sel & 8)
		flags |= 0x04 | (uint8_t)(((sel >> 4) & 3) << 3) |
		         (sel & 0x40 ? 0x20 : 0);
	if (login != L_ANONYMOUS)
		flags |= 0x80 | (login == L_WILDCARD_USER ? 0 : 0x40);
	body[n++] = flags;
	body[n++] = 0; /* keepalive 60 */
	body[n++] = 60;
	if (v == MQTT_V5) {
		size_t plen = sel & 0x80 ? sizeof(props) - 5 : sizeof(props);

		body[n++] = (uint8_t)plen;
		memcpy(body + n, props, plen);
		n += plen;
	}
	n = put_str(body, n, "fz");
	if (sel & 8) {
		if (v == MQTT_V5)
			body[n++] = 0; /* will properties */
		n = put_str(body, n, "fz/will");
		n = put_str(body, n, "gone");
	}
	if (login == L_WILDCARD_USER)
		n = put_str(body, n, "+");
	else if (login != L_ANONYMOUS)
		n = put_str(body, n, "u");
	if (login == L_USER)
		n = put_str(body, n, "p");
	else if (login == L_WRONG_PASSWORD)
		n = put_str(body, n, "x");
	out[0] = 0x10;
	out[1] = (uint8_t)n;
	memcpy(out + 2, body, n);
	return n + 2;
}

/* Every complete packet in r[0..n) is one the client can accept. */
static void check_replies(const uint8_t *r, size_t n, uint8_t v)
{
	size_t off = 0;
	bool first = true;

	while (off < n) {
		struct mqtt_fixed fh;
		struct mqtt_packet p;
		struct mqtt_error err;
		int h = mqtt_fixed_header(r + off, n - off, &fh);

		if (h == TERN_EAGAIN ||
		    (h > 0 && n - off - (size_t)h < fh.remaining))
			return; /* cut short (see the top) */
		CHECK(h > 0);
		CHECK(mqtt_decode(&fh, r + off + h, fh.remaining, v, &p,
		                  &err) == 0);
		CHECK(!first || p.type == MQTT_CONNACK);
		if (v == MQTT_V5) {
			CHECK((size_t)h + fh.remaining <= 512);
			if (p.type == MQTT_PUBLISH &&
			    (p.u.publish.props.present &
			     MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS)))
				CHECK(p.u.publish.props.topic_alias >= 1 &&
				      p.u.publish.props.topic_alias <= 4);
		}
		if (g.verbose)
			fprintf(stderr, " %d", p.type);
		first = false;
		off += (size_t)h + fh.remaining;
	}
}

/*
 * Reads until the broker closes and returns how many bytes were kept (the
 * first MAX_REPLY); *cut says whether the stream ends early: reset rather
 * than closed (the broker closed with input unread), or longer than kept.
 */
static size_t read_to_close(int fd, uint8_t *buf, bool *cut)
{
	static uint8_t sink[65536];
	size_t n = 0;

	*cut = false;
	for (;;) {
		uint8_t *to = n < MAX_REPLY ? buf + n : sink;
		size_t room = n < MAX_REPLY ? MAX_REPLY - n : sizeof(sink);
		ssize_t r = recv(fd, to, room, 0);

		if (r == 0)
			return n;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET) {
			*cut = true;
			return n;
		}
		/* EAGAIN here is the 5 s receive timeout: a wedged broker. */
		CHECK(r > 0);
		if (to == sink)
			*cut = true;
		else
			n += (size_t)r;
	}
}

/* Reads one whole packet into buf (cap bytes); false on close. */
static bool read_packet(int fd, uint8_t *buf, size_t cap, struct mqtt_fixed *fh,
                        size_t *hlen)
{
	size_t n = 0;

	for (;;) {
		int h = mqtt_fixed_header(buf, n, fh);
		ssize_t r;

		if (h > 0 && n >= (size_t)h + fh->remaining) {
			*hlen = (size_t)h;
			return true;
		}
		CHECK(h == TERN_EAGAIN || h > 0);
		CHECK(n < cap && (h < 0 || (size_t)h + fh->remaining <= cap));
		r = recv(fd, buf + n, h > 0 ? (size_t)h + fh->remaining - n : 1,
		         0);
		if (r <= 0)
			return false;
		n += (size_t)r;
	}
}

/*
 * A well-behaved v3.1.1 client: CONNECT, SUBSCRIBE alive/# at QoS 1, then
 * a QoS 1 PUBLISH "x" to alive/1 that must come back (after any retained
 * messages earlier inputs left under alive/#) and be acknowledged.
 */
static void check_alive(void)
{
	static const uint8_t hello[] = {
	        0x10, 0x11, 0,   4, 'M', 'Q', 'T', 'T', 4,   0x02,
	        0,    60,   0,   5, 'a', 'l', 'i', 'v', 'e', /* CONNECT, clean,
	                                                        id "alive" */
	        0x82, 0x0c, 0,   1, 0,   7,   'a', 'l', 'i', 'v',
	        'e',  '/',  '#', 1, /* SUBSCRIBE 1: alive/# QoS 1 */
	};
	static const uint8_t pub[] = {0x32, 0x0c, 0,   7,   'a', 'l', 'i',
	                              'v',  'e',  '/', '1', 0,   2,   'x'};
	uint8_t buf[8192];
	struct mqtt_fixed fh;
	size_t h;
	int fd = dial(g.port);
	bool acked = false, got = false;

	CHECK(send_all(fd, hello, sizeof(hello)));
	CHECK(read_packet(fd, buf, sizeof(buf), &fh, &h));
	CHECK(fh.type == MQTT_CONNACK && buf[h + 1] == 0);
	CHECK(read_packet(fd, buf, sizeof(buf), &fh, &h));
	CHECK(fh.type == MQTT_SUBACK && buf[h + 2] == 1);
	CHECK(send_all(fd, pub, sizeof(pub)));
	for (int i = 0; i < 64 && !(acked && got); i++) {
		CHECK(read_packet(fd, buf, sizeof(buf), &fh, &h));
		CHECK(fh.type == MQTT_PUBACK || fh.type == MQTT_PUBLISH);
		acked |= fh.type == MQTT_PUBACK;
		/* Ours: not retained, topic alive/1, payload "x". */
		got |= fh.type == MQTT_PUBLISH && !(fh.flags & 1) &&
		       fh.remaining == 12 &&
		       memcmp(buf + h + 2, "alive/1", 7) == 0 &&
		       buf[h + 11] == 'x';
	}
	CHECK(acked && got);
	close(fd);
}

enum transport { T_TCP, T_WS, T_WS_DEFLATE, T_HTTP, T_PROXY };

/* The upgrade request, with Chrome's permessage-deflate offer if asked. */
static size_t ws_request(uint8_t *out, bool deflate)
{
	return (size_t)sprintf(
	        (char *)out,
	        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n"
	        "%s\r\n",
	        deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
	                  "client_max_window_bits\r\n"
	                : "");
}

/* p[0..n) (n < 126) as one masked binary frame. */
static size_t ws_frame(uint8_t *out, const uint8_t *p, size_t n)
{
	static const uint8_t key[4] = {0x5a, 0xa5, 0x0f, 0xf0};

	out[0] = 0x82;
	out[1] = (uint8_t)(0x80 | n);
	memcpy(out + 2, key, 4);
	for (size_t i = 0; i < n; i++)
		out[6 + i] = p[i] ^ key[i & 3];
	return n + 6;
}

/* Appends the inflation of a compressed message z[0..zn) to out (cap). */
static size_t inflate_message(const uint8_t *z, size_t zn, uint8_t *out,
                              size_t o, size_t cap, bool *cut)
{
	static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
	z_stream zs = {0};
	int rc;

	CHECK(inflateInit2(&zs, -15) == Z_OK);
	zs.next_out = out + o;
	zs.avail_out = (uInt)(cap - o);
	for (int part = 0; part < 2; part++) {
		zs.next_in = (Bytef *)(part ? tail : z);
		zs.avail_in = (uInt)(part ? sizeof(tail) : zn);
		rc = inflate(&zs, Z_SYNC_FLUSH);
		CHECK(rc == Z_OK || rc == Z_BUF_ERROR || rc == Z_STREAM_END);
		if (zs.avail_out == 0) {
			*cut = true;
			break;
		}
	}
	o = cap - zs.avail_out;
	inflateEnd(&zs);
	return o;
}

/*
 * The answer to an upgrade: a complete 101 head, then server frames, whose
 * binary messages carry MQTT packets the client can accept.
 */
static void check_ws(uint8_t *r, size_t n, uint8_t v, bool deflate, bool cut)
{
	static uint8_t mqtt[MAX_REPLY];
	struct http_header hdrs[16];
	struct http_response resp;
	struct ws_decoder d;
	size_t in = 0, out = 0, m = 0;
	uint16_t code;
	int h = http_parse_response((const char *)r, n, &resp, hdrs, 16);

	if (h == TERN_EAGAIN) {
		CHECK(cut);
		return;
	}
	CHECK(h > 0 && resp.status == 101);
	ws_decoder_init_client(&d, 0);
	d.compression = deflate &&
	                http_response_find(&resp, "Sec-WebSocket-Extensions");
	r += h;
	n -= (size_t)h;
	for (;;) {
		int ev = ws_decode(&d, r, n, &in, &out, &code);

		CHECK(ev >= 0);
		if (ev == WS_EV_NONE)
			break;
		if (ev == WS_EV_CLOSE) {
			CHECK(in ==
			      n); /* nothing after a close (RFC 6455 §5.5.1) */
			break;
		}
		if (ev != WS_EV_MESSAGE)
			continue;
		/* Plain bytes before the message, then the message inflated. */
		memmove(mqtt + m, r, out - d.zlen);
		m += out - d.zlen;
		m = inflate_message(r + out - d.zlen, d.zlen, mqtt, m,
		                    sizeof(mqtt), &cut);
		/* Go on after it with the output consumed. */
		r += in;
		n -= in;
		in = out = 0;
		if (cut)
			return check_replies(mqtt, m, v);
	}
	memmove(mqtt + m, r, out);
	m += out;
	check_replies(mqtt, m, v);
}

/*
 * After a PROXY header (the input's own), the answer is MQTT whose level
 * the harness does not know: its first packet, if any, is a CONNACK in
 * the form of one of the levels.
 */
static void check_proxied(const uint8_t *r, size_t n)
{
	struct mqtt_fixed fh;
	struct mqtt_packet p;
	struct mqtt_error err;
	int h = mqtt_fixed_header(r, n, &fh);

	if (h <= 0 || n - (size_t)h < fh.remaining)
		return;
	CHECK(fh.type == MQTT_CONNACK);
	CHECK(mqtt_decode(&fh, r + h, fh.remaining, MQTT_V311, &p, &err) == 0 ||
	      mqtt_decode(&fh, r + h, fh.remaining, MQTT_V5, &p, &err) == 0);
}

/* An HTTP answer starts with a complete response head. */
static void check_http(const uint8_t *r, size_t n, bool cut)
{
	struct http_header hdrs[16];
	struct http_response resp;
	int h;

	if (n == 0)
		return; /* closed without an answer: a request never finished */
	h = http_parse_response((const char *)r, n, &resp, hdrs, 16);
	CHECK(h > 0 || (h == TERN_EAGAIN && cut));
	CHECK(h < 0 || (resp.status >= 100 && resp.status <= 599));
	if (g.verbose && h > 0)
		fprintf(stderr, " HTTP %d", resp.status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t reply[MAX_REPLY];
	uint8_t hello[1024], conn[160], v;
	size_t n = 0, cn;
	enum transport t;
	bool cut;
	int fd;

	if (size < 2 || size > 16384)
		return 0;
	if (g.inputs == 0) {
		/* fsync on tmpfs costs nothing; on a disk it would pace every
		 * QoS 1/2 acknowledgement. */
		const char *base =
		        access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

		remove_stale(base);
		snprintf(g.store, sizeof(g.store), "%s/broker_fuzz.%d", base,
		         (int)getpid());
		CHECK(mkdir(g.store, 0700) == 0 || errno == EEXIST);
		write_auth_files();
		atexit(at_exit);
		g.verbose = getenv("BROKER_FUZZ_VERBOSE") != NULL;
	}
	if (g.inputs % RESTART_EVERY == 0) {
		broker_down();
		broker_up();
	}
	g.inputs++;
	t = (enum transport)(data[1] & 3);
	if (t == T_TCP && (data[1] & 0x10))
		t = T_PROXY;
	cn = make_connect(data[0], (enum login)((data[1] >> 2) & 3), conn, &v);
	fd = dial(t == T_TCP ? g.port : t == T_PROXY ? g.port + 2 : g.port + 1);
	if (t == T_TCP) {
		memcpy(hello, conn, cn);
		n = cn;
	} else if (t == T_WS || t == T_WS_DEFLATE) {
		n = ws_request(hello, t == T_WS_DEFLATE);
		n += ws_frame(hello + n, conn, cn);
	}
	if (send_all(fd, hello, n))
		send_all(fd, data + 2, size - 2);
	shutdown(fd, SHUT_WR);
	n = read_to_close(fd, reply, &cut);
	close(fd);
	if (t == T_TCP)
		check_replies(reply, n, v);
	else if (t == T_PROXY)
		check_proxied(reply, n);
	else if (t == T_HTTP)
		check_http(reply, n, cut);
	else
		check_ws(reply, n, v, t == T_WS_DEFLATE, cut);
	if (g.verbose)
		fprintf(stderr, " (%zu bytes%s)\n", n, cut ? ", cut" : "");
	if (g.inputs % ALIVE_EVERY == 1)
		check_alive();
	return 0;
}
