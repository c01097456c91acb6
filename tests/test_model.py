"""Model-based tests: each ring kind against a collections.deque.

A hypothesis state machine drives a ring through put / try_put / put_many,
get / try_get / get_many, reserve (committed, or abandoned by an exception),
recv, len and shutdown, in any order, on tiny capacities (1-4) where every
wrap, full and empty edge is met within a few steps.  After every step the
ring must agree with the model: the same items in the same order, the same
length, and the errors of /work/shared/API.md (TimeoutError when a zero
timeout meets a full or empty ring, BrokenPipeError for a put-side call after
shutdown, EOFError once shut down and drained), each a ShmringError too.

SPSC rings are driven through two handles of this process (the producer
role on one, the consumer role on the other); MPMC and locked rings through
two handles used at random for either side.

MPMC: an abandoned reservation cannot give its position back (later ones may
be claimed already), so it leaves a SKIP mark that holds its slot and counts
in len() until a consumer passes it.  The model keeps such marks.

`pytest --soak` adds a run of 2000 examples of 50 steps per kind and form.
"""
from __future__ import annotations

import collections

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

import shmring
from shmring.testing import unique_name

from conftest import KINDS

SLOT = 8                      # byte rings: messages of 0..8 bytes
SHAPE, DTYPE = (2,), np.dtype("<i4")
SKIP = object()               # an abandoned mpmc position, still in the ring


class Abandon(Exception):
    """Raised inside a reserve() block to abandon it."""


def machine_for(kind: str, array: bool) -> type[RuleBasedStateMachine]:
    messages = (st.tuples(st.integers(-2**31, 2**31 - 1), st.integers(-2**31, 2**31 - 1))
                .map(lambda t: np.array(t, DTYPE)) if array else st.binary(max_size=SLOT))

    class RingModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model: collections.deque = collections.deque()
            self.handles: list[shmring.Ring] = []
            self.name = ""
            self.cap = 0
            self.shut = False

        @initialize(cap=st.integers(1, 4))
        def make(self, cap: int) -> None:
            self.cap = cap
            self.name = unique_name("model")
            form = dict(shape=SHAPE, dtype=DTYPE) if array else dict(slot_size=SLOT)
            first = shmring.create(self.name, cap, kind=kind, **form)
            self.handles = [first, shmring.attach(self.name)]
            for h in self.handles:
                h.spin_ns = 0

        def teardown(self) -> None:
            for h in self.handles:
                h.close()
            if self.name:
                shmring.unlink(self.name)

        # -- which handle serves a side ----------------------------------------------------
        def writer(self, pick: int) -> shmring.Ring:
            return self.handles[0 if kind == "spsc" else pick]

        def reader(self, pick: int) -> shmring.Ring:
            return self.handles[1 if kind == "spsc" else pick]

        # -- the model ---------------------------------------------------------------------
        def room(self) -> int:
            return self.cap - len(self.model)

        def same(self, got, want) -> None:
            if array:
                assert isinstance(got, np.ndarray) and got.shape == SHAPE and got.dtype == DTYPE
                assert np.array_equal(got, want), (got, want)
            else:
                assert bytes(got) == want, (got, want)

        def pass_skips(self) -> None:
            """A get-side call passes the SKIP marks in front of the next message."""
            while self.model and self.model[0] is SKIP:
                self.model.popleft()

        def put_side_fails(self, exc: BaseException) -> None:
            assert isinstance(exc, shmring.ShmringError)
            if self.shut:
                assert isinstance(exc, BrokenPipeError), exc
            else:
                assert self.room() == 0 and isinstance(exc, TimeoutError), exc

        def get_side_fails(self, exc: BaseException) -> None:
            assert isinstance(exc, shmring.ShmringError)
            assert not self.model, exc
            assert isinstance(exc, EOFError if self.shut else TimeoutError), exc

        # -- put side ----------------------------------------------------------------------
        @rule(msg=messages, pick=st.integers(0, 1))
        def put(self, msg, pick):
            try:
                self.writer(pick).put(msg, timeout=0)
            except (TimeoutError, BrokenPipeError) as exc:
                return self.put_side_fails(exc)
            assert not self.shut and self.room() > 0
            self.model.append(msg)

        @rule(msg=messages, pick=st.integers(0, 1))
        def try_put(self, msg, pick):
            try:
                ok = self.writer(pick).try_put(msg)
            except BrokenPipeError as exc:
                assert self.shut and isinstance(exc, shmring.ShmringError)
                return
            assert not self.shut
            assert ok is (self.room() > 0)
            if ok:
                self.model.append(msg)

        @rule(msgs=st.lists(messages, min_size=1, max_size=6), pick=st.integers(0, 1))
        def put_many(self, msgs, pick):
            items = np.stack(msgs) if array else msgs
            try:
                n = self.writer(pick).put_many(items, timeout=0)
            except (TimeoutError, BrokenPipeError) as exc:
                return self.put_side_fails(exc)
            assert not self.shut and n == min(len(msgs), self.room())
            self.model.extend(msgs[:n])

        @rule(msg=messages, commit=st.booleans(), pick=st.integers(0, 1))
        def reserve(self, msg, commit, pick):
            ring = self.writer(pick)
            kw = {} if array else dict(nbytes=len(msg))
            try:
                with ring.reserve(timeout=0, **kw) as view:
                    assert view.flags.writeable
                    view[...] = msg if array else np.frombuffer(msg, np.uint8)
                    if not commit:
                        raise Abandon
            except Abandon:
                assert not self.shut and self.room() > 0
                if kind == "mpmc":
                    self.model.append(SKIP)
                return
            except (TimeoutError, BrokenPipeError) as exc:
                return self.put_side_fails(exc)
            assert not self.shut and self.room() > 0
            self.model.append(msg)

        @rule(pick=st.integers(0, 1))
        def too_big(self, pick):
            bad = np.zeros((3,), DTYPE) if array else bytes(SLOT + 1)
            # after shutdown either error may come first
            with pytest.raises((ValueError, BrokenPipeError) if self.shut else ValueError) as e:
                self.writer(pick).try_put(bad)
            assert isinstance(e.value, shmring.ShmringError)

        # -- get side ----------------------------------------------------------------------
        @rule(pick=st.integers(0, 1))
        def get(self, pick):
            self.pass_skips()
            try:
                got = self.reader(pick).get(timeout=0)
            except (TimeoutError, EOFError) as exc:
                return self.get_side_fails(exc)
            assert self.model, got
            self.same(got, self.model.popleft())

        @rule(pick=st.integers(0, 1))
        def try_get(self, pick):
            self.pass_skips()
            try:
                got = self.reader(pick).try_get()
            except EOFError as exc:
                return self.get_side_fails(exc)
            if got is None:
                assert not self.model and not self.shut
            else:
                assert self.model, got
                self.same(got, self.model.popleft())

        @rule(k=st.integers(1, 6), pick=st.integers(0, 1))
        def get_many(self, k, pick):
            self.pass_skips()
            ring = self.reader(pick)
            try:
                got = ring.get_many(k, timeout=0)
            except (TimeoutError, EOFError) as exc:
                return self.get_side_fails(exc)
            # at least one, at most k, in order; SKIP marks among them are passed
            assert 1 <= len(got) <= k
            for item in got:
                self.pass_skips()
                assert self.model, got
                self.same(item, self.model.popleft())
            if kind == "mpmc":   # a batch may also have claimed SKIP marks after its last item
                while len(self.model) > len(ring) and self.model and self.model[0] is SKIP:
                    self.model.popleft()

        @rule(pick=st.integers(0, 1), fail=st.booleans())
        def recv(self, pick, fail):
            self.pass_skips()
            try:
                with self.reader(pick).recv(timeout=0) as view:
                    assert not view.flags.writeable
                    assert self.model
                    self.same(view if array else view.tobytes(), self.model[0])
                    if fail:
                        raise Abandon   # an exception inside recv() still releases the slot
            except Abandon:
                pass
            except (TimeoutError, EOFError) as exc:
                return self.get_side_fails(exc)
            self.model.popleft()

        # -- lifecycle ---------------------------------------------------------------------
        @rule(pick=st.integers(0, 1))
        def shutdown(self, pick):
            self.handles[pick].shutdown()
            self.shut = True

        @invariant()
        def agrees(self):
            for h in self.handles:
                assert len(h) == len(self.model)
                assert h.info()["shut_down"] is self.shut

    RingModel.__name__ = f"RingModel_{kind}_{'array' if array else 'bytes'}"
    return RingModel


def check(kind: str, array: bool, examples: int, steps: int) -> None:
    run_state_machine_as_test(
        machine_for(kind, array),
        settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow], database=None),
    )


@pytest.mark.parametrize("array", [False, True], ids=["bytes", "array"])
@pytest.mark.parametrize("kind", KINDS)
def test_ring_matches_deque(kind, array):
    check(kind, array, examples=100, steps=30)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("array", [False, True], ids=["bytes", "array"])
@pytest.mark.parametrize("kind", KINDS)
def test_ring_matches_deque_soak(kind, array):
    check(kind, array, examples=2000, steps=50)
