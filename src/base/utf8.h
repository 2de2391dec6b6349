/* UTF-8 validation with MQTT's extra rules (MQTT 1.5.3 / 5.0 §1.5.4). */
#ifndef TERN_BASE_UTF8_H
#define TERN_BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Checks that s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates U+D800..U+DFFF, nothing above U+10FFFF) and contains no U+0000.
 * Returns 0 or TERN_EUTF8.
 */
int utf8_check_mqtt(const uint8_t *s, size_t len);

/* Checks well-formed UTF-8 only (U+0000 allowed). Returns 0 or TERN_EUTF8. */
int utf8_check(const uint8_t *s, size_t len);

#endif
