"""Compose the stages: ``build_index()`` and ``audit()``.

Example:
    >>> from provaudit import api
    >>> api.build_index(["fixtures/reference/posts.jsonl"], Path("ref.idx"), force=True)  # doctest: +SKIP
    >>> result = api.audit(Path("ref.idx"), ["fixtures/shards"])                         # doctest: +SKIP
    >>> from provaudit.report.training import write_audit
    >>> write_audit(result, Path("audit-out"), force=True)                                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from provaudit import __version__
from provaudit.config import AuditConfig, IndexConfig, SampleConfig
from provaudit.run.checkpoint import Checkpoint
from provaudit.errors import IndexMismatchError
from provaudit.estimate.section import SourceTally
from provaudit.index.format import Index, load_index
from provaudit.index.build import IndexWriter, ItemPreparer
from provaudit.match.engine import MATCH_COLUMNS, BatchRunner, Engine
from provaudit.match.candidates import AnchorPlan
from provaudit.run.loop import audit_sources, index_sources
from provaudit.fs.hashing import sha256_file
from provaudit.read.records import DEFAULT_MAX_RECORD_CHARS, ReadStats, Source
from provaudit.read.sources import count_rows, expand_sources
from provaudit.estimate.sampling import BernoulliSampler, BottomKSampler, sample_shards

log = logging.getLogger(__name__)
Progress = Callable[[str, int], None]  # (stage/source description, records done so far)



def _versions() -> dict[str, str]:
    import datasketch

    return {"provaudit": __version__, "datasketch": getattr(datasketch, "__version__", "unknown")}


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
            "rows_altered": dict(sorted(self.stats.altered.items())),
            "problem_examples": dict(sorted(self.stats.examples.items())),
            "error": self.stats.error,
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
    workers: int = 1,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Read a reference corpus and write an index directory atomically.

    Args:
        workers: Processes shingling and signing record batches; the parent reads and
            writes. The index files are byte-identical for any value.

    Returns:
        The manifest written to ``dest/manifest.json``.

    Raises:
        InputError: on unreadable input or duplicate reference ids (nothing is written).
        OutputExistsError: if ``dest`` exists and ``force`` is false.
    """
    config = (config or IndexConfig()).resolved()
    srcs = expand_sources(sources)
    writer = IndexWriter(dest, config, force=force)
    try:
        with ItemPreparer(config, workers) as prep:
            inputs = index_sources(prep, writer, srcs, {"text_field": text_field, "id_field": id_field,
                                                        "on_error": on_error}, progress)
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
    sample: SampleConfig = field(default_factory=SampleConfig)
    tallies: list[SourceTally] = field(default_factory=list)
    sampled_shards: list[str] | None = None
    control: ControlResult | None = None
    on_error: str = "skip"
    max_record_chars: int = DEFAULT_MAX_RECORD_CHARS
    ignored_files: list[str] = field(default_factory=list)
    checkpoint: Checkpoint | None = None  # removed by write_audit once the output is complete
    resumed_sources: int = 0  # sources taken from the checkpoint (never in the report: output is identical)


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


def _row_filters(sources: list[Source], sample: SampleConfig, on_error: str = "fail",
                 ) -> tuple[dict[str, Callable[[int], bool] | None], list[list[Any]] | None]:
    """Per-source row filters implementing ``sample.records`` (None: keep every row).

    Returns:
        The filters, and for a sample of a fixed count (which depends on every source's size)
        the ``[source, rows]`` population it was drawn from; None otherwise.
    """
    if sample.records is None:
        return {s.name: None for s in sources}, None
    if isinstance(sample.records, float):
        sampler = BernoulliSampler(sample.records, sample.seed)
        return {s.name: functools.partial(sampler.keep, s.name) for s in sources}, None
    bottom: BottomKSampler[None] = BottomKSampler(sample.records, sample.seed)
    population: list[list[Any]] = []
    for s in sources:
        n = count_rows(s, on_error)
        population.append([s.name, n])
        for row in range(n):
            bottom.offer(s.name, row, None)
    chosen: dict[str, set[int]] = {s.name: set() for s in sources}
    for rec in bottom.result():
        chosen[rec.source].add(rec.row)
    return {name: rows.__contains__ for name, rows in chosen.items()}, population


def _control_engine(control: list[str], index: Index, config: AuditConfig, tmp: Path,
                    text_field: str, id_field: str | None, on_error: str) -> tuple[Engine, list[dict[str, Any]]]:
    """An engine over the negative-control set: an index directory, or sources indexed now."""
    if len(control) == 1 and (Path(control[0]) / "manifest.json").is_file():
        cidx = load_index(Path(control[0]), signatures=False)
        if cidx.manifest["fingerprint"] != index.manifest["fingerprint"]:
            raise IndexMismatchError(
                f"{control[0]}: control index parameters {cidx.manifest['fingerprint']} differ from the "
                f"reference index's {index.manifest['fingerprint']}; rebuild one of them with the other's parameters"
            )
    else:
        cfg = dataclasses.replace(index.config, keep_text=False)
        build_index(control, tmp / "control.idx", cfg, text_field=text_field, id_field=id_field, on_error=on_error)
        cidx = load_index(tmp / "control.idx", signatures=False)
    return Engine(cidx, config), cidx.manifest.get("inputs", [])


def audit(
    index_dir: Path,
    targets: list[str] | tuple[str, ...],
    config: AuditConfig | None = None,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: str = "skip",
    workers: int = 1,
    sample: SampleConfig | None = None,
    control: list[str] | None = None,
    progress: Progress | None = None,
    max_record_chars: int = DEFAULT_MAX_RECORD_CHARS,
    checkpoint: Path | None = None,
    resume: bool = False,
) -> AuditResult:
    """Stream target records against an index and verify every candidate exactly.

    Args:
        index_dir: An index built by ``build_index``.
        targets: Files, directories, globs, saved datasets or ``hf:`` names.
        config: Thresholds (defaults: containment or Jaccard >= 0.5).
        on_error: ``"skip"`` (default: training shards are dirty) counts bad records by reason
            and reports inputs that could not be read to their end; ``"fail"`` stops at the first.
        workers: Processes evaluating record batches; results are identical for any value.
        sample: Read only a reproducible sample of records and/or shards.
        control: A negative-control reference set (sources, or an index built with the same
            parameters), audited against the same target records.
        progress: Called with (source, records done).
        max_record_chars: Longer target texts are cut to this many characters (counted).
        checkpoint: A directory (``checkpoint.partial_dir(OUT)``) where each finished source is
            saved, so that an interrupted run can be resumed; removed by ``write_audit``.
        resume: Reuse the finished sources of an earlier run with the same parameters found in
            ``checkpoint``; the result is identical to an uninterrupted run.

    Raises:
        IndexFormatError: if the index is incomplete or fails its integrity check.
        IndexMismatchError: if a control index was built with other parameters.
        InputError: naming file and line/row on unreadable targets (fail mode).
        OutputExistsError: if another audit holds ``checkpoint``.
    """
    config = config or AuditConfig()
    sample = sample or SampleConfig()
    index = load_index(index_dir, signatures=False)  # every file the audit reads is verified
    ignored: list[str] = []
    sources: list[Source] = expand_sources(targets, ignored)
    sampled_shards = None
    if sample.shards is not None:
        sampled_shards = sample_shards([s.name for s in sources], sample.shards, sample.seed)
        chosen = set(sampled_shards)
        sources = [s for s in sources if s.name in chosen]
    filters, population = _row_filters(sources, sample, on_error)
    engines = [Engine(index, config)]
    ctrl_inputs: list[dict[str, Any]] = []
    read = {"text_field": text_field, "id_field": id_field, "on_error": on_error, "max_record_chars": max_record_chars}
    ckpt = None
    with tempfile.TemporaryDirectory(prefix="provaudit-control-") as tmp:
        if control:
            ctrl_engine, ctrl_inputs = _control_engine(control, index, config, Path(tmp), text_field, id_field, on_error)
            engines.append(ctrl_engine)
        if checkpoint is not None:
            params = {
                "provaudit": __version__,
                "index_manifest_sha256": sha256_file(index.path / "manifest.json"),
                "control_manifest_sha256": sha256_file(engines[1].index.path / "manifest.json") if control else None,
                "config": config.to_dict(), "sample": sample.to_dict(), "sampled_shards": sampled_shards,
                "population": population, "read": read,
            }
            ckpt = Checkpoint(checkpoint, params, resume=resume)
        try:
            with BatchRunner(engines, workers) as runner:
                parts = audit_sources(runner, sources, read, filters, sample.active, bool(control), ckpt, progress)
        except BaseException:
            if ckpt is not None:
                ckpt.keep_or_discard()  # finished sources are kept for --resume
            raise
        matches: dict[str, list[Any]] = {c: [] for c in MATCH_COLUMNS}
        ctrl_matches: dict[str, list[Any]] = {c: [] for c in MATCH_COLUMNS}
        candidates: dict[str, int] = {}
        ctrl_candidates: dict[str, int] = {}
        for p in parts:
            for c in MATCH_COLUMNS:
                matches[c].extend(p.matches[c])
                if p.control_matches is not None:
                    ctrl_matches[c].extend(p.control_matches[c])
            for k, v in p.candidates.items():
                candidates[k] = candidates.get(k, 0) + v
            for k, v in p.control_candidates.items():
                ctrl_candidates[k] = ctrl_candidates.get(k, 0) + v
        ctrl = None
        if control:
            cidx = engines[1].index
            ctrl = ControlResult(
                items=len(cidx),
                eligible_items=int((cidx.n_shingles >= config.min_item_shingles).sum()),
                found_items={r for r, f in zip(ctrl_matches["reference_id"], ctrl_matches["item_flag"]) if not f},
                pairs=len(ctrl_matches["reference_id"]),
                records_with_matches=sum(p.control_records_with_matches for p in parts),
                fingerprint=cidx.manifest["fingerprint"],
                inputs=[{"source": i["source"], "sha256": i["sha256"], "rows_read": i["rows_read"]} for i in ctrl_inputs],
            )
    return AuditResult(
        index=index, config=config, inputs=[p.summary for p in parts], matches=matches, plan=engines[0].plan,
        candidates=candidates, target_records=sum(p.tally.records for p in parts),
        records_with_matches=sum(p.summary.records_with_matches for p in parts),
        fields={"text": text_field, "id": id_field}, sample=sample, tallies=[p.tally for p in parts],
        sampled_shards=sampled_shards, control=ctrl, on_error=on_error, max_record_chars=max_record_chars,
        ignored_files=ignored, checkpoint=ckpt, resumed_sources=ckpt.reused if ckpt is not None else 0,
    )
