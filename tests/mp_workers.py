"""Worker functions for tests/test_multiprocessing.py.

They live in their own small module so that spawn and forkserver children, which
import the function they run by name, import only this (and shmring).  Every worker
first calls guard_resource_tracker(): a ring must never be handed to
multiprocessing.resource_tracker, which unlinks what it tracks when the processes that
registered it are gone, even while other processes still use it.
"""
from __future__ import annotations

import os
from multiprocessing import resource_tracker
from typing import Any

import shmring
from shmring.testing import check_payload, payload

SIZE = 32          # bytes per test message
TIMEOUT = 60.0

_rings: dict[str, shmring.Ring] = {}   # what a pool initializer attached, per worker


def guard_resource_tracker() -> None:
    """Make any registration of a shared-memory segment with multiprocessing's resource
    tracker, in this process, an error (multiprocessing's own semaphores are fine)."""
    if getattr(resource_tracker.register, "guarded", False):
        return
    original = resource_tracker.register

    def register(name: Any, rtype: str) -> None:
        if rtype == "shared_memory" or "shmring" in str(name):
            raise AssertionError(f"{name!r} ({rtype}) was registered with multiprocessing.resource_tracker")
        original(name, rtype)

    register.guarded = True  # type: ignore[attr-defined]
    resource_tracker.register = register  # looked up at each call, by shared_memory too


def produce(ring: shmring.Ring, producer: int, count: int) -> None:
    """Process target: `count` self-verifying messages from `producer`, then close."""
    guard_resource_tracker()
    assert os.getpid() in ring.info()["pids"], "the child attached under its own pid"
    for seq in range(count):
        ring.put(payload(producer, seq, SIZE), timeout=TIMEOUT)
    ring.close()


def consume(ring: shmring.Ring, results: shmring.Ring) -> None:
    """Process target: everything from `ring` until it is shut down, each message
    checked (crc, and every producer's sequence increasing) and echoed to `results`."""
    guard_resource_tracker()
    last: dict[int, int] = {}
    for msg in ring:
        producer, seq = check_payload(msg)
        assert seq > last.get(producer, -1), f"producer {producer}: {seq} after {last[producer]}"
        last[producer] = seq
        results.put(msg, timeout=TIMEOUT)
    results.close()
    ring.close()


def attach_rings(**rings: shmring.Ring) -> None:
    """Pool / ProcessPoolExecutor initializer: keeps the rings it was given (they arrive
    unpickled, that is attached by name in this worker)."""
    guard_resource_tracker()
    _rings.update(rings)


def init_kwargs(jobs: shmring.Ring, results: shmring.Ring) -> None:
    attach_rings(jobs=jobs, results=results)


def init_jobs(jobs: shmring.Ring) -> None:
    attach_rings(jobs=jobs)


def echo_until_eof() -> tuple[int, int]:
    """A pool task: move messages from the initializer's `jobs` ring to its `results`
    ring until `jobs` is shut down and drained.  Returns (pid, how many)."""
    jobs, results = _rings["jobs"], _rings["results"]
    n = 0
    for msg in jobs:
        check_payload(msg)
        results.put(msg, timeout=TIMEOUT)
        n += 1
    return os.getpid(), n


def put_one(args: tuple[shmring.Ring, int]) -> int:
    """A pool task whose argument carries the ring itself (pickled with each task)."""
    guard_resource_tracker()
    ring, seq = args
    ring.put(payload(0, seq, SIZE), timeout=TIMEOUT)
    return os.getpid()


def get_one(_: Any) -> tuple[int, int]:
    """A pool task reading from the initializer's ring: (producer, seq) of one message."""
    return check_payload(_rings["jobs"].get(timeout=TIMEOUT))
