"""What the host offers in huge pages, and why a ring did not get them.

The mechanism is in csrc/hugepages.c and csrc/segment.c; this module only reads
the host's state to explain a fallback (info()["fallback"]) or a failed
hugepages="require" in words a user can act on.
"""
from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

from ._lib import ffi, lib  # type: ignore[import-not-found]

SHM_DIR = "/dev/shm"
PREFIX = "shmring."
NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"


class Pool(NamedTuple):
    """The default-size huge page pool (/proc/meminfo)."""

    total: int
    free: int
    reserved: int   # promised to mappings, not yet faulted in: not free for a new ring
    page_size: int  # bytes


class RingFile(NamedTuple):
    """One ring's file: its name, where it is, and what memory it has."""

    name: str
    path: str
    backing: str  # "hugetlbfs", "memfd-hugetlb", "thp", "shm", or "?" when unreadable


def pool() -> Pool:
    fields: dict[str, int] = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.startswith("HugePages_") or key == "Hugepagesize":
                fields[key] = int(value.split()[0])
    return Pool(fields.get("HugePages_Total", 0), fields.get("HugePages_Free", 0),
                fields.get("HugePages_Rsvd", 0), fields.get("Hugepagesize", 2048) * 1024)


def search_dirs(hugetlbfs: str | None = None) -> list[str]:
    """Where rings may be: /dev/shm, then hugetlbfs directories (`hugetlbfs`,
    $SHMRING_HUGETLBFS, the mounts in /proc/mounts), in attach's order."""
    buf = ffi.new("char[]", 8 * 520)
    n = lib.shmring_search_dirs(hugetlbfs.encode() if hugetlbfs else ffi.NULL, buf, len(buf))
    if n < 0:
        return [SHM_DIR]
    return [d.decode() for d in ffi.unpack(buf, len(buf)).split(b"\0")[:n]]


def hugetlbfs_page_size(path: str) -> int:
    """The huge page size of the hugetlbfs directory path (0: not on hugetlbfs)."""
    buf = ffi.new("char[]", 8 * 520)
    if lib.shmring_search_dirs(os.fsencode(path), buf, len(buf)) < 0:
        return 0
    return os.statvfs(path).f_bsize


def hugetlbfs_dirs(hugetlbfs: str | None = None) -> list[str]:
    return [d for d in search_dirs(hugetlbfs) if d != SHM_DIR]


def probe(path: str) -> str:
    """The backing of the ring file at path ("?" if it cannot be read)."""
    out = ffi.new("char[16]")
    return ffi.string(out).decode() if lib.shmring_probe(path.encode(), out, 16) >= 0 else "?"


def ring_paths(hugetlbfs: str | None = None) -> list[tuple[str, str]]:
    """(name, path) of every ring file on the host: /dev/shm (rings and memfd stubs)
    and hugetlbfs, in attach's order."""
    found = []
    for d in search_dirs(hugetlbfs):
        try:
            entries = sorted(os.listdir(d))
        except OSError:
            continue
        found += [(f[len(PREFIX):], os.path.join(d, f)) for f in entries
                  if f.startswith(PREFIX) and len(f) > len(PREFIX)]
    return found


def ring_files(hugetlbfs: str | None = None) -> list[RingFile]:
    """ring_paths() with each file's backing."""
    return [RingFile(name, path, probe(path)) for name, path in ring_paths(hugetlbfs)]


def _nr_hugepages() -> str:
    try:
        with open(NR_HUGEPAGES) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _thp_words(nbytes: int, backing: str) -> str:
    if backing == "thp":
        return "transparent huge pages instead (best effort: the kernel may split them later)"
    if not lib.shmring_thp_allowed():
        return ("no transparent huge pages for /dev/shm files (the /dev/shm mount has no "
                "huge=always|within_size|advise and shmem_enabled is not 'force')")
    if nbytes < 2 << 20:
        return "transparent huge pages not tried: the ring is smaller than one huge page"
    return "transparent huge pages were allowed, but the kernel gave 4 KiB pages (no free 2 MiB blocks)"


def explain(nbytes: int, hugetlbfs: Any, backing: str | None) -> str:
    """Why a ring of nbytes did not get hugetlb pages (backing: what it got, or None
    when create failed), naming what is missing."""
    parts = []
    p = pool()
    need = math.ceil(nbytes / p.page_size)
    env = os.environ.get("SHMRING_HUGETLBFS")
    if backing in ("shm", "thp") and nbytes < p.page_size:
        return (f"the ring ({math.ceil(nbytes / 1024)} KiB) is smaller than one huge page "
                f"({p.page_size >> 10} kB): 'auto' keeps it on 4 KiB pages; hugepages='require' forces one")
    if hugetlbfs == "" or hugetlbfs is False:
        parts.append("no hugetlbfs directory was asked for (hugetlbfs=False)")
    else:
        dirs = [hugetlbfs] if hugetlbfs else hugetlbfs_dirs()
        if not dirs:
            bad_env = f"; SHMRING_HUGETLBFS={env!r} is not on hugetlbfs" if env else ""
            parts.append("no hugetlbfs mount (none in /proc/mounts" + bad_env +
                         "): as root, mount -t hugetlbfs none /dev/hugepages, or set SHMRING_HUGETLBFS")
        for d in dirs:
            if not os.access(d, os.W_OK | os.X_OK):
                parts.append(f"the hugetlbfs mount {d} is not writable by this user (uid {os.geteuid()})")
    if backing != "memfd-hugetlb" and p.free - p.reserved < need:
        parts.append(
            f"the ring needs {need} huge page{'s' if need != 1 else ''} of {p.page_size >> 10} kB and "
            f"{max(p.free - p.reserved, 0)} of the pool's {p.total} are free "
            f"(vm.nr_hugepages = {_nr_hugepages()}; as root: "
            f"echo {p.total + need - max(p.free - p.reserved, 0)} > {NR_HUGEPAGES})")
    if backing == "memfd-hugetlb":
        parts.append("so the ring is anonymous huge memory (memfd-hugetlb): attach by name works only "
                     "while this process holds it, or pass ring.fileno() over a Unix socket")
    elif backing in ("shm", "thp"):
        parts.append(_thp_words(nbytes, backing))
    return "; ".join(parts)
