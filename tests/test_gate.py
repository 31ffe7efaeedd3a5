"""The CI gate's library: limits, acceptance (baseline, allow-list), escaping and settings files."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from provaudit.errors import ConfigError, InputError
from provaudit.gate.acceptance import AllowList, Baseline, load_allow, load_baseline
from provaudit.gate.escape import terminal_safe, workflow_data, workflow_property, xml_text
from provaudit.gate.github import command, render_github, workspace_path
from provaudit.gate.junit import render_junit
from provaudit.gate.settings import find_config, load_settings, merge, parse_settings
from provaudit.gate.verdict import (
    ALLOWED, BASELINE, COUNTED, EvidencePair, LimitResult, Limits, SourceCount, evaluate,
)


def _pairs() -> list[EvidencePair]:
    # 5 pairs over 4 records of 2 sources, 3 reference items
    return [
        EvidencePair("r1", "a0", "a.jsonl", 0, 1.0, 0.9, 40),
        EvidencePair("r2", "a0", "a.jsonl", 0, 0.6, 0.1, 12),
        EvidencePair("r1", "a5", "a.jsonl", 5, 0.8, 0.7, 30),
        EvidencePair("r3", "b2", "b.parquet", 2, 0.9, 0.2, 25),
        EvidencePair("r3", "b7", "b.parquet", 7, 0.55, 0.5, 9),
    ]


SOURCES = [SourceCount("a.jsonl", 10), SourceCount("b.parquet", 30), SourceCount("c.csv", 60)]


def test_limits_figures_and_boundaries() -> None:
    # 5 pairs; records with evidence: (a,0), (a,5), (b,2), (b,7) = 4 of 100; items r1, r2, r3 = 3 of 20
    v = evaluate(_pairs(), SOURCES, 20, Limits(max_pairs=5, max_contamination=0.04, max_reference_coverage=0.15))
    assert [(r.name, r.value, r.count, r.total) for r in v.limits] == [
        ("max-pairs", 5, 5, 5), ("max-contamination", 0.04, 4, 100), ("max-reference-coverage", 0.15, 3, 20)]
    assert v.passed and v.failed_limits == []  # a figure equal to its limit passes
    v = evaluate(_pairs(), SOURCES, 20, Limits(max_pairs=4, max_contamination=0.039, max_reference_coverage=0.149))
    assert [r.name for r in v.failed_limits] == ["max-pairs", "max-contamination", "max-reference-coverage"]
    assert [(sv.source, sv.failed, sv.counted) for sv in v.sources] == [
        ("a.jsonl", True, 3), ("b.parquet", True, 2), ("c.csv", False, 0)]
    # only the limits that are set are checked; with none set, max-pairs 0 applies
    v = evaluate(_pairs(), SOURCES, 20, Limits(max_contamination=0.5))
    assert [r.name for r in v.limits] == ["max-contamination"] and v.passed
    v = evaluate([], SOURCES, 20, Limits())
    assert [(r.name, r.limit) for r in v.limits] == [("max-pairs", 0)] and v.passed
    assert not evaluate(_pairs()[:1], SOURCES, 20, Limits()).passed


def test_limits_are_written_as_given() -> None:
    assert LimitResult("max-pairs", 1000000, 12, 12, 12).describe() == "max-pairs: 12 <= 1,000,000"
    assert LimitResult("max-contamination", 0.001, 0.0125, 25, 2000).describe() == (
        "max-contamination: 0.0125 (25 of 2,000 records) > 0.001")
    assert LimitResult("max-reference-coverage", 0.5, 0.25, 1, 4).describe() == (
        "max-reference-coverage: 0.25 (1 of 4 reference items) <= 0.5")


def test_pairs_are_ordered_strongest_first() -> None:
    v = evaluate(_pairs(), SOURCES, 20, Limits())
    assert [(p.reference_id, p.target_id) for p in v.top] == [
        ("r1", "a0"), ("r3", "b2"), ("r1", "a5"), ("r2", "a0"), ("r3", "b7")]


@pytest.mark.parametrize("kw,message", [
    ({"max_pairs": -1}, "max-pairs must be >= 0, got -1"),
    ({"max_contamination": 1.5}, "max-contamination must be a fraction in [0, 1], got 1.5"),
    ({"max_reference_coverage": float("nan")}, "max-reference-coverage must be a fraction in [0, 1], got nan"),
])
def test_limits_are_validated(kw, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Limits(**kw)


def test_allow_list_and_baseline_accept_exactly_their_pairs() -> None:
    allow = AllowList.parse(["# reviewed", "", "r2", "r3,b7", '"r9,with comma",x'], "allow.txt")
    assert allow.reference_ids == {"r2"} and allow.pairs == {("r3", "b7"), ("r9,with comma", "x")}
    base = Baseline("base", "base/matches.parquet", frozenset({("r1", "a5"), ("r3", "b7"), ("zz", "zz")}))
    v = evaluate(_pairs(), SOURCES, 20, Limits(), base, allow)
    status = {(p.reference_id, p.target_id): s for p, s in v.pairs()}
    # the allow-list is consulted first: (r3, b7) is in both and counts as allowed
    assert status == {("r1", "a0"): COUNTED, ("r2", "a0"): ALLOWED, ("r1", "a5"): BASELINE,
                      ("r3", "b2"): COUNTED, ("r3", "b7"): ALLOWED}
    assert v.accepted(ALLOWED) == 2 and v.accepted(BASELINE) == 1
    assert [sv.accepted for sv in v.sources] == [2, 1, 0]


@pytest.mark.parametrize("line,message", [
    ("a,b,c", "allow.txt line 2: expected 'reference_id' or 'reference_id,target_id', got 3 field(s)"),
    ("a,", "allow.txt line 2: expected 'reference_id' or 'reference_id,target_id', got 2 field(s)"),
    ('"a', "allow.txt line 2: not a CSV entry"),
])
def test_malformed_allow_list_names_file_and_line(tmp_path, line, message) -> None:
    p = tmp_path / "allow.txt"
    p.write_text(f"ok\n{line}\n")
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}/{message}")):
        load_allow(p)
    with pytest.raises(InputError, match="no such allow-list file"):
        load_allow(tmp_path / "missing.txt")


def test_bad_baselines_are_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="no such baseline"):
        load_baseline(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputError, match="a baseline is an audit output directory"):
        load_baseline(tmp_path / "x.txt")
    (tmp_path / "r.json").write_text(json.dumps({"format": "provaudit-report", "kind": "training"}))
    with pytest.raises(InputError, match="matches.parquet: missing"):
        load_baseline(tmp_path / "r.json")
    (tmp_path / "c.json").write_text(json.dumps({"format": "provaudit-check", "pairs": [{"reference_id": 1}]}))
    with pytest.raises(InputError, match=r"pairs\[0\] needs string 'reference_id' and 'target_id'"):
        load_baseline(tmp_path / "c.json")
    (tmp_path / "m.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(InputError, match="not a provaudit matches.parquet"):
        load_baseline(tmp_path / "m.parquet")


HOSTILE = "ev\x00il\x1b[2J\x07\r\n::error::pwned%0A,x:y\u202e<b>&]]>\ufffe\ud800\x85"


def test_escaping_of_hostile_text() -> None:
    t = terminal_safe(HOSTILE)
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 or c == "\u202e" for c in t)
    assert t == "ev\\x00il\\x1b[2J\\x07\\r\\n::error::pwned%0A,x:y\\u202e<b>&]]>\\ufffe\\ud800\\x85"
    x = xml_text(HOSTILE)
    assert x == t and all(c in "\t\n\r" or 0x20 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD for c in x)
    # the serializer then escapes <&>; the result parses and round-trips the visible text
    el = ET.fromstring(ET.tostring(ET.Element("t", {"a": x})))
    assert el.get("a") == x
    # GitHub's rules: % CR LF in data; and : , in properties
    assert workflow_data("100%\r\nx:y,z") == "100%25%0D%0Ax:y,z"
    assert workflow_property("100%\r\nx:y,z") == "100%25%0D%0Ax%3Ay%2Cz"
    assert command("error", "a\nb", file="d:/x,y.jsonl", line="3") == "::error file=d%3A/x%2Cy.jsonl,line=3::a%0Ab"


def test_renderers_keep_hostile_ids_inert() -> None:
    pairs = [EvidencePair(HOSTILE, HOSTILE, "sh,a:rd.jsonl", 4, 1.0, 1.0, 20)]
    v = evaluate(pairs, [SourceCount("sh,a:rd.jsonl", 9)], 10, Limits())
    lines = render_github(v, "FAIL: x")
    assert len(lines) == 2 and all(line.startswith("::") and "\n" not in line and "\r" not in line for line in lines)
    assert lines[0].startswith("::error file=sh%2Ca%3Ard.jsonl,line=5,title=provaudit%3A reference material::Record ev")
    assert lines[0].count("::") == 2 + 2 * HOSTILE.count("::")  # the ids' "::" sit inside the message, after the head
    assert "%250A" in lines[0]  # the id's literal %0A cannot become a line break
    root = ET.fromstring(render_junit(v))
    case = root.find("testsuite/testcase")
    assert case is not None and case.get("name") == "sh,a:rd.jsonl"
    failure = case.find("failure")
    assert failure is not None and xml_text(HOSTILE) in (failure.text or "")


def test_settings_keys_types_and_paths(tmp_path) -> None:
    s = parse_settings({"index": "ref.idx", "targets": "data/*.jsonl", "max-contamination": 0,
                        "on-error": "skip", "json": "-", "github": True, "force": False, "quiet": True},
                       tmp_path / "sub", "p/provaudit.toml", tmp_path)
    assert s == {"index": "sub/ref.idx", "targets": ["sub/data/*.jsonl"], "max_contamination": 0.0,
                 "on_error": "skip", "json_file": "-", "github": True, "force": False, "quiet": True}
    with pytest.raises(ConfigError, match=re.escape("pyproject.toml: [tool.provaudit] key 'max_pairs' is not a "
                                                    "setting (did you mean 'max-pairs'?)")):
        parse_settings({"max_pairs": 0}, tmp_path, "pyproject.toml", tmp_path)
    with pytest.raises(ConfigError, match=re.escape("provaudit.toml: key 'zzz' is not a setting; known keys: index")):
        parse_settings({"zzz": 0}, tmp_path, "provaudit.toml", tmp_path)
    for key, value, expected in [("max-pairs", -1, "an integer >= 0"), ("max-pairs", True, "an integer >= 0"),
                                 ("max-contamination", 2, "a number in [0, 1]"), ("targets", [], "a non-empty list"),
                                 ("github", "yes", "true or false"), ("on-error", "ignore", "one of 'fail', 'skip'")]:
        with pytest.raises(ConfigError, match=re.escape(f"provaudit.toml: key {key!r} must be {expected}")):
            parse_settings({key: value}, tmp_path, "provaudit.toml", tmp_path)
    assert merge({"max_pairs": 5, "show": 10}, {"max_pairs"}, {"max_pairs": 0, "show": 3, "index": "x"}) == {
        "max_pairs": 5, "show": 3, "index": "x"}


def test_settings_file_discovery(tmp_path) -> None:
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    assert find_config(sub) is None and load_settings(None, sub) == (None, {})
    (tmp_path / "pyproject.toml").write_text('[tool.provaudit]\nmax-pairs = 1\n')
    (tmp_path / "a" / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no [tool.provaudit]: passed over
    assert find_config(sub) == tmp_path / "pyproject.toml"
    assert load_settings(None, sub)[1] == {"max_pairs": 1}
    (tmp_path / "a" / "provaudit.toml").write_text('max-pairs = 2\n')
    assert find_config(sub) == tmp_path / "a" / "provaudit.toml"
    assert load_settings(tmp_path / "pyproject.toml", sub)[1] == {"max_pairs": 1}  # --config wins
    (tmp_path / "bad.toml").write_text('max-pairs = \n')
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_settings(tmp_path / "bad.toml", sub)
    with pytest.raises(ConfigError, match="no such settings file"):
        load_settings(tmp_path / "none.toml", sub)
    (tmp_path / "a" / "pyproject.toml").write_text('[tool.other]\n')
    with pytest.raises(ConfigError, match=r"no \[tool.provaudit\] table"):
        load_settings(tmp_path / "a" / "pyproject.toml", sub)


def test_annotation_paths_are_relative_to_the_workspace(tmp_path, monkeypatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert workspace_path("data/a.jsonl", str(tmp_path)) == "sub/data/a.jsonl"
    assert workspace_path(str(tmp_path / "x" / "b.jsonl"), str(tmp_path)) == "x/b.jsonl"
    assert workspace_path("/elsewhere/c.jsonl", str(tmp_path)) == "/elsewhere/c.jsonl"  # outside: as given
    assert workspace_path("hf:user/set", str(tmp_path)) == "hf:user/set"
    assert workspace_path("data/a.jsonl", None) == "data/a.jsonl"


@pytest.mark.parametrize("module", ["acceptance", "escape", "jsonread", "settings", "verdict"])
def test_docstring_examples_run(module) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"provaudit.gate.{module}"))
    assert result.attempted > 0 and result.failed == 0
