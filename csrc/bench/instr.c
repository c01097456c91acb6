/* SPDX-License-Identifier: MIT */
/*
 * instr: instructions per message, counted by callgrind (instr.sh), for
 * shmring's cores and the textbook references of refs.h.  One process puts a
 * batch and gets it back, N times.  Instruction counts do not depend on the
 * host's noise, so they show what a change to the core's code costs where
 * the timed benchmark (refbench) cannot: this host's timings move 2-10x.
 *
 * usage: instr VARIANT KIND ARRAY MSG BATCH ROUNDS
 *   VARIANT shmring | ref | slot    KIND spsc | mpmc    ARRAY 0 | 1
 *   MSG 8 | 64   BATCH 1 | 256   ROUNDS: put+get rounds (ROUNDS * BATCH messages)
 * instr.sh runs it at two ROUNDS and divides the difference: setup cancels.
 * Every message is stamped and checked, as in refbench.  Exit 0 on success.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmring.h"
#include "refs.h"

#define CAP 4096
#define MAXB 256

typedef int64_t (*ref_fn)(void *b, uint64_t cap, void *msgs, uint64_t n);

/* The same instances as refbench: packed textbook, and textbook in shmring's slot. */
#define RS(NAME, M, S, L)                                                                 \
	static __attribute__((noinline)) int64_t NAME##_put(void *b, uint64_t c, void *m, uint64_t n) \
	{ return rs_put(b, c, m, n, M, S, L, 0); }                                         \
	static __attribute__((noinline)) int64_t NAME##_get(void *b, uint64_t c, void *m, uint64_t n) \
	{ return rs_get(b, c, m, n, M, S, L, 0); }
#define VQ(NAME, M, S, Q, D, L)                                                           \
	static __attribute__((noinline)) int64_t NAME##_put(void *b, uint64_t c, void *m, uint64_t n) \
	{ return vq_many(b, c, m, n, 0, M, S, Q, D, L, 0, 0); }                            \
	static __attribute__((noinline)) int64_t NAME##_get(void *b, uint64_t c, void *m, uint64_t n) \
	{ return vq_many(b, c, m, n, 1, M, S, Q, D, L, 0, 0); }
RS(rs8, 8, 8, 0) RS(rs8_slot, 8, 64, 8) RS(rs8_arr, 8, 64, 0)
RS(rs64, 64, 64, 0) RS(rs64_slot, 64, 128, 64)
VQ(vq8, 8, 16, 0, 8, 0) VQ(vq8_slot, 8, 64, 8, 0, 16)
VQ(vq64, 64, 72, 0, 8, 0) VQ(vq64_slot, 64, 128, 64, 0, 72)

static inline void stamp(uint8_t *m, uint64_t msg, uint64_t seq)
{
	memcpy(m, &seq, 8);
	if (msg >= 16)
		memcpy(m + msg - 8, &seq, 8);
}

static inline int stamp_ok(const uint8_t *m, uint64_t msg, uint64_t seq)
{
	uint64_t a, z = seq;

	memcpy(&a, m, 8);
	if (msg >= 16)
		memcpy(&z, m + msg - 8, 8);
	return a == seq && z == seq;
}

int main(int argc, char **argv)
{
	static uint8_t buf[MAXB * 64], out[MAXB * 64];
	const char *variant;
	int mpmc, array;
	uint64_t msg, batch, rounds, seq = 0, got = 0;
	ref_fn put = NULL, get = NULL;
	shmring_t *r = NULL;
	void *b = NULL;
	char name[64];

	if (argc != 7) {
		fprintf(stderr, "usage: instr shmring|ref|slot spsc|mpmc ARRAY MSG BATCH ROUNDS\n");
		return 2;
	}
	variant = argv[1];
	mpmc = !strcmp(argv[2], "mpmc");
	array = atoi(argv[3]);
	msg = strtoull(argv[4], NULL, 10);
	batch = strtoull(argv[5], NULL, 10);
	rounds = strtoull(argv[6], NULL, 10);
	if ((msg != 8 && msg != 64) || batch < 1 || batch > MAXB)
		return 2;

	if (!strcmp(variant, "shmring")) {
		struct shmring_params p = {
			.kind = mpmc ? SHMRING_MPMC : SHMRING_SPSC, .capacity = CAP,
			.slot_size = msg, .mode = 0600,
		};

		if (array) {
			p.ndim = 1;
			p.shape[0] = msg;
			p.dtype = "'|u1'";
		}
		snprintf(name, sizeof(name), "instr.%d", (int)getpid());
		if (shmring_create(name, &p, &r) < 0)
			return 1;
		shmring_unlink(name);   /* the mapping stays */
	} else {
		int slot = !strcmp(variant, "slot");

		b = mmap(NULL, REF_SLOTS_OFF + CAP * 128, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (b == MAP_FAILED)
			return 1;
		if (mpmc) {
			put = msg == 8 ? (slot ? vq8_slot_put : vq8_put) : (slot ? vq64_slot_put : vq64_put);
			get = msg == 8 ? (slot ? vq8_slot_get : vq8_get) : (slot ? vq64_slot_get : vq64_get);
			vq_init(b, CAP, msg == 8 ? (slot ? 64 : 16) : (slot ? 128 : 72),
				slot ? msg : 0);
		} else if (msg == 8) {
			put = !slot ? rs8_put : array ? rs8_arr_put : rs8_slot_put;
			get = !slot ? rs8_get : array ? rs8_arr_get : rs8_slot_get;
		} else {
			/* array rings of 64-byte messages: the slot is the textbook one */
			put = slot && !array ? rs64_slot_put : rs64_put;
			get = slot && !array ? rs64_slot_get : rs64_get;
		}
	}

	for (uint64_t i = 0; i < rounds; i++) {
		const uint8_t *from = out;
		int64_t n;

		for (uint64_t k = 0; k < batch; k++)
			stamp(buf + k * msg, msg, seq++);
		if (r && batch == 1)
			n = shmring_try_put(r, (const char *)buf, msg);
		else if (r)
			n = shmring_try_put_many(r, buf, NULL, batch);
		else
			n = put(b, CAP, buf, batch);
		if (n != (int64_t)batch)
			return 1;
		if (r && batch == 1) {
			/* checked where Python reads it, as refbench does */
			n = shmring_try_get_staged(r) == (int64_t)msg;
			from = shmring_stage(r);
		} else if (r) {
			n = shmring_try_get_many(r, out, NULL, batch);
		} else {
			n = get(b, CAP, out, batch);
		}
		if (n != (int64_t)batch)
			return 1;
		for (uint64_t k = 0; k < batch; k++)
			if (!stamp_ok(from + k * msg, msg, got++))
				return 1;
	}
	if (r)
		shmring_free(r);
	return 0;
}
