"""The run's results: medians, ratios against the best peer and np.copyto, target
verdicts, the Markdown tables, the chapter's table beside the measured one, and JSON."""
from __future__ import annotations

import statistics
from typing import Any, TextIO

from .runner import Case
from .workloads import WORKLOADS, Latency, Workload

# The IPC chapter's table (one-way latency of a small message), and which row measures each.
SEED_TABLE = [
    ("shared memory", "~50 ns", 50e-9, "shmring spsc"),
    ("pipe", "~1 µs", 1e-6, "os.pipe"),
    ("Unix socket", "~2 µs", 2e-6, "AF_UNIX socketpair"),
    ("message queue", "~5 µs", 5e-6, "POSIX mq (posix_ipc)"),
    ("TCP (loopback)", "~10 µs", 10e-6, "TCP loopback"),
    ("D-Bus", "~100 µs", 100e-6, "D-Bus (private dbus-daemon, jeepney)"),
]
VERDICT = {None: "n/a", True: "**met**", False: "**missed**"}


def value(x: float | Latency | str) -> float | None:
    """A round's headline number: msgs/s, or a round trip's p50 (µs); None if it failed."""
    if isinstance(x, Latency):
        return x.p50
    return x if isinstance(x, float) else None


def median(c: Case) -> float | None:
    vals = [v for v in map(value, c.outcomes) if v is not None]
    return statistics.median(vals) if c.ok and vals else None


def latency(c: Case) -> Latency | None:
    """The median over rounds of each percentile, each on its own."""
    lats = c.latencies
    if not c.ok or not lats:
        return None
    return Latency(*(statistics.median(getattr(x, f) for x in lats) for f in Latency._fields))


def ratio(c: Case, ref: Case | None) -> float | None:
    """Median of same-round ratios: the rounds interleave the cases, so a noisy round slows
    both and the pairing cancels most of it.  Round trips: of the p50s (below 1: faster)."""
    if ref is None or not c.ok or not ref.ok:
        return None
    pairs = [a / b for a, b in ((value(x), value(y)) for x, y in zip(c.outcomes, ref.outcomes))
             if a is not None and b is not None and b > 0]
    return statistics.median(pairs) if pairs else None


def best_peer(c: Case, cases: list[Case]) -> Case | None:
    """The best other transport (not shmring, not a one-process reference) on the same
    workload, paced alike; for round trips, the lowest p50."""
    wl = c.workload
    peers = [p for p in cases if p.workload is wl and p.ok and not p.transport.shmring and not p.transport.solo
             and p.transport.gap_us == c.transport.gap_us]
    if not peers:
        return None
    if wl.latency:
        return min(peers, key=lambda p: median(p) or float("inf"))
    return max(peers, key=lambda p: median(p) or 0.0)


def copy_ref(c: Case, cases: list[Case]) -> Case | None:
    return next((p for p in cases if p.workload is c.workload and p.transport.solo and p.ok), None)


def target(c: Case, cases: list[Case]) -> tuple[str, bool | None, str] | None:
    """The issue's target, judged on shmring spsc's default row only: (text, met, measured)."""
    t = c.workload.target
    tr = c.transport
    if t is None or not tr.shmring or getattr(tr, "kind", "") != "spsc" or getattr(tr, "regime", None):
        return None
    if t.kind == "rate":
        m = median(c)
        return t.text, None if m is None else m >= t.value, "" if m is None else f"{si(m)} {c.workload.unit}"
    ref = copy_ref(c, cases) if t.kind == "ratio_copy" else best_peer(c, cases)
    r = ratio(c, ref)
    if r is None or ref is None:
        return t.text, None, "not measured"
    met = (r <= t.value) if t.kind == "rtt_peer" else (r >= t.value)
    what = "p50 " if t.kind == "rtt_peer" else ""
    return t.text, met, f"{what}{r:.2f}× {ref.label}"


def si(x: float) -> str:
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def us(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _ratio_text(r: float | None, ref: Case | None, latency_: bool) -> str:
    if ref is None or r is None:
        return ""
    if latency_:
        return f"{r:.3f}× {ref.label}" + (f" ({1 / r:.1f}× lower)" if r < 1 else "")
    return f"{r:.2f}× {ref.label}"


def _not_run(c: Case) -> str | None:
    if c.skipped is not None:
        return f"skipped: {c.skipped}"
    if c.failures:
        return f"**FAILED** ({len(c.failures)} of {len(c.outcomes)} trials): {c.failures[0]}"
    return None


def _order(cases: list[Case]) -> list[Case]:
    """Measured rows best first, then failed, then skipped."""
    wl = cases[0].workload
    ran = [c for c in cases if c.ok]
    ran.sort(key=lambda c: (median(c) or 0.0) * (1 if wl.latency else -1))
    return ran + [c for c in cases if c.failures and c.skipped is None] + [c for c in cases if c.skipped]


def _flow_table(w: Any, wl: Workload, cases: list[Case], all_cases: list[Case]) -> None:
    frames = wl.frame
    w(f"\n### {wl.title} ({wl.unit})\n\n")
    w("| transport | median | min–max | GB/s | vs best peer, same rounds |"
      + (" vs np.copyto |" if frames else "") + " target |\n")
    w("|---|---|---|---|---|" + ("---|" if frames else "") + "---|\n")
    for c in _order(cases):
        why = _not_run(c)
        name = f"**{c.label}**" if c.transport.shmring else c.label
        if why is not None:
            w(f"| {name} | {why} |" + " |" * (4 + frames) + "\n")
            continue
        m = median(c)
        assert m is not None
        peer = best_peer(c, all_cases)
        vs_peer = ("best peer" if peer is c else "" if c.transport.solo
                   else _ratio_text(ratio(c, peer), peer, False))
        cells = [name, f"{si(m)}", f"{si(min(c.rates))}–{si(max(c.rates))}", f"{m * wl.nbytes / 1e9:.2f}", vs_peer]
        if frames:
            ref = copy_ref(c, all_cases)
            cells.append("reference" if ref is c else (f"{r:.2f}×" if (r := ratio(c, ref)) is not None else ""))
        t = target(c, all_cases)
        cells.append("" if t is None else f"{t[0]}: {VERDICT[t[1]]}")
        w("| " + " | ".join(cells) + " |\n")


def _rtt_table(w: Any, wl: Workload, cases: list[Case], all_cases: list[Case]) -> None:
    w(f"\n### {wl.title} (µs; each percentile over a trial's round trips, then its median over rounds)\n\n")
    w("| transport | p50 | p99 | p99.9 | worst | p50 vs best peer, same rounds | target |\n")
    w("|---|---|---|---|---|---|---|\n")
    for c in _order(cases):
        why = _not_run(c)
        name = f"**{c.label}**" if c.transport.shmring else c.label
        lat = latency(c)
        if why is not None or lat is None:
            w(f"| {name} | {why or 'no trials'} | | | | | |\n")
            continue
        peer = best_peer(c, all_cases)
        vs = "best peer" if peer is c else _ratio_text(ratio(c, peer), peer, True)
        t = target(c, all_cases)
        w(f"| {name} | {us(lat.p50)} | {us(lat.p99)} | {us(lat.p999)} | {us(lat.worst)} | {vs} | "
          + ("" if t is None else f"{t[0]}: {VERDICT[t[1]]}") + " |\n")


def seed_rows(cases: list[Case]) -> list[dict[str, Any]]:
    """The chapter's table beside this run: one-way latency (round-trip p50 / 2) and the
    per-message cost of a stream of 64 B messages (1 / msgs per second)."""
    rows = []
    for mech, text, secs, name in SEED_TABLE:
        rtt = next((c for c in cases if c.workload.key == "pingpong64" and c.transport.name == name
                    and not c.transport.gap_us and getattr(c.transport, "regime", None) is None), None)
        flow = next((c for c in cases if c.workload.key == "msg64" and c.transport.name == name), None)
        lat = latency(rtt) if rtt is not None else None
        rate = median(flow) if flow is not None else None
        rows.append({"mechanism": mech, "chapter": text, "chapter_s": secs, "transport": name,
                     "one_way_us": None if lat is None else lat.p50 / 2,
                     "per_message_us": None if rate is None else 1e6 / rate})
    return rows


def _seed_table(w: Any, cases: list[Case]) -> None:
    w("\n### The IPC chapter's table, measured here\n\n")
    w("One-way latency = round-trip p50 / 2 (64 B, Python on both ends); per message = 1 / (64 B messages "
      "per second, one call each). The chapter's figures are for C on bare metal.\n\n")
    w("| mechanism | chapter | one-way, measured | per message, measured | measured with |\n|---|---|---|---|---|\n")
    for r in seed_rows(cases):
        ow = "not measured" if r["one_way_us"] is None else f"{us(r['one_way_us'])} µs"
        pm = "not measured" if r["per_message_us"] is None else f"{us(r['per_message_us'])} µs"
        w(f"| {r['mechanism']} | {r['chapter']} | {ow} | {pm} | {r['transport']} |\n")


def markdown(out: TextIO, cases: list[Case], m: dict[str, Any], seed: bool) -> None:
    w = out.write
    w(f"## shmring bench ({m['mode']}: {m['trials']} rounds, every case once per round)\n\n")
    w(f"- machine: {m['cpu']}, {m['cpus_online']} CPUs ({m['cpus_usable']} usable), Linux {m['kernel']}; "
      f"Python {m['python']}, numpy {m['numpy']}, shmring {m['shmring']}\n")
    w(f"- date: {m['date']}; wall time {m['wall_s']:.0f} s; load average {m['loadavg_start'][0]:.2f} at start, "
      f"{m['loadavg_end'][0]:.2f} at end; other processes used {m['others_cpu_share']:.0%} of the CPUs "
      f"(per round {', '.join(f'{r[0]:.0%}' for r in m['rounds'])}), the host stole {m['steal_share']:.0%}\n")
    w(f"- pinning: {m['pinning']}\n")
    w(f"- each trial runs about {m['trial_target_s']:g} s after a warm-up (its size adapts to the rate of the "
      "case's previous trial); the consumer verifies every message: 64 B messages whole against the expected "
      "one, frames by sequence stamps and a checksum that reads every byte; a transport that loses, duplicates, "
      "reorders or corrupts anything is FAILED, not fast\n")
    w("- median and min–max over rounds; a ratio is the median of same-round ratios; the best peer is the "
      "fastest transport other than shmring in the same run\n")
    for wl in WORKLOADS:
        rows = [c for c in cases if c.workload is wl]
        if rows:
            (_rtt_table if wl.latency else _flow_table)(w, wl, rows, cases)
            if wl.party:
                shares = []
                for c in rows:
                    big = [max(d["consumer_shares"]) for d in c.details if d]
                    if big:
                        shares.append(f"{c.label} {min(big):.0%}–{max(big):.0%}")
                w(f"\n{wl.producers} producer processes pinned to one core, {wl.consumers} consumers to the other; "
                  "each producer ends with an END message and each consumer stops at its first; the parent "
                  "checks every message arrived exactly once. The busier consumer's share: " + "; ".join(shares)
                  + ".\n")
    if seed:
        _seed_table(w, cases)
    if m.get("idle"):
        w(f"\n{m['idle']}\n")
    verdicts = [(c, t) for c in cases if (t := target(c, cases)) is not None]
    if verdicts:
        w("\n### Targets (shmring spsc, this run)\n\n")
        for c, (text, met, measured) in verdicts:
            w(f"- {c.workload.title}: {text}: {VERDICT[met]} ({measured})\n")


def to_json(cases: list[Case], machine: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for c in cases:
        peer, ref, t = best_peer(c, cases), copy_ref(c, cases), target(c, cases)
        lat = latency(c)
        rows.append({
            "workload": c.workload.key, "title": c.workload.title, "transport": c.transport.name,
            "label": c.label, "shmring": c.transport.shmring, "skipped": c.skipped,
            "unit": "µs" if c.workload.latency else c.workload.unit, "payload_bytes": c.workload.nbytes,
            "per_round": [x._asdict() if isinstance(x, Latency) else x for x in c.outcomes],
            "messages_per_round": c.counts, "seconds": c.seconds, "trial_wall_seconds": c.walls, "ok": c.ok,
            "median": lat._asdict() if lat is not None else median(c),
            "min": min(c.rates, default=None) if not c.workload.latency else min((x.p50 for x in c.latencies), default=None),
            "max": max(c.rates, default=None) if not c.workload.latency else max((x.p50 for x in c.latencies), default=None),
            "best_peer": None if peer is None else peer.label, "ratio_vs_best_peer": ratio(c, peer),
            "ratio_vs_np_copyto": ratio(c, ref) if c.workload.frame else None,
            "target": None if t is None else {"text": t[0], "met": t[1], "measured": t[2]},
            **({"details_per_round": c.details} if c.workload.party else {}),
        })
    return {"machine": machine, "cases": rows, "seed_table": seed_rows(cases)}
