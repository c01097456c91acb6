"""The exception hierarchy, and the one place where C error codes become exceptions.

Every exception shmring raises subclasses ShmringError *and* the builtin a caller
would expect (FileNotFoundError, ValueError, TimeoutError, ...), so either catches it.
"""
from __future__ import annotations

import errno as _errno
from typing import NoReturn


class ShmringError(Exception):
    """Base class of every error raised by shmring."""


class RingIncompatible(ShmringError, ValueError):
    """The segment is not a shmring ring, has another ABI version, or an impossible geometry."""


class RingCorrupted(ShmringError, RuntimeError):
    """Indices or lengths in shared memory are impossible: a peer scribbled over the ring."""


class PeerDied(ShmringError, ConnectionError):
    """A wait depends on a peer that died holding a slot, role or lock."""


class RingBusy(ShmringError, RuntimeError):
    """A second live producer or consumer on an SPSC ring."""


class RingNotFound(ShmringError, FileNotFoundError):
    """No ring of that name."""


class RingExists(ShmringError, FileExistsError):
    """A ring (or another file) of that name exists already."""


class RingPermissionError(ShmringError, PermissionError):
    """The segment belongs to another user, or its mode forbids access."""


class RingTimeout(ShmringError, TimeoutError):
    """A blocking call timed out."""


class RingShutDown(ShmringError, BrokenPipeError):
    """A put on a ring that was shut down."""


class RingEOF(ShmringError, EOFError):
    """A get on a ring that was shut down and is drained."""


class RingClosed(ShmringError, ValueError):
    """An operation on a closed handle."""


class InvalidArgument(ShmringError, ValueError):
    """A bad argument: name, capacity, size, shape, dtype, message length."""


class InvalidType(ShmringError, TypeError):
    """An argument of the wrong type."""


class RingStateError(ShmringError, RuntimeError):
    """A call out of order on this handle (e.g. a get while a recv() view is open)."""


class RingOSError(ShmringError, OSError):
    """Any other operating-system error (ENOSPC, ENOMEM, ...)."""


_BY_ERRNO: dict[int, type[ShmringError]] = {
    _errno.ENOENT: RingNotFound,
    _errno.EEXIST: RingExists,
    _errno.EACCES: RingPermissionError,
    _errno.EPERM: RingPermissionError,
    _errno.EPROTO: RingIncompatible,
    _errno.EPROTONOSUPPORT: RingIncompatible,
    _errno.EBADMSG: RingIncompatible,
    _errno.EUCLEAN: RingCorrupted,
    _errno.EBUSY: RingBusy,
    _errno.EOWNERDEAD: PeerDied,
    _errno.EPIPE: RingShutDown,
    _errno.ENODATA: RingEOF,
    _errno.EBADF: RingClosed,
    _errno.ETIMEDOUT: RingTimeout,
    _errno.EMSGSIZE: InvalidArgument,
    _errno.EINVAL: InvalidArgument,
    _errno.EINPROGRESS: RingStateError,
}


def raise_for(rc: int, what: str, strerror: str) -> NoReturn:
    """Raise the exception for a negative C return code `rc` (-errno)."""
    code = -rc
    cls = _BY_ERRNO.get(code, RingOSError)
    msg = f"{what}: {strerror}"
    if issubclass(cls, OSError):
        raise cls(code, msg)
    raise cls(msg)
