"""'Read nothing' never passes for 'found nothing' (issue 15 items 6 and 7): sources read to no record or
not to their end exit 4 (audit, output written) or 1 (check); FIFOs and device links are never opened;
unlistable directories fail; links to directories are listed, not followed; a file named twice is read once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import FIXTURES
from provaudit.cli import cli

SHARD = FIXTURES / "shards" / "train-00.jsonl"


def run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("idx") / "ref.idx"
    assert run("index", FIXTURES / "reference", "-o", d, "-q").exit_code == 0
    return d


def _shards(tmp_path: Path) -> Path:
    d = tmp_path / "shards"
    d.mkdir()
    shutil.copy(SHARD, d / "a.jsonl")
    return d


def test_a_wrong_text_field_fails_audit_and_check(index: Path, tmp_path: Path) -> None:
    d = _shards(tmp_path)
    r = run("audit", index, d, "-o", tmp_path / "out", "--text-field", "body", "-q")
    assert r.exit_code == 4 and "no record read" in r.output and "missing text field" in r.output
    assert str(d / "a.jsonl") in r.output and (tmp_path / "out" / "report.json").is_file()
    c = run("check", index, d, "--text-field", "body", "--on-error", "skip")
    assert c.exit_code == 1 and "PASS" not in c.output and "no record read" in c.output
    ok = run("check", index, d, "--max-pairs", "100000")  # the right field: read, and within the limit
    assert ok.exit_code == 0 and "PASS" in ok.output


@pytest.mark.parametrize("name,data,why", [
    ("broken.parquet", b"PAR1 not a parquet file PAR1", "not a readable Parquet file"),
    ("empty.jsonl", b"", "empty file"),
    ("all_bad.jsonl", b"{oops\n{also bad\n", "no record read (2 skipped"),
])
def test_a_source_read_to_nothing_in_a_directory_exits_4_naming_it(index: Path, tmp_path: Path, name: str,
                                                                   data: bytes, why: str) -> None:
    d = _shards(tmp_path)
    (d / name).write_bytes(data)
    r = run("audit", index, d, "-o", tmp_path / "out", "-q")
    assert r.exit_code == 4 and f"{d / name}: {why}" in r.output, r.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["counts"]["target_records"] == 3300  # the readable shard was audited in full


def test_skipped_share_over_max_skipped_exits_4(index: Path, tmp_path: Path) -> None:
    d = _shards(tmp_path)
    with open(d / "a.jsonl", "ab") as f:
        f.write(b"{bad json\n")
    assert run("audit", index, d, "-o", tmp_path / "o1", "-q").exit_code == 0  # default: any share tolerated
    r = run("audit", index, d, "-o", tmp_path / "o2", "-q", "--max-skipped", "0.0001")
    assert r.exit_code == 4 and "1 of 3,301 records skipped" in r.output
    assert run("audit", index, d, "-o", tmp_path / "o3", "-q", "--max-skipped", "0.001").exit_code == 0


def test_a_source_sampled_to_nothing_is_not_a_problem(index: Path, tmp_path: Path) -> None:
    d = _shards(tmp_path)
    (d / "small.jsonl").write_text(json.dumps({"id": "s", "text": "a few words of text here"}) + "\n")
    r = run("audit", index, d, "-o", tmp_path / "out", "-q", "--sample", "0.01")
    assert r.exit_code == 0, r.output


def test_fifos_device_links_and_directory_links_are_listed_never_opened(index: Path, tmp_path: Path) -> None:
    d = _shards(tmp_path)
    os.mkfifo(d / "pipe.jsonl")
    (d / "zero.jsonl").symlink_to("/dev/zero")
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(SHARD, other / "b.jsonl")
    (d / "linked").symlink_to(other, target_is_directory=True)
    # a subprocess with a timeout: reading the FIFO or /dev/zero would hang the test, not fail it
    p = subprocess.run([sys.executable, "-m", "provaudit", "audit", str(index), str(d), "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "3 entries of the input directories were not read" in p.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["counts"]["target_records"] == 3300
    assert report["input_problems"]["ignored_files"]["files"] == [
        f"{d / 'linked'} (a link to a directory: not followed; name it to read it)",
        f"{d / 'pipe.jsonl'} (not a regular file: not opened)", f"{d / 'zero.jsonl'} (not a regular file: not opened)"]


def test_an_unlistable_subdirectory_fails_the_run(index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run as root, whom chmod 000 does not stop: the listing error is raised where the OS would raise it."""
    d = _shards(tmp_path)
    (d / "locked").mkdir()
    real = os.scandir

    def scandir(path: object = ".") -> object:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    r = run("audit", index, d, "-o", tmp_path / "out", "-q")
    assert r.exit_code == 1 and f"{d / 'locked'}: cannot list this directory (Permission denied)" in r.output
    assert not (tmp_path / "out").exists()


def test_a_file_named_twice_is_read_once(index: Path, tmp_path: Path) -> None:
    d = _shards(tmp_path)
    r = run("audit", index, d, f"{d}//a.jsonl", str(d / "*.jsonl"), "-o", tmp_path / "out", "-q")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["counts"]["target_records"] == 3300
