/* SPDX-License-Identifier: MIT */
/*
 * shmring: bounded FIFO rings of fixed-size slots in POSIX shared memory.
 *
 * The shared layout is in shmring_abi.h.  A shmring_t is a process-local
 * handle onto one mapping; it keeps its own copy of the geometry, so nothing
 * a peer scribbles over the header later can move a read or write outside the
 * mapping: every index read from shared memory is checked first.
 *
 * Conventions (liburing's): setup calls return 0 or -errno.  Non-blocking
 * calls return >= 0 on success, -EAGAIN when full (put side) or empty (get
 * side), and otherwise:
 *   -EPIPE       put side: the ring was shut down
 *   -ENODATA     get side: shut down and drained (end of stream)
 *   -EUCLEAN     an index or length in shared memory is impossible
 *   -EBUSY       an SPSC role is held by another live handle
 *   -EMSGSIZE    a message longer than slot_size
 *   -EINPROGRESS a reservation or a received slot is still open on this handle
 *   -EBADF       the handle was closed
 * A handle serves one thread at a time.
 */
#ifndef SHMRING_H
#define SHMRING_H

#include <stddef.h>
#include <stdint.h>

typedef struct shmring shmring_t;      /* opaque, process-local */

enum shmring_kind { SHMRING_SPSC = 1, SHMRING_MPMC = 2, SHMRING_LOCKED = 3 };

/* create-time options (shmring_params.hugepages) */
enum shmring_huge { SHMRING_HUGE_AUTO = 0, SHMRING_HUGE_REQUIRE = 1, SHMRING_HUGE_OFF = 2 };

struct shmring_params {
	uint32_t kind;            /* enum shmring_kind */
	uint32_t hugepages;       /* enum shmring_huge */
	uint64_t capacity;        /* messages, >= 1 */
	uint64_t slot_size;       /* bytes per message, >= 1 */
	uint32_t mode;            /* file mode, e.g. 0600 */
	uint32_t ndim;            /* array rings: > 0; byte rings: 0 */
	uint64_t shape[8];
	const char *dtype;        /* array rings: numpy dtype description */
	/* huge pages: the hugetlbfs directory to create in; NULL: $SHMRING_HUGETLBFS,
	 * then any hugetlbfs mount in /proc/mounts; "": none (require: memfd-hugetlb) */
	const char *hugetlbfs;
};

struct shmring_info {
	uint32_t kind;
	uint32_t ndim;
	uint64_t capacity;
	uint64_t slot_size;
	uint64_t slot_stride;
	uint64_t slots_offset;
	uint64_t size_bytes;      /* bytes mapped */
	uint64_t page_size;
	uint64_t shape[8];
	char dtype[192];
	char backing[16];         /* "hugetlbfs", "memfd-hugetlb", "thp" or "shm" */
	uint64_t length;          /* messages queued now (a snapshot) */
	uint32_t shut_down;
	uint32_t is_array;
	int32_t producer_pid;     /* 0 when no live producer role holder */
	int32_t consumer_pid;
	int32_t pids[32];         /* attached processes known alive, 0-terminated */
	uint64_t lost;            /* in-flight messages of dead peers that survivors gave up */
	char path[768];           /* the file naming the ring (a memfd attached by fd: its /proc link) */
	uint32_t stale;           /* 1: no live process recorded as attached but the caller's own handle */
};

/* Lifecycle. `name` is the ring name (1-200 chars, no '/', no NUL). */
int shmring_create(const char *name, const struct shmring_params *p, shmring_t **out);
/* shmring_attach flags.  ANY_OWNER: accept a segment owned by another user (the
 * default refuses).  OBSERVE: do not join the ring's table of attached processes, so
 * that looking at a ring (info, length) never makes it look live; an observing
 * handle is for looking, not for moving messages. */
enum shmring_attach_flags { SHMRING_ATTACH_ANY_OWNER = 1, SHMRING_ATTACH_OBSERVE = 2 };
int shmring_attach(const char *name, int flags, shmring_t **out);
int shmring_unlink(const char *name);
/* The same, also looking in `hugetlbfs` (a directory; NULL: only the usual
 * places, /dev/shm, $SHMRING_HUGETLBFS and the hugetlbfs mounts). */
int shmring_attach_at(const char *name, const char *hugetlbfs, int flags, shmring_t **out);
int shmring_unlink_at(const char *name, const char *hugetlbfs);
/* Attach through an open descriptor of a ring's memory: a memfd-hugetlb ring's
 * received over a Unix socket (SCM_RIGHTS) or opened from /proc/<pid>/fd/<n>. */
int shmring_attach_fd(int fd, int flags, shmring_t **out);
/* The descriptor a memfd-hugetlb handle keeps (share it with SCM_RIGHTS);
 * -EBADF for rings that have a file name instead. */
int shmring_fd(shmring_t *r);
/* Where rings may be, NUL-separated into buf (/dev/shm first, then hugetlbfs
 * directories); returns how many, or -errno. */
int shmring_search_dirs(const char *hugetlbfs, char *buf, size_t cap);
/* The backing of the ring file at path, by name into backing[cap] and as a number
 * (0 shm, 1 thp, 2 hugetlbfs, 3 memfd-hugetlb: a /dev/shm stub), or -errno.
 * Reads at most the stub or the header's backing word. */
int shmring_probe(const char *path, char *backing, size_t cap);
/* 1 when the kernel may give /dev/shm files transparent huge pages (shmem_enabled
 * and the mount's huge= option), so "auto" tries MADV_HUGEPAGE there. */
int shmring_thp_allowed(void);
/* Bytes a ring of these parameters needs before rounding to pages; 0 if invalid. */
uint64_t shmring_segment_bytes(const struct shmring_params *p);
/* Give up roles and stop using the handle; later calls return -EBADF.
 * The mapping stays until shmring_free (numpy views may still point into it). */
void shmring_close(shmring_t *r);
void shmring_free(shmring_t *r);   /* close if needed, unmap, free; NULL ok */

void *shmring_base(shmring_t *r);          /* the mapping (header at offset 0) */
int shmring_info(shmring_t *r, struct shmring_info *out);
uint64_t shmring_length(shmring_t *r);      /* snapshot; 0 if corrupt */
int shmring_shutdown(shmring_t *r);

/* Put side: 1 = put, -EAGAIN = full. */
int shmring_try_put(shmring_t *r, const char *src, uint64_t len);
/* Copy n messages packed back to back in src (lens: each length, or NULL for
 * slot_size each).  Returns how many were put (>= 1), or < 0. */
int64_t shmring_try_put_many(shmring_t *r, const void *src, const uint64_t *lens, uint64_t n);
/* Zero copy: the slot index to write in place, then commit its length, or abandon. */
int64_t shmring_try_reserve(shmring_t *r);
int shmring_commit(shmring_t *r, uint64_t len);
int shmring_abandon(shmring_t *r);

/* Get side. */
/* Copy the oldest message into this handle's staging buffer (shmring_stage)
 * and release its slot; returns its length.  -E2BIG when the message is longer
 * than the stage: nothing is consumed, use front/release instead. */
int64_t shmring_try_get_staged(shmring_t *r);
void *shmring_stage(shmring_t *r);
/* Copy up to max messages to dst, message i at dst + i * slot_size; lens[i]
 * gets each length (lens may be NULL).  Returns how many (>= 1), or < 0. */
int64_t shmring_try_get_many(shmring_t *r, void *dst, uint64_t *lens, uint64_t max);
/* Zero copy: the slot index of the oldest message (its length in *len); the
 * slot is held until release. */
int64_t shmring_try_front(shmring_t *r, uint64_t *len);
int shmring_release(shmring_t *r);

/* Wait up to timeout_ns (< 0: the default slice) until a put (writable) or a
 * get (readable) may succeed.  0: try again; -ETIMEDOUT: the time passed;
 * -EOWNERDEAD: the peer this wait depends on died holding its role;
 * -EINTR: a signal handler ran (return to Python so that it can act on it).
 * Callers loop, so that a signal can be handled between waits. */
int shmring_wait_writable(shmring_t *r, int64_t timeout_ns);
int shmring_wait_readable(shmring_t *r, int64_t timeout_ns);

/* try_get_staged / try_put, but when empty (full) first spin for up to
 * spin_ns for the peer: the fast first step of a blocking get (put). */
int64_t shmring_get_staged(shmring_t *r);
int shmring_put(shmring_t *r, const char *src, uint64_t len);

/* How long a waiter spins before it sleeps on the futex (default 20 us). */
void shmring_set_spin(shmring_t *r, int64_t spin_ns);

const char *shmring_strerror(int err);

#endif /* SHMRING_H */
