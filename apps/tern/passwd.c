/* Placeholder until `tern passwd` is written (issue 5); not part of any test.
 */
#include <stdio.h>

#include "cmd.h"

int cmd_passwd(int argc, char **argv)
{
	fprintf(stderr, "tern passwd: not built yet\n");
	return 1;
}
