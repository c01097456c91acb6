"""The idle waiter: a process blocked in ring.get(timeout) on an empty ring, and the CPU
time it uses while it waits (getrusage), as a share of its wait."""
from __future__ import annotations

import contextlib
import resource
import os
import signal
import statistics
import time
from typing import Any, NamedTuple

import shmring
from shmring import testing

from .runner import _CTX, TrialFailed, collect
from .transports.ring import NAME_TAG

IDLE_WAIT = 2.0  # seconds in ring.get(timeout=IDLE_WAIT)
IDLE_TARGET = 0.01  # its CPU time as a share of the wait: target below 1 %


class Idle(NamedTuple):
    cpu: float
    wall: float
    switches: int

    @property
    def share(self) -> float:
        return self.cpu / self.wall


def _idle_child(name: str, core: int, conn: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.sched_setaffinity(0, {core})
        with shmring.attach(name) as ring:  # default spin_ns: spins, then sleeps on the futex
            r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            try:
                ring.get(IDLE_WAIT)
            except TimeoutError:
                pass
            else:
                raise TrialFailed("get() on an empty ring returned a message")
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


def idle_trial(core: int) -> Idle:
    name = testing.unique_name(NAME_TAG)
    shmring.create(name, 64, slot_size=64).close()
    p = rx = None
    try:
        rx, tx = _CTX.Pipe(duplex=False)
        p = _CTX.Process(target=_idle_child, args=(name, core, tx), name="shmring-bench-idle", daemon=True)
        p.start()
        tx.close()
        _, cpu, wall, switches = collect([("idle waiter", p, rx)], 30.0)["idle waiter"]
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


def idle_line(idle: list[Idle | str]) -> str:
    ok = [x for x in idle if isinstance(x, Idle)]
    head = (f"Idle waiter: one process in ring.get(timeout={IDLE_WAIT:g}) on an empty ring (default spin_ns), "
            "pinned to the consumer's core, once per round: user+sys CPU time as a share of its wait")
    if not ok or len(ok) < len(idle):
        return f"{head}: **FAILED** ({len(idle) - len(ok)} of {len(idle)} rounds)"
    shares = [x.share for x in ok]
    med = statistics.median(shares)
    verdict = "**met**" if med < IDLE_TARGET else "**missed**"
    return (f"{head}: **{med:.3%}** (min–max {min(shares):.3%}–{max(shares):.3%}); "
            f"target < {IDLE_TARGET:.0%}: {verdict}.")
