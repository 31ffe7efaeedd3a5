"""Audit samples of a model's outputs for regurgitated reference items (issue 6).

An output sample's *audited text* (the completion, or the assistant turns of a chat)
is a target record for the ordinary engine: candidate search and exact verification.
Each verified pair then gets evidence measured on the audited text alone (shingles the
prompt also holds are not evidence), a verdict from ``VerdictRules``, and located
spans (token and character offsets in both texts). docs/outputs.md has the rules.

Example:
    >>> r = audit_outputs(Path("ref.idx"), ["gen/samples.jsonl"])   # doctest: +SKIP
    >>> write_outputs(r, Path("out"), force=True)["summary"]["verdicts"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from provaudit.api import InputSummary, Progress
from provaudit.read.blocks import batches
from provaudit.config import AuditConfig, IndexConfig
from provaudit.match.engine import MATCH_COLUMNS, BatchRunner, Engine
from provaudit.errors import ConfigError
from provaudit.index.format import Index, load_index
from provaudit.match.candidates import AnchorPlan, hypergeom_cdf
from provaudit.read.records import Record
from provaudit.read.sources import expand_sources, read_source
from provaudit.regurgitation.spans import describe_batch

__all__ = ["OutputsResult", "VerdictRules", "audit_outputs", "detect_kind", "sample_text", "summary_line",
           "write_outputs"]

DEFAULT_TEXT_FIELD = "text"
ASSISTANT_ROLES = ("assistant", "model")
GIVEN_FIELDS = ("prompt", "system", "instruction", "input")  # context the model was given: never evidence
PEEK_RECORDS = 20


# --- sample shapes ---------------------------------------------------------------------------------
def _content(value: Any, where: str) -> str | None:
    """A message's text: a string, None, or a list of parts ({"type": "text", "text": ...} or strings)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [p if isinstance(p, str) else p.get("text") for p in value if isinstance(p, (str, dict))]
        return "\n".join(p for p in parts if isinstance(p, str))
    raise ValueError(f"{where} content is {type(value).__name__}, not a string or a list of text parts")


def _chat(messages: Any, name: str) -> tuple[str | None, str]:
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except json.JSONDecodeError:
            raise ValueError(f"field {name!r} is a string but not a JSON list of messages") from None
    if not isinstance(messages, list):
        raise ValueError(f"field {name!r} is {type(messages).__name__}, not a list of messages")
    said: list[str] = []
    given: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"{name}[{i}] is {type(m).__name__}, not an object with role and content")
        text = _content(m.get("content"), f"{name}[{i}]")
        if text is not None:
            (said if m.get("role") in ASSISTANT_ROLES else given).append(text)
    return ("\n".join(said) if said else None), "\n".join(given)


def sample_text(obj: dict[str, Any], text_field: str = DEFAULT_TEXT_FIELD) -> tuple[str, str | None, str]:
    """Split one output record into (audited field, audited text, given context).

    Shapes, in order: an explicit ``text_field`` (other than ``"text"``) wins; else
    ``messages`` (chat: the assistant turns, joined by newlines, are audited; every
    other turn is context); else ``completion`` (its ``prompt`` is context); else the
    text field. Context also includes any of ``prompt``, ``system``, ``instruction``,
    ``input`` fields that are not audited.

    Raises:
        ValueError: on a malformed shape (the reader reports file and line).

    Example:
        >>> sample_text({"prompt": "Say hi", "completion": "hi there"})
        ('completion', 'hi there', 'Say hi')
    """
    explicit = text_field != DEFAULT_TEXT_FIELD
    if not explicit and "messages" in obj:
        name = "messages"
    elif not explicit and "completion" in obj:
        name = "completion"
    elif text_field in obj:
        name = text_field
    else:
        fields = ", ".join(sorted(map(str, obj))[:8])
        wanted = repr(text_field) if explicit else f"{text_field!r}, 'completion' or 'messages'"
        raise ValueError(f"no field {wanted} (fields: {fields}; use --text-field)")
    value = obj[name]
    context = [obj[k] for k in GIVEN_FIELDS if k != name and isinstance(obj.get(k), str)]
    if isinstance(value, list) or name == "messages":
        text, given = _chat(value, name)
        return "assistant", text, "\n".join(c for c in (*context, given) if c)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"field {name!r} is {type(value).__name__}, not a string")
    return name, value, "\n".join(context)


class _Extractor:
    """``read_source`` extract hook that remembers the field and context of the record it just read."""

    def __init__(self, text_field: str):
        self.text_field = text_field
        self.reset()

    def reset(self) -> None:
        self.field, self.given = DEFAULT_TEXT_FIELD, ""  # .txt sources never call the hook

    def __call__(self, obj: dict[str, Any]) -> str | None:
        self.field, text, self.given = sample_text(obj, self.text_field)
        return text


def detect_kind(specs: list[str], text_field: str = DEFAULT_TEXT_FIELD) -> str:
    """``"outputs"`` when the first input looks like a generation dump, else ``"training"``.

    Looks at the first records of the first input: ``messages`` lists or
    ``prompt`` + ``completion`` pairs make a generation dump. With an explicit
    ``text_field`` found in the records, the records are outputs only if they also
    have a ``prompt`` or the field holds chat messages. Plain ``{"text"}`` samples
    cannot be told from training data: use ``--kind outputs``.

    Raises:
        InputError: if a spec names nothing readable.
    """
    sources = expand_sources(specs)
    if not sources:
        return "training"
    seen: list[dict[str, Any]] = []

    def peek(obj: dict[str, Any]) -> str:
        seen.append(obj)
        return "x"

    for n, _ in enumerate(read_source(sources[0], text_field=text_field, id_field=None, on_error="skip",
                                      extract=peek), 1):
        if n >= PEEK_RECORDS:
            break
    for obj in seen:
        if text_field != DEFAULT_TEXT_FIELD and text_field in obj:
            if "prompt" in obj or isinstance(obj[text_field], list):
                return "outputs"
        elif "messages" in obj or ("prompt" in obj and "completion" in obj):
            return "outputs"
    return "training"


# --- verdicts --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VerdictRules:
    """When a (sample, reference item) pair is evidence of regurgitation (docs/outputs.md).

    *Evidence tokens* are the tokens of the longest verbatim span shared by the item and
    the audited text, minus those the prompt also supplies. A pair is, in this order:
    ``verbatim`` if evidence >= min(min_verbatim_tokens, item tokens); ``partial`` if
    evidence >= min_span_share x item tokens (both need evidence >= min_span_tokens);
    ``near_verbatim`` if the exact containment (prompt n-grams excluded) reaches the
    audit's ``min_containment`` with at least as many shared n-grams as a span of
    ``min_span_tokens`` holds; else ``none``.

    Example:
        >>> VerdictRules().verdict(evidence_tokens=12, containment=0.4, overlap=10, item_tokens=20,
        ...                        min_containment=0.5, ngram=3)
        'partial'
    """

    min_verbatim_tokens: int = 20
    min_span_tokens: int = 8
    min_span_share: float = 0.5

    def __post_init__(self) -> None:
        if self.min_span_tokens < 1:
            raise ConfigError(f"min span tokens must be >= 1, got {self.min_span_tokens}")
        if self.min_verbatim_tokens < self.min_span_tokens:
            raise ConfigError(f"min verbatim tokens ({self.min_verbatim_tokens}) must be >= min span tokens "
                              f"({self.min_span_tokens})")
        if not 0.0 < self.min_span_share <= 1.0:
            raise ConfigError(f"min span share must be in (0, 1], got {self.min_span_share}")

    def verdict(self, evidence_tokens: int, containment: float, overlap: int, item_tokens: int,
                min_containment: float, ngram: int) -> str:
        """The verdict of one pair (see the class docstring); ``overlap`` counts shared distinct n-grams."""
        if evidence_tokens >= self.min_span_tokens:
            if evidence_tokens >= min(self.min_verbatim_tokens, item_tokens):
                return "verbatim"
            if evidence_tokens >= math.ceil(self.min_span_share * item_tokens - 1e-9):
                return "partial"
        if containment >= min_containment and overlap >= self.min_span_tokens - ngram + 1:
            return "near_verbatim"
        return "none"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Requirements:
    """Per reference item: the fewest distinct shared shingles any positive verdict needs.

    Attributes:
        min_overlap: Per item, a lower bound on |R & S| for a positive verdict (0: never evidence).
        search_containment: The smallest ``min_overlap / shingles`` over items: the candidate search threshold.
        miss: Per item, P(the anchor search misses a pair at exactly ``min_overlap``) (nan: never evidence).
    """

    min_overlap: np.ndarray
    search_containment: float
    miss: np.ndarray


def requirements(index: Index, rules: VerdictRules, config: AuditConfig) -> np.ndarray:
    """``Requirements.min_overlap`` for every item of ``index``.

    A verbatim span of L tokens is a run of L - w + 1 shingle positions; an item with P
    positions and D distinct shingles has at least L - w + 1 - (P - D) distinct ones in it.
    """
    ng = index.config.ngram
    n, d = index.n_tokens.astype(np.int64), index.n_shingles.astype(np.int64)
    w = np.minimum(ng, n)
    dup = np.where(n >= ng, n - ng + 1, np.minimum(n, 1)) - d
    f = rules.min_span_tokens

    def lower(tokens: np.ndarray | int) -> np.ndarray:
        return np.asarray(np.maximum(1, tokens - w + 1 - dup))

    span = np.minimum(np.maximum(f, np.minimum(rules.min_verbatim_tokens, n)),
                      np.maximum(f, np.ceil(rules.min_span_share * n - 1e-9).astype(np.int64)))
    near = np.maximum(f - ng + 1, np.ceil(config.min_containment * d - 1e-9).astype(np.int64))
    out = np.minimum(lower(span), near)
    evidence = (n >= f) & (d >= max(1, config.min_item_shingles))
    return np.where(evidence, out, 0).astype(np.int64)


def _plan_requirements(index: Index, rules: VerdictRules, config: AuditConfig) -> Requirements:
    need = requirements(index, rules, config)
    ok = need > 0
    d = index.n_shingles.astype(np.int64)
    c = float((need[ok] / d[ok]).min()) if ok.any() else config.min_containment
    return Requirements(need, max(min(c, config.min_containment) * (1 - 1e-9), 1e-9), np.full(len(index), np.nan))


def _miss(index: Index, plan: AnchorPlan, need: np.ndarray) -> np.ndarray:
    """P(X < t), X ~ Hypergeometric(D, need, k): the anchor search misses a pair at the rule threshold."""
    out = np.full(len(index), np.nan)
    cache: dict[tuple[int, int, int, int], float] = {}
    for item in np.flatnonzero(need > 0).tolist():
        d, o = int(index.n_shingles[item]), int(need[item])
        k, t = min(int(plan.usable[item]), d), int(plan.threshold[item])
        key = (d, min(o, d), k, t)
        if key not in cache:
            cache[key] = 1.0 if not 0 < t <= k else float(hypergeom_cdf(d, key[1], k)[t - 1])
        out[item] = cache[key]
    return out


# --- the audit -------------------------------------------------------------------------------------
@dataclass
class OutputsResult:
    """Everything an outputs audit found, ready for ``write_outputs``.

    Attributes:
        pairs: One dict per (sample, item) pair with a positive verdict (``output_report.PAIR_SCHEMA``).
        samples: One dict per audited sample, in input order (``output_report.SAMPLE_SCHEMA``).
        need: Requirements (rule thresholds and miss probabilities per item).
    """

    index: Index
    config: AuditConfig
    rules: VerdictRules
    need: Requirements
    plan: AnchorPlan
    inputs: list[InputSummary]
    shapes: list[dict[str, int]]
    pairs: list[dict[str, Any]]
    samples: list[dict[str, Any]]
    candidates: dict[str, int]
    fields: dict[str, str | None] = field(default_factory=dict)


def audit_outputs(
    index_dir: Path,
    targets: list[str] | tuple[str, ...],
    config: AuditConfig | None = None,
    *,
    text_field: str = DEFAULT_TEXT_FIELD,
    id_field: str | None = "id",
    on_error: str = "fail",
    workers: int = 1,
    progress: Progress | None = None,
    rules: VerdictRules | None = None,
) -> OutputsResult:
    """Find the reference items that model output samples reproduce.

    Args:
        index_dir: An index built by ``build_index`` (word shingles).
        targets: Files, directories, globs, saved datasets or ``hf:`` names of samples.
        config: Audit thresholds; ``min_containment`` is the near-verbatim threshold.
        text_field: Field audited in plain records; an explicit value overrides shape detection.
        workers: Processes for candidate search; results are identical for any value.
        rules: Verdict rules (defaults: 20 / 8 tokens, half the item).

    Raises:
        ConfigError: for a character-shingle index or rules finer than its n-grams.
        IndexFormatError: if the index fails its integrity check.
        InputError: naming file and line on an unreadable or malformed sample.
    """
    config, rules = config or AuditConfig(), rules or VerdictRules()
    index = load_index(index_dir, signatures=False)
    _check_index(index.config, rules)
    need = _plan_requirements(index, rules, config)
    engine = Engine(index, dataclasses.replace(config, min_containment=need.search_containment, min_jaccard=1.0))
    need = dataclasses.replace(need, miss=_miss(index, engine.plan, need.min_overlap))
    result = OutputsResult(index, config, rules, need, engine.plan, [], [], [], [], {},
                           {"text": text_field, "id": id_field})
    total = 0
    with BatchRunner(engine, workers) as runner:
        for src in expand_sources(targets):
            summary = InputSummary(src.name, src.kind, src.sha256())
            shapes: Counter[str] = Counter()
            result.inputs.append(summary)
            pending: deque[tuple[list[Record], list[tuple[str, str]]]] = deque()
            read = read_source(src, text_field=text_field, id_field=id_field, on_error=on_error, stats=summary.stats,
                               extract=(ex := _Extractor(text_field)))
            for res in runner.map(_batches(read, ex, pending)):
                batch, metas = pending.popleft()
                one = res[0]
                shapes.update(m[0] for m in metas)
                pairs, samples = describe_batch(index, rules, config.min_containment, need.min_overlap, batch, metas,
                                                [dict(zip(MATCH_COLUMNS, r)) for r in one.rows])
                result.pairs += pairs
                result.samples += samples
                summary.tokens += one.tokens
                summary.records_with_matches += sum(s["verdict"] != "none" for s in samples)
                summary.covered_tokens += sum(s["covered_tokens"] for s in samples)
                for k, v in one.candidates.items():
                    result.candidates[k] = result.candidates.get(k, 0) + v
                total += len(batch)
                if progress:
                    progress(src.name, total)
            result.shapes.append(dict(sorted(shapes.items())))
    return result


def _batches(records: Iterator[Record], ex: _Extractor,
             pending: deque[tuple[list[Record], list[tuple[str, str]]]]) -> Iterator[list[Record]]:
    """Batches of samples for the engine; each batch and its (field, context) per sample also go to ``pending``."""
    context: dict[int, tuple[str, str]] = {}

    def tagged() -> Iterator[Record]:
        for rec in records:  # the extractor has just read exactly this record
            context[rec.row] = (ex.field, ex.given)
            ex.reset()
            yield rec

    for batch in batches(tagged()):
        pending.append((batch, [context.pop(r.row) for r in batch]))
        yield batch


def _check_index(icfg: IndexConfig, rules: VerdictRules) -> None:
    if icfg.unit != "word":
        raise ConfigError(f"outputs audits need a word-shingle index; this one has {icfg.unit} {icfg.ngram}-grams")
    if rules.min_span_tokens < icfg.ngram:
        raise ConfigError(f"min span tokens ({rules.min_span_tokens}) must be >= the index's n-gram size "
                          f"({icfg.ngram}): shorter spans are not measured")


def write_outputs(result: OutputsResult, out_dir: Path, *, force: bool = False) -> dict[str, Any]:
    """Write matches.parquet, samples.parquet, report.json and report.md into ``out_dir`` atomically."""
    from provaudit.report.regurgitation import write_outputs as _write

    return _write(result, out_dir, force=force)


def summary_line(report: dict[str, Any]) -> str:
    """One line for the terminal: how many samples regurgitate, with the interval."""
    c, v, e = report["counts"], report["summary"]["verdicts"], report["estimates"]["samples_regurgitating"]
    low, high = 100 * e["ci_low"], 100 * e["ci_high"]
    return (f"{c['samples_regurgitating']:,} of {c['samples']:,} output samples reproduce "
            f"reference items ({v['verbatim']:,} verbatim, {v['partial']:,} partial, {v['near_verbatim']:,} "
            f"near-verbatim; {low:.1f}% to {high:.1f}% at {100 * e['confidence']:.0f}%), "
            f"{report['counts']['reference_items_reproduced']:,} items reproduced")
