"""Command-line interface: a thin click layer over ``provaudit.api``.

Exit codes: 0 success; 1 error (bad input, bad index, existing output, I/O); 2 usage error;
3 ``check`` found leaks; 130 interrupted (Ctrl-C). README.md has the table.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

from provaudit import api
from provaudit.version import __version__
from provaudit.config import AuditConfig, IndexConfig, SampleConfig
from provaudit.config import DEFAULT_MAX_RECORD_CHARS, FORCED_FORMATS, VerdictRules
from provaudit.errors import ConfigError, ProvauditError
from provaudit.fs.atomic import check_output
from provaudit.fs.remote_out import staged_output
from provaudit.fs.urls import is_url
from provaudit.index.format import MARKER as INDEX_MARKER
from provaudit.report.common import MARKER as REPORT_MARKER
from provaudit.report.regurgitation import summary_line
from provaudit.results import AuditResult, read_problems
from provaudit.run.checkpoint import partial_dir
from provaudit.cli_common import (
    CONTEXT_SETTINGS, RecordingGroup, _announced, _done_progress, announce_fallback, cli_errors, force_option,
    html_pairs_option, quiet_option, reference_text_option, run_provenance, stderr_progress,
)
from provaudit.cli_options import LOCATION, partitions_option, workers_option
from provaudit.run.engines import RunEngine

FORMAT_HELP = ("Reader for the files named or globbed, whatever their suffix (.gz/.zst: compressed). Default, by suffix: "
               ".jsonl/.ndjson, .json (array or lines), .csv, .txt (a record per line), each also .gz or .zst; "
               ".parquet; .arrow (Arrow IPC file or stream); save_to_disk directories; hf:NAME[:SPLIT].")


def _input_options(f: Callable[..., Any], on_error: str, why: str) -> Callable[..., Any]:
    f = click.option("--on-error", type=click.Choice(["fail", "skip"]), default=on_error, show_default=True,
                     help="On a malformed record or unreadable file: stop with an error naming file and line, "
                          f"or skip it and count it by reason in the output ({why}).")(f)
    f = click.option("--id-field", default="id", show_default=True,
                     help="Field with the record id, or a dotted path (when absent: <file>#<row>).")(f)
    f = click.option("--text-field", default="text", show_default=True,
                     help="Field with the text; a dotted path (doc.body) reaches into nested objects and struct "
                          "columns.")(f)
    f = click.option("--format", "input_format", type=click.Choice(FORCED_FORMATS), help=FORMAT_HELP)(f)
    return f


def input_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--text-field, --id-field and --on-error (default fail: every input must be accounted for)."""
    return _input_options(f, "fail", "fail by default: every record must be accounted for")


def audit_input_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """As ``input_options``, with --on-error skip by default (training shards are dirty)."""
    return _input_options(f, "skip", "skip by default: shards are dirty, and skips are listed in the report")


@click.group(cls=RecordingGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="provaudit")
def cli() -> None:
    """Audit training shards or model outputs for a reference corpus, with exact-verified evidence.

    \b
    Quick start:
        provaudit index fixtures/reference -o ref.idx
        provaudit audit ref.idx fixtures/shards -o audit-out

    Inputs: .jsonl/.ndjson, .json, .csv, .txt (each also .gz or .zst), .parquet,
    .arrow files, directories and globs of them, save_to_disk directories,
    hf:NAME[:SPLIT]; --format forces a reader, --text-field doc.body reads nested fields.
    """


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("-o", "--out", "out", required=True, type=LOCATION, help="Index directory (or URL) to write.")
@click.option("--ngram", default=3, show_default=True, help="Shingle size (words, or characters with --char).")
@click.option("--char", "char", is_flag=True, help="Character n-gram shingles instead of words.")
@click.option("--num-perm", default=128, show_default=True, help="MinHash permutations.")
@click.option("--seed", default=1, show_default=True, help="MinHash seed.")
@click.option("--hash", "hash_", type=click.Choice(["xxh3", "sha1"]), default="xxh3", show_default=True,
              help="Shingle hash: fast xxh3, or sha1 (datasketch's default, for sketch interchange).")
@click.option("--threshold", default=0.5, show_default=True, help="Jaccard threshold the LSH bands are tuned for.")
@click.option("--bands", default=0, help="LSH bands (default: datasketch's optimum for --threshold).")
@click.option("--rows", default=0, help="LSH rows per band (with --bands).")
@click.option("--anchors", default=16, show_default=True, help="Anchor shingles kept per item for containment search.")
@click.option("--keep-text", is_flag=True, help="Store reference text in the index (readable evidence).")
@click.option("--band-table/--no-band-table", default=False, show_default=True,
              help="Also store the LSH band table (+70% on disk; anchors alone already search every pair).")
@click.option("--keep-segments", is_flag=True,
              help="With --engine ray: keep the parts the tasks wrote as the index's segments (no merge).")
@workers_option
@input_options
@force_option
@quiet_option
def index(sources: tuple[str, ...], out: Path | str, ngram: int, char: bool, num_perm: int, seed: int, hash_: str,
          threshold: float, bands: int, rows: int, anchors: int, keep_text: bool, band_table: bool, keep_segments: bool,
          workers: int | None, engine: str, ray_address: str | None, text_field: str, id_field: str,
          input_format: str | None, on_error: str, force: bool, quiet: bool) -> None:
    """Index a reference corpus (SOURCES: files, directories, globs, saved datasets, hf:NAME).

    \b
    Example:
        provaudit index posts/*.jsonl -o posts.idx
    """
    with cli_errors():
        run_on = RunEngine(engine, workers, ray_address)
        if keep_segments and engine != "ray":
            raise ConfigError("--keep-segments needs --engine ray (the segments are the parts its tasks write)")
        cfg = IndexConfig(ngram=ngram, unit="char" if char else "word", num_perm=num_perm, seed=seed, hash=hash_,
                          threshold=threshold, bands=bands, rows=rows, anchors=anchors, keep_text=keep_text,
                          band_table=band_table)
        t0 = time.monotonic()
        with staged_output(out, force, INDEX_MARKER) as local_out:  # a URL: written here, then uploaded
            manifest = api.build_index(sources, local_out, cfg, text_field=text_field, id_field=id_field,
                                       on_error=on_error, force=force, run_engine=run_on,
                                       progress=stderr_progress(quiet), input_format=input_format,
                                       keep_segments=keep_segments)
        _done_progress(quiet)
        if not quiet:
            c = manifest["counts"]
            skipped = sum(sum(i["rows_skipped"].values()) for i in manifest["inputs"])
            click.echo(f"Indexed {c['items']:,} reference items ({skipped:,} skipped) from "
                       f"{len(manifest['inputs'])} input(s) in {time.monotonic() - t0:.1f}s -> {out}")
            click.echo(f"Parameters: {manifest['fingerprint']}")


@cli.command()
@click.argument("index_dir", type=LOCATION)
@click.argument("targets", nargs=-1, required=True)
@click.option("-o", "--out", "out", required=True, type=LOCATION, help="Output directory (or URL).")
@click.option("--min-containment", default=0.5, show_default=True,
              help="Report pairs whose exact containment (share of the reference item in the target) reaches this.")
@click.option("--min-jaccard", default=0.5, show_default=True, help="Report pairs whose exact Jaccard reaches this.")
@click.option("--miss-rate", default=0.01, show_default=True,
              help="Tolerated probability of missing a pair at the threshold in candidate search.")
@click.option("--top", "top", default=20, show_default=True, help="Strongest pairs listed in the report.")
@click.option("--sample", "sample_records", metavar="FRACTION|COUNT",
              help="Read a reproducible uniform sample of target records: a fraction (0.01 or 1%) or a count.")
@click.option("--sample-shards", metavar="FRACTION|COUNT", help="Read a reproducible sample of whole input files.")
@click.option("--seed", "sample_seed", default=0, show_default=True, help="Sampling seed.")
@click.option("--confidence", default=0.95, show_default=True, help="Confidence level of reported intervals.")
@click.option("--control", "control", multiple=True, metavar="SOURCE",
              help="Negative-control reference set (repeatable; files, or an index built with the same parameters): "
                   "its match rate is the chance baseline the reference is compared with.")
@click.option("--min-item-shingles", default=5, show_default=True,
              help="Reference items with fewer shingles are too short to be evidence (flagged, not counted).")
@click.option("--frequent-item-records", default=0,
              help="Flag items matched in more target records than this (0: max(50, 1% of records read)).")
@click.option("--kind", type=click.Choice(["auto", "training", "outputs"]), default="auto", show_default=True,
              help="Targets are training shards, or samples of a model's outputs (auto: from the input shape).")
@click.option("--min-verbatim-tokens", default=20, show_default=True,
              help="Outputs: a shared span this long (or the whole item, if shorter) is verbatim regurgitation.")
@click.option("--min-span-tokens", default=8, show_default=True, help="Outputs: shorter shared spans are never evidence.")
@click.option("--min-span-share", default=0.5, show_default=True,
              help="Outputs: a shared span covering this share of an item is partial regurgitation.")
@click.option("--max-record-chars", default=DEFAULT_MAX_RECORD_CHARS, show_default=True, type=click.IntRange(1),
              help="Longer target texts are cut to this many characters (counted in the report); bounds memory.")
@html_pairs_option
@reference_text_option
@click.option("--max-skipped", default=1.0, show_default=True, type=click.FloatRange(0, 1),
              help="Exit 4 when more than this share of target records was skipped (bad records). An input read to no "
                   "record or not to its end always exits 4.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted audit to the same OUT: finished sources whose files and parameters are "
                   "unchanged are taken from its checkpoint (.OUT.partial); the output is identical.")
@workers_option
@partitions_option
@audit_input_options
@force_option
@quiet_option
def audit(index_dir: Path | str, targets: tuple[str, ...], out: Path | str, kind: str, force: bool, quiet: bool,
          **opts: Any) -> None:
    """Find the indexed reference items in TARGETS; write matches.parquet and report.json/md/html to OUT.

    \b
    Example:
        provaudit audit posts.idx data/train-*.parquet -o audit-2026-11/
    """
    o = SimpleNamespace(**opts)
    read = {"text_field": o.text_field, "id_field": o.id_field, "on_error": o.on_error,
            "max_record_chars": o.max_record_chars, "input_format": o.input_format}
    readable = {"provenance": run_provenance(), "html_pairs": o.html_pairs, "reference_sources": o.reference_text}
    if o.resume and is_url(out):
        raise click.UsageError("--resume needs a local -o (a URL output is staged in a temporary directory)")
    with cli_errors("no output was written (finished sources are checkpointed: rerun with --resume)"), \
            staged_output(out, force, REPORT_MARKER) as local_out:  # a URL: written here, then uploaded
        check_output(local_out, force, REPORT_MARKER)  # refused before any work, not after the audit
        run_on = RunEngine(o.engine, o.workers, o.ray_address, o.partitions)
        cfg = AuditConfig(min_containment=o.min_containment, min_jaccard=o.min_jaccard, miss_rate=o.miss_rate,
                          top_evidence=o.top, confidence=o.confidence, min_item_shingles=o.min_item_shingles,
                          frequent_item_records=o.frequent_item_records)
        sample = SampleConfig(SampleConfig.parse(o.sample_records), SampleConfig.parse(o.sample_shards), o.sample_seed)
        t0 = time.monotonic()
        kind = api.resolve_kind(kind, targets, o.text_field, sample=sample, control=bool(o.control), resume=o.resume,
                                input_format=o.input_format)
        if kind == "outputs":
            rules = VerdictRules(o.min_verbatim_tokens, o.min_span_tokens, o.min_span_share)
            o_result = api.audit_outputs(index_dir, list(targets), cfg, run_engine=run_on,
                                         progress=stderr_progress(quiet), rules=rules, **read)
            o_report = api.write_outputs(o_result, local_out, force=force, **readable)
            inputs = o_result.inputs
        else:
            result = api.audit(index_dir, targets, cfg, run_engine=run_on, sample=sample,
                               control=list(o.control) or None, progress=stderr_progress(quiet),
                               checkpoint=partial_dir(local_out), resume=o.resume, **read)
            report = api.write_audit(result, local_out, force=force, **readable)
            inputs = result.inputs
    _done_progress(quiet)
    if not quiet:
        if kind == "outputs":
            click.echo(f"{summary_line(o_report)} in {time.monotonic() - t0:.1f}s -> {out}")
        else:
            _audit_notes(result, report)
            _audit_summary(report, time.monotonic() - t0, out)
    _exit_if_unread(inputs, o.max_skipped, out)


def _exit_if_unread(inputs: list[Any], max_skipped: float, out: Path | str) -> None:
    """Exit 4 (the output is written) when not everything was read: read nothing never passes for found nothing."""
    problems = read_problems(inputs, max_skipped)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        click.echo(terminal_safe(f"Error: not everything was read: {shown}. The output was written to {out} "
                                 "(its report lists every input problem)."), err=True)
        sys.exit(4)


def _audit_summary(report: dict[str, Any], seconds: float, out: Path | str) -> None:
    """The few lines a training audit prints on stdout."""
    c, est = report["counts"], report["estimates"]
    click.echo(
        f"{c['reference_items_found']:,} of {c['reference_items']:,} reference items found in "
        f"{c['target_records_with_matches']:,} of {c['target_records']:,} target records "
        f"({c['pairs']:,} verified pairs, {c['skipped_records']:,} records skipped) "
        f"in {seconds:.1f}s -> {out}"
    )
    tc = est["target_contamination"]
    if tc["value"] is not None:
        click.echo(f"Target records with reference material: {100 * tc['value']:.2f}% "
                   f"({100 * tc['ci_low']:.2f}% to {100 * tc['ci_high']:.2f}%, {tc['method']})")
    if "control" in report:
        ex = report["control"]["excess"]
        click.echo(f"Excess over negative control: {100 * ex['value']:.2f} points "
                   f"({100 * ex['ci_low']:.2f} to {100 * ex['ci_high']:.2f})")


def _audit_notes(result: AuditResult, report: dict[str, Any]) -> None:
    """Resumption and input problems, on stderr (the report has the details)."""
    ckpt = result.checkpoint
    if ckpt is not None and ckpt.note:
        click.echo(f"Note: {ckpt.note}.", err=True)
    if result.resumed_sources:
        click.echo(f"Resumed: {result.resumed_sources} of {len(result.inputs)} sources taken from the checkpoint.",
                   err=True)
    ip = report["input_problems"]
    if ip["ignored_files"]["count"]:
        click.echo(f"Note: {ip['ignored_files']['count']:,} entries of the input directories were not read (unsupported, "
                   "not regular files, links to directories); see 'Input problems' in report.md.", err=True)
    if not ip["all_records_read"]:
        lost = sum(v for k, v in ip["records_skipped"].items() if k not in ("null text", "empty text"))
        parts = [f"{lost:,} records skipped"] if lost else []
        if ip["records_altered"]:
            parts.append(f"{sum(ip['records_altered'].values()):,} altered")
        if ip["inputs_with_errors"]:
            parts.append(f"{len(ip['inputs_with_errors'])} input(s) not read to the end")
        click.echo(f"Warning: not every target record was audited: {', '.join(parts)}; "
                   "see 'Input problems' in report.md.", err=True)


@cli.command()
@click.argument("index_dir", type=LOCATION)
def info(index_dir: Path | str) -> None:
    """Print an index's manifest as JSON (the manifest and checksum list verified; ``verify`` checks every byte).

    \b
    Example:
        provaudit info posts.idx | jq .config
    """
    from provaudit.index.format import manifest_text
    from provaudit.index.remote import open_index

    with cli_errors():
        idx = open_index(index_dir)
        click.echo(manifest_text(idx.manifest), nl=False)  # as manifest.json: an input per line


from os import environ  # noqa: E402  (the check command's block)

from provaudit.gate import settings as check_settings  # noqa: E402
from provaudit.gate.escape import terminal_safe  # noqa: E402
from provaudit.gate.github import DEFAULT_MAX_ANNOTATIONS, command, render_github  # noqa: E402
from provaudit.gate.jsonout import write_json  # noqa: E402
from provaudit.gate.outputs import exit_code, write_error_reports, write_reports  # noqa: E402
from provaudit.gate.terminal import render_text, verdict_line  # noqa: E402
from provaudit.gate.verdict import Limits, Verdict  # noqa: E402

_fraction = click.FloatRange(0.0, 1.0)


@cli.command()
@click.argument("args", nargs=-1, metavar="[INDEX] [TARGET]...")
@click.option("--index", type=LOCATION, help="The index (then every argument is a target).")
@click.option("--config", type=click.Path(path_type=Path),
              help="Settings file (default: provaudit.toml, or [tool.provaudit] in pyproject.toml, here or above).")
@click.option("--max-pairs", type=click.IntRange(0), help="Fail when more evidence pairs count [default: 0 when no "
                                                          "limit is set].")
@click.option("--max-contamination", type=_fraction, help="Fail when a larger share of target records holds evidence.")
@click.option("--max-reference-coverage", type=_fraction, help="Fail when a larger share of reference items is found.")
@click.option("--baseline", type=click.Path(path_type=Path),
              help="Earlier output (audit directory, report.json, matches.parquet, or check --json): its pairs "
                   "do not count.")
@click.option("--allow", type=click.Path(path_type=Path),
              help="File of accepted reference ids or reference_id,target_id pairs (one a line, # comments).")
@click.option("--junit", type=click.Path(path_type=Path), help="Write JUnit XML: a test case per target source.")
@click.option("--github", is_flag=True, help="Print GitHub Actions annotations (::error file=...,line=...::...).")
@click.option("--max-annotations", type=click.IntRange(0), default=DEFAULT_MAX_ANNOTATIONS, show_default=True,
              help="Most record annotations with --github (GitHub shows 10 errors a step).")
@click.option("--json", "json_file", metavar="FILE|-", help="Write the verdict, limits, counts and pairs as JSON.")
@click.option("--min-containment", default=0.5, show_default=True, type=_fraction, help="As for audit.")
@click.option("--min-jaccard", default=0.5, show_default=True, type=_fraction, help="As for audit.")
@click.option("--min-item-shingles", default=5, show_default=True, help="As for audit.")
@click.option("-o", "--out", "out", type=click.Path(path_type=Path),
              help="Also write the full audit output (matches.parquet, report.json, report.md) here.")
@click.option("--show", type=click.IntRange(0), default=10, show_default=True,
              help="Strongest pairs listed on failure.")
@workers_option
@partitions_option
@input_options
@force_option
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict line.")
@click.pass_context
def check(ctx: click.Context, /, args: tuple[str, ...], **params: Any) -> None:
    """CI gate: exit 3 when TARGETS hold indexed reference items (opted-out or benchmark data) over the limits.

    Runs a full audit. Exit 0: within the limits; 3: over them (each failing limit named,
    the strongest pairs listed); 1: input error; 2: usage error. Pairs in --baseline or
    --allow do not count. INDEX, TARGETs and options can come from [tool.provaudit] in
    pyproject.toml or a provaudit.toml; the command line overrides them.

    \b
    Example:
        provaudit check benchmark-test.idx new-corpus/ --max-pairs 0 --junit provaudit.xml
    """
    announce_fallback(False)
    with cli_errors():
        given = {k for k in params if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
        o = check_settings.merge(params, given, check_settings.load_settings(params["config"], Path.cwd())[1])
        index, targets = check_settings.resolve_inputs(args, o["index"], o.get("targets"))
        if o["json_file"] == "-" and o["github"]:
            raise ConfigError("--json - and --github both write to stdout; give --json a file name")
        limits = Limits(o["max_pairs"], o["max_contamination"], o["max_reference_coverage"])
        cfg = AuditConfig(min_containment=o["min_containment"], min_jaccard=o["min_jaccard"],
                          min_item_shingles=o["min_item_shingles"])
        out = Path(o["out"]) if o["out"] else None
        run_on = RunEngine(o["engine"], o["workers"], o["ray_address"], o["partitions"])
        try:
            verdict = api.check(index, targets, cfg, limits, baseline=_path(o["baseline"]),
                                allow=_path(o["allow"]), text_field=o["text_field"], id_field=o["id_field"],
                                on_error=o["on_error"], input_format=o["input_format"], run_engine=run_on, out=out,
                                force=o["force"], show=o["show"])
        except (ProvauditError, OSError) as e:  # exit 1: CI still gets a report saying why
            message = f"{e.filename}: {e.strerror or e}" if isinstance(e, OSError) and e.filename else str(e)
            write_error_reports(message, junit=_path(o["junit"]),
                                json_file=None if o["json_file"] == "-" else _path(o["json_file"]))
            if o["github"]:
                click.echo(command("error", f"Error: {terminal_safe(message)}", title="provaudit check"))
            raise
        _emit_check(verdict, o, f" (see {terminal_safe(out)}/matches.parquet)" if out else "")
    sys.exit(exit_code(verdict))


def _path(value: str | Path | None) -> Path | None:
    return Path(value) if value else None


def _emit_check(v: Verdict, o: dict[str, Any], more_hint: str) -> None:
    """Write --junit/--json files, print annotations and the verdict (on stderr when JSON goes to stdout)."""
    to_stdout = o["json_file"] == "-"
    write_reports(v, junit=_path(o["junit"]), json_file=None if to_stdout else _path(o["json_file"]))
    if o["github"]:
        for line in render_github(v, verdict_line(v), max_annotations=o["max_annotations"],
                                  workspace=environ.get("GITHUB_WORKSPACE")):
            click.echo(line)
    for line in render_text(v, quiet=o["quiet"], more_hint=more_hint):
        click.echo(line, err=to_stdout)
    if to_stdout:
        write_json(v, exit_code(v), sys.stdout)  # streamed: the pairs are read again


from provaudit.cli_report import report, verify  # noqa: E402  (report and verify live beside)
from provaudit.cli_segments import add, compact, remove, signatures  # noqa: E402  (so do the segment operations)

cli.add_command(report)
cli.add_command(verify)
for _command in (add, remove, compact, signatures):
    cli.add_command(_command)


def main() -> None:  # pragma: no cover
    cli()
