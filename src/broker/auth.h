/*
 * Authentication and authorisation as one immutable snapshot: the password
 * file, the ACL file and allow_anonymous, loaded together. SIGHUP loads a
 * new snapshot and swaps it in; a snapshot that fails to load is never
 * swapped in, so a broken file keeps the old rules (fail closed) instead of
 * falling back to defaults. Workers hold a reference to the snapshot they
 * use, refreshed once per loop iteration.
 */
#ifndef TERN_BROKER_AUTH_H
#define TERN_BROKER_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acl;
struct config;
struct passwd_db;

struct auth {
	atomic_uint refs;
	struct passwd_db *pw; /* NULL: no password_file */
	struct acl *acl;      /* NULL: no acl_file (everything allowed) */
	bool allow_anonymous;
	/* The HTTP admin API's users (admin_password_file); NULL: none. */
	struct passwd_db *admin_pw;
};

/* Outcome of a CONNECT's credentials. */
enum auth_result {
	AUTH_OK = 0,
	AUTH_BAD_CREDENTIALS, /* v3 4, v5 0x86 */
	AUTH_NOT_AUTHORIZED,  /* v3 5, v5 0x87 */
};

/*
 * Loads the password, ACL and admin password files named by cfg; an
 * admin_user without admin_password_file (or the reverse) is refused.
 * Returns 0 with *out (one
 * reference), or TERN_ECONFIG / TERN_ENOMEM with a message in err.
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

/*
 * Checks CONNECT credentials: anonymous clients need allow_anonymous; with a
 * password file a username must have the right password. Without a password
 * file and with anonymous access refused, nobody is let in (fail closed).
 */
enum auth_result auth_connect(const struct auth *a, const char *username,
                              const uint8_t *password, size_t pwlen,
                              bool has_password);

/*
 * Whether the client may act on topic: `access` is ACL_READ, ACL_WRITE or
 * ACL_SUBSCRIBE (acl.h). Writing to "$SYS" or below is always refused;
 * everything else is allowed without an ACL file.
 */
bool auth_allows(const struct auth *a, const char *client_id,
                 const char *username, const char *topic, size_t len,
                 int access);

#endif
