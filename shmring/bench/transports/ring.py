"""shmring itself: a byte ring for 64 B messages, an array ring for batches and frames.

Frames are written in place (reserve) and read in place (recv): the consumer's checksum
reads the slot itself, no copy.  Batches are put_many/get_many.  The end of the stream
is shutdown() (many to many: an END message per producer, since one producer's
shutdown would cut the others off)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

import shmring
from shmring import testing
from shmring._ring import DEFAULT_SPIN_NS

from ..payloads import BATCH, END, DataError
from ..transport import CALL_TIMEOUT, Receiver, Sender, Spec, Transport

NAME_TAG = "bench"
_NEVER = object()

# Capacity per workload.  From this machine's sweeps: one 64 B message at a time is flat
# in capacity (Python sets the pace), so a small ring; C rings of 2-8 MiB ran several
# times faster for batches, so 65536 slots; 1 MiB frames: 16 slots (16 MiB) fall out
# of the cache, 2-8 do not differ, so 4; round trips keep one message in flight.
CAPACITY = {"msg64": 1024, "batch64": 65536, "frame64k": 16, "frame1m": 4, "pingpong64": 64, "many64": 1024}


class RingSender(Sender):
    def __init__(self, ring: Any) -> None:
        self.ring = ring
        self.send = ring.put
        self.send_batch = ring.put_many  # type: ignore[method-assign]

    def wire_batches(self, blocks: list[np.ndarray]) -> list[Any]:
        return blocks  # put_many takes the (BATCH, 64) arrays as they are

    def send_frame(self, frame: np.ndarray) -> None:
        with self.ring.reserve() as slot:
            np.copyto(slot, frame)

    def end(self) -> None:
        self.ring.shutdown()

    def end_shared(self) -> None:
        self.ring.put(END)


class RingReceiver(Receiver):
    def __init__(self, ring: Any) -> None:
        self.ring = ring
        self.recv = ring.get

    def messages(self) -> Iterator[Any]:
        return iter(self.ring.get, _NEVER)

    def batches(self) -> Iterator[Any]:
        get_many, out = self.ring.get_many, np.empty((BATCH, 64), np.uint8)
        while True:
            yield get_many(BATCH, out=out)

    def frames(self, nbytes: int) -> Iterator[np.ndarray]:
        recv = self.ring.recv
        while True:
            with recv() as view:
                yield view

    def expect_end(self) -> None:
        try:
            self.ring.get(CALL_TIMEOUT)
        except EOFError:
            return
        raise DataError("a message after the last one: duplicated data")


class RingTransport(Transport):
    shmring = True

    def __init__(self, kind: str, capacity: int | None = None, regime: str | None = None,
                 spin_ns: int | None = None, gap_us: float = 0.0, in_quick: bool = True,
                 workloads: tuple[str, ...] | None = None) -> None:
        self.kind, self.capacity, self.regime, self.workloads = kind, capacity, regime, workloads
        self.spin_ns, self.gap_us, self.in_quick = spin_ns, gap_us, in_quick
        self.name = f"shmring {kind}"
        self.multi = kind != "spsc"
        self.backing: set[str] = set()

    @property
    def label(self) -> str:
        out = self.name
        if self.capacity is not None:
            out += f", capacity {self.capacity}"
        if self.regime is not None:
            spin = f"spin_ns {DEFAULT_SPIN_NS}" if self.spin_ns is None else f"spin_ns {self.spin_ns}"
            gap = f", {self.gap_us:g} µs between pings" if self.gap_us else ""
            out += f", {self.regime} ({spin}{gap})"
        return out

    def applies(self, workload: str) -> bool:
        return self.workloads is None or workload in self.workloads

    def unsupported(self, spec: Spec) -> str | None:
        if self.kind == "spsc" and (spec.fanin > 1 or spec.fanout > 1):
            return "one producer and one consumer by contract"
        return None

    def open(self, spec: Spec) -> str:
        name = testing.unique_name(NAME_TAG)
        cap = self.capacity or CAPACITY.get(spec.workload, spec.depth)
        if spec.frame:
            kw: dict[str, Any] = {"shape": (spec.max_bytes,), "dtype": np.uint8}
        elif spec.workload == "batch64":
            kw = {"shape": (64,), "dtype": np.uint8}
        else:
            kw = {"slot_size": spec.max_bytes}
        with shmring.create(name, cap, kind=self.kind, **kw) as ring:  # type: ignore[arg-type]
            info = ring.info()  # the children attach by name; the parent holds no handle
        self.backing.add(f"{info['backing']} ({info['page_size'] // 1024} KiB pages)")
        return name

    def close(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            shmring.unlink(name)

    def _attach(self, name: str, stack: contextlib.ExitStack) -> Any:
        ring = stack.enter_context(shmring.attach(name))
        if self.spin_ns is not None:
            ring.spin_ns = self.spin_ns
        return ring

    def sender(self, name: str, stack: contextlib.ExitStack) -> Sender:
        return RingSender(self._attach(name, stack))

    def receiver(self, name: str, stack: contextlib.ExitStack) -> Receiver:
        return RingReceiver(self._attach(name, stack))


def sweep_leftovers(pid: int) -> list[str]:
    """Unlink any ring this run created and did not remove (e.g. Ctrl+C inside create)."""
    prefix = f"{NAME_TAG}-{pid}-"
    left = sorted(s for s in testing.segments() if s.startswith(prefix))
    for name in left:
        with contextlib.suppress(OSError):
            shmring.unlink(name)
    return left
