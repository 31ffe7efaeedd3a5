"""Workers never outlive their parent (issue 15 item 4): the parent of ``index`` or ``audit`` is killed
(SIGKILL, as the out-of-memory killer does, or SIGTERM) at several points, and every forked worker
is gone within a few seconds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provaudit.run.pool import PARENT_POLL, fork_available

pytestmark = pytest.mark.skipif(not fork_available() or not Path("/proc/self/task").is_dir(),
                                reason="needs fork and /proc")
WORDS = [f"w{i}" for i in range(3000)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reference and a target large enough that index and audit run for seconds with 2 workers."""
    d = tmp_path_factory.mktemp("orphans")
    rng = random.Random(5)
    posts = [" ".join(rng.choices(WORDS, k=rng.randint(10, 40))) for _ in range(20_000)]
    with open(d / "ref.jsonl", "w", encoding="utf-8") as f:
        for i in range(200_000):  # distinct ids, texts repeated: about 3 s to index with 2 workers
            f.write(json.dumps({"id": f"r{i}", "text": f"{i} {posts[i % len(posts)]}"}) + "\n")
    docs = [" ".join(rng.choices(WORDS, k=600)) for _ in range(2_000)]
    with open(d / "target.jsonl", "w", encoding="utf-8") as f:
        for i in range(30_000):  # about 100 MB: seconds to audit with 2 workers
            f.write(json.dumps({"id": f"t{i}", "text": docs[i % len(docs)]}) + "\n")
    r = subprocess.run([sys.executable, "-m", "provaudit", "index", str(d / "ref.jsonl"), "-o", str(d / "ref.idx"),
                        "-q", "-w", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return d


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie, ended but not yet reaped by its new parent, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("command", ["index", "audit"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("after", [0.0, 1.0])
def test_workers_end_with_their_parent(data: Path, tmp_path: Path, command: str, sig: int, after: float) -> None:
    args = {"index": ["index", str(data / "ref.jsonl"), "-o", str(tmp_path / "out.idx")],
            "audit": ["audit", str(data / "ref.idx"), str(data / "target.jsonl"), "-o", str(tmp_path / "out")]}
    parent = subprocess.Popen([sys.executable, "-m", "provaudit", *args[command], "-q", "-w", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
            workers |= _children(parent.pid)
            time.sleep(0.02)
        assert len(workers) >= 2, "the workers did not start"
        time.sleep(after)
        workers |= _children(parent.pid)
        assert parent.poll() is None, "the run ended before it could be killed: make the data larger"
        os.kill(parent.pid, sig)
        parent.wait(30)
        deadline = time.monotonic() + 4 * PARENT_POLL + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [w for w in workers if _alive(w)]
        assert not left, f"workers {left} outlived their parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for w in _children(parent.pid):
            os.kill(w, signal.SIGKILL)
