"""Inputs, indexes and outputs named by URL (``s3://``, ``gs://``, ``file://``, any scheme
``pyarrow.fs`` knows), read and written through ``pyarrow.fs``; local paths never come here.

S3 is configured from the standard AWS settings, read from the environment when a filesystem is
first needed in a process (each worker, local or on Ray, builds its own from its environment):

- ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``: another S3-protocol server (MinIO, Ceph,
  moto, ...), ``http://HOST:PORT`` or ``https://HOST:PORT``;
- ``AWS_REGION``, else ``AWS_DEFAULT_REGION``;
- credentials: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, else
  the AWS SDK's usual chain (``AWS_PROFILE`` and ``~/.aws``, instance roles);
- ``PROVAUDIT_S3_TIMEOUT`` (seconds, default 30): connect and request timeout.

Other schemes (``gs://``, ``file://``, ``hdfs://``) are opened by ``pyarrow.fs.FileSystem.from_uri``
with that library's own settings (for ``gs://``, Google's application default credentials).

Example:
    >>> is_url("s3://bucket/shards/"), is_url("data/shards"), is_url("hf:imdb")
    (True, False, False)
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterator
from typing import IO, Any

from provaudit.errors import RemoteError

__all__ = ["RemoteError", "RawUrl", "is_url", "list_url", "open_url", "open_url_stream", "url_info", "url_problem",
           "filesystem", "join_url", "iter_url_chunks", "missing"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_cache: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()


def is_url(name: object) -> bool:
    """Whether ``name`` is a URL (``scheme://...``) rather than a local path (``hf:NAME`` is not one)."""
    return isinstance(name, str) and _URL.match(name) is not None


def _s3(netloc: str) -> Any:
    from pyarrow import fs

    env = os.environ
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    timeout = float(env.get("PROVAUDIT_S3_TIMEOUT") or 30)
    key = ("s3", netloc, endpoint, region, timeout, env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY"),
           env.get("AWS_SESSION_TOKEN"), env.get("AWS_PROFILE"))
    with _lock:
        if key not in _cache:
            opts: dict[str, Any] = {"connect_timeout": timeout, "request_timeout": timeout,
                                    "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=3)}
            if endpoint:
                scheme, _, host = endpoint.rpartition("://")
                opts.update(endpoint_override=host.rstrip("/"), scheme=scheme or "https")
            if region:
                opts["region"] = region
            elif not endpoint:
                try:  # the bucket's own region (one request), as pyarrow's from_uri does
                    opts["region"] = fs.resolve_s3_region(netloc)
                except (OSError, ValueError):
                    pass  # the SDK default; the first real request then names the problem
            _cache[key] = fs.S3FileSystem(**opts)
        return _cache[key]


def filesystem(url: str) -> tuple[Any, str]:
    """``(pyarrow FileSystem, path within it)`` of a URL; filesystems are cached per process.

    Raises:
        RemoteError: for a scheme pyarrow does not know, or a filesystem that cannot be set up.
    """
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme in ("s3", "s3a"):
        netloc, _, key = rest.partition("/")
        if not netloc:
            raise RemoteError(f"{url}: no bucket in the URL (s3://BUCKET/KEY)")
        try:
            return _s3(netloc), f"{netloc}/{key}".rstrip("/")
        except (OSError, ValueError) as e:
            raise RemoteError(f"{url}: cannot set up S3 ({url_problem(e)})") from e
    from pyarrow import fs

    try:
        handle, path = fs.FileSystem.from_uri(url)
    except (OSError, ValueError, TypeError) as e:
        raise RemoteError(f"{url}: not a URL pyarrow.fs can open ({url_problem(e)})") from e
    return handle, path.rstrip("/") or path


def join_url(base: str, name: str) -> str:
    """``base/name`` for a URL base (one slash between)."""
    return base.rstrip("/") + "/" + name


def url_problem(e: BaseException) -> str:
    """A pyarrow/AWS error on one line, with what it usually means."""
    text = " ".join(str(e).split())
    low = text.lower()
    if "access denied" in low or "access_denied" in low or "forbidden" in low or "403" in low:
        hint = "access denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the policy"
    elif "nosuchbucket" in low or "bucket" in low and "not" in low and ("exist" in low or "found" in low):
        hint = "no such bucket"
    elif "network_connection" in low or "curl" in low or "connect" in low or "timeout" in low or "resolve" in low:
        hint = "cannot reach the storage endpoint: check AWS_ENDPOINT_URL and the network"
    elif isinstance(e, FileNotFoundError) or "does not exist" in low or "not found" in low:
        hint = "no such object"
    else:
        hint = ""
    detail = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)[:300]
    return f"{hint} ({detail})" if hint else detail


def url_info(url: str) -> tuple[str, int]:
    """``("file", size)``, ``("dir", 0)`` or ``("missing", 0)`` for what a URL names.

    Raises:
        RemoteError: when the storage cannot be asked (unreachable, denied, no such bucket).
    """
    from pyarrow import fs

    handle, path = filesystem(url)
    try:
        info = handle.get_file_info(path)
    except (OSError, ValueError) as e:
        raise RemoteError(f"{url}: cannot reach it: {url_problem(e)}") from e
    if info.type == fs.FileType.File:
        return "file", int(info.size)
    if info.type == fs.FileType.Directory:
        return "dir", 0
    return "missing", 0


def missing(url: str) -> str:
    """Why a URL names nothing: ``no such bucket`` (for a bucket that does not exist, or that these
    credentials may not see) or ``no such object or prefix``."""
    scheme, rest = url.split("://", 1)
    bucket = rest.split("/", 1)[0]
    if "/" in rest.rstrip("/") and bucket and url_info(f"{scheme}://{bucket}")[0] == "missing":
        return f"no such bucket ({scheme}://{bucket})"
    return "no such object or prefix"


def list_url(url: str) -> list[tuple[str, int]]:
    """Every object under a URL prefix, recursively: ``(url, size)`` sorted by URL (none: an empty list).

    Raises:
        RemoteError: when the prefix cannot be listed.
    """
    from pyarrow import fs

    handle, path = filesystem(url)
    base = url.rstrip("/")
    try:
        infos = handle.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True))
    except (OSError, ValueError) as e:
        raise RemoteError(f"{url}: cannot list it: {url_problem(e)}") from e
    out = []
    for info in infos:
        if info.type == fs.FileType.File:
            rel = info.path[len(path):].lstrip("/")
            out.append((join_url(base, rel), int(info.size)))
    return sorted(out)


def open_url(url: str) -> Any:
    """A random-access pyarrow file of the object (``read_at``, ``size``, ``read``, ``seek``).

    Raises:
        OSError: when it cannot be opened (readers report it as they report a local file they
            cannot read, with ``url_problem``).
    """
    handle, path = filesystem(url)
    return handle.open_input_file(path)


class RawUrl(io.RawIOBase):
    """An object as an unbuffered binary file (``readinto``), for ``io.BufferedReader`` and the line readers."""

    def __init__(self, url: str):
        super().__init__()
        self._native = open_url(url)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return int(self._native.readinto(b))

    def tell(self) -> int:
        return int(self._native.tell())

    def close(self) -> None:
        self._native.close()
        super().close()


def open_url_stream(url: str, buffer: int = 1 << 20) -> IO[bytes]:
    """The object's bytes as a buffered binary file (sequential reads)."""
    return io.BufferedReader(RawUrl(url), buffer)


def iter_url_chunks(url: str, size: int = 1 << 20) -> Iterator[bytes]:
    """The object's bytes, ``size`` at a time."""
    with open_url(url) as f:
        while chunk := f.read(size):
            yield bytes(chunk)
