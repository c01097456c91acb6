"""An asyncio consumer: `await ring.get_async()` next to other coroutines, no polling.

A producer process sends readings -- small float64 arrays (sequence number, send time,
value) -- in bursts with pauses between them, as a sensor or a market feed would.  The
consumer is a coroutine on this process's event loop.  While it waits for the next
reading the loop is free: a heartbeat coroutine keeps ticking every 5 ms, and the
consumer wraps each wait in `asyncio.wait_for(..., timeout)` to do housekeeping when
the feed is idle.  A `get_async()` cancelled by that timeout has consumed nothing, so
no reading is lost; the consumer checks that every reading arrived exactly once, in
order, intact, and reports the delivery latency.

    python examples/asyncio_consumer.py [--readings N]
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
import uuid
from multiprocessing.process import BaseProcess

import numpy as np

import shmring

BURST = 16           # readings per burst
PAUSE = 0.002        # seconds between bursts
QUIET = 0.05         # and a quiet spell every QUIET_EVERY readings (and before the first)
QUIET_EVERY = 512
IDLE = 0.01          # the consumer does housekeeping after this long without a reading


def value_of(seq: int) -> float:
    return float(np.sin(seq * 0.01) * 100.0)


def produce(ring: shmring.Ring, count: int) -> None:
    """Producer process: `count` readings in bursts, then shutdown."""
    reading = np.empty(3, np.float64)
    for seq in range(count):
        if seq % QUIET_EVERY == 0:
            time.sleep(QUIET)
        reading[:] = (seq, time.monotonic(), value_of(seq))  # one clock for every process
        ring.put(reading)
        if seq % BURST == BURST - 1:
            time.sleep(PAUSE)
    ring.shutdown()
    ring.close()


async def heartbeat(ticks: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        ticks.append(time.monotonic())
        await asyncio.sleep(0.005)


async def consume(ring: shmring.Ring, count: int, producer: BaseProcess) -> tuple[int, int, int, list[float], int]:
    """Returns (verified, out of order or wrong, missing, latencies, idle timeouts)."""
    expected, wrong, idle = 0, 0, 0
    latencies: list[float] = []
    while True:
        try:
            reading = await asyncio.wait_for(ring.get_async(), timeout=IDLE)
        except TimeoutError:
            idle += 1          # housekeeping would go here; the cancelled get lost nothing
            if producer.exitcode is not None and not len(ring):
                break          # the producer died without shutting the ring down
            continue
        except EOFError:       # the producer shut the ring down and it is drained
            break
        latencies.append(time.monotonic() - reading[1])
        seq = int(reading[0])
        if seq == expected and reading[2] == value_of(seq):
            expected += 1
        else:
            wrong += 1
    return expected, wrong, count - expected, latencies, idle


async def run(ring: shmring.Ring, count: int, producer: BaseProcess) -> int:
    ticks: list[float] = []
    stop = asyncio.Event()
    beat = asyncio.create_task(heartbeat(ticks, stop))
    verified, wrong, missing, latencies, idle = await consume(ring, count, producer)
    stop.set()
    await beat
    gaps = np.diff(ticks) if len(ticks) > 1 else np.zeros(1)
    lat = sorted(latencies) or [0.0]
    print(f"{count} readings; latency p50 {statistics.median(lat) * 1e6:.0f} us, "
          f"p99 {lat[int(0.99 * (len(lat) - 1))] * 1e6:.0f} us")
    print(f"event loop stayed free: {len(ticks)} heartbeats, longest gap {gaps.max() * 1e3:.1f} ms; "
          f"{idle} idle timeouts (cancelled waits)")
    print(f"{verified} verified, {missing} lost, {wrong} out of order or wrong")
    return 0 if verified == count and not wrong and len(ticks) > 1 and idle > 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=20000, help="readings to send (default 20000)")
    args = parser.parse_args(argv)

    ring = shmring.create(f"readings-{uuid.uuid4().hex[:8]}", 64, shape=(3,), dtype=np.float64)
    producer = mp.get_context("spawn").Process(target=produce, args=(ring, args.readings))
    try:
        producer.start()
        rc = asyncio.run(run(ring, args.readings, producer))
        producer.join(timeout=60)
    finally:
        if producer.is_alive():
            producer.kill()
        ring.unlink()
        ring.close()
    return rc if producer.exitcode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
