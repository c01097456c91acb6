"""The Python surface: Ring, create, attach, unlink.

A Ring is a thin class over one C handle (csrc/shmring.h).  Two subclasses pick
the message form once, at attach, so the hot paths test nothing per call:
ByteRing (messages are bytes of up to slot_size) and ArrayRing (every message
is one array of a fixed shape and dtype).

Zero copy: at attach, one numpy array is laid over every slot of the mapping
(shape (capacity, *shape), stride = the slot stride).  reserve() and recv()
hand out `slots[i]`, a view that costs one numpy index, not a new buffer.

Lifetime: the mapping is unmapped only when the Ring *and every view into it*
are gone (views hold the buffer that holds the mapping), so a view kept too
long shows stale or newer data but never touches unmapped memory.  close()
gives up the handle's roles at once; further calls raise RingClosed.
"""
from __future__ import annotations

import ast
import asyncio
import errno
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, NoReturn, Self, Union

import numpy as np

from . import _errors as E
from . import _hugepages
from ._lib import ffi, lib  # type: ignore[import-not-found]

_KINDS = {"spsc": lib.SHMRING_SPSC, "mpmc": lib.SHMRING_MPMC, "locked": lib.SHMRING_LOCKED}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_HUGEPAGES = {"auto": lib.SHMRING_HUGE_AUTO, "require": lib.SHMRING_HUGE_REQUIRE, "off": lib.SHMRING_HUGE_OFF}
_MAX_NAME = 200
_MAX_CAPACITY = 1 << 31
_MAX_NDIM = 8
_SLICE_NS = 100_000_000  # one wait slice: signals (Ctrl+C) are handled between slices
DEFAULT_SPIN_NS = 20_000  # ~ one futex wake-up here; csrc/ring.c sets the same

_EAGAIN = -errno.EAGAIN
_E2BIG = -errno.E2BIG
_ETIMEDOUT = -errno.ETIMEDOUT
_EINTR = -errno.EINTR

# Hot-path functions, bound once.
_try_put = lib.shmring_try_put
_try_put_many = lib.shmring_try_put_many
_try_reserve = lib.shmring_try_reserve
_commit = lib.shmring_commit
_abandon = lib.shmring_abandon
_try_get_staged = lib.shmring_try_get_staged
_get_staged = lib.shmring_get_staged  # tries, spins spin_ns, tries again
_put_spin = lib.shmring_put
_try_get_many = lib.shmring_try_get_many
_try_front = lib.shmring_try_front
_release = lib.shmring_release
_unpack = ffi.unpack
_from_buffer = ffi.from_buffer

Timeout = Union[float, int, None]


def _fail(rc: int, what: str) -> NoReturn:
    E.raise_for(rc, what, ffi.string(lib.shmring_strerror(rc)).decode())


def _check_name(name: object) -> bytes:
    if not isinstance(name, str):
        raise E.InvalidType(f"ring name must be a str, not {type(name).__name__}")
    if not 1 <= len(name) <= _MAX_NAME or "/" in name or "\0" in name:
        raise E.InvalidArgument(
            f"bad ring name {name!r}: 1-{_MAX_NAME} characters, no '/' and no NUL"
        )
    return name.encode()


def _check_int(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise E.InvalidType(f"{what} must be an int, not {type(value).__name__}")
    if not lo <= int(value) <= hi:
        raise E.InvalidArgument(f"{what} must be in [{lo}, {hi}], got {value}")
    return int(value)


def _check_choice(value: object, what: str, choices: dict[str, int]) -> int:
    if value not in choices:
        raise E.InvalidArgument(f"{what} must be one of {sorted(choices)}, got {value!r}")
    return choices[value]


def _check_timeout(timeout: Timeout) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise E.InvalidType(f"timeout must be a number or None, not {type(timeout).__name__}")
    if math.isnan(timeout) or timeout < 0:
        raise E.InvalidArgument(f"timeout must be >= 0, got {timeout}")
    return time.monotonic() + timeout


def _dtype_descr(dtype: np.dtype) -> str:
    return repr(np.lib.format.dtype_to_descr(dtype))


def _parse_dtype(descr: str) -> np.dtype:
    return np.dtype(np.lib.format.descr_to_dtype(ast.literal_eval(descr)))


def _array_spec(shape: object, dtype: Any) -> tuple[tuple[int, ...], np.dtype, int]:
    if shape is None or dtype is None:
        raise E.InvalidArgument("an array ring needs both shape and dtype")
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise E.InvalidType(f"shape must be an int or a tuple of ints, not {type(shape).__name__}")
    dims = tuple(_check_int(d, "shape dimension", 1, 1 << 40) for d in shape)
    if not 1 <= len(dims) <= _MAX_NDIM:
        raise E.InvalidArgument(f"shape must have 1 to {_MAX_NDIM} dimensions, got {len(dims)}")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise E.InvalidType(f"not a numpy dtype: {dtype!r} ({exc})") from None
    if dt.hasobject:
        raise E.InvalidArgument(f"dtype {dt} holds Python objects; shared memory needs plain data")
    if dt.itemsize == 0:
        raise E.InvalidArgument(f"dtype {dt} has no size")
    return dims, dt, dt.itemsize * math.prod(dims)


def _check_dir(hugetlbfs: object, for_create: bool = False) -> Any:
    """The C string for a hugetlbfs= argument: NULL (the usual places), a path, or
    for create, "" (hugetlbfs=False: no mount)."""
    if hugetlbfs is None:
        return ffi.NULL
    if hugetlbfs is False:
        return ffi.new("char[]", b"") if for_create else ffi.NULL
    if isinstance(hugetlbfs, (str, os.PathLike)) and not isinstance(hugetlbfs, bool):
        path = os.fsencode(hugetlbfs)
        if b"\0" not in path and 0 < len(path) < 500:
            return ffi.new("char[]", path)
    raise E.InvalidType(f"hugetlbfs must be a directory path, False or None, not {hugetlbfs!r}")


def create(
    name: str,
    capacity: int,
    *,
    slot_size: int | None = None,
    shape: int | tuple[int, ...] | None = None,
    dtype: Any = None,
    kind: Literal["spsc", "mpmc", "locked"] = "spsc",
    hugepages: Literal["auto", "require", "off"] = "auto",
    mode: int = 0o600,
    hugetlbfs: str | os.PathLike[str] | Literal[False] | None = None,
) -> Ring:
    """Create a new ring; FileExistsError if the name exists.

    Give either slot_size (a byte ring) or shape and dtype (an array ring).

    hugepages: "auto" takes the best of hugetlbfs (a file in a hugetlbfs mount),
    transparent huge pages (rings of 2 MiB or more, where /dev/shm allows them)
    and 4 KiB pages, silently; info() says what it got and, in "fallback", why
    not better.  "require" takes hugetlb pages or raises, naming what is missing:
    a hugetlbfs mount, else (no usable mount) anonymous memfd-hugetlb memory,
    which others attach by name only while this process holds the ring.
    "off": 4 KiB pages.  hugetlbfs: the directory to create in (default:
    $SHMRING_HUGETLBFS, then any hugetlbfs mount); False: no mount (memfd).
    """
    cname = _check_name(name)
    cap = _check_int(capacity, "capacity", 1, _MAX_CAPACITY)
    kind_id = _check_choice(kind, "kind", _KINDS)
    huge_id = _check_choice(hugepages, "hugepages", _HUGEPAGES)
    mode = _check_int(mode, "mode", 0, 0o777)
    p = ffi.new("struct shmring_params *")
    cdir = _check_dir(hugetlbfs, for_create=True)
    p.hugetlbfs = cdir
    keep = None
    if slot_size is not None:
        if shape is not None or dtype is not None:
            raise E.InvalidArgument("give either slot_size (a byte ring) or shape and dtype, not both")
        p.slot_size = _check_int(slot_size, "slot_size", 1, 1 << 40)
    else:
        if shape is None and dtype is None:
            raise E.InvalidArgument("give slot_size (a byte ring) or shape and dtype (an array ring)")
        dims, dt, nbytes = _array_spec(shape, dtype)
        p.slot_size = nbytes
        p.ndim = len(dims)
        for i, d in enumerate(dims):
            p.shape[i] = d
        keep = ffi.new("char[]", _dtype_descr(dt).encode())
        p.dtype = keep
    p.kind, p.hugepages, p.capacity, p.mode = kind_id, huge_id, cap, mode
    out = ffi.new("shmring_t **")
    rc = lib.shmring_create(cname, p, out)
    if rc == -errno.ENOTSUP:
        raise E.InvalidArgument(f"create {name!r}: kind {kind!r} is not available in this version")
    if rc == -errno.ENAMETOOLONG:
        raise E.InvalidArgument(f"create {name!r}: dtype {dtype!r} is too complex to describe in the header")
    if rc == -errno.E2BIG:
        raise E.InvalidArgument(f"create {name!r}: capacity x slot size is too large")
    if rc == -errno.EMEDIUMTYPE:
        raise E.InvalidArgument(f"create {name!r}: hugetlbfs={os.fsdecode(ffi.string(cdir))!r} is not a hugetlbfs directory")
    if rc < 0 and rc != -errno.EEXIST and huge_id == _HUGEPAGES["require"]:
        why = _hugepages.explain(lib.shmring_segment_bytes(p), hugetlbfs, None)
        cls = E.RingPermissionError if rc in (-errno.EACCES, -errno.EPERM) else E.RingOSError
        raise cls(-rc, f"create {name!r}: hugepages='require' but no huge pages can be had "
                       f"({os.strerror(-rc)}): {why or 'the kernel refused them'}")
    if rc < 0:
        _fail(rc, f"create {name!r}")
    ring = _wrap(out[0], name)
    ring._hugetlbfs = os.fsdecode(hugetlbfs) if hugetlbfs else None
    if huge_id != _HUGEPAGES["off"] and ring._backing != "hugetlbfs":
        ring._fallback = _hugepages.explain(lib.shmring_segment_bytes(p), hugetlbfs, ring._backing)
    return ring


def _attached(rc: int, out: Any, name: str, what: str) -> Ring:
    """The Ring for a shmring_attach*() result, or its error."""
    if rc == -errno.ENOENT:
        raise E.RingNotFound(errno.ENOENT, f"no ring named {name!r}")
    if rc == -errno.EAGAIN:
        raise E.RingIncompatible(f"ring {name!r} was never initialised (its creator may have died creating it)")
    if rc == -errno.ENOTSUP:
        raise E.RingIncompatible(f"ring {name!r} is of a kind this version does not support")
    if rc == -errno.EOWNERDEAD:
        raise E.PeerDied(f"ring {name!r} is anonymous huge memory (memfd-hugetlb) and the process that "
                         f"created it no longer holds it: nothing can attach by name; unlink it")
    if rc == -errno.EMEDIUMTYPE:
        raise E.InvalidArgument(f"{what}: hugetlbfs is not a hugetlbfs directory")
    if rc < 0:
        _fail(rc, what)
    return _wrap(out[0], name)


def attach(name: str, *, any_owner: bool = False, observe: bool = False,
           hugetlbfs: str | os.PathLike[str] | None = None) -> Ring:
    """Attach to an existing ring by name; kind, geometry and dtype come from its header.

    The ring is looked for in /dev/shm, then in `hugetlbfs` (a directory, needed
    only if the creator used one that is not a mount point), $SHMRING_HUGETLBFS
    and every hugetlbfs mount.  A segment owned by another user is refused
    (PermissionError) unless any_owner=True.  observe=True attaches only to look
    (info(), len()): the handle is not recorded among the ring's attached
    processes, so it never makes a ring look live (`ls` uses it).
    """
    cname = _check_name(name)
    out = ffi.new("shmring_t **")
    flags = (lib.SHMRING_ATTACH_ANY_OWNER if any_owner else 0) | (lib.SHMRING_ATTACH_OBSERVE if observe else 0)
    rc = lib.shmring_attach_at(cname, _check_dir(hugetlbfs), flags, out)
    ring = _attached(rc, out, name, f"attach {name!r}")
    ring._hugetlbfs = os.fsdecode(hugetlbfs) if hugetlbfs else None
    return ring


def attach_fd(fd: int, *, any_owner: bool = False, name: str | None = None) -> Ring:
    """Attach through a descriptor of a ring's memory, e.g. a memfd-hugetlb ring's
    `ring.fileno()` received over a Unix socket (socket.recv_fds, SCM_RIGHTS), or
    os.open(f"/proc/{pid}/fd/{n}", os.O_RDWR).  fd stays the caller's to close.
    The ring's name is read from the descriptor unless given."""
    fd = _check_int(fd, "fd", 0, 1 << 31)
    out = ffi.new("shmring_t **")
    rc = lib.shmring_attach_fd(fd, lib.SHMRING_ATTACH_ANY_OWNER if any_owner else 0, out)
    if name is None:
        name = _name_of_fd(fd)
    return _attached(rc, out, name, f"attach fd {fd}")


def _name_of_fd(fd: int) -> str:
    """The ring name in a descriptor's file name: /memfd:shmring.N (deleted) or .../shmring.N."""
    try:
        link = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd{fd}"
    base = link.rpartition("/")[2].removesuffix(" (deleted)").removeprefix("memfd:")
    return base.removeprefix(_hugepages.PREFIX) if base.startswith(_hugepages.PREFIX) else link


def unlink(name: str, *, hugetlbfs: str | os.PathLike[str] | None = None) -> None:
    """Remove a ring's name (wherever attach would find it); mapped handles keep working."""
    rc = lib.shmring_unlink_at(_check_name(name), _check_dir(hugetlbfs))
    if rc == -errno.ENOENT:
        raise E.RingNotFound(errno.ENOENT, f"no ring named {name!r}")
    if rc == -errno.EMEDIUMTYPE:
        raise E.InvalidArgument(f"unlink {name!r}: hugetlbfs is not a hugetlbfs directory")
    if rc < 0:
        _fail(rc, f"unlink {name!r}")


def _reattach(name: str, hugetlbfs: str | None) -> Ring:
    return attach(name, hugetlbfs=hugetlbfs)


def _wrap(h: Any, name: str) -> Ring:
    info = ffi.new("struct shmring_info *")
    lib.shmring_info(h, info)
    # The mapping lives until this cdata is collected; every view holds it.
    mem = ffi.gc(ffi.cast("char *", lib.shmring_base(h)), lambda _p, h=h: lib.shmring_free(h))
    try:
        cls: type[Ring] = ArrayRing if info.is_array else ByteRing
        return cls(h, mem, info, name)
    except BaseException:
        lib.shmring_close(h)
        raise


class _ReadOnlyMemory:
    """Exports the slots read-only through __array_interface__.

    A read-only memoryview would not do: numpy looks through it to the writable
    cffi buffer and lets anyone set flags.writeable = True again.  Holding `mem`
    keeps the mapping alive as long as any recv() view exists.
    """

    def __init__(self, mem: Any, offset: int, shape: tuple[int, ...], dtype: np.dtype,
                 strides: tuple[int, ...]) -> None:
        self._mem = mem
        self.__array_interface__ = {
            "version": 3, "shape": shape, "typestr": dtype.str, "descr": dtype.descr,
            "strides": strides, "data": (int(ffi.cast("uintptr_t", mem)) + offset, True),
        }


class _Reservation:
    """Context of ring.reserve(): the view is published at the end of the block."""

    __slots__ = ("_h", "_view", "_nbytes")

    def __init__(self, h: Any) -> None:
        self._h = h
        self._view: Any = None
        self._nbytes = 0

    def __enter__(self) -> np.ndarray:
        return self._view  # type: ignore[no-any-return]

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        view, self._view = self._view, None
        if view is None:
            raise E.RingStateError("this reservation was already used")
        view.flags.writeable = False  # a write after the block now raises
        if exc_type is None:
            rc = _commit(self._h, self._nbytes)
        else:
            rc = _abandon(self._h)  # nothing half-written is ever seen
        if rc < 0:
            _fail(rc, "commit")


class _Received:
    """Context of ring.recv(): the slot is released at the end of the block."""

    __slots__ = ("_h", "_view")

    def __init__(self, h: Any) -> None:
        self._h = h
        self._view: Any = None

    def __enter__(self) -> np.ndarray:
        return self._view  # type: ignore[no-any-return]

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._view is None:
            raise E.RingStateError("this received slot was already released")
        self._view = None
        rc = _release(self._h)
        if rc < 0:
            _fail(rc, "release")


class Ring:
    """One handle onto a named ring.  Use shmring.create() or shmring.attach().

    A handle serves one thread at a time; give each thread or process its own.
    """

    _shape: tuple[int, ...] | None
    _dtype: np.dtype | None

    def __init__(self, h: Any, mem: Any, info: Any, name: str) -> None:
        self._h = h
        self._mem = mem
        self._name = name
        self._kind = _KIND_NAMES.get(info.kind, "?")
        self._capacity = int(info.capacity)
        self._slot_size = int(info.slot_size)
        self._closed = False
        self._lenp = ffi.new("uint64_t *")
        self._reservation = _Reservation(h)
        self._waiter: ThreadPoolExecutor | None = None  # asyncio waits, made on first use
        self._spin_ns = DEFAULT_SPIN_NS
        self._received = _Received(h)
        shape, dtype = self._slot_layout()
        strides = (int(info.slot_stride),) + _c_strides(shape[1:], dtype)
        offset = int(info.slots_offset)
        self._slots = np.ndarray(shape, dtype, buffer=ffi.buffer(mem, info.size_bytes),
                                 offset=offset, strides=strides)
        self._slots_ro = np.asarray(_ReadOnlyMemory(mem, offset, shape, dtype, strides))
        self._backing = ffi.string(info.backing).decode()
        self._fallback: str | None = None   # create(): why not hugetlb pages, in words
        self._hugetlbfs: str | None = None  # the directory given at create/attach (for pickling)

    def _slot_layout(self) -> tuple[tuple[int, ...], np.dtype]:
        """Shape and dtype of the array laid over all slots: (capacity, *message shape)."""
        raise NotImplementedError

    # -- properties ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def slot_size(self) -> int:
        return self._slot_size

    @property
    def shape(self) -> tuple[int, ...] | None:
        return self._shape

    @property
    def dtype(self) -> np.dtype | None:
        return self._dtype

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def spin_ns(self) -> int:
        """How long a blocked call spins before it sleeps on the futex (this handle)."""
        return self._spin_ns

    @spin_ns.setter
    def spin_ns(self, ns: int) -> None:
        self._spin_ns = _check_int(ns, "spin_ns", 0, 10**10)
        lib.shmring_set_spin(self._h, self._spin_ns)

    def __len__(self) -> int:
        self._check_open()
        return int(lib.shmring_length(self._h))

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"len={len(self)}"
        form = f"shape={self._shape}, dtype={self._dtype}" if self._shape else f"slot_size={self._slot_size}"
        return f"<shmring.{type(self).__name__} {self._name!r} {self._kind} capacity={self._capacity} {form} {state}>"

    def info(self) -> dict[str, Any]:
        """A snapshot of the ring's geometry and state."""
        self._check_open()
        i = ffi.new("struct shmring_info *")
        lib.shmring_info(self._h, i)
        return {
            "name": self._name,
            "kind": self._kind,
            "capacity": self._capacity,
            "slot_size": self._slot_size,
            "slot_stride": int(i.slot_stride),
            "shape": self._shape,
            "dtype": None if self._dtype is None else str(self._dtype),
            "size_bytes": int(i.size_bytes),
            "backing": ffi.string(i.backing).decode(),
            "page_size": int(i.page_size),
            "path": os.fsdecode(ffi.string(i.path)),
            "fallback": self._fallback,
            "length": int(i.length),
            "shut_down": bool(i.shut_down),
            "producer_pid": int(i.producer_pid) or None,
            "consumer_pid": int(i.consumer_pid) or None,
            "pids": [int(p) for p in i.pids if p],
            # in-flight messages of peers that died, given up by survivors (mpmc)
            "lost": int(i.lost),
            # no live process but this handle attached: a leftover (python -m shmring ls)
            "stale": bool(i.stale),
        }

    # -- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        """Give up this handle's roles; idempotent.  Views stay readable (memory-safe)."""
        if not self._closed:
            self._closed = True
            lib.shmring_close(self._h)
            if self._waiter is not None:
                self._waiter.shutdown(wait=False)  # its wait slice ends within 50 ms

    def unlink(self) -> None:
        """Remove the ring's name; mapped handles keep working."""
        unlink(self._name)

    def shutdown(self) -> None:
        """No more puts: later puts raise BrokenPipeError; readers drain, then EOFError."""
        self._check_open()
        lib.shmring_shutdown(self._h)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self._hugetlbfs:
            return (_reattach, (self._name, self._hugetlbfs))
        return (attach, (self._name,))

    def fileno(self) -> int:
        """The descriptor of a memfd-hugetlb ring's memory, to pass to another process
        (socket.send_fds) for shmring.attach_fd().  Rings with a file name have none:
        attach them by name."""
        self._check_open()
        fd = int(lib.shmring_fd(self._h))
        if fd < 0:
            raise E.InvalidArgument(f"ring {self._name!r} is backed by {self._backing}: it has a name "
                                    "to attach by, not a descriptor to pass")
        return fd

    def _check_open(self) -> None:
        if self._closed:
            raise E.RingClosed(f"ring {self._name!r} is closed")

    # -- waiting --------------------------------------------------------------------
    def _wait(self, rc: int, wait: Any, deadline: float | None, what: str) -> None:
        """Called with the return code of a failed try: wait for a retry, or raise."""
        if rc != _EAGAIN:
            if rc == -errno.EBADF:
                raise E.RingClosed(f"ring {self._name!r} is closed")
            _fail(rc, f"{what} on ring {self._name!r}")
        if deadline is None:
            rc = wait(self._h, _SLICE_NS)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise E.RingTimeout(errno.ETIMEDOUT, f"{what} on ring {self._name!r} timed out")
            rc = wait(self._h, min(int(left * 1e9), _SLICE_NS))
        if rc < 0 and rc != _ETIMEDOUT and rc != _EINTR:  # EINTR: Python runs the handler next
            _fail(rc, f"{what} on ring {self._name!r}")

    # -- writing --------------------------------------------------------------------
    def reserve(self, timeout: Timeout = None, *, nbytes: int | None = None) -> _Reservation:
        """A writable view of the next slot, published at the end of the `with` block."""
        deadline = _check_timeout(timeout)
        i = _try_reserve(self._h)
        while i < 0:
            self._wait(i, lib.shmring_wait_writable, deadline, "reserve")
            i = _try_reserve(self._h)
        res = self._reservation
        try:
            res._view, res._nbytes = self._reserve_view(i, nbytes)
        except BaseException:
            _abandon(self._h)
            raise
        return res

    def _reserve_view(self, i: int, nbytes: int | None) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def put(self, item: Any, timeout: Timeout = None) -> None:
        """Copy one message in; blocks while the ring is full."""
        raise NotImplementedError

    def try_put(self, item: Any) -> bool:
        """Copy one message in if there is room; never blocks."""
        raise NotImplementedError

    def put_many(self, items: Any, timeout: Timeout = None) -> int:
        """Put every item, blocking as needed; one C call per contiguous run.

        On timeout returns how many were put if at least one, else TimeoutError.
        """
        deadline = _check_timeout(timeout)
        keep, src, lens, n, sizes = self._pack(items)  # keep: the packed data C reads
        done = 0
        while done < n:
            off = sizes[done] if sizes is not None else done * self._slot_size
            k = _try_put_many(self._h, src + off, ffi.NULL if lens is None else lens + done, n - done)
            if k > 0:
                done += k
                continue
            try:
                self._wait(k, lib.shmring_wait_writable, deadline, "put_many")
            except E.RingTimeout:
                if done:
                    return done
                raise
        return done

    def _pack(self, items: Any) -> tuple[Any, Any, Any, int, Any]:
        """(owner, char* data, uint64_t* lengths or NULL, count, byte offsets or None)."""
        raise NotImplementedError

    # -- reading --------------------------------------------------------------------
    def recv(self, timeout: Timeout = None) -> _Received:
        """A read-only view of the oldest message, released at the end of the `with` block."""
        deadline = _check_timeout(timeout)
        lenp = self._lenp
        i = _try_front(self._h, lenp)
        while i < 0:
            self._wait(i, lib.shmring_wait_readable, deadline, "recv")
            i = _try_front(self._h, lenp)
        self._received._view = self._recv_view(i, lenp[0])
        return self._received

    def _recv_view(self, i: int, n: int) -> np.ndarray:
        raise NotImplementedError

    def get(self, timeout: Timeout = None) -> Any:
        """The oldest message, copied out; blocks while the ring is empty."""
        raise NotImplementedError

    def try_get(self) -> Any:
        """The oldest message, or None when the ring is empty; never blocks."""
        raise NotImplementedError

    def get_many(self, max_items: int, timeout: Timeout = None) -> Any:
        """At least one message (blocking like get), up to max_items, with one C call."""
        raise NotImplementedError

    def _front(self, rc: int, timeout: Timeout, what: str) -> int:
        """Slow path of a get: wait until a message is at the front, return its slot."""
        deadline = _check_timeout(timeout)
        lenp = self._lenp
        while rc < 0:
            if rc != _E2BIG:
                self._wait(rc, lib.shmring_wait_readable, deadline, what)
            rc = _try_front(self._h, lenp)
        return rc

    def _get_many_into(self, dst: Any, lens: Any, max_items: int, timeout: Timeout) -> int:
        deadline = _check_timeout(timeout)
        k: int = _try_get_many(self._h, dst, lens, max_items)
        while k < 0:
            self._wait(k, lib.shmring_wait_readable, deadline, "get_many")
            k = _try_get_many(self._h, dst, lens, max_items)
        return k

    def __iter__(self) -> Iterator[Any]:
        """Copies of the messages, until the ring is shut down and drained."""
        get = self.get
        while True:
            try:
                yield get()
            except E.RingEOF:
                return

    # -- asyncio --------------------------------------------------------------------
    async def get_async(self, timeout: Timeout = None) -> Any:
        """get() for asyncio.  The wait runs on this ring's waiter thread, not the loop.

        The item is taken on the loop's thread, only once the wait says one is
        there: a cancelled get_async() has consumed nothing.
        """
        deadline = _check_timeout(timeout)
        while True:
            item = self.try_get()
            if item is not None:
                return item
            await self._await_ready(lib.shmring_wait_readable, deadline, "get_async")

    async def put_async(self, item: Any, timeout: Timeout = None) -> None:
        """put() for asyncio; a cancelled put_async() has put nothing."""
        deadline = _check_timeout(timeout)
        while not self.try_put(item):
            await self._await_ready(lib.shmring_wait_writable, deadline, "put_async")

    async def _await_ready(self, wait: Any, deadline: float | None, what: str) -> None:
        """One wait slice on a dedicated thread (made on first use; the loop never polls)."""
        loop = asyncio.get_running_loop()
        if self._waiter is None:
            self._waiter = ThreadPoolExecutor(1, thread_name_prefix=f"shmring-wait-{self._name}")
        await loop.run_in_executor(self._waiter, self._wait, _EAGAIN, wait, deadline, what)


class ByteRing(Ring):
    """A ring whose messages are byte strings of up to slot_size bytes."""

    def __init__(self, h: Any, mem: Any, info: Any, name: str) -> None:
        self._shape = None
        self._dtype = None
        super().__init__(h, mem, info, name)
        stage = lib.shmring_stage(h)
        # Slicing a cffi buffer makes the bytes object in one step.
        self._stage: Any = ffi.buffer(stage, self._slot_size) if stage != ffi.NULL else None
        self._batch: tuple[int, Any, Any, Any] | None = None

    def _slot_layout(self) -> tuple[tuple[int, ...], np.dtype]:
        return (self._capacity, self._slot_size), np.dtype(np.uint8)

    def _put_any(self, item: Any) -> int:
        """try_put of anything bytes-like that is not a bytes object."""
        try:
            mv = memoryview(item)
        except TypeError:
            raise E.InvalidType(f"a byte ring takes bytes-like messages, not {type(item).__name__}") from None
        if not mv.c_contiguous:
            mv = memoryview(mv.tobytes())
        if mv.nbytes > self._slot_size:
            raise E.InvalidArgument(f"message of {mv.nbytes} bytes is larger than the slot ({self._slot_size} bytes)")
        rc: int = _try_put(self._h, _from_buffer(mv), mv.nbytes)
        return rc

    def try_put(self, item: Any) -> bool:
        if type(item) is bytes:
            rc = _try_put(self._h, item, len(item))
        else:
            rc = self._put_any(item)
        if rc == 1:
            return True
        if rc == _EAGAIN:
            return False
        return self._put_error(rc, item)

    def put(self, item: Any, timeout: Timeout = None) -> None:
        if type(item) is bytes:
            rc = _put_spin(self._h, item, len(item))
        else:
            rc = self._put_any(item)
        if rc != 1:
            deadline = _check_timeout(timeout)
            while rc != 1:
                if rc != _EAGAIN:
                    self._put_error(rc, item)
                self._wait(rc, lib.shmring_wait_writable, deadline, "put")
                rc = _try_put(self._h, item, len(item)) if type(item) is bytes else self._put_any(item)

    def _put_error(self, rc: int, item: Any) -> bool:
        if rc == -errno.EMSGSIZE:
            raise E.InvalidArgument(
                f"message of {memoryview(item).nbytes} bytes is larger than the slot ({self._slot_size} bytes)"
            )
        if rc == -errno.EBADF:
            raise E.RingClosed(f"ring {self._name!r} is closed")
        return _fail(rc, f"put on ring {self._name!r}")

    def _pack(self, items: Any) -> tuple[Any, Any, Any, int, Any]:
        if isinstance(items, (bytes, bytearray, memoryview, str)):
            raise E.InvalidType("put_many takes a sequence of messages, not one bytes-like object")
        try:
            views = [memoryview(x) for x in items]
        except TypeError as exc:
            raise E.InvalidType(f"put_many on a byte ring takes bytes-like messages ({exc})") from None
        lens = np.fromiter((v.nbytes for v in views), dtype=np.uint64, count=len(views))
        if len(lens) and int(lens.max()) > self._slot_size:
            raise E.InvalidArgument(
                f"message of {int(lens.max())} bytes is larger than the slot ({self._slot_size} bytes)"
            )
        data = b"".join(views)
        sizes = np.zeros(len(lens) + 1, dtype=np.int64)
        np.cumsum(lens, out=sizes[1:])
        src = ffi.cast("char *", ffi.from_buffer(data)) if data else ffi.new("char[1]")
        return (data, lens), src, ffi.from_buffer("uint64_t[]", lens), len(lens), sizes.tolist()

    def _reserve_view(self, i: int, nbytes: int | None) -> tuple[np.ndarray, int]:
        if nbytes is None:
            return self._slots[i], self._slot_size
        n = _check_int(nbytes, "nbytes", 0, self._slot_size)
        return self._slots[i, :n], n

    def _recv_view(self, i: int, n: int) -> np.ndarray:
        return self._slots_ro[i, :n]

    def get(self, timeout: Timeout = None) -> bytes:
        n = _get_staged(self._h)
        if n >= 0:
            return self._stage[0:n]  # type: ignore[no-any-return]
        return self._get_slow(n, timeout)

    def try_get(self) -> bytes | None:
        n = _try_get_staged(self._h)
        if n >= 0:
            return self._stage[0:n]  # type: ignore[no-any-return]
        if n == _EAGAIN:
            return None
        if n == _E2BIG:  # longer than the stage: read it in place
            n = _try_front(self._h, self._lenp)
            if n == _EAGAIN:
                return None
        return self._get_slow(n, 0)

    def _get_slow(self, rc: int, timeout: Timeout) -> bytes:
        if rc != _E2BIG:  # wait, then the fast copy again: what a round trip pays for
            deadline = _check_timeout(timeout)
            while rc < 0:
                self._wait(rc, lib.shmring_wait_readable, deadline, "get")
                rc = _try_get_staged(self._h)
                if rc >= 0:
                    return self._stage[0:rc]  # type: ignore[no-any-return]
                if rc == _E2BIG:
                    break
        # Longer than the staging buffer: read it in place.
        i = self._front(rc, timeout, "get")
        try:
            return self._slots_ro[i, : self._lenp[0]].tobytes()
        finally:
            _release(self._h)

    def get_many(self, max_items: int, timeout: Timeout = None) -> list[bytes]:
        """At least one message (blocking like get), up to max_items, in one C call."""
        m = _check_int(max_items, "max_items", 1, 1 << 32)
        if self._batch is None or self._batch[0] < m:
            buf = np.empty(m * self._slot_size, np.uint8)
            lens = np.empty(m, np.uint64)
            self._batch = (m, buf, ffi.from_buffer(buf), ffi.from_buffer("uint64_t[]", lens))
        _, buf, cbuf, clens = self._batch
        k = self._get_many_into(cbuf, clens, m, timeout)
        ss = self._slot_size
        return [_unpack(cbuf + j * ss, clens[j]) for j in range(k)]


class ArrayRing(Ring):
    """A ring whose messages are arrays of one shape and dtype."""

    _shape: tuple[int, ...]
    _dtype: np.dtype

    def __init__(self, h: Any, mem: Any, info: Any, name: str) -> None:
        try:
            dt = _parse_dtype(ffi.string(info.dtype).decode())
        except Exception as exc:  # noqa: BLE001 - anything here means a bad header
            raise E.RingIncompatible(f"ring {name!r}: unreadable dtype in the header ({exc})") from None
        shape = tuple(int(info.shape[i]) for i in range(info.ndim))
        if not shape or dt.hasobject or dt.itemsize * math.prod(shape) != info.slot_size:
            raise E.RingIncompatible(f"ring {name!r}: shape {shape} and dtype {dt} do not fill its slot")
        self._shape, self._dtype = shape, dt
        self._nbytes = int(info.slot_size)
        super().__init__(h, mem, info, name)

    def _slot_layout(self) -> tuple[tuple[int, ...], np.dtype]:
        return (self._capacity,) + self._shape, self._dtype

    def _check(self, item: Any) -> None:
        if not isinstance(item, np.ndarray):
            raise E.InvalidType(f"this ring takes numpy arrays of shape {self._shape}, not {type(item).__name__}")
        if item.shape != self._shape or item.dtype != self._dtype:
            raise E.InvalidArgument(
                f"array of shape {item.shape} and dtype {item.dtype} does not match the ring's "
                f"shape {self._shape} and dtype {self._dtype}"
            )

    def _try_put_array(self, item: Any) -> int:
        self._check(item)
        if item.flags.c_contiguous:
            return _try_put(self._h, _from_buffer(item), self._nbytes)  # type: ignore[no-any-return]
        i = _try_reserve(self._h)
        if i < 0:
            return i  # type: ignore[no-any-return]
        try:
            np.copyto(self._slots[i], item)
        except BaseException:
            _abandon(self._h)
            raise
        rc = _commit(self._h, self._nbytes)
        return 1 if rc == 0 else rc

    def try_put(self, item: Any) -> bool:
        rc = self._try_put_array(item)
        if rc == 1:
            return True
        if rc == _EAGAIN:
            return False
        return _fail(rc, f"put on ring {self._name!r}")

    def put(self, item: Any, timeout: Timeout = None) -> None:
        rc = self._try_put_array(item)
        if rc != 1:
            deadline = _check_timeout(timeout)
            while rc != 1:
                self._wait(rc, lib.shmring_wait_writable, deadline, "put")
                rc = self._try_put_array(item)

    def _pack(self, items: Any) -> tuple[Any, Any, Any, int, Any]:
        if not isinstance(items, np.ndarray):
            raise E.InvalidType(f"put_many on an array ring takes an array of shape (n, *{self._shape})")
        if items.shape[1:] != self._shape or items.dtype != self._dtype or items.ndim != len(self._shape) + 1:
            raise E.InvalidArgument(
                f"array of shape {items.shape} and dtype {items.dtype} is not (n, *{self._shape}) of {self._dtype}"
            )
        items = np.ascontiguousarray(items)
        src = ffi.from_buffer(items) if items.size else ffi.new("char[1]")
        return items, ffi.cast("char *", src), None, len(items), None

    def _reserve_view(self, i: int, nbytes: int | None) -> tuple[np.ndarray, int]:
        if nbytes is not None:
            raise E.InvalidArgument("reserve(nbytes=) is for byte rings; an array ring's message fills its slot")
        return self._slots[i], self._nbytes

    def _recv_view(self, i: int, n: int) -> np.ndarray:
        return self._slots_ro[i]  # type: ignore[no-any-return]

    def get(self, timeout: Timeout = None) -> np.ndarray:
        i = _try_front(self._h, self._lenp)
        if i < 0:
            i = self._front(i, timeout, "get")
        try:
            return self._slots[i].copy()  # type: ignore[no-any-return]
        finally:
            _release(self._h)

    def try_get(self) -> np.ndarray | None:
        i = _try_front(self._h, self._lenp)
        if i < 0:
            if i == _EAGAIN:
                return None
            i = self._front(i, 0, "get")
        try:
            return self._slots[i].copy()  # type: ignore[no-any-return]
        finally:
            _release(self._h)

    def get_many(self, max_items: int, timeout: Timeout = None, *, out: np.ndarray | None = None) -> np.ndarray:
        """At least one array (blocking like get), up to max_items, as one (k, *shape) array.

        With `out` (a C-contiguous array of shape (n, *shape) and the ring's dtype,
        n >= max_items), the arrays are copied into it and out[:k] is returned:
        no allocation per batch.
        """
        m = _check_int(max_items, "max_items", 1, 1 << 32)
        if out is None:
            out = np.empty((m,) + self._shape, self._dtype)
        elif (not isinstance(out, np.ndarray) or out.dtype != self._dtype or out.shape[1:] != self._shape
              or len(out) < m or not out.flags.c_contiguous or not out.flags.writeable):
            raise E.InvalidArgument(f"out must be a writable C-contiguous (>= {m}, *{self._shape}) array of {self._dtype}")
        k = self._get_many_into(_from_buffer(out), ffi.NULL, m, timeout)
        return out[:k]


def _c_strides(shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...]:
    strides, step = [], dtype.itemsize
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))
