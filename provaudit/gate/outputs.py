"""The gate's report files (``--junit FILE``, ``--json FILE``), written atomically: a reader sees the
previous file or the whole new one. On an input error they say why (``render_*_error``)."""

from __future__ import annotations

import io
from pathlib import Path

from provaudit.fs.atomic import atomic_file, write_file_atomic
from provaudit.gate.jsonout import render_json_error, write_json
from provaudit.gate.junit import render_junit, render_junit_error
from provaudit.gate.verdict import Verdict

EXIT_PASS, EXIT_OVER_LIMITS, EXIT_ERROR = 0, 3, 1


def exit_code(v: Verdict) -> int:
    """0 within the limits, 3 over them."""
    return EXIT_PASS if v.passed else EXIT_OVER_LIMITS


def write_reports(v: Verdict, *, junit: Path | None, json_file: Path | None, show: int | None = None) -> None:
    """Write the JUnit XML and/or JSON of a verdict (each only when its path is given); the JSON is
    streamed, its pairs read again from ``v.pairs()``."""
    if junit is not None:
        write_file_atomic(junit, render_junit(v, show=show))
    if json_file is not None:
        with atomic_file(json_file) as raw:
            text = io.TextIOWrapper(raw, encoding="ascii", newline="\n")
            write_json(v, exit_code(v), text)
            text.flush()
            text.detach()  # atomic_file syncs and closes the file itself


def write_error_reports(message: str, *, junit: Path | None, json_file: Path | None) -> None:
    """Write JUnit XML (a test case in error) and/or JSON (``"verdict": "error"``) for exit 1."""
    if junit is not None:
        write_file_atomic(junit, render_junit_error(message))
    if json_file is not None:
        write_file_atomic(json_file, render_json_error(message).encode())
