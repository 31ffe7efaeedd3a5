"""Many small files (issue 15 item 10): consecutive small line files are one worker task
(``run.small.SmallFiles``) that reads, hashes, parses and prepares them, instead of a round trip
(and three opens in the parent) per file; the index, the audit, counts and errors are the same as
file by file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provaudit import api
from provaudit.errors import InputError
from provaudit.index.format import FILES
from provaudit.run import small, workers


def _files(d: Path, n: int) -> Path:
    d.mkdir()
    for i in range(n):
        text = f"record {i} says " + " ".join(f"w{(i * 7 + k) % 97}" for k in range(12))
        (d / f"f{i:04d}.jsonl").write_text(json.dumps({"id": f"r{i}", "text": text}) + "\n")
    (d / "g.jsonl.gz").write_bytes(b"")  # not bundled (compressed), read as before, in its place
    return d


def _count_tasks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted = [0]
    real = workers.WorkerMap.stream

    def stream(self, items):  # type: ignore[no-untyped-def]
        def counting():  # type: ignore[no-untyped-def]
            for item in items:
                if not isinstance(item, workers.Passthrough):
                    counted[0] += 1
                yield item
        return real(self, counting())

    monkeypatch.setattr(workers.WorkerMap, "stream", stream)
    return counted


@pytest.mark.parametrize("n_workers", [1, 2])
def test_small_files_are_bundled_and_give_the_same_index_and_audit(tmp_path: Path, n_workers: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    src = _files(tmp_path / "in", 300)
    counted = _count_tasks(monkeypatch)
    api.build_index([str(src)], tmp_path / "bundled", on_error="skip", workers=n_workers)
    assert counted[0] <= 3  # 300 files: one bundle (before: 300 tasks, one per file)
    bundled = api.audit(tmp_path / "bundled", [str(src)], workers=n_workers)
    monkeypatch.setattr(small, "FILE_BYTES", -1)  # file by file, as before
    counted[0] = 0
    api.build_index([str(src)], tmp_path / "single", on_error="skip", workers=n_workers)
    assert counted[0] >= 300
    single = api.audit(tmp_path / "single", [str(src)], workers=n_workers)
    for name in FILES:
        assert (tmp_path / "bundled" / name).read_bytes() == (tmp_path / "single" / name).read_bytes(), name
    m1, m2 = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("bundled", "single"))
    assert m1["inputs"] == m2["inputs"] and len(m1["inputs"]) == 301
    assert bundled.matches == single.matches and len(bundled.matches["reference_id"]) >= 300
    assert [s.to_dict() for s in bundled.inputs] == [s.to_dict() for s in single.inputs]


@pytest.mark.parametrize("n_workers", [1, 2])
def test_skipped_rows_and_unreadable_small_files_are_counted_as_file_by_file(tmp_path: Path, n_workers: int,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    src = _files(tmp_path / "in", 40)
    (src / "f0003.jsonl").write_text('{"id": "x", "text": \n{"id": "y", "text": null}\n{"id": "z", "text": "ok"}\n')
    (src / "f0005.jsonl").write_text("")  # empty: reported, not silent
    (src / "f0007.jsonl").write_bytes(b"\x1f\x8b\x08rest")  # gzip named .jsonl
    (src / "f0009.jsonl").write_text('{"id": "sur", "text": "a lone \\ud800 surrogate"}\n')  # altered
    (src / "f0011.jsonl").write_text('{"id": "r11", "text": "no newline at the end"}')
    kw = dict(on_error="skip", workers=n_workers)
    api.build_index([str(src)], tmp_path / "bundled", **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(small, "FILE_BYTES", -1)  # file by file
    api.build_index([str(src)], tmp_path / "single", **kw)  # type: ignore[arg-type]
    m1, m2 = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("bundled", "single"))
    assert m1["inputs"] == m2["inputs"]
    by = {i["source"].rsplit("/", 1)[1]: i for i in m1["inputs"]}
    assert by["f0003.jsonl"]["rows_read"] == 1 and by["f0003.jsonl"]["rows_skipped"] == {
        "malformed JSON": 1, "null text": 1}
    assert by["f0005.jsonl"]["error"].endswith("f0005.jsonl: empty file")
    assert "gzip-compressed" in by["f0007.jsonl"]["error"]
    assert by["f0009.jsonl"]["rows_altered"] == {"lone surrogates replaced in text": 1}
    assert by["f0011.jsonl"]["rows_read"] == 1 and by["f0012.jsonl"]["tokens"] == 15
    for name in FILES:
        assert (tmp_path / "bundled" / name).read_bytes() == (tmp_path / "single" / name).read_bytes(), name


def test_a_small_file_replaced_after_listing_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """The worker reads a file the listing saw as small: grown past the limit, or replaced by a FIFO
    (whose open must not block), it is reported as changed, naming it."""
    import os

    from provaudit.config import IndexConfig, ReadOptions
    from provaudit.index.build import prepare_parsed
    from provaudit.read.records import Source

    grown = tmp_path / "grown.jsonl"
    grown.write_text(json.dumps({"id": "a", "text": "x " * 40_000}) + "\n")
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps({"id": "b", "text": "fine words here"}) + "\n")
    config = IndexConfig().resolved()
    for path in (grown, fifo):
        task = small.SmallFiles([Source(str(ok), "jsonl", 60), Source(str(path), "jsonl", 60)],
                                ReadOptions().to_dict(), None)
        with pytest.raises(InputError, match=rf"{path.name}: changed while the run was reading it"):
            task.run(prepare_parsed, config)
        task.read = ReadOptions(on_error="skip").to_dict()
        read = task.run(prepare_parsed, config)
        assert read.records == [1, 0] and read.files[0] == (read.files[0][0], 1)
        stats = read.files[1][1]
        assert not isinstance(stats, int) and "changed while the run was reading it" in (stats.error or "")
        assert read.files[1][0] is None  # no sha256 of bytes never read


def test_a_problem_in_a_bundled_file_comes_before_one_in_a_later_file(tmp_path: Path) -> None:
    src = _files(tmp_path / "in", 5)
    (src / "f0001.jsonl").write_text('{"id": "x", "text": \n')  # malformed, in the bundle
    (src / "f0003.jsonl").write_bytes(b"\x1f\x8b\x08rest")  # gzip named .jsonl: found while bundling
    with pytest.raises(InputError, match="f0001.jsonl line 1: malformed JSON"):
        api.build_index([str(src)], tmp_path / "idx", workers=2)


def test_an_index_of_thousands_of_files_can_be_replaced_with_force(tmp_path: Path) -> None:
    """Its manifest (one ``inputs`` entry per file) is over MARKER_BYTES: --force refused it as
    'not a provaudit output' (an index of 5,000 one-line files has a 1.5 MB manifest)."""
    from provaudit.fs.atomic import MARKER_BYTES, OutputExistsError, check_output, is_marked
    from provaudit.index.format import MARKER

    idx = tmp_path / "idx"
    idx.mkdir()
    inputs = [{"source": f"/data/{i:06d}.jsonl", "sha256": "0" * 64, "records": 1} for i in range(12000)]
    (idx / "manifest.json").write_text(json.dumps({"format": MARKER[1], "inputs": inputs, "config": {}},
                                                  indent=2, sort_keys=True) + "\n")
    assert (idx / "manifest.json").stat().st_size > MARKER_BYTES
    assert is_marked(idx, MARKER)
    check_output(idx, True, MARKER)  # replaced with --force, not refused
    # a large file that only mentions the format elsewhere is still not provaudit's
    (idx / "manifest.json").write_text(json.dumps({"inputs": inputs, "other": {"format": MARKER[1]}},
                                                  indent=2, sort_keys=True) + "\n")
    assert not is_marked(idx, MARKER)
    with pytest.raises(OutputExistsError):
        check_output(idx, True, MARKER)
    (idx / "manifest.json").write_text(json.dumps({"format": "something-else", "inputs": inputs}, indent=2) + "\n")
    assert not is_marked(idx, MARKER)
