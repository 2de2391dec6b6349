/* The authentication/authorisation snapshot; see auth.h. */
#include "broker/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "broker/acl.h"
#include "broker/config.h"
#include "broker/passwd.h"

int auth_load(const struct config *cfg, struct auth **out, char *err,
              size_t errlen)
{
	struct auth *a = calloc(1, sizeof(*a));
	int rc;

	*out = NULL;
	if (!a)
		return TERN_ENOMEM;
	atomic_init(&a->refs, 1);
	a->allow_anonymous = cfg->allow_anonymous == 1;
	if (cfg->password_file &&
	    (rc = passwd_load(cfg->password_file, &a->pw, err, errlen)) != 0)
		goto fail;
	if (cfg->acl_file &&
	    (rc = acl_load(cfg->acl_file, &a->acl, err, errlen)) != 0)
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
	if (!a ||
	    atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
		return;
	passwd_free(a->pw);
	passwd_free(a->admin_pw);
	acl_free(a->acl);
	free(a);
}

enum auth_result auth_connect(const struct auth *a, const char *username,
                              const uint8_t *password, size_t pwlen,
                              bool has_password)
{
	if (!username)
		return a->allow_anonymous ? AUTH_OK : AUTH_NOT_AUTHORIZED;
	if (!a->pw)
		return a->allow_anonymous ? AUTH_OK : AUTH_NOT_AUTHORIZED;
	/* passwd_check spends the same time on unknown users. */
	if (!has_password || !passwd_check(a->pw, username, password, pwlen))
		return AUTH_BAD_CREDENTIALS;
	return AUTH_OK;
}

/* Whether topic is "$SYS" or below it. */
static bool is_sys(const char *topic, size_t len)
{
	return len >= 4 && memcmp(topic, "$SYS", 4) == 0 &&
	       (len == 4 || topic[4] == '/');
}

bool auth_allows(const struct auth *a, const char *client_id,
                 const char *username, const char *topic, size_t len,
                 int access)
{
	if (!a)
		return false; /* no snapshot yet: fail closed */
	/* $SYS is the broker's own: no client writes there, whatever the
	 * ACL says (as in Mosquitto), so its statistics cannot be forged. */
	if (access == ACL_WRITE && is_sys(topic, len))
		return false;
	if (!a->acl)
		return true;
	return acl_check(a->acl, client_id, username, topic, len, access);
}
