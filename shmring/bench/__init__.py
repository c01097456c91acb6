"""`python -m shmring bench`: shmring against the IPC a user would pick instead.

Producer and consumer run in separate processes pinned to different cores; every peer
is an adapter behind one interface (transport.py, transports/); every workload is
written once against it (workloads.py); every message is verified; trials of all cases
interleave round by round so a shared host's noise hits all alike (runner.py); the report
gives medians, same-round ratios against the best peer and np.copyto, the issue's
targets, the IPC chapter's table beside the measured one (report.py), JSON and a PNG
(plot.py).  A peer that is not installed is listed as skipped, with the reason.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, TextIO

from . import machine as M
from .catalogue import transports
from .idle import Idle, idle_line, idle_trial
from .plot import available as plot_available, plot
from .report import markdown, median, si, to_json, us, latency
from .runner import Case, TrialFailed, next_count, run_trial
from .transports.ring import sweep_leftovers
from .workloads import WORKLOADS, prepare

WORKLOAD_KEYS = [w.key for w in WORKLOADS]
QUICK = {"trials": 2, "target_s": 0.06, "timeout": 30.0}
FULL = {"trials": 7, "target_s": 0.4, "timeout": 120.0}


def cases_for(quick: bool, only: list[str] | None, names: list[str] | None) -> list[Case]:
    """Every (workload, transport) pair that exists, with the reason where it cannot run."""
    out = []
    trs = transports()
    reasons = {id(t): t.skip_reason() for t in trs}
    for wl in WORKLOADS:
        if only and wl.key not in only:
            continue
        for tr in trs:
            if not tr.applies(wl.key) or (quick and not tr.in_quick):
                continue
            if wl.party and not tr.multi:
                continue
            if names and not any(n.lower() in tr.label.lower() for n in names):
                continue
            out.append(Case(wl, tr, reasons[id(tr)], n_next=wl.first))
    return out


def _describe(x: Any, c: Case) -> str:
    if isinstance(x, str):
        return "FAILED"
    lat = x if c.workload.latency else None
    return f"p50 {us(lat.p50)} µs" if lat is not None else f"{si(x)} {c.workload.unit}"


def main(*, quick: bool = False, trials: int | None = None, json_path: str | None = None,
         plot_path: str | None = None, only: list[str] | None = None, names: list[str] | None = None,
         seed_table: bool = False, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the benchmark, print the Markdown report to `out` (progress to `err`);
    0 if every case that ran passed verification, 1 otherwise."""
    mode = QUICK if quick else FULL
    trials = trials or int(mode["trials"])
    if trials < 1:
        raise SystemExit("--trials must be >= 1")
    if plot_path and (why := plot_available()):
        err.write(f"no plot: {why}\n")
        plot_path = None
    cases = cases_for(quick, only, names)
    cores, pinning = M.pick_cores()
    facts = M.facts() | {"mode": "quick" if quick else "full", "trials": trials, "pinning": pinning,
                         "rounds": [], "trial_target_s": mode["target_s"]}
    prepare({c.workload.key for c in cases})
    started: list[Any] = []
    for tr in {id(c.transport): c.transport for c in cases if c.skipped is None}.values():
        try:
            tr.start()
            started.append(tr)
        except Exception as exc:  # noqa: BLE001 - a peer that cannot start is skipped, with why
            for c in cases:
                if c.transport is tr:
                    c.skipped = f"could not start: {type(exc).__name__}: {exc}"
    for c in cases:
        if c.skipped is None and (why := c.transport.unsupported(c.workload.spec())):
            c.skipped = why
    for c in cases:
        if c.skipped:
            err.write(f"  skipped {c.workload.key} / {c.label}: {c.skipped}\n")
    live = [c for c in cases if c.skipped is None]
    idle: list[Idle | str] | None = [] if any(c.workload.key == "pingpong64" for c in live) else None
    tty = err.isatty()
    t_start = time.monotonic()
    cpu_start = cpu_round = M.cpu_snapshot()
    try:
        for r in range(trials):
            for k, c in enumerate(live):
                n = c.n_next
                if tty:
                    err.write(f"\r\x1b[K  round {r + 1}/{trials} [{k + 1}/{len(live)}] {c.workload.key}: "
                              f"{c.label} ...")
                    err.flush()
                t_trial = time.monotonic()
                try:
                    secs, lat, detail = run_trial(c, n, cores, float(mode["timeout"]))
                    c.outcomes.append(n / secs if lat is None else lat)
                    c.seconds.append(secs)
                    c.n_next = next_count(c.workload, n, secs, float(mode["target_s"]))
                except (TrialFailed, OSError) as exc:
                    c.outcomes.append(str(exc))
                    c.seconds.append(None)
                    detail = None
                c.counts.append(n)
                c.walls.append(time.monotonic() - t_trial)
                c.details.append(detail)
                if tty:
                    err.write(f" {_describe(c.outcomes[-1], c)}")
            if idle is not None:
                try:
                    idle.append(idle_trial(cores[-1]))
                except (TrialFailed, OSError) as exc:
                    idle.append(str(exc))
            now = M.cpu_snapshot()
            facts["rounds"].append(M.others_share(cpu_round, now))
            cpu_round = now
            bad = sum(1 for c in live if c.outcomes and isinstance(c.outcomes[-1], str))
            err.write(("\r\x1b[K" if tty else "") + f"  round {r + 1}/{trials} done: {len(live)} cases, "
                      f"{bad} failed, {time.monotonic() - t_start:.0f} s, other processes "
                      f"{facts['rounds'][-1][0]:.0%} of the CPUs\n")
    except KeyboardInterrupt:
        err.write("\ninterrupted: children killed, rings removed\n")
        return 130
    finally:
        for tr in started:
            try:
                tr.stop()
            except Exception as exc:  # noqa: BLE001
                err.write(f"stopping {tr.label}: {exc}\n")
        left = sweep_leftovers(os.getpid())
        if left:
            err.write(f"removed {len(left)} leftover ring(s): {', '.join(left)}\n")
    facts["wall_s"] = time.monotonic() - t_start
    facts["loadavg_end"] = os.getloadavg()
    facts["others_cpu_share"], facts["steal_share"] = M.others_share(cpu_start, M.cpu_snapshot())
    if idle is not None:
        facts["idle"] = idle_line(idle)
    markdown(out, cases, facts, seed_table)
    if json_path:
        doc = to_json(cases, facts)
        if idle is not None:
            doc["idle_waiter"] = [x._asdict() | {"share": x.share} if isinstance(x, Idle) else x for x in idle]
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    if plot_path:
        plot(plot_path, cases, facts)
    failed = any(c.failures for c in cases) or any(isinstance(x, str) for x in idle or [])
    return 1 if failed else 0


__all__ = ["main", "WORKLOAD_KEYS", "median", "latency"]
