"""The gate decides in one pass over the evidence pairs, in memory that does not grow with them.

The streaming verdict is compared with a brute-force computation (every pair sorted strongest
first, as the gate did before it streamed), and the streamed JSON with ``json.dumps`` of the
whole document.
"""

from __future__ import annotations

import io
import json
import random
import re
import tracemalloc
from collections.abc import Iterator

import pytest

from provaudit.gate.acceptance import AllowList, Baseline
from provaudit.gate.jsonout import verdict_head, write_json
from provaudit.gate.verdict import (
    ALLOWED, ANNOTATION_PAIRS, BASELINE, COUNTED, EvidencePair, Limits, SourceCount, evaluate,
)

SOURCES = [SourceCount("a.jsonl", 40), SourceCount("b.parquet", 30, "truncated"), SourceCount("c.csv", 25)]


def _random_pairs(rng: random.Random, n: int) -> list[EvidencePair]:
    """Pairs with many ties: few ids, rows and score values; some in sources not listed, some repeated."""
    out = []
    for _ in range(n):
        source = rng.choice(["a.jsonl", "b.parquet", "c.csv", "x.jsonl", "y.txt"])
        row = rng.randrange(12)
        target = rng.choice([f"{source}#{row}", f"t{row}", "t0"])
        out.append(EvidencePair(f"r{rng.randrange(15)}", target, source, row, rng.choice([0.5, 0.75, 1.0]),
                                rng.choice([0.1, 0.5]), rng.choice([8, 20])))
    out += rng.sample(out, n // 10)  # exact duplicates: ties on the whole sort key
    rng.shuffle(out)
    return out


def _brute(pairs: list[EvidencePair], base: Baseline, allow: AllowList, show: int) -> dict[str, object]:
    """The verdict's figures as the gate computed them before it streamed: everything sorted and kept."""
    ordered = sorted(pairs, key=EvidencePair.strength)  # stable: ties keep the input order

    def status(p: EvidencePair) -> str:
        if allow.accepts(p.reference_id, p.target_id):
            return ALLOWED
        return BASELINE if (p.reference_id, p.target_id) in base.pairs else COUNTED

    names = [s.source for s in SOURCES]
    names += list(dict.fromkeys(p.target_source for p in ordered if p.target_source not in names))
    counted = [p for p in ordered if status(p) == COUNTED]
    records: dict[tuple[str, int], list[EvidencePair]] = {}
    for p in counted:
        records.setdefault((p.target_source, p.target_row), []).append(p)
    per_source = []
    for name in names:
        mine = [p for p in counted if p.target_source == name]
        per_source.append((name, len(mine), sum(1 for p in pairs if p.target_source == name) - len(mine),
                           len({p.target_row for p in mine}), len({p.reference_id for p in mine}), mine[:show]))
    return {
        "statuses": {s: sum(1 for p in pairs if status(p) == s) for s in (COUNTED, BASELINE, ALLOWED)},
        "records": len(records), "items": len({p.reference_id for p in counted}), "top": counted[:show],
        "sources": per_source,
        "evidence_records": [(k[0], k[1], v[:ANNOTATION_PAIRS], len(v)) for k, v in records.items()],
        "pairs": [(p, status(p)) for p in pairs],
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("show", [0, 1, 3, 10, 1000])
def test_streaming_verdict_equals_brute_force(seed: int, show: int) -> None:
    rng = random.Random(seed)
    pairs = _random_pairs(rng, rng.choice([0, 1, 30, 400]))
    keys = [(p.reference_id, p.target_id) for p in pairs] or [("r0", "t0")]
    base = Baseline("b", "b", frozenset(rng.sample(keys, len(keys) // 4) + [("zz", "zz")]))
    allow = AllowList("allow.txt", frozenset({"r3", "r11"}), frozenset(rng.sample(keys, len(keys) // 8)))
    limits = Limits(max_pairs=50, max_contamination=0.1, max_reference_coverage=0.4)
    v = evaluate(iter(pairs), SOURCES, 20, limits, base, allow, show=show, reread=lambda: iter(pairs))
    want = _brute(pairs, base, allow, show)
    assert v.statuses == want["statuses"] and v.evidence_pairs == len(pairs)
    assert (v.records_with_evidence, v.items_with_evidence) == (want["records"], want["items"])
    assert v.top == want["top"]  # the show strongest, strongest first, ties in input order
    assert [(sv.source, sv.counted, sv.accepted, sv.records_with_evidence, sv.reference_items, sv.top)
            for sv in v.sources] == want["sources"]
    assert [(r.source, r.row, r.pairs, r.count) for r in v.evidence_records] == want["evidence_records"]
    assert list(v.pairs()) == want["pairs"]
    counted = want["statuses"][COUNTED]  # type: ignore[index]
    assert [(r.name, r.count, r.total) for r in v.limits] == [
        ("max-pairs", counted, len(pairs)), ("max-contamination", want["records"], 95),
        ("max-reference-coverage", want["items"], 20)]
    assert [sv.failed for sv in v.sources] == [not v.passed and sv.counted > 0 for sv in v.sources]


def test_a_list_is_read_again_and_an_iterator_needs_reread() -> None:
    pairs = _random_pairs(random.Random(7), 20)
    assert [p for p, _ in evaluate(pairs, SOURCES, 20, Limits()).pairs()] == pairs
    v = evaluate(iter(pairs), SOURCES, 20, Limits())
    assert v.counted_pairs == len(pairs)
    with pytest.raises(ValueError, match="read once and not kept"):
        next(v.pairs())


class _Generated:
    """``n`` pairs made as they are read (fresh strings for every pair): 300 records of 3 sources,
    1,000 reference items. Sized but not a sequence: the gate reads it once."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[EvidencePair]:
        for i in range(self.n):
            row = i % 300
            yield EvidencePair(f"ref-{i % 1000:06d}", f"target-{row:06d}", ["a.jsonl", "b.parquet", "c.csv"][row % 3],
                               row, 0.5 + (i % 7) / 14, 0.1 + (i % 5) / 10, 10 + i % 13)


def test_memory_does_not_grow_with_pairs() -> None:
    tracemalloc.start()
    try:
        v = evaluate(_Generated(300_000), SOURCES, 1000, Limits(max_pairs=10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert v.counted_pairs == 300_000 and v.records_with_evidence == 300 and v.items_with_evidence == 1000
    # kept: 300 records x 3 pairs, 1,000 ids, 10 + 3 x 10 top pairs; one object per pair takes > 60 MB
    assert peak < 8_000_000, f"peak traced memory {peak:,} bytes"


HOSTILE = 'ev"il\\\x00\n\u202e\u00e9\U0001f600\ud800'


@pytest.mark.parametrize("n", [0, 1, 5])
def test_streamed_json_equals_the_whole_document(n: int) -> None:
    pairs = [EvidencePair(f"{HOSTILE}{i}", HOSTILE, "a.jsonl", i, [1.0, 0.1, 1e-07, 2 / 3, 0.5][i],
                          [0.0, 0.3, 1.0, 1 / 3, 5e-324][i], 10 ** i) for i in range(n)]
    base = Baseline("b", "b", frozenset({(pairs[0].reference_id, HOSTILE)} if pairs else set()))
    v = evaluate(pairs, SOURCES, 20, Limits(max_pairs=1), base)
    out = io.StringIO()
    write_json(v, 3, out)
    doc = verdict_head(v, 3)
    doc["pairs"] = [{"reference_id": p.reference_id, "target_id": p.target_id, "target_source": p.target_source,
                     "target_row": p.target_row, "containment": p.containment, "jaccard": p.jaccard,
                     "verbatim_tokens": p.verbatim_tokens, "status": s} for p, s in v.pairs()]
    assert out.getvalue() == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    assert json.loads(out.getvalue())["pairs"] == doc["pairs"]


def test_a_parquet_baseline_is_read_a_batch_at_a_time(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from provaudit.gate.acceptance import load_baseline

    n = 200_000
    pq.write_table(pa.table({"reference_id": [f"reference-item-{i % 5000:08d}" for i in range(n)],
                             "target_id": [f"target-record-{i:08d}" for i in range(n)]}),
                   tmp_path / "matches.parquet", row_group_size=16_384)
    tracemalloc.start()
    try:
        base = load_baseline(tmp_path / "matches.parquet")
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(base.pairs) == n and ("reference-item-00000007", "target-record-00005007") in base.pairs
    # beyond the set it returns, one batch of ids (whole columns as lists took 10% more)
    assert peak - kept < kept // 50, f"peak {peak:,} bytes, kept {kept:,}"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 16])
def test_a_json_object_read_with_its_list_streamed_equals_json_loads(monkeypatch, chunk: int) -> None:
    from provaudit.gate import jsonread

    monkeypatch.setattr(jsonread, "CHUNK", chunk)  # every value split across refills
    rng = random.Random(chunk)
    pairs = [{"reference_id": f"r{rng.randrange(10 ** 6)}\u00e9\"\\", "target_id": "t\n", "containment": rng.random(),
              "target_row": rng.randrange(10 ** 9), "x": [None, True, {"y": -1.5e-7}]} for _ in range(40)]
    doc = {"format": "provaudit-check", "counts": {"pairs": 123456789}, "pairs": pairs, "sources": [], "z": 10 ** 20}
    for text in (json.dumps(doc, indent=2, sort_keys=True), json.dumps(doc, separators=(",", ":")),
                 json.dumps(doc, ensure_ascii=False, indent="\t")):
        seen: list[tuple[int, object]] = []
        got, listed = jsonread.read_object(io.StringIO(text), "pairs", lambda i, v: seen.append((i, v)))
        assert listed and got == {k: v for k, v in doc.items() if k != "pairs"} and seen == list(enumerate(pairs))
    assert jsonread.read_object(io.StringIO('{"pairs": 5}'), "pairs", lambda i, v: None) == ({"pairs": 5}, False)
    assert jsonread.read_object(io.StringIO(' {} '), "pairs", lambda i, v: None) == ({}, False)
    for bad, message in [("[1]", "top level is not an object"), ('{"a": 1', "expected ',' or '}' at character 7"),
                         ('{"pairs": [1 2]}', "expected ',' or ']' at character 13"), ('{"a": tru}', "Expecting value"),
                         ('{"a": 1} x', "extra data at character 9"),
                         ('{1: 2}', "expected a member name at character 1"), ('{"a": "\\q"}', "Invalid \\escape")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            jsonread.read_object(io.StringIO(bad), "pairs", lambda i, v: None)


def test_a_check_json_baseline_is_read_a_pair_at_a_time(tmp_path) -> None:
    from provaudit.gate.acceptance import load_baseline

    n = 100_000
    pairs = [EvidencePair(f"reference-item-{i % 5000:08d}", f"target-record-{i:08d}", "a.jsonl", i, 1.0, 0.5, 30)
             for i in range(n)]
    v = evaluate(pairs, SOURCES, 5000, Limits())
    with open(tmp_path / "check.json", "w", encoding="ascii") as f:
        write_json(v, 3, f)
    del pairs, v
    tracemalloc.start()
    try:
        base = load_baseline(tmp_path / "check.json")
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(base.pairs) == n and ("reference-item-00000007", "target-record-00005007") in base.pairs
    # beyond the set it returns, a buffer of the file (json.loads of the whole file took 3x the set)
    assert peak - kept < kept // 10, f"peak {peak:,} bytes, kept {kept:,}"
