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
 * someone sleeps.  Why no wake-up is lost:
 *
 *   notifier                              sleeper
 *   store_release(index)                  fetch_add(sleepers, 1)      seq_cst RMW
 *   fetch_add(sleepers, 0)  seq_cst RMW   s = load_acquire(seq); ready? (load index)
 *   if it read > 0: seq++, futex_wake     if not ready: futex_wait(seq, s)
 *
 * Both sides read-modify-write `sleepers`, so one RMW reads the other's value.
 * If the notifier's comes second it reads >= 1 and wakes: the seq bump makes
 * a futex_wait that has not started return at once (seq != s).  If the
 * sleeper's comes second it reads from the notifier's RMW, which (seq_cst:
 * release and acquire) makes the notifier's index store visible to the
 * sleeper's readiness check, and it does not sleep.  RMWs rather than
 * fences: the argument holds in the C11 model and ThreadSanitizer checks it.
 * The futex is not FUTEX_PRIVATE: the word lives in shared memory.
 *
 * Waits are bounded slices (the caller loops) so that Python can run signal
 * handlers (Ctrl+C) between them, and a signal ends a slice at once (EINTR);
 * nothing here holds the GIL.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

#define DEFAULT_SLICE_NS 100000000LL  /* 100 ms: the bound on Ctrl+C when the signal lands on another thread */
#define PEER_CHECK_NS    50000000LL   /* how often a sleeper asks whether its peer died */

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
	rmw_add_seq_cst(&q->sleepers, 1);   /* pairs with notify()'s RMW */
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
