"""In-process costs of the hot calls (one process, one core): what the Python layer
adds per message.  Cross-process throughput is `python -m shmring bench`.

    pytest benchmarks/ --benchmark-only

Calls that would fill or drain a ring alone run 256 times per round, with the ring
refilled or drained between rounds outside the timing (benchmark.pedantic): divide
those by 256 (extra_info["per_round"]).
"""
from __future__ import annotations

import numpy as np
import pytest

PER_ROUND = 256
ROUNDS = 400


def _per_round(benchmark, n: int = PER_ROUND) -> None:
    benchmark.extra_info["per_round"] = n


def _refill(ring, block):
    def setup():  # pedantic's setup must return None (else it is taken as arguments)
        ring.put_many(block, timeout=1)
    return setup


def _drained(ring):
    def setup():
        while len(ring):
            ring.get_many(PER_ROUND, timeout=1)
    return setup


def test_put_get_bytes_64(benchmark, make_ring):
    ring = make_ring(1024, slot_size=64)
    put, get, msg = ring.put, ring.get, bytes(64)

    def pair():
        put(msg)
        return get()

    assert benchmark(pair) == msg


def test_try_put_try_get_bytes_64(benchmark, make_ring):
    ring = make_ring(1024, slot_size=64)
    try_put, try_get, msg = ring.try_put, ring.try_get, bytes(64)

    def pair():
        try_put(msg)
        return try_get()

    assert benchmark(pair) == msg


def test_reserve_recv_array_64f8(benchmark, make_ring):
    ring = make_ring(1024, shape=(64,), dtype=np.float64)
    reserve, recv = ring.reserve, ring.recv

    def pair():
        with reserve() as slot:
            slot[0] = 1.0
        with recv() as view:
            return view[0]

    assert benchmark(pair) == 1.0


def test_put_many_get_many_256x64B(benchmark, make_ring):
    ring = make_ring(1024, shape=(64,), dtype=np.uint8)
    put_many, get_many = ring.put_many, ring.get_many
    block = np.arange(PER_ROUND * 64, dtype=np.uint64).astype(np.uint8).reshape(PER_ROUND, 64)

    def pair():
        put_many(block)
        return get_many(PER_ROUND)

    _per_round(benchmark)
    assert benchmark(pair).shape == (PER_ROUND, 64)


def test_get_array_64f8_x256(benchmark, make_ring):
    ring = make_ring(PER_ROUND, shape=(64,), dtype=np.float64)
    get = ring.get
    block = np.ones((PER_ROUND, 64))

    def drain():
        for _ in range(PER_ROUND):
            get()

    _per_round(benchmark)
    benchmark.pedantic(drain, setup=_refill(ring, block), rounds=ROUNDS)
    assert len(ring) == 0


def test_reserve_view_64f8_x256(benchmark, make_ring):
    """Making the writable view of a slot and publishing it, nothing written."""
    ring = make_ring(PER_ROUND, shape=(64,), dtype=np.float64)
    reserve = ring.reserve

    def fill():
        for _ in range(PER_ROUND):
            with reserve():
                pass

    _per_round(benchmark)
    benchmark.pedantic(fill, setup=_drained(ring), rounds=ROUNDS)


def test_recv_view_64f8_x256(benchmark, make_ring):
    """Making the read-only view of a slot and releasing it, nothing read."""
    ring = make_ring(PER_ROUND, shape=(64,), dtype=np.float64)
    recv = ring.recv
    block = np.ones((PER_ROUND, 64))

    def drain():
        for _ in range(PER_ROUND):
            with recv():
                pass

    _per_round(benchmark)
    benchmark.pedantic(drain, setup=_refill(ring, block), rounds=ROUNDS)


def test_reference_np_copyto_64B(benchmark):
    src, dst = np.ones(64, np.uint8), np.empty(64, np.uint8)
    benchmark(np.copyto, dst, src)
    assert (dst == 1).all()


def test_reference_bytes_slice_64B(benchmark):
    """What making one 64 B bytes object costs (ByteRing.get returns one)."""
    buf = bytes(4096)
    benchmark(buf.__getitem__, slice(64, 128))


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "--benchmark-only"]))
