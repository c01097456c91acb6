"""The standard library's multiprocessing: Queue and Pipe.

Queue: bounded (maxsize = the channel's depth, like a ring's capacity), pickles each item
on a feeder thread.  Since that thread pickles after put() returns, a frame is put as
bytes (a copy), not as the array the producer reuses.  Pipe: Connection.send_bytes /
recv_bytes (length-prefixed over a pipe), frames received with recv_bytes_into."""
from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..transport import Receiver, Sender, Spec, Transport

_CTX = mp.get_context("fork")


class _QueueSender(Sender):
    def __init__(self, q: Any) -> None:
        self.q = q
        self.send = q.put

    def send_frame(self, frame: np.ndarray) -> None:
        self.q.put(frame.tobytes())

    def end(self) -> None:
        super().end()
        self.q.close()
        self.q.join_thread()  # every item is in the pipe before the clock stops


class _QueueReceiver(Receiver):
    def __init__(self, q: Any) -> None:
        self.recv = q.get

    def messages(self) -> Iterator[Any]:
        return iter(self.recv, None)


class MpQueueTransport(Transport):
    name = "multiprocessing.Queue"
    multi = True

    def open(self, spec: Spec) -> Any:
        return _CTX.Queue(maxsize=spec.depth)

    def close(self, q: Any) -> None:
        q.close()  # the parent never put: no feeder thread, only its ends of the pipe
        q._reader.close()
        q._writer.close()

    def sender(self, q: Any, stack: contextlib.ExitStack) -> Sender:
        return _QueueSender(q)

    def receiver(self, q: Any, stack: contextlib.ExitStack) -> Receiver:
        return _QueueReceiver(q)


class _PipeSender(Sender):
    def __init__(self, conn: Any) -> None:
        self.send = conn.send_bytes


class _PipeReceiver(Receiver):
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.recv = conn.recv_bytes

    def messages(self) -> Iterator[Any]:
        return iter(self.recv, None)

    def frames(self, nbytes: int) -> Iterator[np.ndarray]:
        dst = np.empty(nbytes, np.uint8)
        into = self.conn.recv_bytes_into
        while True:
            if into(dst) != nbytes:
                raise OSError("frame of the wrong length")
            yield dst


class MpPipeTransport(Transport):
    name = "multiprocessing.Pipe"

    def open(self, spec: Spec) -> list[Any]:
        return list(_CTX.Pipe(duplex=False))  # [reader, writer]

    def forked(self, ch: list[Any]) -> None:
        for c in ch:
            c.close()

    def sender(self, ch: list[Any], stack: contextlib.ExitStack) -> Sender:
        ch[0].close()
        stack.callback(ch[1].close)
        return _PipeSender(ch[1])

    def receiver(self, ch: list[Any], stack: contextlib.ExitStack) -> Receiver:
        ch[1].close()
        stack.callback(ch[0].close)
        return _PipeReceiver(ch[0])
