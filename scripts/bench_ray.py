"""Local engine vs Ray engine on the same input, side by side, in one run (issue 12).

Usage (from the repository root; needs Ray: pip install '.[ray]'):

    python scripts/bench_ray.py                 # the fixture shards copied 4 times, the fixture reference index
    python scripts/bench_ray.py --copies 1 --tasks 300

What it prints:

- wall time, records/s and peak memory of an index build and an audit with the local engine
  (1 and 2 workers) and with the Ray engine (2 actors on a local instance with 2 CPUs), and
  whether the outputs are equal (they must be);
- Ray's start-up time (``ray.init`` of a local instance), paid once per run without
  ``--ray-address``;
- the cost per task of the map itself: ``--tasks`` tasks that do nothing, through the local
  worker map and through Ray actors;
- the audit throughput per worker (records/s and MB/s of target text), the figure
  docs/scale.md projects from.

Local runs come first, then Ray is started (forking worker processes after Ray started its
threads would be unsafe). Memory is the peak, sampled every 50 ms, of the sum of the
proportional set size (PSS: shared pages divided among the processes sharing them) of this
process and all its descendants (Ray's raylet, GCS and workers of a local instance included).
Timings on a shared machine vary: compare the figures of one run with each other.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=4, help="Copies of fixtures/shards audited.")
    ap.add_argument("--tasks", type=int, default=1000, help="No-op tasks for the per-task cost.")
    args = ap.parse_args()
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
                                                  logging_level="ERROR"))
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
