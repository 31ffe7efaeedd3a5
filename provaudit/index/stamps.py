"""Verified stamps: a file of an index that a run on this machine hashed whole is not hashed again.

A large audit reads every chunk of the anchor tables (726 MB for 4M items) and hashed each on
every run. When every chunk of a file has matched its digest, a *stamp* is written to the user's
cache (``$PROVAUDIT_CACHE_DIR/verified``, else ``$XDG_CACHE_HOME/provaudit/verified``, else
``~/.cache/provaudit/verified``): its name binds the file's expected content (the checksum root of
its digests, from the manifest) to the file (device and inode), and it holds the file's size,
modification and change times (ns) as they were when the file was opened. A later open of that file
with the same identity takes it as verified. Any write to the file changes its change time (which no
unprivileged process can set back), and a replaced file has another inode, so a changed file is
hashed again. Change times are coarse (a clock tick): a stamp is written only for a file unchanged
for ``SETTLED`` seconds before it was opened, so a write in the same tick as the stamp's opening
cannot keep its change time ("racy" files, as git handles them). Only files of at least
``MIN_CHUNKS`` chunks get stamps (smaller ones cost less to hash than to stamp). ``provaudit
verify`` ignores stamps and hashes everything; ``PROVAUDIT_VERIFY_CACHE=0`` turns stamps off.
Values read from a file are validated on every use whatever its stamp says (stamps only spare the
hashing). A stamp that cannot be read or parsed is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

STAMP_VERSION = 1
SETTLED = 2.0  # seconds a file must have been unchanged before it was opened to be stamped
MIN_CHUNKS = 16  # 4 MiB at 256 KiB chunks


def stamp_dir() -> Path | None:
    """Where stamps live, or None when ``PROVAUDIT_VERIFY_CACHE=0``."""
    if os.environ.get("PROVAUDIT_VERIFY_CACHE", "1") == "0":
        return None
    if os.environ.get("PROVAUDIT_CACHE_DIR"):
        return Path(os.environ["PROVAUDIT_CACHE_DIR"]) / "verified"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "provaudit" / "verified"


class Stamp:
    """The stamp of one open file: ``valid`` when a stamp for exactly this file, unchanged, exists.

    Args:
        fd: The open file (its identity is taken now, before any byte is hashed).
        root: The checksum root of the file's digests (what its bytes must hash to).
        chunks: Its number of chunks.
    """

    def __init__(self, fd: int, root: str, chunks: int):
        st = os.fstat(fd)
        self.identity = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        self.settled = time.time() - st.st_ctime_ns / 1e9 >= SETTLED
        base = stamp_dir() if chunks >= MIN_CHUNKS else None
        name = hashlib.sha256(f"{root}:{st.st_dev}:{st.st_ino}".encode()).hexdigest()
        self.path = base / name if base is not None else None
        self.valid = self.path is not None and self._read() == self.identity

    def _read(self) -> list[int] | None:
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read(4096))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != STAMP_VERSION:
            return None
        ident = data.get("identity")
        return ident if isinstance(ident, list) and all(type(v) is int for v in ident) else None

    def write(self) -> None:
        """Record that every chunk matched (best effort: a cache that cannot be written is no error)."""
        if self.path is None or self.valid or not self.settled:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".stamp-")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump({"version": STAMP_VERSION, "identity": self.identity}, f)
                os.replace(tmp, self.path)
            except BaseException:
                os.unlink(tmp)
                raise
            self.valid = True
        except OSError:
            pass
