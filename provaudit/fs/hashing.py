"""Content hashes: files (sha256, cancellable) and canonical JSON."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any


class HashCancelled(Exception):
    """``sha256_file`` was told to stop."""


def sha256_file(path: Path, stop: threading.Event | None = None) -> str:
    """The file's sha256 (hex); raises HashCancelled as soon as ``stop`` is set."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            if stop is not None and stop.is_set():
                raise HashCancelled(str(path))
            h.update(chunk)
    return h.hexdigest()


def json_checksum(obj: dict[str, Any], exclude: str, *, prefix: str = "") -> str:
    """sha256 of ``obj`` as canonical JSON (sorted keys, compact), without its ``exclude`` field."""
    body = {k: v for k, v in obj.items() if k != exclude}
    return prefix + hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
