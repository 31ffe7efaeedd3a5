"""--engine ray (issue 12): the same index and the same audit as the local engine, on a local Ray
instance started for the run and on a head started here (``ray start --head``, 2 CPUs), with a
worker killed mid-run and an interrupted run resumed. Skipped without Ray (``pip install
'.[test-cluster]'``, which .ci/run installs). Every Ray process started here is ended by its pid."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from provaudit import api, api_segments
from provaudit.cli import cli
from provaudit.config import IndexConfig
from provaudit.errors import ConfigError
from provaudit.index import parts
from provaudit.read import lines
from provaudit.run import engines

from conftest import FIXTURES

ROWS = 240  # rows of each fixture shard in the slice: JSON lines, gzip, Parquet (row groups of 40)
HERE = Path(__file__).resolve().parent


def test_engine_ray_without_ray_is_a_usage_error_with_the_install_hint(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(engines.importlib.util, "find_spec", lambda name: None)
    r = CliRunner().invoke(cli, ["index", str(FIXTURES / "reference"), "-o", str(tmp_path / "i"), "--engine", "ray"])
    assert r.exit_code == 2, r.output
    assert "pip install 'provaudit[ray]'" in r.output
    assert not (tmp_path / "i").exists()
    r = CliRunner().invoke(cli, ["index", str(FIXTURES / "reference"), "-o", str(tmp_path / "i"),
                                 "--ray-address", "auto"])
    assert r.exit_code == 2 and "--ray-address needs --engine ray" in r.output
    r = CliRunner().invoke(cli, ["index", str(FIXTURES / "reference"), "-o", str(tmp_path / "i"), "--keep-segments"])
    assert r.exit_code == 2 and "--keep-segments needs --engine ray" in r.output and not (tmp_path / "i").exists()


def test_keep_segments_refuses_more_parts_than_an_index_may_have_segments(monkeypatch) -> None:
    monkeypatch.setattr(parts, "MAX_SEGMENTS", 2)
    kept = parts.PartList()
    for i in range(3):
        kept.add(parts.PartSlice(f"/nonexistent/part-{i}", 0, (5,), 50))
    with pytest.raises(ConfigError, match="3 parts, more than the 2 segments"):
        kept.segments()  # before any part is read


ray = pytest.importorskip("ray")


# --- processes: everything a Ray instance started with RAY_TMPDIR=root runs, found and ended by pid ----------
def _procs() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every live process (zombies, ended but not yet reaped, left out)."""
    out = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                state, ppid = (p / "stat").read_text().rsplit(")", 1)[1].split()[:2]
                if state != "Z":
                    out[int(p.name)] = (int(ppid), (p / "cmdline").read_bytes())
            except (OSError, ValueError, IndexError):
                pass
    return out


def ray_pids(root: str) -> list[int]:
    """Processes whose command line names ``root`` (GCS, raylet, ...) and their descendants (workers)."""
    procs = _procs()
    mine = {pid for pid, (_, cmd) in procs.items() if root.encode() in cmd and pid != os.getpid()}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in procs.items() if ppid in mine} - mine
        mine |= more
        grew = bool(more)
    return sorted(mine)


def end_ray(root: str) -> None:
    """SIGKILL every process of the Ray instance under ``root``; returns once none is left (or after 30 s)."""
    deadline = time.monotonic() + 30
    while (pids := ray_pids(root)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def _env(root: str) -> dict[str, str]:
    return {**os.environ, "RAY_TMPDIR": root, "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled",  # a short-lived test head on the loopback interface
            # the provaudit under test, not the source tree in the working directory (as tests/test_reliability.py)
            "PYTHONSAFEPATH": "1", "PYTHONPATH": str(Path(api.__file__).resolve().parent.parent)}


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[str, str]]:
    """A Ray head with 2 CPUs on the loopback interface: (address, its RAY_TMPDIR)."""
    root = tempfile.mkdtemp(prefix="pa-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [shutil.which("ray") or "ray", "start", "--head", "--num-cpus", "2", "--port", str(port),
           "--node-ip-address", "127.0.0.1", "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", root]
    try:
        r = subprocess.run(cmd, env=_env(root), capture_output=True, text=True, timeout=180, cwd=root)
        assert r.returncode == 0, r.stdout + r.stderr
        yield f"127.0.0.1:{port}", root
    finally:
        end_ray(root)
        shutil.rmtree(root, ignore_errors=True)
        assert ray_pids(root) == []


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> Path:
    """A slice of the fixture shards in each block kind: line spans, gzip blocks, Parquet row groups."""
    d = tmp_path_factory.mktemp("slice")
    with open(FIXTURES / "shards" / "train-00.jsonl", "rb") as f:
        (d / "a.jsonl").write_bytes(b"".join(next(f) for _ in range(ROWS)))
    with gzip.open(FIXTURES / "shards" / "train-01.jsonl.gz", "rb") as f:
        (d / "b.jsonl.gz").write_bytes(gzip.compress(b"".join(next(f) for _ in range(ROWS)), mtime=0))
    pq.write_table(pq.read_table(FIXTURES / "shards" / "train-02.parquet").slice(0, ROWS), d / "c.parquet",
                   row_group_size=40)
    return d


@pytest.fixture(scope="module")
def local_index(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "index"
    api.build_index([str(FIXTURES / "reference")], out, workers=1)
    return out


def _files(d: Path) -> dict[str, bytes]:
    """Every file under ``d`` (an index's segments included), by its path relative to ``d``."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _audit_facts(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """matches.parquet rows, and report.json's counts and estimates."""
    report = json.loads((out / "report.json").read_text())
    return pq.read_table(out / "matches.parquet").to_pylist(), report["counts"], report["estimates"]


def _local_audit(index: Path, targets: Path, out: Path, block_bytes: int | None = None) -> Path:
    saved = lines.BLOCK_BYTES
    lines.BLOCK_BYTES = block_bytes or saved
    try:
        api.write_audit(api.audit(index, [str(targets)], workers=1), out)
    finally:
        lines.BLOCK_BYTES = saved
    return out


def _cli(*args: Any, root: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "provaudit", *map(str, args)], env=_env(root), capture_output=True,
                       text=True, timeout=600, cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_cli_index_on_a_local_ray_instance_and_audit_on_a_cluster_equal_the_local_engine(
        ray_head, targets, local_index, tmp_path) -> None:
    # index: no address, so a local Ray instance (2 CPUs) is started for the run and stopped after it
    root = tempfile.mkdtemp(prefix="pa-ray-", dir="/tmp")
    try:
        _cli("index", FIXTURES / "reference", "-o", tmp_path / "index", "--engine", "ray", "-w", "2", root=root)
        deadline = time.monotonic() + 15  # nothing of the run's Ray instance outlives it (given time to exit)
        while ray_pids(root) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray_pids(root) == []
    finally:
        end_ray(root)
        shutil.rmtree(root, ignore_errors=True)
    assert _files(tmp_path / "index") == _files(local_index)  # the same index, byte for byte

    # audit (and check) on the head started by the fixture, by its address
    address, head_root = ray_head
    _cli("audit", tmp_path / "index", targets, "-o", tmp_path / "ray", "--engine", "ray", "--ray-address", address,
         "-q", root=head_root)
    expected = _audit_facts(_local_audit(local_index, targets, tmp_path / "local"))
    got = _audit_facts(tmp_path / "ray")
    assert got == expected
    assert expected[1]["pairs"] > 20 and expected[1]["target_records"] == 3 * ROWS
    r = subprocess.run([sys.executable, "-m", "provaudit", "check", str(local_index), str(targets), "--engine", "ray",
                        "--ray-address", address, "--max-pairs", str(expected[1]["pairs"] - 1), "-q"],
                       env=_env(head_root), capture_output=True, text=True, timeout=600, cwd=tempfile.gettempdir())
    assert r.returncode == 3 and f"{expected[1]['pairs']:,} evidence pairs" in r.stdout + r.stderr, r.stdout


def test_killed_worker_and_interrupted_run_on_a_cluster_give_the_local_result(
        ray_head, targets, local_index, tmp_path) -> None:
    address, root = ray_head
    r = subprocess.run([sys.executable, str(HERE / "ray_scenarios.py"), address, str(FIXTURES / "reference"),
                        str(targets), str(tmp_path)], env=_env(root), capture_output=True, text=True, timeout=900,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stdout + r.stderr
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert _files(tmp_path / "index") == _files(local_index)
    expected = _audit_facts(_local_audit(local_index, targets, tmp_path / "local", 32 << 10))
    # a worker was killed after the first task came back, with tasks still to run: Ray restarted it and reran them
    assert len(facts["actors_before"]) == 2 and facts["killed"] in facts["actors_before"]
    assert facts["tasks_after_kill"] >= 10
    assert _audit_facts(tmp_path / "killed") == expected
    # interrupted after its first source was checkpointed, then resumed: the same output
    assert facts["interrupted"] and facts["resumed_sources"] == 1
    assert _audit_facts(tmp_path / "resumed") == expected
    assert (tmp_path / "resumed" / "matches.parquet").read_bytes() == (tmp_path / "killed" / "matches.parquet").read_bytes()


@pytest.fixture(scope="module")
def reference_kinds(tmp_path_factory) -> list[str]:
    """The fixture reference cut into a JSON lines file (line spans), small files (read whole, prepared
    as one batch) and a Parquet file (row groups)."""
    d = tmp_path_factory.mktemp("reference")
    rows = (FIXTURES / "reference" / "posts.jsonl").read_bytes().splitlines(keepends=True)
    (d / "a.jsonl").write_bytes(b"".join(rows[:1800]))
    (d / "b").mkdir()
    for i in range(6):
        (d / "b" / f"{i}.jsonl").write_bytes(b"".join(rows[1800 + 25 * i : 1825 + 25 * i]))
    pq.write_table(pa_json.read_json(io.BytesIO(b"".join(rows[1950:]))), d / "c.parquet", row_group_size=150)
    return [str(d / "a.jsonl"), str(d / "b"), str(d / "c.parquet")]


def test_ray_index_tasks_write_parts_that_merge_into_the_local_index_byte_for_byte(ray_head, reference_kinds,
                                                                                    targets, tmp_path) -> None:
    address, root = ray_head
    r = subprocess.run([sys.executable, str(HERE / "ray_parts.py"), address, str(tmp_path), *reference_kinds],
                       env=_env(root), capture_output=True, text=True, timeout=900, cwd=HERE)
    assert r.returncode == 0, r.stdout + r.stderr
    facts = json.loads((tmp_path / "facts.json").read_text())
    local = tmp_path / "local"
    api.build_index(reference_kinds, local / "index", workers=1)
    api.build_index(reference_kinds, local / "keep-text", IndexConfig(keep_text=True), workers=1)
    # every item signed by a task (the driver could not), one actor killed mid-build: the local index, byte for byte
    assert _files(tmp_path / "index") == _files(local / "index")
    assert _files(tmp_path / "keep-text") == _files(local / "keep-text")
    api.build_index(reference_kinds[:1], local / "added", workers=1)
    api_segments.add_to_index(local / "added", reference_kinds[1:], workers=1)
    assert _files(tmp_path / "added") == _files(local / "added")  # add --engine ray: the same two segments
    assert len(json.loads((local / "added" / "manifest.json").read_text())["segments"]) == 2
    # the 2 actors of the run (a loaded head may show a process more: Ray's spare workers take the title)
    assert len(facts["actors_before"]) >= 2 and facts["killed"] in facts["actors_before"]
    assert len(facts["progress"]) >= 5 and facts["progress"][-1] == 3000
    # bad input in the last source: an error naming it, no index, and no part left behind (nor after the others)
    assert "bad.jsonl" in facts["error"] and "line 2" in facts["error"]
    assert facts["left"] == ["added", "bad.jsonl", "dup.jsonl", "index", "keep-text", "segments"]
    # --keep-segments: the parts as they are, several segments, and audits give the local index's answers
    kept = json.loads((tmp_path / "segments" / "manifest.json").read_text())
    assert len(kept["segments"]) >= 3 and kept["counts"]["items"] == 3000
    assert kept["inputs"] == json.loads((local / "index" / "manifest.json").read_text())["inputs"]
    expected = _audit_facts(_local_audit(local / "index", targets, tmp_path / "local-audit"))
    assert _audit_facts(_local_audit(tmp_path / "segments", targets, tmp_path / "kept-audit")) == expected
    assert expected[1]["pairs"] > 20
    assert "dup.jsonl row 1: duplicate reference id" in facts["dup_error"] and "a.jsonl row 1" in facts["dup_error"]


# --- shared storage (S3 protocol, moto on 127.0.0.1) and the driver's progress ----------------------------------
from test_storage import BUCKET, audit_facts, s3, shards, upload  # noqa: E402,F401  (fixtures: the moto server)


def test_inputs_and_index_in_s3_on_ray_equal_the_local_engine_with_task_progress(s3, shards, local_index,  # noqa: F811
                                                                                 tmp_path) -> None:
    local, url = shards
    index_url = upload(s3, local_index, "ray/ref.idx").rstrip("/")
    reference_url = upload(s3, FIXTURES / "reference", "ray/reference")
    root = tempfile.mkdtemp(prefix="pa-ray-", dir="/tmp")
    try:
        env = {**_env(root), "PROVAUDIT_CACHE_DIR": str(tmp_path / "cache")}
        r = subprocess.run([sys.executable, str(HERE / "ray_storage.py"), reference_url, index_url, url, str(tmp_path)],
                           env=env, capture_output=True, text=True, timeout=600, cwd=tempfile.gettempdir())
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        end_ray(root)
        shutil.rmtree(root, ignore_errors=True)
    api.build_index([reference_url], tmp_path / "local-index", workers=1)
    assert _files(tmp_path / "index") == _files(tmp_path / "local-index")  # from s3://, on Ray and here: same bytes
    expected = audit_facts(_local_audit(local_index, str(local), tmp_path / "local"), str(local) + "/")
    assert audit_facts(tmp_path / "audit", url) == expected
    assert expected[1]["pairs"] > 20
    calls = json.loads((tmp_path / "progress.json").read_text())
    tasks = [c[3] for c in calls]
    assert len(tasks) > 10 and all(t is not None for t in tasks)
    done = [t[0] for t in tasks]
    assert done == sorted(done) and done[0] >= 1 and all(t[0] <= t[1] for t in tasks)
    assert tasks[-1][0] == tasks[-1][1] and tasks[-1][2]  # ends with every task done, the total final
    assert [c[0] for c in calls] == sorted(c[0] for c in calls) and calls[-1][0] == 3 * ROWS


# --- key-range partitioned lookups (--partitions, issue #11 item 4) ---------------------------------------------
@pytest.fixture(scope="module")
def two_segment_index(tmp_path_factory) -> Path:
    """The fixture reference as an index of two segments (two thirds built, the rest added)."""
    d = tmp_path_factory.mktemp("two-segments")
    rows = (FIXTURES / "reference" / "posts.jsonl").read_bytes().splitlines(keepends=True)
    (d / "a.jsonl").write_bytes(b"".join(rows[:2000]))
    (d / "b.jsonl").write_bytes(b"".join(rows[2000:]))
    api.build_index([str(d / "a.jsonl")], d / "index", workers=1)
    api_segments.add_to_index(d / "index", [str(d / "b.jsonl")], workers=1)
    return d / "index"


def _target_shingles(targets: Path) -> int:
    """M: the slice's target shingles, repeats included (what one lookup per shingle per segment looks up)."""
    from provaudit.text.shingle import shingle_batch

    texts = [json.loads(x)["text"] for x in (targets / "a.jsonl").read_text().splitlines()]
    texts += [json.loads(x)["text"] for x in gzip.decompress((targets / "b.jsonl.gz").read_bytes()).splitlines()]
    texts += pq.read_table(targets / "c.parquet").column("text").to_pylist()
    return len(shingle_batch(texts, IndexConfig()).hashes)


def test_partitioned_lookups_on_a_cluster_give_the_local_output_byte_for_byte(
        ray_head, targets, local_index, two_segment_index, tmp_path) -> None:
    address, root = ray_head
    r = subprocess.run([sys.executable, str(HERE / "ray_partitions.py"), address, str(local_index),
                        str(two_segment_index), str(targets), str(tmp_path)], env=_env(root), capture_output=True,
                       text=True, timeout=900, cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stdout + r.stderr
    facts = json.loads((tmp_path / "facts.json").read_text())
    m = _target_shingles(targets)
    for name, index, segments in (("one", local_index, 1), ("two", two_segment_index, 2)):
        local = _files(_local_audit(index, targets, tmp_path / f"local-{name}"))
        assert json.loads(local["report.json"])["counts"]["pairs"] > 20
        for p in (0, 1, 2, 3):  # without partitions and with P = 1, 2, 3: the local engine's files, byte for byte
            assert _files(tmp_path / f"{name}-{p}") == local, (name, p)
            assert facts["left"][f"{name}-{p}"] == []  # no range actor outlives its run
        for p in (1, 2, 3):
            stats = facts["runs"][f"{name}-{p}"][0]
            assert sorted(s["partition"] for s in stats) == list(range(p))
            # each target shingle looked up once per segment, in one range: M * S in all, not P * M * S
            assert sum(s["lookups"] for s in stats) == m * segments
            assert all(s["lookups"] > 0 for s in stats)
            for s in stats:  # the partitions' row ranges tile each segment's anchor table
                assert len(s["rows"]) == segments
            for j in range(segments):
                rows = sorted(tuple(s["rows"][j]) for s in stats)
                assert rows[0][0] == 0 and rows[-1][1] == stats[0]["table_rows"][j]
                assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))
        assert facts["runs"][f"{name}-0"] == []  # no range actors without --partitions
    # a range actor killed mid-run: Ray restarted it and reran its lookups; the same output
    assert facts["killed"] in facts["ranges_before"] and len(facts["ranges_before"]) >= 2
    assert facts["tasks_after_kill"] >= 5
    assert _files(tmp_path / "killed") == _files(tmp_path / "local-two") and facts["left"]["killed"] == []
    # with no restart left, the run fails (WorkerDied: exit 1 on the CLI, nothing written), no actor left behind
    assert "a Ray worker was lost" in facts["died"] and facts["left"]["died"] == []
    # the CLI: --partitions with --engine ray writes the files of a local run (the recorded command leaves it out)
    _cli("audit", local_index, targets, "-o", tmp_path / "cli-ray", "--engine", "ray", "--ray-address", address,
         "--partitions", "3", "-q", root=root)
    _cli("audit", local_index, targets, "-o", tmp_path / "cli-local", "-w", "1", "-q", root=root)
    assert _files(tmp_path / "cli-ray") == _files(tmp_path / "cli-local")
    # a model-output audit takes the same path (the engine inside its SampleCheck)
    outputs = [FIXTURES / "outputs" / f for f in ("plain.jsonl", "prompt_completion.jsonl", "chat.jsonl")]
    _cli("audit", local_index, *outputs, "--kind", "outputs", "-o", tmp_path / "out-ray", "--engine", "ray",
         "--ray-address", address, "--partitions", "2", "-q", root=root)
    _cli("audit", local_index, *outputs, "--kind", "outputs", "-o", tmp_path / "out-local", "-w", "1", "-q", root=root)
    assert _files(tmp_path / "out-ray") == _files(tmp_path / "out-local")
    assert json.loads((tmp_path / "out-local" / "report.json").read_text())["counts"]["pairs"] > 20
    # check --partitions: the same verdict as without (exit 3 one pair under the count)
    pairs = json.loads((tmp_path / "cli-local" / "report.json").read_text())["counts"]["pairs"]
    r = subprocess.run([sys.executable, "-m", "provaudit", "check", str(local_index), str(targets), "--engine", "ray",
                        "--ray-address", address, "--partitions", "2", "--max-pairs", str(pairs - 1), "-q"],
                       env=_env(root), capture_output=True, text=True, timeout=600, cwd=tempfile.gettempdir())
    assert r.returncode == 3 and f"{pairs:,} evidence pairs" in r.stdout + r.stderr, r.stdout + r.stderr
