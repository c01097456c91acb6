"""One producer or consumer of a many-to-many run, as its own interpreter.

    python many_worker.py produce NAME PRODUCER_ID COUNT
    python many_worker.py consume NAME OUT.npy

Messages are (producer id, sequence, crc32).  A consumer checks each crc and
that every producer's sequence numbers reach it in increasing order, and saves
what it got as an array of (producer, seq) rows for the parent, which checks
that the union over all consumers is every message exactly once.
"""
from __future__ import annotations

import struct
import sys
import zlib

import numpy as np

import shmring

MSG = struct.Struct("<QQ")
TIMEOUT = 60.0


def main() -> None:
    role, name = sys.argv[1], sys.argv[2]
    with shmring.attach(name) as ring:
        if role == "produce":
            pid, count = int(sys.argv[3]), int(sys.argv[4])
            batch = []
            for seq in range(count):
                body = MSG.pack(pid, seq)
                batch.append(body + struct.pack("<I", zlib.crc32(body)))
                if len(batch) == 16 or seq == count - 1:
                    if seq % 32 < 16:  # half the messages one by one, half in batches
                        for m in batch:
                            ring.put(m, timeout=TIMEOUT)
                    else:
                        assert ring.put_many(batch, timeout=TIMEOUT) == len(batch)
                    batch = []
            return
        got: list[tuple[int, int]] = []
        last: dict[int, int] = {}
        bad = 0
        for msg in ring:
            body, crc = msg[:16], struct.unpack("<I", msg[16:])[0]
            if len(msg) != 20 or zlib.crc32(body) != crc:
                bad += 1
                continue
            p, seq = MSG.unpack(body)
            if seq <= last.get(p, -1):
                bad += 1  # reordered or duplicated within this consumer
            last[p] = seq
            got.append((p, seq))
        np.save(sys.argv[3], np.array(got, dtype=np.int64).reshape(-1, 2))
        print(bad, flush=True)


if __name__ == "__main__":
    main()
