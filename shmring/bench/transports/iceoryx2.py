"""iceoryx2 publish-subscribe, Slice[c_uint8] payloads, through its loan API.

The publisher loans a sample from its own shared-memory segment, writes the message
into it (ctypes.memmove) and sends it; the subscriber busy-polls receive() (iceoryx2's
publish-subscribe has no blocking receive: its event service is separate), copies a
64 B message out as bytes, and reads a frame in place (a numpy view of the sample).
Delivery is lossless: safe overflow off, publisher backpressure RetryUntilDelivered,
subscriber buffer = the channel's depth."""
from __future__ import annotations

import contextlib
import ctypes
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..transport import CALL_TIMEOUT, Receiver, Sender, Spec, Transport


def _service(node: Any, name: str, depth: int, create: bool) -> Any:
    """The producer creates the service, the consumer opens it once it exists (both
    calling open_or_create at once sometimes left one waiting for seconds here)."""
    import iceoryx2 as iox2  # type: ignore[import-not-found,import-untyped,unused-ignore]

    def builder() -> Any:
        return (node.service_builder(iox2.ServiceName.new(name))
                .publish_subscribe(iox2.Slice[ctypes.c_uint8])
                .enable_safe_overflow(False).history_size(0)
                .subscriber_max_buffer_size(depth).max_publishers(1).max_subscribers(1))

    if create:
        return builder().create()
    deadline = time.monotonic() + CALL_TIMEOUT
    while True:
        try:
            return builder().open()
        except Exception:  # noqa: BLE001 - not created yet: iceoryx2 raises its own error types
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def _node() -> Any:
    import iceoryx2 as iox2

    iox2.set_log_level_from_env_or(iox2.LogLevel.Error)
    node = (iox2.NodeBuilder.new().signal_handling_mode(iox2.SignalHandlingMode.Disabled)
            .create(iox2.ServiceType.Ipc))
    return node


class _IoxSender(Sender):
    def __init__(self, pub: Any) -> None:
        loan, memmove = pub.loan_slice_uninit, ctypes.memmove

        def send(msg: Any) -> None:
            n = len(msg)
            s = loan(n)
            memmove(s.payload_ptr, msg, n)
            s.assume_init().send()

        self.send = send
        self._loan = loan

    def send_frame(self, frame: np.ndarray) -> None:
        s = self._loan(frame.nbytes)
        ctypes.memmove(s.payload_ptr, frame.ctypes.data, frame.nbytes)
        s.assume_init().send()


class _IoxReceiver(Receiver):
    def __init__(self, sub: Any) -> None:
        self.receive = sub.receive

    def _sample(self) -> Any:
        receive = self.receive
        while (s := receive()) is None:
            pass
        return s

    def recv(self) -> Any:
        s = self._sample()
        try:
            return ctypes.string_at(s.payload_ptr, s.header.number_of_elements)
        finally:
            s.delete()

    def messages(self) -> Iterator[Any]:
        receive, string_at = self.receive, ctypes.string_at
        while True:
            while (s := receive()) is None:
                pass
            m = string_at(s.payload_ptr, s.header.number_of_elements)
            s.delete()
            yield m

    def frames(self, nbytes: int) -> Iterator[np.ndarray]:
        receive, arr = self.receive, ctypes.c_uint8 * nbytes
        while True:
            while (s := receive()) is None:
                pass
            if s.header.number_of_elements != nbytes:
                raise OSError("frame of the wrong length")
            try:
                yield np.frombuffer(memoryview(arr.from_address(s.payload_ptr)), np.uint8)
            finally:
                s.delete()  # the sample goes back only once the consumer is done with it


class Iceoryx2Transport(Transport):
    name = "iceoryx2 pub-sub (loan)"
    module = "iceoryx2"

    def __init__(self) -> None:
        self.n = 0

    def open(self, spec: Spec) -> tuple[str, int, int]:
        self.n += 1
        size = spec.max_bytes if spec.workload != "batch64" else 64 * 256
        return f"shmring-bench/{os.getpid()}/c{self.n}", size, max(2, min(spec.depth, 64))

    def sender(self, ch: tuple[str, int, int], stack: contextlib.ExitStack) -> Sender:
        import iceoryx2 as iox2

        name, size, depth = ch
        svc = _service(_node(), name, depth, create=True)
        pub = (svc.publisher_builder().initial_max_slice_len(size)
               .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered).create())
        stack.callback(pub.delete)
        return _IoxSender(pub)

    def receiver(self, ch: tuple[str, int, int], stack: contextlib.ExitStack) -> Receiver:
        name, _, depth = ch
        sub = _service(_node(), name, depth, create=False).subscriber_builder().buffer_size(depth).create()
        stack.callback(sub.delete)
        return _IoxReceiver(sub)
