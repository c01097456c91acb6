"""Facts about the host a run reports: CPU, kernel, versions, load, other processes' CPU use."""
from __future__ import annotations

import contextlib
import datetime
import os
import platform
import statistics
import time
from typing import Any

import numpy as np

import shmring


def facts() -> dict[str, Any]:
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
        "clocksource": read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        "perf_counter_ns_cost_ns": clock_cost_ns(),
    }


def read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "?"


def clock_cost_ns() -> float:
    """Median of back-to-back perf_counter_ns() calls: what the clock adds to a round-trip sample."""
    clock, d = time.perf_counter_ns, []
    for _ in range(20_000):
        t0 = clock()
        d.append(clock() - t0)
    return float(statistics.median(d))


def pick_cores() -> tuple[list[int], str]:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        a, b = cores[:2]
        return [a, b], (f"producer pinned to core {a}, consumer to core {b} (os.sched_setaffinity); "
                        f"one-process references run on core {a}")
    return [cores[0], cores[0]], (f"only one core available ({cores[0]}): producer and consumer share it, "
                                  "so these are not cross-core numbers")


CpuSnapshot = tuple[list[int], float]


def cpu_snapshot() -> CpuSnapshot:
    """(/proc/stat cpu jiffies, CPU seconds of this process and its reaped children)."""
    with open("/proc/stat") as f:
        jiffies = [int(x) for x in f.readline().split()[1:9]]
    t = os.times()
    return jiffies, t.user + t.system + t.children_user + t.children_system


def others_share(start: CpuSnapshot, end: CpuSnapshot) -> tuple[float, float]:
    """Shares of all CPUs used by other processes, and stolen by the host, between two snapshots."""
    d = [b - a for a, b in zip(start[0], end[0])]
    total = sum(d) or 1
    user, nice, system, _idle, _iowait, irq, softirq, steal = d
    ours = (end[1] - start[1]) * os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return max(0.0, busy - ours) / total, steal / total
