"""faster-fifo: a pickling queue over a circular buffer behind a process-shared mutex.

"single": one put()/get() per message; batches use its own put_many / get_many (256 per
call).  Frames are put as arrays (pickled inside put(), so reusing the array is safe)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..payloads import BATCH
from ..transport import CALL_TIMEOUT, Receiver, Sender, Spec, Transport


class _FfSender(Sender):
    def __init__(self, q: Any) -> None:
        self.q = q
        self.send = q.put

    def wire_batches(self, blocks: list[np.ndarray]) -> list[Any]:
        return [[row.tobytes() for row in b] for b in blocks]

    def send_batch(self, batch: Any) -> None:
        self.q.put_many(batch, True, CALL_TIMEOUT)


class _FfReceiver(Receiver):
    def __init__(self, q: Any) -> None:
        self.q = q
        self.recv = q.get

    def messages(self) -> Iterator[Any]:
        return iter(self.recv, None)

    def batches(self) -> Iterator[Any]:
        get_many, join = self.q.get_many, b"".join
        while True:
            yield join(get_many(True, CALL_TIMEOUT, BATCH))


class FasterFifoTransport(Transport):
    name = "faster-fifo"
    module = "faster_fifo"
    multi = True

    @property
    def label(self) -> str:
        return "faster-fifo, get_many" if self.batched else "faster-fifo"

    def __init__(self, batched: bool = False) -> None:
        self.batched = batched

    def applies(self, workload: str) -> bool:
        return self.batched == (workload == "batch64")

    def open(self, spec: Spec) -> Any:
        from faster_fifo import Queue  # type: ignore[import-not-found,import-untyped,unused-ignore]

        # Room for `depth` messages and their pickling (the ring's capacity analogue).
        per = spec.max_bytes + 256
        return Queue(max_size_bytes=max(1 << 20, spec.depth * per) if spec.frame else max(1 << 16, spec.depth * per))

    def close(self, q: Any) -> None:
        q.close()

    def sender(self, q: Any, stack: contextlib.ExitStack) -> Sender:
        return _FfSender(q)

    def receiver(self, q: Any, stack: contextlib.ExitStack) -> Receiver:
        return _FfReceiver(q)
