"""Every call of the public API (API.md), in one process, for each ring kind."""
from __future__ import annotations

import os
import pickle
import stat

import numpy as np
import pytest

import shmring

from conftest import shm_path


@pytest.fixture(autouse=True)
def every_kind(kind: str) -> str:
    """All behaviour here is shared by the three kinds."""
    return kind


def test_create_byte_ring_properties(name, kind):
    with shmring.create(name, 8, slot_size=100) as r:
        assert (r.name, r.kind, r.capacity, r.slot_size) == (name, kind, 8, 100)
        assert r.shape is None and r.dtype is None
        assert len(r) == 0
        assert isinstance(r, shmring.Ring)
        assert not r.closed
    assert r.closed


def test_create_array_ring_properties(name):
    with shmring.create(name, 3, shape=(4, 5), dtype=np.float32) as r:
        assert r.shape == (4, 5)
        assert r.dtype == np.float32
        assert r.slot_size == 4 * 5 * 4
    with shmring.create(name + "b", 3, shape=7, dtype="i2") as r:
        assert r.shape == (7,) and r.slot_size == 14
        r.unlink()


def test_segment_file_mode_and_name(name):
    old = os.umask(0o077)
    try:
        with shmring.create(name, 2, slot_size=8):
            st = os.stat(shm_path(name))
            assert stat.S_IMODE(st.st_mode) == 0o600
        with shmring.create(name + "m", 2, slot_size=8, mode=0o640):
            # the exact mode asked for, whatever the umask
            assert stat.S_IMODE(os.stat(shm_path(name + "m")).st_mode) == 0o640
        shmring.unlink(name + "m")
    finally:
        os.umask(old)


def test_put_get_bytes_fifo(name):
    with shmring.create(name, 4, slot_size=16) as r:
        msgs = [b"", b"a", b"bc" * 4, b"x" * 16]
        for m in msgs:
            r.put(m)
        assert len(r) == 4
        assert [r.get() for _ in msgs] == msgs
        assert len(r) == 0


def test_put_accepts_bytes_like(name):
    with shmring.create(name, 8, slot_size=16) as r:
        r.put(bytearray(b"ba"))
        r.put(memoryview(b"xmvx")[1:3])
        r.put(np.arange(4, dtype=np.uint8))
        r.put(np.arange(8, dtype=np.uint8)[::2])  # not contiguous: copied
        assert r.get() == b"ba"
        assert r.get() == b"mv"
        assert r.get() == bytes([0, 1, 2, 3])
        assert r.get() == bytes([0, 2, 4, 6])
        with pytest.raises(TypeError):
            r.put("text is not bytes")
        with pytest.raises(TypeError):
            r.put(12)


def test_try_put_try_get(name):
    with shmring.create(name, 2, slot_size=8) as r:
        assert r.try_get() is None
        assert r.try_put(b"1") is True
        assert r.try_put(b"2") is True
        assert r.try_put(b"3") is False  # full: exactly capacity messages
        assert r.try_get() == b"1"
        assert r.try_put(b"3") is True
        assert [r.try_get(), r.try_get(), r.try_get()] == [b"2", b"3", None]


@pytest.mark.parametrize("capacity", [1, 3, 5, 1000])
def test_capacity_is_exact(name, capacity):
    with shmring.create(name, capacity, slot_size=4) as r:
        n = 0
        while r.try_put(n.to_bytes(4, "little")):
            n += 1
        assert n == capacity == len(r)
        assert [int.from_bytes(r.get(), "little") for _ in range(n)] == list(range(n))


def test_array_put_get_copies(name):
    with shmring.create(name, 2, shape=(2, 3), dtype=np.int64) as r:
        a = np.arange(6).reshape(2, 3)
        r.put(a)
        r.put(np.asfortranarray(a * 2))        # not C-contiguous
        out = r.get()
        assert out.dtype == np.int64 and out.shape == (2, 3)
        assert np.array_equal(out, a)
        assert out.flags.writeable and out.flags.owndata  # an independent copy
        assert np.array_equal(r.get(), a * 2)
        assert r.try_get() is None


def test_array_non_contiguous_put(name):
    with shmring.create(name, 1, shape=(3,), dtype=np.float64) as r:
        r.put(np.arange(6, dtype=np.float64)[::2])
        assert r.get().tolist() == [0.0, 2.0, 4.0]


def test_structured_dtype_roundtrip(name):
    dt = np.dtype([("id", "<u4"), ("pos", "<f8", (3,))])
    with shmring.create(name, 2, shape=(2,), dtype=dt) as r:
        a = np.zeros(2, dt)
        a["id"] = [7, 9]
        a["pos"][1] = [1, 2, 3]
        r.put(a)
        with shmring.attach(name) as other:
            assert other.dtype == dt
            got = other.get()
        assert got["id"].tolist() == [7, 9] and got["pos"][1].tolist() == [1, 2, 3]


def test_put_many_get_many_bytes(name):
    with shmring.create(name, 4, slot_size=8) as r:
        assert r.put_many([b"a", b"bb", b"", b"dddd"]) == 4
        assert r.get_many(3) == [b"a", b"bb", b""]
        assert r.put_many([b"e", b"f"], timeout=1) == 2  # wraps around the end
        assert r.get_many(10) == [b"dddd", b"e", b"f"]


def test_put_many_partial_on_timeout(name):
    with shmring.create(name, 3, slot_size=8) as r:
        assert r.put_many([b"%d" % i for i in range(5)], timeout=0.05) == 3
        with pytest.raises(TimeoutError):
            r.put_many([b"x"], timeout=0.02)
        assert r.get_many(5) == [b"0", b"1", b"2"]


def test_put_many_get_many_array(name):
    with shmring.create(name, 5, shape=(3,), dtype=np.int32) as r:
        batch = np.arange(12, dtype=np.int32).reshape(4, 3)
        assert r.put_many(batch) == 4
        got = r.get_many(2)
        assert got.shape == (2, 3) and np.array_equal(got, batch[:2])
        assert r.put_many(batch[::-1][:3]) == 3  # non-contiguous input, wraps
        got = r.get_many(100)
        assert np.array_equal(got, np.concatenate([batch[2:], batch[::-1][:3]]))


def test_get_many_into_out(name):
    with shmring.create(name, 8, shape=(2,), dtype=np.int16) as r:
        r.put_many(np.arange(10, dtype=np.int16).reshape(5, 2))
        out = np.zeros((4, 2), np.int16)
        got = r.get_many(4, out=out)
        assert got.base is out and got.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7]]
        for bad in (np.zeros((2, 2), np.int16), np.zeros((4, 2), np.int32), np.zeros((4, 3), np.int16),
                    np.zeros((4, 2), np.int16)[::-1]):
            with pytest.raises(ValueError):
                r.get_many(4, out=bad)
        assert r.get_many(4, out=out).tolist() == [[8, 9]]


def test_get_many_blocks_then_times_out(name):
    with shmring.create(name, 2, slot_size=8) as r:
        with pytest.raises(TimeoutError):
            r.get_many(4, timeout=0.02)


def test_reserve_commit_array(name, kind):
    with shmring.create(name, 2, shape=(2, 2), dtype=np.uint16) as r:
        with r.reserve() as slot:
            assert slot.shape == (2, 2) and slot.dtype == np.uint16 and slot.flags.writeable
            slot[...] = [[1, 2], [3, 4]]
        assert len(r) == 1
        with r.recv() as view:
            assert not view.flags.writeable
            assert view.tolist() == [[1, 2], [3, 4]]
            # held, not yet released (mpmc: len counts messages no consumer claimed)
            assert len(r) == (0 if kind == "mpmc" else 1)
        assert len(r) == 0


def test_reserve_bytes_nbytes(name):
    with shmring.create(name, 4, slot_size=10) as r:
        with r.reserve(nbytes=3) as slot:
            assert slot.shape == (3,) and slot.dtype == np.uint8
            slot[:] = [7, 8, 9]
        with r.reserve() as slot:
            assert slot.shape == (10,)
            slot[:] = 1
        with r.reserve(nbytes=0):
            pass
        assert r.get() == bytes([7, 8, 9])
        with r.recv() as view:
            assert view.shape == (10,) and view.tolist() == [1] * 10
        assert r.get() == b""
        with pytest.raises(ValueError):
            r.reserve(nbytes=11)
        r.put(b"ok")  # the failed reserve left nothing open
        assert r.get() == b"ok"


def test_reserve_nbytes_on_array_ring(name):
    with shmring.create(name, 2, shape=(2,), dtype=np.int32) as r:
        with pytest.raises(shmring.ShmringError) as exc:
            r.reserve(nbytes=4)
        assert isinstance(exc.value, ValueError)
        r.put(np.array([1, 2], np.int32))  # the refused reserve left nothing open
        assert r.get().tolist() == [1, 2]


def test_exception_in_reserve_abandons(name):
    with shmring.create(name, 1, slot_size=4) as r:
        with pytest.raises(ZeroDivisionError):
            with r.reserve() as slot:
                slot[:] = 9
                1 / 0
        assert r.try_get() is None and len(r) == 0  # nothing half-written is seen
        r.put(b"next")
        assert r.get() == b"next"


def test_recv_exception_still_releases(name):
    with shmring.create(name, 2, slot_size=4) as r:
        r.put_many([b"a", b"b"])
        with pytest.raises(KeyError):
            with r.recv():
                raise KeyError
        assert r.get() == b"b"


def test_get_while_recv_open_is_an_error(name):
    with shmring.create(name, 2, slot_size=4) as r:
        r.put_many([b"a", b"b"])
        with r.recv() as v:
            with pytest.raises(shmring.ShmringError):
                r.get()
            assert v.tobytes() == b"a"
        with r.reserve():
            with pytest.raises(shmring.ShmringError):
                r.put(b"c")
        assert r.get() == b"b"


def test_iteration_stops_after_shutdown_and_drain(name):
    with shmring.create(name, 8, slot_size=4) as r:
        r.put_many([b"1", b"2", b"3"])
        r.shutdown()
        assert list(r) == [b"1", b"2", b"3"]
        assert list(r) == []


def test_shutdown_semantics(name):
    with shmring.create(name, 4, slot_size=4) as r, shmring.attach(name) as reader:
        r.put(b"last")
        reader.shutdown()  # from any handle
        with pytest.raises(BrokenPipeError):
            r.put(b"x")
        with pytest.raises(BrokenPipeError):
            r.try_put(b"x")
        with pytest.raises(BrokenPipeError):
            r.put_many([b"x"])
        with pytest.raises(BrokenPipeError):
            r.reserve()
        assert reader.info()["shut_down"] is True
        assert reader.get() == b"last"
        for call in (reader.get, reader.try_get, lambda: reader.get_many(3), reader.recv):
            with pytest.raises(EOFError):
                call()


def test_info_fields(name, kind):
    with shmring.create(name, 6, shape=(3,), dtype=np.float64) as r:
        r.put(np.zeros(3))
        info = r.info()
        for key in ("name", "kind", "capacity", "slot_size", "shape", "dtype", "size_bytes",
                    "backing", "page_size", "length", "shut_down", "pids"):
            assert key in info
        assert info["length"] == 1 and info["capacity"] == 6 and info["shape"] == (3,)
        assert info["dtype"] == "float64" and info["backing"] == "shm" and info["page_size"] >= 4096
        assert info["size_bytes"] >= 6 * 24 and os.getpid() in info["pids"]
        if kind == "spsc":
            assert info["producer_pid"] == os.getpid()  # the put claimed the role
            assert info["consumer_pid"] is None


def test_attach_reads_geometry(name, kind):
    with shmring.create(name, 5, shape=(2, 3), dtype="<f4") as r:
        with shmring.attach(name) as a:
            assert (a.kind, a.capacity, a.shape, a.dtype, a.slot_size) == (kind, 5, (2, 3), np.float32, 24)
            r.put(np.full((2, 3), 1.5, np.float32))
            assert a.get().tolist() == [[1.5] * 3] * 2


def test_unlink_keeps_mapped_handles_working(name):
    r = shmring.create(name, 2, slot_size=4)
    a = shmring.attach(name)
    shmring.unlink(name)
    with pytest.raises(FileNotFoundError):
        shmring.attach(name)
    r.put(b"hi")
    assert a.get() == b"hi"
    r.close()
    a.close()
    with pytest.raises(FileNotFoundError):
        shmring.unlink(name)


def test_ring_unlink_method(name):
    with shmring.create(name, 2, slot_size=4) as r:
        r.unlink()
        assert not os.path.exists(shm_path(name))


def test_close_is_idempotent_and_final(name):
    r = shmring.create(name, 2, slot_size=4)
    r.close()
    r.close()
    for call in (lambda: r.put(b"x"), r.get, r.try_get, lambda: r.try_put(b"x"), r.reserve,
                 r.recv, lambda: len(r), r.info, r.shutdown, lambda: r.get_many(1),
                 lambda: r.put_many([b"x"])):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_close_releases_roles(name):
    r = shmring.create(name, 2, slot_size=4)
    r.put(b"a")
    r.close()
    with shmring.attach(name) as other:
        other.put(b"b")  # the producer role is free again
        assert other.get() == b"a"


def test_pickle_by_name(name):
    with shmring.create(name, 2, slot_size=4) as r:
        blob = pickle.dumps(r)
        assert name.encode() in blob and len(blob) < 200  # no memory contents, just the name
        with pickle.loads(blob) as clone:
            r.put(b"p")
            assert clone.get() == b"p"


def test_repr(name, kind):
    with shmring.create(name, 2, slot_size=4) as r:
        assert name in repr(r) and kind in repr(r)
    assert "closed" in repr(r)


def test_timeouts(name):
    import time
    with shmring.create(name, 1, slot_size=4) as r:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            r.get(timeout=0.1)
        assert 0.09 <= time.monotonic() - t0 < 1.0
        r.put(b"x")
        with pytest.raises(TimeoutError):
            r.put(b"y", timeout=0.05)
        with pytest.raises(TimeoutError):
            r.reserve(timeout=0)
        assert r.get(timeout=0) == b"x"
        with pytest.raises(TimeoutError):
            r.recv(timeout=0.01)


def test_one_handle_both_roles_many_wraps(name):
    with shmring.create(name, 3, slot_size=8) as r:
        for i in range(10_000):
            r.put(i.to_bytes(8, "little"))
            assert int.from_bytes(r.get(), "little") == i


def test_large_byte_messages_take_the_in_place_path(name):
    size = 1 << 17  # larger than the staging buffer
    with shmring.create(name, 2, slot_size=size) as r:
        msg = os.urandom(size)
        r.put(msg)
        r.put(msg[:5])
        assert r.get() == msg
        assert r.try_get() == msg[:5]
        assert r.try_get() is None


def test_import_starts_no_threads():
    import subprocess
    import sys
    out = subprocess.run(
        [sys.executable, "-c", "import threading, shmring; print(threading.active_count())"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert out.strip() == "1"
