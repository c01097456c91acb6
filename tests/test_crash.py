"""Crash harness: producers and consumers killed with SIGKILL, at named crash points
(csrc/crash.c, armed by $SHMRING_CRASH) and at random moments, in the middle of a
stream between unrelated processes.

After each kill the survivors (plus a replacement for a killed consumer) must finish
within a bound, and the ledger (tests/crash_worker.py) must show:
  - every message whose put-side call had returned arrived exactly once, intact and
    in order per producer, except at most what a killed consumer had taken and not
    yet recorded (it died holding it);
  - a message in flight in a killed producer arrived at most once; nothing it had not
    yet tried arrived at all;
  - at a named crash point, exactly the messages that point puts in flight are
    missing, and the ring's info()["lost"] counts the ones it gave up.
The default run makes 23 kills; `--soak` makes 240 more (80 at crash points).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import shmring

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crash_worker import BATCH, Ledger  # noqa: E402

WORKER = str(Path(__file__).resolve().parent / "crash_worker.py")
COUNT = 3000          # messages per producer
FINISH_BOUND = 20.0   # seconds the survivors may take after the kill


@dataclass
class Trial:
    kind: str
    victim: str                 # "producer" | "consumer"
    point: str | None = None    # a named crash point, or None: SIGKILL at a random moment
    put: str = "put"
    get: str = "get"
    capacity: int = 4
    missing: int | None = None  # exact count of messages a crash point must lose
    unlost: int | None = None   # how many of those the ring does not count in info()["lost"]


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def wait_ready(p: subprocess.Popen[str]) -> None:
    line = p.stdout.readline() if p.stdout else ""
    assert line.strip() == "ready", p.stderr.read() if p.stderr else ""


def run_trial(t: Trial, name: str, tmp: Path, rng: random.Random) -> dict[str, int]:
    nprod = ncons = 1 if t.kind == "spsc" else 2
    slots = ncons + 1   # the consumers, then one replacement
    ledger = tmp / f"ledger-{name}"
    ledger.write_bytes(bytes(Ledger.size(nprod, slots, COUNT)))
    procs: list[subprocess.Popen[str]] = []
    ring = shmring.create(name, t.capacity, slot_size=32, kind=t.kind)
    try:
        # A crash point fires on this pass.  A batch point only passes in a claim of 2+
        # positions: a producer's first put_many, on the empty ring, is sure to be one
        # (later ones, behind a full ring, are mostly single); a consumer's get_many
        # takes what a full ring holds.
        if t.point == "mpmc-put-many-half":
            hit = 1
        elif t.point and t.point.endswith("-half"):
            hit = rng.randrange(1, 8)
        else:
            hit = rng.randrange(40, COUNT // 4)

        def env_for(role: str, i: int) -> dict[str, str]:
            e = dict(os.environ)
            if t.point and t.victim == role and i == 0:
                e["SHMRING_CRASH"] = f"{t.point}:{hit}"
            return e

        def consumer(c: int) -> subprocess.Popen[str]:
            p = spawn(["consume", name, str(ledger), str(c), str(nprod), str(COUNT), t.get,
                       str(slots)], env=env_for("consumer", c))
            procs.append(p)
            return p

        def producer(p: int) -> subprocess.Popen[str]:
            proc = spawn(["produce", name, str(ledger), str(p), str(COUNT), t.put,
                          str(nprod), str(slots)], env=env_for("producer", p))
            procs.append(proc)
            return proc

        # At a crash point the victim is alone on its side until the point fires:
        # sharing the stream, a consumer could be starved below `hit` passes, and a
        # producer behind a full ring claim one position at a time and never pass a
        # batch point; either would never reach it.  The others join after.
        alone = t.victim if t.point else None
        consumers = [consumer(c) for c in range(1 if alone == "consumer" else ncons)]
        producers = [producer(p) for p in range(1 if alone == "producer" else nprod)]
        for p in consumers + producers:
            wait_ready(p)

        victim = producers[0] if t.victim == "producer" else consumers[0]
        if t.point:
            rc = victim.wait(timeout=FINISH_BOUND)
            assert rc == -signal.SIGKILL, f"crash point {t.point} not reached: exit {rc}, " \
                f"{victim.stderr.read() if victim.stderr else ''}"
        else:
            time.sleep(rng.uniform(0.0, 0.25))
            victim.kill()
            victim.wait()
        t0 = time.monotonic()
        joined = []
        if alone == "producer":
            joined = [producer(p) for p in range(1, nprod)]
            producers += joined
        elif alone == "consumer":
            joined = [consumer(c) for c in range(1, ncons)]
            consumers += joined
        if t.victim == "consumer":
            consumers.append(consumer(ncons))
            joined.append(consumers[-1])
        for p in joined:
            wait_ready(p)
        survivors = [p for p in producers if p is not victim]
        for p in survivors:
            _, err = p.communicate(timeout=FINISH_BOUND)
            assert p.returncode == 0, f"producer exited {p.returncode}: {err[-2000:]}"
        ring.shutdown()
        for p in consumers:
            if p is victim:
                continue
            _, err = p.communicate(timeout=FINISH_BOUND)
            assert p.returncode == 0, f"consumer exited {p.returncode} (2: bad message): {err[-2000:]}"
        elapsed = time.monotonic() - t0
        assert elapsed < FINISH_BOUND
        return check_ledger(t, Ledger(str(ledger), nprod, slots, COUNT), nprod, slots,
                            ring.info()["lost"])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        ring.close()
        shmring.unlink(name)
        ledger.unlink()


def check_ledger(t: Trial, led: Ledger, nprod: int, slots: int, lost: int) -> dict[str, int]:
    base = 16 * nprod
    missing = 0   # published (put-side call returned) and never recorded
    dead = 0      # in flight in the victim and never recorded
    for p in range(nprod):
        acked = int.from_bytes(led.mm[8 * p: 8 * p + 8], "little")
        attempting = int.from_bytes(led.mm[8 * (nprod + p): 8 * (nprod + p) + 8], "little")
        got = [sum(led.mm[base + (c * nprod + p) * COUNT + seq] for c in range(slots))
               for seq in range(COUNT)]
        assert max(got) <= 1, f"producer {p}: a message arrived twice"
        assert acked <= attempting <= COUNT
        if not (t.victim == "producer" and p == 0):
            assert acked == COUNT, f"a surviving producer stopped at {acked}"
        missing += acked - sum(got[:acked])
        if t.victim == "producer" and p == 0:
            dead = (attempting - acked) - sum(got[acked:attempting])
        assert sum(got[attempting:]) == 0, f"producer {p}: a message it never sent arrived"
    if t.victim == "consumer":
        # what the dead consumer had taken (get) or held (recv) and not recorded
        dead = missing
        assert missing <= (BATCH if t.get == "get_many" else 1), f"{missing} published messages lost"
    else:
        assert missing == 0, f"{missing} published messages lost"
    assert lost <= dead, f"info()['lost'] = {lost} but only {dead} died with the victim"
    if t.missing is not None:
        assert dead == t.missing, f"{t.point}: {dead} in-flight messages lost, expected {t.missing}"
    if t.unlost is not None:
        assert dead - lost == t.unlost, f"{t.point}: info()['lost'] = {lost} of {dead} lost"
    return {"missing": dead, "lost": lost}


# Named crash points: the instruction each one dies at, and what it must cost.
POINTS = [
    # spsc: written, not published -> lost; read, not released -> delivered again
    Trial("spsc", "producer", "spsc-put-written", missing=1, unlost=1),
    Trial("spsc", "consumer", "spsc-get-read", missing=0),
    # mpmc: a dead claim is given up by a survivor, and counted in info()["lost"]
    Trial("mpmc", "producer", "mpmc-put-claimed", missing=1, unlost=0),
    Trial("mpmc", "producer", "mpmc-put-many-half", put="put_many", capacity=8, unlost=0),
    Trial("mpmc", "consumer", "mpmc-get-claimed", get="recv", missing=1, unlost=0),
    # the first of the batch was copied out (delivered), the rest given up
    Trial("mpmc", "consumer", "mpmc-get-many-half", get="get_many", capacity=8, unlost=1),
    # locked: dies holding the mutex; the next locker repairs
    Trial("locked", "producer", "locked-put-written", missing=1, unlost=1),
    Trial("locked", "producer", "locked-put-done", missing=0),
    Trial("locked", "consumer", "locked-get-done", missing=1, unlost=1),
    # locked: dies between its semaphore and the mutex, taking a token; at capacity 1
    # the ring would stop for good unless a waiter restores it
    Trial("locked", "producer", "locked-put-token", capacity=1, missing=1, unlost=1),
    Trial("locked", "consumer", "locked-get-token", capacity=1, missing=0),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("trial", POINTS, ids=lambda t: t.point)
def test_crash_point(trial: Trial, name: str, tmp_path: Path) -> None:
    run_trial(trial, name, tmp_path, random.Random(name))


RANDOM = [Trial(kind, victim, put=put, get=get)
          for kind in ("spsc", "mpmc", "locked")
          for victim, put, get in (("producer", "put", "get"), ("consumer", "reserve", "recv"),
                                   ("producer", "put_many", "get_many"), ("consumer", "put", "get"))]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("trial", RANDOM, ids=lambda t: f"{t.kind}-{t.victim}-{t.put}-{t.get}")
def test_random_kill(trial: Trial, name: str, tmp_path: Path) -> None:
    run_trial(trial, name, tmp_path, random.Random(name))


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_kills_soak(tmp_path: Path) -> None:
    """240 kills (~5-10 min): every third at a named crash point (at a random pass),
    the others at random moments, over every kind, victim, call mix and capacity."""
    from dataclasses import replace

    from shmring.testing import unique_name
    rng = random.Random(1234)
    totals = {"missing": 0, "lost": 0}
    for i in range(240):
        if i % 3 == 0:
            t = POINTS[(i // 3) % len(POINTS)]
        else:
            t = replace(RANDOM[i % len(RANDOM)], capacity=rng.choice([1, 2, 4, 16]))
        print(f"trial {i}: {t.kind} {t.victim} {t.point or 'random'} {t.put}/{t.get} "
              f"capacity {t.capacity}", flush=True)
        r = run_trial(t, unique_name("crash"), tmp_path, rng)
        for k in totals:
            totals[k] += r[k]
    print(f"240 kills: {totals['missing']} in-flight messages died with their process, "
          f"{totals['lost']} of them given up by survivors (info()['lost'])")
