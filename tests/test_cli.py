from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from provaudit.cli import cli


def _run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_index_then_audit(corpus, tmp_path) -> None:
    idx, out = tmp_path / "ref.idx", tmp_path / "audit"
    r = _run("index", corpus[2], "-o", idx)
    assert r.exit_code == 0, r.output
    assert f"Indexed {len(corpus[0])} reference items" in r.output
    r = _run("audit", idx, corpus[3], "-o", out)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    table = pq.read_table(out / "matches.parquet")
    assert report["counts"]["pairs"] == table.num_rows > 0
    assert report["counts"]["target_records"] == len(corpus[1])
    assert f"in {report['counts']['target_records_with_matches']} of {len(corpus[1])} target records" in r.output
    assert (out / "report.md").read_text().startswith("# Training-data audit")


def test_audit_output_is_byte_identical_across_runs(corpus, corpus_index, tmp_path) -> None:
    for name in ("a", "b"):
        assert _run("audit", corpus_index, corpus[3], "-o", tmp_path / name, "-q").exit_code == 0
    for f in ("report.json", "report.md", "report.html", "bundle.json", "matches.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_quiet_prints_nothing(corpus, corpus_index, tmp_path) -> None:
    r = _run("audit", corpus_index, corpus[3], "-o", tmp_path / "o", "-q")
    assert r.exit_code == 0 and r.output == ""


@pytest.mark.parametrize(
    "args,code,message",
    [
        (["index", "{tmp}/nope.jsonl", "-o", "{tmp}/i"], 1, "Error: {tmp}/nope.jsonl: no such file or directory\n"),
        (["audit", "{tmp}", "{tmp}/x.jsonl", "-o", "{tmp}/o"], 1, "Error: {tmp}: no manifest.json (not a provaudit index, or an incomplete build)\n"),
        (["index", "{tmp}/x.jsonl", "-o", "{tmp}/i", "--ngram", "0"], 2, "Error: ngram must be between 1 and 64, got 0\n"),
        (["index", "{tmp}/bad.jsonl", "-o", "{tmp}/i"], 1, "Error: {tmp}/bad.jsonl line 2: malformed JSON (Expecting property name enclosed in double quotes at column 2); use --on-error skip to skip and count such records\n"),
    ],
)
def test_errors_are_clear_with_exit_codes(tmp_path, args, code, message) -> None:
    (tmp_path / "x.jsonl").write_text('{"text": "a b c"}\n')
    (tmp_path / "bad.jsonl").write_text('{"text": "a b c"}\n{oops}\n')
    r = _run(*[a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == code
    assert r.output.endswith(message.format(tmp=tmp_path)), r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "i").exists()


def test_audit_refuses_to_overwrite_without_force(corpus, corpus_index, tmp_path) -> None:
    out = tmp_path / "o"
    assert _run("audit", corpus_index, corpus[3], "-o", out, "-q").exit_code == 0
    r = _run("audit", corpus_index, corpus[3], "-o", out, "-q")
    assert r.exit_code == 1 and "already exists (use --force to replace it)" in r.output
    assert _run("audit", corpus_index, corpus[3], "-o", out, "-q", "--force").exit_code == 0


@pytest.mark.parametrize("command", [[], ["index"], ["audit"], ["check"], ["info"]])
def test_every_command_has_help(command) -> None:
    r = _run(*command, "--help")
    assert r.exit_code == 0 and "Usage:" in r.output and "Example:" in r.output or command == []


def test_info_prints_manifest(corpus_index) -> None:
    r = _run("info", corpus_index)
    assert r.exit_code == 0 and json.loads(r.output)["format"] == "provaudit-index"
