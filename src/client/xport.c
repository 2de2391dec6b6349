/*
 * TCP and TLS transports (see xport.h). TCP is the socket itself; TLS is a
 * tls_conn (src/net/tls.c) whose client handshake runs here. WebSocket
 * wraps either (xport_ws.c).
 */
#include "client/xport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/error.h"
#include "net/tls.h"
#include "tern/tern.h"

struct xport_tls {
	struct xport x;
	struct tls_conn *t;
};

static int tcp_handshake(struct xport *x)
{
	(void)x;
	return 1;
}

static ssize_t tcp_read(struct xport *x, uint8_t *buf, size_t len)
{
	ssize_t n = recv(x->fd, buf, len, 0);

	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		x->want_read = true;
		return TERN_EAGAIN;
	}
	snprintf(x->err, sizeof(x->err), "recv: %s", strerror(errno));
	return errno == ECONNRESET ? TERN_ECLOSED : TERN_EIO;
}

static ssize_t tcp_write(struct xport *x, const uint8_t *buf, size_t len)
{
	ssize_t n = send(x->fd, buf, len, MSG_NOSIGNAL);

	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		x->want_write = true;
		return TERN_EAGAIN;
	}
	snprintf(x->err, sizeof(x->err), "send: %s", strerror(errno));
	return errno == EPIPE || errno == ECONNRESET ? TERN_ECLOSED : TERN_EIO;
}

static int no_flush(struct xport *x)
{
	(void)x;
	return 0;
}

static void tcp_shutdown(struct xport *x)
{
	shutdown(x->fd, SHUT_WR);
}

static void tcp_destroy(struct xport *x)
{
	free(x);
}

static const struct xport_ops tcp_ops = {
        .name = "tcp",
        .handshake = tcp_handshake,
        .read = tcp_read,
        .write = tcp_write,
        .flush = no_flush,
        .shutdown = tcp_shutdown,
        .destroy = tcp_destroy,
};

static int tls_x_handshake(struct xport *x)
{
	struct xport_tls *t = (struct xport_tls *)x;
	enum tls_fail why;
	bool ww = false;
	int rc = tls_handshake(t->t, &ww, &why);

	if (rc < 0) {
		snprintf(x->err, sizeof(x->err), "%s", tls_error(t->t));
		return TERN_ETLS;
	}
	if (rc == 0) {
		x->want_write = ww;
		x->want_read = !ww;
	}
	return rc;
}

static ssize_t tls_x_read(struct xport *x, uint8_t *buf, size_t len)
{
	struct xport_tls *t = (struct xport_tls *)x;
	ssize_t n = tls_read(t->t, buf, len);

	if (n == TERN_EAGAIN)
		x->want_read = true;
	else if (n < 0)
		snprintf(x->err, sizeof(x->err), "TLS read failed");
	return n;
}

static ssize_t tls_x_write(struct xport *x, const uint8_t *buf, size_t len)
{
	struct xport_tls *t = (struct xport_tls *)x;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	bool wr = false;
	ssize_t n = tls_writev(t->t, &iov, 1, &wr);

	if (n == TERN_EAGAIN) {
		x->want_read |= wr;
		x->want_write |= !wr;
	} else if (n < 0) {
		snprintf(x->err, sizeof(x->err), "TLS write failed");
	}
	return n;
}

static void tls_x_shutdown(struct xport *x)
{
	tls_shutdown(((struct xport_tls *)x)->t);
}

static void tls_x_destroy(struct xport *x)
{
	struct xport_tls *t = (struct xport_tls *)x;

	tls_conn_free(t->t);
	free(t);
}

static const struct xport_ops tls_ops = {
        .name = "tls",
        .handshake = tls_x_handshake,
        .read = tls_x_read,
        .write = tls_x_write,
        .flush = no_flush,
        .shutdown = tls_x_shutdown,
        .destroy = tls_x_destroy,
};

struct xport *xport_bytes_new(const struct xport_params *p)
{
	struct xport_tls *t;
	struct xport *x;

	if (p->tls == NULL) {
		x = calloc(1, sizeof(*x));
		if (x == NULL)
			return NULL;
		x->ops = &tcp_ops;
		x->fd = p->fd;
		return x;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->t = tls_client_conn_new(p->tls, p->fd, p->host, p->verify_host);
	if (t->t == NULL) {
		free(t);
		return NULL;
	}
	t->x.ops = &tls_ops;
	t->x.fd = p->fd;
	return &t->x;
}

int xport_new(const struct xport_params *p, struct xport **out)
{
	struct xport *lower = xport_bytes_new(p);

	*out = NULL;
	if (lower == NULL) {
		close(p->fd);
		return TERN_ENOMEM;
	}
	if (!p->ws) {
		*out = lower;
		return 0;
	}
	*out = xport_ws_new(p, lower);
	if (*out == NULL) {
		xport_free(lower);
		return TERN_ENOMEM;
	}
	return 0;
}

void xport_free(struct xport *x)
{
	int fd;

	if (x == NULL)
		return;
	fd = x->fd;
	x->ops->destroy(x);
	close(fd);
}

int xport_wants(const struct xport *x)
{
	return (x->want_read ? TERN_EV_READ : 0) |
	       (x->want_write ? TERN_EV_WRITE : 0);
}
