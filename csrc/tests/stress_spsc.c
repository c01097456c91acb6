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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

#define SLOT 100          /* meta at 104, stride 128: lengths cross the rounding */
#define HDR  12           /* seq + crc32 */
#define MAXB 64

enum mode { SINGLE, BATCH, ZC };
static const char *const mode_name[] = { "single", "batch", "zc" };

struct run {
	shmring_t *a, *b;
	enum mode mode;
	uint64_t n, stride, slots_off;
	_Atomic int stop;           /* the consumer gave up: the producer must too */
	int hot;                    /* spin, yielding only now and then */
	int put_err, get_err;
	uint64_t verified, lost, dup, reordered, corrupt;
};

/* crc32 (zlib's), slice-by-8: verification must not be what limits the run */
static uint32_t crc_t[8][256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_t[0][i] = c;
	}
	for (int k = 1; k < 8; k++)
		for (int i = 0; i < 256; i++)
			crc_t[k][i] = crc_t[0][crc_t[k - 1][i] & 0xff] ^ crc_t[k - 1][i] >> 8;
}

static uint32_t crc32(const uint8_t *p, uint64_t n)
{
	uint32_t c = ~0u, lo, hi;

	for (; n >= 8; n -= 8, p += 8) {
		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
		lo ^= c;
		c = crc_t[7][lo & 0xff] ^ crc_t[6][lo >> 8 & 0xff] ^ crc_t[5][lo >> 16 & 0xff] ^
		    crc_t[4][lo >> 24] ^ crc_t[3][hi & 0xff] ^ crc_t[2][hi >> 8 & 0xff] ^
		    crc_t[1][hi >> 16 & 0xff] ^ crc_t[0][hi >> 24];
	}
	while (n--)
		c = crc_t[0][(c ^ *p++) & 0xff] ^ c >> 8;
	return ~c;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t msg_len(uint64_t seq)
{
	return HDR + mix(seq) % (SLOT - HDR + 1);
}

/* message seq into m; returns its length */
static uint64_t make_msg(uint8_t *m, uint64_t seq)
{
	uint64_t len = msg_len(seq), x = mix(~seq);
	uint32_t crc;

	memcpy(m, &seq, 8);
	for (uint64_t i = HDR; i < len; i += 8, x = x * 0x5851f42d4c957f2dull + 1)
		memcpy(m + i, &x, len - i < 8 ? len - i : 8);
	crc = crc32(m + HDR, len - HDR);
	memcpy(m + 8, &crc, 4);
	return len;
}

/* Classify one received message: intact when its length is the one its seq
 * fixes and the payload still has the sender's crc (a stale or torn slot
 * fails one or the other).  seen[] tells a duplicate from a late one. */
static void check_msg(struct run *r, uint8_t *seen, uint64_t *next, const uint8_t *m, uint64_t len)
{
	uint64_t seq;
	uint32_t crc;

	if (len < HDR) {
		r->corrupt++;
		return;
	}
	memcpy(&seq, m, 8);
	memcpy(&crc, m + 8, 4);
	if (seq >= r->n || len != msg_len(seq) || crc != crc32(m + HDR, len - HDR)) {
		r->corrupt++;
		return;
	}
	if (seen[seq / 8] & 1 << seq % 8) {
		r->dup++;
		return;
	}
	seen[seq / 8] |= (uint8_t)(1 << seq % 8);
	if (seq == *next)
		r->verified++;
	else
		r->reordered++;
	*next = seq + 1;
}

static uint8_t *slot_addr(struct run *r, shmring_t *h, int64_t idx)
{
	return (uint8_t *)shmring_base(h) + r->slots_off + (uint64_t)idx * r->stride;
}

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
	uint8_t batch[MAXB * SLOT];
	uint64_t lens[MAXB], seq = 0;
	int64_t rc = 0;

	while (seq < r->n && !atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		if (r->mode == SINGLE) {
			uint64_t len = make_msg(batch, seq);

			while (full_or_empty(r, rc = shmring_try_put(r->a, (char *)batch, len)))
				;
			if (rc != 1)
				break;
			seq++;
		} else if (r->mode == BATCH) {
			uint64_t k = 1 + mix(seq ^ 0xba) % MAXB, off = 0, done = 0;

			k = k < r->n - seq ? k : r->n - seq;
			for (uint64_t i = 0; i < k; off += lens[i++])
				lens[i] = make_msg(batch + off, seq + i);
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
			if (rc < 0 || (rc = shmring_commit(r->a, make_msg(slot_addr(r, r->a, rc), seq))) < 0)
				break;
			seq++;
		}
	}
out:
	if (seq < r->n)
		r->put_err = (int)rc;
	shmring_shutdown(r->a);   /* the end of the stream, also after an error */
	return NULL;
}

static void *consumer(void *arg)
{
	struct run *r = arg;
	uint8_t *seen = calloc(r->n / 8 + 1, 1), dst[MAXB * SLOT];
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
				check_msg(r, seen, &next, shmring_stage(r->b), (uint64_t)rc);
		} else if (r->mode == BATCH) {
			rc = shmring_try_get_many(r->b, dst, lens, 1 + mix(got ^ 0xc0) % MAXB);
			for (int64_t i = 0; i < rc; i++)
				check_msg(r, seen, &next, dst + (uint64_t)i * SLOT, lens[i]);
		} else {
			uint64_t len;

			if ((rc = shmring_try_front(r->b, &len)) >= 0) {
				/* verified in place, in the shared slot, before release */
				check_msg(r, seen, &next, slot_addr(r, r->b, rc), len);
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
	for (uint64_t s = 0; s < r->n; s++)
		r->lost += !(seen[s / 8] & 1 << s % 8);
	free(seen);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One stream of n messages through a fresh ring; r has the counts.  0: all verified. */
static int run_config(struct run *r0, uint64_t cap, enum mode mode, uint64_t n, int two_mappings)
{
	struct shmring_params p = { .kind = SHMRING_SPSC, .hugepages = SHMRING_HUGE_OFF,
				    .capacity = cap, .slot_size = SLOT, .mode = 0600 };
	struct run r = { .mode = mode, .n = n, .hot = n < 64 };
	struct shmring_info in;
	struct shmring_hdr *own = NULL;
	pthread_t tp, tc;
	char name[64];
	int rc;

	snprintf(name, sizeof(name), "stress.%d.%llu.%s", (int)getpid(),
		 (unsigned long long)cap, mode_name[mode]);
	if ((rc = shmring_create(name, &p, &r.a)) < 0 || (rc = shmring_attach(name, 0, &r.b)) < 0) {
		fprintf(stderr, "stress_spsc: %s: %s\n", name, shmring_strerror(rc));
		shmring_free(r.a);
		shmring_unlink(name);
		exit(1);
	}
	shmring_unlink(name);    /* both are mapped: nothing can be left behind now */
	shmring_info(r.a, &in);
	r.stride = in.slot_stride;
	r.slots_off = in.slots_offset;
	if (!two_mappings) {
		/* alias: B keeps its own validated geometry (identical to A's) */
		own = r.b->hdr;
		r.b->hdr = r.a->hdr;
		r.b->slots = r.a->slots;
	}
	if (pthread_create(&tc, NULL, consumer, &r) || pthread_create(&tp, NULL, producer, &r)) {
		fprintf(stderr, "stress_spsc: pthread_create failed\n");
		exit(1);
	}
	pthread_join(tp, NULL);
	pthread_join(tc, NULL);
	if (own) {
		r.b->hdr = own;
		r.b->slots = (uint8_t *)own + SHMRING_SLOTS_OFF;
	}
	shmring_free(r.b);
	shmring_free(r.a);
	*r0 = r;
	return !(r.verified == n && !r.lost && !r.dup && !r.reordered && !r.corrupt &&
		 !r.put_err && !r.get_err);
}

static int stream(uint64_t cap, enum mode mode, uint64_t n, int two)
{
	struct run r;
	double t0 = now_s();
	int bad = run_config(&r, cap, mode, n, two);

	t0 = now_s() - t0;
	printf("stress_spsc cap=%llu %s: %llu verified, %llu lost, %llu duplicated, "
	       "%llu reordered, %llu corrupt  (%.2f s, %.2f M msg/s)%s\n",
	       (unsigned long long)cap, mode_name[mode], (unsigned long long)r.verified,
	       (unsigned long long)r.lost, (unsigned long long)r.dup,
	       (unsigned long long)r.reordered, (unsigned long long)r.corrupt, t0,
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
	double t0 = now_s();

	for (uint64_t i = 0; i < streams; i++) {
		struct run r;

		uint64_t cap = caps[i % ncaps], n = 1 + i % 5;
		enum mode m = (enum mode)modes[i / ncaps % nmodes];

		if (run_config(&r, cap, m, n, two) && !failed++)
			printf("  first failure: cap=%llu %s, %llu of %llu verified, get side %s\n",
			       (unsigned long long)cap, mode_name[m], (unsigned long long)r.verified,
			       (unsigned long long)n, r.get_err ? shmring_strerror(r.get_err) : "ok");
		lost += r.lost;
	}
	printf("stress_spsc endgame: %llu streams of 1..5 messages, %llu failed, %llu lost  (%.2f s)\n",
	       (unsigned long long)streams, (unsigned long long)failed,
	       (unsigned long long)lost, now_s() - t0);
	return failed != 0;
}

static void on_alarm(int sig)
{
	static const char msg[] = "stress_spsc: timed out (a lost wake-up or a stuck side?)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(2);
}

static int usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-n messages] [-r streams] [-c 1,2,1024] "
		"[-m single,batch,zc] [-t secs] [-2]\n", prog);
	return 1;
}

int main(int argc, char **argv)
{
	const char *env = getenv("STRESS_MESSAGES");
	char clist[256] = "1,2,1024", mlist[256] = "single,batch,zc", *save;
	uint64_t n = env ? strtoull(env, NULL, 0) : 2000000, streams = 3000, caps[16];
	int opt, timeout = 600, two = 0, failed = 0, ncaps = 0, nmodes = 0, modes[3];
	double t0 = now_s();

	while ((opt = getopt(argc, argv, "n:r:c:m:t:2")) != -1) {
		switch (opt) {
		case 'n': n = strtoull(optarg, NULL, 0); break;
		case 'r': streams = strtoull(optarg, NULL, 0); break;
		case 'c': snprintf(clist, sizeof(clist), "%s", optarg); break;
		case 'm': snprintf(mlist, sizeof(mlist), "%s", optarg); break;
		case 't': timeout = atoi(optarg); break;
		case '2': two = 1; break;
		default: return usage(argv[0]);
		}
	}
	for (char *c = strtok_r(clist, ",", &save); c && ncaps < 16; c = strtok_r(NULL, ",", &save))
		if ((caps[ncaps++] = strtoull(c, NULL, 0)) == 0)
			return usage(argv[0]);
	for (char *m = strtok_r(mlist, ",", &save); m && nmodes < 3; m = strtok_r(NULL, ",", &save)) {
		for (modes[nmodes] = 0; modes[nmodes] < 3 && strcmp(m, mode_name[modes[nmodes]]);)
			modes[nmodes]++;
		if (modes[nmodes++] == 3)
			return usage(argv[0]);
	}
	if (n == 0 || !ncaps || !nmodes || optind != argc)
		return usage(argv[0]);
	crc_init();
	signal(SIGALRM, on_alarm);
	alarm((unsigned)timeout);
	for (int c = 0; c < ncaps; c++)
		for (int m = 0; m < nmodes; m++)
			failed += stream(caps[c], (enum mode)modes[m], n, two);
	failed += streams && endgame(caps, ncaps, modes, nmodes, streams, two);
	printf("stress_spsc: %d configurations x %llu messages + %llu streams%s: %s (%.1f s)\n",
	       ncaps * nmodes, (unsigned long long)n, (unsigned long long)streams,
	       two ? ", two mappings" : "", failed ? "FAILED" : "ok", now_s() - t0);
	return failed != 0;
}
