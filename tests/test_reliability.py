"""Crash safety, resume, integrity, no code execution, bounded memory, determinism (issue 5).

The kill tests run ``python -m provaudit`` in subprocesses and SIGKILL them at several
points; docs/reliability.md lists which guarantee each test checks.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import long_postings, near_duplicates, seg, write_jsonl
from provaudit import api
from provaudit.fs.atomic import remove_stale_siblings, try_lock, unlock
from provaudit.run.checkpoint import Checkpoint, partial_dir
from provaudit.config import SampleConfig
from provaudit.errors import IndexFormatError, OutputExistsError
from provaudit.index.check import verify_index
from provaudit.index.format import FILES, load_index
from provaudit.fs.integrity import CHECKSUMS, OutputFormatError, load_report
from provaudit.api import write_audit

ROOT = Path(__file__).resolve().parent.parent
SHARDS = 6


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    # the provaudit under test (installed, with its compiled extension, in CI), not the source tree in the
    # working directory (PYTHONSAFEPATH: Python >= 3.11 puts no working directory first on sys.path)
    env["PYTHONPATH"] = str(Path(api.__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONSAFEPATH"] = "1"
    env.update(extra)
    return env


def _cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "provaudit", *[str(a) for a in args]]


def _files(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` (an index's segments included), by its path relative to ``d``."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reference corpus and six target shards big enough for `index`/`audit` to take a second or two."""
    d = tmp_path_factory.mktemp("big")
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(3000)]
    refs = [" ".join(rng.choices(vocab, k=rng.randint(20, 60))) for _ in range(40_000)]
    with open(d / "ref.jsonl", "w") as f:
        for i, t in enumerate(refs):
            f.write(json.dumps({"id": f"r{i}", "text": t}) + "\n")
    (d / "shards").mkdir()
    for s in range(SHARDS):
        with open(d / "shards" / f"s{s}.jsonl", "w") as f:
            for j in range(3000):
                t = " ".join(rng.choices(vocab, k=rng.randint(30, 100)))
                if j % 40 == 0:
                    t += " " + refs[rng.randrange(len(refs))]
                f.write(json.dumps({"id": f"s{s}-{j}", "text": t}) + "\n")
    return d


def _kill_when(cmd: list[str], ready: Callable[[], bool], delay: float, timeout: float = 120) -> int | None:
    """Start ``cmd``; once ``ready()`` holds, wait ``delay`` s and SIGKILL its process group.

    Returns:
        None when the process was killed, else its exit code (it finished first).
    """
    p = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if p.poll() is not None:
                return p.returncode
            assert time.monotonic() < deadline, "never reached the kill point"
            time.sleep(0.005)
        time.sleep(delay)
        if p.poll() is not None:
            return p.returncode
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return None
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _hidden_siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


# --- crash safety: SIGKILL at any point leaves no output or the previous complete one -----------------
def test_index_killed_at_any_point_leaves_previous_or_no_index(big: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref.idx"
    # 1. no previous index: killed builds leave nothing that loads
    for delay in (0.0,):
        assert _kill_when(_cmd("index", big / "ref.jsonl", "-o", out, "-q", "-w", "1"),
                          lambda: bool(_hidden_siblings(out)), delay) is None
        assert not out.exists()
        assert all(name.startswith(f".{out.name}.tmp-") for name in _hidden_siblings(out))
    # 2. a previous complete index (other seed) survives killed rebuilds, byte for byte
    assert subprocess.run(_cmd("index", big / "ref.jsonl", "-o", out, "-q", "--seed", "2"), env=_env()).returncode == 0
    previous = _files(out)
    killed = 0
    for delay in (0.0, 0.25, 0.5):
        before = set(_hidden_siblings(out))
        rc = _kill_when(_cmd("index", big / "ref.jsonl", "-o", out, "-q", "--force", "-w", "1"),
                        lambda before=before: bool(set(_hidden_siblings(out)) - before), delay)
        killed += rc is None
        if rc is None and out.exists() and _files(out) == previous:
            continue
        if out.exists():  # the kill came after the rename: the new index, complete
            assert load_index(out).manifest["config"]["seed"] == 1
            previous = _files(out)
        # else: killed between moving the old index aside and renaming the new one in: no index
    assert killed >= 2
    # 3. a later run succeeds, and the temporary directories of killed runs are garbage
    assert subprocess.run(_cmd("index", big / "ref.jsonl", "-o", out, "-q", "--force"), env=_env()).returncode == 0
    assert load_index(out).manifest["config"]["seed"] == 1
    assert _hidden_siblings(out), "killed runs leave hidden temporary siblings"
    assert remove_stale_siblings(out, grace=0.0)
    assert _hidden_siblings(out) == []


def test_audit_killed_then_resumed_gives_the_uninterrupted_output(big: Path, tmp_path: Path) -> None:
    idx = tmp_path / "ref.idx"
    assert subprocess.run(_cmd("index", big / "ref.jsonl", "-o", idx, "-q"), env=_env()).returncode == 0
    ref_out, out = tmp_path / "reference", tmp_path / "out"
    audit = _cmd("audit", idx, big / "shards", "-q", "-w", "1", "--force")
    assert subprocess.run([*audit, "-o", ref_out], env=_env()).returncode == 0
    expected = _files(ref_out)
    assert subprocess.run([*audit, "-o", out, "--min-containment", "0.9"], env=_env()).returncode == 0
    previous = _files(out)
    part = partial_dir(out)

    def finished(n: int) -> Callable[[], bool]:
        return lambda: part.is_dir() and sum(p.suffix == ".json" and p.name.startswith("src-")
                                             for p in part.iterdir()) >= n

    # kill before any source finished and after 3 of 6; each time the previous output is intact;
    # then --resume (with 2 workers); once, the resumed run is killed again, then resumed
    resume = _cmd("audit", idx, big / "shards", "-w", "2", "--force", "-o", out, "--resume")  # notes on stderr
    for n, delay, kill_resume in ((0, 0.05, 0), (3, 0.0, 0), (1, 0.0, 4)):
        ready = finished(n) if n else (lambda: True)
        assert _kill_when([*audit, "-o", out], ready, delay) is None
        assert _files(out) == previous
        load_report(out)
        if kill_resume:
            assert _kill_when([*audit, "-o", out, "--resume"], finished(kill_resume), 0.0) is None
            assert _files(out) == previous
        r = subprocess.run(resume, env=_env(), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert _files(out) == expected
        resumed = [int(w) for w in r.stderr.replace("Resumed: ", "Resumed:").split() if w.isdigit()]
        assert (resumed[0] if resumed else 0) >= max(n, kill_resume), r.stderr
        assert not part.exists(), "the checkpoint is removed once the output is complete"
        previous = expected
    assert [n for n in _hidden_siblings(out) if ".tmp-" in n or ".partial" in n] == []


# --- resume in process: every part of the result survives a checkpoint ------------------------------
def _interrupt_after(n: int) -> Callable[[str, int], None]:
    seen: list[str] = []

    def progress(source: str, done: int, *sizes: object) -> None:
        if source not in seen:
            seen.append(source)
        if len(seen) > n:
            raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize("sample", [SampleConfig(), SampleConfig(records=0.5, seed=3), SampleConfig(records=150)])
def test_resume_is_byte_identical_with_sampling_and_control(corpus, corpus_index, tmp_path, sample) -> None:
    refs, targets, ref_path, tgt_path = corpus
    shards = tmp_path / "shards"
    shards.mkdir()
    lines = tgt_path.read_text().splitlines(keepends=True)
    for i in range(4):
        (shards / f"t{i}.jsonl").write_text("".join(lines[i::4]))
    control = tmp_path / "control.jsonl"
    control.write_text("".join(json.dumps({"id": f"c{i}", "text": t[::-1]}) + "\n" for i, t in enumerate(refs.values())))
    kw: dict[str, Any] = {"sample": sample, "control": [str(control)]}
    write_audit(api.audit(corpus_index, [str(shards)], **kw), tmp_path / "expected")
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        api.audit(corpus_index, [str(shards)], checkpoint=partial_dir(out), progress=_interrupt_after(2), **kw)
    assert len(list(partial_dir(out).glob("src-*.json"))) == 2
    result = api.audit(corpus_index, [str(shards)], checkpoint=partial_dir(out), resume=True, **kw)
    assert result.resumed_sources == 2
    write_audit(result, out)
    assert _files(out) == _files(tmp_path / "expected")
    assert not partial_dir(out).exists()


def test_resume_recomputes_changed_sources_and_restarts_on_changed_parameters(corpus, corpus_index, tmp_path) -> None:
    tgt = corpus[3]
    shards = tmp_path / "shards"
    shards.mkdir()
    lines = tgt.read_text().splitlines(keepends=True)
    for i in range(3):
        (shards / f"t{i}.jsonl").write_text("".join(lines[i::3]))
    ckpt = partial_dir(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        api.audit(corpus_index, [str(shards)], checkpoint=ckpt, progress=_interrupt_after(2))
    with open(shards / "t0.jsonl", "a") as f:
        f.write(json.dumps({"id": "new", "text": "a record added after the interruption"}) + "\n")
    result = api.audit(corpus_index, [str(shards)], checkpoint=ckpt, resume=True)  # t0 changed: read again
    assert result.resumed_sources == 1 and result.checkpoint is not None and result.checkpoint.note == ""
    assert result.target_records == len(corpus[1]) + 1
    result.checkpoint.close()
    from provaudit.config import AuditConfig

    other = api.audit(corpus_index, [str(shards)], AuditConfig(min_containment=0.8), checkpoint=ckpt, resume=True)
    assert other.resumed_sources == 0 and other.checkpoint is not None
    assert other.checkpoint.note == "the checkpoint was made with other parameters; starting over"
    other.checkpoint.discard()


def test_damaged_checkpoint_files_are_recomputed(corpus, corpus_index, tmp_path) -> None:
    """Checkpoints are written without fsync (verified on load instead): what a power loss can leave
    (an empty or zero-filled file) or a changed byte is recomputed, never trusted."""
    lines = corpus[3].read_text().splitlines(keepends=True)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(5):
        (shards / f"t{i}.jsonl").write_text("".join(lines[i::5]))
    ckpt = partial_dir(tmp_path / "out")
    with pytest.raises(KeyboardInterrupt):
        api.audit(corpus_index, [str(shards)], checkpoint=ckpt, progress=_interrupt_after(4))
    metas = sorted(ckpt.glob("src-*.json"))
    assert len(metas) == 4
    metas[0].write_bytes(b"")
    metas[1].write_bytes(b"\0" * 200)
    changed = json.loads(metas[2].read_text())  # valid JSON, one number changed: caught by its checksum
    changed["tokens"] += 1
    metas[2].write_text(json.dumps(changed))
    resumed = api.audit(corpus_index, [str(shards)], checkpoint=ckpt, resume=True)
    assert resumed.resumed_sources == 1
    assert resumed.checkpoint is not None
    resumed.checkpoint.discard()
    fresh = api.audit(corpus_index, [str(shards)])
    assert resumed.matches == fresh.matches and resumed.target_records == fresh.target_records


def test_checkpoint_tables_inline_or_parquet_round_trip_exactly(tmp_path: Path) -> None:
    from provaudit.match.schema import MATCH_COLUMNS
    from provaudit.results import SourceResult
    from provaudit.run.checkpoint import INLINE_ROWS

    for n in (3, INLINE_ROWS + 1):
        part = SourceResult("x.jsonl", "jsonl", "ab" * 32)
        part.matches.add([(f"ref{i}", i, f"t{i}", "x.jsonl", i, 1 / 3 + i, 0.1 * i, 2 / 7, i + 3, 5, 8, 9, 100, 12,
                           "anchor+lsh", 1 - 1e-12 * i, "" if i % 2 else "short_item") for i in range(n)])
        assert len(part.matches.columns()["reference_id"]) == n and set(part.matches.columns()) == set(MATCH_COLUMNS)
        ck = Checkpoint(tmp_path / f"c{n}", {"p": 1}, resume=False)
        ck.save(part)
        ck.close()
        again = Checkpoint(tmp_path / f"c{n}", {"p": 1}, resume=True)
        loaded = again.load("x.jsonl", "ab" * 32)
        assert loaded is not None and loaded.matches.columns() == part.matches.columns()
        tables = list((tmp_path / f"c{n}").glob("*.matches.parquet"))
        assert len(tables) == (n > INLINE_ROWS)
        if tables:
            tables[0].write_bytes(tables[0].read_bytes()[:-10])
            assert again.load("x.jsonl", "ab" * 32) is None
        again.close()


def test_a_checkpoint_is_locked_against_a_second_audit(tmp_path: Path) -> None:
    first = Checkpoint(tmp_path / ".out.partial", {"a": 1}, resume=False)
    with pytest.raises(OutputExistsError, match="another provaudit audit is writing this output"):
        Checkpoint(tmp_path / ".out.partial", {"a": 1}, resume=True)
    first.close()
    Checkpoint(tmp_path / ".out.partial", {"a": 1}, resume=True).discard()


def test_stale_siblings_are_removed_only_when_unused_and_old(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old_tmp, young_tmp, locked_tmp, aside = (tmp_path / f".out.{n}" for n in ("tmp-a", "tmp-b", "tmp-c", "old-d"))
    for d in (old_tmp, young_tmp, locked_tmp, aside):
        d.mkdir()
        (d / "report.json").write_text("{}")
    past = time.time() - 3600
    for d in (old_tmp, locked_tmp, aside):
        os.utime(d / "report.json", (past, past))
        os.utime(d, (past, past))
    fd = try_lock(locked_tmp)
    try:
        assert remove_stale_siblings(out) == [old_tmp]  # out is missing: .old- may be the only copy
        out.mkdir()
        assert remove_stale_siblings(out) == [aside]
    finally:
        unlock(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.tmp-b", ".out.tmp-c", "out"]


# --- integrity: a changed, missing, truncated or extra file is refused --------------------------------
def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", [*FILES, "checksums.sha256"])
def test_index_with_a_flipped_byte_anywhere_in_a_data_file_is_refused(corpus, tmp_path, name) -> None:
    """``verify`` (every byte) refuses a flipped byte anywhere, and a truncated file."""
    from provaudit.config import IndexConfig

    src = tmp_path / "idx"
    refs = write_jsonl(tmp_path / "ref.jsonl", near_duplicates(corpus[0]))
    with long_postings(2):
        api.build_index([str(refs)], src, IndexConfig(band_table=True))  # every file holds data
    size = (seg(src) / name).stat().st_size
    for at in sorted({0, 1, size // 3, size // 2, size - 9, size - 1}):
        dest = tmp_path / f"flip{at}"
        shutil.copytree(src, dest)
        _flip(seg(dest) / name, at)
        with pytest.raises(IndexFormatError, match=f"{name}: .*(do not match|does not match)"):
            verify_index(dest)
    dest = tmp_path / "truncated"
    shutil.copytree(src, dest)
    with open(seg(dest) / name, "r+b") as f:
        f.truncate(size - 1)
    with pytest.raises(IndexFormatError, match=f"{name}: .*(size|does not match)"):
        verify_index(dest)


def test_index_with_a_flipped_byte_in_its_manifest_is_refused(corpus, tmp_path) -> None:
    """Every 5th byte of manifest.json, flipped: refused as IndexFormatError (its manifest_checksum), never loaded."""
    src = tmp_path / "idx"
    api.build_index([str(corpus[2])], src)
    data = (src / "manifest.json").read_bytes()
    for at in range(0, len(data), 5):
        _flip(src / "manifest.json", at)
        try:
            with pytest.raises(IndexFormatError):
                load_index(src)
        finally:
            (src / "manifest.json").write_bytes(data)


def test_audit_output_with_a_flipped_byte_missing_or_extra_file_is_refused(corpus, corpus_index, tmp_path) -> None:
    out = tmp_path / "out"
    write_audit(api.audit(corpus_index, [str(corpus[3])], sample=SampleConfig(records=0.5)), out)
    report = load_report(out)
    assert report["format"] == "provaudit-report"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([CHECKSUMS, "bundle.json", "matches.parquet", "report.html", "report.json", "report.md",
                            "sample.parquet"])
    listed = (out / CHECKSUMS).read_text()
    for name in names:
        size = (out / name).stat().st_size
        for at in (0, size // 2, size - 1):
            bad = tmp_path / f"{name}-{at}"
            shutil.copytree(out, bad)
            _flip(bad / name, at)
            with pytest.raises(OutputFormatError):
                load_report(bad)
        if name != CHECKSUMS:
            assert f"  {name}\n" in listed
            gone = tmp_path / f"gone-{name}"
            shutil.copytree(out, gone)
            (gone / name).unlink()
            with pytest.raises(OutputFormatError, match="missing"):
                load_report(gone)
    (out / "extra.txt").write_text("added later")
    with pytest.raises(OutputFormatError, match="not listed in SHA256SUMS"):
        load_report(out)


# --- nothing read from an index, a report or an input is executed -------------------------------------
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "yaml", "jsonpickle"}


def test_no_code_executing_deserializer_is_used() -> None:
    """No pickle-family import, eval/exec, np.load or pandas read_pickle anywhere in the package.

    (Batches travel to forked workers through multiprocessing, which pickles them in memory
    between processes of the same run; nothing pickled is ever read from disk.)
    """
    for path in sorted((ROOT / "provaudit").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & FORBIDDEN_MODULES, path
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in FORBIDDEN_MODULES, path
            elif isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                assert name not in ("eval", "exec", "read_pickle", "load_pickle"), (path, node.lineno)
                if name == "load" and isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                    assert f.value.id not in ("np", "numpy", "torch"), (path, node.lineno)
                for kw in node.keywords:
                    assert kw.arg not in ("allow_pickle", "trust_remote_code") or (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False), (path, node.lineno)


class _Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {_Boom.marker}",))

    marker = ""


def test_a_parquet_file_carrying_a_pickled_extension_type_is_not_unpickled(tmp_path: Path) -> None:
    """Arrow's legacy ``arrow.py_extension_type`` metadata is a pickle; reading must not run it."""
    _Boom.marker = str(tmp_path / "pwned")
    field = pa.field("meta", pa.binary(), metadata={b"ARROW:extension:name": b"arrow.py_extension_type",
                                                    b"ARROW:extension:metadata": pickle.dumps(_Boom())})
    table = pa.Table.from_arrays([pa.array(["the quick brown fox jumps"]), pa.array([b"x"])],
                                 schema=pa.schema([pa.field("text", pa.string()), field]))
    pq.write_table(table, tmp_path / "hostile.parquet")
    from provaudit.read.sources import expand_sources, read_source

    (src,) = expand_sources([str(tmp_path / "hostile.parquet")])
    assert [r.text for r in read_source(src)] == ["the quick brown fox jumps"]
    assert [r.text for r in read_source(src, extract=lambda o: (str(o["text"]), None))] == ["the quick brown fox jumps"]
    assert not Path(_Boom.marker).exists()


# --- bounded resources ----------------------------------------------------------------------------
_PEAK = """
import resource, sys
from click.testing import CliRunner
from provaudit.cli import cli
r = CliRunner().invoke(cli, sys.argv[1:])
assert r.exit_code == 0, r.output
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _peak_rss(*args: object) -> int:
    r = subprocess.run([sys.executable, "-c", _PEAK, *[str(a) for a in args]], env=_env(), capture_output=True,
                       text=True, check=True)
    return int(r.stdout.split()[-1])


def test_a_single_huge_record_is_capped_counted_and_memory_stays_bounded(corpus_index, tmp_path) -> None:
    words = " ".join(f"w{i % 5000}" for i in range(1_000_000))  # 5.9 MB
    size = 0
    with open(tmp_path / "huge.jsonl", "w") as f:
        f.write(json.dumps({"id": "small", "text": "a few words only"}) + "\n")
        line = json.dumps({"id": "huge", "text": " ".join([words] * 10)}) + "\n"  # one 59 MB line
        size = len(line)
        f.write(line)
    (tmp_path / "small.jsonl").write_text(json.dumps({"id": "small", "text": "a few words only"}) + "\n")
    base = _peak_rss("audit", corpus_index, tmp_path / "small.jsonl", "-o", tmp_path / "o1", "-q", "-w", "1")
    peak = _peak_rss("audit", corpus_index, tmp_path / "huge.jsonl", "-o", tmp_path / "o2", "-q", "-w", "1",
                     "--max-record-chars", "6000000")
    report = load_report(tmp_path / "o2")
    assert report["input_problems"]["records_altered"] == {"truncated to max-record-chars": 1}
    assert report["counts"]["target_records"] == 2
    assert peak - base < 3 * size, (peak - base) / size


def test_readers_stream_a_file_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Peak memory while reading stays at one record, one Parquet batch or one JSON window, not the file."""
    import tracemalloc

    from provaudit.read.sources import expand_sources, read_source
    from provaudit.read import lines
    from provaudit.read.json_array import _JsonArray

    monkeypatch.setattr(_JsonArray, "CHUNK", 1 << 16)
    monkeypatch.setattr(lines, "BLOCK_BYTES", 1 << 16)
    rows = [{"id": f"r{i}", "text": f"record number {i} " + "word " * 20} for i in range(20_000)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a.json").write_text(json.dumps(rows, indent=1))
    (tmp_path / "a.csv").write_text("id,text\n" + "".join(f"{r['id']},{r['text']}\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet", row_group_size=2000)
    for name in ("a.jsonl", "a.json", "a.csv", "a.parquet"):
        (src,) = expand_sources([str(tmp_path / name)])
        size = (tmp_path / name).stat().st_size
        tracemalloc.start()
        n = sum(1 for _ in read_source(src))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert n == len(rows)
        assert peak < 1_500_000, (name, peak, size)  # the text files are 2.5 to 3 MB
        assert name == "a.parquet" or size > 2_500_000


# --- determinism ------------------------------------------------------------------------------------
def test_outputs_are_identical_across_runs_workers_and_hash_seeds(corpus, tmp_path) -> None:
    ref, tgt = corpus[2], corpus[3]
    outputs = []
    for seed, workers in (("0", "1"), ("4242", "2")):
        d = tmp_path / f"h{seed}"
        d.mkdir()
        env = _env(PYTHONHASHSEED=seed)
        subprocess.run(_cmd("index", ref, "-o", "idx", "-q", "-w", workers), env=env, cwd=d, check=True)
        subprocess.run(_cmd("audit", "idx", tgt, "-o", "out", "-q", "-w", workers, "--sample", "0.5",
                            "--control", ref), env=env, cwd=d, check=True)
        outputs.append((_files(d / "idx"), _files(d / "out")))
    assert outputs[0] == outputs[1]
    assert CHECKSUMS in outputs[0][1] and "sample.parquet" in outputs[0][1]


# --- a worker that dies -------------------------------------------------------------------------------
_KILL_A_WORKER = r"""
import os, signal, sys
from click.testing import CliRunner
from provaudit.run import workers
from provaudit.cli import cli

parent = os.getpid()
def dies_in_a_worker(real):
    def f(*args, **kwargs):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does
        return real(*args, **kwargs)
    return f
real_enter = workers.WorkerMap.__enter__
def enter(self):
    self.task = dies_in_a_worker(self.task)  # every worker task: index builds and audits
    return real_enter(self)
workers.WorkerMap.__enter__ = enter
res = CliRunner().invoke(cli, sys.argv[1:])
print(res.exit_code)
print(res.output)
"""


@pytest.mark.parametrize("command", ["index", "audit"])
def test_a_worker_killed_fails_the_run_cleanly_instead_of_hanging(corpus, corpus_index, tmp_path, command) -> None:
    out = tmp_path / "out"
    args = (["index", str(corpus[2]), "-o", str(out)] if command == "index"
            else ["audit", str(corpus_index), str(corpus[3]), "-o", str(out)])
    proc = subprocess.run([sys.executable, "-c", _KILL_A_WORKER, *args, "--workers", "2"], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent, env=_env())
    code, _, output = proc.stdout.partition("\n")
    assert code == "1", proc.stdout + proc.stderr
    assert output.startswith("Error: a worker process ended abruptly (killed, or out of memory"), output
    assert "Traceback" not in output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
