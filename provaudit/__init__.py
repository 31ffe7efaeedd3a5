"""provaudit: find a reference corpus in training shards or model outputs, with exact-verified evidence."""

from __future__ import annotations

__version__ = "0.1.0"

from provaudit.config import AuditConfig, IndexConfig  # noqa: E402
from provaudit.errors import (  # noqa: E402
    ConfigError, IndexFormatError, IndexMismatchError, InputError, OutputExistsError, ProvauditError,
)
from provaudit.read.records import Record  # noqa: E402

__all__ = [
    "AuditConfig", "ConfigError", "IndexConfig", "IndexFormatError", "IndexMismatchError", "InputError",
    "OutputExistsError", "ProvauditError", "Record", "__version__",
]
