/* Reader-writer locks that do not starve writers. */
#ifndef TERN_BASE_RWLOCK_H
#define TERN_BASE_RWLOCK_H

#include <pthread.h>

/*
 * Initialises a rwlock that prefers writers. glibc's default prefers
 * readers, so a steady stream of readers (PUBLISH matching) could starve a
 * writer (SUBSCRIBE) indefinitely. A thread holding the read lock must
 * never take it again, or it deadlocks behind a waiting writer. Returns 0
 * or an errno value.
 */
int rwlock_init_writer_first(pthread_rwlock_t *lock);

#endif
