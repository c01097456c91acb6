/* SPDX-License-Identifier: MIT */
/*
 * The public entry points: lifecycle, info, and dispatch to the ring kinds.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

/* Messages up to this size are handed to Python through the staging buffer. */
#define STAGE_MAX 65536

static const struct ring_ops *ops_for(uint32_t kind)
{
	switch (kind) {
	case SHMRING_SPSC:
		return &spsc_ops;
	case SHMRING_MPMC:
		return &mpmc_ops;
	case SHMRING_LOCKED:
		return &locked_ops;
	default:
		return NULL;
	}
}

/* A waiter spins about as long as one futex wake-up costs here (~20-30 us). */
#define DEFAULT_SPIN_NS 20000

static int finish_open(shmring_t *r, shmring_t **out)
{
	int rc;

	wait_init();   /* before this process can publish: notify() depends on it */
	r->spin_ns = DEFAULT_SPIN_NS;
	crash_init();
	if (r->ops->attach && (rc = r->ops->attach(r)) < 0)
		return rc;
	if (r->slot_size <= STAGE_MAX) {
		r->stage_size = r->slot_size;
		if (!(r->stage = malloc(r->stage_size)))
			return -ENOMEM;
	}
	if (!r->observer)
		attach_register(r);
	*out = r;
	return 0;
}

int shmring_create(const char *name, const struct shmring_params *p, shmring_t **out)
{
	shmring_t *r;
	int rc;

	if (!p || !out)
		return -EINVAL;
	if (!ops_for(p->kind))
		return -ENOTSUP;
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	if ((rc = segment_create(name, p, r)) < 0) {
		free(r);
		return rc;
	}
	r->ops = ops_for(r->kind);
	if (r->ops->init && (rc = r->ops->init(r)) < 0) {
		segment_remove(r);
		shmring_free(r);
		return rc;
	}
	r->hdr->creator = peer_self_token();
	/* SYNC POINT: publishes the initialised header and kind area; pairs
	 * with the acquire of abi in segment_attach(). */
	store_release(&r->hdr->abi, SHMRING_ABI);
	if ((rc = finish_open(r, out)) < 0) {
		segment_remove(r);
		shmring_free(r);
	}
	return rc;
}

/* The rest of an attach, given what segment_attach*() returned for r. */
static int attach_finish(shmring_t *r, int rc, int flags, shmring_t **out)
{
	if (rc < 0) {
		free(r);
		return rc;
	}
	r->observer = !!(flags & SHMRING_ATTACH_OBSERVE);
	r->attach_idx = -1;     /* no entry until attach_register() (never, for an observer) */
	if (!(r->ops = ops_for(r->kind))) {
		segment_unmap(r);
		free(r);
		return -ENOTSUP;
	}
	if ((rc = finish_open(r, out)) < 0)
		shmring_free(r);
	return rc;
}

int shmring_attach_at(const char *name, const char *hugetlbfs, int flags, shmring_t **out)
{
	shmring_t *r;

	if (!out)
		return -EINVAL;
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	return attach_finish(r, segment_attach(name, hugetlbfs, flags & SHMRING_ATTACH_ANY_OWNER, r),
			     flags, out);
}

int shmring_attach(const char *name, int flags, shmring_t **out)
{
	return shmring_attach_at(name, NULL, flags, out);
}

int shmring_attach_fd(int fd, int flags, shmring_t **out)
{
	shmring_t *r;

	if (!out)
		return -EINVAL;
	if (!(r = calloc(1, sizeof(*r))))
		return -ENOMEM;
	return attach_finish(r, segment_attach_fd(fd, flags & SHMRING_ATTACH_ANY_OWNER, r), flags, out);
}

void shmring_close(shmring_t *r)
{
	if (!r || r->closed)
		return;
	r->closed = 1;
	if (r->ops->close)
		r->ops->close(r);
	if (!r->observer)
		attach_unregister(r);
}

void shmring_free(shmring_t *r)
{
	if (!r)
		return;
	if (r->ops)
		shmring_close(r);
	segment_unmap(r);
	free(r->stage);
	free(r);
}

void *shmring_base(shmring_t *r)
{
	return r->hdr;
}

void *shmring_stage(shmring_t *r)
{
	return r->stage;
}

uint64_t shmring_length(shmring_t *r)
{
	uint64_t h = load_acquire(&r->hdr->head);  /* head first: tail only grows after it */
	uint64_t t = load_acquire(&r->hdr->tail);

	if (t - h > r->capacity)
		return t < h ? 0 : r->capacity;   /* torn snapshot or corrupt: clamp */
	return t - h;
}

int shmring_info(shmring_t *r, struct shmring_info *o)
{
	const struct shmring_hdr *h = r->hdr;
	unsigned n = 0;

	memset(o, 0, sizeof(*o));
	o->kind = r->kind;
	o->capacity = r->capacity;
	o->slot_size = r->slot_size;
	o->slot_stride = r->stride;
	o->slots_offset = SHMRING_SLOTS_OFF;
	o->size_bytes = r->map_size;
	o->page_size = r->page_size;
	memcpy(o->backing, r->backing, sizeof(o->backing));
	memcpy(o->path, r->path, sizeof(o->path));
	/* The description is Python's; copy it out bounded, Python re-validates it. */
	o->is_array = !!(h->flags & SHMRING_F_ARRAY);
	o->ndim = read_once(h->ndim) <= SHMRING_MAX_NDIM ? h->ndim : 0;
	for (unsigned i = 0; i < SHMRING_MAX_NDIM; i++)
		o->shape[i] = h->shape[i];
	memcpy(o->dtype, h->dtype, SHMRING_DTYPE_MAX);
	o->dtype[SHMRING_DTYPE_MAX] = 0;
	o->length = shmring_length(r);
	o->shut_down = load_acquire(&r->hdr->shutdown) != 0;
	o->lost = load_relaxed(&h->lost);
	{
		uint64_t p = load_acquire(&r->hdr->producer_role.token);
		uint64_t c = load_acquire(&r->hdr->consumer_role.token);

		o->producer_pid = p && peer_alive(p) ? peer_pid(p) : 0;
		o->consumer_pid = c && peer_alive(c) ? peer_pid(c) : 0;
	}
	/* Stale: nobody but this handle is attached (a process's other handles
	 * count).  `ls` attaches only to look (an observer has no entry), and
	 * must not keep a ring alive. */
	o->stale = 1;
	for (unsigned i = 0; i < SHMRING_MAX_ATTACH; i++) {
		uint64_t tok = load_acquire(&r->hdr->attached[i]);
		int dup = 0;

		if (!tok || !peer_alive(tok))
			continue;
		if ((int)i != r->attach_idx || !role_held(r->attach_epoch))
			o->stale = 0;   /* not this handle's own entry */
		for (unsigned j = 0; j < n; j++)
			dup |= o->pids[j] == peer_pid(tok);
		if (!dup && n < 31)
			o->pids[n++] = peer_pid(tok);
	}
	return 0;
}

int shmring_shutdown(shmring_t *r)
{
	if (r->closed)
		return -EBADF;
	/* SYNC POINT: pairs with the acquire of shutdown in the get side's
	 * empty check (and with the waiters' readiness checks). */
	store_release(&r->hdr->shutdown, 1);
	/* Every waiter on every side must look again (rare: no need to ask). */
	wait_wake_all(&r->hdr->data_waitq);
	wait_wake_all(&r->hdr->space_waitq);
	if (r->ops->shutdown)
		r->ops->shutdown(r);
	return 0;
}

#define ENTER(r) do { if (unlikely((r)->closed)) return -EBADF; } while (0)

int shmring_try_put(shmring_t *r, const char *src, uint64_t len)
{
	ENTER(r);
	return r->ops->try_put(r, src, len);
}

int64_t shmring_try_put_many(shmring_t *r, const void *src, const uint64_t *lens, uint64_t n)
{
	ENTER(r);
	if (n == 0)
		return -EINVAL;
	return r->ops->try_put_many(r, src, lens, n);
}

int64_t shmring_try_reserve(shmring_t *r)
{
	ENTER(r);
	return r->ops->try_reserve(r);
}

int shmring_commit(shmring_t *r, uint64_t len)
{
	ENTER(r);
	return r->ops->commit(r, len);
}

int shmring_abandon(shmring_t *r)
{
	ENTER(r);
	return r->ops->abandon(r);
}

int64_t shmring_try_front(shmring_t *r, uint64_t *len)
{
	ENTER(r);
	return r->ops->try_front(r, len);
}

int shmring_release(shmring_t *r)
{
	ENTER(r);
	return r->ops->release(r);
}

int64_t shmring_try_get_staged(shmring_t *r)
{
	ENTER(r);
	if (unlikely(!r->stage))
		return -E2BIG;
	return r->ops->try_get(r, r->stage);
}

int64_t shmring_try_get_many(shmring_t *r, void *dst, uint64_t *lens, uint64_t max)
{
	ENTER(r);
	if (max == 0)
		return -EINVAL;
	return r->ops->try_get_many(r, dst, lens, max);
}

const char *shmring_strerror(int err)
{
	switch (-err) {
	case EUCLEAN: return "ring indices or lengths in shared memory are corrupted";
	case EBUSY: return "the role is held by another live handle";
	case EOWNERDEAD: return "the peer this wait depends on died holding its role";
	case EMSGSIZE: return "message larger than a slot";
	case EINPROGRESS: return "a reserved or received slot is still open on this handle";
	case EPIPE: return "the ring was shut down";
	case ENODATA: return "the ring was shut down and is drained";
	case EBADF: return "the ring handle is closed";
	case EPROTO: return "not a shmring segment";
	case EPROTONOSUPPORT: return "the segment has another shmring ABI version";
	case EBADMSG: return "the segment header describes an impossible geometry";
	default: return strerror(-err);
	}
}
