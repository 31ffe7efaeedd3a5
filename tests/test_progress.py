"""Progress: bytes done of the total, percentage, rate and ETA on a terminal; nothing otherwise."""

from __future__ import annotations

import gzip
import io
import os
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from provaudit import api, cli
from provaudit.progress import StatusLine, human_bytes, human_duration, progress_line, task_line
from provaudit.results import TaskCount
from provaudit.read import arrow_files, lines


def test_line_with_a_total() -> None:
    assert progress_line("data/a.jsonl", 12000, 50_000_000, 200_000_000, 10.0) == (
        " 25.0% 50.0 MB of 200.0 MB, 5.0 MB/s, ETA 30s; 12,000 records (1,200/s) data/a.jsonl")
    assert progress_line("b", 7, 0, 1000, 2.0) == "  0.0% 0 B of 1.0 kB, 0 B/s, ETA ?; 7 records (4/s) b"
    assert progress_line("b", 7, 1000, 1000, 2.0).startswith("100.0% 1.0 kB of 1.0 kB, 500 B/s, ETA 0s;")


def test_line_without_a_total_and_escaped_shortened_names() -> None:
    assert progress_line("hf:user/set", 2500, 0, None, 2.0) == "2,500 records (1,250/s) hf:user/set"
    evil = "shards/\x1b[2J\u202eevil\nname.jsonl"
    line = progress_line(evil, 1, 0, None, 1.0)
    assert line == "1 records (1/s) shards/\\x1b[2J\\u202eevil\\nname.jsonl"
    long = progress_line("/very/long/" + "d" * 200 + "/file.jsonl", 1, 5, 10, 1.0, width=80)
    assert len(long) == 79 and long.endswith("ddd/file.jsonl") and "..." in long and "records" in long
    narrow = progress_line("/very/long/" + "d" * 200 + "/file.jsonl", 1, 5, 10, 1.0, width=60)
    assert narrow.startswith(" 50.0% 5 B of 10 B, 5 B/s, ETA 1s ...") and narrow.endswith("d/file.jsonl")
    assert len(narrow) == 59 and "records" not in narrow


def test_human_units() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 1_234_567, 5e12)] == ["0 B", "999 B", "1.0 kB", "1.2 MB", "5.0 TB"]
    assert [human_duration(s) for s in (None, 0.4, 59, 61, 3599, 7260)] == ["?", "0s", "59s", "1m01s", "59m59s",
                                                                         "2h01m"]


def _inputs(d: Path, corpus: Any) -> list[Path]:
    rows = [{"id": k, "text": v} for k, v in corpus[0].items()]
    half = len(rows) // 4
    parts = [rows[:half], rows[half:2 * half], rows[2 * half:3 * half], rows[3 * half:]]
    plain = d / "a.jsonl"
    plain.write_text("".join(f'{{"id": "{r["id"]}", "text": "{r["text"]}"}}\n' for r in parts[0]))
    packed = d / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(
        "".join(f'{{"id": "{r["id"]}", "text": "{r["text"]}"}}\n' for r in parts[1]).encode(), mtime=0))
    pq.write_table(pa.Table.from_pylist(parts[2]), d / "c.parquet", row_group_size=10)
    table = pa.Table.from_pylist(parts[3])
    with pa.ipc.new_file(str(d / "d.arrow"), table.schema) as w:
        w.write_table(table, max_chunksize=8)
    return [plain, packed, d / "c.parquet", d / "d.arrow"]


@pytest.mark.parametrize("workers", [1, 2])
def test_runs_report_bytes_up_to_the_total(corpus, tmp_path: Path, workers: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(arrow_files, "BLOCK_BYTES", 1024)
    files = _inputs(tmp_path, corpus)
    size = sum(os.path.getsize(f) for f in files)
    calls: list[tuple[str, int, int, int | None]] = []
    api.build_index([str(f) for f in files], tmp_path / "idx", workers=workers,
                    progress=lambda *a: calls.append(a))  # type: ignore[arg-type]
    assert len(calls) > 8 and {c[3] for c in calls} == {size}
    done = [c[2] for c in calls]
    assert done == sorted(done) and 0 < done[0] < size and done[-1] == size
    assert [c[1] for c in calls] == sorted(c[1] for c in calls) and calls[-1][1] == len(corpus[0])
    assert {c[0] for c in calls} == {str(f) for f in files}
    audits: list[tuple[str, int, int, int | None]] = []
    api.audit(tmp_path / "idx", [str(f) for f in files], workers=workers, progress=lambda *a: audits.append(a))  # type: ignore[arg-type]
    assert audits[-1][2:] == (size, size) and [c[2] for c in audits] == sorted(c[2] for c in audits)


def test_outputs_audits_report_progress(corpus_index, tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    path.write_text('{"prompt": "say", "completion": "ka0 ka1 ka2 ka3"}\n' * 50)
    calls: list[tuple[str, int, int, int | None]] = []
    api.audit_outputs(corpus_index, [str(path)], progress=lambda *a: calls.append(a))  # type: ignore[arg-type]
    assert calls and calls[-1] == (str(path), 50, path.stat().st_size, path.stat().st_size)


def test_a_hub_or_unknown_size_gives_no_total(tmp_path: Path) -> None:
    from provaudit.read.records import Source
    from provaudit.read.sources import source_bytes

    assert source_bytes(Source("hf:user/set", "hub")) is None
    assert source_bytes(Source(str(tmp_path / "missing.jsonl"), "jsonl")) is None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stderr_progress_only_on_a_terminal_and_never_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert cli.stderr_progress(False) is None
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert cli.stderr_progress(True) is None
    report = cli.stderr_progress(False)
    assert report is not None
    report("in\x1b]0;title\x07put.jsonl", 10, 500, 1000)
    out = tty.getvalue()
    assert out.startswith("\r 50.0% 500 B of 1.0 kB") and out.endswith("in\\x1b]0;title\\x07put.jsonl\x1b[K")
    assert "\x07" not in out and out.count("\x1b") == 1  # only the erase-line sequence provaudit writes


def test_task_line_of_ray_runs() -> None:
    # while the driver is still cutting inputs into tasks: the total so far (+), ETA from the bytes
    assert task_line("s3://b/a.jsonl", TaskCount(3, 8, False), 6000, 25, 100, 5.0) == (
        "  3/8+ tasks, 6,000 records (1,200/s), ETA 15s s3://b/a.jsonl")
    # every task submitted: ETA from the task rate; unknown before the first task is done
    assert task_line("a", TaskCount(37, 52, True), 12000, 0, None, 10.0) == (
        " 37/52 tasks, 12,000 records (1,200/s), ETA 4s a")
    assert task_line("a", TaskCount(0, 4, True), 0, 0, None, 1.0) == "  0/4 tasks, 0 records (0/s), ETA ? a"
    assert task_line("a", TaskCount(4, 4, True), 80, 0, None, 2.0) == "  4/4 tasks, 80 records (40/s), ETA 0s a"
    narrow = task_line("x" * 100, TaskCount(1, 2, True), 123456789, 0, None, 1.0, width=50)
    assert narrow.startswith("  1/2 tasks, ETA 1s ...") and len(narrow) == 49  # the records give way
    assert task_line("\x1b[2Jevil", TaskCount(1, 2, True), 1, 0, None, 1.0).endswith(" \\x1b[2Jevil")


def test_status_line_redraws_at_most_twice_a_second_on_a_fake_clock() -> None:
    now = [100.0]
    out: list[str] = []
    line = StatusLine(out.append, clock=lambda: now[0], width=lambda: 80)
    counts = TaskCount()
    for step in range(10):  # a task done every 0.2 s
        counts.done, counts.total, counts.complete = step + 1, 10, step >= 5
        now[0] += 0.2
        line("s3://b/a.jsonl", 100 * (step + 1), 0, None, counts)
    assert len(out) == 4  # at 0.2, 0.8, 1.4 and 2.0 s: one redraw per 0.5 s at most
    assert out[0] == "\r  1/10+ tasks, 100 records (500/s), ETA ? s3://b/a.jsonl\x1b[K"
    assert out[-1] == "\r 10/10 tasks, 1,000 records (500/s), ETA 0s s3://b/a.jsonl\x1b[K"
    local = StatusLine(out.append, clock=lambda: now[0], width=lambda: 80)  # no TaskCount: the bytes line
    now[0] += 2.0
    local("a.jsonl", 10, 500, 1000)
    assert out[-1].startswith("\r 50.0% 500 B of 1.0 kB, 250 B/s, ETA 2s; 10 records (5/s) a.jsonl")
