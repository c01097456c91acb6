"""A hostile or buggy peer scribbles over the shared header: never a crash, never a hang.

Trials run in a *child process*: it creates a ring (spsc or mpmc; the locked
kind trusts its mutex and is for cooperating peers only) with messages in it,
corrupts its segment as a peer with write access could, attaches a second
handle and drives every call.  The child must finish with exit code 0 (every
failure a ShmringError), never die by a signal (SIGSEGV, SIGBUS) or hang.
It prints the trial number before each trial, so a crash names its trial.
"""
from __future__ import annotations

import pytest

from conftest import run_python

CHILD = r"""
import os, random, struct, sys
import numpy as np
import shmring
from shmring.testing import unique_name

mode, seed, trials = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
# Every 4-byte field of the header lines, the index lines and the first slots.
FIELDS = list(range(0, 384, 4)) + [1024, 1152] + [4096 + k for k in range(0, 512, 8)]
TARGETS = [8, 12, 16, 20, 24, 32, 40, 48, 56, 64, 68, 72, 136, 320, 328, 336, 1024, 1152, 4104, 4112]
NASTY = [0, 1, 2, 3, 63, 64, 4095, 4096, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63, 2**64 - 1]
cases = [(off, v) for off in TARGETS for v in NASTY]
outcomes = {}

def note(e):
    outcomes[type(e).__name__] = outcomes.get(type(e).__name__, 0) + 1

def drive(r):
    calls = [len, lambda r: r.info(), lambda r: r.try_get(), lambda r: r.get_many(8, timeout=0.005),
             lambda r: r.try_put(np.zeros(r.shape, r.dtype) if r.shape else b"x"),
             lambda r: r.put_many([b"y", b"z"] if not r.shape else np.zeros((2,) + r.shape, r.dtype), timeout=0.005),
             lambda r: r.get(timeout=0.005)]
    for call in calls:
        try:
            call(r)
        except shmring.ShmringError as e:
            note(e)
    try:
        with r.recv(timeout=0.005) as v:
            v.sum()
    except shmring.ShmringError as e:
        note(e)

for t in range(trials if mode == "random" else len(cases)):
    print(t, flush=True)
    name = unique_name("hostile")
    form = dict(slot_size=24) if t % 2 else dict(shape=(3,), dtype=np.float64)
    # spsc and mpmc: the lock-free kinds promise this; locked trusts its mutex
    with shmring.create(name, 4, kind="mpmc" if t % 3 == 0 else "spsc", **form) as r:
        try:
            for _ in range(3):
                r.try_put(np.ones(3) if r.shape else b"abc")
            fd = os.open(f"/dev/shm/shmring.{name}", os.O_RDWR)
            if mode == "random":
                for _ in range(rng.choice([1, 2, 5, 10])):
                    data = (struct.pack("<Q", rng.choice(NASTY)) if rng.random() < 0.5
                            else rng.randbytes(rng.choice([1, 4, 8, 16])))
                    os.pwrite(fd, data, rng.choice(FIELDS))
            else:
                off, value = cases[t]
                os.pwrite(fd, struct.pack("<Q", value), off)
            os.close(fd)
            try:
                other = shmring.attach(name)
            except shmring.ShmringError as e:
                note(e)
                continue
            with other:
                drive(other)
            drive(r)          # the creator's handle meets the damage too
        finally:
            r.unlink()
print("outcomes", sorted(outcomes.items()), flush=True)
"""


def run_trials(mode: str, seed: int = 0, trials: int = 0) -> str:
    proc = run_python(CHILD, mode, str(seed), str(trials), timeout=300)
    last = proc.stdout.split("\n")[-2:] if proc.stdout else ""
    assert proc.returncode == 0, f"child died ({proc.returncode}) at trial {last}: {proc.stderr[-2000:]}"
    print(proc.stdout.splitlines()[-1])
    return proc.stdout


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", [1, 2])
def test_random_corruption(seed):
    """Random bytes and extreme values over random fields; seeded so a failure replays."""
    out = run_trials("random", seed, 400)
    assert "RingCorrupted" in out and "RingIncompatible" in out  # both defences were exercised


@pytest.mark.timeout(300)
def test_every_field_with_extreme_values():
    out = run_trials("targeted")
    assert "RingIncompatible" in out
