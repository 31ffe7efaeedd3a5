"""Exception tree. The CLI maps these to messages and exit codes in one place (cli.cli_errors).

Exit codes: 1 for any ProvauditError (bad input, bad index, I/O), 2 for usage/config errors.
"""

from __future__ import annotations


class ProvauditError(Exception):
    """Base class of every error provaudit raises on purpose. CLI: ``Error: <msg>``, exit 1."""


class ConfigError(ProvauditError):
    """Invalid parameters or option combinations. CLI: usage error, exit 2."""


class InputError(ProvauditError):
    """A source or target file cannot be read (names the file and line/row)."""


class RemoteError(ProvauditError):
    """A URL (``s3://``, ``gs://``, ...) cannot be reached, listed, read or written: names the URL and
    the reason (unreachable endpoint, no such bucket or object, access denied). CLI: exit 1."""


class IndexFormatError(ProvauditError):
    """An index directory is missing files, is incomplete, or fails its integrity check."""


class IndexMismatchError(ProvauditError):
    """An index was built with parameters incompatible with the requested operation."""


class OutputExistsError(ProvauditError):
    """The output path exists and --force was not given."""
