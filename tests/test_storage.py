"""Shared storage (issue 12 item 4): inputs, indexes and outputs named by URL, read and written through
pyarrow.fs, against a real S3-protocol server (moto in server mode) on the loopback interface, started
here and stopped after. An audit of shards read from it, with an index stored in it, gives the matches
and estimates of the same audit on local paths. Skipped without moto (``pip install '.[test-cluster]'``)."""

from __future__ import annotations

import gzip
import json
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


def test_missing_objects_buckets_and_unreachable_endpoints_are_errors_naming_the_url(s3, shards, monkeypatch) -> None:
    _, url = shards
    with pytest.raises(InputError, match="s3://provaudit-test/nothing-here/: no such object or prefix"):
        expand_sources([f"s3://{BUCKET}/nothing-here/"])
    with pytest.raises(InputError, match=r"s3://no-such-bucket-x/a.jsonl: no such bucket \(s3://no-such-bucket-x\)"):
        expand_sources(["s3://no-such-bucket-x/a.jsonl"])
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("PROVAUDIT_S3_TIMEOUT", "2")
    with pytest.raises(RemoteError, match=f"{url}: cannot reach it: cannot reach the storage endpoint"):
        expand_sources([url])
