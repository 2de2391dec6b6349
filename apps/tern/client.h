/*
 * The glue between the command line (struct cli_opts) and libtern, shared
 * by `tern pub`, `tern sub` and `tern rr`: building the client options
 * (URL, TLS, will, -D properties), connecting with errors a user can act
 * on, the exit statuses, reason-code names, and turning a received
 * tern_message into the formatter's fmt_msg.
 */
#ifndef TERN_APPS_CLIENT_H
#define TERN_APPS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_opts.h"
#include "format.h"
#include "tern/tern.h"

/* Exit statuses (docs/cli.md). */
enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,    /* bad command line or a local problem */
	EXIT_NETWORK = 2,  /* could not reach the broker (TCP, TLS, ws) */
	EXIT_REFUSED = 3,  /* CONNACK refused the connection */
	EXIT_REJECTED = 4, /* a PUBLISH or SUBSCRIBE was refused */
	EXIT_LOST = 5,     /* connection lost before the work was done */
	EXIT_TIMEOUT = 27, /* -W passed (Mosquitto's status) */
};

/* What the shared callbacks record; embedded first in each command's
 * state so that the callbacks' userdata points at both. */
struct client_state {
	const struct cli_opts *o;
	/* Set by the caller before client_open: reconnect after a lost
	 * connection (with libtern's backoff) instead of ending. */
	bool reconnect;
	bool connected;
	bool was_connected;
	/* Set by the loop thread under `tern pub`, read by the main one. */
	_Atomic bool lost;       /* a connection that was up went down */
	_Atomic int lost_rc;     /* its cause (TERN_E*) */
	_Atomic int lost_reason; /* v5 DISCONNECT reason, or -1 */
	int connect_reason;
	char why[256]; /* the last connection failure, in words */
};

/* A PUBLISH's v5 properties built from the -D flags of one packet type
 * (PROP_PUBLISH or PROP_WILL); props points into the struct itself. */
struct client_props {
	struct tern_props props;
	struct tern_user_prop user[CLI_MAX_PROPS];
};

/*
 * Checks that libtern can send every -D property given (it has no API for
 * some, e.g. SUBSCRIBE user properties); prints the first it cannot.
 * Returns 0 or -1.
 */
int client_check(const struct cli_opts *o);

/* Fills p from o's -D properties for packet (PROP_PUBLISH, PROP_WILL). */
void client_props(const struct cli_opts *o, enum cli_prop_cmd packet,
                  struct client_props *p);

/*
 * Creates the client from o with the shared callbacks plus cb's
 * on_message/on_publish/on_subscribe (cb may be NULL), userdata st
 * (st->o must be set), reconnection as st->reconnect says, and connects
 * (the first attempt is not retried). On success *out is
 * the connected client and EXIT_OK is returned; on failure the reason has
 * been printed and EXIT_USAGE, EXIT_NETWORK or EXIT_REFUSED is returned.
 */
int client_open(struct client_state *st, const struct tern_callbacks *cb,
                tern_client **out);

/*
 * Disconnects cleanly, waiting up to timeout_ms for queued and inflight
 * messages, and destroys the client. NULL is allowed.
 */
void client_close(tern_client *c, int timeout_ms);

/* A short name of an MQTT reason code ("not authorized", ...), for
 * CONNACK codes in the version's own numbering. */
const char *client_reason(int version, int code, bool connack);

/*
 * Makes SIGINT and SIGTERM set a flag that client_run() polls (so `tern
 * sub` disconnects cleanly and exits 0) and ignores SIGPIPE (a closed
 * stdout is reported by output_message instead).
 */
void client_signals(void);

/*
 * Ignores SIGPIPE only (`tern pub`, where SIGINT keeps its default): a
 * write to a closed pipe or socket must be an error, not a silent death.
 */
void client_ignore_sigpipe(void);

/*
 * Drives c on this thread until *done, a signal, a lost connection, or
 * timeout_s seconds (0: none) after start_ms (clock_ms()). Returns
 * EXIT_OK (done or signalled), EXIT_TIMEOUT (message printed) or
 * EXIT_LOST (message printed).
 */
int client_run(struct client_state *st, tern_client *c, const bool *done,
               long timeout_s, uint64_t start_ms);

/* Prints why the connection was lost; returns EXIT_LOST. */
int client_lost(const struct client_state *st);

/* Prints "PROG: message" to stderr unless --quiet. */
void client_err(const struct cli_opts *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Prints "PROG: message" to stderr with -d. */
void client_debug(const struct cli_opts *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/*
 * Describes m for the formatter, with now as its receive time; kv must hold
 * CLI_MAX_PROPS user properties (more are not shown).
 */
void client_fmt_msg(const struct tern_message *m, struct fmt_msg *out,
                    struct fmt_kv *kv);

#endif
