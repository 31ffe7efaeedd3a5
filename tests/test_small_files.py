"""Many small files (issue 15 item 10): consecutive small line files are one worker task
(``run.small.SmallFiles``) that reads, hashes, parses and prepares them, instead of a round trip
(and three opens in the parent) per file; the index, the audit, counts and errors are the same as
file by file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import seg
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
        assert (seg(tmp_path / "bundled") / name).read_bytes() == (seg(tmp_path / "single") / name).read_bytes(), name
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
        assert (seg(tmp_path / "bundled") / name).read_bytes() == (seg(tmp_path / "single") / name).read_bytes(), name


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


def test_an_index_of_many_files_is_named_not_copied_by_reports_and_info_prints_its_manifest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """report.json copied every input of the index (100,000 files: a 35 MB report for a 1-record
    audit); above INDEX_INPUTS_LISTED it counts them, the manifest (pinned by its sha256) lists them."""
    from click.testing import CliRunner

    from provaudit.cli import cli
    from provaudit.report import common

    src = _files(tmp_path / "in", 5)
    (src / "g.jsonl.gz").unlink()
    api.build_index([str(src)], tmp_path / "idx")
    target = tmp_path / "t.jsonl"
    target.write_text((src / "f0002.jsonl").read_text())
    r = CliRunner().invoke(cli, ["info", str(tmp_path / "idx")])
    assert r.exit_code == 0 and r.output == (tmp_path / "idx" / "manifest.json").read_text()
    assert len(json.loads(r.output)["inputs"]) == 5
    from provaudit.report.training import build_report

    r1 = build_report(api.audit(tmp_path / "idx", [str(target)]))["index"]
    monkeypatch.setattr(common, "INDEX_INPUTS_LISTED", 4)
    r2 = build_report(api.audit(tmp_path / "idx", [str(target)]))["index"]
    assert [i["source"] for i in r1["inputs"]] == [str(src / f"f{i:04d}.jsonl") for i in range(5)]
    assert "inputs" not in r2 and r2["inputs_count"] == 5 and r2["manifest_sha256"] == r1["manifest_sha256"]


@pytest.mark.parametrize("n_workers", [1, 2])
def test_small_target_files_evaluated_together_give_each_file_its_own_results(
        tmp_path: Path, n_workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Records of many small target files are evaluated in joint batches and the results split per
    file: pairs, counts, candidate counters (against the reference and a control index) and the
    report equal those of evaluating file by file."""
    from provaudit.report.training import build_report

    ref = _files(tmp_path / "ref", 60)
    (ref / "g.jsonl.gz").unlink()
    api.build_index([str(ref)], tmp_path / "idx")
    ctl = tmp_path / "ctl.jsonl"
    ctl.write_text("".join((ref / f"f{i:04d}.jsonl").read_text() for i in range(0, 60, 7)))
    api.build_index([str(ctl)], tmp_path / "ctl.idx")
    tgt = tmp_path / "tgt"
    tgt.mkdir()
    for i in range(90):
        lines = [json.loads((ref / f"f{(i * 5) % 60:04d}.jsonl").read_text())["text"] + " and then more"] * (i % 3)
        lines.append(f"unrelated words number {i} " * (1 + i % 4))
        if i % 11 == 0:
            lines = [" ".join(json.loads((ref / f"f{j:04d}.jsonl").read_text())["text"] for j in range(i % 60, 60, 9))]
        (tgt / f"t{i:03d}.jsonl").write_text("".join(json.dumps({"id": f"t{i}-{k}", "text": t}) + "\n"
                                                     for k, t in enumerate(lines)))
    runs = []
    for limit in (small.FILE_BYTES, -1):
        monkeypatch.setattr(small, "FILE_BYTES", limit)
        runs.append(api.audit(tmp_path / "idx", [str(tgt)], workers=n_workers, control=[str(tmp_path / "ctl.idx")]))
    joint, single = runs
    assert len(joint.matches["reference_id"]) > 90 and joint.matches == single.matches
    fields = ("records", "tokens", "covered_tokens", "records_with_matches", "candidates", "control_candidates",
              "control_records_with_matches", "sha256")
    for a, b in zip(joint.inputs, single.inputs, strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields], a.source
        assert a.stats.to_dict() == b.stats.to_dict()
        assert (len(a.matches), len(a.control_matches or [])) == (len(b.matches), len(b.control_matches or []))
    assert sum(bool(s.control_candidates.get("reported_pairs")) for s in joint.inputs) >= 5
    assert json.dumps(build_report(joint), sort_keys=True) == json.dumps(build_report(single), sort_keys=True)


def test_force_replaces_an_audit_whose_report_names_its_format_after_the_first_block(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An audit of 5,000 files wrote a 4.3 MB report.json whose ``format`` line came after 2.3 MB
    of per-source estimates: --force refused to replace it ('not a provaudit output')."""
    from provaudit.fs import atomic
    from provaudit.fs.atomic import OutputExistsError, check_output, is_marked
    from provaudit.report.common import MARKER as REPORT

    src = _files(tmp_path / "in", 40)
    (src / "g.jsonl.gz").unlink()
    api.build_index([str(src)], tmp_path / "idx")
    out = tmp_path / "out"
    api.write_audit(api.audit(tmp_path / "idx", [str(src)]), out)
    text = (out / "report.json").read_text()
    at = text.index('\n  "format": ')
    monkeypatch.setattr(atomic, "MARKER_BYTES", 1024)
    assert at > 3 * 1024  # the line is blocks into the file
    assert is_marked(out, REPORT)
    check_output(out, True, REPORT)  # replaced with --force
    for cut in range(at - 40, at + 40, 7):  # the line across a block boundary
        monkeypatch.setattr(atomic, "MARKER_BYTES", cut)
        assert is_marked(out, REPORT), cut
    monkeypatch.setattr(atomic, "MARKER_BYTES", 1024)
    (out / "report.json").write_text(text.replace('\n  "format": ', '\n   "format": '))  # not top-level
    assert not is_marked(out, REPORT)
    with pytest.raises(OutputExistsError):
        check_output(out, True, REPORT)


def test_an_audit_of_small_files_resumes_from_group_checkpoints(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each task of small files is checkpointed as one group file (not a file per source: 1 ms each);
    a resumed run reuses every source of the intact groups, recomputes those of a damaged one, and
    writes the uninterrupted output."""
    from provaudit.run.checkpoint import partial_dir

    ref = _files(tmp_path / "ref", 30)
    (ref / "g.jsonl.gz").unlink()
    api.build_index([str(ref)], tmp_path / "idx")
    monkeypatch.setattr(small, "BUNDLE_SOURCES", 8)
    from provaudit.run import loop

    monkeypatch.setattr(loop, "BUNDLE_SOURCES", 8)
    api.write_audit(api.audit(tmp_path / "idx", [str(ref)]), tmp_path / "expected")
    out = tmp_path / "out"
    seen: list[str] = []

    def interrupt(source: str, *rest: object) -> None:
        seen.append(source)
        if len(seen) >= 3:  # after three tasks of 8 files
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.audit(tmp_path / "idx", [str(ref)], checkpoint=partial_dir(out), progress=interrupt)
    groups = sorted(partial_dir(out).glob("src-*.group.json"))
    assert len(groups) == 3 and not list(partial_dir(out).glob("src-*[0-9a-f].json"))
    assert all(len(json.loads(g.read_text())["sources"]) == 8 for g in groups)
    damaged = json.loads(groups[1].read_text())
    damaged["sources"][0]["records"] += 1  # its checksum no longer matches: the group's 8 sources are redone
    groups[1].write_text(json.dumps(damaged))
    result = api.audit(tmp_path / "idx", [str(ref)], checkpoint=partial_dir(out), resume=True)
    assert result.resumed_sources == 16
    api.write_audit(result, out)
    for name in ("matches.parquet", "report.md"):
        assert (out / name).read_bytes() == (tmp_path / "expected" / name).read_bytes()
