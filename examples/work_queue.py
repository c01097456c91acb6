"""A bytes work queue: jobs of varying length to a pool of worker processes, results back.

    feeder thread --(mpmc byte ring of jobs)--> ProcessPoolExecutor workers
    this process  <--(mpmc byte ring of results)--/

Jobs are byte strings of up to 4 KiB (a byte ring keeps each message's own length).
The workers are a `concurrent.futures.ProcessPoolExecutor` whose initializer receives the
two rings: a Ring pickles by name and attaches again in the worker (started by a
forkserver, so nothing is inherited).  Each worker takes
jobs until the feeder shuts the job ring down, hashes each job, and puts its result
(job id + sha256) on the result ring, many producers and consumers on each ring, so
both are "mpmc".  The feeder sends jobs in batches with `put_many` (one C call per
batch); this process reads results in batches with `get_many` and checks that every job
was done exactly once, with the right digest.

    python examples/work_queue.py [--jobs N] [--workers W]
"""
from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import random
import struct
import sys
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

import shmring

JOB_HEADER = struct.Struct("<Q")           # job id, then the payload
RESULT = struct.Struct("<QI32s")           # job id, worker pid, sha256 of the payload
MAX_JOB = 4096

_jobs: shmring.Ring | None = None          # the worker's handles, set by attach_rings
_results: shmring.Ring | None = None


def make_job(job_id: int) -> bytes:
    rng = random.Random(job_id)            # the same job id always makes the same job
    payload = rng.randbytes(rng.randrange(0, MAX_JOB - JOB_HEADER.size + 1))
    return JOB_HEADER.pack(job_id) + payload


def attach_rings(jobs: shmring.Ring, results: shmring.Ring) -> None:
    """ProcessPoolExecutor initializer: the rings arrive here attached, by name."""
    global _jobs, _results
    _jobs, _results = jobs, results


def serve() -> tuple[int, float, float]:
    """A worker's task: do jobs until the job ring is shut down and drained.
    Returns how many, and when it took the first and finished the last (monotonic
    clock, which is one clock for every process on the host)."""
    assert _jobs is not None and _results is not None
    done, first, last = 0, float("inf"), 0.0
    for job in _jobs:                      # copies; stops at shutdown once drained
        first = min(first, time.monotonic())
        (job_id,) = JOB_HEADER.unpack_from(job)
        digest = hashlib.sha256(job[JOB_HEADER.size:]).digest()
        _results.put(RESULT.pack(job_id, os.getpid(), digest))
        done += 1
        last = time.monotonic()
    return done, first, last


def feed(name: str, count: int, batch: int = 64) -> None:
    """Feeder thread (its own handle): all jobs in batches, then shutdown."""
    with shmring.attach(name) as jobs:
        for first in range(0, count, batch):
            jobs.put_many([make_job(i) for i in range(first, min(first + batch, count))])
        jobs.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs to send (default 20000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)

    tag = uuid.uuid4().hex[:8]
    jobs = shmring.create(f"jobs-{tag}", 256, slot_size=MAX_JOB, kind="mpmc")
    results = shmring.create(f"results-{tag}", 256, slot_size=RESULT.size, kind="mpmc")
    seen: dict[int, int] = {}
    by_worker: dict[int, int] = {}
    verified: set[int] = set()
    wrong = 0
    try:
        # forkserver: workers are fresh processes, so the rings really travel by name.
        ctx = mp.get_context("forkserver")
        with ProcessPoolExecutor(args.workers, ctx, initializer=attach_rings, initargs=(jobs, results)) as pool:
            feeder = threading.Thread(target=feed, args=(jobs.name, args.jobs))
            feeder.start()
            tasks = [pool.submit(serve) for _ in range(args.workers)]
            received = 0
            while received < args.jobs:
                try:
                    batch = results.get_many(256, timeout=1.0)
                except TimeoutError:
                    if all(t.done() for t in tasks):
                        break              # every worker has finished: nothing more comes
                    continue
                for msg in batch:
                    job_id, pid, digest = RESULT.unpack(msg)
                    seen[job_id] = seen.get(job_id, 0) + 1
                    by_worker[pid] = by_worker.get(pid, 0) + 1
                    if job_id < args.jobs and digest == hashlib.sha256(make_job(job_id)[JOB_HEADER.size:]).digest():
                        verified.add(job_id)
                    else:
                        wrong += 1
                received += len(batch)
            feeder.join()
            served = [t.result(timeout=60) for t in tasks]
            done = sum(n for n, _, _ in served)
            elapsed = max(last for _, _, last in served) - min(first for _, first, _ in served)
    finally:
        jobs.unlink()
        results.unlink()

    lost = sum(1 for i in range(args.jobs) if i not in seen)
    duplicated = sum(n - 1 for n in seen.values())
    print(f"{args.jobs} jobs (0-{MAX_JOB} B) through {args.workers} workers in {elapsed:.2f} s "
          f"({args.jobs / max(elapsed, 1e-9):.0f} jobs/s, first job taken to last done); "
          f"per worker: {sorted(by_worker.values(), reverse=True)}")
    print(f"workers report {done} done; {len(verified)} verified, {lost} lost, "
          f"{duplicated} duplicated, {wrong} wrong")
    return 0 if len(verified) == done == args.jobs and not (lost or duplicated or wrong) else 1


if __name__ == "__main__":
    sys.exit(main())
