"""Segments (issue #11 item 3): an index grows (add), forgets (remove) and merges (compact) without a rebuild.

Every audit is compared with the brute-force pairs of the items in force and with one build over
them; every operation, killed with SIGKILL at each of its steps, leaves the index before or after.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import brute_force_pairs, seg, write_jsonl
from provaudit import api
from provaudit.api_segments import add_to_index, compact_index, remove_from_index
from provaudit.config import IndexConfig
from provaudit.errors import IndexFormatError, IndexMismatchError, InputError
from provaudit.index.check import verify_index
from provaudit.index.chunks import CHUNK
from provaudit.index.format import FILES, load_index

ROOT = Path(__file__).resolve().parent.parent
CFG = IndexConfig(band_table=True)  # both candidate routes


def _pairs(index: Path, target: Path) -> list[dict]:
    """The audit's pairs as rows (reference_item left out: compact renumbers)."""
    m = api.audit(index, [str(target)]).matches
    return [{k: m[k][i] for k in m if k != "reference_item"} for i in range(len(m["reference_id"]))]


def _rows(index: Path, target: Path) -> list[dict]:
    m = api.audit(index, [str(target)]).matches
    return [{k: m[k][i] for k in m} for i in range(len(m["reference_id"]))]


def _truth(refs: dict[str, str], targets: dict[str, str]) -> set[tuple[str, str]]:
    return set(brute_force_pairs(refs, targets, 0.5, 0.5))


def _found(rows: list[dict]) -> set[tuple[str, str]]:
    return {(r["reference_id"], r["target_id"]) for r in rows}


@pytest.fixture(scope="module")
def halves(corpus, tmp_path_factory):
    """The test corpus split in two files A and B, an index of A+B built once, and one of A then add B."""
    refs, targets, _, tgt = corpus
    d = tmp_path_factory.mktemp("halves")
    keys = list(refs)
    a = write_jsonl(d / "a.jsonl", {k: refs[k] for k in keys[: len(keys) * 2 // 3]})
    b = write_jsonl(d / "b.jsonl", {k: refs[k] for k in keys[len(keys) * 2 // 3 :]})
    api.build_index([str(a), str(b)], d / "whole.idx", CFG)
    api.build_index([str(a)], d / "grown.idx", CFG)
    add_to_index(d / "grown.idx", [str(b)])
    return refs, targets, tgt, a, b, d


def test_an_index_built_then_added_to_answers_as_one_build(halves) -> None:
    refs, targets, tgt, a, b, d = halves
    m = json.loads((d / "grown.idx" / "manifest.json").read_text())
    assert [s["base"] for s in m["segments"]] == [0, m["segments"][0]["counts"]["items"]]
    assert m["counts"]["items"] == len(refs) and m["next_operation"] == 2
    grown, whole = _rows(d / "grown.idx", tgt), _rows(d / "whole.idx", tgt)
    assert grown == whole  # every column, item numbers included
    assert _found(grown) == _truth(refs, targets) and grown
    assert load_index(d / "grown.idx").ids.to_pylist() == list(refs)
    verify_index(d / "grown.idx")


def test_add_refuses_other_parameters_and_known_ids_and_changes_nothing(halves, tmp_path) -> None:
    refs, targets, tgt, a, b, d = halves
    idx = shutil.copytree(d / "grown.idx", tmp_path / "idx")
    before = (idx / "manifest.json").read_bytes()
    with pytest.raises(IndexMismatchError, match=r"ngram 4 \(the index has 3\)"):
        add_to_index(idx, [str(b)], {"ngram": 4})
    with pytest.raises(IndexMismatchError, match=r"num_perm 64 \(the index has 128\)"):
        add_to_index(idx, [str(b)], IndexConfig(num_perm=64, band_table=True))
    with pytest.raises(InputError, match=r"b.jsonl row 1: reference id .* is already an item of the index"):
        add_to_index(idx, [str(b)])
    assert (idx / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in idx.iterdir()) == sorted(p.name for p in (d / "grown.idx").iterdir())
    r = subprocess.run([sys.executable, "-m", "provaudit", "add", str(idx), str(b), "--ngram", "5"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Error: " in r.stderr and "ngram 5 (the index has 3)" in r.stderr
    assert "Traceback" not in r.stderr


def test_removed_items_never_appear_and_every_other_pair_is_unchanged(halves, tmp_path) -> None:
    refs, targets, tgt, a, b, d = halves
    idx = shutil.copytree(d / "grown.idx", tmp_path / "idx")
    before = _rows(idx, tgt)
    matched = sorted({r["reference_id"] for r in before})
    gone = set(matched[::3]) | {list(refs)[0], list(refs)[-1]}  # in both segments
    ids = tmp_path / "gone.txt"
    ids.write_text("\n".join(sorted(gone)) + "\nnot-an-item\n\n")
    result = remove_from_index(idx, ids)
    assert result.removed == len(gone) and result.not_found == ["not-an-item"]
    after = _rows(idx, tgt)
    assert after == [r for r in before if r["reference_id"] not in gone]
    assert _found(after) == {p for p in _truth(refs, targets) if p[0] not in gone}
    index = load_index(idx)
    assert index.live_items == len(refs) - len(gone) and len(index) == len(refs)
    live = {k: v for k, v in refs.items() if k not in gone}
    api.build_index([str(write_jsonl(tmp_path / "live.jsonl", live))], tmp_path / "fresh.idx", CFG)
    counts = api.write_audit(api.audit(idx, [str(tgt)]), tmp_path / "out")["counts"]
    fresh = api.write_audit(api.audit(tmp_path / "fresh.idx", [str(tgt)]), tmp_path / "out-fresh")["counts"]
    for key in ("reference_items", "reference_items_evidence", "reference_items_found", "pairs"):
        assert counts[key] == fresh[key], key  # removed items are out of the counts and denominators
    assert counts["reference_items"] == len(live)
    with pytest.raises(InputError, match="none of its .* ids is an item of the index"):
        remove_from_index(idx, ids)  # all removed already
    verify_index(idx)


def test_compact_answers_the_same_with_fewer_files_as_a_build_of_the_live_items(halves, tmp_path) -> None:
    refs, targets, tgt, a, b, d = halves
    idx = shutil.copytree(d / "grown.idx", tmp_path / "idx")
    gone = sorted(refs)[5::7]
    (tmp_path / "gone.txt").write_text("\n".join(gone) + "\n")
    remove_from_index(idx, tmp_path / "gone.txt")
    removed = _pairs(idx, tgt)
    files_before = sum(1 for _ in idx.rglob("*"))
    manifest, merged = compact_index(idx)
    assert merged and len(manifest["segments"]) == 1 and manifest["removed"] is None
    assert sum(1 for _ in idx.rglob("*")) < files_before
    assert sorted(p.name for p in idx.iterdir()) == sorted([".lock", "manifest.json", manifest["segments"][0]["name"]])
    assert _pairs(idx, tgt) == removed
    live = {k: v for k, v in refs.items() if k not in set(gone)}
    fresh = api.build_index([str(write_jsonl(tmp_path / "live.jsonl", live))], tmp_path / "fresh.idx", CFG)
    for name in FILES:
        if name != "items.parquet":  # its source and row columns name the files read
            assert (seg(idx) / name).read_bytes() == (seg(tmp_path / "fresh.idx") / name).read_bytes(), name
    assert _rows(idx, tgt) == _rows(tmp_path / "fresh.idx", tgt)
    assert manifest["counts"] == fresh["counts"]
    assert load_index(idx).ids.to_pylist() == list(live)
    verify_index(idx)
    assert compact_index(idx)[1] is False  # one segment, nothing removed: left as it is


def test_cli_add_remove_compact_info(halves, tmp_path) -> None:
    refs, targets, tgt, a, b, d = halves
    idx = tmp_path / "idx"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "provaudit", *args], capture_output=True, text=True, timeout=300)

    assert run("index", str(a), "-o", str(idx), "--band-table", "-q").returncode == 0
    r = run("add", str(idx), str(b))
    assert r.returncode == 0 and "2 segment(s)" in r.stdout, r.stderr
    (tmp_path / "ids").write_text(f"{list(refs)[3]}\nmissing\n")
    r = run("remove", str(idx), "--ids", str(tmp_path / "ids"))
    assert r.returncode == 0 and "Removed 1 items" in r.stdout and "'missing'" in r.stderr
    r = run("remove", str(idx), "--ids", str(tmp_path / "ids"))
    assert r.returncode == 1 and "none of its 2 ids" in r.stderr and "Traceback" not in r.stderr
    info = json.loads(run("info", str(idx)).stdout)
    assert len(info["segments"]) == 2 and info["removed"]["rows"] == 1 and info["counts"]["items"] == len(refs) - 1
    assert all(s["files"]["sequences.u64"]["bytes"] > 0 for s in info["segments"])
    r = run("compact", str(idx))
    assert r.returncode == 0 and "1 segment(s)" in r.stdout
    r = run("verify", str(idx))
    assert r.returncode == 0 and f"{len(refs) - 1:,} items" in r.stdout
    (tmp_path / "bad").write_bytes(b"ok\n\xff\xfe\n")
    r = run("remove", str(idx), "--ids", str(tmp_path / "bad"))
    assert r.returncode == 1 and "bad line 2: not UTF-8" in r.stderr


KILL = r'''
import os, sys
os.environ["PROVAUDIT_KILL_AT"] = sys.argv[1]
from provaudit.cli import cli
cli(sys.argv[2:])
'''


@pytest.mark.parametrize("op,point", [
    ("add", "segment-written"), ("add", "segment-renamed"), ("add", "manifest-written"),
    ("remove", "removed-written"), ("remove", "manifest-written"),
    ("compact", "segment-written"), ("compact", "segment-renamed"), ("compact", "manifest-written"),
    ("compact", "committed"),
])
def test_sigkill_during_an_operation_leaves_the_index_before_or_after(halves, tmp_path, op, point) -> None:
    refs, targets, tgt, a, b, d = halves
    idx = tmp_path / "idx"
    (tmp_path / "ids").write_text("\n".join(sorted(refs)[::5]) + "\n")
    if op == "add":
        api.build_index([str(a)], idx, CFG)
    else:
        shutil.copytree(d / "grown.idx", idx)
        if op == "compact":
            remove_from_index(idx, tmp_path / "ids")
    args = {"add": ["add", str(idx), str(b)], "remove": ["remove", str(idx), "--ids", str(tmp_path / "ids")],
            "compact": ["compact", str(idx)]}[op]
    manifest = (idx / "manifest.json").read_bytes()
    before = _rows(idx, tgt)
    ref = shutil.copytree(idx, tmp_path / "ref")  # the same operation on a copy, not killed
    r = subprocess.run([sys.executable, "-m", "provaudit", *[str(ref) if x == str(idx) else x for x in args]],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    after = _rows(ref, tgt)
    assert after != before
    r = subprocess.run([sys.executable, "-c", KILL, point, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, (r.returncode, r.stderr[-2000:])  # killed there
    state = _rows(idx, tgt)
    verify_index(idx)
    if point == "committed":
        assert state == after
    else:  # the old manifest is in force, whatever was written beside it
        assert (idx / "manifest.json").read_bytes() == manifest and state == before
    m = json.loads((idx / "manifest.json").read_text())
    named = {".lock", "manifest.json", *(s["name"] for s in m["segments"]), *([m["removed"]["name"]] if m["removed"] else [])}
    assert {p.name for p in idx.iterdir()} - named  # what the killed operation wrote is there, unreferenced
    # the next operation deletes what the killed one left, and nothing else
    r = subprocess.run([sys.executable, "-m", "provaudit", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert _rows(idx, tgt) == after
    m = json.loads((idx / "manifest.json").read_text())
    kept = [s["name"] for s in m["segments"]] + ([m["removed"]["name"]] if m["removed"] else [])
    assert sorted(p.name for p in idx.iterdir()) == sorted([".lock", "manifest.json", *kept])
    verify_index(idx)


def test_a_flipped_byte_in_any_chunk_an_audit_reads_of_any_segment_is_refused(halves, tmp_path) -> None:
    refs, targets, tgt, a, b, d = halves
    idx = shutil.copytree(d / "grown.idx", tmp_path / "idx")
    (tmp_path / "ids").write_text(sorted(refs)[0] + "\n")
    remove_from_index(idx, tmp_path / "ids")
    intact = api.audit(idx, [str(tgt)])
    read = {name: np.flatnonzero(f.verified).tolist() for name, f in intact.index.files.items()}
    segments = {name.split("/")[0] for name, chunks in read.items() if chunks}
    assert len(segments) == 2  # the audit read both segments
    n = 0
    for name, chunks in read.items():
        for c in chunks[:2]:
            dest = shutil.copytree(idx, tmp_path / f"c{n}")
            data = bytearray((dest / name).read_bytes())
            data[min(len(data) - 1, c * CHUNK + 3)] ^= 0x20
            (dest / name).write_bytes(bytes(data))
            with pytest.raises(IndexFormatError, match="do not match their checksum"):
                api.audit(dest, [str(tgt)])
            shutil.rmtree(dest)
            n += 1
    assert n >= 10
    # verify finds a flipped byte anywhere: every file of every segment, the removed items, the manifest
    files = [p for p in sorted(idx.rglob("*")) if p.is_file() and p.name != ".lock"]
    assert any(p.name.startswith("del-") for p in files) and len(files) == 2 * (len(FILES) + 1) + 2
    for j, p in enumerate(files):
        dest = shutil.copytree(idx, tmp_path / f"v{j}")
        q = dest / p.relative_to(idx)
        data = bytearray(q.read_bytes())
        if not data:
            continue
        data[len(data) // 2] ^= 0x01
        q.write_bytes(bytes(data))
        with pytest.raises(IndexFormatError):
            verify_index(dest)
        shutil.rmtree(dest)


def test_hostile_removed_items_are_refused(halves, tmp_path) -> None:
    """A resealed del-* file (sha256 recomputed) with numbers out of range, unsorted or repeated is refused."""
    import hashlib

    from provaudit.index.format import manifest_checksum

    refs, targets, tgt, a, b, d = halves
    src = shutil.copytree(d / "grown.idx", tmp_path / "src")
    (tmp_path / "ids").write_text("\n".join(sorted(refs)[:3]) + "\n")
    remove_from_index(src, tmp_path / "ids")
    for j, values in enumerate(([5, 3, 9], [1, 1, 2], [0, 1, len(refs)], [0, 1, 1 << 62])):
        dest = shutil.copytree(src, tmp_path / f"h{j}")
        m = json.loads((dest / "manifest.json").read_text())
        data = np.array(values, "<u8").tobytes()
        (dest / m["removed"]["name"]).write_bytes(data)
        m["removed"]["sha256"] = hashlib.sha256(data).hexdigest()
        m["manifest_checksum"] = manifest_checksum(m)
        (dest / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(IndexFormatError, match="removed item numbers"):
            load_index(dest)


def test_stale_entries_are_removed_without_following_links(halves, tmp_path) -> None:
    refs, targets, tgt, a, b, d = halves
    idx = shutil.copytree(d / "grown.idx", tmp_path / "idx")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (idx / "seg-000009-partial").mkdir()
    (idx / "seg-000009-partial" / "x").write_text("left by a killed add")
    (idx / "seg-000010-abcdef01").symlink_to(outside)
    (idx / "del-000011-abcdef01.u64").write_bytes(b"\0" * 8)
    (idx / "notes.txt").write_text("not provaudit's")
    (tmp_path / "ids").write_text(sorted(refs)[0] + "\n")
    remove_from_index(idx, tmp_path / "ids")
    names = sorted(p.name for p in idx.iterdir())
    m = json.loads((idx / "manifest.json").read_text())
    assert names == sorted([".lock", "manifest.json", "notes.txt", m["removed"]["name"],
                            *(s["name"] for s in m["segments"])])
    assert (outside / "keep.txt").read_text() == "mine"


def test_an_audit_bundle_records_every_segments_checksum_list(halves, tmp_path) -> None:
    """bundle.json recorded INDEX/checksums.sha256, which a segmented index no longer has: a changed
    checksum list of any segment must still make ``verify OUT`` fail, naming it."""
    refs, targets, tgt, a, b, d = halves
    idx = shutil.copytree(d / "grown.idx", tmp_path / "idx")
    out = tmp_path / "out"
    api.write_audit(api.audit(idx, [str(tgt)]), out)
    bundle = json.loads((out / "bundle.json").read_text())
    assert bundle["index"]["checksums.sha256"]
    cmd = [sys.executable, "-m", "provaudit", "verify", str(out)]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=300).returncode == 0
    lists = seg(idx, 1) / "checksums.sha256"
    data = bytearray(lists.read_bytes())
    data[5] ^= 1
    lists.write_bytes(bytes(data))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "checksums.sha256 changed since the audit" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("op", ["add", "compact"])
def test_sigkill_at_random_times_leaves_the_index_before_or_after(halves, tmp_path, op) -> None:
    """Not only at the named steps: SIGKILL after delays spread over the run of the command."""
    import signal
    import time

    refs, targets, tgt, a, b, d = halves
    base = tmp_path / "base"
    if op == "add":
        api.build_index([str(a)], base, CFG)
    else:
        shutil.copytree(d / "grown.idx", base)
        (tmp_path / "ids").write_text("\n".join(sorted(refs)[::4]) + "\n")
        remove_from_index(base, tmp_path / "ids")
    ref = shutil.copytree(base, tmp_path / "ref")
    args = {"add": ["add", "{idx}", str(b), "-w", "1"], "compact": ["compact", "{idx}"]}[op]
    subprocess.run([sys.executable, "-m", "provaudit", *[x.format(idx=ref) for x in args]], check=True, timeout=300)
    before, after = _rows(base, tgt), _rows(ref, tgt)
    timed = shutil.copytree(base, tmp_path / "timed")
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "provaudit", *[x.format(idx=timed) for x in args]], check=True, timeout=300)
    whole = time.monotonic() - t0  # how long the command takes here, now
    killed = 0
    for j, share in enumerate((0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)):
        idx = shutil.copytree(base, tmp_path / f"k{j}")
        p = subprocess.Popen([sys.executable, "-m", "provaudit", *[x.format(idx=idx) for x in args]],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(whole * share)
        p.send_signal(signal.SIGKILL)
        killed += p.wait() == -9
        assert _rows(idx, tgt) in (before, after), (share, p.returncode)
        verify_index(idx)
    assert killed
