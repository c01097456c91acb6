/* SPDX-License-Identifier: MIT */
/*
 * C-level tests of the shmring core; csrc/tests/run.sh runs them under
 * ASan+UBSan.  liburing style: exit 0 pass, 1 fail, 77 skip, one line per case.
 *
 * Most cases go through shmring.h only.  The white-box ones ("wrap", "hostile",
 * "stale tokens") write into the shared header or the segment file the way a
 * buggy or hostile peer could, and expect the documented errno back, never a
 * stray access.  ASan only sees heap/stack overruns: a slot length that slipped
 * through would overflow the malloc'd stage or dst buffer and be reported.
 *
 * Every ring is named test_ring.<pid>.<n> and unlinked after its case, also
 * when the case fails; run.sh fails the run if any such segment is left.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define PASS 0
#define FAIL 1
#define SKIP 77

static const char *ename(long long v)
{
	const char *s = v < 0 ? strerrorname_np((int)-v) : NULL;

	return s ? s : "";
}

#define CHECK(c) do { if (!(c)) { \
	fprintf(stderr, "    %s:%d: CHECK(%s)\n", __FILE__, __LINE__, #c); \
	return FAIL; } } while (0)
#define EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
	if (a_ != b_) { \
		fprintf(stderr, "    %s:%d: %s = %lld %s, want %lld %s\n", __FILE__, \
			__LINE__, #a, a_, ename(a_), b_, ename(b_)); \
		return FAIL; } } while (0)

/* ---- per-case bookkeeping: what to free, unlink, close, reap afterwards ---- */

static char names[8][256];
static int nnames, name_seq;
static shmring_t *handles[16];
static int nhandles;
static int fds[8], nfds;
static pid_t child;

static const char *ring_name(void)
{
	char *n = names[nnames++];

	t_seg_name(n, sizeof(names[0]), "test_ring", "%d", name_seq++);
	return n;
}

static shmring_t *keep(shmring_t *r)
{
	if (r)
		handles[nhandles++] = r;
	return r;
}

static void drop(shmring_t *r)
{
	for (int i = 0; i < nhandles; i++)
		if (handles[i] == r)
			handles[i] = handles[--nhandles];
	shmring_free(r);
}

static void cleanup(void)
{
	if (child > 0) {        /* a case failed while its child still waited */
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = 0;
	}
	while (nfds)
		close(fds[--nfds]);
	while (nhandles)
		shmring_free(handles[--nhandles]);
	while (nnames) {
		char path[300];

		snprintf(path, sizeof(path), "/shmring.%s", names[--nnames]);
		shm_unlink(path);        /* not shmring_unlink: it may be what is broken */
	}
}

static struct shmring_params params(uint64_t cap, uint64_t slot)
{
	return t_ring_params(SHMRING_SPSC, cap, slot);
}

static shmring_t *mk_p(const char *name, const struct shmring_params *p)
{
	shmring_t *r = NULL;
	int rc = shmring_create(name, p, &r);

	if (rc < 0)
		fprintf(stderr, "    create %s: %s\n", name, shmring_strerror(rc));
	return keep(rc < 0 ? NULL : r);
}

static shmring_t *mk(const char *name, uint64_t cap, uint64_t slot)
{
	struct shmring_params p = params(cap, slot);

	return mk_p(name, &p);
}

static shmring_t *at(const char *name)
{
	shmring_t *r = NULL;
	int rc = shmring_attach(name, 0, &r);

	if (rc < 0)
		fprintf(stderr, "    attach %s: %s\n", name, shmring_strerror(rc));
	return keep(rc < 0 ? NULL : r);
}

/* attach expected to fail: the errno, or 1 (and the handle freed) on success */
static int attach_rc(const char *name, int any_owner)
{
	shmring_t *r = NULL;
	int rc = shmring_attach(name, any_owner, &r);

	if (rc == 0)
		shmring_free(r);
	return rc == 0 ? 1 : rc;
}

static int seg_path(const char *name, char *buf, size_t n)
{
	return snprintf(buf, n, "/dev/shm/shmring.%s", name);
}

static int seg_exists(const char *name)
{
	char p[300];

	seg_path(name, p, sizeof(p));
	return access(p, F_OK) == 0;
}

static int seg_open(const char *name)
{
	char p[300];

	seg_path(name, p, sizeof(p));
	return open(p, O_RDWR | O_CLOEXEC);
}

/* A write into the segment file, not through any mapping: a foreign writer. */
static int seg_write(const char *name, size_t off, const void *v, size_t n)
{
	int fd = seg_open(name);
	ssize_t w = fd < 0 ? -1 : pwrite(fd, v, n, (off_t)off);

	if (fd >= 0)
		close(fd);
	return w == (ssize_t)n ? 0 : -1;
}

/* ---- payloads ---- */

static uint8_t buf[70000];

static void pattern(uint8_t *b, uint64_t len, uint64_t seed)
{
	for (uint64_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7 + 1);
}

static int pattern_ok(const uint8_t *b, uint64_t len, uint64_t seed)
{
	for (uint64_t i = 0; i < len; i++)
		if (b[i] != (uint8_t)(seed * 131 + i * 7 + 1))
			return 0;
	return 1;
}

static int put_pat(shmring_t *r, uint64_t len, uint64_t seed)
{
	pattern(buf, len, seed);
	return shmring_try_put(r, (const char *)buf, len);
}

/* 1 when the next message is len bytes of pattern seed */
static int got(shmring_t *r, uint64_t len, uint64_t seed)
{
	int64_t n = shmring_try_get_staged(r);

	if (n == (int64_t)len && pattern_ok(shmring_stage(r), len, seed))
		return 1;
	fprintf(stderr, "    get: %lld %s, want %llu bytes of pattern %llu\n", (long long)n,
		ename(n), (unsigned long long)len, (unsigned long long)seed);
	return 0;
}

static uint8_t *slot_ptr(shmring_t *r, int64_t idx)
{
	struct shmring_info in;

	shmring_info(r, &in);
	return t_slot(r, in.slots_offset, in.slot_stride, idx);
}

static struct shmring_hdr *hdr(shmring_t *r)
{
	return shmring_base(r);
}

static uint64_t umin(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* ---- lifecycle ---- */

static int t_lifecycle(void)
{
	const char *n = ring_name();
	shmring_t *a = mk(n, 4, 64), *b, *c = NULL;
	struct shmring_info ia, ib;

	CHECK(a);
	CHECK((b = at(n)));
	EQ(shmring_info(a, &ia), 0);
	EQ(shmring_info(b, &ib), 0);
	EQ(ia.kind, SHMRING_SPSC);
	EQ(ia.capacity, 4);
	EQ(ia.slot_size, 64);
	EQ(ia.slot_stride, 128);   /* 64 payload + 16 meta, rounded to a line */
	EQ(ia.slots_offset, 4096);
	EQ(ia.size_bytes, 8192);
	EQ(ia.is_array, 0);
	CHECK(!strcmp(ia.backing, "shm"));
	CHECK(!memcmp(&ia, &ib, offsetof(struct shmring_info, length)));
	CHECK(shmring_base(a) != shmring_base(b));
	/* two mappings of one segment */
	EQ(shmring_try_put(a, "hello", 5), 1);
	EQ(shmring_try_get_staged(b), 5);
	CHECK(!memcmp(shmring_stage(b), "hello", 5));
	EQ(shmring_unlink(n), 0);
	CHECK(!seg_exists(n));
	EQ(shmring_attach(n, 0, &c), -ENOENT);
	CHECK(c == NULL);
	/* unlinked but mapped: the existing handles carry on */
	EQ(shmring_try_put(a, "x", 1), 1);
	EQ(shmring_try_get_staged(b), 1);
	EQ(shmring_unlink(n), -ENOENT);
	return PASS;
}

static int t_exists_missing(void)
{
	const char *n = ring_name(), *m = ring_name();
	struct shmring_params p = params(2, 8);
	shmring_t *a = mk(n, 4, 64), *b = NULL;

	CHECK(a);
	EQ(shmring_create(n, &p, &b), -EEXIST);
	CHECK(b == NULL);
	EQ(shmring_info(a, &(struct shmring_info){0}), 0);
	EQ(shmring_try_put(a, "x", 1), 1);       /* the existing ring is untouched */
	EQ(shmring_attach(m, 0, &b), -ENOENT);
	EQ(shmring_unlink(m), -ENOENT);
	CHECK(!seg_exists(m));
	return PASS;
}

static int t_names(void)
{
	char *long_name = names[nnames++], *max_name = names[nnames++];
	const char *bad[] = { "", long_name, "a/b", "/abs", "trailing/", NULL };
	struct shmring_params p = params(2, 8);
	shmring_t *r = NULL;
	int rc;

	/* 201 and 200 characters, in the test's namespace so cleanup finds them */
	snprintf(long_name, 256, "test_ring.%d.", (int)getpid());
	memset(long_name + strlen(long_name), 'y', 201 - strlen(long_name));
	long_name[201] = 0;
	memcpy(max_name, long_name, 200);
	max_name[200] = 0;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = shmring_create(bad[i], &p, &r);
		keep(rc ? NULL : r);
		EQ(rc, -EINVAL);
		EQ(shmring_attach(bad[i], 0, &r), -EINVAL);
		EQ(shmring_unlink(bad[i]), -EINVAL);
	}
	CHECK(mk(max_name, 2, 8));
	CHECK(at(max_name));
	CHECK(seg_exists(max_name));
	EQ(shmring_unlink(max_name), 0);
	return PASS;
}

static int t_params(void)
{
	const char *n = ring_name();
	struct shmring_params p;
	struct shmring_info info;
	shmring_t *r = NULL;
	char dtype[200];
	int rc;
	static const struct { uint64_t cap, slot; int want; } geo[] = {
		{ 0, 8, -EINVAL }, { 4, 0, -EINVAL },
		{ SHMRING_MAX_CAPACITY + 1, 8, -EINVAL }, { 4, SHMRING_MAX_SLOT_SIZE + 1, -EINVAL },
		{ SHMRING_MAX_CAPACITY, 1 << 20, -E2BIG }, { UINT64_MAX, UINT64_MAX, -EINVAL },
	};

	EQ(shmring_create(n, NULL, &r), -EINVAL);
	p = params(2, 8);
	EQ(shmring_create(n, &p, NULL), -EINVAL);
	EQ(shmring_attach(n, 0, NULL), -EINVAL);
	for (unsigned i = 0; i < sizeof(geo) / sizeof(geo[0]); i++) {
		p = params(geo[i].cap, geo[i].slot);
		EQ(shmring_create(n, &p, &r), geo[i].want);
	}
	p = params(2, 8), p.kind = 0;
	EQ(shmring_create(n, &p, &r), -ENOTSUP);
	p = params(2, 8), p.kind = SHMRING_LOCKED + 1;   /* no such kind */
	EQ(shmring_create(n, &p, &r), -ENOTSUP);
	/* require: hugetlb pages, or create fails (an empty pool; EINVAL: no hugetlb in the kernel) */
	p = params(2, 8), p.hugepages = SHMRING_HUGE_REQUIRE;
	rc = shmring_create(n, &p, &r);
	CHECK(rc == 0 || rc == -ENOSPC || rc == -ENOMEM || rc == -EINVAL);
	if (rc == 0) {
		EQ(shmring_info(r, &info), 0);
		CHECK(!strcmp(info.backing, "hugetlbfs") || !strcmp(info.backing, "memfd-hugetlb"));
		shmring_free(r);
		EQ(shmring_unlink(n), 0);
		r = NULL;
	}
	p = params(2, 8), p.hugepages = 3;
	EQ(shmring_create(n, &p, &r), -EINVAL);
	p = params(2, 8), p.mode = 01600;
	EQ(shmring_create(n, &p, &r), -EINVAL);
	p = params(2, 8), p.ndim = 9, p.dtype = "<f4";
	EQ(shmring_create(n, &p, &r), -EINVAL);
	p = params(2, 8), p.ndim = 1;
	EQ(shmring_create(n, &p, &r), -EINVAL);
	memset(dtype, 'f', sizeof(dtype));
	dtype[SHMRING_DTYPE_MAX] = 0;
	p = params(2, 8), p.ndim = 1, p.dtype = dtype;
	EQ(shmring_create(n, &p, &r), -ENAMETOOLONG);
	CHECK(r == NULL);
	CHECK(!seg_exists(n));     /* no failed create leaves a segment behind */
	return PASS;
}

static int t_mode(void)
{
	const char *n = ring_name();
	struct shmring_params p = params(2, 8);
	mode_t old = umask(077);
	shmring_t *r;
	struct stat st;
	int fd;

	p.mode = 0644;
	r = mk_p(n, &p);
	umask(old);
	CHECK(r);
	CHECK((fd = seg_open(n)) >= 0);
	EQ(fstat(fd, &st), 0);
	close(fd);
	EQ(st.st_mode & 0777, 0644);   /* exactly what was asked, despite the umask */
	return PASS;
}

static int t_array(void)
{
	const char *n = ring_name();
	struct shmring_params p = params(3, 48);
	struct shmring_info in;
	shmring_t *b;

	p.ndim = 2, p.shape[0] = 3, p.shape[1] = 4, p.dtype = "<f4";
	CHECK(mk_p(n, &p));
	CHECK((b = at(n)));
	EQ(shmring_info(b, &in), 0);
	EQ(in.is_array, 1);
	EQ(in.ndim, 2);
	EQ(in.shape[0], 3);
	EQ(in.shape[1], 4);
	CHECK(!strcmp(in.dtype, "<f4"));
	return PASS;
}

static int t_owner(void)
{
	const char *n = ring_name();
	int fd, rc;

	CHECK(mk(n, 2, 8));
	CHECK((fd = seg_open(n)) >= 0);
	rc = fchown(fd, geteuid() + 4242, (gid_t)-1);
	close(fd);
	if (rc < 0)
		return SKIP;                /* not root: cannot make a foreign segment */
	EQ(attach_rc(n, 0), -EACCES);
	EQ(attach_rc(n, 1), 1);
	return PASS;
}

static int t_close(void)
{
	const char *n = ring_name();
	shmring_t *a = mk(n, 2, 8), *b;
	struct shmring_info in;
	uint64_t len;

	CHECK(a);
	CHECK((b = at(n)));
	EQ(shmring_try_put(a, "ab", 2), 1);
	EQ(shmring_try_get_staged(a), 2);        /* a holds both roles */
	EQ(shmring_try_put(b, "x", 1), -EBUSY);
	shmring_close(a);
	shmring_close(a);                        /* idempotent */
	shmring_free(NULL);
	EQ(shmring_try_put(a, "x", 1), -EBADF);
	EQ(shmring_try_put_many(a, "x", NULL, 1), -EBADF);
	EQ(shmring_try_reserve(a), -EBADF);
	EQ(shmring_commit(a, 0), -EBADF);
	EQ(shmring_abandon(a), -EBADF);
	EQ(shmring_try_get_staged(a), -EBADF);
	EQ(shmring_try_get_many(a, buf, NULL, 1), -EBADF);
	EQ(shmring_try_front(a, &len), -EBADF);
	EQ(shmring_release(a), -EBADF);
	EQ(shmring_shutdown(a), -EBADF);
	EQ(shmring_wait_readable(a, 0), -EBADF);
	EQ(shmring_wait_writable(a, 0), -EBADF);
	/* the mapping outlives close (numpy views); the roles do not */
	EQ(shmring_info(a, &in), 0);
	EQ(in.producer_pid, 0);
	EQ(in.consumer_pid, 0);
	EQ(shmring_length(a), 0);
	EQ(shmring_try_put(b, "x", 1), 1);
	EQ(shmring_try_get_staged(b), 1);
	return PASS;
}

static int t_args(void)
{
	shmring_t *r = mk(ring_name(), 2, 8);

	CHECK(r);
	EQ(shmring_try_put_many(r, buf, NULL, 0), -EINVAL);
	EQ(shmring_try_get_many(r, buf, NULL, 0), -EINVAL);
	EQ(shmring_commit(r, 1), -EINVAL);        /* nothing reserved */
	EQ(shmring_release(r), -EINVAL);          /* nothing held */
	EQ(shmring_abandon(r), 0);                /* nothing to drop: harmless */
	return PASS;
}

/* ---- data path ---- */

/* Every length 0..slot_size, the ring filled to -EAGAIN and drained unevenly,
 * so head and tail pass through every slot several times. */
static int t_fifo(long cap)
{
	const uint64_t slot = 100, total = umin(3 * (uint64_t)cap, 4000) + 2 * (slot + 1) + 3;
	shmring_t *r = mk(ring_name(), (uint64_t)cap, slot);
	uint64_t sent = 0, recv = 0;

	CHECK(r);
	EQ(shmring_try_get_staged(r), -EAGAIN);
	while (recv < total) {
		while (sent < total) {
			int rc = put_pat(r, sent % (slot + 1), sent);

			if (rc == -EAGAIN)
				break;
			EQ(rc, 1);
			sent++;
		}
		EQ(shmring_length(r), sent - recv);
		if (sent < total)
			EQ(sent - recv, cap);     /* -EAGAIN exactly when full */
		for (uint64_t k = 1 + recv % (uint64_t)cap; k && recv < sent; k--, recv++)
			CHECK(got(r, recv % (slot + 1), recv));
	}
	EQ(shmring_try_get_staged(r), -EAGAIN);
	EQ(hdr(r)->tail, total);
	return PASS;
}

static int check_many(const uint8_t *dst, const uint64_t *lens, int64_t n, uint64_t slot,
		      uint64_t first, uint64_t (*len_of)(uint64_t, uint64_t))
{
	for (int64_t i = 0; i < n; i++) {
		uint64_t s = first + (uint64_t)i, want = len_of(s, slot);

		if ((lens && lens[i] != want) || !pattern_ok(dst + (uint64_t)i * slot, want, s)) {
			fprintf(stderr, "    message %llu of a batch is wrong\n", (unsigned long long)s);
			return 0;
		}
	}
	return 1;
}

static uint64_t len_var(uint64_t s, uint64_t slot)
{
	return s % (slot + 1);
}

static uint64_t len_full(uint64_t s, uint64_t slot)
{
	(void)s;
	return slot;
}

/* n messages starting at seq first, packed back to back into buf */
static uint64_t pack(uint64_t *lens, uint64_t n, uint64_t first, uint64_t slot,
		     uint64_t (*len_of)(uint64_t, uint64_t))
{
	uint64_t off = 0;

	for (uint64_t i = 0; i < n; i++) {
		lens[i] = len_of(first + i, slot);
		pattern(buf + off, lens[i], first + i);
		off += lens[i];
	}
	return off;
}

/* Batches of 1..64 until `total` messages went through: at times more than
 * fit (put_many takes what fits), straddling the end of the ring, every other
 * get without lengths.  lens_in: give put_many each length (else NULL). */
static int batch_stream(shmring_t *r, uint64_t cap, uint64_t slot, uint64_t total,
			uint64_t *sent, uint64_t *recv, uint64_t (*len_of)(uint64_t, uint64_t),
			int lens_in)
{
	uint8_t dst[64 * 64];
	uint64_t lens[64], glens[64];
	int64_t m;

	while (*recv < total) {
		uint64_t n = umin(1 + *sent * 7 % 64, total - *sent), room = cap - (*sent - *recv);
		uint64_t max = 1 + *recv * 5 % 64, *gl = *recv % 2 ? glens : NULL;

		if (n) {
			pack(lens, n, *sent, slot, len_of);
			m = shmring_try_put_many(r, buf, lens_in ? lens : NULL, n);
			EQ(m, room ? (int64_t)umin(n, room) : -EAGAIN);
			*sent += m > 0 ? (uint64_t)m : 0;
		}
		memset(glens, 0xff, sizeof(glens));
		m = shmring_try_get_many(r, dst, gl, max);
		EQ(m, *sent > *recv ? (int64_t)umin(max, *sent - *recv) : -EAGAIN);
		CHECK(check_many(dst, gl, m, slot, *recv, len_of));
		*recv += m > 0 ? (uint64_t)m : 0;
	}
	return PASS;
}

static int t_batch(long cap_)
{
	const uint64_t cap = (uint64_t)cap_, slot = 48, total = 3 * cap + 130;
	shmring_t *r = mk(ring_name(), cap, slot);
	uint8_t dst[64 * 48];
	uint64_t lens[64], glens[64], sent = 0, recv = 0;

	CHECK(r);
	/* a batch straddling the end of the ring: slots cap-1, 0, 1, ... */
	for (uint64_t i = 0; i + 1 < cap; i++, sent++, recv++) {
		EQ(put_pat(r, len_var(sent, slot), sent), 1);
		CHECK(got(r, len_var(recv, slot), recv));
	}
	pack(lens, umin(cap, 64), sent, slot, len_var);
	EQ(shmring_try_put_many(r, buf, lens, umin(cap, 64)), umin(cap, 64));
	sent += umin(cap, 64);
	EQ(shmring_try_get_many(r, dst, glens, 64), umin(cap, 64));
	CHECK(check_many(dst, glens, (int64_t)umin(cap, 64), slot, recv, len_var));
	recv += umin(cap, 64);

	if (batch_stream(r, cap, slot, total, &sent, &recv, len_var, 1) != PASS)
		return FAIL;
	/* lens NULL: every message is slot_size bytes, both ways */
	pack(lens, umin(cap, 3), sent, slot, len_full);
	EQ(shmring_try_put_many(r, buf, NULL, umin(cap, 3)), umin(cap, 3));
	EQ(shmring_try_get_many(r, dst, NULL, 64), umin(cap, 3));
	CHECK(check_many(dst, NULL, (int64_t)umin(cap, 3), slot, sent, len_full));
	EQ(shmring_length(r), 0);
	return PASS;
}

/* Array rings: every message fills its slot, no length record.  Items of 64
 * bytes fill whole lines (stride == slot_size, "packed": a batch is copied as
 * one run, two where it wraps); smaller ones leave a gap (one copy each, of a
 * size the compiler knows for 8, 16 and 32 bytes). */
static int t_batch_array(long arg)
{
	const uint64_t cap = (uint64_t)arg / 1000, slot = (uint64_t)arg % 1000;
	const uint64_t total = 5 * cap + 70;
	struct shmring_params p = params(cap, slot);
	uint64_t sent = 0, recv = 0;
	shmring_t *r;

	p.ndim = 1, p.shape[0] = slot, p.dtype = "|u1";
	CHECK((r = mk_p(ring_name(), &p)));
	if (batch_stream(r, cap, slot, total, &sent, &recv, len_full, 0) != PASS)
		return FAIL;
	EQ(shmring_length(r), 0);
	EQ(hdr(r)->tail, total);
	return PASS;
}

static int t_msgsize(void)
{
	shmring_t *r = mk(ring_name(), 4, 32);
	uint64_t lens[3];
	int64_t idx;

	CHECK(r);
	EQ(put_pat(r, 33, 0), -EMSGSIZE);
	EQ(shmring_try_put(r, (const char *)buf, UINT64_MAX), -EMSGSIZE);
	EQ(shmring_length(r), 0);
	EQ(put_pat(r, 32, 1), 1);
	EQ(put_pat(r, 0, 2), 1);
	lens[0] = 33, lens[1] = 1;
	EQ(shmring_try_put_many(r, buf, lens, 2), -EMSGSIZE);
	EQ(shmring_length(r), 2);
	/* an oversized message ends the batch: the ones before it go in */
	lens[0] = 1, lens[1] = 33, lens[2] = 1;
	pattern(buf, 1, 3);
	EQ(shmring_try_put_many(r, buf, lens, 3), 1);
	CHECK((idx = shmring_try_reserve(r)) >= 0);
	pattern(slot_ptr(r, idx), 5, 4);
	EQ(shmring_commit(r, 33), -EMSGSIZE);
	EQ(shmring_commit(r, 5), 0);             /* the reservation stayed open */
	CHECK(got(r, 32, 1));
	CHECK(got(r, 0, 2));
	CHECK(got(r, 1, 3));
	CHECK(got(r, 5, 4));
	return PASS;
}

static int t_zerocopy(void)
{
	shmring_t *r = mk(ring_name(), 3, 64);
	uint64_t len;
	int64_t idx;

	CHECK(r);
	EQ(shmring_try_front(r, &len), -EAGAIN);
	EQ(shmring_try_reserve(r), 0);
	pattern(slot_ptr(r, 0), 20, 0);
	EQ(shmring_commit(r, 20), 0);
	/* abandon publishes nothing and the same slot comes back */
	EQ(shmring_try_reserve(r), 1);
	memset(slot_ptr(r, 1), 0xee, 64);
	EQ(shmring_abandon(r), 0);
	EQ(shmring_length(r), 1);
	EQ(shmring_try_reserve(r), 1);
	EQ(shmring_commit(r, 0), 0);
	EQ(shmring_try_front(r, &len), 0);
	EQ(len, 20);
	CHECK(pattern_ok(slot_ptr(r, 0), 20, 0));
	EQ(shmring_release(r), 0);
	EQ(shmring_try_front(r, &len), 1);
	EQ(len, 0);
	EQ(shmring_release(r), 0);
	EQ(shmring_release(r), -EINVAL);
	/* around the end: slots 2, 0, 1, then full */
	for (uint64_t i = 0; i < 3; i++) {
		EQ((idx = shmring_try_reserve(r)), (2 + i) % 3);
		pattern(slot_ptr(r, idx), 64, 10 + i);
		EQ(shmring_commit(r, 64), 0);
	}
	EQ(shmring_try_reserve(r), -EAGAIN);
	for (uint64_t i = 0; i < 3; i++) {
		EQ((idx = shmring_try_front(r, &len)), (2 + i) % 3);
		EQ(len, 64);
		CHECK(pattern_ok(slot_ptr(r, idx), 64, 10 + i));
		EQ(shmring_release(r), 0);
	}
	return PASS;
}

static int t_inprogress(void)
{
	shmring_t *r = mk(ring_name(), 4, 16);
	uint64_t len;

	CHECK(r);
	EQ(shmring_try_reserve(r), 0);
	EQ(put_pat(r, 1, 0), -EINPROGRESS);
	EQ(shmring_try_put_many(r, buf, NULL, 1), -EINPROGRESS);
	EQ(shmring_try_reserve(r), -EINPROGRESS);
	pattern(slot_ptr(r, 0), 3, 1);
	EQ(shmring_commit(r, 3), 0);
	EQ(put_pat(r, 2, 2), 1);
	EQ(shmring_try_front(r, &len), 0);
	EQ(shmring_try_get_staged(r), -EINPROGRESS);
	EQ(shmring_try_get_many(r, buf, NULL, 4), -EINPROGRESS);
	EQ(shmring_try_front(r, &len), -EINPROGRESS);
	EQ(put_pat(r, 1, 3), 1);                  /* the put side is not blocked */
	EQ(shmring_release(r), 0);
	CHECK(got(r, 2, 2));
	CHECK(got(r, 1, 3));
	return PASS;
}

static int t_shutdown(void)
{
	const char *n = ring_name();
	shmring_t *r = mk(n, 4, 16), *c;
	struct shmring_info in;
	uint64_t len;

	CHECK(r);
	CHECK((c = at(n)));
	for (uint64_t i = 0; i < 3; i++)
		EQ(put_pat(r, i + 1, i), 1);
	EQ(shmring_shutdown(c), 0);              /* either side may shut down */
	EQ(shmring_shutdown(r), 0);
	EQ(put_pat(r, 1, 9), -EPIPE);
	EQ(shmring_try_put_many(r, buf, NULL, 1), -EPIPE);
	EQ(shmring_try_reserve(r), -EPIPE);
	EQ(shmring_info(r, &in), 0);
	EQ(in.shut_down, 1);
	EQ(shmring_wait_readable(c, 0), 0);
	EQ(shmring_wait_writable(r, 0), 0);
	/* what was queued still drains, then end of stream, for good */
	CHECK(got(c, 1, 0));
	EQ(shmring_try_get_many(c, buf, NULL, 1), 1);
	CHECK(pattern_ok(buf, 2, 1));
	EQ(shmring_try_front(c, &len), 2);
	EQ(len, 3);
	EQ(shmring_release(c), 0);
	for (int i = 0; i < 2; i++) {
		EQ(shmring_try_get_staged(c), -ENODATA);
		EQ(shmring_try_get_many(c, buf, NULL, 4), -ENODATA);
		EQ(shmring_try_front(c, &len), -ENODATA);
	}
	return PASS;
}

/* The stage is slot_size bytes up to 64 KiB; above that there is none and
 * try_get_staged says -E2BIG without consuming anything. */
static int t_stage(long slot)
{
	shmring_t *r = mk(ring_name(), 2, (uint64_t)slot);
	uint64_t len, lens[1];

	CHECK(r);
	EQ(put_pat(r, (uint64_t)slot, 7), 1);
	EQ(put_pat(r, (uint64_t)slot, 8), 1);
	if (slot > 65536) {
		CHECK(shmring_stage(r) == NULL);
		EQ(shmring_try_get_staged(r), -E2BIG);
		EQ(shmring_length(r), 2);
		EQ(shmring_try_front(r, &len), 0);
		EQ(len, slot);
		CHECK(pattern_ok(slot_ptr(r, 0), len, 7));
		EQ(shmring_release(r), 0);
	} else {
		CHECK(got(r, (uint64_t)slot, 7));
	}
	EQ(shmring_try_get_many(r, buf, lens, 4), 1);
	EQ(lens[0], slot);
	CHECK(pattern_ok(buf, (uint64_t)slot, 8));
	return PASS;
}

static int t_wait(void)
{
	shmring_t *r = mk(ring_name(), 1, 8);
	int64_t t0;

	CHECK(r);
	t0 = t_now_ns();
	EQ(shmring_wait_readable(r, 2000000), -ETIMEDOUT);
	CHECK(t_now_ns() - t0 >= 2000000);
	EQ(shmring_wait_writable(r, 2000000), 0);
	EQ(put_pat(r, 8, 0), 1);
	EQ(shmring_wait_readable(r, -1), 0);
	t0 = t_now_ns();
	EQ(shmring_wait_writable(r, 2000000), -ETIMEDOUT);
	CHECK(t_now_ns() - t0 >= 2000000);
	CHECK(got(r, 8, 0));
	EQ(shmring_wait_writable(r, 0), 0);
	return PASS;
}

static int t_empty_full(void)
{
	shmring_t *r = mk(ring_name(), 2, 8);
	uint64_t len;

	CHECK(r);
	EQ(shmring_try_get_staged(r), -EAGAIN);
	EQ(shmring_try_get_many(r, buf, NULL, 2), -EAGAIN);
	EQ(shmring_try_front(r, &len), -EAGAIN);
	EQ(shmring_try_put_many(r, buf, NULL, 5), 2);
	EQ(put_pat(r, 1, 0), -EAGAIN);
	EQ(shmring_try_put_many(r, buf, NULL, 1), -EAGAIN);
	EQ(shmring_try_reserve(r), -EAGAIN);
	EQ(shmring_length(r), 2);
	return PASS;
}

static int t_info_roles(void)
{
	const char *n = ring_name();
	shmring_t *p = mk(n, 4, 8), *c;
	struct shmring_info in;

	CHECK(p);
	CHECK((c = at(n)));
	EQ(shmring_info(c, &in), 0);
	EQ(in.producer_pid, 0);
	EQ(in.consumer_pid, 0);
	EQ(in.pids[0], getpid());
	EQ(in.pids[1], 0);                       /* two handles, one process */
	EQ(put_pat(p, 1, 0), 1);
	EQ(put_pat(p, 1, 1), 1);
	CHECK(got(c, 1, 0));
	EQ(shmring_info(c, &in), 0);
	EQ(in.producer_pid, getpid());
	EQ(in.consumer_pid, getpid());
	EQ(in.length, 1);
	return PASS;
}

/* A new holder continues from the published index, not from slot 0. */
static int t_handover(void)
{
	const char *n = ring_name();
	shmring_t *p1 = mk(n, 3, 16), *p2, *c1, *c2;
	uint64_t len;

	CHECK(p1);
	CHECK((p2 = at(n)));
	CHECK((c1 = at(n)));
	CHECK((c2 = at(n)));
	EQ(put_pat(p1, 1, 0), 1);
	EQ(put_pat(p1, 2, 1), 1);
	EQ(put_pat(p2, 1, 9), -EBUSY);
	drop(p1);
	EQ(put_pat(p2, 3, 2), 1);
	EQ(put_pat(p2, 3, 3), -EAGAIN);
	CHECK(got(c1, 1, 0));
	EQ(shmring_try_front(c1, &len), 1);      /* held, then dropped unreleased */
	EQ(shmring_try_get_staged(c2), -EBUSY);
	drop(c1);
	CHECK(got(c2, 2, 1));
	CHECK(got(c2, 3, 2));
	EQ(put_pat(p2, 4, 3), 1);
	CHECK(got(c2, 4, 3));
	return PASS;
}

/* ---- white-box: free-running counters about to wrap ---- */

/* head = tail = UINT64_MAX - 3 before any role is claimed: the counters
 * wrap to 0 mid-run.  The producer hands over after the wrap only when cap
 * divides 2^64: a claim derives the slot as counter % capacity, which for
 * other capacities disagrees with the running side's cyclic index once the
 * counter has wrapped (a known limit, reached after 2^64 messages). */
static int t_wrap(long cap)
{
	const char *n = ring_name();
	shmring_t *p = mk(n, (uint64_t)cap, 16), *c, *p2;
	const uint64_t start = UINT64_MAX - 3, total = 10;
	uint64_t sent = 0, recv = 0;

	CHECK(p);
	CHECK((c = at(n)));
	CHECK((p2 = at(n)));
	hdr(p)->tail = start;
	hdr(p)->head = start;
	while (recv < total) {
		while (sent < total) {
			if (sent == 6 && p && !(cap & (cap - 1)))
				drop(p), p = NULL;   /* tail wrapped at message 4 */
			if (put_pat(p ? p : p2, 1 + sent, sent) != 1)
				break;
			sent++;
		}
		EQ(shmring_length(c), sent - recv);
		EQ(hdr(c)->tail, start + sent);
		for (uint64_t k = 1 + recv % 2; k && recv < sent; k--, recv++)
			CHECK(got(c, 1 + recv, recv));
		EQ(hdr(c)->head, start + recv);
	}
	EQ(hdr(c)->tail, 6);
	EQ(hdr(c)->head, 6);
	EQ(shmring_try_get_staged(c), -EAGAIN);
	return PASS;
}

/* ---- white-box: hostile headers ---- */

struct hostile {
	const char *what;
	size_t off, size;
	uint64_t val;
	int array, want;
};

#define FIELD(f) offsetof(struct shmring_hdr, f), sizeof(((struct shmring_hdr *)0)->f)
#define DTYPE1   offsetof(struct shmring_hdr, dtype) + 1, 1

/* The base ring: capacity 4, slot 64, stride 128, 8192 bytes. */
static const struct hostile hostile[] = {
	{ "magic=0", FIELD(magic), 0, 0, -EPROTO },
	{ "magic=garbage", FIELD(magic), 0x4141414141414141ull, 0, -EPROTO },
	{ "abi=ours+1", FIELD(abi), SHMRING_ABI + 1, 0, -EPROTONOSUPPORT },
	{ "abi=1 (before claim records)", FIELD(abi), 1, 0, -EPROTONOSUPPORT },
	{ "abi=~0", FIELD(abi), UINT32_MAX, 0, -EPROTONOSUPPORT },
	{ "abi=0 (never published)", FIELD(abi), 0, 0, -EAGAIN },
	{ "kind=0", FIELD(kind), 0, 0, -EBADMSG },
	{ "kind=99", FIELD(kind), 99, 0, -EBADMSG },
	{ "kind=4 (no such kind)", FIELD(kind), SHMRING_LOCKED + 1, 0, -EBADMSG },
	{ "flags=2", FIELD(flags), 2, 0, -EBADMSG },
	{ "flags=ARRAY on a byte ring", FIELD(flags), SHMRING_F_ARRAY, 0, -EBADMSG },
	{ "hdr_size=0", FIELD(hdr_size), 0, 0, -EBADMSG },
	{ "hdr_size=8192", FIELD(hdr_size), 8192, 0, -EBADMSG },
	{ "capacity=0", FIELD(capacity), 0, 0, -EBADMSG },
	{ "capacity=64", FIELD(capacity), 64, 0, -EBADMSG },
	{ "capacity=2^31+1", FIELD(capacity), SHMRING_MAX_CAPACITY + 1, 0, -EBADMSG },
	{ "capacity=~0", FIELD(capacity), UINT64_MAX, 0, -EBADMSG },
	{ "slot_size=0", FIELD(slot_size), 0, 0, -EBADMSG },
	{ "slot_size=1000", FIELD(slot_size), 1000, 0, -EBADMSG },
	{ "slot_size=2^40+1", FIELD(slot_size), SHMRING_MAX_SLOT_SIZE + 1, 0, -EBADMSG },
	{ "slot_size=~0", FIELD(slot_size), UINT64_MAX, 0, -EBADMSG },
	{ "slot_stride=0", FIELD(slot_stride), 0, 0, -EBADMSG },
	{ "slot_stride=64", FIELD(slot_stride), 64, 0, -EBADMSG },
	{ "slot_stride=~0", FIELD(slot_stride), UINT64_MAX, 0, -EBADMSG },
	{ "slots_offset=0", FIELD(slots_offset), 0, 0, -EBADMSG },
	{ "slots_offset=4160", FIELD(slots_offset), 4160, 0, -EBADMSG },
	{ "total_size=0", FIELD(total_size), 0, 0, -EBADMSG },
	{ "total_size=4096", FIELD(total_size), 4096, 0, -EBADMSG },
	{ "total_size=12288", FIELD(total_size), 12288, 0, -EBADMSG },
	{ "total_size=~0", FIELD(total_size), UINT64_MAX, 0, -EBADMSG },
	{ "ndim=1 on a byte ring", FIELD(ndim), 1, 0, -EBADMSG },
	{ "array ndim=0", FIELD(ndim), 0, 1, -EBADMSG },
	{ "array ndim=9", FIELD(ndim), 9, 1, -EBADMSG },
	{ "array ndim=~0", FIELD(ndim), UINT32_MAX, 1, -EBADMSG },
	{ "array dtype_len=0", FIELD(dtype_len), 0, 1, -EBADMSG },
	{ "array dtype_len=184", FIELD(dtype_len), SHMRING_DTYPE_MAX, 1, -EBADMSG },
	{ "array dtype_len=~0", FIELD(dtype_len), UINT32_MAX, 1, -EBADMSG },
	{ "array dtype with a NUL inside", DTYPE1, 0, 1, -EBADMSG },
};

static const char *mk_base(int array)
{
	const char *n = ring_name();
	struct shmring_params p = params(4, 64);

	if (array)
		p.ndim = 1, p.shape[0] = 16, p.dtype = "<f4";
	return mk_p(n, &p) ? n : NULL;
}

static int t_hostile(long i)
{
	const struct hostile *h = &hostile[i];
	const char *n = mk_base(h->array);
	uint64_t v = h->val;       /* little-endian: the low bytes are the field */

	CHECK(n);
	EQ(attach_rc(n, 0), 1);                  /* pristine: fine */
	EQ(seg_write(n, h->off, &v, h->size), 0);
	EQ(attach_rc(n, 0), h->want);
	return PASS;
}

/* The header tells the truth, the file is shorter. */
static int t_truncated(long size)
{
	const char *n = mk_base(0);
	int fd;

	CHECK(n);
	CHECK((fd = seg_open(n)) >= 0);
	EQ(ftruncate(fd, size), 0);
	close(fd);
	/* shorter than a header: looks like a creator that never sized it */
	EQ(attach_rc(n, 0), size < 4096 ? -EAGAIN : -EBADMSG);
	return PASS;
}

/* The header lies consistently about a ring bigger than the file. */
static int t_bigger_than_file(void)
{
	const char *n = mk_base(0);
	uint64_t cap = 64, total = 4096 + 64 * 128;

	CHECK(n);
	EQ(seg_write(n, offsetof(struct shmring_hdr, capacity), &cap, 8), 0);
	EQ(seg_write(n, offsetof(struct shmring_hdr, total_size), &total, 8), 0);
	EQ(attach_rc(n, 0), -EBADMSG);
	return PASS;
}

/* splitmix64 as a generator: the state steps by T_GAMMA, t_mix makes the output */
static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	*s += T_GAMMA;
	return t_mix(x);
}

/* Random mutations of the geometry and description lines (abi kept nonzero:
 * 0 would only wait).  Attach must refuse with a documented errno, or accept
 * a geometry that fits the file and then carry a message without incident. */
static int t_fuzz(long iters)
{
	const char *n = mk_base(1);
	static const uint64_t vals[] = { 0, 1, 2, 3, 4, 7, 8, 63, 64, 65, 128, 4096, 4160, 8192,
					 12288, SHMRING_MAX_CAPACITY, SHMRING_MAX_SLOT_SIZE,
					 UINT32_MAX, 1ull << 32, INT64_MAX, UINT64_MAX };
	struct shmring_hdr pristine;
	uint64_t seed = 0x5eed, accepted = 0;
	int fd;

	CHECK(n);
	CHECK((fd = seg_open(n)) >= 0);
	CHECK(pread(fd, &pristine, sizeof(pristine), 0) == sizeof(pristine));
	for (long it = 0; it < iters; it++) {
		struct shmring_hdr h = pristine;
		uint8_t *b = (uint8_t *)&h;
		shmring_t *r = NULL;
		int rc;

		for (uint64_t k = 0, m = 1 + rnd(&seed) % 3; k < m; k++) {
			uint64_t v = vals[rnd(&seed) % (sizeof(vals) / sizeof(vals[0]))];
			/* mostly the geometry line (8..60), else the description */
			size_t off = 8 + 4 * (rnd(&seed) % (rnd(&seed) % 4 ? 14 : 76));

			if (rnd(&seed) % 4 == 0)
				v = rnd(&seed);
			if (off == offsetof(struct shmring_hdr, abi))
				v |= 1;
			memcpy(b + off, &v, (off % 8 == 0 && rnd(&seed) % 2) ? 8 : 4);
		}
		if (pwrite(fd, &h, sizeof(h), 0) != sizeof(h))
			break;
		rc = shmring_attach(n, 0, &r);
		if (rc == 0) {
			struct shmring_info in;
			int full;   /* SPSC array rings: messages fill the slot, no record */
			uint64_t len;

			accepted++;
			shmring_info(r, &in);
			full = in.is_array && in.kind == SHMRING_SPSC;
			len = full ? in.slot_size : umin(in.slot_size, 64);
			if (in.slots_offset + in.capacity * in.slot_stride > in.size_bytes ||
			    in.slot_stride < in.slot_size + (full ? 0 : 16) || in.size_bytes > 8192 ||
			    put_pat(r, len, 1) != 1 || shmring_try_get_staged(r) != (int64_t)len) {
				fprintf(stderr, "    iteration %ld accepted a bad header\n", it);
				shmring_free(r);
				close(fd);
				return FAIL;
			}
			shmring_free(r);
			/* the round trip advanced the counters and roles: reset them */
			hdr(handles[0])->tail = hdr(handles[0])->head = 0;
		} else if (rc != -EPROTO && rc != -EPROTONOSUPPORT && rc != -EBADMSG &&
			   rc != -ENOTSUP) {
			fprintf(stderr, "    iteration %ld: attach gave %d %s\n", it, rc, ename(rc));
			close(fd);
			return FAIL;
		}
	}
	close(fd);
	printf("    fuzz: %ld mutated headers, %llu accepted (consistent)\n", iters,
	       (unsigned long long)accepted);
	return PASS;
}

/* ---- white-box: hostile indices and lengths while in use ---- */

static int all_gets(shmring_t *c, int want)
{
	uint64_t len;

	EQ(shmring_try_get_staged(c), want);
	EQ(shmring_try_get_many(c, buf, NULL, 8), want);
	EQ(shmring_try_front(c, &len), want);
	return PASS;
}

static int all_puts(shmring_t *p, int want)
{
	EQ(put_pat(p, 1, 0), want);
	EQ(shmring_try_put_many(p, buf, NULL, 1), want);
	EQ(shmring_try_reserve(p), want);
	return PASS;
}

/* tail = head + cap + 1 and tail = head - 1, seen by a consumer mid-stream */
static int t_bad_tail(void)
{
	const char *n = ring_name();
	shmring_t *p = mk(n, 4, 64), *c;
	struct shmring_hdr *h;
	uint64_t tail;

	CHECK(p);
	CHECK((c = at(n)));
	h = hdr(c);
	EQ(put_pat(p, 5, 0), 1);
	CHECK(got(c, 5, 0));
	tail = h->tail;
	h->tail = h->head + 4 + 1;
	if (all_gets(c, -EUCLEAN))
		return FAIL;
	h->tail = h->head - 1;
	if (all_gets(c, -EUCLEAN))
		return FAIL;
	h->tail = tail;                          /* nothing local moved: recovers */
	EQ(shmring_try_get_staged(c), -EAGAIN);
	/* backwards but still in [head, head + cap]: tails only grow */
	for (uint64_t i = 1; i <= 3; i++)
		EQ(put_pat(p, 6, i), 1);
	CHECK(got(c, 6, 1));
	h->tail = tail + 2;
	EQ(shmring_try_get_many(c, buf, NULL, 8), -EUCLEAN);
	h->tail = tail + 3;
	EQ(shmring_try_get_many(c, buf, NULL, 8), 2);
	CHECK(pattern_ok(buf, 6, 2) && pattern_ok(buf + 64, 6, 3));
	return PASS;
}

/* head > tail, seen by a producer whose cached head says full */
static int t_bad_head(void)
{
	const char *n = ring_name();
	shmring_t *p = mk(n, 4, 64), *c;
	struct shmring_hdr *h;
	uint64_t head;

	CHECK(p);
	CHECK((c = at(n)));
	h = hdr(p);
	EQ(shmring_try_get_staged(c), -EAGAIN);  /* c claims the consumer role */
	for (uint64_t i = 0; i < 4; i++)
		EQ(put_pat(p, 8, i), 1);
	head = h->head;
	h->head = h->tail + 1;
	if (all_puts(p, -EUCLEAN))
		return FAIL;
	h->head = h->tail + (1ull << 63);
	if (all_puts(p, -EUCLEAN))
		return FAIL;
	h->head = head;
	EQ(put_pat(p, 8, 4), -EAGAIN);           /* honestly full again */
	CHECK(got(c, 8, 0));
	CHECK(got(c, 8, 1));
	/* p sees head 2, puts one; then head goes back to 1, which would
	 * still look like a possible ring (4 queued): heads only grow */
	EQ(put_pat(p, 8, 4), 1);
	CHECK(got(c, 8, 2));
	CHECK(got(c, 8, 3));
	h->head = head + 1;
	EQ(shmring_try_put_many(p, buf, NULL, 2), -EUCLEAN);
	h->head = head + 4;
	EQ(shmring_try_put_many(p, buf, NULL, 2), 2);
	return PASS;
}

/* A handle claiming a role checks the indices it inherits. */
static int t_bad_claim(void)
{
	const char *n = ring_name();
	shmring_t *a = mk(n, 4, 64), *b;
	struct shmring_hdr *h;

	CHECK(a);
	CHECK((b = at(n)));
	h = hdr(a);
	h->tail = 100;                           /* 5 queued in a ring of 4 */
	h->head = 95;
	if (all_puts(b, -EUCLEAN) || all_gets(b, -EUCLEAN))
		return FAIL;
	h->tail = 95;
	h->head = 96;
	if (all_puts(b, -EUCLEAN) || all_gets(b, -EUCLEAN))
		return FAIL;
	h->tail = 100;                           /* full, consistent: fine */
	h->head = 96;
	for (uint64_t i = 0; i < 4; i++)
		memset(slot_ptr(a, (int64_t)i), 0, 128);
	EQ(put_pat(b, 1, 0), -EAGAIN);
	EQ(shmring_try_get_staged(b), 0);
	EQ(shmring_length(a), 3);
	return PASS;
}

static uint64_t *meta_len(shmring_t *r, int64_t idx)
{
	return &slot_meta(r, slot_ptr(r, idx))->len;
}

static int t_bad_len(void)
{
	const char *n = ring_name();
	shmring_t *p = mk(n, 4, 60), *c;
	const uint64_t bad[] = { 61, 64, 4096, UINT64_MAX };

	CHECK(p);
	CHECK((c = at(n)));
	EQ(put_pat(p, 60, 0), 1);
	EQ(put_pat(p, 60, 1), 1);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		*meta_len(c, 0) = bad[i];
		if (all_gets(c, -EUCLEAN))
			return FAIL;
		EQ(shmring_length(c), 2);
	}
	*meta_len(c, 0) = 60;
	*meta_len(c, 1) = 61;
	EQ(shmring_try_get_many(c, buf, NULL, 8), 1);   /* stops before the bad one */
	CHECK(pattern_ok(buf, 60, 0));
	if (all_gets(c, -EUCLEAN))
		return FAIL;
	*meta_len(c, 1) = 60;
	CHECK(got(c, 60, 1));
	return PASS;
}

/* ---- roles across processes ---- */

static int t_busy_same_process(void)
{
	const char *n = ring_name();
	shmring_t *a = mk(n, 4, 8), *b;

	CHECK(a);
	CHECK((b = at(n)));
	EQ(put_pat(a, 1, 0), 1);
	if (all_puts(b, -EBUSY))
		return FAIL;
	CHECK(got(a, 1, 0));
	if (all_gets(b, -EBUSY))
		return FAIL;
	drop(a);
	EQ(put_pat(b, 2, 1), 1);
	CHECK(got(b, 2, 1));
	return PASS;
}

static pid_t spawn(void)
{
	fflush(NULL);
	return child = fork();
}

static int reap(void)
{
	pid_t pid = child;

	child = 0;
	return t_reap(pid);
}

static int pipe_kept(int p[2])
{
	if (pipe(p) < 0)
		return -1;
	fds[nfds++] = p[0];
	fds[nfds++] = p[1];
	return 0;
}

/* The child inherits the parent's handle but none of its roles. */
static int t_fork_live_parent(void)
{
	const char *n = ring_name();
	shmring_t *a = mk(n, 4, 8);
	pid_t pid;

	CHECK(a);
	EQ(put_pat(a, 1, 0), 1);
	CHECK(got(a, 1, 0));                     /* the parent holds both roles */
	CHECK((pid = spawn()) >= 0);
	if (pid == 0) {
		shmring_t *b = NULL;
		int bad = all_puts(a, -EBUSY) | all_gets(a, -EBUSY);

		if (shmring_attach(n, 0, &b) < 0)
			_exit(3);
		bad |= all_puts(b, -EBUSY) | all_gets(b, -EBUSY);
		_exit(bad ? 1 : 0);
	}
	EQ(reap(), 0);
	EQ(put_pat(a, 2, 1), 1);                 /* still the parent's */
	CHECK(got(a, 2, 1));
	return PASS;
}

/* A child takes the producer role and dies; the parent can take it then
 * (zombie: arg 1, the child exited but is not reaped yet; reaped: arg 0). */
static int t_fork_dead_holder(long zombie)
{
	const char *n = ring_name();
	shmring_t *a = mk(n, 4, 8);
	struct shmring_info in;
	int go[2], ready[2];
	siginfo_t si;
	pid_t pid;
	char ch;

	CHECK(a);
	CHECK(pipe_kept(go) == 0);
	CHECK(pipe_kept(ready) == 0);
	CHECK((pid = spawn()) >= 0);
	if (pid == 0) {
		int rc = put_pat(a, 3, 0);

		ch = (char)rc;
		if (write(ready[1], &ch, 1) != 1 || read(go[0], &ch, 1) != 1)
			_exit(2);
		_exit(rc == 1 ? 0 : 1);          /* no close: the role stays recorded */
	}
	CHECK(read(ready[0], &ch, 1) == 1);
	EQ(ch, 1);
	EQ(put_pat(a, 1, 9), -EBUSY);
	EQ(shmring_info(a, &in), 0);
	EQ(in.producer_pid, pid);
	CHECK(write(go[1], "x", 1) == 1);
	if (zombie) {
		CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0);
		EQ(put_pat(a, 4, 1), 1);
		EQ(reap(), 0);
	} else {
		EQ(reap(), 0);
		EQ(put_pat(a, 4, 1), 1);
	}
	EQ(shmring_info(a, &in), 0);
	EQ(in.producer_pid, getpid());
	CHECK(got(a, 3, 0));                     /* the child's message first */
	CHECK(got(a, 4, 1));
	return PASS;
}

/* A child holds the consumer role of one ring and the producer role of
 * another, then dies: waits that depend on it stop with -EOWNERDEAD, unless
 * there is still something to do. */
static int t_wait_dead_peer(void)
{
	const char *na = ring_name(), *nb = ring_name();
	shmring_t *a = mk(na, 1, 8), *b = mk(nb, 1, 8);
	int64_t t0;
	pid_t pid;

	CHECK(a && b);
	CHECK((pid = spawn()) >= 0);
	if (pid == 0)
		_exit(shmring_try_get_staged(a) == -EAGAIN && put_pat(b, 2, 0) == 1 ? 0 : 1);
	EQ(reap(), 0);
	t0 = t_now_ns();
	EQ(put_pat(a, 1, 1), 1);
	EQ(shmring_wait_writable(a, 2000000000), -EOWNERDEAD);
	EQ(shmring_wait_readable(b, 2000000000), 0);   /* data first */
	CHECK(got(b, 2, 0));
	EQ(shmring_wait_readable(b, 2000000000), -EOWNERDEAD);
	CHECK(t_now_ns() - t0 < 1000000000);
	return PASS;
}

/* Tokens of processes that are gone or were replaced (pid reuse). */
static int t_stale_tokens(void)
{
	const char *n = ring_name();
	shmring_t *a = mk(n, 4, 8), *b;
	struct shmring_hdr *h;

	CHECK(a);
	CHECK((b = at(n)));
	h = hdr(a);
	/* pid 1 lives, but started at another time: a reused pid */
	h->producer_role.token = 1ull << 32 | 0xdeadbeef;
	/* this very process, wrong start time: an earlier process with our pid */
	h->consumer_role.token = (uint64_t)getpid() << 32 | 0xdeadbeef;
	EQ(put_pat(b, 1, 0), 1);
	CHECK(got(b, 1, 0));
	drop(b);
	h->producer_role.token = (uint64_t)0x3ffffff0 << 32;   /* above pid_max */
	EQ(put_pat(a, 2, 1), 1);
	CHECK(got(a, 2, 1));
	return PASS;
}

/* ---- MPMC: a claimant that dies (mpmc.c: claim records, give_up_dead) ---- */

static shmring_t *mk_mpmc(const char *name, uint64_t cap)
{
	struct shmring_params p = t_ring_params(SHMRING_MPMC, cap, 8);

	return mk_p(name, &p);
}

static uint64_t lost(shmring_t *r)
{
	struct shmring_info i;

	shmring_info(r, &i);
	return i.lost;
}

/* A child attaches, claims one position (a producer's reserve, or a
 * consumer's front) and exits without finishing it: a dead claimant, reaped. */
static int die_claiming(const char *n, int consumer)
{
	pid_t pid;
	uint64_t len;

	if ((pid = spawn()) < 0)
		return -1;
	if (pid == 0) {
		shmring_t *b = NULL;

		_exit(shmring_attach(n, 0, &b) == 0 &&
		      (consumer ? shmring_try_front(b, &len) : shmring_try_reserve(b)) >= 0 ? 0 : 1);
	}
	return reap();
}

/* A producer dies between claim and publish: survivors give the position up
 * (counted lost) and the stream goes on, at capacity 1 (the writer must do
 * it) and above (the reader does). */
static int t_mpmc_dead_producer(long cap)
{
	const char *n = ring_name();
	shmring_t *a = mk_mpmc(n, (uint64_t)cap);
	int64_t t0;

	CHECK(a);
	EQ(put_pat(a, 8, 1), 1);
	CHECK(got(a, 8, 1));
	EQ(die_claiming(n, 0), 0);
	EQ(shmring_try_get_staged(a), -EAGAIN);       /* the dead claim is in the way */
	t0 = t_now_ns();
	if (cap == 1) {
		EQ(put_pat(a, 8, 2), -EAGAIN);
		EQ(shmring_wait_writable(a, 2000000000), 0);
		EQ(put_pat(a, 8, 2), 1);
	} else {
		EQ(put_pat(a, 8, 2), 1);
		EQ(shmring_wait_readable(a, 2000000000), 0);
	}
	CHECK(t_now_ns() - t0 < 1000000000);
	CHECK(got(a, 8, 2));
	EQ(lost(a), 1);
	EQ(put_pat(a, 8, 3), 1);                       /* and it goes on */
	CHECK(got(a, 8, 3));
	return PASS;
}

/* Shut down with a dead producer's claim in the way: the drain ends (readers
 * no longer sleep once shut down, so the try path gives the claim up). */
static int t_mpmc_dead_producer_shutdown(void)
{
	const char *n = ring_name();
	shmring_t *a = mk_mpmc(n, 4);

	CHECK(a);
	EQ(put_pat(a, 8, 1), 1);
	EQ(die_claiming(n, 0), 0);
	EQ(shmring_shutdown(a), 0);
	CHECK(got(a, 8, 1));
	EQ(shmring_try_get_staged(a), -ENODATA);
	EQ(lost(a), 1);
	return PASS;
}

/* A consumer dies holding a message (recv): a waiting producer gives it up. */
static int t_mpmc_dead_consumer(void)
{
	const char *n = ring_name();
	shmring_t *a = mk_mpmc(n, 2);

	CHECK(a);
	EQ(put_pat(a, 8, 1), 1);
	EQ(put_pat(a, 8, 2), 1);
	EQ(die_claiming(n, 1), 0);
	EQ(put_pat(a, 8, 3), -EAGAIN);                 /* message 1's slot is held */
	EQ(shmring_wait_writable(a, 2000000000), 0);
	EQ(put_pat(a, 8, 3), 1);
	EQ(lost(a), 1);
	CHECK(got(a, 8, 2));
	CHECK(got(a, 8, 3));
	return PASS;
}

/* A live claimant that is merely slow is never given up. */
static int t_mpmc_live_claim_kept(void)
{
	const char *n = ring_name();
	shmring_t *a = mk_mpmc(n, 4);
	int go[2], ready[2];
	char c = 0;
	pid_t pid;

	CHECK(a);
	CHECK(pipe(go) == 0 && pipe(ready) == 0);
	fds[nfds++] = go[0], fds[nfds++] = go[1], fds[nfds++] = ready[0], fds[nfds++] = ready[1];
	CHECK((pid = spawn()) >= 0);
	if (pid == 0) {
		shmring_t *b = NULL;
		int64_t idx;

		if (shmring_attach(n, 0, &b) < 0 || (idx = shmring_try_reserve(b)) < 0)
			_exit(1);
		pattern(slot_ptr(b, idx), 8, 7);
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(shmring_commit(b, 8) == 0 ? 0 : 3);
	}
	CHECK(read(ready[0], &c, 1) == 1);
	EQ(shmring_wait_readable(a, 300000000), -ETIMEDOUT);   /* 6 peer checks */
	EQ(lost(a), 0);
	CHECK(write(go[1], &c, 1) == 1);
	EQ(reap(), 0);
	EQ(shmring_wait_readable(a, 2000000000), 0);
	CHECK(got(a, 8, 7));
	return PASS;
}

/* A handle that found the attach table full makes claims nobody can attribute:
 * survivors then give up nothing (and a wait on a dead claim times out). */
static int t_mpmc_untracked(void)
{
	const char *n = ring_name();
	shmring_t *a = mk_mpmc(n, 4), *extra[SHMRING_MAX_ATTACH];
	unsigned k = 0;
	pid_t pid;
	int ok = 1;

	CHECK(a);
	while (k < SHMRING_MAX_ATTACH && shmring_attach(n, 0, &extra[k]) == 0)
		k++;                      /* the creator has one entry: the last one finds it full */
	ok = k == SHMRING_MAX_ATTACH && load_relaxed(&hdr(a)->untracked) == 1;
	CHECK((pid = spawn()) >= 0);
	if (pid == 0)
		_exit(shmring_try_reserve(extra[k - 1]) >= 0 ? 0 : 1);   /* an untracked claim, then death */
	EQ(reap(), 0);
	EQ(put_pat(a, 8, 1), 1);
	EQ(shmring_wait_readable(a, 200000000), -ETIMEDOUT);
	EQ(lost(a), 0);
	while (k)
		shmring_free(extra[--k]);
	CHECK(ok);
	return PASS;
}

/* ---- runner ---- */

struct tcase {
	char name[64];
	int (*fn)(long);
	int (*fn0)(void);
	long arg;
};

static struct tcase cases[128];
static int ncases;

static void __attribute__((format(printf, 3, 4))) add(int (*fn)(long), long arg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cases[ncases].name, sizeof(cases[0].name), fmt, ap);
	va_end(ap);
	cases[ncases].fn = fn;
	cases[ncases++].arg = arg;
}

static void add0(int (*fn0)(void), const char *name)
{
	snprintf(cases[ncases].name, sizeof(cases[0].name), "%s", name);
	cases[ncases++].fn0 = fn0;
}

static int leftovers(void)
{
	char prefix[64];
	struct dirent *e;
	DIR *d = opendir("/dev/shm");
	int n = 0;

	snprintf(prefix, sizeof(prefix), "shmring.test_ring.%d.", (int)getpid());
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix)))
			fprintf(stderr, "    left behind: /dev/shm/%s\n", e->d_name), n++;
	if (d)
		closedir(d);
	return n;
}

/* usage: test_ring [substring of case names] */
int main(int argc, char **argv)
{
	static const long caps[] = { 1, 2, 3, 7, 1024 };
	int ran = 0, failed = 0, skipped = 0;

	if (access("/dev/shm", W_OK) != 0) {
		printf("test_ring: /dev/shm not writable, skipped\n");
		return SKIP;
	}
	add0(t_lifecycle, "create/attach/unlink/info");
	add0(t_exists_missing, "-EEXIST, -ENOENT");
	add0(t_names, "names: empty, 201 chars, '/' -> -EINVAL; 200 ok");
	add0(t_params, "create params validated");
	add0(t_mode, "create mode despite umask");
	add0(t_array, "array ring description");
	add0(t_owner, "foreign owner -> -EACCES unless any_owner");
	add0(t_close, "close -> -EBADF everywhere, roles released");
	add0(t_args, "argument checks");
	for (unsigned i = 0; i < 5; i++)
		add(t_fifo, caps[i], "fifo cap=%ld, lengths 0..slot_size", caps[i]);
	for (unsigned i = 0; i < 5; i++)
		add(t_batch, caps[i], "put_many/get_many cap=%ld, wrapping", caps[i]);
	for (unsigned i = 0; i < 5; i++) {
		add(t_batch_array, caps[i] * 1000 + 64,
		    "array batches cap=%ld, 64 B items (copied as runs)", caps[i]);
		add(t_batch_array, caps[i] * 1000 + 48,
		    "array batches cap=%ld, 48 B items (one by one)", caps[i]);
		add(t_batch_array, caps[i] * 1000 + 8,
		    "array batches cap=%ld, 8 B items (one by one, fixed size)", caps[i]);
	}
	add(t_batch_array, 7 * 1000 + 16, "array batches cap=7, 16 B items (one by one, fixed size)");
	add(t_batch_array, 7 * 1000 + 32, "array batches cap=7, 32 B items (one by one, fixed size)");
	add0(t_msgsize, "-EMSGSIZE: put, put_many, commit");
	add0(t_zerocopy, "reserve/commit/abandon, front/release");
	add0(t_inprogress, "-EINPROGRESS: open reservation, held front");
	add0(t_shutdown, "shutdown: -EPIPE, drain, -ENODATA");
	add(t_stage, 65536, "stage at slot_size 64 KiB");
	add(t_stage, 65537, "no stage above 64 KiB: -E2BIG, front works");
	add0(t_wait, "wait_readable/wait_writable");
	add0(t_empty_full, "-EAGAIN empty and full");
	add0(t_info_roles, "info: roles, pids, length");
	add0(t_handover, "role handover continues the stream");
	add(t_wrap, 4, "wb: counters wrap past UINT64_MAX, cap=4, handover");
	add(t_wrap, 1, "wb: counters wrap past UINT64_MAX, cap=1, handover");
	add(t_wrap, 3, "wb: counters wrap past UINT64_MAX, cap=3");
	for (unsigned i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		add(t_hostile, (long)i, "hostile %s -> %s", hostile[i].what,
		    hostile[i].want == 1 ? "ok" : ename(hostile[i].want));
	add(t_truncated, 4096 + 4096 - 1, "hostile file truncated below total_size");
	add(t_truncated, 4096, "hostile file truncated to the header");
	add(t_truncated, 100, "hostile file truncated below a header");
	add0(t_bigger_than_file, "hostile header: consistent, bigger than the file");
	add(t_fuzz, 3000, "hostile header fuzz");
	add0(t_bad_tail, "hostile tail > head+cap, < head, backwards -> -EUCLEAN");
	add0(t_bad_head, "hostile head > tail, backwards -> -EUCLEAN");
	add0(t_bad_claim, "hostile indices at role claim -> -EUCLEAN");
	add0(t_bad_len, "hostile slot len > slot_size -> -EUCLEAN");
	add0(t_busy_same_process, "roles: second handle -> -EBUSY");
	add0(t_fork_live_parent, "roles: forked child -> -EBUSY");
	add(t_fork_dead_holder, 0, "roles: holder exited and reaped -> claimable");
	add(t_fork_dead_holder, 1, "roles: holder exited, zombie -> claimable");
	add0(t_stale_tokens, "roles: stale and reused-pid tokens");
	add0(t_wait_dead_peer, "wait on a dead peer -> -EOWNERDEAD");
	add(t_mpmc_dead_producer, 1, "mpmc: dead producer's claim given up, cap=1");
	add(t_mpmc_dead_producer, 4, "mpmc: dead producer's claim given up, cap=4");
	add0(t_mpmc_dead_consumer, "mpmc: dead consumer's held slot given up");
	add0(t_mpmc_dead_producer_shutdown, "mpmc: shut down past a dead claim -> -ENODATA");
	add0(t_mpmc_live_claim_kept, "mpmc: a live claim is never given up");
	add0(t_mpmc_untracked, "mpmc: attach table full -> no recovery, timeout");

	for (int i = 0; i < ncases; i++) {
		struct tcase *t = &cases[i];
		int rc;

		if (argc > 1 && !strstr(t->name, argv[1]))
			continue;
		ran++;
		rc = t->fn0 ? t->fn0() : t->fn(t->arg);
		cleanup();
		printf("%s %s\n", rc == PASS ? "  ok  " : rc == SKIP ? "  skip" : "  FAIL", t->name);
		fflush(stdout);
		failed += rc != PASS && rc != SKIP;
		skipped += rc == SKIP;
	}
	if (leftovers() != 0) {
		printf("  FAIL segments left in /dev/shm\n");
		failed++;
	}
	if (skipped)
		printf("test_ring: %d cases, %d failed, %d skipped\n", ran, failed, skipped);
	else
		printf("test_ring: %d cases, %d failed\n", ran, failed);
	return failed ? FAIL : ran && skipped == ran ? SKIP : PASS;
}
