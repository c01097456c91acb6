/* SPDX-License-Identifier: MIT */
/*
 * Peers: which process holds a role, and whether it still lives.
 *
 * A process is recorded in the segment as a token: pid << 32 | the low 32 bits
 * of its start time (/proc/<pid>/stat field 22).  The start time tells a dead
 * holder from an unrelated process that later got the same pid.
 *
 * A role (the SPSC producer or consumer) is held by one handle.  The hot path
 * asks only "does this handle hold it in this process?" (role_held: one load
 * of the fork epoch, bumped in every forked child so a child never inherits
 * its parent's roles).  Claiming is the slow path: a CAS from 0 or from a
 * token whose process is dead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ring.h"

_Atomic uint64_t peer_fork_epoch;
static _Atomic uint64_t self_token;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Reads state and start time of pid; 0 on success. */
static int proc_stat(int32_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024], *p;
	unsigned long long st = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	/* comm may contain spaces and parentheses: fields resume after the last ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u"
			 " %*d %*d %*d %*d %*d %*d %llu", state, &st) != 2)
		return -EIO;
	*start = st;
	return 0;
}

static uint64_t make_token(void)
{
	char state;
	uint64_t start = 0;
	int32_t pid = (int32_t)getpid();

	(void)proc_stat(pid, &state, &start);
	return (uint64_t)(uint32_t)pid << 32 | (uint32_t)start;
}

static void after_fork_child(void)
{
	/* The child holds none of its parent's roles and has its own token. */
	/* The child runs one thread here: a plain increment is enough. */
	store_relaxed(&peer_fork_epoch, load_relaxed(&peer_fork_epoch) + 1);
	store_relaxed(&self_token, make_token());
}

static void peer_init(void)
{
	store_relaxed(&self_token, make_token());
	pthread_atfork(NULL, NULL, after_fork_child);
}

uint64_t peer_self_token(void)
{
	pthread_once(&atfork_once, peer_init);
	return load_relaxed(&self_token);
}

int peer_alive(uint64_t token)
{
	int32_t pid = peer_pid(token);
	uint64_t start;
	char state;

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	if (proc_stat(pid, &state, &start) < 0)
		return errno != ENOENT && kill(pid, 0) == 0;
	if (state == 'Z' || state == 'X')
		return 0;                       /* exited, not yet reaped */
	return (uint32_t)start == (uint32_t)token;   /* else the pid was reused */
}

int role_claim(struct shmring_role *role, uint64_t *epoch)
{
	uint64_t me = peer_self_token();
	uint64_t cur = load_acquire(&role->token);   /* pairs with the CAS/release of the last holder */

	for (;;) {
		/* Held by this process but not by this handle (role_held said no):
		 * another handle here, which is as busy as another process. */
		if (cur != 0 && (cur == me || peer_alive(cur)))
			return -EBUSY;
		/* acq_rel: acquire the previous holder's last index stores (its
		 * release of the role, or its death), release our claim. */
		if (cas_acq_rel(&role->token, &cur, me))
			break;
	}
	*epoch = load_relaxed(&peer_fork_epoch) + 1;
	return cur != 0;    /* 1: taken over from a dead holder */
}

void role_release(struct shmring_role *role, uint64_t *epoch)
{
	uint64_t me = peer_self_token();

	if (!role_held(*epoch))
		return;
	*epoch = 0;
	/* Release: our index stores happen-before the next holder's claim. */
	cas_acq_rel(&role->token, &me, 0);
}

void attach_register(shmring_t *r)
{
	uint64_t me = peer_self_token();

	r->attach_epoch = load_relaxed(&peer_fork_epoch) + 1;
	for (unsigned i = 0; i < SHMRING_MAX_ATTACH; i++) {
		uint64_t cur = load_relaxed(&r->hdr->attached[i]);

		if ((cur == 0 || !peer_alive(cur)) &&
		    cas_acq_rel(&r->hdr->attached[i], &cur, me)) {
			r->attach_idx = (int)i;
			r->my_claim = r->claims ? &r->claims[i] : NULL;
			if (r->claims) {
				/* A dead holder's claims are not ours.  Until these
				 * stores land a survivor may still see them under our
				 * live token: that only delays its recovery. */
				for (int side = 0; side < 2; side++) {
					store_relaxed(&r->claims[i].first[side], 0);
					store_relaxed(&r->claims[i].end[side], 0);
				}
			}
			return;
		}
	}
	/* Table full: this process is not listed ("pids where known"), and its
	 * claims cannot be told from a dead one's: survivors stop recovering. */
	r->attach_idx = -1;
	r->my_claim = NULL;
	store_relaxed(&r->hdr->untracked, 1);   /* before our first claim's release CAS */
}

void attach_unregister(shmring_t *r)
{
	uint64_t me = peer_self_token();

	/* Our own entry: another handle's holds its claim record (mpmc.c), which
	 * must stay with a live handle.  A handle that never took one in this
	 * process (table full, or inherited across fork) removes nothing. */
	if (r->attach_idx >= 0 && role_held(r->attach_epoch))
		cas_acq_rel(&r->hdr->attached[r->attach_idx], &me, 0);
	r->attach_idx = -1;
	r->my_claim = NULL;
}
