/*
 * tern rr: MQTT 5 request/response (docs/cli.md). Subscribes to the
 * response topic first (so a fast responder cannot answer into the void),
 * publishes the request with Response Topic and Correlation Data, then
 * prints the responses that carry the same correlation data (-C, default
 * one) or gives up at -W with exit status 27.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/clock.h"
#include "client.h"
#include "cmd.h"
#include "input.h"
#include "output.h"

#define ACK_TIMEOUT_MS 10000

struct rr {
	struct client_state cs; /* first: the callbacks' userdata */
	struct client_props req;
	char corr_buf[33];
	struct fmt_buf out;
	long received;
	bool done;
	int status;
};

static bool correlates(const struct rr *r, const struct tern_message *m)
{
	const struct tern_props *p = m->props;

	return p->correlation_len == r->req.props.correlation_len &&
	       (!p->correlation_len ||
	        !memcmp(p->correlation_data, r->req.props.correlation_data,
	                p->correlation_len));
}

static void on_message(tern_client *c, const struct tern_message *m, void *ud)
{
	struct rr *r = ud;
	const struct cli_opts *o = r->cs.o;
	struct fmt_kv kv[CLI_MAX_PROPS];
	struct fmt_msg fm;

	if (r->done)
		return;
	if (!correlates(r, m)) {
		client_debug(o,
		             "ignored a message on '%s' with other "
		             "correlation data",
		             m->topic);
		return;
	}
	client_fmt_msg(m, &fm, kv);
	if (output_message(o, &fm, &r->out) != 0) {
		r->status = EXIT_USAGE;
		r->done = true;
	} else if (++r->received >= o->count) {
		r->done = true;
	}
}

/* The correlation data: --correlation-data, -D publish correlation-data,
 * or 128 random bits in hex (unique enough to share a response topic). */
static void set_correlation(struct rr *r)
{
	const struct cli_opts *o = r->cs.o;
	struct tern_props *p = &r->req.props;
	uint8_t rnd[16];

	if (o->correlation) {
		p->correlation_data = o->correlation;
		p->correlation_len = strlen(o->correlation);
		return;
	}
	if (p->correlation_data)
		return;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(rnd, &ts,
		       sizeof(rnd) < sizeof(ts) ? sizeof(rnd) : sizeof(ts));
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(r->corr_buf + 2 * i, 3, "%02x", rnd[i]);
	p->correlation_data = r->corr_buf;
	p->correlation_len = 2 * sizeof(rnd);
}

static int subscribe_response(struct rr *r, tern_client *c)
{
	const struct cli_opts *o = r->cs.o;
	struct tern_sub s = {.filter = o->response_topic, .qos = o->qos};
	uint8_t code = 0;
	int rc = tern_client_subscribe_wait(c, &s, 1, 0, ACK_TIMEOUT_MS, &code);

	if (rc != 0) {
		client_err(o, "subscribe to '%s' failed: %s", o->response_topic,
		           tern_strerror(rc));
		return r->cs.lost ? EXIT_LOST : EXIT_USAGE;
	}
	if (code >= 0x80) {
		client_err(o, "subscription to '%s' refused: %s (0x%02x)",
		           o->response_topic, client_reason(5, code, false),
		           code);
		return EXIT_REJECTED;
	}
	client_debug(o, "subscribed to '%s' (granted QoS %d)",
	             o->response_topic, code);
	return EXIT_OK;
}

static int send_request(struct rr *r, tern_client *c, const uint8_t *payload,
                        size_t len)
{
	const struct cli_opts *o = r->cs.o;
	int reason = 0;
	int rc = tern_client_publish_wait(c, o->topics[0], payload, len, o->qos,
	                                  false, &r->req.props, ACK_TIMEOUT_MS,
	                                  &reason);

	if (rc != 0) {
		client_err(o, "request to '%s' failed: %s", o->topics[0],
		           tern_strerror(rc));
		return r->cs.lost ? EXIT_LOST : EXIT_USAGE;
	}
	if (reason >= 0x80) {
		client_err(o, "request to '%s' refused: %s (0x%02x)",
		           o->topics[0], client_reason(5, reason, false),
		           reason);
		return EXIT_REJECTED;
	}
	client_debug(o, "request published to '%s'", o->topics[0]);
	return EXIT_OK;
}

int cmd_rr(int argc, char **argv)
{
	struct rr r = {0};
	struct cli_opts o;
	tern_client *c = NULL;
	uint8_t *payload = NULL;
	size_t len = 0;
	uint64_t start;
	int status;

	status = cli_opts_parse(&o, CLI_RR, argc, argv);
	if (status != 0) {
		cli_opts_free(&o);
		return status > 0 ? EXIT_OK : EXIT_USAGE;
	}
	r.cs.o = &o;
	if (input_read(&o, &payload, &len) != 0) {
		status = EXIT_USAGE;
		goto out;
	}
	client_props(&o, PROP_PUBLISH, &r.req);
	r.req.props.response_topic = o.response_topic;
	set_correlation(&r);
	client_ignore_sigpipe();
	status = client_open(
	        &r.cs, &(struct tern_callbacks){.on_message = on_message}, &c);
	if (status != EXIT_OK)
		goto out;
	client_signals(); /* once connected, as in sub.c */
	start = clock_ms();
	status = subscribe_response(&r, c);
	if (status == EXIT_OK)
		status = send_request(&r, c, payload, len);
	if (status == EXIT_OK)
		status = client_run(&r.cs, c, &r.done, o.timeout, start);
	if (status == EXIT_OK)
		status = r.status;
out:
	client_close(c, 2000);
	fmt_buf_free(&r.out);
	free(payload);
	cli_opts_free(&o);
	return status;
}
