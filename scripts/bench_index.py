"""Benchmark `provaudit index` against a datasketch baseline, in the same run.

Generates N short posts (default 200,000; 10-80 words, Zipf-distributed vocabulary),
then runs each system in its own fresh subprocess and prints docs/s, peak RSS and ratios:

* provaudit: `api.build_index` end to end (read JSONL, normalize, shingle, sign, band,
  anchors, write the index).
* datasketch: read JSONL, the same normalizer, word 3-gram shingles, one
  `MinHash(num_perm=128)` + `update_batch` per document, `MinHashLSH(threshold=0.5).insert`.

See also scripts/bench.py, which measures every stage (issue #4).

Usage:
    python scripts/bench_index.py [--posts 200000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

PROVAUDIT = """
import sys, time, resource
from pathlib import Path
from provaudit import api
t0 = time.perf_counter()
api.build_index([sys.argv[1]], Path(sys.argv[2]), force=True)
dt = time.perf_counter() - t0
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

DATASKETCH = """
import sys, time, json, resource
from datasketch import MinHash, MinHashLSH
from provaudit.text.shingle import tokens
t0 = time.perf_counter()
lsh = MinHashLSH(threshold=0.5, num_perm=128)
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        rec = json.loads(line)
        t = tokens(rec["text"])
        m = MinHash(num_perm=128)
        m.update_batch([" ".join(t[i:i + 3]).encode() for i in range(max(len(t) - 2, 1))])
        lsh.insert(rec["id"], m)
dt = time.perf_counter() - t0
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def make_posts(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    vocab = [f"{a}{b}{c}" for a in "bcdfghklmnprstvw" for b in ("a", "e", "i", "o", "u", "ai", "ou") for c in
             ("n", "t", "s", "r", "l", "nd", "st", "ck", "m", "p", "")]
    weights = [1.0 / (i + 1) ** 0.9 for i in range(len(vocab))]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            words = rng.choices(vocab, weights=weights, k=rng.randint(10, 80))
            f.write(json.dumps({"id": f"p{i}", "text": " ".join(words)}) + "\n")


def run(code: str, *args: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True).stdout
    dt, rss_kb = out.split()
    return float(dt), float(rss_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs per system; the median time is reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "posts.jsonl"
        make_posts(src, args.posts)
        print(f"{args.posts:,} posts, {src.stat().st_size / 1e6:.1f} MB JSONL")
        results = {}
        for name, code, extra in (("provaudit", PROVAUDIT, [str(Path(d) / "idx")]), ("datasketch", DATASKETCH, [])):
            runs = sorted(run(code, str(src), *extra) for _ in range(args.repeat))
            results[name] = runs[len(runs) // 2]
        print(f"{'system':12s} {'seconds':>9s} {'docs/s':>10s} {'peak RSS MB':>12s}")
        for name, (dt, rss) in results.items():
            print(f"{name:12s} {dt:9.2f} {args.posts / dt:10,.0f} {rss:12.0f}")
        (pt, pm), (dt_, dm) = results["provaudit"], results["datasketch"]
        print(f"ratio: {dt_ / pt:.1f}x datasketch docs/s, {pm / dm:.2f}x its peak memory")


if __name__ == "__main__":
    main()
