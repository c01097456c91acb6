"""SPSC roles: one live producer and one live consumer, taken over when the holder dies."""
from __future__ import annotations

import os
import signal
import time

import pytest

import shmring

from conftest import run_python, spawn_python

HOLD_PRODUCER = """
    import sys, time, shmring
    r = shmring.attach(sys.argv[1])
    r.put(b"from-child")
    print("holding", flush=True)
    time.sleep(60)
"""


def wait_line(proc, text: str) -> None:
    line = proc.stdout.readline()
    assert text in line, (line, proc.stderr.read() if proc.poll() is not None else "")


def test_second_live_producer_process_is_busy(name):
    with shmring.create(name, 4, slot_size=16) as r:
        holder = spawn_python(HOLD_PRODUCER, name)
        try:
            wait_line(holder, "holding")
            with pytest.raises(shmring.RingBusy):
                r.put(b"mine")
            assert r.info()["producer_pid"] == holder.pid
            assert r.get() == b"from-child"  # the consumer role is separate
        finally:
            holder.kill()
            holder.wait()


def test_role_of_killed_holder_is_taken_over(name):
    with shmring.create(name, 4, slot_size=16) as r:
        holder = spawn_python(HOLD_PRODUCER, name)
        wait_line(holder, "holding")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        t0 = time.monotonic()
        r.put(b"mine")  # takes over at once: the holder is dead
        assert time.monotonic() - t0 < 2.0
        assert [r.get(), r.get()] == [b"from-child", b"mine"]  # nothing published was lost
        assert r.info()["producer_pid"] == os.getpid()


def test_killed_holder_not_yet_reaped_is_dead(name):
    """A zombie (killed, not yet waited for) no longer holds its role."""
    with shmring.create(name, 4, slot_size=16) as r:
        holder = spawn_python(HOLD_PRODUCER, name)
        wait_line(holder, "holding")
        os.kill(holder.pid, signal.SIGKILL)
        time.sleep(0.2)  # dead, but a zombie until wait()
        try:
            r.put(b"mine")
        finally:
            holder.wait()


def test_consumer_killed_inside_recv_redelivers(name):
    """A reader killed inside recv() loses nothing: the next consumer gets that message again."""
    with shmring.create(name, 4, slot_size=16) as r:
        r.put_many([b"m0", b"m1"])
        child = spawn_python("""
            import sys, time, shmring
            r = shmring.attach(sys.argv[1])
            with r.recv() as v:
                print("inside", v.tobytes().decode(), flush=True)
                time.sleep(60)
        """, name)
        wait_line(child, "inside m0")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert r.get(timeout=2) == b"m0"
        assert r.get(timeout=2) == b"m1"


def test_roles_free_after_clean_exit(name):
    with shmring.create(name, 4, slot_size=16) as r:
        run_python("""
            import sys, shmring
            with shmring.attach(sys.argv[1]) as r:
                r.put(b"a"); r.put(b"b"); assert r.get() == b"a"
        """, name, check=True)
        r.put(b"c")
        assert r.get_many(5) == [b"b", b"c"]
        assert r.info()["pids"] == [os.getpid()]


def test_fork_child_does_not_inherit_roles(name):
    """A forked child is another process: it cannot use its parent's live role."""
    with shmring.create(name, 4, slot_size=16) as r:
        r.put(b"parent")
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                r.put(b"child")
            except shmring.RingBusy:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert r.get() == b"parent" and r.try_get() is None


def test_writer_blocked_on_dead_reader_gets_peer_died(name):
    with shmring.create(name, 1, slot_size=16) as r:
        run_python("""
            import os, sys, shmring
            r = shmring.attach(sys.argv[1]); assert r.try_get() is None
            os._exit(0)   # dies holding the consumer role
        """, name, check=True)
        r.put(b"fills the ring")
        t0 = time.monotonic()
        with pytest.raises(shmring.PeerDied):
            r.put(b"blocks", timeout=10)
        assert time.monotonic() - t0 < 2.0
