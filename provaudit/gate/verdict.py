"""The gate's decision: which evidence pairs count, the figures they give, and the limits they break.

Pure computation on evidence pairs (no I/O): ``api.check`` audits, then calls ``evaluate``;
the renderers (``terminal``, ``junit``, ``github``, ``jsonout``) print the ``Verdict``.

``evaluate`` reads the pairs once, as a stream, and keeps only what the verdict shows: counts
per status and per source, the distinct target records and reference ids with counted evidence,
per record its ``ANNOTATION_PAIRS`` strongest counted pairs, and the ``show`` strongest counted
pairs overall and per source. Its memory grows with target records and reference items, never
with pairs. Every pair with its
status is read again, in the input's order, from ``Verdict.pairs()`` (``--json``).

Example:
    >>> p = EvidencePair("post-1", "t-9", "shard.jsonl", 8, 1.0, 0.4, 30)
    >>> v = evaluate([p], [SourceCount("shard.jsonl", 100)], 50, Limits(max_contamination=0.05))
    >>> v.passed, [(r.name, r.value) for r in v.limits]
    (True, [('max-contamination', 0.01)])
"""

from __future__ import annotations

import math
import heapq
from bisect import insort
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from provaudit.errors import ConfigError
from provaudit.gate.acceptance import AllowList, Baseline

COUNTED, BASELINE, ALLOWED = "counted", "baseline", "allowed"
ANNOTATION_PAIRS = 3  # strongest counted pairs kept per record: what a GitHub annotation names
DEFAULT_SHOW = 10
EVIDENCE_COLUMNS = ("reference_id", "target_id", "target_source", "target_row", "containment", "jaccard",
                    "verbatim_tokens")  # matches.parquet columns, in EvidencePair's order


@dataclass(frozen=True, slots=True)
class Limits:
    """What ``provaudit check`` tolerates among the pairs that count (not accepted).

    Attributes:
        max_pairs: Most evidence pairs.
        max_contamination: Largest share of target records holding evidence.
        max_reference_coverage: Largest share of the reference items (those long enough to be
            evidence) found.
    Each limit that is set is checked, and fails when the figure is above it. With none set,
    ``max_pairs=0`` applies: any evidence fails the gate.
    """

    max_pairs: int | None = None
    max_contamination: float | None = None
    max_reference_coverage: float | None = None

    def __post_init__(self) -> None:
        if self.max_pairs is not None and self.max_pairs < 0:
            raise ConfigError(f"max-pairs must be >= 0, got {self.max_pairs}")
        for name in ("max_contamination", "max_reference_coverage"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and 0.0 <= v <= 1.0):
                raise ConfigError(f"{name.replace('_', '-')} must be a fraction in [0, 1], got {v}")

    def effective(self) -> Limits:
        """These limits, or ``max_pairs=0`` when none is set."""
        if self.max_pairs is None and self.max_contamination is None and self.max_reference_coverage is None:
            return Limits(max_pairs=0)
        return self


@dataclass(frozen=True, slots=True)
class EvidencePair:
    """One verified evidence pair (flagged pairs are not evidence and never reach the gate)."""

    reference_id: str
    target_id: str
    target_source: str
    target_row: int
    containment: float
    jaccard: float
    verbatim_tokens: int

    def strength(self) -> tuple[float, float, int, str, str, int]:
        """Sort key, strongest first (as report.json's top_evidence)."""
        return (-self.containment, -self.jaccard, -self.verbatim_tokens, self.reference_id, self.target_source,
                self.target_row)


@dataclass(frozen=True, slots=True)
class SourceCount:
    """A target source and the records audited in it; ``error`` when it was not read to its end."""

    source: str
    records: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LimitResult:
    """One limit checked: ``value`` is the figure, ``count``/``total`` what it was computed from."""

    name: str
    limit: int | float  # int for max-pairs, a fraction otherwise
    value: float
    count: int
    total: int

    @property
    def passed(self) -> bool:
        return self.value <= self.limit

    def describe(self) -> str:
        """E.g. ``max-pairs: 12 > 0`` or ``max-contamination: 0.0125 (25 of 2000 records) > 0.01``."""
        if self.name == "max-pairs":
            figure = f"{self.count:,}"
        else:
            unit = "records" if self.name == "max-contamination" else "reference items"
            figure = f"{self.value:.4g} ({self.count:,} of {self.total:,} {unit})"
        return f"{self.name}: {figure} {'<=' if self.passed else '>'} {self.limit_text()}"

    def limit_text(self) -> str:
        """The limit as given: ``1000000`` for a count (never ``1e+06``), ``0.001`` for a fraction."""
        return f"{self.limit:,}" if isinstance(self.limit, int) else f"{self.limit:g}"


Rank = tuple[tuple[float, float, int, str, str, int], int]  # (strength, position in the input): ties keep input order


class _Kept:
    """A pair kept in a ``_Top`` heap, ordered weakest first so that the heap's root is the one to drop."""

    __slots__ = ("rank", "pair")

    def __init__(self, rank: Rank, pair: EvidencePair) -> None:
        self.rank, self.pair = rank, pair

    def __lt__(self, other: _Kept) -> bool:
        return self.rank > other.rank


class _Top:
    """The ``n`` strongest pairs seen so far, in memory bounded by ``n``."""

    __slots__ = ("n", "heap")

    def __init__(self, n: int) -> None:
        self.n = n
        self.heap: list[_Kept] = []

    def add(self, rank: Rank, p: EvidencePair) -> None:
        if len(self.heap) < self.n:
            heapq.heappush(self.heap, _Kept(rank, p))
        elif self.n and rank < self.heap[0].rank:
            heapq.heapreplace(self.heap, _Kept(rank, p))

    def strongest_first(self) -> list[EvidencePair]:
        return [k.pair for k in sorted(self.heap, key=lambda k: k.rank)]


@dataclass
class SourceVerdict:
    """What one target source contributes: counts of its pairs and its ``show`` strongest counted ones."""

    source: str
    records: int
    error: str | None
    counted: int = 0  # pairs that count
    accepted: int = 0  # pairs accepted by the baseline or the allow-list
    records_with_evidence: int = 0  # its records holding counted pairs
    reference_items: int = 0  # distinct reference ids in its counted pairs
    top: list[EvidencePair] = field(default_factory=list)  # its strongest counted pairs, strongest first
    failed: bool = False


@dataclass
class RecordEvidence:
    """A target record holding counted pairs: its ``ANNOTATION_PAIRS`` strongest, and how many it holds."""

    source: str
    row: int
    pairs: list[EvidencePair]  # strongest first
    count: int


@dataclass
class Verdict:
    """The gate's decision and everything the renderers show.

    ``passed`` is false when a limit fails; a source ``failed`` when the gate failed and the
    source holds pairs that count (so failing sources and the exit code always agree). The
    lists hold only what is shown (``show`` pairs; a few pairs per record); ``pairs()`` reads
    every pair again.
    """

    limits: list[LimitResult]
    sources: list[SourceVerdict]
    target_records: int
    reference_items: int  # items long enough to be evidence: the coverage denominator
    statuses: dict[str, int]  # pairs per status: COUNTED, BASELINE, ALLOWED
    records_with_evidence: int  # distinct target records (source, row) holding counted pairs
    items_with_evidence: int  # distinct reference ids in counted pairs
    top: list[EvidencePair]  # the ``show`` strongest counted pairs, strongest first
    evidence_records: list[RecordEvidence]  # records with counted pairs, in the order of their strongest pair
    show: int = DEFAULT_SHOW
    baseline: Baseline | None = None
    allow: AllowList | None = None
    audit: dict[str, Any] = field(default_factory=dict)  # set by api.check: index, parameters, counts
    reread: Callable[[], Iterable[EvidencePair]] | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.limits)

    @property
    def failed_limits(self) -> list[LimitResult]:
        return [r for r in self.limits if not r.passed]

    @property
    def evidence_pairs(self) -> int:
        """Every evidence pair of the audit, counted or accepted."""
        return sum(self.statuses.values())

    @property
    def counted_pairs(self) -> int:
        return self.statuses[COUNTED]

    def accepted(self, status: str) -> int:
        """Pairs accepted by ``BASELINE`` or ``ALLOWED``."""
        return self.statuses[status]

    def pairs(self) -> Iterator[tuple[EvidencePair, str]]:
        """Every evidence pair with its status, in the order ``evaluate`` read them (for ``api.check``,
        the audit's: target source, row, reference id), read again from their source.

        Raises:
            ValueError: ``evaluate`` was given an iterator and no ``reread``.
        """
        if self.reread is None:
            raise ValueError("the pairs were read once and not kept: give evaluate a reread function")
        for p in self.reread():
            yield p, _status(p, self.baseline, self.allow)


def evidence_from_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[EvidencePair]:
    """The evidence pairs of match batches (``AuditResult.pair_batches()``), flagged ones left out, in
    their order, converted a batch at a time."""
    for b in batches:
        cols = b.to_pydict()
        for flag, *row in zip(cols["item_flag"], *(cols[name] for name in EVIDENCE_COLUMNS)):
            if not flag:
                yield EvidencePair(*row)


def _status(p: EvidencePair, baseline: Baseline | None, allow: AllowList | None) -> str:
    """The allow-list (a reviewed decision) is consulted first, then the baseline."""
    if allow is not None and allow.accepts(p.reference_id, p.target_id):
        return ALLOWED
    if baseline is not None and (p.reference_id, p.target_id) in baseline.pairs:
        return BASELINE
    return COUNTED


class _Tally:
    """One pass over the pairs: what ``Verdict`` holds, in memory bounded by records and items."""

    def __init__(self, sources: list[SourceCount], show: int, baseline: Baseline | None,
                 allow: AllowList | None) -> None:
        self.known = len(sources)
        self.by_source = {s.source: SourceVerdict(s.source, s.records, s.error) for s in sources}
        self.first: dict[str, Rank] = {}  # sources not given: placed by their strongest pair (any status)
        self.tops = {s.source: _Top(show) for s in sources}
        self.source_items: dict[str, set[str]] = {s.source: set() for s in sources}
        self.statuses = {COUNTED: 0, BASELINE: 0, ALLOWED: 0}
        self.records: dict[tuple[str, int], tuple[list[int], list[tuple[Rank, EvidencePair]]]] = {}
        self.items: dict[str, str] = {}  # reference id -> the one string object kept for it
        self.top = _Top(show)
        self.show, self.baseline, self.allow, self.seen = show, baseline, allow, 0

    def _source(self, p: EvidencePair, rank: Rank) -> SourceVerdict:
        sv = self.by_source.get(p.target_source)
        if sv is None:
            sv = self.by_source[p.target_source] = SourceVerdict(p.target_source, 0, None)
            self.tops[sv.source], self.source_items[sv.source] = _Top(self.show), set()
            self.first[sv.source] = rank
        elif sv.source in self.first and rank < self.first[sv.source]:
            self.first[sv.source] = rank
        return sv

    def add(self, p: EvidencePair) -> None:
        rank = (p.strength(), self.seen)
        self.seen += 1
        status = _status(p, self.baseline, self.allow)
        self.statuses[status] += 1
        sv = self._source(p, rank)
        if status != COUNTED:
            sv.accepted += 1
            return
        sv.counted += 1
        self.top.add(rank, p)
        self.tops[sv.source].add(rank, p)
        rid = self.items.setdefault(p.reference_id, p.reference_id)
        self.source_items[sv.source].add(rid)
        key = (sv.source, p.target_row)
        rec = self.records.get(key)
        if rec is None:
            self.records[key] = ([1], [(rank, p)])
            sv.records_with_evidence += 1
            return
        rec[0][0] += 1
        kept = rec[1]
        if len(kept) < ANNOTATION_PAIRS or rank < kept[-1][0]:
            insort(kept, (rank, p))
            del kept[ANNOTATION_PAIRS:]

    def sources(self) -> list[SourceVerdict]:
        given = list(self.by_source.values())[:self.known]
        extra = sorted(list(self.by_source.values())[self.known:], key=lambda sv: self.first[sv.source])
        for sv in given + extra:
            sv.reference_items = len(self.source_items[sv.source])
            sv.top = self.tops[sv.source].strongest_first()
        return given + extra

    def evidence_records(self) -> list[RecordEvidence]:
        ordered = sorted(self.records.items(), key=lambda kv: kv[1][1][0][0])
        return [RecordEvidence(key[0], key[1], [p for _, p in kept], n[0]) for key, (n, kept) in ordered]


def evaluate(pairs: Iterable[EvidencePair], sources: list[SourceCount], reference_items: int, limits: Limits,
             baseline: Baseline | None = None, allow: AllowList | None = None, *, show: int = DEFAULT_SHOW,
             reread: Callable[[], Iterable[EvidencePair]] | None = None) -> Verdict:
    """Decide in one pass over ``pairs``: drop accepted pairs, compute the figures of the rest, check each limit.

    Args:
        pairs: Evidence pairs of the audit (flagged pairs left out), in any order; read once.
        sources: Every target source audited, in order, with its record count.
        reference_items: Reference items long enough to be evidence (coverage denominator).
        limits: The limits (``Limits.effective`` is applied).
        baseline: Pairs of an earlier output: found again, they do not count.
        allow: Accepted reference ids and pairs: they do not count.
        show: Strongest counted pairs kept, overall and per source (what the renderers list).
        reread: Reads the same pairs again, for ``Verdict.pairs()``; a list or tuple given as
            ``pairs`` is simply kept.
    """
    if show < 0:
        raise ConfigError(f"show must be >= 0, got {show}")
    limits = limits.effective()
    if reread is None and isinstance(pairs, Sequence):
        kept = pairs
        reread = lambda: kept  # noqa: E731
    tally = _Tally(sources, show, baseline, allow)
    for p in pairs:
        tally.add(p)
    counted, hit, found = tally.statuses[COUNTED], len(tally.records), len(tally.items)
    records = sum(s.records for s in sources)
    results = []
    if limits.max_pairs is not None:
        results.append(LimitResult("max-pairs", limits.max_pairs, counted, counted, tally.seen))
    if limits.max_contamination is not None:
        results.append(LimitResult("max-contamination", limits.max_contamination, hit / records if records else 0.0,
                                   hit, records))
    if limits.max_reference_coverage is not None:
        results.append(LimitResult("max-reference-coverage", limits.max_reference_coverage,
                                   found / reference_items if reference_items else 0.0, found, reference_items))
    verdict = Verdict(results, tally.sources(), records, reference_items, tally.statuses, hit, found,
                      tally.top.strongest_first(), tally.evidence_records(), show, baseline, allow, reread=reread)
    for sv in verdict.sources:
        sv.failed = not verdict.passed and sv.counted > 0
    return verdict
