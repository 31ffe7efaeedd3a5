"""Local engine vs Ray engine on the same input, side by side, in one run (issue 12).

Usage (from the repository root; needs Ray: pip install '.[ray]'):

    python scripts/bench_ray.py                 # the fixture shards copied 4 times, the fixture reference index
    python scripts/bench_ray.py --copies 1 --tasks 300
    python scripts/bench_ray.py --build-items 400000   # only the index build: local vs Ray tasks writing parts

What it prints:

- wall time, records/s and peak memory of an index build and an audit with the local engine
  (1 and 2 workers) and with the Ray engine (2 actors on a local instance with 2 CPUs), and
  whether the outputs are equal (they must be);
- Ray's start-up time (``ray.init`` of a local instance), paid once per run without
  ``--ray-address``;
- the cost per task of the map itself: ``--tasks`` tasks that do nothing, through the local
  worker map and through Ray actors;
- the audit throughput per worker (records/s and MB/s of target text), the figure
  docs/scale.md projects from;
- with ``--build-items N``: an index build of N synthetic posts, local (1 and 2 workers) against
  Ray (2 actors: tasks write parts, the driver merges them, ``run.ray_parts``): wall time, peak
  memory, each Ray task's throughput (timed inside the actor), the driver's merge and index
  writing time and its share of the wall time, and the projection to 10^9 items.

Local runs come first, then Ray is started (forking worker processes after Ray started its
threads would be unsafe). Memory is the peak, sampled every 50 ms, of the sum of the
proportional set size (PSS: shared pages divided among the processes sharing them) of this
process and all its descendants (Ray's raylet, GCS and workers of a local instance included).
Timings on a shared machine vary: compare the figures of one run with each other.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provaudit import api  # noqa: E402
from provaudit.run.engines import RunEngine, worker_map  # noqa: E402


def _tree_pss_kb() -> int:
    """Sum of PSS (kB) of this process and its descendants."""
    parents: dict[int, int] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                parents[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    tree, grew = {os.getpid()}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def measured(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MB of the process tree) of ``fn()``."""
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_pss_kb())
            stop.wait(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        seconds = time.perf_counter() - t0
        stop.set()
        t.join()
    return out, seconds, peak[0] / 1024


def nothing(state: Any, i: int) -> int:
    """A task that does nothing: the map's own cost per task."""
    return i


def per_task(engine: RunEngine, n: int) -> float:
    with worker_map(nothing, None, engine) as wm:
        t0 = time.perf_counter()
        assert sum(wm.stream((i,) for i in range(n))) == n * (n - 1) // 2
        return (time.perf_counter() - t0) / n


TIMING_DIR = ""  # where timed_part writes each Ray task's (items, seconds); set by build_figures


def timed_part(state: Any, tasks: list[tuple[Any, ...]]) -> list[Any]:
    """``run.ray_parts.build_part``, timed inside the actor (pickled by value: it is defined in __main__)."""
    import uuid as _uuid

    from provaudit.run import ray_parts as _rp

    t0 = time.perf_counter()
    outs = _rp.build_part(state, tasks)
    seconds = time.perf_counter() - t0
    items = 0
    for o in outs:
        whole = getattr(o, "whole", None)
        items += whole.items if whole is not None else sum(sl.items for sl in (o[1] if isinstance(o, tuple) else []))
    Path(TIMING_DIR, _uuid.uuid4().hex).write_text(f"{items} {seconds}")
    return outs


def reference_corpus(path: Path, items: int) -> None:
    """``items`` synthetic reference posts of 60 words (a fixed seed: the same corpus every run)."""
    import random

    rng = random.Random(7)
    words = [f"w{i}" for i in range(20000)]
    with open(path, "w") as f:
        for i in range(items):
            f.write('{"id": "r%d", "text": "%s"}\n' % (i, " ".join(rng.choices(words, k=60))))


def build_figures(tmp: Path, items: int) -> None:
    """Index build of ``items`` synthetic posts: local (1 and 2 workers) against Ray (2 actors, tasks
    writing parts): wall time, peak memory, each Ray task's throughput, the driver's merge cost."""
    global TIMING_DIR
    import ray

    from provaudit.index import build, parts
    from provaudit.run import ray_parts

    ref = tmp / "reference.jsonl"
    reference_corpus(ref, items)
    mb = ref.stat().st_size / 1e6
    rows = []
    for w in (1, 2):
        _, s, peak = measured(lambda: api.build_index([str(ref)], tmp / f"b-local-{w}", run_engine=RunEngine("local", w)))
        rows.append((f"local-{w}", s, peak))
    timing = tmp / "timing"
    timing.mkdir()
    TIMING_DIR = str(timing)
    spent = {"merge": 0.0, "finish": 0.0, "kept": 0.0}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t0
        return run

    add, finish, task, listed = parts.PartMerger.add, build.IndexWriter.finish, ray_parts.build_part, parts.PartList.segments
    parts.PartMerger.add = timed("merge", add)  # type: ignore[method-assign]
    parts.PartList.segments = timed("kept", listed)  # type: ignore[method-assign]
    build.IndexWriter.finish = timed("finish", finish)  # type: ignore[method-assign]
    ray_parts.build_part = timed_part
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        _, s, peak = measured(lambda: api.build_index([str(ref)], tmp / "b-ray-2", run_engine=RunEngine("ray", 2)))
        rows.append(("ray-2", s, peak))
        merged = dict(spent)
        tasks = [tuple(map(float, p.read_text().split())) for p in timing.iterdir()]  # of the merged build
        for k in spent:
            spent[k] = 0.0
        _, s, peak = measured(lambda: api.build_index([str(ref)], tmp / "b-ray-keep", run_engine=RunEngine("ray", 2),
                                                      keep_segments=True))
        rows.append(("ray-2 keep", s, peak))
        kept = spent["kept"] + spent["finish"]
        spent.update(merged)
    finally:
        ray.shutdown()
        parts.PartMerger.add, build.IndexWriter.finish, ray_parts.build_part = add, finish, task  # type: ignore[method-assign]
        parts.PartList.segments = listed  # type: ignore[method-assign]
    same = _tree_bytes(tmp / "b-ray-2") == _tree_bytes(tmp / "b-local-1") == _tree_bytes(tmp / "b-local-2")
    t_items, t_sec = sum(t[0] for t in tasks), sum(t[1] for t in tasks)
    print(f"\nindex build: {items:,} synthetic posts of 60 words, {mb:.0f} MB of JSON lines")
    print(f"{'run':<10}{'seconds':>9}{'items/s':>11}{'peak MB':>9}")
    for name, s, peak in rows:
        print(f"{name:<10}{s:>9.2f}{items / s:>11,.0f}{peak:>9.0f}")
    print(f"index equal (every file, byte for byte): {same}")
    segments = len(json.loads((tmp / "b-ray-keep" / "manifest.json").read_text())["segments"])
    ray_s = rows[-2][1]
    driver = spent["merge"] + spent["finish"]
    print(f"ray tasks (parts): {len(tasks)}, {int(t_items):,} items (a rerun counts twice), {t_sec:.2f} task-seconds: "
          f"{t_items / t_sec:,.0f} items/s per task (read, parse, shingle, sign, write a part)")
    print(f"driver: merging parts {spent['merge']:.2f} s ({items / spent['merge']:,.0f} items/s), writing the index "
          f"(tables sorted, plan, checksums) {spent['finish']:.2f} s; together {driver:.2f} s = "
          f"{100 * driver / ray_s:.0f}% of the Ray build's {ray_s:.2f} s wall time ({items / driver:,.0f} items/s)")
    print(f"--keep-segments: {segments} segments, no merge; the driver's checks (every part verified, ids unique) "
          f"and the manifest took {kept:.2f} s = {100 * kept / rows[-1][1]:.0f}% of its {rows[-1][1]:.2f} s "
          f"({items / kept:,.0f} items/s)")
    print(f"projection to 10^9 items (driver-bound, merged into one segment): {1e9 / (items / driver) / 3600:.1f} h "
          f"on one driver at this machine's speed; per task {1e9 / (t_items / t_sec) / 3600:.0f} task-hours")


def _tree_bytes(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=4, help="Copies of fixtures/shards audited.")
    ap.add_argument("--tasks", type=int, default=1000, help="No-op tasks for the per-task cost.")
    ap.add_argument("--build-items", type=int, default=0,
                    help="Only the index build figures: this many synthetic posts, local against Ray (tasks writing parts).")
    args = ap.parse_args()
    if args.build_items:
        tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
        try:
            build_figures(tmp, args.build_items)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    import ray

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        targets = tmp / "targets"
        targets.mkdir()
        for c in range(args.copies):
            for f in sorted((ROOT / "fixtures" / "shards").iterdir()):
                shutil.copy(f, targets / f"c{c}-{f.name}")
        text_mb = sum(len(r) for r in _texts(targets)) / 1e6
        ref = [str(ROOT / "fixtures" / "reference")]
        rows: list[tuple[str, str, float, float, float, str]] = []
        local = {w: RunEngine("local", w) for w in (1, 2)}
        results: dict[str, Any] = {}

        def run(name: str, kind: str, engine: RunEngine) -> None:
            if kind == "index":
                out = tmp / f"{name}.idx"
                m, s, mb = measured(lambda: api.build_index(ref, out, run_engine=engine))
                results[name] = b"".join(p.read_bytes() for p in sorted(out.iterdir()))
                rows.append((name, kind, s, m["counts"]["items"] / s, mb, ""))
            else:
                r, s, mb = measured(lambda: api.audit(tmp / "local-1.idx", [str(targets)], run_engine=engine))
                results[name] = r.matches
                rows.append((name, kind, s, r.target_records / s, mb, f"{text_mb / s:.2f} MB/s"))

        for w, e in local.items():
            run(f"local-{w}", "index", e)
        for w, e in local.items():
            run(f"local-{w} audit", "audit", e)
        task_local = per_task(local[2], args.tasks)

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        _, start_s, _ = measured(lambda: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                                                  logging_level=logging.ERROR))
        try:
            rayed = RunEngine("ray", 2)
            run("ray-2", "index", rayed)
            run("ray-2 audit", "audit", rayed)
            task_ray = per_task(rayed, args.tasks)
        finally:
            ray.shutdown()

        print(f"machine: {os.cpu_count()} cores (shared); targets: {args.copies} x fixtures/shards, "
              f"{text_mb:.1f} MB of text; python {sys.version.split()[0]}, ray {ray.__version__}")
        print(f"{'run':<16}{'what':<7}{'seconds':>9}{'per s':>12}{'peak MB':>9}  throughput")
        for name, kind, s, rate, mb, extra in rows:
            unit = "items" if kind == "index" else "records"
            print(f"{name:<16}{kind:<7}{s:>9.2f}{rate:>10,.0f} {unit[0]}{mb:>9.0f}  {extra}")
        same_index = results["ray-2"] == results["local-1"] == results["local-2"]
        same_audit = results["ray-2 audit"] == results["local-1 audit"] == results["local-2 audit"]
        print(f"outputs equal: index {same_index}, audit matches {same_audit}")
        t = {name: s for name, _, s, _, _, _ in rows}
        print(f"ray start-up (local instance, 2 CPUs): {start_s:.2f} s")
        print(f"ray-2 / local-2 wall time: index {t['ray-2'] / t['local-2']:.2f}x, "
              f"audit {t['ray-2 audit'] / t['local-2 audit']:.2f}x")
        print(f"map cost per task ({args.tasks} no-op tasks, 2 workers): local {1e3 * task_local:.3f} ms, "
              f"ray {1e3 * task_ray:.3f} ms")
        recs = next(r for r in rows if r[0] == "local-1 audit")[3]
        print(f"audit throughput per worker (local-1): {recs:,.0f} records/s, "
              f"{text_mb / t['local-1 audit']:.2f} MB/s of target text")
        if not (same_index and same_audit):
            sys.exit("outputs differ between engines")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _texts(d: Path) -> list[str]:
    from provaudit.read.records import Source
    from provaudit.read.sources import expand_sources, read_source

    out: list[str] = []
    for s in expand_sources([str(d)]):
        assert isinstance(s, Source)
        out.extend(r.text for r in read_source(s))
    return out


if __name__ == "__main__":
    main()
