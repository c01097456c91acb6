"""shmring: zero-copy shared-memory ring buffers between processes, with numpy views.

    ring = shmring.create("frames", capacity=64, shape=(480, 640, 3), dtype=np.uint8)
    with ring.reserve() as slot:      # write in place; published when the block ends
        slot[...] = frame
    ring = shmring.attach("frames")   # in another process
    with ring.recv() as view:         # read in place; released when the block ends
        view.mean()

See README.md for the guarantees and the ring protocol.
"""
from ._version import __version__

try:
    from ._lib import ffi as _ffi, lib as _lib  # type: ignore[import-not-found]
except ImportError as _exc:  # pragma: no cover - depends on how it was installed
    raise ImportError(
        f"shmring's compiled core is missing ({_exc}). In a source checkout, build it with "
        "`pip install -e .`; or run from outside the checkout so the installed package is imported."
    ) from None

_built = _ffi.string(_lib.SHMRING_BUILD_VERSION).decode()
if _built != __version__:
    raise ImportError(
        f"shmring {__version__} found a compiled core built for {_built}: a stale build. "
        "Rebuild it with `pip install --force-reinstall --no-deps .` (or `pip install -e .`)."
    )

from ._errors import (  # noqa: E402
    PeerDied,
    RingBusy,
    RingCorrupted,
    RingIncompatible,
    ShmringError,
)
from ._ring import ArrayRing, ByteRing, Ring, attach, attach_fd, create, unlink  # noqa: E402

__all__ = [
    "ArrayRing",
    "ByteRing",
    "PeerDied",
    "Ring",
    "RingBusy",
    "RingCorrupted",
    "RingIncompatible",
    "ShmringError",
    "__version__",
    "attach",
    "attach_fd",
    "create",
    "unlink",
]
