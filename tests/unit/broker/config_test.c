/*
 * Tests for src/broker/config.c: defaults, every key, listener scoping,
 * the line syntax (comments, blank lines, CRLF), each error with its exact
 * "name:line: reason" message, include_dir, reading files and
 * config_finish in local-only and configured modes.
 */
/* cmocka.h needs these four first; the blank line keeps clang-format from
 * sorting it above them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "broker/config.h"

static char err[512];

/* Parses `text` as "t.conf" into a fresh config; the test frees it. */
static void parse_ok(struct config *c, const char *text)
{
	config_init(c);
	err[0] = '\0';
	assert_int_equal(config_parse(c, text, "t.conf", err, sizeof(err)), 0);
	assert_string_equal(err, "");
}

/* Parses `text` and expects TERN_ECONFIG with exactly `msg` (NULL: the
 * caller checks err itself). */
static void parse_fails(const char *text, const char *msg)
{
	struct config c;

	config_init(&c);
	assert_int_equal(config_parse(&c, text, "t.conf", err, sizeof(err)),
	                 TERN_ECONFIG);
	if (msg)
		assert_string_equal(err, msg);
	config_free(&c);
}

static void test_defaults(void **state)
{
	struct config c;

	(void)state;
	config_init(&c);
	assert_null(c.listeners);
	assert_int_equal(c.nlisteners, 0);
	assert_false(c.local_only);
	assert_int_equal(c.sec.allow_anonymous, -1);
	assert_null(c.sec.password_file);
	assert_null(c.sec.acl_file);
	assert_int_equal(c.max_queued_messages, 1000);
	assert_int_equal(c.max_queued_bytes, 0);
	assert_int_equal(c.max_inflight_messages, 20);
	assert_int_equal(c.max_connections, -1);
	assert_int_equal(c.max_packet_size, 0);
	assert_int_equal(c.message_size_limit, 0);
	assert_int_equal(c.max_keepalive, 65535);
	assert_int_equal(c.connect_timeout, 10);
	assert_int_equal(c.sys_interval, 10);
	assert_true(c.connection_messages);
	assert_int_equal(c.log_dest, LOGD_STDERR);
	assert_null(c.log_file);
	assert_int_equal(c.log_type, LOGT_ERROR | LOGT_WARNING | LOGT_NOTICE |
	                                     LOGT_INFORMATION);
	assert_null(c.log_timestamp_format);
	assert_true(c.log_timestamp);
	assert_null(c.pid_file);
	assert_int_equal(c.threads, 0);
	assert_false(c.persistence);
	assert_null(c.persistence_location);
	assert_int_equal(c.autosave_interval, 1800);
	config_free(&c);
	config_free(&c); /* leaves an init'ed config: safe twice */
}

static void test_every_key(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "per_listener_settings false\n"
	             "allow_anonymous true\n"
	             "password_file /etc/tern/passwd\n"
	             "acl_file /etc/tern/acl\n"
	             "max_queued_messages 0\n"
	             "max_queued_bytes 18446744073709551615\n"
	             "max_inflight_messages 65535\n"
	             "max_connections 500\n"
	             "max_packet_size 4096\n"
	             "message_size_limit 268435455\n"
	             "max_keepalive 120\n"
	             "connect_timeout 30\n"
	             "sys_interval 0\n"
	             "connection_messages false\n"
	             "log_dest file /var/log/tern.log\n"
	             "log_type debug\n"
	             "log_timestamp false\n"
	             "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
	             "pid_file /run/ternd.pid\n"
	             "threads 1024\n"
	             "persistence true\n"
	             "persistence_location /var/lib/tern/\n"
	             "autosave_interval 60\n"
	             "user mosquitto\n"
	             "listener 1883\n");
	assert_int_equal(c.sec.allow_anonymous, 1);
	assert_string_equal(c.sec.password_file, "/etc/tern/passwd");
	assert_string_equal(c.sec.acl_file, "/etc/tern/acl");
	assert_int_equal(c.max_queued_messages, 0);
	assert_true(c.max_queued_bytes == UINT64_MAX);
	assert_int_equal(c.max_inflight_messages, 65535);
	assert_int_equal(c.max_connections, 500);
	assert_int_equal(c.max_packet_size, 4096);
	assert_int_equal(c.message_size_limit, 268435455);
	assert_int_equal(c.max_keepalive, 120);
	assert_int_equal(c.connect_timeout, 30);
	assert_int_equal(c.sys_interval, 0);
	assert_false(c.connection_messages);
	assert_int_equal(c.log_dest, LOGD_FILE);
	assert_string_equal(c.log_file, "/var/log/tern.log");
	assert_int_equal(c.log_type, LOGT_DEBUG);
	assert_false(c.log_timestamp);
	assert_string_equal(c.log_timestamp_format, "%Y-%m-%dT%H:%M:%S");
	assert_string_equal(c.pid_file, "/run/ternd.pid");
	assert_string_equal(c.user, "mosquitto");
	assert_int_equal(c.threads, 1024);
	assert_true(c.persistence);
	assert_string_equal(c.persistence_location, "/var/lib/tern/");
	assert_int_equal(c.autosave_interval, 60);
	assert_int_equal(c.nlisteners, 1);
	config_free(&c);
}

/* Durability keys (persist.h): defaults, values, refusals. */
static void test_persistence_keys(void **state)
{
	struct config c;

	(void)state;
	config_init(&c);
	assert_int_equal(c.persistence_sync, 2); /* always */
	assert_int_equal(c.persistence_corrupt, 0);
	assert_int_equal(c.persistence_max_bytes, 0);
	assert_null(c.persistence_file);
	config_free(&c);
	parse_ok(&c, "persistence true\n"
	             "persistence_file my store.db\n"
	             "persistence_sync batch\n"
	             "persistence_max_bytes 1048576\n"
	             "persistence_corrupt move\n"
	             "autosave_interval 60\n");
	assert_true(c.persistence);
	assert_string_equal(c.persistence_file, "my store.db");
	assert_int_equal(c.persistence_sync, 1);
	assert_int_equal(c.persistence_max_bytes, 1048576);
	assert_int_equal(c.persistence_corrupt, 1);
	config_free(&c);
	parse_ok(&c, "persistence_sync off\n");
	assert_int_equal(c.persistence_sync, 0);
	config_free(&c);
	parse_fails("persistence_sync sometimes\n",
	            "t.conf:1: unknown value 'sometimes' for "
	            "'persistence_sync' (expected one of: off, batch, always)");
	parse_fails("persistence_corrupt ignore\n",
	            "t.conf:1: unknown value 'ignore' for "
	            "'persistence_corrupt' (expected one of: fail, move)");
	parse_fails("persistence_max_bytes 1M\n",
	            "t.conf:1: 'persistence_max_bytes' needs a whole number, "
	            "not '1M'");
}

static void test_bool_words(void **state)
{
	struct config c;

	(void)state;
	/* Mosquitto takes 1/0 as well as true/false. */
	parse_ok(&c, "allow_anonymous 0\npersistence 1\n");
	assert_int_equal(c.sec.allow_anonymous, 0);
	assert_true(c.persistence);
	config_free(&c);
}

static void test_strings_keep_spaces(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "password_file   /srv/my files/passwd  \n"
	             "log_timestamp_format %d %b %H:%M\n"
	             "log_dest file /var/log/my tern.log\n");
	assert_string_equal(c.sec.password_file, "/srv/my files/passwd");
	assert_string_equal(c.log_timestamp_format, "%d %b %H:%M");
	assert_string_equal(c.log_file, "/var/log/my tern.log");
	config_free(&c);
}

static void test_listeners(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "max_connections 100\n"
	             "listener 1883\n"
	             "listener 8083 127.0.0.1\n"
	             "protocol websockets\n"
	             "max_connections 10\n"
	             "listener 8084 ::1\n"
	             "protocol mqtt\n"
	             "listener 1883 127.0.0.1\n");
	assert_int_equal(c.max_connections, 100);
	assert_int_equal(c.nlisteners, 4);
	assert_int_equal(c.listeners[0].port, 1883);
	assert_null(c.listeners[0].bind);
	assert_int_equal(c.listeners[0].protocol, PROTO_MQTT);
	assert_int_equal(c.listeners[0].max_connections, -1);
	assert_int_equal(c.listeners[1].port, 8083);
	assert_string_equal(c.listeners[1].bind, "127.0.0.1");
	assert_int_equal(c.listeners[1].protocol, PROTO_WEBSOCKETS);
	assert_int_equal(c.listeners[1].max_connections, 10);
	assert_int_equal(c.listeners[2].port, 8084);
	assert_string_equal(c.listeners[2].bind, "::1");
	assert_int_equal(c.listeners[2].protocol, PROTO_MQTT);
	assert_int_equal(c.listeners[3].port, 1883);
	assert_string_equal(c.listeners[3].bind, "127.0.0.1");
	config_free(&c);
}

static void test_global_keys_after_listener(void **state)
{
	struct config c;

	(void)state;
	/* Without per_listener_settings, security keys stay global wherever
	 * they appear, as in Mosquitto. */
	parse_ok(&c, "listener 1883\nallow_anonymous true\n");
	assert_int_equal(c.sec.allow_anonymous, 1);
	config_free(&c);
}

static void test_per_listener_settings(void **state)
{
	struct config c;

	(void)state;
	/* Each listener line starts its own set; the keys before the first
	 * one belong to the default listeners (here the -p one). */
	parse_ok(&c, "per_listener_settings true\n"
	             "allow_anonymous true\n"
	             "password_file /p0\n"
	             "listener 1883\n"
	             "password_file /p1\n"
	             "acl_file /a1\n"
	             "listener 1884\n"
	             "allow_anonymous true\n");
	assert_true(c.per_listener_settings);
	assert_int_equal(config_add_listener(&c, 1885, NULL), 0);
	assert_int_equal(config_finish(&c), 0);
	assert_int_equal(c.sec.allow_anonymous, 1);
	assert_string_equal(c.sec.password_file, "/p0");
	assert_ptr_equal(config_security(&c, 0), &c.listeners[0].sec);
	assert_string_equal(config_security(&c, 0)->password_file, "/p1");
	assert_string_equal(config_security(&c, 0)->acl_file, "/a1");
	/* Nothing is inherited; unset allow_anonymous is false. */
	assert_int_equal(config_security(&c, 0)->allow_anonymous, 0);
	assert_null(config_security(&c, 1)->password_file);
	assert_null(config_security(&c, 1)->acl_file);
	assert_int_equal(config_security(&c, 1)->allow_anonymous, 1);
	assert_ptr_equal(config_security(&c, 2), &c.sec);
	assert_ptr_equal(config_security(&c, 99), &c.sec);
	config_free(&c);

	/* With false (the default) every listener shares the global set, and
	 * the last allow_anonymous wins. */
	parse_ok(&c, "listener 1883\nallow_anonymous false\n"
	             "password_file /p\nlistener 1884\nallow_anonymous "
	             "true\n");
	assert_false(c.per_listener_settings);
	assert_ptr_equal(config_security(&c, 0), &c.sec);
	assert_ptr_equal(config_security(&c, 1), &c.sec);
	assert_int_equal(c.sec.allow_anonymous, 1);
	assert_string_equal(c.sec.password_file, "/p");
	assert_null(c.listeners[0].sec.password_file);
	config_free(&c);

	/* Repeating the same value after security keys is harmless. */
	parse_ok(&c, "acl_file /a\nper_listener_settings false\n");
	config_free(&c);
}

static void test_syntax(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "# a comment\r\n"
	             "\r\n"
	             "   \t\n"
	             "  # an indented comment\n"
	             "\tmax_keepalive\t60 \t\r\n"
	             "sys_interval    5\r\n"
	             "password_file /etc/a#b\n"
	             "listener 1883 0.0.0.0\r\n"
	             "threads 2"); /* no final newline */
	assert_int_equal(c.max_keepalive, 60);
	assert_int_equal(c.sys_interval, 5);
	assert_string_equal(c.sec.password_file, "/etc/a#b");
	assert_string_equal(c.listeners[0].bind, "0.0.0.0");
	assert_int_equal(c.threads, 2);
	config_free(&c);

	parse_ok(&c, "");
	assert_int_equal(c.nlisteners, 0);
	config_free(&c);

	parse_ok(&c, "\xEF\xBB\xBFthreads 3\n");
	assert_int_equal(c.threads, 3);
	config_free(&c);
}

static void test_long_line(void **state)
{
	struct config c;
	size_t n = 100000, pre = strlen("pid_file ");
	char *text = malloc(pre + n + 2);

	(void)state;
	assert_non_null(text);
	memcpy(text, "pid_file ", pre);
	memset(text + pre, 'p', n);
	strcpy(text + pre + n, "\n");
	parse_ok(&c, text);
	assert_int_equal(strlen(c.pid_file), n);
	config_free(&c);
	free(text);
}

static void test_log_dest(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "log_dest stdout\nlog_dest file /tmp/t.log\n");
	assert_int_equal(c.log_dest, LOGD_STDOUT | LOGD_FILE);
	config_free(&c);

	parse_ok(&c, "log_dest stderr\nlog_dest none\n");
	assert_int_equal(c.log_dest, LOGD_NONE);
	config_free(&c);

	parse_ok(&c, "log_dest none\nlog_dest stdout\n");
	assert_int_equal(c.log_dest, LOGD_STDOUT);
	config_free(&c);
}

static void test_log_type(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "log_type error\nlog_type subscribe\n"
	             "log_type unsubscribe\n");
	assert_int_equal(c.log_type,
	                 LOGT_ERROR | LOGT_SUBSCRIBE | LOGT_UNSUBSCRIBE);
	config_free(&c);

	parse_ok(&c, "log_type all\n");
	assert_int_equal(c.log_type, LOGT_ALL);
	config_free(&c);

	parse_ok(&c, "log_type all\nlog_type none\n");
	assert_int_equal(c.log_type, 0);
	config_free(&c);

	parse_ok(&c, "log_type none\nlog_type warning\nlog_type notice\n"
	             "log_type information\n");
	assert_int_equal(c.log_type,
	                 LOGT_WARNING | LOGT_NOTICE | LOGT_INFORMATION);
	config_free(&c);
}

static void test_errors(void **state)
{
	(void)state;
	parse_fails("\n\n\n\n\n\nmax_conections 10\n",
	            "t.conf:7: unknown key 'max_conections'");
	parse_fails("port 1883\n", "t.conf:1: unknown key 'port'");
	parse_fails("max_keepalive\n",
	            "t.conf:1: missing value for 'max_keepalive'");
	parse_fails("password_file   \r\n",
	            "t.conf:1: missing value for 'password_file'");
	parse_fails("max_keepalive ten\n",
	            "t.conf:1: 'max_keepalive' needs a whole number, not "
	            "'ten'");
	parse_fails("max_queued_bytes 10k\n",
	            "t.conf:1: 'max_queued_bytes' needs a whole number, not "
	            "'10k'");
	parse_fails("threads +4\n",
	            "t.conf:1: 'threads' needs a whole number, not '+4'");
	parse_fails("threads 0x10\n",
	            "t.conf:1: 'threads' needs a whole number, not '0x10'");
	parse_fails("threads -\n",
	            "t.conf:1: 'threads' needs a whole number, not '-'");
	parse_fails("max_keepalive 65536\n",
	            "t.conf:1: 'max_keepalive' must be between 0 and 65535, "
	            "not '65536'");
	parse_fails("threads 1025\n",
	            "t.conf:1: 'threads' must be between 0 and 1024, not "
	            "'1025'");
	parse_fails("max_queued_messages -1\n",
	            "t.conf:1: 'max_queued_messages' must be between 0 and "
	            "2147483647, not '-1'");
	parse_fails("max_connections -2\n",
	            "t.conf:1: 'max_connections' must be between -1 and "
	            "2147483647, not '-2'");
	parse_fails("max_queued_bytes 18446744073709551616\n",
	            "t.conf:1: 'max_queued_bytes' must be between 0 and "
	            "18446744073709551615, not '18446744073709551616'");
	parse_fails("max_packet_size 19\n",
	            "t.conf:1: 'max_packet_size' must be between 20 and "
	            "4294967295, not '19'");
	parse_fails("message_size_limit 268435456\n",
	            "t.conf:1: 'message_size_limit' must be between 0 and "
	            "268435455, not '268435456'");
	parse_fails("connect_timeout 0\n",
	            "t.conf:1: 'connect_timeout' must be between 1 and 86400, "
	            "not '0'");
	parse_fails("max_keepalive 60 # one minute\n",
	            "t.conf:1: unexpected '# one minute' after the value of "
	            "'max_keepalive'");
	parse_fails("allow_anonymous yes\n",
	            "t.conf:1: 'allow_anonymous' needs true or false, not "
	            "'yes'");
	parse_fails("persistence true false\n",
	            "t.conf:1: unexpected 'false' after the value of "
	            "'persistence'");
	parse_fails("user mosquitto extra\n",
	            "t.conf:1: unexpected 'extra' after the value of 'user'");
	parse_fails("user a\nuser b\n", "t.conf:2: duplicate 'user'");
}

static void test_listener_errors(void **state)
{
	(void)state;
	parse_fails("listener 0\n", "t.conf:1: 'listener' must be between 1 "
	                            "and 65535, not '0'");
	parse_fails("listener 65536\n", "t.conf:1: 'listener' must be "
	                                "between 1 and 65535, not '65536'");
	parse_fails("listener http\n",
	            "t.conf:1: 'listener' needs a whole number, not 'http'");
	parse_fails("listener\n", "t.conf:1: missing value for 'listener'");
	parse_fails("listener 1883 127.0.0.1 mqtt\n",
	            "t.conf:1: unexpected 'mqtt' after 'listener 1883 "
	            "127.0.0.1'");
	parse_fails("listener 1883\nlistener 1883\n",
	            "t.conf:2: duplicate listener on port 1883");
	parse_fails("protocol websockets\nlistener 8083\n",
	            "t.conf:1: 'protocol' must follow a 'listener' line");
	parse_fails("listener 8083\nprotocol http\n",
	            "t.conf:2: unknown value 'http' for 'protocol' (expected "
	            "one of: mqtt, websockets)");
	parse_fails("listener 8083\nprotocol websockets mqtt\n",
	            "t.conf:2: unexpected 'mqtt' after the value of "
	            "'protocol'");
	parse_fails("listener 1883\nmax_connections lots\n",
	            "t.conf:2: 'max_connections' needs a whole number, not "
	            "'lots'");
}

static void test_special_errors(void **state)
{
	(void)state;
	parse_fails("log_dest syslog\n",
	            "t.conf:1: unknown value 'syslog' for 'log_dest' (expected "
	            "one of: stdout, stderr, file, none)");
	parse_fails("log_dest file\n",
	            "t.conf:1: 'log_dest file' needs a path");
	parse_fails("log_dest stdout stderr\n",
	            "t.conf:1: unexpected 'stderr' after 'log_dest stdout'");
	parse_fails("log_dest file /a\nlog_dest file /b\n",
	            "t.conf:2: duplicate 'log_dest file'");
	parse_fails("log_type websockets\n",
	            "t.conf:1: unknown value 'websockets' for 'log_type' "
	            "(expected one of: error, warning, notice, information, "
	            "debug, subscribe, unsubscribe, all, none)");
	parse_fails("log_type error warning\n",
	            "t.conf:1: unexpected 'warning' after the value of "
	            "'log_type'");
	parse_fails("password_file /p\nper_listener_settings true\n",
	            "t.conf:2: 'per_listener_settings' must come before "
	            "allow_anonymous, password_file and acl_file");
	parse_fails("per_listener_settings true\nlistener 1\nacl_file /a\n"
	            "acl_file /b\n",
	            "t.conf:4: duplicate 'acl_file'");
	parse_fails("per_listener_settings maybe\n",
	            "t.conf:1: 'per_listener_settings' needs true or false, "
	            "not 'maybe'");
	parse_fails("acl_file /a\nacl_file /b\n",
	            "t.conf:2: duplicate 'acl_file'");
	parse_fails("include_dir /nonexistent/tern.d\n",
	            "t.conf:1: include_dir '/nonexistent/tern.d': No such file "
	            "or directory");
}

/* A scratch directory under /tmp, removed by the test that made it. */
static char tmpdir[64];

static void write_file(const char *dir, const char *name, const char *text,
                       size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void remove_file(const char *dir, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

static void test_include_dir(void **state)
{
	struct config c;
	char text[256], sub[128], path[256];

	(void)state;
	strcpy(tmpdir, "/tmp/tern_config_test.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	/* Sorted order: a.conf, B.conf, c.conf; other names are skipped. */
	write_file(tmpdir, "c.conf", "listener 3\n", 11);
	write_file(tmpdir, "a.conf", "listener 1\n", 11);
	write_file(tmpdir, "B.conf", "listener 2\nprotocol websockets\n", 31);
	write_file(tmpdir, "notes.txt", "garbage\n", 8);
	write_file(tmpdir, ".conf", "garbage\n", 8);
	snprintf(text, sizeof(text), "threads 4\ninclude_dir %s\nlistener 4\n",
	         tmpdir);
	parse_ok(&c, text);
	assert_int_equal(c.threads, 4);
	assert_int_equal(c.nlisteners, 4);
	assert_int_equal(c.listeners[0].port, 1);
	assert_int_equal(c.listeners[1].port, 2);
	assert_int_equal(c.listeners[1].protocol, PROTO_WEBSOCKETS);
	assert_int_equal(c.listeners[2].port, 3);
	assert_int_equal(c.listeners[3].port, 4);
	config_free(&c);

	/* An error inside an included file names that file and its line. */
	write_file(tmpdir, "d.conf", "\nthreads many\n", 14);
	parse_fails(text, NULL);
	snprintf(sub, sizeof(sub),
	         "%s/d.conf:2: 'threads' needs a whole "
	         "number, not 'many'",
	         tmpdir);
	assert_string_equal(err, sub);
	remove_file(tmpdir, "d.conf");

	/* A directory that includes itself stops at the depth limit. */
	snprintf(sub, sizeof(sub), "%s/loop", tmpdir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(text, sizeof(text), "include_dir %s\n", sub);
	write_file(sub, "e.conf", text, strlen(text));
	parse_fails(text, NULL);
	snprintf(path, sizeof(path),
	         "%s/e.conf:1: include_dir nested more than 8 deep", sub);
	assert_string_equal(err, path);
	remove_file(sub, "e.conf");
	assert_int_equal(rmdir(sub), 0);

	remove_file(tmpdir, "a.conf");
	remove_file(tmpdir, "B.conf");
	remove_file(tmpdir, "c.conf");
	remove_file(tmpdir, "notes.txt");
	remove_file(tmpdir, ".conf");
	assert_int_equal(rmdir(tmpdir), 0);
}

static void test_load_file(void **state)
{
	struct config c;
	char path[128];
	static const char crlf[] = "# tern\r\nlistener 1884\r\n"
	                           "allow_anonymous false\r\n";

	(void)state;
	strcpy(tmpdir, "/tmp/tern_config_test.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	write_file(tmpdir, "broker.conf", crlf, sizeof(crlf) - 1);
	snprintf(path, sizeof(path), "%s/broker.conf", tmpdir);
	config_init(&c);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), 0);
	assert_int_equal(c.nlisteners, 1);
	assert_int_equal(c.listeners[0].port, 1884);
	assert_int_equal(c.sec.allow_anonymous, 0);
	config_free(&c);

	/* A NUL byte would silently cut the line short; it is refused. */
	write_file(tmpdir, "broker.conf", "threads 1\nthreads 2\0junk\n", 25);
	config_init(&c);
	assert_int_equal(config_load(&c, path, err, sizeof(err)), TERN_ECONFIG);
	snprintf(path, sizeof(path), "%s/broker.conf:2: NUL byte in line",
	         tmpdir);
	assert_string_equal(err, path);
	config_free(&c);

	/* A directory opens but cannot be read. */
	config_init(&c);
	assert_int_equal(config_load(&c, tmpdir, err, sizeof(err)),
	                 TERN_ECONFIG);
	snprintf(path, sizeof(path), "cannot read '%s': Is a directory",
	         tmpdir);
	assert_string_equal(err, path);
	config_free(&c);

	remove_file(tmpdir, "broker.conf");
	assert_int_equal(rmdir(tmpdir), 0);
}

static void test_missing_file(void **state)
{
	struct config c;

	(void)state;
	config_init(&c);
	assert_int_equal(
	        config_load(&c, "/nonexistent/broker.conf", err, sizeof(err)),
	        TERN_ECONFIG);
	assert_string_equal(err, "cannot read '/nonexistent/broker.conf': No "
	                         "such file or directory");
	config_free(&c);
}

static void test_small_error_buffer(void **state)
{
	struct config c;
	char small[12];

	(void)state;
	config_init(&c);
	assert_int_equal(
	        config_parse(&c, "bogus 1\n", "t.conf", small, sizeof(small)),
	        TERN_ECONFIG);
	assert_string_equal(small, "t.conf:1: u");
	assert_int_equal(config_parse(&c, "bogus 1\n", "t.conf", NULL, 0),
	                 TERN_ECONFIG);
	config_free(&c);
}

static void test_finish_local_only(void **state)
{
	struct config c;

	(void)state;
	config_init(&c);
	assert_int_equal(config_finish(&c), 0);
	assert_true(c.local_only);
	/* MQTT on 1883 and MQTT over WebSocket on 8083, loopback only. */
	assert_int_equal(c.nlisteners, 2);
	assert_int_equal(c.listeners[0].port, 1883);
	assert_null(c.listeners[0].bind);
	assert_int_equal(c.listeners[0].protocol, PROTO_MQTT);
	assert_int_equal(c.listeners[1].port, 8083);
	assert_null(c.listeners[1].bind);
	assert_int_equal(c.listeners[1].protocol, PROTO_WEBSOCKETS);
	assert_int_equal(c.sec.allow_anonymous, 1);
	config_free(&c);

	/* An explicit allow_anonymous false is kept. */
	parse_ok(&c, "allow_anonymous false\n");
	assert_int_equal(config_finish(&c), 0);
	assert_true(c.local_only);
	assert_int_equal(c.sec.allow_anonymous, 0);
	config_free(&c);
}

static void test_finish_with_listeners(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "listener 1883\n");
	assert_int_equal(config_finish(&c), 0);
	assert_false(c.local_only);
	assert_int_equal(c.nlisteners, 1);
	assert_int_equal(c.sec.allow_anonymous, 0);
	config_free(&c);

	parse_ok(&c, "listener 1883\nallow_anonymous true\n");
	assert_int_equal(config_finish(&c), 0);
	assert_int_equal(c.sec.allow_anonymous, 1);
	config_free(&c);

	/* -p on the command line counts as a configured listener. */
	config_init(&c);
	assert_int_equal(config_add_listener(&c, 1884, "::"), 0);
	assert_int_equal(config_finish(&c), 0);
	assert_false(c.local_only);
	assert_string_equal(c.listeners[0].bind, "::");
	assert_int_equal(c.listeners[0].max_connections, -1);
	assert_int_equal(c.sec.allow_anonymous, 0);
	config_free(&c);
}

/* max_publish_rate, max_publish_bytes_rate (0 = unlimited) and
 * memory_limit (unset = decided at start, 0 = off), with their ranges. */
static void test_rate_and_memory_keys(void **state)
{
	struct config c;

	(void)state;
	config_init(&c);
	assert_int_equal(c.max_publish_rate, 0);
	assert_int_equal(c.max_publish_bytes_rate, 0);
	assert_true(c.memory_limit == CONFIG_MEMORY_AUTO);
	config_free(&c);
	parse_ok(&c, "max_publish_rate 200\n"
	             "max_publish_bytes_rate 1099511627776\n"
	             "memory_limit 0\n");
	assert_int_equal(c.max_publish_rate, 200);
	assert_true(c.max_publish_bytes_rate == (UINT64_C(1) << 40));
	assert_true(c.memory_limit == 0);
	config_free(&c);
	parse_ok(&c, "memory_limit 4611686018427387904\n"
	             "max_publish_rate 4294967295\n");
	assert_true(c.memory_limit == (UINT64_C(1) << 62));
	assert_int_equal(c.max_publish_rate, UINT32_MAX);
	config_free(&c);
	parse_fails("\nmemory_limit 4611686018427387905\n",
	            "t.conf:2: 'memory_limit' must be between 0 and "
	            "4611686018427387904, not '4611686018427387905'");
	parse_fails("memory_limit 64M\n",
	            "t.conf:1: 'memory_limit' needs a whole number, not "
	            "'64M'");
	parse_fails("max_publish_rate -1\n",
	            "t.conf:1: 'max_publish_rate' must be between 0 and "
	            "4294967295, not '-1'");
	parse_fails("max_publish_bytes_rate 1099511627777\n",
	            "t.conf:1: 'max_publish_bytes_rate' must be between 0 and "
	            "1099511627776, not '1099511627777'");
}

/* The JWT keys: security keys, per listener with per_listener_settings. */
static void test_jwt_keys(void **state)
{
	struct config c;

	(void)state;
	config_init(&c);
	assert_null(c.sec.jwt_hs256_secret_file);
	assert_null(c.sec.jwt_rs256_public_key_file);
	assert_null(c.sec.jwt_username_claim);
	assert_null(c.sec.jwt_acl_claim);
	assert_null(c.sec.jwt_issuer);
	assert_null(c.sec.jwt_audience);
	assert_int_equal(c.sec.jwt_leeway, 0);
	assert_int_equal(c.sec.jwt_require_exp, -1);
	config_free(&c);
	parse_ok(&c, "jwt_hs256_secret_file /etc/tern/jwt secret\n"
	             "jwt_rs256_public_key_file /etc/tern/pub.pem\n"
	             "jwt_username_claim email\n"
	             "jwt_acl_claim mqtt\n"
	             "jwt_issuer https://auth.example/\n"
	             "jwt_audience tern\n"
	             "jwt_leeway 3600\n"
	             "jwt_require_exp false\n");
	assert_string_equal(c.sec.jwt_hs256_secret_file,
	                    "/etc/tern/jwt secret");
	assert_string_equal(c.sec.jwt_rs256_public_key_file,
	                    "/etc/tern/pub.pem");
	assert_string_equal(c.sec.jwt_username_claim, "email");
	assert_string_equal(c.sec.jwt_acl_claim, "mqtt");
	assert_string_equal(c.sec.jwt_issuer, "https://auth.example/");
	assert_string_equal(c.sec.jwt_audience, "tern");
	assert_int_equal(c.sec.jwt_leeway, 3600);
	assert_int_equal(c.sec.jwt_require_exp, 0);
	config_free(&c);
	parse_ok(&c, "per_listener_settings true\n"
	             "listener 1883\n"
	             "jwt_hs256_secret_file /a\n"
	             "listener 1884\n"
	             "jwt_rs256_public_key_file /b\n"
	             "jwt_require_exp true\n");
	assert_string_equal(config_security(&c, 0)->jwt_hs256_secret_file,
	                    "/a");
	assert_null(config_security(&c, 0)->jwt_rs256_public_key_file);
	assert_int_equal(config_security(&c, 0)->jwt_require_exp, -1);
	assert_null(config_security(&c, 1)->jwt_hs256_secret_file);
	assert_string_equal(config_security(&c, 1)->jwt_rs256_public_key_file,
	                    "/b");
	assert_int_equal(config_security(&c, 1)->jwt_require_exp, 1);
	assert_null(c.sec.jwt_hs256_secret_file);
	config_free(&c);
	parse_fails("\njwt_leeway 3601\n",
	            "t.conf:2: 'jwt_leeway' must be between 0 and 3600, not "
	            "'3601'");
	parse_fails("jwt_leeway 5s\n",
	            "t.conf:1: 'jwt_leeway' needs a whole number, not '5s'");
	parse_fails("jwt_require_exp maybe\n", NULL);
	assert_non_null(strstr(err, "t.conf:1:"));
	parse_fails("jwt_issuer\n", NULL);
	assert_non_null(strstr(err, "t.conf:1:"));
}

/* max_topic_length and max_topic_levels (0 = none). */
static void test_topic_limits(void **state)
{
	struct config c;

	(void)state;
	config_init(&c);
	/* The defaults: no length limit beyond the protocol's, 128 levels. */
	assert_int_equal(c.max_topic_levels, 128);
	assert_int_equal(c.max_subscriptions_per_client, 10000);
	assert_false(config_topic_over_limit(&c, "a/b/c/d", 7));
	assert_false(config_topic_over_limit(
	        &c, "0/1/2/3/4/5/6/7/8/9/a/b/c/d/e/f", 31));
	c.max_topic_levels = 0;
	c.max_topic_length = 5;
	assert_false(config_topic_over_limit(&c, "a/b/c", 5));
	assert_true(config_topic_over_limit(&c, "a/b/cd", 6));
	c.max_topic_length = 0;
	c.max_topic_levels = 3;
	assert_false(config_topic_over_limit(&c, "a/b/c", 5));
	assert_false(config_topic_over_limit(&c, "//", 2));
	assert_true(config_topic_over_limit(&c, "///", 3));
	assert_true(config_topic_over_limit(&c, "a/b/c/#", 7));
	/* Only the bytes given count, not what follows them. */
	assert_false(config_topic_over_limit(&c, "a/b/c/d", 5));
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_every_key),
	        cmocka_unit_test(test_persistence_keys),
	        cmocka_unit_test(test_bool_words),
	        cmocka_unit_test(test_strings_keep_spaces),
	        cmocka_unit_test(test_listeners),
	        cmocka_unit_test(test_global_keys_after_listener),
	        cmocka_unit_test(test_syntax),
	        cmocka_unit_test(test_long_line),
	        cmocka_unit_test(test_log_dest),
	        cmocka_unit_test(test_log_type),
	        cmocka_unit_test(test_errors),
	        cmocka_unit_test(test_listener_errors),
	        cmocka_unit_test(test_special_errors),
	        cmocka_unit_test(test_include_dir),
	        cmocka_unit_test(test_load_file),
	        cmocka_unit_test(test_missing_file),
	        cmocka_unit_test(test_small_error_buffer),
	        cmocka_unit_test(test_finish_local_only),
	        cmocka_unit_test(test_finish_with_listeners),
	        cmocka_unit_test(test_topic_limits),
	        cmocka_unit_test(test_rate_and_memory_keys),
	        cmocka_unit_test(test_per_listener_settings),
	        cmocka_unit_test(test_jwt_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
