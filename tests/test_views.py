"""The lifetime of numpy views into slots: the documented behaviour, pinned.

The rule (README, "Zero-copy views"): a reserve() view is writable only inside
its block and becomes read-only when the block ends, so a late write raises;
a recv() view is valid only inside its block, and afterwards may show newer
data (the slot is reused).  Either way the memory stays mapped while any view
exists: a view kept too long is a logic bug, never a crash.
"""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import shmring


def test_reserve_view_read_only_after_block(name):
    with shmring.create(name, 2, shape=(4,), dtype=np.int32) as r:
        with r.reserve() as slot:
            slot[:] = 1
        with pytest.raises(ValueError, match="read-only"):
            slot[:] = 2  # detected: the write would land in a published slot
        assert r.get().tolist() == [1, 1, 1, 1]


def test_recv_view_is_read_only(name):
    with shmring.create(name, 2, slot_size=8) as r:
        r.put(b"abc")
        with r.recv() as view:
            with pytest.raises(ValueError):
                view[0] = 1
            with pytest.raises(ValueError):
                view.flags.writeable = True  # its base is read-only too


def test_stale_recv_view_shows_newer_data(name):
    """A recv() view kept past its block sees the slot being reused (iceoryx2 iox2-1548)."""
    with shmring.create(name, 1, shape=(2,), dtype=np.uint64) as r:
        r.put(np.array([111, 111], np.uint64))
        with r.recv() as view:
            kept = view
            assert kept.tolist() == [111, 111]
        r.put(np.array([222, 222], np.uint64))  # capacity 1: the same slot
        assert kept.tolist() == [222, 222]       # documented: stale views change
        assert r.get().tolist() == [222, 222]


def test_get_returns_independent_copies(name):
    """What get() returns never changes when the slot is reused."""
    with shmring.create(name, 1, shape=(2,), dtype=np.uint64) as r, \
            shmring.create(name + "b", 1, slot_size=8) as b:
        r.put(np.array([1, 1], np.uint64))
        got = r.get()
        r.put(np.array([2, 2], np.uint64))
        assert got.tolist() == [1, 1]
        got[0] = 9  # writable and ours
        assert r.get().tolist() == [2, 2]
        b.put(b"first")
        first = b.get()
        b.put(b"second")
        assert first == b"first" and b.get() == b"second"
        b.unlink()


def test_views_outlive_close_and_handle(name):
    r = shmring.create(name, 2, shape=(3,), dtype=np.float64)
    r.put(np.array([1.0, 2.0, 3.0]))
    with r.recv() as view:
        kept = view
    ref = weakref.ref(r)
    r.close()
    assert kept.sum() == 6.0  # still mapped after close()
    del r
    gc.collect()
    assert ref() is None       # the handle is gone ...
    assert kept.sum() == 6.0   # ... the mapping lives as long as a view does
    kept[...]  # noqa: B018  reading it all is safe


def test_mapping_released_when_last_view_dies(name):
    import os
    r = shmring.create(name, 2, slot_size=1 << 16)
    with r.reserve() as slot:
        slot[:] = 7
    maps_before = open(f"/proc/{os.getpid()}/maps").read().count(f"shmring.{name}")
    assert maps_before == 1
    r.close()
    del r, slot
    gc.collect()
    assert open(f"/proc/{os.getpid()}/maps").read().count(f"shmring.{name}") == 0  # unmapped: no leak


def test_views_are_zero_copy(name):
    """A reserve() view is the shared memory itself: another handle sees the bytes in place."""
    with shmring.create(name, 1, shape=(8,), dtype=np.uint8) as r, shmring.attach(name) as a:
        with r.reserve() as slot:
            slot[:] = np.arange(8)
            address = slot.__array_interface__["data"][0]
        with a.recv() as view:
            assert view.__array_interface__["data"][0] % 64 == 0  # slot payloads are 64-byte aligned
            assert view.tolist() == list(range(8))
        assert address % 64 == 0
