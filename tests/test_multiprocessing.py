"""Rings handed to multiprocessing: `spawn` and `forkserver` children, ProcessPoolExecutor
initializers and multiprocessing.Pool workers.  A Ring pickles by name and attaches
again on the other side; every message is verified exactly once (and in order where
the ring promises order), and nothing goes through multiprocessing.resource_tracker.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import resource_tracker

import pytest

import mp_workers as W
import shmring
from shmring.testing import check_payload

CONTEXTS = ["spawn", "forkserver"]
TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def guarded_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process too, registering a ring with the resource tracker is an error."""
    monkeypatch.setattr(resource_tracker, "register", resource_tracker.register)  # restored after
    W.guard_resource_tracker()


def finish(procs: list[mp.process.BaseProcess]) -> None:
    try:
        for p in procs:
            p.join(TIMEOUT)
            assert p.exitcode == 0, f"{p.name} exited {p.exitcode}"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()


@pytest.mark.parametrize("method", CONTEXTS)
def test_child_attaches_by_name_spsc_in_order(name: str, method: str) -> None:
    ctx = mp.get_context(method)
    n = 5000
    with shmring.create(name, 16, slot_size=W.SIZE) as ring:
        child = ctx.Process(target=W.produce, args=(ring, 7, n))
        child.start()
        try:
            got = [check_payload(ring.get(timeout=TIMEOUT)) for _ in range(n)]
        finally:
            finish([child])
        assert got == [(7, seq) for seq in range(n)]  # exactly once, in order, intact
        assert ring.try_get() is None
        assert child.pid not in ring.info()["pids"]  # an exited child is not listed


@pytest.mark.parametrize("method", CONTEXTS)
def test_children_many_to_many_mpmc(names, method: str) -> None:
    """2 producer children -> mpmc ring -> 2 consumer children -> mpmc ring -> here."""
    ctx = mp.get_context(method)
    per_producer = 3000
    work = shmring.create(names.new(), 8, slot_size=W.SIZE, kind="mpmc")
    results = shmring.create(names.new(), 8, slot_size=W.SIZE, kind="mpmc")
    producers = [ctx.Process(target=W.produce, args=(work, p, per_producer)) for p in (0, 1)]
    consumers = [ctx.Process(target=W.consume, args=(work, results)) for _ in (0, 1)]
    for p in producers + consumers:
        p.start()
    got: list[tuple[int, int]] = []
    try:
        while len(got) < 2 * per_producer:
            got.append(check_payload(results.get(timeout=TIMEOUT)))
        finish(producers)
        work.shutdown()  # the consumers drain it and stop
        finish(consumers)
    finally:
        finish(producers + consumers)
    assert results.try_get() is None
    counts = Counter(got)
    assert set(counts) == {(p, s) for p in (0, 1) for s in range(per_producer)}, "lost or foreign messages"
    assert max(counts.values()) == 1, "duplicated messages"
    work.close()
    results.close()


@pytest.mark.parametrize("method", CONTEXTS)
def test_process_pool_executor_initializer(names, method: str) -> None:
    """Rings given to ProcessPoolExecutor(initializer=...) are attached in each worker."""
    n = 4000
    jobs = shmring.create(names.new(), 64, slot_size=W.SIZE, kind="mpmc")
    results = shmring.create(names.new(), 64, slot_size=W.SIZE, kind="mpmc")
    with ProcessPoolExecutor(2, mp.get_context(method), initializer=W.init_kwargs,
                             initargs=(jobs, results)) as pool:
        tasks = [pool.submit(W.echo_until_eof) for _ in range(2)]
        got = []
        for seq in range(n):
            jobs.put(W.payload(1, seq, W.SIZE), timeout=TIMEOUT)
            while (msg := results.try_get()) is not None:
                got.append(check_payload(msg))
        jobs.shutdown()
        while len(got) < n:
            got.append(check_payload(results.get(timeout=TIMEOUT)))
        done = [t.result(timeout=TIMEOUT) for t in tasks]
    assert sorted(got) == [(1, seq) for seq in range(n)]  # each exactly once
    assert sum(k for _, k in done) == n
    assert os.getpid() not in {pid for pid, _ in done}
    jobs.close()
    results.close()


@pytest.mark.parametrize("method", CONTEXTS)
def test_pool_workers_with_rings_as_arguments_and_initargs(names, method: str) -> None:
    """multiprocessing.Pool: a ring in each task's arguments, and one in initargs."""
    n = 300
    ring = shmring.create(names.new(), n, slot_size=W.SIZE, kind="mpmc")
    with mp.get_context(method).Pool(2, initializer=W.guard_resource_tracker) as pool:
        pids = pool.map(W.put_one, [(ring, seq) for seq in range(n)], chunksize=8)
        pool.close()
        pool.join()
    assert os.getpid() not in pids
    # The pool and its workers are gone; the ring is still there, with every message.
    assert name_exists(ring.name)
    got = sorted(check_payload(ring.get(timeout=TIMEOUT)) for _ in range(n))
    assert got == [(0, seq) for seq in range(n)]

    for seq in range(n):
        ring.put(W.payload(2, seq, W.SIZE))
    with mp.get_context(method).Pool(2, initializer=W.init_jobs, initargs=(ring,)) as pool:
        got = pool.map(W.get_one, range(n), chunksize=8)
        pool.close()
        pool.join()
    assert sorted(got) == [(2, seq) for seq in range(n)]
    assert len(ring) == 0 and name_exists(ring.name)
    ring.close()


def name_exists(name: str) -> bool:
    return name in shmring.testing.segments()


def test_pickle_is_by_name(name: str) -> None:
    with shmring.create(name, 4, shape=(2, 3), dtype="float32", kind="mpmc") as ring:
        blob = pickle.dumps(ring)
        assert len(blob) < 200 and name.encode() in blob  # the name, not the memory
        with pickle.loads(blob) as clone:
            assert (clone.name, clone.kind, clone.shape, clone.dtype) == (name, "mpmc", (2, 3), ring.dtype)
            clone.put(__import__("numpy").ones((2, 3), "float32"))
        assert ring.get().sum() == 6
        ring.unlink()
        with pytest.raises(FileNotFoundError) as exc:  # unpickling attaches: the name is gone
            pickle.loads(blob)
        assert isinstance(exc.value, shmring.ShmringError)
