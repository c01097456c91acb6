"""Every error row of API.md: the exception, both of its bases, and a message naming the problem."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

import shmring
from shmring._errors import ShmringError

from conftest import run_python, scribble, shm_path

# Offsets in the header (csrc/shmring_abi.h).
OFF_ABI, OFF_KIND, OFF_CAPACITY, OFF_SLOT_SIZE, OFF_STRIDE, OFF_TOTAL = 8, 12, 24, 32, 40, 56
OFF_NDIM, OFF_DTYPE_LEN, OFF_SHAPE, OFF_DTYPE = 64, 68, 72, 136
OFF_TAIL, OFF_HEAD, SLOTS = 1024, 1152, 4096


def raises(builtin: type[BaseException], match: str | None = None):
    """pytest.raises for an error that must also be a ShmringError."""
    class _Both:
        def __enter__(self):
            self.cm = pytest.raises(builtin, match=match)
            self.info = self.cm.__enter__()
            return self.info

        def __exit__(self, *exc):
            out = self.cm.__exit__(*exc)
            assert isinstance(self.info.value, ShmringError), f"{self.info.value!r} is not a ShmringError"
            return out
    return _Both()


def test_attach_missing(name):
    with raises(FileNotFoundError, match=name):
        shmring.attach(name)
    with raises(FileNotFoundError):
        shmring.unlink(name)


def test_create_existing(name):
    with shmring.create(name, 2, slot_size=4):
        with raises(FileExistsError):
            shmring.create(name, 2, slot_size=4)


def test_create_over_foreign_file(name):
    with open(shm_path(name), "wb") as f:
        f.write(b"not mine")
    try:
        with raises(FileExistsError):
            shmring.create(name, 2, slot_size=4)
        assert open(shm_path(name), "rb").read() == b"not mine"  # never reused
    finally:
        os.unlink(shm_path(name))


@pytest.mark.parametrize("content", [b"", b"x" * 10, b"\x00" * 8 + b"junk" * 2000, os.urandom(8192)])
def test_not_a_ring(name, content):
    with open(shm_path(name), "wb") as f:
        f.write(content)
    try:
        with raises(ValueError) as info:
            shmring.attach(name)
        assert isinstance(info.value, shmring.RingIncompatible)
    finally:
        os.unlink(shm_path(name))


def test_other_abi_version(name):
    with shmring.create(name, 2, slot_size=4):
        scribble(name, OFF_ABI, struct.pack("<I", 99))
        with raises(ValueError, match="ABI") as info:
            shmring.attach(name)
        assert isinstance(info.value, shmring.RingIncompatible)


@pytest.mark.parametrize("offset,value", [
    (OFF_KIND, struct.pack("<I", 77)),
    (OFF_CAPACITY, struct.pack("<Q", 0)),
    (OFF_CAPACITY, struct.pack("<Q", 1 << 62)),
    (OFF_CAPACITY, struct.pack("<Q", 1000)),          # bigger than the segment
    (OFF_SLOT_SIZE, struct.pack("<Q", 1 << 50)),
    (OFF_SLOT_SIZE, struct.pack("<Q", 0)),
    (OFF_STRIDE, struct.pack("<Q", 8)),
    (OFF_TOTAL, struct.pack("<Q", 1 << 40)),
    (OFF_NDIM, struct.pack("<I", 9)),
    (OFF_DTYPE_LEN, struct.pack("<I", 1000)),
    (OFF_SHAPE, struct.pack("<Q", 3)),                 # shape no longer fills the slot
    (OFF_DTYPE, b"'|O'\x00"),                          # object dtype: pointers in shm
    (OFF_DTYPE, b"'<f8'\x00"),                         # itemsize no longer fits
    (OFF_DTYPE, b"__import__('os')\x00"),              # never evaluated
])
def test_impossible_geometry(name, offset, value):
    with shmring.create(name, 2, shape=(4,), dtype=np.int32):
        scribble(name, offset, value)
        with raises(ValueError) as info:
            shmring.attach(name)
        assert isinstance(info.value, shmring.RingIncompatible)


def test_truncated_segment(name):
    with shmring.create(name, 64, slot_size=4096):
        os.truncate(shm_path(name), 8192)
        with raises(ValueError):
            shmring.attach(name)


@pytest.mark.parametrize("tail,head", [(10, 0), (0, 5), (2**64 - 1, 0)])
def test_corrupted_indices_in_use(name, tail, head):
    with shmring.create(name, 4, slot_size=8) as r, shmring.attach(name) as a:
        r.put(b"one")
        assert a.get() == b"one"
        scribble(name, OFF_TAIL, struct.pack("<Q", tail))
        scribble(name, OFF_HEAD, struct.pack("<Q", head))
        with raises(RuntimeError, match="corrupt") as info:
            for _ in range(5):  # the cached index hides the damage until refreshed
                a.get(timeout=1)
        assert isinstance(info.value, shmring.RingCorrupted)


@pytest.mark.parametrize("head", [7, 2**63])
def test_corrupted_head_seen_by_producer(name, head):
    """head ahead of the producer's own tail is impossible: RingCorrupted, not a wild write."""
    with shmring.create(name, 4, slot_size=8) as r:
        r.put(b"one")
        scribble(name, OFF_HEAD, struct.pack("<Q", head))
        with raises(RuntimeError) as info:
            for _ in range(5):
                r.put(b"x", timeout=1)
        assert isinstance(info.value, shmring.RingCorrupted)


def test_corrupted_slot_length(name):
    with shmring.create(name, 2, slot_size=8) as r, shmring.attach(name) as a:
        r.put(b"abc")
        stride = r.info()["slot_stride"]
        scribble(name, SLOTS + 8 + 8, struct.pack("<Q", 1 << 40))  # slot 0: meta.len
        assert stride >= 32
        with raises(RuntimeError) as info:
            a.get()
        assert isinstance(info.value, shmring.RingCorrupted)
        for call in (a.try_get, lambda: a.get_many(4), a.recv):
            with raises(RuntimeError):
                call()


def test_message_larger_than_slot(name):
    with shmring.create(name, 2, slot_size=8) as r:
        for call in (lambda: r.put(b"x" * 9), lambda: r.try_put(bytearray(9)),
                     lambda: r.put_many([b"ok", b"x" * 9])):
            with raises(ValueError, match="larger than the slot"):
                call()
        assert len(r) == 0  # put_many checks before putting any


def test_wrong_shape_dtype_type(name):
    with shmring.create(name, 2, shape=(2, 2), dtype=np.float32) as r:
        with raises(ValueError, match="shape"):
            r.put(np.zeros((2, 3), np.float32))
        with raises(ValueError, match="dtype"):
            r.put(np.zeros((2, 2), np.float64))
        with raises(TypeError):
            r.put([[0, 0], [0, 0]])
        with raises(TypeError):
            r.put(b"\x00" * 16)
        with raises(ValueError):
            r.put_many(np.zeros((3, 2, 3), np.float32))
        with raises(TypeError):
            r.put_many([np.zeros((2, 2), np.float32)])
        assert len(r) == 0


@pytest.mark.parametrize("kwargs,exc", [
    (dict(name="", capacity=2, slot_size=4), ValueError),
    (dict(name="a/b", capacity=2, slot_size=4), ValueError),
    (dict(name="x" * 201, capacity=2, slot_size=4), ValueError),
    (dict(name="nul\0", capacity=2, slot_size=4), ValueError),
    (dict(name=b"bytes", capacity=2, slot_size=4), TypeError),
    (dict(capacity=0, slot_size=4), ValueError),
    (dict(capacity=-1, slot_size=4), ValueError),
    (dict(capacity="4", slot_size=4), TypeError),
    (dict(capacity=2.0, slot_size=4), TypeError),
    (dict(capacity=True, slot_size=4), TypeError),
    (dict(capacity=2**40, slot_size=4), ValueError),
    (dict(capacity=2, slot_size=0), ValueError),
    (dict(capacity=2, slot_size="8"), TypeError),
    (dict(capacity=2), ValueError),
    (dict(capacity=2, slot_size=4, shape=(2,), dtype="u1"), ValueError),
    (dict(capacity=2, shape=(2,)), ValueError),
    (dict(capacity=2, dtype="u1"), ValueError),
    (dict(capacity=2, shape=(0,), dtype="u1"), ValueError),
    (dict(capacity=2, shape=(2,) * 9, dtype="u1"), ValueError),
    (dict(capacity=2, shape="2", dtype="u1"), TypeError),
    (dict(capacity=2, shape=(2,), dtype="no-such-dtype"), TypeError),
    (dict(capacity=2, shape=(2,), dtype=object), ValueError),
    (dict(capacity=2, slot_size=4, kind="fifo"), ValueError),
    (dict(capacity=2, slot_size=4, hugepages="sometimes"), ValueError),
    (dict(capacity=2, slot_size=4, mode=0o1777), ValueError),
    (dict(capacity=1 << 30, slot_size=1 << 30), ValueError),   # too large in total
])
def test_bad_create_arguments(name, kwargs, exc):
    kwargs.setdefault("name", name)
    n = kwargs.pop("name")
    with raises(exc):
        shmring.create(n, **kwargs)


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 201, "nul\0"])
def test_bad_names_everywhere(bad):
    for call in (shmring.attach, shmring.unlink):
        with raises(ValueError, match="name"):
            call(bad)


def test_bad_timeouts(name):
    with shmring.create(name, 2, slot_size=4) as r:
        with raises(ValueError):
            r.get(timeout=-1)
        with raises(TypeError):
            r.get(timeout="1")
        with raises(ValueError):
            r.get_many(0)


def test_timeout_error(name):
    with shmring.create(name, 1, slot_size=4) as r:
        with raises(TimeoutError):
            r.get(timeout=0.01)


def test_shutdown_errors(name):
    with shmring.create(name, 1, slot_size=4) as r:
        r.shutdown()
        with raises(BrokenPipeError):
            r.put(b"x")
        with raises(EOFError):
            r.get()


def test_closed_ring(name):
    r = shmring.create(name, 1, slot_size=4)
    r.close()
    with raises(ValueError, match="closed"):
        r.put(b"x")


def test_ring_busy_second_producer(name):
    with shmring.create(name, 4, slot_size=4) as r, shmring.attach(name) as other:
        r.put(b"a")
        with raises(RuntimeError) as info:
            other.put(b"b")
        assert isinstance(info.value, shmring.RingBusy)
        assert other.get() == b"a"  # the consumer role is still free
        with raises(RuntimeError):
            r.get()


def test_peer_died(name):
    """A reader blocked on an empty ring whose producer died holding the role."""
    with shmring.create(name, 4, slot_size=4) as r:
        run_python("""
            import os, sys, shmring
            r = shmring.attach(sys.argv[1]); r.put(b"last")
            os._exit(0)   # dies holding the producer role, without close()
        """, name, check=True)
        assert r.get(timeout=5) == b"last"   # what it published survives it
        with raises(ConnectionError) as info:
            r.get(timeout=5)
        assert isinstance(info.value, shmring.PeerDied)


def test_permission_other_owner(name):
    if os.geteuid() != 0:
        pytest.skip("needs root to chown the segment to another user")
    with shmring.create(name, 2, slot_size=4):
        os.chown(shm_path(name), 65534, 65534)
        with raises(PermissionError):
            shmring.attach(name)
        with shmring.attach(name, any_owner=True) as r:  # explicit opt-in
            assert r.capacity == 2


def test_permission_mode_forbids(name):
    """A non-root process gets PermissionError on a 0600 segment of another user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a child as another user")
    with shmring.create(name, 2, slot_size=4):
        proc = run_python("""
            import os, sys
            import shmring           # before dropping privileges: /root is not readable
            os.setgid(65534); os.setuid(65534)
            try:
                shmring.attach(sys.argv[1], any_owner=True)
            except PermissionError as e:
                assert isinstance(e, shmring.ShmringError); print("denied")
        """, name)
        assert proc.stdout.strip() == "denied", proc.stderr


def test_every_error_is_a_shmring_error():
    for cls in (shmring.RingIncompatible, shmring.RingCorrupted, shmring.PeerDied, shmring.RingBusy):
        assert issubclass(cls, ShmringError)
    assert issubclass(shmring.RingIncompatible, ValueError)
    assert shmring.ShmringError is ShmringError
