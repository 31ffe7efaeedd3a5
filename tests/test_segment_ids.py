"""Issue #11 (scale): ``add`` and ``remove`` find ids through each segment's stored id hashes.

Duplicates and removals must be found exactly as by comparing every id (brute force), also when
hashes collide (forced here by a hash of 3 bits); a hostile id table is refused before use.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import xxhash

from conftest import seg, write_jsonl
from provaudit import api
from provaudit.api_segments import add_to_index, remove_from_index
from provaudit.errors import IndexFormatError, InputError
from provaudit.index import keytable
from provaudit.index.format import Index, load_index
from provaudit.index.segments import items_of_ids
from test_hostile_index import reseal

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()


def _texts(rng: random.Random, ids: list[str]) -> dict[str, str]:
    return {i: " ".join(rng.choice(WORDS) for _ in range(12)) for i in ids}


def _few_bits(item_id: str) -> int:  # 8 hash values: almost every id collides with others
    return int(xxhash.xxh3_64_intdigest(item_id.encode("utf-8", "surrogatepass")) & 7) << 61


@pytest.mark.parametrize("seed", range(6))
def test_duplicates_and_removals_are_found_as_by_brute_force_despite_hash_collisions(
        tmp_path, monkeypatch, seed) -> None:
    monkeypatch.setattr(keytable, "_id_hash", _few_bits)
    rng = random.Random(seed)
    pool = [f"id-{n}" for n in range(60)]
    first = rng.sample(pool, 25)
    idx = tmp_path / "idx"
    api.build_index([str(write_jsonl(tmp_path / "a.jsonl", _texts(rng, first)))], idx)
    second = rng.sample([p for p in pool if p not in first], 10)
    add_to_index(idx, [str(write_jsonl(tmp_path / "b.jsonl", _texts(rng, second)))])
    live = set(first) | set(second)
    gone = rng.sample(sorted(live), 6)
    (tmp_path / "gone.txt").write_text("\n".join([*gone, "id-999"]) + "\n")
    assert remove_from_index(idx, tmp_path / "gone.txt").not_found == ["id-999"]
    live -= set(gone)
    index = load_index(idx)
    every = index.ids.to_pylist()
    wanted = rng.sample(pool, 30)
    items, missing = items_of_ids(index, wanted)
    truth = sorted(i for i, v in enumerate(every) if v in wanted and not index.is_removed(np.array([i]))[0])
    assert items.tolist() == truth and missing == [w for w in wanted if w not in live]
    # neither add nor remove reads every id of the index (only those whose hash is a query's)
    monkeypatch.setattr(Index, "ids", property(lambda self: pytest.fail("read every id of the index")))
    assert items_of_ids(index, wanted)[0].tolist() == truth
    for k in range(4):  # adds: refused naming the first live id (removed ids may come back), else accepted
        new = rng.sample(pool, 5)
        src = write_jsonl(tmp_path / f"c{k}.jsonl", _texts(rng, new))
        dups = [n for n in new if n in live]
        if dups:
            with pytest.raises(InputError, match=rf"row {new.index(dups[0]) + 1}: reference id '{dups[0]}' is already"):
                add_to_index(idx, [str(src)])
        else:
            add_to_index(idx, [str(src)])
            live |= set(new)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("ids")
    rng = random.Random(5)
    ids = [f"r{n}" for n in range(200)]
    api.build_index([str(write_jsonl(d / "a.jsonl", _texts(rng, ids)))], d / "idx")
    return d / "idx", d


def _hostile(small, tmp_path, change) -> Path:
    idx = shutil.copytree(small[0], tmp_path / "idx")
    change(seg(idx))
    reseal(idx)
    return idx


def _add_and_remove_refused(idx: Path, d: Path, tmp_path: Path, what: str) -> None:
    src = write_jsonl(tmp_path / "new.jsonl", {f"r{n}": "a new text of some words" for n in range(0, 200, 7)})
    with pytest.raises(IndexFormatError, match=what):
        add_to_index(idx, [str(src)])
    (tmp_path / "gone.txt").write_text("".join(f"r{n}\n" for n in range(200)))
    with pytest.raises(IndexFormatError, match=what):
        remove_from_index(idx, tmp_path / "gone.txt")


def test_an_id_table_with_unsorted_keys_is_refused(small, tmp_path) -> None:
    def swap(s: Path) -> None:
        k = np.fromfile(s / "id_keys.u64", "<u8")
        j = int(np.flatnonzero((k[1:] >> np.uint64(63)) == (k[:-1] >> np.uint64(63)))[0])
        k[[j, j + 1]] = k[[j + 1, j]]
        k.tofile(s / "id_keys.u64")
    _add_and_remove_refused(_hostile(small, tmp_path, swap), small[1], tmp_path, "id_keys.u64: corrupt or hostile")


def test_an_id_table_with_out_of_range_items_is_refused(small, tmp_path) -> None:
    def big(s: Path) -> None:
        it = np.fromfile(s / "id_items.u32", "<u4")
        it[:] = 200
        it.tofile(s / "id_items.u32")
    _add_and_remove_refused(_hostile(small, tmp_path, big), small[1], tmp_path, "id_items.u32: corrupt or hostile")


def test_an_id_table_with_wrong_sizes_is_refused(small, tmp_path) -> None:
    def short(s: Path) -> None:
        it = np.fromfile(s / "id_items.u32", "<u4")
        it[:-1].tofile(s / "id_items.u32")
    idx = shutil.copytree(small[0], tmp_path / "idx")
    short(seg(idx))
    m = json.loads((idx / "manifest.json").read_text())
    f = m["segments"][0]["files"]["id_items.u32"]
    f["bytes"], f["rows"] = f["bytes"] - 4, f["rows"] - 1
    reseal(idx, m)
    with pytest.raises(IndexFormatError, match="id_items.u32 has 199 rows, expected 200"):
        load_index(idx)
    def bad_dir(s: Path) -> None:
        d = np.fromfile(s / "id_dir.i64", "<i8")
        d[1] = 10_000
        d.tofile(s / "id_dir.i64")
    _add_and_remove_refused(_hostile(small, tmp_path / "d", bad_dir), small[1], tmp_path, "id_dir.i64: corrupt or hostile")
