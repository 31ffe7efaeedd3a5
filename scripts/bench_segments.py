"""What segments cost and save: add 200k items to a 1M-item index vs rebuilding 1.2M, remove 10k ids,
compact, and an audit against 1 segment vs 5 (issue #11 item 3).

Usage:
    python scripts/bench_segments.py [--base 1000000] [--added 200000] [--removed 10000] [--segments 5]
                                     [--workers 2] [--data DIR] [--json FILE] [--markdown FILE]

Generates posts as scripts/bench_scale.py does (10-50 words, the vocabulary of scripts/bench.py) and
its two targets (1 record embedding a post; 20,000 documents, 1 in 20 embedding a post), then runs,
each step a fresh ``provaudit`` process (wall time, peak process-tree memory sampled every 20 ms):

1. ``index`` of the first BASE posts (A);
2. ``add`` of the next ADDED posts (B) to it, against
3. ``index`` of all BASE + ADDED posts at once (the rebuild ``add`` saves; read from the SEGMENTS files
   of step 6, so that the reports of step 7 read reference texts back from the same files);
4. ``remove --ids`` of REMOVED ids (every k-th item) from the grown index;
5. ``compact`` of it (2 segments and the removed items -> 1 segment);
6. an index of the same BASE + ADDED posts in SEGMENTS segments (``index`` then ``add``s of equal parts);
7. ``audit`` of both targets against the one-segment rebuild (3) and the SEGMENTS-segment index (6),
   with the pairs compared (each audit run 3 times: the fastest is shown, page cache warm).

Peak memory is the process tree's (USS + the largest shared part); in brackets its anonymous
part (without the memory-mapped index pages, which are reclaimable page cache).

Requires psutil (``pip install '.[bench]'``). On a shared machine, quote ratios measured in one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "scripts" / "bench_scale.py")
assert _spec is not None and _spec.loader is not None
scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale)


def _bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _files(p: Path) -> int:
    return sum(1 for f in p.rglob("*") if f.is_file())


def _split(src: Path, parts: list[tuple[Path, int, int]]) -> None:
    """Write lines [lo, hi) of ``src`` to each ``dest``."""
    outs = [(open(d, "w", encoding="utf-8"), lo, hi) for d, lo, hi in parts]  # noqa: SIM115
    try:
        with open(src, encoding="utf-8") as f:
            for i, line in enumerate(f):
                for out, lo, hi in outs:
                    if lo <= i < hi:
                        out.write(line)
    finally:
        for out, _, _ in outs:
            out.close()


def _pairs(out: Path) -> list[tuple[str, str, float]]:
    t = pq.read_table(out / "matches.parquet", columns=["reference_id", "target_id", "containment"])
    return sorted(zip(*(t.column(c).to_pylist() for c in t.column_names)))


def measure(data: Path, base: int, added: int, removed: int, segments: int, workers: int) -> dict[str, Any]:
    total = base + added
    w = ["-w", str(workers)]
    if not (data / f"posts-{total}.jsonl").exists():
        print(f"generating {total:,} posts and the targets ...", file=sys.stderr)
        posts = scale.make_posts(data, [total])
        scale.make_targets(data, posts)
        every = total // segments
        _split(data / f"posts-{total}.jsonl", [(data / "a.jsonl", 0, base), (data / "b.jsonl", base, total)]
               + [(data / f"part-{j}.jsonl", j * every, total if j == segments - 1 else (j + 1) * every)
                  for j in range(segments)])
    r: dict[str, Any] = {"base": base, "added": added, "removed": removed, "segments": segments, "workers": workers}

    def step(name: str, args: list[str], runs: int = 1) -> dict[str, Any]:
        print(f"{name} ...", file=sys.stderr)
        best = min((scale._step(args) for _ in range(runs)), key=lambda s: s["seconds"])
        r[name] = {"s": best["seconds"], "mb": best["peak_mb"], "anon_mb": best["peak_anon_mb"]}
        return r[name]

    grown, whole, many = data / "grown.idx", data / "whole.idx", data / "many.idx"
    step("index_base", ["index", str(data / "a.jsonl"), "-o", str(grown), "--force", "-q", *w])
    step("add", ["add", str(grown), str(data / "b.jsonl"), "-q", *w])
    parts = [str(data / f"part-{j}.jsonl") for j in range(segments)]  # the files of the many-segment index (6), so
    step("index_all", ["index", *parts, "-o", str(whole), "--force", "-q", *w])  # that reports read the same files
    (data / "ids.txt").write_text("".join(f"p{i}\n" for i in range(0, total, total // removed)[:removed]))
    step("remove", ["remove", str(grown), "--ids", str(data / "ids.txt"), "-q"])
    r["before_compact"] = {"bytes": _bytes(grown), "files": _files(grown)}
    step("compact", ["compact", str(grown), "-q"])
    r["after_compact"] = {"bytes": _bytes(grown), "files": _files(grown)}
    step("many_index", ["index", str(data / "part-0.jsonl"), "-o", str(many), "--force", "-q", *w])
    r["many_adds"] = [step(f"many_add_{j}", ["add", str(many), str(data / f"part-{j}.jsonl"), "-q", *w])
                      for j in range(1, segments)]
    r["whole_bytes"], r["many_bytes"] = _bytes(whole), _bytes(many)
    for name, target in (("one", "one.jsonl"), ("docs", "docs.jsonl")):
        outs = {}
        for key, idx in (("1", whole), (str(segments), many)):
            o = data / f"out-{name}-{key}"
            step(f"audit_{name}_{key}seg", ["audit", str(idx), str(data / target), "-o", str(o), "--force", "-q", *w],
                 runs=3)
            outs[key] = _pairs(o)
        r[f"audit_{name}_pairs"] = {k: len(v) for k, v in outs.items()}
        r[f"audit_{name}_same_pairs"] = outs["1"] == outs[str(segments)]
    r["ratios"] = {
        "add / index_all": r["add"]["s"] / r["index_all"]["s"],
        f"audit docs {segments} segments / 1": r[f"audit_docs_{segments}seg"]["s"] / r["audit_docs_1seg"]["s"],
        f"audit one {segments} segments / 1": r[f"audit_one_{segments}seg"]["s"] / r["audit_one_1seg"]["s"],
        "compact / index_all": r["compact"]["s"] / r["index_all"]["s"],
    }
    return r


def markdown(r: dict[str, Any]) -> str:
    s = r["segments"]
    rows = [("index of the first {base:,} posts".format(**r), "index_base"),
            ("add {added:,} posts (new segment)".format(**r), "add"),
            ("index of all {:,} posts (rebuild)".format(r["base"] + r["added"]), "index_all"),
            ("remove {removed:,} ids".format(**r), "remove"),
            ("compact (2 segments + removed -> 1)", "compact"),
            (f"audit, 1 record: 1 segment / {s}", "audit_one_1seg"), ("", f"audit_one_{s}seg"),
            (f"audit, 20,000 documents: 1 segment / {s}", "audit_docs_1seg"), ("", f"audit_docs_{s}seg")]
    lines = [f"{r['workers']} workers.", "", "| step | wall | peak memory (anonymous) |", "|---|---|---|"]
    for label, key in rows:
        lines.append(f"| {label or '  ' + key} | {r[key]['s']:.2f} s | {r[key]['mb']:.0f} MB ({r[key]['anon_mb']:.0f}) |")
    b, a = r["before_compact"], r["after_compact"]
    lines += ["", f"compact: {b['files']} files, {b['bytes'] / 1e6:.0f} MB -> {a['files']} files, "
                  f"{a['bytes'] / 1e6:.0f} MB",
              f"pairs 1 / {s} segments: 1 record {r['audit_one_pairs']['1']} / {r['audit_one_pairs'][str(s)]} "
              f"(same: {r['audit_one_same_pairs']}); documents {r['audit_docs_pairs']['1']:,} / "
              f"{r['audit_docs_pairs'][str(s)]:,} (same: {r['audit_docs_same_pairs']})",
              "", "Ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in r["ratios"].items())]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=int, default=1_000_000)
    ap.add_argument("--added", type=int, default=200_000)
    ap.add_argument("--removed", type=int, default=10_000)
    ap.add_argument("--segments", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", type=Path, help="keep corpora and indexes here (posts reused when present)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="provaudit-segments-"))
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        r = measure(data, args.base, args.added, args.removed, args.segments, args.workers)
    finally:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    r["total_s"] = time.monotonic() - t0
    r["cpus"] = len(os.sched_getaffinity(0))
    text = markdown(r)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
