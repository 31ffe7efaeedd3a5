"""docs/ci.md's examples run as written: the GitHub Actions and GitLab CI steps as shell scripts, the
pre-commit hook, and a settings file against the equivalent command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conftest import write_jsonl
from provaudit.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "ci.md").read_text()
CLEAN = {"c1": "entirely unrelated words about gardening and tomatoes in the early spring",
         "c2": "a note on bicycle maintenance chains gears brakes and tyre pressure"}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S)


@pytest.fixture()
def repo(corpus, tmp_path) -> Path:
    """A dataset repository laid out as docs/ci.md assumes: pyproject.toml, benchmark.idx, data/."""
    refs, targets, ref_file, _ = corpus
    (tmp_path / "pyproject.toml").write_text(_blocks("toml")[0])
    r = CliRunner().invoke(cli, ["index", str(ref_file), "-o", str(tmp_path / "benchmark.idx"), "-q"])
    assert r.exit_code == 0, r.output
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "clean.jsonl", CLEAN)
    bin_dir = tmp_path / "bin"  # `provaudit` runs this checkout with this interpreter
    bin_dir.mkdir()
    (bin_dir / "provaudit").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m provaudit "$@"\n')
    (bin_dir / "provaudit").chmod(0o755)
    return tmp_path


def _leak(repo: Path, corpus) -> None:
    targets = corpus[1]
    write_jsonl(repo / "data" / "drop.jsonl", {f"t{i}": targets[f"t{i}"] for i in range(0, 30)})


def _sh(repo: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{repo / 'bin'}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(["bash", "-e", "-c", script], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path, **env})


def _github_script() -> str:
    (workflow,) = [b for b in _blocks("yaml") if "runs-on:" in b]
    steps = yaml.safe_load(workflow)["jobs"]["provaudit"]["steps"]
    runs = [s["run"] for s in steps if "run" in s and not s["run"].startswith("pip install")]
    assert runs == ["provaudit check --github"]  # the step this test stands for
    return "\n".join(runs)


def test_github_actions_workflow_passes_on_clean_data(repo) -> None:
    r = _sh(repo, _github_script(), GITHUB_ACTIONS="true")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("::notice title=provaudit check::PASS: 0 evidence pairs in 0 of 2 target records")
    assert lines[-1].startswith("PASS: ")
    suite = ET.parse(repo / "provaudit.xml").getroot()
    assert suite.get("tests") == "1" and suite.get("failures") == "0"
    assert json.loads((repo / "provaudit.json").read_text())["verdict"] == "pass"


def test_github_actions_workflow_fails_on_leaked_data(repo, corpus) -> None:
    _leak(repo, corpus)
    r = _sh(repo, _github_script(), GITHUB_ACTIONS="true")
    assert r.returncode == 3, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("::error file=data/drop.jsonl,line=")
    assert sum(line.startswith("::error file=data/drop.jsonl,") for line in lines) == 9
    assert any(line.startswith("::error title=provaudit check::FAIL: ") for line in lines)
    assert lines[-1].startswith("FAIL: ") and "over limits: max-pairs: " in lines[-1]
    suite = ET.parse(repo / "provaudit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"data/clean.jsonl", "data/drop.jsonl"}
    assert cases["data/drop.jsonl"].find("failure") is not None and cases["data/clean.jsonl"].find("failure") is None
    doc = json.loads((repo / "provaudit.json").read_text())
    assert doc["verdict"] == "fail" and doc["counts"]["counted_pairs"] > 0


def test_gitlab_job_runs_as_written(repo, corpus) -> None:
    (job,) = [b for b in _blocks("yaml") if "script:" in b]
    spec = yaml.safe_load(job)["provaudit"]
    assert spec["artifacts"]["reports"]["junit"] == "provaudit.xml"
    script = "\n".join(s for s in spec["script"] if not s.startswith("pip install"))
    assert _sh(repo, script).returncode == 0
    _leak(repo, corpus)
    assert _sh(repo, script).returncode == 3
    assert ET.parse(repo / spec["artifacts"]["reports"]["junit"]).getroot().get("failures") == "1"


def test_pre_commit_hook_checks_the_staged_files(repo, corpus) -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "provaudit-check" and hook["pass_filenames"] is True and hook["language"] == "python"
    pattern = re.compile(hook["files"])
    staged = ["data/clean.jsonl", "data/drop.jsonl", "README.md", "data/x.parquet", "data/y.jsonl.gz"]
    assert [f for f in staged if pattern.search(f)] == ["data/clean.jsonl", "data/drop.jsonl", "data/x.parquet",
                                                        "data/y.jsonl.gz"]
    # pre-commit runs `entry FILE...`; the index comes from [tool.provaudit]
    assert _sh(repo, f"{hook['entry']} data/clean.jsonl").returncode == 0
    _leak(repo, corpus)
    r = _sh(repo, f"{hook['entry']} data/clean.jsonl data/drop.jsonl")
    assert r.returncode == 3 and r.stdout.splitlines()[1].startswith("FAIL data/drop.jsonl: ")


def test_settings_file_equals_the_command_line(repo, corpus, monkeypatch) -> None:
    _leak(repo, corpus)
    (repo / "allow.txt").write_text("# reviewed\nr1\n")
    monkeypatch.chdir(repo)
    (repo / "old").mkdir()
    write_jsonl(repo / "old" / "old.jsonl", {f"t{i}": corpus[1][f"t{i}"] for i in range(0, 15)})
    assert CliRunner().invoke(cli, ["audit", "benchmark.idx", "old", "-o", "base", "-q"]).exit_code == 0
    (repo / "provaudit.toml").write_text(
        'index = "benchmark.idx"\ntargets = ["data/drop.jsonl", "data/clean.jsonl"]\nmax-pairs = 3\n'
        'max-contamination = 0.2\nmax-reference-coverage = 0.5\nmin-containment = 0.6\nmin-jaccard = 0.7\n'
        'baseline = "base"\nallow = "allow.txt"\njunit = "cfg.xml"\njson = "cfg.json"\nshow = 4\n'
        'on-error = "skip"\nworkers = 1\n')
    from_file = CliRunner().invoke(cli, ["check"])
    args = ["check", "benchmark.idx", "data/drop.jsonl", "data/clean.jsonl", "--max-pairs", "3",
            "--max-contamination", "0.2", "--max-reference-coverage", "0.5", "--min-containment", "0.6",
            "--min-jaccard", "0.7", "--baseline", "base", "--allow", "allow.txt", "--junit", "cli.xml",
            "--json", "cli.json", "--show", "4", "--on-error", "skip", "-w", "1"]
    (repo / "provaudit.toml").unlink()
    (repo / "pyproject.toml").unlink()
    from_cli = CliRunner().invoke(cli, args)
    assert from_file.exit_code == from_cli.exit_code == 3, from_file.output
    assert from_file.output == from_cli.output
    assert (repo / "cfg.xml").read_bytes() == (repo / "cli.xml").read_bytes()
    assert (repo / "cfg.json").read_bytes() == (repo / "cli.json").read_bytes()
    doc = json.loads((repo / "cfg.json").read_text())
    assert doc["parameters"]["min_containment"] == 0.6 and doc["allow"]["reference_ids"] == 1
    assert doc["counts"]["accepted_by_baseline"] > 0 and doc["counts"]["counted_pairs"] > 3
    assert [x["name"] for x in doc["limits"]] == ["max-pairs", "max-contamination", "max-reference-coverage"]


def test_command_line_overrides_settings_and_paths_are_relative_to_the_file(repo, corpus, monkeypatch) -> None:
    _leak(repo, corpus)
    sub = repo / "data"
    monkeypatch.chdir(sub)  # pyproject.toml is found in the parent; its paths are relative to it
    r = CliRunner().invoke(cli, ["check", "-q"])
    assert r.exit_code == 3 and r.output.startswith("FAIL: ")
    assert json.loads((repo / "provaudit.json").read_text())["sources"][0]["source"] == "./clean.jsonl"
    r = CliRunner().invoke(cli, ["check", "-q", "--max-pairs", "100000"])
    assert r.exit_code == 0 and r.output.startswith("PASS: ")
    r = CliRunner().invoke(cli, ["check", "-q", "clean.jsonl"])  # arguments are targets: the index is set
    assert r.exit_code == 0 and "0 of 2 target records" in r.output
    (repo / "pyproject.toml").write_text('[tool.provaudit]\nindex = "benchmark.idx"\nmax_pairs = 0\n')
    r = CliRunner().invoke(cli, ["check"])
    assert r.exit_code == 2
    assert r.output.endswith(f"Error: {repo}/pyproject.toml: [tool.provaudit] key 'max_pairs' is not a setting "
                             "(did you mean 'max-pairs'?)\n")
