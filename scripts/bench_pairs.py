"""Measure peak memory of `provaudit index` + `provaudit audit` as verified pairs grow (issue #15 item 5).

Generates R identical reference items and T identical target records (R*T verified pairs) in a
temp dir, runs the CLI as subprocesses and samples the RSS of the whole process tree (parent and
forked workers, from /proc) every 50 ms. Prints time and peak RSS per size and the ratio of the
largest to the smallest peak (flat memory => ratio near 1).

Usage:
    python scripts/bench_pairs.py [--ref 2000] [--targets 50,100,200] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXT = " ".join(f"word{i}" for i in range(40))


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(root: int) -> float:
    kids, todo, total = _children(), [root], 0
    while todo:
        pid = todo.pop()
        total += _rss_kb(pid)
        todo.extend(kids.get(pid, []))
    return total / 1024


def run(cmd: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall time (s) and peak process-tree RSS (MB) of ``cmd`` (which must exit with a code in ``ok``)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    while p.poll() is None:
        peak = max(peak, tree_rss_mb(p.pid))
        time.sleep(0.05)
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if p.returncode not in ok:
        sys.exit(f"{' '.join(cmd)} exited {p.returncode}:\n{err[-2000:]}")
    return time.perf_counter() - t0, peak


def write(path: Path, n: int, prefix: str, groups: int = 1) -> None:
    """``n`` records per group; group g's records all hold the same text (a group's items match its targets)."""
    with open(path, "w", encoding="utf-8") as f:
        for g in range(groups):
            text = TEXT if g == 0 else " ".join(f"g{g}word{i}" for i in range(40))
            for i in range(n):
                f.write(json.dumps({"id": f"{prefix}{g}-{i}", "text": text}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", type=int, default=2000, help="identical reference items")
    ap.add_argument("--targets", default="50,100,200", help="comma-separated target record counts")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--groups", type=int, default=1,
                    help="groups of --ref items and --targets records with a text of their own (pairs: groups*R*T); "
                         "with at most 50 targets per group no item is flagged frequent, so check counts every pair")
    ap.add_argument("--check", action="store_true", help="also time `provaudit check` (exit 3: it fails the gate)")
    args = ap.parse_args()
    exe = [sys.executable, "-m", "provaudit"]
    peaks: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        write(root / "ref.jsonl", args.ref, "r", args.groups)
        dt, rss = run([*exe, "index", str(root / "ref.jsonl"), "-o", str(root / "idx"), "-q",
                       "--workers", str(args.workers)])
        print(f"index {args.ref:,} items: {dt:.1f} s, peak RSS {rss:.0f} MB")
        for t in (int(x) for x in args.targets.split(",")):
            write(root / f"t{t}.jsonl", t, "t", args.groups)
            dt, rss = run([*exe, "audit", str(root / "idx"), str(root / f"t{t}.jsonl"), "-o", str(root / f"out{t}"),
                           "-q", "--workers", str(args.workers)])
            pairs = args.groups * args.ref * t
            peaks.append((pairs, rss))
            print(f"audit {pairs:>9,} pairs: {dt:6.1f} s, peak RSS {rss:6.0f} MB")
            if args.check:
                dt, rss = run([*exe, "check", str(root / "idx"), str(root / f"t{t}.jsonl"), "-q", "--json",
                               str(root / f"check{t}.json"), "--workers", str(args.workers)], ok=(0, 3))
                print(f"check {pairs:>9,} pairs: {dt:6.1f} s, peak RSS {rss:6.0f} MB")
    if len(peaks) > 1:
        (p0, r0), (p1, r1) = peaks[0], peaks[-1]
        print(f"ratio peak RSS {p1:,}/{p0:,} pairs: {r1 / r0:.2f}")


if __name__ == "__main__":
    main()
