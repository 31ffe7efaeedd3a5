"""Checksums of an audit output directory, written last and verified on load.

An audit output holds ``SHA256SUMS`` (the format of ``sha256sum``, so
``cd OUT && sha256sum -c SHA256SUMS`` checks it too) naming every other file. It is
written last, inside the temporary directory, before the directory is renamed into place.
``load_report`` refuses an output with a changed, missing, truncated or extra file, so a
damaged or half-copied output never passes for a complete one. Only JSON is parsed: no
file of an output is ever unpickled or executed.

Example:
    >>> report = load_report(Path("audit-out"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from provaudit.errors import ProvauditError
from provaudit.fs.hashing import sha256_file

CHECKSUMS = "SHA256SUMS"
_LINE = re.compile(r"([0-9a-f]{64})  ([^/\\\n]+)")


class OutputFormatError(ProvauditError):
    """An audit output directory is incomplete or fails its integrity check. CLI: exit 1."""


def write_checksums(directory: Path) -> str:
    """Write ``SHA256SUMS`` for every file in ``directory`` (sorted by name); returns its text."""
    names = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != CHECKSUMS)
    text = "".join(f"{sha256_file(directory / n)}  {n}\n" for n in names)
    (directory / CHECKSUMS).write_text(text, encoding="utf-8")
    return text


def verify_checksums(directory: Path) -> dict[str, str]:
    """Check every file of ``directory`` against ``SHA256SUMS``.

    Returns:
        File name -> sha256, for every file checked.

    Raises:
        OutputFormatError: naming the file that is missing, changed, truncated or unexpected.
    """
    if not directory.is_dir():
        raise OutputFormatError(f"{directory}: not a directory")
    sums = directory / CHECKSUMS
    if not sums.is_file():
        raise OutputFormatError(f"{directory}: no {CHECKSUMS} (not a complete provaudit output)")
    try:
        text = sums.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OutputFormatError(f"{sums}: unreadable ({e})") from e
    if not text.endswith("\n"):
        raise OutputFormatError(f"{sums}: truncated (no final newline); the file is damaged")
    lines = text[:-1].split("\n")
    expected: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        m = _LINE.fullmatch(line)
        if m is None or m.group(2) in expected:
            raise OutputFormatError(f"{sums} line {n}: not a 'sha256  name' line; the file is damaged")
        expected[m.group(2)] = m.group(1)
    present = {p.name for p in directory.iterdir() if p.name != CHECKSUMS}
    extra = sorted(present - set(expected))
    if extra:
        raise OutputFormatError(f"{directory / extra[0]}: not listed in {CHECKSUMS} (added after the output was written)")
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise OutputFormatError(f"{path}: missing (listed in {CHECKSUMS})")
        if sha256_file(path) != digest:
            raise OutputFormatError(f"{path}: sha256 does not match {CHECKSUMS} (file changed, truncated or corrupt)")
    return expected


def load_report(directory: Path) -> dict[str, Any]:
    """Verify an audit output directory and return its ``report.json``.

    Raises:
        OutputFormatError: if any file is missing, changed, truncated or unexpected, or the
            report is not a provaudit report.
    """
    verify_checksums(directory)
    try:
        report = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise OutputFormatError(f"{directory / 'report.json'}: unreadable ({e})") from e
    if not isinstance(report, dict) or not str(report.get("format", "")).startswith("provaudit-"):
        raise OutputFormatError(f"{directory / 'report.json'}: not a provaudit report")
    return report
