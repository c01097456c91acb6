/* SPDX-License-Identifier: MIT */
/*
 * The MPMC ring: Vyukov's bounded queue, one turn word per slot.
 *
 * Position p (a free-running 64-bit counter) uses slot p % capacity, whose
 * turn word `seq` says who may touch it:
 *
 *   seq == 2p       free, for the producer of position p
 *   seq == 2p + 1   holds the message of position p, for its consumer
 *
 * A producer claims p with a CAS on tail when seq == 2p, writes the slot, and
 * publishes seq = 2p + 1.  A consumer claims p with a CAS on head when
 * seq == 2p + 1, reads the slot, and hands it to position p + capacity:
 * seq = 2(p + capacity).  (Vyukov's words are p and p + 1; doubling keeps the
 * two states apart when capacity is 1.)  The counters only hand out
 * positions, so their CAS is relaxed; every ordering is carried by the turn
 * words: a release store of seq pairs with the acquire load in claim().
 *
 * A batch claims n consecutive positions with one CAS, after checking that
 * each of the n slots has the right turn (a slot that has its turn keeps it
 * until the claimant of that position acts, so the check cannot go stale).
 *
 * reserve() claims like a put and commit() publishes.  abandon() cannot give
 * the position back (later ones may be claimed already), so it publishes the
 * slot marked SKIP, and consumers pass over it.
 *
 * A claimant that dies between claim and publish (or, on the consumer side,
 * between claim and hand-back) would stop the ring at its position forever.
 * So every claim is recorded first: before its CAS a handle stores the range
 * it is about to claim in its own claim record (one line per attach-table
 * entry), and the CAS is a release, so whoever sees the counter past a
 * position also sees the record of whoever claimed it.  A survivor that has
 * waited for a while (wait.c's peer check, every 50 ms) looks at the position
 * it waits on: claimed, not finished, and no live process's record covering
 * it means its claimant died there.  The survivor then gives the position up:
 * a dead producer's position is handed on to the next lap as if consumed
 * (its message never existed) and head is moved past it; a dead consumer's
 * message is handed back unread.  Each one is counted in hdr->lost.  A CAS
 * on the turn word makes one survivor do it; a consumer that finds the turn
 * handed on but head not moved helps move it (claim()).  Records are only
 * conservative: a stale record of a live handle delays recovery, never
 * causes it.  If some handle found the attach table full its claims are
 * unrecorded, and survivors recover nothing (hdr->untracked).
 *
 * Nothing read from shared memory can move an access out of the mapping: the
 * slot index is computed from the local capacity, lengths are checked.
 */
#include <string.h>

#include "ring.h"

#define SKIP       UINT64_MAX   /* length of an abandoned slot */
#define MAX_TRIES  64           /* CAS rounds before a try call gives up (-EAGAIN) */

static inline struct shmring_slot_meta *meta_at(shmring_t *r, uint64_t pos)
{
	return slot_meta(r, slot_at(r, pos_idx(r, pos)));
}

static int mpmc_init(shmring_t *r)
{
	for (uint64_t i = 0; i < r->capacity; i++)
		store_relaxed(&meta_at(r, i)->seq, 2 * i);   /* published with abi */
	return 0;
}

static int mpmc_attach(shmring_t *r)
{
	r->claims = (struct shmring_claim *)(void *)r->hdr->kind_area;
	return 0;
}

/* This handle's claim record; a forked child first takes an entry of its own. */
static inline struct shmring_claim *my_claims(shmring_t *r)
{
	if (unlikely(!role_held(r->attach_epoch)))
		attach_register(r);
	return r->my_claim;
}

/* Claim up to max consecutive positions of `counter` whose slots have the turn
 * 2p + side (side 0: producers, 1: consumers).  Returns how many (>= 1), their
 * first position in *first and its slot in *slot, or -EAGAIN (full / empty /
 * contended).  Inlined per call site: max is a constant there, and the single
 * position's loop folds away. */
static inline __attribute__((always_inline)) int64_t
claim(shmring_t *r, _Atomic uint64_t *counter, uint64_t side, uint64_t max,
      uint64_t *first, uint8_t **slot)
{
	/* In locals (next_slot()): an atomic access makes the compiler reload
	 * every field of *r otherwise. */
	const uint64_t cap = r->capacity, stride = r->stride, meta = r->meta_off;
	struct shmring_claim *rec = my_claims(r);
	uint64_t pos = load_relaxed(counter);

	for (int tries = 0; tries < MAX_TRIES; tries++) {
		uint64_t n = 0, idx = pos_idx(r, pos);
		uint8_t *s0 = slot_at(r, idx), *s = s0;

		while (n < max) {
			/* SYNC POINT: pairs with the release of seq that gave this
			 * position its turn (publish, hand_back or give_up_dead). */
			uint64_t seq = load_acquire(&meta_of(s, meta)->seq);
			int64_t dif = (int64_t)(seq - (2 * (pos + n) + side));

			if (dif == 0) {
				n++;
				s = next_slot(r, s, &idx, cap, stride);
				continue;
			}
			if (n == 0 && dif > 0)   /* another claimant took it: look again */
				goto reload;
			break;                   /* not its turn yet: full or empty */
		}
		if (n == 0)
			break;
		if (rec) {
			store_relaxed(&rec->first[side], pos);
			store_relaxed(&rec->end[side], pos + n);
		}
		/* SYNC POINT: release publishes the record above to a survivor
		 * that acquire-loads the counter (give_up_dead). */
		if (cas_release(counter, &pos, pos + n)) {
			*first = pos;
			*slot = s0;
			return (int64_t)n;
		}
		continue;                        /* the failed CAS reloaded pos */
reload:
		{
			uint64_t now = load_relaxed(counter);

			/* The turn went on but head did not move.  A consumer moves
			 * head before it hands the turn on (and our acquire of seq
			 * made that move visible), so this is a survivor's give-up
			 * of a dead producer's position whose head move is pending:
			 * help it. */
			if (side == 1 && now == pos)
				cas_relaxed(counter, &now, pos + 1);
			pos = load_relaxed(counter);
		}
	}
	if (rec)   /* nothing claimed: the record must not cover anything */
		store_relaxed(&rec->end[side], load_relaxed(&rec->first[side]));
	return -EAGAIN;
}

static inline void publish(shmring_t *r, uint8_t *slot, uint64_t pos, uint64_t len)
{
	struct shmring_slot_meta *m = slot_meta(r, slot);

	m->len = len;
	/* SYNC POINT: the message of pos is complete; pairs with the acquire in
	 * a consumer's claim(). */
	store_release(&m->seq, 2 * pos + 1);
}

static inline void hand_back(shmring_t *r, uint8_t *slot, uint64_t pos)
{
	/* SYNC POINT: our reads of the slot are done; pairs with the acquire in
	 * the claim() of the producer of pos + capacity. */
	store_release(&slot_meta(r, slot)->seq, 2 * (pos + r->capacity));
}

static inline int put_check(shmring_t *r)
{
	if (unlikely(r->reserved))
		return -EINPROGRESS;
	/* Relaxed: a put racing a shutdown may go either way; later puts fail. */
	return unlikely(load_relaxed(&r->hdr->shutdown)) ? -EPIPE : 0;
}

static int mpmc_try_put(shmring_t *r, const void *src, uint64_t len)
{
	uint64_t pos;
	uint8_t *slot;
	int64_t rc;

	if (unlikely((rc = put_check(r)) < 0))
		return (int)rc;
	if (unlikely(len > r->slot_size))
		return -EMSGSIZE;
	if ((rc = claim(r, &r->hdr->tail, 0, 1, &pos, &slot)) < 0)
		return (int)rc;
	CRASH_POINT("mpmc-put-claimed");
	copy_msg(slot, src, len);
	publish(r, slot, pos, len);
	notify(&r->hdr->data_waitq);
	return 1;
}

static int64_t mpmc_try_put_many(shmring_t *r, const void *src, const uint64_t *lens, uint64_t n)
{
	const uint64_t cap = r->capacity, stride = r->stride, size = r->slot_size;
	const uint8_t *p = src;
	uint64_t pos, i, idx;
	uint8_t *slot;
	int64_t rc;

	if (unlikely((rc = put_check(r)) < 0))
		return rc;
	/* Check the lengths first: a claimed position must be published. */
	if (lens) {
		for (i = 0; i < n && lens[i] <= size; i++)
			;
		if (i == 0)
			return -EMSGSIZE;
		n = i;
	}
	if ((rc = claim(r, &r->hdr->tail, 0, n, &pos, &slot)) < 0)
		return rc;
	idx = pos_idx(r, pos);
	for (i = 0; i < (uint64_t)rc; i++) {
		uint64_t len = lens ? lens[i] : size;

		if (i == 1)
			CRASH_POINT("mpmc-put-many-half");   /* some of the batch published */
		copy_msg(slot, p, len);
		publish(r, slot, pos + i, len);
		p += len;
		slot = next_slot(r, slot, &idx, cap, stride);
	}
	notify(&r->hdr->data_waitq);   /* once per batch */
	return rc;
}

static int64_t mpmc_try_reserve(shmring_t *r)
{
	uint8_t *slot;
	int64_t rc = put_check(r);

	if (rc < 0 || (rc = claim(r, &r->hdr->tail, 0, 1, &r->tail, &slot)) < 0)
		return rc;
	r->reserved = 1;
	return (int64_t)pos_idx(r, r->tail);
}

static int mpmc_commit(shmring_t *r, uint64_t len)
{
	if (!r->reserved)
		return -EINVAL;
	if (len > r->slot_size)
		return -EMSGSIZE;
	r->reserved = 0;
	publish(r, slot_at(r, pos_idx(r, r->tail)), r->tail, len);
	notify(&r->hdr->data_waitq);
	return 0;
}

static int mpmc_abandon(shmring_t *r)
{
	if (r->reserved) {
		r->reserved = 0;
		/* the position is spent: consumers pass it */
		publish(r, slot_at(r, pos_idx(r, r->tail)), r->tail, SKIP);
		notify(&r->hdr->data_waitq);
	}
	return 0;
}

/* Empty: end of stream once shut down and every claimed position is consumed. */
static int mpmc_peer_dead(shmring_t *r, int reader);

static int64_t empty_rc(shmring_t *r)
{
	/* Pairs with shmring_shutdown's release. */
	if (!load_acquire(&r->hdr->shutdown))
		return -EAGAIN;
	/* Shut down: readable() now says "look" for good, so a reader never sleeps
	 * long enough for wait.c's peer check.  A claim still in the way may be a
	 * dead producer's: give it up here, or the drain would never end. */
	if (load_acquire(&r->hdr->tail) != load_acquire(&r->hdr->head))
		mpmc_peer_dead(r, 1);
	return load_acquire(&r->hdr->tail) == load_acquire(&r->hdr->head) ? -ENODATA : -EAGAIN;
}

/* Claim the next message, passing over abandoned slots: its length, with
 * its position and slot, for the caller to read and hand back; or -errno. */
static inline __attribute__((always_inline)) int64_t
take(shmring_t *r, uint64_t *pos, uint8_t **slot)
{
	if (unlikely(r->held))
		return -EINPROGRESS;
	for (int tries = 0; tries < MAX_TRIES; tries++) {
		int64_t rc = claim(r, &r->hdr->head, 1, 1, pos, slot);
		uint64_t n;

		if (rc < 0)
			return rc == -EAGAIN ? empty_rc(r) : rc;
		CRASH_POINT("mpmc-get-claimed");
		n = read_once(slot_meta(r, *slot)->len);
		if (likely(n <= r->slot_size))
			return (int64_t)n;
		/* Abandoned by its producer, or scribbled: give the slot back
		 * (a producer may sleep on it), and pass it or say so. */
		hand_back(r, *slot, *pos);
		notify(&r->hdr->space_waitq);
		if (n != SKIP)
			return -EUCLEAN;
	}
	return -EAGAIN;
}

static int64_t mpmc_try_front(shmring_t *r, uint64_t *len)
{
	uint8_t *slot = NULL;
	int64_t rc = take(r, &r->head, &slot);

	if (rc < 0)
		return rc;
	r->held = 1;
	*len = (uint64_t)rc;
	return (int64_t)pos_idx(r, r->head);
}

static int mpmc_release(shmring_t *r)
{
	if (!r->held)
		return -EINVAL;
	r->held = 0;
	hand_back(r, slot_at(r, pos_idx(r, r->head)), r->head);
	notify(&r->hdr->space_waitq);
	return 0;
}

static int64_t mpmc_try_get(shmring_t *r, void *dst)
{
	uint64_t pos = 0;        /* set whenever take() succeeds; gcc cannot tell */
	uint8_t *slot = NULL;
	int64_t rc = take(r, &pos, &slot);

	if (rc < 0)
		return rc;
	copy_msg(dst, slot, (uint64_t)rc);
	hand_back(r, slot, pos);
	notify(&r->hdr->space_waitq);
	return rc;
}

static int64_t mpmc_try_get_many(shmring_t *r, void *dst, uint64_t *lens, uint64_t max)
{
	const uint64_t cap = r->capacity, stride = r->stride, size = r->slot_size;
	uint8_t *p = dst, *slot;
	uint64_t pos, idx, got = 0;
	int64_t rc;
	int bad = 0;

	if (unlikely(r->held))
		return -EINPROGRESS;
	for (int tries = 0; got == 0 && tries < MAX_TRIES; tries++) {
		if ((rc = claim(r, &r->hdr->head, 1, max, &pos, &slot)) < 0)
			return rc == -EAGAIN ? empty_rc(r) : rc;
		idx = pos_idx(r, pos);
		for (uint64_t i = 0; i < (uint64_t)rc; i++) {
			uint64_t n;

			if (i == 1)
				CRASH_POINT("mpmc-get-many-half");   /* some of the batch handed back */
			n = read_once(slot_meta(r, slot)->len);
			if (n <= size) {
				copy_msg(p, slot, n);
				if (lens)
					lens[got] = n;
				p += size;
				got++;
			} else {
				bad |= n != SKIP;
			}
			hand_back(r, slot, pos + i);
			slot = next_slot(r, slot, &idx, cap, stride);
		}
		notify(&r->hdr->space_waitq);
	}
	if (bad && got == 0)
		return -EUCLEAN;
	return got ? (int64_t)got : -EAGAIN;
}

/* For waiting: does the next position have its turn?  No local state changes;
 * anything odd says "ready" so the try call looks. */
static int turn_ready(shmring_t *r, _Atomic uint64_t *counter, uint64_t side)
{
	uint64_t pos = load_relaxed(counter);
	uint64_t seq = load_acquire(&meta_at(r, pos)->seq);   /* as in claim() */

	return (int64_t)(seq - (2 * pos + side)) >= 0 || load_acquire(&r->hdr->shutdown);
}

/* Does a live handle's record cover position pos of `side`?  A record of a
 * live process that is stale or half-written covers too much, never too
 * little: the claimant stores it before its claim and it stays until its
 * next claim, which comes after the position is finished. */
static int live_claim_covers(shmring_t *r, uint64_t side, uint64_t pos)
{
	for (unsigned i = 0; i < SHMRING_MAX_ATTACH; i++) {
		uint64_t tok = load_acquire(&r->hdr->attached[i]);
		uint64_t first = load_relaxed(&r->claims[i].first[side]);
		uint64_t end = load_relaxed(&r->claims[i].end[side]);

		if (tok && pos - first < end - first && peer_alive(tok))
			return 1;
	}
	return 0;
}

/* Give up position q of `side` if its claimant died there (see the top of
 * this file).  1 if it did, 0 if q is not a dead claim (or not provably).
 * side 0: a producer's claim, seen by a consumer waiting at head = q for the
 * message; side 1: a consumer's claim, seen by a producer waiting for the
 * slot that q = tail - capacity still holds. */
static int give_up_dead(shmring_t *r, uint64_t side, uint64_t q)
{
	_Atomic uint64_t *claimed = side ? &r->hdr->head : &r->hdr->tail;
	struct shmring_slot_meta *m = meta_at(r, q);
	uint64_t turn = 2 * q + side;

	if (load_acquire(&m->seq) != turn)
		return 0;                /* finished, or not q's claimant's turn */
	/* SYNC POINT: pairs with the claimant's cas_release in claim(): seeing
	 * the counter past q, we see the record it stored before claiming q. */
	if (load_acquire(claimed) - q - 1 >= r->capacity)
		return 0;                /* q is not claimed (or the counter is scribbled) */
	/* Relaxed: an untracked claimant stores the flag before its release CAS,
	 * which our acquire of the counter above has seen. */
	if (load_relaxed(&r->hdr->untracked) || live_claim_covers(r, side, q))
		return 0;
	/* SYNC POINT: the CAS makes one survivor do it; release pairs with the
	 * acquire in the claim() of the producer of q + capacity. */
	if (!cas_acq_rel(&m->seq, &turn, 2 * (q + r->capacity)))
		return 0;
	rmw_add_seq_cst(&r->hdr->lost, 1);
	if (side == 0)           /* consumers would help, but we know it is due */
		cas_acq_rel(&r->hdr->head, &q, q + 1);
	return 1;
}

/* wait.c's peer check: a waiter that has slept a while gives up the dead
 * claims in its way.  A reader waits on the producer's claim at head; a
 * writer on the slot of tail, which the consumer of tail - capacity may
 * hold, or which was never published (a producer's claim at head).  Never
 * PeerDied: the ring goes on without them. */
static int mpmc_peer_dead(shmring_t *r, int reader)
{
	uint64_t n = 0, k;

	while (n < r->capacity && give_up_dead(r, 0, load_relaxed(&r->hdr->head)))
		n++;   /* head moves past each one given up */
	for (k = 0; !reader && k < r->capacity &&
	     give_up_dead(r, 1, load_relaxed(&r->hdr->tail) - r->capacity + k); k++)
		n++;   /* a dead batch of gets: the slots after tail's too */
	if (n) {   /* others may be asleep on what this freed */
		notify(&r->hdr->data_waitq);
		notify(&r->hdr->space_waitq);
	}
	return 0;
}

static int mpmc_writable(shmring_t *r)
{
	return turn_ready(r, &r->hdr->tail, 0);
}

static int mpmc_readable(shmring_t *r)
{
	return turn_ready(r, &r->hdr->head, 1);
}

static void mpmc_close(shmring_t *r)
{
	mpmc_abandon(r);          /* a claimed position must not wedge the ring */
	if (r->held)
		mpmc_release(r);
}

const struct ring_ops mpmc_ops = {
	.init = mpmc_init,
	.attach = mpmc_attach,
	.try_put = mpmc_try_put,
	.try_put_many = mpmc_try_put_many,
	.try_reserve = mpmc_try_reserve,
	.commit = mpmc_commit,
	.abandon = mpmc_abandon,
	.try_front = mpmc_try_front,
	.release = mpmc_release,
	.try_get = mpmc_try_get,
	.try_get_many = mpmc_try_get_many,
	.writable = mpmc_writable,
	.readable = mpmc_readable,
	.peer_dead = mpmc_peer_dead,
	.close = mpmc_close,
};
