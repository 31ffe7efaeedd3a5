"""Audits of model output samples (regurgitation evidence). Placeholder: being implemented (issue 6)."""

from __future__ import annotations


def detect_kind(specs: list[str], text_field: str) -> str:
    """Training shards unless the inputs look like generation dumps (not implemented yet)."""
    return "training"
