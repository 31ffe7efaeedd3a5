"""The types that cross stages: what a run learns about each source, and what an audit found.

``SourceResult`` is the one accumulator per source, for index builds, training audits and
model-output audits alike: what was read (``ReadStats``), counted (records, tokens, covered
tokens), found (verified pairs, candidate counters) and, with sampling, the per-record arrays
the estimates need. ``AuditResult`` and ``OutputsResult`` are what ``api.audit`` and
``api.audit_outputs`` return and the reports render.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from provaudit.config import AuditConfig, SampleConfig, VerdictRules
from provaudit.index.format import Index
from provaudit.match.candidates import AnchorPlan
from provaudit.match.pairs import PairList, Spill, ordered_batches
from provaudit.match.schema import MATCH_COLUMNS
from provaudit.read.records import NO_TEXT, ReadStats

@dataclass
class TaskCount:
    """Tasks of a run on Ray (``run.ray_engine.RayMap.tasks``), updated as the driver goes.

    Attributes:
        done: Tasks whose results the driver has taken.
        total: Tasks submitted so far.
        complete: Every task is submitted (the inputs are cut to their end): ``total`` is final.
    """

    done: int = 0
    total: int = 0
    complete: bool = False


class Progress(Protocol):
    """A progress callback: the source being read, records done so far in the run, input bytes read
    so far (approximate within a source), input bytes in all (None when unknown, e.g. for hub
    datasets), and, on Ray, the run's ``TaskCount`` (passed only by engines that count tasks)."""

    def __call__(self, where: str, records: int, done: int, total: int | None, tasks: TaskCount | None = None,
                 /) -> None: ...

VERDICT_ORDER = ("verbatim", "partial", "near_verbatim", "none")
RANK = {"verbatim": 3, "partial": 2, "near_verbatim": 1, "none": 0}


def strength(p: dict[str, Any]) -> tuple[int, int, float]:
    """Sort key of an output pair's evidence: verdict, then evidence tokens, then containment (larger is stronger)."""
    return RANK[p["verdict"]], p["evidence_tokens"], p["containment"]


@dataclass
class SourceResult:
    """Everything one source contributes to a run (index build, training audit or outputs audit).

    Attributes:
        source, kind, sha256: The input, its reader, and the sha256 of its bytes (None for hub datasets).
        stats: What reading it counted (rows, skips and alterations by reason, an early end).
        records, tokens, covered_tokens: Records audited, their tokens, and tokens covered by reference material.
        records_with_matches: Records holding evidence (training) or regurgitating samples (outputs).
        population_rows: Rows of the input (read or sampled out): the finite population of a sample.
        rows, rec_tokens, rec_covered: Per record (sampled audits only): row, tokens, covered tokens.
        matches, candidates: Verified pairs (``match.pairs.PairList`` of ``match.schema.MATCH_COLUMNS``
            rows, in bounded memory) and candidate counters.
        control_matches, control_candidates, control_records_with_matches: The same against a
            negative-control index (None without one).
        pairs, samples, shapes: Outputs audits: evidence pairs, per-sample summaries, sample shapes.
    """

    source: str
    kind: str
    sha256: str | None = None
    stats: ReadStats = field(default_factory=ReadStats)
    records: int = 0
    tokens: int = 0
    covered_tokens: int = 0
    records_with_matches: int = 0
    population_rows: int = 0
    rows: list[np.ndarray] = field(default_factory=list)
    rec_tokens: list[np.ndarray] = field(default_factory=list)
    rec_covered: list[np.ndarray] = field(default_factory=list)
    matches: PairList = field(default_factory=PairList)
    candidates: dict[str, int] = field(default_factory=dict)
    control_matches: PairList | None = None
    control_candidates: dict[str, int] = field(default_factory=dict)
    control_records_with_matches: int = 0
    pairs: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    shapes: dict[str, int] = field(default_factory=dict)

    def add_candidates(self, counts: dict[str, int], control: bool = False) -> None:
        target = self.control_candidates if control else self.candidates
        for k, v in counts.items():
            target[k] = target.get(k, 0) + v

    def to_dict(self) -> dict[str, Any]:
        """The source as a report's or manifest's ``inputs`` entry."""
        return {
            "source": self.source,
            "kind": self.kind,
            "sha256": self.sha256,
            "rows_read": self.stats.rows,
            "rows_skipped": dict(sorted(self.stats.skipped.items())),
            "rows_altered": dict(sorted(self.stats.altered.items())),
            "problem_examples": dict(sorted(self.stats.examples.items())),
            "error": self.stats.error,
            "tokens": self.tokens,
            "records_with_matches": self.records_with_matches,
            "covered_tokens": self.covered_tokens,
        }


class Resumable(Protocol):
    """An audit's checkpoint as results see it (``run.checkpoint.Checkpoint``)."""

    note: str
    reused: int

    def discard(self) -> None: ...


@dataclass
class ControlResult:
    """Matches of a negative-control reference set audited in the same run."""

    items: int
    eligible_items: int
    found_items: set[str]
    pairs: int
    records_with_matches: int
    fingerprint: str
    inputs: list[dict[str, Any]]


@dataclass
class AuditResult:
    """Everything a training audit found, ready for reports.

    Verified pairs stay with their sources (``inputs[i].matches``, spilled to ``spill`` as they
    grow); ``pair_batches`` yields them all in ``matches.parquet`` order with ``item_flag`` set,
    ``frequent`` naming the items matched in more than ``frequent_limit`` target records.
    """

    index: Index
    config: AuditConfig
    inputs: list[SourceResult]
    frequent: set[str]
    plan: AnchorPlan
    candidates: dict[str, int]
    frequent_limit: int
    fields: dict[str, str | None] = field(default_factory=dict)
    sample: SampleConfig = field(default_factory=SampleConfig)
    sampled_shards: list[str] | None = None
    control: ControlResult | None = None
    on_error: str = "skip"
    max_record_chars: int = 0
    ignored_files: list[str] = field(default_factory=list)
    checkpoint: Resumable | None = None  # discarded by api.write_audit once the output is complete
    spill: Spill | None = None  # the pairs' spill file, removed by ``close`` (or when the result is collected)

    def pair_batches(self) -> Iterator[pa.RecordBatch]:
        """Every verified pair, in ``matches.parquet`` order, a record batch at a time (bounded memory)."""
        return ordered_batches([(s.source, s.matches) for s in self.inputs], self.frequent)

    @property
    def matches(self) -> dict[str, list[Any]]:
        """Every verified pair as columns of Python values, in ``matches.parquet`` order (materialized:
        for small results; reports stream ``pair_batches``)."""
        out: dict[str, list[Any]] = {c: [] for c in MATCH_COLUMNS}
        for b in self.pair_batches():
            for c, values in b.to_pydict().items():
                out[c] += values
        return out

    def close(self) -> None:
        """Remove the spill file of verified pairs (the result can no longer be written)."""
        if self.spill is not None:
            self.spill.close()

    @property
    def target_records(self) -> int:
        return sum(s.records for s in self.inputs)

    @property
    def resumed_sources(self) -> int:
        """Sources taken from the checkpoint (never in the report: the output is identical)."""
        return self.checkpoint.reused if self.checkpoint is not None else 0


@dataclass(frozen=True, slots=True)
class Requirements:
    """What positive verdicts need of the reference items, summed over the live items
    (``regurgitation.verdicts``; an item's own threshold, ``min_overlap``, is a lower bound on
    |R & S| for a positive verdict, 0 when it can never be evidence).

    Attributes:
        search_containment: The smallest ``min_overlap / shingles`` over items: the candidate search threshold.
        evidence_items: Live items that can be evidence (``min_overlap`` > 0).
        miss_max: Largest P(the anchor search misses a pair at exactly ``min_overlap``) over those items
            (None without any).
        miss_mean: Its mean over them (None without any).
        above_miss_rate: Those items whose miss probability exceeds the audit's ``miss_rate``.
        not_searchable: Those items no anchor search can find (threshold 0).
    """

    search_containment: float
    evidence_items: int
    miss_max: float | None
    miss_mean: float | None
    above_miss_rate: int
    not_searchable: int


@dataclass
class OutputsResult:
    """Everything an outputs audit found, ready for ``api.write_outputs``.

    Attributes:
        inputs: One per source; its ``pairs`` (positive verdicts, ``report.regurgitation.PAIR_SCHEMA``),
            ``samples`` (one per audited sample, in input order) and ``shapes``.
        need: Requirements (the search threshold, evidence items and miss probabilities, summed).
    """

    index: Index
    config: AuditConfig
    rules: VerdictRules
    need: Requirements
    plan: AnchorPlan
    inputs: list[SourceResult]
    fields: dict[str, str | None] = field(default_factory=dict)

    @property
    def pairs(self) -> list[dict[str, Any]]:
        return [p for s in self.inputs for p in s.pairs]

    @property
    def samples(self) -> list[dict[str, Any]]:
        return [p for s in self.inputs for p in s.samples]

    @property
    def candidates(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.inputs:
            for k, v in s.candidates.items():
                out[k] = out.get(k, 0) + v
        return out


def read_problems(inputs: list[SourceResult], max_skipped: float = 1.0) -> list[str]:
    """Why a run must not pass for one that read its inputs: "read nothing" never looks like "found nothing".

    A source from which no record was read (empty, or every record skipped, as with a wrong
    ``--text-field``), a source not read to its end (a broken file in skip mode), or more
    skipped records in all than the share ``max_skipped``. Records with no text (null,
    empty) are read and count as read. A source whose every row was sampled out is fine.

    Returns:
        One line per problem, naming the source; empty when everything was read.
    """
    out: list[str] = []
    for s in inputs:
        st = s.stats
        lost = {k: v for k, v in st.skipped.items() if k not in NO_TEXT}
        if st.error:  # not read to its end (the error names the source and where)
            out.append(st.error if st.error.startswith(s.source) else f"{s.source}: {st.error}")
        elif st.rows == 0 and st.sampled_out == 0 and sum(st.skipped.values()) == sum(lost.values()):
            if lost:
                reason, n = max(sorted(lost.items()), key=lambda kv: kv[1])
                where = st.examples.get(reason, [])
                out.append(f"{s.source}: no record read ({sum(lost.values()):,} skipped, {n:,} of them: {reason}"
                           + (f", e.g. {where[0]}" if where else "") + ")")
            else:
                out.append(f"{s.source}: no record in it")
    total = sum(s.stats.rows + sum(s.stats.skipped.values()) for s in inputs)
    lost_all = sum(v for s in inputs for k, v in s.stats.skipped.items() if k not in NO_TEXT)
    if total and lost_all / total > max_skipped:
        out.append(f"{lost_all:,} of {total:,} records skipped ({lost_all / total:.2%}), more than --max-skipped "
                   f"{max_skipped:g} tolerates")
    return out
