"""Smoke test of an installed shmring: cibuildwheel's test-command runs it against each
wheel, and tests/test_packaging.py against a fresh install of the sdist and the wheel.

It imports shmring, creates a ring, and has a second, unrelated interpreter attach by
name and put one message, which this process then reads back.  Exit status 0 and a
last line "smoke ok ..." when the message arrived intact.
"""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import shmring

CHILD = """
import os, sys
import shmring
ring = shmring.attach(sys.argv[1])
ring.put(f"hello from pid {os.getpid()}".encode())
ring.close()
print(os.getpid())
"""


def main() -> int:
    print(f"shmring {shmring.__version__} from {os.path.dirname(shmring.__file__)}")
    name = f"smoke-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    ring = shmring.create(name, capacity=2, slot_size=64)
    try:
        child = subprocess.run([sys.executable, "-c", CHILD, name], capture_output=True, text=True, timeout=120)
        if child.returncode != 0:
            print(f"smoke FAILED: the child exited {child.returncode}:\n{child.stderr}")
            return 1
        msg = ring.get(timeout=10)
    finally:
        ring.unlink()
        ring.close()
    expected = f"hello from pid {child.stdout.strip()}".encode()
    if msg != expected:
        print(f"smoke FAILED: got {msg!r}, expected {expected!r}")
        return 1
    print(f"smoke ok: one message from another process through ring {name!r}: {msg.decode()!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
