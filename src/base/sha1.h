/*
 * SHA-1 (FIPS 180-4 §6.1) of a buffer, for the WebSocket handshake (RFC
 * 6455 §4.2.2), where it names the accepted key and is no security
 * function. Pure: no allocation, no state between calls.
 *
 * libcrypto's EVP_Digest fetches the algorithm and allocates a context on
 * every call: about 11,000 instructions for the 60 bytes of a handshake,
 * a fifth of the broker's instructions per WebSocket connection. This
 * takes about 4,700 (callgrind; docs/benchmarks.md, Findings).
 */
#ifndef TERN_BASE_SHA1_H
#define TERN_BASE_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_LEN 20

/* Writes the SHA-1 digest of data[0..len) to out. */
void sha1(const void *data, size_t len, uint8_t out[SHA1_LEN]);

#endif
