from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import long_postings, near_duplicates, seg, write_jsonl
from provaudit import api
from provaudit.config import IndexConfig
from provaudit.errors import IndexFormatError, InputError, OutputExistsError
from provaudit.index.check import verify_index
from provaudit.index.format import FILES, load_index


def _build(src: Path, dest: Path, **kw) -> dict:
    return api.build_index([str(src)], dest, IndexConfig(**kw), force=True)


def test_same_inputs_give_identical_files(corpus, tmp_path) -> None:
    _build(corpus[2], tmp_path / "a")
    _build(corpus[2], tmp_path / "b")
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    for name in FILES:
        assert (seg(tmp_path / "a") / name).read_bytes() == (seg(tmp_path / "b") / name).read_bytes(), name


def test_manifest_records_parameters_inputs_and_hashes(corpus, tmp_path) -> None:
    m = _build(corpus[2], tmp_path / "idx", ngram=4, num_perm=64, seed=9)
    on_disk = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert on_disk == m
    assert m["format_version"] == 10 and len(m["segments"]) == 1 and m["removed"] is None
    assert m["config"]["ngram"] == 4 and m["config"]["num_perm"] == 64 and m["config"]["seed"] == 9
    assert m["config"]["scheme"] == "affine32" and m["config"]["hash"] == "xxh3"
    assert m["config"]["bands"] * m["config"]["rows"] <= 64
    assert m["versions"]["datasketch"]
    assert m["inputs"][0]["rows_read"] == len(corpus[0])
    assert len(m["inputs"][0]["sha256"]) == 64
    assert set(m["segments"][0]["files"]) == set(FILES) and m["segments"][0]["counts"] == m["counts"]
    assert m["counts"]["items"] == len(corpus[0])


def test_loaded_index_round_trips(corpus, corpus_index) -> None:
    import numpy as np

    idx = load_index(corpus_index)
    assert len(idx) == len(corpus[0])
    assert idx.ids.to_pylist() == list(corpus[0])
    assert idx.ids_of(np.array([len(idx) - 1, 0])) == [list(corpus[0])[-1], list(corpus[0])[0]]
    for table in (idx.segments[0].anchor_table, idx.segments[0].band_table):
        assert (table.keys[1:] >= table.keys[:-1]).all()


@pytest.mark.parametrize("name", [*FILES, "manifest.json", "checksums.sha256"])
def test_flipped_byte_is_refused_by_verify(corpus, tmp_path, name) -> None:
    dest = tmp_path / "idx"
    src = write_jsonl(tmp_path / "ref.jsonl", near_duplicates(corpus[0]))
    with long_postings(2):
        _build(src, dest, band_table=True)  # every file holds data
    verify_index(dest)
    p = dest / name if name == "manifest.json" else seg(dest) / name
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError):
        verify_index(dest)


def test_missing_file_is_refused(corpus, tmp_path) -> None:
    dest = tmp_path / "idx"
    _build(corpus[2], dest)
    (seg(dest) / "anchor_items.u32").unlink()
    with pytest.raises(IndexFormatError, match="missing anchor_items.u32"):
        load_index(dest)


def test_failed_build_leaves_nothing(tmp_path) -> None:
    src = tmp_path / "ref.jsonl"
    src.write_text('{"id": "a", "text": "one two three"}\n{"id": "b", "text": 5}\n')
    with pytest.raises(InputError, match=r"ref.jsonl line 2: field 'text' is int"):
        api.build_index([str(src)], tmp_path / "idx")
    assert list(tmp_path.iterdir()) == [src]


def test_failed_rebuild_keeps_previous_index(corpus, tmp_path) -> None:
    dest = tmp_path / "idx"
    _build(corpus[2], dest)
    before = (dest / "manifest.json").read_bytes()
    bad = write_jsonl(tmp_path / "bad.jsonl", {"a": "x y z"})
    bad.write_text(bad.read_text() + "{not json\n")
    with pytest.raises(InputError, match="bad.jsonl line 2: malformed JSON"):
        api.build_index([str(bad)], dest, force=True)
    assert (dest / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "idx"]


def test_existing_output_needs_force_and_must_be_ours(corpus, tmp_path) -> None:
    dest = tmp_path / "idx"
    _build(corpus[2], dest)
    with pytest.raises(OutputExistsError, match="use --force"):
        api.build_index([str(corpus[2])], dest)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("x")
    with pytest.raises(OutputExistsError, match="not a provaudit output"):
        api.build_index([str(corpus[2])], other, force=True)
    assert (other / "thesis.tex").exists()


def test_duplicate_reference_ids_are_an_error(tmp_path) -> None:
    src = tmp_path / "ref.jsonl"
    src.write_text('{"id": "a", "text": "one two three"}\n{"id": "a", "text": "four five six"}\n')
    with pytest.raises(InputError, match=r"duplicate reference id 'a' \(first at .*ref.jsonl row 1\)"):
        api.build_index([str(src)], tmp_path / "idx")


@pytest.mark.parametrize("kw", [{}, {"unit": "char", "ngram": 5, "num_perm": 64}, {"hash": "sha1", "seed": 7}])
def test_signatures_recomputed_from_sequences_equal_those_of_the_texts(corpus, tmp_path, kw) -> None:
    """Audits report estimated Jaccard from item signatures recomputed from the stored shingle
    sequences (the index stores no signatures); they must be the signatures of the texts."""
    import numpy as np

    from provaudit.index.signatures import item_signatures
    from provaudit.text.shingle import shingle_batch
    from provaudit.text.sketch import signatures

    _build(corpus[2], tmp_path / "idx", **kw)
    idx = load_index(tmp_path / "idx")
    everything = np.arange(len(idx))
    direct = signatures(shingle_batch(list(corpus[0].values()), idx.config), idx.config.num_perm, idx.config.seed)
    assert np.array_equal(item_signatures(idx, everything), direct)


def test_an_older_index_is_refused_with_a_rebuild_message(corpus, tmp_path) -> None:
    from provaudit.index.format import manifest_checksum

    dest = tmp_path / "idx"
    _build(corpus[2], dest)
    m = json.loads((dest / "manifest.json").read_text())
    for old in (4, 5, 6, 7, 8, 9):  # 9: no token_shapes; 7: no id tables; 5: the band table was always there, and the fingerprint did not say so
        m["format_version"] = old
        m["manifest_checksum"] = manifest_checksum(m)
        (dest / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(IndexFormatError, match=f"format version {old} is not supported.*rebuild the index"):
            load_index(dest)


def test_an_index_without_band_table_finds_the_same_pairs_by_anchors(tmp_path) -> None:
    """The default (no band table): 40% smaller than with --band-table; on the fixtures every reported pair is
    anchor-found, so the pairs and their exact figures are those of the full index; only
    candidate_by/candidate_probability lose LSH."""
    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    full = api.build_index([str(fixtures / "reference")], tmp_path / "full", IndexConfig(band_table=True))
    lean = api.build_index([str(fixtures / "reference")], tmp_path / "lean")
    full, lean = ({**m, "files": m["segments"][0]["files"]} for m in (full, lean))
    assert lean["files"]["band_keys.u64"]["rows"] == 0 and full["fingerprint"].endswith("-lsh")
    assert full["files"]["band_keys.u64"]["rows"] > 0 and not lean["fingerprint"].endswith("-lsh")
    verify_index(tmp_path / "lean")
    size = {k: sum(f["bytes"] for f in m["files"].values()) for k, m in (("full", full), ("lean", lean))}
    assert size["lean"] < 0.7 * size["full"]
    shards = [str(fixtures / "shards")]
    a, b = api.audit(tmp_path / "full", shards).matches, api.audit(tmp_path / "lean", shards).matches
    fixed = [c for c in a if c not in ("candidate_by", "candidate_probability")]
    assert len(a["reference_id"]) > 100
    assert {c: a[c] for c in fixed} == {c: b[c] for c in fixed}
    assert set(b["candidate_by"]) == {"anchor"} and "anchor+lsh" in set(a["candidate_by"])
    assert all(q <= p for p, q in zip(a["candidate_probability"], b["candidate_probability"]))


@pytest.mark.parametrize("seed", range(5))
def test_usable_anchors_in_steps_equal_one_pass(seed) -> None:
    """Steps end where a key ends: runs longer than a step, and steps of 1, give the one-pass counts."""
    import numpy as np

    from provaudit.index.check import usable_anchors

    rng = np.random.default_rng(seed)
    n_items = 50
    keys = np.sort(rng.choice(np.array([1, 5, 9, 2**63, 2**64 - 1], np.uint64), 400)
                   if seed % 2 else rng.integers(0, 40, 400).astype(np.uint64))
    items = rng.integers(0, n_items, len(keys)).astype(np.uint32)
    for max_postings in (1, 3, 50, 1000):
        # independent truth: count, per item, its rows whose key occurs at most max_postings times
        occurs = {k: int((keys == k).sum()) for k in set(keys.tolist())}
        truth = np.zeros(n_items, np.int64)
        for k, it in zip(keys.tolist(), items.tolist()):
            truth[it] += occurs[k] <= max_postings
        for step in (1, 2, 7, 64, 10_000):
            assert np.array_equal(usable_anchors(keys, items, n_items, max_postings, step=step), truth)


def _mapped_kb(directory: Path) -> dict[str, int]:
    """Resident kB of this process's memory maps of the files in ``directory``, by file name."""
    out: dict[str, int] = {}
    name = None
    with open("/proc/self/smaps", encoding="ascii", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and "-" in parts[0] and ":" in parts[3]:
                name = parts[5] if len(parts) >= 6 and parts[5].startswith(str(directory) + "/") else None
            elif name and line.startswith("Rss:"):
                out[Path(name).name] = out.get(Path(name).name, 0) + int(parts[1])
    return out


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="Linux /proc needed")
def test_a_small_audit_reads_the_lookup_tables_without_mapping_them(tmp_path) -> None:
    """A 1-record audit's few lookups are read with pread: on a warm page cache the kernel maps a large
    folio (up to 2 MB) around every page read through a memory map, which made a 1-record audit's RSS grow
    with the index (562 MB at 4M items, 149 MB at 200k). Pages read through a map show in smaps; reads don't.
    A large audit reads through the maps (as the other tests do), with the same answers."""
    from provaudit import api

    rng = np.random.default_rng(4)
    rows = {f"p{i}": " ".join(f"w{w}" for w in rng.integers(0, 50_000, 30)) for i in range(20_000)}
    ref = tmp_path / "ref.jsonl"
    ref.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in rows.items()))
    _build(ref, tmp_path / "idx")
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"id": "t", "text": "some words around " + rows["p123"] + " and after it"}) + "\n")
    result = api.audit(tmp_path / "idx", [str(one)])
    assert result.matches["reference_id"] == ["p123"]
    mapped = _mapped_kb(tmp_path / "idx")
    lookups = ("anchor_keys.u64", "anchor_items.u32", "anchor_dir.i64", "n_shingles.u32", "anchor_usable.u8")
    assert {n: mapped.get(n, 0) for n in lookups} == dict.fromkeys(lookups, 0)  # the verified pair's sequence may be


def test_chunks_verified_by_a_forked_worker_are_not_hashed_again_by_its_parent(corpus_index, monkeypatch) -> None:
    """The segment's verified-chunk flags live in memory shared with forked workers: a large audit hashes
    each chunk once per run, not once per worker (only flags of chunks that matched are shared)."""
    import os

    from provaudit.index import chunks

    index = load_index(corpus_index)
    f = index.segments[0].files["sequences.u64"]
    assert not f.verified.any()
    pid = os.fork()
    if pid == 0:  # the worker: verify every chunk, then leave without running the parent's cleanup
        f.ensure_all()
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert f.verified.all()
    hashed: list[int] = []
    monkeypatch.setattr(chunks.Chunked, "_check", lambda self, c: hashed.append(c))
    f.ensure_bytes(np.array([0]), np.array([f.size]))
    assert hashed == []


def test_token_shape_table_counts_every_distinct_triple() -> None:
    from collections import Counter

    from provaudit.index.check import token_shape_table

    rng = np.random.default_rng(5)
    n, d, u = rng.integers(0, 40, 5000), rng.integers(0, 30, 5000), rng.integers(0, 17, 5000)
    got = token_shape_table(n.astype(np.uint32), d.astype(np.uint32), u.astype(np.uint8))
    want = sorted((a, b, c, k) for (a, b, c), k in Counter(zip(n.tolist(), d.tolist(), u.tolist())).items())
    assert got.tolist() == [list(r) for r in want]
    assert token_shape_table(np.zeros(0), np.zeros(0), np.zeros(0)).shape == (0, 4)
