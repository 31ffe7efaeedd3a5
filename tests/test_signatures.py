"""``provaudit signatures``: every live item's MinHash signature, equal to datasketch's for the same shingles."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from datasketch import LeanMinHash, MinHash

from conftest import FIXTURES, write_jsonl
from provaudit import api
from provaudit.api_segments import add_to_index, export_signatures, remove_from_index
from provaudit.cli import cli
from provaudit.config import IndexConfig
from provaudit.errors import OutputExistsError
from provaudit.index.signatures import STEP
from provaudit.text.shingle import shingle_strings

REFS = {r["id"]: r["text"] for r in map(json.loads, (FIXTURES / "reference" / "posts.jsonl").read_text().splitlines())}
SHA1 = IndexConfig(hash="sha1", num_perm=64, seed=3)


def _datasketch(text: str, cfg: IndexConfig) -> MinHash:
    m = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)  # datasketch's default hash function (sha1_hash32)
    m.update_batch(shingle_strings(text, cfg))
    return m


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A --hash sha1 index of the fixtures' posts in two segments, with every 9th id removed."""
    d = tmp_path_factory.mktemp("sig")
    ids = list(REFS)
    a = write_jsonl(d / "a.jsonl", {k: REFS[k] for k in ids[:1800]})
    b = write_jsonl(d / "b.jsonl", {k: REFS[k] for k in ids[1800:]})
    api.build_index([str(a)], d / "i.idx", SHA1)
    add_to_index(d / "i.idx", [str(b)])
    gone = set(ids[::9])
    (d / "gone.txt").write_text("\n".join(sorted(gone)) + "\n")
    remove_from_index(d / "i.idx", d / "gone.txt")
    return d / "i.idx", gone


def test_signatures_are_datasketchs_for_every_live_item_in_item_order(grown, tmp_path: Path) -> None:
    index, gone = grown
    out = tmp_path / "s.parquet"
    assert export_signatures(index, out) == len(REFS) - len(gone)
    table = pq.read_table(out)
    ids, items = table.column("id").to_pylist(), table.column("item").to_pylist()
    assert ids == [k for k in REFS if k not in gone] and items == sorted(items)
    meta = json.loads(table.schema.metadata[b"provaudit"])
    assert (meta["num_perm"], meta["seed"], meta["hash"], meta["format"]) == (64, 3, "sha1", "provaudit-signatures")
    for rid, values in zip(ids, table.column("hashvalues").to_pylist()):
        want = _datasketch(REFS[rid], SHA1)
        assert np.array_equal(np.array(values, dtype=np.uint64), want.hashvalues), rid
    assert table.schema.field("hashvalues").type.value_type == "uint32"  # affine32 values: below 2^32
    # a row loads as datasketch's LeanMinHash and compares with datasketch's own sketches
    a, b = (LeanMinHash(seed=3, hashvalues=v, scheme="affine32") for v in table.column("hashvalues").to_pylist()[:2])
    assert a.jaccard(b) == _datasketch(REFS[ids[0]], SHA1).jaccard(_datasketch(REFS[ids[1]], SHA1))


def test_default_index_signatures_equal_those_of_the_texts(tmp_path: Path, monkeypatch) -> None:
    """xxh3 shingle hashes (the default), and blocks smaller than the index: the same values as signing
    the texts directly, row groups of the block size."""
    from provaudit.index import signatures as mod
    from provaudit.text.shingle import shingle_batch
    from provaudit.text.sketch import signatures

    monkeypatch.setattr(mod, "STEP", 700)
    api.build_index([str(FIXTURES / "reference")], tmp_path / "d.idx")
    out = tmp_path / "d.parquet"
    assert export_signatures(tmp_path / "d.idx", out) == len(REFS)
    f = pq.ParquetFile(out)
    assert f.metadata.num_row_groups == -(-len(REFS) // 700)
    want = signatures(shingle_batch(list(REFS.values()), IndexConfig()), 128, 1)
    got = np.array(f.read().column("hashvalues").to_pylist(), dtype=np.uint64)
    assert np.array_equal(got, want)
    assert STEP >= 1024  # the default keeps row groups large


def test_cli_writes_refuses_and_replaces_only_its_own_file(grown, tmp_path: Path) -> None:
    index, gone = grown
    out = tmp_path / "s.parquet"
    runner = CliRunner()
    res = runner.invoke(cli, ["signatures", str(index), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert f"Wrote {len(REFS) - len(gone):,} signatures" in res.output
    before = out.read_bytes()
    res = runner.invoke(cli, ["signatures", str(index), "-o", str(out)])
    assert res.exit_code == 1 and "already exists (use --force" in res.output and out.read_bytes() == before
    assert runner.invoke(cli, ["signatures", str(index), "-o", str(out), "--force", "-q"]).exit_code == 0
    assert out.read_bytes() == before  # same index, same bytes
    mine = tmp_path / "notes.parquet"
    mine.write_bytes(b"the user's own file")
    res = runner.invoke(cli, ["signatures", str(index), "-o", str(mine), "--force"])
    assert res.exit_code == 1 and "not a signature file provaudit wrote" in res.output
    assert mine.read_bytes() == b"the user's own file"
    link = tmp_path / "link.parquet"
    os.symlink(out, link)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        export_signatures(index, link, force=True)
    assert link.is_symlink() and out.read_bytes() == before
    res = runner.invoke(cli, ["signatures", str(tmp_path / "missing.idx"), "-o", str(tmp_path / "x.parquet")])
    assert res.exit_code == 1 and "Traceback" not in res.output and not (tmp_path / "x.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_progress_counts_items_and_the_sequence_bytes_read(grown, tmp_path: Path) -> None:
    from provaudit.index.format import load_index

    index, gone = grown
    calls: list[tuple] = []
    n = export_signatures(index, tmp_path / "p.parquet", progress=lambda *a: calls.append(a))
    segs = load_index(index).segments
    total = sum((seg.path / "sequences.u64").stat().st_size for seg in segs)
    assert calls and all(c[3] == total for c in calls)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls) and calls[-1][1] == n
    assert 0 < calls[-1][2] < total  # removed items' sequences are not read
    api.build_index([str(FIXTURES / "reference")], tmp_path / "whole.idx")
    calls.clear()
    export_signatures(tmp_path / "whole.idx", tmp_path / "w.parquet", progress=lambda *a: calls.append(a))
    seq = next((tmp_path / "whole.idx").glob("seg-*")) / "sequences.u64"
    assert calls[-1][2] == calls[-1][3] == seq.stat().st_size  # nothing removed: every sequence read
