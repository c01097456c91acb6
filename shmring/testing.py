"""Helpers for testing code that uses shmring (shipped, like iceoryx2's testing module)."""
from __future__ import annotations

import os
import uuid
import zlib

SHM_DIR = "/dev/shm"
PREFIX = "shmring."


def unique_name(tag: str = "t") -> str:
    """A ring name no other process or test run will pick."""
    return f"{tag}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def segments() -> set[str]:
    """Names of the rings present in /dev/shm now."""
    try:
        return {f[len(PREFIX):] for f in os.listdir(SHM_DIR) if f.startswith(PREFIX)}
    except FileNotFoundError:
        return set()


def payload(producer: int, seq: int, size: int) -> bytes:
    """A self-verifying message: producer id, sequence, filler, crc32 (size >= 16)."""
    head = producer.to_bytes(4, "little") + seq.to_bytes(8, "little")
    fill = bytes((seq + i) & 0xFF for i in range(size - 16)) if size > 16 else b""
    body = head + fill
    return body + zlib.crc32(body).to_bytes(4, "little")


def check_payload(msg: bytes) -> tuple[int, int]:
    """(producer, seq) of a message made by payload(); ValueError if corrupted."""
    body, crc = msg[:-4], int.from_bytes(msg[-4:], "little")
    if len(msg) < 16 or zlib.crc32(body) != crc:
        raise ValueError(f"corrupted message of {len(msg)} bytes")
    return int.from_bytes(body[:4], "little"), int.from_bytes(body[4:12], "little")
