"""provaudit.fs.arrow builds the same arrays as pyarrow's own conversions, without importing pandas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from provaudit.fs import arrow

CASES = [
    (pa.string(), ["a", "", "héllo wörld ✓", None, "😀"]),
    (pa.large_string(), ["x" * 1000, None, ""]),
    (pa.string(), []),
    (pa.int64(), [1, -2, 2**62, None, 0]),
    (pa.int32(), [7, 8]),
    (pa.uint32(), [0, 2**32 - 1]),
    (pa.uint64(), [2**64 - 1, None]),
    (pa.float64(), [0.1, -1e300, None, 3.0]),
    (pa.bool_(), [True, False, None, True, True, False, True, False, True]),
    (pa.int64(), []),
]


@pytest.mark.parametrize(("typ", "values"), CASES)
def test_array_equals_pyarrow(typ: pa.DataType, values: list[object]) -> None:
    ours = arrow.array(values, typ)
    ours.validate(full=True)
    assert ours.equals(pa.array(values, typ))
    assert ours.to_pylist() == values


def test_numpy_vectors_are_wrapped_and_read_back() -> None:
    v = np.arange(10, dtype=np.uint64) * np.uint64(3)
    a = arrow.array(v, pa.uint64())
    assert a.equals(pa.array(v))
    assert np.array_equal(arrow.to_numpy(a, np.uint64), v)
    assert np.array_equal(arrow.to_numpy(a.slice(3, 4), np.uint64), v[3:7])
    chunked = pa.chunked_array([a.slice(0, 5), a.slice(5)])
    assert np.array_equal(arrow.to_numpy(chunked, np.uint64), v)
    with pytest.raises(ValueError, match="nulls"):
        arrow.to_numpy(arrow.array([1, None], pa.int64()), np.int64)
    with pytest.raises(TypeError):
        arrow.array([[1]], pa.list_(pa.int64()))


def test_tables_equal_pyarrow_and_round_trip_parquet(tmp_path) -> None:
    schema = pa.schema([("id", pa.string()), ("n", pa.int64()), ("x", pa.float64())])
    rows = [{"id": "a", "n": 1, "x": 0.5}, {"id": None, "n": None, "x": 2.0}]
    ours = arrow.table_of_rows(rows, schema)
    assert ours.equals(pa.Table.from_pylist(rows, schema=schema))
    import pyarrow.parquet as pq

    pq.write_table(ours, tmp_path / "t.parquet")
    assert arrow.read_table(tmp_path / "t.parquet").to_pylist() == rows
    assert arrow.read_table(tmp_path / "t.parquet", columns=["n"]).to_pylist() == [{"n": 1}, {"n": None}]


def test_index_and_audit_do_not_import_pandas(tmp_path) -> None:
    """pandas costs every run 0.2 s and ~45 MB; the index and audit commands must not load it."""
    code = f"""
import sys
from click.testing import CliRunner
from provaudit.cli import cli
r = CliRunner()
res = r.invoke(cli, ["index", "fixtures/reference", "-o", {str(tmp_path / "idx")!r}, "-q"])
assert res.exit_code == 0, res.output
res = r.invoke(cli, ["audit", {str(tmp_path / "idx")!r}, "fixtures/shards", "-o", {str(tmp_path / "out")!r}, "-q"])
assert res.exit_code == 0, res.output
res = r.invoke(cli, ["audit", {str(tmp_path / "idx")!r}, "fixtures/shards", "-o", {str(tmp_path / "s")!r}, "-q",
                     "--sample", "0.5"])
assert res.exit_code == 0, res.output
print(sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "datasets")))
"""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_python_string_order_is_arrows_sort_order() -> None:
    """report.matches_table sorts in Python (no pyarrow.compute import); it must order as Arrow would."""
    import random

    import pyarrow.compute as pc

    rng = random.Random(7)
    alphabet = ["a", "Z", "z", "é", "É", "\u00ff", "\u0100", "\uffef", "\uff5e", "😀", "𝔘", "0", " ", "~", "\x7f"]
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4))) for _ in range(3000)]
    arrow_order = pa.array(values).take(pc.sort_indices(pa.array(values))).to_pylist()
    assert sorted(values) == arrow_order
