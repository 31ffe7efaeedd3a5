"""Measure per-file cost of `provaudit index` and `audit` (issue #15 item 10).

Writes N one-line JSONL files and one JSONL file holding the same N lines, then runs
`provaudit index` (and `audit` of one small target against each index, and `info`) as
subprocesses, sampling the peak RSS of the whole process tree (see bench_pairs.py). Prints
time, peak RSS, items.parquet row groups and the ratios many-files / one-file. Then the
other side: `audit` of T one-line target files against the one-file index, and of one file
holding the same T lines (their words are not in the reference: no candidates, so what is
measured is the per-file cost, not matching work).

Usage:
    python scripts/bench_small_files.py [--files 100000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pairs import run  # noqa: E402


def line(i: int) -> str:
    return json.dumps({"id": f"r{i}", "text": f"record {i} says " + " ".join(f"w{(i * 7 + k) % 997}" for k in range(12))})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--targets", type=int, default=5_000, help="one-line target files audited")
    args = ap.parse_args()
    exe = [sys.executable, "-m", "provaudit"]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        many = root / "many"
        many.mkdir()
        with open(root / "one.jsonl", "w", encoding="utf-8") as one:
            for i in range(args.files):
                text = line(i) + "\n"
                one.write(text)
                (many / f"f{i:07d}.jsonl").write_text(text, encoding="utf-8")
        (root / "target.jsonl").write_text(line(3) + "\n", encoding="utf-8")
        figures = {}
        for name, src in (("one file", root / "one.jsonl"), (f"{args.files:,} files", many)):
            idx = root / f"idx-{src.name}"
            ti, ri = run([*exe, "index", str(src), "-o", str(idx), "-q", "--workers", str(args.workers)])
            ta, ra = run([*exe, "audit", str(idx), str(root / "target.jsonl"), "-o", str(root / f"out-{src.name}"),
                          "-q", "--workers", str(args.workers)])
            tn, _ = run([*exe, "info", str(idx)])
            groups = pq.ParquetFile(idx / "items.parquet").num_row_groups
            figures[name] = (ti, ri, ta, ra)
            print(f"{name:>14}: index {ti:6.1f} s {ri:6.0f} MB; audit {ta:5.1f} s {ra:5.0f} MB; "
                  f"info {tn:4.1f} s; items.parquet row groups {groups}")
        (a, b) = figures.values()
        print("ratio many/one: index time {:.1f}, index RSS {:.2f}, audit time {:.1f}, audit RSS {:.2f}".format(
            b[0] / a[0], b[1] / a[1], b[2] / a[2], b[3] / a[3]))
        tmany = root / "tmany"
        tmany.mkdir()
        with open(root / "tone.jsonl", "w", encoding="utf-8") as one:
            for i in range(args.targets):
                words = " ".join(f"t{(i + k) % 991}x" for k in range(12))
                text = json.dumps({"id": f"t{i}", "text": f"target {i} {words}"})
                one.write(text + "\n")
                (tmany / f"t{i:07d}.jsonl").write_text(text + "\n", encoding="utf-8")
        targets = {}
        for name, src in (("one file", root / "tone.jsonl"), (f"{args.targets:,} files", tmany)):
            targets[name] = run([*exe, "audit", str(root / "idx-one.jsonl"), str(src), "-o",
                                 str(root / f"targets-{src.name}"), "-q", "--workers", str(args.workers)])
            print(f"{name:>14} as targets: audit {targets[name][0]:6.1f} s {targets[name][1]:6.0f} MB")
        (a2, b2) = targets.values()
        print(f"ratio many/one targets: audit time {b2[0] / a2[0]:.1f}, audit RSS {b2[1] / a2[1]:.2f}")


if __name__ == "__main__":
    main()
