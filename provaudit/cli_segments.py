"""``provaudit add``, ``remove`` and ``compact``: the segment operations of an index (kept beside cli.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from provaudit import api_segments
from provaudit.cli_common import _done_progress, cli_errors, quiet_option, stderr_progress, terminal_safe
from provaudit.cli_options import LOCATION, workers_option
from provaudit.config import FORCED_FORMATS
from provaudit.run.engines import RunEngine


def _summary(manifest: dict[str, Any]) -> str:
    c, segs = manifest["counts"], manifest["segments"]
    removed = manifest["removed"]["rows"] if manifest.get("removed") else 0
    return (f"{len(segs)} segment(s), {c['items']:,} live items"
            + (f" ({removed:,} removed, dropped at the next compact)" if removed else ""))


@click.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.argument("sources", nargs=-1, required=True)
@click.option("--ngram", type=int, help="Checked against the index's parameter (refused when it differs).")
@click.option("--num-perm", type=int, help="Checked against the index's parameter.")
@click.option("--seed", type=int, help="Checked against the index's parameter.")
@click.option("--hash", "hash_", type=click.Choice(["xxh3", "sha1"]), help="Checked against the index's parameter.")
@click.option("--anchors", type=int, help="Checked against the index's parameter.")
@click.option("--keep-text/--no-keep-text", default=None, help="Checked against the index's parameter.")
@click.option("--text-field", default="text", show_default=True, help="Field with the text (a dotted path reaches "
              "into nested objects).")
@click.option("--id-field", default="id", show_default=True, help="Field with the record id (ids must be new to the "
              "index).")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="On a malformed record: stop naming file and line, or skip and count it.")
@click.option("--format", "input_format", type=click.Choice(FORCED_FORMATS), help="Reader for the files named.")
@workers_option
@quiet_option
def add(index_dir: Path, sources: tuple[str, ...], ngram: int | None, num_perm: int | None, seed: int | None,
        hash_: str | None, anchors: int | None, keep_text: bool | None, text_field: str, id_field: str,
        on_error: str, input_format: str | None, workers: int | None, engine: str, ray_address: str | None,
        quiet: bool) -> None:
    """Add SOURCES to an index as a new segment, without a rebuild (same parameters; ids must be new).

    The index is the one before or the one after, whenever the command is stopped.

    \b
    Example:
        provaudit add posts.idx new-posts/*.jsonl
    """
    given = {k: v for k, v in (("ngram", ngram), ("num_perm", num_perm), ("seed", seed), ("hash", hash_),
                               ("anchors", anchors), ("keep_text", keep_text)) if v is not None}
    with cli_errors():
        t0 = time.monotonic()
        manifest = api_segments.add_to_index(index_dir, sources, given, text_field=text_field, id_field=id_field,
                                             on_error=on_error, input_format=input_format,
                                             run_engine=RunEngine(engine, workers, ray_address))
        if not quiet:
            seg = manifest["segments"][-1]
            click.echo(f"Added {seg['counts']['items']:,} reference items as {seg['name']} in "
                       f"{time.monotonic() - t0:.1f}s -> {terminal_safe(str(index_dir))}: {_summary(manifest)}")


@click.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@click.option("--ids", "ids_file", required=True, type=click.Path(path_type=Path),
              help="File of the ids to remove, one per line (UTF-8).")
@quiet_option
def remove(index_dir: Path, ids_file: Path, quiet: bool) -> None:
    """Remove items from an index by id: never reported again, their data dropped at the next compact.

    Ids that are not (or no longer) items of the index are listed on stderr; exit 1 when none is.

    \b
    Example:
        provaudit remove posts.idx --ids opted-out.txt
    """
    with cli_errors():
        result = api_segments.remove_from_index(index_dir, ids_file)
        if result.not_found:
            shown = ", ".join(repr(terminal_safe(i)) for i in result.not_found[:5])
            more = f" and {len(result.not_found) - 5:,} more" if len(result.not_found) > 5 else ""
            click.echo(f"Note: {len(result.not_found):,} id(s) are not items of the index: {shown}{more}", err=True)
        if not quiet:
            click.echo(f"Removed {result.removed:,} items -> {terminal_safe(str(index_dir))}: {_summary(result.manifest)}")


@click.command()
@click.argument("index_dir", type=click.Path(path_type=Path))
@quiet_option
def compact(index_dir: Path, quiet: bool) -> None:
    """Merge an index's segments into one and drop its removed items (items renumbered in order).

    \b
    Example:
        provaudit compact posts.idx
    """
    with cli_errors():
        t0 = time.monotonic()
        manifest, merged = api_segments.compact_index(index_dir)
        if not quiet:
            what = f"Compacted in {time.monotonic() - t0:.1f}s" if merged else "Nothing to compact"
            click.echo(f"{what} -> {terminal_safe(str(index_dir))}: {_summary(manifest)}")


@click.command()
@click.argument("index_dir", type=LOCATION)
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path), help="Parquet file to write.")
@click.option("--force", is_flag=True, help="Replace OUT if it is a signature file provaudit wrote.")
@quiet_option
def signatures(index_dir: Path | str, out: Path, force: bool, quiet: bool) -> None:
    """Write the MinHash signature of every live item (id, item, hashvalues) to a Parquet file.

    The index stores no signatures (audits do not read them); they are computed from its shingle
    sequences, and equal datasketch's MinHash(num_perm, seed).hashvalues for the same shingles: with
    an index built with --hash sha1, load a row as
    datasketch.LeanMinHash(seed=SEED, hashvalues=..., scheme="affine32").

    \b
    Example:
        provaudit signatures posts.idx -o posts.sig.parquet
    """
    with cli_errors():
        t0 = time.monotonic()
        n = api_segments.export_signatures(index_dir, out, force=force, progress=stderr_progress(quiet))
        _done_progress(quiet)
        if not quiet:
            click.echo(f"Wrote {n:,} signatures in {time.monotonic() - t0:.1f}s -> {terminal_safe(str(out))}")
