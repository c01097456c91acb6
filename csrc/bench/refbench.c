/* SPDX-License-Identifier: MIT */
/*
 * refbench: each shmring kind's core against a minimal textbook ring of the
 * same algorithm (refs.h), in one run, on two processes pinned to two cores.
 *
 * A trial: the parent creates a fresh ring (shmring_create, or shm_open for a
 * reference), forks a producer pinned to cpu 0 and a consumer pinned to cpu 1;
 * each opens the ring by name (shmring_attach / shm_open + mmap), both meet at
 * a barrier, the producer stamps t0 and puts messages until t0 + --secs (it
 * looks at the clock every 4096 messages, or once per batch), then publishes
 * how many it put (N); the consumer gets them, checks that each carries the
 * next sequence number (first and, for messages of 16 bytes or more, last 8
 * bytes), and stamps t1 after the N-th.  Rate = N / (t1 - t0).  Full and
 * empty are spun on with a pause instruction: no futex waits, no sched_yield
 * in the timed loop.
 *
 * A cell (kind, ring, message size, batch, capacity) runs its variants
 * (shmring, the packed textbook reference, the reference + the RMW notify,
 * and the reference in shmring's slot geometry: the target's yardstick)
 * round-robin, the starting variant rotated each round, so host
 * noise hits all of them; it reports medians and the median of the per-round
 * ratios.  Trials are timed, not counted: a fixed count would run 10x longer
 * or shorter whenever the host moves the two vCPUs.
 *
 * usage: refbench [--quick] [--trials N] [--secs S] [--kinds spsc,mpmc,locked]
 *                 [--caps 4096,65536] [--msgs 8,64] [--batches 1,256]
 *                 [--max-foreign PCT] [--redo N] [--quiet-wait S] [--no-single] [--raw]
 * Before each round it waits (up to --quiet-wait, 30 s) until other processes
 * use less than --max-foreign percent (5) of the CPUs; a round during which
 * they used more anyway is run again, up to --redo (3) times, then kept.
 * Exit 0 when every trial verified every message, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shmring.h"
#include "refs.h"

#define NOINLINE static __attribute__((noinline))
#define MAXB 256
#define MAXV 5
#define MAXT 31
#define PROD_CPU 0
#define CONS_CPU 1

/* ---- the reference instances: put/get of 1 (batch 1) and of n ---- */
typedef int64_t (*ref_fn)(void *b, uint64_t cap, void *msgs, uint64_t n);

enum role { TEXTBOOK, PLUS_RMW, SAME_SLOT };
enum ring { ANY, BYTE_ONLY, ARRAY_ONLY };

struct ref_impl {
	const char *name;
	uint32_t kind;
	enum role role;
	enum ring ring;
	uint64_t msg, stride, seq_off;    /* seq_off: Vyukov's sequence word */
	ref_fn put1, get1, putn, getn;
};

#define RS(M, S, L, R)                                                                  \
	NOINLINE int64_t rs_p1_##M##_##S##_##L##_##R(void *b, uint64_t c, void *m, uint64_t n) \
	{ (void)n; return rs_put(b, c, m, 1, M, S, L, R); }                           \
	NOINLINE int64_t rs_g1_##M##_##S##_##L##_##R(void *b, uint64_t c, void *m, uint64_t n) \
	{ (void)n; return rs_get(b, c, m, 1, M, S, L, R); }                           \
	NOINLINE int64_t rs_pn_##M##_##S##_##L##_##R(void *b, uint64_t c, void *m, uint64_t n) \
	{ return rs_put(b, c, m, n, M, S, L, R); }                                      \
	NOINLINE int64_t rs_gn_##M##_##S##_##L##_##R(void *b, uint64_t c, void *m, uint64_t n) \
	{ return rs_get(b, c, m, n, M, S, L, R); }
#define RS_IMPL(NAME, ROLE, RING, M, S, L, R)                                             \
	{ NAME, SHMRING_SPSC, ROLE, RING, M, S, 0, rs_p1_##M##_##S##_##L##_##R,           \
	  rs_g1_##M##_##S##_##L##_##R, rs_pn_##M##_##S##_##L##_##R, rs_gn_##M##_##S##_##L##_##R }

#define VQ(M, S, Q, D, L, X, R)                                                         \
	NOINLINE int64_t vq_p1_##M##_##S##_##X##_##R(void *b, uint64_t c, void *m, uint64_t n) \
	{ (void)n; return vq_many(b, c, m, 1, 0, M, S, Q, D, L, X, R); }              \
	NOINLINE int64_t vq_g1_##M##_##S##_##X##_##R(void *b, uint64_t c, void *m, uint64_t n) \
	{ (void)n; return vq_many(b, c, m, 1, 1, M, S, Q, D, L, X, R); }              \
	NOINLINE int64_t vq_pn_##M##_##S##_##X##_##R(void *b, uint64_t c, void *m, uint64_t n) \
	{ return vq_many(b, c, m, n, 0, M, S, Q, D, L, X, R); }                         \
	NOINLINE int64_t vq_gn_##M##_##S##_##X##_##R(void *b, uint64_t c, void *m, uint64_t n) \
	{ return vq_many(b, c, m, n, 1, M, S, Q, D, L, X, R); }
#define VQ_IMPL(NAME, ROLE, M, S, Q, X, R)                                                \
	{ NAME, SHMRING_MPMC, ROLE, ANY, M, S, Q, vq_p1_##M##_##S##_##X##_##R,           \
	  vq_g1_##M##_##S##_##X##_##R, vq_pn_##M##_##S##_##X##_##R, vq_gn_##M##_##S##_##X##_##R }

#define LK(M)                                                                            \
	NOINLINE int64_t lk_p1_##M(void *b, uint64_t c, void *m, uint64_t n)            \
	{ (void)n; return lk_many(b, c, m, 1, 0, M); }                                  \
	NOINLINE int64_t lk_g1_##M(void *b, uint64_t c, void *m, uint64_t n)            \
	{ (void)n; return lk_many(b, c, m, 1, 1, M); }                                  \
	NOINLINE int64_t lk_pn_##M(void *b, uint64_t c, void *m, uint64_t n)            \
	{ return lk_many(b, c, m, n, 0, M); }                                           \
	NOINLINE int64_t lk_gn_##M(void *b, uint64_t c, void *m, uint64_t n)            \
	{ return lk_many(b, c, m, n, 1, M); }
#define LK_IMPL(M) \
	{ "ref", SHMRING_LOCKED, TEXTBOOK, ANY, M, M, 0, lk_p1_##M, lk_g1_##M, lk_pn_##M, lk_gn_##M }

/* SPSC: textbook (stride = message); + the RMW notify (shmring's fallback
 * handshake, wait.c); the textbook algorithm in shmring's slot geometry, which
 * the API demands (64-byte aligned payloads): byte rings stride 64 (8 B) /
 * 128 (64 B) with a length record after the payload; array rings stride 64,
 * no record. */
RS(8, 8, 0, 0) RS(8, 8, 0, 1) RS(8, 64, 8, 0) RS(8, 64, 0, 0)
RS(64, 64, 0, 0) RS(64, 64, 0, 1) RS(64, 128, 64, 0)
/* MPMC: textbook cell {seq; payload} (stride 16 / 72), + RMW; shmring's
 * slot (payload at 0, seq and length after it, stride 64 / 128, pos & mask). */
VQ(8, 16, 0, 8, 0, 0, 0) VQ(8, 16, 0, 8, 0, 0, 1) VQ(8, 64, 8, 0, 16, 0, 0)
VQ(64, 72, 0, 8, 0, 0, 0) VQ(64, 72, 0, 8, 0, 0, 1) VQ(64, 128, 64, 0, 72, 0, 0)
LK(8) LK(64)

static const struct ref_impl refs[] = {
	RS_IMPL("ref", TEXTBOOK, ANY, 8, 8, 0, 0),
	RS_IMPL("ref+rmw", PLUS_RMW, ANY, 8, 8, 0, 1),
	RS_IMPL("ref+slot", SAME_SLOT, BYTE_ONLY, 8, 64, 8, 0),
	RS_IMPL("ref+slot", SAME_SLOT, ARRAY_ONLY, 8, 64, 0, 0),
	RS_IMPL("ref", TEXTBOOK, ANY, 64, 64, 0, 0),
	RS_IMPL("ref+rmw", PLUS_RMW, ANY, 64, 64, 0, 1),
	RS_IMPL("ref+slot", SAME_SLOT, BYTE_ONLY, 64, 128, 64, 0),
	/* array 64 B: shmring's slot is the textbook one (stride 64, no record) */
	VQ_IMPL("ref", TEXTBOOK, 8, 16, 0, 0, 0),
	VQ_IMPL("ref+rmw", PLUS_RMW, 8, 16, 0, 0, 1),
	VQ_IMPL("ref+slot", SAME_SLOT, 8, 64, 8, 0, 0),
	VQ_IMPL("ref", TEXTBOOK, 64, 72, 0, 0, 0),
	VQ_IMPL("ref+rmw", PLUS_RMW, 64, 72, 0, 0, 1),
	VQ_IMPL("ref+slot", SAME_SLOT, 64, 128, 64, 0, 0),
	LK_IMPL(8),
	LK_IMPL(64),
};

/* ---- shared control block (MAP_SHARED | MAP_ANONYMOUS, inherited) ---- */
struct ctl {
	_Alignas(128) _Atomic int ready;
	_Alignas(128) _Atomic int abort;
	_Alignas(128) int64_t t0, t1;
	_Atomic uint64_t total;        /* messages put; UINT64_MAX until the producer is done */
	int err;                       /* 0 ok; else what the failing child saw */
	int64_t err_rc;
	uint64_t err_seq, err_got;
};

struct cell {
	uint32_t kind;
	int array;
	uint64_t msg, batch, cap;
};

struct variant {
	const char *name;
	const struct ref_impl *ref;    /* NULL: shmring */
	double rate[MAXT];             /* M msgs/s, NAN when the trial failed */
	double foreign[MAXT];          /* CPU share others used meanwhile, 0..1 */
};

/* What the last trial saw of the rest of the machine. */
static double last_foreign, last_steal;
static uint64_t last_total;     /* messages the last trial moved and verified */

enum { E_OPEN = 1, E_PUT, E_GET, E_ORDER, E_LEN, E_ABORT };

static struct ctl *ctl;
static volatile sig_atomic_t kid_p, kid_c, timed_out, interrupted;
static char cur_name[64];          /* the ring the parent has to unlink, "" none */
static int cur_is_ref;
static unsigned name_seq;
static int raw;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void unlink_current(void)
{
	char path[80];

	if (!cur_name[0])
		return;
	if (cur_is_ref) {
		snprintf(path, sizeof(path), "/%s", cur_name);
		shm_unlink(path);
	} else {
		shmring_unlink(cur_name);
	}
	cur_name[0] = 0;
}

/* Busy and steal ticks of all CPUs (/proc/stat). */
static void cpu_ticks(double *busy, double *steal)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	if (f) {
		if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			   &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
			memset(v, 0, sizeof(v));
		fclose(f);
	}
	/* user nice system idle iowait irq softirq steal */
	*busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]);
	*steal = (double)v[7];
}

/* Between rounds nothing of ours runs: wait (up to max_s) until the others'
 * share of the CPUs over 250 ms is below `below`.  Returns the seconds waited. */
static double wait_quiet(double below, double max_s)
{
	double tck = (double)sysconf(_SC_CLK_TCK), ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN);
	int64_t t0 = now_ns();

	for (;;) {
		struct timespec win = { 0, 250000000L }, gap = { 1, 0 };
		double b0, b1, s0, s1;

		cpu_ticks(&b0, &s0);
		nanosleep(&win, NULL);
		cpu_ticks(&b1, &s1);
		if ((b1 - b0) / tck / (0.25 * ncpu) < below || (double)(now_ns() - t0) * 1e-9 > max_s ||
		    interrupted)
			break;
		nanosleep(&gap, NULL);
	}
	return (double)(now_ns() - t0) * 1e-9;
}

static double tv_s(struct timeval t)
{
	return (double)t.tv_sec + (double)t.tv_usec * 1e-6;
}

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
	if (kid_p > 0)
		kill(kid_p, SIGKILL);
	if (kid_c > 0)
		kill(kid_c, SIGKILL);
}

static void on_interrupt(int sig)
{
	interrupted = 1;
	on_alarm(sig);
}

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set);
}

/* Sequence number in the first 8 bytes and, from 16 bytes, the last 8. */
static inline void stamp(uint8_t *m, uint64_t msg, uint64_t seq)
{
	memcpy(m, &seq, 8);
	if (msg >= 16)
		memcpy(m + msg - 8, &seq, 8);
}

static inline int stamp_ok(const uint8_t *m, uint64_t msg, uint64_t seq, uint64_t *got)
{
	uint64_t a, z = seq;

	memcpy(&a, m, 8);
	if (msg >= 16)
		memcpy(&z, m + msg - 8, 8);
	*got = a != seq ? a : z;
	return a == seq && z == seq;
}

static int child_fail(int err, int64_t rc, uint64_t seq, uint64_t got)
{
	if (!ctl->err) {
		ctl->err = err;
		ctl->err_rc = rc;
		ctl->err_seq = seq;
		ctl->err_got = got;
	}
	atomic_store(&ctl->abort, 1);
	return 10 + err;
}

static int barrier(void)
{
	atomic_fetch_add(&ctl->ready, 1);
	while (atomic_load_explicit(&ctl->ready, RLX) < 2) {
		ref_relax();
		if (atomic_load_explicit(&ctl->abort, RLX))
			return -1;
	}
	return 0;
}

#define SPIN()                                                    \
	do {                                                      \
		ref_relax();                                      \
		if (atomic_load_explicit(&ctl->abort, RLX))       \
			return child_fail(E_ABORT, 0, seq, 0);    \
	} while (0)

/* The producer loop: PUT1(src) and PUTN(src, n) return how many were put or
 * -EAGAIN.  Messages are stamped in a local buffer first, on both sides. */
#define PRODUCE(PUT1, PUTN)                                                         \
	do {                                                                        \
		uint64_t seq = 0;                                                   \
		const int64_t end_ = ctl->t0 + dur_ns;                              \
		if (batch == 1) {                                                   \
			for (;;) {                                                  \
				int64_t rc_;                                        \
				if (!(seq & 4095) && now_ns() >= end_)              \
					break;                                      \
				stamp(buf, msg, seq);                               \
				while ((rc_ = (PUT1(buf))) == -EAGAIN)              \
					SPIN();                                     \
				if (rc_ != 1)                                       \
					return child_fail(E_PUT, rc_, seq, 0);      \
				seq++;                                              \
			}                                                           \
		} else {                                                            \
			while (now_ns() < end_) {                                   \
				uint64_t n = batch, done = 0;                       \
				for (uint64_t i = 0; i < n; i++)                    \
					stamp(buf + i * msg, msg, seq + i);         \
				while (done < n) {                                  \
					int64_t rc_ = PUTN(buf + done * msg, n - done); \
					if (rc_ > 0)                                \
						done += (uint64_t)rc_;              \
					else if (rc_ == -EAGAIN)                    \
						SPIN();                             \
					else                                        \
						return child_fail(E_PUT, rc_, seq + done, 0); \
				}                                                   \
				seq += n;                                           \
			}                                                           \
		}                                                                   \
		atomic_store_explicit(&ctl->total, seq, REL);                       \
	} while (0)

/* The consumer loop: GET1() returns ONE on success with the message at DATA1;
 * GETN(dst, max) returns how many it copied to dst.  Every sequence checked.
 * Done when the ring is empty and the producer's total is reached. */
#define EMPTY()                                                                     \
	do {                                                                        \
		if (seq == atomic_load_explicit(&ctl->total, ACQ))                  \
			goto done_;                                                 \
		SPIN();                                                             \
	} while (0)
#define CONSUME(GET1, ONE, DATA1, GETN)                                             \
	do {                                                                        \
		uint64_t seq = 0, got_;                                             \
		if (batch == 1) {                                                   \
			for (;;) {                                                  \
				int64_t rc_ = GET1();                               \
				if (rc_ == -EAGAIN) {                               \
					EMPTY();                                    \
					continue;                                   \
				}                                                   \
				if (rc_ != (ONE))                                   \
					return child_fail(E_GET, rc_, seq, 0);      \
				if (!stamp_ok(DATA1, msg, seq, &got_))              \
					return child_fail(E_ORDER, 0, seq, got_);   \
				seq++;                                              \
			}                                                           \
		} else {                                                            \
			for (;;) {                                                  \
				int64_t rc_ = GETN(buf, batch);                     \
				if (rc_ == -EAGAIN) {                               \
					EMPTY();                                    \
					continue;                                   \
				}                                                   \
				if (rc_ <= 0 || (uint64_t)rc_ > batch)              \
					return child_fail(E_GET, rc_, seq, 0);      \
				for (uint64_t i = 0; i < (uint64_t)rc_; i++, seq++) \
					if (!stamp_ok(buf + i * msg, msg, seq, &got_)) \
						return child_fail(E_ORDER, 0, seq, got_); \
			}                                                           \
		}                                                                   \
done_:		;                                                                   \
	} while (0)

static int produce_ours(shmring_t *r, uint8_t *buf, uint64_t msg, uint64_t batch, int64_t dur_ns)
{
#define OURS_PUT1(src) shmring_try_put(r, (const char *)(src), msg)
#define OURS_PUTN(src, n) shmring_try_put_many(r, (src), NULL, (n))
	PRODUCE(OURS_PUT1, OURS_PUTN);
	return 0;
}

static int consume_ours(shmring_t *r, uint8_t *buf, uint64_t msg, uint64_t batch, int64_t dur_ns)
{
	const uint8_t *stage = shmring_stage(r);

	(void)dur_ns;
#define OURS_GET1() shmring_try_get_staged(r)
#define OURS_GETN(dst, max) shmring_try_get_many(r, (dst), NULL, (max))
	CONSUME(OURS_GET1, (int64_t)msg, stage, OURS_GETN);
	return 0;
}

static int produce_ref(const struct ref_impl *x, void *b, uint64_t cap, uint8_t *buf,
		       uint64_t msg, uint64_t batch, int64_t dur_ns)
{
	ref_fn put1 = x->put1, putn = x->putn;
#define REF_PUT1(src) put1(b, cap, (src), 1)
#define REF_PUTN(src, n) putn(b, cap, (src), (n))
	PRODUCE(REF_PUT1, REF_PUTN);
	return 0;
}

static int consume_ref(const struct ref_impl *x, void *b, uint64_t cap, uint8_t *buf,
		       uint64_t msg, uint64_t batch, int64_t dur_ns)
{
	ref_fn get1 = x->get1, getn = x->getn;

	(void)dur_ns;
#define REF_GET1() get1(b, cap, buf, 1)
#define REF_GET1_SINGLE() get1(b, cap, dst, 1)
#define REF_GETN(dst, max) getn(b, cap, (dst), (max))
	CONSUME(REF_GET1, 1, buf, REF_GETN);
	return 0;
}

/* One process, one core: put then get, so no cache line ever moves between
 * cores.  What is left is each variant's instruction cost per message. */
#define SINGLE(PUT1, GET1, ONE, DATA1, PUTN, GETN)                                  \
	do {                                                                        \
		const int64_t end_ = ctl->t0 + dur_ns;                              \
		uint64_t seq = 0, next_ = 0, got_;                                  \
		int64_t rc_;                                                        \
		for (;;) {                                                          \
			if (seq >= next_) {                                         \
				if (now_ns() >= end_)                               \
					break;                                      \
				next_ = seq + 4096;                                 \
			}                                                           \
			if (batch == 1) {                                           \
				stamp(buf, msg, seq);                               \
				if ((rc_ = PUT1(buf)) != 1)                         \
					return child_fail(E_PUT, rc_, seq, 0);      \
				if ((rc_ = GET1()) != (ONE))                        \
					return child_fail(E_GET, rc_, seq, 0);      \
				if (!stamp_ok(DATA1, msg, seq, &got_))              \
					return child_fail(E_ORDER, 0, seq, got_);   \
				seq++;                                              \
				continue;                                           \
			}                                                           \
			for (uint64_t i = 0; i < batch; i++)                        \
				stamp(buf + i * msg, msg, seq + i);                 \
			if ((rc_ = PUTN(buf, batch)) != (int64_t)batch)             \
				return child_fail(E_PUT, rc_, seq, 0);              \
			if ((rc_ = GETN(dst, batch)) != (int64_t)batch)             \
				return child_fail(E_GET, rc_, seq, 0);              \
			for (uint64_t i = 0; i < batch; i++, seq++)                 \
				if (!stamp_ok(dst + i * msg, msg, seq, &got_))      \
					return child_fail(E_ORDER, 0, seq, got_);   \
		}                                                                   \
		atomic_store_explicit(&ctl->total, seq, REL);                       \
	} while (0)

static int single_ours(shmring_t *r, uint8_t *buf, uint8_t *dst, uint64_t msg, uint64_t batch,
		       int64_t dur_ns)
{
	const uint8_t *stage = shmring_stage(r);

	SINGLE(OURS_PUT1, OURS_GET1, (int64_t)msg, stage, OURS_PUTN, OURS_GETN);
	return 0;
}

static int single_ref(const struct ref_impl *x, void *b, uint64_t cap, uint8_t *buf,
		      uint8_t *dst, uint64_t msg, uint64_t batch, int64_t dur_ns)
{
	ref_fn put1 = x->put1, putn = x->putn, get1 = x->get1, getn = x->getn;

	SINGLE(REF_PUT1, REF_GET1_SINGLE, 1, dst, REF_PUTN, REF_GETN);
	return 0;
}

static uint64_t ref_size(const struct ref_impl *x, uint64_t cap)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	return (REF_SLOTS_OFF + cap * x->stride + page - 1) / page * page;
}

static void *ref_map(const char *name, uint64_t size, int create)
{
	char path[80];
	void *b;
	int fd;

	snprintf(path, sizeof(path), "/%s", name);
	fd = shm_open(path, create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0600);
	if (fd < 0)
		return NULL;
	if (create && (ftruncate(fd, (off_t)size) < 0 || posix_fallocate(fd, 0, (off_t)size))) {
		close(fd);
		return NULL;
	}
	b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return b == MAP_FAILED ? NULL : b;
}

/* One side of one trial, in the forked child: role PRODUCER, CONSUMER, or
 * SINGLE (both, one after the other, on one core). */
enum { CONSUMER, PRODUCER, SINGLE_CORE };

static int child(int role, const struct cell *c, const struct variant *v, int64_t dur_ns)
{
	uint8_t *buf = aligned_alloc(64, MAXB * 64), *dst = aligned_alloc(64, MAXB * 64);
	int producer = role != CONSUMER;
	shmring_t *r = NULL;
	void *b = NULL;
	int rc;

	/* The parent's handlers kill "its children": not ours to inherit. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	kid_p = kid_c = 0;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return child_fail(E_ABORT, 0, 0, 0);   /* the parent is already gone */
	if (!buf || !dst || pin(producer ? PROD_CPU : CONS_CPU) < 0)
		return child_fail(E_OPEN, -errno, 0, 0);
	memset(buf, 0xa5, MAXB * 64);
	memset(dst, 0x5a, MAXB * 64);
	if (v->ref) {
		if (!(b = ref_map(cur_name, ref_size(v->ref, c->cap), 0)))
			return child_fail(E_OPEN, -errno, 0, 0);
	} else {
		if ((rc = shmring_attach(cur_name, 0, &r)) < 0)
			return child_fail(E_OPEN, rc, 0, 0);
		/* Claim the role now, not in the timed loop (an empty get or a
		 * put of nothing does it and moves no message). */
		if (!producer && (rc = (int)shmring_try_get_staged(r)) != -EAGAIN)
			return child_fail(E_OPEN, rc, 0, 0);
	}
	if (role == SINGLE_CORE) {
		ctl->t0 = now_ns();
		rc = v->ref ? single_ref(v->ref, b, c->cap, buf, dst, c->msg, c->batch, dur_ns)
			    : single_ours(r, buf, dst, c->msg, c->batch, dur_ns);
		ctl->t1 = now_ns();
		shmring_free(r);
		return rc;
	}
	if (barrier() < 0)
		return child_fail(E_ABORT, 0, 0, 0);
	if (producer) {
		ctl->t0 = now_ns();
		rc = v->ref ? produce_ref(v->ref, b, c->cap, buf, c->msg, c->batch, dur_ns)
			    : produce_ours(r, buf, c->msg, c->batch, dur_ns);
	} else {
		rc = v->ref ? consume_ref(v->ref, b, c->cap, buf, c->msg, c->batch, dur_ns)
			    : consume_ours(r, buf, c->msg, c->batch, dur_ns);
		ctl->t1 = now_ns();
	}
	shmring_free(r);
	return rc;
}

static int ref_init(const struct ref_impl *x, void *b, uint64_t cap)
{
	if (x->kind == SHMRING_MPMC)
		vq_init(b, cap, x->stride, x->seq_off);
	else if (x->kind == SHMRING_LOCKED)
		return lk_init(b, cap);
	return 0;
}

static int create_ours(const struct cell *c, shmring_t **out)
{
	struct shmring_params p = {
		.kind = c->kind, .capacity = c->cap, .slot_size = c->msg, .mode = 0600,
	};

	if (c->array) {
		p.ndim = 1;
		p.shape[0] = c->msg;
		p.dtype = "'|u1'";
	}
	return shmring_create(cur_name, &p, out);
}

/* Runs one trial; returns M msgs/s, or NAN (and says why) when it failed. */
static double trial(const struct cell *c, const struct variant *v, double secs, double timeout_s,
		    int single)
{
	shmring_t *owner = NULL;
	int st_p = 0, st_c = 0, rc;
	pid_t pp, pc;
	double rate, busy0, busy1, steal0, steal1, own = 0;
	struct rusage ru_p, ru_c, ru_s0, ru_s1;
	int64_t w0, w1;

	if (interrupted)
		exit(130);
	snprintf(cur_name, sizeof(cur_name), "refbench.%d.%u", (int)getpid(), name_seq++);
	cur_is_ref = v->ref != NULL;
	if (v->ref) {
		uint64_t size = ref_size(v->ref, c->cap);
		void *b = ref_map(cur_name, size, 1);

		if (!b || ref_init(v->ref, b, c->cap) < 0) {
			fprintf(stderr, "refbench: %s setup: %s\n", v->name, strerror(errno));
			if (b)
				munmap(b, size);
			unlink_current();
			return NAN;
		}
		munmap(b, size);
	} else if ((rc = create_ours(c, &owner)) < 0) {
		cur_name[0] = 0;
		fprintf(stderr, "refbench: shmring_create: %s\n", shmring_strerror(rc));
		return NAN;
	}
	memset(ctl, 0, sizeof(*ctl));
	atomic_store(&ctl->total, UINT64_MAX);
	fflush(NULL);
	timed_out = 0;
	memset(&ru_p, 0, sizeof(ru_p));
	memset(&ru_c, 0, sizeof(ru_c));
	getrusage(RUSAGE_SELF, &ru_s0);
	cpu_ticks(&busy0, &steal0);
	w0 = now_ns();
	if ((pp = fork()) == 0)
		_exit(child(single ? SINGLE_CORE : PRODUCER, c, v, (int64_t)(secs * 1e9)));
	kid_p = pp;
	pc = 0;
	if (!single && (pc = fork()) == 0)
		_exit(child(CONSUMER, c, v, (int64_t)(secs * 1e9)));
	kid_c = pc;
	if (pp < 0 || pc < 0)
		on_alarm(0);
	alarm((unsigned)ceil(timeout_s));
	while (pp > 0 && wait4(pp, &st_p, 0, &ru_p) < 0 && errno == EINTR)
		;
	while (pc > 0 && wait4(pc, &st_c, 0, &ru_c) < 0 && errno == EINTR)
		;
	alarm(0);
	cpu_ticks(&busy1, &steal1);
	getrusage(RUSAGE_SELF, &ru_s1);
	w1 = now_ns();
	own = tv_s(ru_p.ru_utime) + tv_s(ru_p.ru_stime) + tv_s(ru_c.ru_utime) + tv_s(ru_c.ru_stime) +
	      tv_s(ru_s1.ru_utime) + tv_s(ru_s1.ru_stime) - tv_s(ru_s0.ru_utime) - tv_s(ru_s0.ru_stime);
	{
		double tck = (double)sysconf(_SC_CLK_TCK), cap_s = (double)(w1 - w0) * 1e-9 * 2;
		double f = ((busy1 - busy0) / tck - own) / cap_s;

		last_foreign = f < 0 ? 0 : f;
		last_steal = (steal1 - steal0) / tck / cap_s;
	}
	kid_p = kid_c = 0;
	shmring_free(owner);
	unlink_current();
	if (interrupted) {
		fprintf(stderr, "refbench: interrupted\n");
		exit(130);
	}
	if (timed_out || pp < 0 || pc < 0 || !WIFEXITED(st_p) || !WIFEXITED(st_c) ||
	    WEXITSTATUS(st_p) || WEXITSTATUS(st_c) || ctl->t1 <= ctl->t0) {
		static const char *const what[] = { "?", "open", "put", "get", "ORDER",
						    "length", "abort" };

		fprintf(stderr, "refbench: %s trial FAILED: %s%s rc=%lld at seq %llu (saw %llu); "
			"exit %d/%d\n", v->name, timed_out ? "timeout; " : "",
			what[ctl->err >= 0 && ctl->err <= E_ABORT ? ctl->err : 0],
			(long long)ctl->err_rc, (unsigned long long)ctl->err_seq,
			(unsigned long long)ctl->err_got,
			WIFEXITED(st_p) ? WEXITSTATUS(st_p) : -WTERMSIG(st_p),
			WIFEXITED(st_c) ? WEXITSTATUS(st_c) : -WTERMSIG(st_c));
		return NAN;
	}
	last_total = atomic_load(&ctl->total);
	rate = (double)last_total / (double)(ctl->t1 - ctl->t0) * 1e3;
	return rate;
}

/* ---- statistics ---- */
static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Quantile q of the finite values; NAN when there are none. */
static double quant(const double *v, int n, double q)
{
	double s[MAXT];
	int k = 0;

	for (int i = 0; i < n; i++)
		if (isfinite(v[i]))
			s[k++] = v[i];
	if (!k)
		return NAN;
	qsort(s, (size_t)k, sizeof(double), cmp_d);
	double pos = q * (k - 1);
	int lo = (int)pos;

	return lo + 1 < k ? s[lo] + (pos - lo) * (s[lo + 1] - s[lo]) : s[lo];
}

static void ratios(const struct variant *a, const struct variant *b, int n, double *out)
{
	for (int i = 0; i < n; i++)
		out[i] = a->rate[i] / b->rate[i];
}

/* The reference of a role in a cell's variants; the same-slot role falls back
 * to the textbook one where shmring's slot is the textbook slot (SPSC array
 * rings of 64-byte messages) or there is none (locked). */
static const struct variant *with_role(const struct variant *v, int nv, enum role role)
{
	for (int j = 1; j < nv; j++)
		if (v[j].ref->role == role)
			return &v[j];
	return role == SAME_SLOT ? with_role(v, nv, TEXTBOOK) : NULL;
}

static void fmt_rate(char *s, size_t cap, double x)
{
	if (!isfinite(x))
		snprintf(s, cap, "FAIL");
	else if (x >= 100)
		snprintf(s, cap, "%.0f", x);
	else if (x >= 10)
		snprintf(s, cap, "%.1f", x);
	else
		snprintf(s, cap, "%.2f", x);
}

/* ---- the matrix ---- */
static const char *kind_name(uint32_t k)
{
	return k == SHMRING_SPSC ? "spsc" : k == SHMRING_MPMC ? "mpmc" : "locked";
}

struct result {
	struct cell c;
	struct variant v[MAXV];
	int nv;
	uint64_t n_msgs;       /* messages verified over all its trials */
	uint64_t ours_stride;
	int failed;
	int redone, dirty;     /* rounds re-run / kept although others used CPU */
	double waited;         /* seconds spent waiting for a quiet machine */
	double one[MAXV][MAXT]; /* single-core phase: M msgs/s per variant and round */
	double one_foreign;    /* its worst share of others' CPU */
};

static int parse_list(const char *s, uint64_t *out, int max)
{
	int n = 0;

	while (*s && n < max) {
		char *end;

		out[n++] = strtoull(s, &end, 10);
		s = *end == ',' ? end + 1 : end;
		if (end == s && *s)
			break;
	}
	return n;
}

static int kind_available(uint32_t kind)
{
	struct shmring_params p = { .kind = kind, .capacity = 4, .slot_size = 8, .mode = 0600 };
	shmring_t *r;
	int rc;

	snprintf(cur_name, sizeof(cur_name), "refbench.%d.probe", (int)getpid());
	cur_is_ref = 0;
	rc = shmring_create(cur_name, &p, &r);
	if (rc == 0) {
		shmring_free(r);
		unlink_current();
	}
	cur_name[0] = 0;
	return rc;
}

static void read_line(const char *path, const char *key, char *out, size_t cap)
{
	char line[512];
	FILE *f = fopen(path, "r");

	snprintf(out, cap, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p;

		if (key && strncmp(line, key, strlen(key)))
			continue;
		p = key ? strchr(line, ':') : line;
		if (p && key)
			p += p[1] ? 2 : 1;
		for (size_t i = 0; p && i + 1 < cap; i++)
			if (!(out[i] = p[i] == '\n' ? 0 : p[i]))
				break;
		out[cap - 1] = 0;
		break;
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	uint64_t kinds[3] = { SHMRING_SPSC, SHMRING_MPMC, SHMRING_LOCKED }, caps[4] = { 4096 },
		 msgs[4] = { 8, 64 }, batches[4] = { 1, 256 };
	int nkinds = 3, ncaps = 1, nmsgs = 2, nbatches = 2, trials = 7, quick = 0, failed = 0;
	int big = 1, max_redo = 3, single = 1;
	double secs = 0.4, max_foreign = 0.05, quiet_s = 30;
	static struct result res[128];
	int nres = 0;
	char cpu[256], load0[128], load1[128], date[64];
	struct utsname u;
	struct sigaction sa;
	time_t t = time(NULL);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : "";

		if (!strcmp(a, "--quick")) {
			quick = 1;
		} else if (!strcmp(a, "--no-single")) {
			single = 0;
		} else if (!strcmp(a, "--raw")) {
			raw = 1;
		} else if (!strcmp(a, "--trials")) {
			trials = atoi(val), i++;
		} else if (!strcmp(a, "--max-foreign")) {
			max_foreign = atof(val) / 100, i++;
		} else if (!strcmp(a, "--quiet-wait")) {
			quiet_s = atof(val), i++;
		} else if (!strcmp(a, "--redo")) {
			max_redo = atoi(val), i++;
		} else if (!strcmp(a, "--secs")) {
			secs = atof(val), i++;
		} else if (!strcmp(a, "--caps")) {
			ncaps = parse_list(val, caps, 4), big = 0, i++;
		} else if (!strcmp(a, "--msgs")) {
			nmsgs = parse_list(val, msgs, 4), i++;
		} else if (!strcmp(a, "--batches")) {
			nbatches = parse_list(val, batches, 4), i++;
		} else if (!strcmp(a, "--kinds")) {
			nkinds = 0;
			if (strstr(val, "spsc"))
				kinds[nkinds++] = SHMRING_SPSC;
			if (strstr(val, "mpmc"))
				kinds[nkinds++] = SHMRING_MPMC;
			if (strstr(val, "locked"))
				kinds[nkinds++] = SHMRING_LOCKED;
			i++;
		} else {
			fprintf(stderr, "usage: %s [--quick] [--trials N] [--secs S] "
				"[--kinds spsc,mpmc,locked] [--caps 4096,65536] [--msgs 8,64] "
				"[--batches 1,256] [--max-foreign PCT] [--redo N] [--quiet-wait S] [--no-single] [--raw]\n", argv[0]);
			return 2;
		}
	}
	if (quick) {
		if (trials == 7)
			trials = 3;
		if (secs == 0.4)
			secs = 0.1;
		big = 0;
	}
	if (trials < 1 || trials > MAXT || !(secs > 0)) {
		fprintf(stderr, "refbench: --trials 1..%d, --secs > 0\n", MAXT);
		return 2;
	}
	for (int i = 0; i < nmsgs; i++)
		if (msgs[i] != 8 && msgs[i] != 64) {
			fprintf(stderr, "refbench: --msgs takes 8 and/or 64\n");
			return 2;
		}
	for (int i = 0; i < nbatches; i++)
		if (batches[i] < 1 || batches[i] > MAXB) {
			fprintf(stderr, "refbench: --batches 1..%d\n", MAXB);
			return 2;
		}
	for (int i = 0; i < ncaps; i++)
		if (caps[i] < 2 || (caps[i] & (caps[i] - 1)) || caps[i] > (1u << 24)) {
			fprintf(stderr, "refbench: --caps: powers of two, 2..2^24\n");
			return 2;
		}
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		fprintf(stderr, "refbench: needs 2 CPUs (producer on cpu %d, consumer on cpu %d)\n",
			PROD_CPU, CONS_CPU);
		return 77;
	}
	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;            /* no SA_RESTART: waitpid returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = on_interrupt;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	read_line("/proc/cpuinfo", "model name", cpu, sizeof(cpu));
	read_line("/proc/loadavg", NULL, load0, sizeof(load0));
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	uname(&u);

	/* Which kinds this build has. */
	for (int k = 0; k < nkinds; k++) {
		int rc = kind_available((uint32_t)kinds[k]);

		if (rc < 0) {
			fprintf(stderr, "refbench: kind %s unavailable (shmring_create: %s), skipped\n",
				kind_name((uint32_t)kinds[k]), shmring_strerror(rc));
			memmove(&kinds[k], &kinds[k + 1], sizeof(kinds[0]) * (size_t)(nkinds - k - 1));
			nkinds--, k--;
		}
	}
	/* Cells: the chosen capacities for every kind; in a full run also 65536
	 * for spsc (where the machine notes show big rings running faster). */
	for (int k = 0; k < nkinds; k++)
		for (int ci = 0; ci < ncaps + (big && kinds[k] == SHMRING_SPSC); ci++)
			for (int ar = 0; ar < (kinds[k] == SHMRING_SPSC ? 2 : 1); ar++)
				for (int m = 0; m < nmsgs; m++)
					for (int bi = 0; bi < nbatches; bi++) {
						struct result *R = &res[nres++];

						R->c = (struct cell){ (uint32_t)kinds[k], ar, msgs[m],
								      batches[bi],
								      ci < ncaps ? caps[ci] : 65536 };
					}

	fprintf(stderr, "refbench: %d cells, %d trials each, ~%.2f s per trial\n", nres, trials,
		secs);
	for (int ri = 0; ri < nres; ri++) {
		struct result *R = &res[ri];
		const struct cell *c = &R->c;
		struct shmring_info info;
		shmring_t *probe;

		R->v[R->nv++] = (struct variant){ .name = "shmring" };
		for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
			const struct ref_impl *x = &refs[i];

			if (x->kind != c->kind || x->msg != c->msg ||
			    (x->ring == BYTE_ONLY && c->array) || (x->ring == ARRAY_ONLY && !c->array))
				continue;
			R->v[R->nv++] = (struct variant){ .name = x->name, .ref = x };
		}
		/* shmring's slot stride, for the table */
		snprintf(cur_name, sizeof(cur_name), "refbench.%d.probe", (int)getpid());
		cur_is_ref = 0;
		if (create_ours(c, &probe) == 0) {
			shmring_info(probe, &info);
			R->ours_stride = info.slot_stride;
			shmring_free(probe);
			unlink_current();
		}
		cur_name[0] = 0;

		fprintf(stderr, "== %s %s msg=%llu batch=%llu cap=%llu\n", kind_name(c->kind),
			c->array ? "array" : "byte", (unsigned long long)c->msg,
			(unsigned long long)c->batch, (unsigned long long)c->cap);
		for (int tr = 0, redo = 0; tr < trials; tr++) {
			double worst = 0;

			R->waited += wait_quiet(max_foreign, quiet_s);
			for (int j = 0; j < R->nv; j++) {
				struct variant *v = &R->v[(tr + j) % R->nv];
				/* generous: 50x the trial time, at least 20 s */
				double to = 50 * secs > 20 ? 50 * secs : 20;

				v->rate[tr] = trial(c, v, secs, to, 0);
				v->foreign[tr] = last_foreign;
				if (isfinite(v->rate[tr]))
					R->n_msgs += last_total;
				worst = last_foreign > worst ? last_foreign : worst;
				if (!isfinite(v->rate[tr]))
					R->failed = failed = 1;
			}
			if (raw) {
				fprintf(stderr, "   round %d:", tr);
				for (int j = 0; j < R->nv; j++)
					fprintf(stderr, " %s %.1f (%.0f%%)", R->v[j].name, R->v[j].rate[tr],
						100 * R->v[j].foreign[tr]);
				fprintf(stderr, "\n");
			}
			/* Other jobs took CPU during this round: run it again (a few
			 * times at most, then keep it and say so). */
			if (worst > max_foreign) {
				if (redo < max_redo) {
					struct timespec pause = { 1 << redo, 0 };

					redo++, R->redone++, tr--;
					if (raw)
						fprintf(stderr, "   round redone: other jobs used %.0f%% CPU\n",
							100 * worst);
					nanosleep(&pause, NULL);   /* let a passing job pass */
					continue;
				}
				R->dirty++;
			}
			redo = 0;
		}
		{
			double q[MAXT];

			const struct variant *vs = with_role(R->v, R->nv, SAME_SLOT);

			ratios(&R->v[0], vs, trials, q);
			fprintf(stderr, "   shmring %.1f  %s %.1f  M/s; ratio %.3f\n",
				quant(R->v[0].rate, trials, .5), vs->name, quant(vs->rate, trials, .5),
				quant(q, trials, .5));
		}
	}
	/* Phase 2: one process on one core, put then get (no cross-core
	 * traffic): the instruction cost of each variant.  Shorter trials. */
	for (int ri = 0; single && ri < nres; ri++) {
		struct result *R = &res[ri];
		double s1 = secs / 4 > 0.02 ? secs / 4 : 0.02;

		if (R->nv < 2)
			continue;
		for (int tr = 0; tr < trials; tr++) {
			R->waited += wait_quiet(max_foreign, quiet_s / 3);
			for (int j = 0; j < R->nv; j++) {
				int k = (tr + j) % R->nv;

				R->one[k][tr] = trial(&R->c, &R->v[k], s1, 20, 1);
				if (!isfinite(R->one[k][tr]))
					R->failed = failed = 1;
				else
					R->n_msgs += last_total;
				R->one_foreign = last_foreign > R->one_foreign ? last_foreign : R->one_foreign;
			}
		}
		fprintf(stderr, "== single core %s %s msg=%llu batch=%llu cap=%llu: shmring %.2f ns, "
			"ref %.2f ns\n", kind_name(R->c.kind), R->c.array ? "array" : "byte",
			(unsigned long long)R->c.msg, (unsigned long long)R->c.batch,
			(unsigned long long)R->c.cap, 1e3 / quant(R->one[0], trials, .5),
			1e3 / quant(R->one[1], trials, .5));
	}
	read_line("/proc/loadavg", NULL, load1, sizeof(load1));

	/* ---- report ---- */
	printf("## refbench: shmring cores vs textbook rings (C, two processes)\n\n");
	printf("| | |\n|---|---|\n");
	printf("| date | %s |\n", date);
	printf("| CPU | %s, %ld online CPUs |\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
	printf("| kernel | %s %s |\n", u.sysname, u.release);
	printf("| compiler | gcc %s, -std=c11 -O2 (no -march); glibc %s |\n", __VERSION__,
	       gnu_get_libc_version());
	printf("| pinning | producer cpu %d, consumer cpu %d (sched_setaffinity); spin with pause |\n",
	       PROD_CPU, CONS_CPU);
	printf("| trials | %d rounds per cell; a round runs every variant once (fresh ring, fresh "
	       "processes), starting variant rotated; ~%.2f s per trial; medians |\n", trials, secs);
	printf("| noise guard | before a round: wait <= %.0f s for other processes to use < %.0f%% of "
	       "the CPUs; a round in which they used more is re-run (<= %d times), then kept and "
	       "counted as noisy |\n", quiet_s, 100 * max_foreign, max_redo);
	printf("| loadavg | start %s; end %s |\n", load0, load1);
	if (getenv("REFBENCH_CORE"))
		printf("| core sources | %s |\n", getenv("REFBENCH_CORE"));
	printf("\n");

	printf("### shmring vs textbook reference\n\n");
	printf("Ratios are medians over rounds of (shmring / reference) in the same round, "
	       "[p25-p75] of those.  `vs slot`: against the textbook algorithm in shmring's slot "
	       "geometry (ref+slot), which the API demands (64-byte aligned payloads, a length "
	       "record for byte rings): the cost of the core's code; the >= 0.9 target is judged "
	       "on it.  `vs packed`: against the textbook ring with stride = message size: "
	       "the code and the layout together.\n\n");
	printf("| kind | ring: slot stride, record | msg B | batch | cap | shmring M/s | ref+slot M/s "
	       "| ref M/s | vs slot | [p25-p75] | target | vs packed | others' CPU med/max %% "
	       "| rounds redone/kept noisy |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	double waited = 0;
	for (int ri = 0; ri < nres; ri++) {
		struct result *R = &res[ri];
		const struct cell *c = &R->c;
		char a[32], b[32], bs[32], ring[64], tgt[32], fmed[32];
		double q[MAXT], med, packed;
		const struct variant *vs = with_role(R->v, R->nv, SAME_SLOT);

		if (R->nv < 2 || !R->n_msgs) {
			printf("| %s | %s | %llu | %llu | %llu | FAIL | FAIL | | | |\n", kind_name(c->kind),
			       c->array ? "array" : "byte", (unsigned long long)c->msg,
			       (unsigned long long)c->batch, (unsigned long long)c->cap);
			continue;
		}
		ratios(&R->v[0], &R->v[1], trials, q);
		packed = quant(q, trials, .5);
		ratios(&R->v[0], vs, trials, q);
		med = quant(q, trials, .5);
		{
			double fo[MAXT * MAXV];
			int nf = 0;

			for (int j = 0; j < R->nv; j++)
				for (int i = 0; i < trials; i++)
					fo[nf++] = R->v[j].foreign[i];
			qsort(fo, (size_t)nf, sizeof(double), cmp_d);
			snprintf(fmed, sizeof(fmed), "%.1f / %.0f", 100 * fo[nf / 2], 100 * fo[nf - 1]);
		}
		fmt_rate(a, sizeof(a), quant(R->v[0].rate, trials, .5));
		fmt_rate(b, sizeof(b), quant(R->v[1].rate, trials, .5));
		fmt_rate(bs, sizeof(bs), quant(vs->rate, trials, .5));
		snprintf(ring, sizeof(ring), "%s: %llu, %s", c->array ? "array" : "byte",
			 (unsigned long long)R->ours_stride,
			 c->array && c->kind == SHMRING_SPSC ? "none" : "len");
		if (c->kind == SHMRING_LOCKED)
			snprintf(tgt, sizeof(tgt), "-");
		else
			snprintf(tgt, sizeof(tgt), "%s", med >= 0.9 ? ">= 0.9 met" : "**< 0.9**");
		printf("| %s | %s | %llu | %llu | %llu | %s | %s%s | %s | **%.2f** | %.2f-%.2f | %s | %.2f "
		       "| %s | %d/%d |\n",
		       kind_name(c->kind), ring, (unsigned long long)c->msg,
		       (unsigned long long)c->batch, (unsigned long long)c->cap, a, bs,
		       vs == &R->v[1] ? " (=ref)" : "", b, med, quant(q, trials, .25),
		       quant(q, trials, .75), tgt, packed, fmed, R->redone, R->dirty);
		waited += R->waited;
	}

	printf("\nWaited %.0f s in all for the machine to be quiet before rounds.\n", waited);
	printf("\n### Where the gap goes (references with one shmring cost added)\n\n");
	printf("ref+rmw: + one seq_cst fetch_add per publish on each side (shmring's notify() "
	       "without membarrier: the fallback handshake, wait.c).  ref+slot: the textbook "
	       "algorithm in shmring's slot geometry (stride, length record written, read and "
	       "checked, run-time-length copy; mpmc: payload first, seq after it), no notify.  "
	       "shmring/slot is what the core's code costs over the algorithm in the same layout "
	       "(API layer, checks, notify's load of the sleeper count).  Ratios are medians of "
	       "per-round ratios.\n\n");
	printf("| kind | ring | msg B | batch | cap | ref | ref+rmw | ref+slot | shmring "
	       "| rmw/ref | slot/ref | shmring/slot |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	for (int ri = 0; ri < nres; ri++) {
		struct result *R = &res[ri];
		const struct cell *c = &R->c;
		const struct variant *vr = NULL, *vm = NULL, *vs = NULL, *vo = &R->v[0];
		char s[4][32];
		double q[MAXT], r1 = NAN, r2 = NAN, r3 = NAN;

		vr = with_role(R->v, R->nv, TEXTBOOK);
		vm = with_role(R->v, R->nv, PLUS_RMW);
		vs = with_role(R->v, R->nv, SAME_SLOT);   /* = vr: the textbook slot */
		if (!vm || !R->n_msgs)
			continue;
		fmt_rate(s[0], 32, quant(vr->rate, trials, .5));
		fmt_rate(s[1], 32, quant(vm->rate, trials, .5));
		fmt_rate(s[2], 32, quant(vs->rate, trials, .5));
		fmt_rate(s[3], 32, quant(vo->rate, trials, .5));
		ratios(vm, vr, trials, q), r1 = quant(q, trials, .5);
		ratios(vs, vr, trials, q), r2 = quant(q, trials, .5);
		ratios(vo, vs, trials, q), r3 = quant(q, trials, .5);
		printf("| %s | %s | %llu | %llu | %llu | %s | %s | %s%s | %s | %.2f | %s%.2f | %.2f |\n",
		       kind_name(c->kind), c->array ? "array" : "byte", (unsigned long long)c->msg,
		       (unsigned long long)c->batch, (unsigned long long)c->cap, s[0], s[1], s[2],
		       vs == vr ? " (=ref)" : "", s[3], r1, vs == vr ? "=" : "", r2, r3);
	}

	if (single) {
		printf("\n### One process on one core: instruction cost (ns per message)\n\n");
		printf("Put then get in one process pinned to cpu %d: no cache line moves between "
		       "cores, so this is what each variant executes per message (stamp + put + get + "
		       "check).  Medians of %d rounds.\n\n", PROD_CPU, trials);
		printf("| kind | ring | msg B | batch | cap | ref | ref+rmw | ref+slot | shmring "
		       "| shmring - ref+slot | others' CPU max %% |\n");
		printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
		for (int ri = 0; ri < nres; ri++) {
			struct result *R = &res[ri];
			const struct cell *c = &R->c;
			double ns[4] = { NAN, NAN, NAN, NAN };   /* ref, rmw, slot, ours */
			char sl[48];

			if (R->nv < 2)
				continue;
			ns[3] = 1e3 / quant(R->one[0], trials, .5);
			for (int j = 1; j < R->nv; j++)
				ns[R->v[j].ref->role] = 1e3 / quant(R->one[j], trials, .5);
			if (c->kind == SHMRING_LOCKED) {
				printf("| %s | byte | %llu | %llu | %llu | %.1f | - | - | %.1f | %+.1f | %.0f |\n",
				       kind_name(c->kind), (unsigned long long)c->msg,
				       (unsigned long long)c->batch, (unsigned long long)c->cap, ns[0],
				       ns[3], ns[3] - ns[0], 100 * R->one_foreign);
				continue;
			}
			if (isfinite(ns[2]))
				snprintf(sl, sizeof(sl), "%.2f", ns[2]);
			else   /* shmring's slot is the textbook one */
				snprintf(sl, sizeof(sl), "%.2f (=ref)", ns[2] = ns[0]);
			printf("| %s | %s | %llu | %llu | %llu | %.2f | %.2f | %s | %.2f | %+.2f | %.0f |\n",
			       kind_name(c->kind), c->array ? "array" : "byte", (unsigned long long)c->msg,
			       (unsigned long long)c->batch, (unsigned long long)c->cap, ns[0], ns[1], sl,
			       ns[3], ns[3] - ns[2], 100 * R->one_foreign);
		}
	}

	printf("\nEvery trial's consumer checked every sequence number in order: ");
	if (failed) {
		printf("**some trials FAILED** (see stderr).\n");
	} else {
		unsigned long long total = 0;

		for (int ri = 0; ri < nres; ri++)
			total += (unsigned long long)res[ri].n_msgs;
		printf("%llu messages verified, 0 out of order.\n", total);
	}
	return failed ? 1 : 0;
}
