"""pyzmq PUSH/PULL over ipc:// (a Unix socket under a private temporary directory).

The producer binds (a pipeline's usual shape), the consumer connects.  High-water marks
are 0 (no limit): with a finite HWM, a producer that hit it stalled here now and then, the
last few hundred messages staying in its queue until the consumer closed (libzmq 4.3.5,
pyzmq 27.3, sender and receiver pinned to different cores: in 1-2 of 30 runs of 5,000
messages at HWM 1000, 14 of 30 at HWM 16, none with the HWM above the message count).  So this row
runs without flow control, which flatters it a little (nothing ever blocks the sender).
Frames are sent copying (pyzmq's copy=False would let the producer overwrite a frame
still queued) and received without a copy (recv(copy=False): the checksum reads the
message's own buffer)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..transport import CALL_TIMEOUT, Receiver, Sender, Spec, Transport


class _ZmqSender(Sender):
    def __init__(self, sock: Any) -> None:
        self.send = sock.send


class _ZmqReceiver(Receiver):
    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.recv = sock.recv

    def messages(self) -> Iterator[Any]:
        return iter(self.recv, None)

    def frames(self, nbytes: int) -> Iterator[np.ndarray]:
        recv, frombuffer, u8 = self.sock.recv, np.frombuffer, np.uint8
        while True:
            yield frombuffer(recv(copy=False).buffer, u8)


class ZmqTransport(Transport):
    name = "pyzmq PUSH/PULL ipc://"
    module = "zmq"

    def __init__(self) -> None:
        self.dir: str | None = None
        self.n = 0

    def start(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="shmring-bench-zmq-")

    def stop(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def open(self, spec: Spec) -> tuple[str, int]:
        self.n += 1
        return f"ipc://{self.dir}/c{self.n}", spec.depth

    def close(self, ch: tuple[str, int]) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ch[0][len("ipc://"):])

    def _socket(self, kind: str, ch: tuple[str, int], stack: contextlib.ExitStack) -> Any:
        import zmq  # type: ignore[import-not-found,import-untyped,unused-ignore]

        ctx = zmq.Context(1)  # in the child: a context must not cross a fork
        stack.callback(ctx.term)
        sock = ctx.socket(getattr(zmq, kind))
        stack.callback(sock.close)
        sock.setsockopt(zmq.SNDHWM if kind == "PUSH" else zmq.RCVHWM, 0)
        sock.setsockopt(zmq.SNDTIMEO if kind == "PUSH" else zmq.RCVTIMEO, int(CALL_TIMEOUT * 1000))
        if kind == "PUSH":
            sock.setsockopt(zmq.LINGER, 10_000)  # the last messages are delivered on close
            sock.bind(ch[0])
        else:
            sock.connect(ch[0])
        return sock

    def sender(self, ch: tuple[str, int], stack: contextlib.ExitStack) -> Sender:
        return _ZmqSender(self._socket("PUSH", ch, stack))

    def receiver(self, ch: tuple[str, int], stack: contextlib.ExitStack) -> Receiver:
        return _ZmqReceiver(self._socket("PULL", ch, stack))
