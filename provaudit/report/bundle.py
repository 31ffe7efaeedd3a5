"""A verifiable audit output: ``bundle.json`` lists the sha256 of every file, of the index and of the inputs.

The index is recorded by the sha256 of its manifest and of its segments' chunk-checksum lists, which
cover every byte of its data files (``provaudit verify INDEX`` checks those bytes).

``bundle.json`` is written last of the report files, inside the atomic output directory
(``SHA256SUMS``, written after it, covers it too). ``verify`` names every file of the output
that changed, went missing or was added, and checks the recorded index and inputs when they
are found; ``rerun`` runs the recorded command again into a scratch directory and compares
the figures. Paths are recorded as the user gave them, so ``verify`` and ``rerun`` run from the
directory the audit ran in.

Example:
    >>> problems = verify(Path("audit-out"))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from provaudit.fs import arrow
from provaudit.fs.hashing import json_checksum, sha256_file
from provaudit.fs.integrity import CHECKSUMS
from provaudit.index.format import checksum_lists_sha256

BUNDLE = "bundle.json"
INDEX_CHECKSUMS = "checksums.sha256"  # sha256 of an index's segments' chunk checksum lists (index.format), in order
FORMAT = "provaudit-bundle"
FORMAT_VERSION = 1
# report.json blocks that a rerun must reproduce exactly (dates, paths and versions may differ)
FIGURES = ("counts", "estimates", "candidates", "miss_probability", "flags", "control", "summary", "samples")


def now_utc() -> str:
    """The current UTC time, ISO 8601 to the second; ``SOURCE_DATE_EPOCH`` fixes it (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch else _dt.datetime.now(_dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


OUT = "OUT"  # stands for the output directory in a recorded command
_NO_EFFECT = ("-q", "--quiet", "--force", "--resume")  # flags that cannot change an output
_NO_EFFECT_VALUE = ("-w", "--workers", "--engine", "--ray-address", "--partitions")  # their value cannot change an output


def recorded_argv(argv: list[str]) -> list[str]:
    """``argv`` as recorded: the output directory written ``OUT``; workers, engine (and its partitions), quiet,
    force, resume left out.

    Runs that differ only in those write byte-identical outputs, so they record the same command.

    Example:
        >>> recorded_argv(["audit", "i.idx", "d/", "-o", "out-2", "-w", "4", "-q"])
        ['audit', 'i.idx', 'd/', '-o', 'OUT']
    """
    out: list[str] = []
    it = iter(argv)
    for a in it:
        if a in ("-o", "--out"):
            next(it, None)
            out += [a, OUT]
        elif a.startswith("--out="):
            out.append("--out=" + OUT)
        elif a in _NO_EFFECT_VALUE:
            next(it, None)
        elif not (a in _NO_EFFECT or a.startswith(("--workers=", "--engine=", "--ray-address=", "--partitions="))
                  or (a.startswith("-w") and a[2:].isdigit())):
            out.append(a)
    return out


def provenance(argv: list[str]) -> dict[str, Any]:
    """What report.json records to reproduce a run: the command (``recorded_argv``) and the date."""
    rec = recorded_argv(argv)
    return {"argv": rec, "command": shlex.join(["provaudit", *rec]), "date": now_utc()}


def write_bundle(out: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Write ``bundle.json`` into ``out``: sha256 and size of every file there, the index and the inputs used."""
    idx = report["index"]
    index_checksums = checksum_lists_sha256(Path(idx["path"]))
    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(out.iterdir()) if p.is_file() and p.name not in (BUNDLE, CHECKSUMS)}
    reproduce = report.get("reproduce") or {}
    bundle: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": report["kind"],
        "files": files,
        "index": {"path": idx["path"], "fingerprint": idx["fingerprint"], "manifest_sha256": idx["manifest_sha256"],
                  INDEX_CHECKSUMS: index_checksums},
        "inputs": [{"source": i["source"], "sha256": i["sha256"]} for i in report["inputs"]],
        "control_inputs": [{"source": i["source"], "sha256": i["sha256"]}
                           for i in report.get("control", {}).get("inputs", [])],
        "argv": reproduce.get("argv"),
        "date": reproduce.get("date"),
    }
    bundle["checksum"] = json_checksum(bundle, "checksum", prefix="sha256:")
    (out / BUNDLE).write_text(json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return bundle


def _read_bundle(out: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        bundle = json.loads((out / BUNDLE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"{out / BUNDLE}: missing (not a provaudit output, or written before bundles existed)"
    except (OSError, ValueError) as e:
        return None, f"{out / BUNDLE}: changed (unreadable: {e})"
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT or not isinstance(bundle.get("files"), dict):
        return None, f"{out / BUNDLE}: changed (not a provaudit bundle)"
    if bundle.get("checksum") != json_checksum(bundle, "checksum", prefix="sha256:"):
        return None, f"{out / BUNDLE}: changed (its content does not match its checksum)"
    return bundle, ""


def _sums(out: Path) -> dict[str, str] | None:
    try:
        lines = (out / CHECKSUMS).read_text(encoding="utf-8").splitlines()
        return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}
    except (OSError, ValueError):
        return None


def verify(out: Path) -> tuple[list[str], list[str]]:
    """Check an audit output against its ``bundle.json`` and ``SHA256SUMS``.

    Returns:
        ``(problems, notes)``: problems name each file of the output that changed, is missing or
        was added, and each recorded index file or input found changed; notes say what could
        not be checked (an index or input not found where the audit read it).
    """
    bundle, why = _read_bundle(out)
    if bundle is None:
        return [why], []
    problems: list[str] = []
    present = {p.name for p in out.iterdir()} - {BUNDLE, CHECKSUMS}
    for name in sorted(present - set(bundle["files"])):
        problems.append(f"{out / name}: added after the output was written")
    actual: dict[str, str] = {BUNDLE: sha256_file(out / BUNDLE)}
    for name, entry in sorted(bundle["files"].items()):
        path = out / name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        actual[name] = sha256_file(path)
        if actual[name] != entry["sha256"]:
            problems.append(f"{path}: changed (sha256 differs from {BUNDLE})")
    sums = _sums(out)
    if sums is None or sums != actual and not problems:
        problems.append(f"{out / CHECKSUMS}: changed (does not list the files' sha256)")
    notes: list[str] = []
    _check_recorded(bundle, problems, notes)
    return problems, notes


def _url_sha256(url: str) -> tuple[str | None, str]:
    """sha256 of an object's bytes, or None and why it could not be read."""
    import hashlib

    from provaudit.errors import RemoteError
    from provaudit.fs.urls import iter_url_chunks, missing, url_info, url_problem

    try:
        kind, _ = url_info(url)
        if kind != "file":
            return None, "not found: " + missing(url)
        h = hashlib.sha256()
        for chunk in iter_url_chunks(url):
            h.update(chunk)
        return h.hexdigest(), ""
    except RemoteError as e:
        return None, str(e).removeprefix(f"{url}: ")
    except OSError as e:
        return None, "cannot read it: " + url_problem(e)


def _check_index(idx: dict[str, Any], problems: list[str], notes: list[str]) -> None:
    from provaudit.fs.urls import is_url, join_url

    if is_url(idx["path"]):  # its manifest and checksum list, read from the storage
        sha, why = _url_sha256(join_url(idx["path"], "manifest.json"))
        if sha is None:
            notes.append(f"index {idx['path']}: not checked (manifest.json {why})")
            return
        if sha != idx["manifest_sha256"]:
            problems.append(f"index {idx['path']}: manifest.json changed since the audit")
        notes.append(f"index {idx['path']}: manifest as recorded (read from the storage; it names every segment's "
                     "checksum root)")
        return
    ipath = Path(idx["path"])  # paths are recorded as the user gave them: relative to where the audit ran
    if (ipath / "manifest.json").is_file():
        if sha256_file(ipath / "manifest.json") != idx["manifest_sha256"]:
            problems.append(f"index {idx['path']}: manifest.json changed since the audit")
        if idx.get(INDEX_CHECKSUMS) and checksum_lists_sha256(ipath) != idx[INDEX_CHECKSUMS]:
            problems.append(f"index {idx['path']}: {INDEX_CHECKSUMS} changed since the audit")
        notes.append(f"index {idx['path']}: manifest and chunk checksums as recorded; `provaudit verify "
                     f"{idx['path']}` checks every byte of its files against them")
    else:
        notes.append(f"index {idx['path']} not found: not checked")


def _check_recorded(bundle: dict[str, Any], problems: list[str], notes: list[str]) -> None:
    """The index and the inputs the audit read, where they are found: unchanged, or named. Inputs and
    indexes named by URL are read from their storage (the same settings as the audit's)."""
    from provaudit.fs.urls import is_url

    _check_index(bundle["index"], problems, notes)
    for i in bundle["inputs"] + bundle.get("control_inputs", []):
        if i["sha256"] is None:
            notes.append(f"input {i['source']}: not checked (no sha256 recorded)")
            continue
        if is_url(i["source"]):
            sha, why = _url_sha256(i["source"])
            if sha is None:
                notes.append(f"input {i['source']}: not checked ({why})")
                continue
        else:
            path = Path(i["source"])
            if not path.is_file():
                notes.append(f"input {i['source']}: not checked (not found)")
                continue
            sha = sha256_file(path)
        if sha != i["sha256"]:
            problems.append(f"input {i['source']}: changed since the audit (sha256 differs)")


def rerun(out: Path) -> tuple[list[str], str]:
    """Run the recorded command again into a scratch directory; compare its figures with the saved ones.

    Returns:
        ``(differences, command run)``; no differences means every figure was reproduced.
    """
    bundle, why = _read_bundle(out)
    if bundle is None:
        return [why], ""
    if not bundle.get("argv"):
        return ["the output records no command (written through the Python API): nothing to rerun"], ""
    saved = json.loads((out / "report.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="provaudit-rerun-") as tmp:
        fresh = Path(tmp) / "out"
        argv = [str(fresh) if a == OUT else "--out=" + str(fresh) if a == "--out=" + OUT else a
                for a in bundle["argv"]] + ["-q"]
        cmd = [sys.executable, "-m", "provaudit", *argv]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            return [f"the rerun failed (exit {run.returncode}): {run.stderr.strip()[-500:]}"], shlex.join(argv)
        again = json.loads((fresh / "report.json").read_text(encoding="utf-8"))
        diffs = [f"{key}: differs" for key in FIGURES if saved.get(key) != again.get(key)]
        diffs += [f"input {a['source']}: sha256 {a['sha256']} now, {b['sha256']} in the audit"
                  for a, b in zip(again["inputs"], saved["inputs"]) if a["sha256"] != b["sha256"]]
        if arrow.read_table(fresh / "matches.parquet").to_pylist() != arrow.read_table(out / "matches.parquet").to_pylist():
            diffs.append("matches.parquet: different pairs or values")
    return diffs, shlex.join(["provaudit", *bundle["argv"]])
