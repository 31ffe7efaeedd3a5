"""Table-driven: every fixture in tests/bad_inputs/ through `index` (fail), `audit` (skip) and `audit --on-error fail`.

``tests/bad_inputs/cases.json`` holds the expected exit code and exact message (or, for
audits, the counts in report.json) of each fixture; ``regen.py`` rewrites the fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from provaudit.cli import cli
from provaudit.index.format import load_index
from provaudit.fs.integrity import load_report
from provaudit.read.records import NO_TEXT

BAD = Path(__file__).resolve().parent / "bad_inputs"
CASES: dict[str, Any] = json.loads((BAD / "cases.json").read_text(encoding="utf-8"))
NAMES = sorted(k for k in CASES if not k.startswith("_"))


def _fixture(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture's path: in tests/bad_inputs/, or built in ``tmp_path`` for a case git cannot hold ("make")."""
    make = CASES[name].get("make")
    if make is None:
        return BAD / name
    d = tmp_path / name
    d.mkdir()
    shutil.copy(BAD / "good.jsonl", d / "good.jsonl")
    if make == "fifo_dir":
        os.mkfifo(d / "pipe.jsonl")
    elif make == "unlistable_dir":  # tests run as root, whom chmod 000 does not stop: raise where the OS would
        (d / "locked").mkdir()
        locked, real = str(d / "locked"), os.scandir

        def scandir(path: object = ".") -> object:
            if str(path) == locked:
                raise PermissionError(13, "Permission denied", locked)
            return real(path)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        raise AssertionError(f"unknown make {make!r}")
    return d


def _run(*args: object) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _fill(value: Any, f: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{f}", str(f))
    if isinstance(value, list):
        return [_fill(v, f) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, f) for k, v in value.items()}
    return value


def _check_exit(r: Any, exp: dict[str, Any]) -> None:
    assert "Traceback" not in r.output
    assert r.exit_code == exp["exit"], r.output
    if exp["exit"] == 4:  # the output was written; the input problem is named
        assert r.output.startswith("Error: not everything was read: ") and exp.get("error", "") in r.output
    elif exp["exit"] and "error" in exp:
        assert r.output == f"Error: {exp['error']}\n"


@pytest.fixture(scope="module")
def ref_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bad") / "ref.idx"
    assert _run("index", BAD / "good.jsonl", "-o", out, "-q").exit_code == 0
    return out


def test_every_fixture_has_a_case() -> None:
    on_disk = {p.name for p in BAD.iterdir() if p.name not in ("regen.py", "cases.json", "__pycache__")}
    assert on_disk == {n for n in NAMES if "make" not in CASES[n]}


@pytest.mark.parametrize("name", NAMES)
def test_index_fails_clearly_or_accounts_for_every_record(name: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    f, case = _fixture(name, tmp_path, monkeypatch), CASES[name]
    exp = _fill(case["index"], f)
    r = _run("index", f, "-o", tmp_path / "idx", "-q", *case.get("args", []))
    _check_exit(r, exp)
    if exp["exit"]:
        assert [p for p in tmp_path.iterdir() if p != f] == [], "a failed index build must leave nothing behind"
        return
    manifest = load_index(tmp_path / "idx").manifest
    audit = case["audit"]
    if "altered" not in audit and "record too large" not in audit.get("skipped", {}):
        counted = {k: v for k, v in audit.get("skipped", {}).items() if k in NO_TEXT}
        assert sum(i["rows_skipped"] == counted for i in manifest["inputs"]) >= 1
        assert manifest["counts"]["items"] == audit["rows_read"]


@pytest.mark.parametrize("workers", ["1", "2"])  # 2: workers read and parse their own blocks
@pytest.mark.parametrize("name", NAMES)
def test_audit_skips_and_counts_by_reason(name: str, ref_index: Path, tmp_path: Path, workers: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    f, case = _fixture(name, tmp_path, monkeypatch), CASES[name]
    exp = _fill(case["audit"], f)
    out = tmp_path / "out"
    r = _run("audit", ref_index, f, "-o", out, "-q", "-w", workers, *case.get("args", []), *case.get("audit_args", []))
    _check_exit(r, exp)
    if exp["exit"] not in (0, 4):
        assert not out.exists()
        return
    report = load_report(out)
    ip = report["input_problems"]
    assert report["counts"]["target_records"] == exp["rows_read"]
    assert ip["on_error"] == "skip"
    assert ip["records_skipped"] == exp.get("skipped", {})
    assert ip["records_altered"] == exp.get("altered", {})
    assert ip["inputs_with_errors"] == ([{"source": str(f), "error": exp["error"]}] if "error" in exp else [])
    assert ip["ignored_files"]["files"] == exp.get("ignored", [])
    lost = {k: v for k, v in exp.get("skipped", {}).items() if k not in NO_TEXT}
    complete = not (lost or exp.get("altered") or "error" in exp)
    assert ip["all_records_read"] is exp.get("all_records_read", complete) is complete
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Input problems" in md
    assert ("**Warning: not every target record was audited" in md) is (not complete)
    for reason in lost:
        assert f"{reason}: {lost[reason]}" in md


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("name", NAMES)
def test_audit_on_error_fail_stops_with_the_index_message(name: str, ref_index: Path, tmp_path: Path,
                                                         workers: str, monkeypatch: pytest.MonkeyPatch) -> None:
    f, case = _fixture(name, tmp_path, monkeypatch), CASES[name]
    exp = _fill(case.get("audit_fail", case["index"]), f)
    out = tmp_path / "out"
    r = _run("audit", ref_index, f, "-o", out, "-q", "-w", workers, "--on-error", "fail",
             *case.get("args", []), *case.get("audit_args", []))
    _check_exit(r, exp)
    assert out.exists() is (exp["exit"] == 0)
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("out", name)] == [], "no temporary or checkpoint left"


def test_skip_counts_are_prominent_on_stdout_and_in_the_report(ref_index: Path, tmp_path: Path) -> None:
    files = [BAD / n for n in ("malformed_json.jsonl", "invalid_utf8.jsonl", "truncated.jsonl.gz")]
    r = _run("audit", ref_index, *files, "-o", tmp_path / "out", "-w", "1")
    assert r.exit_code == 4 and f"Error: not everything was read: {files[2]}" in r.output  # the truncated gzip
    assert ("Warning: not every target record was audited: 2 records skipped, 1 input(s) not read to the end; "
            "see 'Input problems' in report.md.") in r.output
    report = load_report(tmp_path / "out")
    assert report["counts"]["skipped_records"] == 2 and report["counts"]["inputs_with_errors"] == 1
    assert report["input_problems"]["examples"] == {
        "invalid UTF-8": [f"{files[1]} line 2"], "malformed JSON": [f"{files[0]} line 2"]}
