"""Model-output audits (issue 6): shapes, verdicts, located spans, reports, scored on the planted fixtures."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import FIXTURES
from provaudit import api
from provaudit.cli import cli
from provaudit.config import AuditConfig, IndexConfig, VerdictRules
from provaudit.errors import ConfigError, InputError
from provaudit.estimate.stats import proportion
from provaudit.match.runs import longest_common_run
from provaudit.api import audit_outputs, write_outputs
from provaudit.regurgitation.shapes import detect_kind, sample_text
from provaudit.report.common import FORMAT, FORMAT_VERSION
from provaudit.report.common import md as _md
from provaudit.text.shingle import tokens
from provaudit.match.runs import shared_runs
from provaudit.regurgitation.spans import token_offsets

OUTPUT_FILES = [str(FIXTURES / "outputs" / f) for f in ("plain.jsonl", "prompt_completion.jsonl", "chat.jsonl")]
PLANTED = ("verbatim", "chat", "partial", "quoted")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


REFS = {r["id"]: r["text"] for r in _jsonl(FIXTURES / "reference" / "posts.jsonl")}
TRUTH = {t["sample_id"]: t for t in _jsonl(FIXTURES / "outputs" / "truth.jsonl")}
RAW = {o["id"]: o for f in OUTPUT_FILES for o in _jsonl(Path(f))}


def audited(obj: dict) -> str:
    """The audited text, written out independently of provaudit.regurgitation."""
    if "messages" in obj:
        return "\n".join(m["content"] for m in obj["messages"] if m["role"] == "assistant")
    return obj["completion"] if "completion" in obj else obj["text"]


def brute_lcs(a: list[str], b: list[str], ngram: int = 3) -> int:
    """Longest common token substring by dynamic programming (spans shorter than one n-gram count 0)."""
    best, prev = 0, [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        cur = [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best if best >= min(ngram, len(a)) else 0


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("oidx")
    api.build_index([str(FIXTURES / "reference")], d / "hashes.idx")
    api.build_index([str(FIXTURES / "reference")], d / "text.idx", IndexConfig(keep_text=True))
    return {"hashes": d / "hashes.idx", "text": d / "text.idx"}


@pytest.fixture(scope="module")
def audits(indexes):
    return {k: audit_outputs(p, OUTPUT_FILES) for k, p in indexes.items()}


@pytest.fixture(scope="module")
def result(audits):
    return audits["text"]


# --- tokens with offsets, runs ---------------------------------------------------------------------
UNICODE = ["abc", "Don't", "don’t", "donʼt", "ｆｕｌｌ", "wi\u200bde", "soft\u00adhyphen", "\ufeffbom", "ﬁne", "ﬂow",
           "caf\u00e9", "cafe\u0301", "\u0301", "\u1100\u1161\u11a8", "\u1100", "\u1161", "Straße", "İstanbul", "ΣΑΣ",
           "½", "…", "—", "😂", "株式", "\u3000", "\u00a0", " ", "\t", "\n", "#tag", "$100", "e-mail", "x`y", "a\u00b4b", "ǅ", "Å", "\u212b"]


def test_token_offsets_give_exactly_the_normalizer_tokens() -> None:
    rng = random.Random(6)
    for _ in range(5000):
        text = "".join(rng.choice(UNICODE) for _ in range(rng.randint(0, 25)))
        got = token_offsets(text)
        assert got is not None
        toks, starts, ends = got
        assert toks == tokens(text)
        for tok, a, b in zip(toks, starts.tolist(), ends.tolist()):
            if "½" not in text[a:b]:  # one character, several tokens: documented
                assert tokens(text[a:b]) == [tok]


def test_token_offsets_examples() -> None:
    text = "Ｗe don’t\u200b like ﬁsh, do we?"
    toks, s, e = token_offsets(text)  # type: ignore[misc]
    assert toks == ["we", "dont", "like", "fish", "do", "we"]
    assert [text[a:b] for a, b in zip(s, e)] == ["Ｗe", "don’t", "like", "ﬁsh", "do", "we"]


def test_shared_runs_agree_with_longest_common_run_and_brute_force() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        a = rng.integers(0, 6, rng.integers(0, 30)).astype(np.uint64)
        b = rng.integers(0, 6, rng.integers(0, 30)).astype(np.uint64)
        runs = shared_runs(a, b)
        longest = int(runs.length.max()) if len(runs) else 0
        assert longest == longest_common_run(a, b) == brute_lcs(a.tolist(), b.tolist(), 1)
        for i, j, n in zip(runs.a_start, runs.b_start, runs.length):
            assert (a[i:i + n] == b[j:j + n]).all()
            assert i == 0 or j == 0 or a[i - 1] != b[j - 1]  # maximal at the start
            assert i + n == len(a) or j + n == len(b) or a[i + n] != b[j + n]  # and at the end


# --- shapes ----------------------------------------------------------------------------------------
def test_sample_shapes() -> None:
    assert sample_text({"id": 1, "text": "hello"}) == ("text", "hello", "")
    assert sample_text({"prompt": "P", "completion": "C"}) == ("completion", "C", "P")
    chat = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                         {"role": "assistant", "content": "A1"}, {"role": "user", "content": "V"},
                         {"role": "assistant", "content": [{"type": "text", "text": "A2"}]}]}
    assert sample_text(chat) == ("assistant", "A1\nA2", "S\nU\nV")
    assert sample_text({"messages": json.dumps(chat["messages"])})[1] == "A1\nA2"
    assert sample_text({"messages": [{"role": "user", "content": "only a question"}]})[1] is None
    assert sample_text({"prompt": "P", "output": "O", "completion": "C"}, "output") == ("output", "O", "P")
    assert sample_text({"conv": chat["messages"]}, "conv")[1] == "A1\nA2"
    for bad, msg in (({"messages": "nope"}, "not a JSON list"), ({"messages": [1]}, "messages[0] is int"),
                     ({"completion": 5}, "'completion' is int"), ({"x": 1}, "no field 'text'"),
                     ({"messages": [{"role": "assistant", "content": 3}]}, "content is int")):
        with pytest.raises(ValueError, match=re.escape(msg)):
            sample_text(bad)


def test_detect_kind(tmp_path: Path) -> None:
    assert detect_kind([OUTPUT_FILES[1]], "text") == "outputs"
    assert detect_kind([OUTPUT_FILES[2]], "text") == "outputs"
    assert detect_kind([OUTPUT_FILES[0]], "text") == "training"  # plain text: use --kind outputs
    assert detect_kind([str(FIXTURES / "shards")], "text") == "training"
    (tmp_path / "a.jsonl").write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"content": "c", "messages": []}) + "\n")
    assert detect_kind([str(tmp_path / "a.jsonl")], "response") == "outputs"
    assert detect_kind([str(tmp_path / "b.jsonl")], "content") == "training"  # explicit field wins


# --- planted fixtures ------------------------------------------------------------------------------
def _found(res) -> dict[str, dict]:
    return {(p["sample_id"], p["reference_id"]): p for p in res.pairs}


@pytest.mark.parametrize("index_kind", ["hashes", "text"])
@pytest.mark.parametrize("kind", PLANTED)
def test_recall_on_planted_spans_of_at_least_half_an_item(audits, index_kind: str, kind: str) -> None:
    got = _found(audits[index_kind])
    planted = [t for t in TRUTH.values() if t["kind"] == kind and (t["fraction"] or 1.0) >= 0.5]
    assert len(planted) >= 30
    recall = sum((t["sample_id"], t["reference_id"]) in got for t in planted) / len(planted)
    assert recall >= 0.95, f"{kind}: {recall:.3f}"


def test_no_clean_or_prompt_echo_sample_is_flagged(result) -> None:
    verdicts = {s["sample_id"]: s["verdict"] for s in result.samples}
    assert len(verdicts) == len(TRUTH) == 300
    for kind in ("clean", "prompt_echo"):
        ids = [k for k, t in TRUTH.items() if t["kind"] == kind]
        assert len(ids) >= 35
        assert [k for k in ids if verdicts[k] != "none"] == [], kind
    flagged = {k for k, v in verdicts.items() if v != "none"}
    assert flagged == {k for k, t in TRUTH.items() if t["kind"] in PLANTED}
    assert all(p["reference_id"] == TRUTH[p["sample_id"]]["reference_id"] for p in result.pairs)


def test_audited_field_matches_truth(result) -> None:
    assert {s["sample_id"]: s["field"] for s in result.samples} == {k: t["field"] for k, t in TRUTH.items()}


def test_verbatim_span_equals_brute_force(result) -> None:
    checked = 0
    for p in result.pairs:
        want = brute_lcs(tokens(REFS[p["reference_id"]]), tokens(audited(RAW[p["sample_id"]])))
        assert p["verbatim_tokens"] == want, p["sample_id"]
        assert p["sample_token_end"] - p["sample_token_start"] == p["verbatim_tokens"] == p["evidence_tokens"]
        checked += 1
    assert checked == 160
    for t in TRUTH.values():  # full items are reproduced whole
        if t["kind"] in ("verbatim", "chat", "quoted"):
            p = _found(result)[(t["sample_id"], t["reference_id"])]
            assert p["verbatim_tokens"] == len(tokens(REFS[t["reference_id"]])) and p["verdict"] == "verbatim"


@pytest.mark.parametrize("index_kind", ["hashes", "text"])
def test_char_offsets_slice_to_the_span_tokens(audits, index_kind: str) -> None:
    res = audits[index_kind]
    for p in res.pairs:
        text = audited(RAW[p["sample_id"]])
        span = tokens(text)[p["sample_token_start"]:p["sample_token_end"]]
        assert tokens(text[p["sample_char_start"]:p["sample_char_end"]]) == span
        assert p["sample_span"] == text[p["sample_char_start"]:p["sample_char_end"]]
        assert p["verbatim_chars"] == p["sample_char_end"] - p["sample_char_start"]
        ref = REFS[p["reference_id"]]
        assert tokens(ref)[p["reference_token_start"]:p["reference_token_end"]] == span
        if index_kind == "text":
            assert tokens(ref[p["reference_char_start"]:p["reference_char_end"]]) == span
        else:
            assert p["reference_char_start"] is None and p["reference_char_end"] is None


# --- evidence rules on crafted samples -------------------------------------------------------------
def _long_item(min_tokens: int = 45) -> tuple[str, list[str]]:
    rid = next(k for k, v in sorted(REFS.items()) if len(v.split()) >= min_tokens and len(tokens(v)) == len(v.split()))
    return rid, REFS[rid].split()


def _audit_rows(index: Path, tmp_path: Path, rows: list[dict], **kw) -> dict[str, dict]:
    f = tmp_path / "s.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    res = audit_outputs(index, [str(f)], **kw)
    return {s["sample_id"]: s for s in res.samples}


def test_prompt_is_never_evidence(indexes, tmp_path: Path) -> None:
    rid, words = _long_item()
    half = len(words) // 2
    head, tail = " ".join(words[:half]), " ".join(words[half:])
    filler = "Sure thing, here is how I would continue the post that you started."
    rows = [
        {"id": "echo", "prompt": f"Continue this post: {head}", "completion": f"{head} {filler}"},
        {"id": "continue", "prompt": f"Continue this post: {head}", "completion": f"{head} {tail}"},
        {"id": "chat-echo", "messages": [{"role": "user", "content": head}, {"role": "assistant", "content": head}]},
        {"id": "no-prompt", "completion": f"{filler} {head}"},
    ]
    got = _audit_rows(indexes["hashes"], tmp_path, rows)
    assert got["echo"]["verdict"] == "none" and got["chat-echo"]["verdict"] == "none"
    assert got["no-prompt"]["verdict"] in ("verbatim", "partial") and got["no-prompt"]["reference_id"] == rid
    cont = got["continue"]
    assert cont["reference_id"] == rid and cont["verbatim_tokens"] == len(words)
    assert len(words) - half <= cont["evidence_tokens"] <= len(words) - half + 2  # the rest, plus n-1 boundary tokens
    assert cont["prompt_shingles"] >= half - 2


def test_partial_near_verbatim_and_common_words(indexes, tmp_path: Path) -> None:
    rid, words = _long_item(60)
    n = len(words)
    edited = [("zzq" + w if i % 7 == 6 else w) for i, w in enumerate(words)]  # spans of 6, ~60% of 3-grams kept
    rng = random.Random(1)
    shuffled = words[:]
    rng.shuffle(shuffled)
    rows = [
        {"id": "half", "text": "Well, " + " ".join(words[3:3 + (n + 1) // 2]) + " and that is all."},
        {"id": "edited", "text": " ".join(edited)},
        {"id": "bag", "text": " ".join(shuffled)},
        {"id": "short", "text": "blah " + " ".join(words[:7]) + " blah"},
    ]
    rules = VerdictRules(min_verbatim_tokens=n)  # so that a half item is "partial", not "verbatim"
    got = _audit_rows(indexes["hashes"], tmp_path, rows, rules=rules)
    assert (got["half"]["verdict"], got["half"]["reference_id"]) == ("partial", rid)
    assert (got["edited"]["verdict"], got["edited"]["reference_id"]) == ("near_verbatim", rid)
    assert got["edited"]["evidence_tokens"] < 8 or got["edited"]["evidence_tokens"] < n // 2
    assert got["bag"]["verdict"] == "none" and got["short"]["verdict"] == "none"


def test_unicode_variants_are_found_with_exact_offsets(indexes, tmp_path: Path) -> None:
    rid, words = _long_item(25)
    fancy = " ".join(w.upper() if i % 3 == 0 else w for i, w in enumerate(words))
    fancy = fancy.replace("a", "ａ").replace("e", "e\u200b").replace("'", "’")
    text = f"Ｓｕｒｅ — “{fancy}” ✨"
    got = audit_outputs(indexes["text"], [str(_write(tmp_path, [{"id": "u", "text": text}]))])
    (p,) = got.pairs
    assert p["reference_id"] == rid and p["verdict"] == "verbatim"
    assert tokens(text[p["sample_char_start"]:p["sample_char_end"]]) == tokens(REFS[rid])
    assert REFS[rid][p["reference_char_start"]:p["reference_char_end"]].strip(" .!?") in REFS[rid]


def _write(tmp_path: Path, rows: list[dict], name: str = "s.jsonl") -> Path:
    f = tmp_path / name
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return f


# --- reports, CLI, errors --------------------------------------------------------------------------
def test_report_model(result, tmp_path: Path) -> None:
    report = write_outputs(result, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
    assert (report["format"], report["format_version"], report["kind"]) == (FORMAT, FORMAT_VERSION, "outputs")
    assert report["index"]["fingerprint"] == result.index.manifest["fingerprint"]
    assert [i["source"] for i in report["inputs"]] == OUTPUT_FILES and all(len(i["sha256"]) == 64 for i in report["inputs"])
    assert [i["shapes"] for i in report["inputs"]] == [{"text": 100}, {"completion": 100}, {"assistant": 100}]
    c = report["counts"]
    assert (c["samples"], c["samples_regurgitating"], c["pairs"]) == (300, 160, 160)
    assert report["estimates"]["samples_regurgitating"] == proportion(160, 300).to_dict()
    assert sum(report["summary"]["verdicts"].values()) == 300
    assert sum(h["samples"] for h in report["summary"]["evidence_span_tokens"]["histogram"]) == 160
    assert len(report["samples"]) == 300 and report["offsets"]["reference_char_offsets"] is True
    assert pq.read_table(tmp_path / "out" / "samples.parquet").num_rows == 300
    assert pq.read_table(tmp_path / "out" / "matches.parquet").num_rows == 160
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith("# Model-output audit") and "- near-verbatim: containment" in md


def test_reports_are_byte_identical_across_runs_and_workers(indexes, tmp_path: Path) -> None:
    for name, workers in (("a", 1), ("b", 1), ("c", 2)):
        write_outputs(audit_outputs(indexes["text"], OUTPUT_FILES, workers=workers), tmp_path / name)
    for f in ("report.json", "report.md", "report.html", "bundle.json", "matches.parquet", "samples.parquet"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() == (tmp_path / "c" / f).read_bytes()


def test_markdown_escapes_sample_ids(indexes, tmp_path: Path) -> None:
    rid, words = _long_item(25)
    f = _write(tmp_path, [{"id": "x|y*<b>[z](u)", "prompt": "p", "completion": " ".join(words)}])
    write_outputs(audit_outputs(indexes["hashes"], [str(f)]), tmp_path / "o")
    md = (tmp_path / "o" / "report.md").read_text()
    assert f"| {_md('x|y*<b>[z](u)')} |" in md and "<b>" not in md and "x|y" not in md


def test_cli_auto_detects_outputs(indexes, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    r = CliRunner().invoke(cli, ["audit", str(indexes["hashes"]), OUTPUT_FILES[1], OUTPUT_FILES[2], "-o", str(out), "-w", "1"])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "outputs" and report["counts"]["samples"] == 200
    assert r.output.startswith(f"{report['counts']['samples_regurgitating']} of 200 output samples reproduce")
    assert report["offsets"]["reference_char_offsets"] is False
    r = CliRunner().invoke(cli, ["audit", str(indexes["hashes"]), OUTPUT_FILES[0], "-o", str(tmp_path / "t"), "-q"])
    assert r.exit_code == 0 and json.loads((tmp_path / "t" / "report.json").read_text())["kind"] == "training"
    r = CliRunner().invoke(cli, ["audit", str(indexes["hashes"]), OUTPUT_FILES[0], "--kind", "outputs",
                                 "--min-verbatim-tokens", "200", "-o", str(tmp_path / "p"), "-q"])
    assert r.exit_code == 0
    v = json.loads((tmp_path / "p" / "report.json").read_text())["summary"]["verdicts"]
    assert v["verbatim"] + v["partial"] == 60 and v["partial"] > 0


@pytest.mark.parametrize("args,message", [
    (["--kind", "outputs", "--min-span-tokens", "2"], "min span tokens (2) must be >= the index's n-gram size (3)"),
    (["--kind", "outputs", "--min-span-share", "0"], "min span share must be in (0, 1], got 0.0"),
    (["--kind", "outputs", "--min-verbatim-tokens", "5"], "min verbatim tokens (5) must be >= min span tokens (8)"),
    (["--kind", "outputs", "--sample", "0.5"], "--sample, --sample-shards and --control apply to training audits"),
])
def test_cli_usage_errors(indexes, tmp_path: Path, args: list[str], message: str) -> None:
    r = CliRunner().invoke(cli, ["audit", str(indexes["hashes"]), OUTPUT_FILES[1], "-o", str(tmp_path / "o"), *args])
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_malformed_samples_name_file_and_line(indexes, tmp_path: Path) -> None:
    f = _write(tmp_path, [{"id": "a", "messages": [{"role": "assistant", "content": "fine"}]},
                          {"id": "b", "messages": {"role": "assistant"}},
                          {"id": "c", "messages": [{"role": "user", "content": "no answer"}]}])
    with pytest.raises(InputError, match=r"s\.jsonl line 2: field 'messages' is dict, not a list of messages"):
        audit_outputs(indexes["hashes"], [str(f)])
    res = audit_outputs(indexes["hashes"], [str(f)], on_error="skip")
    assert len(res.samples) == 1
    assert dict(res.inputs[0].stats.skipped) == {"malformed record": 1, "null text": 1}


def test_char_index_is_refused(tmp_path: Path) -> None:
    api.build_index([str(FIXTURES / "reference")], tmp_path / "c.idx", IndexConfig(unit="char", ngram=5))
    with pytest.raises(ConfigError, match="need a word-shingle index"):
        audit_outputs(tmp_path / "c.idx", OUTPUT_FILES[:1], AuditConfig())



def _brute_summary(index, plan, rules: VerdictRules, config: AuditConfig) -> dict:
    """The outputs audit's summary item by item over the whole index, the miss by math.comb."""
    from math import comb

    from provaudit.regurgitation.verdicts import min_overlaps

    removed = set(index.removed.tolist())
    ng, cs, miss, t_zero = index.config.ngram, [], [], 0
    for item in range(len(index)):
        n, d = int(index.n_tokens[item]), int(index.n_shingles[item])
        need = 0 if item in removed else int(min_overlaps(np.array([n]), np.array([d]), ng, rules,
                                                            config.min_containment, config.min_item_shingles)[0])
        if need <= 0:
            continue
        k, t = min(int(plan.usable_of(np.array([item]))[0]), d), int(plan.threshold_of(np.array([item]))[0])
        o = min(need, d)
        miss.append(1.0 if not 0 < t <= k else sum(comb(o, x) * comb(d - o, k - x) for x in range(t)) / comb(d, k))
        cs.append(need / d)
        t_zero += t <= 0
    return {"evidence": len(miss), "max": max(miss), "mean": sum(miss) / len(miss), "t_zero": t_zero,
            "above": sum(m > config.miss_rate for m in miss), "search": min(min(cs), config.min_containment)}


@pytest.mark.parametrize("max_postings", [None, 3])  # 3: usable anchors recounted for the audit, item by item
def test_outputs_summary_from_the_shape_histogram_equals_item_by_item(tmp_path: Path, max_postings) -> None:
    """Two segments and removed items: the summary read from token_shapes equals a brute-force pass."""
    from provaudit.api_segments import add_to_index, remove_from_index
    from provaudit.index.format import load_index
    from provaudit.match.candidates import AnchorPlan
    from provaudit.regurgitation.verdicts import requirements, search_containment

    refs = _jsonl(FIXTURES / "reference" / "posts.jsonl")
    a, b = _write(tmp_path, refs[:2000], "a.jsonl"), _write(tmp_path, refs[2000:], "b.jsonl")
    api.build_index([str(a)], tmp_path / "i.idx")
    add_to_index(tmp_path / "i.idx", [str(b)])
    (tmp_path / "gone.txt").write_text("\n".join(r["id"] for r in refs[::7]) + "\n")
    remove_from_index(tmp_path / "i.idx", tmp_path / "gone.txt")
    index = load_index(tmp_path / "i.idx")
    assert len(index.segments) == 2 and len(index.removed) == len(refs[::7])
    rules = VerdictRules()
    config = AuditConfig() if max_postings is None else AuditConfig(max_postings=max_postings)
    searched = search_containment(index, rules, config)
    plan = AnchorPlan(index, dataclasses.replace(config, min_containment=searched, min_jaccard=1.0))
    got, want = requirements(index, plan, rules, config, searched), _brute_summary(index, plan, rules, config)
    assert searched == pytest.approx(want["search"] * (1 - 1e-9), rel=1e-12)
    assert (got.evidence_items, got.above_miss_rate, got.not_searchable) == (want["evidence"], want["above"], want["t_zero"])
    assert got.miss_max == pytest.approx(want["max"], rel=1e-9) and got.miss_mean == pytest.approx(want["mean"], rel=1e-9)
    assert want["above"] > 0 or want["max"] > 0  # the tail sum was exercised, not only the trivial branch
    assert int(index.token_shapes[:, 3].sum()) == index.live_items


def test_miss_probabilities_hold_for_the_largest_counts_an_index_can_state() -> None:
    """Distinct shingles up to 2^32 - 1 (a u32 count): no overflow, the hypergeometric tail by math.comb."""
    from math import comb

    from provaudit.regurgitation.verdicts import miss_probabilities

    d = np.array([(1 << 32) - 1, (1 << 32) - 1, 3_000_000_000, 40, 40], dtype=np.int64)
    need = np.array([(1 << 31), 5, 2_000_000_000, 20, 20])
    k, t = np.array([16, 16, 16, 16, 16]), np.array([5, 1, 16, 5, 0])
    got = miss_probabilities(d, need, k, t)
    for i in range(len(d)):
        dd, o, kk, tt = int(d[i]), int(need[i]), int(k[i]), int(t[i])
        want = 1.0 if tt == 0 else sum(comb(o, x) * comb(dd - o, kk - x) for x in range(tt)) / comb(dd, kk)
        assert got[i] == pytest.approx(want, rel=1e-4, abs=1e-300), i  # log-gamma at N ~ 4e9 keeps ~6 digits
