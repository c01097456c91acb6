"""The one interface every transport implements.

A transport makes one-way channels.  Per trial the runner calls `open(spec)` in the
parent (before forking), then in the producer process `sender(channel, stack)` and in
the consumer process `receiver(channel, stack)`, `forked(channel)` in the parent once
the children exist, and `close(channel)` in the parent at the end, whatever happened.
A round trip uses two channels (ping and pong), each with its own sender and receiver.

An adapter needs only `Sender.send` / `Receiver.recv` (one message, bytes-like); the
defaults build the rest on them: batches are BATCH messages packed into one message,
frames are sent as one message, and the end of the stream is an END message.  An
adapter overrides what its transport does natively: shmring writes frames in place and
batches with put_many/get_many, a pipe ends its stream by closing, and so on.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .payloads import END, DataError

CALL_TIMEOUT = 10.0  # seconds, for the blocking calls that take one


@dataclass(frozen=True)
class Spec:
    """What a channel carries: messages of up to max_bytes, and how many of them at most
    are in flight (the ring's capacity, a queue's bound)."""

    workload: str
    max_bytes: int
    frame: bool  # frames: fixed-size arrays of max_bytes
    depth: int  # suggested bound on messages in flight
    fanin: int = 1  # many to many: producers and consumers sharing the channel
    fanout: int = 1


class Sender:
    """The producer's end of a channel."""

    send: Callable[[Any], None]  # one message: an item of wire() or encode(), or END

    def encode(self, payload: bytes) -> Any:
        """A 64 B payload as this transport sends it (e.g. with a length prefix)."""
        return payload

    def wire(self, payloads: list[bytes]) -> list[Any]:
        """The payloads encoded once, before the clock."""
        return [self.encode(p) for p in payloads]

    def wire_batches(self, blocks: list[np.ndarray]) -> list[Any]:
        """Batches (BATCH, 64) as send_batch takes them: by default one packed message."""
        return [self.encode(b.tobytes()) for b in blocks]

    def send_batch(self, batch: Any) -> None:
        self.send(batch)

    def send_frame(self, frame: np.ndarray) -> None:
        """Send a frame (a uint8 array the caller reuses once this returns)."""
        self.send(frame)

    def end(self) -> None:
        """Tell the consumer no more messages come."""
        self.send(self.encode(END))

    def end_shared(self) -> None:
        """Many to many: this producer is done (each consumer stops at its first END)."""
        self.end()


class Receiver:
    """The consumer's end of a channel."""

    recv: Callable[[], Any]  # the next message, bytes-like

    def messages(self) -> Iterator[Any]:
        """The 64 B payloads, one after the other (compared with == to bytes)."""
        recv = self.recv
        while True:
            yield recv()

    def batches(self) -> Iterator[Any]:
        """Runs of whole 64 B payloads, as one bytes-like object each."""
        return self.messages()

    def frames(self, nbytes: int) -> Iterator[np.ndarray]:
        """Each frame as a uint8 array, valid until the next one is taken."""
        recv, frombuffer, u8 = self.recv, np.frombuffer, np.uint8
        while True:
            yield frombuffer(recv(), u8)

    def expect_end(self) -> None:
        """The stream ends here: anything else is data the producer never sent."""
        m = self.recv()
        if bytes(m) != END:
            raise DataError(f"a message ({len(m)} bytes) after the last one: duplicated data")


class Transport:
    """A way to move messages between processes: one adapter per peer."""

    name = "?"
    module: str | None = None  # the optional package it needs (import name)
    extra = "bench"  # pip install shmring[<extra>] brings it
    solo = False  # a one-process reference (np.copyto): producer only
    shmring = False  # this project's rings (compared against the best peer)
    in_quick = True
    multi = False  # many producers and consumers may share one channel
    gap_us = 0.0  # round trips: the initiator's pause before each ping

    @property
    def label(self) -> str:
        return self.name

    def skip_reason(self) -> str | None:
        """None if usable here, else why not (checked once per run, in the parent)."""
        if self.module is not None:
            try:
                __import__(self.module)
            except ImportError as exc:
                return f"{self.module} is not installed ({exc}); pip install 'shmring[{self.extra}]'"
        return None

    def applies(self, workload: str) -> bool:
        """False: this row does not exist for the workload (e.g. another row covers it)."""
        return True

    def unsupported(self, spec: Spec) -> str | None:
        """None if this transport can carry spec, else why not (shown in the report)."""
        return None

    def start(self) -> None:
        """Once per run, in the parent, before any trial (e.g. start a daemon)."""

    def stop(self) -> None:
        """Once per run, in the parent, after every trial."""

    def open(self, spec: Spec) -> Any:
        return spec

    def forked(self, ch: Any) -> None:
        pass

    def close(self, ch: Any) -> None:
        pass

    def sender(self, ch: Any, stack: contextlib.ExitStack) -> Sender:
        raise NotImplementedError

    def receiver(self, ch: Any, stack: contextlib.ExitStack) -> Receiver:
        raise NotImplementedError
