/* See rwlock.h. */
#include "base/rwlock.h"

int rwlock_init_writer_first(pthread_rwlock_t *lock)
{
	pthread_rwlockattr_t attr;
	int rc;

	if (pthread_rwlockattr_init(&attr) != 0)
		return -1;
#ifdef __GLIBC__
	pthread_rwlockattr_setkind_np(
	        &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
	rc = pthread_rwlock_init(lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return rc;
}
