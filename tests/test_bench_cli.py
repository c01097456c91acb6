"""`python -m shmring bench`: its output is well formed, every message was verified, a peer
that is not installed is reported as skipped, and a transport that loses data is FAILED.
Speed is never asserted (the host is shared)."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shmring import bench
from shmring.bench import catalogue, transport as T
from shmring.bench.transports.stream import PipeTransport, StreamSender


def _table_rows(md: str, heading: str) -> list[list[str]]:
    """The data rows of the Markdown table under `### heading...`."""
    block = md.split(f"### {heading}", 1)[1].split("\n### ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    assert len(lines) >= 3, block
    assert set(lines[1].replace("|", "")) <= {"-"}  # header, separator, rows
    width = lines[0].count("|")
    assert all(ln.count("|") == width for ln in lines), block
    return [[cell.strip() for cell in ln.strip("|").split("|")] for ln in lines[2:]]


def test_quick_msg64_cli(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "shmring", "bench", "--quick", "--only", "msg64", "--transport", "shmring spsc",
         "--transport", "os.pipe", "--json", str(out)],
        capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    rows = _table_rows(proc.stdout, "64 B messages, one call each")
    assert {r[0] for r in rows} == {"**shmring spsc**", "os.pipe"}
    assert "round 2/2 done" in proc.stderr  # progress went to stderr
    doc = json.loads(out.read_text())
    cases = {c["label"]: c for c in doc["cases"]}
    assert set(cases) == {"shmring spsc", "os.pipe"}
    for c in cases.values():
        assert c["ok"] and c["skipped"] is None
        assert len(c["per_round"]) == 2 and all(isinstance(x, float) and x > 0 for x in c["per_round"])
        assert all(n >= 1000 for n in c["messages_per_round"])
        assert c["min"] <= c["median"] <= c["max"]
    assert cases["os.pipe"]["best_peer"] == "os.pipe"
    assert cases["shmring spsc"]["ratio_vs_best_peer"] > 0
    assert cases["shmring spsc"]["target"]["text"] == "≥ 5× the best peer"
    assert doc["machine"]["mode"] == "quick" and len(doc["machine"]["rounds"]) == 2


def _run(monkeypatch: pytest.MonkeyPatch, extra: list[T.Transport], **kw: Any) -> tuple[int, str, str]:
    monkeypatch.setattr(catalogue, "transports", lambda: extra)
    monkeypatch.setattr(bench, "transports", lambda: extra)
    out, err = io.StringIO(), io.StringIO()
    rc = bench.main(quick=True, trials=1, out=out, err=err, **kw)
    return rc, out.getvalue(), err.getvalue()


class _Missing(PipeTransport):
    name = "not-installed peer"
    module = "shmring_no_such_peer_module"


def test_missing_peer_is_reported_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    rc, md, err = _run(monkeypatch, [PipeTransport(), _Missing()], only=["msg64"])
    assert rc == 0
    rows = {r[0]: r for r in _table_rows(md, "64 B messages, one call each")}
    assert rows["not-installed peer"][1].startswith("skipped: shmring_no_such_peer_module is not installed")
    assert "pip install 'shmring[bench]'" in rows["not-installed peer"][1]
    assert "skipped msg64 / not-installed peer" in err


class _LosingSender(StreamSender):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        send, count = self.send, [0]

        def lossy(msg: Any) -> None:
            count[0] += 1
            if count[0] != 700:  # drops one message of the warm-up or the timed run
                send(msg)

        self.send = lossy


class _Losing(PipeTransport):
    name = "lossy pipe"

    def sender(self, ch: Any, stack: contextlib.ExitStack) -> T.Sender:
        s = super().sender(ch, stack)
        assert isinstance(s, StreamSender)
        return _LosingSender(s._end, s.is_socket)


def test_a_transport_that_loses_data_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    rc, md, _ = _run(monkeypatch, [PipeTransport(), _Losing()], only=["msg64"])
    assert rc == 1
    rows = {r[0]: r for r in _table_rows(md, "64 B messages, one call each")}
    assert rows["lossy pipe"][1].startswith("**FAILED**")
    assert "DataError" in rows["lossy pipe"][1] and "lost, reordered or corrupted" in rows["lossy pipe"][1]
    assert rows["os.pipe"][1] != "" and not rows["os.pipe"][1].startswith("**FAILED**")


class _CorruptingSender(StreamSender):
    """Flips one byte in the middle of frame 60 (neither stamp word)."""

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.count = 0

    def send_frame(self, frame: Any) -> None:
        self.count += 1
        if self.count == 60:
            frame = frame.copy()
            frame[len(frame) // 2 + 3] ^= 0x40
        super().send_frame(frame)


class _Corrupting(PipeTransport):
    name = "corrupting pipe"

    def sender(self, ch: Any, stack: contextlib.ExitStack) -> T.Sender:
        s = super().sender(ch, stack)
        assert isinstance(s, StreamSender)
        return _CorruptingSender(s._end, s.is_socket)


def test_a_corrupted_frame_fails_its_checksum(monkeypatch: pytest.MonkeyPatch) -> None:
    rc, md, _ = _run(monkeypatch, [PipeTransport(), _Corrupting()], only=["frame64k"])
    assert rc == 1
    rows = {r[0]: r for r in _table_rows(md, "64 KiB numpy frames")}
    assert rows["corrupting pipe"][1].startswith("**FAILED**")
    assert "checksum mismatch: corrupted" in rows["corrupting pipe"][1]
    assert not rows["os.pipe"][1].startswith("**FAILED**")
