"""`python -m shmring bench`: shmring against os.pipe and np.copyto, across processes.

How it measures, and why:
- Producer and consumer are separate processes (fork), pinned to two different cores,
  as in real use.  The references run in the same run, on the same cores, and the trials
  of all cases are interleaved round by round, so host noise hits every case alike.
- A trial first moves a warm-up (page faults, role claims, caches), then both processes
  meet at a barrier; the clock runs from the producer's first timed message to the
  consumer's last verified one (perf_counter is CLOCK_MONOTONIC, shared by processes).
- The consumer checks every message.  64 B messages come from a pool of 2**16 distinct
  random messages, each carrying its index in its first 8 bytes, and are compared whole;
  1 MiB frames carry their sequence number in their first and last 8 bytes.  After the
  last message the consumer must see end-of-stream (ring shut down, pipe closed): with
  the count this catches loss, duplication and reordering.  Such a trial is FAILED and
  its case reports FAILED, not a number.
- Every blocking call has a timeout, and the parent kills a trial that overruns (a
  blocking pipe read has no timeout of its own: the parent's watchdog covers it).
- Reported: the median and the min-max over trials, never the best run alone; a ratio
  is the median of the same-round ratios, which cancels most of a shared host's noise.
- Round trips (pingpong64): two channels, ping (producer -> consumer) and pong (back).
  The producer is the initiator: it sends message i of the 64 B pool, waits for the
  consumer's echo, and times each exchange alone with perf_counter_ns (put + get, or
  os.write + os.read: nothing else is inside the clock); it compares every echo whole with
  what it sent (stamp and content; one exchange is in flight at a time, so a stale echo
  cannot pass).  A trial reports p50, p99 and p99.9 of its round trips; the table gives
  the median over rounds of each percentile.  Rings run in two wait regimes (WAIT_REGIMES):
  spinning (the default spin_ns on all four handles, pings back to back) and sleeping
  (spin_ns = 0, and the initiator pauses before each ping, outside the clock, so that the
  responder is asleep on the futex when it comes: each hop pays a wake-up).  Pipes and
  sockets run back to back (a blocking read sleeps in the kernel at once), and os.pipe
  also paced like the sleeping rings, as their reference: a case's reference is the one
  paced alike.
  Beside them, once per round, an idle waiter: a process blocked in ring.get(timeout=2.0)
  on an empty ring, whose user+sys CPU time (getrusage) is reported as a share of its wait.
- Many to many (many64): 2 producer processes share the producer's core, 2 consumer
  processes the consumer's core, on one mpmc or locked ring (spsc has one of each by
  contract), and multiprocessing.Queue as the reference.  Message (p, s) is producer p's
  s-th: p, s and 48 bytes of the pool chosen by (p, s), built before the clock starts.
  A consumer keeps what it gets and, once the clock has stopped, checks every message whole
  and that each producer's sequence numbers reached it in increasing order; it sends the
  parent a bitmap, a count and a sum of sequences per producer, and the parent checks that
  every message of every producer arrived exactly once over the consumers.  End of stream:
  the last producer to finish shuts the ring down and the consumers drain to EOFError (the
  Queue: each producer puts a None after its messages, each consumer stops at its first).
  The clock runs from the barrier of all four processes to the later consumer's end of
  stream.  Keeping the messages and checking them after the clock keeps the consumers'
  hot loop to get + list.append for every transport alike.

A transport is one class with a method per (role, workload) it supports, e.g.
`producer_msg64` / `consumer_msg64`; each prepares in the child process and returns a
Side whose run(lo, hi) moves messages lo..hi-1 (a round-trip initiator's Side also has
stats(), the percentiles of its last run: the timed one).  Many-to-many workloads call
`producer_many64(channel, stack, index=i, total=t)`: producer i sends its sequences lo..hi-1,
and a consumer's run(0, k) takes k messages (its share of the warm-up), run(k, None) takes
messages until the end of the stream, and stats() is its verified account.  More transports (mpmc and locked rings,
multiprocessing.Queue, sockets) slot in as more classes or more RING_KINDS.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import platform
import resource
import signal
import socket
import statistics
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

import numpy as np

import shmring
from shmring import testing
from shmring._ring import DEFAULT_SPIN_NS

RING_KINDS = ["spsc", "mpmc", "locked"]  # each kind gets its own rows
# Round trips measure the wake-up path, which the kinds share but for locked's
# semaphores: spsc stands for the lock-free ones.  Many producers and consumers: spsc
# allows one of each by contract.
KIND_WORKLOADS = {"pingpong64": ["spsc", "locked"], "many64": ["mpmc", "locked"]}

# The first capacity of each workload is the default; the rest run only in full mode.
# From this machine's sweeps (benchmarks/README.md): one 64 B message at a time is flat
# in capacity (Python, not the ring, sets the pace), so the small ring; batches of 256
# measured flat too, but C rings of 2-8 MiB ran several times faster than small ones,
# so 65536 slots (8 MiB at a 128 B stride); 1 MiB frames: 16 slots (16 MiB) fall out of
# cache and run slower, 2-8 do not differ, so 4.
# Round trips keep one message in flight per ring: capacity cannot matter, so one size.
# many64: msg64's small ring; full mode adds 65536 slots (the warm-up then wraps it once).
RING_CAPACITIES = {"msg64": (1024, 4096, 65536), "batch64": (65536, 4096), "frame1m": (4, 2, 8, 16),
                   "pingpong64": (64,), "many64": (1024, 65536)}


class Regime(NamedTuple):
    """How the ring sides of a round trip wait."""

    spin_ns: int | None  # set on every handle (None: the library's default)
    gap_us: float  # the initiator's pause before each ping, outside the clock


# Sleeping: spin_ns 0 is not "straight to the futex": get() first runs its Python slow
# path and the C wait polls 64 times, and back to back the next ping often lands inside
# that window (measured here: 45-60 % of round trips then never slept, and a trial's p50
# fell on either mode).  A pause before each ping lets the responder reach the futex, so
# every hop pays a wake-up.  The pause itself makes wake-ups dearer (an idle core sleeps
# deeper: os.pipe went from 50 to 82 µs p50 here), so os.pipe runs paced the same way too,
# as the sleeping rows' reference.
WAIT_REGIMES = {"spinning": Regime(None, 0.0), "sleeping": Regime(0, 50.0)}
RING_REGIMES = {"pingpong64": ("spinning", "sleeping")}  # each regime gets its own row

CALL_TIMEOUT = 10.0  # seconds for any one blocking call (put, get, barrier)
TRIAL_TIMEOUT = 180.0  # the parent kills a trial that takes longer
POOL = 1 << 16  # distinct 64 B messages; message i is pool[i % POOL]
QUICK_MANY, FULL_MANY = 60_000, 200_000  # many64: messages per trial over both producers
MASK = POOL - 1
BATCH = 256
FRAME = 1 << 20
CHUNK = 1 << 16  # pipe reader's read size
FRAME64 = 4 + 64  # a 64 B message on a pipe or socket: 4-byte length prefix + payload
IDLE_WAIT = 2.0  # seconds the idle waiter blocks in ring.get(timeout=IDLE_WAIT)
IDLE_TARGET = 0.01  # its CPU time as a share of the wait: target below 1 %
NAME_TAG = "bench"

_U32 = struct.Struct("<I")
MANY = struct.Struct("<QQ48s")  # many64: producer id, sequence, 48 bytes of the pool
_CTX = mp.get_context("fork")  # children inherit the pools, the pipes, the transports


class DataError(Exception):
    """The consumer saw a lost, duplicated, reordered or corrupted message."""


class TrialFailed(Exception):
    pass


# -- workloads ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    text: str
    min_rate: float | None = None
    min_ratio: float | None = None
    max_p50_us: float | None = None  # round trips: bounds on the medians of p50 and p99
    max_p99_us: float | None = None
    regime: str | None = None  # round trips: only the ring rows of this wait regime

    def met_latency(self, lat: Latency | None) -> dict[str, bool | None]:
        """Each bound on its own ("p50 ≤ 1.5 µs" -> met?), None where nothing was measured."""
        out: dict[str, bool | None] = {}
        for name, bound in (("p50", self.max_p50_us), ("p99", self.max_p99_us)):
            if bound is not None:
                out[f"{name} ≤ {bound:g} µs"] = None if lat is None else getattr(lat, name) <= bound
        return out

    def met(self, rate: float | None, ratio: float | None, lat: Latency | None = None) -> bool | None:
        if self.max_p50_us is not None or self.max_p99_us is not None:
            parts = self.met_latency(lat).values()
            return None if None in parts else all(parts)
        if rate is None or (self.min_ratio is not None and ratio is None):
            return None
        return (self.min_rate is None or rate >= self.min_rate) and (
            self.min_ratio is None or ratio >= self.min_ratio  # type: ignore[operator]
        )


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    nbytes: int  # payload bytes per message
    unit: str
    count: tuple[int, int]  # messages per trial: (quick, full)
    warm: int  # untimed messages first
    reference: tuple[str, str] | None  # (workload key, transport name) of the ratio's denominator
    target: Target | None
    latency: bool = False  # round trips: the outcome of a trial is its Latency, not a rate
    producers: int = 1  # processes on each side (count: over all producers; warm: per producer)
    consumers: int = 1

    @property
    def party(self) -> bool:
        """Many to many: producers and consumers tell their messages apart by producer id."""
        return self.producers > 1 or self.consumers > 1


WORKLOADS = [
    Workload(
        "msg64", "64 B messages, one put()/get() each", 64, "msgs/s",
        (300_000, 1_000_000), POOL, ("msg64", "os.pipe"),
        Target("≥ 4 M msgs/s and ≥ 5× os.pipe", min_rate=4e6, min_ratio=5.0),
    ),
    Workload(
        # count: over both producers (each sends half); warm: per producer (rings: at least
        # one lap of the ring).  The Queue sets the pace (~50 k msgs/s here, 2 → 2): quick's
        # 60 k keep its trial near 1 s and the rings' near 0.25 s, so --quick stays < 90 s
        "many64", "64 B messages, 2 producers → 2 consumers, one put()/get() each", 64, "msgs/s",
        (QUICK_MANY, FULL_MANY), 4096, ("many64", "multiprocessing.Queue"), None,
        producers=2, consumers=2,
    ),
    Workload(
        "batch64", "64 B messages, put_many()/get_many() of 256", 64, "msgs/s",
        (1 << 22, 1 << 24), POOL, ("msg64", "os.pipe"),
        Target("≥ 50 M msgs/s", min_rate=50e6),
    ),
    Workload(
        "frame1m", "1 MiB frames, written in place (reserve) and read whole (recv)", FRAME,
        "frames/s", (1000, 3000), 32, ("frame1m", "np.copyto"),
        Target("≥ 0.9× np.copyto", min_ratio=0.9),
    ),
    Workload(
        "pingpong64", "64 B round trips: put() a ping, get() its echo (latency)", 64,
        # quick: 10k, not more: a sleeping or pipe round trip averages 100-400 µs here (its
        # tail, not its p50), and --quick must stay under a minute on a busy 2-core host
        "round trips", (10_000, 100_000), 1_000, ("pingpong64", "os.pipe"),
        Target("spinning, from Python: p50 ≤ 1.5 µs and p99 ≤ 5 µs", max_p50_us=1.5, max_p99_us=5.0,
               regime="spinning"),
        latency=True,
    ),
]
_WL = {w.key: w for w in WORKLOADS}


# -- payloads: built once in the parent, inherited by every child ------------------------
@functools.cache
def _pool64() -> np.ndarray:
    """(POOL + BATCH, 64) uint8 of random bytes; row i starts with i % POOL (8 bytes LE).

    The extra rows repeat the first ones, so a batch starting anywhere is one slice.
    """
    a = np.random.default_rng(0x5EED).integers(0, 256, (POOL, 64), dtype=np.uint8)
    a.view("<u8")[:, 0] = np.arange(POOL, dtype=np.uint64)
    return np.concatenate([a, a[:BATCH]])


@functools.cache
def _msgs64() -> list[bytes]:
    return [row.tobytes() for row in _pool64()[:POOL]]


@functools.cache
def _pool64_flat() -> bytes:
    return _pool64().tobytes()


@functools.cache
def _frame_src() -> np.ndarray:
    return np.random.default_rng(0xF7A3E).integers(0, 256, FRAME, dtype=np.uint8)


@functools.cache
def _framed64() -> list[bytes]:
    """The 64 B messages as a pipe or socket carries them: 4-byte length prefix first."""
    return [_U32.pack(64) + m for m in _msgs64()]


@functools.cache
def _bodies48() -> list[bytes]:
    """Bytes 16..63 (random) of each pool row: many64's message (p, s) carries row (2s + p) % POOL."""
    return [row[16:].tobytes() for row in _pool64()[:POOL]]


def _many_msgs(p: int, total: int) -> list[bytes]:
    """Producer p's messages, sequences 0..total-1 (built in the child, before the clock)."""
    pack, bodies = MANY.pack, _bodies48()
    return [pack(p, s, bodies[(2 * s + p) & MASK]) for s in range(total)]


Account = list[tuple[int, int, bytes]]  # per producer: (count, sum of sequences, np.packbits bitmap)


def _many_verify(got: list[bytes], producers: int, total: int) -> Account:
    """A many64 consumer's check of every message it got, in the order it got them: each is
    64 bytes, from a known producer, with a sequence in range and the content of (p, s), and
    each producer's sequences increase.  Returns its account, per producer."""
    for k, m in enumerate(got):
        if len(m) != 64:
            raise DataError(f"message {k} received is {len(m)} bytes, not 64: corrupted")
    a = np.frombuffer(b"".join(got), np.uint8).reshape(len(got), 64)
    words = a.view("<u8")
    pid, seq = words[:, 0], words[:, 1]
    bad = np.flatnonzero((pid >= producers) | (seq >= total))
    if bad.size:
        k = int(bad[0])
        raise DataError(f"message {k} received: producer {int(pid[k])}, sequence {int(seq[k])}: corrupted")
    rows = ((2 * seq + pid) & MASK).astype(np.intp)
    bad = np.flatnonzero((a[:, 16:] != _pool64()[rows, 16:]).any(axis=1))
    if bad.size:
        k = int(bad[0])
        raise DataError(f"producer {int(pid[k])}, sequence {int(seq[k])}: content corrupted (torn or mixed up)")
    out = []
    for p in range(producers):
        s = seq[pid == p].astype(np.int64)
        back = np.flatnonzero(np.diff(s) <= 0)
        if back.size:
            j = int(back[0])
            raise DataError(f"producer {p}: sequence {int(s[j + 1])} received after {int(s[j])} "
                            "by the same consumer: reordered or duplicated")
        bits = np.zeros(total, bool)
        bits[s] = True
        out.append((len(s), int(s.sum()), np.packbits(bits).tobytes()))
    return out


def _many_check(accounts: list[Account], producers: int, total: int) -> None:
    """The parent's check, from the consumers' accounts: every sequence 0..total-1 of every
    producer reached exactly one consumer (bitmaps), and the counts and sums agree."""
    for p in range(producers):
        seen = np.zeros(total, np.int64)
        for acc in accounts:
            seen += np.unpackbits(np.frombuffer(acc[p][2], np.uint8), count=total)
        lost, dup = np.flatnonzero(seen == 0), np.flatnonzero(seen > 1)
        if lost.size or dup.size:
            what = []
            if lost.size:
                what.append(f"{lost.size} lost (first: sequence {int(lost[0])})")
            if dup.size:
                what.append(f"{dup.size} received by both consumers (first: sequence {int(dup[0])})")
            raise DataError(f"producer {p}: " + ", ".join(what))
        count, total_sum = sum(acc[p][0] for acc in accounts), sum(acc[p][1] for acc in accounts)
        if count != total or total_sum != total * (total - 1) // 2:
            raise DataError(f"producer {p}: consumers counted {count} messages (sum of sequences {total_sum}), "
                            f"expected {total} ({total * (total - 1) // 2})")


def _prepare(keys: set[str]) -> None:
    """Build the payloads before forking, so no child pays for them inside a trial."""
    if keys & {"msg64", "batch64"}:
        _msgs64(), _pool64_flat()
    if "many64" in keys:
        _bodies48()
    if "pingpong64" in keys:
        _msgs64(), _framed64()
    if "frame1m" in keys:
        _frame_src()


# -- transports ----------------------------------------------------------------------------
class Latency(NamedTuple):
    """One trial's round trips, in µs: percentiles and the worst."""

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


class _RoundTrips:
    """The initiator's round-trip times (ns) of its last run(), which is the timed one."""

    def __init__(self) -> None:
        self.ns: list[int] = []

    def start(self) -> Callable[[int], None]:
        self.ns = []
        return self.ns.append

    def stats(self) -> Latency:
        return Latency.of(self.ns)


class Side(NamedTuple):
    # move messages lo..hi-1 (producer: send; consumer: verify); a many-to-many consumer
    # takes hi - lo messages, or with hi None every message until the end of the stream
    run: Callable[[int, Any], None]
    finish: Callable[[], None]  # producer: end the stream; consumer: check it ended
    # round trips: the initiator's Latency of its last run; many to many: a consumer's Account
    stats: Callable[[], Any] | None = None


class Transport:
    """How messages get from the producer process to the consumer process.

    Per trial the runner calls open() in the parent before forking, then in each child
    `<role>_<workload key>(channel, stack)` (prepare there; the returned Side is timed),
    forked() in the parent once the children exist, and close() in the parent at the end
    whatever happened.  A `solo` transport is a single-process reference: producer only.
    """

    name = "?"
    solo = False
    gap_us = 0.0  # round trips: the initiator's pause before each ping (a reference matches it)

    @property
    def label(self) -> str:
        return self.name

    def supports(self, wl: Workload) -> bool:
        return hasattr(self, f"producer_{wl.key}")

    def open(self, wl: Workload) -> Any:
        return None

    def forked(self, ch: Any) -> None:
        pass

    def close(self, ch: Any) -> None:
        pass

    def side(self, role: str, ch: Any, wl: Workload, stack: contextlib.ExitStack, **kw: Any) -> Side:
        """kw, many to many only: index (which producer or consumer), total (sequences per
        producer), producers (how many)."""
        return getattr(self, f"{role}_{wl.key}")(ch, stack, **kw)  # type: ignore[no-any-return]


def _pause(clock: Callable[[], int], ns: int) -> None:
    """Busy-wait ns nanoseconds: this side stays awake while its peer falls asleep."""
    until = clock() + ns
    while clock() < until:
        pass


def _check_frame(d64: np.ndarray, i: int) -> None:
    if d64[0] != i or d64[-1] != i:
        raise DataError(f"frame {i}: stamps {int(d64[0])}/{int(d64[-1])}: lost, reordered or torn")


class ManyChannel(NamedTuple):
    """A ring shared by many producers: the last one to finish shuts it down."""

    name: str
    done: Any  # multiprocessing Value('i'): producers finished so far (with its lock)


def _drain(get: Callable[[], Any], keep: Callable[[Any], None], n: int | None, sentinel: bool = False) -> None:
    """A many-to-many consumer: keep n messages, or with n None every one until the end of the
    stream: EOFError, or with sentinel=True a None message."""
    if n is not None:
        for _ in range(n):
            m = get()
            if sentinel and m is None:
                raise DataError("end of stream during the warm-up: data lost")
            keep(m)
    elif not sentinel:
        with contextlib.suppress(EOFError):
            while True:
                keep(get())
    else:
        while (m := get()) is not None:
            keep(m)


class RingTransport(Transport):
    """shmring: a byte ring for single 64 B messages, array rings for batches and frames;
    two byte rings (ping, pong) for round trips, in a wait regime (WAIT_REGIMES); one byte
    ring shared by every producer and consumer for many to many."""

    def __init__(self, kind: str, capacity: int, regime: str | None = None) -> None:
        self.kind, self.capacity, self.regime = kind, capacity, regime
        r = WAIT_REGIMES[regime] if regime is not None else Regime(None, 0.0)
        self.spin_ns, self.gap_us = r  # spin_ns None: the library's default
        self.name = f"shmring {kind}"
        self.backing: set[str] = set()

    @property
    def label(self) -> str:
        if self.regime is None:
            return f"shmring {self.kind}, capacity {self.capacity}"
        spin = f"spin_ns {DEFAULT_SPIN_NS} (default)" if self.spin_ns is None else f"spin_ns {self.spin_ns}"
        gap = f", {self.gap_us:g} µs between pings" if self.gap_us else ", back to back"
        return f"shmring {self.kind}, {self.regime}: {spin}{gap}"

    def open(self, wl: Workload) -> str | tuple[str, str]:
        if wl.key == "pingpong64":
            names = (testing.unique_name(NAME_TAG), testing.unique_name(NAME_TAG))
            try:
                for name in names:
                    self._create(name, slot_size=64)
            except BaseException:
                self.close(names)
                raise
            return names  # (ping, pong)
        name = testing.unique_name(NAME_TAG)
        if wl.key == "many64":
            self._create(name, slot_size=64)
            return ManyChannel(name, _CTX.Value("i", 0))  # type: ignore[return-value]
        if wl.key == "msg64":
            self._create(name, slot_size=64)
        else:
            shape = (64,) if wl.key == "batch64" else (FRAME,)
            self._create(name, shape=shape, dtype=np.uint8)
        return name

    def _create(self, name: str, **kw: Any) -> None:
        with shmring.create(name, self.capacity, kind=self.kind, **kw) as ring:
            info = ring.info()  # the children attach by name; the parent holds no handle
        self.backing.add(f"{info['backing']} ({info['page_size'] // 1024} KiB pages)")

    def close(self, names: str | tuple[str, ...] | ManyChannel) -> None:
        if isinstance(names, ManyChannel):
            names = names.name
        for name in (names,) if isinstance(names, str) else names:
            with contextlib.suppress(FileNotFoundError):
                shmring.unlink(name)

    @staticmethod
    def _attach(name: str, stack: contextlib.ExitStack) -> shmring.Ring:
        return stack.enter_context(shmring.attach(name))

    @staticmethod
    def _expect_eof(ring: shmring.Ring) -> None:
        try:
            ring.get(CALL_TIMEOUT)
        except EOFError:
            return
        raise DataError("a message after the last one: duplicated data")

    def producer_msg64(self, name: str, stack: contextlib.ExitStack) -> Side:
        ring = self._attach(name, stack)
        put, msgs = ring.put, _msgs64()

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                put(msgs[i & MASK], CALL_TIMEOUT)

        return Side(run, ring.shutdown)

    def consumer_msg64(self, name: str, stack: contextlib.ExitStack) -> Side:
        ring = self._attach(name, stack)
        get, msgs = ring.get, _msgs64()

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                if get(CALL_TIMEOUT) != msgs[i & MASK]:
                    raise DataError(f"message {i}: lost, reordered or corrupted")

        return Side(run, lambda: self._expect_eof(ring))

    def producer_batch64(self, name: str, stack: contextlib.ExitStack) -> Side:
        ring = self._attach(name, stack)
        put_many, src = ring.put_many, _pool64()

        def run(lo: int, hi: int) -> None:  # lo, hi: multiples of BATCH
            for i in range(lo, hi, BATCH):
                j = i & MASK
                if put_many(src[j : j + BATCH], CALL_TIMEOUT) != BATCH:
                    raise TimeoutError("put_many timed out part way")

        return Side(run, ring.shutdown)

    def consumer_batch64(self, name: str, stack: contextlib.ExitStack) -> Side:
        ring = self._attach(name, stack)
        get_many, flat = ring.get_many, _pool64_flat()

        def run(lo: int, hi: int) -> None:
            i = lo
            while i < hi:
                a = get_many(min(BATCH, hi - i), CALL_TIMEOUT)  # (k, 64); never past hi
                j = (i & MASK) * 64
                if a.tobytes() != flat[j : j + a.nbytes]:
                    raise DataError(f"messages {i}..{i + len(a) - 1}: lost, reordered or corrupted")
                i += len(a)

        return Side(run, lambda: self._expect_eof(ring))

    def producer_frame1m(self, name: str, stack: contextlib.ExitStack) -> Side:
        ring = self._attach(name, stack)
        reserve, src = ring.reserve, _frame_src()
        s64 = src.view(np.uint64)

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                s64[0] = s64[-1] = i
                with reserve(CALL_TIMEOUT) as slot:
                    np.copyto(slot, src)

        return Side(run, ring.shutdown)

    def consumer_frame1m(self, name: str, stack: contextlib.ExitStack) -> Side:
        ring = self._attach(name, stack)
        recv, dst = ring.recv, np.empty(FRAME, np.uint8)
        d64 = dst.view(np.uint64)

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                with recv(CALL_TIMEOUT) as view:
                    np.copyto(dst, view)  # reads every byte of the slot
                _check_frame(d64, i)

        return Side(run, lambda: self._expect_eof(ring))

    def producer_many64(self, ch: ManyChannel, stack: contextlib.ExitStack, index: int, total: int,
                        producers: int) -> Side:
        ring = self._attach(ch.name, stack)
        put, msgs, done = ring.put, _many_msgs(index, total), ch.done

        def run(lo: int, hi: int) -> None:
            for m in msgs[lo:hi]:
                put(m, CALL_TIMEOUT)

        def finish() -> None:  # put() has published every message: the last one out ends the stream
            lock = done.get_lock()
            if not lock.acquire(True, CALL_TIMEOUT):
                raise TimeoutError("the producers' counter stayed locked")
            try:
                done.value += 1
                last = done.value == producers
            finally:
                lock.release()
            if last:
                ring.shutdown()

        return Side(run, finish)

    def consumer_many64(self, ch: ManyChannel, stack: contextlib.ExitStack, index: int, total: int,
                        producers: int) -> Side:
        ring = self._attach(ch.name, stack)
        got: list[bytes] = []
        get, keep = functools.partial(ring.get, CALL_TIMEOUT), got.append

        def run(lo: int, hi: int | None) -> None:
            _drain(get, keep, None if hi is None else hi - lo)

        return Side(run, lambda: None, lambda: _many_verify(got, producers, total))

    def _ping_pong(self, names: tuple[str, str], stack: contextlib.ExitStack) -> tuple[shmring.Ring, shmring.Ring]:
        ping, pong = (self._attach(n, stack) for n in names)
        if self.spin_ns is not None:
            ping.spin_ns = pong.spin_ns = self.spin_ns
        return ping, pong

    def producer_pingpong64(self, names: tuple[str, str], stack: contextlib.ExitStack) -> Side:
        """The initiator: sends message i, waits for its echo, checks it; times each exchange."""
        ping, pong = self._ping_pong(names, stack)
        put, get, msgs, clock, rtt = ping.put, pong.get, _msgs64(), time.perf_counter_ns, _RoundTrips()
        gap = int(self.gap_us * 1000)

        def run(lo: int, hi: int) -> None:
            record = rtt.start()
            for i in range(lo, hi):
                m = msgs[i & MASK]
                if gap:
                    _pause(clock, gap)
                t0 = clock()
                put(m, CALL_TIMEOUT)
                echo = get(CALL_TIMEOUT)
                t1 = clock()
                record(t1 - t0)
                if echo != m:
                    raise DataError(f"round trip {i}: the echo was lost, reordered or corrupted")

        def finish() -> None:
            ping.shutdown()
            self._expect_eof(pong)  # the responder echoed nothing more, then ended

        return Side(run, finish, rtt.stats)

    def consumer_pingpong64(self, names: tuple[str, str], stack: contextlib.ExitStack) -> Side:
        """The responder: a pure echo (the initiator checks what comes back)."""
        ping, pong = self._ping_pong(names, stack)
        put, get = pong.put, ping.get

        def run(lo: int, hi: int) -> None:
            for _ in range(lo, hi):
                put(get(CALL_TIMEOUT), CALL_TIMEOUT)

        def finish() -> None:
            self._expect_eof(ping)
            pong.shutdown()

        return Side(run, finish)


class PipeTransport(Transport):
    """os.pipe with 4-byte length-prefixed frames: one os.write per 64 B message (no
    writer batching), a reader that parses frames out of 64 KiB reads; 1 MiB frames
    are read into a preallocated buffer with os.readv.  Round trips: two pipes, one
    os.write of the frame and one blocking os.read of exactly one frame per hop."""

    name = "os.pipe"
    # Round trips: the channel is [ping read, ping write, pong read, pong write] and each
    # role keeps (read end, write end) of it.
    RT_ENDS = {"producer": (2, 1), "consumer": (0, 3)}

    def __init__(self, pipe_size: int | None = None, gap_us: float = 0.0) -> None:
        self.pipe_size, self.gap_us = pipe_size, gap_us

    @property
    def label(self) -> str:
        if self.gap_us:
            return f"os.pipe, {self.gap_us:g} µs between pings"
        return "os.pipe" if self.pipe_size is None else f"os.pipe, {self.pipe_size >> 10} KiB buffer"

    def supports(self, wl: Workload) -> bool:
        if self.gap_us:
            return wl.key == "pingpong64"
        return wl.key == "frame1m" or (wl.key in ("msg64", "pingpong64") and self.pipe_size is None)

    def open(self, wl: Workload) -> list[int]:
        if wl.key == "pingpong64":
            return [*os.pipe(), *os.pipe()]
        fds = list(os.pipe())
        if self.pipe_size:
            fcntl.fcntl(fds[1], fcntl.F_SETPIPE_SZ, self.pipe_size)
        return fds

    def forked(self, fds: list[int]) -> None:
        self.close(fds)  # now only the children hold ends: the producer's close is EOF

    def close(self, fds: list[int]) -> None:
        for k, fd in enumerate(fds):
            if fd >= 0:
                fds[k] = -1
                os.close(fd)

    @staticmethod
    def _end(fds: list[int], keep: int, stack: contextlib.ExitStack) -> _Fd:
        """This child's end of the pipe; the other end is closed here at once."""
        os.close(fds[1 - keep])
        end = _Fd(fds[keep])
        stack.callback(end.close)
        return end

    @staticmethod
    def _expect_eof(fd: int, rest: bytes = b"") -> None:
        if rest or os.read(fd, CHUNK):
            raise DataError("data after the last message: duplicated data")

    def _rt_ends(self, fds: list[int], role: str, stack: contextlib.ExitStack) -> tuple[int, int, Callable[[], None]]:
        """This child's (read fd, write fd, end-of-its-stream) for round trips; every fd of
        the channel it does not use is closed here at once, so ending a stream is an EOF."""
        r, w = self.RT_ENDS[role]
        ends = {}
        for k, fd in enumerate(fds):
            if k in (r, w):
                ends[k] = _Fd(fd)
                stack.callback(ends[k].close)
            else:
                os.close(fd)
        return ends[r].fd, ends[w].fd, lambda: self._end_writes(ends[w])

    @staticmethod
    def _end_writes(end: _Fd) -> None:
        end.close()

    def producer_pingpong64(self, fds: list[int], stack: contextlib.ExitStack) -> Side:
        r, w, end_stream = self._rt_ends(fds, "producer", stack)
        framed, write, read, clock, rtt = _framed64(), os.write, os.read, time.perf_counter_ns, _RoundTrips()
        gap = int(self.gap_us * 1000)

        def run(lo: int, hi: int) -> None:
            record = rtt.start()
            for i in range(lo, hi):
                m = framed[i & MASK]
                if gap:
                    _pause(clock, gap)
                t0 = clock()
                sent = write(w, m)
                echo = read(r, FRAME64)
                t1 = clock()
                if len(echo) != FRAME64:  # a short read: the rest belongs to this round trip
                    echo, t1 = _read_rest(r, echo, FRAME64), clock()
                record(t1 - t0)
                if sent != FRAME64:  # <= PIPE_BUF: never short, but check
                    raise OSError(f"round trip {i}: short write")
                if echo != m:
                    raise DataError(f"round trip {i}: the echo was lost, reordered or corrupted")

        def finish() -> None:
            end_stream()
            self._expect_eof(r)

        return Side(run, finish, rtt.stats)

    def consumer_pingpong64(self, fds: list[int], stack: contextlib.ExitStack) -> Side:
        r, w, end_stream = self._rt_ends(fds, "consumer", stack)
        write, read = os.write, os.read

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                b = read(r, FRAME64)
                if len(b) != FRAME64:
                    b = _read_rest(r, b, FRAME64)
                if write(w, b) != FRAME64:
                    raise OSError(f"round trip {i}: short write")

        def finish() -> None:
            self._expect_eof(r)
            end_stream()

        return Side(run, finish)

    def producer_msg64(self, fds: list[int], stack: contextlib.ExitStack) -> Side:
        end = self._end(fds, 1, stack)
        w, write, framed = end.fd, os.write, [_U32.pack(64) + m for m in _msgs64()]
        size = 4 + 64

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                if write(w, framed[i & MASK]) != size:  # <= PIPE_BUF: never short, but check
                    raise OSError("short write to the pipe")

        return Side(run, end.close)

    def consumer_msg64(self, fds: list[int], stack: contextlib.ExitStack) -> Side:
        r = self._end(fds, 0, stack).fd
        msgs, unpack, read = _msgs64(), _U32.unpack_from, os.read
        buf, pos = b"", 0  # unparsed input, carried from one run() to the next

        def run(lo: int, hi: int) -> None:
            nonlocal buf, pos
            b, p, i = buf, pos, lo
            while i < hi:
                if len(b) - p >= 4:
                    (n,) = unpack(b, p)
                    if n > 64:
                        raise DataError(f"message {i}: impossible length {n}")
                    end = p + 4 + n
                    if end <= len(b):
                        if b[p + 4 : end] != msgs[i & MASK]:
                            raise DataError(f"message {i}: lost, reordered or corrupted")
                        p, i = end, i + 1
                        continue
                chunk = read(r, CHUNK)
                if not chunk:
                    raise DataError(f"end of stream after {i} messages: data lost")
                b, p = b[p:] + chunk, 0
            buf, pos = b, p

        return Side(run, lambda: self._expect_eof(r, buf[pos:]))

    def producer_frame1m(self, fds: list[int], stack: contextlib.ExitStack) -> Side:
        end = self._end(fds, 1, stack)
        w, src, hdr = end.fd, _frame_src(), _U32.pack(FRAME)
        s64, parts, size = src.view(np.uint64), [hdr, src], 4 + FRAME

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                s64[0] = s64[-1] = i
                n = os.writev(w, parts)  # one frame, one call
                if n != size:
                    _write_rest(w, parts, n)

        return Side(run, end.close)

    def consumer_frame1m(self, fds: list[int], stack: contextlib.ExitStack) -> Side:
        r = self._end(fds, 0, stack).fd
        hdr, dst = bytearray(4), np.empty(FRAME, np.uint8)
        hmv, dmv, d64 = memoryview(hdr), memoryview(dst), dst.view(np.uint64)

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                _read_exact(r, hmv)
                (n,) = _U32.unpack(hdr)
                if n != FRAME:
                    raise DataError(f"frame {i}: impossible length {n}")
                _read_exact(r, dmv)
                _check_frame(d64, i)

        return Side(run, lambda: self._expect_eof(r))


class _Fd:
    """A file descriptor closed at most once (a second os.close could hit a reused number)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _write_rest(fd: int, parts: list[Any], done: int) -> None:
    """After a short writev (a signal, say): write what is left of `parts`."""
    for p in parts:
        v = memoryview(p).cast("B")
        if done >= len(v):
            done -= len(v)
            continue
        v, done = v[done:], 0
        while v:
            v = v[os.write(fd, v):]


def _read_rest(fd: int, got: bytes, n: int) -> bytes:
    """After a short read of a round trip's frame: read until it has n bytes."""
    while len(got) < n:
        more = os.read(fd, n - len(got))
        if not more:
            raise DataError(f"end of stream inside a round trip ({len(got)} of {n} bytes): data lost")
        got += more
    return got


class SocketTransport(PipeTransport):
    """AF_UNIX stream socketpair, round trips only: the framing and the blocking
    os.read/os.write of os.pipe, one socket per side for both directions."""

    name = "AF_UNIX socketpair"
    RT_ENDS = {"producer": (0, 0), "consumer": (1, 1)}

    @property
    def label(self) -> str:
        return self.name

    def supports(self, wl: Workload) -> bool:
        return wl.key == "pingpong64"

    def open(self, wl: Workload) -> list[int]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)  # blocking
        return [a.detach(), b.detach()]

    @staticmethod
    def _end_writes(end: _Fd) -> None:
        with socket.socket(fileno=os.dup(end.fd)) as s:  # the end stays open for reading
            s.shutdown(socket.SHUT_WR)


def _read_exact(fd: int, mv: memoryview) -> None:
    got, n = 0, len(mv)
    while got < n:
        k = os.readv(fd, [mv[got:]])
        if k == 0:
            raise DataError("end of stream inside a frame: data lost")
        got += k


class QueueTransport(Transport):
    """multiprocessing.Queue (default: unbounded, a feeder thread per producer pickling into
    one pipe, a lock among the consumers), many to many only.  End of stream: each producer
    puts one sentinel (None) after its messages and each consumer stops at the first it
    gets; with as many producers as consumers, every message precedes the last sentinel.

    The reference's consumers call get() with no timeout, as a Queue consumer is written:
    get(timeout=...) takes another path (a poll() system call and deadline arithmetic per
    message) that ran about 30 % slower here, which would flatter the rings (their timeout
    costs nothing until they wait).  A consumer left waiting is the parent watchdog's, as a
    blocking pipe read is; get_timeout (seconds) gives the variant with a timeout."""

    name = "multiprocessing.Queue"

    def __init__(self, get_timeout: float | None = None) -> None:
        self.get_timeout = get_timeout

    @property
    def label(self) -> str:
        return "multiprocessing.Queue, get()" + ("" if self.get_timeout is None else
                                                   f" with timeout={self.get_timeout:g}")

    def supports(self, wl: Workload) -> bool:
        return wl.key == "many64"

    def open(self, wl: Workload) -> Any:
        if wl.producers != wl.consumers:
            raise ValueError("multiprocessing.Queue's end of stream needs as many producers as consumers")
        return _CTX.Queue()

    def close(self, q: Any) -> None:
        # The parent never put: no feeder thread here, only its ends of the pipe to close.
        q.close()
        q._reader.close()
        q._writer.close()

    def producer_many64(self, q: Any, stack: contextlib.ExitStack, index: int, total: int,
                        producers: int) -> Side:
        put, msgs = q.put, _many_msgs(index, total)

        def run(lo: int, hi: int) -> None:
            for m in msgs[lo:hi]:
                put(m, True, CALL_TIMEOUT)  # never waits (unbounded); costs nothing measurable

        def finish() -> None:
            put(None, True, CALL_TIMEOUT)
            q.close()
            q.join_thread()  # every message of ours is in the pipe (no timeout: the parent's watchdog)

        return Side(run, finish)

    def consumer_many64(self, q: Any, stack: contextlib.ExitStack, index: int, total: int,
                        producers: int) -> Side:
        got: list[bytes] = []
        get = q.get if self.get_timeout is None else functools.partial(q.get, True, self.get_timeout)
        keep = got.append

        def run(lo: int, hi: int | None) -> None:
            _drain(get, keep, None if hi is None else hi - lo, sentinel=True)

        return Side(run, lambda: None, lambda: _many_verify(got, producers, total))


class CopyTransport(Transport):
    """The memory-bandwidth reference: one process copying each 1 MiB frame once, with
    the same stamping and checking the ring's producer and consumer do."""

    name = "np.copyto"
    solo = True
    label = "np.copyto, one process"  # type: ignore[assignment]

    def producer_frame1m(self, ch: None, stack: contextlib.ExitStack) -> Side:
        src, dst = _frame_src(), np.empty(FRAME, np.uint8)
        s64, d64 = src.view(np.uint64), dst.view(np.uint64)

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi):
                s64[0] = s64[-1] = i
                np.copyto(dst, src)
                _check_frame(d64, i)

        return Side(run, lambda: None)


# (transport, also in quick mode) for each workload, besides the rings
OTHER_TRANSPORTS: dict[str, list[tuple[Transport, bool]]] = {
    "msg64": [(PipeTransport(), True)],
    "many64": [(QueueTransport(), True), (QueueTransport(CALL_TIMEOUT), False)],
    "batch64": [],
    "frame1m": [(CopyTransport(), True), (PipeTransport(), True), (PipeTransport(1 << 20), False)],
    "pingpong64": [(PipeTransport(), True), (PipeTransport(gap_us=WAIT_REGIMES["sleeping"].gap_us), True),
                   (SocketTransport(), False)],  # optional row: full mode only (keeps --quick short)
}


# -- running trials --------------------------------------------------------------------------
@dataclass
class Case:
    workload: Workload
    transport: Transport
    default: bool  # False: a variant (another capacity or buffer) shown for comparison
    # per round: msgs/s (round trips: the trial's Latency), or why it failed
    outcomes: list[float | Latency | str] = field(default_factory=list)
    seconds: list[float | None] = field(default_factory=list)
    details: list[dict[str, Any] | None] = field(default_factory=list)  # many to many: consumers' shares

    @property
    def rates(self) -> list[float]:
        return [x for x in self.outcomes if isinstance(x, float)]

    @property
    def latencies(self) -> list[Latency]:
        return [x for x in self.outcomes if isinstance(x, Latency)]

    @property
    def latency(self) -> Latency | None:
        """The median over rounds of each percentile (each on its own)."""
        lats = self.latencies
        if self.failures or not lats:
            return None
        return Latency(*(statistics.median(getattr(x, f) for x in lats) for f in Latency._fields))

    @property
    def ok(self) -> bool:
        return not self.failures and bool(self.rates or self.latencies)

    @property
    def failures(self) -> list[str]:
        return [x for x in self.outcomes if isinstance(x, str)]

    @property
    def median(self) -> float | None:
        return None if self.failures or not self.rates else statistics.median(self.rates)


def _cases(quick: bool, only: list[str] | None) -> list[Case]:
    cases = []
    for wl in WORKLOADS:
        if only and wl.key not in only:
            continue
        for kind in KIND_WORKLOADS.get(wl.key, RING_KINDS):
            caps = RING_CAPACITIES[wl.key]
            for cap in caps[:1] if quick else caps:
                for regime in RING_REGIMES.get(wl.key, (None,)):
                    cases.append(Case(wl, RingTransport(kind, cap, regime), cap == caps[0]))
        for tr, in_quick in OTHER_TRANSPORTS[wl.key]:
            if tr.supports(wl) and (in_quick or not quick):
                cases.append(Case(wl, tr, in_quick))
    return cases


def _child(role: str, case: Case, ch: Any, n: int, core: int | None, barrier: Any, conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's: it kills us
    try:
        if core is not None:
            os.sched_setaffinity(0, {core})
        wl = case.workload
        with contextlib.ExitStack() as stack:
            side = case.transport.side(role, ch, wl, stack)
            side.run(0, wl.warm)
            barrier.wait(CALL_TIMEOUT)
            t0 = time.perf_counter()
            side.run(wl.warm, wl.warm + n)
            t1 = time.perf_counter()
            side.finish()
        conn.send(("ok", t0, t1, None if side.stats is None else side.stats()))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        conn.send(("error", f"{role}: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _party_child(role: str, index: int, case: Case, ch: Any, total: int, warm: int, core: int | None,
                 barrier: Any, conn: Any) -> None:
    """One producer or consumer of a many-to-many trial.  A producer sends its sequences
    0..warm-1, meets the others at the barrier, sends warm..total-1 and ends its stream; a
    consumer takes its share of the warm-up (warm x producers / consumers messages: the
    warm-up is then wholly drained before the barrier), then every message until the end
    of the stream, and after the clock checks what it got (its account goes to the parent)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if core is not None:
            os.sched_setaffinity(0, {core})
        wl = case.workload
        share = warm if role == "producer" else warm * wl.producers // wl.consumers
        with contextlib.ExitStack() as stack:
            side = case.transport.side(role, ch, wl, stack, index=index, total=total, producers=wl.producers)
            side.run(0, share)
            barrier.wait(CALL_TIMEOUT)
            t0 = time.perf_counter()
            if role == "producer":
                side.run(warm, total)
                side.finish()
            else:
                side.run(share, None)  # until the end of the stream
            t1 = time.perf_counter()
        conn.send(("ok", t0, t1, None if side.stats is None else side.stats()))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        conn.send(("error", f"{role} {index}: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _party_warm(case: Case) -> int:
    """Warm-up messages per producer: the workload's, and for a ring at least one lap of it;
    a multiple of the consumers, so that each takes the same share."""
    wl, cap = case.workload, getattr(case.transport, "capacity", 0)
    warm = max(wl.warm, -(-cap // wl.producers))
    return -(-warm // wl.consumers) * wl.consumers


def _run_trial(case: Case, n: int, cores: list[int | None]) -> tuple[float, Latency | None, dict[str, Any] | None]:
    """Seconds from the producer's first timed message to the consumer's last (many to many:
    from the barrier to the later consumer's end of stream); for round trips the initiator's
    Latency; for many to many the consumers' shares of the messages."""
    tr, wl = case.transport, case.workload
    if tr.solo:
        parties = [("producer", 0, cores[0])]
    elif not wl.party:
        parties = [("producer", 0, cores[0]), ("consumer", 0, cores[1])]
    else:  # producers share the producer's core, consumers the consumer's
        parties = ([("producer", i, cores[0]) for i in range(wl.producers)]
                   + [("consumer", j, cores[-1]) for j in range(wl.consumers)])
    per_producer = n // wl.producers
    warm = _party_warm(case) if wl.party else 0
    procs: list[tuple[str, Any, Any]] = []
    ch = tr.open(wl)
    try:
        barrier = _CTX.Barrier(len(parties))
        for role, index, core in parties:
            rx, tx = _CTX.Pipe(duplex=False)
            if wl.party:
                who = f"{role} {index}"
                target, args = _party_child, (role, index, case, ch, warm + per_producer, warm, core, barrier, tx)
            else:
                who, target, args = role, _child, (role, case, ch, n, core, barrier, tx)
            p = _CTX.Process(target=target, args=args, name=f"shmring-bench-{who.replace(' ', '')}", daemon=True)
            p.start()
            tx.close()
            procs.append((who, p, rx))
        tr.forked(ch)
        done = _collect(procs)
        if not wl.party:
            start = done["producer"][1]
            end = done["producer" if tr.solo else "consumer"][2]
            return end - start, done["producer"][3], None
        start = min(done[f"producer {i}"][1] for i in range(wl.producers))
        end = max(done[f"consumer {j}"][2] for j in range(wl.consumers))
        accounts = [done[f"consumer {j}"][3] for j in range(wl.consumers)]
        try:
            _many_check(accounts, wl.producers, warm + per_producer)
        except DataError as exc:
            raise TrialFailed(f"DataError: {exc}") from None
        got = [sum(c for c, _, _ in acc) for acc in accounts]
        return end - start, None, {"consumer_shares": [g / sum(got) for g in got], "warmup_per_producer": warm}
    finally:
        for _, p, rx in procs:
            if p.is_alive():
                p.kill()
            p.join(5)
            rx.close()
        tr.close(ch)


class Idle(NamedTuple):
    """One idle wait: CPU seconds (user + sys) over wall seconds, and context switches."""

    cpu: float
    wall: float
    switches: int

    @property
    def share(self) -> float:
        return self.cpu / self.wall


def _idle_child(name: str, core: int | None, conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if core is not None:
            os.sched_setaffinity(0, {core})
        with shmring.attach(name) as ring:  # default spin_ns: spins, then sleeps on the futex
            r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            try:
                ring.get(IDLE_WAIT)
            except TimeoutError:
                pass
            else:
                raise DataError("get() on an empty ring returned a message")
            w1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        if w1 - w0 < IDLE_WAIT * 0.99:
            raise TrialFailed(f"get(timeout={IDLE_WAIT}) gave up after {w1 - w0:.3f} s")
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        switches = (r1.ru_nvcsw - r0.ru_nvcsw) + (r1.ru_nivcsw - r0.ru_nivcsw)
        conn.send(("ok", cpu, w1 - w0, switches))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        conn.send(("error", f"idle waiter: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _idle_trial(core: int | None) -> Idle:
    """A process blocked in ring.get(timeout=IDLE_WAIT) on an empty ring: its CPU use."""
    name = testing.unique_name(NAME_TAG)
    shmring.create(name, 64, slot_size=64).close()
    p = rx = None
    try:
        rx, tx = _CTX.Pipe(duplex=False)
        p = _CTX.Process(target=_idle_child, args=(name, core, tx), name="shmring-bench-idle", daemon=True)
        p.start()
        tx.close()
        _, cpu, wall, switches = _collect([("idle waiter", p, rx)])["idle waiter"]
        return Idle(cpu, wall, switches)
    finally:
        if p is not None:
            if p.is_alive():
                p.kill()
            p.join(5)
        if rx is not None:
            rx.close()
        with contextlib.suppress(FileNotFoundError):
            shmring.unlink(name)


def _collect(procs: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    """Each child's ("ok", ...) message; TrialFailed on an error, a death or the deadline."""
    pending = {rx: (role, p) for role, p, rx in procs}
    out, errors = {}, []
    deadline = time.monotonic() + TRIAL_TIMEOUT
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            if errors:
                break
            raise TrialFailed(f"timed out after {TRIAL_TIMEOUT:.0f} s ({', '.join(r for r, _ in pending.values())})")
        for rx in mp.connection.wait(list(pending), left):
            role, p = pending.pop(rx)
            try:
                msg = rx.recv()
            except EOFError:
                p.join(1)
                msg = ("error", f"{role} died without a result (exit code {p.exitcode})")
            if msg[0] == "ok":
                out[role] = msg
            elif not errors:
                # The peer's account usually follows (a consumer's DataError explains the
                # producer's BrokenPipeError): give it a second, not the full deadline.
                errors.append(msg[1])
                deadline = min(deadline, time.monotonic() + 1.0)
            else:
                errors.append(msg[1])
    if errors:
        errors.sort(key=lambda e: "DataError" not in e)  # the data verdict first
        raise TrialFailed("; ".join(errors))
    return out


def _pick_cores() -> tuple[list[int | None], str]:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        a, b = cores[:2]
        return [a, b], (
            f"producer pinned to core {a}, consumer to core {b} (os.sched_setaffinity); "
            f"the single-process np.copyto runs on core {a}"
        )
    only = cores[0]
    return [only, only], (
        f"only one core available ({only}): producer and consumer share it, so these are "
        "not cross-core numbers"
    )


# -- machine facts and the report --------------------------------------------------------------
def _machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    return {
        "cpu": model,
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "shmring": shmring.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": os.getloadavg(),
        "clocksource": _read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "perf_counter_ns_cost_ns": _clock_cost_ns(),
    }


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _clock_cost_ns() -> float:
    """Median of back-to-back time.perf_counter_ns() calls: what the clock itself adds
    to each round-trip sample."""
    clock, d = time.perf_counter_ns, []
    for _ in range(20_000):
        t0 = clock()
        d.append(clock() - t0)
    return float(statistics.median(d))


def _cpu_snapshot() -> tuple[list[int], float]:
    """(/proc/stat cpu jiffies, CPU seconds of this process and its reaped children)."""
    with open("/proc/stat") as f:
        jiffies = [int(x) for x in f.readline().split()[1:9]]
    t = os.times()
    return jiffies, t.user + t.system + t.children_user + t.children_system


def _others_share(start: tuple[list[int], float], end: tuple[list[int], float]) -> tuple[float, float]:
    """Shares of all CPUs used by other processes, and stolen by the host, between two snapshots."""
    d = [b - a for a, b in zip(start[0], end[0])]
    total = sum(d) or 1
    user, nice, system, idle, iowait, irq, softirq, steal = d
    ours = (end[1] - start[1]) * os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return max(0.0, busy - ours) / total, steal / total


def _si(x: float) -> str:
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _reference(case: Case, cases: list[Case]) -> Case | None:
    if case.workload.reference is None:
        return None
    wkey, tname = case.workload.reference
    return next((c for c in cases if c.workload.key == wkey and c.transport.name == tname and c.default
                 and c.transport.gap_us == case.transport.gap_us), None)  # paced alike


def _value(x: float | Latency | str) -> float | None:
    """A round's headline number: msgs/s, or a round trip's p50 (µs); None if it failed."""
    if isinstance(x, Latency):
        return x.p50
    return x if isinstance(x, float) else None


def _ratio(case: Case, cases: list[Case]) -> float | None:
    """Median over rounds of (this case / its reference) in the same round: the rounds
    are interleaved, so a noisy round slows both and the pairing cancels most of it.
    Round trips: of the p50s (below 1: faster than the reference)."""
    ref = _reference(case, cases)
    if ref is None or not case.ok or not ref.ok:
        return None
    pairs = [a / b for a, b in ((_value(x), _value(y)) for x, y in zip(case.outcomes, ref.outcomes))
             if a is not None and b is not None]
    return statistics.median(pairs) if pairs else None


def _target(case: Case, cases: list[Case]) -> tuple[str, bool | None] | None:
    t = case.workload.target
    if t is None or not isinstance(case.transport, RingTransport):
        return None
    if t.regime is not None and case.transport.regime != t.regime:
        return None
    return t.text, t.met(case.median, _ratio(case, cases), case.latency)


_VERDICT = {None: "n/a", True: "**met**", False: "**missed**"}


def _label(case: Case, cases: list[Case]) -> str:
    """The transport's label, with "(default)" where variants of it are shown too."""
    wl, label = case.workload, case.transport.label
    if case.default and any(c.workload is wl and type(c.transport) is type(case.transport) and not c.default
                            for c in cases):
        label += " (default)"
    return label


def _row(case: Case, cases: list[Case], first: bool) -> str:
    wl, ref = case.workload, _reference(case, cases)
    label = _label(case, cases)
    cells = [wl.title if first else "", label]
    if case.median is None:
        n_bad = len(case.failures)
        cells += ["**FAILED**", f"{n_bad} of {len(case.outcomes)} trials" if n_bad else "no trials", "", "", ""]
        return "| " + " | ".join(cells) + " |"
    ratio, target = _ratio(case, cases), _target(case, cases)
    if ref is case:
        vs = "reference"
    elif ref is None:
        vs = ""
    elif ratio is None:
        vs = "n/a: reference failed"
    else:
        same = ref.workload is wl
        vs = f"{ratio:.2f}× {ref.transport.label}" + ("" if same else f" ({ref.workload.key})")
    cells += [
        f"{_si(case.median)} {wl.unit}", f"{_si(min(case.rates))}–{_si(max(case.rates))}",
        f"{case.median * wl.nbytes / 1e9:.2f}", vs,
        "" if target is None else f"{target[0]}: " + _VERDICT[target[1]],
    ]
    return "| " + " | ".join(cells) + " |"


def _us(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _lat_row(case: Case, cases: list[Case], first: bool) -> str:
    wl, ref, lat = case.workload, _reference(case, cases), case.latency
    cells = [wl.title if first else "", _label(case, cases)]
    if lat is None:
        n_bad = len(case.failures)
        cells += ["**FAILED**", f"{n_bad} of {len(case.outcomes)} trials" if n_bad else "no trials", "", "", "", "", ""]
        return "| " + " | ".join(cells) + " |"
    ratio, t = _ratio(case, cases), wl.target
    if ref is case:
        vs = "reference"
    elif ref is None:
        vs = ""
    elif ratio is None:
        vs = "n/a: reference failed"
    else:
        vs = f"{ratio:.3f}× {ref.transport.label}" + (f" ({1 / ratio:.1f}× lower)" if ratio <= 0.5 else "")
    target = ""
    if _target(case, cases) is not None and t is not None:
        target = ", ".join(f"{k}: {_VERDICT[v]}" for k, v in t.met_latency(lat).items())
    p50s = [x.p50 for x in case.latencies]
    cells += [_us(lat.p50), _us(lat.p99), _us(lat.p999), f"{_us(min(p50s))}–{_us(max(p50s))}",
              _us(lat.worst), vs, target]
    return "| " + " | ".join(cells) + " |"


def _report(out: TextIO, cases: list[Case], m: dict[str, Any], quick: bool, wall: float,
            idle: list[Idle | str] | None = None) -> None:
    w = out.write
    backing = sorted({b for c in cases if isinstance(c.transport, RingTransport) for b in c.transport.backing})
    counts = ", ".join(f"{wl.key} {wl.count[not quick]:,}" + (" round trips" if wl.latency else "")
                       + (f" ({wl.producers} × {wl.count[not quick] // wl.producers:,})" if wl.party else "")
                       for wl in WORKLOADS if any(c.workload is wl for c in cases))
    flows = [c for c in cases if not c.workload.latency]
    trips = [c for c in cases if c.workload.latency]
    w(f"## shmring bench ({'quick' if quick else 'full'}: {m['trials']} rounds, every case once per round)\n\n")
    w(f"- machine: {m['cpu']}, {m['cpus_online']} CPUs ({m['cpus_usable']} usable), Linux {m['kernel']}; "
      f"Python {m['python']}, numpy {m['numpy']}, shmring {m['shmring']}\n")
    w(f"- date: {m['date']}; wall time {wall:.0f} s; load average {m['loadavg_start'][0]:.2f} at start, "
      f"{m['loadavg_end'][0]:.2f} at end; other processes used {m['others_cpu_share']:.0%} of the CPUs "
      f"(per round {', '.join(f'{r[0]:.0%}' for r in m['rounds'])}), the host stole {m['steal_share']:.0%}\n")
    w(f"- pinning: {m['pinning']}\n")
    w(f"- rings: {', '.join(backing) or '-'}; kinds: {', '.join(RING_KINDS)}\n")
    w(f"- messages per trial, after a warm-up: {counts}; the consumer verifies every one"
      + (" (round trips: the initiator verifies every echo)" if trips else "") + "\n")
    w("- median and min–max over rounds; the ratio is the median of same-round ratios\n")
    if flows:
        w("\n| workload | transport | median | min–max | GB/s (payload) | vs reference, same run | target |\n")
        w("|---|---|---|---|---|---|---|\n")
        for i, c in enumerate(flows):
            w(_row(c, cases, i == 0 or flows[i - 1].workload is not c.workload) + "\n")
        for wl in WORKLOADS:
            party = [c for c in flows if c.workload is wl and wl.party]
            if party:
                w("\n" + _party_note(wl, party, m) + "\n")
    if trips:
        w("\nRound trips, µs: each percentile over one trial's round trips, then its median over rounds.\n\n")
        w("| workload | transport | p50 | p99 | p99.9 | p50 min–max | worst | p50 vs reference, same round | target |\n")
        w("|---|---|---|---|---|---|---|---|---|\n")
        for i, c in enumerate(trips):
            w(_lat_row(c, cases, i == 0 or trips[i - 1].workload is not c.workload) + "\n")
        w(f"\n- each sample: perf_counter_ns() before put(ping) and after get(echo) (pipe, socket: os.write + "
          f"os.read); back-to-back perf_counter_ns() calls cost {m['perf_counter_ns_cost_ns']:.0f} ns here "
          f"(clocksource {m['clocksource']}), included in every sample\n")
        gap = WAIT_REGIMES["sleeping"].gap_us
        w(f"- rings: spinning = spin_ns {DEFAULT_SPIN_NS} (the default) on every handle, pings back to back; "
          f"sleeping = spin_ns 0 and the initiator waits {gap:g} µs (outside the clock) before each ping, so the "
          "responder has gone past get()'s Python slow path and the C wait's 64 polls to the futex: each hop pays "
          "a wake-up (back to back, about half the round trips never slept); the pause makes any wake-up dearer, "
          f"so os.pipe also runs paced ({gap:g} µs) as the sleeping rows' reference; otherwise os.pipe and the "
          "socketpair run back to back (a blocking read sleeps in the kernel at once)\n")
        if idle is not None:
            w(_idle_line(idle) + "\n")
    bad = [f"- {c.workload.key} / {c.transport.label}, round {k + 1}: {x}\n"
           for c in cases for k, x in enumerate(c.outcomes) if isinstance(x, str)]
    bad += [f"- idle waiter, round {k + 1}: {x}\n" for k, x in enumerate(idle or []) if isinstance(x, str)]
    if bad:
        w("\nFailures:\n" + "".join(bad))


def _party_note(wl: Workload, cases: list[Case], m: dict[str, Any]) -> str:
    """How a many-to-many workload ran, and how evenly its consumers shared the messages."""
    cores, n = m["party_cores"], wl.producers + wl.consumers
    where = (f"the {wl.producers} producer processes are pinned to core {cores[0]}, the {wl.consumers} consumers "
             f"to core {cores[1]}: {n} processes on 2 cores, each side time-sharing its core, and every message "
             "crosses from one core to the other, as in msg64"
             if cores[0] != cores[1] else f"all {n} processes share core {cores[0]}")
    shares = []
    for c in cases:
        big = [max(d["consumer_shares"]) for d in c.details if d]
        if big:
            shares.append(f"{c.transport.label} {min(big):.0%}–{max(big):.0%}")
    return (
        f"- {wl.key}: {where}.\n"
        f"- {wl.key}: message (p, s) is producer p's s-th (p, s and 48 B of the pool), built before the clock. Each "
        "consumer keeps what it gets and, once the clock has stopped, checks every message whole and each producer's "
        "order among those it got; the parent checks from the consumers' bitmaps, counts and sums of sequences that "
        "every message arrived exactly once. End of stream: the last producer done calls shutdown() and the consumers "
        "drain to EOFError (multiprocessing.Queue: each producer puts a None after its messages, each consumer stops "
        "at its first). The clock runs from the barrier of all the processes to the later consumer's end of stream. "
        "The Queue's consumers call get() without a timeout, its fast path (a stuck one is the watchdog's)"
        + ("; full mode also shows get(timeout=...)" if not any(not c.default for c in cases
                                                               if isinstance(c.transport, QueueTransport))
           else "") + ".\n"
        f"- {wl.key}: the busier consumer's share of the messages, min–max over rounds: " + "; ".join(shares) + "."
    )


def _idle_line(idle: list[Idle | str]) -> str:
    ok = [x for x in idle if isinstance(x, Idle)]
    head = (f"- idle waiter: one process in ring.get(timeout={IDLE_WAIT:g}) on an empty ring (default spin_ns), "
            "pinned to the consumer's core, once per round: user+sys CPU time (getrusage) as a share of its wait")
    if not ok or len(ok) < len(idle):
        return f"{head}: **FAILED** ({len(idle) - len(ok)} of {len(idle)} rounds)"
    shares = [x.share for x in ok]
    med = statistics.median(shares)
    return (f"{head}: **{med:.3%}** (min–max {min(shares):.3%}–{max(shares):.3%}; "
            f"{statistics.median(x.switches for x in ok):.0f} context switches per wait); "
            f"target < {IDLE_TARGET:.0%}: {_VERDICT[med < IDLE_TARGET]}")


def _to_json(cases: list[Case], machine: dict[str, Any], quick: bool,
             idle: list[Idle | str] | None = None) -> dict[str, Any]:
    rows = []
    for c in cases:
        wl, ref, target = c.workload, _reference(c, cases), _target(c, cases)
        row = {
            "workload": wl.key, "title": wl.title, "transport": c.transport.name, "label": c.transport.label,
            "default": c.default, "params": {k: v for k, v in vars(c.transport).items() if k != "backing"},
            "unit": wl.unit, "payload_bytes": wl.nbytes, "messages_per_trial": wl.count[not quick],
            "warmup_messages": wl.warm,
            "per_round": c.outcomes,  # msgs/s, or the failure
            "seconds": c.seconds, "median": c.median,
            **({"producers": wl.producers, "consumers": wl.consumers, "details_per_round": c.details}
               if wl.party else {}),
            "min": min(c.rates, default=None), "max": max(c.rates, default=None),
            "reference": None if ref is None else [ref.workload.key, ref.transport.label],
            "ratio_vs_reference": _ratio(c, cases),
            "target": None if target is None else {"text": target[0], "met": target[1]},
        }
        if wl.latency:  # per round: {p50, p99, p999, worst} in µs, or the failure
            lat = c.latency
            row |= {
                "unit": "µs", "per_round": [x._asdict() if isinstance(x, Latency) else x for x in c.outcomes],
                "median": None if lat is None else lat._asdict(),
                "min": min((x.p50 for x in c.latencies), default=None),
                "max": max((x.p50 for x in c.latencies), default=None),
            }
            if target is not None and wl.target is not None:
                row["target"]["parts"] = wl.target.met_latency(lat)  # type: ignore[index]
        rows.append(row)
    out = {"mode": "quick" if quick else "full", "ring_kinds": RING_KINDS, "machine": machine, "cases": rows}
    if idle is not None:
        shares = [x.share for x in idle if isinstance(x, Idle)]
        out["idle_waiter"] = {
            "wait_seconds": IDLE_WAIT, "target_share_below": IDLE_TARGET,
            "per_round": [x._asdict() | {"share": x.share} if isinstance(x, Idle) else x for x in idle],
            "median_share": statistics.median(shares) if shares and len(shares) == len(idle) else None,
        }
    return out


def _sweep_leftovers() -> list[str]:
    """Unlink any ring this run created and did not remove (e.g. Ctrl+C inside create)."""
    prefix = f"{NAME_TAG}-{os.getpid()}-"
    left = sorted(s for s in testing.segments() if s.startswith(prefix))
    for name in left:
        with contextlib.suppress(OSError):
            shmring.unlink(name)
    return left


def main(*, quick: bool = False, trials: int | None = None, json_path: str | None = None,
         only: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the benchmark; print the Markdown report to `out`; 0 if no case failed."""
    trials = trials or (3 if quick else 11)
    if trials < 1:
        raise SystemExit("--trials must be >= 1")
    cases = _cases(quick, only)
    cores, pinning = _pick_cores()
    machine = _machine() | {"trials": trials, "pinning": pinning, "rounds": [], "party_cores": [cores[0], cores[-1]]}
    _prepare({c.workload.key for c in cases})
    idle: list[Idle | str] | None = [] if any(c.workload.latency for c in cases) else None
    t_start = time.monotonic()
    cpu_start = cpu_round = _cpu_snapshot()
    try:
        for t in range(trials):
            # Every case once per round, so slow spells of a shared host hit all alike.
            for c in cases:
                n = c.workload.count[not quick]
                try:
                    secs, lat, detail = _run_trial(c, n, cores)
                except (TrialFailed, OSError, shmring.ShmringError) as exc:
                    c.outcomes.append(str(exc))
                    c.seconds.append(None)
                    c.details.append(None)
                    continue
                c.outcomes.append(n / secs if lat is None else lat)
                c.seconds.append(secs)
                c.details.append(detail)
            if idle is not None:  # once per round, between the same rounds as the round trips
                try:
                    idle.append(_idle_trial(cores[-1]))
                except (TrialFailed, OSError, shmring.ShmringError) as exc:
                    idle.append(str(exc))
            cpu_now = _cpu_snapshot()
            machine["rounds"].append(_others_share(cpu_round, cpu_now))
            cpu_round = cpu_now
            err.write(f"  round {t + 1}/{trials} done ({time.monotonic() - t_start:.0f} s, other processes "
                      f"{machine['rounds'][-1][0]:.0%} of the CPUs)\n")
    except KeyboardInterrupt:
        err.write("interrupted: children killed, rings removed\n")
        return 130
    finally:
        left = _sweep_leftovers()
        if left:
            err.write(f"removed {len(left)} leftover ring(s): {', '.join(left)}\n")
    machine["loadavg_end"] = os.getloadavg()
    machine["others_cpu_share"], machine["steal_share"] = _others_share(cpu_start, _cpu_snapshot())
    _report(out, cases, machine, quick, time.monotonic() - t_start, idle)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(_to_json(cases, machine, quick, idle), f, indent=1)
            f.write("\n")
    return 1 if any(c.failures for c in cases) or any(isinstance(x, str) for x in idle or []) else 0
