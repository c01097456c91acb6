"""The run as one PNG: a panel per workload, one bar per transport (log scale), shmring
in orange, peers in grey, np.copyto in blue; round trips as p50 bars with a p99 tick."""
from __future__ import annotations

import importlib.util
from typing import Any

from .report import latency, median, si, us
from .runner import Case
from .workloads import WORKLOADS

SHMRING, PEER, REF = "#d9480f", "#868e96", "#1c7ed6"


def available() -> str | None:
    """None if matplotlib can be used, else why not."""
    if importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed: pip install 'shmring[bench]'"
    return None


def plot(path: str, cases: list[Case], machine: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [wl for wl in WORKLOADS if any(c.workload is wl and c.ok for c in cases)]
    heights = [max(2.0, 0.32 * sum(1 for c in cases if c.workload is wl and c.ok) + 1.0) for wl in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, sum(heights) + 1.2),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, wl in zip(axes[:, 0], panels):
        rows = [c for c in cases if c.workload is wl and c.ok]
        rows.sort(key=lambda c: (median(c) or 0.0) * (-1 if wl.latency else 1))  # best at the top
        vals = [median(c) or 0.0 for c in rows]
        colours = [SHMRING if c.transport.shmring else REF if c.transport.solo else PEER for c in rows]
        y = range(len(rows))
        ax.barh(list(y), vals, color=colours, height=0.7)
        ax.set_yticks(list(y), [c.label for c in rows], fontsize=8)
        ax.set_xscale("log")
        if wl.latency:
            p99 = [lat.p99 if (lat := latency(c)) else 0.0 for c in rows]
            ax.plot(p99, list(y), "k|", markersize=10, label="p99")
            ax.legend(loc="lower right", fontsize=8)
            vals_for_lim = vals + p99
            ax.set_xlabel("round trip, µs (p50 bar, p99 tick; shorter is better)", fontsize=8)
            texts = [f"{us(v)} µs" for v in vals]
        else:
            ax.set_xlabel(f"{wl.unit} (longer is better)", fontsize=8)
            texts = [si(v) for v in vals]
            vals_for_lim = vals
        for yi, v, t in zip(y, vals, texts):
            ax.text(v, yi, " " + t, va="center", fontsize=7)
        ax.set_title(wl.title, fontsize=10, loc="left")
        ax.grid(axis="x", which="both", alpha=0.3)
        lo, hi = min(v for v in vals if v > 0), max(vals_for_lim)
        ax.set_xlim(lo / 2, hi * 4)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=SHMRING, label="shmring"), Patch(color=PEER, label="peers"),
                        Patch(color=REF, label="np.copyto, one process")],
               loc="upper left", bbox_to_anchor=(0.005, 1 - 0.3 / (sum(heights) + 1.2)), ncol=3, fontsize=8,
               frameon=False)
    fig.suptitle(f"shmring bench ({machine['mode']}), {machine['date']}: {machine['cpu']}, "
                 f"{machine['cpus_usable']} CPUs; producer and consumer pinned to different cores",
                 fontsize=9, x=0.01, ha="left", y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / (sum(heights) + 1.2)))
    fig.savefig(path, dpi=110)
    plt.close(fig)
