"""Fixtures shared by the suite: unique ring names, and no leaked segments."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import shmring
from shmring.testing import ring_path, segments, unique_name

HERE = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests too")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


OFF_CREATOR = 344  # header: token of the creating process (csrc/shmring_abi.h)


def _made_elsewhere(name: str) -> bool:
    """True for a ring created by another live process (a parallel test run, say)."""
    try:
        with open(ring_path(name) or shm_path(name), "rb") as f:
            f.seek(OFF_CREATOR)
            pid = int.from_bytes(f.read(8), "little") >> 32
    except OSError:
        return True  # already gone
    if pid in (0, os.getpid()):
        return False
    return os.path.exists(f"/proc/{pid}") and os.getppid() != pid


@pytest.fixture(autouse=True)
def no_leaked_segments() -> Iterator[None]:
    """Fail any test that leaves a new ring in /dev/shm."""
    before = segments()
    yield
    leaked = {n for n in segments() - before if not _made_elsewhere(n)}
    if leaked:  # another run on this host may be between create and unlink: look again
        time.sleep(0.5)
        leaked = {n for n in leaked & segments() if not _made_elsewhere(n)}
    for name in leaked:  # clean up so one leak does not fail every later test
        try:
            shmring.unlink(name)
        except OSError:
            pass
    assert not leaked, f"test leaked shared-memory segments: {sorted(leaked)}"


KINDS = ["spsc", "mpmc", "locked"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once per ring kind: shmring.create makes rings of that kind."""
    import functools
    monkeypatch.setattr(shmring, "create", functools.partial(shmring.create, kind=request.param))
    return str(request.param)


@pytest.fixture
def name() -> Iterator[str]:
    """A fresh ring name, unlinked after the test if it still exists."""
    n = unique_name()
    yield n
    try:
        shmring.unlink(n)
    except FileNotFoundError:
        pass


@pytest.fixture
def names() -> Iterator[list[str]]:
    made: list[str] = []

    class Names(list):  # type: ignore[type-arg]
        def new(self) -> str:
            n = unique_name()
            made.append(n)
            return n

    yield Names()
    for n in made:
        try:
            shmring.unlink(n)
        except FileNotFoundError:
            pass


def run_python(code: str, *args: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh, unrelated interpreter (not a fork of this one)."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=timeout, cwd=HERE,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE,
    )


def finish(*procs: subprocess.Popen[str], timeout: float) -> list[str]:
    """Wait for each process in turn and return its stdout; assert it exited 0.
    Whatever is still running on the way out (a failure, a timeout) is killed."""
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, f"child exited {p.returncode}: {err[-3000:]}"
            outs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs


def shm_path(name: str) -> str:
    return f"/dev/shm/shmring.{name}"


def scribble(name: str, offset: int, data: bytes) -> None:
    """Overwrite bytes of a ring's segment, as a buggy or hostile peer would."""
    fd = os.open(shm_path(name), os.O_RDWR)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
