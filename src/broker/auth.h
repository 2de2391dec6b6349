/*
 * Authentication and authorisation as one immutable snapshot: the password
 * file, the ACL file and allow_anonymous of every listener (one set shared
 * by all, or with per_listener_settings one per listener, config.h), and
 * the admin API's users, loaded together. SIGHUP loads a new snapshot and
 * swaps it in; a snapshot that fails to load, for any listener, is never
 * swapped in, so a broken file keeps the old rules (fail closed) instead of
 * falling back to defaults. Workers hold a reference to the snapshot they
 * use, refreshed before each connection event; a connection finds its
 * listener's rules in it by the listener's index.
 */
#ifndef TERN_BROKER_AUTH_H
#define TERN_BROKER_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/jwt.h"

struct acl;
struct config;
struct passwd_db;

/* One set of security settings, loaded (struct security_cfg). */
struct auth_sec {
	struct passwd_db *pw; /* NULL: no password_file */
	struct acl *acl;      /* NULL: no acl_file (everything allowed) */
	bool allow_anonymous;
	struct jwt *jwt; /* NULL: no JWT key (jwt_*_file) */
};

/* A listener index for a client whose listener is not known (a session
 * restored from the store that has not reconnected yet): it gets only what
 * every listener's rules allow. */
#define AUTH_ANY_LISTENER ((size_t)-1)

struct auth {
	atomic_uint refs;
	/* secs[0] is struct config's set; with per_listener_settings, one
	 * more per listener that has its own. */
	struct auth_sec *secs;
	size_t nsecs;
	/* Listener i's rules: by_listener[i] points into secs. */
	const struct auth_sec **by_listener;
	size_t nlisteners;
	/* The HTTP admin API's users (admin_password_file); NULL: none.
	 * Global, whatever per_listener_settings says. */
	struct passwd_db *admin_pw;
};

/* Outcome of a CONNECT's credentials. */
enum auth_result {
	AUTH_OK = 0,
	AUTH_BAD_CREDENTIALS, /* v3 4, v5 0x86 */
	AUTH_NOT_AUTHORIZED,  /* v3 5, v5 0x87 */
};

/*
 * Loads the password and ACL files of every set of security settings in
 * cfg and the admin password file; an admin_user without
 * admin_password_file (or the reverse) is refused. Returns 0 with *out (one
 * reference), or TERN_ECONFIG / TERN_ENOMEM with a message in err (naming
 * the listener's port when the file belongs to one listener).
 */
int auth_load(const struct config *cfg, struct auth **out, char *err,
              size_t errlen);

static inline struct auth *auth_ref(struct auth *a)
{
	atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
	return a;
}

/* Drops a reference; the last one frees the files' contents. NULL ok. */
void auth_unref(struct auth *a);

/* Listener `listener`'s rules; an index past the listeners gets secs[0].
 * Not for AUTH_ANY_LISTENER. */
const struct auth_sec *auth_listener(const struct auth *a, size_t listener);

/*
 * Checks CONNECT credentials against the rules of the listener the client
 * came in on: anonymous clients need allow_anonymous; with a password file a
 * username must have the right password. Without a password file and with
 * anonymous access refused, nobody is let in (fail closed), as with no
 * snapshot (a NULL).
 */
enum auth_result auth_connect(const struct auth *a, size_t listener,
                              const char *username, const uint8_t *password,
                              size_t pwlen, bool has_password);

/*
 * JSON Web Tokens. With a JWT key on the listener, a CONNECT password that
 * has a token's shape (jwt_looks_like) is a token: it is verified, and
 * refused if it fails, never tried against the password file. Any other
 * password goes to auth_connect() as before. auth_is_jwt() tells which;
 * auth_jwt_verify() verifies at `now` (Unix seconds), see jwt_verify().
 */
bool auth_is_jwt(const struct auth *a, size_t listener, const uint8_t *password,
                 size_t pwlen, bool has_password);
enum jwt_result auth_jwt_verify(const struct auth *a, size_t listener,
                                const uint8_t *token, size_t len, int64_t now,
                                struct jwt_claims *out);

/*
 * What a token's topics claim lets one connection do, on top of the
 * listener's rules: shared by the connection and its session (which checks
 * deliveries with it), immutable, freed with the last reference. It keeps
 * the claim's JSON text, which a durable session stores (persist.h) and
 * auth_grant_parse() turns back into the same grant after a restart.
 * auth_grant_new() takes over acl and json (freeing both if it fails:
 * NULL).
 */
struct auth_grant {
	atomic_uint refs;
	struct acl *acl;
	char *json; /* the topics claim (jwt_claims.acl_json); not a string */
	size_t json_len;
};

struct auth_grant *auth_grant_new(struct acl *acl, char *json, size_t json_len);

/*
 * A grant rebuilt from a stored claim text with the token's parser
 * (jwt_acl_parse). Returns 0 with *out (one reference), TERN_EINVAL when
 * the text is not a valid topics claim, or TERN_ENOMEM.
 */
int auth_grant_parse(const char *json, size_t len, struct auth_grant **out);

/* A grant that allows nothing (fail closed: a stored claim that no longer
 * parses), keeping json (copied) so that it is stored again as it was.
 * NULL on OOM. */
struct auth_grant *auth_grant_deny_all(const char *json, size_t len);

static inline struct auth_grant *auth_grant_ref(struct auth_grant *g)
{
	if (g)
		atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

/* Drops a reference; NULL ok. */
void auth_grant_unref(struct auth_grant *g);

/* Whether the grant allows `access` on topic (acl_check); a NULL grant
 * (no topics claim, or no token) allows everything. */
bool auth_grant_allows(const struct auth_grant *g, const char *client_id,
                       const char *username, const char *topic, size_t len,
                       int access);

/*
 * Whether the client of listener `listener` (or AUTH_ANY_LISTENER) may act
 * on topic: `access` is ACL_READ, ACL_WRITE or ACL_SUBSCRIBE (acl.h).
 * Writing to "$SYS" or below is always refused, on every listener;
 * everything else is allowed without an ACL file. A NULL snapshot refuses.
 */
bool auth_allows(const struct auth *a, size_t listener, const char *client_id,
                 const char *username, const char *topic, size_t len,
                 int access);

#endif
