"""Readable reports (report.md, report.html), `provaudit report`, the bundle and `provaudit verify`."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import FIXTURES, simple_tokens, write_jsonl
from provaudit.cli import cli
from provaudit.report import html as html_report
from provaudit.report.bundle import recorded_argv
from provaudit.report.common import html, md, pct, visible
from provaudit.report.evidence import shared_marks
from provaudit.report.render import render_saved

WORDS = ("quiet harbor lanterns drift over salt marsh while herons wait beside broken piers and the tide "
         "turns slowly under a pale morning sky full of gulls").split()
HOSTILE_IDS = ['<script>window.__pwned=1</script>', 'x|y*[z](javascript:alert(1))', "\x1b[31mred\x1b[0m",
               "a\u202egnp.exe", '"><img src=x onerror="window.__pwned=2">']


def run(*args: object) -> object:
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return r


def hostile_corpus(d: Path) -> tuple[Path, Path]:
    """Reference items and target records whose ids and texts try to inject script or break formatting."""
    refs, targets = {}, {}
    for i, rid in enumerate(HOSTILE_IDS):
        body = " ".join(WORDS[i:] + WORDS[:i])
        refs[rid] = f"<script>window.__pwned={i + 10}</script> {body} </pre><b onmouseover=x>|"
        targets[f"t{i}{rid}"] = f"intro words here {refs[rid]} <a href=\"javascript:alert(1)\">link</a> end"
    return write_jsonl(d / "ref.jsonl", refs), write_jsonl(d / "targets.jsonl", targets)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    ref, tgt = hostile_corpus(d)
    assert run("index", ref, "-o", d / "ref.idx", "-q").exit_code == 0
    r = run("audit", d / "ref.idx", tgt, "-o", d / "out", "-q", "-w", "1", "--kind", "training")
    assert r.exit_code == 0, r.output
    return d


@pytest.fixture(scope="module")
def fixture_audit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped fixtures, audited from copies (so tests may change them)."""
    d = tmp_path_factory.mktemp("fx")
    shutil.copytree(FIXTURES / "shards", d / "shards")
    shutil.copytree(FIXTURES / "reference", d / "reference")
    assert run("index", d / "reference", "-o", d / "ref.idx", "-q").exit_code == 0
    assert run("audit", d / "ref.idx", d / "shards", "-o", d / "audit", "-q", "-w", "1").exit_code == 0
    return d


def test_numbers_are_rounded_for_people() -> None:
    assert [pct(x) for x in (0.1338333333, 0.03486468605, 0.00939561, 0.000094, 0.0, 1.0, 0.9999, 1e-9, None)] == \
        ["13.4%", "3.49%", "0.94%", "0.0094%", "0%", "100%", ">99.9%", "<0.0001%", "n/a"]


def test_untrusted_text_is_escaped_for_html_markdown_and_view() -> None:
    assert html('<script>"x"</script>') == "&lt;script&gt;&quot;x&quot;&lt;/script&gt;"
    assert visible("a\u202eb\x1b[2J") == "a\u2039U+202E\u203ab\u2039U+001B\u203a[2J"
    cell = md("a|b\nc <b>[x](javascript:y) `z`")
    assert "|" not in cell.replace("\\|", "") and "\n" not in cell and "<b>" not in cell and "](" not in cell.replace("\\](", "")
    assert "`" not in cell.replace("\\`", "")


def _brute_marks(a: str, b: str, n: int) -> set[str]:
    """Tokens of ``a`` inside an n-gram of ``b`` (independent tokenizer: ASCII only)."""
    ta, tb = simple_tokens(a), simple_tokens(b)
    grams = {tuple(tb[i : i + n]) for i in range(len(tb) - n + 1)}
    return {ta[k] for i in range(len(ta) - n + 1) if tuple(ta[i : i + n]) in grams for k in range(i, i + n)}


@pytest.mark.parametrize("seed", range(5))
def test_shared_marks_cover_exactly_the_shared_ngrams(seed: int) -> None:
    import random

    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(12)]
    a = " ".join(rng.choice(vocab) for _ in range(60))
    b = " ".join(rng.choice(vocab) for _ in range(40)) + " " + " ".join(a.split()[10:25])
    ma, mb = shared_marks(a, b, 3)
    marked_a = {t for s, e in ma for t in simple_tokens(a[s:e])}
    assert marked_a == _brute_marks(a, b, 3)
    assert {t for s, e in mb for t in simple_tokens(b[s:e])} == _brute_marks(b, a, 3)


def test_html_is_self_contained_with_a_strict_policy(fixture_audit: Path) -> None:
    page = (fixture_audit / "audit" / "report.html").read_text(encoding="utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src &#x27;none&#x27;" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.count("<script>") == 1 and page.count("<style>") == 1
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing fetched from the network
    assert "<svg" in page and 'class="bar"' in page and "<mark>" in page
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert html_report._hash(scripts[0]).strip("'") in policy.replace("&#x27;", "")


def test_html_shows_both_texts_with_shared_spans(fixture_audit: Path) -> None:
    report = json.loads((fixture_audit / "audit" / "report.json").read_text())
    top = report["top_evidence"][0]
    page = (fixture_audit / "audit" / "report.html").read_text(encoding="utf-8")
    ref_text = next(json.loads(line)["text"] for line in (fixture_audit / "reference" / "posts.jsonl").open()
                    if json.loads(line)["id"] == top["reference_id"])
    first_words = " ".join(ref_text.split()[:4])
    assert html(first_words) in page.replace("<mark>", "").replace("</mark>", "")
    md_text = (fixture_audit / "audit" / "report.md").read_text(encoding="utf-8")
    assert "**1. " in md_text and "*Reference item*" in md_text


def test_hostile_ids_and_texts_are_escaped_everywhere(hostile: Path) -> None:
    page = (hostile / "out" / "report.html").read_text(encoding="utf-8")
    body = page.split("<script>")[0]
    assert "<script>window" not in page and "onerror=" not in body.replace("onerror=&quot;", "")
    assert "<img" not in body and "<b onmouseover" not in body and 'href="javascript' not in body
    assert "\x1b" not in page and "\u202e" not in page
    md_text = (hostile / "out" / "report.md").read_text(encoding="utf-8")
    assert "<script>" not in md_text and "\x1b" not in md_text and "\u202e" not in md_text
    rows = [r for r in md_text.splitlines() if r.startswith("| 1 | ")]
    assert rows and all(len(re.split(r"(?<!\\)\|", r)) == 10 for r in rows)  # 8 cells: no cell broken open


def test_report_without_text_says_so_and_shows_positions(fixture_audit: Path, tmp_path: Path) -> None:
    moved = tmp_path / "fx"
    shutil.copytree(fixture_audit, moved, symlinks=True)
    # the reference sources the index records are gone: no text for reference items
    shutil.rmtree(fixture_audit / "reference")
    try:
        page = render_saved([fixture_audit / "audit"], "html", html_pairs=5)
    finally:
        shutil.copytree(moved / "reference", fixture_audit / "reference")
    assert "No text: the index holds no text (built without --keep-text)" in page
    assert page.count("<mark>") == 0 and "row 2800" in page


def test_changed_target_file_is_not_shown(fixture_audit: Path, tmp_path: Path) -> None:
    f = fixture_audit / "shards" / "train-00.jsonl"
    saved = f.read_bytes()
    f.write_bytes(saved.replace(b"a", b"A", 1))
    try:
        text = render_saved([fixture_audit / "audit"], "md", html_pairs=5)
    finally:
        f.write_bytes(saved)
    assert "train-00.jsonl changed since the audit (sha256 differs): its text is not shown" in text


def test_keep_text_index_gives_reference_text_without_sources(tmp_path: Path) -> None:
    ref, tgt = hostile_corpus(tmp_path)
    assert run("index", ref, "-o", tmp_path / "k.idx", "--keep-text", "-q").exit_code == 0
    ref.unlink()
    assert run("audit", tmp_path / "k.idx", tgt, "-o", tmp_path / "out", "-q", "--kind", "training").exit_code == 0
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "No text" not in page and "<mark>" in page


def test_report_command_combines_training_and_outputs(fixture_audit: Path, tmp_path: Path) -> None:
    outs = tmp_path / "outputs"
    files = [FIXTURES / "outputs" / f for f in ("chat.jsonl", "prompt_completion.jsonl")]
    assert run("audit", fixture_audit / "ref.idx", *files, "-o", outs, "--kind", "outputs", "-q").exit_code == 0
    r = run("report", outs, fixture_audit / "audit", "-o", tmp_path / "both.html", "--html-pairs", "10")
    assert r.exit_code == 0, r.output
    page = (tmp_path / "both.html").read_text(encoding="utf-8")
    assert page.index("Training-data audit</h2>") < page.index("Model-output audit</h2>")
    assert page.count("data-headline") == 2 and page.count('class="evidence"') == 2
    # the outputs' audited text (assistant turns, completions) is shown with its shared span
    assert page.count("<mark>") >= 20
    r = run("report", fixture_audit / "audit", outs, "--format", "md")
    assert r.exit_code == 0 and r.output.startswith("# provaudit evidence report")
    assert "## Training-data audit" in r.output and "## Model-output audit" in r.output
    # re-rendering one audit gives the files the audit wrote
    again = render_saved([fixture_audit / "audit"], "md")
    assert again == (fixture_audit / "audit" / "report.md").read_text(encoding="utf-8")


def test_a_hundred_thousand_matches_stay_under_five_megabytes(fixture_audit: Path, tmp_path: Path) -> None:
    out = tmp_path / "big"
    shutil.copytree(fixture_audit / "audit", out)
    table = pq.read_table(out / "matches.parquet")
    rows = table.to_pylist()
    big = [dict(rows[i % len(rows)], reference_id=f"{rows[i % len(rows)]['reference_id']}~{i}") for i in range(100_000)]
    import pyarrow as pa

    big_table = pa.Table.from_pylist(big, schema=table.schema)
    report = json.loads((out / "report.json").read_text())
    from provaudit.report import html as h, markdown
    from provaudit.report.evidence import attach_texts, top_pairs

    pairs = top_pairs(report, big_table, 300)
    attach_texts(pairs, report)
    page = h.render([(report, big_table, pairs)])
    assert len(page.encode("utf-8")) < 5_000_000 and page.count('class="pair"') == 300
    assert len(markdown.render([(report, pairs[:20])]).encode()) < 200_000


def test_date_is_now_unless_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    from provaudit.report.bundle import now_utc

    assert now_utc() == "2026-01-01T00:00:00Z"  # conftest fixes SOURCE_DATE_EPOCH=1767225600
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    stamp = dt.datetime.strptime(now_utc(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert abs((dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()) < 5


def test_recorded_command_leaves_out_what_cannot_change_an_output() -> None:
    assert recorded_argv(["audit", "i", "t", "-o", "x", "-w", "2", "--force", "-q", "--resume", "--workers=3"]) == \
        ["audit", "i", "t", "-o", "OUT"]
    assert recorded_argv(["audit", "i", "t", "--out=x", "-w4", "--top", "5"]) == ["audit", "i", "t", "--out=OUT", "--top", "5"]


def _bundle_files(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_file())


def test_verify_names_a_one_byte_change_in_any_file(fixture_audit: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    shutil.copytree(fixture_audit / "audit", out)
    r = run("verify", out)
    assert r.exit_code == 0 and "\nOK: " in r.output
    names = [p.name for p in _bundle_files(out)]
    assert names == ["SHA256SUMS", "bundle.json", "matches.parquet", "report.html", "report.json", "report.md"]
    for path in _bundle_files(out):
        data = bytearray(path.read_bytes())
        for pos in (0, len(data) // 2, len(data) - 2):
            changed = bytearray(data)
            changed[pos] ^= 0x01
            path.write_bytes(bytes(changed))
            r = run("verify", out)
            path.write_bytes(bytes(data))
            assert r.exit_code == 1, (path.name, pos, r.output)
            assert f"CHANGED: {out / path.name}" in r.output or (path.name == "SHA256SUMS" and "SHA256SUMS" in r.output)
    (out / "extra.txt").write_text("x")
    r = run("verify", out)
    assert r.exit_code == 1 and "extra.txt: added after the output was written" in r.output
    (out / "extra.txt").unlink()
    (out / "report.md").unlink()
    r = run("verify", out)
    assert r.exit_code == 1 and "report.md: missing" in r.output


def test_verify_names_a_changed_input(fixture_audit: Path) -> None:
    f = fixture_audit / "shards" / "train-02.parquet"
    saved = f.read_bytes()
    f.write_bytes(saved[:-1] + bytes([saved[-1] ^ 1]))
    try:
        r = run("verify", fixture_audit / "audit")
    finally:
        f.write_bytes(saved)
    assert r.exit_code == 1 and f"CHANGED: input {f}: changed since the audit" in r.output


def test_verify_rerun_reproduces_the_figures(fixture_audit: Path, hostile: Path, tmp_path: Path) -> None:
    r = run("verify", fixture_audit / "audit", "--rerun")
    assert r.exit_code == 0, r.output
    assert "Rerun reproduced every figure: provaudit audit" in r.output
    # a saved figure that no longer matches what the command computes is named
    out = tmp_path / "out"
    shutil.copytree(hostile / "out", out)
    report = json.loads((out / "report.json").read_text())
    report["counts"]["pairs"] += 1
    from provaudit.fs.integrity import write_checksums
    from provaudit.report.bundle import write_bundle

    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "bundle.json").unlink()
    write_bundle(out, report)
    write_checksums(out)
    r = run("verify", out, "--rerun")
    assert r.exit_code == 1 and "NOT REPRODUCED: counts: differs" in r.output


def test_verify_an_index_directory(fixture_audit: Path) -> None:
    r = run("verify", fixture_audit / "ref.idx")
    assert r.exit_code == 0 and "3,000 items" in r.output and "files verified" in r.output


def test_reference_item_is_the_pairs_position_in_the_index(fixture_audit: Path) -> None:
    from provaudit.index.format import load_index

    ids = load_index(fixture_audit / "ref.idx").ids.to_pylist()
    table = pq.read_table(fixture_audit / "audit" / "matches.parquet").to_pylist()
    assert table and all(ids[r["reference_item"]] == r["reference_id"] for r in table)


def test_reference_texts_read_only_the_reported_items(fixture_audit: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Excerpts cost what the pairs shown cost: no scan of every item, and a bounded re-read of the corpus."""
    from provaudit.index.format import Index, load_index
    from provaudit.report import evidence

    report = json.loads((fixture_audit / "audit" / "report.json").read_text(encoding="utf-8"))
    rows = pq.read_table(fixture_audit / "audit" / "matches.parquet").to_pylist()[:40]
    items = {r["reference_id"]: r["reference_item"] for r in rows}
    truth = {json.loads(line)["id"]: json.loads(line)["text"]
             for f in sorted((fixture_audit / "reference").iterdir())
             for line in f.read_text(encoding="utf-8").splitlines()}
    ids_before = load_index(fixture_audit / "ref.idx").ids  # the whole id column, read here and not below

    def whole_table(self: Index) -> None:
        raise AssertionError("every item of the index was read")

    monkeypatch.setattr(Index, "items", property(whole_table))
    monkeypatch.setattr(Index, "ids", property(whole_table))
    texts, notes = evidence.reference_texts(report["index"], items)
    assert texts == {rid: truth[rid] for rid in items} and not notes
    # a wrong item number is caught by the id check, not shown as another item's text
    texts, notes = evidence.reference_texts(report["index"], {rows[0]["reference_id"]: rows[0]["reference_item"] + 1})
    assert not texts and "is not an item of the index" in notes[rows[0]["reference_id"]]
    # over the read limit, the reference files are not read back, and the note says what to do
    texts, notes = evidence.reference_texts(report["index"], items, read_limit=1000)
    assert not texts and set(notes) == set(items)
    assert all("more than a report reads back" in n and "--keep-text" in n for n in notes.values())
    assert len(ids_before) == report["counts"]["reference_items"]


def test_evidence_histograms_are_counted_a_batch_at_a_time_as_over_every_value() -> None:
    """report.html's three evidence histograms come from two passes over matches.parquet's batches
    (memory does not grow with the pairs); their counts equal plots.bins_of/int_bins of all values."""
    import random

    import pyarrow as pa

    from provaudit.report import html, plots

    rng = random.Random(3)
    for _ in range(100):
        n = rng.randint(0, 300)
        flags = [rng.choice(["", "", "", "short_item"]) for _ in range(n)]
        cont = [rng.choice([rng.random(), 1.0, 0.5, 0.55, 0.95, round(rng.random(), 2)]) for _ in range(n)]
        jac = [rng.choice([rng.random(), 1.0, 0.0, 0.1, 0.3]) for _ in range(n)]
        spans = [rng.randint(0, rng.choice([5, 50, 3000])) for _ in range(n)]
        table = pa.Table.from_batches(pa.table({
            "item_flag": pa.array(flags, pa.string()), "containment": pa.array(cont, pa.float64()),
            "jaccard": pa.array(jac, pa.float64()), "verbatim_tokens": pa.array(spans, pa.int64()),
        }).to_batches(max_chunksize=7)) if n else pa.table({"item_flag": pa.array([], pa.string()),
                                                            "containment": pa.array([], pa.float64()),
                                                            "jaccard": pa.array([], pa.float64()),
                                                            "verbatim_tokens": pa.array([], pa.int64())})
        keep = [i for i, f in enumerate(flags) if not f]
        c, j, s = ([v[i] for i in keep] for v in (cont, jac, spans))
        assert html._evidence_bins(table) == (plots.bins_of(c, html._edges(c)),
                                              plots.bins_of(j, [k / 10 for k in range(11)]), plots.int_bins(s))
