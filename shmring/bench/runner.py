"""Running trials: every case once per round, producer and consumer in their own pinned
processes, a watchdog on each trial, trial sizes adapted to a target duration.

A trial: the parent opens the channel(s) and forks the parties; each sets up its end and
meets the others at a first barrier (every end exists), moves the warm-up, meets them at
a second one, and runs the timed messages; the clock runs from the producer's first timed
message to the consumer's last verified one (perf_counter: CLOCK_MONOTONIC, shared by the
processes; many to many: from the barrier to the later consumer's end of stream).  Any
error, a death or the deadline makes the trial FAILED with the reason, not a number.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import os

from . import payloads as P
from .transport import CALL_TIMEOUT, Transport
from .workloads import Latency, Workload, side

_CTX = mp.get_context("fork")  # children inherit the payloads, the channels, the transports


class TrialFailed(Exception):
    pass


@dataclass
class Case:
    workload: Workload
    transport: Transport
    skipped: str | None = None  # why this case did not run
    outcomes: list[float | Latency | str] = field(default_factory=list)  # per round: msgs/s, Latency, or failure
    seconds: list[float | None] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    details: list[dict[str, Any] | None] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)  # whole trial, forks and set-up included
    n_next: int = 0

    @property
    def label(self) -> str:
        return self.transport.label

    @property
    def rates(self) -> list[float]:
        return [x for x in self.outcomes if isinstance(x, float)]

    @property
    def latencies(self) -> list[Latency]:
        return [x for x in self.outcomes if isinstance(x, Latency)]

    @property
    def failures(self) -> list[str]:
        return [x for x in self.outcomes if isinstance(x, str)]

    @property
    def ok(self) -> bool:
        return self.skipped is None and not self.failures and bool(self.rates or self.latencies)


def _child(role: str, index: int, case: Case, chans: list[Any], n: int, warm: int, core: int,
           ready: Any, go: Any, conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's: it kills us
    try:
        os.sched_setaffinity(0, {core})
        wl = case.workload
        party = wl.party
        total = warm + n // wl.producers if party else warm + n
        share = warm * wl.producers // wl.consumers if party and role == "consumer" else warm
        with contextlib.ExitStack() as stack:
            s = side(wl, role, index, case.transport, chans, stack, total)
            ready.wait(CALL_TIMEOUT)
            s.run(0, share)
            go.wait(CALL_TIMEOUT)
            t0 = time.perf_counter()
            if party and role == "consumer":
                s.run(share, None)  # until the end of the stream
            else:
                s.run(warm, total)
            if party:
                s.finish()
            t1 = time.perf_counter()
            if not party:
                s.finish()
            stats = None if s.stats is None else s.stats()
        conn.send(("ok", t0, t1, stats))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        conn.send(("error", f"{role} {index}: {type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def collect(procs: list[tuple[str, Any, Any]], timeout: float) -> dict[str, Any]:
    """Each child's ("ok", ...) message; TrialFailed on an error, a death or the deadline."""
    pending: dict[Any, tuple[str, Any]] = {rx: (who, p) for who, p, rx in procs}  # Connection -> who
    out: dict[str, Any] = {}
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            if errors:
                break
            raise TrialFailed(f"timed out after {timeout:.0f} s ({', '.join(r for r, _ in pending.values())})")
        ready: list[Any] = mp.connection.wait(list(pending), left)
        for rx in ready:
            who, p = pending.pop(rx)
            try:
                msg = rx.recv()
            except EOFError:
                p.join(1)
                msg = ("error", f"{who} died without a result (exit code {p.exitcode})")
            if msg[0] == "ok":
                out[who] = msg
            else:
                # The peer's account usually follows (a consumer's DataError explains the
                # producer's BrokenPipeError): give it a second, not the full deadline.
                errors.append(msg[1])
                deadline = min(deadline, time.monotonic() + 1.0)
    if errors:
        errors.sort(key=lambda e: "DataError" not in e)  # the data verdict first
        raise TrialFailed("; ".join(errors))
    return out


def run_trial(case: Case, n: int, cores: list[int], timeout: float) -> tuple[float, Any, dict[str, Any] | None]:
    """(seconds, the initiator's Latency or None, many to many: the consumers' shares)."""
    tr, wl = case.transport, case.workload
    if tr.solo:
        parties = [("producer", 0, cores[0])]
    else:
        parties = ([("producer", i, cores[0]) for i in range(wl.producers)]
                   + [("consumer", j, cores[-1]) for j in range(wl.consumers)])
    warm = wl.warmup(n)
    procs: list[tuple[str, Any, Any]] = []
    chans: list[Any] = []
    try:
        for _ in range(2 if wl.latency else 1):
            chans.append(tr.open(wl.spec()))
        ready, go = _CTX.Barrier(len(parties)), _CTX.Barrier(len(parties))
        for role, index, core in parties:
            rx, tx = _CTX.Pipe(duplex=False)
            who = f"{role} {index}"
            p = _CTX.Process(target=_child, args=(role, index, case, chans, n, warm, core, ready, go, tx),
                             name=f"shmring-bench-{role}{index}", daemon=True)
            p.start()
            tx.close()
            procs.append((who, p, rx))
        for ch in chans:
            tr.forked(ch)
        done = collect(procs, timeout)
    finally:
        for _, p, rx in procs:
            if p.is_alive():
                p.kill()
            p.join(5)
            rx.close()
        for ch in chans:
            with contextlib.suppress(Exception):
                tr.close(ch)
    if not wl.party:
        start = done["producer 0"][1]
        end = done["producer 0" if tr.solo else "consumer 0"][2]
        return end - start, done["producer 0"][3], None
    start = min(done[f"producer {i}"][1] for i in range(wl.producers))
    end = max(done[f"consumer {j}"][2] for j in range(wl.consumers))
    accounts = [done[f"consumer {j}"][3] for j in range(wl.consumers)]
    try:
        P.many_check(accounts, wl.producers, warm + n // wl.producers)
    except P.DataError as exc:
        raise TrialFailed(f"DataError: {exc}") from None
    got = [sum(c for c, _, _ in acc) for acc in accounts]
    return end - start, None, {"consumer_shares": [g / sum(got) for g in got]}


def next_count(wl: Workload, n: int, secs: float, target_s: float) -> int:
    """The next trial's size: about target_s seconds at the rate just measured."""
    want = int(n * target_s / max(secs, 1e-6))
    lo, hi = wl.limits
    want = max(lo, min(hi, want, 32 * n))
    return max(wl.step, want // wl.step * wl.step)
