"""Atomic output directories: swap in place, usual permissions, checksums, cleanup on failure."""

from __future__ import annotations

import os
import stat

import pytest

from provaudit.fs.atomic import atomic_output_dir, commit_output_dir, prepare_output_dir
from provaudit.fs.integrity import verify_checksums

MARKER = ("report.json", "provaudit-report")


def test_replacing_an_output_leaves_no_siblings_and_usual_permissions(tmp_path) -> None:
    dest = tmp_path / "out"
    for version in ("one", "two"):
        tmp = prepare_output_dir(dest, True, MARKER)
        (tmp / "report.json").write_text(f'{{"format": "provaudit-report", "v": "{version}"}}')
        commit_output_dir(tmp, dest)
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
