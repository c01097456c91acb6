"""`python -m shmring COMMAND`: bench, ls, info NAME, rm NAME... | rm --stale.

ls, info and rm --stale look at rings as observers (attach(observe=True)): they map a
ring to read its header but are not recorded among its attached processes, so looking
at a ring never makes it look live, to this command or to anyone else.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import shmring
from shmring import testing


def _ring_names() -> list[str]:
    """Every ring on this host, by name: the one place ls and rm --stale find rings
    (testing.segments(), which covers every place shmring creates rings)."""
    return sorted(testing.segments())


def _message(exc: Exception) -> str:
    """An error's own words, without the "[Errno N]" an OSError prepends."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


def _inspect(name: str) -> dict[str, Any]:
    """A ring's info() and its state: "live" while a process is attached, else "stale"."""
    with shmring.attach(name, any_owner=True, observe=True) as ring:
        info = ring.info()
    if "stale" in info:  # the library's own verdict
        stale = bool(info["stale"])
    else:
        stale = not any(_alive(p) for p in info["pids"])
    info["state"] = "stale" if stale else "live"
    return info


def _inspect_all() -> list[dict[str, Any]]:
    """_inspect() of every ring; a ring that cannot be read is listed with its error."""
    rings = []
    for name in _ring_names():
        try:
            rings.append(_inspect(name))
        except FileNotFoundError:
            continue  # removed since it was listed
        except (shmring.ShmringError, OSError) as exc:
            rings.append({"name": name, "state": "unreadable", "error": f"{type(exc).__name__}: {_message(exc)}"})
    return rings


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def _slot(info: dict[str, Any]) -> str:
    if info.get("shape"):
        return f"{info['slot_size']} ({'x'.join(map(str, info['shape']))} {info['dtype']})"
    return str(info["slot_size"])


COLUMNS = ("NAME", "KIND", "CAPACITY", "SLOT SIZE", "BYTES", "BACKING", "QUEUED", "PIDS", "STATE")


def _row(info: dict[str, Any]) -> tuple[str, ...]:
    if info["state"] == "unreadable":
        return (info["name"], "?", "?", "?", "?", "?", "?", "?", f"unreadable ({info['error']})")
    state = info["state"] + (", shut down" if info["shut_down"] else "")
    pids = ",".join(map(str, info["pids"])) or "-"
    return (info["name"], info["kind"], str(info["capacity"]), _slot(info), _size(info["size_bytes"]),
            info["backing"], str(info["length"]), pids, state)


def _ls(as_json: bool) -> int:
    rings = _inspect_all()
    if as_json:
        print(json.dumps(rings, indent=1))
        return 0
    if not rings:
        print("no rings on this host")
        return 0
    rows = [COLUMNS] + [_row(info) for info in rings]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0


def _info(name: str, as_json: bool) -> int:
    info = _inspect(name)
    if as_json:
        print(json.dumps(info, indent=1))
        return 0
    for key, value in info.items():
        print(f"{key}: {value}")
    return 0


def _rm(names: list[str], stale_only: bool, dry_run: bool) -> int:
    """Unlink rings by name; with stale_only, only those that are stale (every stale
    ring when no name is given).  Handles that have a ring mapped keep working."""
    rc = 0
    if stale_only:
        rings = {info["name"]: info for info in _inspect_all()}
        if not names:
            names = [n for n, info in rings.items() if info["state"] == "stale"]
            if not names:
                print("no stale rings")
        else:
            keep = [n for n in names if n in rings and rings[n]["state"] != "stale"]
            for n in keep:
                pids = rings[n].get("pids")
                why = f"live: pids {','.join(map(str, pids))}" if pids else rings[n]["state"]
                print(f"rm {n}: not removed, it is not stale ({why})", file=sys.stderr)
                rc = 1
            names = [n for n in names if n not in keep]
    for name in names:
        if dry_run:
            print(f"would remove {name}")
            continue
        try:
            shmring.unlink(name)
        except (shmring.ShmringError, OSError) as exc:
            print(f"rm {name}: {_message(exc)}", file=sys.stderr)
            rc = 1
        else:
            print(f"removed {name}")
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
    ls = sub.add_parser(
        "ls", help="list every ring on this host", description="One line per ring on this host: name, kind, "
        "capacity, slot size, bytes mapped, backing, messages queued, the pids attached and the state: 'live' "
        "(a process is attached) or 'stale' (every process that attached is gone).",
    )
    ls.add_argument("--json", action="store_true", help="print a JSON list of each ring's info() instead")
    info = sub.add_parser("info", help="print one ring's info()", description="Print a ring's info() and state.")
    info.add_argument("name", metavar="NAME")
    info.add_argument("--json", action="store_true", help="print it as JSON")
    rm = sub.add_parser(
        "rm", help="remove rings by name, or every stale ring",
        description="Unlink rings by name (processes that have them mapped keep working).  With --stale, "
        "only rings that are stale: the NAMEs given that are, or every stale ring on the host.",
    )
    rm.add_argument("names", nargs="*", metavar="NAME")
    rm.add_argument("--stale", action="store_true", help="remove only stale rings (all of them if no NAME)")
    rm.add_argument("-n", "--dry-run", action="store_true", help="say what would be removed, remove nothing")

    args = parser.parse_args(argv)
    try:
        if args.command == "bench":
            return _bench(args)
        if args.command == "ls":
            return _ls(args.json)
        if args.command == "info":
            return _info(args.name, args.json)
        if args.command == "rm":
            if not args.names and not args.stale:
                rm.error("give the NAMEs of the rings to remove, or --stale")
            return _rm(args.names, args.stale, args.dry_run)
    except (shmring.ShmringError, OSError) as exc:
        print(f"{args.command}: {_message(exc)}", file=sys.stderr)
        return 1
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
