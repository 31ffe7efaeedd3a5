"""Run by tests/test_ray.py in a subprocess (the test process never becomes a Ray driver): on one local
Ray instance (2 CPUs, started here, with this process's S3 settings in its environment), an index
built from REFERENCE and an audit of TARGETS against INDEX, inputs and index given as URLs.
Writes OUT/index, OUT/audit and OUT/progress.json (every progress call of the audit: records,
bytes done, bytes total, and the TaskCount as [done, total, complete]).

    python tests/ray_storage.py REFERENCE_URL INDEX_URL TARGETS_URL OUT
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import ray

from provaudit import api
from provaudit.read import lines
from provaudit.run.engines import RunEngine

lines.BLOCK_BYTES = 16 << 10  # many tasks: the progress counts have somewhere to go


def main(reference: str, index: str, targets: str, out: Path) -> None:
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        engine = RunEngine("ray", 2)
        api.build_index([reference], out / "index", run_engine=engine)
        calls: list[Any] = []

        def record(where: str, records: int, done: int, total: int | None, tasks: Any = None) -> None:
            calls.append([records, done, total, None if tasks is None else [tasks.done, tasks.total, tasks.complete]])

        api.write_audit(api.audit(index, [targets], run_engine=engine, progress=record), out / "audit")
        (out / "progress.json").write_text(json.dumps(calls))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]))
