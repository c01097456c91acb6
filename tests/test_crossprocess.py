"""Exactly-once, in order, intact: an unrelated producer and consumer process.

Both sides are fresh interpreters (not forks of pytest), pinned to different
cores where there are two; they meet only through the ring's name.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import shmring

from conftest import HERE, finish

WORKER = str(HERE / "xproc_worker.py")


def run_pair(name: str, count: int, mode: str, size: int, timeout: float = 300) -> dict[str, int]:
    cpus = sorted(os.sched_getaffinity(0))
    pin = [str(cpus[0]), str(cpus[-1])] if len(cpus) > 1 else ["", ""]
    args = [name, str(count), mode, str(size)]
    consumer = subprocess.Popen([sys.executable, WORKER, "consume", *args, *pin[1:]],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    producer = subprocess.Popen([sys.executable, WORKER, "produce", *args, *pin[:1]],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    _, c_out = finish(producer, consumer, timeout=timeout)
    elapsed = time.monotonic() - t0
    stats = json.loads(c_out)
    print(f"\n{mode} cap={shmring.attach(name).capacity} size={size}: {stats['verified']} verified, "
          f"{stats['lost']} lost, {stats['duplicated']} duplicated, {stats['reordered']} reordered, "
          f"{stats['corrupted']} corrupted in {elapsed:.1f} s ({count / elapsed / 1e3:.0f} k msgs/s)")
    return stats


def assert_exactly_once(stats: dict[str, int], count: int) -> None:
    assert stats["verified"] == count
    assert stats["received"] == count
    assert stats["lost"] == stats["duplicated"] == stats["reordered"] == 0
    assert stats["corrupted"] == stats["out_of_range"] == 0


@pytest.mark.timeout(600)
@pytest.mark.parametrize("capacity", [2, 1024])
def test_million_messages_exactly_once(name, capacity):
    count = 1_000_000
    with shmring.create(name, capacity, slot_size=48):
        assert_exactly_once(run_pair(name, count, "single", 48), count)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["batch", "zerocopy"])
@pytest.mark.parametrize("capacity", [1, 4, 1024])
def test_batch_and_zero_copy_exactly_once(name, mode, capacity):
    count = 200_000
    with shmring.create(name, capacity, slot_size=64):
        assert_exactly_once(run_pair(name, count, mode, 40), count)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("capacity", [2, 64])
def test_array_ring_exactly_once(name, capacity):
    count = 200_000
    with shmring.create(name, capacity, shape=(16,), dtype=np.uint64):
        assert_exactly_once(run_pair(name, count, "array", 0), count)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("capacity", [1, 3, 64, 100])
@pytest.mark.parametrize("items", [16, 6], ids=["packed", "gapped"])
def test_array_batches_exactly_once(name, capacity, items):
    # 16 uint64 fill two whole lines: a batch is copied as one run of slots (two
    # where it wraps); 6 leave a gap in each 64-byte slot: copied one by one.
    count = 50_000
    with shmring.create(name, capacity, shape=(items,), dtype=np.uint64) as ring:
        assert (ring.info()["slot_stride"] == 8 * items) == (items == 16)
        assert_exactly_once(run_pair(name, count, "array-batch", 0), count)


@pytest.mark.soak
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("capacity", [1, 2, 3, 1024])
def test_soak_exactly_once(name, capacity):
    count = int(os.environ.get("SHMRING_SOAK_MESSAGES", 50_000_000))
    with shmring.create(name, capacity, slot_size=64):
        assert_exactly_once(run_pair(name, count, "single", 64, timeout=7000), count)
