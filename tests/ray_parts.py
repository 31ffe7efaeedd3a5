"""Run by tests/test_ray.py in a subprocess (the test process never becomes a Ray driver): index builds
on the Ray cluster at ADDRESS whose tasks write parts (``run.ray_parts``), with the driver unable to
sign (so that every item is signed by a task), one actor killed mid-build, ``provaudit add --engine ray``,
and a build that fails on bad input. Writes OUT/index, OUT/keep-text (built with keep_text), OUT/added
(the first input built, the others added as a segment), OUT/segments (``--keep-segments``) and
OUT/facts.json.

    python tests/ray_parts.py ADDRESS OUT INPUT...
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from provaudit import api
from provaudit.cli import cli
from provaudit.config import IndexConfig
from provaudit.errors import InputError
from provaudit.index import build
from provaudit.read import lines
from provaudit.run import ray_parts
from provaudit.run.engines import RunEngine

sys.path.insert(0, str(Path(__file__).resolve().parent))  # PYTHONSAFEPATH is set: the tests' directory
from ray_scenarios import actor_pids  # noqa: E402

lines.BLOCK_BYTES = 32 << 10  # many blocks ...
ray_parts.TASKS_PER_PART = 3  # ... and many parts: a kill lands mid-build


def no_signing(*_: Any) -> Any:
    raise AssertionError("the driver signed items")


def main(address: str, out: Path, inputs: list[str]) -> None:
    build.signatures = no_signing  # type: ignore[assignment]  # the driver's only: actors import their own
    ray = RunEngine("ray", 2, address)
    facts: dict[str, Any] = {"progress": []}
    deadline = time.monotonic() + 60  # actors of earlier tests on this head, killed as their runs ended, gone
    while actor_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    facts["stale"] = actor_pids()

    def kill_one(source: str, done: int, *rest: Any) -> None:
        facts["progress"].append(done)
        if len(facts["progress"]) == 1:
            victims = [p for p in actor_pids() if p not in facts["stale"]]
            facts["actors_before"] = victims
            os.kill(victims[0], signal.SIGKILL)  # dies with parts queued on it: restarted, its tasks rerun
            facts["killed"] = victims[0]

    api.build_index(inputs, out / "index", run_engine=ray, progress=kill_one)
    api.build_index(inputs, out / "keep-text", IndexConfig(keep_text=True), run_engine=ray)
    api.build_index(inputs[:1], out / "added", run_engine=ray)  # then a segment of the others, by the CLI
    cli.main(["add", str(out / "added"), *inputs[1:], "--engine", "ray", "--ray-address", address, "-q"],
             standalone_mode=False)
    cli.main(["index", *inputs, "-o", str(out / "segments"), "--keep-segments", "--engine", "ray", "--ray-address",
              address, "-q"], standalone_mode=False)  # the parts kept as segments
    dup = out / "dup.jsonl"  # an id of the first input, in another part
    dup.write_bytes(Path(inputs[0]).read_bytes().splitlines(keepends=True)[0])
    try:
        api.build_index([*inputs, str(dup)], out / "dup-index", run_engine=ray, keep_segments=True)
    except InputError as e:
        facts["dup_error"] = str(e)
    bad = out / "bad.jsonl"
    bad.write_text('{"id": "bad-1", "text": "a line"}\n{"id": "bad-2", "text": \n')
    try:
        api.build_index([*inputs, str(bad)], out / "failed", run_engine=ray)
    except InputError as e:
        facts["error"] = str(e)
    facts["left"] = sorted(p.name for p in out.iterdir())
    (out / "facts.json").write_text(json.dumps(facts))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3:])
