"""What reading through the S3 protocol costs: index and audit from local paths and from a moto S3
server on the loopback interface (issue 12 item 4), in the same run, with ratios.

Each measurement runs in a fresh subprocess (median of ``--repeat``): an index build of
REFERENCE, and an audit of TARGETS against that index, with the inputs (and for the audit
the index) given as local paths or as ``s3://`` URLs of the same files; the first audit with
the index in S3 downloads and verifies it into an empty cache, the next ones find it cached.
moto is a Python server (werkzeug), far slower than S3 or MinIO: the ratios bound the cost of
the URL code paths from above, they do not predict S3 throughput. Needs the test-cluster extra
(moto[server], boto3).

Usage (from the repository root):

    python scripts/bench_storage.py [--reference fixtures/reference] [--targets fixtures/shards] [--workers 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUN = """
import sys, time
from pathlib import Path
from provaudit import api
what, reference, index, targets, out, workers = sys.argv[1:7]
t = time.perf_counter()
if what == "index":
    api.build_index([reference], Path(out), workers=int(workers))
else:
    api.write_audit(api.audit(index, [targets], workers=int(workers)), Path(out))
print(time.perf_counter() - t)
"""


def _time(args: list[str], env: dict[str, str]) -> float:
    out = subprocess.run([sys.executable, "-c", RUN, *args], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **env}).stdout
    return float(out.split()[-1])


def _upload(client: object, local: Path, bucket: str, prefix: str) -> str:
    files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
    for p in files:
        key = f"{prefix}/{p.name if local.is_file() else p.relative_to(local).as_posix()}"
        client.put_object(Bucket=bucket, Key=key, Body=p.read_bytes())  # type: ignore[attr-defined]
    return f"s3://{bucket}/{prefix}" + ("/" + local.name if local.is_file() else "/")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, default=ROOT / "fixtures" / "reference")
    ap.add_argument("--targets", type=Path, default=ROOT / "fixtures" / "shards")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                 "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
        client = boto3.client("s3", endpoint_url=s3env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        client.create_bucket(Bucket="bench")
        ref_url = _upload(client, args.reference, "bench", "reference")
        tgt_url = _upload(client, args.targets, "bench", "targets")
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            _time(["index", str(args.reference), "", "", str(t / "idx"), "1"], {})
            idx_url = _upload(client, t / "idx", "bench", "idx").rstrip("/")
            size = sum(p.stat().st_size for p in ([args.targets] if args.targets.is_file() else args.targets.rglob("*"))
                       if p.is_file())
            rows: list[tuple[str, float]] = []

            def measure(name: str, what: str, reference: str, index: str, targets: str, env: dict[str, str],
                        fresh_cache: bool = False) -> float:
                times = []
                for i in range(args.repeat):
                    cache = t / f"cache-{name}-{i if fresh_cache else 0}"
                    times.append(_time([what, reference, index, targets, str(t / f"out-{name}-{i}-{time.time_ns()}"),
                                        str(args.workers)], {**env, "PROVAUDIT_CACHE_DIR": str(cache)}))
                rows.append((name, statistics.median(times)))
                return rows[-1][1]

            measure("index, local reference", "index", str(args.reference), "", "", {})
            measure("index, reference in S3", "index", ref_url, "", "", s3env)
            measure("audit, local targets and index", "audit", "", str(t / "idx"), str(args.targets), {})
            measure("audit, targets in S3, local index", "audit", "", str(t / "idx"), tgt_url, s3env)
            measure("audit, targets and index in S3 (index downloaded)", "audit", "", idx_url, tgt_url, s3env,
                    fresh_cache=True)
            measure("audit, targets and index in S3 (index cached)", "audit", "", idx_url, tgt_url, s3env)
    finally:
        server.stop()
    print(f"targets {size / 1e6:.1f} MB, {args.workers} workers, median of {args.repeat}; moto on 127.0.0.1")
    base = {"index": rows[0][1], "audit": rows[2][1]}
    for name, sec in rows:
        kind = name.split(",")[0]
        print(f"{name:55s} {sec:7.2f} s  {sec / base[kind]:5.2f}x the local run")


if __name__ == "__main__":
    main()
