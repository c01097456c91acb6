"""Stale rings: a ring whose attached processes are all dead says so in info()
(and so in `python -m shmring ls`); a live attacher keeps it from being stale.

The handle that asks is not counted (`ls` attaches only to look), but another
handle of the same process is.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import shmring

from conftest import HERE, KINDS, scribble, spawn_python

OFF_ATTACHED = 384  # header: the attach table, 32 tokens (csrc/shmring_abi.h)

HOLD = """
    import sys, time, shmring
    name, how = sys.argv[1], sys.argv[2]
    r = shmring.create(name, 4, slot_size=16, kind=sys.argv[3]) if how == "create" else shmring.attach(name)
    r.put(b"left behind")
    print("ready", flush=True)
    time.sleep(120)
"""


def hold(name: str, how: str, kind: str = "spsc") -> subprocess.Popen[str]:
    """A child that creates (or attaches to) the ring, puts one message and waits."""
    child = spawn_python(HOLD, name, how, kind)
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.kill()
        child.wait()
        raise AssertionError(f"child failed: {child.stderr.read()}")
    return child


def kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


def ls_line(name: str) -> str:
    out = subprocess.run([sys.executable, "-m", "shmring", "ls"], capture_output=True, text=True,
                         timeout=60, cwd=HERE, check=True).stdout
    lines = [ln for ln in out.splitlines() if ln.split()[:1] == [name]]
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.parametrize("kind", KINDS)
def test_creator_killed_leaves_a_stale_ring(name, kind):
    child = hold(name, "create", kind)
    try:
        with shmring.attach(name) as r:
            i = r.info()
            assert child.pid in i["pids"] and not i["stale"]
            kill(child)
            i = r.info()
            assert i["stale"] and child.pid not in i["pids"]
            assert r.get() == b"left behind"   # stale, yet intact and usable
    finally:
        if child.poll() is None:
            kill(child)


def test_ls_says_stale_once_every_attacher_died(name):
    # Made here, not by the child: a test run beside this one unlinks a new ring
    # whose creator is dead as a leak (conftest), and `ls` must find this one.
    shmring.create(name, 4, slot_size=16).close()
    child = hold(name, "attach")
    try:
        assert "stale" not in ls_line(name).split()
    finally:
        kill(child)
    with shmring.attach(name) as r:   # a fresh look, as `ls` takes it
        assert r.info()["stale"]
    assert "stale" in ls_line(name).split()


def test_live_attacher_keeps_it_fresh(name):
    with shmring.create(name, 4, slot_size=16) as r:
        child = hold(name, "attach")
        try:
            assert not r.info()["stale"]
            assert "stale" not in ls_line(name).split()
        finally:
            kill(child)
        assert r.info()["stale"]
        assert r.get() == b"left behind"


def test_child_that_closed_is_not_attached(name):
    """A process that closed its handle and exited is no longer listed."""
    with shmring.create(name, 4, slot_size=16) as r:
        child = spawn_python("""
            import sys, shmring
            with shmring.attach(sys.argv[1]) as r:
                r.put(b"bye")
            print("closed", flush=True)
            sys.stdin = None
            import time; time.sleep(120)
        """, name)
        try:
            assert child.stdout.readline().strip() == "closed", child.stderr.read()
            i = r.info()
            assert child.pid not in i["pids"] and i["stale"]
        finally:
            kill(child)


def test_other_handle_of_this_process_counts(name):
    with shmring.create(name, 2, slot_size=8) as r1:
        assert r1.info()["stale"]           # nobody but the asking handle
        with shmring.attach(name) as r2:
            assert not r1.info()["stale"] and not r2.info()["stale"]
            assert r1.info()["pids"] == [os.getpid()]
        assert r1.info()["stale"]


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


@pytest.mark.parametrize("start_delta, alive", [(0, True), (1, False)])
def test_reused_pid_is_not_a_live_attacher(name, start_delta, alive):
    """An entry names a live pid: it counts only if that process's start time matches
    (else the recorded process died and its pid went to another one)."""
    pid = os.getppid()   # alive, and not us
    token = pid << 32 | ((_start_time(pid) + start_delta) & 0xFFFFFFFF)
    with shmring.create(name, 2, slot_size=8) as r:
        scribble(name, OFF_ATTACHED + 8 * 31, token.to_bytes(8, "little"))
        i = r.info()
        assert i["stale"] is (not alive)
        assert (pid in i["pids"]) is alive
