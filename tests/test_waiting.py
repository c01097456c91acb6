"""Blocking calls: timeouts, Ctrl+C, and a put from another process waking a blocked get."""
from __future__ import annotations

import signal
import time

import pytest

import shmring

from conftest import spawn_python

BLOCKED_GET = """
    import sys, time, shmring
    r = shmring.attach(sys.argv[1])
    print("blocking", flush=True)
    t0 = time.monotonic()
    try:
        r.get()
    except KeyboardInterrupt:
        print("interrupted after %.3f" % (time.monotonic() - t0), flush=True)
"""


@pytest.mark.timeout(30)
def test_ctrl_c_interrupts_a_blocked_get(name):
    with shmring.create(name, 2, slot_size=8):
        child = spawn_python(BLOCKED_GET, name)
        try:
            assert child.stdout.readline().strip() == "blocking"
            time.sleep(0.3)  # well into its wait
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            line = child.stdout.readline()
            latency = time.monotonic() - sent
            assert line.startswith("interrupted"), child.stderr.read()
            assert latency < 0.5  # within a slice (50 ms) plus process noise
        finally:
            child.kill()
            child.wait()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("timeout", [0.0, 0.02, 0.2])
def test_timeout_accuracy(name, timeout):
    with shmring.create(name, 1, slot_size=8) as r:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            r.get(timeout=timeout)
        waited = time.monotonic() - t0
        assert timeout <= waited < timeout + 0.05


@pytest.mark.timeout(30)
def test_put_from_another_process_wakes_a_blocked_get(name):
    with shmring.create(name, 2, slot_size=8) as r:
        t0 = time.monotonic()
        writer = spawn_python("""
            import sys, time, shmring
            r = shmring.attach(sys.argv[1]); time.sleep(0.3); r.put(b"wake"); r.close()
        """, name)
        try:
            assert r.get(timeout=10) == b"wake"
            assert time.monotonic() - t0 >= 0.3
        finally:
            writer.wait(timeout=10)


@pytest.mark.timeout(30)
def test_blocked_put_wakes_when_space_appears(name):
    with shmring.create(name, 1, slot_size=8) as r:
        r.put(b"full")
        reader = spawn_python("""
            import sys, time, shmring
            r = shmring.attach(sys.argv[1]); time.sleep(0.2); print(r.get().decode(), flush=True)
        """, name)
        try:
            r.put(b"next", timeout=10)
            assert reader.stdout.readline().strip() == "full"
        finally:
            reader.wait(timeout=10)
        assert r.get() == b"next"


@pytest.mark.timeout(30)
def test_shutdown_from_another_process_ends_a_blocked_get(name):
    with shmring.create(name, 2, slot_size=8) as r:
        r.try_get()  # claim the consumer role
        closer = spawn_python("""
            import sys, time, shmring
            r = shmring.attach(sys.argv[1]); time.sleep(0.2); r.shutdown()
        """, name)
        try:
            with pytest.raises(EOFError):
                r.get(timeout=10)
        finally:
            closer.wait(timeout=10)
