"""Key-range partitioned anchor lookups on Ray (``audit --engine ray --partitions P``) against the local
engine and Ray without partitions, on one generated index (issue #11 item 4).

Usage (from the repository root; needs Ray: pip install '.[ray]'):

    python scripts/bench_partitions.py                          # 200,000 posts, 3,000 target documents, P = 1,2,4
    python scripts/bench_partitions.py --items 100000 --targets 5000 --partitions 2,8 --even

The data are scripts/bench_scale.py's: generated posts of 10-50 words and documents of 280-760 words
(Zipf word frequencies, 1 in 20 documents embedding a post).

What it prints, for each run (local engine with 2 workers; Ray, 2 task actors on a local instance
with 2 CPUs, without partitions and with each P):

- wall time and matches (equal across runs: they must be);
- anchor lookups: for the unpartitioned search, counted in a local 1-worker run (keys looked up per
  segment, ``candidates._segment_anchor_candidates`` wrapped); for each P, the sum over the range
  actors (their own counters) and per range (balance), which must equal the unpartitioned count
  (M, not P * M);
- each range's share of the anchor table rows (what a node serving it holds in memory): the boundaries
  are quantiles of the rows (``index.partition.balanced_boundaries``); with ``--even`` the largest P
  runs once more with equal key ranges (``even_boundaries``), whose lookups are balanced but whose
  rows are not (anchors are their items' smallest hashes);
- the bytes shipped: target shingles and record numbers sent to the range actors, and partial
  counts returned, in all and per task.

On a 2-core machine Ray is slower than the local engine (its own processes, actors reopening the
index, and here P more actors on the same 2 cores): the figures to read are the lookup counts, the
balance and the bytes per task; the wall times are reported as they are.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_ray import measured  # noqa: E402
from bench_scale import make_posts, make_targets  # noqa: E402
from provaudit import api  # noqa: E402
from provaudit.index import partition  # noqa: E402
from provaudit.match import candidates  # noqa: E402
from provaudit.run import ray_ranges  # noqa: E402
from provaudit.run.engines import RunEngine  # noqa: E402


def counted_local_lookups(index: Path, targets: Path) -> int:
    """Keys the unpartitioned anchor search looks up (per segment), counted in a local 1-worker run."""
    seen = [0]
    original = candidates._segment_anchor_candidates

    def counting(seg: Any, plan: Any, batch: Any, step: int) -> Any:
        seen[0] += len(batch.hashes)
        return original(seg, plan, batch, step)

    candidates._segment_anchor_candidates = counting  # type: ignore[assignment]
    try:
        api.audit(index, [str(targets)], run_engine=RunEngine("local", 1))
    finally:
        candidates._segment_anchor_candidates = original  # type: ignore[assignment]
    return seen[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=200_000, help="Generated reference posts (10-50 words).")
    ap.add_argument("--targets", type=int, default=3_000, help="Generated target documents (280-760 words).")
    ap.add_argument("--partitions", default="1,2,4", help="Comma-separated P values.")
    ap.add_argument("--even", action="store_true", help="Also the largest P with equal key ranges.")
    args = ap.parse_args()
    parts = [int(p) for p in args.partitions.split(",")]
    import ray

    tmp = Path(tempfile.mkdtemp(prefix="bench-part-"))
    try:
        make_targets(tmp, make_posts(tmp, [args.items]), docs=args.targets)
        ref, tgt = tmp / f"posts-{args.items}.jsonl", tmp / "docs.jsonl"
        mb = tgt.stat().st_size / 1e6
        index = tmp / "ref.idx"
        _, build_s, _ = measured(lambda: api.build_index([str(ref)], index, run_engine=RunEngine("local", 2)))
        lookups = counted_local_lookups(index, tgt)
        rows: list[tuple[str, float, int]] = []
        matches: dict[str, Any] = {}

        def audit(name: str, engine: RunEngine) -> None:
            last: list[Any] = [None]

            def progress(*a: Any) -> None:
                last[0] = a[4] if len(a) > 4 else None

            r, s, _ = measured(lambda: api.audit(index, [str(tgt)], run_engine=engine, progress=progress))
            matches[name] = r.matches
            tasks[name] = last[0].total if last[0] is not None else 0
            rows.append((name, s, len(r.matches["reference_id"])))

        tasks: dict[str, int] = {}
        audit("local-2", RunEngine("local", 2))
        stats = ray_ranges.RangeStats()
        log = logging.getLogger("provaudit.run.ray_ranges")
        log.addHandler(stats)
        log.setLevel(logging.INFO)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        per_p: dict[str, list[dict[str, Any]]] = {}
        try:
            audit("ray-2", RunEngine("ray", 2))
            for p in parts:
                stats.got.clear()
                audit(f"ray-2 P={p}", RunEngine("ray", 2, None, p))
                per_p[f"P={p}"] = stats.got[0]
            if args.even:
                p = max(parts)
                stats.got.clear()
                balanced = ray_ranges.balanced_boundaries
                ray_ranges.balanced_boundaries = lambda tables, n: partition.even_boundaries(n)  # type: ignore
                try:
                    audit(f"ray-2 P={p}e", RunEngine("ray", 2, None, p))
                finally:
                    ray_ranges.balanced_boundaries = balanced  # type: ignore[assignment]
                per_p[f"P={p}e"] = stats.got[0]
        finally:
            ray.shutdown()

        print(f"machine: {os.cpu_count()} cores (shared); index: {args.items:,} generated posts of 10-50 words "
              f"(built in {build_s:.1f} s); targets: {args.targets:,} documents of 280-760 words ({mb:.1f} MB), "
              f"1 in 20 with a post; ray {ray.__version__}")
        t = {name: s for name, s, _ in rows}
        print(f"{'run':<12}{'seconds':>9}{'vs local':>10}{'vs ray':>8}{'pairs':>8}{'tasks':>7}")
        for name, s, n in rows:
            print(f"{name:<12}{s:>9.2f}{s / t['local-2']:>9.2f}x{s / t['ray-2']:>7.2f}x{n:>8}{tasks.get(name, 0):>7}")
        same = all(m == matches["local-2"] for m in matches.values())
        print(f"matches equal across runs: {same}")
        print(f"anchor lookups without partitions (counted, local 1 worker): {lookups:,}")
        for p, st in per_p.items():
            st = sorted(st, key=lambda s: s["partition"])
            total = sum(s["lookups"] for s in st)
            rows_all = sum(s["table_rows"][0] for s in st[:1])
            n_tasks = tasks[f"ray-2 {p}"] or 1
            sent, back = sum(s["bytes_in"] for s in st), sum(s["bytes_out"] for s in st)
            print(f"{p}: lookups {total:,} ({total / lookups:.3f}x the unpartitioned), per range "
                  f"{[s['lookups'] for s in st]} (largest {max(s['lookups'] for s in st) * len(st) / total:.2f}x the mean); "
                  f"rows of the anchor table per range (%): "
                  f"{[round(100 * (s['rows'][0][1] - s['rows'][0][0]) / rows_all, 1) for s in st]}; seconds answering "
                  f"per range {[round(s['seconds'], 2) for s in st]}")
            print(f"{'':6}shipped: {sent / 1e6:.2f} MB of shingles and records to the ranges, {back / 1e6:.2f} MB of "
                  f"partial counts back; per task ({n_tasks} tasks) {sent / n_tasks / 1e3:.0f} kB out, "
                  f"{back / n_tasks / 1e3:.0f} kB back; calls {sum(s['calls'] for s in st)}")
        if not same:
            sys.exit("matches differ between runs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
