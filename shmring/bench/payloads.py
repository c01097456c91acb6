"""What the benchmark moves, and how the receiving side proves it arrived intact.

64 B messages: a pool of 2**16 distinct random messages, message i = pool[i % 2**16],
each starting with its index (8 bytes LE); the consumer compares every message whole
with the one it expects, so loss, duplication, reordering and corruption all show.

Frames (64 KiB, 1 MiB): random bytes whose first and last 8-byte words carry the
frame's sequence number; the consumer checks both stamps and the frame's checksum,
the wrapping sum of its 64-bit words (expected: the sum of the unstamped words plus
twice the sequence), which reads every byte of the frame.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

POOL = 1 << 16
MASK = POOL - 1
MSG = 64
BATCH = 256  # messages per batch (put_many / get_many, or one packed message)
END = b"END"  # end of stream for transports without one of their own (never 64 B long)


class DataError(Exception):
    """A message was lost, duplicated, reordered or corrupted."""


@functools.cache
def pool64() -> np.ndarray:
    """(POOL + BATCH, 64) uint8; row i starts with i % POOL.  The extra rows repeat
    the first ones, so a batch starting at any multiple of BATCH is one slice."""
    a = np.random.default_rng(0x5EED).integers(0, 256, (POOL, MSG), dtype=np.uint8)
    a.view("<u8")[:, 0] = np.arange(POOL, dtype=np.uint64)
    return np.concatenate([a, a[:BATCH]])


@functools.cache
def msgs64() -> list[bytes]:
    return [row.tobytes() for row in pool64()[:POOL]]


@functools.cache
def blocks64() -> list[np.ndarray]:
    """The pool as POOL // BATCH batches of (BATCH, 64): batch k holds messages k*BATCH.."""
    p = pool64()
    return [p[k : k + BATCH] for k in range(0, POOL, BATCH)]


@functools.cache
def block_bytes64() -> list[bytes]:
    """Each whole batch's bytes, for comparing a whole batch without slicing flat64()."""
    return [b.tobytes() for b in blocks64()]


@functools.cache
def flat64() -> bytes:
    """The pool's bytes, message after message (plus the repeated rows)."""
    return pool64().tobytes()


@functools.cache
def frame_src(nbytes: int) -> np.ndarray:
    return np.random.default_rng(0xF7A3E + nbytes).integers(0, 256, nbytes, dtype=np.uint8)


@functools.cache
def frame_base_sum(nbytes: int) -> int:
    """The wrapping word sum of a frame with both stamp words zeroed."""
    w = frame_src(nbytes).view(np.uint64).copy()
    w[0] = w[-1] = 0
    return int(np.add.reduce(w, dtype=np.uint64))


def stamp(frame: np.ndarray, i: int) -> None:
    w = frame.view(np.uint64)
    w[0] = w[-1] = i


def frame_checker(nbytes: int) -> Callable[[np.ndarray, int], None]:
    """check(frame, i): stamps and checksum of frame i, reading every byte once."""
    base, add = frame_base_sum(nbytes), np.add.reduce
    u64, mask = np.uint64, (1 << 64) - 1

    def check(frame: np.ndarray, i: int) -> None:
        w = frame.view(u64)
        if len(w) * 8 != nbytes:
            raise DataError(f"frame {i}: {len(w) * 8} bytes, expected {nbytes}")
        if w[0] != i or w[-1] != i:
            raise DataError(f"frame {i}: stamps {int(w[0])}/{int(w[-1])}: lost, reordered or torn")
        if int(add(w, dtype=u64)) != (base + 2 * i) & mask:
            raise DataError(f"frame {i}: checksum mismatch: corrupted")

    return check


def many_msgs(p: int, total: int) -> list[bytes]:
    """Many to many: producer p's messages 0..total-1: (p, s, 48 bytes of pool row 2s+p)."""
    rows = pool64()
    out = []
    for s in range(total):
        body = rows[(2 * s + p) & MASK, 16:].tobytes()
        out.append(p.to_bytes(8, "little") + s.to_bytes(8, "little") + body)
    return out


def many_verify(got: list[bytes], producers: int, total: int) -> list[tuple[int, int, bytes]]:
    """A many-to-many consumer's check of what it got: whole content of each (p, s), and each
    producer's sequences increasing.  Its account per producer: (count, sum, bitmap)."""
    for k, m in enumerate(got):
        if len(m) != MSG:
            raise DataError(f"message {k} received is {len(m)} bytes: corrupted")
    a = np.frombuffer(b"".join(got), np.uint8).reshape(len(got), MSG)
    words = a.view("<u8")
    pid, seq = words[:, 0], words[:, 1]
    if np.any((pid >= producers) | (seq >= total)):
        raise DataError("a message with an impossible producer or sequence: corrupted")
    rows = ((2 * seq + pid) & MASK).astype(np.intp)
    if np.any(a[:, 16:] != pool64()[rows, 16:]):
        raise DataError("a message's content does not match its (producer, sequence): corrupted")
    out = []
    for p in range(producers):
        s = seq[pid == p].astype(np.int64)
        if np.any(np.diff(s) <= 0):
            raise DataError(f"producer {p}: sequences out of order at one consumer: reordered or duplicated")
        bits = np.zeros(total, bool)
        bits[s] = True
        out.append((len(s), int(s.sum()), np.packbits(bits).tobytes()))
    return out


def many_check(accounts: list[list[tuple[int, int, bytes]]], producers: int, total: int) -> None:
    """Every sequence of every producer reached exactly one consumer."""
    for p in range(producers):
        seen = np.zeros(total, np.int64)
        for acc in accounts:
            seen += np.unpackbits(np.frombuffer(acc[p][2], np.uint8), count=total)
        lost, dup = int((seen == 0).sum()), int((seen > 1).sum())
        count = sum(acc[p][0] for acc in accounts)
        if lost or dup or count != total:
            raise DataError(f"producer {p}: {lost} lost, {dup} duplicated, {count} counted of {total}")
