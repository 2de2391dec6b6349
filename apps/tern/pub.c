/* Placeholder until `tern pub` is written (issue 5); not part of any test. */
#include <stdio.h>

#include "cmd.h"

int cmd_pub(int argc, char **argv)
{
	fprintf(stderr, "tern pub: not built yet\n");
	return 1;
}
