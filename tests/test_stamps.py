"""Verified stamps (``index.stamps``): a file hashed whole by an earlier run is not hashed again, unless it changed."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import seg
from provaudit import api
from provaudit.errors import IndexFormatError
from provaudit.index import chunks, stamps
from provaudit.index.check import verify_index
from provaudit.index.format import load_index


@pytest.fixture
def stamped(corpus, tmp_path, monkeypatch) -> Path:
    """An index whose files are old enough to be stamped, every file stamped (by ``verify``)."""
    monkeypatch.setenv("PROVAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(stamps, "MIN_CHUNKS", 1)
    monkeypatch.setattr(stamps, "SETTLED", 0.5)
    api.build_index([str(corpus[2])], tmp_path / "idx")
    time.sleep(0.6)
    verify_index(tmp_path / "idx")
    return tmp_path / "idx"


def _hashed(monkeypatch) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    real = chunks.Chunked._check

    def check(self, c):
        seen.append((self.path.name, c))
        real(self, c)

    monkeypatch.setattr(chunks.Chunked, "_check", check)
    return seen


def test_a_stamped_index_is_audited_without_hashing_and_gives_the_same_result(stamped, corpus, tmp_path,
                                                                              monkeypatch) -> None:
    files = [f for f in load_index(stamped).segments[0].files.values() if f.size]
    assert files and all(f.stamp is not None and f.stamp.valid and f.complete for f in files)
    assert len(list((tmp_path / "cache" / "verified").iterdir())) == len(files)
    monkeypatch.setenv("PROVAUDIT_VERIFY_CACHE", "0")
    plain = api.audit(stamped, [str(corpus[3])])
    monkeypatch.delenv("PROVAUDIT_VERIFY_CACHE")
    seen = _hashed(monkeypatch)
    assert api.audit(stamped, [str(corpus[3])]).matches == plain.matches
    assert seen == []


def test_a_file_changed_in_place_or_replaced_is_hashed_again_and_refused(stamped, corpus, tmp_path, monkeypatch) -> None:
    name = "anchor_items.u32"
    path = seg(stamped) / name
    with open(path, "r+b") as f:  # in place: same inode and size, a new change time
        f.seek(5)
        byte = f.read(1)
        f.seek(5)
        f.write(bytes([byte[0] ^ 0x10]))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns - 10**10))  # mtime set back: no help
    index = load_index(stamped)
    files = index.segments[0].files
    assert not files[name].stamp.valid and not files[name].complete
    assert all(f.stamp.valid for n, f in files.items() if n != name and f.size)
    with pytest.raises(IndexFormatError, match=f"{name}: bytes .* do not match their checksum"):
        files[name].ensure_all()
    other = "sequences.u64"
    copy = tmp_path / "copy"
    shutil.copyfile(seg(stamped) / other, copy)
    os.replace(copy, seg(stamped) / other)  # the same bytes, another inode: not trusted, hashed (and equal)
    seen = _hashed(monkeypatch)
    f = load_index(stamped).segments[0].files[other]
    assert not f.stamp.valid
    f.ensure_all()
    assert {c for n, c in seen if n == other} == set(range(len(f.digests)))


def test_verify_hashes_every_byte_whatever_the_stamps_say(stamped, monkeypatch) -> None:
    """A stamp forged for a tampered file (the cache is trusted by audits, not by verify)."""
    name = "sequences.u64"
    path = seg(stamped) / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    f = load_index(stamped).segments[0].files[name]
    assert f.stamp is not None and not f.stamp.valid
    st = path.stat()
    f.stamp.path.write_text(json.dumps({"version": 1, "identity": [st.st_size, st.st_mtime_ns, st.st_ctime_ns]}))
    assert load_index(stamped).segments[0].files[name].stamp.valid  # the forged stamp is believed by audits
    with pytest.raises(IndexFormatError, match=name):
        verify_index(stamped)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"version": 1, "identity": ["a"]}', b"\xff" * 5000,
                                     b'{"version": 2, "identity": [1, 2, 3]}'])
def test_an_unreadable_stamp_is_ignored(stamped, content, monkeypatch) -> None:
    files = load_index(stamped).segments[0].files
    for f in files.values():
        if f.stamp is not None and f.stamp.path is not None:
            f.stamp.path.write_bytes(content)
    seen = _hashed(monkeypatch)
    again = load_index(stamped).segments[0].files
    # a file valid now was read whole while the segment was opened (shapes.i64, a one-chunk seq_offsets.i64):
    # hashed, found intact and stamped anew; every other one lost its stamp
    for name, f in again.items():
        if f.stamp is not None and f.stamp.valid:
            assert {c for n, c in seen if n == name} == set(range(len(f.digests))), name
    assert any(f.stamp is not None and not f.stamp.valid for f in again.values())
    for f in again.values():
        f.ensure_all()  # hashed, found intact, stamped again
    assert all(f.stamp.valid for f in load_index(stamped).segments[0].files.values() if f.stamp is not None and f.size)


def test_no_stamp_is_written_for_a_file_changed_moments_before_it_was_opened(corpus, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROVAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(stamps, "MIN_CHUNKS", 1)
    api.build_index([str(corpus[2])], tmp_path / "idx")
    verify_index(tmp_path / "idx")  # the files are seconds old at most: a change in the same tick could hide
    assert not (tmp_path / "cache" / "verified").exists()
    monkeypatch.setenv("PROVAUDIT_VERIFY_CACHE", "0")
    assert stamps.stamp_dir() is None
    assert np.all([f.stamp.path is None for f in load_index(tmp_path / "idx").segments[0].files.values()
                   if f.stamp is not None])
