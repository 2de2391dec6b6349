/*
 * libFuzzer target for reading a store file (src/store): what `ternd
 * --dump-store` and the start-up checks do with a file that may be
 * anything. Each input is written to a scratch file and opened read-only
 * (the header, PRAGMA quick_check, application id and schema version are
 * checked); a file that passes is loaded and dumped in full. Seeds are
 * real stores holding every record kind, so mutations reach the rows.
 * Opening must either refuse with an error sentence or succeed; nothing
 * may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct store *st = NULL;
	char err[512] = "";
	FILE *f, *out;
	int rc;

	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/tern-store-fuzz-%ld.db",
		         (long)getpid());
	/* A log left by the previous input would be replayed onto this
	 * one. */
	snprintf(err, sizeof(err), "%s-wal", path);
	unlink(err);
	snprintf(err, sizeof(err), "%s-shm", path);
	unlink(err);
	err[0] = '\0';
	f = fopen(path, "wb");
	CHECK(f);
	CHECK(fwrite(data, 1, size, f) == size);
	fclose(f);
	rc = store_open(path, STORE_OPEN_READONLY, &st, err, sizeof(err));
	if (rc != 0) {
		CHECK(st == NULL && err[0] != '\0');
		return 0;
	}
	out = fopen("/dev/null", "w");
	CHECK(out);
	store_dump(st, out);
	fclose(out);
	store_close(st);
	return 0;
}
