"""Per-source checkpoints of an audit, so that ``--resume`` continues an interrupted run.

An audit writing to ``OUT`` keeps its finished sources in the hidden sibling directory
``.OUT.partial/`` (``partial_dir``)::

    run.json                   the run's parameters (index manifest sha256, thresholds,
                               sampling, control, fields, limits): a checkpoint is used
                               only by a run with exactly the same parameters
    src-<key>.json             one finished source: its name, kind and sha256, read
                               counts, tallies, candidate counters, and the sha256 of
    src-<key>.matches.parquet  its verified pairs (and, with a control set,
    src-<key>.control.parquet  the control's pairs; with sampling, the per-record
    src-<key>.tally.parquet    arrays); tables of up to ``INLINE_ROWS`` rows are kept
                               in the ``.json`` instead (one small file per small source)
    src-<key>.group.json       the finished sources of one task of many small files
                               (``run.small``): each one's JSON as above, in one file
    .provaudit-checkpoint      marks the directory as one provaudit made

The directory is made by provaudit (``mkdir``, never through a symbolic link) and marked; an
existing ``.OUT.partial`` that is a symbolic link, not a directory, or an unmarked directory
holding anything is refused, never written into or cleared. Clearing removes only the files
provaudit writes there (``run.json``, ``src-*`` files and their temporary files).

Every file is written atomically (temporary file, rename; not fsynced: every file is
verified when resumed); the ``.json`` comes last and names the hashes of the others (and
carries one of its own content), so a source killed half-way is simply not there, and a
damaged file makes its source be recomputed. A resumed source is used
only when its file's sha256 is unchanged (hub datasets, which have none, are always
re-read). The audit holds a lock on the directory, so two audits cannot share an
output. JSON and Parquet only: nothing is unpickled. The directory is removed when the
output has been written.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from provaudit.errors import OutputExistsError
from provaudit.fs import arrow
from provaudit.fs.atomic import atomic_file, try_lock, unlock, write_file_atomic
from provaudit.fs.hashing import json_checksum, sha256_file
from provaudit.match.pairs import PairList, Spill
from provaudit.match.schema import MATCH_COLUMNS, MATCH_SCHEMA
from provaudit.read.records import ReadStats
from provaudit.results import SourceResult

FORMAT = "provaudit-audit-checkpoint"
FORMAT_VERSION = 4  # 2: small tables inline in the source's JSON, which carries a checksum; 3: one result per
# source; 4: the sources of a task of small files in one group file
_TALLY_SCHEMA = pa.schema([("row", pa.int64()), ("tokens", pa.int64()), ("covered", pa.int64())])
MARK = ".provaudit-checkpoint"
INLINE_ROWS = 256  # smaller tables go into the source's JSON (JSON numbers round-trip Python floats exactly)


def partial_dir(out: Path) -> Path:
    """Where an audit writing to ``out`` keeps its checkpoints."""
    return out.parent / f".{out.name}.partial"


def _own_directory(directory: Path) -> None:
    """Make ``directory`` (marked as provaudit's), or check that an existing one is provaudit's.

    Raises:
        OutputExistsError: if it is a symbolic link, not a directory, or an unmarked directory
            that holds anything.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(directory)
    except FileExistsError:
        st = os.lstat(directory)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise OutputExistsError(f"{directory}: is a symbolic link or not a directory; provaudit keeps an "
                                    "audit's checkpoints only in a directory it made there: remove it") from None
        try:
            marked = stat.S_ISREG(os.lstat(directory / MARK).st_mode)
        except FileNotFoundError:
            marked = False
        if not marked:
            with os.scandir(directory) as it:
                if next(it, None) is not None:
                    raise OutputExistsError(f"{directory}: exists and was not made by provaudit; it is not "
                                            "written into or cleared: remove it or choose another -o") from None
        else:
            return
    write_file_atomic(directory / MARK, (FORMAT + "\n").encode("ascii"), durable=False)


def _ours(name: str) -> bool:
    """A file name provaudit writes in a checkpoint directory (or a temporary file of one)."""
    return name == "run.json" or name.startswith(("src-", ".run.json.tmp-", ".src-"))


def _checksum(meta: dict[str, Any]) -> str:
    """sha256 of a source's JSON content (without this field): a changed byte makes it be recomputed."""
    return json_checksum(meta, "checksum")


def _table_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", write_statistics=False)
    return bytes(sink.getvalue().to_pybytes())


class Checkpoint:
    """The checkpoint directory of one audit run (locked while the run lives).

    Args:
        directory: ``partial_dir(OUT)``.
        params: The run's parameters (JSON-able); a checkpoint with other parameters is discarded.
        resume: Reuse finished sources from an earlier run with the same parameters; without it,
            any earlier checkpoint is discarded.

    Raises:
        OutputExistsError: when another audit holds the directory.
    """

    def __init__(self, directory: Path, params: dict[str, Any], *, resume: bool):
        self.dir = directory
        self._grouped: dict[str, dict[str, Any]] = {}  # source -> its JSON, from an intact group file (resume)
        self.reused = 0
        self.note = ""
        self.spill: Spill | None = None  # where resumed sources' pairs spill (set by the audit)
        self._params = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **params},
                                  sort_keys=True, indent=1, ensure_ascii=False) + "\n"
        _own_directory(directory)
        self._fd = try_lock(directory)
        if self._fd is None:
            raise OutputExistsError(f"{directory}: another provaudit audit is writing this output; wait for it "
                                    "to finish or choose another -o")
        run = directory / "run.json"
        usable = False
        if resume:
            try:
                usable = json.loads(run.read_text(encoding="utf-8")) == json.loads(self._params)
                self.note = "" if usable else "the checkpoint was made with other parameters; starting over"
            except FileNotFoundError:
                self.note = "no checkpoint to resume from; starting from the beginning"
            except (OSError, ValueError):
                self.note = "the checkpoint is unreadable; starting over"
        if not usable:
            self._clear()
            write_file_atomic(run, self._params.encode("utf-8"))
        else:
            self._list_groups()

    def _list_groups(self) -> None:
        """Which source each group file holds (a damaged group file holds none: its sources are redone)."""
        for path in sorted(self.dir.glob("src-*.group.json")):
            try:
                group = json.loads(path.read_text(encoding="utf-8"))
                metas = group["sources"]
                if group.get("checksum") != json_checksum(group, "checksum") or not isinstance(metas, list):
                    continue
                self._grouped.update({m["source"]: m for m in metas if isinstance(m, dict)})
            except (OSError, ValueError, KeyError, TypeError):
                continue

    def _clear(self) -> None:
        """Remove what provaudit wrote here (files only: a directory or link it did not make stays)."""
        with os.scandir(self.dir) as it:
            for entry in it:
                if _ours(entry.name) and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)

    @staticmethod
    def _key(source: str) -> str:
        return "src-" + hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def has(self, source: str) -> bool:
        """Whether an earlier run finished ``source`` (``load`` then checks that it is unchanged)."""
        return source in self._grouped or (self.dir / f"{self._key(source)}.json").is_file()

    def load(self, source: str, sha256: str | None) -> SourceResult | None:
        """The finished part of ``source`` if its file is unchanged and every checkpoint file verifies."""
        if sha256 is None:
            return None
        key = self._key(source)
        try:
            meta = self._grouped.get(source) or json.loads((self.dir / f"{key}.json").read_text(encoding="utf-8"))
            if meta.get("source") != source or meta.get("sha256") != sha256 or meta.get("checksum") != _checksum(meta):
                return None
            tables: dict[str, Any] = {k: dict(v) for k, v in meta["inline"].items()}
            for name, info in meta["files"].items():
                path = self.dir / info["file"]
                if sha256_file(path) != info["sha256"]:
                    return None
                # pairs are read a batch at a time into the run's spill, the tally whole (a value per record)
                tables[name] = pq.ParquetFile(path) if name != "tally" else arrow.read_table(path).to_pydict()
            part = _from_saved(meta, tables, self.spill)
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
            return None
        self.reused += 1
        return part

    def save(self, res: SourceResult) -> None:
        """Write a finished source (tables first, the ``.json`` naming their hashes last)."""
        text = json.dumps(self._meta(res), sort_keys=True, ensure_ascii=False) + "\n"
        write_file_atomic(self.dir / f"{self._key(res.source)}.json", text.encode("utf-8"),
                          durable=False)  # parsed and checked on load

    def save_many(self, results: list[SourceResult]) -> None:
        """Write the finished sources of one task of small files: one group file (its tables, if large,
        in files of their own), instead of a file per source (1 ms each: most of an audit of 5,000
        one-line files)."""
        if not results:
            return
        group: dict[str, Any] = {"sources": [self._meta(r) for r in results]}
        group["checksum"] = json_checksum(group, "checksum")
        text = json.dumps(group, sort_keys=True, ensure_ascii=False) + "\n"
        write_file_atomic(self.dir / f"{self._key(results[0].source)}.group.json", text.encode("utf-8"),
                          durable=False)  # parsed and checked on resume

    def _meta(self, res: SourceResult) -> dict[str, Any]:
        """A finished source's JSON (its large tables written first, named by their hashes)."""
        key = self._key(res.source)
        files: dict[str, Any] = {}
        inline: dict[str, Any] = {}
        pairs = {"matches": res.matches, "control": res.control_matches}
        for name, pl in pairs.items():
            if pl is None:
                continue
            if len(pl) <= INLINE_ROWS:
                inline[name] = pa.Table.from_batches(list(pl.batches()), MATCH_SCHEMA).to_pydict()
            else:  # streamed from the pair list's batches (spilled ones are read back one at a time)
                files[name] = self._write_pairs(f"{key}.{name}.parquet", pl)
        if res.rows:
            tally = pa.Table.from_arrays(
                [arrow.array(np.concatenate(a).astype(np.int64), pa.int64()) for a in (res.rows, res.rec_tokens,
                                                                                      res.rec_covered)],
                schema=_TALLY_SCHEMA)
            if tally.num_rows <= INLINE_ROWS:
                inline["tally"] = tally.to_pydict()
            else:
                data = _table_bytes(tally)
                write_file_atomic(self.dir / f"{key}.tally.parquet", data, durable=False)  # verified on load
                files["tally"] = {"file": f"{key}.tally.parquet", "sha256": hashlib.sha256(data).hexdigest()}
        meta = {
            "source": res.source, "kind": res.kind, "sha256": res.sha256, "stats": res.stats.to_dict(),
            "records": res.records, "tokens": res.tokens, "covered_tokens": res.covered_tokens,
            "records_with_matches": res.records_with_matches, "population_rows": res.population_rows,
            "candidates": res.candidates, "control_candidates": res.control_candidates,
            "control_records_with_matches": res.control_records_with_matches, "files": files, "inline": inline,
        }
        meta["checksum"] = _checksum(meta)
        return meta

    def _write_pairs(self, name: str, pairs: PairList) -> dict[str, str]:
        """A source's pairs as a Parquet file written batch by batch (never all in memory); its entry in ``files``."""
        with atomic_file(self.dir / name, durable=False) as f:  # verified on load
            with pq.ParquetWriter(f, MATCH_SCHEMA, compression="zstd", write_statistics=False) as writer:
                for batch in pairs.batches():
                    writer.write_batch(batch)
        return {"file": name, "sha256": sha256_file(self.dir / name)}

    def keep_or_discard(self) -> None:
        """After a failed or interrupted run: keep the checkpoint if it holds a finished source, else remove it."""
        try:
            finished = any(e.name.startswith("src-") and e.name.endswith(".json") for e in os.scandir(self.dir))
        except OSError:
            finished = False
        if finished:
            self.close()
        else:
            self.discard()

    def discard(self) -> None:
        """Remove the checkpoint (the output is complete) and release the lock.

        Only what provaudit wrote is removed; the directory goes too unless something else is in it.
        """
        try:
            self._clear()
            os.unlink(self.dir / MARK)
            os.rmdir(self.dir)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        """Release the lock, keeping the checkpoint for a later ``--resume``."""
        unlock(self._fd)
        self._fd = None

    def __del__(self) -> None:
        unlock(getattr(self, "_fd", None))


def _pairs(saved: dict[str, list[Any]] | pq.ParquetFile, spill: Spill | None) -> PairList:
    """A source's saved pairs: inline columns, or a Parquet file read a batch at a time."""
    out = PairList(spill)
    if isinstance(saved, pq.ParquetFile):
        if saved.schema_arrow != MATCH_SCHEMA:
            raise KeyError("matches columns")
        for batch in arrow.iter_batches(saved):
            out.add_batch(batch, continued=True)
        return out
    if set(saved) != set(MATCH_COLUMNS):
        raise KeyError("matches columns")
    out.add_columns(saved)
    return out


def _from_saved(meta: dict[str, Any], tables: dict[str, Any], spill: Spill | None) -> SourceResult:
    res = SourceResult(
        meta["source"], meta["kind"], meta["sha256"], ReadStats.from_dict(meta["stats"]), records=int(meta["records"]),
        tokens=int(meta["tokens"]), covered_tokens=int(meta["covered_tokens"]),
        records_with_matches=int(meta["records_with_matches"]), population_rows=int(meta["population_rows"]),
        matches=_pairs(tables["matches"], spill), candidates=dict(meta["candidates"]),
        control_matches=_pairs(tables["control"], spill) if "control" in tables else None,
        control_candidates=dict(meta["control_candidates"]),
        control_records_with_matches=int(meta["control_records_with_matches"]),
    )
    if "tally" in tables:
        cols = tables["tally"]
        res.rows = [np.asarray(cols["row"], dtype=np.int64)]
        res.rec_tokens = [np.asarray(cols["tokens"], dtype=np.int64)]
        res.rec_covered = [np.asarray(cols["covered"], dtype=np.int64)]
    return res
