"""Crash safety on the filesystem: directory locks, durable atomic files, stale temporary siblings.

Outputs are written in a temporary sibling directory (``.NAME.tmp-XXXX``) and renamed into
place when complete (``prepare_output_dir``/``commit_output_dir``, or ``atomic_output_dir``
for both plus checksums). A process killed
half-way leaves such a sibling behind; ``remove_stale_siblings`` deletes the ones nobody
uses any more. A writer holds an advisory lock (``flock``) on its temporary directory while
it works; the kernel drops the lock when the process dies, however it dies, so a directory
whose lock can be taken and whose files have not changed for ``STALE_AFTER`` seconds is
garbage. A ``.NAME.old-XXXX`` sibling (the previous output, moved aside while the new one
is renamed in) is only deleted when ``NAME`` exists again: otherwise it may hold the only
complete copy.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from provaudit.errors import OutputExistsError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the age rule alone applies
    fcntl = None  # type: ignore[assignment]

STALE_AFTER = 15 * 60.0
MARKER_BYTES = 1 << 20  # a marker file (manifest.json, report.json) larger than this is not parsed (``is_marked``)
Marker = tuple[str, str]  # (file name, the "format" its JSON object names): what marks a provaudit output


def is_marked(directory: Path, marker: Marker) -> bool:
    """Whether ``directory`` holds ``marker``: a regular file (not a symlink) whose JSON object has
    ``"format": <the kind>``, as provaudit writes it last into each output.

    A marker over ``MARKER_BYTES`` (the manifest of an index of thousands of files, the report
    of an audit of thousands of files: an entry per file) is not parsed: it must open a JSON
    object and hold the top-level line ``  "format": "<the kind>",`` as provaudit writes it
    (indent 2; a newline inside a JSON string is escaped, so only the object's own layout puts
    one there); it is read a block at a time until that line.
    """
    name, fmt = marker
    try:
        fd = os.open(directory / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        head = os.read(fd, MARKER_BYTES)
        if st.st_size > MARKER_BYTES:
            line = f'\n  "format": {json.dumps(fmt)},\n'.encode()
            if not head.startswith(b"{\n"):
                return False
            while line not in head:
                more = os.read(fd, MARKER_BYTES)
                if not more:
                    return False
                head = head[-len(line):] + more
            return True
        doc = json.loads(head)
    except (OSError, ValueError):
        return False
    finally:
        os.close(fd)
    return isinstance(doc, dict) and doc.get("format") == fmt


def check_output(dest: Path, force: bool, marker: Marker) -> None:
    """Refuse, before any work, an output provaudit must not write or replace.

    ``dest`` may be missing, an empty directory, or (with ``force``) a directory provaudit
    wrote, marked by ``marker``. Never a symbolic link (nothing is followed), a file, or a
    directory holding anything else: ``--force`` never deletes what provaudit did not write.

    Raises:
        OutputExistsError: naming ``dest`` and why.
    """
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise OutputExistsError(f"{dest}: is a symbolic link; provaudit writes outputs only to real paths "
                                "(choose another -o)")
    if not force:
        raise OutputExistsError(f"{dest}: already exists (use --force to replace it)")
    if not stat.S_ISDIR(st.st_mode):
        raise OutputExistsError(f"{dest}: exists and is not a directory; refusing to replace it")
    with os.scandir(dest) as it:
        empty = next(it, None) is None
    if not empty and not is_marked(dest, marker):
        raise OutputExistsError(
            f"{dest}: exists and is not a provaudit output of this kind (no {marker[0]} naming format "
            f"{marker[1]!r}); --force replaces only what provaudit wrote: delete it yourself or choose another -o")


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


def write_file_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part.

    ``durable`` also flushes the file and its directory to disk (a power loss keeps it). Files
    that are verified when read back, and recomputed when they fail (checkpoints), skip that:
    four fsyncs per audited source cost more than many small sources take to audit.
    """
    with atomic_file(path, durable=durable) as f:
        f.write(data)


@contextmanager
def atomic_file(path: Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """A file to write ``path`` as a stream, renamed into place when the block ends without an
    exception (removed otherwise): a reader sees the old file or the whole new one. ``durable``
    as in ``write_file_atomic``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
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


def prepare_output_dir(dest: Path, force: bool, marker: Marker) -> Path:
    """Make a fresh temporary directory beside ``dest`` for an atomic write.

    Stale temporary siblings of killed runs are removed first. The directory gets the
    usual permissions (0777 less the umask), not mkdtemp's 0700.

    Raises:
        OutputExistsError: as ``check_output``.
    """
    check_output(dest, force, marker)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_siblings(dest)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp


_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return int(fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)) == 0


def _rename_noreplace(a: Path, b: Path) -> bool | None:
    """Rename ``a`` to ``b`` unless ``b`` exists, atomically (Linux renameat2 RENAME_NOREPLACE).

    Returns:
        True when renamed, False when ``b`` exists, None where unsupported (old kernel, other OS,
        a filesystem without it).
    """
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if int(fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_NOREPLACE)) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        return False
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return None
    raise OSError(err, os.strerror(err), str(b))


def commit_output_dir(tmp: Path, dest: Path, replace: bool = False, marker: Marker | None = None) -> None:
    """Move a finished temporary directory into place.

    Without ``replace`` (no ``--force``), ``dest`` must still not exist: if another run created it
    meanwhile (two builds to one path), nothing is replaced. With ``replace``, ``dest`` must still
    be what ``check_output`` allowed (re-checked against ``marker``), and replacing it is one atomic
    swap where the OS supports it (there is no moment without a complete ``dest``); elsewhere the
    old directory is renamed aside first (``.NAME.old-*``, kept by ``remove_stale_siblings`` until
    ``dest`` exists again).

    Raises:
        OutputExistsError: ``dest`` appeared (without ``replace``), or is no longer replaceable.
    """
    if not replace:
        done = _rename_noreplace(tmp, dest)
        if done is None and not os.path.lexists(dest):  # no atomic way: the narrow race remains
            os.rename(tmp, dest)
            done = True
        if not done:
            raise OutputExistsError(f"{dest}: was created by another run while this one worked; it was left as it "
                                    "is and nothing was written (use --force to replace it)")
        return
    if marker is not None:
        check_output(dest, True, marker)
    if dest.exists() and _exchange(tmp, dest):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous output
        return
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
        os.rmdir(old)
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_output_dir(dest: Path, force: bool, marker: Marker) -> Iterator[Path]:
    """Write an output directory atomically: yields a locked temporary directory to fill.

    On normal exit the files are checksummed (``SHA256SUMS``, last), flushed, and the
    directory is moved into place; on any exception it is removed and ``dest`` is untouched.
    """
    from provaudit.fs.integrity import write_checksums

    tmp = prepare_output_dir(dest, force, marker)
    lock = try_lock(tmp)
    try:
        yield tmp
        write_checksums(tmp)
        fsync_files(tmp)
        commit_output_dir(tmp, dest, force, marker)
        fsync_dir(dest.parent if str(dest.parent) else Path("."))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        unlock(lock)
