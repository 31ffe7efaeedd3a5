"""Score an audit's matches.parquet against the fixtures' planted truth, by kind.

Usage:
    python scripts/score_fixtures.py AUDIT_DIR [--truth fixtures/truth.jsonl]

Prints recall per planted kind, the number of hard negatives reported, and the number of
reported pairs that were not planted (these can still be true chance overlaps: check them
against a brute-force computation before calling them false).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq


def score(matches: Path, truth: Path) -> dict[str, dict[str, float]]:
    """Recall per kind (share of planted pairs reported) and hard negatives reported."""
    got = {(r["reference_id"], r["target_id"]) for r in pq.read_table(matches, columns=["reference_id", "target_id"]).to_pylist()}
    planted: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for line in truth.read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        if t["target_id"] is not None:
            planted[t["kind"]].append((t["reference_id"], t["target_id"]))
    out = {}
    for kind, pairs in sorted(planted.items()):
        found = sum(p in got for p in pairs)
        out[kind] = {"planted": len(pairs), "reported": found, "share": found / len(pairs)}
    known = {p for pairs in planted.values() for p in pairs}
    out["_unplanted_reports"] = {"planted": 0, "reported": len(got - known), "share": 0.0}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("audit_dir", type=Path)
    ap.add_argument("--truth", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures" / "truth.jsonl")
    args = ap.parse_args()
    for kind, s in score(args.audit_dir / "matches.parquet", args.truth).items():
        print(f"{kind:20s} {s['reported']:5d} / {s['planted']:5d}  {s['share']:.3f}")


if __name__ == "__main__":
    main()
