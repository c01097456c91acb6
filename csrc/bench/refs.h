/* SPDX-License-Identifier: MIT */
/*
 * Minimal textbook rings, the yardsticks of refbench.c.  Each lives in one
 * shared mapping: a header page (offset 0) and the slots at REF_SLOTS_OFF, the
 * same offset shmring uses.  Capacities are powers of two.  Every put/get is
 * a noinline function called through a pointer, as shmring's are: both sides
 * pay one call, so the comparison is core against core.
 *
 * Knobs, compile-time constants in each instance (see REF_* in refbench.c):
 *   MSG     message bytes
 *   STRIDE  bytes from one slot to the next
 *   LEN     offset of a per-slot length record, 0 = none (shmring's byte rings
 *           keep one: written by put, read and checked by get, which then
 *           copies that many bytes, a run-time length as in shmring)
 *   RMW     1: one seq_cst fetch_add(word, 0) after each publish, on a line of
 *           the publisher's own: the cost of shmring's notify() in its RMW
 *           handshake (the fallback without membarrier, wait.c)
 *   MOD     1: slot = pos % cap (a division) instead of pos & (cap - 1); shmring
 *           divides only for capacities that are not powers of two
 */
#ifndef REFBENCH_REFS_H
#define REFBENCH_REFS_H

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#define REF_SLOTS_OFF 4096u
#define RLX memory_order_relaxed
#define ACQ memory_order_acquire
#define REL memory_order_release
#define SC  memory_order_seq_cst
#define ALWAYS static inline __attribute__((always_inline))

#if defined(__x86_64__) || defined(__i386__)
#define ref_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define ref_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define ref_relax() atomic_signal_fence(memory_order_seq_cst)
#endif

static inline uint8_t *ref_slots(void *base) { return (uint8_t *)base + REF_SLOTS_OFF; }

/* ---- 1. SPSC, rigtorp-style: cached indices, 128 bytes apart, acq/rel ---- */
struct rs_hdr {
	_Alignas(128) _Atomic uint64_t tail;  /* producer's line: its index ... */
	uint64_t head_cache;                  /* ... and its copy of the consumer's */
	_Alignas(128) _Atomic uint64_t head;  /* consumer's line */
	uint64_t tail_cache;
	_Alignas(128) _Atomic uint32_t pword; /* RMW: the producer's notify word */
	_Alignas(128) _Atomic uint32_t cword; /* RMW: the consumer's */
};

ALWAYS int64_t rs_put(void *b, uint64_t cap, const uint8_t *src, uint64_t n,
		      uint64_t MSG, uint64_t STRIDE, uint64_t LEN, int RMW)
{
	struct rs_hdr *q = b;
	uint64_t t = atomic_load_explicit(&q->tail, RLX), room = cap - (t - q->head_cache);

	if (room < n) {   /* refresh the cached head only when it says too little */
		q->head_cache = atomic_load_explicit(&q->head, ACQ);
		if (!(room = cap - (t - q->head_cache)))
			return -EAGAIN;
		n = room < n ? room : n;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint8_t *s = ref_slots(b) + ((t + i) & (cap - 1)) * STRIDE;

		memcpy(s, src + i * MSG, MSG);
		if (LEN)
			*(uint64_t *)(void *)(s + LEN) = MSG;
	}
	atomic_store_explicit(&q->tail, t + n, REL);   /* publishes the n slots */
	if (RMW)
		atomic_fetch_add_explicit(&q->pword, 0, SC);
	return (int64_t)n;
}

ALWAYS int64_t rs_get(void *b, uint64_t cap, uint8_t *dst, uint64_t max,
		      uint64_t MSG, uint64_t STRIDE, uint64_t LEN, int RMW)
{
	struct rs_hdr *q = b;
	uint64_t h = atomic_load_explicit(&q->head, RLX), n = q->tail_cache - h, i;

	if (n < max) {
		q->tail_cache = atomic_load_explicit(&q->tail, ACQ);
		if (!(n = q->tail_cache - h))
			return -EAGAIN;
	}
	n = n < max ? n : max;
	for (i = 0; i < n; i++) {
		const uint8_t *s = ref_slots(b) + ((h + i) & (cap - 1)) * STRIDE;
		uint64_t len = LEN ? *(const volatile uint64_t *)(const void *)(s + LEN) : MSG;

		if (LEN && len > MSG)
			break;
		memcpy(dst + i * MSG, s, len);
	}
	if (!i)
		return -EBADMSG;
	atomic_store_explicit(&q->head, h + i, REL);   /* hands the slots back */
	if (RMW)
		atomic_fetch_add_explicit(&q->cword, 0, SC);
	return (int64_t)i;
}

/* ---- 2. Vyukov bounded MPMC: a sequence word per cell, CAS on positions ---- */
struct vq_hdr {
	_Alignas(128) _Atomic uint64_t enq;
	_Alignas(128) _Atomic uint64_t deq;
	_Alignas(128) _Atomic uint32_t pword;
	_Alignas(128) _Atomic uint32_t cword;
};

/* Cell layout: SEQ = offset of the sequence word, DATA = of the payload. */
#define VQ_CELL(b, pos, cap, STRIDE, MOD) \
	(ref_slots(b) + ((MOD) ? (pos) % (cap) : (pos) & ((cap) - 1)) * (STRIDE))
#define VQ_SEQ(c, SEQ) ((_Atomic uint64_t *)(void *)((c) + (SEQ)))

static inline void vq_init(void *b, uint64_t cap, uint64_t STRIDE, uint64_t SEQ)
{
	for (uint64_t i = 0; i < cap; i++)
		atomic_store_explicit(VQ_SEQ(ref_slots(b) + i * STRIDE, SEQ), i, RLX);
}

/* One put (side 0) or get (side 1).  Cell at pos is free for the producer of
 * pos when seq == pos, full for its consumer when seq == pos + 1. */
ALWAYS int vq_one(void *b, uint64_t cap, uint8_t *msg, int side, uint64_t MSG,
		  uint64_t STRIDE, uint64_t SEQ, uint64_t DATA, uint64_t LEN, int MOD)
{
	struct vq_hdr *q = b;
	_Atomic uint64_t *ctr = side ? &q->deq : &q->enq;
	uint64_t pos = atomic_load_explicit(ctr, RLX), len = MSG;
	uint8_t *c;

	for (;;) {
		int64_t dif;

		c = VQ_CELL(b, pos, cap, STRIDE, MOD);
		dif = (int64_t)(atomic_load_explicit(VQ_SEQ(c, SEQ), ACQ) - (pos + (uint64_t)side));
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(ctr, &pos, pos + 1, RLX, RLX))
				break;
		} else if (dif < 0) {
			return -EAGAIN;                     /* full (put) or empty (get) */
		} else {
			pos = atomic_load_explicit(ctr, RLX);
		}
	}
	if (!side) {
		memcpy(c + DATA, msg, MSG);
		if (LEN)
			*(uint64_t *)(void *)(c + LEN) = MSG;
		atomic_store_explicit(VQ_SEQ(c, SEQ), pos + 1, REL);
	} else {
		if (LEN && (len = *(const volatile uint64_t *)(const void *)(c + LEN)) > MSG)
			len = 0;   /* (never here) refbench's order check reports it */
		memcpy(msg, c + DATA, len);
		atomic_store_explicit(VQ_SEQ(c, SEQ), pos + cap, REL);
	}
	return 1;
}

/* Textbook Vyukov has no batch: a batch is a loop of single operations (one
 * CAS each), with one notify RMW at the end when RMW is set. */
ALWAYS int64_t vq_many(void *b, uint64_t cap, uint8_t *msgs, uint64_t n, int side,
		       uint64_t MSG, uint64_t STRIDE, uint64_t SEQ, uint64_t DATA,
		       uint64_t LEN, int MOD, int RMW)
{
	struct vq_hdr *q = b;
	uint64_t i = 0;

	while (i < n && vq_one(b, cap, msgs + i * MSG, side, MSG, STRIDE, SEQ, DATA, LEN, MOD) > 0)
		i++;
	if (!i)
		return -EAGAIN;
	if (RMW)
		atomic_fetch_add_explicit(side ? &q->cword : &q->pword, 0, SC);
	return (int64_t)i;
}

/* ---- 3. Mutex + two semaphores: process-shared pthread mutex, sem_t ---- */
struct lk_hdr {
	pthread_mutex_t lock;     /* guards head and tail */
	sem_t empty, full;        /* free slots, messages */
	uint64_t head, tail;
};

static inline int lk_init(void *b, uint64_t cap)
{
	struct lk_hdr *q = b;
	pthread_mutexattr_t at;
	int rc;

	pthread_mutexattr_init(&at);
	pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	rc = pthread_mutex_init(&q->lock, &at);
	pthread_mutexattr_destroy(&at);
	if (rc || sem_init(&q->empty, 1, (unsigned)cap) || sem_init(&q->full, 1, 0))
		return -1;
	return 0;
}

/* Take up to n tokens of `have` without blocking (the caller spins), move that
 * many messages under the lock, then post as many tokens of `give`. */
ALWAYS int64_t lk_many(void *b, uint64_t cap, uint8_t *msgs, uint64_t n, int side, uint64_t MSG)
{
	struct lk_hdr *q = b;
	uint64_t k = 0;

	while (k < n && sem_trywait(side ? &q->full : &q->empty) == 0)
		k++;
	if (!k)
		return -EAGAIN;
	pthread_mutex_lock(&q->lock);
	for (uint64_t i = 0; i < k; i++) {
		uint64_t *idx = side ? &q->head : &q->tail;
		uint8_t *s = ref_slots(b) + ((*idx)++ & (cap - 1)) * MSG;

		if (side)
			memcpy(msgs + i * MSG, s, MSG);
		else
			memcpy(s, msgs + i * MSG, MSG);
	}
	pthread_mutex_unlock(&q->lock);
	for (uint64_t i = 0; i < k; i++)
		sem_post(side ? &q->empty : &q->full);
	return (int64_t)k;
}

#endif /* REFBENCH_REFS_H */
