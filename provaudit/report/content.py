"""What a report says, independent of Markdown or HTML: headline sentences, figures, explanations.

Functions here return plain (unescaped) text built from report.json; the renderers escape
everything they print. Numbers are rounded for people (``common.pct``); report.json keeps
full precision.
"""

from __future__ import annotations

from typing import Any

from provaudit.report.common import interval, method, num, pct


def title(report: dict[str, Any]) -> str:
    return "Model-output audit" if report["kind"] == "outputs" else "Training-data audit"


def _share(e: dict[str, Any]) -> str:
    """A share, with its interval when it is an estimate (an exact count needs none)."""
    iv = interval(e)
    return f"{pct(e['value'])} ({100 * e['confidence']:g}% interval {iv})" if iv else pct(e["value"])


def headline(report: dict[str, Any]) -> str:
    """One sentence a non-specialist can quote."""
    c, est = report["counts"], report["estimates"]
    if report["kind"] == "outputs":
        e, v = est["samples_regurgitating"], report["summary"]["verdicts"]
        return (f"{num(c['samples_regurgitating'])} of {num(c['samples'])} model outputs reproduce text of the "
                f"reference corpus: {_share(e)}; {num(v['verbatim'])} verbatim, {num(v['partial'])} partial, "
                f"{num(v['near_verbatim'])} near-verbatim. {num(c['reference_items_reproduced'])} of "
                f"{num(c['reference_items'])} reference items were reproduced.")
    tc, tt, rc = est["target_contamination"], est["target_token_share"], est["reference_coverage"]
    sampled = report["sample"]["mode"] != "full"
    read = f"In a sample of {num(c['target_records'])} records" if sampled else \
        f"In all {num(c['target_records'])} records"
    text = (f"{read} of the audited data, {_share(tc)} contain material from the reference corpus, making up "
            f"{_share(tt)} of the tokens; {_share(rc)} of the {num(c['reference_items_evidence'])} reference items "
            "were found.")
    if "control" in report:
        ex = report["control"]["excess"]
        iv = interval(ex)
        text += (f" The share of reference items found exceeds that of a negative control (text that cannot be in "
                 f"the data) by {pct(ex['value'])[:-1]} percentage points"
                 + (f" ({100 * ex['confidence']:g}% interval {iv.replace('%', '')})." if iv else "."))
    elif not sampled:
        text += " Every record was read, so these are exact counts."
    return text


def figures(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, value, interval or "", how it was measured) rows of the main figures."""
    est = report["estimates"]
    if report["kind"] == "outputs":
        rows = [("outputs reproducing reference items", est["samples_regurgitating"]),
                ("outputs reproducing an item verbatim", est["samples_verbatim"])]
    else:
        rows = [("records containing reference material", est["target_contamination"]),
                ("tokens that are reference material", est["target_token_share"]),
                ("reference items found", est["reference_coverage"]),
                ("records with a near-copy of an item", est["by_kind"]["near_duplicate"]["target_contamination"]),
                ("records quoting an item inside other text", est["by_kind"]["contained"]["target_contamination"])]
        if "control" in report:
            ctl = report["control"]
            rows += [("control items found (chance level)", ctl["control_found_share"]),
                     ("excess of reference over control (points)", ctl["excess"])]
    return [(name, pct(e["value"]), interval(e) or "-", method(e["method"])) for name, e in rows]


def how_sure(report: dict[str, Any]) -> list[str]:
    """Plain sentences on what could be missed and what was flagged."""
    mp = report["miss_probability"]
    p = report["parameters"]
    if report["kind"] == "outputs":
        worst = mp["anchor_max_at_rule_threshold"]
        return [f"For an output that only just meets a verdict rule, the chance the search never proposed the "
                f"pair is at most {pct(worst)}; stronger reproductions are even less likely to be missed. "
                "Every pair proposed was verified exactly."]
    worst, lsh = mp["anchor_max_at_threshold"], mp["lsh_at_min_jaccard"]
    em = report["estimates"]["candidate_miss"]
    f = report["flags"]
    near = (f"The near-copy search alone would miss a pair at Jaccard {p['min_jaccard']} with probability {pct(lsh)}, "
            "but such a pair also has containment of at least that value, so the containment search covers it: the "
            f"first figure ({pct(worst)}) is the one that bounds what is missed." if lsh is not None else
            f"Near-copies (Jaccard at least {p['min_jaccard']}) have containment of at least that value too, so the "
            "same search covers them.")
    lines = [
        f"Search: a pair with containment exactly {p['min_containment']} is never proposed with probability at "
        f"most {pct(worst)}; about {em['expected_missed_pairs']:.2g} pairs are expected to have been missed in all. "
        + near,
        f"Not counted: {num(f['short_item']['pairs'])} pairs of items shorter than "
        f"{f['short_item']['min_item_shingles']} shingles (too short to be evidence), and "
        f"{num(f['frequent_item']['pairs'])} pairs of {num(len(f['frequent_item']['items']))} items found in more "
        f"than {num(f['frequent_item']['max_target_records'])} records (boilerplate suspects).",
    ]
    return lines


NOT_ALL_READ = "Warning: not every target record was audited; the figures cover only the records read."


def all_read(report: dict[str, Any]) -> bool:
    """True when every record with text was read in full."""
    ip = report.get("input_problems")
    return bool(ip["all_records_read"]) if ip is not None else not report["counts"].get("skipped_records", 0)


def problems(report: dict[str, Any]) -> list[str]:
    """Sentences on records not read (empty when everything was read)."""
    ip = report.get("input_problems")
    out: list[str] = []
    if ip is None:
        skipped = report["counts"].get("skipped_records", 0)
        return [f"{num(skipped)} records were skipped (unreadable or malformed); see report.json."] if skipped else []
    no_text = {k: v for k, v in ip["records_skipped"].items() if k in ("null text", "empty text")}
    if no_text:
        out.append("Records without text (nothing to audit): " + ", ".join(f"{k}: {v}" for k, v in no_text.items())
                   + ".")
    lost = {k: v for k, v in ip["records_skipped"].items() if k not in ("null text", "empty text")}
    if lost:
        out.append(f"{num(sum(lost.values()))} records were skipped: "
                   + ", ".join(f"{k}: {v}" for k, v in lost.items()) + ".")
    if ip["records_altered"]:
        out.append(f"{num(sum(ip['records_altered'].values()))} records were cut to {num(ip['max_record_chars'])} "
                   "characters.")
    for e in ip["inputs_with_errors"]:
        out.append(f"Not read to its end: {e['error']}.")
    for reason, where in ip["examples"].items():
        if reason in lost or reason in ip["records_altered"]:
            out.append(f"Examples of {reason}: {'; '.join(where)}.")
    ignored = ip["ignored_files"]
    if ignored["count"]:
        more = ignored["count"] - min(10, len(ignored["files"]))
        out.append("Ignored files (unsupported types in input directories): " + ", ".join(ignored["files"][:10])
                   + (f" and {num(more)} more (report.json)" if more > 0 else "") + ".")
    return out


def reproduce(report: dict[str, Any]) -> dict[str, Any]:
    """Command, date, versions, index and parameters: what someone needs to run the audit again."""
    r = report.get("reproduce") or {}
    idx = report["index"]
    return {
        "command": r.get("command") or "(not recorded: written through the Python API)",
        "date": r.get("date") or "(not recorded)",
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(report.get("versions", {}).items())),
        "index": f"{idx['path']} ({idx['fingerprint']}; {num(idx['items'])} items; manifest sha256 "
                 f"{idx['manifest_sha256']})",
        "parameters": ", ".join(f"{k}={v}" for k, v in sorted(report["parameters"].items()) if v is not None),
    }
