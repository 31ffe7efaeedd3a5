#!/usr/bin/env python3
"""Matching accuracy on real text: provaudit vs. baselines, one reproducible run.

Pages: Python stdlib docstrings (fixed sorted module list) and pydoc topics, plus
*.txt/*.rst/*.md files under the stdlib directory and /usr/share/doc cut at headings.
Quotes of 10-80 words come from pages disjoint from the hosts and are planted in
known ways (one kind per quote). Truth: the planted pairs plus exact word-3-gram
containment >= 0.5 (the exact3 system). A quote with an exact match to a target it
was not planted in (a real copy in the real text) is a "chance match": counted,
and left out of the hard_negative/unplanted rows.

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
import shutil
import string
import subprocess
import sys
import sysconfig
import time
import unicodedata
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable

Pair = tuple[str, str]  # (reference_id, target_id)
Row = dict[str, float]  # one system's column of the table

OWN_RECORD = ("verbatim", "case", "punctuation", "edit05", "edit10", "edit20", "truncate70")
KINDS = OWN_RECORD + ("embedded", "concatenated", "hard_negative", "unplanted")
NEGATIVE = ("hard_negative", "unplanted")
EDIT_RATES = {"edit05": 0.05, "edit10": 0.10, "edit20": 0.20}
SYSTEMS = ("provaudit", "minhash", "exact3", "ngram13", "ngram8")
SKIP_MODULES = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo",
                "test", "tests", "idle_test", "__main__"}
MIN_DOC_WORDS, MAX_PAGE_WORDS, MIN_SECTION_WORDS = 40, 3000, 200
MIN_QUOTE, MAX_QUOTE = 10, 80
CONTAINMENT = 0.5
GROSS = 0.25  # a false positive below this exact containment is "gross", not borderline

# ---------------------------------------------------------------- baseline normalizer
# Unicode punctuation (P*, including "_") and symbols (S*) -> space; apostrophes deleted.
_TABLE: dict[int, str | None] = {cp: " " for cp in range(sys.maxunicode + 1)
                                 if unicodedata.category(chr(cp))[0] in "PS"}
_TABLE.update({ord(c): None for c in "'\u2018\u2019\u02bc"})


def tokens(text: str) -> list[str]:
    """NFKC, casefold, delete apostrophes, other punctuation -> space, split on whitespace."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_TABLE).split()


def ngrams(toks: list[str], n: int, short_whole: bool = False) -> set[str]:
    """Word n-grams; a text shorter than n yields itself as one gram if short_whole."""
    if len(toks) < n:
        return {" ".join(toks)} if short_whole and toks else set()
    return {" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1)}


# ---------------------------------------------------------------- real pages
def _paragraphs(texts: Iterable[str]) -> list[str]:
    return [p.strip() for t in texts for p in re.split(r"\n\s*\n", t) if p.strip()]


def _split(paragraphs: list[str], cap: int = MAX_PAGE_WORDS) -> list[str]:
    """Pack paragraphs into pages of <= cap words (hard-split longer paragraphs)."""
    pages: list[str] = []
    cur: list[str] = []
    for para in paragraphs:
        words = para.split()
        if cur and sum(len(c.split()) for c in cur) + len(words) > cap:
            pages.append("\n\n".join(cur))
            cur = []
        if len(words) > cap:
            pages += [" ".join(words[i:i + cap]) for i in range(0, len(words), cap)]
        else:
            cur.append(para)
    pages += ["\n\n".join(cur)] if cur else []
    return [p for p in pages if len(p.split()) >= MIN_DOC_WORDS]


def _import_all() -> list[tuple[str, object]]:
    """Public stdlib modules (fixed sorted name list) and their public submodules."""
    mods: dict[str, object] = {}

    def add(name: str) -> object | None:
        try:
            mods[name] = importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - missing or platform-specific modules
            return None
        return mods[name]

    for name in sorted(sys.stdlib_module_names - SKIP_MODULES):
        if not name.startswith("_") and (mod := add(name)) is not None:
            for info in pkgutil.walk_packages(getattr(mod, "__path__", []), name + ".", lambda _: None):
                if not SKIP_MODULES & set(info.name.split(".")):
                    add(info.name)
    return sorted(mods.items())


def docstring_pages() -> list[tuple[str, str]]:
    """(source, text): one page per module (its doc + its functions' docs) and one per class
    (its doc + its methods' docs), from docstrings of >= 40 words, each used once; plus the
    pydoc topics (the language reference shipped with the stdlib)."""
    seen: set[str] = set()

    def doc(obj: object) -> str | None:
        d = getattr(obj, "__doc__", None)
        d = inspect.cleandoc(d) if isinstance(d, str) else ""
        if len(d.split()) < MIN_DOC_WORDS or d in seen:
            return None
        seen.add(d)
        return d

    def pages(src: str, docs: list[str | None]) -> list[tuple[str, str]]:
        return [(src, p) for p in _split(_paragraphs(d for d in docs if d))]

    out: list[tuple[str, str]] = []
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for name, mod in _import_all():
            own = [o for _, o in sorted(vars(mod).items()) if getattr(o, "__module__", None) == name]
            classes = [o for o in own if inspect.isclass(o)]
            funcs = [o for o in own if callable(o) and not inspect.isclass(o)]
            out += pages(f"doc:{name}", [doc(mod)] + [doc(f) for f in funcs])
            for cls in classes:
                members = [v for _, v in sorted(vars(cls).items())
                           if callable(v) or isinstance(v, (property, classmethod, staticmethod))]
                out += pages(f"doc:{name}.{cls.__name__}", [doc(cls)] + [doc(v) for v in members])
    from pydoc_data.topics import topics
    return out + [p for k in sorted(topics) for p in pages(f"topic:{k}", [topics[k]])]


_RST_RULE = re.compile(r"([=\-~^*+#])\1{2,}\s*")


def _sections(text: str) -> list[str]:
    """Cut a doc file at headings ("# x" or an underlined title), packing consecutive
    sections into pages of >= MIN_SECTION_WORDS words."""
    lines = text.splitlines()
    starts = {0}
    for i, line in enumerate(lines):
        if re.match(r"#{1,6}\s", line):
            starts.add(i)
        elif i > 1 and _RST_RULE.fullmatch(line) and lines[i - 1].strip() \
                and not _RST_RULE.fullmatch(lines[i - 1]):
            starts.add(i - 1)
    bounds = sorted(starts) + [len(lines)]
    pages: list[str] = []
    cur = ""
    for a, b in zip(bounds, bounds[1:]):
        cur += "\n".join(lines[a:b]) + "\n"
        if len(cur.split()) >= MIN_SECTION_WORDS:
            pages, cur = pages + [cur], ""
    return pages + ([cur] if cur.strip() else [])


def file_pages(roots: list[Path], exclude: str | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for root in (r for r in roots if r.is_dir()):
        for path in sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".rst", ".md")
                           and "site-packages" not in p.parts and p.is_file()
                           and not (exclude and re.search(exclude, str(p)))):
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            out += [(f"file:{path}", p) for sec in _sections(text) for p in _split(_paragraphs([sec]))]
    return out


def load_pages(exclude: str | None = None) -> list[tuple[str, str]]:
    """All pages in a fixed order, deduplicated on normalized text."""
    seen: set[str] = set()
    pages = []
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path("/usr/share/doc")]
    for src, text in docstring_pages() + file_pages(roots, exclude):
        key = hashlib.sha1(" ".join(tokens(text)).encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            pages.append((src, text))
    return pages


def _family(src: str) -> str:
    """doc / topic / file:stdlib / <package> for files under /usr/share/doc."""
    if src.startswith("file:/usr/share/doc/"):
        return src.split("/")[4]
    return "file:stdlib" if src.startswith("file:") else src.split(":")[0]


# ---------------------------------------------------------------- quotes and planting
def cut_quotes(pages: list[tuple[str, str]], want: int, rng: random.Random) -> list[tuple[str, str]]:
    """(source, quote): sentence-aligned fragments of 10-80 words, deduplicated, <= 1 per paragraph."""
    quotes: list[tuple[str, str]] = []
    seen: set[tuple[str, ...]] = set()
    per_page = -(-want // max(1, len(pages))) + 1
    for src, page in pages:
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
                quotes.append((src, " ".join(words)))
            if len(quotes) >= want:
                return quotes
    return quotes


def vary(kind: str, quote: str, vocab: list[str], rng: random.Random) -> str:
    """The record planted for an own-record kind."""
    words = quote.split()
    if kind == "case":
        return rng.choice([str.upper, str.lower, str.title])(quote)
    if kind == "punctuation":  # swap quote characters, or strip punctuation at word edges
        if rng.random() < 0.5 and any(c in quote for c in "'\""):
            dq = iter(["\u201c", "\u201d"] * len(quote))
            return "".join("\u2019" if c == "'" else next(dq) if c == '"' else c for c in quote)
        stripped = (w.strip(string.punctuation + "\u201c\u201d\u2018\u2019") for w in words)
        return " ".join(w for w in stripped if w)
    if kind == "truncate70":
        return " ".join(words[:round(0.7 * len(words))])
    if kind in EDIT_RATES:  # max(1, .): a "5%-edited" 10-word quote still gets one edit
        for pos in sorted(rng.sample(range(len(words)), max(1, round(EDIT_RATES[kind] * len(words)))),
                          reverse=True):
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
    """The quote's words shuffled and scattered, plus at most one fragment of <= 20% of them."""
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


def build(args: argparse.Namespace) -> dict[str, Any]:
    """Cut quotes from non-host pages, plant them (one kind per quote), shuffle the targets."""
    rng = random.Random(args.seed)
    all_pages = load_pages(args.exclude)
    order = list(range(len(all_pages)))
    rng.shuffle(order)
    n_hosts = min(args.pages, len(all_pages) * 4 // 5)  # keep >= 20% of the pages for quotes
    if n_hosts < args.pages:
        print(f"only {len(all_pages)} pages: using {n_hosts} host pages", file=sys.stderr)
    hosts = [all_pages[i][1] for i in order[:n_hosts]]
    quotes = cut_quotes([all_pages[i] for i in order[n_hosts:]], args.quotes, rng)
    refs = {f"q{i:05d}": q for i, (_, q) in enumerate(quotes)}
    source = {f"q{i:05d}": _family(s) for i, (s, _) in enumerate(quotes)}
    vocab = sorted({t for p in hosts for t in tokens(p) if t.isalpha()})  # words, not hashes or numbers
    ids = list(refs)
    rng.shuffle(ids)
    kind_of = {q: KINDS[i % len(KINDS)] for i, q in enumerate(ids)}
    by_kind = {k: [q for q in ids if kind_of[q] == k] for k in KINDS}

    # records: (text, quote ids planted as positives, quote id planted as a hard negative)
    recs: list[tuple[str, list[str], str | None]] = [
        (vary(k, refs[q], vocab, rng), [q], None) for k in OWN_RECORD for q in by_kind[k]]
    groups: list[list[str]] = []
    conc = by_kind["concatenated"]
    while conc:
        n = rng.randint(3, 5)
        groups, conc = groups + [conc[:n]], conc[n:]
    if len(groups) > 1 and len(groups[-1]) < 3:
        groups[-2] += groups.pop()
    free = list(range(n_hosts))
    rng.shuffle(free)
    modified: dict[int, tuple[str, list[str], str | None]] = {}
    for g in [[q] for q in by_kind["embedded"]] + groups:
        h = free.pop()
        modified[h] = (insert_at_boundary(hosts[h], " ".join(refs[q] for q in g), rng), g, None)
    for q in by_kind["hard_negative"]:
        h = free.pop()
        modified[h] = (hard_negative(hosts[h], refs[q], rng), [], q)
    recs += [modified.get(h, (hosts[h], [], None)) for h in range(n_hosts)]
    rng.shuffle(recs)
    targets = {f"t{i:06d}": text for i, (text, _, _) in enumerate(recs)}
    planted: dict[str, set[Pair]] = {k: set() for k in KINDS}
    for tid, (_, qs, hn) in zip(targets, recs):
        for q in qs + ([hn] if hn else []):
            planted[kind_of[q]].add((q, tid))
    prov = dict(python=platform.python_version(), seed=args.seed, exclude=args.exclude,
                pages_available=len(all_pages),
                pages_by_source=dict(Counter(_family(s) for s, _ in all_pages).most_common(6)),
                host_pages=n_hosts, quote_pool_pages=len(all_pages) - n_hosts, quotes=len(refs),
                quotes_by_source=dict(Counter(source.values()).most_common(6)),
                targets=len(targets), modified_hosts=len(modified))
    return dict(refs=refs, targets=targets, kind_of=kind_of, source=source, planted=planted, provenance=prov)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> str:
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
        hits: Counter[str] = Counter(rid for g in ngrams(tokens(text), 3) for rid in index.get(g, ()))
        out.update({(rid, tid): h / size[rid] for rid, h in hits.items() if h / size[rid] >= CONTAINMENT})
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
    out: set[Pair] = set()
    for tid, text in targets.items():
        toks = tokens(text)
        out.update((rid, tid) for m in sorted(lengths) for g in ngrams(toks, m) for rid in index.get(g, ()))
    return out


def run_minhash(refs: dict[str, str], targets: dict[str, str]) -> set[Pair]:
    """datasketch MinHashLSH, Jaccard threshold 0.5, 128 permutations, word 5-grams."""
    from datasketch import MinHash, MinHashLSH

    def sketches(texts: dict[str, str]) -> list[tuple[str, MinHash]]:
        grams = {k: [g.encode() for g in ngrams(tokens(t), 5, short_whole=True)] for k, t in texts.items()}
        keys = [k for k, g in grams.items() if g]
        return list(zip(keys, MinHash.bulk([grams[k] for k in keys], num_perm=128)))

    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    with lsh.insertion_session() as session:
        for rid, m in sketches(refs):
            session.insert(rid, m)
    return {(rid, tid) for tid, m in sketches(targets) for rid in lsh.query(m)}


def run_provaudit(out: Path, args: argparse.Namespace, timings: dict[str, Any]) -> set[Pair] | None:
    """The provaudit CLI: index the reference, audit the targets, read matches.parquet."""
    base = shlex.split(args.provaudit_cmd)
    if not shutil.which(base[0]):
        print(f"provaudit unavailable: {base[0]!r} not found", file=sys.stderr)
        return None
    for step, cmd in (("index", [str(out / "reference.jsonl"), "-o", str(out / "idx"), "--force",
                                 *shlex.split(args.index_args)]),
                      ("audit", [str(out / "idx"), str(out / "targets.jsonl"), "-o", str(out / "audit"), "--force",
                                 *shlex.split(args.audit_args)])):
        t0 = time.perf_counter()
        proc = subprocess.run([*base, step, *cmd], capture_output=True, text=True)
        timings[f"provaudit_{step}_s"] = round(time.perf_counter() - t0, 2)
        if proc.returncode:
            print(f"provaudit {step} failed ({proc.returncode}):\n{proc.stderr[-2000:]}", file=sys.stderr)
            return None
    import pyarrow.parquet as pq
    table = pq.read_table(out / "audit" / "matches.parquet", columns=["reference_id", "target_id"])
    return set(zip(map(str, table.column(0).to_pylist()), map(str, table.column(1).to_pylist())))


# ---------------------------------------------------------------- scoring
class Truth:
    def __init__(self, data: dict[str, Any], exact: dict[Pair, float]) -> None:
        self.data, self.exact = data, exact
        self.planted: dict[str, set[Pair]] = data["planted"]
        self.positives = set().union(*(self.planted[k] for k in KINDS if k not in NEGATIVE))
        self.chance = {r for r, t in exact if (r, t) not in self.positives}
        self.grams = {k: ngrams(tokens(v), 3) for d in (data["refs"], data["targets"]) for k, v in d.items()}

    def containment(self, rid: str, tid: str) -> float:
        return len(self.grams[rid] & self.grams[tid]) / len(self.grams[rid])

    def score(self, found: set[Pair]) -> Row:
        row: Row = {}
        for kind in KINDS:
            if kind == "unplanted":
                qs = [q for q, k in self.data["kind_of"].items() if k == kind and q not in self.chance]
                flagged = {r for r, _ in found}
                row[kind] = sum(q in flagged for q in qs) / max(1, len(qs))
            else:
                pairs = [p for p in self.planted[kind] if kind not in NEGATIVE or p[0] not in self.chance]
                row[kind] = sum(p in found for p in pairs) / max(1, len(pairs))
        fps = found - self.positives - self.exact.keys()
        row["false_pos"] = len(fps)
        row["fp_gross"] = sum(self.containment(r, t) < GROSS for r, t in fps)
        row["missed_exact"] = len(self.exact.keys() - found)
        row["pairs"] = len(found)
        return row

    def check(self, rng: random.Random, n_refs: int = 100) -> list[str]:
        """Brute force (every target) for a sample of quotes, and must-hold planted pairs."""
        problems = []
        for rid in rng.sample(sorted(self.data["refs"]), min(n_refs, len(self.data["refs"]))):
            for tid in self.data["targets"]:
                c = self.containment(rid, tid)
                if (c >= CONTAINMENT) != ((rid, tid) in self.exact):
                    problems.append(f"exact3 disagrees with brute force on {rid},{tid} (c={c:.3f})")
        for kind in ("verbatim", "case", "punctuation", "embedded", "concatenated"):
            problems += [f"{kind}: planted pair {p} has containment < 0.5"
                         for p in sorted(self.planted[kind]) if p not in self.exact]
        return problems


def report(prov: dict[str, Any], rows: dict[str, Row], n_kind: Counter[str], chance_n: Counter[str],
           problems: list[str]) -> None:
    print("provenance: " + ", ".join(f"{k}={v}" for k, v in prov.items()))
    print(f"\n{'kind':<14}{'n':>6}{'chance':>7}" + "".join(f"{c:>11}" for c in rows))
    for kind in KINDS + ("false_pos", "fp_gross", "missed_exact", "pairs", "wall_s"):
        counts = f"{n_kind[kind]:>6}{chance_n[kind]:>7}" if kind in KINDS else " " * 13
        fmt = ">11.3f" if kind in KINDS else ">11g"
        print(f"{kind:<14}{counts}" + "".join(f"{r[kind]:{fmt}}" for r in rows.values()))
    print(f"\ncells: recall of planted pairs; hard_negative: share of its pairs flagged; unplanted: share of its "
          f"quotes reported anywhere; false_pos: pairs neither planted nor exact-3gram true (incl. flagged hard "
          f"negatives); fp_gross: those with exact containment < {GROSS}; missed_exact: exact-3gram-true pairs "
          f"not reported; chance: see the module docstring.")
    for p in problems:
        print("TRUTH CHECK FAILED:", p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=3000, help="host pages in the target corpus")
    ap.add_argument("--quotes", type=int, default=2000, help="reference quotes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/provaudit-eval"))
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    ap.add_argument("--exclude", help="regex: skip doc files whose path matches, e.g. '(?i)changelog|relnotes'")
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
    refs, targets, kind_of = data["refs"], data["targets"], data["kind_of"]
    prov = data["provenance"]
    prov["build_s"] = round(time.perf_counter() - t0, 2)
    args.out.mkdir(parents=True, exist_ok=True)
    prov["reference_sha256"] = write_jsonl(args.out / "reference.jsonl",
                                           ({"id": k, "text": v} for k, v in refs.items()))
    prov["targets_sha256"] = write_jsonl(args.out / "targets.jsonl",
                                         ({"id": k, "text": v} for k, v in targets.items()))

    runners: dict[str, Callable[[], set[Pair] | None]] = {
        "provaudit": lambda: run_provaudit(args.out, args, prov),
        "minhash": lambda: run_minhash(refs, targets),
        "exact3": lambda: set(run_exact3(refs, targets)),
        "ngram13": lambda: run_ngram_any(refs, targets, 13),
        "ngram8": lambda: run_ngram_any(refs, targets, 8),
    }
    truth = Truth(data, run_exact3(refs, targets))
    rows: dict[str, Row] = {}
    for name in systems:
        t1 = time.perf_counter()
        found = runners[name]()
        if found is None:
            print(f"{name}: not run (see stderr)", file=sys.stderr)
            continue
        rows[name] = {"wall_s": round(time.perf_counter() - t1, 2), **truth.score(found)}
    problems = truth.check(random.Random(args.seed))
    prov["total_s"] = round(time.perf_counter() - t0, 2)
    n_kind, chance_n = Counter(kind_of.values()), Counter(kind_of[q] for q in truth.chance)
    report(prov, rows, n_kind, chance_n, problems)

    rows_out = {q: {"reference_id": q, "kind": kind_of[q], "source": data["source"][q], "target_ids": [],
                    "chance_match": q in truth.chance, "exact_target_ids": []} for q in refs}
    for key, pairs in (("target_ids", set().union(*truth.planted.values())), ("exact_target_ids", truth.exact)):
        for r, t in sorted(pairs):
            rows_out[r][key].append(t)
    write_jsonl(args.out / "truth.jsonl", rows_out.values())
    if args.json:
        args.json.write_text(json.dumps({"provenance": prov, "n": n_kind, "chance": chance_n,
                                         "systems": rows, "truth_problems": problems}, indent=2))


if __name__ == "__main__":
    main()
