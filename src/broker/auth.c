/* The authentication/authorisation snapshot; see auth.h. */
#include "broker/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "broker/acl.h"
#include "broker/config.h"
#include "broker/passwd.h"

/* Loads one set of security settings; `where` names it in errors. */
static int sec_load(struct auth_sec *s, const struct security_cfg *cfg,
                    const char *where, char *err, size_t errlen)
{
	char inner[448];
	int rc = 0;

	inner[0] = '\0';
	s->allow_anonymous = cfg->allow_anonymous == 1;
	if (cfg->password_file)
		rc = passwd_load(cfg->password_file, &s->pw, inner,
		                 sizeof(inner));
	if (rc == 0 && cfg->acl_file)
		rc = acl_load(cfg->acl_file, &s->acl, inner, sizeof(inner));
	if (rc)
		snprintf(err, errlen, "%s%s", where, inner);
	return rc;
}

static void sec_free(struct auth_sec *s)
{
	passwd_free(s->pw);
	acl_free(s->acl);
}

/* Loads secs[0] from cfg->sec and, with per_listener_settings, one set per
 * listener with its own, then points every listener at its set. */
static int load_listeners(struct auth *a, const struct config *cfg, char *err,
                          size_t errlen)
{
	size_t i, n = 1;
	char where[64];
	int rc;

	if (cfg->per_listener_settings)
		for (i = 0; i < cfg->nlisteners; i++)
			n += cfg->listeners[i].from_file;
	a->secs = calloc(n, sizeof(*a->secs));
	a->by_listener = calloc(cfg->nlisteners + 1, sizeof(*a->by_listener));
	if (!a->secs || !a->by_listener) {
		snprintf(err, errlen, "out of memory");
		return TERN_ENOMEM;
	}
	a->nlisteners = cfg->nlisteners;
	if ((rc = sec_load(&a->secs[a->nsecs++], &cfg->sec, "", err, errlen)))
		return rc;
	for (i = 0; i < cfg->nlisteners; i++) {
		const struct security_cfg *sc = config_security(cfg, i);

		if (sc == &cfg->sec) {
			a->by_listener[i] = &a->secs[0];
			continue;
		}
		snprintf(where, sizeof(where),
		         "listener %u: ", cfg->listeners[i].port);
		rc = sec_load(&a->secs[a->nsecs++], sc, where, err, errlen);
		if (rc)
			return rc;
		a->by_listener[i] = &a->secs[a->nsecs - 1];
	}
	return 0;
}

int auth_load(const struct config *cfg, struct auth **out, char *err,
              size_t errlen)
{
	struct auth *a = calloc(1, sizeof(*a));
	int rc;

	*out = NULL;
	if (!a)
		return TERN_ENOMEM;
	atomic_init(&a->refs, 1);
	if ((rc = load_listeners(a, cfg, err, errlen)) != 0)
		goto fail;
	rc = TERN_ECONFIG;
	if (!cfg->admin_user != !cfg->admin_password_file) {
		snprintf(err, errlen,
		         "admin_user and admin_password_file go "
		         "together");
		goto fail;
	}
	if (cfg->admin_password_file &&
	    (rc = passwd_load(cfg->admin_password_file, &a->admin_pw, err,
	                      errlen)) != 0)
		goto fail;
	*out = a;
	return 0;
fail:
	auth_unref(a);
	return rc;
}

void auth_unref(struct auth *a)
{
	size_t i;

	if (!a ||
	    atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (i = 0; i < a->nsecs; i++)
		sec_free(&a->secs[i]);
	free(a->secs);
	free(a->by_listener);
	passwd_free(a->admin_pw);
	free(a);
}

const struct auth_sec *auth_listener(const struct auth *a, size_t listener)
{
	if (listener < a->nlisteners)
		return a->by_listener[listener];
	return &a->secs[0];
}

enum auth_result auth_connect(const struct auth *a, size_t listener,
                              const char *username, const uint8_t *password,
                              size_t pwlen, bool has_password)
{
	const struct auth_sec *s;

	if (!a)
		return AUTH_NOT_AUTHORIZED; /* no snapshot yet: fail closed */
	s = auth_listener(a, listener);
	if (!username || !s->pw)
		return s->allow_anonymous ? AUTH_OK : AUTH_NOT_AUTHORIZED;
	/* passwd_check spends the same time on unknown users. */
	if (!has_password || !passwd_check(s->pw, username, password, pwlen))
		return AUTH_BAD_CREDENTIALS;
	return AUTH_OK;
}

/* Whether topic is "$SYS" or below it. */
static bool is_sys(const char *topic, size_t len)
{
	return len >= 4 && memcmp(topic, "$SYS", 4) == 0 &&
	       (len == 4 || topic[4] == '/');
}

static bool sec_allows(const struct auth_sec *s, const char *client_id,
                       const char *username, const char *topic, size_t len,
                       int access)
{
	return !s->acl ||
	       acl_check(s->acl, client_id, username, topic, len, access);
}

bool auth_allows(const struct auth *a, size_t listener, const char *client_id,
                 const char *username, const char *topic, size_t len,
                 int access)
{
	size_t i;

	if (!a)
		return false; /* no snapshot yet: fail closed */
	/* $SYS is the broker's own: no client writes there, whatever the
	 * ACL says (as in Mosquitto), so its statistics cannot be forged. */
	if (access == ACL_WRITE && is_sys(topic, len))
		return false;
	if (listener != AUTH_ANY_LISTENER)
		return sec_allows(auth_listener(a, listener), client_id,
		                  username, topic, len, access);
	if (a->nlisteners == 0)
		return sec_allows(&a->secs[0], client_id, username, topic, len,
		                  access);
	for (i = 0; i < a->nlisteners; i++)
		if (!sec_allows(a->by_listener[i], client_id, username, topic,
		                len, access))
			return false;
	return true;
}
