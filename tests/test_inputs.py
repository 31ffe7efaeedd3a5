"""Every input format and nested field paths give the same records, matches and index as the JSON-lines original.

The original is the synthetic corpus of ``conftest.make_corpus`` (planted overlaps); each
variant holds the same rows in another container: zstd and gzip compression, JSON arrays,
Arrow IPC files and streams, saved datasets, nested objects and struct columns, and files
whose reader is forced with ``--format``.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import seg
from provaudit import api
from provaudit.cli import cli
from provaudit.config import SampleConfig
from provaudit.estimate.sampling import BernoulliSampler
from provaudit.errors import InputError
from provaudit.index.format import FILES
from provaudit.read import arrow_files, lines
from provaudit.read.records import Source
from provaudit.read.sources import count_rows, expand_sources, read_source

NESTED = {"text_field": "doc.body", "id_field": "meta.id"}


def _rows(targets: dict[str, str]) -> list[dict[str, Any]]:
    return [{"id": k, "text": v} for k, v in targets.items()]


def _nested(targets: dict[str, str]) -> list[dict[str, Any]]:
    return [{"meta": {"id": k, "lang": "en"}, "doc": {"title": k.upper(), "body": v}} for k, v in targets.items()]


def _zst(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as f:
        f.write(data)
    return bytes(sink.getvalue().to_pybytes())


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _array(rows: list[dict[str, Any]]) -> bytes:
    return ("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n").encode()


def _arrow(path: Path, rows: list[dict[str, Any]], stream: bool) -> None:
    table = pa.Table.from_pylist(rows)
    with (pa.ipc.new_stream if stream else pa.ipc.new_file)(str(path), table.schema) as w:
        w.write_table(table, max_chunksize=16)  # many record batches


def _saved(path: Path, rows: list[dict[str, Any]]) -> None:
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path))


def _write(d: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    path = d / name
    if name.endswith((".jsonl", ".data")):
        path.write_bytes(_jsonl(rows))
    elif name.endswith(".jsonl.zst"):
        path.write_bytes(_zst(_jsonl(rows)))
    elif name.endswith(".json.gz"):
        path.write_bytes(gzip.compress(_array(rows), mtime=0))
    elif name.endswith(".json.zst"):
        path.write_bytes(_zst(_array(rows)))
    elif name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=50)
    elif name.endswith((".arrow", ".bin")):
        _arrow(path, rows, stream="stream" in name)
    elif name.endswith(".saved"):
        _saved(path, rows)
    else:
        raise AssertionError(name)
    return path


VARIANTS = [  # (file name, nested fields, --format)
    ("tgt.jsonl.zst", False, None), ("tgt.json.gz", False, None), ("tgt.json.zst", False, None),
    ("tgt-file.arrow", False, None), ("tgt-stream.arrow", False, None), ("tgt.saved", False, None),
    ("nested.jsonl", True, None), ("nested.jsonl.zst", True, None), ("nested.parquet", True, None),
    ("nested-stream.arrow", True, None), ("nested.saved", True, None),
    ("tgt.data", False, "jsonl"), ("tgt-stream.bin", False, "arrow"),
]


def _same_matches(a: api.AuditResult, b: api.AuditResult) -> None:
    strip = {k: v for k, v in a.matches.items() if k != "target_source"}
    assert strip == {k: v for k, v in b.matches.items() if k != "target_source"}
    assert a.target_records == b.target_records


@pytest.fixture(scope="module")
def original(corpus, corpus_index) -> api.AuditResult:
    result = api.audit(corpus_index, [str(corpus[3])], workers=1)
    assert len(result.matches["reference_id"]) > 20 and result.target_records == len(corpus[1])
    return result


@pytest.mark.parametrize("name,nested,fmt", VARIANTS)
def test_each_input_gives_the_matches_of_the_json_lines_original(name: str, nested: bool, fmt: str | None, corpus,
                                                                 corpus_index, original, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrow_files, "BLOCK_BYTES", 2048)  # several blocks per Arrow file, read by both workers
    monkeypatch.setattr(lines, "BLOCK_BYTES", 4096)
    path = _write(tmp_path, name, _nested(corpus[1]) if nested else _rows(corpus[1]))
    fields = NESTED if nested else {}
    for workers in (1, 2):
        result = api.audit(corpus_index, [str(path)], workers=workers, input_format=fmt, **fields)  # type: ignore[arg-type]
        _same_matches(result, original)
        assert set(result.matches["target_source"]) == {str(path)}
        assert result.matches["target_id"] == original.matches["target_id"]  # ids read from the nested field


@pytest.mark.parametrize("name,nested,fmt", [v for v in VARIANTS if v[0] in ("tgt-stream.arrow", "tgt.saved",
                                                                              "tgt.jsonl.zst", "nested.saved")])
def test_sampled_reads_count_and_number_rows_like_the_original(name: str, nested: bool, fmt: str | None, corpus,
                                                               corpus_index, original, tmp_path: Path) -> None:
    """A sample keeps rows by (seed, source name, row): the matches are the original's on the rows kept."""
    path = _write(tmp_path, name, _nested(corpus[1]) if nested else _rows(corpus[1]))
    assert count_rows(expand_sources([str(path)])[0]) == len(corpus[1])
    fields = NESTED if nested else {}
    got = api.audit(corpus_index, [str(path)], workers=1, sample=SampleConfig(0.4, None, 3), **fields)  # type: ignore[arg-type]
    kept = {row for row in range(len(corpus[1])) if BernoulliSampler(0.4, 3).keep(str(path), row)}
    assert got.target_records == len(kept) and 0 < len(kept) < len(corpus[1])
    rows = [i for i, row in enumerate(original.matches["target_row"]) if row in kept]
    assert rows and {k: [v[i] for i in rows] for k, v in original.matches.items() if k != "target_source"} == {
        k: v for k, v in got.matches.items() if k != "target_source"}


def test_an_index_of_nested_records_equals_the_index_of_the_flat_ones(corpus, tmp_path: Path) -> None:
    flat, nested = tmp_path / "flat.idx", tmp_path / "nested.idx"
    api.build_index([str(corpus[2])], flat, workers=2)
    for name in ("ref.parquet", "ref-file.arrow", "ref.jsonl.zst"):
        src = _write(tmp_path, name, _nested(corpus[0]) if "zst" not in name else _rows(corpus[0]))
        api.build_index([str(src)], nested, workers=2, force=True,
                        **({} if "zst" in name else NESTED))  # type: ignore[arg-type]
        for f in FILES:
            if f != "items.parquet":
                assert (seg(flat) / f).read_bytes() == (seg(nested) / f).read_bytes(), (name, f)
        items = [pq.read_table(seg(d) / "items.parquet").drop_columns(["source"]) for d in (flat, nested)]
        assert items[0].equals(items[1]), name


def test_a_literal_dotted_key_wins_over_the_nested_path(tmp_path: Path) -> None:
    """``datasets``' ``flatten()`` names columns ``doc.body``: the column spelled so is read."""
    rows = [{"doc.body": "flat text", "doc": {"body": "nested text"}, "id": "a"}, {"doc": {"body": "only nested"}}]
    path = _write(tmp_path, "t.jsonl", rows)
    got = [(r.id, r.text) for r in read_source(Source(str(path), "jsonl"), text_field="doc.body")]
    assert got == [("a", "flat text"), (f"{path}#1", "only nested")]
    pq.write_table(pa.Table.from_pylist([{"doc.body": "flat", "doc": {"body": "nested"}}]), tmp_path / "t.parquet")
    assert [r.text for r in read_source(Source(str(tmp_path / "t.parquet"), "parquet"), text_field="doc.body")] == [
        "flat"]


def test_a_null_on_the_nested_path_is_a_null_text(tmp_path: Path) -> None:
    rows = [{"doc": None, "id": "a"}, {"doc": {"body": None}, "id": "b"}, {"doc": {"body": "text"}, "id": "c"}]
    for name in ("t.jsonl", "t.parquet", "t-stream.arrow"):
        from provaudit.read.records import ReadStats

        stats = ReadStats()
        path = _write(tmp_path, name, rows)
        got = [r.id for r in read_source(expand_sources([str(path)])[0], text_field="doc.body", stats=stats)]
        assert got == ["c"] and stats.skipped == {"null text": 2}, name


def test_format_is_checked_and_directories_still_pick_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "x y z"}\n')
    (tmp_path / "b.log").write_text('{"text": "x y z"}\n')
    assert [s.kind for s in expand_sources([str(tmp_path / "b.log")], fmt="jsonl")] == ["jsonl"]
    assert [s.name for s in expand_sources([str(tmp_path)], fmt="jsonl")] == [str(tmp_path / "a.jsonl")]
    assert [s.name for s in expand_sources([str(tmp_path / "*")], fmt="jsonl")] == [
        str(tmp_path / "a.jsonl"), str(tmp_path / "b.log")]
    with pytest.raises(InputError, match="unsupported file type"):
        expand_sources([str(tmp_path / "b.log")])
    r = CliRunner().invoke(cli, ["index", str(tmp_path / "b.log"), "-o", str(tmp_path / "i"), "--format", "xml"])
    assert r.exit_code == 2 and "'xml' is not one of 'jsonl', 'json', 'parquet', 'csv', 'txt', 'arrow'" in r.output


def test_help_lists_the_formats() -> None:
    for args in (["--help"], ["index", "--help"], ["audit", "--help"]):
        out = " ".join(CliRunner().invoke(cli, args).output.split())
        for fmt in (".jsonl", ".json", ".csv", ".txt", ".gz", ".zst", ".parquet", ".arrow", "hf:NAME"):
            assert fmt in out, (args, fmt)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="no zstd command to write a long-window file")
def test_a_long_window_zstd_file_is_reported_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl.zst"
    data = _jsonl([{"id": str(i), "text": f"record {i}"} for i in range(100)])
    path.write_bytes(subprocess.run(["zstd", "--long=31", "-q", "-c"], input=data, capture_output=True,
                                    check=True).stdout)  # from a pipe: the frame declares a 2 GiB window
    with pytest.raises(InputError) as e:
        list(read_source(Source(str(path), "jsonl")))
    assert str(e.value) == (f"{path} line 1: zstd window over 128 MiB (compressed with --long); recompress it "
                            "without --long (zstd -d --long=31 -c FILE | zstd -o NEW)")


@pytest.mark.parametrize("where", ["parent", "link", "indices", "split"])
def test_a_saved_dataset_reads_only_its_own_files(tmp_path: Path, where: str) -> None:
    """A state.json (or dataset_dict.json) naming a file outside its directory was read, and the
    source's sha256 (of the files under the directory) did not cover what was read."""
    rows = [{"id": f"r{i}", "text": f"row {i} of the dataset"} for i in range(5)]
    ds = tmp_path / "ds"
    _saved(ds, rows)
    outside = tmp_path / "outside"
    _saved(outside, [{"id": "x", "text": "text that is not in the dataset"}])
    data = next(p.name for p in outside.iterdir() if p.suffix == ".arrow")
    target, listed_in = ds, "state.json"
    if where == "split":  # a DatasetDict whose split name climbs out
        target, listed_in = tmp_path / "dd", "dataset_dict.json"
        target.mkdir()
        (target / "dataset_dict.json").write_text(json.dumps({"splits": ["../outside"]}))
    else:
        state = json.loads((ds / "state.json").read_text())
        name = f"../outside/{data}"
        if where == "link":
            (ds / "data-link.arrow").symlink_to(outside / data)
            name = "data-link.arrow"
        if where == "indices":  # read through datasets (rows selected): checked all the same
            state["_indices_data_files"] = [{"filename": name}]
        else:
            state["_data_files"] = [{"filename": name}]
        (ds / "state.json").write_text(json.dumps(state))
    src = expand_sources([str(target)])[0]
    with pytest.raises(InputError, match=rf"{listed_in} names .*(not a file of the dataset directory|a link out of)"):
        list(read_source(src))
    r = CliRunner().invoke(cli, ["index", str(target), "-o", str(tmp_path / "idx"), "-q"])
    assert r.exit_code == 1 and "a saved dataset reads only its own files" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "idx").exists()
