/*
 * One round of the store thread, after persist.c has taken the batches:
 * compaction (operations made redundant by later ones in the same round
 * are dropped, so a message queued and acknowledged before its round
 * commits never touches the disk), then the writes in one transaction.
 * Also the encoding of messages into store records and back.
 */
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "broker/auth.h"
#include "broker/msg.h"
#include "broker/persist_int.h"
#include "broker/session.h"

/* What identifies the record an operation writes. */
enum kclass { K_NONE = 0, K_Q, K_SUB, K_INQ2, K_SESS, K_RET, K_KILL };

static enum kclass kclass(const struct pop *op)
{
	switch (op->kind) {
	case OP_Q_PUT:
	case OP_Q_UPD:
	case OP_Q_DEL: return K_Q;
	case OP_SUB_PUT:
	case OP_SUB_DEL: return K_SUB;
	case OP_INQ2_PUT:
	case OP_INQ2_DEL: return K_INQ2;
	case OP_SESS_PUT: return K_SESS;
	case OP_RET_PUT:
	case OP_RET_DEL: return K_RET;
	default: return K_NONE;
	}
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

static uint64_t key_hash(const struct pop *op, enum kclass k)
{
	uint64_t h = mix(1469598103934665603ull, k);

	if (k != K_RET)
		h = mix(h, (uint64_t)(uintptr_t)op->s);
	switch (k) {
	case K_Q: return mix(h, op->seq);
	case K_SUB: return hash_bytes(h, op->ptr, op->len);
	case K_INQ2: return mix(h, op->pid);
	case K_RET: return hash_bytes(h, op->m->topic, op->m->topic_len);
	default: return h;
	}
}

static bool key_eq(const struct pop *a, const struct pop *b, enum kclass k)
{
	if (k != K_RET && a->s != b->s)
		return false;
	switch (k) {
	case K_Q: return a->seq == b->seq;
	case K_SUB:
		return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
	case K_INQ2: return a->pid == b->pid;
	case K_RET:
		return a->m->topic_len == b->m->topic_len &&
		       memcmp(a->m->topic, b->m->topic, a->m->topic_len) == 0;
	default: return true;
	}
}

/* Open-addressing map from a key (of ops[i]) to an index into ops. */
struct imap {
	int32_t *slot;
	size_t mask;
};

static int imap_init(struct imap *m, size_t n)
{
	size_t size = 64;

	while (size < n * 2)
		size *= 2;
	m->slot = malloc(size * sizeof(*m->slot));
	if (!m->slot)
		return TERN_ENOMEM;
	memset(m->slot, 0xff, size * sizeof(*m->slot));
	m->mask = size - 1;
	return 0;
}

/* The slot for op's key in class k: holding a matching index, or -1. */
static int32_t *imap_slot(struct imap *m, const struct pop *ops,
                          const struct pop *op, enum kclass k)
{
	size_t i = (size_t)key_hash(op, k) & m->mask;

	for (;; i = (i + 1) & m->mask) {
		int32_t v = m->slot[i];

		if (v < 0 || (kclass(&ops[v]) == k && key_eq(&ops[v], op, k)) ||
		    (k == K_KILL && ops[v].kind == OP_SESS_DEL &&
		     ops[v].s == op->s))
			return &m->slot[i];
	}
}

/* Ops of a session before its (last) deletion in this round are moot. */
static int compact_kills(struct persist *p)
{
	struct imap m;
	size_t i;
	int32_t *sl;

	if (imap_init(&m, p->nops) != 0)
		return TERN_ENOMEM;
	for (i = 0; i < p->nops; i++)
		if (p->ops[i].kind == OP_SESS_DEL)
			*imap_slot(&m, p->ops, &p->ops[i], K_KILL) = (int32_t)i;
	for (i = 0; i < p->nops; i++) {
		struct pop *op = &p->ops[i];

		if (!op->s)
			continue;
		sl = imap_slot(&m, p->ops, op, K_KILL);
		if (*sl > (int32_t)i)
			op->dead = true;
	}
	free(m.slot);
	return 0;
}

/* Folds a queue update into the put of the same round. */
static void fold_update(struct pop *put, struct pop *upd)
{
	put->state = upd->state;
	put->pid = upd->pid;
	put->dup = upd->dup;
	if (!upd->msg_id) {
		put->msg_id = 0;
		msg_unref(put->m);
		put->m = NULL;
	}
	upd->dead = true;
}

/* Applies the rules of one keyed op against the previous live one. */
static void compact_one(struct pop *prev, struct pop *op, int32_t *sl,
                        int32_t i)
{
	if (!prev || prev->dead) {
		*sl = i;
		return;
	}
	switch (op->kind) {
	case OP_Q_UPD:
		if (prev->kind == OP_Q_PUT) {
			fold_update(prev, op);
			return;
		}
		break;
	case OP_Q_DEL:
		if (prev->kind == OP_Q_PUT) {
			/* Queued and gone within one round. */
			prev->dead = op->dead = true;
			return;
		}
		break;
	case OP_RET_PUT:
	case OP_RET_DEL:
		if (prev->seq > op->seq) {
			op->dead = true;
			return;
		}
		break;
	default: break;
	}
	prev->dead = true;
	*sl = i;
}

void persist_compact(struct persist *p)
{
	struct imap m;
	size_t i;

	if (compact_kills(p) != 0 || imap_init(&m, p->nops) != 0)
		return; /* compaction is an optimisation */
	for (i = 0; i < p->nops; i++) {
		struct pop *op = &p->ops[i];
		enum kclass k = kclass(op);
		int32_t *sl;

		if (op->dead || k == K_NONE)
			continue;
		sl = imap_slot(&m, p->ops, op, k);
		compact_one(*sl >= 0 ? &p->ops[*sl] : NULL, op, sl, (int32_t)i);
	}
	free(m.slot);
}

bool pop_is_delete(const struct pop *op)
{
	switch (op->kind) {
	case OP_SESS_DEL:
	case OP_SUB_DEL:
	case OP_Q_UPD:
	case OP_Q_DEL:
	case OP_INQ2_DEL:
	case OP_RET_DEL: return true;
	default: return false;
	}
}

static int apply_session(struct persist *p, const struct pop *op)
{
	/* Always set by persist_session_put; an empty owner stands in for
	 * operations made without one (unit tests of compaction). */
	static const struct pop_owner none;
	const struct pop_owner *o = op->ptr ? op->ptr : &none;
	struct store_session x = {0};
	int n = 0;

	x.client_id = (const uint8_t *)op->s->client_id;
	x.client_id_len = strlen(op->s->client_id);
	x.version = op->version;
	x.expiry = op->u32;
	x.offline_since = op->wall;
	x.will_delay = op->will_delay;
	if (o->has_user) {
		x.username = (const uint8_t *)o->user;
		x.username_len = o->user_len;
	}
	if (o->has_listener) {
		x.has_listener = true;
		x.listener = o->listener;
		x.listener_kind =
		        o->listener < p->nlkind ? p->lkind[o->listener] : NULL;
	}
	/* The claim's text, never the token (a bearer credential). */
	if (o->grant) {
		x.grant =
		        (const uint8_t *)(o->grant->json ? o->grant->json : "");
		x.grant_len = o->grant->json_len;
	}
	if (op->m && (n = persist_encode(p, op->m, false)) < 0)
		return n;
	if (n > 0) {
		x.will = p->enc;
		x.will_len = (size_t)n;
	}
	return store_session_put(p->st, &x);
}

static int apply_msg(struct persist *p, const struct pop *op, int64_t wall,
                     uint64_t mono)
{
	struct store_msg x = {0};
	const struct msg *m = op->m;
	int n = persist_encode(p, m, true);

	if (n < 0)
		return n;
	x.id = op->msg_id;
	x.topic = (const uint8_t *)m->topic;
	x.topic_len = m->topic_len;
	x.payload = m->payload;
	x.payload_len = m->payload_len;
	x.qos = m->qos;
	x.retain = m->retain;
	x.expiry_at = persist_expiry_at(m, wall, mono);
	x.props = n ? p->enc : NULL;
	x.props_len = (size_t)n;
	return store_msg_put(p->st, &x);
}

static void qrow_fields(struct store_qrow *x, const struct pop *op)
{
	memset(x, 0, sizeof(*x));
	x->client_id = (const uint8_t *)op->s->client_id;
	x->client_id_len = strlen(op->s->client_id);
	x->seq = op->seq;
	x->msg_id = op->msg_id;
	x->qos = op->qos;
	x->retain = op->retain;
	x->dup = op->dup;
	x->shared = op->shared;
	x->state = op->state;
	x->pid = op->pid;
	x->subids = op->ptr;
	x->nsubids = op->nsubids;
}

static int apply_retained(struct persist *p, const struct pop *op, int64_t wall,
                          uint64_t mono)
{
	struct store_retained x = {0};
	const struct msg *m = op->m;
	int n;

	if (op->kind == OP_RET_DEL)
		return store_retained_del(p->st, (const uint8_t *)m->topic,
		                          m->topic_len, op->seq);
	if ((n = persist_encode(p, m, true)) < 0)
		return n;
	x.topic = (const uint8_t *)m->topic;
	x.topic_len = m->topic_len;
	x.seq = op->seq;
	x.payload = m->payload;
	x.payload_len = m->payload_len;
	x.qos = m->qos;
	x.expiry_at = persist_expiry_at(m, wall, mono);
	x.props = n ? p->enc : NULL;
	x.props_len = (size_t)n;
	return store_retained_put(p->st, &x);
}

static int apply_op(struct persist *p, const struct pop *op, int64_t wall,
                    uint64_t mono, uint64_t *last_msg)
{
	const uint8_t *cid = op->s ? (const uint8_t *)op->s->client_id : NULL;
	size_t clen = cid ? strlen(op->s->client_id) : 0;
	struct store_qrow q;
	int rc;

	switch (op->kind) {
	case OP_SESS_PUT: return apply_session(p, op);
	case OP_SESS_DEL: return store_session_del(p->st, cid, clen);
	case OP_SUB_PUT: {
		struct store_sub x = {cid,
		                      clen,
		                      op->ptr,
		                      op->len,
		                      op->opts.qos,
		                      op->opts.no_local,
		                      op->opts.retain_as_published,
		                      op->opts.retain_handling,
		                      op->opts.sub_id};

		return store_sub_put(p->st, &x);
	}
	case OP_SUB_DEL:
		return store_sub_del(p->st, cid, clen, op->ptr, op->len);
	case OP_Q_PUT:
		/* A fan-out stores the message once: its rows follow each
		 * other in the publisher's batch. */
		if (op->m && op->msg_id != *last_msg) {
			if ((rc = apply_msg(p, op, wall, mono)) != 0)
				return rc;
			*last_msg = op->msg_id;
		}
		qrow_fields(&q, op);
		return store_qrow_put(p->st, &q);
	case OP_Q_UPD:
		qrow_fields(&q, op);
		rc = store_qrow_update(p->st, &q);
		if (rc == 0 && op->gc_id)
			rc = store_msg_unref(p->st, op->gc_id);
		return rc;
	case OP_Q_DEL: return store_qrow_del(p->st, cid, clen, op->seq);
	case OP_INQ2_PUT: return store_inq2_put(p->st, cid, clen, op->pid);
	case OP_INQ2_DEL: return store_inq2_del(p->st, cid, clen, op->pid);
	case OP_RET_PUT:
	case OP_RET_DEL: return apply_retained(p, op, wall, mono);
	default: return 0;
	}
}

int persist_apply(struct persist *p, enum apply_mode mode)
{
	int64_t wall = persist_wall_ms();
	uint64_t mono = clock_ms(), last_msg = 0;
	size_t i;
	int rc = store_begin(p->st);

	for (i = 0; rc == 0 && i < p->nops; i++) {
		const struct pop *op = &p->ops[i];

		if (op->dead || (mode == APPLY_DELETES && !pop_is_delete(op)))
			continue;
		rc = apply_op(p, op, wall, mono, &last_msg);
	}
	if (rc == 0)
		rc = store_set_alive(p->st, wall);
	if (rc == 0)
		rc = store_commit(p->st);
	if (rc != 0)
		store_rollback(p->st);
	return rc;
}

int64_t persist_expiry_at(const struct msg *m, int64_t wall_now,
                          uint64_t mono_now)
{
	if (!m->has_expiry)
		return 0;
	return wall_now - (int64_t)(mono_now - m->received_ms) +
	       (int64_t)m->expiry * 1000;
}

static int enc_reserve(struct persist *p, size_t n)
{
	uint8_t *v;

	if (n <= p->enc_cap)
		return 0;
	v = realloc(p->enc, n);
	if (!v)
		return TERN_ENOMEM;
	p->enc = v;
	p->enc_cap = n;
	return 0;
}

int persist_encode(struct persist *p, const struct msg *m, bool props_only)
{
	struct mqtt_packet pk;
	struct mqtt_publish *pub = &pk.u.publish;
	size_t n;
	int rc;

	if (props_only && !m->props.present && !m->props.user_props_len)
		return 0;
	memset(&pk, 0, sizeof(pk));
	pk.type = MQTT_PUBLISH;
	pub->qos = props_only ? 1 : m->qos;
	pub->retain = !props_only && m->retain;
	pub->packet_id = pub->qos ? 1 : 0;
	pub->topic.p = (const uint8_t *)m->topic;
	pub->topic.len = m->topic_len;
	pub->props = m->props;
	if (!props_only) {
		pub->payload = m->payload;
		pub->payload_len = m->payload_len;
		if (m->has_expiry) {
			pub->props.present |=
			        MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY);
			pub->props.message_expiry = m->expiry;
		}
	}
	n = mqtt_encoded_size(&pk, MQTT_V5);
	if ((rc = enc_reserve(p, n)) != 0)
		return rc;
	rc = mqtt_encode(&pk, MQTT_V5, p->enc, n);
	return rc;
}

/* Decodes a blob written by persist_encode into *pub (pointing into it). */
static int decode_blob(const uint8_t *blob, size_t len, struct mqtt_packet *pk)
{
	struct mqtt_fixed fh;
	struct mqtt_error err;
	int hl = mqtt_fixed_header(blob, len, &fh);

	if (hl < 0 || fh.type != MQTT_PUBLISH ||
	    (size_t)hl + fh.remaining != len)
		return TERN_EMALFORMED;
	return mqtt_decode(&fh, blob + hl, fh.remaining, MQTT_V5, pk, &err);
}

struct msg *persist_decode(const uint8_t *topic, size_t topic_len,
                           const uint8_t *payload, size_t payload_len,
                           uint8_t qos, bool retain, int64_t expiry_at,
                           const uint8_t *blob, size_t blob_len, bool *expired)
{
	struct mqtt_packet pk;
	struct mqtt_publish pub;
	int64_t now = persist_wall_ms();

	*expired = false;
	memset(&pub, 0, sizeof(pub));
	if (blob) {
		if (decode_blob(blob, blob_len, &pk) != 0)
			return NULL;
		pub = pk.u.publish;
		/* A record's expiry is expiry_at; a will's is in its blob
		 * and starts when the will is published. */
		if (topic)
			pub.props.present &=
			        ~MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY);
		if (!topic) {
			topic = pub.topic.p;
			topic_len = pub.topic.len;
			payload = pub.payload;
			payload_len = pub.payload_len;
			qos = pub.qos;
			retain = pub.retain;
		}
	}
	if (!topic || !topic_len || memchr(topic, 0, topic_len))
		return NULL;
	pub.qos = qos > 2 ? 2 : qos;
	pub.retain = retain;
	pub.payload = payload;
	pub.payload_len = (uint32_t)payload_len;
	if (expiry_at) {
		if (expiry_at <= now) {
			*expired = true;
			return NULL;
		}
		pub.props.present |= MQTT_PBIT(MQTT_PROP_MESSAGE_EXPIRY);
		pub.props.message_expiry =
		        (uint32_t)((expiry_at - now + 999) / 1000);
	}
	return msg_new(&pub, (const char *)topic, topic_len, NULL, clock_ms());
}
