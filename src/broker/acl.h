/*
 * Access control lists in Mosquitto's acl_file format. acl_load() turns a
 * file into an immutable struct acl; acl_check() answers whether a client
 * may read, write or subscribe to a topic. The module is pure: it keeps no
 * global state, and a loaded ACL may be shared by every worker without a
 * lock because nothing writes it after loading. On reload the caller loads
 * a new ACL and swaps it in; if loading fails it keeps the old one.
 *
 * File format, one rule a line:
 *
 *   # comment (the first non-blank character is '#')
 *   topic [read|write|readwrite|deny] TOPIC
 *   user NAME
 *   pattern [read|write|readwrite|deny] TOPIC
 *
 * The access word defaults to readwrite; it is required when TOPIC holds a
 * space. `topic` lines before the first `user` line apply to anonymous
 * clients (no username), later ones to the user of the section above them
 * (a user may have several sections; they add up). `pattern` lines apply to
 * every client wherever they stand; a level that is exactly "%c" matches the
 * client id and one that is exactly "%u" the username. Anything else (an
 * unknown keyword or access word, a missing topic, a malformed filter, %c or
 * %u sharing a level with other text) is an error naming the file and line.
 *
 * Decisions, all of them failing closed:
 * - `deny` rules are checked first; one that applies wins over any grant.
 * - An empty ACL grants nothing. A client no rule grants is refused.
 * - A client id or username is substituted as one literal level. If it is
 *   empty, or holds '/', '+' or '#', or begins with '$' where it would be
 *   the first level, the pattern does not match that client at all, so a
 *   user called "#" gains nothing from `pattern read %u/#`.
 * - ACL topics obey the MQTT '$' rule: a rule whose first level is '+' or
 *   '#' does not cover topics starting with '$'. `$SYS/#` is readable only
 *   where a rule names it, e.g. `topic read $SYS/#`.
 * - SUBSCRIBE is granted by read (or readwrite) rules that cover the whole
 *   filter: every topic the filter can match must match the rule, so `a/+`
 *   is covered by `a/+` or `a/#` but not by `a/b`. A deny rule refuses a
 *   subscription only if it covers the whole filter too; a filter that
 *   merely overlaps a deny rule (`#` against `deny secret/#`) is accepted,
 *   and the broker must check ACL_READ on every delivery, which the deny
 *   rule then refuses.
 */
#ifndef TERN_BROKER_ACL_H
#define TERN_BROKER_ACL_H

#include <stdbool.h>
#include <stddef.h>

struct acl;

/* Kinds of access; acl_check() takes exactly one of them. */
enum { ACL_READ = 1, ACL_WRITE = 2, ACL_SUBSCRIBE = 4 };

/*
 * Parses the ACL file at `path`. Returns 0 and a new ACL in *out (freed with
 * acl_free()), TERN_ECONFIG with "PATH:LINE: reason" (or "PATH: reason" when
 * the file cannot be read) in err, or TERN_ENOMEM. *out is untouched on
 * failure. An empty file is valid and denies everything. err may be NULL.
 */
int acl_load(const char *path, struct acl **out, char *err, size_t errlen);

/*
 * The same from the NUL-terminated `text`; `name` stands for the file name
 * in messages. Lines end with "\n" or "\r\n".
 */
int acl_parse(const char *text, const char *name, struct acl **out, char *err,
              size_t errlen);

/*
 * Builds an ACL in code (the JWT topics claim, jwt.h): acl_new() makes an
 * empty one (which denies everything) in *out, freed with acl_free();
 * acl_add_pattern() adds the rule a `pattern` line would, with `access`
 * ACL_READ, ACL_WRITE or both, so "%c" and "%u" levels are substituted
 * with the same safety rule. Return 0, TERN_EINVAL for a topic that is not
 * a valid rule (as the file parser refuses it), or TERN_ENOMEM.
 */
int acl_new(struct acl **out);
int acl_add_pattern(struct acl *a, const char *topic, size_t len, int access);

/* Frees an ACL; NULL is accepted. */
void acl_free(struct acl *a);

/*
 * Whether the client (client_id, username, or NULL username for an
 * anonymous client) may do `access` on the `len` bytes of `topic`. For
 * ACL_READ and ACL_WRITE `topic` is a topic name; for ACL_SUBSCRIBE a topic
 * filter, and for "$share/GROUP/FILTER" the inner FILTER is checked. A NULL
 * ACL, an empty topic, or an `access` other than one ACL_* value is refused.
 * client_id may be NULL (then %c patterns do not match).
 */
bool acl_check(const struct acl *a, const char *client_id, const char *username,
               const char *topic, size_t len, int access);

#endif
