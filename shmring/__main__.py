"""`python -m shmring COMMAND`: bench, ls, info NAME, rm NAME."""
from __future__ import annotations

import argparse
import os
import sys

import shmring
from shmring import testing


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


def _ls() -> int:
    names = sorted(testing.segments())
    for name in names:
        try:
            with shmring.attach(name) as ring:
                i = ring.info()
        except (shmring.ShmringError, OSError) as exc:
            print(f"{name}\t? ({type(exc).__name__}: {exc})")
            continue
        form = f"shape={i['shape']} dtype={i['dtype']}" if i["shape"] else f"slot_size={i['slot_size']}"
        others = [p for p in i["pids"] if p != os.getpid()]  # attaching listed us too
        live = [p for p in others if _alive(p)]
        state = f"pids={','.join(map(str, live))}" if live else "stale"
        print(f"{name}\t{i['kind']} capacity={i['capacity']} {form} length={i['length']} "
              f"{'shut-down ' if i['shut_down'] else ''}{state}")
    return 0


def _info(name: str) -> int:
    with shmring.attach(name) as ring:
        for key, value in ring.info().items():
            print(f"{key}: {value}")
    return 0


def _rm(names: list[str]) -> int:
    rc = 0
    for name in names:
        try:
            shmring.unlink(name)
        except (shmring.ShmringError, OSError) as exc:
            print(f"rm {name}: {exc}", file=sys.stderr)
            rc = 1
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shmring", description="shmring: shared-memory ring buffers between processes."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser(
        "bench", help="cross-process benchmark: rings vs os.pipe and np.copyto",
        description="Producer and consumer in separate processes pinned to two cores; "
        "a Markdown table on stdout, progress on stderr.",
    )
    bench.add_argument("--quick", action="store_true", help="3 short trials per case, default capacities only")
    bench.add_argument("--trials", type=int, metavar="N", help="trials per case (default: 3 quick, 11 full)")
    bench.add_argument("--json", metavar="PATH", help="write every trial's numbers to PATH")
    bench.add_argument("--only", action="append", choices=["msg64", "many64", "batch64", "frame1m", "pingpong64"],
                       help="run only this workload (repeatable)")
    sub.add_parser("ls", help="list the rings in /dev/shm (a ring nobody alive is attached to says 'stale')")
    info = sub.add_parser("info", help="print a ring's info()")
    info.add_argument("name")
    rm = sub.add_parser("rm", help="unlink rings by name")
    rm.add_argument("names", nargs="+", metavar="NAME")

    args = parser.parse_args(argv)
    try:
        if args.command == "bench":
            from shmring import _bench  # not imported for the small commands

            return _bench.main(quick=args.quick, trials=args.trials, json_path=args.json, only=args.only)
        if args.command == "ls":
            return _ls()
        if args.command == "info":
            return _info(args.name)
        if args.command == "rm":
            return _rm(args.names)
    except (shmring.ShmringError, OSError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
