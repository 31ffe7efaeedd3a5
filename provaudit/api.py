"""Compose the stages: ``build_index()`` and ``audit()``.

Example:
    >>> from provaudit import api
    >>> api.build_index(["fixtures/reference/posts.jsonl"], Path("ref.idx"), force=True)  # doctest: +SKIP
    >>> result = api.audit(Path("ref.idx"), ["fixtures/shards"])                         # doctest: +SKIP
    >>> api.write_audit(result, Path("audit-out"), force=True)                             # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from provaudit import __version__
from provaudit.config import AuditConfig, IndexConfig
from provaudit.errors import InputError
from provaudit.index import Index, IndexWriter, load_index
from provaudit.engine import MATCH_COLUMNS, BatchRunner, Engine
from provaudit.match import AnchorPlan
from provaudit.records import ReadStats, Record, Source, expand_sources, read_source
from provaudit.shingle import shingle_batch, unique_per_record
from provaudit.sketch import band_keys, signatures

log = logging.getLogger(__name__)
Progress = Callable[[str, int], None]  # (stage/source description, records done so far)

BATCH_RECORDS = 2048
BATCH_CHARS = 4_000_000


def _versions() -> dict[str, str]:
    import datasketch

    return {"provaudit": __version__, "datasketch": getattr(datasketch, "__version__", "unknown")}


def batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    """Group records into batches bounded by count and by total characters."""
    batch: list[Record] = []
    chars = 0
    for r in records:
        batch.append(r)
        chars += len(r.text)
        if len(batch) >= BATCH_RECORDS or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


@dataclass
class InputSummary:
    """What was read from one input."""

    source: str
    kind: str
    sha256: str | None
    stats: ReadStats = field(default_factory=ReadStats)
    tokens: int = 0
    records_with_matches: int = 0
    covered_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "sha256": self.sha256,
            "rows_read": self.stats.rows,
            "rows_skipped": dict(sorted(self.stats.skipped.items())),
            "tokens": self.tokens,
            "records_with_matches": self.records_with_matches,
            "covered_tokens": self.covered_tokens,
        }


def build_index(
    sources: list[str] | tuple[str, ...],
    dest: Path,
    config: IndexConfig | None = None,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: str = "fail",
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Read a reference corpus and write an index directory atomically.

    Returns:
        The manifest written to ``dest/manifest.json``.

    Raises:
        InputError: on unreadable input or duplicate reference ids (nothing is written).
        OutputExistsError: if ``dest`` exists and ``force`` is false.
    """
    config = (config or IndexConfig()).resolved()
    srcs = expand_sources(sources)
    writer = IndexWriter(dest, config, force=force)
    inputs: list[InputSummary] = []
    seen: dict[str, tuple[str, int]] = {}
    done = 0
    try:
        for src in srcs:
            summary = InputSummary(src.name, src.kind, src.sha256())
            inputs.append(summary)
            recs = read_source(src, text_field=text_field, id_field=id_field, on_error=on_error, stats=summary.stats)
            for batch in batches(recs):
                for r in batch:
                    if r.id in seen:
                        first = seen[r.id]
                        raise InputError(
                            f"{r.source} row {r.row + 1}: duplicate reference id {r.id!r} "
                            f"(first at {first[0]} row {first[1] + 1}); ids must be unique (or use --id-field)"
                        )
                    seen[r.id] = (r.source, r.row)
                sb = shingle_batch([r.text for r in batch], config)
                ub = unique_per_record(sb)
                sigs = signatures(sb, config.num_perm, config.seed)
                writer.add(
                    [r.id for r in batch], [r.source for r in batch], [r.row for r in batch], sb, ub, sigs,
                    band_keys(sigs, config.bands, config.rows), [r.text for r in batch] if config.keep_text else None,
                )
                summary.tokens += int(sb.n_tokens.sum())
                done += len(batch)
                if progress:
                    progress(src.name, done)
        manifest = {
            "versions": _versions(),
            "fields": {"text": text_field, "id": id_field},
            "inputs": [
                {k: v for k, v in s.to_dict().items() if k not in ("records_with_matches", "covered_tokens")}
                for s in inputs
            ],
        }
        return writer.finish(manifest)
    except BaseException:
        writer.abort()
        raise


@dataclass
class AuditResult:
    """Everything an audit found, ready for reports."""

    index: Index
    config: AuditConfig
    inputs: list[InputSummary]
    matches: dict[str, list[Any]]
    plan: AnchorPlan
    candidates: dict[str, int]
    target_records: int = 0
    records_with_matches: int = 0
    fields: dict[str, str | None] = field(default_factory=dict)


def audit(
    index_dir: Path,
    targets: list[str] | tuple[str, ...],
    config: AuditConfig | None = None,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: str = "fail",
    workers: int = 1,
    progress: Progress | None = None,
) -> AuditResult:
    """Stream target records against an index and verify every candidate exactly.

    Args:
        index_dir: An index built by ``build_index``.
        targets: Files, directories, globs, saved datasets or ``hf:`` names.
        config: Thresholds (defaults: containment or Jaccard >= 0.5).
        workers: Processes evaluating record batches; results are identical for any value.
        progress: Called with (source, records done).

    Raises:
        IndexFormatError: if the index is incomplete or fails its integrity check.
        InputError: naming file and line/row on unreadable targets.
    """
    config = config or AuditConfig()
    index = load_index(index_dir)
    sources: list[Source] = expand_sources(targets)
    engine = Engine(index, config)
    inputs: list[InputSummary] = []
    matches: dict[str, list[Any]] = {c: [] for c in MATCH_COLUMNS}
    candidates: dict[str, int] = {}
    total = with_matches = 0
    with BatchRunner(engine, workers) as runner:
        for src in sources:
            summary = InputSummary(src.name, src.kind, src.sha256())
            inputs.append(summary)
            recs = read_source(src, text_field=text_field, id_field=id_field, on_error=on_error, stats=summary.stats)
            for res in runner.map(batches(recs)):
                res.add_to(summary, matches, candidates)
                with_matches += res.records_with_matches
                total += res.records
                if progress:
                    progress(src.name, total)
    return AuditResult(
        index=index, config=config, inputs=inputs, matches=matches, plan=engine.plan,
        candidates=candidates, target_records=total, records_with_matches=with_matches,
        fields={"text": text_field, "id": id_field},
    )
