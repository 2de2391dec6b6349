/*
 * tern sub: subscribe to filters and print each message (docs/cli.md).
 * One thread drives the client (client_run); messages are filtered (-T,
 * -R, --retained-only), optionally deleted (--remove-retained), printed
 * through output.c and counted (-C) in the message callback.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "client.h"
#include "cmd.h"
#include "match.h"
#include "output.h"

/* How long to wait for a SUBACK before calling the broker unresponsive. */
#define SUBACK_TIMEOUT_MS 10000

struct sub_state {
	struct client_state cs; /* first: the callbacks' userdata */
	struct fmt_buf out;
	long received;
	bool done;
	int status; /* exit status decided inside a callback */
};

static bool filtered_out(const struct cli_opts *o, const struct tern_message *m)
{
	for (int i = 0; i < o->n_filter_out; i++)
		if (match_topic(o->filter_out[i], m->topic, m->topic_len))
			return true;
	return false;
}

/* An empty retained PUBLISH deletes the retained message (MQTT 5.0
 * §3.3.1.3); it goes out from the callback and is flushed before exit. */
static void remove_retained(tern_client *c, const struct cli_opts *o,
                            const struct tern_message *m)
{
	int rc = tern_client_publish(c, m->topic, NULL, 0, o->qos, true, NULL,
	                             NULL);

	if (rc != 0)
		client_err(o, "cannot remove the retained message of '%s': %s",
		           m->topic, tern_strerror(rc));
}

static void on_message(tern_client *c, const struct tern_message *m, void *ud)
{
	struct sub_state *s = ud;
	const struct cli_opts *o = s->cs.o;
	struct fmt_kv kv[CLI_MAX_PROPS];
	struct fmt_msg fm;

	if (s->done || filtered_out(o, m))
		return;
	if (o->retained_only && !m->retain) {
		s->done = true;
		return;
	}
	if (o->remove_retained && m->retain && m->payload_len)
		remove_retained(c, o, m);
	if (o->no_retained && m->retain)
		return;
	client_fmt_msg(m, &fm, kv);
	if (output_message(o, &fm, &s->out) != 0) {
		s->status = EXIT_USAGE;
		s->done = true;
		return;
	}
	if (o->count && ++s->received >= o->count)
		s->done = true;
}

/* The subscription identifier of -D subscribe subscription-identifier. */
static uint32_t sub_id(const struct cli_opts *o)
{
	for (int i = 0; i < o->n_props; i++)
		if (o->props[i].cmd == PROP_SUBSCRIBE && o->props[i].id == 0x0B)
			return o->props[i].num;
	return 0;
}

/* One SUBSCRIBE with every -t; a refused filter is an error (exit 4). */
static int subscribe(struct sub_state *s, tern_client *c)
{
	const struct cli_opts *o = s->cs.o;
	struct tern_sub subs[CLI_MAX_TOPICS];
	uint8_t codes[CLI_MAX_TOPICS];
	int rc, status = EXIT_OK;

	for (int i = 0; i < o->n_topics; i++)
		subs[i] = (struct tern_sub){o->topics[i], o->qos, o->no_local,
		                            o->retain_as_published,
		                            o->retain_handling};
	rc = tern_client_subscribe_wait(c, subs, (size_t)o->n_topics, sub_id(o),
	                                SUBACK_TIMEOUT_MS, codes);
	if (rc != 0) {
		if (s->cs.lost)
			return client_lost(&s->cs);
		client_err(o, "subscribe failed: %s", tern_strerror(rc));
		return rc == TERN_EINVAL ? EXIT_USAGE : EXIT_LOST;
	}
	for (int i = 0; i < o->n_topics; i++) {
		if (codes[i] < 0x80) {
			client_debug(o, "subscribed to '%s' (granted QoS %d)",
			             o->topics[i], codes[i]);
			continue;
		}
		client_err(o, "subscription to '%s' refused: %s (0x%02x)",
		           o->topics[i],
		           client_reason(o->version, codes[i], false),
		           codes[i]);
		status = EXIT_REJECTED;
	}
	return status;
}

int cmd_sub(int argc, char **argv)
{
	struct sub_state s = {0};
	struct cli_opts o;
	tern_client *c = NULL;
	uint64_t start;
	int status;

	status = cli_opts_parse(&o, CLI_SUB, argc, argv);
	if (status != 0) {
		cli_opts_free(&o);
		return status > 0 ? EXIT_OK : EXIT_USAGE;
	}
	s.cs.o = &o;
	s.cs.reconnect = true;
	client_ignore_sigpipe();
	status = client_open(
	        &s.cs, &(struct tern_callbacks){.on_message = on_message}, &c);
	if (status != EXIT_OK)
		goto out;
	/* Only once connected: during a blocking connect SIGINT should kill
	 * at once rather than wait for the connect timeout. Before the SUBACK
	 * (-d prints "subscribed"), so that a script may signal after it. */
	client_signals();
	start = clock_ms();
	status = subscribe(&s, c);
	if (status != EXIT_OK || o.exit_after_suback)
		goto out;
	status = client_run(&s.cs, c, &s.done, o.timeout, start);
	if (status == EXIT_OK)
		status = s.status;
out:
	/* Long enough for --remove-retained's deletions to be written. */
	client_close(c, 2000);
	fmt_buf_free(&s.out);
	cli_opts_free(&o);
	return status;
}
