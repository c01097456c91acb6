"""One producer or consumer of a crash trial (tests/test_crash.py), as its own interpreter.

    python crash_worker.py produce NAME LEDGER PRODUCER_ID COUNT MODE
    python crash_worker.py consume NAME LEDGER CONSUMER_ID NPRODUCERS COUNT MODE

The ledger is a file both sides map (see Ledger): a producer stores, for its
stream, `attempting` before a put-side call and `acked` once it returned, so
the parent knows which messages had been published (must arrive) and which were
in flight when it died (may arrive).  A consumer marks every message it got, one
byte per (consumer, producer, seq), after the get-side call returned; it checks
each message's crc and that each producer's sequence numbers grow, and exits
with status 2 if one does not.  A peer's death is the parent's business: a
survivor that gets PeerDied keeps trying (the parent may start a replacement),
and a consumer ends at EOFError once the parent shuts the ring down.
MODE picks the calls: put | reserve | put_many; get | recv | get_many.
"""
from __future__ import annotations

import mmap
import struct
import sys
import time

import shmring
from shmring.testing import check_payload, payload

SIZE = 32        # bytes per message
BATCH = 4        # put_many / get_many
DEADLINE = 30.0  # a survivor that cannot finish by then fails the trial


class Ledger:
    """int64 acked[P], attempting[P]; then uint8 got[C][P][N]."""

    def __init__(self, path: str, nprod: int, ncons: int, count: int) -> None:
        self.nprod, self.count = nprod, count
        with open(path, "r+b") as f:
            self.mm = mmap.mmap(f.fileno(), self.size(nprod, ncons, count))

    @staticmethod
    def size(nprod: int, ncons: int, count: int) -> int:
        return 16 * nprod + ncons * nprod * count

    def set_acked(self, p: int, n: int) -> None:
        struct.pack_into("<q", self.mm, 8 * p, n)

    def set_attempting(self, p: int, n: int) -> None:
        struct.pack_into("<q", self.mm, 8 * (self.nprod + p), n)

    def mark(self, c: int, p: int, seq: int) -> None:
        i = 16 * self.nprod + (c * self.nprod + p) * self.count + seq
        self.mm[i] = self.mm[i] + 1


def retrying(call, *args):  # type: ignore[no-untyped-def]
    """Run a blocking ring call; PeerDied means 'wait for a replacement'."""
    end = time.monotonic() + DEADLINE
    while True:
        try:
            return call(*args, timeout=1)
        except shmring.PeerDied:
            if time.monotonic() > end:
                raise
            time.sleep(0.01)
        except TimeoutError:
            if time.monotonic() > end:
                raise


def produce(ring: shmring.Ring, led: Ledger, p: int, count: int, mode: str) -> None:
    seq = 0
    while seq < count:
        if mode == "put_many":
            batch = [payload(p, s, SIZE) for s in range(seq, min(seq + BATCH, count))]
            led.set_attempting(p, seq + len(batch))
            seq += retrying(ring.put_many, batch)
        else:
            msg = payload(p, seq, SIZE)
            led.set_attempting(p, seq + 1)
            if mode == "reserve":
                def put_reserved(m: bytes, timeout: float) -> None:
                    with ring.reserve(timeout=timeout, nbytes=len(m)) as view:
                        view[:] = memoryview(m)
                retrying(put_reserved, msg)
            else:
                retrying(ring.put, msg)
            seq += 1
        led.set_acked(p, seq)


def consume(ring: shmring.Ring, led: Ledger, c: int, mode: str) -> int:
    last: dict[int, int] = {}
    bad = 0
    while True:
        try:
            if mode == "get_many":
                msgs = retrying(ring.get_many, BATCH)
            elif mode == "recv":
                def recv_copy(timeout: float) -> list[bytes]:
                    with ring.recv(timeout=timeout) as view:
                        return [bytes(view)]
                msgs = retrying(recv_copy)
            else:
                msgs = [retrying(ring.get)]
        except EOFError:
            return bad
        for m in msgs:
            try:
                p, seq = check_payload(m)
            except ValueError:
                bad += 1
                continue
            if seq <= last.get(p, -1):
                bad += 1  # reordered or duplicated within this consumer
            last[p] = seq
            led.mark(c, p, seq)


def main() -> None:
    role, name, path = sys.argv[1:4]
    with shmring.attach(name) as ring:
        if role == "produce":
            p, count, mode = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
            nprod, ncons = int(sys.argv[7]), int(sys.argv[8])
            led = Ledger(path, nprod, ncons, count)
            print("ready", flush=True)
            produce(ring, led, p, count, mode)
            return
        c, nprod, count, mode, ncons = (int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]),
                                        sys.argv[7], int(sys.argv[8]))
        led = Ledger(path, nprod, ncons, count)
        print("ready", flush=True)
        bad = consume(ring, led, c, mode)
    sys.exit(2 if bad else 0)


if __name__ == "__main__":
    main()
