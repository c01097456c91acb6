/* SPDX-License-Identifier: MIT */
/*
 * Seed corpus for fuzz_attach: images of real segments, as the library itself
 * leaves them.  Every kind, byte and array rings, capacities 1-4, in the states
 * a peer meets: empty, partly full, full, wrapped, a reservation or a received
 * slot open, shut down.  Usage: make_seeds DIR
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"

static const char *dir;
static int count;

static void dump(shmring_t *r, const char *what)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%03d-%s", dir, count++, what);
	if (!(f = fopen(path, "wb")) || fwrite(shmring_base(r), 1, r->map_size, f) != r->map_size) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static void put_n(shmring_t *r, unsigned n, uint64_t len)
{
	static const char msg[256] = "a message of some bytes";

	for (unsigned i = 0; i < n; i++)
		if (shmring_try_put(r, msg, len) != 1)
			return;
}

int main(int argc, char **argv)
{
	static const char *kinds[] = { "", "spsc", "mpmc", "locked" };
	char name[64], what[64];

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	snprintf(name, sizeof(name), "fuzz.seeds.%d", (int)getpid());
	for (uint32_t kind = SHMRING_SPSC; kind <= SHMRING_LOCKED; kind++)
		for (int array = 0; array <= 1; array++)
			for (uint64_t cap = 1; cap <= 4; cap++) {
				struct shmring_params p = { .kind = kind, .hugepages = SHMRING_HUGE_OFF,
							    .capacity = cap, .mode = 0600 };
				uint64_t len;
				shmring_t *r;
				int64_t rc;

				if (array) {
					p.ndim = 1;
					p.shape[0] = 3;
					p.dtype = "<f8";
					p.slot_size = 24;
				} else {
					p.slot_size = cap == 3 ? 100 : 24;
				}
				len = array ? p.slot_size : 5;
				if ((rc = shmring_create(name, &p, &r)) < 0) {
					fprintf(stderr, "create: %s\n", shmring_strerror((int)rc));
					return 1;
				}
				shmring_unlink(name);
#define DUMP(state) do { snprintf(what, sizeof(what), "%s-%s-cap%llu-%s", kinds[kind], \
				  array ? "array" : "bytes", (unsigned long long)cap, state); \
				  dump(r, what); } while (0)
				DUMP("empty");
				put_n(r, 1, len);
				DUMP("one");
				put_n(r, (unsigned)cap, len);
				DUMP("full");
				/* wrap: take two, put two */
				for (int i = 0; i < 2; i++)
					(void)shmring_try_get_staged(r);
				put_n(r, 2, len);
				DUMP("wrapped");
				if ((rc = shmring_try_front(r, &len)) >= 0) {
					DUMP("recv-open");
					shmring_release(r);
				}
				if ((rc = shmring_try_reserve(r)) >= 0) {
					DUMP("reserve-open");
					shmring_abandon(r);
					DUMP("abandoned");
				}
				shmring_shutdown(r);
				DUMP("shutdown");
				shmring_free(r);
			}
	printf("%d seeds in %s\n", count, dir);
	return 0;
}
