"""Fixtures for the in-process benchmarks: rings with unique names, always removed."""
from __future__ import annotations

import os

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import shmring
from shmring import testing


@pytest.fixture
def make_ring() -> Iterator[Callable[..., shmring.Ring]]:
    """make_ring(capacity, **create_kwargs): a new ring, closed and unlinked after the
    test; the test fails if it leaves a segment behind."""
    before = testing.segments()
    made: list[shmring.Ring] = []

    def make(capacity: int, **kw: Any) -> shmring.Ring:
        ring = shmring.create(testing.unique_name("bench"), capacity, **kw)
        made.append(ring)
        return ring

    yield make
    for ring in made:
        ring.close()
        try:
            shmring.unlink(ring.name)
        except FileNotFoundError:
            pass
    # Only this process's names: other test runs may share /dev/shm.
    prefix = f"bench-{os.getpid()}-"
    left = {s for s in testing.segments() - before if s.startswith(prefix)}
    assert not left, f"a benchmark left rings in /dev/shm: {sorted(left)}"
