"""Reports on the shipped fixtures equal the reviewed golden files (scripts/regen_golden.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("regen_golden", ROOT / "scripts" / "regen_golden.py")
assert _spec is not None and _spec.loader is not None
regen_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regen_golden)


@pytest.fixture(scope="module")
def golden_now() -> dict[str, str]:
    return regen_golden.make_golden()


def test_every_golden_file_is_produced(golden_now: dict[str, str]) -> None:
    on_disk = {p.name for p in regen_golden.GOLDEN.iterdir()}
    assert set(golden_now) == on_disk


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "fixtures" / "golden").iterdir()))
def test_output_equals_golden(name: str, golden_now: dict[str, str]) -> None:
    expected = (regen_golden.GOLDEN / name).read_text(encoding="utf-8")
    assert golden_now[name] == expected, f"{name} changed: run scripts/regen_golden.py and review the diff"


def test_mask_hides_only_package_dependent_values() -> None:
    manifest = {"versions": {"pyarrow": "1"}, "checksums": {"sha256": "c", "bytes": 64},
                "files": {"items.parquet": {"chunks_sha256": "a", "bytes": 3, "rows": 2},
                          "sequences.u64": {"chunks_sha256": "b", "bytes": 8}}}
    masked = regen_golden._mask(manifest)
    assert masked["versions"] == regen_golden.MASK
    assert masked["checksums"] == {"sha256": regen_golden.MASK, "bytes": 64}
    assert masked["files"]["items.parquet"] == {"chunks_sha256": regen_golden.MASK, "bytes": regen_golden.MASK,
                                                "rows": 2}
    assert masked["files"]["sequences.u64"] == {"chunks_sha256": "b", "bytes": 8}
