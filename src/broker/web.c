/* Lookup in the embedded web client's files; see web.h. */
#include "broker/web.h"

#include <string.h>

const struct web_file *web_find(const char *path, size_t len)
{
	if (len == 1 && path[0] == '/') {
		path = "/index.html";
		len = strlen(path);
	}
	for (size_t i = 0; i < web_nfiles; i++)
		if (strlen(web_files[i].path) == len &&
		    memcmp(web_files[i].path, path, len) == 0)
			return &web_files[i];
	return NULL;
}
