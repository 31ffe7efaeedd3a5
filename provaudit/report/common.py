"""What every report shares: the versioned header, escaping of untrusted text, numbers for people."""

from __future__ import annotations

import math
from typing import Any

from provaudit.fs.hashing import sha256_file
from provaudit.index.format import Index

FORMAT = "provaudit-report"
FORMAT_VERSION = 1


def round6(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


def report_header(kind: str, idx: Index) -> dict[str, Any]:
    """The fields every report shares: format, kind, versions, and the index audited against."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "versions": idx.manifest.get("versions", {}),
        "index": {
            "path": str(idx.path),
            "fingerprint": idx.manifest["fingerprint"],
            "manifest_sha256": sha256_file(idx.path / "manifest.json"),
            "config": idx.manifest["config"],
            "items": len(idx),
            "inputs": idx.manifest.get("inputs", []),
        },
    }


def md(text: object) -> str:
    """Escape untrusted text for a Markdown table cell."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    for ch in "\\`*_{}[]<>#+!|~&":
        s = s.replace(ch, "\\" + ch)
    return s


def pct(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"
