/*
 * tern: the command-line client. One binary, one subcommand per job; the
 * table below is the whole dispatcher. Flags follow Mosquitto's clients
 * (shared/CONVENTIONS.md) so that a mosquitto_pub/mosquitto_sub user can
 * switch without relearning them.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *what;
} cmds[] = {
        {"pub", cmd_pub, "publish messages"},
        {"sub", cmd_sub, "subscribe and print messages"},
        {"rr", cmd_rr, "request/response (MQTT 5 response topic)"},
        {"bench", cmd_bench, "load a broker and measure it"},
        {"passwd", cmd_passwd, "manage a Mosquitto-compatible password file"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: tern COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-7s %s\n", cmds[i].name, cmds[i].what);
	fprintf(f, "\n`tern COMMAND --help` describes a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "tern: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 1;
}
