"""What each kind of run does with its worker tasks' output: the ``Job`` of an index build, a training
audit and a model-output audit (``run.loop.run_sources`` runs them all the same way)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa


from provaudit.config import IndexConfig
from provaudit.index.build import IndexWriter, Prepared
from provaudit.match.engine import BatchResult
from provaudit.match.pairs import PairList, Spill
from provaudit.read.records import Source
from provaudit.regurgitation.shapes import sample_extractor
from provaudit.regurgitation.spans import SampleBatch
from provaudit.results import SourceResult
from provaudit.run.loop import Job, Keep, Saved


def index_job(writer: IndexWriter, config: IndexConfig) -> Job:
    """Add each prepared batch to ``writer`` (signed here, in input order)."""

    def merge(res: SourceResult, parts: list[Prepared]) -> None:
        for ids, rows, texts, items in parts:
            writer.add(ids, [res.source] * len(ids), rows, items, texts)  # signed by the writer
            res.tokens += int(items.n_tokens.sum())
            res.records += len(ids)

    def merge_whole(results: list[SourceResult], records: list[int], prepared: Prepared | None) -> None:
        if prepared is None:
            return
        ids, rows, texts, items = prepared
        writer.add(ids, [r.source for r, n in zip(results, records) for _ in range(n)], rows, items, texts)
        ends = np.cumsum(np.asarray(records, np.int64))
        tokens = np.concatenate([[0], np.cumsum(items.n_tokens, dtype=np.int64)])
        for res, n, lo, hi in zip(results, records, (ends - records).tolist(), ends.tolist()):
            res.records += n
            res.tokens += int(tokens[hi] - tokens[lo])

    return Job(merge, spans=True, merge_whole=merge_whole)


def _add(pairs: PairList, r: BatchResult) -> None:
    for b in r.pairs:
        if isinstance(b, pa.RecordBatch):
            pairs.add_batch(b)
        else:
            pairs.add_ref(b)
    pairs.add(r.rows)


def _merge_audit(per_record: bool, res: SourceResult, batches: list[list[BatchResult]]) -> None:
    """Merge each batch's results (against the reference, and the control when given) into ``res``."""
    for results in batches:
        r = results[0]
        res.records += r.records
        res.tokens += r.tokens
        res.covered_tokens += r.covered_tokens
        res.records_with_matches += r.records_with_matches
        _add(res.matches, r)
        res.add_candidates(r.candidates)
        if per_record:
            res.rows.append(r.rec_rows)
            res.rec_tokens.append(r.rec_tokens)
            res.rec_covered.append(r.rec_covered)
        if res.control_matches is not None:
            c = results[1]
            _add(res.control_matches, c)
            res.add_candidates(c.candidates, control=True)
            res.control_records_with_matches += c.records_with_matches


def audit_job(*, per_record: bool, control: bool, keep: dict[str, Keep | None], saved: Saved | None,
              spill: Spill | None = None) -> Job:
    """A training audit: pairs (held in bounded memory, spilled to ``spill``), counts and (sampled)
    per-record arrays; control pairs when given."""

    def start(src: Source) -> SourceResult:
        return SourceResult(src.name, src.kind, matches=PairList(spill),
                            control_matches=PairList(spill) if control else None)

    merge: Callable[[SourceResult, Any], None] = lambda res, out: _merge_audit(per_record, res, out)
    return Job(merge, start=start, saved=saved, keep=keep)


def _merge_samples(res: SourceResult, batches: list[SampleBatch]) -> None:
    for r, pairs, samples in batches:
        res.records += len(samples)
        res.tokens += r.tokens
        res.records_with_matches += sum(s["verdict"] != "none" for s in samples)
        res.covered_tokens += sum(s["covered_tokens"] for s in samples)
        res.pairs += pairs
        res.samples += samples
        res.shapes = dict(Counter(res.shapes) + Counter(s["field"] for s in samples))
        res.add_candidates(r.candidates)


def outputs_job(text_field: str) -> Job:
    """A model-output audit: samples read with their shapes (the audited text, the given context)."""
    return Job(_merge_samples, extract=sample_extractor(text_field))


__all__ = ["audit_job", "index_job", "outputs_job"]
