"""Atomic output directories: swap in place, usual permissions, checksums, cleanup on failure."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from provaudit import api
from provaudit.errors import OutputExistsError
from provaudit.fs.atomic import atomic_output_dir, commit_output_dir, prepare_output_dir
from provaudit.fs.integrity import verify_checksums
from provaudit.index.format import load_index

MARKER = ("report.json", "provaudit-report")


def test_replacing_an_output_leaves_no_siblings_and_usual_permissions(tmp_path) -> None:
    dest = tmp_path / "out"
    for version in ("one", "two"):
        tmp = prepare_output_dir(dest, True, MARKER)
        (tmp / "report.json").write_text(f'{{"format": "provaudit-report", "v": "{version}"}}')
        commit_output_dir(tmp, dest, replace=True, marker=MARKER)
    assert (dest / "report.json").read_text() == '{"format": "provaudit-report", "v": "two"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777 & ~umask


def test_atomic_output_dir_checksums_and_failure_leaves_previous(tmp_path) -> None:
    dest = tmp_path / "out"
    with atomic_output_dir(dest, False, MARKER) as tmp:
        (tmp / "report.json").write_text('{"format": "provaudit-report"}')
    assert set(verify_checksums(dest)) == {"report.json"}
    with pytest.raises(RuntimeError):
        with atomic_output_dir(dest, True, MARKER) as tmp:
            (tmp / "report.json").write_text("half")
            raise RuntimeError("killed")
    assert (dest / "report.json").read_text() == '{"format": "provaudit-report"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _posts(path, words: str) -> str:
    path.write_text("".join(f'{{"id": "{words}{i}", "text": "{words} post number {i} with some words"}}\n'
                            for i in range(20)))
    return str(path)


def test_two_builds_to_one_path_without_force_never_replace_each_other(tmp_path) -> None:
    """Two `index` runs to one -o, neither with --force: the one finishing second must not replace the first
    (before, the second swapped itself in: both succeeded). Interleaved deterministically: the second build
    runs to completion while the first is reading."""
    dest, first, second = tmp_path / "ref.idx", _posts(tmp_path / "a.jsonl", "alpha"), _posts(tmp_path / "b.jsonl", "beta")
    ran = []

    def progress(*_args) -> None:
        if not ran:
            ran.append(api.build_index([second], dest))

    with pytest.raises(OutputExistsError, match="was created by another run while this one worked"):
        api.build_index([first], dest, progress=progress)
    assert ran and load_index(dest).manifest["inputs"][0]["source"] == second  # the other run's index, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl", "ref.idx"]  # no temporary left
    with pytest.raises(OutputExistsError, match="was created by another run"):
        with atomic_output_dir(tmp_path / "out", False, MARKER) as tmp:
            (tmp / "report.json").write_text('{"format": "provaudit-report"}')
            (tmp_path / "out").mkdir()  # an empty directory made meanwhile is not replaced either
    assert list((tmp_path / "out").iterdir()) == []


def test_with_force_a_path_replaced_meanwhile_by_something_else_is_not_replaced(tmp_path) -> None:
    dest = tmp_path / "ref.idx"
    api.build_index([_posts(tmp_path / "a.jsonl", "alpha")], dest)
    web = []

    def progress(*_args) -> None:
        if not web:  # someone puts a web project there while the build runs
            shutil.rmtree(dest)
            dest.mkdir()
            (dest / "manifest.json").write_text("{}")
            web.append(dest / "manifest.json")

    with pytest.raises(OutputExistsError, match="not a provaudit output"):
        api.build_index([_posts(tmp_path / "b.jsonl", "beta")], dest, force=True, progress=progress)
    assert web and web[0].read_text() == "{}"


def test_every_index_file_and_the_directory_are_fsynced_before_the_rename(tmp_path, monkeypatch) -> None:
    """The README promises outputs on disk before they appear; the index build never called fsync."""
    synced: list[str] = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename
    renamed: list[str] = []

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    dest = tmp_path / "ref.idx"
    api.build_index([_posts(tmp_path / "a.jsonl", "alpha")], dest)
    segment = next(p.name for p in dest.iterdir() if p.is_dir())
    files = {str(p) for p in dest.rglob("*") if p.is_file()} | {str(dest / segment)}
    # the files were fsynced under the temporary names they had before the renames
    tmp_names = {os.path.basename(os.path.dirname(p)) for p in synced if os.path.basename(p) == "manifest.json"}
    assert len(tmp_names) == 1
    tmp_dir = str(tmp_path / tmp_names.pop())
    assert {p.replace(tmp_dir, str(dest)).replace("seg-000000-partial", segment)
            for p in synced if p.startswith(tmp_dir + "/")} == files
    assert tmp_dir in synced and str(tmp_path) in synced  # the directory's entries, then the rename
    assert synced.index(str(tmp_path)) > synced.index(tmp_dir)
