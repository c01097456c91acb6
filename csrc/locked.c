/* SPDX-License-Identifier: MIT */
/*
 * The locked ring: the textbook producer-consumer, for comparison.
 *
 * A process-shared, robust pthread mutex guards head and tail; two
 * process-shared POSIX semaphores count free slots (`empty`) and messages
 * (`full`):
 *
 *   put: sem_wait(empty); lock; write slot[tail]; tail++; sem_post(full); unlock
 *   get: sem_wait(full);  lock; read slot[head];  head++; sem_post(empty); unlock
 *
 * The same API as the lock-free kinds, so a user can measure what
 * lock-freedom buys.  reserve() and recv() hold the mutex until the block
 * ends: every other producer and consumer waits meanwhile.
 *
 * A holder that dies: the next locker gets EOWNERDEAD.  The critical section
 * records which step it is at (`step`), so the repair knows whether the dead
 * holder's semaphore token must be given back or its post made, then calls
 * pthread_mutex_consistent.  A process killed between its sem_wait and its
 * lock takes one token with it (the ring then holds one message less); a
 * spare token (posted twice by a repair, or by shutdown to wake waiters) is
 * recognised under the lock: a put that finds the ring full, or a get that
 * finds it empty, drops it (or passes it on, once shut down).
 * The mutex and semaphores themselves are trusted: a peer that scribbles over
 * them can hang this kind.  It is for cooperating peers only.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>

#include "ring.h"

enum step { IDLE, PUT_CLAIMED, PUT_DONE, GET_CLAIMED, GET_DONE };

struct locked_area {
	pthread_mutex_t lock;
	sem_t empty;          /* free slots */
	sem_t full;           /* messages */
	uint32_t step;        /* enum step of the lock holder */
};

_Static_assert(sizeof(struct locked_area) <= sizeof(((struct shmring_hdr *)0)->kind_area),
	       "the locked ring's state fits the kind area");

static inline struct locked_area *area(shmring_t *r)
{
	return (struct locked_area *)(void *)r->hdr->kind_area;
}

static int locked_init(shmring_t *r)
{
	struct locked_area *a = area(r);
	pthread_mutexattr_t at;
	int rc;

	pthread_mutexattr_init(&at);
	pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(&a->lock, &at);
	pthread_mutexattr_destroy(&at);
	if (rc)
		return -rc;
	if (r->capacity > SEM_VALUE_MAX)
		return -EINVAL;
	if (sem_init(&a->empty, 1, (unsigned)r->capacity) || sem_init(&a->full, 1, 0))
		return -errno;
	return 0;
}

/* Lock, repairing after a holder that died.  0 or -EOWNERDEAD (unrepairable). */
static int lock(shmring_t *r)
{
	struct locked_area *a = area(r);
	uint64_t t, h;
	int rc = pthread_mutex_lock(&a->lock);

	if (likely(rc == 0))
		return 0;
	if (rc != EOWNERDEAD)
		return rc == ENOTRECOVERABLE ? -EOWNERDEAD : -rc;
	t = load_relaxed(&r->hdr->tail);
	h = load_relaxed(&r->hdr->head);
	if (t - h > r->capacity) {
		/* Leave it inconsistent: every later locker gets ENOTRECOVERABLE. */
		pthread_mutex_unlock(&a->lock);
		return -EOWNERDEAD;
	}
	switch (a->step) {
	case PUT_CLAIMED: sem_post(&a->empty); break;   /* its free slot goes back */
	case PUT_DONE:    sem_post(&a->full);  break;   /* its message was published */
	case GET_CLAIMED: sem_post(&a->full);  break;   /* its message stays */
	case GET_DONE:    sem_post(&a->empty); break;   /* its slot was freed */
	}
	a->step = IDLE;
	pthread_mutex_consistent(&a->lock);
	return 0;
}

static void unlock(shmring_t *r)
{
	area(r)->step = IDLE;
	pthread_mutex_unlock(&area(r)->lock);
}

/* Take one token without blocking; -EAGAIN when there is none. */
static int take(sem_t *s)
{
	while (sem_trywait(s) < 0) {
		if (errno != EINTR)
			return -EAGAIN;
	}
	return 0;
}

static int ring_full(shmring_t *r)   /* the lock is held */
{
	return load_relaxed(&r->hdr->tail) - load_relaxed(&r->hdr->head) >= r->capacity;
}

static int ring_empty(shmring_t *r)  /* the lock is held */
{
	return load_relaxed(&r->hdr->tail) == load_relaxed(&r->hdr->head);
}

/* The token just taken from `s` stands for nothing (a repair's extra post, or
 * shutdown waking waiters): drop it, or pass it on once shut down so that every
 * waiter wakes.  Returns whether the ring is shut down. */
static int drop_spare(shmring_t *r, sem_t *s)
{
	int done = load_acquire(&r->hdr->shutdown);   /* pairs with shmring_shutdown's release */

	if (done)
		sem_post(s);
	return done;
}

static int put_begin(shmring_t *r)
{
	int rc;

	if (unlikely(r->reserved))
		return -EINPROGRESS;
	if (unlikely(load_relaxed(&r->hdr->shutdown)))
		return -EPIPE;
	if ((rc = take(&area(r)->empty)) < 0)
		return rc;
	CRASH_POINT("locked-put-token");     /* a free slot's token taken, no mutex */
	if ((rc = lock(r)) < 0) {
		sem_post(&area(r)->empty);
		return rc;
	}
	if (ring_full(r)) {
		unlock(r);
		return drop_spare(r, &area(r)->empty) ? -EPIPE : -EAGAIN;
	}
	area(r)->step = PUT_CLAIMED;
	return 0;
}

/* Publish the message written at slot[tail] (the lock is held). */
static void put_publish(shmring_t *r, uint64_t len)
{
	uint64_t t = load_relaxed(&r->hdr->tail);   /* ordered by the mutex */

	slot_meta(r, slot_at(r, t % r->capacity))->len = len;
	store_relaxed(&r->hdr->tail, t + 1);
	area(r)->step = PUT_DONE;
	CRASH_POINT("locked-put-done");      /* published, its `full` token not posted */
	sem_post(&area(r)->full);
}

static int locked_try_put(shmring_t *r, const void *src, uint64_t len)
{
	int rc;

	if (unlikely(len > r->slot_size))
		return -EMSGSIZE;
	if ((rc = put_begin(r)) < 0)
		return rc;
	memcpy(slot_at(r, load_relaxed(&r->hdr->tail) % r->capacity), src, len);
	CRASH_POINT("locked-put-written");   /* dies holding the mutex */
	put_publish(r, len);
	unlock(r);
	return 1;
}

static int64_t locked_try_put_many(shmring_t *r, const void *src, const uint64_t *lens, uint64_t n)
{
	const uint8_t *p = src;
	uint64_t i = 0;
	int rc;

	if (lens && lens[0] > r->slot_size)
		return -EMSGSIZE;
	if ((rc = put_begin(r)) < 0)     /* the first token, and the lock for the batch */
		return rc;
	for (;;) {
		uint64_t len = lens ? lens[i] : r->slot_size;

		memcpy(slot_at(r, load_relaxed(&r->hdr->tail) % r->capacity), p, len);
		put_publish(r, len);
		p += len;
		if (++i == n || (lens && lens[i] > r->slot_size) || take(&area(r)->empty) < 0)
			break;
		if (ring_full(r)) {
			drop_spare(r, &area(r)->empty);
			break;
		}
		area(r)->step = PUT_CLAIMED;
	}
	unlock(r);
	return (int64_t)i;
}

static int64_t locked_try_reserve(shmring_t *r)
{
	int rc = put_begin(r);

	if (rc < 0)
		return rc;
	r->reserved = 1;       /* the mutex stays held until commit or abandon */
	return (int64_t)(load_relaxed(&r->hdr->tail) % r->capacity);
}

static int locked_commit(shmring_t *r, uint64_t len)
{
	if (!r->reserved)
		return -EINVAL;
	if (len > r->slot_size)
		return -EMSGSIZE;
	r->reserved = 0;
	put_publish(r, len);
	unlock(r);
	return 0;
}

static int locked_abandon(shmring_t *r)
{
	if (r->reserved) {
		r->reserved = 0;
		sem_post(&area(r)->empty);
		unlock(r);
	}
	return 0;
}

/* Take a message token and the lock; -EAGAIN / -ENODATA when there is none. */
static int get_begin(shmring_t *r)
{
	int rc;

	if (unlikely(r->held))
		return -EINPROGRESS;
	if (take(&area(r)->full) < 0)
		/* Pairs with shmring_shutdown's release; puts happen before it or fail. */
		return load_acquire(&r->hdr->shutdown) && shmring_length(r) == 0 ? -ENODATA : -EAGAIN;
	CRASH_POINT("locked-get-token");     /* a message's token taken, no mutex */
	if ((rc = lock(r)) < 0) {
		sem_post(&area(r)->full);
		return rc;
	}
	if (ring_empty(r)) {
		unlock(r);
		return drop_spare(r, &area(r)->full) ? -ENODATA : -EAGAIN;
	}
	area(r)->step = GET_CLAIMED;
	return 0;
}

static int64_t msg_len(shmring_t *r, uint64_t h)
{
	uint64_t len = read_once(slot_meta(r, slot_at(r, h % r->capacity))->len);

	return len > r->slot_size ? -EUCLEAN : (int64_t)len;
}

static void get_end(shmring_t *r)
{
	store_relaxed(&r->hdr->head, load_relaxed(&r->hdr->head) + 1);
	area(r)->step = GET_DONE;
	CRASH_POINT("locked-get-done");      /* consumed, its `empty` token not posted */
	sem_post(&area(r)->empty);
}

static int64_t locked_try_front(shmring_t *r, uint64_t *len)
{
	uint64_t h;
	int64_t rc = get_begin(r);

	if (rc < 0)
		return rc;
	h = load_relaxed(&r->hdr->head);
	if ((rc = msg_len(r, h)) < 0) {
		get_end(r);                    /* drop the scribbled message */
		unlock(r);
		return rc;
	}
	*len = (uint64_t)rc;
	r->held = 1;                           /* the mutex stays held until release */
	return (int64_t)(h % r->capacity);
}

static int locked_release(shmring_t *r)
{
	if (!r->held)
		return -EINVAL;
	r->held = 0;
	get_end(r);
	unlock(r);
	return 0;
}

static int64_t locked_try_get_many(shmring_t *r, void *dst, uint64_t *lens, uint64_t max)
{
	uint8_t *p = dst;
	uint64_t i = 0;
	int64_t rc = get_begin(r);

	if (rc < 0)
		return rc;
	for (;;) {
		uint64_t h = load_relaxed(&r->hdr->head);

		if ((rc = msg_len(r, h)) < 0) {
			get_end(r);
			break;
		}
		memcpy(p, slot_at(r, h % r->capacity), (uint64_t)rc);
		if (lens)
			lens[i] = (uint64_t)rc;
		p += r->slot_size;
		get_end(r);
		if (++i == max || take(&area(r)->full) < 0)
			break;
		if (ring_empty(r)) {
			drop_spare(r, &area(r)->full);
			break;
		}
		area(r)->step = GET_CLAIMED;
	}
	unlock(r);
	return i ? (int64_t)i : rc;
}

/* Waiting is sem_clockwait: take a token, give it straight back, and let the
 * try call compete for it.  A spare token woken by shutdown is passed on so
 * that every waiter wakes. */
#define TOKEN_CHECK_NS 50000000LL   /* how often a waiter looks for a lost token */

static int64_t locked_try_get(shmring_t *r, void *dst)
{
	uint64_t len;
	int64_t rc = locked_try_get_many(r, dst, &len, 1);

	return rc < 0 ? rc : (int64_t)len;
}

static int sem_wait_ns(sem_t *s, int64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ns / 1000000000LL;
	ts.tv_nsec += ns % 1000000000LL;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (sem_clockwait(s, CLOCK_MONOTONIC, &ts) < 0)
		return -errno;   /* -ETIMEDOUT, or -EINTR: Python acts on the signal now */
	sem_post(s);
	return 0;
}

/* A process killed between its semaphore wait and the mutex took a token
 * with it: a free slot (or a message) that no waiter is ever told about, so at
 * capacity 1 the ring would stop for good.  A waiter that slept a slice for
 * nothing counts under the mutex: if the ring has what it waits for and the
 * semaphore says 0, it posts one.  If the reason was a live holder that is
 * merely slow, the token is a spare, and spares are dropped under the mutex
 * (put_begin, get_begin): the ring never holds more than its capacity. */
static void restore_lost_token(shmring_t *r, int reader)
{
	sem_t *s = reader ? &area(r)->full : &area(r)->empty;
	int v;

	if (lock(r) < 0)
		return;
	if (!(reader ? ring_empty(r) : ring_full(r)) && sem_getvalue(s, &v) == 0 && v <= 0)
		sem_post(s);
	unlock(r);
}

static int locked_wait(shmring_t *r, int reader, int64_t timeout_ns)
{
	while (!load_acquire(&r->hdr->shutdown)) {
		int64_t slice = timeout_ns < TOKEN_CHECK_NS ? timeout_ns : TOKEN_CHECK_NS;
		int rc = sem_wait_ns(reader ? &area(r)->full : &area(r)->empty, slice);

		if (rc != -ETIMEDOUT)
			return rc;
		restore_lost_token(r, reader);
		if ((timeout_ns -= slice) <= 0)
			return -ETIMEDOUT;
	}
	return 0;
}

static int locked_writable(shmring_t *r)
{
	int v = 0;

	sem_getvalue(&area(r)->empty, &v);
	return v > 0 || load_relaxed(&r->hdr->shutdown);
}

static int locked_readable(shmring_t *r)
{
	int v = 0;

	sem_getvalue(&area(r)->full, &v);
	return v > 0 || load_relaxed(&r->hdr->shutdown);
}

static void locked_close(shmring_t *r)
{
	locked_abandon(r);
	if (r->held) {                  /* the message stays for the next consumer */
		r->held = 0;
		area(r)->step = IDLE;
		sem_post(&area(r)->full);
		unlock(r);
	}
}

static void locked_shutdown(shmring_t *r)
{
	/* Wake one waiter on each side; each passes the token on (see above). */
	sem_post(&area(r)->full);
	sem_post(&area(r)->empty);
}

const struct ring_ops locked_ops = {
	.init = locked_init,
	.try_put = locked_try_put,
	.try_put_many = locked_try_put_many,
	.try_reserve = locked_try_reserve,
	.commit = locked_commit,
	.abandon = locked_abandon,
	.try_front = locked_try_front,
	.release = locked_release,
	.try_get = locked_try_get,
	.try_get_many = locked_try_get_many,
	.writable = locked_writable,
	.readable = locked_readable,
	.wait = locked_wait,
	.shutdown = locked_shutdown,
	.close = locked_close,
};
