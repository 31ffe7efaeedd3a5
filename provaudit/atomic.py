"""Crash safety on the filesystem: directory locks, durable atomic files, stale temporary siblings.

Outputs are written in a temporary sibling directory (``.NAME.tmp-XXXX``) and renamed into
place when complete (``index.prepare_output_dir``/``commit_output_dir``). A process killed
half-way leaves such a sibling behind; ``remove_stale_siblings`` deletes the ones nobody
uses any more. A writer holds an advisory lock (``flock``) on its temporary directory while
it works; the kernel drops the lock when the process dies, however it dies, so a directory
whose lock can be taken and whose files have not changed for ``STALE_AFTER`` seconds is
garbage. A ``.NAME.old-XXXX`` sibling (the previous output, moved aside while the new one
is renamed in) is only deleted when ``NAME`` exists again: otherwise it may hold the only
complete copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the age rule alone applies
    fcntl = None  # type: ignore[assignment]

STALE_AFTER = 15 * 60.0


def try_lock(path: Path) -> int | None:
    """Take an exclusive advisory lock on a directory without waiting.

    Returns:
        The open descriptor holding the lock (release it with ``unlock``), or None when
        another process holds it.
    """
    fd = os.open(path, os.O_RDONLY)
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def unlock(fd: int | None) -> None:
    """Release a lock taken by ``try_lock`` (closing the descriptor releases it)."""
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (renames, new files) durable; best effort where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def fsync_files(directory: Path) -> None:
    """fsync every regular file directly in ``directory``, then the directory itself."""
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False):
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(directory)


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    try:
        with os.scandir(path) as it:
            for entry in it:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    except OSError:
        pass
    return newest


def remove_stale_siblings(dest: Path, grace: float = STALE_AFTER) -> list[Path]:
    """Delete temporary siblings of ``dest`` left by killed runs; returns what was deleted.

    Only ``.NAME.tmp-*`` and ``.NAME.old-*`` directories beside ``dest`` are considered, and
    one is deleted only when no process holds its lock and nothing in it changed for
    ``grace`` seconds; ``.NAME.old-*`` only when ``dest`` exists.
    """
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        return []
    prefixes = (f".{dest.name}.tmp-", f".{dest.name}.old-")
    removed: list[Path] = []
    now = time.time()
    with os.scandir(parent) as it:
        candidates = sorted(Path(e.path) for e in it
                            if e.name.startswith(prefixes) and e.is_dir(follow_symlinks=False))
    for path in candidates:
        if path.name.startswith(prefixes[1]) and not dest.exists():
            continue
        try:
            if now - _newest_mtime(path) < grace:
                continue
            fd = try_lock(path)
        except OSError:
            continue
        if fd is None:
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            unlock(fd)
        removed.append(path)
    return removed
