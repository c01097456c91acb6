"""The memory-bandwidth reference: one process copying each frame once (np.copyto),
with the producer's stamping and a check of the stamps that arrived."""
from __future__ import annotations

import contextlib

import numpy as np

from ..payloads import DataError
from ..transport import Sender, Spec, Transport


class _CopySender(Sender):
    def __init__(self, nbytes: int) -> None:
        self.dst = np.empty(nbytes, np.uint8)
        self.d64 = self.dst.view(np.uint64)

    def send_frame(self, frame: np.ndarray) -> None:
        np.copyto(self.dst, frame)
        s64, d64 = frame.view(np.uint64), self.d64
        if d64[0] != s64[0] or d64[-1] != s64[-1]:
            raise DataError("np.copyto lost its stamps")

    def end(self) -> None:
        pass


class CopyTransport(Transport):
    name = "np.copyto"
    solo = True

    @property
    def label(self) -> str:
        return "np.copyto, one process (reference)"

    def applies(self, workload: str) -> bool:
        return workload.startswith("frame")

    def open(self, spec: Spec) -> int:
        return spec.max_bytes

    def sender(self, nbytes: int, stack: contextlib.ExitStack) -> Sender:
        return _CopySender(nbytes)
