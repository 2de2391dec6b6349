/*
 * tern pub: publish one message, the same message --repeat times, or one
 * message per line of stdin (-l), and exit once each is complete (QoS 1
 * PUBACK, QoS 2 PUBCOMP) so that exit status 0 means "the broker has it".
 *
 * libtern's threaded loop runs the connection (keepalive while -l waits on
 * a quiet stdin, or during --repeat-delay); this thread reads input and
 * publishes with the blocking tern_client_publish_wait().
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "client.h"
#include "cmd.h"
#include "input.h"

/* How long one message may take to complete before we give up. */
#define PUBLISH_TIMEOUT_MS 10000

struct pub {
	struct client_state cs; /* first: the callbacks' userdata */
	tern_client *c;
	struct client_props props;
};

static int publish_one(struct pub *p, const void *payload, size_t len)
{
	const struct cli_opts *o = p->cs.o;
	int reason = 0;
	int rc = tern_client_publish_wait(p->c, o->topics[0], payload, len,
	                                  o->qos, o->retain, &p->props.props,
	                                  PUBLISH_TIMEOUT_MS, &reason);

	if (rc != 0) {
		if (p->cs.lost)
			return client_lost(&p->cs);
		client_err(o, "publish to '%s' failed: %s", o->topics[0],
		           tern_strerror(rc));
		return rc == TERN_EINVAL    ? EXIT_USAGE
		       : rc == TERN_ETOOBIG ? EXIT_REJECTED
		                            : EXIT_LOST;
	}
	if (reason >= 0x80) {
		client_err(o, "publish to '%s' refused: %s (0x%02x)",
		           o->topics[0],
		           client_reason(o->version, reason, false), reason);
		return EXIT_REJECTED;
	}
	client_debug(o, "published %zu bytes to '%s' (QoS %d)", len,
	             o->topics[0], o->qos);
	return EXIT_OK;
}

static void pause_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int publish_lines(struct pub *p)
{
	char *line = NULL;
	size_t cap = 0, len;
	int more, status = EXIT_OK;

	while (status == EXIT_OK &&
	       (more = input_line(stdin, &line, &cap, &len)) > 0)
		status = publish_one(p, line, len);
	if (status == EXIT_OK && more < 0)
		status = EXIT_USAGE;
	free(line);
	return status;
}

static int publish_repeated(struct pub *p, const uint8_t *payload, size_t len)
{
	const struct cli_opts *o = p->cs.o;
	int status = EXIT_OK;

	for (long i = 0; i < o->repeat && status == EXIT_OK; i++) {
		if (i && o->repeat_delay > 0)
			pause_s(o->repeat_delay);
		status = publish_one(p, payload, len);
	}
	return status;
}

int cmd_pub(int argc, char **argv)
{
	struct pub p = {0};
	struct cli_opts o;
	uint8_t *payload = NULL;
	size_t len = 0;
	int status;

	status = cli_opts_parse(&o, CLI_PUB, argc, argv);
	if (status != 0) {
		cli_opts_free(&o);
		return status > 0 ? EXIT_OK : EXIT_USAGE;
	}
	p.cs.o = &o;
	/* Read a file or stdin before connecting: a missing file should not
	 * cost a connection. */
	if (o.msg_src != MSG_LINES && input_read(&o, &payload, &len) != 0) {
		status = EXIT_USAGE;
		goto out;
	}
	client_props(&o, PROP_PUBLISH, &p.props);
	client_ignore_sigpipe();
	status = client_open(&p.cs, NULL, &p.c);
	if (status != EXIT_OK)
		goto out;
	if (tern_client_loop_start(p.c) != 0) {
		client_err(&o, "cannot start the client thread");
		status = EXIT_USAGE;
		goto out;
	}
	status = o.msg_src == MSG_LINES ? publish_lines(&p)
	                                : publish_repeated(&p, payload, len);
out:
	client_close(p.c, PUBLISH_TIMEOUT_MS);
	free(payload);
	cli_opts_free(&o);
	return status;
}
