"""Indexes named by URL (``s3://bucket/ref.idx``): copied once into a local cache, then opened as
any index.

An index is memory-mapped and read at random (``index.format``), which object storage does not
do; so the index's objects are downloaded into ``CACHE/<manifest checksum>/`` (``cache_root``:
``$PROVAUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/provaudit/indexes``, else
``~/.cache/provaudit/indexes``), in a temporary sibling renamed into place when complete, so
that an interrupted download is never taken for an index. The copy is opened with
``load_index``: the manifest's own checksum, the checksum list and every chunk are verified as
for any untrusted index (a cached copy that changed on disk fails there, naming its path). An
index whose manifest checksum is already in the cache is not downloaded again; a cache entry
is only used when its ``manifest.json`` is byte for byte the one at the URL.

Example:
    >>> idx = open_index("s3://bucket/ref.idx")   # doctest: +SKIP
    >>> idx.location, idx.path                      # doctest: +SKIP
    ('s3://bucket/ref.idx', PosixPath('/home/me/.cache/provaudit/indexes/3f2a...'))
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from provaudit.errors import IndexFormatError, RemoteError
from provaudit.fs.urls import is_url, join_url, list_url, missing, open_url, url_info, url_problem
from provaudit.index.format import MAX_MANIFEST_BYTES, Index, load_index
from provaudit.index.manifest import SEGMENT_NAME

__all__ = ["cache_root", "fetch_index", "open_index"]

_CHECKSUM = re.compile(r"^sha256:([0-9a-f]{64})$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$")  # a file of an index: no path, not hidden ...
LOCK = ".lock"  # ... but for the lock of its segment operations (not downloaded)


def _index_file(name: str) -> bool:
    """A file of an index: a plain name, or a plain name in a segment directory (``seg-NNNNNN-XXXXXXXX/``)."""
    head, _, tail = name.rpartition("/")
    return bool(_NAME.match(tail)) and (not head or bool(SEGMENT_NAME.fullmatch(head)))


def cache_root() -> Path:
    """Where indexes named by URL are cached (``PROVAUDIT_CACHE_DIR``, ``XDG_CACHE_HOME``, ``~/.cache``)."""
    if os.environ.get("PROVAUDIT_CACHE_DIR"):
        return Path(os.environ["PROVAUDIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "provaudit" / "indexes"


def _read(url: str, limit: int) -> bytes:
    try:
        with open_url(url) as f:
            if f.size() > limit:
                raise IndexFormatError(f"{url}: over {limit:,} bytes; not an index file")
            return bytes(f.read())
    except OSError as e:
        raise RemoteError(f"{url}: cannot read it: {url_problem(e)}") from e


def _download(url: str, dest: Path) -> None:
    try:
        with open_url(url) as src, open(dest, "wb") as out:
            while chunk := src.read(8 << 20):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except OSError as e:
        raise RemoteError(f"{url}: cannot download it: {url_problem(e)}") from e


def _verify(url: str, copy: Path) -> None:
    """Every byte of a downloaded copy against its checksums, before it enters the cache: a corrupt
    or tampered download is never cached under the manifest checksum of the real index."""
    try:
        index = load_index(copy)
        for f in index.files.values():
            f.ensure_all()
    except IndexFormatError as e:
        raise IndexFormatError(f"{url}: the downloaded index fails verification, nothing cached "
                               f"({str(e).replace(str(copy), url)})") from e


def fetch_index(url: str) -> Path:
    """The local cached copy of the index at ``url`` (downloaded when not cached yet).

    Raises:
        RemoteError: when the URL cannot be reached or read.
        IndexFormatError: when it holds no index (no ``manifest.json``, a manifest without a valid
            checksum, object names that are not index files).
    """
    base = url.rstrip("/")
    what, _ = url_info(join_url(base, "manifest.json"))
    if what != "file":
        if url_info(base)[0] == "missing":
            raise IndexFormatError(f"{url}: {missing(base)}")
        raise IndexFormatError(f"{url}: not a provaudit index (no manifest.json); build one with provaudit index")
    manifest = _read(join_url(base, "manifest.json"), MAX_MANIFEST_BYTES)
    try:
        checksum = json.loads(manifest).get("manifest_checksum")
    except (ValueError, AttributeError) as e:
        raise IndexFormatError(f"{url}/manifest.json: not a JSON object ({e})") from e
    m = _CHECKSUM.match(checksum) if isinstance(checksum, str) else None
    if m is None:
        raise IndexFormatError(f"{url}/manifest.json: no valid manifest_checksum; not a complete provaudit index")
    root = cache_root()
    dest = root / m.group(1)
    if (dest / "manifest.json").is_file() and (dest / "manifest.json").read_bytes() == manifest:
        return dest
    names = [n for n in (u[len(base) + 1:] for u, _ in list_url(base)) if n != LOCK]
    bad = [n for n in names if not _index_file(n)]
    if bad:
        raise IndexFormatError(f"{url}: holds {bad[0]!r}, not a file of a provaudit index")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{dest.name}.tmp-"))
    try:
        for name in names:
            if name != "manifest.json":
                (tmp / name).parent.mkdir(exist_ok=True)  # a segment's directory (a checked name)
                _download(join_url(base, name), tmp / name)
        (tmp / "manifest.json").write_bytes(manifest)  # the bytes whose checksum names the entry
        _verify(url, tmp)
        if dest.exists():
            shutil.rmtree(dest)  # an entry whose manifest differs: replaced
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / "manifest.json").is_file():  # not another process's complete copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def open_index(location: Path | str) -> Index:
    """``load_index`` of a local index directory, or of the cached copy of an index named by URL
    (``Index.location`` is then the URL: reports name it, Ray actors open it from there).

    Raises:
        IndexFormatError, RemoteError: as ``load_index`` and ``fetch_index``.
    """
    if is_url(location):
        index = load_index(fetch_index(str(location)))
        index.location = str(location)
        return index
    return load_index(Path(location))
