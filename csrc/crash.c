/* SPDX-License-Identifier: MIT */
/*
 * Named crash points: a test hook that kills this process with SIGKILL at a
 * chosen instruction, so tests can show what survivors do when a peer dies
 * exactly there (between claiming a slot and publishing it, say).
 *
 *   SHMRING_CRASH=<point>[:<n>]   die the n-th time (default 1st) <point> is passed
 *
 * Points are named where they are placed (CRASH_POINT in spsc.c, mpmc.c,
 * locked.c).  Read at the first create or attach of a process (a forked
 * child reads it again, so a test can fork, set it, and attach).  Disarmed, a
 * point costs one relaxed load and a predicted branch.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"

_Atomic int crash_armed;
static char crash_at[64];
static _Atomic long crash_countdown;
static pthread_once_t crash_once = PTHREAD_ONCE_INIT;
static _Atomic int crash_reread;   /* set in a forked child */

static void crash_arm(void)
{
	const char *spec = getenv("SHMRING_CRASH");
	const char *colon;
	size_t len;
	long n = 1;

	store_relaxed(&crash_armed, 0);
	if (!spec || !*spec)
		return;
	colon = strchr(spec, ':');
	len = colon ? (size_t)(colon - spec) : strlen(spec);
	if (len >= sizeof(crash_at))
		return;
	if (colon && (n = strtol(colon + 1, NULL, 10)) < 1)
		n = 1;
	memcpy(crash_at, spec, len);
	crash_at[len] = 0;
	store_relaxed(&crash_countdown, n);
	store_relaxed(&crash_armed, 1);
}

static void crash_after_fork(void)
{
	store_relaxed(&crash_reread, 1);
}

static void crash_first(void)
{
	crash_arm();
	pthread_atfork(NULL, NULL, crash_after_fork);
}

void crash_init(void)
{
	pthread_once(&crash_once, crash_first);
	if (unlikely(load_relaxed(&crash_reread))) {   /* a forked child, still one thread */
		store_relaxed(&crash_reread, 0);
		crash_arm();
	}
}

void crash_point_hit(const char *point)
{
	if (strcmp(point, crash_at) == 0 && rmw_add_seq_cst(&crash_countdown, -1) == 1)
		raise(SIGKILL);
}
