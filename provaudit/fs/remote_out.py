"""Outputs named by URL (``provaudit index ... -o s3://bucket/ref.idx``, ``audit ... -o s3://...``):
written in a local temporary directory, then uploaded, the marker object last.

An index or audit output is complete when its marker (``manifest.json``, ``report.json``: the
file naming provaudit's format, ``fs.atomic.Marker``) is there; every other object is uploaded
before it, so an interrupted upload never looks like a finished output. An existing output is
refused before any work unless ``--force``, and ``--force`` replaces only a prefix whose marker
object names the format of what is written (the marker is deleted first, then the rest, then
the new objects are uploaded): it never deletes objects provaudit did not write. The local
copy is staged under ``$TMPDIR`` (it needs room for the whole output) and removed after.

Example:
    >>> with staged_output("s3://bucket/ref.idx", False, ("manifest.json", "provaudit-index")) as local:  # doctest: +SKIP
    ...     api.build_index(["posts.jsonl"], local)
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provaudit.errors import OutputExistsError, RemoteError
from provaudit.fs.atomic import MARKER_BYTES, Marker
from provaudit.fs.urls import filesystem, is_url, join_url, list_url, open_url, url_problem

__all__ = ["check_url_output", "staged_output", "upload_output"]


def _marked(url: str, marker: Marker) -> bool:
    name, fmt = marker
    try:
        with open_url(join_url(url, name)) as f:
            if f.size() > MARKER_BYTES:
                return False
            obj = json.loads(bytes(f.read()))
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and obj.get("format") == fmt


def check_url_output(url: str, force: bool, marker: Marker) -> bool:
    """Refuse, before any work, a URL output that must not be written; True when one exists (to replace).

    Raises:
        OutputExistsError: objects exist under the prefix and ``force`` is off, or they are not a
            provaudit output of this kind.
        RemoteError: when the storage cannot be listed.
    """
    if not list_url(url):
        return False
    if not force:
        raise OutputExistsError(f"{url}: already exists (use --force to replace it)")
    if not _marked(url, marker):
        raise OutputExistsError(
            f"{url}: exists and is not a provaudit output of this kind (no {marker[0]} naming format "
            f"{marker[1]!r}); --force replaces only what provaudit wrote: delete it yourself or choose another -o")
    return True


def _output_stream(handle: Any, path: str) -> Any:
    """A new object at ``path``; on a filesystem with real directories (``file://``) its parent is made
    first when missing (object stores have none to make: S3 would get an empty ``dir/`` object)."""
    try:
        return handle.open_output_stream(path)
    except FileNotFoundError:
        handle.create_dir(path.rsplit("/", 1)[0], recursive=True)
        return handle.open_output_stream(path)


def upload_output(local: Path, url: str, force: bool, marker: Marker) -> None:
    """Upload the directory ``local`` to ``url``: every file, then the marker (its absence means incomplete).

    Raises:
        OutputExistsError: as ``check_url_output`` (checked again: someone may have written meanwhile).
        RemoteError: when an object cannot be deleted or written (the output then has no marker).
    """
    replace = check_url_output(url, force, marker)
    handle, path = filesystem(url)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    names = [p.relative_to(local).as_posix() for p in files]
    if marker[0] not in names:
        raise RemoteError(f"{url}: nothing complete to upload ({local} has no {marker[0]})")
    try:
        stale = [u for u, _ in list_url(url)] if replace else []
        if replace:
            handle.delete_file(f"{path}/{marker[0]}")  # no longer complete, from now on
        for p, name in sorted(zip(files, names), key=lambda fn: fn[1] == marker[0]):  # the marker last
            if name == marker[0]:
                # objects of the replaced output that the new one does not have; deleted while the
                # prefix still holds objects (pyarrow leaves a "dir/" object behind an emptied prefix)
                for old in sorted(set(stale) - {join_url(url, n) for n in names}):
                    handle.delete_file(filesystem(old)[1])
            with open(p, "rb") as src, _output_stream(handle, f"{path}/{name}") as out:
                while chunk := src.read(8 << 20):
                    out.write(chunk)
    except OSError as e:
        raise RemoteError(f"{url}: cannot write the output: {url_problem(e)} (it has no {marker[0]}: incomplete; "
                          "run again)") from e


@contextmanager
def staged_output(out: Path | str, force: bool, marker: Marker) -> Iterator[Path]:
    """Where to write the output ``out``: ``out`` itself for a local path; for a URL, a local
    temporary directory (checked before, uploaded after the block ends without an error)."""
    if not is_url(out):
        yield Path(out)
        return
    url = str(out).rstrip("/")
    check_url_output(url, force, marker)
    with tempfile.TemporaryDirectory(prefix="provaudit-upload-") as tmp:
        local = Path(tmp) / "out"
        yield local
        upload_output(local, url, force, marker)
