"""The workloads, each written once against the transport interface.

A workload gives each process a Side: run(lo, hi) moves messages lo..hi-1 (the producer
sends them, the consumer verifies them), finish() ends the stream (the consumer checks
that it ended, so a duplicate shows), stats() what the runner reports besides the clock
(round trips: the initiator's percentiles; many to many: a consumer's account).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import payloads as P
from .payloads import BATCH, MASK, DataError
from .transport import Spec, Transport


@dataclass(frozen=True)
class Target:
    text: str
    kind: str  # "ratio_peer" (≥ x × best peer), "rate" (≥ x), "ratio_copy" (≥ x × np.copyto), "rtt_peer" (≤ x)
    value: float


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    nbytes: int  # payload bytes per message
    unit: str
    first: int  # messages in a trial before the run has measured this case
    limits: tuple[int, int]  # fewest and most messages in a trial
    warm: int  # untimed messages first
    depth: int  # messages in flight: a ring's capacity, a queue's bound
    target: Target | None = None
    latency: bool = False
    frame: bool = False
    producers: int = 1
    consumers: int = 1
    step: int = 1  # trial sizes are multiples of this

    def warmup(self, n: int) -> int:
        """Untimed messages before a trial of n: the workload's, at most a quarter of n
        (a slow peer's trial stays short), a multiple of step."""
        return max(self.step, min(self.warm, n // 4) // self.step * self.step)

    @property
    def party(self) -> bool:
        return self.producers > 1 or self.consumers > 1

    def spec(self) -> Spec:
        size = P.MSG * BATCH if self.key == "batch64" else self.nbytes
        return Spec(self.key, size, self.frame, self.depth, self.producers, self.consumers)


WORKLOADS = [
    Workload("msg64", "64 B messages, one call each", 64, "msgs/s", 1_000, (1_000, 2_000_000), 2_000, 1024,
             Target("≥ 5× the best peer", "ratio_peer", 5.0)),
    Workload("batch64", f"64 B messages, batches of {BATCH}", 64, "msgs/s", 8 * BATCH, (8 * BATCH, 1 << 24),
             16 * BATCH, 64, Target("≥ 50 M msgs/s", "rate", 50e6), step=BATCH),
    Workload("frame64k", "64 KiB numpy frames, consumer reads each whole", 1 << 16, "frames/s", 100,
             (100, 200_000), 100, 16, Target("≥ 2× the best peer", "ratio_peer", 2.0), frame=True),
    Workload("frame1m", "1 MiB numpy frames, consumer reads each whole", 1 << 20, "frames/s", 20,
             (20, 20_000), 16, 4, Target("≥ 0.9× np.copyto", "ratio_copy", 0.9), frame=True),
    Workload("pingpong64", "64 B round trip (ping, echo)", 64, "round trips", 500, (500, 100_000), 500, 64,
             Target("p50 ≤ 1/3 of the best peer's", "rtt_peer", 1 / 3), latency=True),
    Workload("many64", "64 B messages, 2 producers → 2 consumers", 64, "msgs/s", 2_000, (2_000, 400_000), 2_048,
             1024, producers=2, consumers=2, step=2),
]
BY_KEY = {w.key: w for w in WORKLOADS}


class Latency(NamedTuple):
    """One trial's round trips, in µs."""

    p50: float
    p99: float
    p999: float
    worst: float

    @classmethod
    def of(cls, ns: list[int]) -> Latency:
        a = np.asarray(ns, dtype=np.int64)
        if not len(a):
            raise DataError("no round trip was timed")
        p50, p99, p999 = np.percentile(a, [50, 99, 99.9]) / 1e3
        return cls(float(p50), float(p99), float(p999), float(a.max()) / 1e3)


class Side(NamedTuple):
    run: Callable[[int, Any], None]
    finish: Callable[[], None]
    stats: Callable[[], Any] | None = None


def _expect(got: int, hi: int) -> None:
    if got != hi:
        raise DataError(f"the stream ended after {got} messages, expected {hi}: data lost")


def _msg_producer(tx: Any) -> Side:
    send, wire = tx.send, tx.wire(P.msgs64())

    def run(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            send(wire[i & MASK])

    return Side(run, tx.end)


def _msg_consumer(rx: Any) -> Side:
    it, msgs = rx.messages(), P.msgs64()

    def run(lo: int, hi: int) -> None:
        i = lo - 1
        for i, m in zip(range(lo, hi), it):
            if m != msgs[i & MASK]:
                raise DataError(f"message {i}: lost, reordered or corrupted")
        _expect(i + 1, hi)

    return Side(run, rx.expect_end)


def _batch_producer(tx: Any) -> Side:
    send, blocks = tx.send_batch, tx.wire_batches(P.blocks64())

    def run(lo: int, hi: int) -> None:  # lo, hi: multiples of BATCH
        for i in range(lo, hi, BATCH):
            send(blocks[(i & MASK) // BATCH])

    return Side(run, tx.end)


def _batch_consumer(rx: Any) -> Side:
    it, flat, whole = rx.batches(), P.flat64(), P.block_bytes64()
    full = P.MSG * BATCH
    done = [0]  # messages verified so far

    def run(lo: int, hi: int) -> None:
        i = done[0]
        while i < hi:
            b = bytes(next(it))
            j = i & MASK
            if len(b) == full and not j % BATCH:  # a whole batch where one starts: no slicing
                ok = b == whole[j // BATCH]
            else:
                ok = not len(b) % P.MSG and b == flat[j * P.MSG : j * P.MSG + len(b)]
            if not ok:
                raise DataError(f"messages from {i} ({len(b)} bytes): lost, reordered or corrupted")
            i += len(b) // P.MSG
        done[0] = i

    return Side(run, rx.expect_end)


def _frame_producer(tx: Any, nbytes: int) -> Side:
    src, send = P.frame_src(nbytes).copy(), tx.send_frame
    w = src.view(np.uint64)

    def run(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            w[0] = w[-1] = i
            send(src)

    return Side(run, tx.end)


def _frame_consumer(rx: Any, nbytes: int) -> Side:
    it, check = rx.frames(nbytes), P.frame_checker(nbytes)

    def run(lo: int, hi: int) -> None:
        i = lo - 1
        for i, f in zip(range(lo, hi), it):
            check(f, i)
        _expect(i + 1, hi)

    def finish() -> None:
        it.close()  # give back the last frame (a ring slot, a loaned sample) first
        rx.expect_end()

    return Side(run, finish)


def _pause(clock: Callable[[], int], ns: int) -> None:
    """Busy-wait: this side stays awake while its peer falls asleep."""
    until = clock() + ns
    while clock() < until:
        pass


def _initiator(tx: Any, rx: Any, gap_us: float) -> Side:
    """Sends message i, waits for its echo, compares it whole; times each exchange alone."""
    send, wire, msgs = tx.send, tx.wire(P.msgs64()), P.msgs64()
    nxt, clock = rx.messages().__next__, time.perf_counter_ns
    gap, ns = int(gap_us * 1000), [0]
    samples: list[int] = []

    def run(lo: int, hi: int) -> None:
        samples.clear()
        record = samples.append
        for i in range(lo, hi):
            if gap:
                _pause(clock, gap)
            t0 = clock()
            send(wire[i & MASK])
            echo = nxt()
            record(clock() - t0)
            if echo != msgs[i & MASK]:
                raise DataError(f"round trip {i}: the echo was lost, reordered or corrupted")
        ns[0] = len(samples)

    def finish() -> None:
        tx.end()
        rx.expect_end()

    return Side(run, finish, lambda: Latency.of(samples))


def _responder(tx: Any, rx: Any) -> Side:
    send, enc, nxt = tx.send, tx.encode, rx.messages().__next__

    def run(lo: int, hi: int) -> None:
        for _ in range(lo, hi):
            send(enc(nxt()))

    def finish() -> None:
        rx.expect_end()
        tx.end()

    return Side(run, finish)


def _many_producer(tx: Any, index: int, total: int) -> Side:
    send, msgs = tx.send, tx.wire(P.many_msgs(index, total))

    def run(lo: int, hi: int) -> None:
        for m in msgs[lo:hi]:
            send(m)

    return Side(run, tx.end_shared)


def _many_consumer(rx: Any, producers: int, total: int) -> Side:
    it = rx.messages()
    got: list[Any] = []
    keep = got.append

    def run(lo: int, hi: int | None) -> None:
        if hi is not None:
            for _, m in zip(range(lo, hi), it):
                keep(m)
            return
        for m in it:
            if len(m) != P.MSG and bytes(m) == P.END:
                return
            keep(m)

    return Side(run, lambda: None, lambda: P.many_verify([bytes(m) for m in got], producers, total))


def side(wl: Workload, role: str, index: int, tr: Transport, chans: list[Any], stack: contextlib.ExitStack,
         total: int) -> Side:
    """This process's Side: role "producer" (or the round trip's initiator) or "consumer"."""
    producer = role == "producer"
    if wl.latency:
        ping, pong = chans
        if producer:
            return _initiator(tr.sender(ping, stack), tr.receiver(pong, stack), tr.gap_us)
        return _responder(tr.sender(pong, stack), tr.receiver(ping, stack))
    (ch,) = chans
    end = tr.sender(ch, stack) if producer else tr.receiver(ch, stack)
    if wl.party:
        return _many_producer(end, index, total) if producer else _many_consumer(end, wl.producers, total)
    if wl.frame:
        return _frame_producer(end, wl.nbytes) if producer else _frame_consumer(end, wl.nbytes)
    if wl.key == "batch64":
        return _batch_producer(end) if producer else _batch_consumer(end)
    return _msg_producer(end) if producer else _msg_consumer(end)


def prepare(keys: set[str]) -> None:
    """Build the payloads before forking, so no child pays for them inside a trial."""
    P.msgs64(), P.pool64(), P.flat64(), P.blocks64(), P.block_bytes64()
    for wl in WORKLOADS:
        if wl.key in keys and wl.frame:
            P.frame_src(wl.nbytes), P.frame_base_sum(wl.nbytes)
