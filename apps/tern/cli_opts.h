/*
 * The command line shared by `tern pub`, `tern sub` and `tern rr`: one
 * table of Mosquitto-compatible flags (which subcommands take each, how its
 * argument is parsed, its --help line) filling one struct cli_opts. The
 * subcommands then read only the struct. Parsing checks everything that can
 * be checked without a network, so mistakes fail before connecting.
 */
#ifndef TERN_APPS_CLI_OPTS_H
#define TERN_APPS_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Subcommands, as a bit mask: each flag lists the ones that take it. */
enum cli_cmd {
	CLI_PUB = 1,
	CLI_SUB = 2,
	CLI_RR = 4,
};

enum cli_scheme {
	SCHEME_MQTT,
	SCHEME_MQTTS,
	SCHEME_WS,
	SCHEME_WSS,
};

/* Where `tern pub`'s payload comes from (-m, -f, -l, -s, -n). */
enum cli_msg_src {
	MSG_NONE,
	MSG_ARG,   /* -m */
	MSG_FILE,  /* -f: the whole file, one message */
	MSG_LINES, /* -l: one message per stdin line */
	MSG_STDIN, /* -s: all of stdin, one message */
	MSG_NULL,  /* -n: zero-length payload */
};

/* The packets a -D property can go into. */
enum cli_prop_cmd {
	PROP_CONNECT = 1,
	PROP_PUBLISH = 2,
	PROP_SUBSCRIBE = 4,
	PROP_UNSUBSCRIBE = 8,
	PROP_DISCONNECT = 16,
	PROP_WILL = 32,
};

/* How a property's value is encoded on the wire (MQTT 5.0 §2.2.2.2). */
enum cli_prop_type {
	PT_BYTE,
	PT_U16,
	PT_U32,
	PT_VARINT,
	PT_STRING,
	PT_BINARY,
	PT_PAIR,
};

/* One -D CMD NAME VALUE [VALUE2]; strings point into argv. */
struct cli_prop {
	enum cli_prop_cmd cmd;
	uint8_t id;       /* MQTT property identifier */
	const char *name; /* Mosquitto's name, for messages */
	enum cli_prop_type type;
	uint32_t num;     /* numeric types */
	const char *str;  /* string, binary, or a user property's key */
	const char *str2; /* a user property's value */
};

#define CLI_MAX_TOPICS 64
#define CLI_MAX_PROPS  64

struct cli_opts {
	enum cli_cmd cmd;
	const char *prog; /* "tern pub" etc., for messages */

	/* Where to connect. host/port/scheme/path are final after parsing:
	 * -L is split into them and -h/-p override its parts. */
	enum cli_scheme scheme;
	char *host; /* owned */
	int port;
	char *path; /* owned; the WebSocket path, default /mqtt */

	/* CONNECT */
	char *client_id; /* owned; generated when -i is not given */
	int keepalive;
	char *username; /* owned */
	char *password; /* owned; from -P, --pw-file or TERN_PASSWORD */
	int version;    /* 3 (3.1), 4 (3.1.1) or 5 */
	bool clean;
	bool has_session_expiry;
	uint32_t session_expiry;
	const char *will_topic;
	const char *will_payload;
	int will_qos;
	bool will_retain;

	/* TLS */
	const char *cafile;
	const char *capath;
	const char *cert;
	const char *key;
	const char *tls_version;
	bool insecure;

	/* Topics: -t (pub/rr: exactly one; sub: one or more), -T. */
	const char *topics[CLI_MAX_TOPICS];
	int n_topics;
	char *url_topic; /* owned; the topic of -L mqtt://host/topic */
	const char *filter_out[CLI_MAX_TOPICS];
	int n_filter_out;
	int qos;

	/* pub and rr */
	enum cli_msg_src msg_src;
	const char *message; /* -m */
	const char *file;    /* -f */
	bool retain;
	long repeat;         /* pub: total publishes of the message */
	double repeat_delay; /* seconds between repeats */

	/* sub and rr output */
	bool verbose;
	const char *format; /* -F */
	bool json;
	bool no_eol;
	long count;   /* -C: 0 = unlimited (rr: default 1) */
	long timeout; /* -W seconds: 0 = none */

	/* sub only */
	bool no_retained;
	bool retained_only;
	bool remove_retained;
	bool exit_after_suback;
	bool no_local;
	bool retain_as_published;
	int retain_handling;

	/* rr */
	const char *response_topic; /* -e */
	const char *correlation;    /* --correlation-data; default random */

	bool debug;
	bool quiet;

	struct cli_prop props[CLI_MAX_PROPS];
	int n_props;
};

/*
 * Parses argv (argv[0] is the subcommand name) for subcommand cmd into o,
 * which the caller frees with cli_opts_free even on failure. Returns 0; 1 after
 * printing --help (the caller exits 0); or -1 after printing an error to
 * stderr (the caller exits 1). Reads --pw-file and the environment.
 */
int cli_opts_parse(struct cli_opts *o, enum cli_cmd cmd, int argc, char **argv);

/* Frees what cli_opts_parse allocated; the struct may then be parsed again. */
void cli_opts_free(struct cli_opts *o);

/* Prints the --help text of cmd to f. */
void cli_opts_usage(enum cli_cmd cmd, FILE *f);

/* "mqtt", "mqtts", "ws" or "wss". */
const char *cli_opts_scheme_name(enum cli_scheme s);

#endif
