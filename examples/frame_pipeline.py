"""A frame pipeline: one producer, two workers, one collector, no frame copied on the way.

    producer --(mpmc ring of 480x640x3 uint8 frames)--> worker 0 --(spsc ring)--> collector
                                                    \\-> worker 1 --(spsc ring)--/

The producer writes each frame in place into the next free slot (`reserve()`), the way a
camera driver or decoder would fill it.  Two worker processes share the frame ring (mpmc:
each frame goes to exactly one of them), read their frame in place (`recv()`, a read-only
view), and send a small result -- the frame's index and crc32 -- down a result ring of
their own (spsc: one producer and one consumer each).  The collector, this process, reads
both result rings and checks that every frame arrived exactly once and intact.

    python examples/frame_pipeline.py [--frames N] [--capacity C]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import struct
import sys
import threading
import time
import uuid
import zlib

import numpy as np

import shmring

SHAPE = (480, 640, 3)
RESULT = struct.Struct("<QIQ")  # frame index, worker id, crc32 of the frame


def draw(frame: np.ndarray, index: int) -> None:
    """Fill a frame for `index` in place: a flat colour that changes with the index, and
    the index itself in the first 8 bytes (so a frame shown twice or torn is caught)."""
    frame[...] = index % 251
    frame.reshape(-1)[:8] = np.frombuffer(index.to_bytes(8, "little"), np.uint8)


def expected_crc(index: int) -> int:
    frame = np.empty(SHAPE, np.uint8)
    draw(frame, index)
    return zlib.crc32(frame.data)


def produce(frames: shmring.Ring, count: int) -> None:
    """Producer process: draws `count` frames straight into the ring's slots."""
    start = time.perf_counter()
    for index in range(count):
        with frames.reserve() as slot:  # a writable view of the next free slot
            draw(slot, index)           # published when the block ends
    frames.shutdown()                   # workers drain what is left, then stop
    elapsed = time.perf_counter() - start
    print(f"producer: {count} frames of {SHAPE} uint8 in {elapsed:.2f} s ({count / elapsed:.0f} frames/s, "
          f"{count * frames.slot_size / elapsed / 1e9:.2f} GB/s through the ring)", flush=True)
    frames.close()


def work(worker: int, frames: shmring.Ring, results: shmring.Ring) -> None:
    """Worker process: reads frames in place until the producer shuts the ring down."""
    while True:
        try:
            with frames.recv() as view:  # a read-only view of the slot: no copy
                index = int.from_bytes(view.reshape(-1)[:8].tobytes(), "little")
                crc = zlib.crc32(view.data)
        except EOFError:  # shut down and drained
            break
        results.put(RESULT.pack(index, worker, crc))
    results.shutdown()
    frames.close()
    results.close()


def collect(name: str, out: list[tuple[int, int, int]]) -> None:
    """Collector thread, one per result ring (each with its own handle): gathers results
    until the worker shuts its ring down."""
    with shmring.attach(name) as results:
        for msg in results:  # iteration stops at shutdown once the ring is drained
            out.append(RESULT.unpack(msg))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames to send (default 2000)")
    parser.add_argument("--capacity", type=int, default=8, help="slots in the frame ring (default 8)")
    args = parser.parse_args(argv)

    tag = uuid.uuid4().hex[:8]
    ctx = mp.get_context("spawn")  # fresh interpreters: the rings travel by name
    frames = shmring.create(f"frames-{tag}", args.capacity, shape=SHAPE, dtype=np.uint8, kind="mpmc")
    results = [shmring.create(f"results-{w}-{tag}", 64, slot_size=RESULT.size) for w in (0, 1)]
    procs = [ctx.Process(target=work, args=(w, frames, results[w])) for w in (0, 1)]
    procs.append(ctx.Process(target=produce, args=(frames, args.frames)))
    got: list[list[tuple[int, int, int]]] = [[], []]
    threads = [threading.Thread(target=collect, args=(results[w].name, got[w])) for w in (0, 1)]
    try:
        for p in procs:
            p.start()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.2)
            if any(p.exitcode not in (None, 0) for p in procs):
                # A process died: shut every ring down so that nobody waits for it.
                for ring in (frames, *results):
                    ring.shutdown()
        for p in procs:
            p.join(timeout=60)
        failed = [p.exitcode for p in procs if p.exitcode != 0]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        for ring in (frames, *results):
            ring.unlink()
            ring.close()

    counts: dict[int, int] = {}
    corrupted = 0
    for index, _worker, crc in got[0] + got[1]:
        counts[index] = counts.get(index, 0) + 1
        if not (index < args.frames and crc == expected_crc(index)):
            corrupted += 1
    lost = sum(1 for i in range(args.frames) if i not in counts)
    duplicated = sum(n - 1 for n in counts.values())
    verified = len(got[0]) + len(got[1]) - corrupted - duplicated
    print(f"worker 0: {len(got[0])} frames, worker 1: {len(got[1])} frames; processes failed: {len(failed)}")
    print(f"{verified} verified, {lost} lost, {duplicated} duplicated, {corrupted} corrupted")
    return 0 if verified == args.frames and not (lost or duplicated or corrupted or failed) else 1


if __name__ == "__main__":
    sys.exit(main())
