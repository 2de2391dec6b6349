/* Placeholder until `tern bench` is written (issue 5); not part of any test. */
#include <stdio.h>

#include "cmd.h"

int cmd_bench(int argc, char **argv)
{
	fprintf(stderr, "tern bench: not built yet\n");
	return 1;
}
