"""Sampled audits, estimates in report.json, and the negative-control comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import FIXTURES
from provaudit import api
from provaudit.cli import cli
from provaudit.config import SampleConfig
from provaudit.estimate.section import PairTally, candidate_miss, control_excess
from provaudit.report.training import build_report, matches_table


@pytest.fixture(scope="module")
def fx_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    idx = tmp_path_factory.mktemp("fig") / "ref.idx"
    api.build_index([str(FIXTURES / "reference")], idx)
    return idx


def _audit(index: Path, out: Path, *extra: str) -> dict:
    r = CliRunner().invoke(cli, ["audit", str(index), str(FIXTURES / "shards"), "-o", str(out), "-q", *extra])
    assert r.exit_code == 0, r.output
    return json.loads((out / "report.json").read_text())


def test_sample_is_reproducible_and_independent_of_workers(fx_index, tmp_path) -> None:
    a = _audit(fx_index, tmp_path / "a", "--sample", "0.2", "--seed", "5", "-w", "1")
    _audit(fx_index, tmp_path / "b", "--sample", "0.2", "--seed", "5", "-w", "2")
    c = _audit(fx_index, tmp_path / "c", "--sample", "0.2", "--seed", "6", "-w", "1")
    for f in ("report.json", "sample.parquet", "matches.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "sample.parquet").read_bytes() != (tmp_path / "c" / "sample.parquet").read_bytes()
    n = a["counts"]["target_records"]
    assert abs(n - 1200) < 4 * (6000 * 0.2 * 0.8) ** 0.5  # 6,000 records, 20%
    rows = pq.read_table(tmp_path / "a" / "sample.parquet").to_pylist()
    assert len(rows) == n
    assert a["estimates"]["target_contamination"]["method"] == "wilson (finite population)"
    assert a["estimates"]["reference_coverage"]["method"].startswith("observed lower bound")
    # the sample's figures are exactly the full scan's restricted to the sampled rows
    _audit(fx_index, tmp_path / "full")
    full_pairs = pq.read_table(tmp_path / "full" / "matches.parquet").to_pylist()
    hit = {(r["target_source"], r["target_row"]) for r in full_pairs if not r["item_flag"]}
    for name, rep in (("a", a), ("c", c)):
        sampled = {(r["source"], r["row"]) for r in pq.read_table(tmp_path / name / "sample.parquet").to_pylist()}
        e = rep["estimates"]["target_contamination"]
        assert e["value"] == pytest.approx(len(sampled & hit) / len(sampled))
        assert e["ci_low"] < e["value"] < e["ci_high"]


def test_sample_count_reads_exactly_count(fx_index, tmp_path) -> None:
    r = _audit(fx_index, tmp_path / "o", "--sample", "500", "--seed", "1")
    assert r["counts"]["target_records"] == 500
    assert sum(i["rows_read"] for i in r["inputs"]) == 500


def test_sample_shards_reads_whole_files(fx_index, tmp_path) -> None:
    r = _audit(fx_index, tmp_path / "o", "--sample-shards", "2", "--seed", "1")
    assert len(r["sample"]["sampled_shards"]) == 2
    assert [i["source"] for i in r["inputs"]] == r["sample"]["sampled_shards"]
    assert all(i["rows_sampled_out"] == 0 for i in r["inputs"])
    assert "cluster-robust" in r["estimates"]["target_contamination"]["method"]


def _split_reference(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Reference = planted items + half the unplanted; control = the other unplanted half;
    clean target = the shards without any record that had something planted in it."""
    truth = [json.loads(x) for x in (FIXTURES / "truth.jsonl").read_text().splitlines()]
    unplanted = sorted(t["reference_id"] for t in truth if t["kind"] == "unplanted")
    control_ids = set(unplanted[::2])
    planted_targets = {t["target_id"] for t in truth if t["target_id"]}
    posts = [json.loads(x) for x in (FIXTURES / "reference" / "posts.jsonl").read_text().splitlines()]
    ref, ctl = tmp_path / "ref.jsonl", tmp_path / "control.jsonl"
    ref.write_text("".join(json.dumps(p) + "\n" for p in posts if p["id"] not in control_ids))
    ctl.write_text("".join(json.dumps(p) + "\n" for p in posts if p["id"] in control_ids))
    clean = tmp_path / "clean.jsonl"
    from provaudit.read.sources import expand_sources, read_source

    with open(clean, "w") as f:
        for src in expand_sources([str(FIXTURES / "shards")]):
            for r in read_source(src):
                if r.id not in planted_targets:
                    f.write(json.dumps({"id": r.id, "text": r.text}) + "\n")
    return ref, ctl, clean


def test_control_excess_contains_zero_only_for_clean_target(tmp_path) -> None:
    ref, ctl, clean = _split_reference(tmp_path)
    idx = tmp_path / "ref.idx"
    api.build_index([str(ref)], idx)
    dirty = api.audit(idx, [str(FIXTURES / "shards")], control=[str(ctl)])
    rep = build_report(dirty)["control"]
    assert rep["excess"]["ci_low"] > 0
    assert rep["items_evidence"] > 900
    clean_res = api.audit(idx, [str(clean)], control=[str(ctl)])
    rep = build_report(clean_res)["control"]
    assert rep["excess"]["ci_low"] <= 0 <= rep["excess"]["ci_high"]
    # a control given as an index with other parameters is refused
    other = tmp_path / "other.idx"
    api.build_index([str(ctl)], other, api.IndexConfig(ngram=4))
    from provaudit.errors import IndexMismatchError

    with pytest.raises(IndexMismatchError, match="control index parameters"):
        api.audit(idx, [str(clean)], control=[str(other)])


def test_candidate_miss_correction_math() -> None:
    pairs = [{"reference_id": "a", "candidate_probability": 0.5}, {"reference_id": "a", "candidate_probability": 0.5},
             {"reference_id": "b", "candidate_probability": 1.0}]
    pairs = [{**p, "target_source": "t", "target_row": i, "jaccard": 0.9} for i, p in enumerate(pairs)]
    m = candidate_miss(PairTally.of(pairs, 0.5))
    assert m["expected_missed_pairs"] == pytest.approx(2.0)  # (1-.5)/.5 twice
    assert m["expected_missed_items"] == pytest.approx((1 - 0.75) / 0.75)  # item a found w.p. 1 - .5*.5


def test_short_items_are_flagged_not_counted(tmp_path) -> None:
    ref = tmp_path / "ref.jsonl"
    ref.write_text('{"id": "short", "text": "happy birthday to you my"}\n'
                   '{"id": "long", "text": "the committee met on tuesday to discuss the new budget for parks"}\n')
    tgt = tmp_path / "t.jsonl"
    tgt.write_text('{"id": "t1", "text": "well happy birthday to you my friend and the committee met on tuesday '
                   'to discuss the new budget for parks"}\n')
    idx = tmp_path / "idx"
    api.build_index([str(ref)], idx)
    res = api.audit(idx, [str(tgt)])
    table = matches_table(res).to_pylist()
    assert {(r["reference_id"], r["item_flag"]) for r in table} == {("short", "short_item"), ("long", "")}
    rep = build_report(res)
    assert rep["counts"]["reference_items_found"] == 1 and rep["flags"]["short_item"]["pairs"] == 1


def test_control_excess_function() -> None:
    out = control_excess(56, 70, 48, 80, 0.95)
    assert out["excess"]["ci_low"] == pytest.approx(0.0524, abs=1e-4)
    assert out["excess"]["ci_high"] == pytest.approx(0.3339, abs=1e-4)


def test_sample_config_parsing() -> None:
    assert SampleConfig.parse("1%") == 0.01 and SampleConfig.parse("0.25") == 0.25 and SampleConfig.parse("10") == 10
    from provaudit.errors import ConfigError

    with pytest.raises(ConfigError):
        SampleConfig.parse("lots")
    with pytest.raises(ConfigError):
        SampleConfig(records=1.5)
