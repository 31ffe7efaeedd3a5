"""Screenshot of report.html on the shipped fixtures (docs/report-screenshot.png, shown in the README).

Usage:
    python scripts/screenshot_report.py [OUT.png]

Audits the fixtures in a scratch directory (relative paths, as in the golden files), opens
report.html in headless chromium (scripts/cdp.py), expands the strongest pair and captures
the page from the headline down to that pair's side-by-side texts.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    from click.testing import CliRunner

    from provaudit.cli import cli

    spec = importlib.util.spec_from_file_location("cdp", ROOT / "scripts" / "cdp.py")
    assert spec is not None and spec.loader is not None
    cdp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cdp)
    dest = Path(argv[0]) if argv else ROOT / "docs" / "report-screenshot.png"
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        (Path(tmp) / "fixtures").symlink_to(ROOT / "fixtures", target_is_directory=True)
        for args in (["index", "fixtures/reference", "-o", "ref.idx", "-q"],
                     ["audit", "ref.idx", "fixtures/shards", "-o", "audit", "-q", "--html-pairs", "20"]):
            assert CliRunner().invoke(cli, args).exit_code == 0
        with cdp.Browser(1280, 900) as b:
            b.open(Path(tmp) / "audit" / "report.html")
            b.click("#pair-0-2 button.toggle")
            bottom = b.eval("window.scrollY + document.querySelector('#pair-0-2').nextElementSibling"
                            ".getBoundingClientRect().bottom")
            b.screenshot(dest, int(bottom) + 16)
            assert b.errors == [], b.errors
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
