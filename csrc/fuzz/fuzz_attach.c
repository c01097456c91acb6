/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a hostile or buggy peer wrote the whole segment.
 *
 * The input is the image of a segment (header page, then slots: identity,
 * geometry, description, roles, attach table, head/tail, wait queues, slot
 * lengths and MPMC turn words), at most a few pages.  The target writes it to
 * a fresh shm object, attaches to it by name (the header validation under
 * test) and, when attach accepts it, drives every non-blocking call of the
 * kind the header names: gets (copy, zero copy, batches), puts, reserve with
 * commit and abandon, length, info, zero-timeout waits, shutdown.
 *
 * What is promised (README, issue 7 point 3) and so what may be fuzzed: a
 * reader never touches memory outside its mapping, never loops without bound,
 * never trusts an unchecked index or length.  Every outcome is an errno; a
 * crash, a sanitizer report or a hang (libFuzzer's -timeout) is a bug.
 *
 * Not fuzzed, because not promised: the locked kind's mutex and semaphores
 * (README, known limits: a peer that scribbles over them can hang that kind).
 * For a locked image the target overwrites the kind area with a genuine one,
 * taken from a real locked ring holding as many messages as the image claims
 * (0-4), so the rest of the image (indices, lengths, roles) is still hostile.
 * An image whose `abi` word is 0 is not attached: attach then waits up to 1 s
 * for a creator to publish it (csrc/tests/test_ring.c covers that wait).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ring.h"

#define IMAGE_MAX (4 * 4096)
#define LOCKED_TEMPLATES 5     /* a locked ring of capacity 4 holding 0..4 messages */

static char seg_name[64];
static uint8_t locked_area[LOCKED_TEMPLATES][sizeof(((struct shmring_hdr *)0)->kind_area)];

static void make_locked_templates(void)
{
	struct shmring_params p = { .kind = SHMRING_LOCKED, .hugepages = SHMRING_HUGE_OFF,
				    .capacity = 4, .slot_size = 8, .mode = 0600 };
	char tname[64];
	shmring_t *r;

	snprintf(tname, sizeof(tname), "fuzz.template.%d", (int)getpid());
	if (shmring_create(tname, &p, &r) < 0) {
		perror("fuzz: cannot create the locked template ring");
		abort();
	}
	shmring_unlink(tname);
	for (int k = 0; k < LOCKED_TEMPLATES; k++) {
		memcpy(locked_area[k], r->hdr->kind_area, sizeof(locked_area[k]));
		if (k < LOCKED_TEMPLATES - 1 && shmring_try_put(r, "12345678", 8) != 1)
			abort();
	}
	shmring_free(r);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(seg_name, sizeof(seg_name), "fuzz.%d", (int)getpid());
	shmring_unlink(seg_name);
	make_locked_templates();
	return 0;
}

/* Write the image to a new shm object. */
static void write_segment(const uint8_t *img, size_t size)
{
	char path[96];
	int fd;

	snprintf(path, sizeof(path), "/shmring.%s", seg_name);
	fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || pwrite(fd, img, size, 0) != (ssize_t)size) {
		perror("fuzz: cannot write the segment");
		abort();
	}
	close(fd);
}

/* What a caller may rely on whatever the segment holds: a slot index inside
 * the ring, a length inside the slot.  (The sanitizers cannot see a stray
 * access into the mapping's neighbours, so these are checked outright.) */
#define PROMISE(cond) do { if (!(cond)) { \
	fprintf(stderr, "fuzz_attach: broken promise: %s\n", #cond); abort(); } } while (0)

/* Every non-blocking call on one handle, in an order that reaches both
 * ends of the ring; beyond the promises above, return codes are not judged,
 * only memory and time. */
static void drive(shmring_t *r, int shut)
{
	uint64_t lens[4], len;
	struct shmring_info info;
	uint8_t *dst;
	int64_t idx;
	size_t dst_size;

	shmring_set_spin(r, 0);
	(void)shmring_length(r);
	(void)shmring_info(r, &info);
	/* at most a few pages are mapped, so the slot size is small */
	dst_size = 4 * r->slot_size;
	if (!(dst = malloc(dst_size ? dst_size : 1)))
		abort();
	for (uint64_t i = 0; i < r->capacity + 2; i++) {
		int64_t n = shmring_try_get_staged(r);

		PROMISE(n < 0 || (uint64_t)n <= r->slot_size);
		if ((idx = shmring_try_front(r, &len)) >= 0) {
			uint8_t *slot = (uint8_t *)shmring_base(r) + SHMRING_SLOTS_OFF + (uint64_t)idx * r->stride;

			PROMISE((uint64_t)idx < r->capacity && len <= r->slot_size);
			memcpy(dst, slot, len);   /* what Python's view would read */
			(void)shmring_release(r);
		}
		n = shmring_try_get_many(r, dst, lens, 4);
		PROMISE(n <= 4);
		for (int64_t j = 0; j < n; j++)
			PROMISE(lens[j] <= r->slot_size);
	}
	memset(dst, 0x5a, dst_size);
	(void)shmring_try_put(r, (const char *)dst, r->slot_size);
	lens[0] = 0;
	lens[1] = r->slot_size;
	(void)shmring_try_put_many(r, dst, lens, 2);
	if ((idx = shmring_try_reserve(r)) >= 0) {
		PROMISE((uint64_t)idx < r->capacity);
		memset((uint8_t *)shmring_base(r) + SHMRING_SLOTS_OFF + (uint64_t)idx * r->stride, 1, r->slot_size);
		(void)shmring_commit(r, r->slot_size);
	}
	if (shmring_try_reserve(r) >= 0)
		(void)shmring_abandon(r);
	(void)shmring_wait_readable(r, 0);
	(void)shmring_wait_writable(r, 0);
	(void)shmring_try_get_many(r, dst, lens, 4);
	if (shut) {
		(void)shmring_shutdown(r);
		(void)shmring_try_get_staged(r);
		(void)shmring_try_put(r, (const char *)dst, 1);
		(void)shmring_length(r);
	}
	free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_Alignas(64) uint8_t img[IMAGE_MAX];
	struct shmring_hdr *h = (struct shmring_hdr *)(void *)img;
	shmring_t *r, *r2;

	if (size > IMAGE_MAX)
		return -1;    /* keep it out of the corpus */
	/* The segment is the image padded with zeros to whole pages. */
	memset(img, 0, sizeof(img));
	memcpy(img, data, size);
	if (size == 0 || h->abi == 0)
		return 0;
	if (h->kind == SHMRING_LOCKED) {
		uint64_t n = h->tail - h->head;

		memcpy(h->kind_area, locked_area[n < LOCKED_TEMPLATES ? n : LOCKED_TEMPLATES - 1],
		       sizeof(h->kind_area));
	}
	/* Only tools read the creator (a test suite's leak check tells a live
	 * process's ring from a leftover by it): name ourselves, so that a test
	 * run beside the fuzzer leaves our segment alone. */
	h->creator = peer_self_token();
	write_segment(img, (size + 4095) / 4096 * 4096);
	if (shmring_attach(seg_name, 0, &r) == 0) {
		drive(r, 0);
		/* Closing gives up the roles: a second handle takes them over and
		 * meets the indices the first left behind. */
		shmring_close(r);
		if (shmring_attach(seg_name, 0, &r2) == 0) {
			drive(r2, 1);
			shmring_free(r2);
		}
		shmring_free(r);
	}
	shmring_unlink(seg_name);
	return 0;
}
