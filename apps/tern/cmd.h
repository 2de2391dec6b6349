/*
 * The subcommands of the `tern` command-line tool. Each takes the arguments
 * after its name (argv[0] is the subcommand's name, as getopt expects) and
 * returns the process exit status.
 */
#ifndef TERN_APPS_CMD_H
#define TERN_APPS_CMD_H

int cmd_pub(int argc, char **argv);
int cmd_sub(int argc, char **argv);
int cmd_rr(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_passwd(int argc, char **argv);

#endif
