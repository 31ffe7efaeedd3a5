"""What datasketch costs provaudit at run time, against provaudit's own band choice (issue 16, item 4).

provaudit needs datasketch at run time only for ``MinHashLSH(threshold, num_perm).b/.r``;
``config.lsh_params`` computes the same choice. This prints, measured in this process and
in fresh subprocesses: the import time of each path, the time of one band choice, and the
disk size of datasketch and what it pulls in (scipy). Run: ``python scripts/measure_datasketch.py``.
"""

from __future__ import annotations

import importlib.metadata
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 5
CASES = [(0.5, 128), (0.8, 128), (0.3, 256)]


def _fresh(code: str) -> float:
    """Median wall time of ``python -c code`` minus that of an empty interpreter, in seconds."""
    def run(c: str) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", c], check=True)
        return time.perf_counter() - t
    base = statistics.median(run("pass") for _ in range(RUNS))
    return statistics.median(run(code) for _ in range(RUNS)) - base


def _size_mb(dist: str) -> float:
    files = importlib.metadata.distribution(dist).files or []
    paths = [Path(str(f.locate())) for f in files]
    return sum(p.stat().st_size for p in paths if p.is_file()) / 1e6


def main() -> None:
    from datasketch import MinHashLSH

    from provaudit.config import lsh_params

    print(f"datasketch {importlib.metadata.version('datasketch')}, scipy {importlib.metadata.version('scipy')}")
    for threshold, num_perm in CASES:
        t = time.perf_counter()
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        t_ds = time.perf_counter() - t
        lsh_params.cache_clear()
        t = time.perf_counter()
        mine = lsh_params(threshold, num_perm)
        t_pa = time.perf_counter() - t
        print(f"threshold {threshold}, num_perm {num_perm}: datasketch (b, r) = ({lsh.b}, {lsh.r}) in {t_ds * 1e3:.1f} ms; "
              f"provaudit {mine} in {t_pa * 1e3:.1f} ms ({t_ds / t_pa:.1f}x)")
    ds = _fresh("from datasketch import MinHashLSH; MinHashLSH(threshold=0.5, num_perm=128)")
    pa = _fresh("from provaudit.config import lsh_params; lsh_params(0.5, 128)")
    print(f"fresh process, import + one choice: datasketch {ds:.2f} s, provaudit.config {pa:.2f} s "
          f"(median of {RUNS}, empty interpreter subtracted)")
    print(f"installed size: datasketch {_size_mb('datasketch'):.1f} MB, scipy {_size_mb('scipy'):.1f} MB")


if __name__ == "__main__":
    main()
