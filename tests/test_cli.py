"""`python -m shmring ls | info NAME | rm NAME... | rm --stale`, run as a user runs them:
in a fresh interpreter, against rings made by this and by other processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import shmring
from conftest import HERE, run_python, shm_path, spawn_python

MAX_ATTACH = 32      # csrc/shmring_abi.h pins these: the table of attached processes,
OFF_ATTACHED = 384
OFF_CREATOR = 344    # and the creating process's token


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shmring", *args], capture_output=True, text=True,
                          timeout=60, cwd=HERE)


def ls_json() -> dict[str, dict[str, Any]]:
    proc = cli("ls", "--json")
    assert proc.returncode == 0, proc.stderr
    return {r["name"]: r for r in json.loads(proc.stdout)}


def ls_lines() -> dict[str, str]:
    proc = cli("ls")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and lines[0].split()[:3] == ["NAME", "KIND", "CAPACITY"], proc.stdout
    return {line.split()[0]: line for line in lines[1:]}


def orphan(name: str, how: str) -> None:
    """A ring nobody is attached to any more: its last user exited, or was killed while
    attached (leaving its entry, now dead, in the ring's table).  This process creates
    it (other test runs on the host leave alone rings whose creator is alive) and
    detaches."""
    with shmring.create(name, 4, slot_size=16, kind="mpmc") as ring:
        ring.put(b"left behind")
    code = f"""
        import os, signal, shmring
        ring = shmring.attach({name!r})
        assert len(ring) == 1
        if {how!r} == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
    """
    proc = run_python(code)
    assert proc.returncode == (-signal.SIGKILL if how == "killed" else 0), proc.stderr
    assert bool(attached_pids(name)) == (how == "killed")


def attached_pids(name: str) -> set[int]:
    """The pids recorded in a ring's attach table, dead or alive, read from the file."""
    with open(shm_path(name), "rb") as f:
        f.seek(OFF_ATTACHED)
        raw = np.frombuffer(f.read(8 * MAX_ATTACH), "<u8")
    return {int(t) >> 32 for t in raw if t}


@pytest.mark.parametrize("command", [[], ["ls"], ["info"], ["rm"], ["bench"]])
def test_help(command: list[str]) -> None:
    proc = cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m shmring {' '.join(command)}".rstrip()), proc.stdout
    if not command:
        for sub in ("bench", "ls", "info", "rm"):
            assert sub in proc.stdout


def test_no_command_prints_help() -> None:
    proc = cli()
    assert proc.returncode == 2
    assert "usage: python -m shmring" in proc.stdout


def test_ls_lists_each_ring_with_its_columns(names) -> None:
    byte_name, array_name = names.new(), names.new()
    with shmring.create(byte_name, 8, slot_size=100) as r1, \
            shmring.create(array_name, 3, shape=(4, 5), dtype=np.float32, kind="mpmc") as r2:
        r1.put(b"x")
        r1.put(b"y")
        backing = r1.info()["backing"]
        lines = ls_lines()
        rows = ls_json()
    me = str(os.getpid())
    cells = lines[byte_name].split()
    assert cells[:4] == [byte_name, "spsc", "8", "100"], lines[byte_name]
    assert cells[-3:] == ["2", me, "live"], lines[byte_name]  # queued, pids, state
    assert backing in cells
    assert lines[array_name].split()[:6] == [array_name, "mpmc", "3", "80", "(4x5", "float32)"]
    assert lines[array_name].endswith(f"0  {me}  live") or lines[array_name].split()[-3:] == ["0", me, "live"]

    row = rows[array_name]
    assert (row["kind"], row["capacity"], row["slot_size"], row["shape"], row["dtype"]) == \
        ("mpmc", 3, 80, [4, 5], "float32")
    assert row["size_bytes"] >= 4096 + 3 * 80 and row["state"] == "live"
    assert row["pids"] == [os.getpid()]  # not the pid of ls, which attached to read it


@pytest.mark.parametrize("how", ["exited", "killed"])
def test_stale_rings_are_reported_and_removed(names, how: str) -> None:
    stale, live = names.new(), names.new()
    orphan(stale, how)
    with shmring.create(live, 4, slot_size=16):
        lines = ls_lines()
        assert lines[stale].split()[-1] == "stale", lines[stale]
        assert lines[live].split()[-1] == "live", lines[live]

        info = cli("info", stale)
        assert info.returncode == 0 and "state: stale" in info.stdout and "length: 1" in info.stdout

        # Every stale ring on the host -- a dry run: this machine's other rings are not ours.
        proc = cli("rm", "--stale", "--dry-run")
        assert proc.returncode == 0, proc.stderr
        assert f"would remove {stale}" in proc.stdout.splitlines()
        assert live not in proc.stdout
        assert {stale, live} <= shmring.testing.segments()

        proc = cli("rm", "--stale", stale, live)
        assert proc.stdout.splitlines() == [f"removed {stale}"]
        assert stale not in shmring.testing.segments()
        assert live in shmring.testing.segments()


def test_looking_does_not_make_a_ring_live(name: str) -> None:
    orphan(name, "exited")
    assert not attached_pids(name)
    # A process that keeps an observing handle open (as ls does while it reads)...
    looker = spawn_python("""
        import sys, time, shmring
        ring = shmring.attach(sys.argv[1], observe=True)
        print(len(ring), flush=True)
        time.sleep(60)
    """, name)
    try:
        assert looker.stdout is not None and looker.stdout.readline() == "1\n"
        assert looker.pid not in attached_pids(name)  # ...is not recorded in the ring
        # Listings, two at once, see the ring stale and leave no trace in it either.
        procs = [subprocess.Popen([sys.executable, "-m", "shmring", "ls"], stdout=subprocess.PIPE, text=True,
                                  cwd=HERE) for _ in range(2)]
        outs = [p.communicate(timeout=60)[0] for p in procs]
        for out in outs:
            line = next(line for line in out.splitlines() if line.startswith(name + " "))
            assert line.split()[-1] == "stale", out
        assert not attached_pids(name)
    finally:
        looker.kill()
        looker.wait()
    # An ordinary attach is recorded, and makes the ring live while it lasts.
    with shmring.attach(name):
        assert attached_pids(name) == {os.getpid()}
        assert "state: live" in cli("info", name).stdout
    assert "state: stale" in cli("info", name).stdout


def test_rm_by_name_and_rm_stale_by_name(names) -> None:
    stale, live, missing = names.new(), names.new(), names.new()
    orphan(stale, "killed")
    with shmring.create(live, 2, slot_size=8) as ring:
        proc = cli("rm", "--stale", live, stale)
        assert proc.returncode == 1  # one of them was not removed
        assert proc.stdout.splitlines() == [f"removed {stale}"]
        assert f"rm {live}: not removed, it is not stale (live: pids {os.getpid()})" in proc.stderr

        proc = cli("rm", live, missing)
        assert proc.returncode == 1
        assert proc.stdout.splitlines() == [f"removed {live}"]
        assert f"rm {missing}: no ring named {missing!r}" in proc.stderr
        ring.put(b"still")  # the unlinked ring's mapping keeps working
        assert ring.get() == b"still"
    assert not {stale, live} & shmring.testing.segments()


def test_info_missing_and_bad_names() -> None:
    proc = cli("info", "no-such-ring-anywhere")
    assert proc.returncode == 1
    assert "no ring named 'no-such-ring-anywhere'" in proc.stderr
    proc = cli("info", "a/b")
    assert proc.returncode == 1 and "bad ring name" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreadable_segment_is_listed_not_fatal(names) -> None:
    junk, good = names.new(), names.new()
    data = bytearray(b"not a ring" * 1000)
    # ...though it names this live process as its creator, as the leak checks of other
    # test runs on this host expect of a ring they did not make.
    data[OFF_CREATOR:OFF_CREATOR + 8] = (os.getpid() << 32).to_bytes(8, "little")
    with open(shm_path(junk), "wb") as f:
        f.write(data)
    with shmring.create(good, 2, slot_size=8):
        lines = ls_lines()
        assert "unreadable (RingIncompatible" in lines[junk], lines[junk]
        assert lines[good].split()[-1] == "live"
        proc = cli("rm", "--stale")
        assert f"removed {junk}" not in proc.stdout  # not known to be stale: left alone
        assert cli("rm", junk).returncode == 0
