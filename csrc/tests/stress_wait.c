/* SPDX-License-Identifier: MIT */
/*
 * Wait/notify stress.  Blocking put and get are "try; on -EAGAIN wait with a
 * 2 s slice; again", with spinning off (shmring_set_spin 0) on both handles,
 * so that nearly every empty or full ring sends a side to sleep on the futex.
 * Hand-offs come in runs of 256 in which the producer dawdles (the consumer
 * falls asleep on an empty ring), the consumer dawdles (the producer falls
 * asleep on a full one), or neither does: the tightest races, a side going to
 * sleep just as the other publishes.  A message is seq (8 bytes), crc32 of
 * the payload (4), payload; the consumer checks every one arrives once, in
 * order, intact.  The two sides run pinned to two CPUs, so that they race.
 *
 *   procs     producer in this process (shmring_create), consumer in a forked
 *             child (shmring_attach by name): the shared, cross-process futex
 *   threads   two threads over one mapping, as in stress_spsc, for TSan: it
 *             sees the handshake's atomics and the slot accesses they order
 *   shutdown  a child sleeps in a blocking get on an empty ring (a blocking
 *             put on a full one); a third handle shuts the ring down
 *   dead      a child claims the producer (consumer) role and exits; a wait
 *             for it must return -EOWNERDEAD
 *
 * How a lost wake-up shows.  Not as -ETIMEDOUT: a sleeper whose futex wait
 * runs out checks readiness before its deadline, finds the message the lost
 * wake-up was for and returns 0.  Nor as a wait of a whole slice: every
 * PEER_CHECK_NS (wait.c; 25 ms) a sleeper wakes anyway to ask whether its peer
 * died.  A lost wake-up is a hiccup of up to such a round, which scheduling
 * delays on a busy machine can match, so the test looks at the mechanism
 * instead (white-box): every notifier that sees a sleeper bumps the futex word
 * `seq` before it wakes it.  A wait that slept (a voluntary context switch in
 * the call, getrusage), returned 0 after 3/4 of a round or more (the round is
 * measured at start) and saw `seq` unchanged was not woken although the ring
 * became ready: "unwoken".  (Shorter ones are no futex timeouts: TSan's own
 * locks can block a thread for milliseconds on a busy machine.)  A pass needs
 * 0 unwoken and 0 timed-out, and a median wake latency under 2 ms (a wake-up
 * path that never wakes leaves everything to the rounds).  The check is known
 * to bite: a notify() that loads `sleepers` instead of the RMW (x86 may then
 * let that load pass its index store) gave 58-145 unwoken in the default
 * 600000 hand-offs at capacity 1, at an unremarkable p99; the same load with
 * the sleeper's membarrier left out gave 26 in 200000.
 *
 * Which handshake is checked (wait.c) is printed on the last line: "membarrier"
 * (the light notify, the default where the kernel has it) or "rmw" (TSan
 * builds, -DSHMRING_WAIT_RMW, kernels without membarrier).  run.sh runs the
 * -O2 build both ways.
 *
 * Wake latency: before each put (get) attempt a side stamps CLOCK_MONOTONIC
 * (one clock for all processes) into a shared array; a waiter that slept
 * reads, once its try call succeeded, the stamp of the hand-off that woke it
 * (get k waits for put k, put k for get k - capacity): from there, or from the
 * wait's start if later, to the wait's return.  Beside the exact count of
 * sleeps, the detail line gives a timing-only one: waits longer than 5 us.
 *
 * usage: stress_wait [-n hand-offs] [-c 1,2] [-m procs,threads,shutdown,dead]
 *                    [-s slice-ms] [-t secs]
 *        -n defaults to 600000 per capacity: procs at capacities 1 and 2 then
 *        take 40-60 s on 2 cores (~30 us per cross-CPU wake-up); 10^6: 80-95 s.
 * Exit 0 when everything passed, else 1 (2: the watchdog fired).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"

#define SLOT     64
#define STAMPS   64          /* > capacity: a stamp is read before it is reused */
#define HIST     100000      /* wake latencies, 1 us buckets; the last is ">=" */
#define SLOW_NS  5000        /* a wait this long very likely slept */
#define P50_MAX  2000        /* us: a wake-up path that never wakes gives half a round */
#define ROUNDS   9           /* shutdown wake-ups timed per side */
#define USAGE    "[-n hand-offs] [-c 1,2] [-m procs,threads,shutdown,dead] [-s slice-ms] [-t secs]"

enum { PUT, GET };
enum mode { PROCS, THREADS, SHUTDOWN, DEAD };
static const char *const mode_name[] = { "procs", "threads", "shutdown", "dead" };

struct side {                /* one side's waits */
	uint64_t waits, slept, slow, timedout, unwoken;
	int64_t max_ns;
	uint32_t hist[HIST];
};

/* Everything both sides write: MAP_SHARED, so a forked child's counts come back. */
struct run {
	struct t_stream s;                  /* n hand-offs, and what the consumer found */
	uint64_t cap;
	_Atomic int64_t stamp[2][STAMPS];   /* [PUT][k]: before put k; [GET][k]: before get k */
	_Atomic int stop;                   /* the consumer gave up: the producer must too */
	int err[2];
	struct side side[2];
	shmring_t *cons;                    /* threads mode: the consumer's handle */
};

static int64_t slice_ns = 2000000000LL, round_ns;
static int cpus[2] = { -1, -1 };   /* where the producer and the consumer run */
static cpu_set_t all_cpus;

/* For the watchdog: what to kill and unlink if the run hangs. */
static volatile pid_t child_pid;
static char cur_shm[96], cur_path[128];

static void spin_for(int64_t ns)
{
	for (int64_t end = t_now_ns() + ns; t_now_ns() < end;)
		cpu_relax();
}

/* Runs of 256 hand-offs: the producer dawdles, the consumer does, or neither.
 * Mostly 0-8 us (around the spin-to-sleep step), now and then up to 50 us;
 * a busy-wait, not usleep, so voluntary switches stay futex sleeps. */
static void dawdle(int who, uint64_t k)
{
	uint64_t x = t_mix(k ^ (uint64_t)(who + 1) << 40);

	if (t_mix(k / 256) % 3 == (uint64_t)who)
		spin_for((int64_t)(x % 4 ? x % 8000 : x % 50000));
}

/* One wait for the other side.  0: try again; < 0: this side stops.  A wait
 * that slept leaves its start and end in *t0, *t1 for wake_latency(). */
static int wait_once(struct run *r, int who, shmring_t *h, int64_t *t0, int64_t *t1)
{
	struct side *s = &r->side[who];
	/* the futex word of the queue this side sleeps on */
	_Atomic uint32_t *fw = who == PUT ? &h->hdr->space_waitq.seq : &h->hdr->data_waitq.seq;
	uint32_t seq = atomic_load_explicit(fw, memory_order_relaxed);
	struct rusage u0, u1;
	int64_t a, b;
	int rc;

	getrusage(RUSAGE_THREAD, &u0);
	a = t_now_ns();
	rc = who == PUT ? shmring_wait_writable(h, slice_ns) : shmring_wait_readable(h, slice_ns);
	b = t_now_ns();
	getrusage(RUSAGE_THREAD, &u1);
	s->waits++;
	if (rc == -ETIMEDOUT) {
		s->timedout++;
		return atomic_load(&r->stop) ? -ECANCELED : 0;
	}
	if (rc < 0)
		return rc;
	s->slow += b - a > SLOW_NS;
	/* dawdling busy-waits: a voluntary switch in here is the futex blocking */
	if (u1.ru_nvcsw != u0.ru_nvcsw) {
		s->slept++;
		*t0 = a;
		*t1 = b;
		/* it slept, found the ring ready, and no one bumped the futex
		 * word: a peer-check round woke it, not a notifier */
		if (b - a >= round_ns / 4 * 3 && atomic_load_explicit(fw, memory_order_relaxed) == seq &&
		    s->unwoken++ < 5)
			fprintf(stderr, "stress_wait: a %s side wait slept %.2f ms and was not woken\n",
				who == PUT ? "put" : "get", (double)(b - a) / 1e6);
	}
	return 0;
}

/* After a wait that slept and the try call that then succeeded: the time from
 * the peer's attempt at hand-off k (or from our wait's start, if later) to our
 * wake.  The stamp is ordered before us by the index release/acquire pair. */
static void wake_latency(struct run *r, int who, uint64_t k, int64_t t0, int64_t t1)
{
	struct side *s = &r->side[who];
	int64_t st = atomic_load_explicit(&r->stamp[!who][k % STAMPS], memory_order_relaxed);
	int64_t lat = t1 - (st > t0 ? st : t0);

	s->hist[lat / 1000 < HIST - 1 ? lat / 1000 : HIST - 1]++;
	if (lat > s->max_ns)
		s->max_ns = lat;
}

/* Each side on a CPU of its own: on one CPU the sides would only take turns,
 * and the races of a side going to sleep while the other publishes need both
 * to run at once.  A no-op where fewer than two CPUs are allowed. */
static void pin(int who)
{
	cpu_set_t set;

	if (cpus[who] < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpus[who], &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void producer(struct run *r, shmring_t *h)
{
	uint8_t m[SLOT];
	uint64_t k;
	int64_t t0 = 0, t1;
	int rc = 0;

	pin(PUT);
	for (k = 0; k < r->s.n; k++) {
		uint64_t len = t_make_msg(m, k, SLOT);

		dawdle(PUT, k);
		for (t1 = 0;;) {
			if (atomic_load_explicit(&r->stop, memory_order_relaxed)) {
				rc = -ECANCELED;
				goto out;
			}
			atomic_store_explicit(&r->stamp[PUT][k % STAMPS], t_now_ns(), memory_order_relaxed);
			if ((rc = shmring_try_put(h, (char *)m, len)) != -EAGAIN)
				break;
			if ((rc = wait_once(r, PUT, h, &t0, &t1)) < 0)
				goto out;
		}
		if (rc != 1)
			break;
		if (t1 && k >= r->cap)
			wake_latency(r, PUT, k - r->cap, t0, t1);
	}
out:
	if (k < r->s.n)
		r->err[PUT] = rc < 0 ? rc : -EPROTO;   /* a put that returned neither 1 nor < 0 */
	shmring_shutdown(h);   /* the end of the stream, also after an error */
}

static void consumer(struct run *r, shmring_t *h)
{
	uint8_t *seen = calloc(r->s.n / 8 + 1, 1);
	uint64_t k, next = 0;
	int64_t rc = 0, t0 = 0, t1;

	pin(GET);
	for (k = 0; seen; k++) {
		dawdle(GET, k);
		for (t1 = 0;;) {
			atomic_store_explicit(&r->stamp[GET][k % STAMPS], t_now_ns(), memory_order_relaxed);
			if ((rc = shmring_try_get_staged(h)) != -EAGAIN)
				break;
			if ((rc = wait_once(r, GET, h, &t0, &t1)) < 0)
				break;
		}
		if (rc < 0)
			break;
		t_check_msg(&r->s, seen, &next, shmring_stage(h), (uint64_t)rc);
		if (t1)
			wake_latency(r, GET, k, t0, t1);
	}
	if (rc != -ENODATA) {
		r->err[GET] = seen ? (int)rc : -ENOMEM;
		atomic_store(&r->stop, 1);
	}
	if (seen)
		t_count_lost(&r->s, seen);
	free(seen);
}

static void *consumer_thread(void *arg)
{
	struct run *r = arg;

	consumer(r, r->cons);
	return NULL;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "stress_wait: %s: %s\n", what, rc ? shmring_strerror(rc) : strerror(errno));
	if (cur_shm[0])
		shmring_unlink(cur_shm);
	exit(1);
}

static shmring_t *create(const char *tag, uint64_t cap)
{
	struct shmring_params p = t_ring_params(SHMRING_SPSC, cap, SLOT);
	shmring_t *a;
	int rc;

	t_seg_name(cur_shm, sizeof(cur_shm), "stress", "wait.%s", tag);
	snprintf(cur_path, sizeof(cur_path), "/shmring.%s", cur_shm);
	if ((rc = shmring_create(cur_shm, &p, &a)) < 0)
		die(cur_shm, rc);
	shmring_set_spin(a, 0);
	return a;
}

static shmring_t *attach(void)
{
	shmring_t *b;
	int rc = shmring_attach(cur_shm, 0, &b);

	if (rc < 0)
		die(cur_shm, rc);
	shmring_set_spin(b, 0);
	return b;
}

static void unlink_cur(void)
{
	shmring_unlink(cur_shm);
	cur_shm[0] = cur_path[0] = 0;
}

/* fork a child that dies with this process (the watchdog kills only the parent) */
static pid_t fork_child(void)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	if ((pid = fork()) < 0)
		die("fork", 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
	}
	child_pid = pid;
	return pid;
}

static int reap(pid_t pid)
{
	int rc = t_reap(pid);

	child_pid = 0;
	return rc;
}

static void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", 0);
	return p;
}

/* p-th percentile of both sides' wake latencies, in us */
static unsigned pct(const struct run *r, double p)
{
	uint64_t total = 0, acc = 0;

	for (int i = 0; i < HIST; i++)
		total += r->side[PUT].hist[i] + r->side[GET].hist[i];
	for (unsigned i = 0; i < HIST; i++)
		if ((acc += r->side[PUT].hist[i] + r->side[GET].hist[i]) * 100.0 >= p * total && total)
			return i;
	return 0;
}

/* n hand-offs through a fresh ring of capacity cap, two processes or two threads. */
static int handoffs(enum mode mode, uint64_t cap, uint64_t n)
{
	struct run *r = shared_alloc(sizeof(*r));
	struct side *p = &r->side[PUT], *g = &r->side[GET];
	int64_t t = t_now_ns();
	char tag[32];
	shmring_t *a, *b;
	int bad, rc = 0, child_rc = 0;

	r->s.n = n;
	r->s.slot = SLOT;
	r->cap = cap;
	snprintf(tag, sizeof(tag), "%s%llu", mode_name[mode], (unsigned long long)cap);
	a = create(tag, cap);
	if (mode == PROCS) {
		int fds[2];
		pid_t pid;

		if (pipe(fds) < 0)
			die("pipe", 0);
		if ((pid = fork_child()) == 0) {
			/* The consumer: its own mapping, found by name. */
			close(fds[0]);
			rc = shmring_attach(cur_shm, 0, &b);
			if (write(fds[1], &rc, sizeof(rc)) != sizeof(rc) || rc < 0)
				_exit(3);
			shmring_set_spin(b, 0);
			consumer(r, b);
			shmring_free(b);
			_exit(0);
		}
		close(fds[1]);
		if (read(fds[0], &rc, sizeof(rc)) != sizeof(rc))
			rc = -EIO;
		close(fds[0]);
		unlink_cur();    /* both are mapped (or the child failed): nothing left behind */
		if (rc < 0)
			r->err[GET] = rc;
		else
			producer(r, a);
		sched_setaffinity(0, sizeof(all_cpus), &all_cpus);
		child_rc = reap(pid);
	} else {
		struct shmring_hdr *own;
		pthread_t tc;

		b = attach();
		unlink_cur();
		/* One mapping, as in stress_spsc: to TSan two mappings are unrelated memory. */
		own = t_alias(b, a);
		r->cons = b;
		if (pthread_create(&tc, NULL, consumer_thread, r))
			die("pthread_create", 0);
		producer(r, a);
		sched_setaffinity(0, sizeof(all_cpus), &all_cpus);
		pthread_join(tc, NULL);
		t_unalias(b, own);
		shmring_free(b);
	}
	shmring_free(a);
	bad = !(t_stream_ok(&r->s) && !r->err[PUT] && !r->err[GET] && !child_rc &&
		!p->timedout && !g->timedout && !p->unwoken && !g->unwoken && pct(r, 50) < P50_MAX);
	printf("stress_wait %s cap=%llu: %llu hand-offs verified, %llu lost, %llu dup, "
	       "%llu reordered, %llu corrupt; waits %llu, slept %llu, timed-out %llu, unwoken %llu; "
	       "wake p50 %u us p99 %u us max %.2f ms  (%.1f s)%s\n",
	       mode_name[mode], (unsigned long long)cap, (unsigned long long)r->s.verified,
	       (unsigned long long)r->s.lost, (unsigned long long)r->s.dup,
	       (unsigned long long)r->s.reordered, (unsigned long long)r->s.corrupt,
	       (unsigned long long)(p->waits + g->waits), (unsigned long long)(p->slept + g->slept),
	       (unsigned long long)(p->timedout + g->timedout),
	       (unsigned long long)(p->unwoken + g->unwoken), pct(r, 50), pct(r, 99),
	       (double)(p->max_ns > g->max_ns ? p->max_ns : g->max_ns) / 1e6,
	       (double)(t_now_ns() - t) / 1e9, bad ? "  FAILED" : "");
	printf("  get side: %llu waits, %llu slept, %llu took > 5 us; "
	       "put side: %llu waits, %llu slept, %llu took > 5 us\n",
	       (unsigned long long)g->waits, (unsigned long long)g->slept,
	       (unsigned long long)g->slow, (unsigned long long)p->waits,
	       (unsigned long long)p->slept, (unsigned long long)p->slow);
	if (r->err[PUT] || r->err[GET] || child_rc)
		printf("  put side stopped with %s, get side with %s, child exit %d\n",
		       r->err[PUT] ? shmring_strerror(r->err[PUT]) : "-",
		       r->err[GET] ? shmring_strerror(r->err[GET]) : "-", child_rc);
	fflush(stdout);
	munmap(r, sizeof(*r));
	return bad;
}

/* A blocking put (get) of one byte: the try call's result or the wait's error. */
static int64_t blocking(shmring_t *h, int put)
{
	for (;;) {
		int64_t rc = put ? shmring_try_put(h, "x", 1) : shmring_try_get_staged(h);

		if (rc != -EAGAIN)
			return rc;
		rc = put ? shmring_wait_writable(h, slice_ns) : shmring_wait_readable(h, slice_ns);
		if (rc < 0)
			return rc;
	}
}

/* 1 once /proc says pid sleeps (S): the child's only blocking call is the futex. */
static int asleep(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return (p = strrchr(buf, ')')) && p[1] == ' ' && p[2] == 'S';
}

/* wait.c's peer-check round, measured: a consumer waiting on an empty ring
 * that has no producer sleeps in rounds, one voluntary switch each. */
static int64_t measure_round(void)
{
	shmring_t *a = create("round", 1);
	struct rusage u0, u1;
	int64_t t = -EIO;

	unlink_cur();
	if (shmring_try_get_staged(a) == -EAGAIN) {   /* the consumer role: its waits take rounds */
		getrusage(RUSAGE_THREAD, &u0);
		t = t_now_ns();
		if (shmring_wait_readable(a, 200000000LL) == -ETIMEDOUT) {
			t = t_now_ns() - t;
			getrusage(RUSAGE_THREAD, &u1);
			t /= u1.ru_nvcsw > u0.ru_nvcsw ? u1.ru_nvcsw - u0.ru_nvcsw : 1;
		}
	}
	shmring_free(a);
	if (t < 1000000LL)
		die("cannot measure the peer-check round", t < 0 ? (int)t : -EIO);
	return t;
}

static int cmp64(const void *a, const void *b)
{
	return *(const int64_t *)a < *(const int64_t *)b ? -1 : *(const int64_t *)a > *(const int64_t *)b;
}

/* A child sleeps in a blocking get on an empty ring (full: a blocking put on a
 * full one) and a third handle shuts the ring down, at varying points of the
 * child's peer-check rounds.  The promise is < 100 ms, which those 25 ms
 * rounds would keep on their own; their finds would spread over a round, so
 * the median must also be under 1 ms: woken by the shutdown, not found. */
static int shutdown_case(int full)
{
	struct res { _Atomic int64_t t; _Atomic int64_t rc; _Atomic int ready; } *res;
	int64_t lats[ROUNDS], want = full ? -EPIPE : -ENODATA;
	int bad = 0;

	res = shared_alloc(sizeof(*res));
	for (int i = 0; i < ROUNDS; i++) {
		shmring_t *a = create(full ? "shutfull" : "shutempty", 1), *c;
		int64_t t, lat;
		pid_t pid;
		int st;

		/* a takes the other role, so the child's peer is alive */
		if ((full ? shmring_try_get_staged(a) : shmring_try_put(a, "x", 1)) != (full ? -EAGAIN : 1))
			die("shutdown setup", 0);
		res->ready = 0;
		res->rc = 1;
		res->t = 0;
		if ((pid = fork_child()) == 0) {
			shmring_t *b;

			if (shmring_attach(cur_shm, 0, &b) < 0)
				_exit(3);
			shmring_set_spin(b, 0);
			/* fill the ring (drain the message a put): the next op must sleep */
			if ((full ? shmring_try_put(b, "x", 1) : shmring_try_get_staged(b)) != 1)
				_exit(4);
			atomic_store(&res->ready, 1);
			res->rc = blocking(b, full);
			res->t = t_now_ns();
			_exit(0);
		}
		for (t = t_now_ns(); t_now_ns() - t < 1000000000LL && !(res->ready && asleep(pid));)
			usleep(100);
		usleep((useconds_t)(1000 + i * 5300));   /* all over a round */
		c = attach();        /* the third handle */
		unlink_cur();
		t = t_now_ns();
		shmring_shutdown(c);
		st = reap(pid);
		lat = lats[i] = res->t - t;
		if (st != 0 || res->rc != want || lat >= 100000000LL) {
			printf("  round %d: child %s, woke %.2f ms after the shutdown\n", i,
			       res->rc < 0 ? shmring_strerror((int)res->rc) : "got no error",
			       (double)lat / 1e6);
			bad = 1;
		}
		shmring_free(c);
		shmring_free(a);
	}
	qsort(lats, ROUNDS, sizeof(lats[0]), cmp64);
	bad |= lats[ROUNDS / 2] >= 1000000LL;
	printf("stress_wait shutdown: %d %s sleepers woken by a third handle's shutdown, "
	       "median %.0f us, slowest %.0f us%s\n", ROUNDS,
	       full ? "producer (full ring)" : "consumer (empty ring)", (double)lats[ROUNDS / 2] / 1e3,
	       (double)lats[ROUNDS - 1] / 1e3, bad ? "  FAILED" : "");
	munmap(res, sizeof(*res));
	return bad;
}

/* A child claims the producer role (a reservation: no message) and exits
 * without closing; the consumer waiting on the empty ring must get
 * -EOWNERDEAD within a peer check or two.  The child is still a zombie then.
 * full: the mirror, a dead consumer and a producer waiting on a full ring. */
static int dead_case(int full)
{
	shmring_t *a = create(full ? "deadcons" : "deadprod", 1);
	int64_t t, rc = -EIO;
	int fds[2], bad;
	pid_t pid;

	if (pipe(fds) < 0)
		die("pipe", 0);
	if ((pid = fork_child()) == 0) {
		shmring_t *b;

		close(fds[0]);
		if (shmring_attach(cur_shm, 0, &b) == 0)
			rc = full ? shmring_try_get_staged(b) : shmring_try_reserve(b);
		if (write(fds[1], &rc, sizeof(rc)) != sizeof(rc))
			_exit(3);
		usleep(20000);     /* dies while the parent waits */
		_exit(0);          /* no close: the role stays with a dead process */
	}
	close(fds[1]);
	if (read(fds[0], &rc, sizeof(rc)) != sizeof(rc))
		rc = -EIO;
	close(fds[0]);
	unlink_cur();
	t = t_now_ns();
	if (rc != (full ? -EAGAIN : 0) || (full && shmring_try_put(a, "x", 1) != 1))
		rc = -EIO;
	else
		rc = blocking(a, full);
	t = t_now_ns() - t;
	bad = rc != -EOWNERDEAD || t > 120000000LL + round_ns;   /* its 20 ms, a round, 100 ms */
	reap(pid);
	shmring_free(a);
	printf("stress_wait dead: a %s waiting on %s ring whose %s died: %s after %.1f ms%s\n",
	       full ? "producer" : "consumer", full ? "a full" : "an empty",
	       full ? "consumer" : "producer", rc < 0 ? strerrorname_np((int)-rc) : "no error",
	       (double)t / 1e6, bad ? "  FAILED" : "");
	return bad;
}

/* the watchdog's cleanup (async-signal-safe): no child or segment outlives a hang */
static void hang_cleanup(void)
{
	if (child_pid > 0)
		kill(child_pid, SIGKILL);
	if (cur_path[0])
		shm_unlink(cur_path);
}

int main(int argc, char **argv)
{
	char clist[256] = "1,2", mlist[256] = "procs,threads,shutdown,dead", mshow[256], *save;
	uint64_t n = 600000, caps[16];
	int opt, timeout = 600, failed = 0, ncaps = 0, modes = 0;
	int64_t t0 = t_now_ns();

	while ((opt = getopt(argc, argv, "n:c:m:s:t:")) != -1) {
		switch (opt) {
		case 'n': n = strtoull(optarg, NULL, 0); break;
		case 'c': snprintf(clist, sizeof(clist), "%s", optarg); break;
		case 'm': snprintf(mlist, sizeof(mlist), "%s", optarg); break;
		case 's': slice_ns = (int64_t)(atof(optarg) * 1e6); break;
		case 't': timeout = atoi(optarg); break;
		default: return t_usage(argv[0], USAGE);
		}
	}
	if ((ncaps = t_u64_list(clist, caps, 16)) < 0)
		return t_usage(argv[0], USAGE);
	for (int c = 0; c < ncaps; c++)
		if (caps[c] >= STAMPS)
			return t_usage(argv[0], USAGE);
	snprintf(mshow, sizeof(mshow), "%s", mlist);
	for (char *m = strtok_r(mlist, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
		int i = t_lookup(m, mode_name, 4);

		if (i < 0)
			return t_usage(argv[0], USAGE);
		modes |= 1 << i;
	}
	if (n == 0 || !ncaps || !modes || optind != argc)
		return t_usage(argv[0], USAGE);
	t_crc_init();
	if (sched_getaffinity(0, sizeof(all_cpus), &all_cpus) == 0 && CPU_COUNT(&all_cpus) >= 2)
		for (int c = 0, i = 0; i < 2; c++)
			if (CPU_ISSET(c, &all_cpus))
				cpus[i++] = c;
	t_watchdog((unsigned)timeout, "stress_wait: timed out (a stuck side?)\n", hang_cleanup);
	round_ns = measure_round();
	for (int m = PROCS; m <= THREADS; m++)
		for (int c = 0; c < ncaps && modes & 1 << m; c++)
			failed += handoffs((enum mode)m, caps[c], n);
	if (modes & 1 << SHUTDOWN)
		failed += shutdown_case(0) + shutdown_case(1);
	if (modes & 1 << DEAD)
		failed += dead_case(0) + dead_case(1);
	printf("stress_wait: %s, %s handshake, %llu hand-offs per capacity, sides on cpus %d,%d, "
	       "slice %.0f ms, round %.1f ms: %s (%.1f s)\n", mshow,
	       wait_asym ? "membarrier" : "rmw", (unsigned long long)n, cpus[0], cpus[1],
	       (double)slice_ns / 1e6, (double)round_ns / 1e6, failed ? "FAILED" : "ok",
	       (double)(t_now_ns() - t0) / 1e9);
	return failed != 0;
}
