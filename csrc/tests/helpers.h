/* SPDX-License-Identifier: MIT */
/*
 * What the C tests share (liburing's test/helpers.h idea): each helper here
 * was written out again in two or more of test_ring.c, stress_spsc.c,
 * stress_wait.c and stress_mpmc.c.  All static, so every test program
 * (the csrc sources plus one test file, see run.sh) has its own copy; include it
 * after the system headers, with _GNU_SOURCE defined first.
 */
#ifndef SHMRING_TESTS_HELPERS_H
#define SHMRING_TESTS_HELPERS_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

/* ---- time ---- */

/* CLOCK_MONOTONIC in ns: one clock for every process, for latencies and deadlines */
static inline int64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* CLOCK_MONOTONIC in seconds, for the "(%.2f s)" of a report line */
static inline double t_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- reproducible pseudo-random bits, crc32 ---- */

/* splitmix64's increment (2^64 / the golden ratio), also for rnd() in test_ring.c */
#define T_GAMMA 0x9e3779b97f4a7c15ull

/* splitmix64's output: bits a counter fixes, so a checker can recompute what was sent */
static inline uint64_t t_mix(uint64_t x)
{
	x += T_GAMMA;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* n payload bytes that x fixes (an LCG step per 8 bytes): any change shows in the crc */
static inline void t_fill(uint8_t *p, uint64_t n, uint64_t x)
{
	for (uint64_t i = 0; i < n; i += 8, x = x * 0x5851f42d4c957f2dull + 1)
		memcpy(p + i, &x, n - i < 8 ? n - i : 8);
}

/* crc32 (zlib's), slice-by-8: verification must not be what limits a run */
static uint32_t t_crc_tab[8][256];

/* fill t_crc_tab once, before any thread runs: the threads only read it */
static inline void t_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		t_crc_tab[0][i] = c;
	}
	for (int k = 1; k < 8; k++)
		for (int i = 0; i < 256; i++)
			t_crc_tab[k][i] = t_crc_tab[0][t_crc_tab[k - 1][i] & 0xff] ^
					  t_crc_tab[k - 1][i] >> 8;
}

/* the running (not inverted) crc c over n more bytes: one crc over several pieces */
static inline uint32_t t_crc_update(uint32_t c, const uint8_t *p, uint64_t n)
{
	uint32_t (*t)[256] = t_crc_tab;   /* short lines below */
	uint32_t lo, hi;

	for (; n >= 8; n -= 8, p += 8) {
		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
		lo ^= c;
		c = t[7][lo & 0xff] ^ t[6][lo >> 8 & 0xff] ^ t[5][lo >> 16 & 0xff] ^
		    t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][hi >> 8 & 0xff] ^
		    t[1][hi >> 16 & 0xff] ^ t[0][hi >> 24];
	}
	while (n--)
		c = t[0][(c ^ *p++) & 0xff] ^ c >> 8;
	return c;
}

/* crc32 of n bytes (after t_crc_init): what a message carries to show it is intact */
static inline uint32_t t_crc32(const uint8_t *p, uint64_t n)
{
	return ~t_crc_update(~0u, p, n);
}

/* ---- one stream of seq messages (stress_spsc, stress_wait) ---- */

/* A message is seq (8 bytes), crc32 of the payload (4), payload. */
#define T_HDR 12

/* one stream of n messages of up to slot bytes, and what its consumer found */
struct t_stream {
	uint64_t n, slot;
	uint64_t verified, lost, dup, reordered, corrupt;
};

/* the length seq fixes, T_HDR..slot: every length goes through the ring */
static inline uint64_t t_msg_len(uint64_t seq, uint64_t slot)
{
	return T_HDR + t_mix(seq) % (slot - T_HDR + 1);
}

/* message seq into m (slot bytes of room), returns its length: what a producer sends */
static inline uint64_t t_make_msg(uint8_t *m, uint64_t seq, uint64_t slot)
{
	uint64_t len = t_msg_len(seq, slot);
	uint32_t crc;

	memcpy(m, &seq, 8);
	t_fill(m + T_HDR, len - T_HDR, t_mix(~seq));
	crc = t_crc32(m + T_HDR, len - T_HDR);
	memcpy(m + 8, &crc, 4);
	return len;
}

/* count one received message: corrupt (bad length or crc), dup, reordered or verified */
static inline void t_check_msg(struct t_stream *s, uint8_t *seen, uint64_t *next,
			       const uint8_t *m, uint64_t len)
{
	uint64_t seq;
	uint32_t crc;

	if (len < T_HDR) {
		s->corrupt++;
		return;
	}
	memcpy(&seq, m, 8);
	memcpy(&crc, m + 8, 4);
	if (seq >= s->n || len != t_msg_len(seq, s->slot) ||
	    crc != t_crc32(m + T_HDR, len - T_HDR)) {
		s->corrupt++;
		return;
	}
	if (seen[seq / 8] & 1 << seq % 8) {   /* seen[]: a bit per seq delivered */
		s->dup++;
		return;
	}
	seen[seq / 8] |= (uint8_t)(1 << seq % 8);
	if (seq == *next)
		s->verified++;
	else
		s->reordered++;
	*next = seq + 1;
}

/* at the end of the stream: every seq that seen[] lacks was lost */
static inline void t_count_lost(struct t_stream *s, const uint8_t *seen)
{
	for (uint64_t q = 0; q < s->n; q++)
		s->lost += !(seen[q / 8] & 1 << q % 8);
}

/* the stream's verdict: every message arrived exactly once, in order, intact */
static inline int t_stream_ok(const struct t_stream *s)
{
	return s->verified == s->n && !s->lost && !s->dup && !s->reordered && !s->corrupt;
}

/* ---- rings ---- */

/* the parameters every test ring is made with: no huge pages, mode 0600 */
static inline struct shmring_params t_ring_params(uint32_t kind, uint64_t cap, uint64_t slot)
{
	return (struct shmring_params){ .kind = kind, .hugepages = SHMRING_HUGE_OFF,
					.capacity = cap, .slot_size = slot, .mode = 0600 };
}

/* "<prefix>.<pid>.<fmt...>": unique per run, and run.sh finds by pid what a run left behind */
static inline void __attribute__((format(printf, 4, 5)))
t_seg_name(char *buf, size_t size, const char *prefix, const char *fmt, ...)
{
	int k = snprintf(buf, size, "%s.%d.", prefix, (int)getpid());
	va_list ap;

	if (k < 0 || (size_t)k >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + k, size - (size_t)k, fmt, ap);
	va_end(ap);
}

/* slot idx as a zero-copy user finds it: the mapping plus shmring_info's geometry */
static inline uint8_t *t_slot(shmring_t *h, uint64_t slots_off, uint64_t stride, int64_t idx)
{
	return (uint8_t *)shmring_base(h) + slots_off + (uint64_t)idx * stride;
}

/* White-box: h uses base's mapping, so that TSan sees one address range; returns h's own */
static inline struct shmring_hdr *t_alias(shmring_t *h, const shmring_t *base)
{
	struct shmring_hdr *own = h->hdr;

	h->hdr = base->hdr;
	h->slots = base->slots;
	return own;
}

/* h's own mapping back (own from t_alias) before shmring_free unmaps it */
static inline void t_unalias(shmring_t *h, struct shmring_hdr *own)
{
	h->hdr = own;
	h->slots = (uint8_t *)own + SHMRING_SLOTS_OFF;
}

#define T_MAXH 16

/* n handles on one fresh ring, h[0] its creator: what a threaded stress runs over */
struct t_rings {
	char name[96];
	int n;
	shmring_t *h[T_MAXH];
	struct shmring_hdr *own[T_MAXH];   /* non-NULL: h[i] is aliased (t_alias) */
	uint64_t stride, slots_off;
};

/* create, attach n - 1, unlink (none left in /dev/shm), alias: t_alias h[1..]; 0 or -errno */
static inline int t_rings_open(struct t_rings *g, const char *name,
			       const struct shmring_params *p, int n, int alias)
{
	struct shmring_info in;
	int rc;

	memset(g, 0, sizeof(*g));
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->n = n;
	if ((rc = shmring_create(g->name, p, &g->h[0])) < 0)
		return rc;
	for (int i = 1; i < n; i++) {
		if ((rc = shmring_attach(g->name, 0, &g->h[i])) < 0) {
			for (int j = 0; j < i; j++)
				shmring_free(g->h[j]);
			shmring_unlink(g->name);
			return rc;
		}
	}
	shmring_unlink(g->name);   /* all mapped: nothing can be left behind now */
	shmring_info(g->h[0], &in);
	g->stride = in.slot_stride;
	g->slots_off = in.slots_offset;
	for (int i = 1; alias && i < n; i++)
		g->own[i] = t_alias(g->h[i], g->h[0]);
	return 0;
}

/* undo t_rings_open: own mappings back (t_unalias), every handle freed, h[0] last */
static inline void t_rings_close(struct t_rings *g)
{
	for (int i = g->n - 1; i >= 0; i--) {
		if (g->own[i])
			t_unalias(g->h[i], g->own[i]);
		shmring_free(g->h[i]);
	}
}

/* ---- processes, the watchdog, options ---- */

/* wait for child pid: its exit code, 128 + the signal that killed it, or -1 */
static inline int t_reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) != pid)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *t_alarm_msg;
static size_t t_alarm_len;
static void (*t_alarm_cleanup)(void);

/* t_watchdog's SIGALRM handler: async-signal-safe calls only */
static inline void t_on_alarm(int sig)
{
	(void)sig;
	if (t_alarm_cleanup)
		t_alarm_cleanup();
	if (write(2, t_alarm_msg, t_alarm_len) < 0)
		_exit(2);
	_exit(2);
}

/* a run hung past secs (a lost wake-up?) runs cleanup (or NULL), prints msg and exits 2 */
static inline void t_watchdog(unsigned secs, const char *msg, void (*cleanup)(void))
{
	t_alarm_msg = msg;
	t_alarm_len = strlen(msg);
	t_alarm_cleanup = cleanup;
	signal(SIGALRM, t_on_alarm);
	alarm(secs);
}

/* "usage: <prog> <opts>" on stderr; returns main's exit code for bad options */
static inline int t_usage(const char *prog, const char *opts)
{
	fprintf(stderr, "usage: %s %s\n", prog, opts);
	return 1;
}

/* an option's "1,2,1024" into v: how many (max at most, the rest ignored), -1 at a 0 */
static inline int t_u64_list(char *list, uint64_t *v, int max)
{
	char *save;
	int n = 0;

	for (char *s = strtok_r(list, ",", &save); s && n < max; s = strtok_r(NULL, ",", &save))
		if ((v[n++] = strtoull(s, NULL, 0)) == 0)
			return -1;
	return n;
}

/* index of name in names[0..n), or -1: an option's word to its enum */
static inline int t_lookup(const char *name, const char *const *names, int n)
{
	int i = 0;

	while (i < n && strcmp(name, names[i]))
		i++;
	return i < n ? i : -1;
}

#endif /* SHMRING_TESTS_HELPERS_H */
