/* Placeholder until `tern sub` is written (issue 5); not part of any test. */
#include <stdio.h>

#include "cmd.h"

int cmd_sub(int argc, char **argv)
{
	fprintf(stderr, "tern sub: not built yet\n");
	return 1;
}
