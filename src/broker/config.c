/*
 * Reads ternd's configuration in Mosquitto's syntax. A file is split into
 * lines; each non-blank, non-comment line is `key value`, and the key is
 * looked up in one declarative table (STYLE.md #11) that says where the
 * value is stored (struct config, or the current struct listener_cfg), what
 * type it has and which values are allowed. Generic parsers handle the
 * plain types; the few keys with their own grammar (listener, log_dest,
 * include_dir, ...) have a small handler each. Every error names the file
 * and line; nothing is silently ignored.
 */
#include "broker/config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"

/* Bounds include_dir nesting, so a directory that includes itself (through
 * a symlink, say) ends in an error instead of a stack overflow. */
#define MAX_INCLUDE_DEPTH 8

/* Largest payload an MQTT packet can carry (the remaining length limit). */
#define MQTT_MAX_PAYLOAD 268435455u

/* State of one config_load/config_parse call, shared by included files. */
struct ctx {
	struct config *c;
	const char *name; /* file being read, for messages; NULL before */
	unsigned line;
	int depth;         /* include_dir nesting */
	bool log_dest_set; /* the first log_dest replaces the default */
	bool log_type_set; /* the first log_type replaces the default */
	bool sec_seen;     /* a security key came (per_listener_settings) */
	char *err;
	size_t errlen;
};

enum type {
	T_BOOL,    /* true/false into bool */
	T_TRIBOOL, /* true/false into an int that starts at -1 (unset) */
	T_INT,
	T_U16,
	T_U32,
	T_U64,
	T_STRING,  /* the rest of the line, so paths may contain spaces */
	T_ENUM,    /* one word of key.words into an int */
	T_SPECIAL, /* key.fn does everything */
};

/* Where a key's value goes. S_EITHER: the current listener's field if a
 * listener line came before, else the global one (max_connections).
 * S_SECURITY: a struct security_cfg field, the current listener's with
 * per_listener_settings true, else the global set's. */
enum scope { S_GLOBAL, S_LISTENER, S_EITHER, S_SECURITY };

struct word {
	const char *name;
	unsigned value;
};

struct key;
/* Every parser has this shape so that the table can hold any of them;
 * special handlers cast away the arguments they do not need. */
typedef int (*parse_fn)(struct ctx *x, const struct key *k, void *dst,
                        char *val);

struct key {
	const char *name;
	enum type type;
	enum scope scope;
	size_t off;  /* into struct config (S_GLOBAL, S_EITHER) */
	size_t loff; /* into struct listener_cfg (S_LISTENER, S_EITHER) */
	size_t soff; /* into struct security_cfg (S_SECURITY) */
	int64_t min; /* numbers: allowed range */
	uint64_t max;
	const struct word *words; /* T_ENUM; ends with a NULL name */
	parse_fn fn;              /* T_SPECIAL */
};

static int fail(struct ctx *x, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Writes "FILE:LINE: reason" (or just the reason before any file is open)
 * into the caller's buffer and returns TERN_ECONFIG. */
static int fail(struct ctx *x, const char *fmt, ...)
{
	va_list ap;
	size_t n = 0;
	int r;

	if (!x->err || x->errlen == 0)
		return TERN_ECONFIG;
	x->err[0] = '\0';
	if (x->name) {
		r = snprintf(x->err, x->errlen, "%s:%u: ", x->name, x->line);
		if (r > 0)
			n = (size_t)r < x->errlen ? (size_t)r : x->errlen - 1;
	}
	va_start(ap, fmt);
	vsnprintf(x->err + n, x->errlen - n, fmt, ap);
	va_end(ap);
	return TERN_ECONFIG;
}

static int nomem(struct ctx *x)
{
	fail(x, "out of memory");
	return TERN_ENOMEM;
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' ||
	       ch == '\f';
}

static char *skip_space(char *s)
{
	while (is_space(*s))
		s++;
	return s;
}

/* Cuts the first word off *s: returns it NUL-terminated and leaves *s at the
 * next word (or at the terminating NUL). */
static char *next_word(char **s)
{
	char *w = *s, *p = w;

	while (*p && !is_space(*p))
		p++;
	if (*p)
		*p++ = '\0';
	*s = skip_space(p);
	return w;
}

/* For keys that take exactly one word: refuses anything after it. */
static int one_word(struct ctx *x, const struct key *k, char *val)
{
	char *rest = val;

	next_word(&rest);
	if (*rest)
		return fail(x, "unexpected '%s' after the value of '%s'", rest,
		            k->name);
	return 0;
}

static const struct word *find_word(const struct word *w, const char *s)
{
	for (; w->name; w++)
		if (strcmp(w->name, s) == 0)
			return w;
	return NULL;
}

/* Refuses a word not in the list, naming the words that are allowed. */
static int bad_word(struct ctx *x, const struct key *k, const struct word *w,
                    const char *val)
{
	char list[160] = "";
	size_t n = 0;
	int r;

	for (; w->name && n < sizeof(list); w++) {
		r = snprintf(list + n, sizeof(list) - n, "%s%s", n ? ", " : "",
		             w->name);
		if (r < 0)
			break;
		n += (size_t)r;
	}
	return fail(x, "unknown value '%s' for '%s' (expected one of: %s)", val,
	            k->name, list);
}

static int parse_bool_word(struct ctx *x, const struct key *k, const char *val,
                           bool *out)
{
	/* Mosquitto also takes 1 and 0; existing configs use them. */
	if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
		*out = true;
	else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
		*out = false;
	else
		return fail(x, "'%s' needs true or false, not '%s'", k->name,
		            val);
	return 0;
}

struct num {
	bool neg;
	uint64_t mag;
};

/*
 * Reads a plain decimal number (optional '-', digits, nothing else: no
 * suffixes, no hex, no '+') and checks it against [min, max]. Mosquitto
 * uses atoi(), which turns "10k" into 10 and "ten" into 0; refusing them is
 * the point of this function.
 */
static int parse_num(struct ctx *x, const char *key, const char *val,
                     int64_t min, uint64_t max, struct num *out)
{
	const char *d = val;
	char *end;
	bool ok;

	out->neg = *d == '-';
	d += out->neg;
	if (*d < '0' || *d > '9')
		return fail(x, "'%s' needs a whole number, not '%s'", key, val);
	errno = 0;
	out->mag = strtoull(d, &end, 10);
	if (*end)
		return fail(x, "'%s' needs a whole number, not '%s'", key, val);
	if (out->neg && out->mag > 0)
		ok = errno == 0 && min < 0 &&
		     out->mag - 1 <= (uint64_t)(-(min + 1));
	else
		ok = errno == 0 && out->mag <= max &&
		     (min <= 0 || out->mag >= (uint64_t)min);
	if (!ok)
		return fail(x,
		            "'%s' must be between %" PRId64 " and %" PRIu64
		            ", not '%s'",
		            key, min, max, val);
	return 0;
}

/* Only called once parse_num has range-checked the value, so every field
 * type can hold it. */
static int64_t num_value(struct num n)
{
	return n.neg ? -(int64_t)n.mag : (int64_t)n.mag;
}

static int parse_bool(struct ctx *x, const struct key *k, void *dst, char *val)
{
	return parse_bool_word(x, k, val, dst);
}

static int parse_tribool(struct ctx *x, const struct key *k, void *dst,
                         char *val)
{
	bool b = false;
	int rc = parse_bool_word(x, k, val, &b);

	if (rc == 0)
		*(int *)dst = b;
	return rc;
}

static int parse_number(struct ctx *x, const struct key *k, void *dst,
                        char *val)
{
	struct num n = {0}; /* parse_num() sets it; -O3 cannot tell */
	int rc = parse_num(x, k->name, val, k->min, k->max, &n);

	if (rc)
		return rc;
	switch (k->type) {
	case T_INT: *(int *)dst = (int)num_value(n); break;
	case T_U16: *(uint16_t *)dst = (uint16_t)n.mag; break;
	case T_U32: *(uint32_t *)dst = (uint32_t)n.mag; break;
	default: *(uint64_t *)dst = n.mag; break;
	}
	return 0;
}

/* Strings are refused twice, as Mosquitto does: two password_file lines
 * are more likely a mistake than an override. */
static int parse_string(struct ctx *x, const struct key *k, void *dst,
                        char *val)
{
	char **s = dst;

	if (*s)
		return fail(x, "duplicate '%s'", k->name);
	*s = strdup(val);
	return *s ? 0 : nomem(x);
}

static int parse_enum(struct ctx *x, const struct key *k, void *dst, char *val)
{
	const struct word *w = find_word(k->words, val);

	if (!w)
		return bad_word(x, k, k->words, val);
	*(int *)dst = (int)w->value;
	return 0;
}

static int parse_special(struct ctx *x, const struct key *k, void *dst,
                         char *val)
{
	return k->fn(x, k, dst, val);
}

/* How each generic type is parsed, and whether it takes a single word. */
static const struct {
	parse_fn parse;
	bool one_word;
} types[] = {
        [T_BOOL] = {parse_bool, true},
        [T_TRIBOOL] = {parse_tribool, true},
        [T_INT] = {parse_number, true},
        [T_U16] = {parse_number, true},
        [T_U32] = {parse_number, true},
        [T_U64] = {parse_number, true},
        [T_STRING] = {parse_string, false},
        [T_ENUM] = {parse_enum, true},
        [T_SPECIAL] = {parse_special, false},
};

int config_add_listener(struct config *c, uint16_t port, const char *bind)
{
	struct listener_cfg *l;
	char *b = NULL;

	if (bind && !(b = strdup(bind)))
		return TERN_ENOMEM;
	l = realloc(c->listeners, (c->nlisteners + 1) * sizeof(*l));
	if (!l) {
		free(b);
		return TERN_ENOMEM;
	}
	c->listeners = l;
	l += c->nlisteners++;
	memset(l, 0, sizeof(*l));
	l->port = port;
	l->bind = b;
	l->protocol = PROTO_MQTT;
	l->max_connections = -1;
	l->sec.allow_anonymous = -1;
	l->sec.jwt_require_exp = -1;
	return 0;
}

static bool same_bind(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* `listener PORT [BIND]`. Port 0 (Mosquitto's unix socket form) is
 * refused: tern has no unix socket listeners. */
static int parse_listener(struct ctx *x, const struct key *k, void *dst,
                          char *val)
{
	char *port = next_word(&val), *bind = NULL;
	struct num n = {0}; /* parse_num() sets it; -O3 cannot tell */
	size_t i;
	int rc;

	(void)k;
	(void)dst;

	if ((rc = parse_num(x, "listener", port, 1, 65535, &n)))
		return rc;
	if (*val)
		bind = next_word(&val);
	if (*val)
		return fail(x, "unexpected '%s' after 'listener %s %s'", val,
		            port, bind);
	for (i = 0; i < x->c->nlisteners; i++)
		if (x->c->listeners[i].port == n.mag &&
		    same_bind(x->c->listeners[i].bind, bind))
			return fail(x, "duplicate listener on port %s", port);
	if (config_add_listener(x->c, (uint16_t)n.mag, bind))
		return nomem(x);
	x->c->listeners[x->c->nlisteners - 1].from_file = true;
	return 0;
}

static const struct word log_dests[] = {
        {"stdout", LOGD_STDOUT},
        {"stderr", LOGD_STDERR},
        {"file", LOGD_FILE},
        {"none", LOGD_NONE},
        {NULL, 0},
};

/* `log_dest stdout|stderr|file PATH|none`, repeatable: destinations add
 * up, except that the first one replaces the default and `none` replaces
 * everything before it. */
static int parse_log_dest(struct ctx *x, const struct key *k, void *dst,
                          char *val)
{
	struct config *c = x->c;
	char *word = next_word(&val);
	const struct word *w = find_word(log_dests, word);

	(void)dst;

	if (!w)
		return bad_word(x, k, log_dests, word);
	if (w->value == LOGD_FILE && *val == '\0')
		return fail(x, "'log_dest file' needs a path");
	if (w->value != LOGD_FILE && *val)
		return fail(x, "unexpected '%s' after 'log_dest %s'", val,
		            word);
	if (!x->log_dest_set)
		c->log_dest = 0;
	x->log_dest_set = true;
	if (w->value == LOGD_NONE) {
		c->log_dest = LOGD_NONE;
		return 0;
	}
	if (w->value == LOGD_FILE) {
		if (c->log_file)
			return fail(x, "duplicate 'log_dest file'");
		if (!(c->log_file = strdup(val)))
			return nomem(x);
	}
	c->log_dest = (c->log_dest & ~(unsigned)LOGD_NONE) | w->value;
	return 0;
}

static const struct word log_types[] = {
        {"error", LOGT_ERROR},
        {"warning", LOGT_WARNING},
        {"notice", LOGT_NOTICE},
        {"information", LOGT_INFORMATION},
        {"debug", LOGT_DEBUG},
        {"subscribe", LOGT_SUBSCRIBE},
        {"unsubscribe", LOGT_UNSUBSCRIBE},
        {"all", LOGT_ALL},
        {"none", 0},
        {NULL, 0},
};

/* `log_type TYPE`, repeatable; the same accumulation rules as log_dest. */
static int parse_log_type(struct ctx *x, const struct key *k, void *dst,
                          char *val)
{
	const struct word *w;
	int rc;

	(void)dst;

	if ((rc = one_word(x, k, val)))
		return rc;
	if (!(w = find_word(log_types, val)))
		return bad_word(x, k, log_types, val);
	if (!x->log_type_set)
		x->c->log_type = 0;
	x->log_type_set = true;
	if (w->value == 0)
		x->c->log_type = 0;
	else
		x->c->log_type |= w->value;
	return 0;
}

/* `per_listener_settings true|false`. It decides where the security keys
 * that follow are stored, so (as in Mosquitto) it must come before them:
 * changing it afterwards would leave earlier keys in the wrong set. */
static int parse_per_listener(struct ctx *x, const struct key *k, void *dst,
                              char *val)
{
	bool b = false;
	int rc;

	(void)dst;

	if ((rc = one_word(x, k, val)) || (rc = parse_bool_word(x, k, val, &b)))
		return rc;
	if (x->sec_seen && b != x->c->per_listener_settings)
		return fail(x, "'per_listener_settings' must come before "
		               "allow_anonymous, password_file and acl_file");
	x->c->per_listener_settings = b;
	return 0;
}

/* `user NAME`: one word, since user names have no spaces; whether the
 * user exists is checked at start (apps/ternd.c), not here. */
static int parse_user(struct ctx *x, const struct key *k, void *dst, char *val)
{
	int rc;

	(void)dst;

	if ((rc = one_word(x, k, val)))
		return rc;
	return parse_string(x, k, &x->c->user, val);
}

static int load_file(struct ctx *x, const char *path);

/* Mosquitto's include_dir order: case-insensitive, ties by byte order. */
static int cmp_names(const void *a, const void *b)
{
	const char *s = *(char *const *)a, *t = *(char *const *)b;
	int r = strcasecmp(s, t);

	return r ? r : strcmp(s, t);
}

static bool is_conf_name(const char *name)
{
	size_t n = strlen(name);

	return n > 5 && strcmp(name + n - 5, ".conf") == 0;
}

/* Collects the *.conf names in `dir`, sorted. */
static int list_conf_files(struct ctx *x, const char *dir, char ***out,
                           size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL, **grown;
	size_t n = 0;
	int rc = 0;

	if (!d)
		return fail(x, "include_dir '%s': %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		if (!is_conf_name(de->d_name))
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown)
			goto fail;
		names = grown;
		if (!(names[n] = strdup(de->d_name)))
			goto fail;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	*out = names;
	*count = n;
	return 0;
fail:
	rc = nomem(x);
	closedir(d);
	while (n)
		free(names[--n]);
	free(names);
	return rc;
}

/* `include_dir DIR`: reads DIR/\*.conf in sorted order. Unlike Mosquitto,
 * which silently skips include_dir inside an included file, tern follows
 * it, up to MAX_INCLUDE_DEPTH levels. */
static int parse_include_dir(struct ctx *x, const struct key *k, void *dst,
                             char *val)
{
	char **names = NULL, *path = NULL;
	size_t i, n = 0, len;
	int rc;

	(void)k;
	(void)dst;

	if (x->depth >= MAX_INCLUDE_DEPTH)
		return fail(x, "include_dir nested more than %d deep",
		            MAX_INCLUDE_DEPTH);
	if ((rc = list_conf_files(x, val, &names, &n)))
		return rc;
	for (i = 0; i < n && rc == 0; i++) {
		len = strlen(val) + strlen(names[i]) + 2;
		if (!(path = malloc(len))) {
			rc = nomem(x);
			break;
		}
		snprintf(path, len, "%s/%s", val, names[i]);
		x->depth++;
		rc = load_file(x, path);
		x->depth--;
		free(path);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static const struct word sync_modes[] = {
        {"off", 0},
        {"batch", 1},
        {"always", 2},
        {NULL, 0},
};

static const struct word corrupt_modes[] = {
        {"fail", 0},
        {"move", 1},
        {NULL, 0},
};

static const struct word protocols[] = {
        {"mqtt", PROTO_MQTT},
        {"websockets", PROTO_WEBSOCKETS},
        {NULL, 0},
};

/* Offsets are checked against the field's type at compile time, so a
 * table entry cannot write an int parser's result into a bool. */
#define CFG(f, T)                                                              \
	_Generic(((struct config *)0)->f, T : offsetof(struct config, f))
#define LCFG(f, T)                                                             \
	_Generic(((struct listener_cfg *)0)->f, T                              \
	         : offsetof(struct listener_cfg, f))
#define SCFG(f, T)                                                             \
	_Generic(((struct security_cfg *)0)->f, T                              \
	         : offsetof(struct security_cfg, f))

/* The table reads better one key to a line than as clang-format would
 * lay out designated initialisers. */
/* clang-format off */
#define BOOL(n, f) {.name = n, .type = T_BOOL, .off = CFG(f, bool)}
#define STRING(n, f) {.name = n, .type = T_STRING, .off = CFG(f, char *)}
#define NUM(n, t, T, f, lo, hi) \
	{.name = n, .type = t, .off = CFG(f, T), .min = lo, .max = hi}
#define SPECIAL(n, f) {.name = n, .type = T_SPECIAL, .fn = f}
#define LSTRING(n, f) {.name = n, .type = T_STRING, .scope = S_LISTENER, \
	.loff = LCFG(f, char *)}
#define SSTRING(n, f) {.name = n, .type = T_STRING, .scope = S_SECURITY, \
	.soff = SCFG(f, char *)}

static const struct key keys[] = {
	SPECIAL("listener", parse_listener),
	{.name = "protocol", .type = T_ENUM, .scope = S_LISTENER,
	 .loff = LCFG(protocol, int), .words = protocols},
	{.name = "max_connections", .type = T_INT, .scope = S_EITHER,
	 .off = CFG(max_connections, int),
	 .loff = LCFG(max_connections, int), .min = -1, .max = INT_MAX},
	NUM("max_connections_per_address", T_INT, int,
	    max_connections_per_address, -1, INT_MAX),
	NUM("max_subscriptions_per_client", T_INT, int,
	    max_subscriptions_per_client, -1, INT_MAX),
	NUM("max_topic_length", T_U16, uint16_t, max_topic_length, 0, 65535),
	NUM("max_topic_levels", T_U16, uint16_t, max_topic_levels, 0, 65535),
	NUM("max_publish_rate", T_U32, uint32_t, max_publish_rate,
	    0, UINT32_MAX),
	/* 2^40 (TBUCKET_RATE_MAX): a terabyte a second is no limit. */
	NUM("max_publish_bytes_rate", T_U64, uint64_t, max_publish_bytes_rate,
	    0, UINT64_C(1) << 40),
	/* The top of the range stays free for CONFIG_MEMORY_AUTO. */
	NUM("memory_limit", T_U64, uint64_t, memory_limit,
	    0, UINT64_C(1) << 62),
	{.name = "allow_anonymous", .type = T_TRIBOOL, .scope = S_SECURITY,
	 .soff = SCFG(allow_anonymous, int)},
	SSTRING("password_file", password_file),
	SSTRING("acl_file", acl_file),
	SSTRING("jwt_hs256_secret_file", jwt_hs256_secret_file),
	SSTRING("jwt_rs256_public_key_file", jwt_rs256_public_key_file),
	SSTRING("jwt_username_claim", jwt_username_claim),
	SSTRING("jwt_acl_claim", jwt_acl_claim),
	SSTRING("jwt_issuer", jwt_issuer),
	SSTRING("jwt_audience", jwt_audience),
	/* An hour of allowance for clock skew is already generous. */
	{.name = "jwt_leeway", .type = T_U32, .scope = S_SECURITY,
	 .soff = SCFG(jwt_leeway, uint32_t), .min = 0, .max = 3600},
	{.name = "jwt_require_exp", .type = T_TRIBOOL, .scope = S_SECURITY,
	 .soff = SCFG(jwt_require_exp, int)},
	NUM("max_queued_messages", T_INT, int, max_queued_messages,
	    0, INT_MAX),
	NUM("max_queued_bytes", T_U64, uint64_t, max_queued_bytes,
	    0, UINT64_MAX),
	NUM("max_inflight_messages", T_INT, int, max_inflight_messages,
	    0, 65535),
	/* Mosquitto refuses values below 20: no packet is that small. */
	NUM("max_packet_size", T_U32, uint32_t, max_packet_size,
	    20, UINT32_MAX),
	NUM("message_size_limit", T_U32, uint32_t, message_size_limit,
	    0, MQTT_MAX_PAYLOAD),
	NUM("max_keepalive", T_U16, uint16_t, max_keepalive, 0, 65535),
	/* 0 would drop every client before it could send CONNECT. */
	NUM("connect_timeout", T_U32, uint32_t, connect_timeout, 1, 86400),
	NUM("sys_interval", T_INT, int, sys_interval, 0, 65535),
	BOOL("connection_messages", connection_messages),
	SPECIAL("log_dest", parse_log_dest),
	SPECIAL("log_type", parse_log_type),
	BOOL("log_timestamp", log_timestamp),
	STRING("log_timestamp_format", log_timestamp_format),
	STRING("pid_file", pid_file),
	NUM("threads", T_INT, int, threads, 0, 1024),
	BOOL("persistence", persistence),
	STRING("persistence_location", persistence_location),
	STRING("persistence_file", persistence_file),
	{.name = "persistence_sync", .type = T_ENUM,
	 .off = CFG(persistence_sync, int), .words = sync_modes},
	NUM("persistence_max_bytes", T_U64, uint64_t, persistence_max_bytes,
	    0, UINT64_MAX),
	{.name = "persistence_corrupt", .type = T_ENUM,
	 .off = CFG(persistence_corrupt, int), .words = corrupt_modes},
	NUM("autosave_interval", T_INT, int, autosave_interval, 0, INT_MAX),
	SPECIAL("per_listener_settings", parse_per_listener),
	STRING("admin_user", admin_user),
	STRING("admin_password_file", admin_password_file),
	STRING("admin_token", admin_token),
	BOOL("metrics_public", metrics_public),
	LSTRING("ws_path", ws_paths),
	LSTRING("ws_subprotocols", ws_subprotocols),
	LSTRING("ws_origins", ws_origins),
	LSTRING("http_dir", http_dir),
	LSTRING("trusted_proxies", trusted_proxies),
	LSTRING("certfile", certfile),
	LSTRING("keyfile", keyfile),
	LSTRING("keyfile_password", keyfile_password),
	LSTRING("cafile", cafile),
	LSTRING("capath", capath),
	LSTRING("crlfile", crlfile),
	LSTRING("ciphers", ciphers),
	LSTRING("ciphers_tls1.3", ciphers_tls13),
	LSTRING("tls_groups", tls_groups),
	LSTRING("tls_version", tls_version),
	{.name = "require_certificate", .type = T_BOOL, .scope = S_LISTENER,
	 .loff = LCFG(require_certificate, bool)},
	{.name = "use_identity_as_username", .type = T_BOOL,
	 .scope = S_LISTENER, .loff = LCFG(use_identity_as_username, bool)},
	{.name = "use_subject_as_username", .type = T_BOOL,
	 .scope = S_LISTENER, .loff = LCFG(use_subject_as_username, bool)},
	{.name = "ws_compression", .type = T_BOOL, .scope = S_LISTENER,
	 .loff = LCFG(ws_compression, bool)},
	{.name = "proxy_protocol", .type = T_BOOL, .scope = S_LISTENER,
	 .loff = LCFG(proxy_protocol, bool)},
	{.name = "ws_max_frame_size", .type = T_U32, .scope = S_LISTENER,
	 .loff = LCFG(ws_max_frame_size, uint32_t), .min = 0,
	 .max = UINT32_MAX},
	SPECIAL("include_dir", parse_include_dir),
	SPECIAL("user", parse_user),
};
/* clang-format on */

static const struct key *find_key(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* The field a key writes: in the config, or in the newest listener.
 * NULL when a per-listener key comes before any listener. */
static void *target(struct ctx *x, const struct key *k)
{
	struct config *c = x->c;
	struct listener_cfg *l = NULL;

	if (c->nlisteners)
		l = &c->listeners[c->nlisteners - 1];
	if (k->scope == S_SECURITY) {
		x->sec_seen = true;
		if (c->per_listener_settings && l)
			return (char *)&l->sec + k->soff;
		return (char *)&c->sec + k->soff;
	}
	if (k->scope == S_GLOBAL || (k->scope == S_EITHER && !l))
		return (char *)c + k->off;
	return l ? (char *)l + k->loff : NULL;
}

static int parse_line(struct ctx *x, char *s)
{
	const struct key *k;
	char *end = s + strlen(s), *name;
	void *dst;
	int rc;

	while (end > s && is_space(end[-1]))
		*--end = '\0';
	s = skip_space(s);
	/* As in Mosquitto, '#' starts a comment only at the start of a line:
	 * `password_file /etc/a#b` names a file with a '#' in it. */
	if (*s == '\0' || *s == '#')
		return 0;
	name = next_word(&s);
	if (!(k = find_key(name)))
		return fail(x, "unknown key '%s'", name);
	if (*s == '\0')
		return fail(x, "missing value for '%s'", name);
	if (!(dst = target(x, k)))
		return fail(x, "'%s' must follow a 'listener' line", name);
	if (types[k->type].one_word && (rc = one_word(x, k, s)))
		return rc;
	return types[k->type].parse(x, k, dst, s);
}

/* Parses `len` bytes of `text` in place; text[len] must be writable. */
static int parse_text(struct ctx *x, char *text, size_t len, const char *name)
{
	const char *saved_name = x->name;
	unsigned saved_line = x->line;
	char *p = text, *end = text + len, *eol;
	int rc = 0;

	x->name = name;
	x->line = 0;
	/* Editors on some systems start files with a UTF-8 byte order mark. */
	if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (p < end && rc == 0) {
		x->line++;
		if (!(eol = memchr(p, '\n', (size_t)(end - p))))
			eol = end;
		*eol = '\0';
		if (strlen(p) != (size_t)(eol - p))
			rc = fail(x, "NUL byte in line");
		else
			rc = parse_line(x, p);
		p = eol + 1;
	}
	/* An error message has already been written with this file's name. */
	x->name = saved_name;
	x->line = saved_line;
	return rc;
}

/* Reads a whole file into a NUL-terminated buffer. Returns 0, an errno
 * value, or -1 when out of memory. */
static int read_all(const char *path, char **out, size_t *outlen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL, *grown;
	size_t len = 0, cap = 0, got;
	int err = 0;

	if (!f)
		return errno;
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			if (!(grown = realloc(buf, cap + 1))) {
				err = -1;
				goto fail;
			}
			buf = grown;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
	} while (got > 0);
	if (ferror(f)) {
		err = errno ? errno : EIO;
		goto fail;
	}
	fclose(f);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
fail:
	fclose(f);
	free(buf);
	return err;
}

static int load_file(struct ctx *x, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	int err = read_all(path, &buf, &len), rc;

	if (err == -1)
		return nomem(x);
	if (err)
		return fail(x, "cannot read '%s': %s", path, strerror(err));
	rc = parse_text(x, buf, len, path);
	free(buf);
	return rc;
}

static void ctx_init(struct ctx *x, struct config *c, char *err, size_t errlen)
{
	memset(x, 0, sizeof(*x));
	x->c = c;
	x->err = err;
	x->errlen = errlen;
	if (err && errlen)
		err[0] = '\0';
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct ctx x;

	ctx_init(&x, c, err, errlen);
	return load_file(&x, path);
}

int config_parse(struct config *c, const char *text, const char *name,
                 char *err, size_t errlen)
{
	struct ctx x;
	size_t len = strlen(text);
	char *copy = malloc(len + 1);
	int rc;

	ctx_init(&x, c, err, errlen);
	if (!copy)
		return nomem(&x);
	memcpy(copy, text, len + 1);
	rc = parse_text(&x, copy, len, name);
	free(copy);
	return rc;
}

void config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->sec.allow_anonymous = -1;
	c->sec.jwt_require_exp = -1;
	c->max_queued_messages = 1000;
	c->max_inflight_messages = 20;
	c->max_connections = -1;
	c->max_connections_per_address = -1;
	/* Safe defaults no ordinary client meets: a client that needs more
	 * filters, or deeper topics, has them raised for it (EMQX also
	 * caps levels at 128). */
	c->max_subscriptions_per_client = 10000;
	c->max_topic_levels = 128;
	c->memory_limit = CONFIG_MEMORY_AUTO;
	c->max_keepalive = 65535;
	c->connect_timeout = 10;
	c->sys_interval = 10;
	c->connection_messages = true;
	c->log_dest = LOGD_STDERR;
	c->log_type =
	        LOGT_ERROR | LOGT_WARNING | LOGT_NOTICE | LOGT_INFORMATION;
	c->log_timestamp = true;
	c->autosave_interval = 1800;
	c->persistence_sync = 2; /* always: an acknowledgement means stored */
}

static void security_free(struct security_cfg *s)
{
	free(s->password_file);
	free(s->acl_file);
	free(s->jwt_hs256_secret_file);
	free(s->jwt_rs256_public_key_file);
	free(s->jwt_username_claim);
	free(s->jwt_acl_claim);
	free(s->jwt_issuer);
	free(s->jwt_audience);
}

void config_free(struct config *c)
{
	size_t i;

	for (i = 0; i < c->nlisteners; i++) {
		security_free(&c->listeners[i].sec);
		free(c->listeners[i].bind);
		free(c->listeners[i].ws_paths);
		free(c->listeners[i].ws_subprotocols);
		free(c->listeners[i].ws_origins);
		free(c->listeners[i].http_dir);
		free(c->listeners[i].trusted_proxies);
		free(c->listeners[i].certfile);
		free(c->listeners[i].keyfile);
		free(c->listeners[i].keyfile_password);
		free(c->listeners[i].cafile);
		free(c->listeners[i].capath);
		free(c->listeners[i].crlfile);
		free(c->listeners[i].ciphers);
		free(c->listeners[i].ciphers_tls13);
		free(c->listeners[i].tls_groups);
		free(c->listeners[i].tls_version);
	}
	free(c->listeners);
	security_free(&c->sec);
	free(c->log_file);
	free(c->log_timestamp_format);
	free(c->pid_file);
	free(c->user);
	free(c->persistence_location);
	free(c->persistence_file);
	free(c->admin_user);
	free(c->admin_password_file);
	free(c->admin_token);
	config_init(c);
}

bool config_topic_over_limit(const struct config *c, const char *topic,
                             size_t len)
{
	size_t levels = 1;

	if (c->max_topic_length && len > c->max_topic_length)
		return true;
	if (!c->max_topic_levels)
		return false;
	for (size_t i = 0; i < len; i++)
		if (topic[i] == '/' && ++levels > c->max_topic_levels)
			return true;
	return false;
}

const struct security_cfg *config_security(const struct config *c, size_t i)
{
	if (c->per_listener_settings && i < c->nlisteners &&
	    c->listeners[i].from_file)
		return &c->listeners[i].sec;
	return &c->sec;
}

int config_finish(struct config *c)
{
	size_t i;

	if (c->nlisteners == 0) {
		/* Mosquitto 2.0's safe default: nothing configured means
		 * reachable from this machine only, and then anonymous
		 * clients are harmless enough to allow. */
		if (config_add_listener(c, 1883, NULL) ||
		    config_add_listener(c, 8083, NULL))
			return TERN_ENOMEM;
		c->listeners[1].protocol = PROTO_WEBSOCKETS;
		c->local_only = true;
		if (c->sec.allow_anonymous < 0)
			c->sec.allow_anonymous = 1;
	} else if (c->sec.allow_anonymous < 0) {
		c->sec.allow_anonymous = 0;
	}
	/* A listener of its own is never local-only: unset means refused. */
	for (i = 0; i < c->nlisteners; i++)
		if (c->listeners[i].sec.allow_anonymous < 0)
			c->listeners[i].sec.allow_anonymous = 0;
	return 0;
}
