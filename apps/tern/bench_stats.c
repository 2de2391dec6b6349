/*
 * `tern bench` measurements: a fixed log-linear latency histogram (32
 * sub-buckets per power of two, 3% error, no allocation), what each
 * subscriber has seen of each publisher (loss, duplicates, reordering from
 * the sequence numbers in the payloads), and the broker's CPU time and
 * memory read from /proc.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

void bench_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void bench_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < H_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	return (e - H_SUB_BITS + 1) * H_SUB +
	       (unsigned)((v >> (e - H_SUB_BITS)) & (H_SUB - 1));
}

/* The middle of bucket i, the value reported for it. */
static uint64_t hist_value(unsigned i)
{
	unsigned e, sub;

	if (i < H_SUB)
		return i;
	e = i / H_SUB + H_SUB_BITS - 1;
	sub = i % H_SUB;
	return ((uint64_t)(H_SUB + sub) << (e - H_SUB_BITS)) +
	       ((1ull << (e - H_SUB_BITS)) >> 1);
}

void bench_hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* The value below which a fraction q of the samples lie (0 when empty). */
uint64_t bench_hist_quantile(const struct hist *h, double q)
{
	uint64_t want = (uint64_t)(q * (double)h->count + 0.999999);
	uint64_t sum = 0;
	unsigned i;

	if (want == 0)
		want = 1;
	for (i = 0; i < H_BUCKETS; i++) {
		sum += h->b[i];
		if (sum >= want) {
			uint64_t v = hist_value(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}

/*
 * Grows subscriber c's tracks and the run's per-publisher figures to hold
 * publisher id `pub` (ids come from other processes in `sub` mode).
 */
static int track_room(struct load *L, struct conn *c, uint32_t pub)
{
	uint32_t n;

	if (pub < c->ntrack && pub < L->nps)
		return 0;
	n = pub < 64 ? 64 : pub + 1 + pub / 2;
	if (n > MAX_PUB_ID)
		n = MAX_PUB_ID;
	if (pub >= c->ntrack) {
		struct track *t = realloc(c->track, n * sizeof(*t));

		if (!t)
			return -1;
		memset(t + c->ntrack, 0, (n - c->ntrack) * sizeof(*t));
		c->track = t;
		c->ntrack = n;
	}
	if (pub >= L->nps) {
		struct pubstat *p = realloc(L->ps, n * sizeof(*p));

		if (!p)
			return -1;
		memset(p + L->nps, 0, (n - L->nps) * sizeof(*p));
		L->ps = p;
		L->nps = n;
	}
	return 0;
}

void bench_stats_deliver(struct load *L, struct conn *c, const uint8_t *payload,
                         size_t len, uint64_t now)
{
	uint64_t stamp;
	uint32_t pub, seq;
	struct track *t;
	struct pubstat *ps;

	L->st.received++;
	if (len < PAYLOAD_MIN) {
		L->st.foreign++;
		return;
	}
	stamp = get_le64(payload);
	pub = get_le32(payload + 8);
	seq = get_le32(payload + 12);
	/* In one process the publishers are known; `sub` takes any id, but
	 * not a time in the future (another machine's clock). */
	if (stamp > now || pub >= MAX_PUB_ID ||
	    (L->o.mode == MODE_PUBSUB &&
	     (pub - L->o.id_base >= L->o.pubs || pub < L->o.id_base ||
	      stamp < L->t_start)) ||
	    track_room(L, c, pub) != 0) {
		L->st.foreign++;
		return;
	}
	t = &c->track[pub];
	ps = &L->ps[pub];
	if (seq >= t->next) {
		uint32_t shift = seq - t->next + 1;

		ps->span += shift;
		t->seen = shift >= 64 ? 1 : t->seen << shift | 1;
		t->next = seq + 1;
	} else if (t->next - 1 - seq >= 64) {
		L->st.late++;
		ps->late++;
	} else if (t->seen >> (t->next - 1 - seq) & 1) {
		L->st.duplicates++;
		ps->duplicates++;
		return;
	} else {
		t->seen |= 1ull << (t->next - 1 - seq);
		L->st.reordered++;
		ps->reordered++;
	}
	ps->delivered++;
	L->st.delivered++;
	L->st.in_window += now < L->t_end;
	if (!L->t_first_delivery)
		L->t_first_delivery = now;
	L->t_last_delivery = now;
	bench_hist_add(&L->lat, now - stamp);
}

uint64_t bench_stats_expected(const struct load *L)
{
	uint64_t n = 0;

	if (L->o.mode != MODE_PUBSUB) {
		for (uint32_t i = 0; i < L->nps; i++)
			n += L->ps[i].span;
		return n;
	}
	for (unsigned i = 0; i < L->o.pubs; i++)
		n += L->c[i].published * L->c[i].fan;
	return n;
}

/*
 * In one process every message sent is known, so loss is what was expected
 * and not delivered. A lone subscriber only sees sequence numbers: a gap
 * below the highest one seen is a loss; messages lost after the last one
 * that arrived cannot be seen (stop the publisher first).
 */
uint64_t bench_stats_lost(const struct load *L)
{
	uint64_t e = bench_stats_expected(L);

	return e > L->st.delivered ? e - L->st.delivered : 0;
}

/* Broker CPU time in clock ticks, or -1 when unknown. */
long long bench_proc_ticks(int pid)
{
	char path[64], line[1024];
	unsigned long long ut, st;
	const char *p;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = '\0';
	/* The command name may hold spaces and parentheses. */
	p = strrchr(line, ')');
	if (!p || sscanf(p + 2,
	                 "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	                 "%llu %llu",
	                 &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* The number after `key` in file `path` (in the line starting with
 * `line`, if given), or -1. */
static long long proc_field(const char *path, const char *line, const char *key)
{
	char buf[512];
	long long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f)) {
		const char *p;

		if (line && strncmp(buf, line, strlen(line)) != 0)
			continue;
		p = strstr(buf, key);
		if (p && sscanf(p + strlen(key), "%lld", &v) == 1)
			break;
	}
	fclose(f);
	return v;
}

void bench_mem_snap(const struct load *L, struct memsnap *m)
{
	char path[64];
	long long v6;

	snprintf(path, sizeof(path), "/proc/%d/status", L->o.pid);
	m->rss_kb = L->o.pid > 0 ? proc_field(path, NULL, "VmRSS:") : -1;
	m->tcp_inuse = proc_field("/proc/net/sockstat", "TCP:", " inuse ");
	v6 = proc_field("/proc/net/sockstat6", "TCP6:", " inuse ");
	if (m->tcp_inuse >= 0 && v6 > 0)
		m->tcp_inuse += v6;
	m->tcp_mem = proc_field("/proc/net/sockstat", "TCP:", " mem ");
	m->slab_kb = proc_field("/proc/meminfo", NULL, "Slab:");
}
