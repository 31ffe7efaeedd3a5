"""How audit cost grows with the index: 200k, 1M and 4M-item indexes of generated posts.

Usage:
    python scripts/bench_scale.py [--sizes 200000,1000000,4000000] [--workers 2] [--repeat 1] [--band-table 200000] [--data DIR]
                                  [--json FILE] [--markdown FILE]

Generates posts of 10-50 words (the vocabulary and word frequencies of scripts/bench.py), writes
the first N of them for each size N, builds an index of each with ``provaudit index`` (default
parameters) and audits two fixed targets against each with ``provaudit audit``: one record that
embeds a reference post, and ~50 MB of 20,000 documents of which 1 in 20 embeds a post (always
from the first 200k, so that every index holds the same planted posts). Each step is a fresh
process; its peak memory is the process tree's (sum of USS + the largest shared part), sampled
every 20 ms, and in brackets its anonymous part (RssAnon: what the processes allocate, without
mapped files; the memory-mapped index pages an audit reads are clean page cache, and on this
kernel a warm page cache maps them in large folios of up to 2 MB around each page read, so
they inflate RSS without costing memory the system cannot reclaim). Prints build time and
memory, bytes per item on disk, audit wall time, peak RSS and MB/s, and the ratios of the
largest index to the smallest measured in this run.

Requires psutil (``pip install '.[bench]'``). Steps run one after another: on a shared machine,
quote the ratios (measured in one run) rather than absolute times.
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

MODULE = [sys.executable, "-m", "provaudit"]
PLANT_FROM = 200_000


def _step(args: list[str]) -> dict[str, Any]:
    """Run ``provaudit ARGS`` in a fresh process: wall seconds and peak tree memory (MB)."""
    code = ("import json, sys, time; from provaudit.cli import cli; t0 = time.perf_counter()\n"
            "try:\n    cli(sys.argv[1:], standalone_mode=False)\n"
            "finally:\n    print(json.dumps({'seconds': time.perf_counter() - t0}))")
    return bench.run(code, *args)


def make_posts(d: Path, sizes: list[int], seed: int = 1) -> list[str]:
    """Write posts-N.jsonl (the first N posts) for every size; return the texts of the first PLANT_FROM."""
    rng = np.random.default_rng(seed)
    vocab = bench._vocab(50_000, rng)
    w = 1.0 / np.arange(1, len(vocab) + 1)
    cdf = np.cumsum(w) / w.sum()
    top = max(sizes)
    files = {n: open(d / f"posts-{n}.jsonl", "w", encoding="utf-8") for n in sizes}  # noqa: SIM115
    first: list[str] = []
    try:
        for start in range(0, top, 100_000):
            texts = bench._texts(rng, vocab, cdf, rng.integers(10, 51, min(100_000, top - start)))
            lines = [json.dumps({"id": f"p{start + i}", "text": t}) + "\n" for i, t in enumerate(texts)]
            for n, f in files.items():
                f.writelines(lines[: max(0, n - start)])
            if start < PLANT_FROM:
                first.extend(texts[: PLANT_FROM - start])
    finally:
        for f in files.values():
            f.close()
    return first


def make_targets(d: Path, posts: list[str], docs: int = 20_000, seed: int = 2) -> dict[str, Any]:
    """one.jsonl (1 record embedding a post) and docs.jsonl (``docs`` documents, 1 in 20 embedding one)."""
    rng = np.random.default_rng(seed)
    vocab = bench._vocab(50_000, np.random.default_rng(1))
    w = 1.0 / np.arange(1, len(vocab) + 1)
    cdf = np.cumsum(w) / w.sum()
    texts = bench._texts(rng, vocab, cdf, rng.integers(280, 760, docs))
    planted = 0
    with open(d / "docs.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            if i % 20 == 0:
                words = t.split(" ")
                at = int(rng.integers(len(words) + 1))
                words[at:at] = posts[int(rng.integers(len(posts)))].split(" ")
                t = " ".join(words)
                planted += 1
            f.write(json.dumps({"id": f"d{i}", "text": t}) + "\n")
    one = texts[1] + " " + posts[12345 % len(posts)]
    (d / "one.jsonl").write_text(json.dumps({"id": "one", "text": one}) + "\n", encoding="utf-8")
    return {"docs": docs, "planted": planted, "bytes": (d / "docs.jsonl").stat().st_size}


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())  # an index's segments included


def measure(data: Path, sizes: list[int], workers: int, banded: int | None = None, repeat: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {}, "workers": workers, "repeat": repeat}
    meta_path = data / "meta.json"
    if not meta_path.exists() or json.loads(meta_path.read_text()).get("sizes") != sizes:
        print(f"generating {max(sizes):,} posts and the targets ...", file=sys.stderr)
        posts = make_posts(data, sizes)
        meta = {"sizes": sizes, "targets": make_targets(data, posts)}
        meta_path.write_text(json.dumps(meta))
    out["targets"] = json.loads(meta_path.read_text())["targets"]
    mb = out["targets"]["bytes"] / 1e6
    runs = [(n, str(n), []) for n in sizes] + ([(banded, f"{banded} --band-table", ["--band-table"])] if banded else [])
    for n, key, extra in runs:
        idx = data / f"idx-{key.replace(' ', '')}"
        print(f"{key} items: index ...", file=sys.stderr)
        build = _step(["index", str(data / f"posts-{n}.jsonl"), "-o", str(idx), "--force", "-q", "-w", str(workers),
                       *extra])
        size = _dir_bytes(idx)
        row: dict[str, Any] = {"build_s": build["seconds"], "build_mb": build["peak_mb"], "index_bytes": size,
                               "bytes_per_item": size / n}
        for name, target in (("one", "one.jsonl"), ("docs", "docs.jsonl")):
            print(f"{key} items: audit {target} ...", file=sys.stderr)
            o = data / f"out-{name}"
            tries = [_step(["audit", str(idx), str(data / target), "-o", str(o), "--force", "-q", "-w", str(workers)])
                     for _ in range(repeat)]
            r = min(tries, key=lambda t: t["seconds"])  # the fastest: the least disturbed by other jobs
            row[f"{name}_all_s"] = [t["seconds"] for t in tries]
            report = json.loads((o / "report.json").read_text())
            row[f"{name}_s"], row[f"{name}_mb"] = r["seconds"], r["peak_mb"]
            row[f"{name}_anon_mb"] = r["peak_anon_mb"]
            row[f"{name}_pairs"] = report["counts"]["pairs"]
            shutil.rmtree(o)
        row["docs_mb_per_s"] = mb / row["docs_s"]
        out["sizes"][key] = row
    lo, hi = out["sizes"][str(min(sizes))], out["sizes"][str(max(sizes))]
    out["ratios"] = {k: hi[k] / lo[k] for k in ("build_s", "build_mb", "bytes_per_item", "one_s", "one_mb",
                                                "one_anon_mb", "docs_s", "docs_mb", "docs_anon_mb")}
    return out


def markdown(r: dict[str, Any]) -> str:
    t = r["targets"]
    lines = [f"Targets: 1 record; {t['docs']:,} documents ({t['bytes'] / 1e6:.1f} MB, {t['planted']:,} with a "
             f"planted post). {r['workers']} workers; audits: the fastest of {r.get('repeat', 1)}.", "",
             "| reference items | index build | peak memory | index on disk | bytes/item | 1-record audit | "
             "peak RSS (anon) | 50 MB audit | peak RSS (anon) | MB/s | pairs (1 / 50 MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, s in r["sizes"].items():
        lines.append(f"| {n} | {s['build_s']:.1f} s | {s['build_mb']:.0f} MB | {s['index_bytes'] / 1e6:,.0f} MB "
                     f"| {s['bytes_per_item']:.0f} | {s['one_s']:.2f} s | {s['one_mb']:.0f} MB ({s['one_anon_mb']:.0f}) "
                     f"| {s['docs_s']:.1f} s | {s['docs_mb']:.0f} MB ({s['docs_anon_mb']:.0f}) | {s['docs_mb_per_s']:.1f} | {s['one_pairs']} / {s['docs_pairs']:,} |")
    q = r["ratios"]
    lines += ["", "Largest / smallest index: " + ", ".join(f"{k} {v:.2f}x" for k, v in q.items())]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200000,1000000,4000000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="run each audit this many times and keep the fastest")
    ap.add_argument("--band-table", dest="banded", type=int, default=200_000,
                    help="also build and audit an index of this many items with --band-table (0: no)")
    ap.add_argument("--data", type=Path, help="keep corpora and indexes here (reused when the sizes match)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    data = args.data or Path(tempfile.mkdtemp(prefix="provaudit-scale-"))
    data.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        r = measure(data, sizes, args.workers, args.banded or None, args.repeat)
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
