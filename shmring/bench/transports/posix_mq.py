"""POSIX message queues (posix_ipc): mq_send / mq_receive, one message per call.

The queue holds up to the channel's depth, within the host's msg_max; messages larger than
its msgsize_max are reported as skipped (raising either changes the host).  The run raises
its own RLIMIT_MSGQUEUE where allowed; a queue the kernel refuses is skipped with its reason."""
from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..transport import Receiver, Sender, Spec, Transport


class _MqSender(Sender):
    def __init__(self, mq: Any) -> None:
        self.send = mq.send

    def send_frame(self, frame: np.ndarray) -> None:
        self.send(frame.data)


class _MqReceiver(Receiver):
    def __init__(self, mq: Any) -> None:
        self.receive = mq.receive

    def recv(self) -> Any:
        return self.receive()[0]

    def messages(self) -> Iterator[Any]:
        receive = self.receive
        while True:
            yield receive()[0]


class PosixMqTransport(Transport):
    name = "POSIX mq (posix_ipc)"
    module = "posix_ipc"
    multi = True

    def __init__(self) -> None:
        self._made: dict[str, str] = {}

    def start(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            _, hard = resource.getrlimit(resource.RLIMIT_MSGQUEUE)
            want = 1 << 30 if hard == resource.RLIM_INFINITY else hard
            resource.setrlimit(resource.RLIMIT_MSGQUEUE, (want, max(want, hard)))

    def unsupported(self, spec: Spec) -> str | None:
        biggest = self._limit("msgsize_max", 8192)
        if spec.max_bytes > biggest:
            return (f"messages of {spec.max_bytes} B exceed this host's msgsize_max ({biggest} B, "
                    "/proc/sys/fs/mqueue/msgsize_max; the benchmark does not change the host)")
        try:
            self.close(self.open(spec))
        except Exception as exc:  # noqa: BLE001 - the kernel's reason is the report's
            return f"{type(exc).__name__}: {exc} (queue of {self._depth(spec)} × {spec.max_bytes} B)"
        return None

    @staticmethod
    def _limit(name: str, default: int) -> int:
        try:
            with open(f"/proc/sys/fs/mqueue/{name}") as f:
                return int(f.read())
        except (OSError, ValueError):
            return default

    def _depth(self, spec: Spec) -> int:
        """The channel's depth, within the system's msg_max (raising it changes the host)."""
        return max(1, min(spec.depth, (8 << 20) // spec.max_bytes, self._limit("msg_max", 10)))

    def open(self, spec: Spec) -> str:
        import posix_ipc  # type: ignore[import-not-found,import-untyped,unused-ignore]

        mq = posix_ipc.MessageQueue(None, posix_ipc.O_CREX, max_messages=self._depth(spec),
                                    max_message_size=spec.max_bytes)
        name: str = mq.name
        mq.close()
        return name

    def close(self, name: str) -> None:
        import posix_ipc

        with contextlib.suppress(posix_ipc.ExistentialError):
            posix_ipc.unlink_message_queue(name)

    def _attach(self, name: str, stack: contextlib.ExitStack) -> Any:
        import posix_ipc

        mq = posix_ipc.MessageQueue(name)
        stack.callback(mq.close)
        return mq

    def sender(self, name: str, stack: contextlib.ExitStack) -> Sender:
        return _MqSender(self._attach(name, stack))

    def receiver(self, name: str, stack: contextlib.ExitStack) -> Receiver:
        return _MqReceiver(self._attach(name, stack))
