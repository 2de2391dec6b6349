/*
 * `tern passwd`: creates and updates Mosquitto password files, with
 * mosquitto_passwd's flags, so that one file serves ternd and Mosquitto.
 *
 *   tern passwd [-H sha512-pbkdf2|sha512] [-I N] [-c] FILE USER
 *   tern passwd [-H ...] [-I N] [-c] -b FILE USER PASSWORD
 *   tern passwd -D FILE USER
 *   tern passwd [-H ...] [-I N] -U FILE
 *
 * The password comes from -b, --password-file, --password-env, or else is
 * asked twice without echo on a terminal, or read as one line from stdin
 * when stdin is not a terminal.
 *
 * The existing file is read whole and checked line by line with the rules
 * ternd applies (src/broker/passwd.h): a line that ternd would refuse stops
 * the command with FILE:LINE, so the tool never rewrites a file it does not
 * understand. Comments and the order of lines are kept. The new content is
 * written to a temporary file in the same directory and renamed over the
 * old one, so a reader (or a broker reloading on SIGHUP) sees the old file
 * or the new one, never half of one; the mode of an existing file is kept,
 * a new file is 0600.
 *
 * Hashing and the hash text are base/pwhash.c, shared with the broker.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/error.h"
#include "base/file.h"
#include "base/pwhash.h"
#include "cmd.h"

#define PW_MAX   65535 /* longest password (MQTT's binary data limit) */
#define USER_MAX 65535 /* longest user name (an MQTT string) */

enum mode { MODE_SET, MODE_DELETE, MODE_UPGRADE };

struct pw_opts {
	enum mode mode;
	bool create;
	bool batch;
	enum pwhash_type type;
	int iterations;
	const char *password_file;
	const char *password_env;
	const char *file;
	const char *user;
	const char *password; /* -b */
};

/* One line of the file: its text (owned) and, for "user:..." lines, the
 * length of the user name. Comments have ulen 0. */
struct line {
	char *text;
	size_t ulen;
};

struct pwfile {
	struct line *v;
	size_t n, cap;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tern passwd [-H sha512-pbkdf2|sha512] [-I ITERATIONS] "
	        "[-c] FILE USER\n"
	        "       tern passwd [-H ...] [-I ITERATIONS] [-c] -b FILE USER "
	        "PASSWORD\n"
	        "       tern passwd -D FILE USER\n"
	        "       tern passwd [-H ...] [-I ITERATIONS] -U FILE\n"
	        "\n"
	        "Creates and updates Mosquitto-compatible password files.\n"
	        "  -c          create FILE (overwrite it if it exists)\n"
	        "  -D          delete USER\n"
	        "  -b          the password is the last argument (it shows in "
	        "ps; prefer\n"
	        "              --password-file or --password-env)\n"
	        "  -U          hash every plaintext \"user:password\" line of "
	        "FILE in place\n"
	        "  -H TYPE     sha512-pbkdf2 ($7$, default) or sha512 ($6$)\n"
	        "  -I N        PBKDF2 iterations (default %d)\n"
	        "  --password-file F  the password is the first line of F\n"
	        "  --password-env V   the password is environment variable V\n"
	        "Otherwise the password is asked twice on a terminal, or read "
	        "as one line\nfrom stdin when stdin is not a terminal.\n",
	        PWHASH_ITERATIONS);
}

static void pwfile_free(struct pwfile *f)
{
	for (size_t i = 0; i < f->n; i++) {
		OPENSSL_cleanse(f->v[i].text, strlen(f->v[i].text));
		free(f->v[i].text);
	}
	free(f->v);
	memset(f, 0, sizeof(*f));
}

/* Appends a line (takes text); -1 when out of memory (text is freed). */
static int pwfile_add(struct pwfile *f, char *text, size_t ulen)
{
	if (f->n == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 16;
		struct line *nv = realloc(f->v, ncap * sizeof(*nv));

		if (!nv) {
			free(text);
			return -1;
		}
		f->v = nv;
		f->cap = ncap;
	}
	f->v[f->n].text = text;
	f->v[f->n].ulen = ulen;
	f->n++;
	return 0;
}

/* The line of user u (its index), or -1. */
static long pwfile_find(const struct pwfile *f, const char *u)
{
	size_t len = strlen(u);

	for (size_t i = 0; i < f->n; i++)
		if (f->v[i].ulen == len && !memcmp(f->v[i].text, u, len))
			return (long)i;
	return -1;
}

struct reader {
	struct pwfile *f;
	const char *name;
	bool plaintext; /* -U: "user:password" lines are expected */
};

/* Checks one line of the file as ternd does and keeps it. */
static int read_line(void *ctx, unsigned line, const char *s, size_t len)
{
	struct reader *r = ctx;
	const char *colon, *why = NULL;
	struct pwhash h = {0};
	size_t ulen = 0;
	char *text;

	if (len && s[len - 1] == '\r')
		len--;
	colon = memchr(s, ':', len);
	if (len == 0)
		why = "blank line";
	else if (s[0] == '#')
		colon = NULL;
	else if (!colon)
		why = "expected user:hash";
	else if (colon == s)
		why = "empty user name";
	else if (r->plaintext &&
	         memchr(colon + 1, ':', len - 1 - (size_t)(colon - s)))
		why = "':' in a plaintext password (mosquitto_passwd cannot "
		      "read it back either)";
	else if (!r->plaintext &&
	         !pwhash_parse(colon + 1, len - 1 - (size_t)(colon - s), &h))
		why = "malformed or unsupported password hash (expected $6$ or "
		      "$7$)";
	else if (r->plaintext &&
	         pwhash_parse(colon + 1, len - 1 - (size_t)(colon - s), &h))
		why = "already hashed (-U hashes plaintext lines only)";
	pwhash_wipe(&h);
	if (why) {
		fprintf(stderr, "tern passwd: %s:%u: %s\n", r->name, line, why);
		return TERN_ECONFIG;
	}
	if (colon)
		ulen = (size_t)(colon - s);
	text = strndup(s, len);
	if (!text || pwfile_add(r->f, text, ulen)) {
		fprintf(stderr, "tern passwd: out of memory\n");
		return TERN_ENOMEM;
	}
	for (size_t i = 0; ulen && i + 1 < r->f->n; i++) {
		if (r->f->v[i].ulen == ulen &&
		    !memcmp(r->f->v[i].text, s, ulen)) {
			fprintf(stderr,
			        "tern passwd: %s:%u: duplicate user '%.*s'\n",
			        r->name, line, (int)(ulen > 64 ? 64 : ulen), s);
			return TERN_ECONFIG;
		}
	}
	return 0;
}

/* Reads and checks the file; -1 after saying why. */
static int pwfile_read(const char *path, bool plaintext, struct pwfile *f)
{
	struct reader r = {.f = f, .name = path, .plaintext = plaintext};
	char err[512], *text = NULL;
	int rc;

	if (file_read_text(path, &text, err, sizeof(err))) {
		fprintf(stderr, "tern passwd: %s\n", err);
		return -1;
	}
	rc = text_each_line(text, read_line, &r);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rc ? -1 : 0;
}

/*
 * Writes f to path atomically: a temporary file next to it, with the mode
 * of the file it replaces (0600 for a new one), flushed to disk and then
 * renamed over path.
 */
static int pwfile_write(const char *path, const struct pwfile *f)
{
	char *tmp = NULL, *dup = NULL;
	struct stat st;
	mode_t mode = 0600;
	FILE *out = NULL;
	int fd = -1, rc = -1;

	if (stat(path, &st) == 0)
		mode = st.st_mode & 07777;
	dup = strdup(path);
	if (!dup ||
	    asprintf(&tmp, "%s/.%s.XXXXXX", dirname(dup),
	             strrchr(path, '/') ? strrchr(path, '/') + 1 : path) < 0) {
		tmp = NULL;
		fprintf(stderr, "tern passwd: out of memory\n");
		goto fail;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "tern passwd: cannot create %s: %s\n", tmp,
		        strerror(errno));
		goto fail;
	}
	if (fchmod(fd, mode) != 0 || !(out = fdopen(fd, "w")))
		goto io;
	fd = -1;
	for (size_t i = 0; i < f->n; i++)
		if (fputs(f->v[i].text, out) == EOF || fputc('\n', out) == EOF)
			goto io;
	if (fflush(out) != 0 || fsync(fileno(out)) != 0)
		goto io;
	rc = fclose(out);
	out = NULL;
	if (rc != 0)
		goto io;
	rc = -1;
	if (rename(tmp, path) != 0)
		goto io;
	free(tmp);
	free(dup);
	return 0;
io:
	fprintf(stderr, "tern passwd: cannot write %s: %s\n", path,
	        strerror(errno));
fail:
	if (out)
		fclose(out);
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp);
	free(tmp);
	free(dup);
	return rc;
}

/* "user:HASH" for password into a new string, or NULL after saying why. */
static char *make_line(const struct pw_opts *o, const char *user, size_t ulen,
                       const char *password)
{
	char text[PWHASH_TEXT_MAX], *line = NULL;
	struct pwhash h;
	int rc = pwhash_make(o->type, o->iterations, password, &h);

	if (rc == 0)
		rc = pwhash_format(&h, text, sizeof(text));
	pwhash_wipe(&h);
	if (rc < 0) {
		fprintf(stderr, "tern passwd: cannot hash: %s\n",
		        tern_strerror(rc));
		return NULL;
	}
	if (asprintf(&line, "%.*s:%s", (int)ulen, user, text) < 0) {
		line = NULL;
		fprintf(stderr, "tern passwd: out of memory\n");
	}
	OPENSSL_cleanse(text, sizeof(text));
	return line;
}

/* Removes a trailing "\n" or "\r\n". */
static void chomp(char *s)
{
	size_t n = strlen(s);

	if (n && s[n - 1] == '\n')
		s[--n] = '\0';
	if (n && s[n - 1] == '\r')
		s[--n] = '\0';
}

/*
 * Reads one line of at most PW_MAX bytes from f into buf (PW_MAX + 2
 * bytes). Returns 0, or -1 on EOF before any byte or a line too long.
 */
static int read_pw_line(FILE *f, char *buf)
{
	if (!fgets(buf, PW_MAX + 2, f))
		return -1;
	if (!strchr(buf, '\n') && strlen(buf) > PW_MAX)
		return -1;
	chomp(buf);
	return 0;
}

/*
 * Asks for a line on the terminal without echo. Echo goes off before the
 * prompt appears, so that nothing typed after the prompt shows, and
 * nothing typed is flushed away (TCSANOW).
 */
static int ask(const char *prompt, char *buf)
{
	struct termios old, quiet;
	bool restore = false;
	int rc;

	if (tcgetattr(STDIN_FILENO, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		restore = tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0;
	}
	fputs(prompt, stderr);
	fflush(stderr);
	rc = read_pw_line(stdin, buf);
	if (restore)
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
	return rc;
}

/*
 * The password into buf (PW_MAX + 2 bytes), from the first source given:
 * -b, --password-file, --password-env, the terminal (twice), stdin.
 */
static int get_password(const struct pw_opts *o, char *buf)
{
	char *again = NULL;
	FILE *f;
	int rc = -1;

	if (o->password || o->password_env) {
		const char *p =
		        o->password ? o->password : getenv(o->password_env);

		if (!p) {
			fprintf(stderr, "tern passwd: %s is not set\n",
			        o->password_env);
			return -1;
		}
		if (strlen(p) > PW_MAX) {
			fprintf(stderr, "tern passwd: password too long\n");
			return -1;
		}
		strcpy(buf, p);
		rc = 0;
	} else if (o->password_file) {
		f = fopen(o->password_file, "r");
		if (!f) {
			fprintf(stderr, "tern passwd: %s: %s\n",
			        o->password_file, strerror(errno));
			return -1;
		}
		rc = read_pw_line(f, buf);
		fclose(f);
		if (rc)
			fprintf(stderr,
			        "tern passwd: %s: no password line (or longer "
			        "than %d bytes)\n",
			        o->password_file, PW_MAX);
	} else if (isatty(STDIN_FILENO)) {
		again = malloc(PW_MAX + 2);
		if (!again)
			return -1;
		rc = ask("Password: ", buf);
		if (!rc && ask("Reenter password: ", again)) {
			rc = -1;
		} else if (!rc && strcmp(buf, again)) {
			fprintf(stderr,
			        "tern passwd: passwords do not match\n");
			rc = -1;
		}
		OPENSSL_cleanse(again, PW_MAX + 2);
		free(again);
		if (rc)
			return -1;
	} else {
		rc = read_pw_line(stdin, buf);
		if (rc)
			fprintf(stderr, "tern passwd: no password on stdin\n");
	}
	if (rc == 0 && !buf[0]) {
		fprintf(stderr, "tern passwd: empty password\n");
		rc = -1;
	}
	return rc;
}

static int check_user(const char *u)
{
	const char *why = NULL;

	if (!u[0])
		why = "empty user name";
	else if (strlen(u) > USER_MAX)
		why = "user name too long";
	else if (strpbrk(u, ":\r\n"))
		why = "':' or a line break in the user name";
	else if (u[0] == '#')
		why = "a user name starting with '#' would be a comment";
	if (!why)
		return 0;
	fprintf(stderr, "tern passwd: %s\n", why);
	return -1;
}

/* -U: every "user:password" line becomes "user:HASH". */
static int upgrade(const struct pw_opts *o, struct pwfile *f)
{
	for (size_t i = 0; i < f->n; i++) {
		struct line *l = &f->v[i];
		char *nl;

		if (!l->ulen)
			continue;
		nl = make_line(o, l->text, l->ulen, l->text + l->ulen + 1);
		if (!nl)
			return -1;
		OPENSSL_cleanse(l->text, strlen(l->text));
		free(l->text);
		l->text = nl;
	}
	return 0;
}

/* Adds or replaces o->user's line with a hash of password. */
static int set_user(const struct pw_opts *o, struct pwfile *f,
                    const char *password)
{
	long i = pwfile_find(f, o->user);
	char *nl = make_line(o, o->user, strlen(o->user), password);

	if (!nl)
		return -1;
	if (i < 0)
		return pwfile_add(f, nl, strlen(o->user));
	OPENSSL_cleanse(f->v[i].text, strlen(f->v[i].text));
	free(f->v[i].text);
	f->v[i].text = nl;
	return 0;
}

static int delete_user(const struct pw_opts *o, struct pwfile *f)
{
	long i = pwfile_find(f, o->user);

	if (i < 0) {
		fprintf(stderr, "tern passwd: user '%s' not in %s\n", o->user,
		        o->file);
		return -1;
	}
	OPENSSL_cleanse(f->v[i].text, strlen(f->v[i].text));
	free(f->v[i].text);
	memmove(&f->v[i], &f->v[i + 1], (f->n - (size_t)i - 1) * sizeof(*f->v));
	f->n--;
	return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a usage error. */
static int parse_args(int argc, char **argv, struct pw_opts *o)
{
	static const struct option longopts[] = {
	        {"password-file", required_argument, NULL, 'F'},
	        {"password-env", required_argument, NULL, 'E'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	int ch, nargs, want, sources;
	char *end;
	long v;

	*o = (struct pw_opts){.type = PWHASH_PBKDF2};
	optind = 1;
	while ((ch = getopt_long(argc, argv, "cDbUH:I:h", longopts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c': o->create = true; break;
		case 'D': o->mode = MODE_DELETE; break;
		case 'U': o->mode = MODE_UPGRADE; break;
		case 'b': o->batch = true; break;
		case 'F': o->password_file = optarg; break;
		case 'E': o->password_env = optarg; break;
		case 'h': usage(stdout); return 1;
		case 'H':
			if (!strcmp(optarg, "sha512-pbkdf2")) {
				o->type = PWHASH_PBKDF2;
			} else if (!strcmp(optarg, "sha512")) {
				o->type = PWHASH_SHA512;
			} else {
				fprintf(stderr,
				        "tern passwd: -H takes sha512-pbkdf2 "
				        "or sha512\n");
				return -1;
			}
			break;
		case 'I':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 1 ||
			    v > 10000000) {
				fprintf(stderr,
				        "tern passwd: bad -I value "
				        "'%s'\n",
				        optarg);
				return -1;
			}
			o->iterations = (int)v;
			break;
		default: usage(stderr); return -1;
		}
	}
	nargs = argc - optind;
	sources = o->batch + !!o->password_file + !!o->password_env;
	want = o->mode == MODE_UPGRADE ? 1 : o->batch ? 3 : 2;
	if (nargs != want || sources > 1 ||
	    (o->mode != MODE_SET && (o->create || sources)) ||
	    (o->mode == MODE_DELETE && o->create)) {
		usage(stderr);
		return -1;
	}
	o->file = argv[optind];
	o->user = nargs > 1 ? argv[optind + 1] : NULL;
	o->password = o->batch ? argv[optind + 2] : NULL;
	if (o->user && check_user(o->user))
		return -1;
	return 0;
}

int cmd_passwd(int argc, char **argv)
{
	struct pwfile f = {0};
	struct pw_opts o;
	char *password = NULL;
	int rc = parse_args(argc, argv, &o);

	if (rc)
		return rc > 0 ? 0 : 1;
	rc = 1;
	if (!o.create && pwfile_read(o.file, o.mode == MODE_UPGRADE, &f) != 0)
		goto done;
	switch (o.mode) {
	case MODE_UPGRADE:
		if (upgrade(&o, &f))
			goto done;
		break;
	case MODE_DELETE:
		if (delete_user(&o, &f))
			goto done;
		break;
	case MODE_SET:
		password = malloc(PW_MAX + 2);
		if (!password || get_password(&o, password) ||
		    set_user(&o, &f, password))
			goto done;
		break;
	}
	if (pwfile_write(o.file, &f) == 0)
		rc = 0;
done:
	if (password) {
		OPENSSL_cleanse(password, PW_MAX + 2);
		free(password);
	}
	pwfile_free(&f);
	return rc;
}
