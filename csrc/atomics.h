/* SPDX-License-Identifier: MIT */
/*
 * The only file that spells memory orders (liburing's barrier.h idea).
 *
 * ACQUIRE: no read or write after the load may be reordered before it.
 * RELEASE: no read or write before the store may be reordered after it.
 * A release store of an index "publishes" every slot write before it to the
 * process that later acquire-loads the same index.  Every call site names its
 * partner in a comment ("pairs with ...").
 *
 * Everything here works on memory shared between processes: the atomics must
 * be lock-free (address-free), which shmring_abi.h asserts at compile time.
 */
#ifndef SHMRING_ATOMICS_H
#define SHMRING_ATOMICS_H

#include <stdatomic.h>
#include <stdint.h>

#define load_acquire(p)      atomic_load_explicit((p), memory_order_acquire)
#define store_release(p, v)  atomic_store_explicit((p), (v), memory_order_release)
/* Relaxed: a value only this side writes, or a hint re-checked under acquire. */
#define load_relaxed(p)      atomic_load_explicit((p), memory_order_relaxed)
#define store_relaxed(p, v)  atomic_store_explicit((p), (v), memory_order_relaxed)
/* One load of a plain field a peer may rewrite at any time (the kernel's
 * READ_ONCE): validate the local copy, never the field a second time. */
#define read_once(x)         (*(const volatile __typeof__(x) *)&(x))
/* Sequentially consistent read-modify-write: the wait/notify handshake (wait.c). */
#define rmw_add_seq_cst(p, v) atomic_fetch_add_explicit((p), (v), memory_order_seq_cst)
/* No instruction: keeps the compiler from moving memory accesses across it.
 * The light half of wait.c's asymmetric fence (the heavy half is membarrier). */
#define compiler_barrier()   atomic_signal_fence(memory_order_seq_cst)
/* Relaxed CAS: claims a position; the slot's turn word carries the ordering. */
#define cas_relaxed(p, expp, v) \
	atomic_compare_exchange_weak_explicit((p), (expp), (v), \
		memory_order_relaxed, memory_order_relaxed)
/* Release CAS: a claim that publishes the claimant's record of it (mpmc.c). */
#define cas_release(p, expp, v) \
	atomic_compare_exchange_weak_explicit((p), (expp), (v), \
		memory_order_release, memory_order_relaxed)
#define cas_seq_cst(p, expp, v) \
	atomic_compare_exchange_weak_explicit((p), (expp), (v), \
		memory_order_seq_cst, memory_order_relaxed)
#define cas_acq_rel(p, expp, v) \
	atomic_compare_exchange_strong_explicit((p), (expp), (v), \
		memory_order_acq_rel, memory_order_acquire)

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() atomic_signal_fence(memory_order_seq_cst)
#endif

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#endif /* SHMRING_ATOMICS_H */
