/* Placeholder until `tern rr` is written (issue 5); not part of any test. */
#include <stdio.h>

#include "cmd.h"

int cmd_rr(int argc, char **argv)
{
	fprintf(stderr, "tern rr: not built yet\n");
	return 1;
}
