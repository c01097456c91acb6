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
- Reported: the median and the min-max over trials, never the best run alone.

A transport is one class with a method per (role, workload) it supports, e.g.
`producer_msg64` / `consumer_msg64`; each prepares in the child process and returns a
Side whose run(lo, hi) moves messages lo..hi-1.  More transports (mpmc and locked rings,
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
import signal
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

RING_KINDS = ["spsc"]  # each kind gets its own rows; "mpmc" and "locked" join here

# The first capacity of each workload is the default; the rest run only in full mode.
# Defaults, from this machine's sweeps (benchmarks/README.md): 64 B one at a time is
# flat in capacity, so the small ring; batches of 256 want room for many batches in
# flight; 1 MiB frames: 8 slots (an 8 MiB ring) is as fast as 16 with half the memory.
RING_CAPACITIES = {"msg64": (1024, 4096, 65536), "batch64": (65536, 4096), "frame1m": (8, 16)}

CALL_TIMEOUT = 10.0  # seconds for any one blocking call (put, get, barrier)
TRIAL_TIMEOUT = 180.0  # the parent kills a trial that takes longer
POOL = 1 << 16  # distinct 64 B messages; message i is pool[i % POOL]
MASK = POOL - 1
BATCH = 256
FRAME = 1 << 20
CHUNK = 1 << 16  # pipe reader's read size
NAME_TAG = "bench"

_U32 = struct.Struct("<I")
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

    def met(self, rate: float | None, ratio: float | None) -> bool | None:
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


WORKLOADS = [
    Workload(
        "msg64", "64 B messages, one put()/get() each", 64, "msgs/s",
        (200_000, 1_000_000), POOL, ("msg64", "os.pipe"),
        Target("≥ 4 M msgs/s and ≥ 5× os.pipe", min_rate=4e6, min_ratio=5.0),
    ),
    Workload(
        "batch64", "64 B messages, put_many()/get_many() of 256", 64, "msgs/s",
        (1 << 21, 1 << 24), POOL, ("msg64", "os.pipe"),
        Target("≥ 50 M msgs/s", min_rate=50e6),
    ),
    Workload(
        "frame1m", "1 MiB frames, written in place (reserve) and read whole (recv)", FRAME,
        "frames/s", (300, 3000), 32, ("frame1m", "np.copyto"),
        Target("≥ 0.9× np.copyto", min_ratio=0.9),
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


def _prepare(keys: set[str]) -> None:
    """Build the payloads before forking, so no child pays for them inside a trial."""
    if keys & {"msg64", "batch64"}:
        _msgs64(), _pool64_flat()
    if "frame1m" in keys:
        _frame_src()


# -- transports ----------------------------------------------------------------------------
class Side(NamedTuple):
    run: Callable[[int, int], None]  # move messages lo..hi-1 (producer: send; consumer: verify)
    finish: Callable[[], None]  # producer: end the stream; consumer: check it ended


class Transport:
    """How messages get from the producer process to the consumer process.

    Per trial the runner calls open() in the parent before forking, then in each child
    `<role>_<workload key>(channel, stack)` (prepare there; the returned Side is timed),
    forked() in the parent once the children exist, and close() in the parent at the end
    whatever happened.  A `solo` transport is a single-process reference: producer only.
    """

    name = "?"
    solo = False

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

    def side(self, role: str, ch: Any, wl: Workload, stack: contextlib.ExitStack) -> Side:
        return getattr(self, f"{role}_{wl.key}")(ch, stack)  # type: ignore[no-any-return]


def _check_frame(d64: np.ndarray, i: int) -> None:
    if d64[0] != i or d64[-1] != i:
        raise DataError(f"frame {i}: stamps {int(d64[0])}/{int(d64[-1])}: lost, reordered or torn")


class RingTransport(Transport):
    """shmring: a byte ring for single 64 B messages, array rings for batches and frames."""

    def __init__(self, kind: str, capacity: int) -> None:
        self.kind, self.capacity = kind, capacity
        self.name = f"shmring {kind}"
        self.backing: set[str] = set()

    @property
    def label(self) -> str:
        return f"shmring {self.kind}, capacity {self.capacity}"

    def open(self, wl: Workload) -> str:
        name = testing.unique_name(NAME_TAG)
        if wl.key == "msg64":
            ring = shmring.create(name, self.capacity, slot_size=64, kind=self.kind)
        else:
            shape = (64,) if wl.key == "batch64" else (FRAME,)
            ring = shmring.create(name, self.capacity, shape=shape, dtype=np.uint8, kind=self.kind)
        with ring:  # the children attach by name; the parent holds no handle
            info = ring.info()
        self.backing.add(f"{info['backing']} ({info['page_size'] // 1024} KiB pages)")
        return name

    def close(self, name: str) -> None:
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


class PipeTransport(Transport):
    """os.pipe with 4-byte length-prefixed frames: one os.write per 64 B message (no
    writer batching), a reader that parses frames out of 64 KiB reads; 1 MiB frames
    are read into a preallocated buffer with os.readv."""

    name = "os.pipe"

    def __init__(self, pipe_size: int | None = None) -> None:
        self.pipe_size = pipe_size

    @property
    def label(self) -> str:
        return "os.pipe" if self.pipe_size is None else f"os.pipe, {self.pipe_size >> 10} KiB buffer"

    def supports(self, wl: Workload) -> bool:
        return wl.key == "frame1m" or (wl.key == "msg64" and self.pipe_size is None)

    def open(self, wl: Workload) -> list[int]:
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


def _read_exact(fd: int, mv: memoryview) -> None:
    got, n = 0, len(mv)
    while got < n:
        k = os.readv(fd, [mv[got:]])
        if k == 0:
            raise DataError("end of stream inside a frame: data lost")
        got += k


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
    "batch64": [],
    "frame1m": [(CopyTransport(), True), (PipeTransport(), True), (PipeTransport(1 << 20), False)],
}


# -- running trials --------------------------------------------------------------------------
@dataclass
class Case:
    workload: Workload
    transport: Transport
    default: bool  # False: a variant (another capacity or buffer) shown for comparison
    rates: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    @property
    def median(self) -> float | None:
        return None if self.failed or not self.rates else statistics.median(self.rates)


def _cases(quick: bool, only: list[str] | None) -> list[Case]:
    cases = []
    for wl in WORKLOADS:
        if only and wl.key not in only:
            continue
        for kind in RING_KINDS:
            caps = RING_CAPACITIES[wl.key]
            for cap in caps[:1] if quick else caps:
                cases.append(Case(wl, RingTransport(kind, cap), cap == caps[0]))
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
        conn.send(("ok", t0, t1))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        conn.send(("error", f"{role}: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _run_trial(case: Case, n: int, cores: list[int | None]) -> float:
    """Seconds from the producer's first timed message to the consumer's last."""
    tr = case.transport
    roles = ["producer"] if tr.solo else ["producer", "consumer"]
    procs: list[tuple[str, Any, Any]] = []
    ch = tr.open(case.workload)
    try:
        barrier = _CTX.Barrier(len(roles))
        for role, core in zip(roles, cores):
            rx, tx = _CTX.Pipe(duplex=False)
            p = _CTX.Process(
                target=_child, args=(role, case, ch, n, core, barrier, tx),
                name=f"shmring-bench-{role}", daemon=True,
            )
            p.start()
            tx.close()
            procs.append((role, p, rx))
        tr.forked(ch)
        done = _collect(procs)
        start = done["producer"][1]
        end = done["producer" if tr.solo else "consumer"][2]
        return end - start  # type: ignore[no-any-return]
    finally:
        for _, p, rx in procs:
            if p.is_alive():
                p.kill()
            p.join(5)
            rx.close()
        tr.close(ch)


def _collect(procs: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    pending = {rx: (role, p) for role, p, rx in procs}
    out = {}
    deadline = time.monotonic() + TRIAL_TIMEOUT
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TrialFailed(f"timed out after {TRIAL_TIMEOUT:.0f} s ({', '.join(r for r, _ in pending.values())})")
        for rx in mp.connection.wait(list(pending), left):
            role, p = pending.pop(rx)
            try:
                msg = rx.recv()
            except EOFError:
                p.join(1)
                raise TrialFailed(f"{role} died without a result (exit code {p.exitcode})") from None
            if msg[0] != "ok":
                raise TrialFailed(msg[1])  # the finally of _run_trial kills the peer now
            out[role] = msg
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
    }


def _si(x: float) -> str:
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _reference(case: Case, cases: list[Case]) -> Case | None:
    if case.workload.reference is None:
        return None
    wkey, tname = case.workload.reference
    return next((c for c in cases if c.workload.key == wkey and c.transport.name == tname and c.default), None)


def _ratio(case: Case, cases: list[Case]) -> float | None:
    ref = _reference(case, cases)
    if ref is None or ref.median is None or case.median is None:
        return None
    return case.median / ref.median


def _row(case: Case, cases: list[Case], first: bool) -> str:
    wl, ref = case.workload, _reference(case, cases)
    label = case.transport.label
    variants = [c for c in cases if c.workload is wl and type(c.transport) is type(case.transport)]
    if case.default and len(variants) > 1:
        label += " (default)"
    if case.failed:
        why = f"FAILED in {len(case.failures)} of {len(case.failures) + len(case.rates)} trials"
        return f"| {wl.title if first else ''} | {label} | **FAILED** | {why} | | | |"
    if not case.rates:
        return f"| {wl.title if first else ''} | {label} | - | no trials | | | |"
    med, ratio = case.median, _ratio(case, cases)
    assert med is not None
    if ref is case:
        vs = "reference"
    elif ratio is None:
        vs = "-" if ref is None else "n/a (reference failed)"
    else:
        rwl = "" if ref.workload is wl else f" ({ref.workload.title.split(',')[0]}, one per call)"
        vs = f"{ratio:.2f}× {ref.transport.label}{rwl}"
    target = ""
    if isinstance(case.transport, RingTransport) and wl.target:
        met = wl.target.met(med, ratio)
        target = f"{wl.target.text}: " + ("n/a" if met is None else "**met**" if met else "**missed**")
    gbs = med * wl.nbytes / 1e9
    return (
        f"| {wl.title if first else ''} | {label} | {_si(med)} {wl.unit} | "
        f"{_si(min(case.rates))}–{_si(max(case.rates))} | {gbs:.2f} | {vs} | {target} |"
    )


def _report(out: TextIO, cases: list[Case], machine: dict[str, Any], mode: str, trials: int,
            pinning: str, wall: float) -> None:
    m = machine
    backing = sorted({b for c in cases if isinstance(c.transport, RingTransport) for b in c.transport.backing})
    w = out.write
    w(f"## shmring bench ({mode}: {trials} trials per case, interleaved)\n\n")
    w(f"- machine: {m['cpu']}, {m['cpus_online']} CPUs ({m['cpus_usable']} usable), Linux {m['kernel']}\n")
    w(f"- software: Python {m['python']}, numpy {m['numpy']}, shmring {m['shmring']}\n")
    w(f"- date: {m['date']}; load average at start {m['loadavg_start'][0]:.2f}, "
      f"at end {m['loadavg_end'][0]:.2f}; wall time {wall:.0f} s\n")
    w(f"- pinning: {pinning}\n")
    w(f"- rings: {', '.join(backing) or '-'}; kinds: {', '.join(RING_KINDS)}\n")
    counts = "; ".join(f"{wl.key} {c[0] if mode == 'quick' else c[1]:,}" for wl in WORKLOADS for c in [wl.count]
                       if any(x.workload is wl for x in cases))
    w(f"- messages per trial (after a warm-up): {counts}; every message verified by the consumer\n\n")
    w("| workload | transport | median | min–max | GB/s (payload, median) | vs reference (same run) | target |\n")
    w("|---|---|---|---|---|---|---|\n")
    last = None
    for c in cases:
        w(_row(c, cases, c.workload is not last) + "\n")
        last = c.workload
    failures = [(c, f) for c in cases for f in c.failures]
    if failures:
        w("\nFailures:\n")
        for c, f in failures:
            w(f"- {c.workload.key} / {c.transport.label}: {f}\n")


def _to_json(cases: list[Case], machine: dict[str, Any], mode: str, trials: int, pinning: str) -> dict[str, Any]:
    rows = []
    for c in cases:
        wl, ratio = c.workload, _ratio(c, cases)
        ref = _reference(c, cases)
        target = None
        if isinstance(c.transport, RingTransport) and wl.target:
            target = {"text": wl.target.text, "met": wl.target.met(c.median, ratio)}
        rows.append({
            "workload": wl.key, "title": wl.title, "transport": c.transport.name, "label": c.transport.label,
            "default": c.default, "params": {k: v for k, v in vars(c.transport).items() if k != "backing"},
            "unit": wl.unit, "payload_bytes": wl.nbytes,
            "messages_per_trial": wl.count[0 if mode == "quick" else 1], "warmup_messages": wl.warm,
            "rates": c.rates, "seconds": c.seconds, "failures": c.failures,
            "median": c.median, "min": min(c.rates) if c.rates else None, "max": max(c.rates) if c.rates else None,
            "reference": None if ref is None else [ref.workload.key, ref.transport.label],
            "ratio_vs_reference": ratio, "target": target,
        })
    return {"mode": mode, "trials": trials, "machine": machine, "pinning": pinning, "ring_kinds": RING_KINDS,
            "cases": rows}


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
    mode = "quick" if quick else "full"
    trials = trials or (3 if quick else 11)
    if trials < 1:
        raise SystemExit("--trials must be >= 1")
    cases = _cases(quick, only)
    cores, pinning = _pick_cores()
    machine = _machine()
    _prepare({c.workload.key for c in cases})
    t_start = time.monotonic()
    try:
        for t in range(trials):
            for c in cases:
                n = c.workload.count[0 if quick else 1]
                try:
                    secs = _run_trial(c, n, cores)
                except (TrialFailed, OSError, shmring.ShmringError) as exc:
                    c.failures.append(f"trial {t + 1}: {exc}")
                    continue
                c.seconds.append(secs)
                c.rates.append(n / secs)
            err.write(f"  trial {t + 1}/{trials} done ({time.monotonic() - t_start:.0f} s)\n")
    except KeyboardInterrupt:
        err.write("interrupted: children killed, rings removed\n")
        return 130
    finally:
        left = _sweep_leftovers()
        if left:
            err.write(f"removed {len(left)} leftover ring(s): {', '.join(left)}\n")
    machine["loadavg_end"] = os.getloadavg()
    _report(out, cases, machine, mode, trials, pinning, time.monotonic() - t_start)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(_to_json(cases, machine, mode, trials, pinning), f, indent=1)
            f.write("\n")
    return 1 if any(c.failed for c in cases) else 0
