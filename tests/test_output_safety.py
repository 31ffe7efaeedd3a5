"""--force replaces only what provaudit wrote; outputs and checkpoints never go through a symbolic link
(issue 15 items 2 and 3, and impossible outputs refused before any work)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import FIXTURES
from provaudit.cli import cli
from provaudit.run.checkpoint import MARK

SHARD = str(FIXTURES / "shards" / "train-00.jsonl")


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _tree(d: Path) -> dict[str, bytes | None]:
    """Every entry under ``d`` (not following links): file bytes, None for directories, 'link' targets."""
    out: dict[str, bytes | None] = {}
    for root, dirs, files in os.walk(d, followlinks=False):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(d))
            out[rel] = (b"link:" + os.readlink(p).encode()) if p.is_symlink() else (
                None if p.is_dir() else p.read_bytes())
    return out


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("idx") / "ref.idx"
    assert run("index", FIXTURES / "reference", "-o", d, "-q").exit_code == 0
    return d


def _foreign(d: Path, marker: str) -> dict[str, bytes | None]:
    """The issue's directory: a JSON file named like provaudit's marker, and the user's own files."""
    (d / "src").mkdir(parents=True)
    (d / marker).write_text("{}\n")
    (d / "src" / "app.js").write_text("x\n")
    (d / ".env").write_text("SECRET=1\n")
    return _tree(d)


@pytest.mark.parametrize("command,marker", [("index", "manifest.json"), ("audit", "report.json")])
def test_force_never_replaces_a_directory_provaudit_did_not_write(index: Path, tmp_path: Path, command: str,
                                                                  marker: str) -> None:
    web = tmp_path / "web"
    before = _foreign(web, marker)
    args = {"index": ["index", FIXTURES / "reference"], "audit": ["audit", index, SHARD]}[command]
    r = run(*args, "-o", web, "--force", "-q")
    assert r.exit_code == 1 and "not a provaudit output" in r.output and "Traceback" not in r.output
    assert _tree(web) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".web.")]  # refused before any work


def test_force_replaces_what_provaudit_wrote(index: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run("audit", index, SHARD, "-o", out, "-q").exit_code == 0
    first = json.loads((out / "report.json").read_text())
    assert run("audit", index, SHARD, "-o", out, "-q", "--force").exit_code == 0
    assert json.loads((out / "report.json").read_text())["counts"] == first["counts"]
    idx = tmp_path / "again.idx"
    assert run("index", FIXTURES / "reference", "-o", idx, "-q").exit_code == 0
    assert run("index", FIXTURES / "reference", "-o", idx, "-q", "--force").exit_code == 0
    # an audit output is not an index, nor an index an audit output: each --force names the kind
    r = run("index", FIXTURES / "reference", "-o", out, "-q", "--force")
    assert r.exit_code == 1 and "not a provaudit output of this kind" in r.output
    r = run("audit", index, SHARD, "-o", idx, "-q", "--force")
    assert r.exit_code == 1 and "not a provaudit output of this kind" in r.output
    assert (idx / "manifest.json").is_file() and (out / "report.json").is_file()


@pytest.mark.parametrize("command", ["index", "audit"])
def test_impossible_outputs_are_refused_before_any_work(index: Path, tmp_path: Path, command: str) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("mine\n")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    regular = tmp_path / "file.txt"
    regular.write_text("a file\n")
    args = {"index": ["index", FIXTURES / "reference"], "audit": ["audit", index, SHARD]}[command]
    for out, why in ((link, "symbolic link"), (regular, "not a directory"), (Path("/"), "not a provaudit output")):
        r = run(*args, "-o", out, "--force", "-q")
        assert r.exit_code == 1 and why in r.output, (out, r.output)
    assert _tree(target) == {"keep.txt": b"mine\n"} and regular.read_text() == "a file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "file.txt", "link"]


def test_a_planted_partial_symlink_redirects_nothing(index: Path, tmp_path: Path) -> None:
    """The issue's attack: OUT's checkpoint directory pre-planted as a link to someone's home."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("key\n")
    (home / ".dotfile").write_text("dot\n")
    (home / "src-1").mkdir()
    (home / "src-1" / "code.py").write_text("print(1)\n")
    before = _tree(home)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / ".out.partial").symlink_to(home, target_is_directory=True)
    r = run("audit", index, SHARD, "-o", shared / "out", "-q")
    assert r.exit_code == 1 and "symbolic link" in r.output and "Traceback" not in r.output
    assert _tree(home) == before and not (shared / "out").exists()


def test_an_unmarked_partial_directory_is_not_cleared(index: Path, tmp_path: Path) -> None:
    part = tmp_path / ".out.partial"
    part.mkdir()
    (part / ".ssh").mkdir()
    (part / "src-notes.txt").write_text("mine\n")
    before = _tree(part)
    r = run("audit", index, SHARD, "-o", tmp_path / "out", "-q")
    assert r.exit_code == 1 and "not made by provaudit" in r.output
    assert _tree(part) == before


def test_a_finished_audit_removes_only_its_own_checkpoint_files(index: Path, tmp_path: Path) -> None:
    """Something else put into a checkpoint directory provaudit made stays (and so does the directory)."""
    part = tmp_path / ".out.partial"
    part.mkdir()
    (part / MARK).write_text("provaudit-audit-checkpoint\n")
    (part / "run.json").write_text("{}")  # a stale checkpoint of provaudit's: cleared
    (part / "notes.txt").write_text("mine\n")
    r = run("audit", index, SHARD, "-o", tmp_path / "out", "-q")
    assert r.exit_code == 0, r.output
    assert _tree(part) == {"notes.txt": b"mine\n"}
    r = run("audit", index, SHARD, "-o", tmp_path / "out2", "-q")  # a fresh one is made and removed whole
    assert r.exit_code == 0 and not (tmp_path / ".out2.partial").exists()
