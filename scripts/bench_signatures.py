"""``provaudit signatures`` against datasketch, in one process: export every item's MinHash signature
from an index, and sign the same posts with datasketch (its default sha1 hash on the same shingle
strings: the index is built with ``--hash sha1`` so that the two must agree, and they are compared).

Usage:
    python scripts/bench_signatures.py [--items 200000] [--datasketch 20000] [--data DIR]

Prints items per second for the export (which reads the stored shingle sequences; no text is read
or shingled again) and for datasketch signing from the texts (``MinHash.bulk`` on the first
``--datasketch`` posts), their ratio, and the share of compared signatures that are equal (must be 1).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "scripts" / "bench_scale.py")
assert _spec is not None and _spec.loader is not None
bench_scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--datasketch", type=int, default=20_000, help="posts datasketch signs (from their text)")
    ap.add_argument("--data", type=Path, help="keep the posts and the index here")
    args = ap.parse_args()
    from datasketch import MinHash

    from provaudit import api
    from provaudit.api_segments import export_signatures
    from provaudit.config import IndexConfig
    from provaudit.text.shingle import shingle_strings

    with tempfile.TemporaryDirectory() as tmp:
        d = args.data or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        posts = d / f"posts-{args.items}.jsonl"
        if not posts.exists():
            bench_scale.make_posts(d, [args.items])
        cfg = IndexConfig(hash="sha1")
        index = d / f"sha1-{args.items}.idx"
        if not (index / "manifest.json").exists():
            api.build_index([str(posts)], index, cfg)
        t0 = time.perf_counter()
        n = export_signatures(index, d / "signatures.parquet", force=True)
        export_s = time.perf_counter() - t0
        texts = [json.loads(line)["text"] for line, _ in zip(posts.open(encoding="utf-8"), range(args.datasketch))]
        t0 = time.perf_counter()
        sets = [shingle_strings(t, cfg) for t in texts]
        theirs = MinHash.bulk(sets, num_perm=cfg.num_perm, seed=cfg.seed)
        ds_s = time.perf_counter() - t0
        ours = pq.read_table(d / "signatures.parquet").column("hashvalues").to_pylist()[: len(texts)]
        equal = sum(np.array_equal(np.array(a, np.uint64), b.hashvalues) for a, b in zip(ours, theirs))
        size = (d / "signatures.parquet").stat().st_size
    print(f"provaudit signatures: {n:,} items in {export_s:.2f} s = {n / export_s:,.0f} items/s "
          f"({size / max(n, 1):.0f} bytes per item on disk)")
    print(f"datasketch MinHash.bulk from text: {len(texts):,} posts in {ds_s:.2f} s = {len(texts) / ds_s:,.0f} items/s")
    print(f"ratio (items/s): {n / export_s / (len(texts) / ds_s):.1f}x; equal signatures: {equal:,} of {len(texts):,}")
    sys.exit(0 if equal == len(texts) else 1)


if __name__ == "__main__":
    main()
