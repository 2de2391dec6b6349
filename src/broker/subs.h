/*
 * The subscription index: a topic tree of filters shared by every worker
 * (DESIGN.md §3). It is read on every PUBLISH and written on SUBSCRIBE /
 * UNSUBSCRIBE, so matching takes only a read lock (pthread rwlock); writers
 * serialise among themselves.
 *
 * Subscribers are opaque `owner` pointers (the broker's sessions). The index
 * never dereferences or frees them: the caller removes every subscription of
 * an owner before freeing it.
 *
 * Shared subscriptions ("$share/group/filter") are stored as a group under
 * the filter; a match delivers to one member per group, chosen round robin.
 */
#ifndef TERN_BROKER_SUBS_H
#define TERN_BROKER_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct subs;

struct subs_opts {
	uint8_t qos;              /* maximum QoS granted */
	bool no_local;            /* v5: not to the publishing owner */
	bool retain_as_published; /* v5 */
	uint8_t retain_handling;  /* v5: 0, 1, 2 (used by the caller) */
	uint32_t sub_id;          /* v5 subscription identifier, 0 = none */
};

/*
 * Visitor for subs_match(). on_match is called once per matching
 * non-shared subscription (an owner with overlapping filters is reported
 * once per filter; the caller merges) and once per matching shared group
 * with the chosen member. `shared` is true for the latter.
 *
 * accept_shared (may be NULL) lets the caller prefer members that can take
 * the message now (online); the index tries members in round-robin order
 * and picks the first accepted, or the round-robin one if none accepts.
 *
 * Both run under the index's read lock: they must not call into the index.
 */
struct subs_visitor {
	void (*on_match)(void *ctx, void *owner, const struct subs_opts *opts,
	                 bool shared);
	bool (*accept_shared)(void *ctx, void *owner);
};

/* Creates an empty index. Returns NULL when out of memory. */
struct subs *subs_new(void);

/* Frees the index and its nodes (not the owners). NULL is ok. */
void subs_free(struct subs *s);

/*
 * Adds owner's subscription to `filter` (already validated with
 * mqtt_topic_filter_check; may be "$share/group/f"), or replaces its options
 * if owner already has that exact filter. Returns 1 when added, 0 when
 * replaced, TERN_ENOMEM.
 */
int subs_add(struct subs *s, const char *filter, size_t len, void *owner,
             const struct subs_opts *opts);

/* Removes owner's subscription to `filter`. Returns 0 or TERN_ENOENT. */
int subs_remove(struct subs *s, const char *filter, size_t len, void *owner);

/*
 * Calls the visitor for every subscription whose filter matches the topic
 * name (a valid name; '$'-topics are not matched by '+' or '#' at the first
 * level). Work is bounded by the topic's levels times matching branches.
 */
void subs_match(struct subs *s, const char *topic, size_t len,
                const struct subs_visitor *v, void *ctx);

/*
 * Reports one member of the shared group named by `share_filter`
 * ("$share/group/filter") through v->on_match (shared = true), chosen as
 * subs_match() would choose it. Used to hand a leaving member's messages to
 * another member. Returns 1 when a member was reported, 0 when the group
 * has no members (or share_filter is not shared).
 */
int subs_pick_shared(struct subs *s, const char *share_filter, size_t len,
                     const struct subs_visitor *v, void *ctx);

/* Number of subscriptions held (each shared member counts one). */
size_t subs_count(struct subs *s);

/*
 * Whether `topic` matches `filter` (no "$share/" prefix). Pure helper used by
 * the index, the retained store and ACL checks.
 */
bool subs_topic_matches(const char *filter, size_t flen, const char *topic,
                        size_t tlen);

#endif
