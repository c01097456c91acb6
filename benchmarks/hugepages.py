"""Huge pages against 4 KiB pages, in the same run.

    sudo python benchmarks/hugepages.py [--rounds 7] [--frames 5000] [--json PATH]

Two measurements, each made for a ring on hugetlbfs (hugepages="require") and on
4 KiB /dev/shm pages (hugepages="off"), in alternating order within every round so
that a slow spell of the host hits both alike:

  create+touch   create a 256 MiB ring (256 slots of 1 MiB) and write one byte of
                 every 4 KiB of it, as a producer filling it the first time would.
                 One process; the clock covers create() and the touches.
  frames         1 MiB frames through an array ring: the producer process
                 reserve()s and np.copyto()s each frame in, the consumer recv()s and
                 np.copyto()s it out and checks its stamps (sequence at both ends).
                 Producer and consumer are pinned to different cores; the clock runs
                 from the producer's start (after both are ready) to the consumer's
                 last frame.  Capacity 4 (4 MiB: within the TLB's reach either way)
                 and 64 (64 MiB: 16384 small pages, beyond it).

The table gives, per case, the median and min-max over rounds; the ratio is the
median of same-round ratios (huge over 4 KiB for rates, 4 KiB over huge for times:
above 1 means huge pages won).  Needs root for huge_pages() (reserves pages, mounts
hugetlbfs privately if no mount is usable; the host is put back afterwards).
`run()` returns the raw numbers for a harness that wants this as a workload.
"""
from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

import shmring
from shmring import testing

MIB = 1 << 20
BIG_SLOTS = 256                 # the 256 MiB ring
CAPACITIES = (4, 64)
MODES = ("require", "off")      # hugetlbfs, 4 KiB
TIMEOUT = 30.0


def _name(tag: str) -> str:
    return testing.unique_name(f"bench-huge-{tag}")


def create_and_touch(mode: str) -> dict[str, Any]:
    """Seconds to create a 256 MiB ring and first-touch every 4 KiB of its slots."""
    name = _name("touch")
    t0 = time.perf_counter()
    ring = shmring.create(name, BIG_SLOTS, shape=(MIB,), dtype=np.uint8, hugepages=mode)
    t1 = time.perf_counter()
    for _ in range(BIG_SLOTS):
        with ring.reserve(TIMEOUT) as slot:
            slot[::4096] = 1
    t2 = time.perf_counter()
    info = ring.info()
    ring.unlink()
    ring.close()
    del ring, slot
    gc.collect()   # unmap now: the next trial needs the pool's pages back
    return {"create_s": t1 - t0, "touch_s": t2 - t1, "total_s": t2 - t0,
            "backing": info["backing"], "page_size": info["page_size"], "size_bytes": info["size_bytes"]}


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _producer(name: str, frames: int, cpu: int | None, ready: Any, go: Any, start: Any) -> None:
    _pin(cpu)
    ring = shmring.attach(name)
    src = np.random.default_rng(1).integers(0, 256, MIB, dtype=np.uint8)
    s64 = src.view(np.uint64)
    ready.wait()
    go.wait()
    start.value = time.perf_counter()
    for i in range(frames):
        s64[0] = s64[-1] = i
        with ring.reserve(TIMEOUT) as slot:
            np.copyto(slot, src)
    ring.shutdown()


def _consumer(name: str, frames: int, cpu: int | None, ready: Any, end: Any, ok: Any) -> None:
    _pin(cpu)
    ring = shmring.attach(name)
    dst = np.empty(MIB, np.uint8)
    d64 = dst.view(np.uint64)
    ready.wait()
    for i in range(frames):
        with ring.recv(TIMEOUT) as view:
            np.copyto(dst, view)
        if d64[0] != i or d64[-1] != i:
            return   # lost, reordered or torn: ok stays 0
    end.value = time.perf_counter()
    try:
        ring.get(timeout=TIMEOUT)
    except EOFError:
        ok.value = 1


def frames_trial(mode: str, capacity: int, frames: int) -> dict[str, Any]:
    """1 MiB frames per second, producer and consumer in two pinned processes."""
    name = _name("frames")
    cpus = sorted(os.sched_getaffinity(0))
    pin = (cpus[0], cpus[-1]) if len(cpus) > 1 else (None, None)
    ctx = mp.get_context("fork")   # inherits a private hugetlbfs mount, if huge_pages() made one
    with shmring.create(name, capacity, shape=(MIB,), dtype=np.uint8, hugepages=mode) as ring:
        info = ring.info()
        ready, go = ctx.Barrier(3), ctx.Barrier(2)
        start, end, ok = ctx.Value("d", 0.0), ctx.Value("d", 0.0), ctx.Value("i", 0)
        procs = [ctx.Process(target=_consumer, args=(name, frames, pin[1], ready, end, ok)),
                 ctx.Process(target=_producer, args=(name, frames, pin[0], ready, go, start))]
        for p in procs:
            p.start()
        ready.wait()
        go.wait()
        for p in procs:
            p.join(120)
            if p.is_alive():
                p.kill()
        ring.unlink()
    del ring
    gc.collect()
    if not ok.value or any(p.exitcode for p in procs):
        raise RuntimeError(f"{mode} capacity {capacity}: a frame was lost, reordered or torn "
                           f"(exit codes {[p.exitcode for p in procs]})")
    return {"frames_per_s": frames / (end.value - start.value), "backing": info["backing"],
            "page_size": info["page_size"]}


def run(rounds: int = 7, frames: int = 5000) -> dict[str, Any]:
    """Every trial's numbers: {"create+touch": {mode: [...]}, "frames cap N": {mode: [...]}}."""
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in range(rounds):
        order = MODES if r % 2 == 0 else MODES[::-1]
        for mode in order:
            raw.setdefault("create+touch 256 MiB", {}).setdefault(mode, []).append(create_and_touch(mode))
        for cap in CAPACITIES:
            for mode in order:
                raw.setdefault(f"1 MiB frames, capacity {cap}", {}).setdefault(mode, []).append(
                    frames_trial(mode, cap, frames))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return raw


def _fmt(values: list[float], unit: str) -> str:
    med = statistics.median(values)
    scale, u = (1e3, "ms") if unit == "s" else (1.0, unit)
    return f"{med * scale:,.1f} {u} ({min(values) * scale:,.1f}-{max(values) * scale:,.1f})"


def table(raw: dict[str, Any]) -> str:
    lines = ["| case | hugetlbfs (2 MiB pages) | 4 KiB pages | huge vs 4 KiB (median of round ratios; > 1: huge better) |",
             "|---|---|---|---|"]
    for case, by_mode in raw.items():
        huge, small = by_mode["require"], by_mode["off"]
        assert all(t["backing"] == "hugetlbfs" for t in huge) and all(t["backing"] == "shm" for t in small)
        if "create_s" in huge[0]:
            for key, what in (("total_s", "create + first touch"), ("create_s", "create only"),
                              ("touch_s", "first touch only")):
                h, s = [t[key] for t in huge], [t[key] for t in small]
                ratio = statistics.median(b / a for a, b in zip(h, s))
                lines.append(f"| {case}: {what} | {_fmt(h, 's')} | {_fmt(s, 's')} | {ratio:.2f}x |")
        else:
            h, s = [t["frames_per_s"] for t in huge], [t["frames_per_s"] for t in small]
            ratio = statistics.median(a / b for a, b in zip(h, s))
            lines.append(f"| {case} | {_fmt(h, 'frames/s')} | {_fmt(s, 'frames/s')} | {ratio:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--frames", type=int, default=5000, help="1 MiB frames per trial")
    ap.add_argument("--json", metavar="PATH", help="write every trial's numbers here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: reserves huge pages (vm.nr_hugepages) and mounts hugetlbfs if none is usable",
              file=sys.stderr)
        return 2
    load0 = os.getloadavg()
    pages = (BIG_SLOTS * MIB) // (2 * MIB) + 8
    with testing.huge_pages(pages) as host:
        print(f"hugetlbfs {host.dir} ({'temporary mount' if host.mounted else 'existing mount'}), "
              f"{host.page_size >> 20} MiB pages, {host.reserved} reserved for this run", file=sys.stderr)
        raw = run(args.rounds, args.frames)
    load1 = os.getloadavg()
    print(f"{args.rounds} rounds, {args.frames} frames per trial; "
          f"loadavg {load0[0]:.2f} at start, {load1[0]:.2f} at end; {os.cpu_count()} CPUs\n")
    print(table(raw))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "frames": args.frames, "loadavg": [load0, load1], "raw": raw},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
