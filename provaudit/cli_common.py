"""What every command shares: error mapping (exit codes), common options, and the recorded command line.

``cli_errors`` maps provaudit errors to messages and exit codes in one place; the group
class ``RecordingGroup`` keeps the arguments a command was given, which audits record in
report.json (``reproduce``) so that ``provaudit verify --rerun`` can run them again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from provaudit.errors import ConfigError, ProvauditError
from provaudit.gate.escape import terminal_safe
from provaudit.progress import StatusLine, fallback_notice
from provaudit.results import Progress

__all__ = ["CONTEXT_SETTINGS", "RecordingGroup", "cli_errors", "force_option", "html_pairs_option", "quiet_option",
           "reference_text_option", "run_provenance", "terminal_safe"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@contextmanager
def cli_errors(interrupted: str = "no output was written") -> Iterator[None]:
    """Map provaudit errors to click messages and exit codes (no tracebacks).

    ProvauditError: exit 1 (ConfigError: usage error, exit 2); an OSError (disk full, permission
    denied) or MemoryError: exit 1 with a message; Ctrl-C: exit 130. On each of these paths the
    command's temporary output is removed first, so no partial output remains. Messages are made
    safe for the terminal (they can quote file names and corrupt data).

    SIGTERM and SIGKILL end the process at once (no handler: a Python-level SIGTERM handler is
    inherited by forked workers and can swallow the pool's own SIGTERM); the previous output,
    or none, stays in place, and a later run removes the stale temporary directory.

    Args:
        interrupted: What the user is told about outputs when interrupted.
    """
    try:
        yield
    except ConfigError as e:
        raise click.UsageError(terminal_safe(e)) from e
    except ProvauditError as e:
        raise click.ClickException(terminal_safe(e)) from e
    except KeyboardInterrupt:
        click.echo(f"Interrupted; {interrupted}.", err=True)
        sys.exit(130)
    except MemoryError as e:
        raise click.ClickException("out of memory; use fewer --workers or a lower --max-record-chars") from e
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        raise click.ClickException(terminal_safe(f"{where}{e.strerror or e}")) from e


quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress or summary output.")
force_option = click.option("--force", is_flag=True, help="Replace the output if it exists.")


html_pairs_option = click.option(
    "--html-pairs", default=300, show_default=True, type=click.IntRange(0),
    help="Strongest evidence pairs embedded, with their texts, in report.html (all pairs stay in matches.parquet).")
reference_text_option = click.option(
    "--reference-text", "reference_text", multiple=True, metavar="SOURCE",
    help="Reference corpus files to show item text from, when the index holds none and the sources it records "
         "are not found (repeatable; matched by id).")

ARGV = "provaudit.argv"


class RecordingGroup(click.Group):
    """A command group that keeps the arguments it was given (``ctx.meta[ARGV]``) for reports to record."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[ARGV] = list(args)
        return super().parse_args(ctx, args)


def run_provenance() -> dict[str, Any]:
    """The running command (as ``report.bundle.provenance`` records it) and the date."""
    from provaudit.report.bundle import provenance

    return provenance(click.get_current_context().meta.get(ARGV, []))


_announced: list[str] = []


def announce_fallback(quiet: bool) -> None:
    """``fallback_notice`` on stderr, once per run, unless quiet."""
    notice = None if quiet or _announced else fallback_notice()
    if notice:
        _announced.append(notice)
        click.echo(notice, err=True)


def stderr_progress(quiet: bool) -> Progress | None:
    """A progress callback redrawing one status line on stderr (only on a terminal, never with -q)."""
    announce_fallback(quiet)
    if quiet or not sys.stderr.isatty():
        return None
    return StatusLine(lambda text: click.echo(text, err=True, nl=False))


def _done_progress(quiet: bool) -> None:
    if not quiet and sys.stderr.isatty():
        click.echo("\r\x1b[K", err=True, nl=False)
