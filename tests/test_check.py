"""`provaudit check`: the CI gate."""

from __future__ import annotations

import json

from click.testing import CliRunner

from provaudit.cli import cli, terminal_safe


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_check_fails_with_exit_3_on_leak_and_passes_on_clean(corpus, corpus_index, tmp_path) -> None:
    refs, _, _, tgt = corpus
    r = _run("check", corpus_index, tgt, "-w", "1")
    assert r.exit_code == 3, r.output
    assert r.output.startswith("FAIL: ")
    assert "contains r" in r.output
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps({"id": "c", "text": "entirely unrelated words about gardening and tomatoes"}) + "\n")
    r = _run("check", corpus_index, clean)
    assert r.exit_code == 0 and r.output.startswith("PASS: 0 evidence pairs")


def test_check_threshold_and_output(corpus, corpus_index, tmp_path) -> None:
    r = _run("check", corpus_index, corpus[3], "--max-pairs", "100000", "-o", tmp_path / "o")
    assert r.exit_code == 0 and r.output.startswith("PASS: ")
    assert (tmp_path / "o" / "report.json").exists()


def test_untrusted_ids_are_escaped_on_the_terminal(tmp_path) -> None:
    ref = tmp_path / "ref.jsonl"
    ref.write_text(json.dumps({"id": "evil\x1b[2J\x07", "text": "one two three four five six seven eight"}) + "\n")
    tgt = tmp_path / "t.jsonl"
    tgt.write_text(json.dumps({"id": "t\nFAKE: PASS", "text": "one two three four five six seven eight"}) + "\n")
    assert _run("index", ref, "-o", tmp_path / "idx", "-q").exit_code == 0
    r = _run("check", tmp_path / "idx", tgt)
    assert r.exit_code == 3
    assert "\x1b" not in r.output and "\x07" not in r.output and "\nFAKE" not in r.output
    assert "evil\\x1b[2J\\x07" in r.output and "t\\nFAKE: PASS" in r.output
    assert terminal_safe("a\u202eb") == "a\\u202eb"
