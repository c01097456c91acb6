/* SPDX-License-Identifier: MIT */
/*
 * Waiting and waking: spin briefly, then sleep on a futex in the segment.
 *
 * On this class of machine a spinning hand-off costs ~0.05 us and waking a
 * sleeping process ~30 us, so a waiter first spins (pause instruction) for
 * about the cost of one wake-up (spin_ns, per handle), and only then sleeps.
 *
 * A wait queue is an event count: `seq` is the futex word, bumped by every
 * wake-up; `sleepers` counts processes that are in, or about to enter,
 * futex_wait.  The side that publishes (notify) makes no system call unless
 * someone sleeps.  It is Dekker's pattern: each side stores, then loads what
 * the other stores, and needs a full fence in between (x86 lets a load pass
 * an earlier store).  Publishes are hot, sleeps are rare, so the fence is
 * asymmetric (as in liburcu / folly's asymmetric barriers):
 *
 *   notifier (every publish)             sleeper (once per sleep)
 *   store_release(index)                 fetch_add(sleepers, 1)
 *   compiler barrier                     membarrier(GLOBAL_EXPEDITED)
 *   n = load_relaxed(sleepers)           s = load_acquire(seq); ready? (load index)
 *   if n > 0: seq++, futex_wake          if not ready: futex_wait(seq, s)
 *
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) returns only after every
 * running thread of every process registered for it (each process registers
 * in wait_init(), before it can publish; fork keeps the registration, exec
 * drops it and the new image must attach again) has executed a full memory
 * barrier, sequenced between the sleeper's own full barriers before and after
 * the call (a thread not running gets it from its next context switch).
 * Call that barrier F, in the notifier's instruction stream, where the
 * compiler barrier pins the store before the load.  If F comes after the
 * index store, the store is visible before membarrier returns, so the
 * sleeper's readiness check sees it and it does not sleep.  If F comes before
 * the store, it is also before the load of `sleepers`, and the sleeper's
 * increment was visible before F: the notifier reads >= 1 and wakes.  The
 * `seq` bump (seq_cst RMW) makes a futex_wait that has not started return at
 * once (seq != s).  One membarrier covers every later look at readiness in
 * the same sleep: `sleepers` stays >= 1 until the sleeper leaves.
 *
 * Without membarrier (old kernel, seccomp, ThreadSanitizer builds, or
 * -DSHMRING_WAIT_RMW), wait_asym is 0 and both sides read-modify-write
 * `sleepers` with seq_cst: one RMW reads the other's value.  If the
 * notifier's comes second it reads >= 1 and wakes; if the sleeper's comes
 * second it reads from the notifier's RMW, which (release and acquire) makes
 * the index store visible to the readiness check.  That argument holds in
 * the C11 model and ThreadSanitizer checks it; TSan cannot model membarrier,
 * so the light path is checked by stress_wait's -O2 runs across processes,
 * which count every sleep that ended without a wake-up ("unwoken": a notify()
 * that merely loads `sleepers`, with no membarrier, gives dozens).
 * The mode is per process: all processes of one host share the kernel, so they
 * agree unless a seccomp filter denies membarrier to some (then a wake-up can be
 * late by one PEER_CHECK_NS slice, never lost for longer).
 * The futex is not FUTEX_PRIVATE: the word lives in shared memory.
 *
 * Waits are bounded slices (the caller loops) so that Python can run signal
 * handlers (Ctrl+C) between them, and a signal ends a slice at once (EINTR);
 * nothing here holds the GIL.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

#define DEFAULT_SLICE_NS 100000000LL  /* 100 ms: the bound on Ctrl+C when the signal lands on another thread */
#define PEER_CHECK_NS    50000000LL   /* how often a sleeper asks whether its peer died */

#ifndef wait_asym
int wait_asym;   /* set once, by wait_init(), before this process publishes */

static void asym_init(void)
{
	int cmds = (int)syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);

	wait_asym = cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
		syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}

void wait_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, asym_init);
}

/* The heavy half of the fence: see the top of this file. */
static void heavy_fence(void)
{
	if (wait_asym)
		syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
}
#else
void wait_init(void)
{
}

static void heavy_fence(void)
{
}
#endif

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Returns at once if *word != expect.  -EINTR when a signal handler ran
 * (Python's handlers are installed without SA_RESTART): the caller returns, so
 * Python raises KeyboardInterrupt now rather than at the end of the slice. */
static int futex_wait(_Atomic uint32_t *word, uint32_t expect, int64_t ns)
{
	struct timespec ts = { ns / 1000000000LL, ns % 1000000000LL };

	if (syscall(SYS_futex, word, FUTEX_WAIT, expect, &ts, NULL, 0) < 0 && errno == EINTR)
		return -EINTR;
	return 0;
}

void wait_wake_all(struct shmring_waitq *q)
{
	/* Pairs with the sleeper's acquire of seq before its re-check. */
	rmw_add_seq_cst(&q->seq, 1);
	syscall(SYS_futex, &q->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Spin (pause instruction) until ready() or spin_ns or the deadline pass.
 * 1 when ready; *now is the time it gave up. */
static int spin(shmring_t *r, int (*ready)(shmring_t *), int64_t start, int64_t deadline,
		int64_t *now)
{
	do {
		for (unsigned i = 0; i < 64; i++) {
			if (ready(r))
				return 1;
			cpu_relax();
		}
		*now = now_ns();
	} while (*now - start < r->spin_ns && *now < deadline);
	return 0;
}

static int wait_until(shmring_t *r, int (*ready)(shmring_t *), struct shmring_waitq *q,
		      int reader, int64_t timeout_ns)
{
	int64_t start, now, deadline, peer_checked;
	int rc = -ETIMEDOUT;

	if (unlikely(r->closed))
		return -EBADF;
	if (timeout_ns < 0)
		timeout_ns = DEFAULT_SLICE_NS;
	start = now_ns();
	deadline = start + timeout_ns;
	if (spin(r, ready, start, deadline, &now))   /* cheap if the peer is quick */
		return 0;
	if (r->ops->wait)
		return now < deadline ? r->ops->wait(r, reader, deadline - now) : -ETIMEDOUT;

	/* Sleep.  See the top of this file for why no wake-up is lost. */
	rmw_add_seq_cst(&q->sleepers, 1);   /* pairs with notify()'s load (or RMW) */
	heavy_fence();
	peer_checked = now;
	for (;;) {
		uint32_t seq = load_acquire(&q->seq);   /* pairs with wait_wake_all() */

		if (ready(r)) {
			rc = 0;
			break;
		}
		now = now_ns();
		if (now >= deadline)
			break;
		/* Reading /proc costs microseconds: sleepers look now and then. */
		if (r->ops->peer_dead && now - peer_checked >= PEER_CHECK_NS) {
			peer_checked = now;
			if (r->ops->peer_dead(r, reader)) {
				rc = ready(r) ? 0 : -EOWNERDEAD;
				break;
			}
		}
		if (futex_wait(&q->seq, seq, deadline - now < PEER_CHECK_NS ? deadline - now : PEER_CHECK_NS)) {
			rc = ready(r) ? 0 : -EINTR;
			break;
		}
	}
	/* Never below 0: a claim after a dead holder may have reset the count
	 * under us, and a wrapped count would hide every later sleeper. */
	for (uint32_t n = load_relaxed(&q->sleepers); n && !cas_seq_cst(&q->sleepers, &n, n - 1);)
		;
	return rc;
}

int shmring_wait_writable(shmring_t *r, int64_t timeout_ns)
{
	return wait_until(r, r->ops->writable, &r->hdr->space_waitq, 0, timeout_ns);
}

int shmring_wait_readable(shmring_t *r, int64_t timeout_ns)
{
	return wait_until(r, r->ops->readable, &r->hdr->data_waitq, 1, timeout_ns);
}

/* The blocking calls' first step, for Python: one C call that tries, spins
 * for spin_ns if it must, and tries again.  Only after that does Python take
 * its slower wait loop (futex, timeouts, signals). */
int64_t shmring_get_staged(shmring_t *r)
{
	int64_t n = shmring_try_get_staged(r), now;

	if (n == -EAGAIN && spin(r, r->ops->readable, now_ns(), INT64_MAX, &now))
		n = shmring_try_get_staged(r);
	return n;
}

int shmring_put(shmring_t *r, const char *src, uint64_t len)
{
	int64_t now;
	int rc = shmring_try_put(r, src, len);

	if (rc == -EAGAIN && spin(r, r->ops->writable, now_ns(), INT64_MAX, &now))
		rc = shmring_try_put(r, src, len);
	return rc;
}

void shmring_set_spin(shmring_t *r, int64_t spin_ns)
{
	r->spin_ns = spin_ns < 0 ? 0 : spin_ns;
}
