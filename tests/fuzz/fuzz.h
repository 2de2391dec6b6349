/*
 * What every libFuzzer target here shares: the prototype of the entry
 * point (libFuzzer's headers are not installed), and CHECK, which aborts
 * when a property fails, so libFuzzer keeps the input as a crash (assert
 * would vanish with NDEBUG).
 */
#ifndef TERN_TESTS_FUZZ_H
#define TERN_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

#endif
