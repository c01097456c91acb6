"""Many producers and consumers across processes: mpmc and locked rings.

Every message arrives exactly once across all consumers, intact, and in order
per producer as each consumer sees it.
"""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

import shmring

from conftest import HERE, finish

WORKER = str(HERE / "many_worker.py")


def run_many(name: str, producers: int, consumers: int, per_producer: int, tmp_path) -> None:
    outs = [tmp_path / f"c{i}.npy" for i in range(consumers)]
    cons = [subprocess.Popen([sys.executable, WORKER, "consume", name, str(o)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for o in outs]
    prods = [subprocess.Popen([sys.executable, WORKER, "produce", name, str(p), str(per_producer)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(producers)]
    t0 = time.monotonic()
    try:
        finish(*prods, timeout=500)
        with shmring.attach(name) as r:
            r.shutdown()  # every producer is done: consumers drain, then stop
        bad = sum(int(out) for out in finish(*cons, timeout=120))
    finally:
        for p in prods + cons:  # the consumers, when a producer failed
            if p.poll() is None:
                p.kill()
                p.wait()
    elapsed = time.monotonic() - t0
    got = np.concatenate([np.load(o) for o in outs])
    total = producers * per_producer
    keys = got[:, 0] * per_producer + got[:, 1]
    unique = np.unique(keys)
    dup = len(keys) - len(unique)
    lost = total - len(unique)
    print(f"\n{producers}x{consumers}: {len(unique)} verified, {lost} lost, {dup} duplicated, "
          f"{bad} reordered/corrupted, in {elapsed:.1f} s; per consumer {[len(np.load(o)) for o in outs]}")
    assert bad == 0 and dup == 0 and lost == 0
    assert unique.min() == 0 and unique.max() == total - 1


@pytest.mark.timeout(900)
@pytest.mark.parametrize("kind,producers,consumers,capacity,per_producer", [
    ("mpmc", 2, 2, 2, 250_000),
    ("mpmc", 4, 4, 4, 125_000),
    ("mpmc", 2, 2, 1, 50_000),
    ("locked", 2, 2, 2, 100_000),
    ("locked", 2, 2, 4, 50_000),
])
def test_many_to_many_exactly_once(name, tmp_path, kind, producers, consumers, capacity, per_producer):
    with shmring.create(name, capacity, slot_size=20, kind=kind):
        run_many(name, producers, consumers, per_producer, tmp_path)
