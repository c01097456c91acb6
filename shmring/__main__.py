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


def _bench(args: argparse.Namespace) -> int:
    from shmring import bench  # not imported for the small commands

    json_path, plot_path = args.json, args.plot
    if args.save:
        json_path, plot_path = json_path or args.save + ".json", plot_path or args.save + ".png"
        import io

        buf = io.StringIO()
        rc = bench.main(quick=args.quick, trials=args.trials, json_path=json_path, plot_path=plot_path,
                        only=args.only, names=args.transport, seed_table=args.seed_table, out=buf)
        with open(args.save + ".md", "w") as f:
            f.write(buf.getvalue())
        sys.stdout.write(buf.getvalue())
        return rc
    return bench.main(quick=args.quick, trials=args.trials, json_path=json_path, plot_path=plot_path,
                      only=args.only, names=args.transport, seed_table=args.seed_table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shmring", description="shmring: shared-memory ring buffers between processes."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = sub.add_parser(
        "bench", help="cross-process benchmark: shmring against pipes, sockets, queues, ZeroMQ, iceoryx2, D-Bus",
        description="Producer and consumer in separate processes pinned to two cores, every message verified; "
        "a Markdown table on stdout, progress on stderr. Peers that are not installed are reported as skipped "
        "(pip install 'shmring[bench]').",
    )
    bench.add_argument("--quick", action="store_true", help="2 short rounds (under a minute)")
    bench.add_argument("--trials", type=int, metavar="N", help="rounds (default: 2 quick, 7 full)")
    bench.add_argument("--json", metavar="PATH", help="write every round's numbers to PATH")
    bench.add_argument("--plot", metavar="PATH", help="draw the results as a PNG (needs matplotlib)")
    bench.add_argument("--save", metavar="PREFIX", help="write PREFIX.md, PREFIX.json and PREFIX.png")
    bench.add_argument("--seed-table", action="store_true",
                       help="print the IPC chapter's latency table beside the measured one")
    bench.add_argument("--only", action="append", metavar="WORKLOAD",
                       choices=["msg64", "batch64", "frame64k", "frame1m", "pingpong64", "many64"],
                       help="run only this workload (repeatable): %(choices)s")
    bench.add_argument("--transport", action="append", metavar="NAME",
                       help="run only transports whose label contains NAME (repeatable), e.g. spsc, os.pipe")
    sub.add_parser("ls", help="list the rings in /dev/shm (a ring nobody alive is attached to says 'stale')")
    info = sub.add_parser("info", help="print a ring's info()")
    info.add_argument("name")
    rm = sub.add_parser("rm", help="unlink rings by name")
    rm.add_argument("names", nargs="+", metavar="NAME")

    args = parser.parse_args(argv)
    try:
        if args.command == "bench":
            return _bench(args)
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
