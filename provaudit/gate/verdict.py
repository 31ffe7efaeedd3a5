"""The gate's decision: which evidence pairs count, the figures they give, and the limits they break.

Pure computation on evidence pairs (no I/O): ``api.check`` audits, then calls ``evaluate``;
the renderers (``terminal``, ``junit``, ``github``, ``json_out``) print the ``Verdict``.

Example:
    >>> p = EvidencePair("post-1", "t-9", "shard.jsonl", 8, 1.0, 0.4, 30)
    >>> v = evaluate([p], [SourceCount("shard.jsonl", 100)], 50, Limits(max_contamination=0.05))
    >>> v.passed, [(r.name, r.value) for r in v.limits]
    (True, [('max-contamination', 0.01)])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from provaudit.errors import ConfigError
from provaudit.gate.acceptance import AllowList, Baseline

COUNTED, BASELINE, ALLOWED = "counted", "baseline", "allowed"


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


@dataclass
class SourceVerdict:
    """What one target source contributes: its counted pairs, strongest first."""

    source: str
    records: int
    error: str | None
    pairs: list[EvidencePair] = field(default_factory=list)
    accepted: int = 0
    failed: bool = False

    @property
    def records_with_evidence(self) -> int:
        return len({p.target_row for p in self.pairs})

    @property
    def reference_items(self) -> int:
        return len({p.reference_id for p in self.pairs})


@dataclass
class Verdict:
    """The gate's decision and everything the renderers show.

    ``passed`` is false when a limit fails; a source ``failed`` when the gate failed and the
    source holds pairs that count (so failing sources and the exit code always agree).
    """

    limits: list[LimitResult]
    pairs: list[tuple[EvidencePair, str]]  # every evidence pair, strongest first, with its status
    sources: list[SourceVerdict]
    target_records: int
    reference_items: int  # items long enough to be evidence: the coverage denominator
    baseline: Baseline | None = None
    allow: AllowList | None = None
    audit: dict[str, Any] = field(default_factory=dict)  # set by api.check: index, parameters, counts

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.limits)

    @property
    def failed_limits(self) -> list[LimitResult]:
        return [r for r in self.limits if not r.passed]

    @property
    def counted(self) -> list[EvidencePair]:
        return [p for p, status in self.pairs if status == COUNTED]

    def accepted(self, status: str) -> int:
        """Pairs accepted by ``BASELINE`` or ``ALLOWED``."""
        return sum(1 for _, s in self.pairs if s == status)


def _status(p: EvidencePair, baseline: Baseline | None, allow: AllowList | None) -> str:
    """The allow-list (a reviewed decision) is consulted first, then the baseline."""
    if allow is not None and allow.accepts(p.reference_id, p.target_id):
        return ALLOWED
    if baseline is not None and (p.reference_id, p.target_id) in baseline.pairs:
        return BASELINE
    return COUNTED


def evaluate(pairs: list[EvidencePair], sources: list[SourceCount], reference_items: int, limits: Limits,
             baseline: Baseline | None = None, allow: AllowList | None = None) -> Verdict:
    """Decide: drop accepted pairs, compute the figures of the rest, check each limit.

    Args:
        pairs: Evidence pairs of the audit (flagged pairs left out).
        sources: Every target source audited, in order, with its record count.
        reference_items: Reference items long enough to be evidence (coverage denominator).
        limits: The limits (``Limits.effective`` is applied).
        baseline: Pairs of an earlier output: found again, they do not count.
        allow: Accepted reference ids and pairs: they do not count.
    """
    limits = limits.effective()
    ordered = sorted(pairs, key=EvidencePair.strength)
    statuses = [(p, _status(p, baseline, allow)) for p in ordered]
    by_source = {s.source: SourceVerdict(s.source, s.records, s.error) for s in sources}
    for p, status in statuses:
        sv = by_source.setdefault(p.target_source, SourceVerdict(p.target_source, 0, None))
        if status == COUNTED:
            sv.pairs.append(p)
        else:
            sv.accepted += 1
    counted = [p for p, s in statuses if s == COUNTED]
    records = sum(s.records for s in sources)
    results = []
    if limits.max_pairs is not None:
        results.append(LimitResult("max-pairs", limits.max_pairs, len(counted), len(counted), len(pairs)))
    if limits.max_contamination is not None:
        hit = len({(p.target_source, p.target_row) for p in counted})
        results.append(LimitResult("max-contamination", limits.max_contamination, hit / records if records else 0.0,
                                   hit, records))
    if limits.max_reference_coverage is not None:
        found = len({p.reference_id for p in counted})
        results.append(LimitResult("max-reference-coverage", limits.max_reference_coverage,
                                   found / reference_items if reference_items else 0.0, found, reference_items))
    verdict = Verdict(results, statuses, list(by_source.values()), records, reference_items, baseline, allow)
    for sv in verdict.sources:
        sv.failed = not verdict.passed and bool(sv.pairs)
    return verdict
