/*
 * CONNECT: validation beyond the codec's (client id rules, keep alive
 * limits, authentication), session lookup, takeover of a session attached
 * elsewhere, clean start, CONNACK, and resending what was in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/acl.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/msg.h"
#include "broker/persist.h"
#include "broker/session.h"
#include "broker/sys.h"
#include "broker/worker.h"
#include "net/tls.h"

/* Sends a refusing CONNACK (v3 code or v5 reason) and closes. */
static int connect_refuse(struct conn *c, uint8_t v3_code, uint8_t v5_reason,
                          const char *why)
{
	struct mqtt_packet p;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	p.u.connack.reason = c->version == MQTT_V5 ? v5_reason : v3_code;
	conn_send(c, &p);
	conn_close(c, 0, why);
	return TERN_EPROTO;
}

/* Reads the protocol level of a "MQTT" CONNECT body, 0 if not there. */
static uint8_t connect_peek_level(const uint8_t *body, size_t len)
{
	if (len >= 7 && body[0] == 0 && body[1] == 4 &&
	    memcmp(body + 2, "MQTT", 4) == 0)
		return body[6];
	return 0;
}

int handle_connect_invalid(struct conn *c, const uint8_t *body, size_t len,
                           int rc, const struct mqtt_error *err)
{
	const char *why = err->what ? err->what : tern_strerror(rc);

	if (rc == TERN_EVERSION) {
		/* We cannot know which version the client would understand;
		 * answer in 3.1.1 form, which MQTT 5 §3.1.2.2 allows. */
		c->version = MQTT_V311;
		return connect_refuse(c,
		                      err->connack_rc
		                              ? err->connack_rc
		                              : MQTT3_CONNACK_BAD_VERSION,
		                      MQTT_RC_UNSUPPORTED_VERSION, why);
	}
	/* v5 §3.1.4: a malformed or invalid CONNECT may be answered with a
	 * CONNACK carrying the reason before closing; v3 just closes. */
	if (connect_peek_level(body, len) == MQTT_V5) {
		c->version = MQTT_V5;
		return connect_refuse(
		        c, 0, err->reason ? err->reason : MQTT_RC_MALFORMED,
		        why);
	}
	conn_close(c, 0, why);
	return rc;
}

static char *str_dup(struct mqtt_str s)
{
	char *d = malloc((size_t)s.len + 1);

	if (d) {
		memcpy(d, s.p, s.len);
		d[s.len] = '\0';
	}
	return d;
}

/* Sets c->client_id, assigning one where the rules allow. */
static int connect_client_id(struct conn *c, const struct mqtt_connect *cn,
                             bool *assigned)
{
	struct broker *b = c->w->b;
	char buf[48];

	*assigned = false;
	if (cn->client_id.len) {
		/* NUL is already refused by the UTF-8 check. */
		c->client_id = str_dup(cn->client_id);
		return c->client_id ? 0 : TERN_ENOMEM;
	}
	/* MQTT 3.1.3.1: a zero-length id needs clean session; 3.1 has no
	 * zero-length ids at all. */
	if (c->version == MQTT_V31 || (c->version == MQTT_V311 && !cn->clean))
		return connect_refuse(c, MQTT3_CONNACK_ID_REJECTED,
		                      MQTT_RC_CLIENT_ID_INVALID,
		                      "empty client id without clean session");
	snprintf(buf, sizeof(buf), "tern-%llx-%llx",
	         (unsigned long long)b->start_ms,
	         (unsigned long long)atomic_fetch_add(&b->next_assigned_id, 1));
	c->client_id = strdup(buf);
	*assigned = c->version == MQTT_V5;
	return c->client_id ? 0 : TERN_ENOMEM;
}

/* Applies max_keepalive; returns <0 after refusing a v3 client. */
static int connect_keepalive(struct conn *c, const struct mqtt_connect *cn,
                             bool *server_ka)
{
	uint16_t max = c->w->b->cfg->max_keepalive;

	c->keepalive = cn->keepalive;
	*server_ka = false;
	if (!max || max == 65535 || (cn->keepalive && cn->keepalive <= max))
		return 0;
	if (c->version == MQTT_V5) {
		/* v5 can be told: Server Keep Alive (§3.2.2.3.14), also
		 * replacing "no keep alive" (0). */
		c->keepalive = max;
		*server_ka = true;
		return 0;
	}
	/* v3 cannot be told another keep alive; refuse as Mosquitto does.
	 * A v3 keep alive of 0 (none) is left alone, as Mosquitto does. */
	if (cn->keepalive == 0)
		return 0;
	STAT_LIMIT(c->w->b, LIM_MAX_KEEPALIVE);
	return connect_refuse(c, MQTT3_CONNACK_ID_REJECTED,
	                      MQTT_RC_CLIENT_ID_INVALID,
	                      "keepalive above max_keepalive");
}

/*
 * use_identity_as_username / use_subject_as_username (Mosquitto): the
 * verified client certificate is the credential and its CN (or subject) the
 * username ACLs see; the CONNECT's username and password are not used. A
 * missing certificate or an identity that is not valid UTF-8 is refused.
 */
static int connect_cert_identity(struct conn *c)
{
	char id[1024];
	int rc = c->ls->cfg->use_identity_as_username
	                 ? tls_peer_cn(c->tls, id, sizeof(id))
	                 : tls_peer_subject(c->tls, id, sizeof(id));

	if (rc != 0)
		return connect_refuse(
		        c, MQTT3_CONNACK_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED,
		        rc == TERN_ENOENT ? "no client certificate identity"
		                          : "client certificate identity is "
		                            "not a valid username");
	c->username = strdup(id);
	return c->username ? 0 : TERN_ENOMEM;
}

/* Whether a CONNECT username was given, not empty, and differs from s. */
static bool other_username(const struct mqtt_connect *cn, const char *s)
{
	return cn->has_username && cn->username.len &&
	       (strlen(s) != cn->username.len ||
	        memcmp(s, cn->username.p, cn->username.len) != 0);
}

/*
 * A CONNECT whose password is a JWT (auth.h). The token's username claim
 * becomes the client's username, so ACLs and %u see the token's user: a
 * CONNECT username, when given and not empty, must equal it. The topics
 * claim restricts this connection (c->grant) and the connection is closed
 * when the token runs out (c->token_until). Every refusal is v3 4 / v5
 * 0x86 (bad user name or password), counted by cause.
 */
static int connect_jwt(struct conn *c, const struct mqtt_connect *cn)
{
	int64_t now = (int64_t)clock_unix_s();
	struct jwt_claims cl;
	char why[64];
	int r = (int)auth_jwt_verify(c->w->auth, c->ls->index, cn->password.p,
	                             cn->password.len, now, &cl);

	if (r == JWT_OK && other_username(cn, cl.username))
		r = JWT_WRONG_USERNAME;
	STAT_ADD(c->w->b, jwt_auth[r], 1);
	if (r != JWT_OK) {
		jwt_claims_free(&cl);
		snprintf(why, sizeof(why), "token refused (%s)",
		         sys_jwt_cause(r));
		return connect_refuse(c, MQTT3_CONNACK_BAD_CREDENTIALS,
		                      MQTT_RC_BAD_USER_OR_PASSWORD, why);
	}
	c->username = cl.username;
	cl.username = NULL;
	/* The deadline in clock_ms() time is never before `until`: now was
	 * rounded down. */
	if (cl.until)
		c->token_until = clock_ms() + (uint64_t)(cl.until - now) * 1000;
	if (cl.acl && !(c->grant = auth_grant_new(cl.acl, cl.acl_json,
	                                          cl.acl_json_len))) {
		cl.acl = NULL;
		cl.acl_json = NULL;
		return TERN_ENOMEM;
	}
	cl.acl = NULL;
	cl.acl_json = NULL;
	jwt_claims_free(&cl);
	return 0;
}

static int connect_auth(struct conn *c, const struct mqtt_connect *cn)
{
	enum auth_result r;

	if (cn->props.present & MQTT_PBIT(MQTT_PROP_AUTH_METHOD))
		return connect_refuse(c, MQTT3_CONNACK_NOT_AUTHORIZED,
		                      MQTT_RC_BAD_AUTH_METHOD,
		                      "unsupported authentication method");
	if (c->tls && (c->ls->cfg->use_identity_as_username ||
	               c->ls->cfg->use_subject_as_username))
		return connect_cert_identity(c);
	if (auth_is_jwt(c->w->auth, c->ls->index, cn->password.p,
	                cn->password.len, cn->has_password))
		return connect_jwt(c, cn);
	if (cn->has_username && !(c->username = str_dup(cn->username)))
		return TERN_ENOMEM;
	r = auth_connect(c->w->auth, c->ls->index, c->username, cn->password.p,
	                 cn->password.len, cn->has_password);
	if (r == AUTH_BAD_CREDENTIALS)
		return connect_refuse(c, MQTT3_CONNACK_BAD_CREDENTIALS,
		                      MQTT_RC_BAD_USER_OR_PASSWORD,
		                      "bad username or password");
	if (r == AUTH_NOT_AUTHORIZED)
		return connect_refuse(c, MQTT3_CONNACK_NOT_AUTHORIZED,
		                      MQTT_RC_NOT_AUTHORIZED, "not authorised");
	return 0;
}

static int connect_will(struct conn *c, const struct mqtt_connect *cn)
{
	struct mqtt_publish pub;

	if (!cn->will)
		return 0;
	/* A will is a publish on the client's behalf: it needs write access
	 * to its topic. Refused here, the client learns why (Mosquitto
	 * accepts it and silently drops the will when it is due). */
	if (!auth_allows(c->w->auth, c->ls->index, c->client_id, c->username,
	                 (const char *)cn->will_topic.p, cn->will_topic.len,
	                 ACL_WRITE) ||
	    !auth_grant_allows(c->grant, c->client_id, c->username,
	                       (const char *)cn->will_topic.p,
	                       cn->will_topic.len, ACL_WRITE))
		return connect_refuse(c, MQTT3_CONNACK_NOT_AUTHORIZED,
		                      MQTT_RC_NOT_AUTHORIZED,
		                      "will topic not authorised");
	memset(&pub, 0, sizeof(pub));
	pub.qos = cn->will_qos;
	pub.retain = cn->will_retain;
	pub.payload = cn->will_payload.p;
	pub.payload_len = cn->will_payload.len;
	pub.props = cn->will_props;
	c->will = msg_new(&pub, (const char *)cn->will_topic.p,
	                  cn->will_topic.len, NULL, clock_ms());
	if (!c->will)
		return TERN_ENOMEM;
	/* A will is memory a client makes the broker hold (memory_limit). */
	msg_charge(c->will, &c->w->b->mem.msgs);
	if (cn->will_props.present & MQTT_PBIT(MQTT_PROP_WILL_DELAY))
		c->will_delay = cn->will_props.will_delay;
	return 0;
}

/* Ends a session that a clean start replaces; caller holds both locks.
 * Returns its will if it may still be published (broker_will_allowed). */
static struct msg *connect_end_session(struct broker *b, struct session *s)
{
	struct msg *will = s->will;

	s->will = NULL;
	if (will && !broker_will_allowed(b, will, s->listener, s->client_id,
	                                 s->username)) {
		msg_unref(will);
		will = NULL;
	}
	session_clear_subs(b, s);
	session_clear_messages(b, s);
	session_remove(b, s);
	return will;
}

/*
 * Finds or creates the session and attaches it to c, taking over from a
 * connection elsewhere. Returns the session locked (s->mu), or NULL on OOM.
 * *stale_will is a will of an ended session to publish after unlocking.
 */
static struct session *connect_attach(struct conn *c,
                                      const struct mqtt_connect *cn,
                                      bool *present, struct msg **stale_will)
{
	struct broker *b = c->w->b;
	struct worker *old_w = NULL;
	uint64_t old_id = 0;
	struct session *s;

	*present = false;
	*stale_will = NULL;
	pthread_mutex_lock(&b->sess_mu);
	s = session_find(b, c->client_id);
	if (s) {
		bool expired;

		pthread_mutex_lock(&s->mu);
		/* Expired but not yet swept (the sweep runs every 250 ms;
		 * a store loaded at start may hold such sessions for their
		 * wills): it ends now, as with clean start. */
		expired = session_expired(s, clock_ms());
		if (s->w) {
			/* Takeover: the old connection learns it through its
			 * worker's inbox and finds the session no longer its
			 * own (conn_session_lock). */
			old_w = s->w;
			old_id = s->conn_id;
			s->w = NULL;
			s->conn = NULL;
			s->conn_id = 0;
		} else {
			STAT_ADD(b, sessions_offline, -1);
		}
		if (cn->clean || expired) {
			/* Keep s alive until unlocked: the table held the
			 * last reference. */
			session_ref(s);
			*stale_will = connect_end_session(b, s);
			pthread_mutex_unlock(&s->mu);
			session_unref(s);
			s = NULL;
		} else {
			*present = true;
			/* Back before the will delay ran out: no will. */
			msg_unref(s->will);
			s->will = NULL;
		}
	}
	if (!s) {
		s = session_new(c->client_id);
		if (!s || session_insert(b, s) != 0) {
			session_unref(s);
			pthread_mutex_unlock(&b->sess_mu);
			return NULL;
		}
		session_unref(s); /* the table holds it */
		pthread_mutex_lock(&s->mu);
	}
	s->w = c->w;
	s->conn = c;
	s->conn_id = c->id;
	pthread_mutex_unlock(&b->sess_mu);
	c->s = session_ref(s);
	if (old_w)
		worker_post_kick(old_w, old_id, MQTT_RC_SESSION_TAKEN_OVER);
	return s;
}

/* Copies the client's v5 limits into the connection and session. */
static void connect_limits(struct conn *c, struct session *s,
                           const struct mqtt_connect *cn)
{
	const struct mqtt_props *pr = &cn->props;

	s->version = c->version;
	s->transport = (uint8_t)c->transport;
	s->listener = c->ls->index;
	snprintf(s->peer, sizeof(s->peer), "%s", c->peer);
	s->connected_at = clock_ms();
	free(s->username);
	s->username = c->username ? strdup(c->username) : NULL;
	/* The new connection's token decides from now on, also for what
	 * an earlier token had let the session subscribe to. */
	auth_grant_unref(s->grant);
	s->grant = auth_grant_ref(c->grant);
	s->recv_max = 65535;
	c->client_max_packet = 0;
	if (pr->present & MQTT_PBIT(MQTT_PROP_RECEIVE_MAXIMUM))
		s->recv_max = pr->receive_maximum;
	if (pr->present & MQTT_PBIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
		c->client_max_packet = pr->maximum_packet_size;
	if (pr->present & MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
		c->client_alias_max = pr->topic_alias_maximum;
	s->client_max_packet = c->client_max_packet;
	if (c->version == MQTT_V5)
		s->expiry = (pr->present & MQTT_PBIT(MQTT_PROP_SESSION_EXPIRY))
		                    ? pr->session_expiry
		                    : 0;
	else
		s->expiry = cn->clean ? 0 : UINT32_MAX;
	c->session_expiry = s->expiry;
}

/*
 * Writes the session to the store when it outlives its connection
 * (expiry > 0), with the connection's will, which a restart after a
 * crash publishes; a resumed durable session that now has expiry 0 is
 * deleted from the store. Caller holds s->mu.
 */
static void connect_persist(struct conn *c, struct session *s)
{
	struct persist *p = c->w->b->persist;

	if (p && s->expiry > 0) {
		s->p = p;
		persist_session_put(s, c->will, c->will_delay, 0);
	} else if (s->p) {
		persist_session_end(s);
	}
}

static int connect_send_connack(struct conn *c, bool present, bool assigned,
                                bool server_ka)
{
	const struct config *cfg = c->w->b->cfg;
	struct mqtt_packet p;
	struct mqtt_props *pr = &p.u.connack.props;

	memset(&p, 0, sizeof(p));
	p.type = MQTT_CONNACK;
	p.u.connack.session_present = present;
	if (c->version != MQTT_V5)
		return conn_send(c, &p);
	pr->present = MQTT_PBIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM) |
	              MQTT_PBIT(MQTT_PROP_RECEIVE_MAXIMUM);
	pr->topic_alias_maximum = CONN_TOPIC_ALIAS_MAX;
	pr->receive_maximum = cfg->max_inflight_messages > 0 &&
	                                      cfg->max_inflight_messages < 65535
	                              ? (uint16_t)cfg->max_inflight_messages
	                              : 65535;
	if (assigned) {
		pr->present |= MQTT_PBIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
		pr->assigned_client_id.p = (const uint8_t *)c->client_id;
		pr->assigned_client_id.len = (uint16_t)strlen(c->client_id);
	}
	if (server_ka) {
		pr->present |= MQTT_PBIT(MQTT_PROP_SERVER_KEEP_ALIVE);
		pr->server_keep_alive = c->keepalive;
	}
	if (cfg->max_packet_size) {
		pr->present |= MQTT_PBIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
		pr->maximum_packet_size = cfg->max_packet_size;
	}
	return conn_send(c, &p);
}

/* Resends what was in flight when the last connection ended (MQTT 4.4). */
static void connect_resend(struct conn *c, struct session *s)
{
	uint64_t now = clock_ms();
	uint32_t i;

	for (i = 0; i < s->ninfl; i++) {
		struct qmsg *q = &s->infl[i];

		if (q->state == QS_WAIT_PUBCOMP) {
			conn_send_ack(c, MQTT_PUBREL, q->pid, 0);
			continue;
		}
		q->dup = true;
		if (conn_send_publish(c, q, now) != 0) {
			session_infl_remove(s, (int)i);
			i--;
		}
	}
}

int handle_connect(struct conn *c, struct mqtt_packet *p)
{
	const struct mqtt_connect *cn = &p->u.connect;
	struct broker *b = c->w->b;
	bool assigned, server_ka, present;
	struct msg *stale_will;
	struct session *s;
	int rc;

	c->version = cn->version;
	if ((rc = connect_client_id(c, cn, &assigned)) != 0 ||
	    (rc = connect_keepalive(c, cn, &server_ka)) != 0 ||
	    (rc = connect_auth(c, cn)) != 0)
		goto fail;
	if ((rc = connect_will(c, cn)) != 0)
		goto fail;
	s = connect_attach(c, cn, &present, &stale_will);
	if (!s) {
		rc = TERN_ENOMEM;
		goto fail;
	}
	connect_limits(c, s, cn);
	connect_persist(c, s);
	c->state = CONN_ACTIVE;
	connect_send_connack(c, present, assigned, server_ka);
	connect_resend(c, s);
	conn_pump_locked(c, s);
	pthread_mutex_unlock(&s->mu);
	broker_count_client(b, c->transport, 1);
	STAT_ADD(b, clients_total_seen, 1);
	if (b->cfg->connection_messages)
		log_msg(LOG_NOTICE,
		        "New client connected from %s as %s (p%d, c%d, "
		        "k%u%s%s%s) "
		        "over %s.",
		        c->peer, c->client_id, c->version == MQTT_V5 ? 5 : 2,
		        cn->clean ? 1 : 0, c->keepalive,
		        c->username ? ", u'" : "",
		        c->username ? c->username : "", c->username ? "'" : "",
		        conn_transport_name(c->transport));
	if (stale_will) {
		broker_publish(b, c->w, stale_will, NULL);
		msg_unref(stale_will);
	}
	return 0;
fail:
	if (rc == TERN_ENOMEM)
		conn_close(c, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
	return rc;
}
