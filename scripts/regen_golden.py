"""Regenerate fixtures/golden/: the reports provaudit writes on the shipped fixtures.

Usage:
    python scripts/regen_golden.py          # rewrite fixtures/golden/
    python scripts/regen_golden.py --check  # exit 1 if any golden file differs

Each scenario runs the CLI in-process from a scratch directory that links ``fixtures/``,
so that every path in a report is relative and the same on every machine. The fields that
depend on installed packages (``versions``, and Parquet bytes: their footer names the writer's
version) are masked; everything else must be byte-identical
(tests/test_golden.py compares). Review each diff of fixtures/golden/ like code.
"""

from __future__ import annotations

import html
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
GOLDEN = FIXTURES / "golden"
MASK = "<masked>"

# (name, provaudit arguments, files of the output directory to keep)
SCENARIOS: list[tuple[str, list[str], list[str]]] = [
    ("index", ["index", "fixtures/reference", "-o", "ref.idx", "-w", "2"], ["manifest.json"]),
    ("audit", ["audit", "ref.idx", "fixtures/shards", "-o", "audit", "-w", "2", "--html-pairs", "25"],
     ["report.json", "report.md", "report.html", "matches.parquet"]),
    ("audit_sampled", ["audit", "ref.idx", "fixtures/shards", "-o", "audit_sampled", "--sample", "30%", "--seed", "3",
                       "--control", "fixtures/outputs/plain.jsonl", "-w", "1", "--html-pairs", "25"],
     ["report.json", "report.md", "report.html", "matches.parquet", "sample.parquet"]),
    ("outputs", ["audit", "ref.idx", "fixtures/outputs/chat.jsonl", "fixtures/outputs/prompt_completion.jsonl",
                 "fixtures/outputs/plain.jsonl", "--kind", "outputs", "-o", "outputs", "-w", "2", "--html-pairs", "25"],
     ["report.json", "report.md", "report.html", "matches.parquet", "samples.parquet"]),
]


# Values that depend on the installed packages, not on provaudit: their versions, and the bytes
# of Parquet files (their footer names the writing library's version), with what hashes them.
# The date of a run (report.json ``reproduce.date``) is masked too, and every one of these values
# is masked where report.md and report.html print it.
MASKED_KEYS = ("versions", "manifest_sha256", "manifest_checksum", "date")


def _mask(obj: Any, key: str = "") -> Any:
    """``obj`` with the values of ``MASKED_KEYS``, and the checksums/size of Parquet files (and of the
    index's checksum lists, which cover them, and of its segments' names, which start with them), masked."""
    if isinstance(obj, dict):
        if key.endswith(".parquet"):
            return {k: (MASK if k in ("sha256", "bytes", "chunks_sha256") else _mask(v, k)) for k, v in obj.items()}
        if key == "checksums":
            return {k: (MASK if k == "sha256" else _mask(v, k)) for k, v in obj.items()}
        if str(obj.get("name", "")).startswith("seg-"):  # an index segment: its name
            obj = {**obj, "name": str(obj["name"])[:11] + MASK}  # ends with its checksum root's start
        return {k: (MASK if k in MASKED_KEYS else _mask(v, k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_mask(v) for v in obj]
    return obj


def _printed_masks(report: dict[str, Any]) -> list[str]:
    """How the masked values of ``report`` appear in report.md/html: the date, versions and manifest sha256."""
    from provaudit.report.content import reproduce

    r = reproduce(report)
    return [v for v in (r["date"], r["versions"], report["index"]["manifest_sha256"]) if v]


def _canonical(path: Path) -> str:
    """A file as golden text: JSON re-dumped with masked values, Parquet as JSON lines, text with masked values."""
    if path.suffix == ".json":
        return json.dumps(_mask(json.loads(path.read_text(encoding="utf-8"))), indent=2, sort_keys=True,
                          ensure_ascii=False) + "\n"
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        lines = [json.dumps({"schema": [f"{f.name}: {f.type}" for f in table.schema]})]
        lines += [json.dumps(row, sort_keys=True, ensure_ascii=False) for row in table.to_pylist()]
        return "\n".join(lines) + "\n"
    text = path.read_text(encoding="utf-8")
    if path.name in ("report.md", "report.html"):
        for value in _printed_masks(json.loads((path.parent / "report.json").read_text(encoding="utf-8"))):
            text = text.replace(value, MASK).replace(html.escape(value), MASK)
    return text


@contextmanager
def _chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def make_golden() -> dict[str, str]:
    """Run every scenario; return {golden file name: content}."""
    from click.testing import CliRunner

    from provaudit.cli import cli

    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="provaudit-golden-") as tmp:
        work = Path(tmp)
        (work / "fixtures").symlink_to(FIXTURES, target_is_directory=True)
        with _chdir(work):
            for name, args, keep in SCENARIOS:
                res = CliRunner().invoke(cli, [*args, "-q"], catch_exceptions=False)
                if res.exit_code != 0:
                    raise RuntimeError(f"{name}: provaudit {' '.join(args)} exited {res.exit_code}: {res.output}")
                dest = Path(args[args.index("-o") + 1])
                for f in keep:
                    ext = ".jsonl" if f.endswith(".parquet") else Path(f).suffix
                    out[f"{name}.{Path(f).stem}{ext}"] = _canonical(dest / f)
    return out


def main(argv: list[str]) -> int:
    golden = make_golden()
    if "--check" in argv:
        bad = [n for n, text in golden.items() if not (GOLDEN / n).is_file() or (GOLDEN / n).read_text("utf-8") != text]
        for n in bad:
            print(f"differs: fixtures/golden/{n}")
        return 1 if bad else 0
    GOLDEN.mkdir(exist_ok=True)
    for n, text in sorted(golden.items()):
        (GOLDEN / n).write_text(text, encoding="utf-8")
        print(f"wrote fixtures/golden/{n} ({len(text):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
