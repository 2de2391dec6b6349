/*
 * ternd's configuration: Mosquitto's syntax (`key value`, `#` comments, keys
 * after `listener` apply to that listener) read through one declarative key
 * table (STYLE.md #11). Unknown keys and bad values are refused with
 * file:line and a reason. See docs/configuration.md for every key.
 */
#ifndef TERN_BROKER_CONFIG_H
#define TERN_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum listener_protocol { PROTO_MQTT = 0, PROTO_WEBSOCKETS = 1 };

/*
 * Authentication and access control settings (Mosquitto's
 * per_listener_settings set). With per_listener_settings false, the one in
 * struct config applies to every listener. With true, every `listener`
 * line starts a set of its own (nothing inherited), and the set in struct
 * config belongs to the default listeners, those no `listener` line made
 * (the local-only defaults and -p ports). A new security key goes in here
 * and in config.c's table with scope S_SECURITY; auth_load() loads one
 * snapshot part per set (auth.h).
 */
struct security_cfg {
	int allow_anonymous; /* -1 unset, 0, 1 */
	char *password_file;
	char *acl_file;
	/* tern: JSON Web Tokens as CONNECT passwords (jwt.h); JWT is on
	 * when one of the two key files is set. */
	char *jwt_hs256_secret_file;
	char *jwt_rs256_public_key_file;
	char *jwt_username_claim; /* NULL: "sub" */
	char *jwt_acl_claim;      /* NULL: "acl" */
	char *jwt_issuer;         /* NULL: iss not checked */
	char *jwt_audience;       /* NULL: aud not checked */
	uint32_t jwt_leeway;      /* seconds, 0 */
	int jwt_require_exp;      /* -1 unset (true), 0, 1 */
};

struct listener_cfg {
	uint16_t port;
	char *bind;              /* address to bind, NULL = all addresses */
	bool from_file;          /* made by a `listener` line (not a default) */
	struct security_cfg sec; /* used with per_listener_settings true */
	int protocol;            /* enum listener_protocol */
	int max_connections;     /* -1 = unlimited */

	/* WebSocket listeners (tern's keys; NULL = default). */
	char *ws_paths;             /* "/mqtt" or a list: "/mqtt /ws" */
	char *ws_subprotocols;      /* "mqtt,mqttv3.1" */
	char *ws_origins;           /* allowed Origin values; NULL = any */
	bool ws_compression;        /* permessage-deflate offered */
	uint32_t ws_max_frame_size; /* largest client message; 0 = packet max */
	char *http_dir; /* static files instead of the built-in ones */
	/* Any listener: addresses/CIDRs whose X-Forwarded-For, X-Real-IP or
	 * PROXY header is believed; connections that start with a PROXY
	 * header. */
	char *trusted_proxies;
	bool proxy_protocol;

	/* TLS (Mosquitto's keys): a listener with certfile speaks TLS (mqtts,
	 * or wss when protocol is websockets). */
	char *certfile;
	char *keyfile;
	char *keyfile_password;
	char *cafile;
	char *capath;
	char *crlfile;
	char *ciphers;
	char *ciphers_tls13;
	char *tls_groups; /* tern: key exchange groups */
	char *tls_version;
	bool require_certificate;
	bool use_identity_as_username;
	bool use_subject_as_username;
};

/* Log type bits for log_type. */
enum {
	LOGT_ERROR = 1 << 0,
	LOGT_WARNING = 1 << 1,
	LOGT_NOTICE = 1 << 2,
	LOGT_INFORMATION = 1 << 3,
	LOGT_DEBUG = 1 << 4,
	LOGT_SUBSCRIBE = 1 << 5,
	LOGT_UNSUBSCRIBE = 1 << 6,
	LOGT_ALL = 0x7f,
};

/* Log destination bits for log_dest. */
enum {
	LOGD_STDOUT = 1 << 0,
	LOGD_STDERR = 1 << 1,
	LOGD_FILE = 1 << 2,
	LOGD_NONE = 1 << 3
};

/* memory_limit when not set: decided at start (memlimit_default). */
#define CONFIG_MEMORY_AUTO UINT64_MAX

struct config {
	struct listener_cfg *listeners;
	size_t nlisteners;
	bool local_only; /* no listener configured: 127.0.0.1 and ::1 */

	/* Every listener's security settings, or with per_listener_settings
	 * the default listeners' (see struct security_cfg). */
	struct security_cfg sec;
	bool per_listener_settings;

	int max_queued_messages;   /* 1000; 0 = unlimited */
	uint64_t max_queued_bytes; /* 0 = unlimited */
	int max_inflight_messages; /* 20; also our Receive Maximum; 0 = 65535 */
	int max_connections;       /* -1 = unlimited */
	int max_connections_per_address;  /* tern: -1 = unlimited */
	int max_subscriptions_per_client; /* tern: -1 = unlimited */
	uint16_t max_topic_length;        /* tern: bytes, 0 = none */
	uint16_t max_topic_levels;        /* tern: 0 = none */
	/* tern: per client, PUBLISH packets and bytes a second; 0 = none */
	uint32_t max_publish_rate;
	uint64_t max_publish_bytes_rate;
	/* tern: bytes of accounted memory (memlimit.h); 0 = off; default
	 * CONFIG_MEMORY_AUTO, half of the memory available */
	uint64_t memory_limit;
	uint32_t max_packet_size;    /* 0 = protocol maximum */
	uint32_t message_size_limit; /* 0 = none; payload bytes */
	uint16_t max_keepalive;      /* 65535 */
	uint32_t connect_timeout; /* tern: seconds from accept to CONNECT, 10 */

	int sys_interval;           /* 10; 0 disables $SYS */
	bool connection_messages;   /* true */
	unsigned log_dest;          /* LOGD_* bits; default stderr */
	char *log_file;             /* with log_dest file */
	unsigned log_type;          /* LOGT_* bits */
	char *log_timestamp_format; /* strftime format, NULL = unix seconds */
	bool log_timestamp;         /* true */

	char *pid_file;
	/* Started as root, ternd switches to this user once its sockets,
	 * log, store and keys are open (apps/ternd.c); NULL = stay. */
	char *user;
	int threads; /* 0 = number of cores */

	/* Durability (persist.h). */
	bool persistence;               /* false */
	char *persistence_location;     /* directory, NULL = current */
	char *persistence_file;         /* NULL = tern.db */
	int persistence_sync;           /* enum: 0 off, 1 batch, 2 always */
	uint64_t persistence_max_bytes; /* 0 = no limit */
	int persistence_corrupt;        /* 0 fail, 1 move aside */
	int autosave_interval; /* accepted (Mosquitto); tern saves always */

	/* HTTP admin API and /metrics on websockets listeners (http_api.h):
	 * the API is off unless admin_token or admin_user with
	 * admin_password_file is set. */
	char *admin_user;
	char *admin_password_file; /* Mosquitto password-file format */
	char *admin_token;         /* bearer token */
	bool metrics_public;       /* /metrics open to all, not loopback only */
};

/* Fills *c with defaults (no listeners). */
void config_init(struct config *c);

/*
 * Frees everything config_init/config_load allocated and leaves *c as
 * config_init does, so calling it twice is safe.
 */
void config_free(struct config *c);

/*
 * Reads `path` into *c (which must be config_init'ed). Returns 0, or
 * TERN_ECONFIG with a message "FILE:LINE: reason" written into
 * err[0..errlen) (TERN_ENOMEM with "out of memory"). A missing file is an
 * error. On error *c may be partly filled; the caller still config_free()s.
 */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Same, from a string (for tests and the embedded default config). */
int config_parse(struct config *c, const char *text, const char *name,
                 char *err, size_t errlen);

/*
 * Applies what loading leaves implicit: with no listener, local-only mode on
 * 1883 with anonymous allowed; with listeners and allow_anonymous unset,
 * anonymous is refused (Mosquitto 2.0), in every set of security settings.
 * Returns 0 or TERN_ENOMEM.
 */
int config_finish(struct config *c);

/*
 * Whether a topic name or filter of `len` bytes is over max_topic_length
 * or max_topic_levels (levels are '/'-separated; a "$share/GROUP/" prefix
 * counts as written). Linear in len.
 */
bool config_topic_over_limit(const struct config *c, const char *topic,
                             size_t len);

/*
 * The security settings that apply to listener `i` (its own with
 * per_listener_settings true and a `listener` line behind it, else the
 * global set). An index past the listeners gets the global set.
 */
const struct security_cfg *config_security(const struct config *c, size_t i);

/* Adds a listener on `port` (for -p). Returns 0 or TERN_ENOMEM. */
int config_add_listener(struct config *c, uint16_t port, const char *bind);

#endif
