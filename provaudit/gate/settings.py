"""``provaudit check`` settings from ``[tool.provaudit]`` in pyproject.toml or from provaudit.toml.

The file is found in the working directory or the nearest parent that has one (provaudit.toml
before pyproject.toml in the same directory; a pyproject.toml without ``[tool.provaudit]`` is
passed over), or named with ``--config``. Keys are the option names without dashes in front
(``max-pairs = 0``); ``index`` and ``targets`` give the arguments. Relative paths are relative to
the file's directory. Options given on the command line override the file; an unknown key or a
value of the wrong type is an error naming the file and the key.

Example:
    >>> s = parse_settings({"index": "ref.idx", "targets": ["shards/"], "max-pairs": 0}, Path("."), "x.toml", Path("."))
    >>> s["index"], s["targets"], s["max_pairs"]
    ('ref.idx', ['shards/'], 0)
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from pathlib import Path
from typing import Any

from provaudit.config import FORCED_FORMATS
from provaudit.errors import ConfigError
from provaudit.fs.urls import is_url

PROJECT_FILE, OWN_FILE = "pyproject.toml", "provaudit.toml"

# key -> (kind, is a path). Kinds: str, int (>= 0), fraction ([0, 1]), bool, list (of str), or a tuple of choices.
KEYS: dict[str, tuple[Any, bool]] = {
    "index": (str, True), "targets": (list, True),
    "max-pairs": (int, False), "max-contamination": ("fraction", False), "max-reference-coverage": ("fraction", False),
    "min-containment": ("fraction", False), "min-jaccard": ("fraction", False), "min-item-shingles": (int, False),
    "baseline": (str, True), "allow": (str, True),
    "junit": (str, True), "json": (str, True), "github": (bool, False), "max-annotations": (int, False),
    "show": (int, False), "out": (str, True),
    "text-field": (str, False), "id-field": (str, False), "on-error": (("fail", "skip"), False),
    "format": (FORCED_FORMATS, False),
    "workers": (int, False), "force": (bool, False), "quiet": (bool, False),
    "engine": (("local", "ray"), False), "ray-address": (str, False), "partitions": (int, False),
}
PARAM_NAMES = {"json": "json_file", "format": "input_format"}  # keys whose command-line parameter is named otherwise


def param_name(key: str) -> str:
    """The click parameter a key sets: ``max-pairs`` -> ``max_pairs``."""
    return PARAM_NAMES.get(key, key.replace("-", "_"))


def find_config(start: Path) -> Path | None:
    """The settings file that applies in ``start``: its own or its nearest parent's."""
    for d in (start, *start.parents):
        if (d / OWN_FILE).is_file():
            return d / OWN_FILE
        if (d / PROJECT_FILE).is_file() and _table(d / PROJECT_FILE, required=False) is not None:
            return d / PROJECT_FILE
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the settings file ({e.strerror or e})") from None


def _table(path: Path, required: bool = True) -> dict[str, Any] | None:
    data = _read_toml(path)
    if path.name != PROJECT_FILE:
        return data
    table = data.get("tool", {}).get("provaudit") if isinstance(data.get("tool"), dict) else None
    if table is None and required:
        raise ConfigError(f"{path}: no [tool.provaudit] table")
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: tool.provaudit must be a table")
    return table


def _where(path: str, key: str) -> str:
    return f"{path}: {'[tool.provaudit] ' if path.endswith(PROJECT_FILE) else ''}key {key!r}"


def _check_type(key: str, value: Any, where: str) -> Any:
    kind, _ = KEYS[key]
    if key == "targets" and isinstance(value, str):
        value = [value]
    ok = {
        str: lambda v: isinstance(v, str) and v != "",
        int: lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        bool: lambda v: isinstance(v, bool),
        list: lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, str) and x for x in v),
        "fraction": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        and 0 <= v <= 1,
    }
    expected = {str: "a non-empty string", int: "an integer >= 0", bool: "true or false",
                list: "a non-empty list of strings", "fraction": "a number in [0, 1]"}
    if isinstance(kind, tuple):
        if value not in kind:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, kind))}, got {value!r}")
        return value
    if not ok[kind](value):
        raise ConfigError(f"{where} must be {expected[kind]}, got {value!r}")
    return float(value) if kind == "fraction" else value


def _relocate(value: str, base: Path, cwd: Path) -> str:
    """A path written relative to the settings file, as a path relative to the working directory."""
    if value.startswith("hf:") or value == "-" or os.path.isabs(value) or base.resolve() == cwd.resolve():
        return value
    return os.path.relpath(os.path.join(base, value), cwd)


def parse_settings(table: dict[str, Any], base: Path, path: str, cwd: Path) -> dict[str, Any]:
    """Validate a settings table; returns values keyed by parameter name, paths made relative to ``cwd``.

    Raises:
        ConfigError: an unknown key (with the nearest known one) or a value of the wrong type.
    """
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            near = difflib.get_close_matches(key.replace("_", "-"), KEYS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f"; known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{_where(path, key)} is not a setting{hint}")
        value = _check_type(key, value, _where(path, key))
        if KEYS[key][1]:
            value = [_relocate(v, base, cwd) for v in value] if isinstance(value, list) else _relocate(value, base, cwd)
        out[param_name(key)] = value
    return out


def load_settings(config: Path | None, cwd: Path) -> tuple[Path | None, dict[str, Any]]:
    """The settings that apply: from ``config`` if given, else from the file ``find_config`` finds.

    Returns:
        The file read (None when there is none) and its validated values (``parse_settings``).
    """
    path = config if config is not None else find_config(cwd)
    if path is None:
        return None, {}
    if config is not None and not config.is_file():
        raise ConfigError(f"{config}: no such settings file")
    table = _table(path) or {}
    return path, parse_settings(table, path.parent, str(path), cwd)


def resolve_inputs(args: tuple[str, ...], index: str | Path | None,
                   targets: list[str] | None) -> tuple[Path | str, list[str]]:
    """INDEX and TARGETs of ``provaudit check``: ARGS are ``INDEX TARGET...`` unless the index is
    already set (``--index`` or the settings), when they are all targets; else the settings' targets.

    Raises:
        ConfigError: a missing index or target, or an argument that is an index while one is set.
    """
    if index is None:
        if len(args) == 1:
            raise ConfigError("give INDEX and at least one TARGET (or set index in the settings)")
        index, targets = (args[0], list(args[1:])) if args else (None, targets)
    else:
        targets = list(args) or targets
        shadow = [t for t in args if (Path(t) / "manifest.json").is_file()]
        if shadow:
            raise ConfigError(f"{shadow[0]} is an index, but the index is already {index} (from --index or the "
                              "settings): arguments are targets")
    if index is None or not targets:
        raise ConfigError("missing INDEX and TARGETs: give them as arguments, or set index and targets in "
                          "[tool.provaudit] of pyproject.toml or in provaudit.toml")
    return (str(index) if is_url(str(index)) else Path(index)), targets  # a URL stays one (``index.remote``)


def merge(params: dict[str, Any], given: set[str], settings: dict[str, Any]) -> dict[str, Any]:
    """Command-line values (``given``: the parameters set on the command line) over settings over defaults."""
    return {name: value if name in given or name not in settings else settings[name]
            for name, value in {**settings, **params}.items()}
