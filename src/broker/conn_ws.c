/*
 * MQTT over WebSocket on a connection (MQTT 5 §6, RFC 6455): the HTTP/1.1
 * phase of a websockets listener (upgrade to MQTT, or a plain GET answered
 * by the small responder: /healthz, the start page, http_dir files), then
 * the frame layer. Incoming frames are decoded in place in the connection's
 * read buffer, their payload joining the MQTT byte stream; outgoing packets
 * queued since the last write leave as one binary frame whose header is the
 * only WebSocket-specific byte range in the output queue (DESIGN.md §4).
 *
 * With ws_compression, permessage-deflate (RFC 7692) may be negotiated in
 * the upgrade. Both directions then run without context takeover and with
 * windows of at most 2^WS_PMD_BITS bytes (the client's own window only if
 * it offered client_max_window_bits), so a connection's zlib memory is
 * fixed from the upgrade on: each message is inflated or deflated from a
 * reset stream. A compressed message is inflated into the MQTT bytes once
 * it is complete; its inflated size is bounded like a plain message's
 * (ws_max_frame_size, close 1009) while inflating. Output is compressed at
 * framing time: the unframed bytes of the output queue become one
 * compressed message.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/log.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/http_api.h"
#include "broker/web.h"
#include "broker/worker.h"
#include "http/http.h"
#include "net/cidr.h"
#include "net/ws.h"

/* Limits of the HTTP phase: the whole request head, and its fields. */
#define WS_MAX_HEAD    8192
#define WS_MAX_HEADERS 64
/* Largest file served from http_dir. */
#define WS_MAX_FILE (16u << 20)

/*
 * The default ws_max_frame_size (max_packet_size plus a frame's worth of
 * slack) is never below this. MQTT over WebSocket lets a client put several
 * packets in one frame (MQTT 3.1.1 and 5.0 §6.0: packets need not be
 * aligned on frame boundaries) and libtern sends frames of up to 64 KiB, so
 * with a small max_packet_size a batching client was closed with 1009 under
 * load (tests/e2e/load.test.mjs). An uncompressed frame is decoded as it
 * arrives and costs no memory for its size, max_packet_size still bounds
 * every packet; a compressed message is held until complete, so this is
 * also what one compressed connection may buffer.
 */
#define WS_DEFAULT_FRAME_MIN (1u << 20)

#define WS_DEFAULT_PATHS        "/mqtt"
#define WS_DEFAULT_SUBPROTOCOLS "mqtt,mqttv3.1"

/*
 * permessage-deflate: the largest window (log2) either side uses when it
 * may choose, zlib's memLevel (hash table and literal buffer size) and
 * level for our compressor, and the least room given to each inflate call
 * (the read buffer grows by doubling as output comes, never to the limit
 * up front).
 */
#define WS_PMD_BITS      10
#define WS_PMD_MEMLEVEL  4
#define WS_PMD_LEVEL     6
#define WS_INFLATE_ROOM  4096
#define WS_DEFLATE_START 16384

/* The zlib streams of a compressed connection. */
struct ws_pmd {
	z_stream inf; /* client messages, raw, the client's window */
	z_stream def; /* our messages, raw, WS_PMD_BITS or less */
};

struct conn_ws {
	struct ws_decoder dec;
	bool upgraded;
	bool close_sent;
	struct ws_pmd *pmd; /* NULL unless permessage-deflate is on */
	/* Decoded bytes of an open compressed message at the front of the
	 * raw bytes (c->rbuf + c->rlen), kept for the decoder (dec.zlen). */
	size_t zkeep;
	uint64_t frames_counted; /* dec.frames already added to the stats */
};

/*
 * What the embedded web client may do (CONVENTIONS.md): its own scripts,
 * styles and images, and connections back to this origin (ws/wss
 * included: CSP 3 lets 'self' match them). No inline script or style.
 */
#define WS_CSP                                                                 \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; "     \
	"style-src 'self'; img-src 'self' data:; connect-src 'self'; "         \
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"      \
	"X-Content-Type-Options: nosniff\r\n"

int conn_ws_start(struct conn *c)
{
	c->ws = calloc(1, sizeof(*c->ws));
	return c->ws ? 0 : TERN_ENOMEM;
}

static void ws_pmd_free(struct ws_pmd *z)
{
	if (!z)
		return;
	/* Both accept a stream whose init failed or never ran. */
	inflateEnd(&z->inf);
	deflateEnd(&z->def);
	free(z);
}

void conn_ws_free(struct conn *c)
{
	if (c->ws)
		ws_pmd_free(c->ws->pmd);
	free(c->ws);
	c->ws = NULL;
}

/* Allocates both zlib streams for the negotiated windows. */
static int ws_pmd_start(struct conn *c, const struct ws_deflate *d)
{
	struct ws_pmd *z = calloc(1, sizeof(*z));
	/* zlib's raw deflate has no 8-bit window and some compressors use
	 * 9 when told 8, so the inflater never goes below 9. */
	int ibits = d->client_bits < 9 ? 9 : d->client_bits;

	if (!z)
		return TERN_ENOMEM;
	if (inflateInit2(&z->inf, -ibits) != Z_OK ||
	    deflateInit2(&z->def, WS_PMD_LEVEL, Z_DEFLATED, -d->server_bits,
	                 WS_PMD_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
		ws_pmd_free(z);
		return TERN_ENOMEM;
	}
	c->ws->pmd = z;
	return 0;
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
	char head[1024];
	bool cached = extra && strstr(extra, "ETag:");
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %d %s\r\nServer: tern\r\n"
	                 "Content-Type: %s\r\nContent-Length: %zu\r\n"
	                 "Cache-Control: %s\r\n%sConnection: close\r\n\r\n",
	                 status, reason, type, len,
	                 cached ? "no-cache" : "no-store", extra ? extra : "");

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

/* Sends a response and closes: every plain request ends its connection. */
static int ws_http_done(struct conn *c, int status, const char *reason,
                        const char *extra, const char *type, const void *body,
                        size_t len, bool head_only)
{
	ws_http_reply(c, status, reason, extra, type, body, len, head_only);
	conn_flush(c);
	conn_close(c, 0, "HTTP request served");
	return TERN_ECLOSED;
}

/*
 * Serves a file of the embedded web client (web.h), with its ETag, so a
 * browser revalidates with If-None-Match and gets 304 when unchanged.
 */
static int ws_serve_embedded(struct conn *c, const struct http_request *req,
                             bool head_only)
{
	const struct web_file *f = web_find(req->path.p, req->path.len);
	const struct http_header *inm = http_find(req, "If-None-Match");
	char extra[512];

	if (!f)
		return ws_http_error(c, 404, "Not Found", NULL, "no such path");
	snprintf(extra, sizeof(extra), "ETag: %s\r\n%s", f->etag, WS_CSP);
	if (inm && inm->value.len == strlen(f->etag) &&
	    memcmp(inm->value.p, f->etag, inm->value.len) == 0)
		return ws_http_done(c, 304, "Not Modified", extra,
		                    ws_content_type(f->path), NULL, f->len,
		                    true);
	return ws_http_done(c, 200, "OK", extra, ws_content_type(f->path),
	                    f->data, f->len, head_only);
}

/* /metrics and /api/...: answered by http_api.c. */
static int ws_http_api(struct conn *c, const struct http_request *req,
                       const char *body, size_t blen, bool *handled)
{
	struct http_api_req r = {
	        .w = c->w,
	        .req = req,
	        .body = body,
	        .blen = blen,
	        .host = c->host,
	        .tls = c->transport == TR_WSS,
	};
	struct http_api_reply out;
	int rc;

	*handled = http_api_handle(&r, &out);
	if (!*handled)
		return 0;
	rc = ws_http_done(c, out.status, out.reason, out.extra, out.type,
	                  out.body, out.len,
	                  req->method.len == 4 &&
	                          memcmp(req->method.p, "HEAD", 4) == 0);
	free(out.body);
	return rc;
}

/* A request that is not an upgrade: the small HTTP responder. */
static int ws_http_plain(struct conn *c, const struct http_request *req,
                         const char *body, size_t blen)
{
	const struct listener_cfg *lc = c->ls->cfg;
	bool head =
	        req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
	bool get = req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0;
	bool handled;
	int rc = ws_http_api(c, req, body, blen, &handled);

	if (handled)
		return rc;
	if (!get && !head)
		return ws_http_error(c, 405, "Method Not Allowed",
		                     "Allow: GET, HEAD\r\n",
		                     "method not allowed");
	if (req->path.len == 8 && memcmp(req->path.p, "/healthz", 8) == 0)
		return ws_http_done(c, 200, "OK", NULL,
		                    "text/plain; charset=utf-8", "ok\n", 3,
		                    head);
	if (lc->http_dir)
		return ws_serve_file(c, lc->http_dir, &req->path, head);
	return ws_serve_embedded(c, req, head);
}

/*
 * The body of a plain request that may carry one (http_api_wants_body):
 * its Content-Length, at most HTTP_API_MAX_BODY. Returns the length, 0
 * without a body, or <0 after answering (411 chunked, 413 too large,
 * 400 malformed).
 */
static long ws_body_length(struct conn *c, const struct http_request *req)
{
	const struct http_header *cl = http_find(req, "Content-Length");
	unsigned long v = 0;

	if (http_find(req, "Transfer-Encoding"))
		return ws_http_error(c, 411, "Length Required", NULL,
		                     "chunked HTTP body");
	if (!cl || !http_api_wants_body(req))
		return 0;
	if (http_count(req, "Content-Length") != 1 || cl->value.len == 0 ||
	    cl->value.len > 10)
		return ws_http_error(c, 400, "Bad Request", NULL,
		                     "bad Content-Length");
	for (size_t i = 0; i < cl->value.len; i++) {
		if (cl->value.p[i] < '0' || cl->value.p[i] > '9')
			return ws_http_error(c, 400, "Bad Request", NULL,
			                     "bad Content-Length");
		v = v * 10 + (unsigned long)(cl->value.p[i] - '0');
	}
	if (v > HTTP_API_MAX_BODY)
		return ws_http_error(c, 413, "Content Too Large", NULL,
		                     "HTTP body too large");
	return (long)v;
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
	struct ws_deflate pmd = {0};
	struct ws_upgrade up;
	char head[768];
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
	/* Without memory for zlib the connection goes on uncompressed. */
	if (lc->ws_compression)
		http_ws_deflate_offer(req, WS_PMD_BITS, &pmd);
	if (pmd.on && ws_pmd_start(c, &pmd) == 0)
		n += snprintf(head + n, sizeof(head) - (size_t)n,
		              "Sec-WebSocket-Extensions: %s\r\n", pmd.response);

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
	if (!lc->ws_max_frame_size && max < WS_DEFAULT_FRAME_MIN)
		max = WS_DEFAULT_FRAME_MIN;
	ws_decoder_init(&c->ws->dec, max);
	c->ws->dec.compression = c->ws->pmd != NULL;

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
	if (!http_find(&req, "Upgrade")) {
		long blen = ws_body_length(c, &req);

		if (blen < 0)
			return TERN_ECLOSED;
		if (c->rraw < (size_t)n + (size_t)blen)
			return 0; /* the rest of the body is on its way */
		ws_real_address(c, &req);
		return ws_http_plain(c, &req, (const char *)c->rbuf + n,
		                     (size_t)blen);
	}
	ws_real_address(c, &req);
	{
		int rc = ws_upgrade(c, &req);

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
	/* 1009 is ws_max_frame_size (a frame, a message, or what a
	 * compressed message inflates to). */
	if (code == WS_CLOSE_TOO_BIG)
		STAT_LIMIT(c->w->b, LIM_WS_FRAME);
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

/* Makes room for `need` more bytes after the MQTT and raw bytes. */
static int ws_rbuf_fit(struct conn *c, size_t need)
{
	size_t used = c->rlen + c->rraw, ncap = c->rcap ? c->rcap : 4096;
	uint8_t *nb;

	if (c->rcap - used >= need)
		return 0;
	while (ncap - used < need)
		ncap *= 2;
	if (c->rbuf_borrowed) {
		/* The worker's scratch buffer cannot grow: move to our own. */
		nb = malloc(ncap);
		if (nb)
			memcpy(nb, c->rbuf, used);
	} else {
		nb = realloc(c->rbuf, ncap);
	}
	if (!nb)
		return TERN_ENOMEM;
	c->rbuf_borrowed = false;
	c->rbuf = nb;
	c->rcap = ncap;
	return 0;
}

/*
 * Inflates p[0..n) (a compressed message with 00 00 ff ff appended, RFC
 * 7692 §7.2.2) onto the end of the MQTT bytes, the raw bytes being empty.
 * The output may not exceed the message limit: each call gets at most one
 * byte more room than the limit leaves, so a bomb is caught as soon as it
 * goes over. Returns 0, or <0 after failing the connection: 1009 for too
 * much output, 1007 for data that is not DEFLATE or stops inside a block
 * (inconsistent with a compressed message, RFC 6455 §7.4.1), 1011 without
 * memory.
 */
static int ws_inflate(struct conn *c, const uint8_t *p, size_t n)
{
	z_stream *z = &c->ws->pmd->inf;
	uint64_t max = c->ws->dec.max_message, got = 0;
	bool boundary = false;
	int zrc;

	if (n > UINT_MAX)
		return ws_fail(c, WS_CLOSE_TOO_BIG,
		               "WebSocket message too large");
	z->next_in = (Bytef *)p;
	z->avail_in = (uInt)n;
	do {
		size_t room, made;

		if (ws_rbuf_fit(c, WS_INFLATE_ROOM) != 0)
			return ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
		room = c->rcap - c->rlen;
		if (max && room > max - got + 1)
			room = (size_t)(max - got + 1);
		if (room > UINT_MAX)
			room = UINT_MAX;
		z->next_out = c->rbuf + c->rlen;
		z->avail_out = (uInt)room;
		zrc = inflate(z, Z_SYNC_FLUSH);
		made = room - z->avail_out;
		c->rlen += made;
		got += made;
		if (max && got > max)
			return ws_fail(c, WS_CLOSE_TOO_BIG,
			               "inflated WebSocket message too large");
		if (zrc == Z_MEM_ERROR)
			return ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
		/* A final block may end the message; only our 4 bytes may
		 * follow it. */
		if (zrc == Z_STREAM_END && z->avail_in <= 4)
			break;
		if (zrc != Z_OK && zrc != Z_BUF_ERROR)
			return ws_fail(c, WS_CLOSE_INVALID,
			               "invalid compressed WebSocket message");
		/* Bit 128: stopped between blocks. A call that could not
		 * progress (Z_BUF_ERROR) clears it, so it is taken from the
		 * last call that did. */
		if (zrc == Z_OK)
			boundary = z->data_type & 128;
	} while (z->avail_in > 0 || z->avail_out == 0);
	/* Input used up inside a block: the message was cut short. */
	if (zrc != Z_STREAM_END && !boundary)
		return ws_fail(c, WS_CLOSE_INVALID,
		               "truncated compressed WebSocket message");
	return inflateReset(z) == Z_OK ? 0
	                               : ws_fail(c, WS_CLOSE_INTERNAL,
	                                         "zlib inflateReset failed");
}

/*
 * A compressed message is complete: raw[0..out) holds plain MQTT bytes
 * and then the message (its last dec.zlen bytes), raw[in..rraw) bytes not
 * yet decoded. The message and the undecoded bytes are copied aside, the
 * plain bytes join the MQTT bytes, the message is inflated after them and
 * the undecoded bytes are put back after that, keeping rbuf's layout (MQTT
 * bytes, then raw bytes). Returns 0 or <0 after failing the connection.
 */
static int ws_inflate_message(struct conn *c, size_t in, size_t out)
{
	static const uint8_t sync_tail[4] = {0x00, 0x00, 0xff, 0xff};
	uint8_t *raw = c->rbuf + c->rlen, *tmp;
	size_t zl = (size_t)c->ws->dec.zlen, plain = out - zl;
	size_t rest = c->rraw - in, zn = zl + sizeof(sync_tail);
	int rc = 0;

	tmp = malloc(zn + rest);
	if (!tmp)
		return ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
	memcpy(tmp, raw + plain, zl);
	memcpy(tmp + zl, sync_tail, sizeof(sync_tail));
	memcpy(tmp + zn, raw + in, rest);
	c->rlen += plain;
	c->rraw = 0;
	/* An empty payload is an empty message (RFC 7692 §7.2.3.6 asks for
	 * one 0x00 byte, but there is nothing to inflate either way). */
	if (zl)
		rc = ws_inflate(c, tmp, zn);
	if (rc == 0 && ws_rbuf_fit(c, rest) != 0)
		rc = ws_fail(c, WS_CLOSE_INTERNAL, "out of memory");
	if (rc == 0) {
		memcpy(c->rbuf + c->rlen, tmp + zn, rest);
		c->rraw = rest;
	}
	free(tmp);
	return rc;
}

/*
 * Decodes raw frames; their payload is appended to the MQTT bytes. The
 * bytes of a compressed message still open at the end stay at the front
 * of the raw bytes (zkeep) for the next call; a complete one is inflated
 * and its packets handled at once, so the MQTT bytes never hold more than
 * one inflated message beyond what the packets of the read left.
 */
static int ws_frames_input(struct conn *c)
{
	struct conn_ws *ws = c->ws;
	size_t in = ws->zkeep, out = ws->zkeep, counted = ws->zkeep, keep;
	uint16_t code = 0;
	uint8_t *raw;

	for (;;) {
		int ev;

		raw = c->rbuf + c->rlen;
		ev = ws_decode(&ws->dec, raw, c->rraw, &in, &out, &code);
		if (ev < 0) {
			STAT_ADD(c->w->b, ws_protocol_errors, 1);
			return ws_fail(c, code, ws_error_text(ev));
		}
		if (ev == WS_EV_PING) {
			ws_control(c, WS_OP_PONG, ws->dec.ctl, ws->dec.ctl_len);
			continue;
		}
		if (ev == WS_EV_MESSAGE) {
			STAT_ADD(c->w->b, ws_bytes_in, out - counted);
			ws->zkeep = 0;
			if (ws_inflate_message(c, in, out) != 0)
				return TERN_ECLOSED;
			if (conn_parse(c) != 0 || c->state == CONN_CLOSED)
				return TERN_ECLOSED;
			in = out = counted = 0;
			continue;
		}
		if (ev == WS_EV_CLOSE) {
			/* Echo the code (RFC 6455 §5.5.1). Packets that came
			 * before the close frame (often a DISCONNECT) are
			 * handled first; without a DISCONNECT the will is
			 * published. An unfinished compressed message is
			 * dropped. */
			uint16_t reply = ws->dec.close_code == 1005
			                         ? WS_CLOSE_NORMAL
			                         : ws->dec.close_code;

			c->rlen += out - (size_t)ws->dec.zlen;
			c->rraw = 0;
			ws->zkeep = 0;
			if (conn_parse(c) != 0 || c->state == CONN_CLOSED)
				return TERN_ECLOSED;
			return ws_fail(c, reply, "closed the WebSocket");
		}
		if (ev == WS_EV_NONE)
			break;
	}
	/* Keep undecoded bytes (a partial header) right after the new MQTT
	 * bytes and the open compressed message, if any. */
	keep = (size_t)ws->dec.zlen;
	memmove(raw + out, raw + in, c->rraw - in);
	c->rlen += out - keep;
	c->rraw = keep + (c->rraw - in);
	ws->zkeep = keep;
	STAT_ADD(c->w->b, ws_bytes_in, out - counted);
	STAT_ADD(c->w->b, ws_frames_in, ws->dec.frames - ws->frames_counted);
	ws->frames_counted = ws->dec.frames;
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

/*
 * Grows the deflate output buffer: doubling, from room for `hint` input
 * bytes stored as they are (a small message) or WS_DEFLATE_START. One
 * buffer per flush, freed after it.
 */
static int ws_deflate_room(uint8_t **buf, size_t *cap, size_t hint)
{
	size_t ncap = *cap                           ? *cap * 2
	              : hint + 64 < WS_DEFLATE_START ? hint + 64
	                                             : WS_DEFLATE_START;
	uint8_t *nb = realloc(*buf, ncap);

	if (!nb)
		return TERN_ENOMEM;
	*buf = nb;
	*cap = ncap;
	return 0;
}

/*
 * Deflates one output queue entry into buf[*len..), growing buf; with
 * `last`, flushes to a byte boundary (Z_SYNC_FLUSH), which ends the output
 * with 00 00 ff ff.
 */
static int ws_deflate_range(z_stream *z, const struct iovec *v, bool last,
                            uint8_t **buf, size_t *len, size_t *cap)
{
	int flush = last ? Z_SYNC_FLUSH : Z_NO_FLUSH;

	z->next_in = v->iov_base;
	z->avail_in = (uInt)v->iov_len;
	while (z->avail_in > 0 || last) {
		size_t room;
		int zrc;

		if (*len == *cap && ws_deflate_room(buf, cap, 0) != 0)
			return TERN_ENOMEM;
		room = *cap - *len;
		if (room > UINT_MAX)
			room = UINT_MAX;
		z->next_out = *buf + *len;
		z->avail_out = (uInt)room;
		zrc = deflate(z, flush);
		*len += room - z->avail_out;
		if (zrc != Z_OK && zrc != Z_BUF_ERROR)
			return TERN_EINVAL;
		/* A flush is complete when it left room unused. */
		if (z->avail_in == 0 && (!last || z->avail_out > 0))
			break;
	}
	return 0;
}

/*
 * Compresses the unframed bytes of the output queue into one message
 * (RFC 7692 §7.2.1): deflated from a reset stream, flushed, the final
 * 00 00 ff ff dropped, sent in a frame with RSV1. Returns 0 or TERN_ENOMEM.
 */
static int ws_deflate_frame(struct conn *c)
{
	z_stream *z = &c->ws->pmd->def;
	size_t ents = c->oq.unframed_ents, skip = 0, len = 0, cap = 0;
	uint8_t hdr[WS_MAX_HEADER], *buf = NULL;
	struct iovec iov[16];
	int rc = ws_deflate_room(&buf, &cap, c->oq.unframed_bytes);

	while (rc == 0 && skip < ents) {
		int n = outq_unframed_iov(&c->oq, skip, iov, 16);

		for (int i = 0; rc == 0 && i < n; i++)
			rc = ws_deflate_range(z, &iov[i],
			                      skip + (size_t)i + 1 == ents,
			                      &buf, &len, &cap);
		skip += (size_t)n;
	}
	if (rc == 0 && (len < 4 || memcmp(buf + len - 4, "\0\0\xff\xff", 4)))
		rc = TERN_EINVAL;
	if (rc == 0) {
		len -= 4;
		rc = outq_replace_unframed(
		        &c->oq, hdr,
		        ws_header_compressed(hdr, WS_OP_BINARY, len), buf, len);
	}
	if (rc == 0) {
		STAT_ADD(c->w->b, ws_frames_out, 1);
		STAT_ADD(c->w->b, ws_bytes_out, len);
	}
	free(buf);
	deflateReset(z);
	return rc == 0 ? 0 : TERN_ENOMEM;
}

int conn_ws_frame(struct conn *c)
{
	uint8_t hdr[WS_MAX_HEADER];
	size_t n = c->oq.unframed_bytes;

	if (!c->ws || !c->ws->upgraded || !n)
		return 0;
	if (c->ws->pmd)
		return ws_deflate_frame(c);
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
