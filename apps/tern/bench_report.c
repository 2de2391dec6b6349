/*
 * `tern bench` output: a line of rates on stderr every second while the
 * run lasts, then a few lines of report on stdout ending with one JSON
 * line that scripts read (bench/run.sh takes its figures from it).
 */
#include <inttypes.h>
#include <unistd.h>

#include "bench.h"

static double tv_us(const struct timeval *a, const struct timeval *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e6 +
	       (double)(b->tv_usec - a->tv_usec);
}

/* The transport: as the JSON line names it, and in words. */
static const char *transport(const struct options *o)
{
	return o->tls ? (o->ws ? "wss" : "tls") : (o->ws ? "ws" : "tcp");
}

static const char *transport_words(const struct options *o)
{
	return o->tls ? (o->ws ? "WebSocket over TLS" : "TLS")
	              : (o->ws ? "WebSocket" : "TCP");
}

static const char *version_name(unsigned v)
{
	return v == MQTT_V5 ? "5" : v == MQTT_V31 ? "3.1" : "3.1.1";
}

static uint64_t published(const struct load *L, uint64_t *acked)
{
	uint64_t n = 0, a = 0;

	for (unsigned i = 0; i < L->o.pubs; i++) {
		n += L->c[i].published;
		a += L->c[i].completed;
	}
	if (acked)
		*acked = a;
	return n;
}

void bench_report_live(struct load *L, uint64_t now)
{
	struct live *v = &L->live;
	uint64_t pub, sec;

	if (L->o.quiet || !v->at || now < v->at)
		return;
	sec = (now - v->at) / NS_PER_S + 1;
	v->at += sec * NS_PER_S;
	if (L->o.mode == MODE_CONN) {
		fprintf(stderr,
		        "tern bench: conn %u/%u up (+%u), %" PRIu64 " errors\n",
		        L->ready, L->o.conns, L->ready - v->ready,
		        L->st.errors);
		v->ready = L->ready;
		return;
	}
	pub = published(L, NULL);
	fprintf(stderr,
	        "tern bench: %s %.0fs  sent %" PRIu64 "/s  received %" PRIu64
	        "/s  p99 so far %.1f us  errors %" PRIu64 "\n",
	        bench_mode_name(L->o.mode),
	        (double)(now - L->t_start) / NS_PER_S,
	        (pub - v->published) / sec,
	        (L->st.received - v->received) / sec,
	        (double)bench_hist_quantile(&L->lat, 0.99) / 1e3, L->st.errors);
	v->published = pub;
	v->received = L->st.received;
}

/* TLS figures: a summary line and JSON fields (both empty without TLS). */
static void tls_report(const struct load *L, char *json, size_t cap)
{
	json[0] = '\0';
	if (!L->o.tls)
		return;
	printf("  TLS %s, %" PRIu64 " handshakes (%" PRIu64 " resumed)%s\n",
	       L->tls_proto[0] ? L->tls_proto : "-", L->handshakes, L->resumed,
	       L->o.insecure ? ", no host name check" : "");
	snprintf(json, cap,
	         ",\"tls_version\":\"%s\",\"tls_handshakes\":%" PRIu64
	         ",\"tls_resumed\":%" PRIu64,
	         L->tls_proto, L->handshakes, L->resumed);
}

/* The publishers' figures, per id: `"per_publisher":[...]` (stdout). */
static void per_publisher(const struct load *L)
{
	bool first = true;

	printf(",\"per_publisher\":[");
	for (uint32_t i = 0; i < L->nps; i++) {
		const struct pubstat *p = &L->ps[i];
		uint64_t want = p->span;

		if (L->o.mode == MODE_PUBSUB && i >= L->o.id_base &&
		    i - L->o.id_base < L->o.pubs) {
			const struct conn *c = &L->c[i - L->o.id_base];

			want = c->published * c->fan;
		}
		if (!want && !p->delivered && !p->duplicates)
			continue;
		printf("%s{\"id\":%" PRIu32 ",\"delivered\":%" PRIu64
		       ",\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64
		       ",\"reordered\":%" PRIu64 ",\"late\":%" PRIu64 "}",
		       first ? "" : ",", i, p->delivered,
		       want > p->delivered ? want - p->delivered : 0,
		       p->duplicates, p->reordered, p->late);
		first = false;
	}
	printf("]");
}

/* p50, p90, p99, p99.9 and max of h, in µs: the five figures every
 * latency line and JSON object of the reports gives. */
static void hist_us(const struct hist *h, double out[5])
{
	static const double q[4] = {0.5, 0.9, 0.99, 0.999};
	unsigned i;

	for (i = 0; i < 4; i++)
		out[i] = (double)bench_hist_quantile(h, q[i]) / 1e3;
	out[4] = (double)h->max / 1e3;
}

void bench_report_run(const struct load *L)
{
	const struct options *o = &L->o;
	uint64_t acked, pub = published(L, &acked);
	uint64_t expected = bench_stats_expected(L), lost = bench_stats_lost(L);
	uint64_t end = L->t_last_delivery > L->t_start ? L->t_last_delivery
	                                               : L->t_stop;
	uint64_t pub_end = L->t_end < L->t_stop ? L->t_end : L->t_stop;
	double elapsed = (double)(end - L->t_start) / NS_PER_S;
	double sent_s = (double)(pub_end - L->t_start) / NS_PER_S;
	double rate, total_rate, bcpu = -1, ccpu, lat[5], lag[5], work;
	char tls[256];

	if (sent_s <= 0)
		sent_s = 1e-9;
	/* `sub` alone: from its first delivery to its last. */
	if (o->mode == MODE_SUB && L->t_last_delivery > L->t_first_delivery) {
		elapsed = (double)(L->t_last_delivery - L->t_first_delivery) /
		          NS_PER_S;
		sent_s = elapsed;
	}
	rate = (double)L->st.in_window / sent_s;
	total_rate = elapsed > 0 ? (double)L->st.delivered / elapsed : 0;
	/* CPU per message: per delivery, or per publish without any. */
	work = (double)(L->st.delivered ? L->st.delivered : pub);
	ccpu = tv_us(&L->ru0.ru_utime, &L->ru1.ru_utime) +
	       tv_us(&L->ru0.ru_stime, &L->ru1.ru_stime);
	ccpu = work > 0 ? ccpu / work : 0;
	if (L->broker_ticks0 >= 0 && L->broker_ticks1 >= 0 && work > 0)
		bcpu = (double)(L->broker_ticks1 - L->broker_ticks0) * 1e6 /
		       (double)sysconf(_SC_CLK_TCK) / work;
	hist_us(&L->lat, lat);
	hist_us(&L->send_lag, lag);

	printf("tern bench %s: MQTT %s over %s, QoS %u, ",
	       bench_mode_name(o->mode), version_name(o->version),
	       transport_words(o), o->qos);
	if (o->mode == MODE_SUB)
		printf("%u subscribers, %.2f s from the first message to the "
		       "last\n",
		       o->subs, sent_s);
	else
		printf("%u pub -> %u sub, %u B payload, %.1f s, rate %s\n",
		       o->pubs, o->subs, o->payload, sent_s,
		       o->rate > 0 ? "limited" : "max");
	if (o->mode != MODE_SUB)
		printf("  published   %" PRIu64 " (%.0f/s), %" PRIu64
		       " acked\n",
		       pub, (double)pub / sent_s, acked);
	if (o->mode != MODE_PUB) {
		printf("  delivered   %" PRIu64 " of %" PRIu64
		       " expected; %.0f/s while publishing, %.0f/s over %.2f "
		       "s%s%s\n",
		       L->st.delivered, expected, rate, total_rate, elapsed,
		       o->mode == MODE_PUBSUB ? "; tail " : "",
		       o->mode == MODE_PUBSUB
		               ? (const char *[]){"complete", "idle",
		                                  "timeout"}[L->tail]
		               : "");
		printf("  lost %" PRIu64 "  duplicates %" PRIu64
		       "  reordered %" PRIu64 "  late %" PRIu64
		       "  foreign %" PRIu64 "  errors %" PRIu64 "\n",
		       lost, L->st.duplicates, L->st.reordered, L->st.late,
		       L->st.foreign, L->st.errors);
		printf("  latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f "
		       " "
		       "max %.1f\n",
		       lat[0], lat[1], lat[2], lat[3], lat[4]);
		if (o->rate > 0)
			printf("  sent late   p99 %.1f  p99.9 %.1f  max %.1f "
			       "us "
			       "after the due time (latency includes it)\n",
			       lag[2], lag[3], lag[4]);
	} else if (L->st.errors) {
		printf("  errors %" PRIu64 "\n", L->st.errors);
	}
	printf("  CPU us/msg  broker %.3f  tern bench %.3f\n", bcpu, ccpu);
	tls_report(L, tls, sizeof(tls));
	printf("{\"mode\":\"%s\",\"transport\":\"%s\",\"version\":%u,"
	       "\"qos\":%u,\"publishers\":%u,\"subscribers\":%u,"
	       "\"payload\":%u,\"duration_s\":%.3f,\"rate\":%.1f,"
	       "\"published\":%" PRIu64 ",\"published_per_s\":%.1f,"
	       "\"acked\":%" PRIu64 ",\"expected\":%" PRIu64
	       ",\"delivered\":%" PRIu64 ",\"received\":%" PRIu64
	       ",\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64
	       ",\"reordered\":%" PRIu64 ",\"late\":%" PRIu64
	       ",\"foreign\":%" PRIu64 ",\"errors\":%" PRIu64
	       ",\"tail\":\"%s\",\"elapsed_s\":%.3f,"
	       "\"delivered_per_s\":%.1f,\"delivered_per_s_total\":%.1f,"
	       "\"lat_p50_us\":%.1f,"
	       "\"lat_p90_us\":%.1f,\"lat_p99_us\":%.1f,"
	       "\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f,"
	       "\"broker_cpu_us_per_msg\":%.3f,"
	       "\"client_cpu_us_per_msg\":%.3f,\"persistent\":%s%s",
	       bench_mode_name(o->mode), transport(o), o->version, o->qos,
	       o->pubs, o->subs, o->payload, sent_s, o->rate, pub,
	       (double)pub / sent_s, acked, expected, L->st.delivered,
	       L->st.received, lost, L->st.duplicates, L->st.reordered,
	       L->st.late, L->st.foreign, L->st.errors,
	       (const char *[]){"complete", "idle", "timeout"}[L->tail],
	       elapsed, rate, total_rate, lat[0], lat[1], lat[2], lat[3],
	       lat[4], bcpu, ccpu, o->persistent ? "true" : "false", tls);
	/* With a rate: how long after its due time each message was queued
	 * (bench.h, send_lag). */
	if (o->rate > 0 && o->mode != MODE_SUB)
		printf(",\"send_lag_p50_us\":%.1f,\"send_lag_p99_us\":%.1f,"
		       "\"send_lag_p999_us\":%.1f,\"send_lag_max_us\":%.1f",
		       lag[0], lag[2], lag[3], lag[4]);
	if (o->per_pub)
		per_publisher(L);
	printf("}\n");
}

void bench_report_conn(const struct load *L)
{
	const struct options *o = &L->o;
	const struct memsnap *a = &L->mem0, *b = &L->mem1;
	double setup_s = (double)(L->t_all_ready - L->t_first_open) / NS_PER_S;
	double rate = setup_s > 0 ? L->ready / setup_s : 0, lat[5];
	double per_conn = -1, bcpu = -1, ccpu = 0;
	char tls[256];

	hist_us(&L->setup_lat, lat);
	if (a->rss_kb >= 0 && b->rss_kb >= 0 && L->ready)
		per_conn = (double)(b->rss_kb - a->rss_kb) * 1024 / L->ready;
	/* CPU from the first connect() to the last CONNACK. */
	if (L->broker_ticks0 >= 0 && L->broker_ticks1 >= 0 && L->ready)
		bcpu = (double)(L->broker_ticks1 - L->broker_ticks0) * 1e6 /
		       (double)sysconf(_SC_CLK_TCK) / L->ready;
	if (L->ready)
		ccpu = (tv_us(&L->ru0.ru_utime, &L->ru1.ru_utime) +
		        tv_us(&L->ru0.ru_stime, &L->ru1.ru_stime)) /
		       L->ready;
	printf("tern bench conn: %u connections over %s, MQTT %s, rate %s, "
	       "%u source address%s\n",
	       o->conns, transport_words(o), version_name(o->version),
	       o->rate > 0 ? "limited" : "max", L->nsrc ? L->nsrc : 1,
	       L->nsrc > 1 ? "es" : "");
	printf("  up %u in %.3f s (%.0f/s), errors %" PRIu64 "\n", L->ready,
	       setup_s, rate, L->st.errors);
	printf("  set-up us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  "
	       "max %.1f\n",
	       lat[0], lat[1], lat[2], lat[3], lat[4]);
	printf("  CPU us/connection  broker %.1f  tern bench %.1f\n", bcpu,
	       ccpu);
	tls_report(L, tls, sizeof(tls));
	printf("  held idle %.1f s; broker VmRSS %lld -> %lld kB (%.0f B per "
	       "connection)\n",
	       o->idle, a->rss_kb, b->rss_kb, per_conn);
	printf("  system: TCP sockets %lld -> %lld, TCP buffer pages %lld -> "
	       "%lld, Slab %lld -> %lld kB\n",
	       a->tcp_inuse, b->tcp_inuse, a->tcp_mem, b->tcp_mem, a->slab_kb,
	       b->slab_kb);
	printf("{\"mode\":\"conn\",\"transport\":\"%s\",\"version\":%u,"
	       "\"connections\":%u,\"ready\":%u,\"errors\":%" PRIu64 ","
	       "\"source_addresses\":%u,"
	       "\"rate\":%.1f,\"setup_s\":%.3f,\"conn_per_s\":%.1f,"
	       "\"setup_p50_us\":%.1f,\"setup_p90_us\":%.1f,"
	       "\"setup_p99_us\":%.1f,\"setup_p999_us\":%.1f,"
	       "\"setup_max_us\":%.1f,\"idle_s\":%.1f,"
	       "\"rss_before_kb\":%lld,\"rss_idle_kb\":%lld,"
	       "\"rss_per_conn_b\":%.0f,\"tcp_inuse_before\":%lld,"
	       "\"tcp_inuse_idle\":%lld,\"tcp_mem_pages_before\":%lld,"
	       "\"tcp_mem_pages_idle\":%lld,\"slab_before_kb\":%lld,"
	       "\"slab_idle_kb\":%lld,\"broker_cpu_us_per_conn\":%.1f,"
	       "\"client_cpu_us_per_conn\":%.1f%s}\n",
	       transport(o), o->version, o->conns, L->ready, L->st.errors,
	       L->nsrc ? L->nsrc : 1, o->rate, setup_s, rate, lat[0], lat[1],
	       lat[2], lat[3], lat[4], o->idle, a->rss_kb, b->rss_kb, per_conn,
	       a->tcp_inuse, b->tcp_inuse, a->tcp_mem, b->tcp_mem, a->slab_kb,
	       b->slab_kb, bcpu, ccpu, tls);
}

/* Why the drain ended with messages missing. */
static const char *tail_reason(const struct load *L, char *buf, size_t cap)
{
	if (L->tail == TAIL_TIMEOUT)
		snprintf(buf, cap,
		         "still on their way when --drain %.1f s ran out",
		         L->o.drain);
	else
		snprintf(buf, cap,
		         "nothing arrived for %.1f s after the last byte went "
		         "out%s (the broker dropped or never sent them)",
		         (double)IDLE_NS / NS_PER_S,
		         L->o.pid > 0 ? " and the broker went idle" : "");
	return buf;
}

/*
 * The exit status of pub, sub and pubsub: 1 if a connection failed, if
 * the publishers published nothing or if nothing of what they published
 * arrived, each said on stderr. Some messages missing is a figure, not a
 * failure (a broker may drop QoS 0 under load, MQTT 4.3.1, and any QoS
 * when a queue overflows): the lost count reports it, and stderr says how
 * the drain ended.
 */
int bench_report_verdict(const struct load *L)
{
	uint64_t pub = published(L, NULL);
	uint64_t expected = bench_stats_expected(L), lost = bench_stats_lost(L);
	char why[160];

	if (L->st.errors) {
		fprintf(stderr,
		        "tern bench: %" PRIu64 " connection(s) failed\n",
		        L->st.errors);
		return 1;
	}
	if (L->o.mode == MODE_SUB)
		return 0;
	if (L->o.pubs > 0 && pub == 0) {
		fprintf(stderr, "tern bench: no message was published\n");
		return 1;
	}
	if (L->o.mode != MODE_PUBSUB || lost == 0)
		return 0;
	tail_reason(L, why, sizeof(why));
	if (L->st.delivered == 0) {
		fprintf(stderr,
		        "tern bench: none of the %" PRIu64
		        " messages expected was delivered: %s\n",
		        expected, why);
		return 1;
	}
	fprintf(stderr,
	        "tern bench: %" PRIu64 " of %" PRIu64
	        " messages expected were not delivered (QoS %u): %s\n",
	        lost, expected, L->o.qos, why);
	return 0;
}
