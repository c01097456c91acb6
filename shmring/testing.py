"""Helpers for testing code that uses shmring (shipped, like iceoryx2's testing module)."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from . import _hugepages
from ._hugepages import RingFile, ring_files

SHM_DIR = "/dev/shm"
PREFIX = "shmring."

__all__ = ["HugePageHost", "RingFile", "check_payload", "huge_pages", "payload", "ring_files", "private_mounts",
           "ring_path", "segments", "set_nr_hugepages", "unique_name"]


def unique_name(tag: str = "t") -> str:
    """A ring name no other process or test run will pick."""
    return f"{tag}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def segments() -> set[str]:
    """Names of the rings present now: in /dev/shm (memfd-hugetlb stubs included)
    and in every hugetlbfs directory ($SHMRING_HUGETLBFS and the mounts)."""
    return {name for name, _ in _hugepages.ring_paths()}


def ring_path(name: str) -> str | None:
    """The file attach would open for this name, or None."""
    return next((path for n, path in _hugepages.ring_paths() if n == name), None)


def payload(producer: int, seq: int, size: int) -> bytes:
    """A self-verifying message: producer id, sequence, filler, crc32 (size >= 16)."""
    head = producer.to_bytes(4, "little") + seq.to_bytes(8, "little")
    fill = bytes((seq + i) & 0xFF for i in range(size - 16)) if size > 16 else b""
    body = head + fill
    return body + zlib.crc32(body).to_bytes(4, "little")


def check_payload(msg: bytes) -> tuple[int, int]:
    """(producer, seq) of a message made by payload(); ValueError if corrupted."""
    body, crc = msg[:-4], int.from_bytes(msg[-4:], "little")
    if len(msg) < 16 or zlib.crc32(body) != crc:
        raise ValueError(f"corrupted message of {len(msg)} bytes")
    return int.from_bytes(body[:4], "little"), int.from_bytes(body[4:12], "little")


# -- huge pages on a test host ------------------------------------------------------
NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
HUGE_PAGES_LOCK = "/tmp/shmring-huge-pages.lock"
_CLONE_NEWNS = 0x00020000
_MS_REC, _MS_PRIVATE, _MNT_DETACH = 0x4000, 0x40000, 2


class HugePageHost(NamedTuple):
    """What huge_pages() set up: a hugetlbfs directory and its page size."""

    dir: str
    page_size: int
    mounted: bool      # a temporary mount made for this block
    reserved: int      # pages added to vm.nr_hugepages for this block


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _call(rc: int, what: str) -> None:
    import ctypes

    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read())


def _write_int(path: str, value: int) -> None:
    with open(path, "w") as f:
        f.write(f"{value}\n")


def set_nr_hugepages(n: int) -> int:
    """Ask the kernel for a pool of n default-size huge pages; returns what it gave
    (fewer when memory is fragmented).  Root only."""
    _write_int(NR_HUGEPAGES, n)
    return _read_int(NR_HUGEPAGES)


@contextlib.contextmanager
def private_mounts() -> Iterator[Callable[[str, str, str], None]]:
    """Run the block in a private mount namespace of the calling thread (root only).

    Yields mount(fstype, target, options).  The mounts are seen by this thread and
    the processes it starts, by nothing else on the host, and never propagate
    back; at the end they are unmounted (detached if something still maps a
    file there) and the thread returns to its namespace.
    """
    libc = _libc()
    made: list[bytes] = []
    ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _call(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        try:
            _call(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "mount --make-rprivate /")

            def mount(fstype: str, target: str, options: str = "") -> None:
                _call(libc.mount(fstype.encode(), target.encode(), fstype.encode(), 0, options.encode() or None),
                      f"mount -t {fstype} -o {options!r} {target}")
                made.append(target.encode())

            yield mount
        finally:
            for target in reversed(made):
                if libc.umount2(target, 0) != 0:
                    _call(libc.umount2(target, _MNT_DETACH), f"umount -l {target.decode()}")
            _call(libc.setns(ns, _CLONE_NEWNS), "setns back to the original mount namespace")
    finally:
        os.close(ns)


@contextlib.contextmanager
def huge_pages(pages: int) -> Iterator[HugePageHost]:
    """As root: at least `pages` free huge pages and a writable hugetlbfs directory
    for the block, and the host exactly as it was afterwards, also on failure.

    vm.nr_hugepages is raised only as far as needed, and put back.  If no
    hugetlbfs mount is usable, one is made on a temporary directory inside
    private_mounts(): this process and the processes it starts see it, nothing
    else on the host does (other processes' rings never land in it).
    """
    if os.geteuid() != 0:
        raise PermissionError("huge_pages() needs root: it sets vm.nr_hugepages and mounts hugetlbfs")
    with _host_lock():
        saved = _read_int(NR_HUGEPAGES)
        try:
            have = _hugepages.pool()
            short = pages - (have.free - have.reserved)
            if short > 0:
                got = set_nr_hugepages(have.total + short)
                if got < have.total + short:
                    raise OSError(errno.ENOMEM, f"the kernel reserved {got} of {have.total + short} huge pages "
                                                "(memory too fragmented)")
            dirs = [d for d in _hugepages.hugetlbfs_dirs() if os.access(d, os.W_OK | os.X_OK)]
            if dirs:
                yield HugePageHost(dirs[0], _hugepages.hugetlbfs_page_size(dirs[0]), False, max(short, 0))
                return
            with contextlib.ExitStack() as stack:
                tmp = tempfile.mkdtemp(prefix="shmring-hugetlbfs-")
                stack.callback(os.rmdir, tmp)
                mount = stack.enter_context(private_mounts())
                mount("hugetlbfs", tmp, "mode=1777")
                yield HugePageHost(tmp, _hugepages.hugetlbfs_page_size(tmp), True, max(short, 0))
        finally:
            if _read_int(NR_HUGEPAGES) != saved:
                set_nr_hugepages(saved)


@contextlib.contextmanager
def no_free_huge_pages() -> Iterator[None]:
    """vm.nr_hugepages = 0 for the block (root), then as it was, also on failure."""
    with _host_lock():
        saved = _read_int(NR_HUGEPAGES)
        set_nr_hugepages(0)
        try:
            yield
        finally:
            set_nr_hugepages(saved)


_lock_depth = 0


@contextlib.contextmanager
def _host_lock() -> Iterator[None]:
    """vm.nr_hugepages is one number for the host: two processes changing it at once
    (a test run and a benchmark, say) would put it back under each other's feet, so
    they queue on a lock file.  Reentrant within a process."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    with open(HUGE_PAGES_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
