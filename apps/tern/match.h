/* MQTT topic filter matching for `tern sub -T` (filter-out). */
#ifndef TERN_APPS_MATCH_H
#define TERN_APPS_MATCH_H

#include <stdbool.h>
#include <stddef.h>

/*
 * True when the topic name topic[0..len) matches the filter (NUL-terminated,
 * with + and #), by MQTT's rules: a filter starting with a wildcard does not
 * match topics starting with '$' (MQTT 5.0 §4.7.2).
 */
bool match_topic(const char *filter, const char *topic, size_t len);

#endif
