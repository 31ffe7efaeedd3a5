from __future__ import annotations

import contextlib
import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# Reports record the date of a run (report.json reproduce.date, shown in report.md/html): tests that
# compare two runs byte for byte fix it, as reproducible builds do (tests/test_report.py checks both ways).
os.environ.setdefault("SOURCE_DATE_EPOCH", "1767225600")


def simple_tokens(text: str) -> list[str]:
    """Independent ASCII-only normalizer for brute-force truth (not provaudit's code)."""
    text = text.lower().replace("'", "")
    return re.findall(r"[a-z0-9]+", text)


def shingle_set(text: str, n: int = 3) -> set[tuple[str, ...]]:
    t = simple_tokens(text)
    if 0 < len(t) < n:
        return {tuple(t)}
    return {tuple(t[i : i + n]) for i in range(len(t) - n + 1)}


def brute_force_pairs(refs: dict[str, str], targets: dict[str, str], min_c: float, min_j: float, n: int = 3):
    """All (reference id, target id) -> (containment, jaccard) meeting either threshold, by exact sets."""
    rsets = {k: shingle_set(v, n) for k, v in refs.items()}
    out = {}
    for tid, text in targets.items():
        ts = shingle_set(text, n)
        for rid, rs in rsets.items():
            if not rs:
                continue
            ov = len(rs & ts)
            if not ov:
                continue
            c, j = ov / len(rs), ov / len(rs | ts)
            if c >= min_c or j >= min_j:
                out[(rid, tid)] = (c, j)
    return out


def _zipf_words(rng: random.Random, vocab: list[str], k: int) -> list[str]:
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    return rng.choices(vocab, weights=weights, k=k)


def make_corpus(seed: int = 7, n_ref: int = 150, n_target: int = 220):
    """Small ASCII corpus with planted overlaps; returns (refs, targets) as id -> text dicts."""
    rng = random.Random(seed)
    vocab = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ti", "va", "ze") for b in range(60)]
    refs = {f"r{i}": " ".join(_zipf_words(rng, vocab, rng.randint(4, 60))) for i in range(n_ref)}
    ids = list(refs)
    targets: dict[str, str] = {}
    for i in range(n_target):
        filler = _zipf_words(rng, vocab, rng.choice([rng.randint(5, 60), rng.randint(300, 1500)]))
        kind = i % 6
        if kind == 0:  # embedded item(s)
            for rid in rng.sample(ids, rng.randint(1, 3)):
                pos = rng.randrange(len(filler) + 1)
                filler[pos:pos] = refs[rid].split()
        elif kind == 1:  # edited copy
            words = refs[rng.choice(ids)].split()
            for _ in range(max(1, len(words) // 8)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            filler = words
        elif kind == 2:  # truncated / partial
            words = refs[rng.choice(ids)].split()
            cut = rng.randint(1, len(words))
            filler[:0] = words[:cut]
        targets[f"t{i}"] = " ".join(filler)
    return refs, targets


def write_jsonl(path: Path, rows: dict[str, str]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for k, v in rows.items():
            f.write(json.dumps({"id": k, "text": v}) + "\n")
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    refs, targets = make_corpus()
    d = tmp_path_factory.mktemp("corpus")
    return refs, targets, write_jsonl(d / "ref.jsonl", refs), write_jsonl(d / "tgt.jsonl", targets)


@pytest.fixture(scope="session")
def corpus_index(corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from provaudit import api
    from provaudit.config import IndexConfig

    out = tmp_path_factory.mktemp("idx") / "ref.idx"
    # with the LSH band table (not the default), so that the brute-force tests also cover that route, and
    # keys of more than 2 items long (``LONG_POSTINGS``), so that they also cover searching long postings
    with long_postings(2):
        api.build_index([str(corpus[2])], out, IndexConfig(band_table=True))
    return out


def near_duplicates(rows: dict[str, str], copies: int = 6, every: int = 10) -> dict[str, str]:
    """``rows`` plus, for every ``every``-th row, ``copies`` copies with one word changed each: their
    anchors are shared by ``copies + 1`` items (long keys), so these items are dependent ones."""
    out = dict(rows)
    for k, (key, text) in enumerate(rows.items()):
        if k % every:
            continue
        words = text.split()
        for j in range(copies):
            w = list(words)
            w[(j * 7) % len(w)] = f"edit{j}"
            out[f"{key}~{j}"] = " ".join(w)
    return out


@contextlib.contextmanager
def long_postings(n: int) -> Iterator[None]:
    """Indexes built inside treat keys of more than ``n`` items as long (the default, 128, leaves the
    small test corpora without any): their ``anchor_need`` and ``dep_*`` files then hold data."""
    from provaudit.index import manifest

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(manifest, "LONG_POSTINGS", n)
        yield


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's verified stamps (``index.stamps``) and cached indexes go to a directory of its own,
    for its processes and their children, never to the user's cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(autouse=True, scope="session")
def _fallback_announced() -> None:
    """In-process CLI tests assert exact stderr: the once-per-run line announcing the numpy fallback (printed
    when the compiled extension is not installed) is marked as said; tests/test_install.py checks it."""
    from provaudit import cli

    cli._announced.append("announced by the test session")


def seg(index: Path, j: int = 0) -> Path:
    """The directory of segment ``j`` of an index (its files; format 7 keeps them in segments)."""
    import json as _json

    return index / _json.loads((index / "manifest.json").read_text())["segments"][j]["name"]
