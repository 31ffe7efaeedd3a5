"""``provaudit report`` (re-render saved audits, one report for several) and ``provaudit verify`` (bundles)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from provaudit import api
from provaudit.cli_common import cli_errors, force_option, html_pairs_option, reference_text_option, terminal_safe
from provaudit.errors import ConfigError, OutputExistsError, ProvauditError


@click.command()
@click.argument("out_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: standard output).")
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default=None,
              help="Report format (default: from the -o suffix, else html).")
@html_pairs_option
@reference_text_option
@force_option
def report(out_dirs: tuple[Path, ...], out: Path | None, fmt: str | None, html_pairs: int,
           reference_text: tuple[str, ...], force: bool) -> None:
    """Render one report from saved audit outputs (OUT_DIRS) without rerunning anything.

    Give a training audit and a model-output audit to get one report with both. Every file
    of each output is checked against its checksums first; texts are read back from the
    audited files only while their sha256 is unchanged.

    \b
    Example:
        provaudit report audit-out/ outputs-out/ -o evidence.html
    """
    from provaudit.fs.atomic import write_file_atomic

    with cli_errors():
        fmt = fmt or ("md" if out is not None and out.suffix.lower() in (".md", ".markdown") else "html")
        if out is not None and out.exists() and not force:
            raise OutputExistsError(f"{out}: already exists (use --force to replace it)")
        text = api.render_report(list(out_dirs), fmt, html_pairs=html_pairs, reference_sources=reference_text)
        if out is None:
            click.echo(text, nl=False)
        else:
            write_file_atomic(out, text.encode("utf-8"))


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--rerun", is_flag=True, help="Audit outputs: also run the recorded command again and compare figures.")
def verify(path: Path, rerun: bool) -> None:
    """Check an audit output directory, or an index, against the checksums it records.

    An audit output (it has bundle.json): exit 1 naming each file that changed, is missing or
    was added, the recorded index manifest or input found changed, or (with --rerun) each figure
    the rerun did not reproduce; run it where the audit ran (recorded paths are relative to
    there). An index: every byte of every file and every value audits rely on (exit 1 naming
    the first problem).

    \b
    Examples:
        provaudit verify audit-out/ --rerun
        provaudit verify posts.idx
    """
    from provaudit.report import bundle

    with cli_errors():
        if not path.is_dir():
            raise ProvauditError(f"{path}: not a directory (give an audit output or an index)")
        if not (path / bundle.BUNDLE).exists() and (path / "manifest.json").is_file():
            if rerun:
                raise ConfigError("--rerun applies to audit outputs, not to an index")
            from provaudit.index.check import verify_index

            idx = verify_index(path)
            size = sum(f.size for f in idx.files.values())
            click.echo(f"OK: {terminal_safe(path)}: {idx.live_items:,} items, {size:,} bytes in {len(idx.files)} files verified")
            return
        problems, notes = bundle.verify(path)
        for n in notes:
            click.echo(f"Note: {terminal_safe(n)}", err=True)
        for p in problems:
            click.echo(f"CHANGED: {terminal_safe(p)}")
        if problems:
            sys.exit(1)
        click.echo(f"OK: {terminal_safe(path)}: every file matches {bundle.BUNDLE}")
        if rerun:
            diffs, cmd = bundle.rerun(path)
            for d in diffs:
                click.echo(f"NOT REPRODUCED: {terminal_safe(d)}")
            if diffs:
                sys.exit(1)
            click.echo(f"Rerun reproduced every figure: {terminal_safe(cmd)}")
