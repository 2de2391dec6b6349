/* Housekeeping on worker 0: $SYS topics and the offline-session sweep. */
#ifndef TERN_BROKER_SYS_H
#define TERN_BROKER_SYS_H

#include <stdint.h>

struct broker;
struct worker;

/*
 * Names of the WebSocket (enum ws_fail) and TLS (enum tls_fail) handshake
 * failure causes, as $SYS topics and /metrics labels spell them; index 0
 * of the TLS table (TLSF_NONE) is NULL.
 */
extern const char *const sys_ws_causes[];
extern const char *const sys_tls_causes[];
/* Names of the limits of enum limit_hit (broker.h), as $SYS topics
 * (broker/limits/NAME) and /metrics labels spell them. */
extern const char *const sys_limit_names[];
/* The name of outcome i (0 <= i < JWT_COUNTERS) of CONNECTs with a JWT
 * (stats.jwt_auth, broker.h): "accepted", a cause of refusal, or
 * "wrong_username". */
const char *sys_jwt_cause(int i);

/* Publishes every $SYS/broker/... topic as a retained QoS 0 message. */
void sys_publish(struct broker *b, struct worker *w, uint64_t now);

/*
 * Ends offline sessions whose expiry passed and publishes delayed wills
 * that are due (or whose session ended first).
 */
void sys_sweep_sessions(struct broker *b, struct worker *w, uint64_t now);

#endif
