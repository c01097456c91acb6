"""Each script in examples/ runs as a user would run it (a fresh interpreter, small sizes)
and its own report proves that every item arrived exactly once and intact."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=120, cwd=EXAMPLES.parent)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def counts(report: str, *words: str) -> dict[str, int]:
    """{'verified': 200, 'lost': 0, ...} from a line like '200 verified, 0 lost, ...'."""
    found = {w: [int(n) for n in re.findall(rf"(\d+) {w}\b", report)] for w in words}
    for w, ns in found.items():
        assert len(ns) == 1, f"no single '<n> {w}' in the report:\n{report}"
    return {w: ns[0] for w, ns in found.items()}


@pytest.mark.parametrize("frames", [300])
def test_frame_pipeline(frames: int) -> None:
    out = run_example("frame_pipeline.py", "--frames", str(frames), "--capacity", "4")
    c = counts(out, "verified", "lost", "duplicated", "corrupted")
    assert c == {"verified": frames, "lost": 0, "duplicated": 0, "corrupted": 0}, out
    per_worker = [int(n) for n in re.findall(r"worker \d: (\d+) frames", out)]
    assert len(per_worker) == 2 and sum(per_worker) == frames, out
    assert f"producer: {frames} frames of (480, 640, 3) uint8" in out


def test_work_queue() -> None:
    jobs = 3000
    out = run_example("work_queue.py", "--jobs", str(jobs), "--workers", "2")
    c = counts(out, "verified", "lost", "duplicated", "wrong")
    assert c == {"verified": jobs, "lost": 0, "duplicated": 0, "wrong": 0}, out
    assert f"workers report {jobs} done" in out


def test_asyncio_consumer() -> None:
    readings = 1500
    out = run_example("asyncio_consumer.py", "--readings", str(readings))
    c = counts(out, "verified", "lost")
    assert c == {"verified": readings, "lost": 0}, out
    assert "0 out of order or wrong" in out
    # The waits left the loop free, and waits cancelled by their timeout lost nothing.
    heartbeats = int(re.search(r"(\d+) heartbeats", out).group(1))  # type: ignore[union-attr]
    idle = int(re.search(r"(\d+) idle timeouts", out).group(1))  # type: ignore[union-attr]
    assert heartbeats > 1 and idle > 0, out
