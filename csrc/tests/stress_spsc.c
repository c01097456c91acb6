/* SPDX-License-Identifier: MIT */
/*
 * Threaded SPSC stress: a producer thread on handle A (shmring_create) and a
 * consumer thread on handle B (shmring_attach of the same name) push messages
 * through capacities 1, 2 and 1024, one at a time, in batches of up to 64 and
 * zero-copy.  A message is seq (8 bytes), crc32 of the payload (4), payload;
 * seq fixes the length (12..SLOT) and the payload bytes.  The consumer checks
 * every message arrives exactly once, in order, intact.  Then the endgame:
 * many short streams, each shut down right after its last put, for the race
 * between a consumer finding the ring empty and the final put + shutdown.
 *
 * B is pointed at A's mapping (white-box, in run_config): two mappings of one
 * segment are two address ranges to ThreadSanitizer, which would see no
 * shared access at all and prove nothing.  On one range it checks the ring's
 * real happens-before edges.  -2 keeps B's own mapping (what two processes see).
 *
 * usage: stress_spsc [-n messages] [-r streams] [-c 1,2,1024] [-m single,batch,zc]
 *                    [-t secs] [-2]
 *        STRESS_MESSAGES sets the default -n (2000000); -r defaults to 3000.
 * Exit 0 when every configuration verified every message, else 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define SLOT 100          /* meta at 104, stride 128: lengths cross the rounding */
#define MAXB 64
#define USAGE "[-n messages] [-r streams] [-c 1,2,1024] [-m single,batch,zc] [-t secs] [-2]"

enum mode { SINGLE, BATCH, ZC };
static const char *const mode_name[] = { "single", "batch", "zc" };

struct run {
	shmring_t *a, *b;
	enum mode mode;
	struct t_stream s;          /* n messages, and what the consumer found */
	uint64_t stride, slots_off;
	_Atomic int stop;           /* the consumer gave up: the producer must too */
	int hot;                    /* spin, yielding only now and then */
	int put_err, get_err;
};

/* -EAGAIN: yield and go again, unless the other side gave up.  The endgame
 * spins hot instead: a consumer looking at the ring all the time is one that
 * can find it empty just before the final put and the shutdown. */
static int full_or_empty(struct run *r, int64_t rc)
{
	static _Thread_local unsigned spins;

	if (rc != -EAGAIN || atomic_load(&r->stop))
		return 0;
	if (r->hot && ++spins % 64)
		cpu_relax();
	else
		sched_yield();
	return 1;
}

static void *producer(void *arg)
{
	struct run *r = arg;
	uint8_t batch[MAXB * SLOT], *m;
	uint64_t lens[MAXB], seq = 0;
	int64_t rc = 0;

	while (seq < r->s.n && !atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		if (r->mode == SINGLE) {
			uint64_t len = t_make_msg(batch, seq, SLOT);

			while (full_or_empty(r, rc = shmring_try_put(r->a, (char *)batch, len)))
				;
			if (rc != 1)
				break;
			seq++;
		} else if (r->mode == BATCH) {
			uint64_t k = 1 + t_mix(seq ^ 0xba) % MAXB, off = 0, done = 0;

			k = k < r->s.n - seq ? k : r->s.n - seq;
			for (uint64_t i = 0; i < k; off += lens[i++])
				lens[i] = t_make_msg(batch + off, seq + i, SLOT);
			/* put_many takes what fits; the rest goes again */
			for (off = 0; done < k; ) {
				rc = shmring_try_put_many(r->a, batch + off, lens + done, k - done);
				if (full_or_empty(r, rc))
					continue;
				if (rc <= 0)
					goto out;
				for (int64_t i = 0; i < rc; i++)
					off += lens[done++];
			}
			seq += k;
		} else {
			while (full_or_empty(r, rc = shmring_try_reserve(r->a)))
				;
			if (rc < 0)
				break;
			m = t_slot(r->a, r->slots_off, r->stride, rc);
			if ((rc = shmring_commit(r->a, t_make_msg(m, seq, SLOT))) < 0)
				break;
			seq++;
		}
	}
out:
	if (seq < r->s.n)
		r->put_err = (int)rc;
	shmring_shutdown(r->a);   /* the end of the stream, also after an error */
	return NULL;
}

static void *consumer(void *arg)
{
	struct run *r = arg;
	uint8_t *seen = calloc(r->s.n / 8 + 1, 1), dst[MAXB * SLOT];
	uint64_t lens[MAXB], next = 0, got = 0;
	int64_t rc;

	if (!seen) {
		r->get_err = -ENOMEM;
		atomic_store(&r->stop, 1);
		return NULL;
	}
	for (;;) {
		if (r->mode == SINGLE) {
			if ((rc = shmring_try_get_staged(r->b)) >= 0)
				t_check_msg(&r->s, seen, &next, shmring_stage(r->b), (uint64_t)rc);
		} else if (r->mode == BATCH) {
			rc = shmring_try_get_many(r->b, dst, lens, 1 + t_mix(got ^ 0xc0) % MAXB);
			for (int64_t i = 0; i < rc; i++)
				t_check_msg(&r->s, seen, &next, dst + (uint64_t)i * SLOT, lens[i]);
		} else {
			uint64_t len;

			if ((rc = shmring_try_front(r->b, &len)) >= 0) {
				/* verified in place, in the shared slot, before release */
				t_check_msg(&r->s, seen, &next,
					    t_slot(r->b, r->slots_off, r->stride, rc), len);
				rc = shmring_release(r->b);
			}
		}
		if (rc >= 0) {
			got++;
			continue;
		}
		if (!full_or_empty(r, rc))
			break;
	}
	if (rc != -ENODATA) {
		r->get_err = (int)rc;
		atomic_store(&r->stop, 1);
	}
	t_count_lost(&r->s, seen);
	free(seen);
	return NULL;
}

/* One stream of n messages through a fresh ring; r has the counts.  0: all verified. */
static int run_config(struct run *r0, uint64_t cap, enum mode mode, uint64_t n, int two_mappings)
{
	struct shmring_params p = t_ring_params(SHMRING_SPSC, cap, SLOT);
	struct run r = { .mode = mode, .s = { .n = n, .slot = SLOT }, .hot = n < 64 };
	struct t_rings g;
	pthread_t tp, tc;
	char name[64];
	int rc;

	t_seg_name(name, sizeof(name), "stress", "%llu.%s", (unsigned long long)cap, mode_name[mode]);
	/* B is pointed at A's mapping unless -2 (see the top) */
	if ((rc = t_rings_open(&g, name, &p, 2, !two_mappings)) < 0) {
		fprintf(stderr, "stress_spsc: %s: %s\n", name, shmring_strerror(rc));
		exit(1);
	}
	r.a = g.h[0];
	r.b = g.h[1];
	r.stride = g.stride;
	r.slots_off = g.slots_off;
	if (pthread_create(&tc, NULL, consumer, &r) || pthread_create(&tp, NULL, producer, &r)) {
		fprintf(stderr, "stress_spsc: pthread_create failed\n");
		exit(1);
	}
	pthread_join(tp, NULL);
	pthread_join(tc, NULL);
	t_rings_close(&g);
	*r0 = r;
	return !(t_stream_ok(&r.s) && !r.put_err && !r.get_err);
}

static int stream(uint64_t cap, enum mode mode, uint64_t n, int two)
{
	struct run r;
	double t0 = t_now_s();
	int bad = run_config(&r, cap, mode, n, two);

	t0 = t_now_s() - t0;
	printf("stress_spsc cap=%llu %s: %llu verified, %llu lost, %llu duplicated, "
	       "%llu reordered, %llu corrupt  (%.2f s, %.2f M msg/s)%s\n",
	       (unsigned long long)cap, mode_name[mode], (unsigned long long)r.s.verified,
	       (unsigned long long)r.s.lost, (unsigned long long)r.s.dup,
	       (unsigned long long)r.s.reordered, (unsigned long long)r.s.corrupt, t0,
	       (double)n / t0 / 1e6, bad ? "  FAILED" : "");
	if (r.put_err || r.get_err)
		printf("  put side stopped with %s, get side with %s\n",
		       r.put_err ? shmring_strerror(r.put_err) : "-",
		       r.get_err ? shmring_strerror(r.get_err) : "-");
	fflush(stdout);
	return bad;
}

/* Streams of 1..5 messages over every capacity and mode. */
static int endgame(const uint64_t *caps, int ncaps, const int *modes, int nmodes,
		   uint64_t streams, int two)
{
	uint64_t failed = 0, lost = 0;
	double t0 = t_now_s();

	for (uint64_t i = 0; i < streams; i++) {
		struct run r;

		uint64_t cap = caps[i % ncaps], n = 1 + i % 5;
		enum mode m = (enum mode)modes[i / ncaps % nmodes];

		if (run_config(&r, cap, m, n, two) && !failed++)
			printf("  first failure: cap=%llu %s, %llu of %llu verified, get side %s\n",
			       (unsigned long long)cap, mode_name[m], (unsigned long long)r.s.verified,
			       (unsigned long long)n, r.get_err ? shmring_strerror(r.get_err) : "ok");
		lost += r.s.lost;
	}
	printf("stress_spsc endgame: %llu streams of 1..5 messages, %llu failed, %llu lost  (%.2f s)\n",
	       (unsigned long long)streams, (unsigned long long)failed,
	       (unsigned long long)lost, t_now_s() - t0);
	return failed != 0;
}

int main(int argc, char **argv)
{
	const char *env = getenv("STRESS_MESSAGES");
	char clist[256] = "1,2,1024", mlist[256] = "single,batch,zc", *save;
	uint64_t n = env ? strtoull(env, NULL, 0) : 2000000, streams = 3000, caps[16];
	int opt, timeout = 600, two = 0, failed = 0, ncaps = 0, nmodes = 0, modes[3];
	double t0 = t_now_s();

	while ((opt = getopt(argc, argv, "n:r:c:m:t:2")) != -1) {
		switch (opt) {
		case 'n': n = strtoull(optarg, NULL, 0); break;
		case 'r': streams = strtoull(optarg, NULL, 0); break;
		case 'c': snprintf(clist, sizeof(clist), "%s", optarg); break;
		case 'm': snprintf(mlist, sizeof(mlist), "%s", optarg); break;
		case 't': timeout = atoi(optarg); break;
		case '2': two = 1; break;
		default: return t_usage(argv[0], USAGE);
		}
	}
	if ((ncaps = t_u64_list(clist, caps, 16)) < 0)
		return t_usage(argv[0], USAGE);
	for (char *m = strtok_r(mlist, ",", &save); m && nmodes < 3; m = strtok_r(NULL, ",", &save))
		if ((modes[nmodes++] = t_lookup(m, mode_name, 3)) < 0)
			return t_usage(argv[0], USAGE);
	if (n == 0 || !ncaps || !nmodes || optind != argc)
		return t_usage(argv[0], USAGE);
	t_crc_init();
	t_watchdog((unsigned)timeout, "stress_spsc: timed out (a lost wake-up or a stuck side?)\n", NULL);
	for (int c = 0; c < ncaps; c++)
		for (int m = 0; m < nmodes; m++)
			failed += stream(caps[c], (enum mode)modes[m], n, two);
	failed += streams && endgame(caps, ncaps, modes, nmodes, streams, two);
	printf("stress_spsc: %d configurations x %llu messages + %llu streams%s: %s (%.1f s)\n",
	       ncaps * nmodes, (unsigned long long)n, (unsigned long long)streams,
	       two ? ", two mappings" : "", failed ? "FAILED" : "ok", t_now_s() - t0);
	return failed != 0;
}
