/* The authentication/authorisation snapshot; see auth.h. */
#include "broker/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/error.h"
#include "base/file.h"
#include "broker/acl.h"
#include "broker/config.h"
#include "broker/passwd.h"

/* Whether any JWT key is set, or any other JWT setting. */
static bool jwt_keyed(const struct security_cfg *c)
{
	return c->jwt_hs256_secret_file || c->jwt_rs256_public_key_file;
}

static bool jwt_other(const struct security_cfg *c)
{
	return c->jwt_username_claim || c->jwt_acl_claim || c->jwt_issuer ||
	       c->jwt_audience || c->jwt_leeway || c->jwt_require_exp >= 0;
}

/* Reads a key file into *out (NUL-terminated, caller frees). The secret
 * is the file's text without its final line end, so a file written by
 * `echo SECRET > file` holds SECRET. */
static int read_key(const char *path, bool strip, char **out, size_t *len,
                    char *err, size_t errlen)
{
	int rc = file_read_text(path, out, err, errlen);

	if (rc)
		return rc;
	*len = strlen(*out);
	if (strip && *len && (*out)[*len - 1] == '\n')
		(*out)[--*len] = '\0';
	if (strip && *len && (*out)[*len - 1] == '\r')
		(*out)[--*len] = '\0';
	return 0;
}

/* Loads the JWT keys and settings of one set; errors name the file. */
static int jwt_load(struct auth_sec *s, const struct security_cfg *c, char *err,
                    size_t errlen)
{
	struct jwt_opts o = {
	        .username_claim = c->jwt_username_claim,
	        .acl_claim = c->jwt_acl_claim,
	        .issuer = c->jwt_issuer,
	        .audience = c->jwt_audience,
	        .leeway = c->jwt_leeway,
	        .require_exp = c->jwt_require_exp != 0,
	};
	char *secret = NULL, *pem = NULL, inner[256] = "";
	const char *path = NULL;
	int rc = 0;

	if (!jwt_keyed(c)) {
		if (!jwt_other(c))
			return 0;
		snprintf(err, errlen,
		         "jwt_* settings need jwt_hs256_secret_file or "
		         "jwt_rs256_public_key_file");
		return TERN_ECONFIG;
	}
	if ((path = c->jwt_hs256_secret_file) &&
	    (rc = read_key(path, true, &secret, &o.hs256_len, err, errlen)))
		goto out;
	if ((path = c->jwt_rs256_public_key_file) &&
	    (rc = read_key(path, false, &pem, &o.rs256_pem_len, err, errlen)))
		goto out;
	o.hs256_secret = (const uint8_t *)secret;
	o.rs256_pem = pem;
	rc = jwt_new(&o, &s->jwt, inner, sizeof(inner));
	if (rc == TERN_ECONFIG)
		/* Name the file the complaint is about. */
		snprintf(err, errlen, "%s: %s",
		         strstr(inner, "HS256") ? c->jwt_hs256_secret_file
		                                : c->jwt_rs256_public_key_file,
		         inner);
	else if (rc)
		snprintf(err, errlen, "%s", inner);
out:
	if (secret)
		OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
	free(pem);
	return rc;
}

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
	if (rc == 0)
		rc = jwt_load(s, cfg, inner, sizeof(inner));
	if (rc)
		snprintf(err, errlen, "%s%s", where, inner);
	return rc;
}

static void sec_free(struct auth_sec *s)
{
	passwd_free(s->pw);
	acl_free(s->acl);
	jwt_free(s->jwt);
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

bool auth_is_jwt(const struct auth *a, size_t listener, const uint8_t *password,
                 size_t pwlen, bool has_password)
{
	return a && has_password && auth_listener(a, listener)->jwt &&
	       jwt_looks_like(password, pwlen);
}

enum jwt_result auth_jwt_verify(const struct auth *a, size_t listener,
                                const uint8_t *token, size_t len, int64_t now,
                                struct jwt_claims *out)
{
	return jwt_verify(auth_listener(a, listener)->jwt, token, len, now,
	                  out);
}

struct auth_grant *auth_grant_new(struct acl *acl, char *json, size_t json_len)
{
	struct auth_grant *g = malloc(sizeof(*g));

	if (!g) {
		acl_free(acl);
		free(json);
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->acl = acl;
	g->json = json;
	g->json_len = json ? json_len : 0;
	return g;
}

/* A copy of len bytes (at least one allocated); NULL on OOM. */
static char *bytes_dup(const char *p, size_t len)
{
	char *d = malloc(len ? len : 1);

	if (d && len)
		memcpy(d, p, len);
	return d;
}

int auth_grant_parse(const char *json, size_t len, struct auth_grant **out)
{
	struct acl *acl = NULL;
	enum jwt_result r = jwt_acl_parse(json, len, &acl);
	char *copy;

	*out = NULL;
	if (r != JWT_OK)
		return r == JWT_NOMEM ? TERN_ENOMEM : TERN_EINVAL;
	if (!(copy = bytes_dup(json, len))) {
		acl_free(acl);
		return TERN_ENOMEM;
	}
	*out = auth_grant_new(acl, copy, len);
	return *out ? 0 : TERN_ENOMEM;
}

struct auth_grant *auth_grant_deny_all(const char *json, size_t len)
{
	struct acl *acl = NULL;
	char *copy;

	/* An ACL without rules denies everything (acl.h). */
	if (acl_new(&acl) != 0)
		return NULL;
	if (!(copy = bytes_dup(json, len))) {
		acl_free(acl);
		return NULL;
	}
	return auth_grant_new(acl, copy, len);
}

void auth_grant_unref(struct auth_grant *g)
{
	if (!g ||
	    atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	acl_free(g->acl);
	free(g->json);
	free(g);
}

bool auth_grant_allows(const struct auth_grant *g, const char *client_id,
                       const char *username, const char *topic, size_t len,
                       int access)
{
	return !g || acl_check(g->acl, client_id, username, topic, len, access);
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
	/* One set for every listener: one check. */
	if (a->nsecs == 1)
		return sec_allows(&a->secs[0], client_id, username, topic, len,
		                  access);
	for (i = 0; i < a->nlisteners; i++)
		if (!sec_allows(a->by_listener[i], client_id, username, topic,
		                len, access))
			return false;
	return true;
}
