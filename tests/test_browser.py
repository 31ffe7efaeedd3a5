"""report.html in a real browser: Debian's headless chromium driven over the DevTools protocol (scripts/cdp.py).

The page must render its headline, plots and evidence table, expand a row on a real mouse
click to show the highlighted shared span, and log no console error (a blocked script or
style would: CSP violations are console errors). A report built from hostile ids and texts
must run no injected script. .ci/run installs chromium; without it these tests skip, naming why.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from test_report import hostile, fixture_audit  # noqa: F401  (module fixtures reused)

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("cdp", ROOT / "scripts" / "cdp.py")
assert _spec is not None and _spec.loader is not None
cdp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cdp)

pytestmark = pytest.mark.skipif(cdp.find_browser() is None,
                                reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")


@pytest.fixture(scope="module")
def browser():
    with cdp.Browser() as b:
        yield b


def test_report_renders_and_a_row_expands_to_highlighted_spans(browser, fixture_audit: Path) -> None:  # noqa: F811
    browser.events.clear()
    browser.open(fixture_audit / "audit" / "report.html")
    assert "contain material from the reference corpus" in browser.eval(
        "document.querySelector('[data-headline]').innerText")
    assert browser.eval("document.querySelectorAll('figure.plot svg rect.bar').length") > 10
    assert browser.eval("document.querySelector('figure.plot svg').getBoundingClientRect().height") > 100
    assert browser.eval("document.querySelectorAll('table.evidence tr.pair').length") == 300
    assert browser.eval("document.querySelector('tr.detail').getBoundingClientRect().height") == 0
    browser.click("tr.pair button.toggle")
    assert browser.eval("document.querySelector('tr.detail').hidden") is False
    marks = browser.eval("[...document.querySelector('tr.detail').querySelectorAll('mark')].map(m => m.innerText)")
    assert len(marks) >= 2 and all(m.strip() for m in marks)  # the span in both texts
    assert browser.eval("document.querySelector('tr.detail mark').getBoundingClientRect().height") > 0
    # sorting by a column and filtering work
    browser.click("th[data-col='5']")
    rows = browser.eval("[...document.querySelectorAll('tr.pair td:nth-child(6)')].map(td => Number(td.dataset.v))")
    assert rows == sorted(rows, reverse=True)
    browser.eval("const f = document.querySelector('input[type=search]'); f.value = 'train-02';"
                 "f.dispatchEvent(new Event('input'))")
    shown = browser.eval("[...document.querySelectorAll('tr.pair')].filter(r => !r.hidden).map(r => r.innerText)")
    assert shown and all("train-02" in r for r in shown)
    assert browser.errors == []


def test_hostile_report_runs_no_injected_script(browser, hostile: Path) -> None:  # noqa: F811
    browser.events.clear()
    browser.open(hostile / "out" / "report.html")
    for i in range(len(list(browser.eval("[...document.querySelectorAll('button.toggle')].map(b => 1)")))):
        browser.eval(f"document.querySelectorAll('button.toggle')[{i}].click()")
    assert browser.eval("typeof window.__pwned") == "undefined"
    assert browser.eval("document.scripts.length") == 1
    assert browser.eval("document.querySelectorAll('img, iframe, object, embed, [onerror], [onmouseover], "
                        "a[href^=javascript]').length") == 0
    assert "<script>window.__pwned" in browser.eval("document.body.innerText")  # shown as text
    assert browser.errors == []


def test_policy_blocks_a_script_that_got_in(browser, hostile: Path, tmp_path: Path) -> None:  # noqa: F811
    """Defence in depth: were escaping ever to fail, the Content-Security-Policy still blocks the script."""
    page = (hostile / "out" / "report.html").read_text(encoding="utf-8")
    bad = tmp_path / "bad.html"
    bad.write_text(page.replace("<body>", "<body><script>window.__pwned = 1</script>", 1), encoding="utf-8")
    browser.events.clear()
    browser.open(bad)
    assert browser.eval("typeof window.__pwned") == "undefined"
    assert any("Content Security Policy" in e for e in browser.errors)
    shutil.rmtree(tmp_path, ignore_errors=True)
