"""Peers killed with SIGKILL at awkward moments: the survivors go on, or get an
error within a bound; never a hang."""
from __future__ import annotations

import os
import signal
import time

import pytest

import shmring

from conftest import spawn_python

DIE_INSIDE = """
    import sys, time, shmring
    r = shmring.attach(sys.argv[1])
    with getattr(r, sys.argv[2])() as view:
        print("inside", flush=True)
        time.sleep(60)
"""


def kill_inside(name: str, block: str) -> None:
    """A child enters `with ring.<block>()` and is killed there."""
    child = spawn_python(DIE_INSIDE, name, block)
    try:
        line = child.stdout.readline()
        assert line.strip() == "inside", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()


@pytest.mark.timeout(60)
def test_locked_mutex_holder_killed_in_reserve(name):
    """reserve() holds the mutex: its holder dies; the next locker repairs and goes on."""
    with shmring.create(name, 2, slot_size=8, kind="locked") as r:
        kill_inside(name, "reserve")
        t0 = time.monotonic()
        assert r.try_put(b"a") and r.try_put(b"b")  # the dead holder's slot came back
        assert not r.try_put(b"c")                  # ... and capacity is exactly 2 again
        assert time.monotonic() - t0 < 2.0
        assert r.get_many(4) == [b"a", b"b"]


@pytest.mark.timeout(60)
def test_locked_mutex_holder_killed_in_recv(name):
    with shmring.create(name, 2, slot_size=8, kind="locked") as r:
        r.put_many([b"m0", b"m1"])
        kill_inside(name, "recv")
        assert r.get(timeout=2) == b"m0"  # the dead reader's message stays
        assert r.get(timeout=2) == b"m1"
        assert r.try_get() is None
        r.put(b"again")
        assert r.get() == b"again"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["spsc", "mpmc", "locked"])
def test_survivors_finish_or_time_out(name, kind):
    """A producer killed at a random moment of a stream: the consumer gets PeerDied
    (spsc: the role's holder died) or times out within its bound once the stream
    has stopped (mpmc gives up a position the dead producer claimed and never
    published), never hangs; every message it did get is intact and in order."""
    with shmring.create(name, 4, slot_size=16, kind=kind) as r:
        producer = spawn_python("""
            import struct, sys, shmring
            r = shmring.attach(sys.argv[1])
            for seq in range(10**9):
                if seq % 2:
                    with r.reserve(timeout=30) as v:
                        v[:16] = memoryview(struct.pack("<QQ", seq, ~seq & (2**64 - 1))).cast("B")
                else:
                    r.put(struct.pack("<QQ", seq, ~seq & (2**64 - 1)), timeout=30)
        """, name)
        import struct
        expect = 0
        try:
            r.get(timeout=30)  # the producer is up (its interpreter takes a while to start)
            expect = 1
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                seq, check = struct.unpack("<QQ", r.get(timeout=5))
                assert seq == expect and check == ~seq & (2**64 - 1)
                expect += 1
            os.kill(producer.pid, signal.SIGKILL)
            producer.wait()
            t0 = time.monotonic()
            with pytest.raises((shmring.PeerDied, TimeoutError)):
                while True:
                    seq, check = struct.unpack("<QQ", r.get(timeout=1))
                    assert seq == expect and check == ~seq & (2**64 - 1)
                    expect += 1
            assert time.monotonic() - t0 < 5.0
        finally:
            if producer.poll() is None:
                producer.kill()
                producer.wait()
        assert expect > 100
