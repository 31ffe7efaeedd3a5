"""Indexes are untrusted: chunks are verified when read, values validated before use (issues #11, #15).

A checksum is not a signature: anyone can change a value and re-seal the index (recompute every
checksum). These tests do exactly that and require a clean refusal (exit 1, "corrupt or hostile
index", no traceback, no signal), never a crash.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import long_postings, near_duplicates, seg, write_jsonl
from provaudit import api
from provaudit.config import IndexConfig
from provaudit.errors import IndexFormatError
from provaudit.match import candidates
from provaudit.index.chunks import CHUNK, digest_root, file_digests
from provaudit.index.check import verify_index
from provaudit.index.format import CHECKSUMS, FILES, load_index, manifest_checksum

ROOT = Path(__file__).resolve().parent.parent


def reseal(dest: Path, manifest: dict | None = None) -> None:
    """Recompute every checksum of ``dest`` as an attacker can (after changing files or the manifest)."""
    m = manifest if manifest is not None else json.loads((dest / "manifest.json").read_text())
    for s in m.get("segments") if isinstance(m.get("segments"), list) else []:
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not (dest / s["name"]).is_dir():
            continue
        blob = bytearray()
        for name in FILES:
            d = file_digests(dest / s["name"] / name)
            blob += d
            if isinstance(s.get("files"), dict) and isinstance(s["files"].get(name), dict):
                s["files"][name]["chunks_sha256"] = digest_root(d)
        (dest / s["name"] / CHECKSUMS).write_bytes(bytes(blob))
        if isinstance(s.get("checksums"), dict):
            s["checksums"]["sha256"] = digest_root(bytes(blob))
    m["manifest_checksum"] = manifest_checksum(m)
    (dest / "manifest.json").write_text(json.dumps(m))


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


@pytest.fixture(scope="module")
def fixture_index(tmp_path_factory) -> tuple[Path, Path]:
    """The fixtures' reference index (several chunks per large file) and a 1-record target."""
    d = tmp_path_factory.mktemp("fx")
    first = json.loads((ROOT / "fixtures" / "reference" / "posts.jsonl").read_text().splitlines()[5])
    # 6 near copies of the target's post: keys of 7 items, long here, so the audit reads the dep_* table
    write_jsonl(d / "copies.jsonl", {k: v for k, v in near_duplicates({"c": first["text"]}).items() if k != "c"})
    with long_postings(4):
        api.build_index([str(ROOT / "fixtures" / "reference"), str(d / "copies.jsonl")], d / "ref.idx")
    target = d / "one.jsonl"
    target.write_text(json.dumps({"id": "t", "text": "prefix words " + first["text"]}) + "\n")
    return d / "ref.idx", target


@pytest.mark.parametrize("mapped", [False, True])
def test_an_audit_refuses_a_flipped_byte_in_every_chunk_it_reads(fixture_index, tmp_path, monkeypatch, mapped) -> None:
    """For each chunk the audit verified, a copy with one byte flipped there is refused; a flip in
    a chunk it never reads leaves the result unchanged (and ``verify`` still finds it). ``mapped``: the
    postings read through the map, as a large audit reads them (which also reads ``anchor_need``)."""
    if mapped:
        monkeypatch.setattr(candidates, "SPARSE_MAX", 0)
    corpus_index, target = fixture_index
    corpus = (None, None, None, target)
    intact = api.audit(corpus_index, [str(corpus[3])])
    assert len(intact.matches["reference_id"]) >= 1
    read = {name: np.flatnonzero(f.verified).tolist() for name, f in intact.index.files.items()}
    s = seg(corpus_index).name
    assert read[f"{s}/anchor_keys.u64"] and read[f"{s}/sequences.u64"] and read[f"{s}/items.parquet"]
    assert not all(f.verified.all() for f in intact.index.files.values())  # it did not read everything
    n = 0
    for name, chunks in read.items():
        size = (corpus_index / name).stat().st_size
        for c in chunks:
            dest = _copy(corpus_index, tmp_path / f"{name}-{c}")
            at = min(size - 1, c * CHUNK + 7)
            data = bytearray((dest / name).read_bytes())
            data[at] ^= 0x10
            (dest / name).write_bytes(bytes(data))
            with pytest.raises(IndexFormatError, match=f"{name}: bytes .* do not match their checksum"):
                api.audit(dest, [str(corpus[3])])
            n += 1
    # a chunk of every non-empty file but the band table's (the default index has none; nothing reads it),
    # the id table's (only add and remove read it), token_shapes (only model-output audits read it) and, for
    # few postings read with pread, anchor_need
    skip = ("band_", "id_", "token_shapes") if mapped else ("band_", "id_", "token_shapes", "anchor_need")
    wanted = {name for name in read if not Path(name).name.startswith(skip) and (corpus_index / name).stat().st_size}
    assert {name for name, c in read.items() if c} == wanted
    assert any("dep_" in name for name in wanted)
    unread = [(name, c) for name, f in intact.index.files.items() for c in np.flatnonzero(~f.verified).tolist()]
    assert unread
    name, c = unread[0]
    dest = _copy(corpus_index, tmp_path / "unread")
    data = bytearray((dest / name).read_bytes())
    data[c * CHUNK] ^= 0x10
    (dest / name).write_bytes(bytes(data))
    assert api.audit(dest, [str(corpus[3])]).matches == intact.matches
    with pytest.raises(IndexFormatError, match=name):
        verify_index(dest)


def _mutate_array(path: Path, dtype: str, rng: random.Random, how: str) -> None:
    a = np.fromfile(path, dtype=dtype).copy()
    if not len(a):
        return
    i = rng.randrange(len(a))
    info = np.iinfo(a.dtype)
    if how == "shift":
        a[i:] = np.clip(a[i:].astype(np.float64) + rng.choice([-10_000_000, 10_000_000, -1, 1]), info.min, info.max)
    elif how == "max":
        a[i] = info.max
    elif how == "zero-tail":
        a[i:] = 0
    else:  # one bit of element i, flipped in its bytes (1 << 63 does not fit a signed element)
        bit = rng.randrange(a.itemsize * 8)
        a.view(np.uint8)[i * a.itemsize + bit // 8] ^= np.uint8(1 << (bit % 8))
    a.tofile(path)


MANIFEST_MUTATIONS = [
    ("counts", "items", -1), ("counts", "items", 10_000_000), ("counts", "items", 1.5), ("counts", "items", None),
    ("config", "num_perm", 128.0), ("config", "seed", 1.5), ("config", "anchors", 0), ("config", "keep_text", "yes"),
    ("config", "ngram", 2), ("anchor_plan", "max_postings", 0), ("anchor_plan", "max_postings", 1.0),
    # format 9: the settings of the stored plan (anchor_need, dep_*)
    ("anchor_plan", "long_postings", 0), ("anchor_plan", "long_postings", "128"), ("anchor_plan", "min_overlap", 0),
    ("anchor_plan", "min_overlap", 1.5), ("anchor_plan", "miss_rate", 0.9), ("anchor_plan", "miss_rate", None),
    ("anchor_plan", "extra", 1),
    (None, "counts", []), ("segment", "files", []), (None, "inputs", "x"), (None, "chunk_bytes", 4096),
    ("segment.checksums", "bytes", 0), (None, "format_version", 6.0),
    # format 7: segments, removed items, operation numbers
    (None, "segments", []), (None, "segments", "x"), (None, "segments", [None]), ("segment", "base", 1),
    ("segment", "base", -1), ("segment", "name", "../ref.idx"), ("segment", "name", "seg-000000-ZZZZZZZZ"),
    ("segment", "name", "seg-000001-0000000a"), ("segment", "name", None), ("segment.counts", "items", 2999),
    ("segment.counts", "items", 1 << 40), ("segment", "counts", None), (None, "next_operation", 0),
    (None, "next_operation", "1"), (None, "removed", "x"), (None, "removed", {"name": "del-000001-00000000.u64"}),
    (None, "removed", {"name": "../x", "rows": 1, "bytes": 8, "sha256": "0", "counts": {}}),
]


@pytest.mark.parametrize("where,key,value", MANIFEST_MUTATIONS)
def test_resealed_manifest_with_a_wrong_value_is_refused(corpus_index, tmp_path, where, key, value) -> None:
    dest = _copy(corpus_index, tmp_path / "idx")
    m = json.loads((dest / "manifest.json").read_text())
    target = m
    for part in (where or "").split(".") if where else []:
        target = m["segments"][0] if part == "segment" else target[part]
    target[key] = value
    reseal(dest, m)
    with pytest.raises(IndexFormatError):
        load_index(dest)


def test_resealed_files_row_counts_that_disagree_are_refused(corpus_index, tmp_path) -> None:
    dest = _copy(corpus_index, tmp_path / "idx")
    m = json.loads((dest / "manifest.json").read_text())
    m["segments"][0]["files"]["seq_offsets.i64"]["rows"] += 1
    m["segments"][0]["files"]["seq_offsets.i64"]["bytes"] += 8
    reseal(dest, m)
    with pytest.raises(IndexFormatError, match="corrupt or hostile index"):
        load_index(dest)


def test_shifted_sequence_offsets_are_refused_by_the_audit_not_a_crash(corpus, corpus_index, tmp_path) -> None:
    """Issue #15's repro: offsets shifted by 10M and re-sealed made pa_overlap read out of bounds."""
    for shift in (10_000_000, -10_000_000):
        dest = _copy(corpus_index, tmp_path / f"idx{shift}")
        off = np.fromfile(seg(dest) / "seq_offsets.i64", dtype="<i8")
        off[1:-1] += shift
        off.tofile(seg(dest) / "seq_offsets.i64")
        reseal(dest)
        with pytest.raises(IndexFormatError, match="corrupt or hostile index: sequence offsets"):
            api.audit(dest, [str(corpus[3])])
        with pytest.raises(IndexFormatError, match="corrupt or hostile index"):
            verify_index(dest)


_FUZZ = r'''
import json, random, shutil, sys, traceback
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_hostile_index import reseal, _mutate_array
from conftest import seg
from provaudit import api
from provaudit.errors import ProvauditError
from provaudit.index.check import verify_index
from provaudit.index.format import RAW
src, work, rng = Path(sys.argv[1]), Path(sys.argv[2]), random.Random(int(sys.argv[4]))
targets = sys.argv[5:]
names = sorted(RAW)
for case in range(int(sys.argv[4]), int(sys.argv[4]) + 40):
    dest = work / f"case{case}"
    shutil.copytree(src, dest)
    name = names[case % len(names)]
    how = ["shift", "max", "zero-tail", "bit"][(case // len(names)) % 4]
    _mutate_array(seg(dest) / name, RAW[name], rng, how)
    reseal(dest)
    for step, run in (("audit", lambda: api.audit(dest, targets)), ("verify", lambda: verify_index(dest))):
        try:
            run()
            print(case, name, how, step, "accepted")
        except ProvauditError as e:
            print(case, name, how, step, "refused", str(e).replace(chr(10), " ")[:160])
        except BaseException:
            print(case, name, how, step, "TRACEBACK", traceback.format_exc().replace(chr(10), " | "))
    shutil.rmtree(dest)
'''


def test_fuzzed_resealed_tables_never_crash_and_verify_refuses_them(corpus, tmp_path) -> None:
    """Random mutations of every raw table, re-sealed: the audit refuses or answers (exit 1 or 0, never
    a traceback or a signal, in a child process so that a crash is seen), and ``verify`` refuses
    every mutation that changed a value it can check."""
    work = tmp_path / "work"
    work.mkdir()
    src = write_jsonl(tmp_path / "ref.jsonl", near_duplicates(corpus[0]))  # every table holds data
    with long_postings(2):
        api.build_index([str(src)], tmp_path / "idx", IndexConfig(band_table=True))
    r = subprocess.run([sys.executable, "-c", _FUZZ, str(tmp_path / "idx"), str(work), str(ROOT / "tests"), "0",
                        str(corpus[3]), str(src)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])  # a signal would be negative
    lines = r.stdout.splitlines()
    assert len(lines) == 80, r.stdout[-2000:]
    assert not [line for line in lines if "TRACEBACK" in line], r.stdout
    verify = [line for line in lines if " verify " in line]
    accepted = [line for line in verify if line.endswith("accepted")]
    # a flipped bit in a hash (sequences, keys) can leave a valid index behind; nothing else may pass
    assert all(line.split()[1] in ("sequences.u64",) for line in accepted), accepted
    refused_audits = [line for line in lines if " audit refused" in line]
    assert refused_audits and all("corrupt or hostile index" in line or "checksum" in line for line in refused_audits)


def test_cli_reports_a_hostile_index_with_exit_1_and_no_traceback(corpus, corpus_index, tmp_path) -> None:
    dest = _copy(corpus_index, tmp_path / "idx")
    items = np.fromfile(seg(dest) / "anchor_items.u32", dtype="<u4")
    items[:] = 4_000_000_000
    items.tofile(seg(dest) / "anchor_items.u32")
    reseal(dest)
    for args in (["audit", str(dest), str(corpus[3]), "-o", str(tmp_path / "out"), "-w", "1"], ["verify", str(dest)]):
        r = subprocess.run([sys.executable, "-m", "provaudit", *args], capture_output=True, text=True, timeout=300)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert "corrupt or hostile index: item number out of range" in r.stderr and "Traceback" not in r.stderr


def test_a_manifest_of_deeply_nested_arrays_is_refused_cleanly(corpus_index, tmp_path) -> None:
    dest = _copy(corpus_index, tmp_path / "idx")
    (dest / "manifest.json").write_text('{"format": "provaudit-index", "inputs": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(IndexFormatError, match="corrupt manifest"):
        load_index(dest)


def test_a_small_items_file_that_would_decompress_to_a_huge_one_is_refused_before_parsing(corpus_index,
                                                                                           tmp_path) -> None:
    """Issue #15 item 8: an items.parquet replaced (not re-sealed) is refused by its checksums before
    pyarrow parses a byte of it; a re-sealed one whose row group declares a huge size is refused from
    its metadata, before decoding."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dest = _copy(corpus_index, tmp_path / "idx")
    n = load_index(dest).n_items
    bomb = pa.table({"id": pa.array(["x" * (1 << 20)] * n), "source": pa.array(["s"] * n),
                     "row": pa.array(np.arange(n, dtype=np.int64))})
    pq.write_table(bomb, seg(dest) / "items.parquet", compression="zstd", row_group_size=n, use_dictionary=False)
    assert (seg(dest) / "items.parquet").stat().st_size < 1 << 20
    m = json.loads((dest / "manifest.json").read_text())
    s = m["segments"][0]
    s["files"]["items.parquet"]["bytes"] = (seg(dest) / "items.parquet").stat().st_size
    with pytest.raises(IndexFormatError):
        load_index(dest).ids_of(np.array([0]))  # manifest not re-sealed: checksums refuse
    s["checksums"]["bytes"] = sum(-(-s["files"][f]["bytes"] // CHUNK) * 32 for f in FILES)
    reseal(dest, m)
    with pytest.raises(IndexFormatError, match="corrupt or hostile index: row group 0 declares"):
        load_index(dest).ids_of(np.array([0]))


@pytest.mark.parametrize("how", ["flip", "count", "usable", "negative", "huge"])
def test_an_outputs_audit_refuses_a_changed_token_shape_table(fixture_index, tmp_path, how) -> None:
    """``token_shapes.i64`` (what a model-output audit's summary reads instead of every item): a flipped
    byte is refused by its checksum; values forged and re-sealed are refused when out of range or not
    summing to the items, and by ``verify`` always."""
    from provaudit.config import AuditConfig
    corpus_index, _ = fixture_index
    outputs = [str(Path(__file__).parent.parent / "fixtures" / "outputs" / "plain.jsonl")]
    dest = _copy(corpus_index, tmp_path / "idx")
    path = seg(dest) / "token_shapes.i64"
    rows = np.fromfile(path, dtype="<i8").reshape(-1, 4)
    if how == "flip":
        data = bytearray(path.read_bytes())
        data[9] ^= 0x10
        path.write_bytes(bytes(data))
    else:
        rows[0, {"count": 3, "usable": 2, "negative": 1, "huge": 0}[how]] += {"count": 1, "usable": 300, "negative": -10_000,
                                                                             "huge": 1 << 40}[how]
        rows.tofile(path)
        reseal(dest)
    match = "do not match their checksum" if how == "flip" else "token_shapes.i64"
    with pytest.raises(IndexFormatError, match=match):
        api.audit_outputs(dest, outputs, AuditConfig())
    with pytest.raises(IndexFormatError, match="token_shapes.i64"):
        verify_index(dest)
