#!/usr/bin/env python3
"""Matching accuracy on real text: provaudit vs. baselines, in one reproducible run.

Pages: docstrings of the Python standard library (fixed sorted module list) plus
*.txt/*.rst/*.md files under the stdlib directory and /usr/share/doc. Quotes of
10-80 words are cut from pages disjoint from the host pages and planted into the
targets in known ways (one kind per quote); every system is scored per kind.

Truth: planted pairs, plus exact word-3-gram containment >= 0.5 (computed
exhaustively by the exact3 system). A quote with an exact match to any target
it was not planted in (a real copy in the real text, or an accidental hit of a
hard negative) is a "chance match" and is excluded from the per-kind scores.

    python scripts/eval_real.py [--pages 3000] [--quotes 2000] [--seed 1] [--out DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import inspect
import io
import json
import pkgutil
import platform
import random
import re
import shlex
import subprocess
import sys
import sysconfig
import time
import unicodedata
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable

Pair = tuple[str, str]  # (reference_id, target_id)

OWN_RECORD = ("verbatim", "case", "punctuation", "edit05", "edit10", "edit20", "truncate70")
KINDS = OWN_RECORD + ("embedded", "concatenated", "hard_negative", "unplanted")
NEGATIVE = ("hard_negative", "unplanted")
EDIT_RATES = {"edit05": 0.05, "edit10": 0.10, "edit20": 0.20}
SKIP_MODULES = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "tests",
                "idle_test", "__main__"}
MIN_DOC_WORDS, MAX_PAGE_WORDS, MIN_QUOTE, MAX_QUOTE = 40, 3000, 10, 80
MIN_SECTION_WORDS = 200  # files are cut at headings into pages of >= this many words
SYSTEMS = ("provaudit", "minhash", "exact3", "ngram13", "ngram8")
CONTAINMENT = 0.5

# ---------------------------------------------------------------- normalizer
_APOSTROPHES = re.compile("['\u2018\u2019\u02bc]")
_PUNCT = re.compile(r"[^\w\s]")  # punctuation and symbols; "_" counts as a word char


def tokens(text: str) -> list[str]:
    """NFKC, casefold, delete apostrophes, other punctuation -> space, split."""
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).casefold())
    return _PUNCT.sub(" ", text).split()


def ngrams(toks: list[str], n: int, short_whole: bool = False) -> set[str]:
    """Word n-grams; a text shorter than n yields itself as one gram if short_whole."""
    if len(toks) < n:
        return {" ".join(toks)} if short_whole and toks else set()
    return {" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1)}


# ---------------------------------------------------------------- real pages
def _doc(obj: object, seen: set[str]) -> str | None:
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str):
        return None
    doc = inspect.cleandoc(doc)
    if len(doc.split()) < MIN_DOC_WORDS or doc in seen:
        return None
    seen.add(doc)
    return doc


def _split(paragraphs: list[str], cap: int = MAX_PAGE_WORDS) -> list[str]:
    """Pack paragraphs into pages of <= cap words (hard-split longer paragraphs)."""
    pages: list[str] = []
    cur: list[str] = []
    size = 0
    for para in paragraphs:
        words = para.split()
        if size + len(words) > cap and cur:
            pages.append("\n\n".join(cur))
            cur, size = [], 0
        if len(words) > cap:
            pages += [" ".join(words[i:i + cap]) for i in range(0, len(words), cap)]
            continue
        cur.append(para)
        size += len(words)
    if cur:
        pages.append("\n\n".join(cur))
    return [p for p in pages if len(p.split()) >= MIN_DOC_WORDS]


def _paragraphs(texts: Iterable[str]) -> list[str]:
    return [p.strip() for t in texts for p in re.split(r"\n\s*\n", t) if p.strip()]


def stdlib_modules() -> list[str]:
    """Public stdlib modules (fixed sorted list) and their public submodules."""
    names: set[str] = set()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for name in sorted(sys.stdlib_module_names - SKIP_MODULES):
            if name.startswith("_"):
                continue
            try:
                mod = importlib.import_module(name)
            except BaseException:  # noqa: BLE001 - missing/platform-specific modules
                continue
            names.add(name)
            for info in pkgutil.walk_packages(getattr(mod, "__path__", []), name + ".", lambda _: None):
                if not SKIP_MODULES & set(info.name.split(".")):
                    names.add(info.name)
    return sorted(names)


def docstring_pages() -> list[tuple[str, str]]:
    """(source, text): one page per module (its doc + its functions' docs) and per
    class (its doc + its methods' docs); only docstrings of >= 40 words count.
    Plus the pydoc topic texts (the language reference shipped with the stdlib)."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for name in stdlib_modules():
            try:
                mod = importlib.import_module(name)
            except BaseException:  # noqa: BLE001
                continue
            docs = [_doc(mod, seen)]
            classes = []
            for _, obj in sorted(vars(mod).items()):
                if getattr(obj, "__module__", None) != name:
                    continue
                if inspect.isclass(obj):
                    classes.append(obj)
                elif callable(obj):
                    docs.append(_doc(obj, seen))
            out += [(f"doc:{name}", p) for p in _split(_paragraphs(d for d in docs if d))]
            for cls in classes:
                members = [v for _, v in sorted(vars(cls).items())
                           if callable(v) or isinstance(v, (property, classmethod, staticmethod))]
                cdocs = [_doc(cls, seen)] + [_doc(v, seen) for v in members]
                out += [(f"doc:{name}.{cls.__name__}", p)
                        for p in _split(_paragraphs(d for d in cdocs if d))]
    from pydoc_data.topics import topics
    out += [(f"topic:{k}", p) for k in sorted(topics) for p in _split(_paragraphs([topics[k]]))]
    return out


_RST_RULE = re.compile(r"([=\-~^*+#])\1{2,}\s*")


def _sections(text: str, min_words: int = MIN_SECTION_WORDS) -> list[str]:
    """Split a .md/.rst/.txt file at headings ("# x" or an underlined title) and pack
    consecutive sections into pages of >= min_words words."""
    lines = text.splitlines()
    starts = [0]
    for i, line in enumerate(lines):
        if re.match(r"#{1,6}\s", line):
            starts.append(i)
        elif i > 1 and _RST_RULE.fullmatch(line) and lines[i - 1].strip() \
                and not _RST_RULE.fullmatch(lines[i - 1]):
            starts.append(i - 1)
    bounds = sorted(set(starts)) + [len(lines)]
    pages: list[str] = []
    cur = ""
    for a, b in zip(bounds, bounds[1:]):
        cur += "\n".join(lines[a:b]) + "\n"
        if len(cur.split()) >= min_words:
            pages.append(cur)
            cur = ""
    if cur.strip():
        pages.append(cur)
    return pages


def file_pages(roots: list[Path]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for root in roots:
        if not root.is_dir():
            continue
        files = sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".rst", ".md")
                       and "site-packages" not in p.parts and p.is_file())
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            out += [(f"file:{path}", p) for sec in _sections(text) for p in _split(_paragraphs([sec]))]
    return out


def load_pages() -> list[tuple[str, str]]:
    seen: set[str] = set()
    pages = []
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for src, text in docstring_pages() + file_pages([stdlib, Path("/usr/share/doc")]):
        key = hashlib.sha1(" ".join(tokens(text)).encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            pages.append((src, text))
    return pages


# ---------------------------------------------------------------- quotes and planting
def cut_quotes(pages: list[str], want: int, rng: random.Random) -> list[str]:
    """Sentence-aligned fragments of 10-80 words, deduplicated, <= 1 per paragraph."""
    quotes: list[str] = []
    seen: set[tuple[str, ...]] = set()
    per_page = max(1, -(-want // max(1, len(pages))) + 1)
    for page in pages:
        paras = [p for p in _paragraphs([page]) if len(p.split()) >= MIN_QUOTE]
        rng.shuffle(paras)
        for para in paras[:per_page]:
            sents = [s for s in re.split(r"(?<=[.!?])\s+", para) if s.strip()]
            start, goal = rng.randrange(len(sents)), rng.randint(MIN_QUOTE, MAX_QUOTE)
            words: list[str] = []
            for s in sents[start:]:
                words += s.split()
                if len(words) >= goal:
                    break
            words = words[:MAX_QUOTE]
            key = tuple(tokens(" ".join(words)))
            if len(words) >= MIN_QUOTE and len(key) >= MIN_QUOTE and key not in seen:
                seen.add(key)
                quotes.append(" ".join(words))
            if len(quotes) >= want:
                return quotes
    return quotes


def vary(kind: str, quote: str, vocab: list[str], rng: random.Random) -> str:
    words = quote.split()
    if kind == "case":
        return rng.choice([str.upper, str.lower, str.title])(quote)
    if kind == "punctuation":
        if rng.random() < 0.5 and any(c in quote for c in "'\""):
            dq = iter(["\u201c", "\u201d"] * len(quote))
            return "".join("\u2019" if c == "'" else next(dq) if c == '"' else c for c in quote)
        stripped = (w.strip("!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~\u201c\u201d\u2018\u2019") for w in words)
        return " ".join(w for w in stripped if w)
    if kind == "truncate70":
        return " ".join(words[:round(0.7 * len(words))])
    if kind in EDIT_RATES:  # max(1, .): a "5%-edited" 10-word quote gets one edit
        k = max(1, round(EDIT_RATES[kind] * len(words)))
        for pos in sorted(rng.sample(range(len(words)), k), reverse=True):
            op = rng.random()
            if op < 0.6:
                words[pos] = rng.choice(vocab)
            elif op < 0.8:
                del words[pos]
            else:
                words.insert(pos, rng.choice(vocab))
        return " ".join(words)
    return quote  # verbatim


def insert_at_boundary(host: str, text: str, rng: random.Random) -> str:
    cuts = [m.start() for m in re.finditer(r"(?<=[.!?])\s+|\n\s*\n", host)] or [len(host)]
    pos = rng.choice(cuts)
    return f"{host[:pos]} {text} {host[pos:]}"


def hard_negative(host: str, quote: str, rng: random.Random) -> str:
    """Quote words shuffled and scattered + at most one fragment of <= 20% of them."""
    q = quote.split()
    f = rng.randint(0, int(0.2 * len(q)))
    s = rng.randint(0, len(q) - f)
    rest = q[:s] + q[s + f:]
    rng.shuffle(rest)
    parts = host.split(" ")
    for w in rest:
        parts.insert(rng.randint(0, len(parts)), w)
    if f:
        parts.insert(rng.randint(0, len(parts)), " ".join(q[s:s + f]))
    return " ".join(parts)


def build(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    all_pages = load_pages()
    order = list(range(len(all_pages)))
    rng.shuffle(order)
    n_hosts = min(args.pages, len(all_pages) * 4 // 5)  # keep >= 20% of pages for quotes
    if n_hosts < args.pages:
        print(f"only {len(all_pages)} pages: using {n_hosts} hosts", file=sys.stderr)
    hosts = [all_pages[i][1] for i in order[:n_hosts]]
    quote_pages = [all_pages[i][1] for i in order[n_hosts:]]
    quotes = cut_quotes(quote_pages, args.quotes, rng)
    vocab = sorted({t for p in hosts for t in tokens(p)})
    refs = {f"q{i:05d}": q for i, q in enumerate(quotes)}
    ids = list(refs)
    rng.shuffle(ids)
    kind_of = {qid: KINDS[i % len(KINDS)] for i, qid in enumerate(ids)}
    by_kind = {k: [q for q in ids if kind_of[q] == k] for k in KINDS}

    records: list[tuple[str, list[str]]] = []  # (text, planted quote ids)
    for kind in OWN_RECORD:
        records += [(vary(kind, refs[q], vocab, rng), [q]) for q in by_kind[kind]]
    free = list(range(len(hosts)))  # host indices not yet modified
    rng.shuffle(free)
    modified: dict[int, tuple[str, list[str]]] = {}
    for q in by_kind["embedded"]:
        h = free.pop()
        modified[h] = (insert_at_boundary(hosts[h], refs[q], rng), [q])
    conc = by_kind["concatenated"]
    groups: list[list[str]] = []
    while conc:
        size = rng.randint(3, 5)
        groups.append(conc[:size])
        conc = conc[size:]
    if len(groups) > 1 and len(groups[-1]) < 3:
        groups[-2] += groups.pop()
    for g in groups:
        h = free.pop()
        modified[h] = (insert_at_boundary(hosts[h], " ".join(refs[q] for q in g), rng), g)
    hn_hosts = {}
    for q in by_kind["hard_negative"]:
        h = free.pop()
        modified[h] = (hard_negative(hosts[h], refs[q], rng), [])
        hn_hosts[h] = q
    host_recs = [modified.get(h, (hosts[h], [])) for h in range(len(hosts))]
    pool = [(text, qs, hn_hosts.get(i)) for i, (text, qs) in enumerate(host_recs)]
    pool += [(text, qs, None) for text, qs in records]
    rng.shuffle(pool)
    targets: dict[str, str] = {}
    planted: dict[str, set[Pair]] = {k: set() for k in KINDS}
    for i, (text, qs, hn_q) in enumerate(pool):
        tid = f"t{i:06d}"
        targets[tid] = text
        for q in qs:
            planted[kind_of[q]].add((q, tid))
        if hn_q is not None:
            planted["hard_negative"].add((hn_q, tid))
    n_src = Counter(_family(src) for src, _ in all_pages)
    return dict(refs=refs, targets=targets, kind_of=kind_of, planted=planted,
                provenance=dict(python=platform.python_version(), seed=args.seed,
                                pages_available=len(all_pages), pages_by_source=dict(sorted(n_src.items())),
                                host_pages=len(hosts), quote_pool_pages=len(quote_pages),
                                quotes=len(refs), targets=len(targets),
                                modified_hosts=len(modified)))


def _family(src: str) -> str:
    """doc / topic / file:stdlib / file:<usr-share-doc package> (big ones only)."""
    if not src.startswith("file:"):
        return src.split(":")[0]
    if not src.startswith("file:/usr/share/doc/"):
        return "file:stdlib"
    pkg = src.split("/")[4]
    return f"file:{pkg}" if pkg in ("nodejs", "git") else "file:other-usr-share-doc"


def write_jsonl(path: Path, rows: Iterable[dict]) -> str:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()[:16]


# ---------------------------------------------------------------- systems
def run_exact3(refs: dict[str, str], targets: dict[str, str]) -> dict[Pair, float]:
    """Inverted index of every reference word 3-gram; exact containment >= 0.5."""
    index: dict[str, list[str]] = defaultdict(list)
    size = {}
    for rid, text in refs.items():
        grams = ngrams(tokens(text), 3)
        size[rid] = len(grams)
        for g in grams:
            index[g].append(rid)
    out = {}
    for tid, text in targets.items():
        hits: dict[str, int] = defaultdict(int)
        for g in ngrams(tokens(text), 3):
            for rid in index.get(g, ()):
                hits[rid] += 1
        for rid, h in hits.items():
            if h / size[rid] >= CONTAINMENT:
                out[(rid, tid)] = h / size[rid]
    return out


def run_ngram_any(refs: dict[str, str], targets: dict[str, str], n: int) -> set[Pair]:
    """GPT-3 style: any shared word n-gram (a reference shorter than n must occur whole)."""
    index: dict[str, list[str]] = defaultdict(list)
    lengths = {n}
    for rid, text in refs.items():
        toks = tokens(text)
        lengths.add(min(n, len(toks)))
        for g in ngrams(toks, n, short_whole=True):
            index[g].append(rid)
    out = set()
    for tid, text in targets.items():
        toks = tokens(text)
        for m in sorted(lengths):
            for g in ngrams(toks, m):
                out.update((rid, tid) for rid in index.get(g, ()))
    return out


def run_minhash(refs: dict[str, str], targets: dict[str, str]) -> set[Pair]:
    from datasketch import MinHash, MinHashLSH

    def sketches(texts: dict[str, str]) -> list[tuple[str, MinHash]]:
        keys = [k for k, t in texts.items() if ngrams(tokens(t), 5, short_whole=True)]
        grams = [[g.encode() for g in ngrams(tokens(texts[k]), 5, short_whole=True)] for k in keys]
        return list(zip(keys, MinHash.bulk(grams, num_perm=128)))

    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    with lsh.insertion_session() as session:
        for rid, m in sketches(refs):
            session.insert(rid, m)
    return {(rid, tid) for tid, m in sketches(targets) for rid in lsh.query(m)}


def run_provaudit(out: Path, args: argparse.Namespace, timings: dict[str, float]) -> set[Pair] | None:
    base = shlex.split(args.provaudit_cmd)
    steps = {"index": base + ["index", str(out / "reference.jsonl"), "-o", str(out / "idx"), "--force"]
             + shlex.split(args.index_args),
             "audit": base + ["audit", str(out / "idx"), str(out / "targets.jsonl"), "-o",
                              str(out / "audit"), "--force"] + shlex.split(args.audit_args)}
    for step, cmd in steps.items():
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError as exc:
            print(f"provaudit unavailable: {exc}", file=sys.stderr)
            return None
        timings[f"provaudit_{step}_s"] = round(time.perf_counter() - t0, 2)
        if proc.returncode:
            print(f"provaudit {step} failed ({proc.returncode}): {shlex.join(cmd)}\n"
                  f"{proc.stderr[-2000:]}", file=sys.stderr)
            return None
    import pyarrow.parquet as pq
    table = pq.read_table(out / "audit" / "matches.parquet", columns=["reference_id", "target_id"])
    return {(str(r), str(t)) for r, t in zip(*(table.column(c).to_pylist() for c in table.column_names))}


# ---------------------------------------------------------------- scoring
def score(found: set[Pair], data: dict, exact: dict[Pair, float], chance: set[str]) -> dict[str, float]:
    planted, kind_of = data["planted"], data["kind_of"]
    positives = set().union(*(planted[k] for k in KINDS if k not in NEGATIVE))
    row: dict[str, float] = {}
    for kind in KINDS:
        if kind == "unplanted":
            qs = [q for q, k in kind_of.items() if k == kind and q not in chance]
            flagged = {r for r, _ in found}
            row[kind] = sum(q in flagged for q in qs) / max(1, len(qs))
        else:
            pairs = [p for p in planted[kind] if kind not in NEGATIVE or p[0] not in chance]
            row[kind] = sum(p in found for p in pairs) / max(1, len(pairs))
    row["false_pos"] = len(found - positives - exact.keys())
    row["pairs"] = len(found)
    return row


def check_truth(data: dict, exact: dict[Pair, float], rng: random.Random, samples: int = 3000) -> list[str]:
    """Brute-force spot check of exact3 plus must-hold recalls for normalizer-invariant kinds."""
    problems = []
    refs, targets = data["refs"], data["targets"]
    rg = {r: ngrams(tokens(t), 3) for r, t in refs.items()}
    rids, tids = sorted(refs), sorted(targets)
    candidates = [(rng.choice(rids), rng.choice(tids)) for _ in range(samples)] + sorted(exact)[:samples]
    for rid, tid in candidates:
        c = len(rg[rid] & ngrams(tokens(targets[tid]), 3)) / len(rg[rid])
        if (c >= CONTAINMENT) != ((rid, tid) in exact):
            problems.append(f"exact3 disagrees with brute force on {rid},{tid} (c={c:.3f})")
    for kind in ("verbatim", "case", "punctuation", "embedded", "concatenated"):
        missed = [p for p in sorted(data["planted"][kind]) if p not in exact]
        problems += [f"{kind}: planted pair {p} has containment < 0.5" for p in missed[:5]]
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=3000, help="host pages in the target corpus")
    ap.add_argument("--quotes", type=int, default=2000, help="reference quotes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/provaudit-eval"))
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS))
    ap.add_argument("--provaudit-cmd", default="provaudit")
    ap.add_argument("--index-args", default="", help="extra args for `provaudit index`")
    ap.add_argument("--audit-args", default="", help="extra args for `provaudit audit`")
    ap.add_argument("--json", type=Path, help="also dump the table here")
    args = ap.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    if unknown := set(systems) - set(SYSTEMS):
        ap.error(f"unknown systems: {sorted(unknown)}")

    t0 = time.perf_counter()
    data = build(args)
    prov = data["provenance"]
    prov["build_s"] = round(time.perf_counter() - t0, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    prov["reference_sha256"] = write_jsonl(args.out / "reference.jsonl",
                                           ({"id": k, "text": v} for k, v in data["refs"].items()))
    prov["targets_sha256"] = write_jsonl(args.out / "targets.jsonl",
                                         ({"id": k, "text": v} for k, v in data["targets"].items()))

    runners: dict[str, Callable[[], set[Pair] | None]] = {
        "provaudit": lambda: run_provaudit(args.out, args, prov),
        "minhash": lambda: run_minhash(data["refs"], data["targets"]),
        "ngram13": lambda: run_ngram_any(data["refs"], data["targets"], 13),
        "ngram8": lambda: run_ngram_any(data["refs"], data["targets"], 8),
    }
    t1 = time.perf_counter()
    exact = run_exact3(data["refs"], data["targets"])  # always needed: it is the truth
    exact_s = time.perf_counter() - t1
    found: dict[str, set[Pair] | None] = {}
    seconds: dict[str, float] = {}
    for name in systems:
        t1 = time.perf_counter()
        found[name] = set(exact) if name == "exact3" else runners[name]()
        seconds[name] = exact_s if name == "exact3" else time.perf_counter() - t1

    # Chance matches: exact hit on a target the quote was not planted in.
    positives = set().union(*(data["planted"][k] for k in KINDS if k not in NEGATIVE))
    chance = {r for (r, t) in exact if (r, t) not in positives}
    kind_of = data["kind_of"]
    excluded = {k: sum(kind_of[q] == k for q in chance) for k in KINDS}
    n_kind = {k: sum(v == k for v in kind_of.values()) for k in KINDS}
    with open(args.out / "truth.jsonl", "w") as fh:
        planted_to: dict[str, list[str]] = defaultdict(list)
        for kind in KINDS:
            for r, t in sorted(data["planted"][kind]):
                planted_to[r].append(t)
        for q in data["refs"]:
            exact_t = sorted(t for (r, t) in exact if r == q) if q in chance else []
            fh.write(json.dumps({"reference_id": q, "kind": kind_of[q], "target_ids": planted_to[q],
                                 "chance_match": q in chance, "chance_target_ids": exact_t}) + "\n")

    problems = check_truth(data, exact, random.Random(args.seed))
    rows = {name: score(f, data, exact, chance) for name, f in found.items() if f is not None}
    for name in rows:
        rows[name]["wall_s"] = round(seconds[name], 2)
    prov["total_s"] = round(time.perf_counter() - t0, 2)

    print("provenance: " + ", ".join(f"{k}={v}" for k, v in prov.items()))
    cols = list(rows)
    print(f"\n{'kind':<14}{'n':>6}{'chance':>7}" + "".join(f"{c:>11}" for c in cols))
    for kind in list(KINDS) + ["false_pos", "pairs", "wall_s"]:
        counts = f"{n_kind[kind]:>6}{excluded[kind]:>7}" if kind in KINDS else " " * 13
        cells = "".join(f"{rows[c][kind]:>11.3f}" if kind in KINDS else f"{rows[c][kind]:>11g}" for c in cols)
        print(f"{kind:<14}{counts}{cells}")
    print("\ncells: recall of planted pairs; hard_negative = share of pairs flagged; unplanted = share "
          "of quotes reported anywhere; false_pos = reported pairs neither planted nor exact-3gram true "
          "(includes flagged hard negatives). chance = quotes with an exact-3gram match to a target they "
          "were not planted in (real copies in the real text); left out of the hard_negative/unplanted rows.")
    for name, f in found.items():
        if f is None:
            print(f"{name}: not run (see stderr)")
    for p in problems:
        print("TRUTH CHECK FAILED:", p)
    if args.json:
        args.json.write_text(json.dumps({"provenance": prov, "n": n_kind, "excluded": excluded,
                                         "systems": rows, "truth_problems": problems}, indent=2))


if __name__ == "__main__":
    main()
