"""Run by tests/test_ray.py in a subprocess (so that the test process never becomes a Ray driver):
an index build and audits on the Ray cluster at ADDRESS, with a worker killed mid-run and with an
interrupted run resumed. Writes OUT/index, OUT/killed, OUT/resumed (audit directories) and
OUT/facts.json (what happened: the killed pid, tasks after the kill, resumed sources).

    python tests/ray_scenarios.py ADDRESS REFERENCE TARGETS OUT
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from provaudit import api
from provaudit.read import lines
from provaudit.run.checkpoint import partial_dir
from provaudit.run.engines import RunEngine

lines.BLOCK_BYTES = 32 << 10  # the driver cuts the targets into many small tasks: a kill lands mid-run


def actor_pids() -> list[int]:
    """Processes titled as this run's Ray actors (``ray::TaskActor``)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "cmdline").read_bytes().startswith(b"ray::TaskActor"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return sorted(pids)


def main(address: str, reference: str, targets: str, out: Path) -> None:
    ray = RunEngine("ray", 2, address)
    facts: dict[str, object] = {}
    api.build_index([reference], out / "index", run_engine=ray)
    deadline = time.monotonic() + 30  # the build's actors, killed as it ended, gone: only the audit's are counted
    while actor_pids() and time.monotonic() < deadline:
        time.sleep(0.1)

    seen: list[int] = []  # records done at each merged task

    def kill_one(source: str, done: int, *_: object) -> None:
        seen.append(done)
        if len(seen) == 1:
            victims = actor_pids()
            facts["actors_before"] = victims
            os.kill(victims[0], signal.SIGKILL)  # a worker dies with tasks queued on it: restarted, tasks rerun
            facts["killed"] = victims[0]

    result = api.audit(out / "index", [targets], run_engine=ray, progress=kill_one)
    facts["tasks_after_kill"] = len(seen) - 1
    api.write_audit(result, out / "killed")

    sources: list[str] = []

    def interrupt(source: str, done: int, *_: object) -> None:
        if source not in sources:
            sources.append(source)
        if len(sources) > 1:  # the first source is finished (and checkpointed)
            raise KeyboardInterrupt

    resumed = out / "resumed"
    try:
        api.audit(out / "index", [targets], run_engine=ray, checkpoint=partial_dir(resumed), progress=interrupt)
    except KeyboardInterrupt:
        facts["interrupted"] = True
    result = api.audit(out / "index", [targets], run_engine=ray, checkpoint=partial_dir(resumed), resume=True)
    facts["resumed_sources"] = result.resumed_sources
    api.write_audit(result, resumed)
    (out / "facts.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]))
