"""`provaudit check`: the CI gate, every exit path and output format, baselines, allow-lists, settings."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import brute_force_pairs, write_jsonl
from provaudit.cli import cli, terminal_safe

PARTS = {"a.jsonl": range(0, 80), "b.jsonl": range(80, 160), "c.jsonl": range(160, 220)}


def _run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def split(corpus, tmp_path_factory):
    """The corpus targets in three files, and the evidence pairs a full audit of them finds."""
    _, targets, _, _ = corpus
    d = tmp_path_factory.mktemp("split")
    files = [str(write_jsonl(d / name, {f"t{i}": targets[f"t{i}"] for i in rows})) for name, rows in PARTS.items()]
    return d, files


@pytest.fixture(scope="module")
def full_audit(split, corpus_index, tmp_path_factory):
    """A full audit's output of the three files, and its evidence pairs (ref, target) -> row."""
    out = tmp_path_factory.mktemp("audits") / "full"
    r = _run("audit", corpus_index, *split[1], "-o", out, "-q", "-w", "1")
    assert r.exit_code == 0, r.output
    rows = pq.read_table(out / "matches.parquet").to_pylist()
    return out, {(x["reference_id"], x["target_id"]): x for x in rows if not x["item_flag"]}


def _json(r) -> dict:
    return json.loads(r.stdout)


def _counted(doc: dict) -> set[tuple[str, str]]:
    return {(p["reference_id"], p["target_id"]) for p in doc["pairs"] if p["status"] == "counted"}


# --- exit paths and the default output --------------------------------------------------------------------


def test_fail_lists_sources_pairs_and_verdict(corpus, split, corpus_index, full_audit) -> None:
    refs, targets, _, _ = corpus
    evidence = full_audit[1]
    truth = brute_force_pairs(refs, targets, 0.5, 0.5)
    assert evidence and set(evidence) <= set(truth)  # every pair is real (the engine's own tests check recall)
    r = _run("check", corpus_index, *split[1], "-w", "1")
    assert r.exit_code == 3, r.output
    lines = r.output.splitlines()
    for line, (name, rows) in zip(lines, PARTS.items()):
        n = sum(1 for p in evidence.values() if p["target_source"].endswith(name))
        recs = len({p["target_row"] for p in evidence.values() if p["target_source"].endswith(name)})
        assert line.startswith(f"FAIL {split[0]}/{name}: {n} pairs in {recs} of {len(rows)} records, ")
    items = len({k[0] for k in evidence})
    recs = len({(p["target_source"], p["target_row"]) for p in evidence.values()})
    assert lines[-1] == (f"FAIL: {len(evidence)} evidence pairs in {recs} of 220 target records, {items} of 141 "
                         f"reference items; over limits: max-pairs: {len(evidence)} > 0")
    assert lines[3].startswith(f"  {split[0]}/") and " contains r" in lines[3]
    assert lines[-2] == f"  ... and {len(evidence) - 10} more"
    assert len(lines) == 3 + 10 + 2
    q = _run("check", corpus_index, *split[1], "-q")
    assert q.exit_code == 3 and q.output == lines[-1] + "\n"


def test_pass_on_clean_target(corpus_index, tmp_path) -> None:
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps({"id": "c", "text": "entirely unrelated words about gardening and tomatoes"}) + "\n")
    r = _run("check", corpus_index, clean)
    assert r.exit_code == 0, r.output
    assert r.output == (f"ok   {clean}: no evidence in 1 records\nPASS: 0 evidence pairs in 0 of 1 target records, "
                        "0 of 141 reference items; within limits: max-pairs: 0 <= 0\n")


@pytest.mark.parametrize("limit,ok,over", [
    ("--max-pairs", "{pairs}", "{pairs_1}"),
    ("--max-contamination", "{contamination}", "{contamination_1}"),
    ("--max-reference-coverage", "{coverage}", "{coverage_1}"),
])
def test_each_limit_passes_at_its_value_and_fails_below(split, corpus_index, full_audit, limit, ok, over) -> None:
    evidence = full_audit[1]
    records = len({(p["target_source"], p["target_row"]) for p in evidence.values()})
    items = len({k[0] for k in evidence})
    figures = {"pairs": len(evidence), "pairs_1": len(evidence) - 1, "contamination": records / 220,
               "contamination_1": (records - 1) / 220, "coverage": items / 141, "coverage_1": (items - 1) / 141}
    name = limit[2:]
    r = _run("check", corpus_index, *split[1], limit, repr(figures[ok[1:-1]]), "--json", "-", "-q")
    assert r.exit_code == 0, r.output
    doc = _json(r)
    assert doc["verdict"] == "pass" and [x["name"] for x in doc["limits"]] == [name]
    r = _run("check", corpus_index, *split[1], limit, repr(figures[over[1:-1]]), "-q")
    assert r.exit_code == 3
    assert r.output.startswith("FAIL: ") and f"over limits: {name}: " in r.output


def test_every_failing_limit_is_named(split, corpus_index) -> None:
    r = _run("check", corpus_index, *split[1], "--max-pairs", "3", "--max-contamination", "0.9",
             "--max-reference-coverage", "0.01", "-q")
    assert r.exit_code == 3
    over = r.output.split("over limits: ")[1]
    assert re.fullmatch(r"max-pairs: \d+ > 3, max-reference-coverage: [0-9.]+ \(\d+ of 141 reference items\) "
                        r"> 0\.01\n", over), over


@pytest.mark.parametrize("args,code,message", [
    (["{idx}", "{tmp}/nope.jsonl"], 1, "Error: {tmp}/nope.jsonl: no such file or directory\n"),
    (["{tmp}", "{tmp}/x.jsonl"], 1, "Error: {tmp}: no manifest.json (not a provaudit index, or an incomplete build)\n"),
    (["{idx}", "{tmp}/bad.jsonl"], 1, "Error: {tmp}/bad.jsonl line 2: malformed JSON (Expecting property name "
                                      "enclosed in double quotes at column 2); use --on-error skip to skip and count "
                                      "such records\n"),
    (["{idx}", "{tmp}/x.jsonl", "--allow", "{tmp}/bad.allow"], 1,
     "Error: {tmp}/bad.allow line 1: expected 'reference_id' or 'reference_id,target_id', got 3 field(s); quote ids "
     "that contain commas\n"),
    (["{idx}", "{tmp}/x.jsonl", "--baseline", "{tmp}/x.jsonl"], 1,
     "Error: {tmp}/x.jsonl: a baseline is an audit output directory, report.json, matches.parquet or a 'provaudit "
     "check --json' file\n"),
    (["{idx}", "{tmp}/x.jsonl", "--max-contamination", "1.5"], 2, "Error: Invalid value for '--max-contamination': "
                                                                   "1.5 is not in the range 0.0<=x<=1.0.\n"),
    (["{idx}", "{tmp}/x.jsonl", "--max-pairs", "-1"], 2, "Error: Invalid value for '--max-pairs': -1 is not in the "
                                                         "range x>=0.\n"),
    (["{idx}", "{tmp}/x.jsonl", "--json", "-", "--github"], 2,
     "Error: --json - and --github both write to stdout; give --json a file name\n"),
    (["{idx}"], 2, "Error: give INDEX and at least one TARGET (or set index in the settings)\n"),
    ([], 2, "Error: missing INDEX and TARGETs: give them as arguments, or set index and targets in [tool.provaudit] "
            "of pyproject.toml or in provaudit.toml\n"),
    (["--index", "{idx}", "{idx}", "{tmp}/x.jsonl"], 2, "Error: {idx} is an index, but the index is already {idx} "
                                                        "(from --index or the settings): arguments are targets\n"),
    (["{idx}", "{tmp}/x.jsonl", "--config", "{tmp}/none.toml"], 2, "Error: {tmp}/none.toml: no such settings file\n"),
])
def test_error_exit_paths(corpus_index, tmp_path, monkeypatch, args, code, message) -> None:
    monkeypatch.chdir(tmp_path)  # no settings file applies
    (tmp_path / "x.jsonl").write_text('{"text": "a b c"}\n')
    (tmp_path / "bad.jsonl").write_text('{"text": "a b c"}\n{oops}\n')
    (tmp_path / "bad.allow").write_text("a,b,c\n")
    r = _run("check", "--junit", tmp_path / "j.xml", *[a.format(tmp=tmp_path, idx=corpus_index) for a in args])
    assert r.exit_code == code, r.output
    message = message.format(tmp=tmp_path, idx=corpus_index)
    assert r.output.endswith(message), r.output
    assert "Traceback" not in r.output
    if code == 2:
        assert not (tmp_path / "j.xml").exists(), "a usage error writes no report"
        return
    # exit 1: the JUnit report says why, as one test case in error
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.attrib == {"name": "provaudit check", "tests": "1", "failures": "0", "errors": "1", "skipped": "0"}
    (case,) = root.iter("testcase")
    error = case.find("error")
    assert error.get("type") == "provaudit.error" and error.get("message") == message[len("Error: "):-1]


def test_input_error_in_json_and_github(corpus_index, tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a b c"}\n{oops}\n')
    r = _run("check", corpus_index, bad, "--json", tmp_path / "c.json", "--github")
    assert r.exit_code == 1
    problem = (f"{bad} line 2: malformed JSON (Expecting property name enclosed in double quotes at column 2); "
               "use --on-error skip to skip and count such records")
    assert json.loads((tmp_path / "c.json").read_text()) == {
        "format": "provaudit-check", "format_version": 2, "verdict": "error", "exit_code": 1, "error": problem}
    assert r.output == f"::error title=provaudit check::Error: {problem}\nError: {problem}\n"


def test_out_writes_the_audit_and_refuses_to_overwrite(corpus, corpus_index, tmp_path) -> None:
    r = _run("check", corpus_index, corpus[3], "--max-pairs", "100000", "-o", tmp_path / "o")
    assert r.exit_code == 0 and r.output.splitlines()[-1].startswith("PASS: ")
    assert (tmp_path / "o" / "report.json").exists()
    r = _run("check", corpus_index, corpus[3], "-o", tmp_path / "o")
    assert r.exit_code == 1 and r.output == f"Error: {tmp_path}/o: already exists (use --force to replace it)\n"
    r = _run("check", corpus_index, corpus[3], "-o", tmp_path / "o", "--force", "--show", "2")
    assert r.exit_code == 3 and f"more (see {tmp_path}/o/matches.parquet)" in r.output


# --- JUnit, GitHub, JSON -------------------------------------------------------------------------------------


def test_junit_field_by_field(split, corpus_index, full_audit, tmp_path) -> None:
    evidence = full_audit[1]
    allow = tmp_path / "allow.txt"
    allow.write_text("".join(f"{rid},{tid}\n" for (rid, tid), p in evidence.items() if "/b.jsonl" in p["target_source"]))
    r = _run("check", corpus_index, *split[1], "--junit", tmp_path / "j.xml", "--allow", allow, "--show", "3", "-q")
    assert r.exit_code == 3
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.tag == "testsuites" and root.attrib == {"name": "provaudit check", "tests": "3", "failures": "2",
                                                         "errors": "0", "skipped": "0"}
    (suite,) = root
    assert suite.tag == "testsuite" and suite.attrib == root.attrib
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    n_allowed = sum(1 for p in evidence.values() if "/b.jsonl" in p["target_source"])
    assert props == {"max-pairs": "0", "index": str(corpus_index), "allow": str(allow),
                     "index_fingerprint": props["index_fingerprint"], "accepted": f"accepted: {n_allowed} by allow-list"}
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == split[1] and [c.get("file") for c in cases] == split[1]
    assert {c.get("classname") for c in cases} == {"provaudit.check"}
    for case, name in zip(cases, PARTS):
        mine = sorted((p for p in evidence.values() if p["target_source"].endswith("/" + name)),
                      key=lambda p: (-p["containment"], -p["jaccard"], -p["verbatim_tokens"], p["reference_id"]))
        failure = case.find("failure")
        if name == "b.jsonl":  # every pair of b is allowed: it passes
            assert failure is None
            assert case.find("system-out").text == f"no evidence in 80 records ({len(mine)} accepted)\n"
            continue
        recs = len({p["target_row"] for p in mine})
        assert failure.get("type") == "provaudit.evidence"
        assert failure.get("message") == (f"{len(mine)} pairs in {recs} of {len(PARTS[name])} records, "
                                          f"{len({p['reference_id'] for p in mine})} reference items; gate over "
                                          f"limits: max-pairs: {len(evidence) - n_allowed} > 0")
        text = failure.text.splitlines()
        assert text[:3] == [f"row {p['target_row']} (id {p['target_id']}) contains {p['reference_id']}: containment "
                            f"{p['containment']:.3f}, Jaccard {p['jaccard']:.3f}, {p['verbatim_tokens']} verbatim tokens"
                            for p in mine[:3]]
        assert text[3:] == [f"... and {len(mine) - 3} more pairs"]
    assert suite.find("system-out").text == r.output


def test_junit_all_pass(split, corpus_index, tmp_path) -> None:
    r = _run("check", corpus_index, *split[1], "--max-pairs", "100000", "--junit", tmp_path / "j.xml", "-q")
    assert r.exit_code == 0
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.get("failures") == "0" and len(root.findall("testsuite/testcase")) == 3
    assert root.findall(".//failure") == []


_ANNOTATION = re.compile(r"::(error|warning) file=([^,:]+),line=(\d+),title=provaudit%3A reference material::"
                         r"Record (\S+) \(line (\d+)\) contains (.+)")


def test_github_annotations(split, corpus_index, full_audit) -> None:
    evidence = full_audit[1]
    r = _run("check", corpus_index, *split[1], "--github", "--max-annotations", "4", "-q")
    assert r.exit_code == 3
    lines = r.output.splitlines()
    assert len(lines) == 4 + 1 + 1  # 4 records, the summary annotation, the verdict line
    records = {(p["target_source"], p["target_row"]) for p in evidence.values()}
    for line in lines[:4]:
        m = _ANNOTATION.fullmatch(line)
        assert m, line
        kind, file, lineno, tid, lineno2, _ = m.groups()
        assert kind == "error" and lineno == lineno2 and (file, int(lineno) - 1) in records
        # the annotated line of the file is the record named
        assert json.loads(Path(file).read_text().splitlines()[int(lineno) - 1])["id"] == tid
    assert lines[4] == (f"::error title=provaudit check::{lines[5]} ({len(records) - 4} more records not annotated)")
    # in GitHub Actions, paths are made relative to the repository root ($GITHUB_WORKSPACE)
    r = _run("check", corpus_index, *split[1], "--github", "--max-annotations", "4", "-q",
             env={"GITHUB_WORKSPACE": str(split[0].parent)})
    assert [line.split(",")[0] for line in r.output.splitlines()[:4]] == [
        line.split(",")[0].replace(f"file={split[0].parent}/", "file=") for line in lines[:4]]
    assert r.output.startswith(f"::error file={split[0].name}/")
    ok = _run("check", corpus_index, *split[1], "--github", "--max-pairs", "100000", "-q")
    assert ok.exit_code == 0
    kinds = [line.split(" ", 1)[0] for line in ok.output.splitlines()]
    assert kinds == ["::warning"] * 9 + ["::notice", "PASS:"]


def test_json_schema(split, corpus_index, full_audit, tmp_path) -> None:
    evidence = full_audit[1]
    r = _run("check", corpus_index, *split[1], "--json", tmp_path / "c.json", "--max-contamination", "0.01")
    assert r.exit_code == 3
    doc = json.loads((tmp_path / "c.json").read_text())
    assert sorted(doc) == ["allow", "baseline", "counts", "exit_code", "failed_limits", "format", "format_version",
                           "index", "limits", "pairs", "parameters", "sources", "verdict"]
    assert (doc["format"], doc["format_version"], doc["verdict"], doc["exit_code"]) == ("provaudit-check", 2, "fail", 3)
    records = len({(p["target_source"], p["target_row"]) for p in evidence.values()})
    assert doc["failed_limits"] == ["max-contamination"]
    assert doc["limits"] == [{"name": "max-contamination", "limit": 0.01, "value": records / 220, "count": records,
                              "total": 220, "passed": False}]
    assert doc["counts"] == {
        "target_records": 220, "reference_items_evidence": 141, "evidence_pairs": len(evidence),
        "counted_pairs": len(evidence), "target_records_with_counted_pairs": records,
        "reference_items_counted": len({k[0] for k in evidence}), "accepted_by_baseline": 0, "accepted_by_allow": 0}
    assert doc["baseline"] is None and doc["allow"] is None
    assert set(doc["index"]) == {"path", "fingerprint", "manifest_sha256"}
    assert doc["parameters"]["min_containment"] == 0.5
    assert [s["source"] for s in doc["sources"]] == split[1]
    assert sum(s["counted_pairs"] for s in doc["sources"]) == len(evidence)
    assert all(s["failed"] == (s["counted_pairs"] > 0) for s in doc["sources"])
    for p in doc["pairs"]:
        row = evidence[(p["reference_id"], p["target_id"])]
        assert {k: row[k] for k in p if k != "status"} == {k: v for k, v in p.items() if k != "status"}
    assert len(doc["pairs"]) == len(evidence)
    # format 2: the audit's order (matches.parquet's, flagged pairs left out), written as a stream
    assert [(p["reference_id"], p["target_id"]) for p in doc["pairs"]] == list(evidence)
    # --json - writes only JSON to stdout; the verdict lines go to stderr
    r2 = _run("check", corpus_index, *split[1], "--json", "-", "--max-contamination", "0.01")
    assert json.loads(r2.stdout) == doc and r2.stderr.splitlines()[-1].startswith("FAIL: ")


# --- baseline and allow-list ---------------------------------------------------------------------------------


def test_baseline_of_the_same_audit_passes(split, corpus_index, full_audit) -> None:
    out, evidence = full_audit
    for base in (out, out / "report.json", out / "matches.parquet"):
        r = _run("check", corpus_index, *split[1], "--baseline", base, "--json", "-")
        assert r.exit_code == 0, r.output
        doc = _json(r)
        assert doc["counts"]["accepted_by_baseline"] == len(evidence) and _counted(doc) == set()
        assert doc["baseline"]["pairs"] >= len(evidence) and doc["baseline"]["accepted"] == len(evidence)
        assert f"accepted: {len(evidence)} by baseline" in r.stderr


def test_baseline_of_part_of_the_shards_fails_on_exactly_the_new_pairs(split, corpus_index, full_audit,
                                                                       tmp_path) -> None:
    evidence = full_audit[1]
    base = tmp_path / "base"
    assert _run("audit", corpus_index, *split[1][:2], "-o", base, "-q").exit_code == 0
    new = {k for k, p in evidence.items() if p["target_source"].endswith("/c.jsonl")}
    assert new and len(new) < len(evidence)
    r = _run("check", corpus_index, *split[1], "--baseline", base, "--json", tmp_path / "c.json")
    assert r.exit_code == 3
    doc = json.loads((tmp_path / "c.json").read_text())
    assert _counted(doc) == new
    assert doc["counts"]["accepted_by_baseline"] == len(evidence) - len(new)
    assert f"over limits: max-pairs: {len(new)} > 0" in r.output
    # that check's JSON is itself a baseline: with it, the same check passes
    r = _run("check", corpus_index, *split[1], "--baseline", tmp_path / "c.json", "-q")
    assert r.exit_code == 0 and f"accepted: {len(evidence)} by baseline" in r.output


def test_a_changed_baseline_is_refused(split, corpus_index, full_audit, tmp_path) -> None:
    import shutil

    base = tmp_path / "base"
    shutil.copytree(full_audit[0], base)
    md = base / "report.md"
    md.write_bytes(md.read_bytes().replace(b"#", b"%", 1))
    r = _run("check", corpus_index, *split[1], "--baseline", base)
    assert r.exit_code == 1 and "report.md" in r.output and "Traceback" not in r.output


def test_allow_removes_exactly_the_listed_pairs(split, corpus_index, full_audit, tmp_path) -> None:
    evidence = full_audit[1]
    keys = sorted(evidence)
    by_item = keys[0][0]  # a whole reference item ...
    pairs = [k for k in keys[1::3] if k[0] != by_item]  # ... and single pairs
    allow = tmp_path / "allow.txt"
    allow.write_text("# accepted after review\n" + by_item + "\n" + "".join(f"{r},{t}\n" for r, t in pairs)
                     + "never-matched-item\n")
    r = _run("check", corpus_index, *split[1], "--allow", allow, "--json", "-")
    assert r.exit_code == 3
    doc = _json(r)
    removed = {k for k in keys if k[0] == by_item} | set(pairs)
    assert _counted(doc) == set(keys) - removed
    assert {(p["reference_id"], p["target_id"]) for p in doc["pairs"] if p["status"] == "allowed"} == removed
    assert doc["allow"] == {"path": str(allow), "reference_ids": 2, "pairs": len(pairs), "accepted": len(removed)}
    assert f"accepted: {len(removed)} by allow-list" in r.stderr


# --- hostile ids in every output -----------------------------------------------------------------------------


def test_untrusted_ids_are_escaped_in_every_output(tmp_path) -> None:
    evil_ref = "evil\x1b[2J\x07\u202e<x>&\x00"
    evil_tgt = "t\nFAKE: PASS\r\n::error::pwned%0A\x0b\ufffe"
    text = "one two three four five six seven eight"
    (tmp_path / "ref.jsonl").write_text(json.dumps({"id": evil_ref, "text": text}) + "\n")
    (tmp_path / "t.jsonl").write_text(json.dumps({"id": evil_tgt, "text": text}) + "\n")
    assert _run("index", tmp_path / "ref.jsonl", "-o", tmp_path / "idx", "-q").exit_code == 0
    r = _run("check", tmp_path / "idx", tmp_path / "t.jsonl", "--github", "--junit", tmp_path / "j.xml",
             "--json", tmp_path / "c.json")
    assert r.exit_code == 3
    out = r.output
    assert not any(ord(c) < 32 and c != "\n" or c in "\u202e\ufffe\x7f" for c in out)
    assert terminal_safe(evil_ref) in out and terminal_safe(evil_tgt) in out
    assert all(line.startswith(("::", "FAIL", "  ")) for line in out.splitlines()), out
    assert sum(line.startswith("::") for line in out.splitlines()) == 2  # one record, one summary: nothing injected
    root = ET.parse(tmp_path / "j.xml").getroot()
    failure = root.find("testsuite/testcase/failure")
    assert "evil\\x1b[2J\\x07\\u202e<x>&\\x00" in failure.text and "t\\nFAKE: PASS\\r\\n" in failure.text
    doc = json.loads((tmp_path / "c.json").read_text())
    assert (doc["pairs"][0]["reference_id"], doc["pairs"][0]["target_id"]) == (evil_ref, evil_tgt)
    assert terminal_safe("a\u202eb") == "a\\u202eb"
