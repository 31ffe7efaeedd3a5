"""The public API: everything in provaudit.__all__ exists, is documented, and composes into a real audit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import provaudit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_every_public_name_resolves_and_has_a_docstring() -> None:
    assert len(set(provaudit.__all__)) == len(provaudit.__all__)
    for name in provaudit.__all__:
        obj = getattr(provaudit, name)
        if name != "__version__":
            assert (obj.__doc__ or "").strip(), name
    assert set(provaudit.__all__) <= set(dir(provaudit))


def test_importing_provaudit_does_not_load_the_engine() -> None:
    code = "import sys, provaudit; print('provaudit.api' in sys.modules, 'pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_python_api_audit_equals_the_golden_counts(tmp_path: Path) -> None:
    idx = tmp_path / "ref.idx"
    manifest = provaudit.build_index([str(FIXTURES / "reference")], idx)
    assert manifest["counts"]["items"] == 3000
    result = provaudit.audit(idx, [str(FIXTURES / "shards")])
    assert isinstance(result, provaudit.AuditResult)
    report = provaudit.write_audit(result, tmp_path / "out")
    # the same figures as the CLI's golden report (fixtures/golden/audit.report.json)
    assert report["counts"]["pairs"] == 864 and report["counts"]["target_records"] == 6000
    assert len(result.matches["reference_id"]) == 864


def test_the_readme_python_api_example_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    import re

    readme = (FIXTURES.parent / "README.md").read_text(encoding="utf-8")
    code = re.search(r"## Python API.*?```python\n(.*?)```", readme, re.S)
    assert code is not None
    (tmp_path / "fixtures").symlink_to(FIXTURES, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "fixtures/shards/train-00.jsonl" in printed and "'method': 'wilson (finite population)'" in printed
    assert printed.endswith("\n2\n2998 1\n")  # the segment operations: 2 removed, then one segment of 2,998
    assert (tmp_path / "audit-out" / "report.json").is_file() and (tmp_path / "outputs-out" / "samples.parquet").is_file()


def test_check_is_public_and_gates_on_limits(tmp_path: Path) -> None:
    idx = tmp_path / "ref.idx"
    provaudit.build_index([str(FIXTURES / "reference")], idx)
    shard = str(FIXTURES / "shards" / "train-00.jsonl")
    strict = provaudit.check(idx, [shard])  # default limits: any evidence pair fails
    assert isinstance(strict, provaudit.Verdict) and not strict.passed
    n = strict.counted_pairs
    assert n == sum(1 for _, status in strict.pairs() if status == "counted")  # read again
    assert n > 0 and [r.passed for r in strict.limits] == [False]
    # the same audit through the other public functions counts the same evidence pairs
    table = provaudit.audit(idx, [shard]).matches
    assert n == sum(1 for flag in table["item_flag"] if not flag)
    assert provaudit.check(idx, [shard], limits=provaudit.Limits(max_pairs=n)).passed
    assert not provaudit.check(idx, [shard], limits=provaudit.Limits(max_pairs=n - 1)).passed
