"""No control or bidi character from ids, texts or file names reaches report.md, the terminal or check's
outputs raw (issue 15 item 9)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from provaudit.cli import cli
from provaudit.gate.escape import terminal_safe
from provaudit.report.common import md

HOSTILE = ["\x1b[2J", "\x1b]8;;http://x\x07link\x1b]8;;\x07", "\x07", "\x00", "\u202e", "\u2066", "\u200f", "\u061c",
           "\x9b31m", "\u2028", "\u202a", "\u200e"]
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
WORDS = "quiet harbor lanterns drift over salt marsh while herons wait beside broken piers and the tide turns".split()


def test_every_control_and_bidi_character_is_escaped_for_the_terminal_and_markdown() -> None:
    for ch in [*map(chr, range(32)), *map(chr, range(127, 160)), "\u061c", "\u200e", "\u200f", "\u2028", "\u2029",
               *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]:
        assert not RAW.search(terminal_safe(f"a{ch}b")), repr(ch)
        assert not RAW.search(md(f"a{ch}b")), repr(ch)


def test_hostile_ids_and_file_names_never_reach_outputs_raw(tmp_path: Path) -> None:
    ref, tgt = tmp_path / "ref.jsonl", tmp_path / "data" / "evil\x1b[2J\u202ename.jsonl"
    tgt.parent.mkdir()
    with open(ref, "w", encoding="utf-8") as f, open(tgt, "w", encoding="utf-8") as g:
        for i, bad in enumerate(HOSTILE):
            text = " ".join(WORDS[i:] + WORDS[:i])
            f.write(json.dumps({"id": f"r{i}{bad}x", "text": text}) + "\n")
            g.write(json.dumps({"id": f"t{i}{bad}y", "text": f"intro {text} outro"}) + "\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["index", str(ref), "-o", str(tmp_path / "r.idx"), "-q"]).exit_code == 0
    r = runner.invoke(cli, ["audit", str(tmp_path / "r.idx"), str(tgt.parent), "-o", str(tmp_path / "out"),
                            "--kind", "training"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["counts"]["reference_items_found"] == len(HOSTILE)  # every hostile record was read and matched
    for text in ((tmp_path / "out" / "report.md").read_text(encoding="utf-8"), r.output):
        assert not RAW.search(text), [hex(ord(c)) for c in RAW.findall(text)]
    c = runner.invoke(cli, ["check", str(tmp_path / "r.idx"), str(tgt.parent), "--github"])
    assert c.exit_code == 3 and "t0" in c.output
    assert not RAW.search(c.output), [hex(ord(c)) for c in RAW.findall(c.output)]
