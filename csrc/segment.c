/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory segment: naming, create, attach-time validation, unmap.
 *
 * A ring named N lives in the POSIX shm object "/shmring.N" (/dev/shm/shmring.N).
 * create uses O_EXCL, so a name is never reused or squatted, and reserves the
 * memory with posix_fallocate, so a full /dev/shm fails here and not as a
 * SIGBUS on first touch.  attach trusts nothing it has not checked: owner,
 * size, magic, ABI, kind and geometry are validated on a private copy of the
 * header before the ring is mapped for use.
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

#define NAME_MAX_LEN 200
#define INIT_WAIT_NS 1000000000LL   /* how long attach waits for a creator to finish */

static int shm_path(const char *name, char *path, size_t cap)
{
	size_t n = name ? strnlen(name, NAME_MAX_LEN + 1) : 0;

	if (n == 0 || n > NAME_MAX_LEN || strchr(name, '/'))
		return -EINVAL;
	snprintf(path, cap, "/shmring.%s", name);
	return 0;
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
	snprintf(r->backing, sizeof(r->backing), "shm");
}

static int kind_valid(uint32_t kind)
{
	return kind == SHMRING_SPSC || kind == SHMRING_MPMC || kind == SHMRING_LOCKED;
}

int segment_create(const char *name, const struct shmring_params *p, shmring_t *r)
{
	char path[NAME_MAX_LEN + 16];
	uint64_t stride, meta_off, total;
	struct shmring_hdr *h;
	size_t dlen = 0;
	void *mem;
	int fd, rc;

	if ((rc = shm_path(name, path, sizeof(path))) < 0)
		return rc;
	if (!kind_valid(p->kind) || p->hugepages > SHMRING_HUGE_OFF || (p->mode & ~0777u))
		return -EINVAL;
	if (p->ndim > SHMRING_MAX_NDIM || (p->ndim && !p->dtype))
		return -EINVAL;
	if (p->ndim && (dlen = strlen(p->dtype)) >= SHMRING_DTYPE_MAX)
		return -ENAMETOOLONG;
	/* Named huge-page segments need a hugetlbfs mount; shm cannot give them. */
	if (p->hugepages == SHMRING_HUGE_REQUIRE)
		return -ENOTSUP;
	r->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	if ((rc = segment_geometry(p->capacity, p->slot_size, r->page_size,
				   slot_has_meta(p->kind, p->ndim ? SHMRING_F_ARRAY : 0),
				   &stride, &meta_off, &total)) < 0)
		return rc;

	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, p->mode);
	if (fd < 0)
		return -errno;
	/* The umask narrowed the mode at open; set exactly what was asked. */
	if (fchmod(fd, p->mode) < 0 ||
	    (rc = posix_fallocate(fd, 0, (off_t)total)) != 0) {
		rc = rc ? -rc : -errno;
		goto fail;
	}
	mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	close(fd);

	h = mem;   /* fresh pages are zero: every counter and token starts at 0 */
	h->magic = SHMRING_MAGIC;
	h->kind = p->kind;
	h->flags = p->ndim ? SHMRING_F_ARRAY : 0;
	h->hdr_size = SHMRING_SLOTS_OFF;
	h->capacity = p->capacity;
	h->slot_size = p->slot_size;
	h->slot_stride = stride;
	h->slots_offset = SHMRING_SLOTS_OFF;
	h->total_size = total;
	h->ndim = p->ndim;
	for (uint32_t i = 0; i < p->ndim; i++)
		h->shape[i] = p->shape[i];
	h->dtype_len = (uint32_t)dlen;
	if (dlen)
		memcpy(h->dtype, p->dtype, dlen);
	r->hdr = h;
	set_geometry(r, h, stride, meta_off, total);
	return 0;    /* the caller initialises the kind, then publishes h->abi */

fail:
	close(fd);
	shm_unlink(path);
	return rc;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Validate a private copy of a header against the segment's real size. */
static int header_check(const struct shmring_hdr *h, uint64_t file_size, uint64_t page_size,
			uint64_t *stride, uint64_t *meta_off, uint64_t *total)
{
	if (h->magic != SHMRING_MAGIC)
		return -EPROTO;
	if (h->abi != SHMRING_ABI)
		return -EPROTONOSUPPORT;
	if (!kind_valid(h->kind) || h->hdr_size != SHMRING_SLOTS_OFF ||
	    h->slots_offset != SHMRING_SLOTS_OFF || (h->flags & ~SHMRING_F_ARRAY))
		return -EBADMSG;
	if (segment_geometry(h->capacity, h->slot_size, page_size, slot_has_meta(h->kind, h->flags),
			     stride, meta_off, total) < 0)
		return -EBADMSG;
	if (h->slot_stride != *stride || h->total_size != *total || *total > file_size)
		return -EBADMSG;
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

int segment_attach(const char *name, int any_owner, shmring_t *r)
{
	char path[NAME_MAX_LEN + 16];
	uint64_t stride, meta_off, total;
	struct shmring_hdr copy;
	int64_t deadline = now_ns() + INIT_WAIT_NS;
	struct stat st;
	void *mem;
	int fd, rc;

	if ((rc = shm_path(name, path, sizeof(path))) < 0)
		return rc;
	fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r->page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	for (;;) {
		if (fstat(fd, &st) < 0) {
			rc = -errno;
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			rc = -EPROTO;
			goto out;
		}
		if (!any_owner && st.st_uid != geteuid()) {
			rc = -EACCES;
			goto out;
		}
		rc = -EAGAIN;   /* the creator has not sized or published it yet */
		if ((uint64_t)st.st_size >= sizeof(copy) &&
		    pread(fd, &copy, sizeof(copy), 0) == (ssize_t)sizeof(copy)) {
			/* A plain read of the header; abi pairs with the creator's
			 * release store only through the later mmap'd acquire load. */
			if (copy.magic != SHMRING_MAGIC && copy.magic != 0) {
				rc = -EPROTO;
				goto out;
			}
			if (copy.abi != 0)
				break;
		}
		if (now_ns() > deadline)
			goto out;
		usleep(1000);
	}
	if ((rc = header_check(&copy, (uint64_t)st.st_size, r->page_size,
			       &stride, &meta_off, &total)) < 0)
		goto out;
	mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		rc = -errno;
		goto out;
	}
	r->hdr = mem;
	/* Pairs with the creator's release store of abi: the initialised
	 * header and kind area are visible from here on. */
	(void)load_acquire(&r->hdr->abi);
	set_geometry(r, &copy, stride, meta_off, total);
	rc = 0;
out:
	close(fd);
	return rc;
}

void segment_unmap(shmring_t *r)
{
	if (r->hdr)
		munmap(r->hdr, r->map_size);
	r->hdr = NULL;
}

int shmring_unlink(const char *name)
{
	char path[NAME_MAX_LEN + 16];
	int rc;

	if ((rc = shm_path(name, path, sizeof(path))) < 0)
		return rc;
	return shm_unlink(path) < 0 ? -errno : 0;
}
