/* SPDX-License-Identifier: MIT */
/*
 * The shared-memory layout of a ring: the ABI between processes.
 * Fixed-width types only; every offset is pinned by a _Static_assert below.
 *
 *   0      header      identity and geometry; read-only once `abi` is set
 *   64     description dtype and shape of an array ring (opaque to C)
 *   320    control     shutdown flag, role owners
 *   384    attached    tokens of the processes that have the ring mapped
 *   1024   producer    the producers' index `tail`              (own 128 bytes)
 *   1152   consumer    the consumers' index `head`              (own 128 bytes)
 *   1280   waiting     wait queues: consumers wait for data, producers for space
 *   2048   kind area   private to one ring kind (the locked ring's mutex, ...)
 *   4096   slots       capacity * slot_stride bytes
 *
 * Index rule (io_uring's words): producers advance `tail`, consumers advance
 * `head`.  Both are free-running 64-bit counters; slot = counter % capacity;
 * the ring holds tail - head messages, never more than capacity.
 *
 * A slot: payload (slot_size bytes, 64-byte aligned), then a small metadata
 * record (message length; sequence word for the MPMC kind), padded so the next
 * payload starts on a 64-byte line.  SPSC array rings have no record: their
 * messages always fill the slot.
 *
 * Initialisation protocol: the creator fills everything, then publishes `abi`
 * with a release store.  An attacher acquire-loads `abi` first; 0 means "not
 * ready", another value is another ABI.  After attach nothing in the header is
 * re-read: the handle keeps its own validated copy of the geometry.
 */
#ifndef SHMRING_ABI_H
#define SHMRING_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>

#define SHMRING_MAGIC      0x474e495200534853ull /* "SHS\0RING" little-endian */
#define SHMRING_ABI        2u   /* 2: mpmc claim records, lost count */
#define SHMRING_CACHELINE  64u
#define SHMRING_SLOTS_OFF  4096u
#define SHMRING_MAX_NDIM   8u
#define SHMRING_DTYPE_MAX  184u
#define SHMRING_MAX_ATTACH 32u

/* Bounds that keep every size computation far from overflow. */
#define SHMRING_MAX_CAPACITY  ((uint64_t)1 << 31)
#define SHMRING_MAX_SLOT_SIZE ((uint64_t)1 << 40)
#define SHMRING_MAX_TOTAL     ((uint64_t)1 << 46)

/* header.flags */
#define SHMRING_F_ARRAY  (1u << 0)   /* an array ring: description is valid */

struct shmring_slot_meta {
	_Atomic uint64_t seq;   /* MPMC turn word; unused by SPSC */
	uint64_t len;           /* message length, <= slot_size; checked on read */
};

/* A wait queue (wait.c): sleepers futex-wait on `seq`, a notifier bumps it. */
struct shmring_waitq {
	_Atomic uint32_t seq;        /* the futex word */
	_Atomic uint32_t sleepers;   /* processes in, or about to enter, futex_wait */
};

/* What one handle has claimed and not finished (MPMC): positions [first, end)
 * of the producers' (side 0) or consumers' (side 1) counter.  One record per
 * attach-table entry, a cache line each, in the MPMC kind area; a survivor
 * reads them to tell a dead claimant's position from a live one's (mpmc.c). */
struct shmring_claim {
	_Atomic uint64_t first[2];
	_Atomic uint64_t end[2];
	uint8_t _pad[32];
};

struct shmring_role {
	/* pid << 32 | low 32 bits of the process start time; 0 = free */
	_Atomic uint64_t token;
};

struct shmring_hdr {
	/* line 0: identity and geometry */
	uint64_t magic;
	_Atomic uint32_t abi;        /* 0 until initialised; published last */
	uint32_t kind;
	uint32_t flags;
	uint32_t hdr_size;           /* == SHMRING_SLOTS_OFF */
	uint64_t capacity;
	uint64_t slot_size;
	uint64_t slot_stride;
	uint64_t slots_offset;
	uint64_t total_size;

	/* 64: description of an array ring, stored for Python, opaque to C */
	uint32_t ndim;
	uint32_t dtype_len;
	uint64_t shape[SHMRING_MAX_NDIM];
	char dtype[SHMRING_DTYPE_MAX];

	/* 320: control, written rarely */
	_Atomic uint32_t shutdown;
	_Atomic uint32_t untracked;  /* a handle found the attach table full (peer.c) */
	struct shmring_role producer_role;
	struct shmring_role consumer_role;
	uint64_t creator;            /* token of the creating process */
	_Atomic uint64_t lost;       /* messages of dead peers given up by survivors */
	uint32_t backing;            /* how the creator's memory came (hugepages.c); info only */
	uint8_t _pad1[20];

	/* 384 */
	_Atomic uint64_t attached[SHMRING_MAX_ATTACH];
	uint8_t _pad2[1024 - 384 - 8 * SHMRING_MAX_ATTACH];

	/* 1024: written by producers only.  128 bytes, not 64: the adjacent-line
	 * prefetcher pulls lines in pairs, so 64 would still share. */
	_Atomic uint64_t tail;
	uint8_t _pad3[128 - 8];

	/* 1152: written by consumers only */
	_Atomic uint64_t head;
	uint8_t _pad4[128 - 8];

	/* 1280: wait queues, each on its own pair of lines */
	struct shmring_waitq data_waitq;     /* consumers wait here for messages */
	uint8_t _pad5[128 - 8];
	struct shmring_waitq space_waitq;    /* producers wait here for free slots */
	uint8_t _pad6[2048 - 1408 - 8];

	/* 2048: private to one ring kind */
	uint8_t kind_area[4096 - 2048];
};

_Static_assert(sizeof(struct shmring_hdr) == SHMRING_SLOTS_OFF, "header is one page");
_Static_assert(offsetof(struct shmring_hdr, backing) == 360, "backing on the control line");
_Static_assert(offsetof(struct shmring_hdr, ndim) == 64, "description on line 1");
_Static_assert(offsetof(struct shmring_hdr, shutdown) == 320, "control line");
_Static_assert(offsetof(struct shmring_hdr, creator) == 344, "creator token (tests read it)");
_Static_assert(offsetof(struct shmring_hdr, attached) == 384, "attach table");
_Static_assert(offsetof(struct shmring_hdr, tail) == 1024, "producer line");
_Static_assert(offsetof(struct shmring_hdr, head) - offsetof(struct shmring_hdr, tail) >= 128,
	       "head and tail must not share a prefetch pair of cache lines");
_Static_assert(offsetof(struct shmring_hdr, data_waitq) == 1280, "wait queues");
_Static_assert(offsetof(struct shmring_hdr, space_waitq) == 1408, "wait queues apart");
_Static_assert(offsetof(struct shmring_hdr, kind_area) == 2048, "kind area");
_Static_assert(sizeof(struct shmring_slot_meta) == 16, "slot metadata");
_Static_assert(sizeof(struct shmring_claim) == SHMRING_CACHELINE, "a claim record per line");
_Static_assert(SHMRING_MAX_ATTACH * sizeof(struct shmring_claim) <= 4096 - 2048,
	       "claim records fit the kind area");
/* Shared atomics must not hide a lock: a lock would be process-local. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

/*
 * A ring in anonymous huge memory (memfd-hugetlb) has no file of its own to be
 * found by; its name in /dev/shm is this stub instead.  The memory stays
 * reachable by name while the creating process holds the descriptor:
 * others open /proc/<creator pid>/fd/<fd>.
 */
#define SHMRING_STUB_MAGIC 0x4255545300534853ull  /* "SHS\0STUB" little-endian */

struct shmring_stub {
	uint64_t magic;
	uint64_t creator;            /* token (pid << 32 | start time) of the holder */
	int32_t fd;                  /* the memfd's descriptor number in that process */
	uint32_t backing;
	uint64_t size;               /* the segment's size in bytes */
	uint8_t _pad[32];
};
_Static_assert(sizeof(struct shmring_stub) == 64, "stub");

#endif /* SHMRING_ABI_H */
