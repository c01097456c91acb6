/* SPDX-License-Identifier: MIT */
/*
 * Internal: the process-local handle and what the ring kinds share.
 * Not part of the public API (shmring.h is).
 */
#ifndef SHMRING_RING_H
#define SHMRING_RING_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "atomics.h"
#include "shmring.h"
#include "shmring_abi.h"

/* One table per ring kind; ring.c dispatches through it. */
struct ring_ops {
	int (*init)(shmring_t *r);                   /* at create, before abi; may be NULL */
	int (*attach)(shmring_t *r);                 /* after validation; may be NULL */
	int (*try_put)(shmring_t *r, const void *src, uint64_t len);
	int64_t (*try_put_many)(shmring_t *r, const void *src, const uint64_t *lens, uint64_t n);
	int64_t (*try_reserve)(shmring_t *r);
	int (*commit)(shmring_t *r, uint64_t len);
	int (*abandon)(shmring_t *r);
	int64_t (*try_front)(shmring_t *r, uint64_t *len);
	/* try_front + copy into dst (slot_size bytes of room) + release in one
	 * step: the length, or -errno.  The single-message get, kept lean. */
	int64_t (*try_get)(shmring_t *r, void *dst);
	int (*release)(shmring_t *r);
	int64_t (*try_get_many)(shmring_t *r, void *dst, uint64_t *lens, uint64_t max);
	/* 1 when a put (get) might succeed now, else 0; never blocks */
	int (*writable)(shmring_t *r);
	int (*readable)(shmring_t *r);
	/* 1 when the peer a waiter depends on died holding its role (a writer
	 * waits on the consumer, a reader on the producer); may be NULL */
	int (*peer_dead)(shmring_t *r, int reader);
	/* A kind's own way to wait (the locked ring's semaphores); NULL: wait.c's futex */
	int (*wait)(shmring_t *r, int reader, int64_t timeout_ns);
	void (*shutdown)(shmring_t *r);              /* after the flag is set; may be NULL */
	void (*close)(shmring_t *r);                 /* give up roles; may be NULL */
};

#define PATH_CAP 768

struct shmring {
	/* Read-only after attach: the validated, private copy of the geometry. */
	struct shmring_hdr *hdr;
	uint8_t *slots;
	const struct ring_ops *ops;
	uint64_t capacity, slot_size, stride;
	uint64_t mask;             /* capacity - 1 if a power of two, else NO_MASK */
	uint64_t meta_off;         /* offset of the slot record in a slot; 0: none */
	uint64_t map_size, page_size;
	uint32_t kind;
	int closed;
	int observer;              /* not in the attach table (SHMRING_ATTACH_OBSERVE) */
	int64_t spin_ns;           /* how long a waiter spins before it sleeps */
	char backing[16];
	uint32_t backing_id;       /* enum backing */
	int fd;                    /* memfd-hugetlb: kept open, the memory's only name; else -1 */
	char path[PATH_CAP];       /* the file that names the ring (shmring_info.path) */

	/* Our entry in the attach table (peer.c): -1 when the table was full.
	 * attach_epoch is the fork epoch + 1 it was taken in (a child takes its own). */
	int attach_idx;
	uint64_t attach_epoch;
	struct shmring_claim *claims;   /* the kind's claim records (MPMC), or NULL */
	struct shmring_claim *my_claim; /* ours among them: NULL without an entry */

	/* Producer side, owned by the role holder. */
	uint64_t prod_epoch;       /* fork epoch + 1 while this handle holds the role */
	uint64_t tail, tail_idx, head_cache;
	int reserved;

	/* Consumer side. */
	uint64_t cons_epoch;
	uint64_t head, head_idx, tail_cache;
	int held;

	uint8_t *stage;            /* process-local copy of one message, for Python */
	uint64_t stage_size;
};

#define NO_MASK UINT64_MAX

/* The slot of a free-running position.  A mask where it can: a 64-bit
 * division costs tens of cycles, as much as the rest of an MPMC put. */
static inline uint64_t pos_idx(const shmring_t *r, uint64_t pos)
{
	return likely(r->mask != NO_MASK) ? pos & r->mask : pos % r->capacity;
}

static inline uint8_t *slot_at(const shmring_t *r, uint64_t idx)
{
	return r->slots + idx * r->stride;
}

/* A message copy.  Lengths are run-time values, and for a small message
 * libc's memcpy (a call through the PLT and a size dispatch) costs as much as
 * the rest of a put, and makes the caller save registers around it.  8 to 64
 * bytes take two overlapping moves of 8, 16 or 32 bytes instead (the source,
 * a slot or the caller's buffer, never overlaps the destination); larger
 * ones, and the rare tiny ones, go to libc. */
static inline void copy_msg(void *dst, const void *src, uint64_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	if (n - 8 <= 16 - 8) {
		memcpy(d, s, 8);
		memcpy(d + n - 8, s + n - 8, 8);
	} else if (n - 17 <= 32 - 17) {
		memcpy(d, s, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	} else if (n - 33 <= 64 - 33) {
		memcpy(d, s, 32);
		memcpy(d + n - 32, s + n - 32, 32);
	} else {
		memcpy(d, s, n);
	}
}

/* A slot's record, meta_off bytes into it.  Batch loops pass meta_off from a
 * local (see next_slot()); the rest use slot_meta(). */
static inline struct shmring_slot_meta *meta_of(uint8_t *slot, uint64_t meta_off)
{
	return (struct shmring_slot_meta *)(void *)(slot + meta_off);
}

static inline struct shmring_slot_meta *slot_meta(const shmring_t *r, uint8_t *slot)
{
	return meta_of(slot, r->meta_off);
}

/* The slot after `slot` (at index *idx), wrapping at the end of the ring.
 * Batch loops keep cap and stride in locals: a store into a slot is a byte
 * store, which may alias *r as far as the compiler knows, and would make it
 * reload every field of the handle each message. */
static inline uint8_t *next_slot(const shmring_t *r, uint8_t *slot, uint64_t *idx,
				 uint64_t cap, uint64_t stride)
{
	if (unlikely(++*idx == cap)) {
		*idx = 0;
		return r->slots;
	}
	return slot + stride;
}

static inline uint64_t next_idx(const shmring_t *r, uint64_t idx)
{
	return idx + 1 == r->capacity ? 0 : idx + 1;
}

/* segment.c */
#define SHM_DIR "/dev/shm"
#define PREFIX "shmring."
#define NAME_MAX_LEN 200
int segment_geometry(uint64_t capacity, uint64_t slot_size, uint64_t page_size, int meta,
		     uint64_t *stride, uint64_t *meta_off, uint64_t *total);
int segment_create(const char *name, const struct shmring_params *p, shmring_t *r);
int segment_attach(const char *name, const char *hugetlbfs, int any_owner, shmring_t *r);
int segment_attach_fd(int fd, int any_owner, shmring_t *r);
void segment_remove(shmring_t *r);    /* unlink the file a failed create made */
void segment_unmap(shmring_t *r);

/* hugepages.c: where huge pages can come from, and what a mapping got */
enum backing { BACKING_SHM, BACKING_THP, BACKING_HUGETLBFS, BACKING_MEMFD, BACKING_NONE };
#define SEARCH_DIRS_MAX 8
struct search_dirs {
	int n;
	char dir[SEARCH_DIRS_MAX][512];
};
/* SEARCH_FIND: every place a ring may be (/dev/shm, `given`, $SHMRING_HUGETLBFS,
 * hugetlbfs mounts).  SEARCH_CREATE: the hugetlbfs directories to create in:
 * only `given` when given ("" = none), else $SHMRING_HUGETLBFS and the mounts.
 * Returns how many, or -EMEDIUMTYPE when `given` is not on hugetlbfs. */
enum { SEARCH_FIND, SEARCH_CREATE };
int search_dirs(const char *given, int purpose, struct search_dirs *d);
uint64_t hugetlbfs_page_size(const char *dir);     /* 0: not a hugetlbfs directory */
uint64_t thp_page_size(void);
int thp_mapped(const void *addr);   /* does our mapping at addr use huge PMDs? (smaps) */
/* The backing a descriptor's file implies (BACKING_SHM for any tmpfs file,
 * BACKING_NONE for other file systems), its /proc/self/fd link and page size. */
uint32_t fd_backing(int fd, char *link, size_t cap, uint64_t *page_size);
const char *backing_name(uint32_t backing);
int memfd_create_named(const char *name);
int stub_publish(const char *path, int memfd, uint64_t size, uint32_t mode);
int stub_is(int fd, uint64_t file_size);
int stub_follow(int stubfd, const char *name);   /* the memfd a stub names, or -errno */

/* peer.c: who holds what, and whether they still live */
extern _Atomic uint64_t peer_fork_epoch;
uint64_t peer_self_token(void);
int peer_alive(uint64_t token);
static inline int32_t peer_pid(uint64_t token) { return (int32_t)(token >> 32); }
/* 0: claimed a free role; 1: took it over from a dead holder; -EBUSY */
int role_claim(struct shmring_role *role, uint64_t *epoch);
void role_release(struct shmring_role *role, uint64_t *epoch);
static inline int role_held(uint64_t epoch)
{
	return epoch == load_relaxed(&peer_fork_epoch) + 1;
}
/* Take an entry in the attach table (and reset its claim record, if any). */
void attach_register(shmring_t *r);
void attach_unregister(shmring_t *r);

/* wait.c: the slow half of notify() */
void wait_wake_all(struct shmring_waitq *q);
/* Once per process, before its first publish: sets wait_asym to 1 when the
 * kernel gives this process membarrier(GLOBAL_EXPEDITED), so notify() may use
 * the light half of the fence. */
void wait_init(void);
#if defined(__SANITIZE_THREAD__) || defined(SHMRING_WAIT_RMW)
/* ThreadSanitizer cannot see membarrier: TSan builds (and builds that ask for
 * it) check the RMW handshake instead. */
#define wait_asym 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define wait_asym 0
#endif
#endif
#ifndef wait_asym
extern int wait_asym;
#endif

/* After publishing index stores: wake the other side if it sleeps; no system
 * call unless someone does.  With membarrier a relaxed load of `sleepers`
 * after a compiler barrier (the sleeper pays for the fence), else a seq_cst
 * read-modify-write: see the top of wait.c for why neither loses a wake-up. */
static inline void notify(struct shmring_waitq *q)
{
	uint32_t sleeping;

	if (likely(wait_asym)) {
		compiler_barrier();   /* the index store stays before the load */
		sleeping = load_relaxed(&q->sleepers);
	} else {
		sleeping = rmw_add_seq_cst(&q->sleepers, 0);
	}
	if (unlikely(sleeping))
		wait_wake_all(q);
}

/* crash.c: named crash points, a test hook armed by $SHMRING_CRASH */
extern _Atomic int crash_armed;
void crash_init(void);
void crash_point_hit(const char *point);
#define CRASH_POINT(point) \
	do { if (unlikely(load_relaxed(&crash_armed))) crash_point_hit(point); } while (0)

/* The kinds. */
extern const struct ring_ops spsc_ops;
extern const struct ring_ops mpmc_ops;
extern const struct ring_ops locked_ops;

#endif /* SHMRING_RING_H */
