"""One side of a cross-process exactly-once run, as its own interpreter.

    python xproc_worker.py produce NAME COUNT MODE SIZE [CPU]
    python xproc_worker.py consume NAME COUNT MODE SIZE [CPU]

MODE: single (put/get), batch (put_many/get_many), zerocopy (reserve/recv),
array (an array ring, put/get), array-batch (an array ring, put_many/get_many).  Every message carries its sequence number and
a crc32; the consumer prints one JSON line of counts.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import zlib

import numpy as np

import shmring

BATCH = 64
TIMEOUT = 30.0  # no single wait in a healthy run comes near this


def message(seq: int, size: int) -> bytes:
    body = struct.pack("<Q", seq) + bytes((seq * 7 + i) & 0xFF for i in range(size - 12))
    return body + struct.pack("<I", zlib.crc32(body))


def array_message(seq: int, n: int) -> np.ndarray:
    a = np.arange(seq, seq + n, dtype=np.uint64)
    a[-1] = zlib.crc32(a[:-1].tobytes())
    return a


def produce(ring: shmring.Ring, count: int, mode: str, size: int) -> None:
    if mode == "array":
        n = ring.shape[0]  # type: ignore[index]
        for seq in range(count):
            ring.put(array_message(seq, n), timeout=TIMEOUT)
    elif mode == "array-batch":
        n = ring.shape[0]  # type: ignore[index]
        for start in range(0, count, BATCH):
            batch = np.stack([array_message(s, n) for s in range(start, min(start + BATCH, count))])
            assert ring.put_many(batch, timeout=TIMEOUT) == len(batch)
    elif mode == "batch":
        for start in range(0, count, BATCH):
            batch = [message(s, size) for s in range(start, min(start + BATCH, count))]
            assert ring.put_many(batch, timeout=TIMEOUT) == len(batch)
    elif mode == "zerocopy":
        for seq in range(count):
            with ring.reserve(timeout=TIMEOUT, nbytes=size) as slot:
                slot[:] = np.frombuffer(message(seq, size), np.uint8)
    else:
        for seq in range(count):
            ring.put(message(seq, size), timeout=TIMEOUT)
    ring.shutdown()


def consume(ring: shmring.Ring, count: int, mode: str) -> dict[str, int]:
    seen = bytearray(count)
    stats = {"received": 0, "corrupted": 0, "duplicated": 0, "reordered": 0, "out_of_range": 0}
    last = -1

    def account(seq: int, ok: bool) -> None:
        nonlocal last
        stats["received"] += 1
        if not ok:
            stats["corrupted"] += 1
            return
        if not 0 <= seq < count:
            stats["out_of_range"] += 1
        elif seen[seq]:
            stats["duplicated"] += 1
        else:
            if seq < last:
                stats["reordered"] += 1
            seen[seq] = 1
            last = max(last, seq)

    def check_array(a: np.ndarray) -> None:
        account(int(a[0]), int(a[-1]) == zlib.crc32(a[:-1].tobytes())
                and bool((np.diff(a[:-1]) == 1).all()))

    def check(msg: bytes) -> None:
        body, crc = msg[:-4], struct.unpack("<I", msg[-4:])[0]
        account(struct.unpack("<Q", body[:8])[0], zlib.crc32(body) == crc)

    try:
        while True:
            if mode == "array":
                check_array(ring.get(timeout=TIMEOUT))
            elif mode == "array-batch":
                for a in ring.get_many(BATCH, timeout=TIMEOUT):
                    check_array(a)
            elif mode == "batch":
                for msg in ring.get_many(BATCH, timeout=TIMEOUT):
                    check(msg)
            elif mode == "zerocopy":
                with ring.recv(timeout=TIMEOUT) as view:
                    check(view.tobytes())
            else:
                check(ring.get(timeout=TIMEOUT))
    except EOFError:
        pass
    stats["verified"] = sum(seen)
    stats["lost"] = count - stats["verified"]
    return stats


def main() -> None:
    role, name, count, mode, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    if len(sys.argv) > 6 and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {int(sys.argv[6])})
    with shmring.attach(name) as ring:
        if role == "produce":
            produce(ring, count, mode, size)
        else:
            print(json.dumps(consume(ring, count, mode)), flush=True)


if __name__ == "__main__":
    main()
