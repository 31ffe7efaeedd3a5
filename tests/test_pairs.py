"""Verified pairs in bounded memory (issue 15 item 5): beyond a budget they are spilled to files, by the
workers themselves, and the output is byte-identical to a run that kept them all in memory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from provaudit import api
from provaudit.match import engine, pairs

TEXT = " ".join(f"word{i}" for i in range(40))


def _corpus(tmp_path: Path, items: int, records: int) -> tuple[Path, Path]:
    ref, tgt = tmp_path / "ref.jsonl", tmp_path / "t.jsonl"
    ref.write_text("".join(json.dumps({"id": f"r{i:04d}", "text": TEXT}) + "\n" for i in range(items)))
    tgt.write_text("".join(json.dumps({"id": f"t{i}", "text": f"intro {i} " + TEXT}) + "\n" for i in range(records)))
    api.build_index([str(ref)], tmp_path / "idx")
    return tmp_path / "idx", tgt


def _in_memory_rows(result: Any) -> int:
    return sum(p.num_rows for s in result.inputs for p in s.matches._parts if isinstance(p, pa.RecordBatch)) + \
        sum(s.matches._pending_rows for s in result.inputs)


@pytest.mark.parametrize("workers", [1, 2])
def test_pairs_beyond_the_budget_are_spilled_and_the_output_is_unchanged(tmp_path: Path, workers: int,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    idx, tgt = _corpus(tmp_path, items=300, records=60)  # 18,000 pairs, 60 x 300
    whole = api.audit(idx, [str(tgt)], workers=workers)
    api.write_audit(whole, tmp_path / "whole", force=True)
    assert len(whole.matches["reference_id"]) == 18_000

    monkeypatch.setattr(pairs, "MEMORY_ROWS", 1_000)
    monkeypatch.setattr(pairs, "BATCH_ROWS", 256)
    monkeypatch.setattr(engine, "PAIR_CHUNK", 128)
    small = api.audit(idx, [str(tgt)], workers=workers)
    assert small.spill is not None
    spill_dir = Path(small.spill.dir)
    on_disk = sum(f.stat().st_size for f in spill_dir.iterdir())
    assert on_disk > 1_000_000 and _in_memory_rows(small) <= 1_000 + 256  # the rest is in the files
    writers = {f.name for f in spill_dir.iterdir()}
    if workers == 2:
        assert f"pairs-{os.getpid()}.arrows" not in writers  # the workers wrote their own pairs
    api.write_audit(small, tmp_path / "small", force=True)
    assert (tmp_path / "small" / "matches.parquet").read_bytes() == (tmp_path / "whole" / "matches.parquet").read_bytes()
    a, b = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("whole", "small"))
    assert {k: v for k, v in a.items() if k != "reproduce"} == {k: v for k, v in b.items() if k != "reproduce"}
    small.close()
    assert not spill_dir.exists()


def test_pairs_are_written_in_matches_order_whatever_their_batches() -> None:
    rows = [(f"r{i % 7}", i % 7, f"t{r}", "s", r, 0.5, 0.5, 0.5, 3, 3, 3, 3, 3, 3, "anchor", 1.0, "")
            for r in range(50) for i in range(7)]
    pl = pairs.PairList()
    for k in range(0, len(rows), 21):  # whole records, 3 at a time
        pl.add(list(reversed(rows[k:k + 21])))
    got = [(r["target_row"], r["reference_id"]) for b in pairs.ordered_batches([("s", pl)], set()) for r in b.to_pylist()]
    assert got == sorted(got) and len(got) == len(rows) and pl.ordered
    late = pairs.PairList()
    late.add(rows[21:42])
    late.add(rows[:21])  # a record before those already added: the source is sorted whole
    got = [(r["target_row"], r["reference_id"]) for b in pairs.ordered_batches([("s", late)], {"r3"})
           for r in b.to_pylist()]
    assert not late.ordered and got == sorted(got)
    flags = {r["reference_id"]: r["item_flag"] for b in pairs.ordered_batches([("s", late)], {"r3"}) for r in b.to_pylist()}
    assert flags["r3"] == "frequent_item" and flags["r2"] == ""
    groups = [t.num_rows for t in pairs.in_groups(pairs.ordered_batches([("s", pl)], set()), 100)]
    assert groups == [100, 100, 100, 50]


def test_spill_directories_of_dead_runs_are_removed_and_nothing_else(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed by SIGKILL or SIGTERM leaves its spill directory: the next run removes the files a run
    writes there (and the directory when that empties it), only for runs whose process is gone."""
    import subprocess
    import sys
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()

    def spill_dir(name: str, mark: bool, extra: str | None = None) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "pairs-123.arrows").write_bytes(b"x" * 100)
        if mark:
            (d / pairs.SPILL_MARK).write_text("")
        if extra:
            (d / extra).write_text("not provaudit's")
        return d

    gone = spill_dir(f"provaudit-pairs-{dead}-aaaa", mark=True)
    mixed = spill_dir(f"provaudit-pairs-{dead}-bbbb", mark=True, extra="notes.txt")
    unmarked = spill_dir(f"provaudit-pairs-{dead}-cccc", mark=False)
    alive = spill_dir(f"provaudit-pairs-{os.getpid()}-dddd", mark=True)
    spill = pairs.Spill()
    assert not gone.exists()
    assert sorted(p.name for p in mixed.iterdir()) == ["notes.txt"]  # only what a run writes was removed
    assert (unmarked / "pairs-123.arrows").exists() and (alive / "pairs-123.arrows").exists()
    assert Path(spill.dir).parent == tmp_path and (Path(spill.dir) / pairs.SPILL_MARK).is_file()
    spill.close()
    assert not Path(spill.dir).exists()


def test_a_resumed_source_is_saved_and_read_back_a_batch_at_a_time(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished source's pairs go to its checkpoint batch by batch, and a resumed run reads them back
    batch by batch into its spill (both held every pair of the source in memory: an unbounded step);
    batches that split a record keep the source in order, and the output is unchanged."""
    from provaudit.fs import arrow
    from provaudit.run.checkpoint import partial_dir

    idx, tgt = _corpus(tmp_path, items=300, records=60)
    expected = api.audit(idx, [str(tgt)])
    api.write_audit(expected, tmp_path / "expected", force=True)
    monkeypatch.setattr(pairs, "MEMORY_ROWS", 1_000)
    monkeypatch.setattr(pairs, "BATCH_ROWS", 256)
    monkeypatch.setattr(engine, "PAIR_CHUNK", 128)
    saved_batches: list[int] = []
    real_batches = pairs.PairList.batches

    def counting(self: pairs.PairList) -> Any:
        for b in real_batches(self):
            saved_batches.append(b.num_rows)
            yield b

    monkeypatch.setattr(pairs.PairList, "batches", counting)
    out = tmp_path / "out"
    api.audit(idx, [str(tgt)], checkpoint=partial_dir(out)).close()  # finished, checkpoint kept
    assert max(saved_batches) <= 1_000 and sum(saved_batches) >= 18_000
    monkeypatch.setattr(pairs.PairList, "batches", real_batches)
    real_iter = arrow.iter_batches
    read: list[int] = []

    def small_reads(source: Any, columns: Any = None, rows: int = 1 << 14) -> Any:
        for b in real_iter(source, columns, rows=77):  # 77 rows: batches split records (300 pairs each)
            read.append(b.num_rows)
            yield b

    monkeypatch.setattr(arrow, "iter_batches", small_reads)
    resumed = api.audit(idx, [str(tgt)], checkpoint=partial_dir(out), resume=True)
    assert resumed.resumed_sources == 1 and sum(read) == 18_000 and max(read) == 77
    (src,) = resumed.inputs
    assert src.matches.ordered and _in_memory_rows(resumed) <= 1_000 + 256
    api.write_audit(resumed, out)
    assert (out / "matches.parquet").read_bytes() == (tmp_path / "expected" / "matches.parquet").read_bytes()
