/*
 * One error convention for all of tern (STYLE.md #4): functions return 0 (or
 * a non-negative count) on success and a negative TERN_E* code on failure.
 * Parsers return TERN_EAGAIN when they need more bytes; that is not an error.
 * MQTT reason codes are data carried on the wire, never return values.
 */
#ifndef TERN_BASE_ERROR_H
#define TERN_BASE_ERROR_H

/* The codes and tern_strerror() are public: include/tern/error.h. */
#include "tern/error.h"

#endif
