"""Atheris: the Python layer's attach path against a hostile header description.

fuzz_attach.c fuzzes the C validation; what C leaves opaque is the array
description (ndim, shape, dtype text: header bytes 64-320), which Python
parses (ast.literal_eval, numpy's descr_to_dtype) and lays numpy views over.
Each input writes a description (ndim, shape, a dtype text spliced from real
ones) and the array flag into a real ring holding one message, then attaches
and drives get/put/recv/info.  Promise: any
outcome is success or a ShmringError; another exception, a crash or a hang is
a bug (atheris reports it with the input).

    python csrc/fuzz/fuzz_python.py -runs=N [-max_total_time=S] [corpus dir]
"""
from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports():
    import numpy as np

    import shmring

OFF_FLAGS, OFF_DESCR, DESCR_END = 16, 64, 320  # csrc/shmring_abi.h
NAME = f"fuzz.py.{os.getpid()}"


def drive(r: shmring.Ring) -> None:
    for call in (len, lambda r: r.info(), lambda r: r.try_get(),
                 lambda r: r.try_put(np.zeros(r.shape, r.dtype) if r.shape else b"x"),
                 lambda r: r.get_many(4, timeout=0)):
        try:
            call(r)
        except shmring.ShmringError:
            pass
    try:
        with r.recv(timeout=0) as view:
            bytes(view.tobytes())
    except shmring.ShmringError:
        pass


# Descriptions a real ring may carry (and some it may not): starting points
# that the fuzzer splices its own bytes into.
DESCRS = ["'<f8'", "'|u1'", "'<i4'", "'>f8'", "'<c16'", "'|b1'", "'<U2'", "'|V24'", "'|O'",
          "'<M8[s]'", "'<m8[ns]'", "('<f8', (3,))", "[('a', '<i4'), ('b', '<f4')]",
          "[('x', '<f8', (3,))]", "{'names': ['a'], 'formats': ['<f8'], 'offsets': [16], 'itemsize': 24}"]


def description(fdp: atheris.FuzzedDataProvider) -> bytes:
    """ndim, dtype_len, shape[8], dtype[184]: the bytes at 64-320 of the header."""
    ndim = fdp.ConsumeIntInRange(0, 9)
    shape = [fdp.ConsumeIntInRange(0, 2**64 - 1) if fdp.ConsumeProbability() < 0.1
             else fdp.ConsumeIntInRange(0, 30) for _ in range(8)]
    text = DESCRS[fdp.ConsumeIntInRange(0, len(DESCRS) - 1)].encode()
    how = fdp.ConsumeIntInRange(0, 2)
    if how == 1:
        text = fdp.ConsumeUnicodeNoSurrogates(183).encode()[:183]
    elif how == 2:
        at = fdp.ConsumeIntInRange(0, len(text))
        text = (text[:at] + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 20)) + text[at + 1:])[:183]
    dlen = len(text) if fdp.ConsumeProbability() < 0.9 else fdp.ConsumeIntInRange(0, 2**32 - 1)
    return (ndim.to_bytes(4, "little") + dlen.to_bytes(4, "little")
            + b"".join(d.to_bytes(8, "little") for d in shape) + text.ljust(184, b"\0"))


def one(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    array = fdp.ConsumeBool()
    flags = fdp.ConsumeIntInRange(0, 3)
    descr = description(fdp)
    form = dict(shape=(3,), dtype=np.float64) if array else dict(slot_size=24)
    with shmring.create(NAME, 2, **form) as r:
        try:
            r.put(np.ones(3) if array else b"message")
            fd = os.open(f"/dev/shm/shmring.{NAME}", os.O_RDWR)
            try:
                os.pwrite(fd, flags.to_bytes(4, "little"), OFF_FLAGS)
                os.pwrite(fd, descr, OFF_DESCR)
            finally:
                os.close(fd)
            try:
                other = shmring.attach(NAME)
            except shmring.ShmringError:
                return
            with other:
                drive(other)
        finally:
            shmring.unlink(NAME)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
