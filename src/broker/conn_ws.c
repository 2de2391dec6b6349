/*
 * MQTT over WebSocket on a connection (MQTT 5 §6, RFC 6455): the HTTP/1.1
 * phase of a websockets listener (upgrade to MQTT, or a plain GET answered
 * by the small responder: /healthz, the start page, http_dir files), then
 * the frame layer. Incoming frames are decoded in place in the connection's
 * read buffer, their payload joining the MQTT byte stream; outgoing packets
 * queued since the last write leave as one binary frame whose header is the
 * only WebSocket-specific byte range in the output queue (DESIGN.md §4).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/worker.h"
#include "http/http.h"
#include "net/cidr.h"
#include "net/ws.h"

/* Limits of the HTTP phase: the whole request head, and its fields. */
#define WS_MAX_HEAD    8192
#define WS_MAX_HEADERS 64
/* Largest file served from http_dir. */
#define WS_MAX_FILE (16u << 20)

#define WS_DEFAULT_PATHS        "/mqtt"
#define WS_DEFAULT_SUBPROTOCOLS "mqtt,mqttv3.1"

struct conn_ws {
	struct ws_decoder dec;
	bool upgraded;
	bool close_sent;
};

/* Built-in start page until the web client is embedded. */
static const char start_page[] =
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tern"
        "</title></head><body><h1>tern</h1><p>MQTT over WebSocket is served "
        "at <code>/mqtt</code> on this port.</p></body></html>\n";

int conn_ws_start(struct conn *c)
{
	c->ws = calloc(1, sizeof(*c->ws));
	return c->ws ? 0 : TERN_ENOMEM;
}

void conn_ws_free(struct conn *c)
{
	free(c->ws);
	c->ws = NULL;
}

static void ws_count_fail(struct conn *c, int cause)
{
	STAT_ADD(c->w->b, ws_handshake_fail[cause], 1);
}

/* Queues an HTTP response (head and body) and closes after it. */
static int ws_http_reply(struct conn *c, int status, const char *reason,
                         const char *extra, const char *type, const void *body,
                         size_t len, bool head_only)
{
	char head[512];
	int n = snprintf(
	        head, sizeof(head),
	        "HTTP/1.1 %d %s\r\nServer: tern\r\n"
	        "Content-Type: %s\r\nContent-Length: %zu\r\n"
	        "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
	        status, reason, type, len, extra ? extra : "");

	outq_append(&c->oq, head, (size_t)n);
	if (!head_only && len)
		outq_append(&c->oq, body, len);
	worker_want_flush(c->w, c);
	return 0;
}

static int ws_http_error(struct conn *c, int status, const char *reason,
                         const char *extra, const char *why)
{
	char body[160];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason);

	ws_http_reply(c, status, reason, extra, "text/plain; charset=utf-8",
	              body, (size_t)n, false);
	conn_flush(c);
	conn_close(c, 0, why);
	return TERN_ECLOSED;
}

/* Whether `s` (len bytes) is one of the items of a space/comma list. */
static bool ws_list_has(const char *list, const char *s, size_t len)
{
	const char *p = list;

	while (*p) {
		size_t n;

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		n = strcspn(p, " ,\t");
		if (n && n == len && memcmp(p, s, len) == 0)
			return true;
		p += n;
	}
	return false;
}

static const char *ws_content_type(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	        {".html", "text/html; charset=utf-8"},
	        {".js", "text/javascript; charset=utf-8"},
	        {".mjs", "text/javascript; charset=utf-8"},
	        {".css", "text/css; charset=utf-8"},
	        {".json", "application/json"},
	        {".svg", "image/svg+xml"},
	        {".png", "image/png"},
	        {".ico", "image/x-icon"},
	        {".txt", "text/plain; charset=utf-8"},
	};
	const char *dot = strrchr(path, '.');
	size_t i;

	for (i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return "application/octet-stream";
}

/*
 * Serves a file under http_dir. The path may not contain "..", NUL or a
 * backslash, and must name a regular file (no symlink is followed at the
 * last component), so nothing outside the directory is reachable.
 */
static int ws_serve_file(struct conn *c, const char *dir,
                         const struct http_str *path, bool head_only)
{
	char full[4096], rel[1024];
	struct stat st;
	uint8_t *data = NULL;
	ssize_t got = 0;
	int fd;

	if (path->len >= sizeof(rel) || memchr(path->p, '\0', path->len))
		return ws_http_error(c, 404, "Not Found", NULL, "bad path");
	memcpy(rel, path->p, path->len);
	rel[path->len] = '\0';
	if (strstr(rel, "..") || strchr(rel, '\\') || rel[0] != '/')
		return ws_http_error(c, 404, "Not Found", NULL, "bad path");
	snprintf(full, sizeof(full), "%s%s%s", dir, rel,
	         rel[strlen(rel) - 1] == '/' ? "index.html" : "");
	fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > WS_MAX_FILE) {
		if (fd >= 0)
			close(fd);
		return ws_http_error(c, 404, "Not Found", NULL, "no such file");
	}
	data = malloc((size_t)st.st_size + 1);
	if (data)
		got = read(fd, data, (size_t)st.st_size);
	close(fd);
	if (!data || got != st.st_size) {
		free(data);
		return ws_http_error(c, 500, "Internal Server Error", NULL,
		                     "cannot read file");
	}
	ws_http_reply(c, 200, "OK", NULL, ws_content_type(full), data,
	              (size_t)got, head_only);
	free(data);
	conn_flush(c);
	conn_close(c, 0, "HTTP request served");
	return TERN_ECLOSED;
}

/* A request that is not an upgrade: the small HTTP responder. */
static int ws_http_plain(struct conn *c, const struct http_request *req)
{
	const struct listener_cfg *lc = c->ls->cfg;
	bool head =
	        req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
	bool get = req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0;

	if (!get && !head)
		return ws_http_error(c, 405, "Method Not Allowed",
		                     "Allow: GET, HEAD\r\n",
		                     "method not allowed");
	if (req->path.len == 8 && memcmp(req->path.p, "/healthz", 8) == 0) {
		ws_http_reply(c, 200, "OK", NULL, "text/plain; charset=utf-8",
		              "ok\n", 3, head);
		conn_flush(c);
		conn_close(c, 0, "HTTP request served");
		return TERN_ECLOSED;
	}
	if (lc->http_dir)
		return ws_serve_file(c, lc->http_dir, &req->path, head);
	if (req->path.len == 1 && req->path.p[0] == '/') {
		ws_http_reply(c, 200, "OK", NULL, "text/html; charset=utf-8",
		              start_page, sizeof(start_page) - 1, head);
		conn_flush(c);
		conn_close(c, 0, "HTTP request served");
		return TERN_ECLOSED;
	}
	return ws_http_error(c, 404, "Not Found", NULL, "no such path");
}

/* Checks path and Origin of an upgrade; answers and returns <0 if bad. */
static int ws_check_request(struct conn *c, const struct http_request *req)
{
	const struct listener_cfg *lc = c->ls->cfg;
	const struct http_header *origin = http_find(req, "Origin");

	if (!ws_list_has(lc->ws_paths ? lc->ws_paths : WS_DEFAULT_PATHS,
	                 req->path.p, req->path.len)) {
		ws_count_fail(c, WSF_PATH);
		return ws_http_error(c, 404, "Not Found", NULL,
		                     "WebSocket upgrade on an unknown path");
	}
	/* Browsers always send Origin; a missing one is a non-browser
	 * client, which an Origin list cannot and need not restrict. */
	if (lc->ws_origins && origin &&
	    !ws_list_has(lc->ws_origins, origin->value.p, origin->value.len)) {
		ws_count_fail(c, WSF_ORIGIN);
		return ws_http_error(c, 403, "Forbidden", NULL,
		                     "Origin not allowed");
	}
	return 0;
}

/* Answers an upgrade request with 101 and switches to frames. */
static int ws_upgrade(struct conn *c, const struct http_request *req)
{
	const struct listener_cfg *lc = c->ls->cfg;
	struct ws_upgrade up;
	char head[512];
	uint64_t max;
	int n;

	if (ws_check_request(c, req) != 0)
		return TERN_ECLOSED;
	http_ws_upgrade(req,
	                lc->ws_subprotocols ? lc->ws_subprotocols
	                                    : WS_DEFAULT_SUBPROTOCOLS,
	                &up);
	if (up.status == 426) {
		ws_count_fail(c, WSF_VERSION);
		return ws_http_error(c, 426, "Upgrade Required",
		                     "Sec-WebSocket-Version: 13\r\n", up.why);
	}
	if (up.status != 101) {
		ws_count_fail(c, up.status == 400 && up.subprotocol.len == 0 &&
		                                 http_find(req, "Sec-WebSocket-"
		                                                "Protocol")
		                         ? WSF_SUBPROTOCOL
		                         : WSF_REQUEST);
		return ws_http_error(c, up.status,
		                     up.status == 405 ? "Method Not Allowed"
		                                      : "Bad Request",
		                     NULL, up.why);
	}
	n = snprintf(
	        head, sizeof(head),
	        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	        "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
	        up.accept);
	if (up.subprotocol.len)
		n += snprintf(head + n, sizeof(head) - (size_t)n,
		              "Sec-WebSocket-Protocol: %.*s\r\n",
		              (int)up.subprotocol.len, up.subprotocol.p);
	n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
	outq_append(&c->oq, head, (size_t)n);
	worker_want_flush(c->w, c);
	/* From here on every byte we send is inside a frame. */
	c->oq.framing = 1;
	outq_mark(&c->oq);
	max = lc->ws_max_frame_size ? lc->ws_max_frame_size
	      : c->w->b->cfg->max_packet_size
	              ? (uint64_t)c->w->b->cfg->max_packet_size + 16
	              : (uint64_t)MQTT_MAX_REMAINING + 16;
	ws_decoder_init(&c->ws->dec, max);
	c->ws->upgraded = true;
	c->state = CONN_CONNECTING;
	STAT_ADD(c->w->b, ws_upgrades, 1);
	return 0;
}

/*
 * Behind a trusted reverse proxy the client's address comes from
 * X-Forwarded-For (several headers join into one list) or X-Real-IP; from
 * anyone else these headers are ignored, so they cannot be spoofed.
 */
static void ws_real_address(struct conn *c, const struct http_request *req)
{
	const struct http_header *real = http_find(req, "X-Real-IP");
	char list[2048], host[SOCK_ADDRSTRLEN], buf[64];
	size_t i, n = 0;

	if (!conn_peer_trusted(c))
		return;
	for (i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (h->name.len != 15 ||
		    strncasecmp(h->name.p, "X-Forwarded-For", 15) != 0)
			continue;
		if (n + h->value.len + 1 >= sizeof(list))
			return; /* absurdly long: keep the socket address */
		if (n)
			list[n++] = ',';
		memcpy(list + n, h->value.p, h->value.len);
		n += h->value.len;
	}
	if (n && cidr_xff_client(&c->w->b->trusted[c->ls->index], list, n, host,
	                         sizeof(host))) {
		conn_set_real_address(c, host, 0, "X-Forwarded-For");
		return;
	}
	if (!n && real && real->value.len < sizeof(buf)) {
		struct in6_addr a6;
		struct in_addr a4;

		memcpy(buf, real->value.p, real->value.len);
		buf[real->value.len] = '\0';
		if (inet_pton(AF_INET, buf, &a4) == 1 ||
		    inet_pton(AF_INET6, buf, &a6) == 1)
			conn_set_real_address(c, buf, 0, "X-Real-IP");
	}
}

/* Reads the HTTP request head from the raw bytes and acts on it. */
static int ws_http_input(struct conn *c)
{
	struct http_header headers[WS_MAX_HEADERS];
	struct http_request req;
	int n = http_parse_request((const char *)c->rbuf, c->rraw, &req,
	                           headers, WS_MAX_HEADERS);

	if (n == TERN_EAGAIN) {
		if (c->rraw <= WS_MAX_HEAD)
			return 0;
		ws_count_fail(c, WSF_REQUEST);
		return ws_http_error(c, 431, "Request Header Fields Too Large",
		                     NULL, "HTTP request head too large");
	}
	if (n == TERN_ETOOBIG || (n > 0 && (size_t)n > WS_MAX_HEAD)) {
		ws_count_fail(c, WSF_REQUEST);
		return ws_http_error(c, 431, "Request Header Fields Too Large",
		                     NULL, "too many HTTP header fields");
	}
	if (n < 0) {
		ws_count_fail(c, WSF_REQUEST);
		return n == TERN_EVERSION
		               ? ws_http_error(
		                         c, 505, "HTTP Version Not Supported",
		                         NULL, "HTTP version not supported")
		               : ws_http_error(c, 400, "Bad Request", NULL,
		                               "malformed HTTP request");
	}
	ws_real_address(c, &req);
	{
		const struct http_header *up = http_find(&req, "Upgrade");
		int rc = up ? ws_upgrade(c, &req) : ws_http_plain(c, &req);

		if (rc != 0)
			return rc;
	}
	/* Frames the client sent right after its request stay raw. */
	memmove(c->rbuf, c->rbuf + n, c->rraw - (size_t)n);
	c->rraw -= (size_t)n;
	return 0;
}

/* Queues a control frame (pong or close) after closing the data frame. */
static void ws_control(struct conn *c, uint8_t opcode, const uint8_t *p,
                       size_t len)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t hl;

	conn_ws_frame(c);
	hl = ws_header(hdr, opcode, len);
	outq_append(&c->oq, hdr, hl);
	if (len)
		outq_append(&c->oq, p, len);
	outq_mark(&c->oq);
	worker_want_flush(c->w, c);
}

/* A WebSocket-level error: close frame with its code, then close. */
static int ws_fail(struct conn *c, uint16_t code, const char *why)
{
	conn_ws_close(c, code);
	conn_close(c, 0, why);
	return TERN_ECLOSED;
}

static const char *ws_error_text(int rc)
{
	switch (rc) {
	case TERN_EINVAL: return "WebSocket text frame (MQTT needs binary)";
	case TERN_ETOOBIG: return "WebSocket message too large";
	case TERN_EUTF8: return "invalid UTF-8 in WebSocket close reason";
	default: return "WebSocket protocol error";
	}
}

/* Decodes raw frames; their payload is appended to the MQTT bytes. */
static int ws_frames_input(struct conn *c)
{
	uint8_t *raw = c->rbuf + c->rlen;
	size_t in = 0, out = 0;
	uint16_t code = 0;

	for (;;) {
		int ev = ws_decode(&c->ws->dec, raw, c->rraw, &in, &out, &code);

		if (ev < 0) {
			STAT_ADD(c->w->b, ws_protocol_errors, 1);
			return ws_fail(c, code, ws_error_text(ev));
		}
		if (ev == WS_EV_PING) {
			ws_control(c, WS_OP_PONG, c->ws->dec.ctl,
			           c->ws->dec.ctl_len);
			continue;
		}
		if (ev == WS_EV_CLOSE) {
			/* Echo the code (RFC 6455 §5.5.1). Packets that came
			 * before the close frame (often a DISCONNECT) are
			 * handled first; without a DISCONNECT the will is
			 * published. */
			uint16_t reply = c->ws->dec.close_code == 1005
			                         ? WS_CLOSE_NORMAL
			                         : c->ws->dec.close_code;

			c->rlen += out;
			c->rraw = 0;
			if (conn_parse(c) != 0 || c->state == CONN_CLOSED)
				return TERN_ECLOSED;
			return ws_fail(c, reply, "closed the WebSocket");
		}
		if (ev == WS_EV_NONE)
			break;
	}
	/* Keep undecoded bytes (a partial header) right after the new MQTT
	 * bytes. */
	memmove(raw + out, raw + in, c->rraw - in);
	c->rlen += out;
	c->rraw -= in;
	STAT_ADD(c->w->b, ws_bytes_in, out);
	return 0;
}

int conn_ws_input(struct conn *c)
{
	if (!c->ws->upgraded) {
		int rc = ws_http_input(c);

		if (rc != 0 || !c->ws->upgraded || !c->rraw)
			return rc;
	}
	return ws_frames_input(c);
}

int conn_ws_frame(struct conn *c)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t n = c->oq.unframed_bytes;

	if (!c->ws || !c->ws->upgraded || !n)
		return 0;
	STAT_ADD(c->w->b, ws_frames_out, 1);
	STAT_ADD(c->w->b, ws_bytes_out, n);
	return outq_frame(&c->oq, hdr, ws_header(hdr, WS_OP_BINARY, n));
}

void conn_ws_close(struct conn *c, uint16_t code)
{
	uint8_t frame[WS_MAX_HEADER + 2];

	if (!c->ws || !c->ws->upgraded || c->ws->close_sent)
		return;
	c->ws->close_sent = true;
	conn_ws_frame(c);
	outq_append(&c->oq, frame, ws_close_frame(frame, code, NULL, 0));
	outq_mark(&c->oq);
}
