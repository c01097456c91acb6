"""In-process costs of the hot calls (one process, one core): what the Python layer
adds per message, for each kind.  Cross-process throughput is `python -m shmring bench`.

    pytest benchmarks/ --benchmark-only
    pytest benchmarks/ --benchmark-only --benchmark-autosave      # JSON under .benchmarks/
    pytest benchmarks/ --benchmark-only --benchmark-compare       # against the last saved run

Calls that would fill or drain a ring alone run PER_ROUND times per round, with the ring
refilled or drained between rounds outside the timing (benchmark.pedantic): divide
those by extra_info["per_round"].
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

PER_ROUND = 256
ROUNDS = 400
KINDS = ["spsc", "mpmc", "locked"]
Make = Callable[..., Any]


def _per_round(benchmark: Any, n: int = PER_ROUND) -> None:
    benchmark.extra_info["per_round"] = n


def _refill(ring: Any, block: np.ndarray) -> Callable[[], None]:
    def setup() -> None:  # pedantic's setup must return None (else it is taken as arguments)
        ring.put_many(block, timeout=1)
    return setup


def _drained(ring: Any) -> Callable[[], None]:
    def setup() -> None:
        while len(ring):
            ring.get_many(PER_ROUND, timeout=1)
    return setup


@pytest.mark.parametrize("kind", KINDS)
def test_put_get_bytes_64(benchmark: Any, make_ring: Make, kind: str) -> None:
    ring = make_ring(1024, slot_size=64, kind=kind)
    put, get, msg = ring.put, ring.get, bytes(64)

    def pair() -> Any:
        put(msg)
        return get()

    assert benchmark(pair) == msg


@pytest.mark.parametrize("kind", KINDS)
def test_try_put_try_get_bytes_64(benchmark: Any, make_ring: Make, kind: str) -> None:
    ring = make_ring(1024, slot_size=64, kind=kind)
    try_put, try_get, msg = ring.try_put, ring.try_get, bytes(64)

    def pair() -> Any:
        try_put(msg)
        return try_get()

    assert benchmark(pair) == msg


@pytest.mark.parametrize("kind", KINDS)
def test_reserve_recv_array_64f8(benchmark: Any, make_ring: Make, kind: str) -> None:
    ring = make_ring(1024, shape=(64,), dtype=np.float64, kind=kind)
    reserve, recv = ring.reserve, ring.recv

    def pair() -> Any:
        with reserve() as slot:
            slot[0] = 1.0
        with recv() as view:
            return view[0]

    assert benchmark(pair) == 1.0


@pytest.mark.parametrize("batch", [1, 16, 64, 256, 1024])
def test_put_many_get_many_64B(benchmark: Any, make_ring: Make, batch: int) -> None:
    """A batch of `batch` 64 B messages in and out (get_many into a preallocated out=)."""
    ring = make_ring(1024, shape=(64,), dtype=np.uint8)
    put_many, get_many = ring.put_many, ring.get_many
    block = (np.arange(batch * 64) % 251).astype(np.uint8).reshape(batch, 64)
    out = np.empty_like(block)

    def pair() -> Any:
        put_many(block)
        return get_many(batch, out=out)

    _per_round(benchmark, batch)
    assert np.array_equal(benchmark(pair), block)


@pytest.mark.parametrize("batch", [16, 256])
def test_get_many_bytes_64B(benchmark: Any, make_ring: Make, batch: int) -> None:
    """A byte ring's get_many: a list of bytes objects."""
    ring = make_ring(1024, slot_size=64)
    put_many, get_many = ring.put_many, ring.get_many
    msgs = [bytes([i]) * 64 for i in range(batch)]

    def pair() -> Any:
        put_many(msgs)
        return get_many(batch)

    _per_round(benchmark, batch)
    assert benchmark(pair) == msgs


def test_get_array_64f8_x256(benchmark: Any, make_ring: Make) -> None:
    ring = make_ring(PER_ROUND, shape=(64,), dtype=np.float64)
    get = ring.get
    block = np.ones((PER_ROUND, 64))

    def drain() -> None:
        for _ in range(PER_ROUND):
            get()

    _per_round(benchmark)
    benchmark.pedantic(drain, setup=_refill(ring, block), rounds=ROUNDS)
    assert len(ring) == 0


@pytest.mark.parametrize("shape", [(64,), (480, 640, 3)], ids=["64f8", "480x640x3"])
def test_reserve_view_x256(benchmark: Any, make_ring: Make, shape: tuple[int, ...]) -> None:
    """Making the writable view of a slot and publishing it, nothing written."""
    ring = make_ring(PER_ROUND, shape=shape, dtype=np.float64 if len(shape) == 1 else np.uint8)
    reserve = ring.reserve

    def fill() -> None:
        for _ in range(PER_ROUND):
            with reserve():
                pass

    _per_round(benchmark)
    benchmark.pedantic(fill, setup=_drained(ring), rounds=ROUNDS if len(shape) == 1 else 20)


def test_recv_view_64f8_x256(benchmark: Any, make_ring: Make) -> None:
    """Making the read-only view of a slot and releasing it, nothing read."""
    ring = make_ring(PER_ROUND, shape=(64,), dtype=np.float64)
    recv = ring.recv
    block = np.ones((PER_ROUND, 64))

    def drain() -> None:
        for _ in range(PER_ROUND):
            with recv():
                pass

    _per_round(benchmark)
    benchmark.pedantic(drain, setup=_refill(ring, block), rounds=ROUNDS)


def test_reference_np_copyto_64B(benchmark: Any) -> None:
    src, dst = np.ones(64, np.uint8), np.empty(64, np.uint8)
    benchmark(np.copyto, dst, src)
    assert (dst == 1).all()


def test_reference_np_frombuffer_64B(benchmark: Any) -> None:
    """What making a numpy view of 64 bytes costs from scratch (a slot view is prebuilt)."""
    buf = bytearray(4096)
    a = benchmark(np.frombuffer, buf, np.uint8, 64, 64)
    assert a.shape == (64,)


def test_reference_bytes_slice_64B(benchmark: Any) -> None:
    """What making one 64 B bytes object costs (ByteRing.get returns one)."""
    buf = bytes(4096)
    benchmark(buf.__getitem__, slice(64, 128))


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "--benchmark-only"]))
