"""Compose the stages: the only module that does.

``build_index`` reads a reference corpus and writes an index; ``audit`` (training shards) and
``audit_outputs`` (samples of a model's outputs) stream targets against it and verify every
candidate exactly; ``write_audit``/``write_outputs`` write their output directories.

Example:
    >>> from provaudit import api
    >>> api.build_index(["fixtures/reference/posts.jsonl"], Path("ref.idx"), force=True)  # doctest: +SKIP
    >>> result = api.audit(Path("ref.idx"), ["fixtures/shards"])                         # doctest: +SKIP
    >>> api.write_audit(result, Path("audit-out"), force=True)["counts"]["pairs"]       # doctest: +SKIP
    864
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import tempfile
from pathlib import Path
from typing import Any

from provaudit.version import __version__
from provaudit.config import (
    DEFAULT_MAX_RECORD_CHARS, AuditConfig, IndexConfig, ReadOptions, SampleConfig, VerdictRules,
)
from provaudit.errors import ConfigError, IndexMismatchError, InputError
from provaudit.estimate.sampling import BernoulliSampler, BottomKSampler, sample_shards
from provaudit.fs.atomic import check_output
from provaudit.fs.hashing import sha256_file
from provaudit.index.build import IndexWriter, prepare_items, prepare_parsed
from provaudit.index.format import Index, load_index
from provaudit.index.remote import open_index
from provaudit.match.engine import Engine, frequent_limit, parse_and_evaluate
from provaudit.match.pairs import Spill, frequent_items
from provaudit.read.records import Source
from provaudit.read.sources import count_rows, expand_sources
from provaudit.regurgitation.shapes import DEFAULT_TEXT_FIELD, detect_kind, sample_extractor
from provaudit.regurgitation.spans import SampleCheck, describe_parsed
from provaudit.regurgitation.verdicts import check_index, requirements, search_containment
from provaudit.report import regurgitation as outputs_report
from provaudit.report import training as training_report
from provaudit.report.render import DEFAULT_HTML_PAIRS, render_saved
from provaudit.results import AuditResult, ControlResult, OutputsResult, Progress, SourceResult, read_problems
from provaudit.run.checkpoint import Checkpoint
from provaudit.run.jobs import audit_job, index_job, outputs_job
from provaudit.run.loop import Keep, run_sources
from provaudit.run.engines import RunEngine, worker_map
from provaudit.run.ray_parts import build_parts

log = logging.getLogger(__name__)

__all__ = ["audit", "audit_outputs", "build_index", "render_report", "resolve_kind", "write_audit", "write_outputs"]


def _versions() -> dict[str, str]:
    """provaudit's version, and the datasketch 2.x scheme its signatures and band choice equal (datasketch
    itself is not needed at run time: ``config.lsh_params``)."""
    return {"provaudit": __version__, "datasketch": "2.x affine32 (signatures and LSH band choice)"}


def _engine(run_engine: RunEngine | None, workers: int) -> RunEngine:
    return run_engine if run_engine is not None else RunEngine("local", workers)


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
    input_format: str | None = None,
    run_engine: RunEngine | None = None,
    keep_segments: bool = False,
) -> dict[str, Any]:
    """Read a reference corpus and write an index directory atomically.

    Args:
        workers: Processes reading, parsing and shingling blocks of the sources; the parent signs
            and writes. The index files are byte-identical for any value.
        input_format: Read the files named (or matched by globs) with this reader
            (``jsonl|json|parquet|csv|txt|arrow``) whatever their names.
        run_engine: Where the tasks run (``run.engines.RunEngine``: local or a Ray cluster; its
            ``workers`` replaces ``workers``); default: locally with ``workers`` processes.
        keep_segments: On Ray, its tasks' parts are the index's segments (not merged); a local build writes one.

    Returns:
        The manifest written to ``dest/manifest.json``.

    Raises:
        InputError: on unreadable input or duplicate reference ids (nothing is written).
        OutputExistsError: if ``dest`` exists and ``force`` is false.
    """
    config = (config or IndexConfig()).resolved()
    read = ReadOptions(text_field, id_field, on_error)  # type: ignore[arg-type]  # validated there
    srcs = expand_sources(sources, fmt=input_format)
    writer = IndexWriter(dest, config, force=force, keep=keep_segments)
    try:
        inputs = read_into(writer, srcs, read, _engine(run_engine, workers), progress)
        return writer.finish({"versions": _versions(), "fields": {"text": text_field, "id": id_field}, "inputs": inputs})
    except BaseException:
        writer.abort()
        raise


def read_into(writer: IndexWriter, sources: list[Source], read: ReadOptions, run_engine: RunEngine,
              progress: Progress | None) -> list[dict[str, Any]]:
    """Read reference sources into an index (or segment) writer (Ray: ``run.ray_parts``); returns its ``inputs``."""
    if run_engine.kind == "ray":
        inputs = build_parts(writer, sources, read, run_engine, progress)
    else:
        prepare_items(["warm up the compiled kernels before forking"], writer.config)
        with worker_map(prepare_parsed, writer.config, run_engine) as wm:
            inputs = run_sources(wm, sources, read, index_job(writer, writer.config), progress)
    return [{k: v for k, v in s.to_dict().items() if k not in ("records_with_matches", "covered_tokens")}
            for s in inputs]


def _row_filters(sources: list[Source], sample: SampleConfig, on_error: str = "fail",
                 ) -> tuple[dict[str, Keep | None], list[list[Any]] | None]:
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


def _control_index(control: list[str], index: Index, tmp: Path, read: ReadOptions) -> Index:
    """The negative-control index: an index directory, or sources indexed now with the reference's parameters."""
    if len(control) == 1 and (Path(control[0]) / "manifest.json").is_file():
        cidx = load_index(Path(control[0]))
        if cidx.manifest["fingerprint"] != index.manifest["fingerprint"]:
            raise IndexMismatchError(
                f"{control[0]}: control index parameters {cidx.manifest['fingerprint']} differ from the "
                f"reference index's {index.manifest['fingerprint']}; rebuild one of them with the other's parameters"
            )
        return cidx
    cfg = dataclasses.replace(index.config, keep_text=False)
    build_index(control, tmp / "control.idx", cfg, text_field=read.text_field, id_field=read.id_field,
                on_error=read.on_error)
    return load_index(tmp / "control.idx")


def _control_result(cidx: Index, config: AuditConfig, parts: list[SourceResult]) -> ControlResult:
    found: set[str] = set()
    for p in parts:
        for b in (p.control_matches.batches() if p.control_matches is not None else ()):
            cols = b.select(["reference_id", "item_flag"]).to_pydict()
            found.update(r for r, f in zip(cols["reference_id"], cols["item_flag"]) if not f)
    return ControlResult(
        items=cidx.live_items,
        eligible_items=cidx.items_with_shingles(config.min_item_shingles),
        found_items=found,
        pairs=sum(len(p.control_matches) for p in parts if p.control_matches is not None),
        records_with_matches=sum(p.control_records_with_matches for p in parts),
        fingerprint=cidx.manifest["fingerprint"],
        inputs=[{"source": i["source"], "sha256": i["sha256"], "rows_read": i["rows_read"]}
                for i in cidx.manifest.get("inputs", [])],
    )


def _checkpoint(directory: Path, index: Index, control: Index | None, config: AuditConfig, sample: SampleConfig,
                sampled_shards: list[str] | None, population: list[list[Any]] | None, read: ReadOptions,
                resume: bool) -> Checkpoint:
    params = {
        "provaudit": __version__,
        "index_manifest_sha256": sha256_file(index.path / "manifest.json"),
        "control_manifest_sha256": sha256_file(control.path / "manifest.json") if control else None,
        "config": config.to_dict(), "sample": sample.to_dict(), "sampled_shards": sampled_shards,
        "population": population, "read": read.to_dict(),
    }
    return Checkpoint(directory, params, resume=resume)


def _candidates(parts: list[SourceResult]) -> dict[str, int]:
    candidates: dict[str, int] = {}
    for p in parts:
        for k, v in p.candidates.items():
            candidates[k] = candidates.get(k, 0) + v
    return candidates


def audit(
    index_dir: Path | str,
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
    input_format: str | None = None,
    run_engine: RunEngine | None = None,
) -> AuditResult:
    """Stream target records against an index and verify every candidate exactly.

    Args:
        index_dir: An index built by ``build_index``: its directory, or its URL (``s3://...``: opened
            from a verified local copy, ``index.remote``).
        targets: Files, directories, globs, saved datasets or ``hf:`` names.
        config: Thresholds (defaults: containment or Jaccard >= 0.5).
        on_error: ``"skip"`` (default: training shards are dirty) counts bad records by reason
            and reports inputs that could not be read to their end; ``"fail"`` stops at the first.
        workers: Processes reading and evaluating blocks of records; results are identical for any value.
        run_engine: Where the tasks run, as for ``build_index``; results are identical on any engine.
        sample: Read only a reproducible sample of records and/or shards.
        control: A negative-control reference set (sources, or an index built with the same
            parameters), audited against the same target records.
        progress: Called with (source, records done).
        max_record_chars: Longer target texts are cut to this many characters (counted).
        checkpoint: A directory (``run.checkpoint.partial_dir(OUT)``) where each finished source is
            saved, so that an interrupted run can be resumed; removed by ``write_audit``.
        resume: Reuse the finished sources of an earlier run with the same parameters found in
            ``checkpoint``; the result is identical to an uninterrupted run.
        input_format: As for ``build_index`` (targets only).

    Raises:
        IndexFormatError: if the index is incomplete or fails its integrity check.
        IndexMismatchError: if a control index was built with other parameters.
        InputError: naming file and line/row on unreadable targets (fail mode).
        OutputExistsError: if another audit holds ``checkpoint``.
    """
    config, sample = config or AuditConfig(), sample or SampleConfig()
    read = ReadOptions(text_field, id_field, on_error, max_record_chars)  # type: ignore[arg-type]
    index = open_index(index_dir)  # every chunk the audit reads is verified when first read
    ignored: list[str] = []
    sources = expand_sources(targets, ignored, input_format)
    sampled_shards = None
    if sample.shards is not None:
        sampled_shards = sample_shards([s.name for s in sources], sample.shards, sample.seed)
        chosen = set(sampled_shards)
        sources = [s for s in sources if s.name in chosen]
    filters, population = _row_filters(sources, sample, on_error)
    with tempfile.TemporaryDirectory(prefix="provaudit-control-") as tmp:
        cidx = _control_index(control, index, Path(tmp), read) if control else None
        engines = [Engine(index, config)] + ([Engine(cidx, config)] if cidx is not None else [])
        ckpt = None if checkpoint is None else _checkpoint(checkpoint, index, cidx, config, sample, sampled_shards,
                                                           population, read, resume)
        spill = Spill()  # verified pairs beyond match.pairs.MEMORY_ROWS go to temporary files
        if ckpt is not None:
            ckpt.spill = spill
        if _engine(run_engine, workers).kind == "local":  # forked workers write their pairs there themselves
            for e in engines:
                e.spill = spill
        job = audit_job(per_record=sample.active, control=cidx is not None, keep=filters, saved=ckpt, spill=spill)
        try:
            with worker_map(parse_and_evaluate, engines, _engine(run_engine, workers)) as wm:
                parts = run_sources(wm, sources, read, job, progress)
            ctrl = _control_result(cidx, config, parts) if cidx is not None else None
        except BaseException:
            spill.close()
            if ckpt is not None:
                ckpt.keep_or_discard()  # finished sources are kept for --resume
            raise
    limit = frequent_limit(config, sum(p.records for p in parts))
    return AuditResult(
        index=index, config=config, inputs=parts, frequent=frequent_items((p.matches for p in parts), limit),
        plan=engines[0].plan, candidates=_candidates(parts), frequent_limit=limit,
        fields={"text": text_field, "id": id_field}, sample=sample, sampled_shards=sampled_shards, control=ctrl,
        on_error=on_error, max_record_chars=max_record_chars, ignored_files=ignored, checkpoint=ckpt, spill=spill,
    )


def write_audit(result: AuditResult, out_dir: Path, *, force: bool = False, **readable: Any) -> dict[str, Any]:
    """Write a training audit's output directory atomically (``report.training.write_audit``), then
    remove its checkpoint. ``readable``: ``provenance``, ``html_pairs``, ``reference_sources`` of
    report.md/html. Returns the report written to report.json."""
    report = training_report.write_audit(result, out_dir, force=force, **readable)
    if result.checkpoint is not None:
        result.checkpoint.discard()
    return report


def audit_outputs(
    index_dir: Path | str,
    targets: list[str] | tuple[str, ...],
    config: AuditConfig | None = None,
    *,
    text_field: str = DEFAULT_TEXT_FIELD,
    id_field: str | None = "id",
    on_error: str = "fail",
    workers: int = 1,
    progress: Progress | None = None,
    rules: VerdictRules | None = None,
    max_record_chars: int = DEFAULT_MAX_RECORD_CHARS,
    input_format: str | None = None,
    run_engine: RunEngine | None = None,
) -> OutputsResult:
    """Find the reference items that model output samples reproduce (docs/outputs.md).

    Args:
        index_dir: An index built by ``build_index`` (word shingles).
        targets: Files, directories, globs, saved datasets or ``hf:`` names of samples.
        config: Audit thresholds; ``min_containment`` is the near-verbatim threshold.
        text_field: Field audited in plain records; an explicit value overrides shape detection.
        workers: Processes reading, searching and describing samples; results are identical for any value.
        run_engine: Where the tasks run, as for ``build_index``.
        rules: Verdict rules (defaults: 20 / 8 tokens, half the item).

    Raises:
        ConfigError: for a character-shingle index or rules finer than its n-grams.
        IndexFormatError: if the index fails its integrity check.
        InputError: naming file and line on an unreadable or malformed sample.
    """
    config, rules = config or AuditConfig(), rules or VerdictRules()
    read = ReadOptions(text_field, id_field, on_error, max_record_chars)  # type: ignore[arg-type]
    index = open_index(index_dir)
    check_index(index.config, rules)
    searched = search_containment(index, rules, config)
    engine = Engine(index, dataclasses.replace(config, min_containment=searched, min_jaccard=1.0))
    engine.columnar = False  # regurgitation.spans reads each batch's pairs as rows
    need = requirements(index, engine.plan, rules, config, searched)
    with worker_map(describe_parsed, SampleCheck(engine, rules, config.min_containment, config.min_item_shingles),
                    _engine(run_engine, workers)) as wm:
        inputs = run_sources(wm, expand_sources(targets, fmt=input_format), read, outputs_job(text_field), progress)
    return OutputsResult(index, config, rules, need, engine.plan, inputs, {"text": text_field, "id": id_field})


def write_outputs(result: OutputsResult, out_dir: Path, *, force: bool = False, **readable: Any) -> dict[str, Any]:
    """Write an outputs audit's directory atomically (matches, samples, report.json/md/html, bundle.json,
    SHA256SUMS); report.html shows each output's audited text. ``readable`` as for ``write_audit``."""
    extract = sample_extractor(result.fields.get("text") or DEFAULT_TEXT_FIELD)
    return outputs_report.write_outputs(result, out_dir, force=force, extract=extract, **readable)


def render_report(out_dirs: list[Path], fmt: str = "html", *, html_pairs: int = DEFAULT_HTML_PAIRS,
                  reference_sources: tuple[str, ...] = ()) -> str:
    """One report (html or md) of saved audit outputs, e.g. a training and a model-output audit together;
    nothing is rerun (``report.render.render_saved``).

    Raises:
        OutputFormatError: if a file of an output directory is missing, changed or unexpected.
    """
    return render_saved(out_dirs, fmt, html_pairs=html_pairs, extract=sample_extractor,
                        reference_sources=reference_sources)


def resolve_kind(kind: str, targets: list[str] | tuple[str, ...], text_field: str, *, sample: SampleConfig,
                 control: bool, resume: bool, input_format: str | None = None) -> str:
    """``"training"`` or ``"outputs"``: ``kind`` as given, or detected from the targets' shape for ``"auto"``.

    Raises:
        ConfigError: for options that apply to training audits only, with an outputs audit.
    """
    if kind == "auto":
        kind = detect_kind(list(targets), text_field, input_format)
    if kind == "outputs":
        if sample.active or control:
            raise ConfigError("--sample, --sample-shards and --control apply to training audits, not --kind outputs")
        if resume:
            raise ConfigError("--resume applies to training audits, not --kind outputs")
    return kind


from provaudit.gate.acceptance import load_allow, load_baseline  # noqa: E402  (kept beside check())
from provaudit.gate.verdict import (  # noqa: E402
    DEFAULT_SHOW, Limits, SourceCount, Verdict, evaluate, evidence_from_batches)

__all__ += ["check"]


def check(
    index_dir: Path | str,
    targets: list[str] | tuple[str, ...],
    config: AuditConfig | None = None,
    limits: Limits | None = None,
    *,
    baseline: Path | None = None,
    allow: Path | None = None,
    text_field: str = "text",
    id_field: str | None = "id",
    on_error: str = "fail",
    workers: int = 1,
    out: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    input_format: str | None = None,
    run_engine: RunEngine | None = None,
    show: int = DEFAULT_SHOW,
) -> Verdict:
    """The CI gate: audit ``targets``, leave out accepted pairs, and check the rest against ``limits``.

    Args:
        limits: What is tolerated (default: no evidence pair at all).
        baseline: An earlier output (audit directory, report.json, matches.parquet or a check
            JSON): pairs found again are accepted.
        allow: A file of accepted reference ids or ``reference_id,target_id`` pairs.
        on_error: ``"fail"`` by default: a gate must account for every record.
        out: Also write the full audit output (matches.parquet, report.json, ...) here.
        show: Strongest counted pairs the verdict keeps (overall and per source) for its renderers.

    Returns:
        The verdict; ``verdict.audit`` carries the audit's index, parameters and counts;
        ``verdict.pairs()`` reads every pair again from the audit's spill (kept while the verdict is).

    Raises:
        InputError: unreadable targets (named), baseline or allow-list (both read before the audit).
        OutputExistsError: ``out`` exists and ``force`` is false (checked before the audit).
    """
    from provaudit.report.common import MARKER as REPORT_MARKER
    from provaudit.report.training import write_audit

    accepted_ids = load_allow(allow) if allow is not None else None
    known = load_baseline(baseline) if baseline is not None else None
    if out is not None:
        check_output(out, force, REPORT_MARKER)  # before the audit
    config = config or AuditConfig()
    result = audit(index_dir, targets, config, text_field=text_field, id_field=id_field, on_error=on_error,
                   workers=workers, progress=progress, input_format=input_format, run_engine=run_engine)
    unread = read_problems(result.inputs)
    if unread:  # a gate must not pass on what it could not read
        raise InputError("not everything was read: " + "; ".join(unread[:5])
                         + (f"; and {len(unread) - 5} more" if len(unread) > 5 else ""))
    report = write_audit(result, out, force=force) if out is not None else training_report.build_report(result)
    sources = [SourceCount(s.source, s.records, s.stats.error) for s in result.inputs]
    items = report["counts"]["reference_items_evidence"]
    verdict = evaluate(evidence_from_batches(result.pair_batches()), sources, items, limits or Limits(), known,
                       accepted_ids, show=show,
                       reread=lambda: evidence_from_batches(result.pair_batches()))  # read again for --json
    verdict.audit = {k: report[k] for k in ("index", "parameters", "counts", "input_problems")}
    return verdict
