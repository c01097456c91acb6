"""Byte streams: os.pipe, an AF_UNIX socketpair, TCP over loopback.

One framing for all three: a 4-byte length prefix, then the message; one write per
message (a batch: one write of the packed batch).  The reader parses messages out of
64 KiB reads, and reads a frame's body straight into its buffer (os.readv).  The end of
the stream is the writer closing (sockets: shutdown(SHUT_WR)), seen as a read of 0 bytes.
"""
from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..payloads import DataError
from ..transport import Receiver, Sender, Spec, Transport

CHUNK = 1 << 16
_U32 = struct.Struct("<I")


class _Fd:
    """A file descriptor closed at most once (a second close could hit a reused number)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def _write_all(fd: int, parts: list[Any]) -> None:  # parts: buffers
    """os.writev of parts, continuing after a short write."""
    done = os.writev(fd, parts)
    total = sum(memoryview(p).nbytes for p in parts)
    if done == total:
        return
    for p in parts:
        v = memoryview(p).cast("B")
        if done >= len(v):
            done -= len(v)
            continue
        v, done = v[done:], 0
        while v:
            v = v[os.write(fd, v):]


def _read_exact(fd: int, mv: memoryview) -> None:
    got, n = 0, len(mv)
    while got < n:
        k = os.readv(fd, [mv[got:]])
        if k == 0:
            raise DataError("end of stream inside a message: data lost")
        got += k


class StreamSender(Sender):
    def __init__(self, end: _Fd, is_socket: bool) -> None:
        self.fd, self._end, self.is_socket = end.fd, end, is_socket
        fd, write, pack = end.fd, os.write, _U32.pack

        def send(msg: Any) -> None:
            if write(fd, msg) != len(msg):  # a pipe never writes <= PIPE_BUF short
                raise OSError("short write")

        self.send = send
        self._pack = pack

    def encode(self, payload: bytes) -> bytes:
        return self._pack(len(payload)) + payload

    def send_batch(self, batch: Any) -> None:
        _write_all(self.fd, [batch])

    def send_frame(self, frame: np.ndarray) -> None:
        _write_all(self.fd, [self._pack(frame.nbytes), frame.data])

    def end(self) -> None:
        if self.is_socket:
            with socket.socket(fileno=os.dup(self.fd)) as s:
                s.shutdown(socket.SHUT_WR)
        self._end.close()


class StreamReceiver(Receiver):
    def __init__(self, fd: int, max_bytes: int) -> None:
        self.fd, self.max_bytes = fd, max_bytes
        self.buf, self.pos = b"", 0  # read but not yet taken

    def messages(self) -> Iterator[Any]:
        fd, read, unpack, limit = self.fd, os.read, _U32.unpack_from, self.max_bytes
        b, p = self.buf, self.pos
        while True:
            if len(b) - p >= 4:
                (n,) = unpack(b, p)
                if n > limit:
                    raise DataError(f"impossible length {n}: corrupted")
                e = p + 4 + n
                if e <= len(b):
                    m, p = b[p + 4 : e], e
                    self.pos = p
                    yield m
                    continue
            chunk = read(fd, CHUNK)
            if not chunk:
                raise DataError("end of stream: data lost")
            b, p = b[p:] + chunk, 0
            self.buf, self.pos = b, 0

    def recv(self) -> Any:
        return next(self.messages())

    def frames(self, nbytes: int) -> Iterator[np.ndarray]:
        if self.pos != len(self.buf):
            raise DataError("bytes left over before a frame: corrupted")
        hdr, dst = bytearray(4), np.empty(nbytes, np.uint8)
        hmv, dmv = memoryview(hdr), dst.data
        while True:
            _read_exact(self.fd, hmv)
            (n,) = _U32.unpack(hdr)
            if n != nbytes:
                raise DataError(f"frame of impossible length {n}: corrupted")
            _read_exact(self.fd, dmv)
            yield dst

    def expect_end(self) -> None:
        if self.pos != len(self.buf) or os.read(self.fd, CHUNK):
            raise DataError("data after the last message: duplicated data")


class StreamTransport(Transport):
    """A channel is [consumer's fd, producer's fd]; each child closes the other's."""

    is_socket = True

    def open(self, spec: Spec) -> list[Any]:
        return [*self._pair(), spec.max_bytes]

    def _pair(self) -> tuple[int, int]:
        raise NotImplementedError

    def forked(self, ch: list[Any]) -> None:
        self.close(ch)  # only the children hold the ends now: the producer's close is EOF

    def close(self, ch: list[Any]) -> None:
        for k in (0, 1):
            if ch[k] >= 0:
                fd, ch[k] = ch[k], -1
                os.close(fd)

    def sender(self, ch: list[Any], stack: contextlib.ExitStack) -> Sender:
        os.close(ch[0])
        end = _Fd(ch[1])
        stack.callback(end.close)
        return StreamSender(end, self.is_socket)

    def receiver(self, ch: list[Any], stack: contextlib.ExitStack) -> Receiver:
        os.close(ch[1])
        end = _Fd(ch[0])
        stack.callback(end.close)
        return StreamReceiver(end.fd, ch[2])


class PipeTransport(StreamTransport):
    name = "os.pipe"
    is_socket = False

    def __init__(self, gap_us: float = 0.0) -> None:
        self.gap_us, self.in_quick = gap_us, not gap_us  # paced: the sleeping rings' reference

    @property
    def label(self) -> str:
        return f"os.pipe, {self.gap_us:g} µs between pings" if self.gap_us else self.name

    def applies(self, workload: str) -> bool:
        return not self.gap_us or workload == "pingpong64"

    def _pair(self) -> tuple[int, int]:
        return os.pipe()


class SocketPairTransport(StreamTransport):
    name = "AF_UNIX socketpair"

    def _pair(self) -> tuple[int, int]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return a.detach(), b.detach()


class TcpTransport(StreamTransport):
    name = "TCP loopback"

    @property
    def label(self) -> str:
        return "TCP loopback (127.0.0.1, TCP_NODELAY)"

    def _pair(self) -> tuple[int, int]:
        with socket.create_server(("127.0.0.1", 0)) as srv:
            client = socket.create_connection(srv.getsockname()[:2])
            server, _ = srv.accept()
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(True)
        return server.detach(), client.detach()
