"""provaudit: find a reference corpus in training shards or model outputs, with exact-verified evidence.

The public API (everything in ``__all__``) is importable from here; the functions and result
types load their modules on first use, so ``import provaudit`` stays cheap.

Example:
    >>> import provaudit
    >>> provaudit.build_index(["fixtures/reference"], Path("ref.idx"), force=True)  # doctest: +SKIP
    >>> result = provaudit.audit(Path("ref.idx"), ["fixtures/shards"])           # doctest: +SKIP
    >>> report = provaudit.write_audit(result, Path("audit-out"), force=True)    # doctest: +SKIP
    >>> report["counts"]["reference_items_found"]                                 # doctest: +SKIP
    864
"""

from __future__ import annotations

import importlib
from typing import Any

from provaudit.config import AuditConfig, IndexConfig, ReadOptions, SampleConfig, VerdictRules
from provaudit.errors import (
    ConfigError, IndexFormatError, IndexMismatchError, InputError, OutputExistsError, ProvauditError,
)
from provaudit.version import __version__

# name -> module that defines it, loaded on first access
_LAZY = {
    "build_index": "provaudit.api",
    "audit": "provaudit.api",
    "audit_outputs": "provaudit.api",
    "write_audit": "provaudit.api",
    "write_outputs": "provaudit.api",
    "check": "provaudit.api",
    "add_to_index": "provaudit.api_segments",
    "remove_from_index": "provaudit.api_segments",
    "compact_index": "provaudit.api_segments",
    "Limits": "provaudit.gate.verdict",
    "Verdict": "provaudit.gate.verdict",
    "load_index": "provaudit.index.format",
    "Index": "provaudit.index.format",
    "Record": "provaudit.read.records",
    "AuditResult": "provaudit.results",
    "OutputsResult": "provaudit.results",
    "SourceResult": "provaudit.results",
}

__all__ = [
    "AuditConfig", "AuditResult", "ConfigError", "Index", "IndexConfig", "IndexFormatError", "IndexMismatchError",
    "InputError", "Limits", "OutputExistsError", "OutputsResult", "ProvauditError", "ReadOptions", "Record",
    "SampleConfig", "SourceResult", "Verdict", "VerdictRules", "__version__", "add_to_index", "audit", "audit_outputs",
    "build_index", "check", "compact_index", "load_index", "remove_from_index", "write_audit", "write_outputs",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'provaudit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
