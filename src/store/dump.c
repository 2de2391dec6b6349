/*
 * store_dump: every record of a store in human-readable lines, for
 * operators (`ternd --dump-store`). Byte strings are printed with
 * non-printable bytes escaped as \xNN, payloads cut at 64 bytes; the opaque
 * property and will blobs are shown by length only. A session's username,
 * listener and token grant (the topics claim's JSON, not the token) are
 * shown as stored.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/store.h"

#define DUMP_PAYLOAD_MAX 64

static void put_bytes(FILE *f, const uint8_t *p, size_t len, size_t max)
{
	size_t i;

	for (i = 0; i < len && i < max; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", p[i]);
	}
	if (len > max)
		fprintf(f, "...(%zu bytes)", len);
}

static void put_time(FILE *f, int64_t wall_ms)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;
	char buf[32];

	if (!wall_ms) {
		fputs("-", f);
		return;
	}
	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fputs(buf, f);
}

static int on_session(void *ctx, const struct store_session *s)
{
	FILE *f = ctx;

	fputs("session ", f);
	put_bytes(f, s->client_id, s->client_id_len, SIZE_MAX);
	fprintf(f, " v%u expiry=", s->version);
	if (s->expiry == UINT32_MAX)
		fputs("never", f);
	else
		fprintf(f, "%" PRIu32 "s", s->expiry);
	fputs(" offline_since=", f);
	put_time(f, s->offline_since);
	if (s->will)
		fprintf(f, " will=%zu bytes delay=%" PRIu32 "s", s->will_len,
		        s->will_delay);
	if (s->username) {
		fputs(" user=", f);
		put_bytes(f, s->username, s->username_len, SIZE_MAX);
	}
	if (s->has_listener)
		fprintf(f, " listener=%" PRIu32, s->listener);
	if (s->listener_kind) {
		fputs(" (", f);
		put_bytes(f, (const uint8_t *)s->listener_kind,
		          strlen(s->listener_kind), SIZE_MAX);
		fputc(')', f);
	}
	if (s->grant) {
		fputs(" grant=", f);
		put_bytes(f, s->grant, s->grant_len, SIZE_MAX);
	}
	fputc('\n', f);
	return 0;
}

static int on_sub(void *ctx, const struct store_sub *s)
{
	FILE *f = ctx;

	fputs("  sub ", f);
	put_bytes(f, s->client_id, s->client_id_len, SIZE_MAX);
	fputc(' ', f);
	put_bytes(f, s->filter, s->filter_len, SIZE_MAX);
	fprintf(f, " qos=%u nl=%d rap=%d rh=%u id=%" PRIu32 "\n", s->qos,
	        s->no_local, s->retain_as_published, s->retain_handling,
	        s->sub_id);
	return 0;
}

static int on_msg(void *ctx, const struct store_msg *m)
{
	FILE *f = ctx;

	fprintf(f, "msg %" PRIu64 " qos=%u retain=%d topic=", m->id, m->qos,
	        m->retain);
	put_bytes(f, m->topic, m->topic_len, SIZE_MAX);
	fputs(" expires=", f);
	put_time(f, m->expiry_at);
	fprintf(f, " props=%zu payload=", m->props_len);
	put_bytes(f, m->payload, m->payload_len, DUMP_PAYLOAD_MAX);
	fputc('\n', f);
	return 0;
}

static int on_qrow(void *ctx, const struct store_qrow *q)
{
	static const char *const states[] = {"queued", "wait-puback",
	                                     "wait-pubrec", "wait-pubcomp"};
	FILE *f = ctx;

	fputs("  queue ", f);
	put_bytes(f, q->client_id, q->client_id_len, SIZE_MAX);
	fprintf(f, " #%" PRIu64 " msg=%" PRIu64 " qos=%u %s pid=%u%s%s\n",
	        q->seq, q->msg_id, q->qos,
	        q->state < 4 ? states[q->state] : "?", q->pid,
	        q->dup ? " dup" : "", q->retain ? " retain" : "");
	return 0;
}

static int on_inq2(void *ctx, const uint8_t *cid, size_t len, uint16_t pid)
{
	FILE *f = ctx;

	fputs("  qos2-in ", f);
	put_bytes(f, cid, len, SIZE_MAX);
	fprintf(f, " pid=%u\n", pid);
	return 0;
}

static int on_retained(void *ctx, const struct store_retained *r)
{
	FILE *f = ctx;

	fputs("retained ", f);
	put_bytes(f, r->topic, r->topic_len, SIZE_MAX);
	fprintf(f, " qos=%u expires=", r->qos);
	put_time(f, r->expiry_at);
	fprintf(f, " props=%zu payload=", r->props_len);
	put_bytes(f, r->payload, r->payload_len, DUMP_PAYLOAD_MAX);
	fputc('\n', f);
	return 0;
}

int store_dump(struct store *st, FILE *out)
{
	static const struct store_visitor v = {
	        on_session, on_sub, on_msg, on_qrow, on_inq2, on_retained};

	fprintf(out, "# tern store, schema %d, %" PRIu64 " bytes, last alive ",
	        store_schema(st), store_size(st));
	put_time(out, store_get_alive(st));
	fputc('\n', out);
	return store_load(st, &v, out);
}
