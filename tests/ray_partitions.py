"""Run by tests/test_ray.py in a subprocess (the test process never becomes a Ray driver): audits with
key-range partitioned lookups (``--partitions``, ``run.ray_ranges``) on the Ray cluster at ADDRESS, of
a one-segment and a two-segment index, without partitions and with P = 1, 2, 3, and one with a range
actor killed mid-run (restarted by Ray; then, with no restart left, failing the run). Writes OUT/NAME-P (audit directories; P = 0: no partitions), OUT/killed and
OUT/facts.json (the range actors' counters of each run, the range actor processes left after each run,
the killed pid and the tasks after the kill).

    python tests/ray_partitions.py ADDRESS ONE_SEGMENT TWO_SEGMENTS TARGETS OUT
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from provaudit import api
from provaudit.read import lines
from provaudit.run import engines, ray_ranges
from provaudit.run.engines import RunEngine
from provaudit.run.pool import WorkerDied

lines.BLOCK_BYTES = 32 << 10  # many small tasks: a kill lands mid-run


def range_pids() -> list[int]:
    """Processes titled as range actors (``ray::RangeActor``)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "cmdline").read_bytes().startswith(b"ray::RangeActor"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return sorted(pids)


def left_after_run() -> list[int]:
    """Range actor processes still alive 30 s after a run (none expected)."""
    deadline = time.monotonic() + 30
    while range_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    return range_pids()


def main(address: str, one: str, two: str, targets: str, out: Path) -> None:
    stats = ray_ranges.RangeStats()
    log = logging.getLogger("provaudit.run.ray_ranges")
    log.addHandler(stats)
    log.setLevel(logging.INFO)
    facts: dict[str, Any] = {"runs": {}, "left": {}}
    for name, index in (("one", one), ("two", two)):
        for p in (0, 1, 2, 3):
            stats.got.clear()
            result = api.audit(Path(index), [targets], run_engine=RunEngine("ray", 2, address, p or None))
            api.write_audit(result, out / f"{name}-{p}")
            facts["runs"][f"{name}-{p}"] = list(stats.got)
            facts["left"][f"{name}-{p}"] = left_after_run()

    seen: list[int] = []
    facts["stale"] = left_after_run()  # none expected: each run above waited for its range actors to go

    def kill_one(source: str, done: int, *_: object) -> None:
        seen.append(done)
        if len(seen) == 1:
            victims = [p for p in range_pids() if p not in facts["stale"]]
            facts["ranges_before"] = victims
            os.kill(victims[0], signal.SIGKILL)  # a range actor dies with lookups to answer: restarted, rerun
            facts["killed"] = victims[0]

    result = api.audit(Path(two), [targets], run_engine=RunEngine("ray", 2, address, 2), progress=kill_one)
    facts["tasks_after_kill"] = len(seen) - 1
    api.write_audit(result, out / "killed")
    facts["left"]["killed"] = left_after_run()

    # no restart left (max_retries 0): a killed range actor fails the run with WorkerDied (CLI: exit 1), nothing written
    engines.PartitionedRayMap = functools.partial(ray_ranges.PartitionedRayMap, max_retries=0)  # type: ignore
    seen.clear()
    try:
        api.audit(Path(two), [targets], run_engine=RunEngine("ray", 2, address, 2), progress=kill_one)
    except WorkerDied as e:
        facts["died"] = str(e)
    facts["tasks_before_failure"] = len(seen) - 1
    facts["left"]["died"] = left_after_run()
    (out / "facts.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5]))
