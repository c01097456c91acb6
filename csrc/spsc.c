/* SPDX-License-Identifier: MIT */
/*
 * The SPSC ring: Lamport's ring with cached indices (rigtorp/SPSCQueue).
 *
 * The producer owns `tail`, the consumer owns `head`; each keeps its own
 * counter locally and a cached copy of the other's, and touches the other's
 * cache line only when the cached copy says full (empty).  No read-modify-
 * write on the fast path: one acquire load now and then, one release store
 * per operation or per batch.
 *
 *   producer: write slot[tail % cap]; store_release(tail, tail + n)
 *   consumer: load_acquire(tail); read slot[head % cap]; store_release(head, head + n)
 *
 * Running handles step their slot index one at a time; a role claimant
 * computes it as counter % capacity.  The two agree until the 64-bit counters
 * wrap (2^64 messages: centuries) unless capacity is a power of two.
 *
 * Every index loaded from shared memory is checked (0 <= tail - head <= cap)
 * before it is used, and every slot length is read once and checked against
 * slot_size: a scribbled header gives -EUCLEAN, never a stray access.
 */
#include "ring.h"

static int claim_producer(shmring_t *r)
{
	uint64_t t, h;
	int rc = role_claim(&r->hdr->producer_role, &r->prod_epoch);

	if (rc < 0)
		return rc;
	/* A previous holder may have left; start from what it published.
	 * Both pair with the release stores of tail (producer) and head (consumer). */
	t = load_acquire(&r->hdr->tail);
	h = load_acquire(&r->hdr->head);
	if (t - h > r->capacity) {
		role_release(&r->hdr->producer_role, &r->prod_epoch);
		return -EUCLEAN;
	}
	r->tail = t;
	r->tail_idx = t % r->capacity;
	r->head_cache = h;
	r->reserved = 0;
	/* Only the producer waits for space; a holder that died asleep left its
	 * count.  One that released the role may still be asleep in another
	 * thread (Python's close() with an asyncio waiter): its own exit counts
	 * it out, and a reset now would make the count wrap. */
	if (rc == 1)
		store_relaxed(&r->hdr->space_waitq.sleepers, 0);
	return 0;
}

static int claim_consumer(shmring_t *r)
{
	uint64_t t, h;
	int rc = role_claim(&r->hdr->consumer_role, &r->cons_epoch);

	if (rc < 0)
		return rc;
	h = load_acquire(&r->hdr->head);   /* pairs with a previous consumer's release */
	t = load_acquire(&r->hdr->tail);   /* pairs with the producer's release */
	if (t - h > r->capacity) {
		role_release(&r->hdr->consumer_role, &r->cons_epoch);
		return -EUCLEAN;
	}
	r->head = h;
	r->head_idx = h % r->capacity;
	r->tail_cache = t;
	r->held = 0;
	if (rc == 1)   /* as in claim_producer */
		store_relaxed(&r->hdr->data_waitq.sleepers, 0);
	return 0;
}

static inline int producer_enter(shmring_t *r)
{
	int rc;

	if (unlikely(!role_held(r->prod_epoch)) && (rc = claim_producer(r)) < 0)
		return rc;
	if (unlikely(r->reserved))
		return -EINPROGRESS;
	/* Relaxed: a put racing a shutdown may go either way; later puts fail. */
	if (unlikely(load_relaxed(&r->hdr->shutdown)))
		return -EPIPE;
	return 0;
}

static inline int consumer_enter(shmring_t *r)
{
	int rc;

	if (unlikely(!role_held(r->cons_epoch)) && (rc = claim_consumer(r)) < 0)
		return rc;
	return unlikely(r->held) ? -EINPROGRESS : 0;
}

/* Free slots, refreshing the cached head only when it says too few. */
static inline int64_t free_slots(shmring_t *r, uint64_t want)
{
	uint64_t used = r->tail - r->head_cache, h;

	if (r->capacity - used >= want)
		return (int64_t)(r->capacity - used);
	/* SYNC POINT: pairs with the consumer's release of head in consume():
	 * its reads of those slots are done, we may overwrite them. */
	h = load_acquire(&r->hdr->head);
	/* head only grows, and never passes tail: head_cache <= h <= tail */
	if (unlikely(h - r->head_cache > used))
		return -EUCLEAN;
	r->head_cache = h;
	return (int64_t)(r->capacity - (r->tail - h));
}

/* Load tail and check it: it only grows, and never runs more than capacity
 * ahead of head: tail_cache <= t <= head + capacity. */
static inline int64_t load_tail(shmring_t *r)
{
	/* SYNC POINT: pairs with the producer's release of tail in publish():
	 * the slot payloads and lengths before it are visible. */
	uint64_t t = load_acquire(&r->hdr->tail);

	if (unlikely(t - r->tail_cache > r->head + r->capacity - r->tail_cache))
		return -EUCLEAN;
	r->tail_cache = t;
	return (int64_t)(t - r->head);
}

/* Messages ready, refreshing the cached tail only when it says too few. */
static inline int64_t ready_msgs(shmring_t *r, uint64_t want)
{
	int64_t n = (int64_t)(r->tail_cache - r->head);

	if ((uint64_t)n >= want)
		return n;
	if ((n = load_tail(r)) != 0)
		return n;
	/* Pairs with shmring_shutdown's release: a put published before the
	 * shutdown is visible to the second look at tail. */
	if (!load_acquire(&r->hdr->shutdown))
		return -EAGAIN;
	n = load_tail(r);
	return n ? n : -ENODATA;
}

static inline void publish(shmring_t *r, uint64_t n, uint64_t idx)
{
	r->tail += n;
	r->tail_idx = idx;
	CRASH_POINT("spsc-put-written");     /* written, not published: lost */
	/* SYNC POINT: publishes the slots written before it; pairs with the
	 * acquire of tail in load_tail(). */
	store_release(&r->hdr->tail, r->tail);
	notify(&r->hdr->data_waitq);
}

static inline void consume(shmring_t *r, uint64_t n, uint64_t idx)
{
	r->head += n;
	r->head_idx = idx;
	CRASH_POINT("spsc-get-read");        /* read, not released: delivered again */
	/* SYNC POINT: hands the slots back after our reads of them; pairs with
	 * the acquire of head in free_slots(). */
	store_release(&r->hdr->head, r->head);
	notify(&r->hdr->space_waitq);
}

/* The length of the message in a slot: read once, then checked.  Slots
 * without a record (array rings) are always full. */
static inline int64_t msg_len(const shmring_t *r, uint8_t *slot)
{
	uint64_t len;

	if (!r->meta_off)
		return (int64_t)r->slot_size;
	len = read_once(slot_meta(r, slot)->len);
	return unlikely(len > r->slot_size) ? -EUCLEAN : (int64_t)len;
}

/* A message fits its slot: not longer, and exactly as long without a record. */
static inline int len_fits(const shmring_t *r, uint64_t len)
{
	return len <= r->slot_size && (r->meta_off || len == r->slot_size);
}

static inline void set_len(const shmring_t *r, uint8_t *slot, uint64_t len)
{
	if (r->meta_off)
		slot_meta(r, slot)->len = len;
}

static int spsc_try_put(shmring_t *r, const void *src, uint64_t len)
{
	int64_t rc = producer_enter(r);
	uint8_t *slot;

	if (unlikely(rc < 0))
		return (int)rc;
	if (unlikely(!len_fits(r, len)))
		return -EMSGSIZE;
	if ((rc = free_slots(r, 1)) <= 0)
		return rc < 0 ? (int)rc : -EAGAIN;
	slot = slot_at(r, r->tail_idx);
	copy_msg(slot, src, len);
	set_len(r, slot, len);
	publish(r, 1, next_idx(r, r->tail_idx));
	return 1;
}

/* copy_full()'s loop, inlined per item size. */
static inline __attribute__((always_inline)) uint64_t
copy_each(shmring_t *r, uint64_t idx, uint8_t *buf, uint64_t n, int in, uint64_t size)
{
	const uint64_t cap = r->capacity, stride = r->stride;
	uint8_t *slot = slot_at(r, idx);

	for (uint64_t i = 0; i < n; i++, buf += size) {
		if (in)
			copy_msg(slot, buf, size);
		else
			copy_msg(buf, slot, size);
		slot = next_slot(r, slot, &idx, cap, stride);
	}
	return idx;
}

/* Full messages of an array ring (every message is slot_size bytes, no
 * length record) between a batch buffer and n slots from idx: into the ring
 * when `in`, else out of it.  Returns the index after the last.
 *
 * Packed slots (stride == slot_size: items that fill whole lines) hold the
 * batch as one run of bytes, two where it wraps: one or two memcpy calls, not
 * n.  Otherwise one copy per slot, of a length the compiler knows for the
 * item sizes of scalars (8, 16, 32 bytes), so each is a move or two. */
static uint64_t copy_full(shmring_t *r, uint64_t idx, uint8_t *buf, uint64_t n, int in)
{
	uint64_t first = r->capacity - idx < n ? r->capacity - idx : n;

	if (r->stride != r->slot_size) {
		switch (r->slot_size) {
		case 8:  return copy_each(r, idx, buf, n, in, 8);
		case 16: return copy_each(r, idx, buf, n, in, 16);
		case 32: return copy_each(r, idx, buf, n, in, 32);
		default: return copy_each(r, idx, buf, n, in, r->slot_size);
		}
	}
	for (int part = 0; part < 2 && n; part++) {
		uint8_t *slot = slot_at(r, idx);
		uint64_t bytes = first * r->stride;

		if (in)
			memcpy(slot, buf, bytes);
		else
			memcpy(buf, slot, bytes);
		buf += bytes;
		n -= first;
		idx = idx + first == r->capacity ? 0 : idx + first;
		first = n;
	}
	return idx;
}

static int64_t spsc_try_put_many(shmring_t *r, const void *src, const uint64_t *lens, uint64_t n)
{
	const uint64_t cap = r->capacity, stride = r->stride, size = r->slot_size;
	const uint64_t meta = r->meta_off;
	const uint8_t *p = src;
	int64_t rc = producer_enter(r);
	uint64_t i, idx = r->tail_idx;
	uint8_t *slot;

	if (unlikely(rc < 0))
		return rc;
	if ((rc = free_slots(r, n)) <= 0)
		return rc < 0 ? rc : -EAGAIN;
	if ((uint64_t)rc < n)
		n = (uint64_t)rc;
	if (lens) {                    /* the messages that fit, up to the first that does not */
		for (i = 0; i < n && len_fits(r, lens[i]); i++)
			;
		if (i == 0)
			return -EMSGSIZE;
		n = i;
	}
	if (!meta) {                   /* an array ring: full messages, no records */
		publish(r, n, copy_full(r, idx, (uint8_t *)p, n, 1));
		return (int64_t)n;
	}
	slot = slot_at(r, idx);
	for (i = 0; i < n; i++) {
		uint64_t len = lens ? lens[i] : size;

		copy_msg(slot, p, len);
		meta_of(slot, meta)->len = len;   /* set_len() */
		p += len;
		slot = next_slot(r, slot, &idx, cap, stride);
	}
	publish(r, n, idx);      /* one release for the whole batch */
	return (int64_t)n;
}

static int64_t spsc_try_reserve(shmring_t *r)
{
	int64_t rc = producer_enter(r);

	if (unlikely(rc < 0))
		return rc;
	if ((rc = free_slots(r, 1)) <= 0)
		return rc < 0 ? rc : -EAGAIN;
	r->reserved = 1;
	return (int64_t)r->tail_idx;
}

static int spsc_commit(shmring_t *r, uint64_t len)
{
	if (!r->reserved || !role_held(r->prod_epoch))
		return -EINVAL;
	if (!len_fits(r, len))
		return -EMSGSIZE;
	r->reserved = 0;
	set_len(r, slot_at(r, r->tail_idx), len);
	publish(r, 1, next_idx(r, r->tail_idx));
	return 0;
}

static int spsc_abandon(shmring_t *r)
{
	r->reserved = 0;       /* nothing was published: the slot is simply reused */
	return 0;
}

/* The oldest message: its length, and its slot in *slot; or -errno. */
static inline int64_t front(shmring_t *r, uint8_t **slot)
{
	int64_t rc = consumer_enter(r);

	if (unlikely(rc < 0))
		return rc;
	if ((rc = ready_msgs(r, 1)) < 0)
		return rc;
	*slot = slot_at(r, r->head_idx);
	return msg_len(r, *slot);
}

static int64_t spsc_try_front(shmring_t *r, uint64_t *len)
{
	uint8_t *slot;
	int64_t rc = front(r, &slot);

	if (rc < 0)
		return rc;
	*len = (uint64_t)rc;
	r->held = 1;
	return (int64_t)r->head_idx;
}

static int spsc_release(shmring_t *r)
{
	if (!r->held || !role_held(r->cons_epoch))
		return -EINVAL;
	r->held = 0;
	consume(r, 1, next_idx(r, r->head_idx));
	return 0;
}

static int64_t spsc_try_get(shmring_t *r, void *dst)
{
	uint8_t *slot;
	int64_t rc = front(r, &slot);

	if (rc < 0)
		return rc;
	copy_msg(dst, slot, (uint64_t)rc);
	consume(r, 1, next_idx(r, r->head_idx));
	return rc;
}

static int64_t spsc_try_get_many(shmring_t *r, void *dst, uint64_t *lens, uint64_t max)
{
	const uint64_t cap = r->capacity, stride = r->stride, size = r->slot_size;
	const uint64_t meta = r->meta_off;
	uint8_t *p = dst, *slot;
	int64_t rc = consumer_enter(r);
	uint64_t i, n, idx = r->head_idx;

	if (unlikely(rc < 0))
		return rc;
	if ((rc = ready_msgs(r, max)) < 0)
		return rc;
	n = (uint64_t)rc < max ? (uint64_t)rc : max;
	if (!meta) {                   /* an array ring: every slot holds a full message */
		for (i = 0; lens && i < n; i++)
			lens[i] = size;
		consume(r, n, copy_full(r, idx, p, n, 0));
		return (int64_t)n;
	}
	slot = slot_at(r, idx);
	for (i = 0; i < n; i++) {
		/* msg_len(): read once, then checked */
		uint64_t len = read_once(meta_of(slot, meta)->len);

		if (unlikely(len > size)) {
			rc = -EUCLEAN;
			break;
		}
		copy_msg(p, slot, len);
		if (lens)
			lens[i] = len;
		p += size;
		slot = next_slot(r, slot, &idx, cap, stride);
	}
	if (i == 0)
		return rc;
	consume(r, i, idx);
	return (int64_t)i;
}

/* For waiting: a look at the shared index of the other side that changes no
 * local state.  Anything odd says "ready", so the try call reports it. */
static int spsc_writable(shmring_t *r)
{
	uint64_t h = load_acquire(&r->hdr->head);   /* pairs with consume() */

	return r->tail - h != r->capacity || load_relaxed(&r->hdr->shutdown);
}

static int spsc_readable(shmring_t *r)
{
	/* Pairs with publish() / shmring_shutdown; the try call re-checks. */
	return load_acquire(&r->hdr->tail) != r->head || load_acquire(&r->hdr->shutdown);
}

static int spsc_peer_dead(shmring_t *r, int reader)
{
	struct shmring_role *peer = reader ? &r->hdr->producer_role : &r->hdr->consumer_role;
	uint64_t tok = load_acquire(&peer->token);   /* pairs with role_claim's CAS */

	return tok != 0 && !peer_alive(tok);
}

static void spsc_close(shmring_t *r)
{
	/* An open reservation is dropped; a held slot stays unconsumed and
	 * goes to the next consumer. */
	r->reserved = 0;
	r->held = 0;
	role_release(&r->hdr->producer_role, &r->prod_epoch);
	role_release(&r->hdr->consumer_role, &r->cons_epoch);
}

const struct ring_ops spsc_ops = {
	.try_put = spsc_try_put,
	.try_put_many = spsc_try_put_many,
	.try_reserve = spsc_try_reserve,
	.commit = spsc_commit,
	.abandon = spsc_abandon,
	.try_front = spsc_try_front,
	.release = spsc_release,
	.try_get = spsc_try_get,
	.try_get_many = spsc_try_get_many,
	.writable = spsc_writable,
	.readable = spsc_readable,
	.peer_dead = spsc_peer_dead,
	.close = spsc_close,
};
