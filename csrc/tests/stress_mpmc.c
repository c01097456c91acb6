/* SPDX-License-Identifier: MIT */
/*
 * Threaded many-to-many stress for the MPMC and the locked kinds: P producer
 * threads and C consumer threads, each on its own handle (a handle serves one
 * thread), over ONE mapping, for (P, C) in 1x1, 2x2, 4x4, 1x3, 3x1 and
 * capacities 1, 2, 4 (the ring wraps all the time) and 1024.
 *
 * A message is producer id (4 bytes), crc32 (4), sequence (8), payload; the
 * crc covers everything but itself, (id, seq) fixes the length (16..SLOT) and
 * the payload bytes.  Each producer sends 0, 1, 2, ... in a mix of try_put,
 * try_put_many batches of 1..16 (what does not fit goes again; one batch in
 * eight with lens NULL, full-slot messages) and zero-copy reserve/commit; now
 * and then (ABANDON_PCT) it reserves, writes a complete, valid-looking
 * message marked ABANDONED into the slot and abandons it.  Consumers mix
 * try_get_staged, try_get_many (1..16) and try_front/release (checked in
 * place, in the shared slot, before the release).  Checks:
 *   - every message delivered exactly once across all consumers (a seen
 *     bitmap per consumer and producer, merged at the end: "lost" and
 *     "duplicated" count across consumers as well as within one);
 *   - intact: length and crc ("corrupt");
 *   - per-producer FIFO as each consumer sees it: sequences from one producer
 *     increase within one consumer ("reordered");
 *   - no abandoned message is ever delivered;
 *   - once the producers are joined, shmring_shutdown: every consumer drains
 *     and ends on -ENODATA, then every get flavour on every consumer handle
 *     says -ENODATA, every put and reserve -EPIPE, and (white-box) the shared
 *     head equals tail.
 * Full or empty: mode "spin" retries, with a sched_yield every SPINS-th
 * -EAGAIN (a pause otherwise: tight races when the other side runs on the
 * other CPU); mode "wait" sleeps in shmring_wait_writable / _readable with a
 * SLICE_NS slice, spinning switched off (shmring_set_spin 0) on every other
 * handle: the futex path for MPMC, the semaphores for the locked kind.  The
 * wait lines count waits, slices that ran out ("timed out": information only;
 * a busy 2-core machine can stall a side for a slice) and, for MPMC, futex
 * wake-ups (white-box: the queues' futex words).
 * Endgame (-r): streams of 1..7 messages over every kind, shape, capacity and
 * mode, for the races at the end of a stream (shutdown while consumers spin
 * or sleep on an empty ring, drain, -ENODATA).
 *
 * Mode "probe": small deterministic scenarios for what the stress hits only
 * by luck.  wake: a producer sleeps in wait_writable on a full cap=1 ring
 * (spin 0); a consumer frees the slot with each get flavour, once by taking
 * a message and once by passing over an abandoned (SKIP) position.  The MPMC
 * kind must bump the space queue's futex word (white-box, as stress_wait
 * does), the locked kind must wake the waiter within its 2 s slice.  drain:
 * one message, shutdown, then each get flavour: that message once, then
 * -ENODATA, and head == tail.
 *
 * Handles are pointed at the creator's mapping (white-box, as stress_spsc
 * does): ThreadSanitizer sees one address range, so it checks the rings'
 * real happens-before edges.  Segments ("stress.<pid>.mpmc...") are unlinked
 * right after the attaches: nothing is left in /dev/shm even if the watchdog
 * fires.
 *
 * usage: stress_mpmc [-n messages] [-w messages] [-r streams] [-k mpmc,locked]
 *                    [-p 1x1,2x2,4x4,1x3,3x1] [-c 1,2,4,1024]
 *                    [-m spin,wait,probe] [-t secs]
 *   -n  messages per configuration in mode spin (default STRESS_MPMC_MESSAGES,
 *       else DEFAULT_N: 100000, 15000 under TSan)
 *   -w  messages per configuration in mode wait (default n / WAIT_DIV)
 *   -r  endgame streams (default DEFAULT_R: 2000, 300 under TSan; 0: none)
 * The defaults keep a run near 30 s on 2 busy cores (TSan 25-40 s, ASan and
 * -O2 25-40 s).  Capacities 1-4 are hand-off bound (0.05-1 M msg/s with
 * 2-8 threads on 2 CPUs), so 2,000,000 per configuration takes ~80 s for the
 * 20 MPMC spin configurations alone: ask for it with -n.
 * Exit 0 when everything passed, 1 on any failure, 2 when the watchdog fired.
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

#define SLOT      100          /* meta at 104, stride 128 */
#define HDR       16           /* producer id, crc32, seq */
#define MAXB      16           /* batch sizes 1..MAXB */
#define MAXT      8            /* producers (consumers) per configuration */
#define ABANDONED 0x80000000u  /* in the id word: written, then abandoned */
#define FULL      0x40000000u  /* in the id word: SLOT bytes (put_many, lens NULL) */
#define SLICE_NS  20000000LL   /* wait mode: one wait_* call */
#define ABANDON_PCT 3          /* of producer operations */
#define USAGE "[-n messages] [-w messages] [-r streams] [-k mpmc,locked] " \
	      "[-p 1x1,2x2,4x4,1x3,3x1] [-c 1,2,4,1024] [-m spin,wait,probe] [-t secs]"
#ifndef SPINS
#define SPINS     4            /* spin mode: -EAGAINs per sched_yield */
#endif

/* Defaults measured on 2 cores (see the top): the whole run ~30 s */
#if defined(__SANITIZE_THREAD__)
#define DEFAULT_N 15000ull
#define WAIT_DIV  4
#define DEFAULT_R 300ull
#else
#define DEFAULT_N 100000ull
#define WAIT_DIV  16
#define DEFAULT_R 2000ull
#endif

_Static_assert(2 * MAXT <= T_MAXH, "a configuration's handles fit in a struct t_rings");

enum wmode { SPIN, WAIT };
static const char *const wmode_name[] = { "spin", "wait" };

struct cfg {
	uint32_t kind;
	uint64_t cap;
	int np, nc;
	enum wmode wm;
	uint64_t nper[MAXT];       /* messages of each producer */
	uint64_t stride, slots_off;
	_Atomic int stop;          /* a thread failed: everybody gives up */
};

struct tstat {                 /* a thread's waits and first error */
	uint64_t spins, waits, timeouts;
	int64_t err;
};

struct prod {
	struct cfg *c;
	shmring_t *h;
	int id;
	uint64_t sent, abandoned;
	struct tstat s;
};

struct cons {
	struct cfg *c;
	shmring_t *h;
	int id;
	uint64_t *seen[MAXT];      /* bit seq of producer p: delivered here */
	int64_t last[MAXT];        /* highest seq of producer p seen here */
	uint64_t got, dup, reordered, corrupt, abandoned, calls;
	int64_t final_rc;
	struct tstat s;
};

static const char *kind_name(uint32_t kind)
{
	return kind == SHMRING_MPMC ? "mpmc" : kind == SHMRING_LOCKED ? "locked" : "?";
}

/* crc32 of a message: its id word, then everything after the crc field */
static uint32_t msg_crc(const uint8_t *m, uint64_t len)
{
	return ~t_crc_update(t_crc_update(~0u, m, 4), m + 8, len - 8);
}

static uint64_t msg_len(uint32_t who, uint64_t seq)
{
	return who & FULL ? SLOT : HDR + t_mix((uint64_t)who << 40 ^ seq) % (SLOT - HDR + 1);
}

/* message (who, seq) into m; returns its length */
static uint64_t make_msg(uint8_t *m, uint32_t who, uint64_t seq)
{
	uint64_t len = msg_len(who, seq);
	uint32_t crc;

	memcpy(m, &who, 4);
	memcpy(m + 8, &seq, 8);
	t_fill(m + HDR, len - HDR, t_mix(~seq ^ (uint64_t)who << 32));
	crc = msg_crc(m, len);
	memcpy(m + 4, &crc, 4);
	return len;
}

/* a thread's operation mix: reproducible per configuration and thread */
static uint64_t seed(const struct cfg *c, int id, uint64_t role)
{
	return t_mix((uint64_t)c->kind << 56 ^ c->cap << 24 ^ (uint64_t)c->np << 20 ^
		     (uint64_t)c->nc << 16 ^ (uint64_t)c->wm << 12 ^ (uint64_t)id << 8 ^ role);
}

/* A slot index from reserve or front: inside the ring, or -ERANGE */
static int64_t slot_ok(const struct cfg *c, int64_t idx)
{
	return (uint64_t)idx < c->cap ? idx : -ERANGE;
}

/* -EAGAIN: yield (or wait) and go again, unless somebody gave up.  A wait
 * that fails (anything but 0 and -ETIMEDOUT) is this thread's error. */
static int again(struct cfg *c, shmring_t *h, int64_t rc, int reader, struct tstat *s)
{
	int w;

	if (rc != -EAGAIN || atomic_load_explicit(&c->stop, memory_order_relaxed))
		return 0;
	if (c->wm == SPIN) {
		/* a few pause rounds between yields: tight races when the other
		 * side runs on the other CPU, a yield when it waits for this one */
		if (++s->spins % SPINS)
			cpu_relax();
		else
			sched_yield();
		return 1;
	}
	s->waits++;
	w = reader ? shmring_wait_readable(h, SLICE_NS) : shmring_wait_writable(h, SLICE_NS);
	if (w == -ETIMEDOUT) {
		s->timeouts++;
	} else if (w < 0) {
		s->err = w;
		return 0;
	}
	return 1;
}

static void *producer(void *arg)
{
	struct prod *p = arg;
	struct cfg *c = p->c;
	uint8_t buf[MAXB * SLOT], *m;
	uint64_t lens[MAXB], seq = 0, n = c->nper[p->id];
	uint64_t rng = seed(c, p->id, 0xa5);
	uint32_t me = (uint32_t)p->id;
	int64_t rc = 0;

	while (seq < n && !atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		uint64_t x = t_mix(rng++), op = x % 100;

		if (op < ABANDON_PCT) {
			/* a complete message, so that delivering it would show */
			while (again(c, p->h, rc = shmring_try_reserve(p->h), 0, &p->s))
				;
			if (rc < 0 || (rc = slot_ok(c, rc)) < 0)
				break;
			make_msg(t_slot(p->h, c->slots_off, c->stride, rc), me | ABANDONED, p->abandoned);
			if ((rc = shmring_abandon(p->h)) < 0)
				break;
			p->abandoned++;
		} else if (op < 30) {
			uint64_t len = make_msg(buf, me, seq);

			while (again(c, p->h, rc = shmring_try_put(p->h, (char *)buf, len), 0, &p->s))
				;
			if (rc != 1)
				break;
			seq++;
		} else if (op < 65) {
			uint64_t k = 1 + (x >> 8) % MAXB, off = 0, done = 0;
			int full = (x >> 16) % 8 == 0;   /* lens NULL: every message SLOT bytes */

			k = k < n - seq ? k : n - seq;
			for (uint64_t i = 0; i < k; off += lens[i++])
				lens[i] = make_msg(buf + off, full ? me | FULL : me, seq + i);
			/* put_many takes what fits; the rest goes again */
			for (off = 0; done < k; ) {
				rc = shmring_try_put_many(p->h, buf + off, full ? NULL : lens + done,
							  k - done);
				if (again(c, p->h, rc, 0, &p->s))
					continue;
				if (rc <= 0 || (uint64_t)rc > k - done) {
					seq += done;
					rc = rc > 0 ? -ERANGE : rc;
					goto out;
				}
				for (int64_t i = 0; i < rc; i++)
					off += lens[done++];
			}
			seq += k;
		} else {
			while (again(c, p->h, rc = shmring_try_reserve(p->h), 0, &p->s))
				;
			if (rc < 0 || (rc = slot_ok(c, rc)) < 0)
				break;
			m = t_slot(p->h, c->slots_off, c->stride, rc);
			if ((rc = shmring_commit(p->h, make_msg(m, me, seq))) < 0)
				break;
			seq++;
		}
	}
out:
	p->sent = seq;
	if (seq < n && !p->s.err)
		p->s.err = rc < 0 ? rc : -EPROTO;
	if (seq < n)
		atomic_store(&c->stop, 1);
	return NULL;
}

static void check_msg(struct cons *k, const uint8_t *m, uint64_t len)
{
	struct cfg *c = k->c;
	uint32_t who, crc;
	uint64_t seq, bit;

	if (len < HDR) {
		k->corrupt++;
		return;
	}
	memcpy(&who, m, 4);
	memcpy(&crc, m + 4, 4);
	memcpy(&seq, m + 8, 8);
	if (len != msg_len(who, seq) || crc != msg_crc(m, len)) {
		k->corrupt++;
		return;
	}
	if (who & ABANDONED) {          /* intact, and abandoned by its producer */
		k->abandoned++;
		return;
	}
	who &= ~FULL;
	if (who >= (uint32_t)c->np || seq >= c->nper[who]) {
		k->corrupt++;
		return;
	}
	bit = (uint64_t)1 << seq % 64;
	if (k->seen[who][seq / 64] & bit) {
		k->dup++;
		return;
	}
	k->seen[who][seq / 64] |= bit;
	k->got++;
	if ((int64_t)seq <= k->last[who])
		k->reordered++;
	else
		k->last[who] = (int64_t)seq;
}

static void *consumer(void *arg)
{
	struct cons *k = arg;
	struct cfg *c = k->c;
	uint8_t dst[MAXB * SLOT];
	uint64_t lens[MAXB];
	uint64_t rng = seed(c, k->id, 0x3c);
	int64_t rc;

	for (;;) {
		uint64_t x = t_mix(rng++), op = x % 3;

		k->calls++;
		if (op == 0) {
			if ((rc = shmring_try_get_staged(k->h)) >= 0)
				check_msg(k, shmring_stage(k->h), (uint64_t)rc);
		} else if (op == 1) {
			uint64_t max = 1 + (x >> 8) % MAXB;

			rc = shmring_try_get_many(k->h, dst, lens, max);
			if (rc > (int64_t)max)
				rc = -ERANGE;
			for (int64_t i = 0; i < rc; i++)
				check_msg(k, dst + (uint64_t)i * SLOT, lens[i]);
		} else {
			uint64_t len;

			if ((rc = shmring_try_front(k->h, &len)) >= 0) {
				if (slot_ok(c, rc) < 0 || len > SLOT) {
					rc = -ERANGE;
				} else {
					/* verified in place, in the shared slot, before release */
					check_msg(k, t_slot(k->h, c->slots_off, c->stride, rc), len);
					rc = shmring_release(k->h);
				}
			}
		}
		if (rc >= 0)
			continue;
		if (!again(c, k->h, rc, 1, &k->s))
			break;
	}
	k->final_rc = rc;
	if (rc != -ENODATA) {
		if (!k->s.err)
			k->s.err = rc;
		atomic_store(&c->stop, 1);
	}
	return NULL;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "stress_mpmc: %s: %s\n", what, rc ? shmring_strerror(rc) : "failed");
	exit(1);
}

/* n handles on one fresh ring of kind, all pointed at the first one's mapping */
static void rings_open(struct t_rings *g, uint32_t kind, uint64_t cap, int n, const char *tag)
{
	struct shmring_params p = t_ring_params(kind, cap, SLOT);
	char name[96];
	int rc;

	t_seg_name(name, sizeof(name), "stress", "mpmc.%s.%s.%llu", kind_name(kind), tag,
		   (unsigned long long)cap);
	if ((rc = t_rings_open(g, name, &p, n, 1)) < 0)
		die(name, rc);
}

struct result {
	uint64_t n, sent, verified, lost, dup, reordered, corrupt, abandoned, abandoned_got;
	uint64_t waits, timeouts, wakeups, calls;
	int64_t put_err, get_err;
	int end_bad;               /* what the end-of-stream checks found */
	char end_what[160];
};

static void end_fail(struct result *res, const char *fmt, long long a, long long b)
{
	if (!res->end_bad++)
		snprintf(res->end_what, sizeof(res->end_what), fmt, a, b);
}

/* After shutdown and the drain: every get on every consumer is -ENODATA,
 * every put -EPIPE, the shared counters agree. */
static void end_checks(struct cfg *c, struct t_rings *g, struct cons *cs, struct result *res)
{
	uint8_t dst[MAXB * SLOT];
	uint64_t lens[MAXB], len, t, h;
	int64_t rc;

	for (int i = 0; i < c->nc; i++) {
		shmring_t *k = cs[i].h;

		if (cs[i].final_rc != -ENODATA)
			end_fail(res, "consumer %lld ended on %lld, not -ENODATA", i, cs[i].final_rc);
		if ((rc = shmring_try_get_staged(k)) != -ENODATA)
			end_fail(res, "consumer %lld: get_staged after the drain gave %lld", i, rc);
		if ((rc = shmring_try_get_many(k, dst, lens, MAXB)) != -ENODATA)
			end_fail(res, "consumer %lld: get_many after the drain gave %lld", i, rc);
		if ((rc = shmring_try_front(k, &len)) != -ENODATA) {
			end_fail(res, "consumer %lld: front after the drain gave %lld", i, rc);
			if (rc >= 0)
				shmring_release(k);
		}
	}
	for (int i = 0; i < c->np; i++) {
		if ((rc = shmring_try_put(g->h[i], "x", 1)) != -EPIPE)
			end_fail(res, "producer %lld: put after shutdown gave %lld", i, rc);
		if ((rc = shmring_try_reserve(g->h[i])) != -EPIPE) {
			end_fail(res, "producer %lld: reserve after shutdown gave %lld", i, rc);
			if (rc >= 0)
				shmring_abandon(g->h[i]);
		}
	}
	t = load_acquire(&g->h[0]->hdr->tail);
	h = load_acquire(&g->h[0]->hdr->head);
	if (t != h)
		end_fail(res, "shared tail %lld != head %lld after the drain", (long long)t, (long long)h);
	if (shmring_length(g->h[0]) != 0)
		end_fail(res, "length %lld after the drain, not %lld", (long long)shmring_length(g->h[0]), 0);
}

/* One configuration; 0 when everything checked out. */
static int run_config(uint32_t kind, uint64_t cap, int np, int nc, enum wmode wm, uint64_t n,
		      struct result *res)
{
	struct cfg c = { .kind = kind, .cap = cap, .np = np, .nc = nc, .wm = wm };
	struct prod ps[MAXT];
	struct cons cs[MAXT];
	pthread_t tp[MAXT], tc[MAXT];
	struct t_rings g;
	char tag[32];

	memset(res, 0, sizeof(*res));
	memset(ps, 0, sizeof(ps));
	memset(cs, 0, sizeof(cs));
	res->n = n;
	for (int i = 0; i < np; i++)
		c.nper[i] = n / (uint64_t)np + ((uint64_t)i < n % (uint64_t)np);
	snprintf(tag, sizeof(tag), "%dp%dc.%s", np, nc, wmode_name[wm]);
	rings_open(&g, kind, cap, np + nc, tag);
	c.stride = g.stride;
	c.slots_off = g.slots_off;
	if (wm == WAIT)   /* every other handle sleeps at once: the futex / semaphore path */
		for (int i = 0; i < np + nc; i += 2)
			shmring_set_spin(g.h[i], 0);

	for (int i = 0; i < nc; i++) {
		cs[i] = (struct cons){ .c = &c, .h = g.h[np + i], .id = i };
		for (int p = 0; p < np; p++) {
			cs[i].last[p] = -1;
			if (!(cs[i].seen[p] = calloc(c.nper[p] / 64 + 1, 8)))
				die("calloc", -ENOMEM);
		}
		if (pthread_create(&tc[i], NULL, consumer, &cs[i]))
			die("pthread_create", 0);
	}
	for (int i = 0; i < np; i++) {
		ps[i] = (struct prod){ .c = &c, .h = g.h[i], .id = i };
		if (pthread_create(&tp[i], NULL, producer, &ps[i]))
			die("pthread_create", 0);
	}
	for (int i = 0; i < np; i++)
		pthread_join(tp[i], NULL);
	/* the end of the stream: producer 0's handle, its thread is done */
	shmring_shutdown(g.h[0]);
	for (int i = 0; i < nc; i++)
		pthread_join(tc[i], NULL);

	/* Merge: a message seen by two consumers is a duplicate too. */
	for (int p = 0; p < np; p++) {
		uint64_t words = c.nper[p] / 64 + 1, distinct = 0, sum = 0;

		for (uint64_t w = 0; w < words; w++) {
			uint64_t any = 0;

			for (int i = 0; i < nc; i++) {
				sum += (uint64_t)__builtin_popcountll(cs[i].seen[p][w]);
				any |= cs[i].seen[p][w];
			}
			distinct += (uint64_t)__builtin_popcountll(any);
		}
		res->verified += distinct;
		res->dup += sum - distinct;
		res->lost += c.nper[p] - distinct;
		res->sent += ps[p].sent;
		res->abandoned += ps[p].abandoned;
		res->waits += ps[p].s.waits;
		res->timeouts += ps[p].s.timeouts;
		if (ps[p].s.err && !res->put_err)
			res->put_err = ps[p].s.err;
	}
	for (int i = 0; i < nc; i++) {
		res->dup += cs[i].dup;
		res->reordered += cs[i].reordered;
		res->corrupt += cs[i].corrupt;
		res->abandoned_got += cs[i].abandoned;
		res->waits += cs[i].s.waits;
		res->timeouts += cs[i].s.timeouts;
		res->calls += cs[i].calls;
		if (cs[i].s.err && !res->get_err)
			res->get_err = cs[i].s.err;
	}
	/* reordered counts only first deliveries; verified those in order */
	res->verified -= res->reordered < res->verified ? res->reordered : res->verified;
	if (!atomic_load(&c.stop))
		end_checks(&c, &g, cs, res);
	else
		end_fail(res, "stopped early (put side %lld, get side %lld)", res->put_err, res->get_err);
	if (kind == SHMRING_MPMC)   /* futex wake-ups: each bumps a queue's word (shutdown: 2) */
		res->wakeups = load_acquire(&g.h[0]->hdr->data_waitq.seq) +
			       load_acquire(&g.h[0]->hdr->space_waitq.seq);
	for (int i = 0; i < nc; i++)
		for (int p = 0; p < np; p++)
			free(cs[i].seen[p]);
	t_rings_close(&g);
	return !(res->verified == n && res->sent == n && !res->lost && !res->dup &&
		 !res->reordered && !res->corrupt && !res->abandoned_got && !res->put_err &&
		 !res->get_err && !res->end_bad);
}

static int stress(uint32_t kind, uint64_t cap, int np, int nc, enum wmode wm, uint64_t n)
{
	struct result r;
	double t0 = t_now_s();
	int bad = run_config(kind, cap, np, nc, wm, n, &r);
	char extra[128] = "";

	t0 = t_now_s() - t0;
	if (wm == WAIT && kind == SHMRING_MPMC)
		snprintf(extra, sizeof(extra), ", %llu waits, %llu timed out, %llu futex wake-ups",
			 (unsigned long long)r.waits, (unsigned long long)r.timeouts,
			 (unsigned long long)r.wakeups);
	else if (wm == WAIT)
		snprintf(extra, sizeof(extra), ", %llu waits, %llu timed out",
			 (unsigned long long)r.waits, (unsigned long long)r.timeouts);
	printf("stress_mpmc %s %dp%dc cap=%llu%s: %llu verified, %llu lost, %llu duplicated, "
	       "%llu reordered, %llu corrupt, %llu abandoned (%llu delivered)  "
	       "(%.2f s, %.2f M msg/s%s)%s\n",
	       kind_name(kind), np, nc, (unsigned long long)cap, wm == WAIT ? " wait" : "",
	       (unsigned long long)r.verified, (unsigned long long)r.lost,
	       (unsigned long long)r.dup, (unsigned long long)r.reordered,
	       (unsigned long long)r.corrupt, (unsigned long long)r.abandoned,
	       (unsigned long long)r.abandoned_got, t0, (double)n / t0 / 1e6, extra,
	       bad ? "  FAILED" : "");
	if (r.put_err || r.get_err)
		printf("  put side stopped with %s, get side with %s\n",
		       r.put_err ? shmring_strerror((int)r.put_err) : "-",
		       r.get_err ? shmring_strerror((int)r.get_err) : "-");
	if (r.end_bad)
		printf("  end of stream: %d failed check(s), first: %s\n", r.end_bad, r.end_what);
	fflush(stdout);
	return bad;
}

/* Streams of 1..7 messages over every kind, shape, capacity and mode: the end
 * of the stream (shutdown while consumers spin or sleep on an empty ring,
 * drain, -ENODATA) again and again. */
static int endgame(const uint32_t *kinds, int nk, int (*shapes)[2], int ns,
		   const uint64_t *caps, int ncaps, const int *modes, int nm, uint64_t streams)
{
	uint64_t failed = 0, lost = 0, dup = 0, corrupt = 0, ends = 0;
	double t0 = t_now_s();

	for (uint64_t i = 0; i < streams; i++) {
		uint64_t j = i, n = 1 + i % 7;
		uint32_t kind = kinds[j % (uint64_t)nk];
		int s = (int)((j /= (uint64_t)nk) % (uint64_t)ns);
		uint64_t cap = caps[(j /= (uint64_t)ns) % (uint64_t)ncaps];
		enum wmode wm = (enum wmode)modes[(j / (uint64_t)ncaps) % (uint64_t)nm];
		struct result r;

		if (run_config(kind, cap, shapes[s][0], shapes[s][1], wm, n, &r) && !failed++)
			printf("  first failure: %s %dp%dc cap=%llu%s, %llu messages: %llu verified, "
			       "%llu lost, %llu duplicated, %llu corrupt%s%s\n", kind_name(kind), shapes[s][0],
			       shapes[s][1], (unsigned long long)cap, wm == WAIT ? " wait" : "",
			       (unsigned long long)n, (unsigned long long)r.verified,
			       (unsigned long long)r.lost, (unsigned long long)r.dup,
			       (unsigned long long)r.corrupt, r.end_bad ? "; " : "",
			       r.end_bad ? r.end_what : "");
		lost += r.lost;
		dup += r.dup;
		corrupt += r.corrupt;
		ends += r.end_bad != 0;
	}
	printf("stress_mpmc endgame: %llu streams of 1..7 messages, %llu failed: %llu lost, "
	       "%llu duplicated, %llu corrupt, %llu bad ends  (%.2f s)\n",
	       (unsigned long long)streams, (unsigned long long)failed, (unsigned long long)lost,
	       (unsigned long long)dup, (unsigned long long)corrupt, (unsigned long long)ends,
	       t_now_s() - t0);
	fflush(stdout);
	return failed != 0;
}

/* ---- probes ---- */

enum getter { G_FRONT, G_STAGED, G_MANY };
static const char *const getter_name[] = { "front/release", "get_staged", "get_many" };

/* One get of any flavour; >= 0: messages taken (0 or 1 for front and staged) */
static int64_t get_one(shmring_t *h, enum getter how, uint64_t max)
{
	uint8_t dst[MAXB * SLOT];
	uint64_t lens[MAXB], len;
	int64_t rc;

	switch (how) {
	case G_FRONT:
		if ((rc = shmring_try_front(h, &len)) < 0)
			return rc;
		rc = shmring_release(h);
		return rc < 0 ? rc : 1;
	case G_STAGED:
		rc = shmring_try_get_staged(h);
		return rc < 0 ? rc : 1;
	default:
		return shmring_try_get_many(h, dst, lens, max);
	}
}

struct waiter {
	shmring_t *h;
	int rc;
	double done;
};

static void *wait_writer(void *arg)
{
	struct waiter *w = arg;

	w->rc = shmring_wait_writable(w->h, 2000000000LL);
	w->done = t_now_s();
	return NULL;
}

/* A producer sleeps on a full cap=1 ring; a consumer frees the slot by taking
 * a message (skip = 0) or by passing over an abandoned position (skip = 1). */
static int probe_wake(uint32_t kind, enum getter how, int skip)
{
	struct t_rings g;
	struct waiter w;
	pthread_t t;
	uint32_t seq0, seq1;
	int64_t rc, want = skip ? -EAGAIN : 1;
	double t0, deadline;
	int bad = 0, notified = -1;
	char tag[32];

	snprintf(tag, sizeof(tag), "wake%d%d", (int)how, skip);
	rings_open(&g, kind, 1, 3, tag);   /* 0: fills the ring, 1: waits, 2: gets */
	if (skip) {
		if ((rc = shmring_try_reserve(g.h[0])) < 0 || (rc = shmring_abandon(g.h[0])) < 0)
			die("probe reserve/abandon", (int)rc);
	} else if ((rc = shmring_try_put(g.h[0], "probe", 5)) != 1) {
		die("probe put", (int)rc);
	}
	/* the locked kind's abandon gives the slot back: only MPMC has a SKIP */
	if (shmring_try_put(g.h[1], "full?", 5) != -EAGAIN) {
		t_rings_close(&g);
		printf("stress_mpmc probe wake %s %s, %s: not applicable (ring not full)\n",
		       kind_name(kind), skip ? "past an abandoned slot" : "after a message",
		       getter_name[how]);
		return 0;
	}
	shmring_set_spin(g.h[1], 0);
	w = (struct waiter){ .h = g.h[1] };
	if (pthread_create(&t, NULL, wait_writer, &w))
		die("pthread_create", 0);
	deadline = t_now_s() + 2;
	if (kind == SHMRING_MPMC) {
		/* white-box: until the waiter is registered as a sleeper */
		while (!load_acquire(&g.h[0]->hdr->space_waitq.sleepers) && t_now_s() < deadline)
			usleep(100);
	}
	usleep(5000);               /* into futex_wait / sem_clockwait */
	seq0 = load_acquire(&g.h[0]->hdr->space_waitq.seq);
	t0 = t_now_s();
	rc = get_one(g.h[2], how, MAXB);
	seq1 = load_acquire(&g.h[0]->hdr->space_waitq.seq);
	pthread_join(t, NULL);
	if (kind == SHMRING_MPMC)
		notified = seq1 != seq0;
	bad = rc != want || w.rc != 0 || notified == 0;
	printf("stress_mpmc probe wake %s %s, %s: get %lld, sleeper %s after %.2f ms%s%s\n",
	       kind_name(kind), skip ? "past an abandoned slot" : "after a message",
	       getter_name[how], (long long)rc, w.rc ? shmring_strerror(w.rc) : "woke",
	       (w.done - t0) * 1e3,
	       notified < 0 ? "" : notified ? ", notified" : ", NOT NOTIFIED (lost wake-up)",
	       bad ? "  FAILED" : "");
	t_rings_close(&g);
	return bad;
}

/* One message, shutdown, then each get flavour: the message, then -ENODATA. */
static int probe_drain(uint32_t kind, enum getter how)
{
	struct t_rings g;
	uint64_t t, h;
	int64_t rc1, rc2, rc;
	int bad;
	char tag[32];

	snprintf(tag, sizeof(tag), "drain%d", (int)how);
	rings_open(&g, kind, 4, 2, tag);
	if ((rc = shmring_try_put(g.h[0], "probe", 5)) != 1)
		die("probe put", (int)rc);
	shmring_shutdown(g.h[0]);
	rc1 = get_one(g.h[1], how, 4);
	rc2 = get_one(g.h[1], how, 4);
	t = load_acquire(&g.h[0]->hdr->tail);
	h = load_acquire(&g.h[0]->hdr->head);
	bad = rc1 != 1 || rc2 != -ENODATA || t != h;
	printf("stress_mpmc probe drain %s %s: 1 message then shutdown: got %lld, then %s; "
	       "tail %llu, head %llu%s\n", kind_name(kind), getter_name[how], (long long)rc1,
	       rc2 < 0 ? shmring_strerror((int)rc2) : "more messages",
	       (unsigned long long)t, (unsigned long long)h, bad ? "  FAILED" : "");
	fflush(stdout);
	t_rings_close(&g);
	return bad;
}

static int probes(const uint32_t *kinds, int nk)
{
	int failed = 0;

	for (int k = 0; k < nk; k++) {
		for (int how = 0; how < 3; how++)
			for (int skip = 0; skip < 2; skip++)
				failed += probe_wake(kinds[k], (enum getter)how, skip);
		for (int how = 0; how < 3; how++)
			failed += probe_drain(kinds[k], (enum getter)how);
	}
	fflush(stdout);
	return failed;
}

int main(int argc, char **argv)
{
	const char *env = getenv("STRESS_MPMC_MESSAGES");
	char klist[64] = "mpmc,locked", plist[128] = "1x1,2x2,4x4,1x3,3x1";
	char clist[128] = "1,2,4,1024", mlist[64] = "spin,wait,probe", *save;
	uint64_t n = env ? strtoull(env, NULL, 0) : DEFAULT_N, nw = 0, streams = DEFAULT_R, caps[17];
	uint32_t kinds[2];
	int shapes[16][2], opt, timeout = 600, failed = 0, configs = 0;
	int nk = 0, ns = 0, ncaps = 0, spin = 0, wait = 0, probe = 0, modes[2], nm = 0;
	double t0 = t_now_s();

	while ((opt = getopt(argc, argv, "n:w:r:k:p:c:m:t:")) != -1) {
		switch (opt) {
		case 'n': n = strtoull(optarg, NULL, 0); break;
		case 'w': nw = strtoull(optarg, NULL, 0); break;
		case 'r': streams = strtoull(optarg, NULL, 0); break;
		case 'k': snprintf(klist, sizeof(klist), "%s", optarg); break;
		case 'p': snprintf(plist, sizeof(plist), "%s", optarg); break;
		case 'c': snprintf(clist, sizeof(clist), "%s", optarg); break;
		case 'm': snprintf(mlist, sizeof(mlist), "%s", optarg); break;
		case 't': timeout = atoi(optarg); break;
		default: return t_usage(argv[0], USAGE);
		}
	}
	if (!nw)
		nw = n / WAIT_DIV ? n / WAIT_DIV : 1;
	for (char *s = strtok_r(klist, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		if (nk == 2)
			return t_usage(argv[0], USAGE);
		if (!strcmp(s, "mpmc"))
			kinds[nk++] = SHMRING_MPMC;
		else if (!strcmp(s, "locked"))
			kinds[nk++] = SHMRING_LOCKED;
		else
			return t_usage(argv[0], USAGE);
	}
	for (char *s = strtok_r(plist, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		if (ns == 16 || sscanf(s, "%dx%d", &shapes[ns][0], &shapes[ns][1]) != 2 ||
		    shapes[ns][0] < 1 || shapes[ns][0] > MAXT || shapes[ns][1] < 1 || shapes[ns][1] > MAXT)
			return t_usage(argv[0], USAGE);
		ns++;
	}
	/* a 17th capacity is an error here, not ignored */
	if ((ncaps = t_u64_list(clist, caps, 17)) < 0 || ncaps > 16)
		return t_usage(argv[0], USAGE);
	for (char *s = strtok_r(mlist, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		if (!strcmp(s, "spin"))
			spin = 1;
		else if (!strcmp(s, "wait"))
			wait = 1;
		else if (!strcmp(s, "probe"))
			probe = 1;
		else
			return t_usage(argv[0], USAGE);
	}
	if (n == 0 || !nk || !ns || !ncaps || !(spin || wait || probe) || optind != argc)
		return t_usage(argv[0], USAGE);
	if (spin)
		modes[nm++] = SPIN;
	if (wait)
		modes[nm++] = WAIT;
	t_crc_init();
	t_watchdog((unsigned)timeout, "stress_mpmc: timed out (a lost wake-up or a stuck side?)\n", NULL);
	if (probe)
		failed += probes(kinds, nk);
	for (int k = 0; k < nk; k++)
		for (int m = 0; m < 2; m++) {
			if (!(m == SPIN ? spin : wait))
				continue;
			for (int s = 0; s < ns; s++)
				for (int c = 0; c < ncaps; c++, configs++)
					failed += stress(kinds[k], caps[c], shapes[s][0], shapes[s][1],
							 (enum wmode)m, m == SPIN ? n : nw);
		}
	if (nm && streams)
		failed += endgame(kinds, nk, shapes, ns, caps, ncaps, modes, nm, streams);
	printf("stress_mpmc: %d configurations (%llu messages spin, %llu wait) + %llu streams%s: "
	       "%s, %d failed (%.1f s)\n", configs, (unsigned long long)n, (unsigned long long)nw,
	       (unsigned long long)(nm ? streams : 0), probe ? " + probes" : "",
	       failed ? "FAILED" : "ok", failed, t_now_s() - t0);
	return failed != 0;
}
