/*
 * WebSocket over TCP or TLS, client side (RFC 6455): the opening handshake
 * (http_ws_client_request / http_ws_client_check from src/http), then each
 * write becomes one masked binary frame and reads are decoded in place by
 * the shared frame decoder in client mode (src/net/ws.c). Pings are
 * answered with pongs and a close frame is answered and reported as the end
 * of the stream. Frames and control answers wait in `out` until the lower
 * transport takes them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "client/xport.h"
#include "http/http.h"
#include "net/ws.h"

#define WS_HEAD_MAX  8192  /* the server's response head */
#define WS_FRAME_MAX 65536 /* payload bytes per frame we send */
#define WS_HEADERS   32

enum { PH_LOWER, PH_REQUEST, PH_RESPONSE, PH_OPEN };

struct xport_ws {
	struct xport x;
	struct xport *lower;
	int phase;
	char host[256], path[1024];
	int port;
	char key[25];
	char req[2048];
	size_t req_len, req_off;
	char head[WS_HEAD_MAX];
	size_t head_len;
	uint8_t *pre; /* frame bytes that came with the response head */
	size_t pre_len, pre_off;
	struct ws_decoder d;
	uint8_t *out; /* masked frames waiting for the lower transport */
	size_t out_len, out_off, out_cap;
	bool closed;        /* the server's close frame arrived */
	uint8_t masks[256]; /* random bytes for the next frames' masks */
	size_t mask_left;   /* unused bytes at the front of masks */
};

/* A fresh mask per frame (RFC 6455 §5.3), taken from a pool filled 64
 * masks at a time: a getrandom() per frame cost more than masking a small
 * frame. */
static int next_mask(struct xport_ws *w, uint8_t mask[4])
{
	if (w->mask_left < 4) {
		if (ws_random_bytes(w->masks, sizeof(w->masks)) < 0)
			return TERN_EIO;
		w->mask_left = sizeof(w->masks);
	}
	w->mask_left -= 4;
	memcpy(mask, w->masks + w->mask_left, 4);
	return 0;
}

static int reserve(struct xport_ws *w, size_t more)
{
	size_t need = w->out_len + more, cap = w->out_cap ? w->out_cap : 1024;
	uint8_t *p;

	if (need <= w->out_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	p = realloc(w->out, cap);
	if (p == NULL)
		return TERN_ENOMEM;
	w->out = p;
	w->out_cap = cap;
	return 0;
}

/* Appends a masked control frame (pong, close) to the output. */
static int queue_control(struct xport_ws *w, uint8_t op, const uint8_t *p,
                         size_t len)
{
	uint8_t mask[4];

	if (reserve(w, WS_MAX_CLIENT_HEADER + 125) < 0)
		return TERN_ENOMEM;
	if (next_mask(w, mask) < 0)
		return TERN_EIO;
	w->out_len += ws_client_control(w->out + w->out_len, op, p, len, mask);
	return 0;
}

static int ws_flush(struct xport *x)
{
	struct xport_ws *w = (struct xport_ws *)x;

	while (w->out_off < w->out_len) {
		ssize_t n = w->lower->ops->write(w->lower, w->out + w->out_off,
		                                 w->out_len - w->out_off);

		if (n == TERN_EAGAIN) {
			x->want_write = true;
			x->want_read |= w->lower->want_read;
			return TERN_EAGAIN;
		}
		if (n < 0) {
			snprintf(x->err, sizeof(x->err), "%s", w->lower->err);
			return (int)n;
		}
		w->out_off += (size_t)n;
	}
	w->out_off = w->out_len = 0;
	return 0;
}

static int send_request(struct xport_ws *w)
{
	int n;

	if (w->req_len == 0) {
		if (http_ws_client_key(w->key) < 0)
			return TERN_EIO;
		n = http_ws_client_request(w->req, sizeof(w->req), w->host,
		                           w->port, w->path, w->key, "mqtt");
		if (n < 0) {
			snprintf(w->x.err, sizeof(w->x.err),
			         "cannot build the WebSocket upgrade request");
			return n;
		}
		w->req_len = (size_t)n;
	}
	while (w->req_off < w->req_len) {
		ssize_t k = w->lower->ops->write(
		        w->lower, (const uint8_t *)w->req + w->req_off,
		        w->req_len - w->req_off);

		if (k == TERN_EAGAIN) {
			w->x.want_write = true;
			return 0;
		}
		if (k < 0) {
			snprintf(w->x.err, sizeof(w->x.err), "%s",
			         w->lower->err);
			return (int)k;
		}
		w->req_off += (size_t)k;
	}
	return 1;
}

/* Keeps the bytes after the response head: they are frames already. */
static int keep_rest(struct xport_ws *w, size_t head)
{
	size_t rest = w->head_len - head;

	if (rest == 0)
		return 0;
	w->pre = malloc(rest);
	if (w->pre == NULL)
		return TERN_ENOMEM;
	memcpy(w->pre, w->head + head, rest);
	w->pre_len = rest;
	return 0;
}

static int read_response(struct xport_ws *w)
{
	struct http_header hdrs[WS_HEADERS];
	struct http_response r;
	const char *why = NULL;
	ssize_t n;
	int rc;

	for (;;) {
		n = w->lower->ops->read(w->lower,
		                        (uint8_t *)w->head + w->head_len,
		                        sizeof(w->head) - w->head_len);
		if (n == TERN_EAGAIN) {
			w->x.want_read = true;
			return 0;
		}
		if (n <= 0) {
			snprintf(w->x.err, sizeof(w->x.err),
			         "connection closed during the WebSocket "
			         "upgrade");
			return n == 0 ? TERN_ECLOSED : (int)n;
		}
		w->head_len += (size_t)n;
		rc = http_parse_response(w->head, w->head_len, &r, hdrs,
		                         WS_HEADERS);
		if (rc == TERN_EAGAIN && w->head_len < sizeof(w->head))
			continue;
		if (rc < 0) {
			snprintf(w->x.err, sizeof(w->x.err),
			         "invalid HTTP response to the WebSocket "
			         "upgrade");
			return TERN_EPROTO;
		}
		if (http_ws_client_check(&r, w->key, "mqtt", &why) < 0) {
			if (r.status != 101)
				snprintf(w->x.err, sizeof(w->x.err),
				         "WebSocket upgrade refused: HTTP %d",
				         r.status);
			else
				snprintf(w->x.err, sizeof(w->x.err),
				         "WebSocket upgrade failed: %s", why);
			return TERN_EPROTO;
		}
		rc = keep_rest(w, (size_t)rc);
		return rc < 0 ? rc : 1;
	}
}

static int ws_handshake(struct xport *x)
{
	struct xport_ws *w = (struct xport_ws *)x;
	int rc;

	x->want_read = x->want_write = false;
	if (w->phase == PH_LOWER) {
		w->lower->want_read = w->lower->want_write = false;
		rc = w->lower->ops->handshake(w->lower);
		x->want_read = w->lower->want_read;
		x->want_write = w->lower->want_write;
		if (rc < 0)
			snprintf(x->err, sizeof(x->err), "%s", w->lower->err);
		if (rc <= 0)
			return rc;
		w->phase = PH_REQUEST;
	}
	if (w->phase == PH_REQUEST) {
		rc = send_request(w);
		if (rc <= 0)
			return rc;
		w->phase = PH_RESPONSE;
	}
	if (w->phase == PH_RESPONSE) {
		rc = read_response(w);
		if (rc <= 0)
			return rc;
		w->phase = PH_OPEN;
	}
	return 1;
}

/* Takes raw bytes: those that came with the head first, then the lower
 * transport's. */
static ssize_t raw_read(struct xport_ws *w, uint8_t *buf, size_t len)
{
	size_t n;

	if (w->pre_off < w->pre_len) {
		n = w->pre_len - w->pre_off;
		if (n > len)
			n = len;
		memcpy(buf, w->pre + w->pre_off, n);
		w->pre_off += n;
		return (ssize_t)n;
	}
	return w->lower->ops->read(w->lower, buf, len);
}

/* Handles one decoder event; < 0 ends the stream with that code. */
static int on_event(struct xport_ws *w, int ev)
{
	uint8_t code[2];

	switch (ev) {
	case WS_EV_PING:
		return queue_control(w, WS_OP_PONG, w->d.ctl, w->d.ctl_len);
	case WS_EV_CLOSE:
		w->closed = true;
		code[0] = (uint8_t)(WS_CLOSE_NORMAL >> 8);
		code[1] = (uint8_t)WS_CLOSE_NORMAL;
		queue_control(w, WS_OP_CLOSE, code, 2);
		return 0;
	default: return 0;
	}
}

static ssize_t ws_read(struct xport *x, uint8_t *buf, size_t len)
{
	struct xport_ws *w = (struct xport_ws *)x;

	while (!w->closed) {
		size_t in = 0, out = 0;
		uint16_t cc = 0;
		ssize_t n = raw_read(w, buf, len);
		int rc;

		if (n == TERN_EAGAIN)
			x->want_read = true;
		if (n < 0 && n != TERN_EAGAIN)
			snprintf(x->err, sizeof(x->err), "%s", w->lower->err);
		if (n <= 0)
			return n;
		while ((rc = ws_decode(&w->d, buf, (size_t)n, &in, &out, &cc)) >
		       0) {
			rc = on_event(w, rc);
			if (rc < 0)
				return rc;
		}
		if (rc < 0) {
			uint8_t code[2] = {(uint8_t)(cc >> 8), (uint8_t)cc};

			queue_control(w, WS_OP_CLOSE, code, 2);
			ws_flush(x);
			snprintf(x->err, sizeof(x->err),
			         "invalid WebSocket frame from the server "
			         "(close %u)",
			         cc);
			return TERN_EPROTO;
		}
		ws_flush(x);
		if (out > 0)
			return (ssize_t)out;
	}
	return 0;
}

static ssize_t ws_write(struct xport *x, const uint8_t *buf, size_t len)
{
	struct xport_ws *w = (struct xport_ws *)x;
	uint8_t mask[4];
	size_t n = len > WS_FRAME_MAX ? WS_FRAME_MAX : len, h;
	int rc = ws_flush(x);

	if (rc < 0)
		return rc;
	if (reserve(w, WS_MAX_CLIENT_HEADER + n) < 0)
		return TERN_ENOMEM;
	if (next_mask(w, mask) < 0)
		return TERN_EIO;
	h = ws_client_header(w->out + w->out_len, WS_OP_BINARY, n, mask);
	ws_mask_copy(w->out + w->out_len + h, buf, n, mask);
	w->out_len += h + n;
	rc = ws_flush(x);
	if (rc < 0 && rc != TERN_EAGAIN)
		return rc;
	return (ssize_t)n;
}

static void ws_shutdown(struct xport *x)
{
	struct xport_ws *w = (struct xport_ws *)x;
	uint8_t code[2] = {(uint8_t)(WS_CLOSE_NORMAL >> 8),
	                   (uint8_t)WS_CLOSE_NORMAL};

	if (w->phase == PH_OPEN && !w->closed &&
	    queue_control(w, WS_OP_CLOSE, code, 2) == 0)
		ws_flush(x);
	w->lower->ops->shutdown(w->lower);
}

static void ws_destroy(struct xport *x)
{
	struct xport_ws *w = (struct xport_ws *)x;

	/* The lower transport shares the fd; xport_free() closes it. */
	w->lower->ops->destroy(w->lower);
	free(w->pre);
	free(w->out);
	free(w);
}

static const struct xport_ops ws_ops = {
        .name = "ws",
        .handshake = ws_handshake,
        .read = ws_read,
        .write = ws_write,
        .flush = ws_flush,
        .shutdown = ws_shutdown,
        .destroy = ws_destroy,
};

struct xport *xport_ws_new(const struct xport_params *p, struct xport *lower)
{
	struct xport_ws *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->x.ops = &ws_ops;
	w->x.fd = p->fd;
	w->lower = lower;
	w->port = p->port;
	snprintf(w->host, sizeof(w->host), "%s", p->host ? p->host : "");
	snprintf(w->path, sizeof(w->path), "%s", p->path ? p->path : "/mqtt");
	ws_decoder_init_client(&w->d, p->max_message);
	return &w->x;
}
