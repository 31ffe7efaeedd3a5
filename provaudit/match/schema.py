"""The columns of a verified pair: one definition for the engine, checkpoints and ``matches.parquet``."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

MATCH_SCHEMA = pa.schema([
    pa.field("reference_id", pa.string()),
    pa.field("reference_item", pa.int64()),  # the item's number in the audited index (report.json: index)
    pa.field("target_id", pa.string()),
    pa.field("target_source", pa.string()),
    pa.field("target_row", pa.int64()),
    pa.field("jaccard", pa.float64()),
    pa.field("containment", pa.float64()),
    pa.field("estimated_jaccard", pa.float64()),
    pa.field("verbatim_tokens", pa.int64()),
    pa.field("overlap_shingles", pa.int64()),
    pa.field("reference_shingles", pa.int64()),
    pa.field("target_shingles", pa.int64()),
    pa.field("target_tokens", pa.int64()),
    pa.field("covered_tokens", pa.int64()),
    pa.field("candidate_by", pa.string()),
    pa.field("candidate_probability", pa.float64()),
    pa.field("item_flag", pa.string()),
])
MATCH_COLUMNS: tuple[str, ...] = tuple(MATCH_SCHEMA.names)


def empty_matches() -> dict[str, list[Any]]:
    """Verified pairs as columns, none yet."""
    return {c: [] for c in MATCH_COLUMNS}
