/*
 * ternd: the broker's main program. Reads the command line and the
 * configuration, starts the workers, then waits for signals on the main
 * thread (SIGTERM/SIGINT stop, SIGHUP reloads what can be reloaded). Signals
 * are blocked in every thread and taken synchronously here with sigwait, so
 * no handler runs in a worker and no global flag is needed.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/log.h"
#include "broker/auth.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "broker/persist.h"
#include "net/cidr.h"

/* Exit status when the durable store cannot be opened or loaded (corrupt,
 * foreign, newer schema, unreadable): distinct from configuration errors
 * (1) so that service managers and tests can tell them apart. */
#define EXIT_STORE 3

struct options {
	const char *config_file;
	uint16_t ports[16];
	int nports;
	bool verbose;
	bool test_config;
	int threads;
	bool dump_store;       /* --dump-store: print the store, exit */
	const char *dump_path; /* its argument, NULL = from the config */
	bool store_reset;      /* --store-reset: move a bad store aside */
};

static void usage(FILE *out)
{
	fprintf(out,
	        "Usage: ternd [-c FILE] [-p PORT]... [-v] [--threads N] "
	        "[--test-config] [--dump-store [PATH]] [--store-reset]\n"
	        "  -c, --config-file FILE  read Mosquitto-syntax "
	        "configuration\n"
	        "  -p, --port PORT         listen on PORT (repeatable)\n"
	        "  -v, --verbose           log everything (log_type all)\n"
	        "      --threads N         worker threads (default: cores)\n"
	        "      --test-config       check the configuration and exit\n"
	        "      --dump-store [PATH] print the durable store (a file, a\n"
	        "                          directory, or the configured one)\n"
	        "      --store-reset       move a corrupt or unusable store\n"
	        "                          aside and start with an empty one\n"
	        "  -h, --help              this help\n");
}

static int parse_port(const char *s, uint16_t *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	        {"config-file", required_argument, NULL, 'c'},
	        {"port", required_argument, NULL, 'p'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"daemon", no_argument, NULL, 'd'},
	        {"threads", required_argument, NULL, 'T'},
	        {"test-config", no_argument, NULL, 't'},
	        {"dump-store", optional_argument, NULL, 'D'},
	        {"store-reset", no_argument, NULL, 'R'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->threads = -1;
	while ((ch = getopt_long(argc, argv, "c:p:vdh", longopts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c': o->config_file = optarg; break;
		case 'p':
			if (o->nports == 16 ||
			    parse_port(optarg, &o->ports[o->nports]) != 0) {
				fprintf(stderr, "ternd: bad port '%s'\n",
				        optarg);
				return -1;
			}
			o->nports++;
			break;
		case 'v': o->verbose = true; break;
		case 'd':
			fprintf(stderr, "ternd: -d (daemonise) is not "
			                "supported; run ternd under a service "
			                "manager instead\n");
			return -1;
		case 'T': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 0 || v > 1024) {
				fprintf(stderr, "ternd: bad --threads '%s'\n",
				        optarg);
				return -1;
			}
			o->threads = (int)v;
			break;
		}
		case 't': o->test_config = true; break;
		case 'D':
			o->dump_store = true;
			/* Also "--dump-store PATH", not only "=PATH". */
			if (optarg)
				o->dump_path = optarg;
			else if (optind < argc && argv[optind][0] != '-')
				o->dump_path = argv[optind++];
			break;
		case 'R': o->store_reset = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ternd: unexpected argument '%s'\n",
		        argv[optind]);
		return -1;
	}
	return 0;
}

/* Loads the file and the command line into cfg; prints the error. */
static int load_config(struct config *cfg, const struct options *o)
{
	char err[512];
	int i;

	config_init(cfg);
	if (o->config_file &&
	    config_load(cfg, o->config_file, err, sizeof(err)) != 0) {
		fprintf(stderr, "ternd: %s\n", err);
		return -1;
	}
	for (i = 0; i < o->nports; i++)
		if (config_add_listener(cfg, o->ports[i], NULL) != 0)
			return -1;
	/* Without a config file, -p ports stay local-only and anonymous,
	 * like the default port (Mosquitto 2 behaves the same). */
	if (!o->config_file && o->nports) {
		cfg->local_only = true;
		if (cfg->sec.allow_anonymous < 0)
			cfg->sec.allow_anonymous = 1;
	}
	if (config_finish(cfg) != 0)
		return -1;
	if (o->threads >= 0)
		cfg->threads = o->threads;
	if (o->verbose)
		cfg->log_type = LOGT_ALL;
	if (o->store_reset)
		cfg->persistence_corrupt = 1;
	return 0;
}

/* --dump-store: the named store, or the configured one. */
static int dump_store(const struct options *o, const struct config *cfg)
{
	char path[4096];
	const char *dir =
	        cfg->persistence_location ? cfg->persistence_location : ".";

	if (o->dump_path)
		return persist_dump(o->dump_path) == 0 ? 0 : EXIT_STORE;
	snprintf(path, sizeof(path), "%s/%s", dir,
	         cfg->persistence_file ? cfg->persistence_file : "tern.db");
	return persist_dump(path) == 0 ? 0 : EXIT_STORE;
}

/*
 * Checks what the configuration file's syntax cannot: PROXY listeners name
 * their proxies, trusted_proxies parse, and TLS certificates and keys load
 * (so --test-config catches them too).
 */
static int check_listeners(const struct config *cfg)
{
	char tls_err[640];
	size_t i;

	for (i = 0; i < cfg->nlisteners; i++) {
		const struct listener_cfg *l = &cfg->listeners[i];
		struct cidr_list trusted;
		char err[128];

		if (l->proxy_protocol && !l->trusted_proxies) {
			fprintf(stderr,
			        "ternd: listener %u: proxy_protocol needs "
			        "trusted_proxies (the addresses of the "
			        "proxies)\n",
			        l->port);
			return -1;
		}
		if (cidr_list_parse(l->trusted_proxies, &trusted, err,
		                    sizeof(err)) != 0) {
			fprintf(stderr,
			        "ternd: listener %u: trusted_proxies: bad "
			        "entry '%s'\n",
			        l->port, err);
			return -1;
		}
		cidr_list_free(&trusted);
	}
	if (broker_check_tls(cfg, tls_err, sizeof(tls_err)) != 0) {
		fprintf(stderr, "ternd: %s\n", tls_err);
		return -1;
	}
	return 0;
}

static void apply_logging(const struct config *cfg)
{
	if (log_configure(cfg->log_dest & ~(unsigned)LOGD_NONE, cfg->log_file,
	                  cfg->log_dest & LOGD_NONE ? 0 : cfg->log_type,
	                  cfg->log_timestamp_format, cfg->log_timestamp) != 0)
		fprintf(stderr, "ternd: cannot open log file %s: %s\n",
		        cfg->log_file ? cfg->log_file : "?", strerror(errno));
}

/* Returns whether the file was written (and is ours to remove). */
static bool write_pid_file(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		log_msg(LOG_WARNING, "Cannot write pid_file %s: %s.", path,
		        strerror(errno));
		return false;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return true;
}

/* The account `user` names, looked up before anything is bound. */
struct run_as {
	bool drop; /* false: keep the identity ternd was started with */
	uid_t uid;
	gid_t gid;
	char name[256];
};

/*
 * Resolves `user` (Mosquitto's rules): only root switches; `user root`
 * stays root; `user mosquitto` without such an account falls back to
 * nobody; any other unknown user is an error, so that a typo does not
 * leave ternd running as root. Without `user` tern keeps its identity
 * (Mosquitto would default to mosquitto; docs/configuration.md says why
 * tern does not). Returns 0, or -1 with the reason printed.
 */
static int resolve_user(const struct config *cfg, struct run_as *ra)
{
	const char *name = cfg->user;
	struct passwd *pw;

	memset(ra, 0, sizeof(*ra));
	if (geteuid() != 0) {
		if (name)
			log_msg(LOG_INFO,
			        "Not started as root: 'user %s' ignored.",
			        name);
		return 0;
	}
	if (!name) {
		log_msg(LOG_WARNING, "Running as root: set 'user' to drop "
		                     "privileges after start.");
		return 0;
	}
	if (strcmp(name, "root") == 0)
		return 0;
	errno = 0;
	pw = getpwnam(name);
	if (!pw && strcmp(name, "mosquitto") == 0) {
		log_msg(LOG_WARNING, "No user 'mosquitto'; using 'nobody'.");
		pw = getpwnam(name = "nobody");
	}
	if (!pw) {
		fprintf(stderr, "ternd: user '%s': %s\n", name,
		        errno ? strerror(errno) : "no such user");
		return -1;
	}
	ra->drop = true;
	ra->uid = pw->pw_uid;
	ra->gid = pw->pw_gid;
	snprintf(ra->name, sizeof(ra->name), "%s", pw->pw_name);
	return 0;
}

/*
 * Switches to ra's user, its primary group and its supplementary groups
 * (groups first: after setuid there is no right left to change them).
 * Every step is checked, and so is the result, including that root cannot
 * be taken back; ternd must not serve half-dropped. Returns 0 or -1 with
 * the reason printed.
 */
static int drop_privileges(const struct run_as *ra)
{
	const char *step = NULL;

	if (!ra->drop)
		return 0;
	if (initgroups(ra->name, ra->gid) != 0)
		step = "initgroups";
	else if (setgid(ra->gid) != 0)
		step = "setgid";
	else if (setuid(ra->uid) != 0)
		step = "setuid";
	if (step) {
		fprintf(stderr, "ternd: cannot switch to user '%s': %s: %s\n",
		        ra->name, step, strerror(errno));
		return -1;
	}
	if (getuid() != ra->uid || geteuid() != ra->uid ||
	    getgid() != ra->gid || getegid() != ra->gid ||
	    (ra->uid != 0 && setuid(0) == 0)) {
		fprintf(stderr,
		        "ternd: switching to user '%s' did not take "
		        "effect\n",
		        ra->name);
		return -1;
	}
	log_msg(LOG_NOTICE, "Running as user %s (uid %u, gid %u).", ra->name,
	        (unsigned)ra->uid, (unsigned)ra->gid);
	return 0;
}

static void print_urls(const struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nlisteners; i++) {
		const struct listener_cfg *l = &cfg->listeners[i];
		const char *host = l->bind ? l->bind : "localhost";
		bool v6 = strchr(host, ':') != NULL;

		bool ws = l->protocol == PROTO_WEBSOCKETS;
		const char *scheme = ws ? (l->certfile ? "wss" : "ws")
		                        : (l->certfile ? "mqtts" : "mqtt");

		log_msg(LOG_NOTICE, "Listening: %s://%s%s%s:%u%s", scheme,
		        v6 ? "[" : "", host, v6 ? "]" : "", l->port,
		        ws && !l->ws_paths ? "/mqtt" : "");
	}
	if (cfg->local_only)
		log_msg(LOG_NOTICE,
		        "Local-only mode: listening on 127.0.0.1 and ::1 with "
		        "anonymous access. Use a configuration file to accept "
		        "remote clients.");
}

/*
 * SIGHUP: re-read the configuration, the password file and the ACL file.
 * Logging settings and the auth snapshot are applied; if anything fails to
 * load, nothing changes (security settings never fall back to defaults).
 */
static void reload(struct broker *b, const struct options *o)
{
	struct config fresh;
	struct auth *auth = NULL;
	char err[512];

	if (load_config(&fresh, o) != 0 || check_listeners(&fresh) != 0) {
		log_msg(LOG_ERR, "Reload failed; keeping the running "
		                 "configuration.");
		goto out;
	}
	/* Listeners are bound at start; a changed set needs a restart, and
	 * the TLS settings below are matched to listeners by position. */
	if (fresh.nlisteners != b->cfg->nlisteners) {
		log_msg(LOG_ERR,
		        "Reload refused: the listeners changed; restart "
		        "ternd to apply that. Keeping the running "
		        "configuration.");
		goto out;
	}
	if (auth_load(&fresh, &auth, err, sizeof(err)) != 0) {
		log_msg(LOG_ERR,
		        "Reload failed: %s; keeping the running "
		        "configuration.",
		        err);
		goto out;
	}
	if (broker_load_tls(b, &fresh) != 0) {
		log_msg(LOG_ERR, "Reload failed: TLS settings did not load; "
		                 "keeping the running configuration.");
		auth_unref(auth);
		goto out;
	}
	apply_logging(&fresh);
	broker_set_auth(b, auth);
	/* An operator who freed space may also raise the store's limit. */
	if (b->persist)
		persist_set_max_bytes(b->persist, fresh.persistence_max_bytes);
	log_msg(LOG_NOTICE, "Reloaded configuration: logging, password and "
	                    "ACL files, TLS certificates applied; other "
	                    "changes need a restart.");
out:
	config_free(&fresh);
}

/* Waits for signals until asked to stop. */
static void wait_signals(const sigset_t *set, struct broker *b,
                         const struct options *o)
{
	for (;;) {
		int sig;

		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(b, o);
			continue;
		}
		if (sig == SIGUSR1) {
			if (b->persist)
				persist_request_checkpoint(b->persist);
			continue;
		}
		log_msg(LOG_NOTICE, "Received %s, shutting down.",
		        sig == SIGINT ? "SIGINT" : "SIGTERM");
		return;
	}
}

/*
 * glibc's allocator starts by giving memory back to the kernel as soon as
 * 128 KiB lie free at the top of a heap, and maps each block of 128 KiB or
 * more on its own (raising both limits only after it has seen such a block
 * freed). A broker relaying 64 KiB messages frees a message and a read
 * buffer per message, so the top of its heaps went back and forth: 2-9
 * page faults (zeroed pages) per message and a fifth or more of its CPU
 * time per 64 KiB message (docs/benchmarks.md, Findings). Blocks up to
 * 32 MiB (glibc's largest setting; an 8 MiB message's read buffer grows to
 * 16 MiB) now come from the heaps, and up to 32 MiB may stay free at the
 * top of each, about where glibc itself moves them after one such message.
 */
static void tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 32 << 20);
}

int main(int argc, char **argv)
{
	struct options o;
	struct config cfg;
	struct broker b;
	struct auth *auth = NULL;
	struct run_as ra;
	bool pid_written = false;
	char err[512];
	sigset_t set;
	int threads, rc = 1;

	tune_malloc();
	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (load_config(&cfg, &o) != 0 || check_listeners(&cfg) != 0) {
		config_free(&cfg);
		return 1;
	}
	if (auth_load(&cfg, &auth, err, sizeof(err)) != 0) {
		fprintf(stderr, "ternd: %s\n", err);
		config_free(&cfg);
		return 1;
	}
	if (o.dump_store) {
		auth_unref(auth);
		rc = dump_store(&o, &cfg);
		config_free(&cfg);
		return rc;
	}
	if (o.test_config) {
		auth_unref(auth);
		/* An unknown `user` would stop the real start: say so now. */
		if (cfg.user && geteuid() == 0 &&
		    resolve_user(&cfg, &ra) != 0) {
			config_free(&cfg);
			return 1;
		}
		printf("ternd: configuration OK\n");
		config_free(&cfg);
		return 0;
	}
	apply_logging(&cfg);
	if (resolve_user(&cfg, &ra) != 0) {
		auth_unref(auth);
		log_shutdown();
		config_free(&cfg);
		return 1;
	}
	threads = cfg.threads > 0 ? cfg.threads
	                          : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads < 1)
		threads = 1;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_msg(LOG_NOTICE,
	        "ternd version 0.1.0 starting with %d worker "
	        "thread%s.",
	        threads, threads == 1 ? "" : "s");
	/* Sockets, the log, the store and the keys are open before the
	 * switch to `user`; the pid file is written while it still can be. */
	if (broker_init(&b, &cfg, auth, threads) == 0) {
		if (cfg.pid_file)
			pid_written = write_pid_file(cfg.pid_file);
		if (drop_privileges(&ra) == 0 && broker_start(&b) == 0) {
			print_urls(&cfg);
			wait_signals(&set, &b, &o);
			rc = 0;
		}
	}
	if (b.store_error)
		rc = EXIT_STORE;
	broker_stop(&b);
	/* After the switch to `user` this may fail (a root-owned /run);
	 * Mosquitto leaves the file behind the same way. */
	if (pid_written)
		unlink(cfg.pid_file);
	log_msg(LOG_NOTICE, "ternd stopped.");
	log_shutdown();
	config_free(&cfg);
	return rc;
}
