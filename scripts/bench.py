"""provaudit benchmarks: every stage and end to end, against datasketch and rensa, in one run.

Usage (from the repository root; needs the bench extra: pip install '.[bench]'):

    python scripts/bench.py                      # full size: 200,000 posts, 20,000 long documents
    python scripts/bench.py --quick              # 1/10 size, for a smoke test
    python scripts/bench.py --markdown out.md    # also write the result table as Markdown

A corpus is generated from a fixed seed (a 50,000-word Zipf vocabulary; posts of 10-80
words; documents of 500-3,000 words, 30% of them with 1-3 posts pasted in, some edited).
Every measurement runs in a fresh subprocess, so imports and memory do not leak between
systems; timings are medians of ``--repeat`` runs, all taken in this run, so every ratio
compares figures measured on the same machine at the same time.

Peak memory is sampled every 20 ms over the whole process tree (workers included) as
sum(USS) + max(RSS - USS): private memory of every process, shared pages counted once. For
a single process this is its RSS. Sampling costs CPU, so it runs in one extra run per
measurement, never in a timed one. Word 5-grams, 128 permutations, threshold 0.5 throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NGRAM, NUM_PERM, SEED, THRESHOLD = 5, 128, 1, 0.5

try:
    import psutil
except ImportError:  # pragma: no cover
    sys.exit("scripts/bench.py needs psutil and rensa: pip install '.[bench]'")

# ----------------------------------------------------------------------------- corpus


def _vocab(n: int, rng: np.random.Generator) -> np.ndarray:
    onsets = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
              "ch", "sh", "th", "st", "br", "tr", "pl"]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "ee", "oo"]
    words: set[str] = set()
    while len(words) < n:
        w = "".join(onsets[rng.integers(len(onsets))] + nuclei[rng.integers(len(nuclei))]
                    for _ in range(int(rng.integers(1, 4))))
        if rng.random() < 0.4:
            w += "nrstlmdk"[rng.integers(8)]
        words.add(w)
    return np.array(sorted(words, key=lambda w: (len(w), w)))


def _texts(rng: np.random.Generator, vocab: np.ndarray, cdf: np.ndarray, lengths: np.ndarray) -> list[str]:
    words = vocab[np.searchsorted(cdf, rng.random(int(lengths.sum())))].tolist()
    out, pos = [], 0
    for n in lengths.tolist():
        seg = words[pos : pos + n]
        pos += n
        if seg:
            seg[0] = seg[0].capitalize()
        for k in range(12, len(seg), 13):  # some punctuation for the normalizer to fold
            seg[k] += "," if k % 2 else "."
        out.append(" ".join(seg))
    return out


def make_corpus(d: Path, posts: int, docs: int, seed: int = 1) -> dict[str, Any]:
    """Write posts.jsonl (reference) and docs.jsonl (targets with planted posts) into ``d``."""
    meta_path = d / "corpus.json"
    if meta_path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if meta.get("posts") == posts and meta.get("docs") == docs and meta.get("seed") == seed:
            return meta
    rng = np.random.default_rng(seed)
    vocab = _vocab(50_000, rng)
    w = 1.0 / np.arange(1, len(vocab) + 1)
    cdf = np.cumsum(w) / w.sum()
    post_texts = _texts(rng, vocab, cdf, rng.integers(10, 81, posts))
    with open(d / "posts.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(post_texts):
            f.write(json.dumps({"id": f"p{i}", "text": t}) + "\n")
    doc_texts = _texts(rng, vocab, cdf, rng.integers(500, 3001, docs))
    planted = 0
    text_bytes = 0
    with open(d / "docs.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(doc_texts):
            if rng.random() < 0.3:
                words = t.split(" ")
                for _ in range(int(rng.integers(1, 4))):
                    p = post_texts[int(rng.integers(posts))].split(" ")
                    if rng.random() < 0.3:  # an edited copy: one word in ten replaced
                        for k in rng.choice(len(p), max(1, len(p) // 10), replace=False).tolist():
                            p[k] = str(vocab[rng.integers(len(vocab))])
                    at = int(rng.integers(len(words) + 1))
                    words[at:at] = p
                    planted += 1
                t = " ".join(words)
            text_bytes += len(t.encode("utf-8"))
            f.write(json.dumps({"id": f"d{i}", "text": t}) + "\n")
    meta = {"posts": posts, "docs": docs, "seed": seed, "planted": planted, "doc_text_bytes": text_bytes,
            "post_text_bytes": sum(len(t.encode("utf-8")) for t in post_texts)}
    meta_path.write_text(json.dumps(meta))
    return meta


# ------------------------------------------------------------------------ measuring


def _tree_memory(proc: psutil.Process) -> float:
    """sum(USS) + max(RSS - USS) over ``proc`` and its descendants, in bytes."""
    total, shared = 0, 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            m = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += m.uss
        shared = max(shared, m.rss - m.uss)
    return float(total + shared)


def _tree_anon(proc: psutil.Process) -> float:
    """sum(RssAnon) over ``proc`` and its descendants, in bytes: the memory the processes allocate,
    leaving out mapped files (libraries, memory-mapped index pages, which the kernel may map in
    large folios of up to 2 MB around each page an audit reads when the file is in the page cache)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            with open(f"/proc/{p.pid}/status", encoding="ascii") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))
        except (OSError, StopIteration, psutil.Error):
            continue
    return float(total)


def run(code: str, *args: str, env: dict[str, str] | None = None, memory: bool = True) -> dict[str, Any]:
    """Run ``python -c code args`` in a fresh process; return its JSON line plus peak tree memory
    (``memory``; otherwise the run is not sampled and ``peak_mb`` is absent)."""
    cmd = [sys.executable, "-c", code, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    ps = psutil.Process(proc.pid)
    peak = [0.0, 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], _tree_memory(ps))
                peak[1] = max(peak[1], _tree_anon(ps))
            except psutil.Error:
                pass
            done.wait(0.02)

    t = threading.Thread(target=sample, daemon=True)
    if memory:
        t.start()
    out, err = proc.communicate()
    done.set()
    if memory:
        t.join()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step failed ({proc.returncode}):\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if memory:
        result["peak_mb"] = peak[0] / 2**20
        result["peak_anon_mb"] = peak[1] / 2**20
    return result


def median_run(repeat: int, code: str, *args: str) -> dict[str, Any]:
    """The median of ``repeat`` timed runs, with the peak memory of one more, sampled run.

    Timed runs are not sampled: reading USS walks every page table of the process tree, about
    6 ms of CPU per process and sample, half a core at one sample per 20 ms, which would slow
    most the runs that use every core (the audit with 2 workers: 1.55x instead of ~1.7x).
    """
    runs = [run(code, *args, memory=False) for _ in range(repeat)]
    runs.sort(key=lambda r: r["seconds"])
    best = dict(runs[len(runs) // 2])
    best["peak_mb"] = run(code, *args)["peak_mb"]
    return best


# Shared prelude of the baseline snippets: datasketch and rensa get the same normalizer
# (provaudit's, for ASCII text) without importing provaudit.
BASE = r"""
import json, sys, time, unicodedata
TABLE = {cp: (None if chr(cp) in "'`" else 32) for cp in range(128) if not chr(cp).isalnum() and not chr(cp).isspace()}
def tokens(t):
    if not t.isascii():
        t = unicodedata.normalize("NFKC", t)
    return t.casefold().translate(TABLE).split()
def shingles(t, n=5):
    w = tokens(t)
    return [" ".join(w[i:i + n]) for i in range(max(len(w) - n + 1, min(len(w), 1)))]
def load(path, limit):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if len(out) >= limit: break
            out.append(json.loads(line)["text"])
    return out
"""

SIG_PROVAUDIT = BASE + r"""
from provaudit.config import IndexConfig
from provaudit.text.shingle import shingle_batch
from provaudit.text.sketch import signatures
texts = load(sys.argv[1], int(sys.argv[2]))
cfg = IndexConfig(ngram=5, num_perm=128, seed=1)
signatures(shingle_batch(texts[:10], cfg), 128, 1)  # load the kernels before timing
batch = 2048 if sum(map(len, texts)) / max(len(texts), 1) < 2000 else 256
t0 = time.perf_counter(); n = 0
for i in range(0, len(texts), batch):
    sb = shingle_batch(texts[i:i + batch], cfg)
    signatures(sb, 128, 1)
    n += len(sb.hashes)
print(json.dumps({"seconds": time.perf_counter() - t0, "docs": len(texts), "shingles": n,
                  "bytes": sum(len(t.encode()) for t in texts)}))
"""

SIG_DATASKETCH = BASE + r"""
from datasketch import MinHash
texts = load(sys.argv[1], int(sys.argv[2]))
t0 = time.perf_counter(); n = 0
for i in range(0, len(texts), 2048):
    sets = [[s.encode() for s in shingles(t)] for t in texts[i:i + 2048]]
    n += sum(map(len, sets))
    MinHash.bulk(sets, num_perm=128, seed=1)
print(json.dumps({"seconds": time.perf_counter() - t0, "docs": len(texts), "shingles": n,
                  "bytes": sum(len(t.encode()) for t in texts)}))
"""

SIG_RENSA = BASE + r"""
import rensa
texts = load(sys.argv[1], int(sys.argv[2]))
matrix = sys.argv[3] == "matrix"
t0 = time.perf_counter(); n = 0
for i in range(0, len(texts), 2048):
    sets = [shingles(t) for t in texts[i:i + 2048]]
    n += sum(map(len, sets))
    if matrix:
        rensa.RMinHash.digest_matrix_from_token_sets(sets, 128, 1)
    else:
        for s in sets:
            m = rensa.RMinHash(128, 1); m.update(s); m.digest()
print(json.dumps({"seconds": time.perf_counter() - t0, "docs": len(texts), "shingles": n,
                  "bytes": sum(len(t.encode()) for t in texts)}))
"""

# Candidate index: both systems get the same signatures (provaudit's, bit-identical to
# datasketch MinHash for these shingles) and must return the same candidate pairs.
LSH_COMMON = r"""
import json, resource, sys, time
import numpy as np
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
d = np.load(sys.argv[1])
ref, qry = d["ref"], d["qry"]
"""

LSH_PROVAUDIT = LSH_COMMON + r"""
from provaudit.config import IndexConfig
from provaudit.index.keytable import build_directory, directory_bits, sort_pairs
from provaudit.text import kernels
from provaudit.text.sketch import band_keys
cfg = IndexConfig(ngram=5, threshold=0.5).resolved()
build_directory(np.zeros(1, np.uint64)); sort_pairs(np.zeros(1, np.uint64), np.zeros(1, np.uint32))
before = rss()
t0 = time.perf_counter()
keys = band_keys(ref, cfg.bands, cfg.rows).reshape(-1)
items = np.repeat(np.arange(len(ref), dtype=np.uint32), cfg.bands)
keys, items = sort_pairs(keys, items)
directory = build_directory(keys)
t1 = time.perf_counter()
grown = rss() - before
qk = band_keys(qry, cfg.bands, cfg.rows).reshape(-1)
qi, lo, hi = kernels.probe_hits(keys, directory, 64 - directory_bits(len(keys)), qk)
cnt = hi - lo
owner = np.repeat(qi // cfg.bands, cnt)
pos = np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(int(cnt.sum()))
pairs = np.unique(owner.astype(np.int64) * len(ref) + items[pos])
t2 = time.perf_counter()
np.save(sys.argv[2], pairs)
print(json.dumps({"seconds": t1 - t0, "insert_s": t1 - t0, "query_s": t2 - t1, "pairs": len(pairs),
                  "table_bytes": int(keys.nbytes + items.nbytes + directory.nbytes), "rss_growth": grown}))
"""

LSH_DATASKETCH = LSH_COMMON + r"""
from datasketch import MinHash, MinHashLSH
ref_m = [MinHash(num_perm=128, seed=1, hashvalues=s, scheme="affine32") for s in ref]
qry_m = [MinHash(num_perm=128, seed=1, hashvalues=s, scheme="affine32") for s in qry]
lsh = MinHashLSH(threshold=0.5, num_perm=128)
before = rss()
t0 = time.perf_counter()
for i, m in enumerate(ref_m):
    lsh.insert(i, m)
t1 = time.perf_counter()
grown = rss() - before
pairs = [q * len(ref) + k for q, m in enumerate(qry_m) for k in lsh.query(m)]
t2 = time.perf_counter()
np.save(sys.argv[2], np.unique(np.array(pairs, dtype=np.int64)))
print(json.dumps({"seconds": t1 - t0, "insert_s": t1 - t0, "query_s": t2 - t1, "pairs": len(set(pairs)),
                  "rss_growth": grown, "bands": lsh.b, "rows": lsh.r}))
"""

MAKE_LSH_INPUT = BASE + r"""
import numpy as np
from provaudit.config import IndexConfig
from provaudit.text.shingle import shingle_batch
from provaudit.text.sketch import signatures
texts = load(sys.argv[1], 10**9)
rng = np.random.default_rng(3)
queries = []
for k in range(int(sys.argv[3])):  # half edited copies of indexed posts, half new text
    w = texts[int(rng.integers(len(texts)))].split(" ")
    if k % 2:
        w = w[::-1]
    else:
        w[int(rng.integers(len(w)))] = "edited"
    queries.append(" ".join(w))
cfg = IndexConfig(ngram=5)
sig = lambda ts: np.concatenate([signatures(shingle_batch(ts[i:i + 4096], cfg), 128, 1) for i in range(0, len(ts), 4096)])
np.savez(sys.argv[2], ref=sig(texts), qry=sig(queries))
print(json.dumps({"seconds": 0}))
"""

# End-to-end index: provaudit's CLI vs a plain datasketch script doing the same work.
INDEX_PROVAUDIT = r"""
import json, sys, time
from click.testing import CliRunner
t0 = time.perf_counter()
from provaudit.cli import cli
res = CliRunner().invoke(cli, ["index", sys.argv[1], "-o", sys.argv[2], "--ngram", "5", "--force", "-q",
                               "--workers", sys.argv[3]], catch_exceptions=False)
assert res.exit_code == 0, res.output
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

INDEX_DATASKETCH = BASE + r"""
t0 = time.perf_counter()
import pickle
from datasketch import MinHash, MinHashLSH
lsh = MinHashLSH(threshold=0.5, num_perm=128)
ids, sets = [], []
def flush():
    for k, m in zip(ids, MinHash.bulk(sets, num_perm=128, seed=1)):
        lsh.insert(k, m)
    ids.clear(); sets.clear()
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        rec = json.loads(line)
        sets.append([s.encode() for s in shingles(rec["text"])])
        ids.append(rec["id"])
        if len(ids) == 2048:
            flush()
flush()
with open(sys.argv[2], "wb") as f:
    pickle.dump(lsh, f, protocol=pickle.HIGHEST_PROTOCOL)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

AUDIT_PROVAUDIT = r"""
import json, sys, time
from click.testing import CliRunner
t0 = time.perf_counter()
from provaudit.cli import cli
args = ["audit", sys.argv[1], sys.argv[2], "-o", sys.argv[3], "--force", "-q", "--workers", sys.argv[4]]
if "--kind" in CliRunner().invoke(cli, ["audit", "--help"]).output:
    args += ["--kind", "training"]
res = CliRunner().invoke(cli, args, catch_exceptions=False)
assert res.exit_code == 0, res.output
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


# ------------------------------------------------------------------------- the run


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _head(src: Path, dest: Path, n: int) -> Path:
    with open(src, encoding="utf-8") as f, open(dest, "w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            if i >= n:
                break
            g.write(line)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--posts", type=int, default=200_000)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="1/10 of the default sizes")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median reported)")
    ap.add_argument("--sig-posts", type=int, default=50_000, help="posts signed by every system")
    ap.add_argument("--sig-docs", type=int, default=2_000, help="long documents signed by every system")
    ap.add_argument("--queries", type=int, default=50_000, help="LSH queries (half near-duplicates)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--data", type=Path, help="keep the corpus here (reused when it matches)")
    ap.add_argument("--markdown", type=Path, help="write the result table here as Markdown")
    ap.add_argument("--json", type=Path, help="write every figure here as JSON")
    args = ap.parse_args()
    if args.quick:
        args.posts, args.docs, args.sig_posts, args.sig_docs, args.queries = 20_000, 2_000, 10_000, 400, 10_000
    tmp = Path(tempfile.mkdtemp(prefix="provaudit-bench-"))
    data = args.data or tmp
    data.mkdir(parents=True, exist_ok=True)
    try:
        _run(args, data, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, data: Path, tmp: Path) -> None:
    import rensa  # noqa: F401 - fail early with the install hint below
    import datasketch

    t0 = time.perf_counter()
    _log(f"corpus: {args.posts:,} posts, {args.docs:,} long documents ...")
    meta = make_corpus(data, args.posts, args.docs)
    posts, docs = data / "posts.jsonl", data / "docs.jsonl"
    R: dict[str, Any] = {"corpus": meta, "machine": {"cores": len(os.sched_getaffinity(0)),
                         "python": sys.version.split()[0], "numpy": np.__version__,
                         "datasketch": getattr(datasketch, "__version__", "?"),
                         "rensa": _version("rensa")}}

    # 1. signatures -----------------------------------------------------------------
    sig: dict[str, dict[str, Any]] = {}
    for kind, path, n in (("posts", posts, args.sig_posts), ("docs", docs, args.sig_docs)):
        for name, code, extra in (("provaudit", SIG_PROVAUDIT, []), ("datasketch", SIG_DATASKETCH, []),
                                  ("rensa", SIG_RENSA, ["per-doc"]), ("rensa-matrix", SIG_RENSA, ["matrix"])):
            _log(f"signatures: {name} on {n:,} {kind} ...")
            sig[f"{kind}/{name}"] = median_run(args.repeat, code, str(path), str(n), *extra)
    R["signatures"] = sig

    # 2. candidate index ------------------------------------------------------------
    _log("candidate index: signing the reference and the queries ...")
    npz = tmp / "lsh.npz"
    run(MAKE_LSH_INPUT, str(posts), str(npz), str(args.queries))
    lsh: dict[str, dict[str, Any]] = {}
    for name, code in (("provaudit", LSH_PROVAUDIT), ("datasketch", LSH_DATASKETCH)):
        _log(f"candidate index: {name} ...")
        lsh[name] = median_run(args.repeat, code, str(npz), str(tmp / f"pairs-{name}.npy"))
    same = bool(np.array_equal(np.load(tmp / "pairs-provaudit.npy"), np.load(tmp / "pairs-datasketch.npy")))
    R["candidate_index"] = {**lsh, "same_candidates": same, "items": args.posts, "queries": args.queries}

    # 3. index end to end -----------------------------------------------------------
    idx: dict[str, dict[str, Any]] = {}
    for w in sorted({1, args.workers}):
        _log(f"index: provaudit --workers {w} ...")
        idx[f"provaudit-w{w}"] = median_run(args.repeat, INDEX_PROVAUDIT, str(posts), str(tmp / f"idx{w}"), str(w))
    def files(d: Path) -> list[str]:  # relative names of every file (an index keeps its files in segments)
        return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())

    names = files(tmp / "idx1")
    identical = names == files(tmp / f"idx{args.workers}") and all(
        (tmp / "idx1" / f).read_bytes() == (tmp / f"idx{args.workers}" / f).read_bytes() for f in names)
    _log("index: datasketch script ...")
    idx["datasketch"] = median_run(1, INDEX_DATASKETCH, str(posts), str(tmp / "lsh.pkl"))
    index_bytes = _dir_bytes(tmp / "idx1")
    R["index"] = {**idx, "identical_for_workers": identical, "index_bytes": index_bytes,
                  "datasketch_pickle_bytes": (tmp / "lsh.pkl").stat().st_size,
                  "files": {f.name: f.stat().st_size for f in sorted((tmp / "idx1").rglob("*")) if f.is_file()}}

    # 4. audit of long documents ----------------------------------------------------
    aud: dict[str, dict[str, Any]] = {}
    half = _head(docs, tmp / "docs-half.jsonl", args.docs // 2)
    for w in sorted({1, args.workers}):
        _log(f"audit: --workers {w} ...")
        aud[f"w{w}"] = median_run(args.repeat, AUDIT_PROVAUDIT, str(tmp / "idx1"), str(docs), str(tmp / f"a{w}"), str(w))
    _log("audit: half the targets (memory must not depend on target size) ...")
    aud["half"] = median_run(1, AUDIT_PROVAUDIT, str(tmp / "idx1"), str(half), str(tmp / "ahalf"), str(args.workers))
    same_audit = (tmp / "a1" / "matches.parquet").read_bytes() == (tmp / f"a{args.workers}" / "matches.parquet").read_bytes()
    found = _found(tmp / "a1")
    R["audit"] = {**aud, "identical_for_workers": same_audit, "pairs": found}
    R["seconds"] = time.perf_counter() - t0
    table = report(R, args)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    if args.json:
        args.json.write_text(json.dumps(R, indent=2, sort_keys=True) + "\n")


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _found(out: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(out / "matches.parquet").metadata.num_rows)


def report(R: dict[str, Any], args: argparse.Namespace) -> str:
    """The figures and ratios as a Markdown table (targets from issue #4)."""
    w = args.workers
    c = R["corpus"]
    s, li, ix, au = R["signatures"], R["candidate_index"], R["index"], R["audit"]
    lines = [f"Corpus: {c['posts']:,} posts ({c['post_text_bytes'] / 1e6:.0f} MB), {c['docs']:,} long documents "
             f"({c['doc_text_bytes'] / 1e6:.0f} MB, {c['planted']:,} planted posts); {R['machine']['cores']} cores, "
             f"Python {R['machine']['python']}, numpy {R['machine']['numpy']}, datasketch "
             f"{R['machine']['datasketch']}, rensa {R['machine']['rensa']}; medians of {args.repeat} runs; "
             f"total {R['seconds'] / 60:.1f} min.", ""]
    lines += ["| stage | system | docs/s | shingles/s | MB/s | peak MB | ratio | target | met |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]

    def row(stage: str, system: str, r: dict[str, Any], docs: int | None, shingles: int | None, mb: float | None,
            ratio: str = "", target: str = "", met: bool | None = None) -> None:
        dt = r["seconds"]
        lines.append(
            f"| {stage} | {system} | {docs / dt:,.0f} | " if docs else f"| {stage} | {system} | | "
        )
        lines[-1] += (f"{shingles / dt:,.0f} | " if shingles else " | ") + (f"{mb / dt:.1f} | " if mb else " | ")
        lines[-1] += f"{r['peak_mb']:.0f} | {ratio} | {target} | {'' if met is None else ('yes' if met else '**no**')} |"

    for kind, label, tgt in (("posts", "signatures, short posts", 10.0), ("docs", "signatures, long docs", 4.0)):
        base = s[f"{kind}/datasketch"]
        pv = s[f"{kind}/provaudit"]
        for name in ("provaudit", "datasketch", "rensa", "rensa-matrix"):
            r = s[f"{kind}/{name}"]
            ratio = base["seconds"] / r["seconds"]
            target, met = "", None
            if name == "provaudit":
                target, met = f">= {tgt:g}x datasketch", ratio >= tgt
            if name == "rensa":
                target = "provaudit faster"
                met = pv["seconds"] < r["seconds"]
            row(label, name, r, r["docs"], r["shingles"], r["bytes"] / 1e6, f"{ratio:.1f}x", target, met)
    pi, di = li["provaudit"], li["datasketch"]
    ins, qry = di["insert_s"] / pi["insert_s"], di["query_s"] / pi["query_s"]
    mem = di["rss_growth"] / max(pi["rss_growth"], 1)
    lines.append(f"| candidate index, insert | provaudit | {li['items'] / pi['insert_s']:,.0f} | | | "
                 f"{pi['rss_growth'] / 2**20:.0f} (growth) | {ins:.0f}x | >= 30x | {'yes' if ins >= 30 else '**no**'} |")
    lines.append(f"| candidate index, insert | datasketch MinHashLSH | {li['items'] / di['insert_s']:,.0f} | | | "
                 f"{di['rss_growth'] / 2**20:.0f} (growth) | 1x | | |")
    lines.append(f"| candidate index, batched queries | provaudit | {li['queries'] / pi['query_s']:,.0f} | | | | "
                 f"{qry:.0f}x | >= 9x | {'yes' if qry >= 9 else '**no**'} |")
    lines.append(f"| candidate index, queries | datasketch MinHashLSH | {li['queries'] / di['query_s']:,.0f} | | | | 1x | | |")
    lines.append(f"| candidate index, memory | provaudit / datasketch | | | | | 1/{mem:.0f} | <= 1/25 | "
                 f"{'yes' if mem >= 25 else '**no**'} |")
    n, mb = c["posts"], c["post_text_bytes"] / 1e6
    dsi = ix["datasketch"]
    for key in sorted(k for k in ix if k.startswith("provaudit-w")):
        r = ix[key]
        ratio, memr = dsi["seconds"] / r["seconds"], dsi["peak_mb"] / r["peak_mb"]
        row(f"index end to end ({key[-2:]})", "provaudit index", r, n, None, mb, f"{ratio:.1f}x, 1/{memr:.1f} memory",
            ">= 10x, <= 1/10 memory", ratio >= 10 and memr >= 10)
    row("index end to end", "datasketch script", dsi, n, None, mb, "1x")
    dmb = c["doc_text_bytes"] / 1e6
    a1, aw = au["w1"], au[f"w{w}"]
    row("audit, long docs (w1)", "provaudit audit", a1, c["docs"], None, dmb, "", ">= 10 MB/s per core",
        dmb / a1["seconds"] >= 10)
    if w != 1:
        scale = a1["seconds"] / aw["seconds"]
        row(f"audit, long docs (w{w})", "provaudit audit", aw, c["docs"], None, dmb, f"{scale:.2f}x vs w1",
            ">= 1.7x from 1 to 2 workers", scale >= 1.7)
    lines += ["", f"- Index: {ix['index_bytes'] / n:,.0f} bytes per reference item on disk "
              f"({', '.join(f'{k} {v / n:,.0f}' for k, v in ix['files'].items() if v > 4096)}); datasketch's pickled "
              f"MinHashLSH {ix['datasketch_pickle_bytes'] / n:,.0f} bytes per item. Files byte-identical for 1 and "
              f"{w} workers: {'yes' if ix['identical_for_workers'] else 'NO'}.",
              f"- Candidate index: the same candidate pairs as datasketch MinHashLSH: "
              f"{'yes' if li['same_candidates'] else 'NO'} ({li['provaudit']['pairs']:,} pairs); band table "
              f"{pi['table_bytes'] / li['items']:.0f} bytes per item (RSS growth {pi['rss_growth'] / li['items']:.0f}), "
              f"datasketch MinHashLSH's RSS growth {di['rss_growth'] / li['items']:,.0f} bytes per item.",
              f"- Audit: {au['pairs']:,} verified pairs; matches identical for 1 and {w} workers: "
              f"{'yes' if au['identical_for_workers'] else 'NO'}; peak memory with all {c['docs']:,} documents "
              f"{aw['peak_mb']:.0f} MB, with half of them {au['half']['peak_mb']:.0f} MB."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
