"""Shared storage (issue 12 item 4): inputs, indexes and outputs named by URL, read and written through
pyarrow.fs, against a real S3-protocol server (moto in server mode) on the loopback interface, started
here and stopped after. An audit of shards read from it, with an index stored in it, gives the matches
and estimates of the same audit on local paths. Skipped without moto (``pip install '.[test-cluster]'``)."""

from __future__ import annotations

import gzip
import json
import shutil
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from provaudit import api
from provaudit.cli import cli
from provaudit.errors import InputError, RemoteError
from provaudit.read import lines
from provaudit.read.records import Source
from provaudit.read.sources import expand_sources

from conftest import FIXTURES

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

ROWS = 240
BUCKET = "provaudit-test"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
          "PROVAUDIT_S3_TIMEOUT": "5"}


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """A moto S3 server on 127.0.0.1 (its endpoint in AWS_ENDPOINT_URL) and a boto3 client with a bucket."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server.start()
    host, port = server.get_host_and_port()
    env = {**S3_ENV, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def make_slice(d: Path) -> Path:
    """A slice of the fixture shards in each block kind: line spans, gzip blocks, Parquet row groups."""
    d.mkdir(parents=True, exist_ok=True)
    with open(FIXTURES / "shards" / "train-00.jsonl", "rb") as f:
        (d / "a.jsonl").write_bytes(b"".join(next(f) for _ in range(ROWS)))
    with gzip.open(FIXTURES / "shards" / "train-01.jsonl.gz", "rb") as f:
        (d / "b.jsonl.gz").write_bytes(gzip.compress(b"".join(next(f) for _ in range(ROWS)), mtime=0))
    pq.write_table(pq.read_table(FIXTURES / "shards" / "train-02.parquet").slice(0, ROWS), d / "c.parquet",
                   row_group_size=40)
    return d


def upload(client: Any, local: Path, prefix: str) -> str:
    """Every file under ``local`` to ``s3://BUCKET/prefix/``; returns that URL."""
    for p in sorted(local.rglob("*")):
        if p.is_file():
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/{p.relative_to(local).as_posix()}", Body=p.read_bytes())
    return f"s3://{BUCKET}/{prefix}/"


@pytest.fixture(scope="module")
def shards(s3, tmp_path_factory) -> tuple[Path, str]:
    """The slice on local disk, and the same files (plus a hidden and an unsupported one) in the bucket."""
    local = make_slice(tmp_path_factory.mktemp("slice") / "shards")
    url = upload(s3, local, "shards")
    s3.put_object(Bucket=BUCKET, Key="shards/.hidden.jsonl", Body=b'{"text": "never read"}\n')
    s3.put_object(Bucket=BUCKET, Key="shards/notes.pdf", Body=b"%PDF")
    return local, url


@pytest.fixture(scope="module")
def local_index(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "index"
    api.build_index([str(FIXTURES / "reference")], out, workers=1)
    return out


def audit_facts(out: Path, strip: str = "") -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """matches.parquet rows, report.json's counts and estimates: with the inputs' location ``strip`` (a
    local directory or a URL prefix) removed from every source name."""
    report = json.loads((out / "report.json").read_text().replace(json.dumps(strip)[1:-1], "") if strip else
                        (out / "report.json").read_text())
    rows = pq.read_table(out / "matches.parquet").to_pylist()
    for r in rows:
        for k, v in r.items():
            if isinstance(v, str) and strip and v.startswith(strip):
                r[k] = v[len(strip):]
    return rows, report["counts"], report["estimates"]


def local_audit(index: Path | str, targets: str, out: Path, workers: int = 1) -> Path:
    saved = lines.BLOCK_BYTES
    lines.BLOCK_BYTES = 16 << 10  # many spans and gzip blocks: workers read ranges of each object
    try:
        api.write_audit(api.audit(index, [targets], workers=workers), out)  # type: ignore[arg-type]
    finally:
        lines.BLOCK_BYTES = saved
    return out


# --- inputs -----------------------------------------------------------------------------------------------------
def test_a_prefix_is_listed_like_a_directory(shards) -> None:
    _, url = shards
    ignored: list[str] = []
    got = expand_sources([url], ignored)
    assert got == [Source(url + "a.jsonl", "jsonl"), Source(url + "b.jsonl.gz", "jsonl"),
                   Source(url + "c.parquet", "parquet")]
    assert ignored == [url + "notes.pdf"]  # unsupported: listed; hidden: left out
    assert expand_sources([url + "c.parquet"]) == [Source(url + "c.parquet", "parquet")]
    assert expand_sources([url + "notes.pdf"], fmt="txt") == [Source(url + "notes.pdf", "txt")]


def test_audit_of_shards_read_from_s3_equals_the_local_audit(shards, local_index, tmp_path) -> None:
    local, url = shards
    expected = audit_facts(local_audit(local_index, str(local), tmp_path / "local"), str(local) + "/")
    for workers in (1, 2):  # in this process, and in forked workers that read their own ranges
        got = audit_facts(local_audit(local_index, url, tmp_path / f"s3-{workers}", workers), url)
        assert got == expected
    assert expected[1]["pairs"] > 20 and expected[1]["target_records"] == 3 * ROWS
    # the inputs' sha256 cover the bytes read, as for local files
    s3_inputs = json.loads((tmp_path / "s3-2" / "report.json").read_text())["inputs"]
    local_inputs = json.loads((tmp_path / "local" / "report.json").read_text())["inputs"]
    assert [i["sha256"] for i in s3_inputs] == [i["sha256"] for i in local_inputs]
    assert [i["source"] for i in s3_inputs] == [url + n for n in ("a.jsonl", "b.jsonl.gz", "c.parquet")]


def test_every_line_and_table_format_reads_the_same_records_from_s3(s3, tmp_path) -> None:
    import pyarrow as pa

    from provaudit.read.sources import count_rows, read_source

    rows = [{"id": f"r{i}", "text": f"hello world number {i}, some words"} for i in range(50)]
    d = tmp_path / "formats"
    d.mkdir()
    (d / "a.json").write_text(json.dumps(rows))
    (d / "b.csv").write_text("id,text\n" + "".join(f'{r["id"]},"{r["text"]}"\n' for r in rows))
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as z:
        z.write("".join(json.dumps(r) + "\n" for r in rows).encode())
    (d / "c.jsonl.zst").write_bytes(sink.getvalue().to_pybytes())
    (d / "e.txt").write_text("".join(r["text"] + "\n" for r in rows))
    url = upload(s3, d, "formats")
    local, remote = expand_sources([str(d)]), expand_sources([url])
    assert [s.kind for s in remote] == [s.kind for s in local] == ["json", "csv", "jsonl", "txt"]
    for a, b in zip(local, remote):
        assert [(r.id.replace(str(d) + "/", ""), r.text, r.row) for r in read_source(a)] == [
            (r.id.replace(url, ""), r.text, r.row) for r in read_source(b)]
        assert count_rows(a) == count_rows(b) == 50 and a.sha256() == b.sha256()


def test_missing_objects_buckets_and_unreachable_endpoints_are_errors_naming_the_url(s3, shards, monkeypatch) -> None:
    _, url = shards
    with pytest.raises(InputError, match="s3://provaudit-test/nothing-here/: no such object or prefix"):
        expand_sources([f"s3://{BUCKET}/nothing-here/"])
    with pytest.raises(InputError, match=r"s3://no-such-bucket-x/a.jsonl: no such bucket \(s3://no-such-bucket-x\)"):
        expand_sources(["s3://no-such-bucket-x/a.jsonl"])
    s3.put_object(Bucket=BUCKET, Key="saved/train/state.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="saved/train/data-00000-of-00001.arrow", Body=b"")
    with pytest.raises(InputError, match="state.json: part of a saved dataset .* read from local paths only"):
        expand_sources([f"s3://{BUCKET}/saved/"])  # never its metadata read as JSON records
    with pytest.raises(InputError, match="patterns are not expanded in URLs"):
        expand_sources([url + "*.jsonl"])
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("PROVAUDIT_S3_TIMEOUT", "2")
    with pytest.raises(RemoteError, match=f"{url}: cannot reach it: cannot reach the storage endpoint"):
        expand_sources([url])


def test_access_denied_is_an_error_naming_the_url(monkeypatch, tmp_path, local_index) -> None:
    """A second moto server, in its own process, that enforces credentials: unknown keys are denied."""
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1",
                               "-p", str(port)],
                              env={**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                                   "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        for k, v in {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "nobody-knows-me"}.items():
            monkeypatch.setenv(k, v)
        url = f"s3://{BUCKET}/shards/"
        r = CliRunner().invoke(cli, ["audit", str(local_index), url, "-o", str(tmp_path / "out"), "-q"])
        assert r.exit_code == 1, r.output
        assert r.output.startswith(f"Error: {url}: cannot reach it: access denied: check the credentials "
                                   "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the policy (")
        assert "Traceback" not in r.output and not (tmp_path / "out").exists()
    finally:
        server.kill()
        server.wait()


# --- indexes ----------------------------------------------------------------------------------------------------
@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PROVAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_audit_with_an_index_stored_in_s3_equals_the_local_audit(s3, shards, local_index, cache, tmp_path) -> None:
    local, url = shards
    index_url = upload(s3, local_index, "indexes/ref.idx").rstrip("/")
    r = CliRunner().invoke(cli, ["audit", index_url, url, "-o", str(tmp_path / "out"), "-w", "2", "-q"])
    assert r.exit_code == 0, r.output
    expected = audit_facts(local_audit(local_index, str(local), tmp_path / "local"), str(local) + "/")
    assert audit_facts(tmp_path / "out", url) == expected
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["index"]["path"] == index_url  # the index as the user named it, not the cache
    (entry,) = cache.iterdir()  # one verified copy, named by the manifest checksum
    manifest = json.loads((local_index / "manifest.json").read_text())
    assert "sha256:" + entry.name == manifest["manifest_checksum"]
    assert sorted(p.name for p in entry.iterdir()) == sorted(p.name for p in local_index.iterdir())
    # a second run uses the cached copy: the objects are not read again (the bucket no longer has them)
    for p in local_index.rglob("*"):
        if p.is_file() and p.name != "manifest.json":
            s3.delete_object(Bucket=BUCKET, Key=f"indexes/ref.idx/{p.relative_to(local_index).as_posix()}")
    r = CliRunner().invoke(cli, ["audit", index_url, url, "-o", str(tmp_path / "again"), "-q"])
    assert r.exit_code == 0, r.output
    assert audit_facts(tmp_path / "again", url) == expected


def test_a_segmented_index_with_removed_items_stored_in_s3_equals_the_local_audit(s3, shards, cache,
                                                                                  tmp_path) -> None:
    """Format 7 (issue #11 item 3): the segments' files sit under seg-NNNNNN-XXXXXXXX/ and an operated-on
    index holds a .lock: downloaded and audited as the local copy; names outside a segment are refused."""
    from provaudit.api_segments import add_to_index, remove_from_index

    _, url = shards
    posts = (FIXTURES / "reference" / "posts.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_text("".join(posts[:2000]))
    (tmp_path / "b.jsonl").write_text("".join(posts[2000:]))
    local = tmp_path / "grown.idx"
    api.build_index([str(tmp_path / "a.jsonl")], local)
    add_to_index(local, [str(tmp_path / "b.jsonl")])
    (tmp_path / "ids").write_text("".join(json.loads(p)["id"] + "\n" for p in posts[1990:2010]))
    remove_from_index(local, tmp_path / "ids")
    assert (local / ".lock").exists() and len([p for p in local.iterdir() if p.is_dir()]) == 2
    index_url = upload(s3, local, "indexes/grown.idx").rstrip("/")
    r = CliRunner().invoke(cli, ["audit", index_url, url, "-o", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 0, r.output
    assert audit_facts(tmp_path / "out", url) == audit_facts(local_audit(local, url, tmp_path / "local"), url)
    for bad in ("seg-000001-zzzzzzzz/x.u64", "notaseg/items.parquet", "seg-000000-0000000a/.hidden"):
        s3.put_object(Bucket=BUCKET, Key=f"indexes/grown.idx/{bad}", Body=b"x")
        shutil.rmtree(cache, ignore_errors=True)
        r = CliRunner().invoke(cli, ["audit", index_url, url, "-o", str(tmp_path / "refused"), "-q"])
        assert r.exit_code == 1 and f"holds {bad!r}, not a file of a provaudit index" in r.output, r.output
        s3.delete_object(Bucket=BUCKET, Key=f"indexes/grown.idx/{bad}")


def test_an_index_url_that_is_missing_incomplete_or_tampered_with_is_refused(s3, shards, local_index, cache,
                                                                               tmp_path) -> None:
    _, url = shards
    cases = {}
    for name in ("none.idx", "half.idx", "bad.idx"):
        cases[name] = f"s3://{BUCKET}/indexes/{name}"
    s3.put_object(Bucket=BUCKET, Key="indexes/half.idx/items.parquet", Body=b"PAR1")  # no manifest: never complete
    copy = tmp_path / "bad.idx"
    copy.mkdir()
    for p in (p for p in local_index.rglob("*") if p.is_file()):
        data = bytearray(p.read_bytes())
        if p.name == "anchor_keys.u64":
            data[len(data) // 2] ^= 0xFF  # one flipped byte in the untrusted download
        (copy / p.relative_to(local_index)).parent.mkdir(exist_ok=True)
        (copy / p.relative_to(local_index)).write_bytes(bytes(data))
    segment = next(p.name for p in local_index.iterdir() if p.is_dir())
    upload(s3, copy, "indexes/bad.idx")
    want = {"none.idx": "no such object or prefix", "half.idx": "not a provaudit index (no manifest.json)",
            "bad.idx": f"{BUCKET}/indexes/bad.idx: the downloaded index fails verification, nothing cached "
                       f"(s3://{BUCKET}/indexes/bad.idx/{segment}/anchor_keys.u64: bytes 0-262144 do not match their "
                       "checksum"}
    for name, index_url in cases.items():
        r = CliRunner().invoke(cli, ["audit", index_url, url, "-o", str(tmp_path / "out" / name), "-q"])
        assert r.exit_code == 1, (name, r.output)
        assert r.output.startswith("Error: ") and want[name] in r.output, (name, r.output)
        assert "Traceback" not in r.output and not (tmp_path / "out" / name).exists()
    assert list(cache.iterdir()) == []  # downloaded, refused, and not cached


# --- outputs ----------------------------------------------------------------------------------------------------
def keys(client: Any, prefix: str) -> dict[str, bytes]:
    """The objects under ``prefix/`` by name (without the empty ``prefix/`` object by which pyarrow marks a
    directory after a deletion: no object of the output)."""
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", [])
    return {o["Key"][len(prefix) + 1:]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed
            if o["Key"] != prefix + "/"}


class Recording:
    """A pyarrow filesystem that records the objects written, and fails the ``fail_at``-th write."""

    def __init__(self, handle: Any, fail_at: int = 0):
        self.handle, self.fail_at, self.written = handle, fail_at, []

    def open_output_stream(self, path: str) -> Any:
        self.written.append(path.rsplit("/", 1)[1])
        if len(self.written) == self.fail_at:
            raise OSError("When uploading part: AWS Error NETWORK_CONNECTION during PutObject operation: curl error")
        return self.handle.open_output_stream(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def test_index_and_audit_outputs_written_to_s3_are_the_local_outputs(s3, shards, local_index, cache, tmp_path,
                                                                     monkeypatch) -> None:
    _, url = shards
    idx_url = f"s3://{BUCKET}/written/ref.idx"
    r = CliRunner().invoke(cli, ["index", str(FIXTURES / "reference"), "-o", idx_url, "-w", "1", "-q"])
    assert r.exit_code == 0, r.output
    assert keys(s3, "written/ref.idx") == {p.relative_to(local_index).as_posix(): p.read_bytes()
                                           for p in local_index.rglob("*") if p.is_file()}

    from provaudit.fs import remote_out
    real = remote_out.filesystem
    seen: list[Recording] = []

    def recording(u: str, fail_at: int = 0) -> Any:
        handle, path = real(u)
        seen.append(Recording(handle, fail_at))
        return seen[-1], path

    monkeypatch.setattr(remote_out, "filesystem", recording)
    out_url = f"s3://{BUCKET}/written/audit"
    r = CliRunner().invoke(cli, ["audit", idx_url, url, "-o", out_url, "-q"])
    assert r.exit_code == 0, r.output
    assert seen[-1].written[-1] == "report.json" and len(seen[-1].written) == len(set(seen[-1].written)) > 3
    r = CliRunner().invoke(cli, ["audit", idx_url, url, "-o", str(tmp_path / "local-out"), "-q"])
    assert r.exit_code == 0, r.output
    local_files = {p.name: p.read_bytes() for p in (tmp_path / "local-out").iterdir()}
    got = keys(s3, "written/audit")
    assert got.keys() == local_files.keys()
    for name in ("matches.parquet", "report.json", "report.md"):  # the same output, byte for byte
        assert got[name] == local_files[name], name

    # an existing output is refused without --force; --force replaces it
    r = CliRunner().invoke(cli, ["audit", idx_url, url, "-o", out_url, "-q"])
    assert r.exit_code == 1 and f"Error: {out_url}: already exists (use --force to replace it)" in r.output
    s3.put_object(Bucket=BUCKET, Key="written/audit/stale.txt", Body=b"from an older run")
    r = CliRunner().invoke(cli, ["audit", idx_url, url, "-o", out_url, "-q", "--force"])
    assert r.exit_code == 0, r.output
    assert keys(s3, "written/audit") == got  # replaced whole: the stale object is gone

    # an interrupted upload leaves no marker: never taken for a complete output, and not replaced by --force
    monkeypatch.setattr(remote_out, "filesystem", lambda u: recording(u, fail_at=2))
    half = f"s3://{BUCKET}/written/half"
    r = CliRunner().invoke(cli, ["audit", idx_url, url, "-o", half, "-q"])
    assert r.exit_code == 1 and f"Error: {half}: cannot write the output: cannot reach the storage endpoint" in r.output
    assert "Traceback" not in r.output
    assert keys(s3, "written/half") and "report.json" not in keys(s3, "written/half")
    monkeypatch.setattr(remote_out, "filesystem", real)
    r = CliRunner().invoke(cli, ["audit", idx_url, url, "-o", half, "-q", "--force"])
    assert r.exit_code == 1 and "exists and is not a provaudit output of this kind" in r.output


def test_force_never_replaces_objects_provaudit_did_not_write(s3, shards, cache) -> None:
    _, url = shards
    s3.put_object(Bucket=BUCKET, Key="theirs/data.csv", Body=b"a,b\n")
    s3.put_object(Bucket=BUCKET, Key="theirs/report.json", Body=b'{"format": "something else"}')
    r = CliRunner().invoke(cli, ["index", url, "-o", f"s3://{BUCKET}/theirs", "-q", "--force"])
    assert r.exit_code == 1 and "exists and is not a provaudit output of this kind" in r.output, r.output
    assert set(keys(s3, "theirs")) == {"data.csv", "report.json"}
    r = CliRunner().invoke(cli, ["audit", f"s3://{BUCKET}/theirs", url, "-o", f"s3://{BUCKET}/theirs", "--resume"])
    assert r.exit_code == 2 and "--resume needs a local -o" in r.output


def test_file_urls_are_read_and_written_like_local_paths(shards, local_index, cache, tmp_path) -> None:
    local, _ = shards
    expected = audit_facts(local_audit(local_index, str(local), tmp_path / "local"), str(local) + "/")
    got = audit_facts(local_audit(f"file://{local_index}", f"file://{local}/", tmp_path / "url", 2), f"file://{local}/")
    assert got == expected
    r = CliRunner().invoke(cli, ["index", str(FIXTURES / "reference"), "-o", f"file://{tmp_path}/written.idx", "-q"])
    assert r.exit_code == 0, r.output
    assert {str(p.relative_to(tmp_path / "written.idx")): p.read_bytes()
            for p in (tmp_path / "written.idx").rglob("*") if p.is_file()} == {
        str(p.relative_to(local_index)): p.read_bytes() for p in local_index.rglob("*") if p.is_file()}


def test_verify_rechecks_inputs_and_index_named_by_url(s3, shards, local_index, cache, tmp_path) -> None:
    """`provaudit verify OUT` re-reads inputs and the index manifest named by URL from their storage:
    unchanged passes, a changed object is named (exit 1), a deleted one is a note (not checked)."""
    local, _ = shards
    url = upload(s3, local, "verify-shards")
    index_url = upload(s3, local_index, "indexes/verify.idx").rstrip("/")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["audit", index_url, url, "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["verify", str(out)])
    assert r.exit_code == 0, r.output
    assert "not checked" not in r.output and "read from the storage" in r.output
    s3.put_object(Bucket=BUCKET, Key="verify-shards/a.jsonl", Body=(local / "a.jsonl").read_bytes() + b"\n")
    s3.delete_object(Bucket=BUCKET, Key="verify-shards/c.parquet")
    r = CliRunner().invoke(cli, ["verify", str(out)])
    assert r.exit_code == 1
    assert f"CHANGED: input {url}a.jsonl: changed since the audit" in r.output
    assert f"input {url}c.parquet: not checked (not found: no such object or prefix)" in r.output
    assert f"{url}b.jsonl.gz" not in r.output  # unchanged: neither changed nor a note
    s3.put_object(Bucket=BUCKET, Key="indexes/verify.idx/manifest.json",
                  Body=(local_index / "manifest.json").read_bytes().replace(b'"format"', b'"format" ', 1))
    r = CliRunner().invoke(cli, ["verify", str(out)])
    assert f"CHANGED: index {index_url}: manifest.json changed since the audit" in r.output
