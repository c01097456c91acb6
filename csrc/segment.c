/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory segment: naming, create, attach-time validation, unmap.
 *
 * A ring named N is one file named "shmring.N": in /dev/shm (4 KiB pages, or
 * transparent huge pages), or in a hugetlbfs directory (huge pages from the
 * reserved pool).  A ring in anonymous huge memory (memfd-hugetlb) is named by
 * a stub file in /dev/shm instead (hugepages.c).  attach, unlink and create's
 * check that a name is unique look in /dev/shm first, then in every hugetlbfs
 * directory, so a ring is found by name wherever it was made.
 *
 * create uses O_EXCL, so a name is never reused or squatted, and backs the
 * whole segment with memory before anyone can use it (fallocate, or a populate
 * of the advised mapping for THP), so a full /dev/shm or an exhausted huge page
 * pool fails here and not as a SIGBUS on first touch.  attach trusts nothing it
 * has not checked: owner, size, magic, ABI, kind and geometry are validated on
 * a private copy of the header before the ring is mapped for use.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14 */
#endif

#define INIT_WAIT_NS 1000000000LL   /* how long attach waits for a creator to finish */

_Static_assert(sizeof(((shmring_t *)0)->path) == sizeof(((struct shmring_info *)0)->path),
	       "info copies the handle's path");

static int name_valid(const char *name)
{
	size_t n = name ? strnlen(name, NAME_MAX_LEN + 1) : 0;

	return n > 0 && n <= NAME_MAX_LEN && !strchr(name, '/');
}

static int ring_path(const char *dir, const char *name, char *path, size_t cap)
{
	return snprintf(path, cap, "%s/" PREFIX "%s", dir, name) < (int)cap ? 0 : -ENAMETOOLONG;
}

static uint64_t round_up(uint64_t x, uint64_t to)
{
	return (x + to - 1) / to * to;
}

/* Slots of an SPSC array ring need no record: every message fills its slot
 * and there is no turn word.  Saving it halves the lines a small message uses. */
static int slot_has_meta(uint32_t kind, uint32_t flags)
{
	return kind != SHMRING_SPSC || !(flags & SHMRING_F_ARRAY);
}

int segment_geometry(uint64_t capacity, uint64_t slot_size, uint64_t page_size, int meta,
		     uint64_t *stride, uint64_t *meta_off, uint64_t *total)
{
	uint64_t bytes;

	if (capacity < 1 || capacity > SHMRING_MAX_CAPACITY ||
	    slot_size < 1 || slot_size > SHMRING_MAX_SLOT_SIZE)
		return -EINVAL;
	*meta_off = meta ? round_up(slot_size, 8) : 0;    /* 0: no record */
	*stride = round_up(meta ? *meta_off + sizeof(struct shmring_slot_meta) : slot_size,
			   SHMRING_CACHELINE);
	if (__builtin_mul_overflow(capacity, *stride, &bytes) ||
	    __builtin_add_overflow(bytes, (uint64_t)SHMRING_SLOTS_OFF, &bytes) ||
	    bytes > SHMRING_MAX_TOTAL)
		return -E2BIG;
	*total = round_up(bytes, page_size);
	return 0;
}

uint64_t shmring_segment_bytes(const struct shmring_params *p)
{
	uint64_t stride, meta_off, bytes;

	if (!p || segment_geometry(p->capacity, p->slot_size, 1,
				   slot_has_meta(p->kind, p->ndim ? SHMRING_F_ARRAY : 0),
				   &stride, &meta_off, &bytes) < 0)
		return 0;
	return bytes;
}

static void set_geometry(shmring_t *r, const struct shmring_hdr *h,
			 uint64_t stride, uint64_t meta_off, uint64_t total)
{
	r->kind = h->kind;
	r->capacity = h->capacity;
	r->mask = h->capacity & (h->capacity - 1) ? NO_MASK : h->capacity - 1;
	r->slot_size = h->slot_size;
	r->stride = stride;
	r->meta_off = meta_off;
	r->map_size = total;
	r->slots = (uint8_t *)r->hdr + SHMRING_SLOTS_OFF;
	snprintf(r->backing, sizeof(r->backing), "%s", backing_name(r->backing_id));
}

static int kind_valid(uint32_t kind)
{
	return kind == SHMRING_SPSC || kind == SHMRING_MPMC || kind == SHMRING_LOCKED;
}

/* ---- create ---- */

/* Give fd `total` bytes of memory now, and map it. */
static int back_and_map(int fd, uint64_t total, uint32_t backing, void **mem)
{
	int rc, populate = 0;
	void *m;

	switch (backing) {
	case BACKING_HUGETLBFS:
	case BACKING_MEMFD:
		/* Allocates every huge page: a short pool is ENOSPC here, not SIGBUS later. */
		if (fallocate(fd, 0, 0, (off_t)total) < 0)
			return -errno;
		populate = MAP_POPULATE;   /* one PMD per 2 MiB: cheap, and first touch is free */
		break;
	case BACKING_THP:
		/* Not fallocate: with no mapping to look at, a huge=advise mount would
		 * allocate 4 KiB pages.  The advised mapping is populated below. */
		if (ftruncate(fd, (off_t)total) < 0)
			return -errno;
		break;
	default:
		if ((rc = posix_fallocate(fd, 0, (off_t)total)) != 0)
			return -rc;
	}
	m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | populate, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	if (backing == BACKING_THP &&
	    (madvise(m, total, MADV_HUGEPAGE) < 0 || madvise(m, total, MADV_POPULATE_WRITE) < 0) &&
	    (rc = posix_fallocate(fd, 0, (off_t)total)) != 0) {
		/* EFAULT from the populate hides why; fallocate reserves or says (ENOSPC).
		 * (EINVAL: a kernel before 5.14; fallocate reserves, 4 KiB pages likely.) */
		munmap(m, total);
		return -rc;
	}
	if (backing == BACKING_SHM && shmring_thp_allowed())
		madvise(m, total, MADV_NOHUGEPAGE);   /* "off", or a ring smaller than one huge page */
	*mem = m;
	return 0;
}

/* One attempt: a new file at `path` (NULL: a memfd, named by a stub in /dev/shm)
 * backed by `backing` memory.  On success the mapping is r->hdr, r->path names it. */
static int try_create(const char *path, const char *name, uint32_t backing, uint64_t bytes,
		      uint32_t mode, shmring_t *r)
{
	char link[PATH_CAP];
	uint64_t page_size = 0, total;
	void *mem = NULL;
	int fd, rc;

	if (path)
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	else
		fd = memfd_create_named(name);
	if (fd < 0)
		return -errno;
	fd_backing(fd, link, sizeof(link), &page_size);
	if (backing == BACKING_THP)
		page_size = thp_page_size();
	total = round_up(bytes, page_size);
	/* The umask narrowed the mode at open; set exactly what was asked. */
	if (fchmod(fd, mode) < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = back_and_map(fd, total, backing, &mem)) < 0)
		goto fail;
	if (!path) {
		/* The name is claimed last: only a complete memfd ring is ever findable. */
		if ((rc = ring_path(SHM_DIR, name, r->path, sizeof(r->path))) < 0 ||
		    (rc = stub_publish(r->path, fd, total, mode)) < 0)
			goto fail;
		r->fd = fd;
	} else {
		snprintf(r->path, sizeof(r->path), "%s", path);
		close(fd);
	}
	r->hdr = mem;
	r->map_size = total;
	r->page_size = page_size;
	r->backing_id = backing;
	return 0;

fail:
	if (mem)
		munmap(mem, total);
	close(fd);
	if (path)
		unlink(path);
	r->path[0] = 0;
	return rc;
}

/* The first backing that works, in the order hugetlbfs, (require only)
 * memfd-hugetlb, THP, 4 KiB shm. */
static int create_backed(const char *name, const struct shmring_params *p, uint64_t bytes,
			 shmring_t *r)
{
	char path[PATH_CAP];
	struct search_dirs d;
	int rc, n;

	if (p->hugepages != SHMRING_HUGE_OFF) {
		if ((n = search_dirs(p->hugetlbfs, SEARCH_CREATE, &d)) < 0)
			return n;
		rc = -ENODEV;
		for (int i = 0; i < n; i++) {
			/* "auto" spends no huge page on a ring smaller than one: it
			 * would take a whole page of the pool to gain nothing. */
			if (p->hugepages == SHMRING_HUGE_AUTO && bytes < hugetlbfs_page_size(d.dir[i]))
				continue;
			if ((rc = ring_path(d.dir[i], name, path, sizeof(path))) < 0)
				return rc;
			rc = try_create(path, name, BACKING_HUGETLBFS, bytes, p->mode, r);
			if (rc == 0 || rc == -EEXIST)
				return rc;
		}
		/* Not for "auto": a memfd ring can be attached by name only while its
		 * creator holds it, and a named /dev/shm ring outlives its creator. */
		if (p->hugepages == SHMRING_HUGE_REQUIRE) {
			if (p->hugetlbfs && *p->hugetlbfs)
				return rc;   /* the caller chose that directory: no other place */
			return try_create(NULL, name, BACKING_MEMFD, bytes, p->mode, r);
		}
		/* THP, by the same rule: at least one huge page. */
		if (bytes >= thp_page_size() && shmring_thp_allowed()) {
			if ((rc = ring_path(SHM_DIR, name, path, sizeof(path))) < 0)
				return rc;
			rc = try_create(path, name, BACKING_THP, bytes, p->mode, r);
			if (rc == 0 && !thp_mapped(r->hdr)) {
				r->backing_id = BACKING_SHM;   /* allowed, but the kernel gave 4 KiB pages */
				r->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
			}
			if (rc == 0 || rc == -EEXIST)
				return rc;
		}
	}
	if ((rc = ring_path(SHM_DIR, name, path, sizeof(path))) < 0)
		return rc;
	return try_create(path, name, BACKING_SHM, bytes, p->mode, r);
}

/* Another file of this name in a place attach looks (a racing create elsewhere). */
static int name_taken_elsewhere(const char *name, const char *given, const char *mine)
{
	char path[PATH_CAP];
	struct stat me, st;
	struct search_dirs d;

	if (lstat(mine, &me) < 0 || search_dirs(given && *given ? given : NULL, SEARCH_FIND, &d) < 0)
		return 0;
	for (int i = 0; i < d.n; i++)
		if (ring_path(d.dir[i], name, path, sizeof(path)) == 0 && lstat(path, &st) == 0 &&
		    (st.st_dev != me.st_dev || st.st_ino != me.st_ino))
			return 1;
	return 0;
}

int segment_create(const char *name, const struct shmring_params *p, shmring_t *r)
{
	uint64_t stride, meta_off, bytes;
	struct shmring_hdr *h;
	size_t dlen = 0;
	int rc;

	r->fd = -1;
	if (!name_valid(name))
		return -EINVAL;
	if (!kind_valid(p->kind) || p->hugepages > SHMRING_HUGE_OFF || (p->mode & ~0777u))
		return -EINVAL;
	if (p->ndim > SHMRING_MAX_NDIM || (p->ndim && !p->dtype))
		return -EINVAL;
	if (p->ndim && (dlen = strlen(p->dtype)) >= SHMRING_DTYPE_MAX)
		return -ENAMETOOLONG;
	if ((rc = segment_geometry(p->capacity, p->slot_size, 1,
				   slot_has_meta(p->kind, p->ndim ? SHMRING_F_ARRAY : 0),
				   &stride, &meta_off, &bytes)) < 0)
		return rc;
	if ((rc = create_backed(name, p, bytes, r)) < 0)
		return rc;
	/* Two creators racing on one name in two places: both may back off,
	 * never both succeed. */
	if (name_taken_elsewhere(name, p->hugetlbfs, r->path)) {
		segment_remove(r);
		segment_unmap(r);
		return -EEXIST;
	}

	h = r->hdr;   /* fresh pages are zero: every counter and token starts at 0 */
	h->magic = SHMRING_MAGIC;
	h->kind = p->kind;
	h->flags = p->ndim ? SHMRING_F_ARRAY : 0;
	h->hdr_size = SHMRING_SLOTS_OFF;
	h->capacity = p->capacity;
	h->slot_size = p->slot_size;
	h->slot_stride = stride;
	h->slots_offset = SHMRING_SLOTS_OFF;
	h->total_size = r->map_size;
	h->backing = r->backing_id;
	h->ndim = p->ndim;
	for (uint32_t i = 0; i < p->ndim; i++)
		h->shape[i] = p->shape[i];
	h->dtype_len = (uint32_t)dlen;
	if (dlen)
		memcpy(h->dtype, p->dtype, dlen);
	set_geometry(r, h, stride, meta_off, r->map_size);
	return 0;    /* the caller initialises the kind, then publishes h->abi */
}

void segment_remove(shmring_t *r)
{
	if (r->path[0])
		unlink(r->path);
}

/* ---- attach ---- */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Validate a private copy of a header against the segment's real size.  The
 * segment is the header and slots rounded up to one of the page sizes its
 * file system can give (tmpfs: 4 KiB, or 2 MiB for a THP ring). */
static int header_check(const struct shmring_hdr *h, uint64_t file_size,
			const uint64_t *page_sizes, int n_sizes,
			uint64_t *stride, uint64_t *meta_off, uint64_t *total)
{
	uint64_t bytes;
	int i;

	if (h->magic != SHMRING_MAGIC)
		return -EPROTO;
	if (h->abi != SHMRING_ABI)
		return -EPROTONOSUPPORT;
	if (!kind_valid(h->kind) || h->hdr_size != SHMRING_SLOTS_OFF ||
	    h->slots_offset != SHMRING_SLOTS_OFF || (h->flags & ~SHMRING_F_ARRAY))
		return -EBADMSG;
	if (segment_geometry(h->capacity, h->slot_size, 1, slot_has_meta(h->kind, h->flags),
			     stride, meta_off, &bytes) < 0)
		return -EBADMSG;
	for (i = 0; i < n_sizes && h->total_size != round_up(bytes, page_sizes[i]); i++)
		;
	if (h->slot_stride != *stride || i == n_sizes || h->total_size > file_size)
		return -EBADMSG;
	*total = h->total_size;
	if (h->flags & SHMRING_F_ARRAY) {
		if (h->ndim < 1 || h->ndim > SHMRING_MAX_NDIM ||
		    h->dtype_len < 1 || h->dtype_len >= SHMRING_DTYPE_MAX ||
		    memchr(h->dtype, 0, h->dtype_len))
			return -EBADMSG;
	} else if (h->ndim != 0) {
		return -EBADMSG;
	}
	return 0;
}

/* The owner and type checks every file on the way to the memory gets. */
static int file_check(int fd, int any_owner, struct stat *st)
{
	if (fstat(fd, st) < 0)
		return -errno;
	if (!S_ISREG(st->st_mode))
		return -EPROTO;
	if (!any_owner && st->st_uid != geteuid())
		return -EACCES;
	return 0;
}

/* Map the ring whose memory fd is (fd stays the caller's). */
static int map_fd(int fd, int any_owner, shmring_t *r)
{
	char link[PATH_CAP];
	uint64_t stride, meta_off, total, page_sizes[2];
	struct shmring_hdr copy;
	int64_t deadline = now_ns() + INIT_WAIT_NS;
	struct stat st;
	void *mem;
	int rc, n_sizes = 1;

	r->backing_id = fd_backing(fd, link, sizeof(link), &page_sizes[0]);
	if (r->backing_id == BACKING_NONE)
		return -EPROTO;   /* tmpfs or hugetlbfs only: a disk file is no ring */
	if (r->backing_id == BACKING_SHM)
		page_sizes[n_sizes++] = thp_page_size();
	for (;;) {
		if ((rc = file_check(fd, any_owner, &st)) < 0)
			return rc;
		rc = -EAGAIN;   /* the creator has not sized or published it yet */
		if ((uint64_t)st.st_size >= sizeof(copy) &&
		    pread(fd, &copy, sizeof(copy), 0) == (ssize_t)sizeof(copy)) {
			/* A plain read of the header; abi pairs with the creator's
			 * release store only through the later mmap'd acquire load. */
			if (copy.magic != SHMRING_MAGIC && copy.magic != 0)
				return -EPROTO;
			if (copy.abi != 0)
				break;
		}
		if (now_ns() > deadline)
			return rc;
		usleep(1000);
	}
	if ((rc = header_check(&copy, (uint64_t)st.st_size, page_sizes, n_sizes,
			       &stride, &meta_off, &total)) < 0)
		return rc;
	mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED)
		return -errno;
	r->hdr = mem;
	r->page_size = page_sizes[0];
	/* The header's word only tells a THP ring from a 4 KiB one; a hostile
	 * value cannot make the handle believe in memory it does not have. */
	if (r->backing_id == BACKING_SHM && copy.backing == BACKING_THP &&
	    total % page_sizes[1] == 0) {
		r->backing_id = BACKING_THP;
		r->page_size = page_sizes[1];
		madvise(mem, total, MADV_HUGEPAGE);   /* map the huge folios with PMDs here too */
	}
	/* Pairs with the creator's release store of abi: the initialised
	 * header and kind area are visible from here on. */
	(void)load_acquire(&r->hdr->abi);
	set_geometry(r, &copy, stride, meta_off, total);
	return 0;
}

/* An open descriptor of the ring called name: /dev/shm first, then hugetlbfs. */
static int open_by_name(const char *name, const char *given, char *path, size_t cap)
{
	struct search_dirs d;
	int fd, rc;

	if (!name_valid(name))
		return -EINVAL;
	if ((rc = search_dirs(given, SEARCH_FIND, &d)) < 0)
		return rc;
	for (int i = 0; i < d.n; i++) {
		if ((rc = ring_path(d.dir[i], name, path, cap)) < 0)
			return rc;
		fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			return -errno;
	}
	return -ENOENT;
}

int segment_attach(const char *name, const char *hugetlbfs, int any_owner, shmring_t *r)
{
	struct stat st;
	int fd, memfd, rc;

	r->fd = -1;
	if ((fd = open_by_name(name, hugetlbfs, r->path, sizeof(r->path))) < 0)
		return fd;
	if ((rc = file_check(fd, any_owner, &st)) == 0 && stub_is(fd, (uint64_t)st.st_size)) {
		/* A memfd ring's name: its memory is the creator's descriptor. */
		if ((memfd = stub_follow(fd, name)) < 0) {
			rc = memfd;
		} else if ((rc = map_fd(memfd, any_owner, r)) < 0) {
			close(memfd);
		} else {
			r->fd = memfd;
		}
	} else if (rc == 0) {
		rc = map_fd(fd, any_owner, r);
	}
	close(fd);
	return rc;
}

int segment_attach_fd(int fd, int any_owner, shmring_t *r)
{
	uint64_t page_size;
	int rc;

	r->fd = -1;
	if (fd < 0)
		return -EBADF;
	if ((rc = map_fd(fd, any_owner, r)) < 0)
		return rc;
	fd_backing(fd, r->path, sizeof(r->path), &page_size);
	/* A memfd is its own name: keep one, as the creator does. */
	if (r->backing_id == BACKING_MEMFD && (r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		rc = -errno;
		segment_unmap(r);
	}
	return rc;
}

void segment_unmap(shmring_t *r)
{
	if (r->hdr)
		munmap(r->hdr, r->map_size);
	r->hdr = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

int shmring_fd(shmring_t *r)
{
	return r->fd >= 0 ? r->fd : -EBADF;
}

/* ---- names ---- */

int shmring_unlink_at(const char *name, const char *hugetlbfs)
{
	char path[PATH_CAP];
	struct search_dirs d;
	int rc;

	if (!name_valid(name))
		return -EINVAL;
	if ((rc = search_dirs(hugetlbfs, SEARCH_FIND, &d)) < 0)
		return rc;
	for (int i = 0; i < d.n; i++) {
		if ((rc = ring_path(d.dir[i], name, path, sizeof(path))) < 0)
			return rc;
		if (unlink(path) == 0)
			return 0;
		if (errno != ENOENT)
			return -errno;
	}
	return -ENOENT;
}

int shmring_unlink(const char *name)
{
	return shmring_unlink_at(name, NULL);
}

int shmring_search_dirs(const char *hugetlbfs, char *buf, size_t cap)
{
	struct search_dirs d;
	size_t used = 0, len;
	int rc;

	if ((rc = search_dirs(hugetlbfs, SEARCH_FIND, &d)) < 0)
		return rc;
	for (int i = 0; i < d.n; i++) {
		len = strlen(d.dir[i]) + 1;
		if (used + len > cap)
			return -ENOBUFS;
		memcpy(buf + used, d.dir[i], len);
		used += len;
	}
	return d.n;
}

int shmring_probe(const char *path, char *backing, size_t cap)
{
	char link[PATH_CAP];
	uint64_t page_size;
	uint32_t word = BACKING_SHM, id;
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		/* Another user's ring: its directory still tells hugetlbfs apart. */
		if (errno != EACCES || !hugetlbfs_page_size(path))
			return -errno;
		snprintf(backing, cap, "%s", backing_name(BACKING_HUGETLBFS));
		return BACKING_HUGETLBFS;
	}
	id = fd_backing(fd, link, sizeof(link), &page_size);
	if (id == BACKING_SHM && fstat(fd, &st) == 0) {
		if (stub_is(fd, (uint64_t)st.st_size))
			id = BACKING_MEMFD;
		else if (pread(fd, &word, sizeof(word), offsetof(struct shmring_hdr, backing)) ==
			 (ssize_t)sizeof(word) && word == BACKING_THP)
			id = BACKING_THP;
	}
	close(fd);
	if (id == BACKING_NONE)
		return -EPROTO;
	snprintf(backing, cap, "%s", backing_name(id));
	return (int)id;
}
