/*
 * The web client's files, embedded in ternd at build time: tools/webembed
 * turns web/ and the browser bundles it uses from node_modules (MQTT.js,
 * uPlot) into a generated C source (build dir, webfiles.c) defining
 * web_files. Without node_modules at configure time only a placeholder
 * page is embedded, which says to run `make deps`.
 */
#ifndef TERN_BROKER_WEB_H
#define TERN_BROKER_WEB_H

#include <stddef.h>

struct web_file {
	const char *path; /* URL path, "/index.html" */
	const unsigned char *data;
	size_t len;
	const char *etag; /* quoted, from a hash of the content */
};

extern const struct web_file web_files[];
extern const size_t web_nfiles;

/*
 * The file for a request path (not NUL-terminated; no query), "/" meaning
 * "/index.html", or NULL.
 */
const struct web_file *web_find(const char *path, size_t len);

#endif
