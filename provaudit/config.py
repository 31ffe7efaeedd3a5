"""Configuration objects shared by every stage, validated when created.

``IndexConfig`` is written into the index manifest; every stage that hashes or
compares text reads it from there, so an audit can never mix parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from provaudit.errors import ConfigError

HASH_FUNCTIONS = ("xxh3", "sha1")
SHINGLE_UNITS = ("word", "char")
OnError = Literal["fail", "skip"]
ON_ERROR: tuple[str, ...] = get_args(OnError)
FORCED_FORMATS = ("jsonl", "json", "parquet", "csv", "txt", "arrow")  # --format: the readers of files
DEFAULT_MAX_RECORD_CHARS = 20_000_000


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """Every parameter that decides which hashes an index holds.

    Attributes:
        ngram: Shingle size, in words (``unit="word"``) or characters (``unit="char"``).
        unit: ``"word"`` or ``"char"`` shingles.
        num_perm: MinHash permutations (datasketch ``num_perm``).
        seed: MinHash seed (datasketch ``seed``).
        hash: Shingle hash function: ``"xxh3"`` (fast default) or ``"sha1"``
            (datasketch's default ``sha1_hash32``, for interchange with existing sketches).
        threshold: Jaccard threshold the LSH bands are tuned for.
        bands: LSH bands; 0 means datasketch's own optimal choice for ``threshold``.
        rows: Rows per band; 0 with ``bands=0``.
        anchors: Anchor shingles kept per reference item for containment lookup.
        keep_text: Store reference text in the index (readable evidence).
        band_table: Also store the LSH band table (about 310 bytes per 30-word item, +70%
            on disk). Off by default: anchors already search every pair at the thresholds
            (Jaccard >= j implies containment >= j), and measured recall is the same with and
            without it (fixtures, scripts/eval_real.py); with it, ``candidate_by`` and
            ``candidate_probability`` also count the LSH route.

    Example:
        >>> IndexConfig(ngram=3).fingerprint()
        'word3-xxh3-affine32-p128-s1-b10x6-a16'
    """

    ngram: int = 3
    unit: str = "word"
    num_perm: int = 128
    seed: int = 1
    hash: str = "xxh3"
    threshold: float = 0.5
    bands: int = 0
    rows: int = 0
    anchors: int = 16
    keep_text: bool = False
    scheme: str = "affine32"
    band_table: bool = False

    def __post_init__(self) -> None:
        if self.unit not in SHINGLE_UNITS:
            raise ConfigError(f"shingle unit must be one of {', '.join(SHINGLE_UNITS)}, got {self.unit!r}")
        if not 1 <= self.ngram <= 64:
            raise ConfigError(f"ngram must be between 1 and 64, got {self.ngram}")
        if not 2 <= self.num_perm <= 1024:
            raise ConfigError(f"num_perm must be between 2 and 1024, got {self.num_perm}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be between 0 and 2**32-1, got {self.seed}")
        if self.hash not in HASH_FUNCTIONS:
            raise ConfigError(f"hash must be one of {', '.join(HASH_FUNCTIONS)}, got {self.hash!r}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")
        if not 1 <= self.anchors <= 256:
            raise ConfigError(f"anchors must be between 1 and 256, got {self.anchors}")
        if self.scheme != "affine32":
            raise ConfigError(f"only the datasketch 'affine32' scheme is supported, got {self.scheme!r}")
        if self.bands == 0 and self.rows == 0:
            object.__setattr__(self, "bands", 0)
        elif self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm:
            raise ConfigError(
                f"bands x rows must fit in num_perm ({self.bands} x {self.rows} > {self.num_perm})"
                if self.bands * self.rows > self.num_perm
                else f"bands and rows must both be >= 1 (got {self.bands} x {self.rows})"
            )

    def resolved(self) -> IndexConfig:
        """Return a copy whose ``bands``/``rows`` are concrete (datasketch's choice when 0, ``lsh_params``).

        Raises:
            ConfigError: when that choice is a single band (datasketch refuses it too).
        """
        if self.bands:
            return self
        bands, rows = lsh_params(self.threshold, self.num_perm)
        if bands < 2:
            raise ConfigError(f"--threshold {self.threshold} with --num-perm {self.num_perm} gives a single LSH band; "
                              "use more --num-perm, or set --bands and --rows")
        return dataclasses.replace(self, bands=bands, rows=rows)

    def fingerprint(self) -> str:
        """Short string naming every parameter that changes the hashes."""
        c = self.resolved()
        return (
            f"{c.unit}{c.ngram}-{c.hash}-{c.scheme}-p{c.num_perm}-s{c.seed}"
            f"-b{c.bands}x{c.rows}-a{c.anchors}" + ("-lsh" if c.band_table else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.resolved())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown index parameters: {', '.join(sorted(unknown))}")
        return cls(**data)


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's band choice, ``MinHashLSH(threshold, num_perm).b/.r``, computed here.

    The (bands, rows), bands x rows <= num_perm, minimising the equally weighted sum of the
    false-positive area (integral over [0, threshold] of P) and the false-negative area (of
    1 - P over [threshold, 1]), where P(s) = 1 - (1 - s^rows)^bands is the probability that a
    pair of Jaccard s becomes a candidate; ties go to the first pair in datasketch's order
    (bands, then rows, ascending). P is a polynomial of degree bands x rows <= num_perm, so
    Gauss-Legendre quadrature with num_perm // 2 + 1 nodes integrates it exactly (up to
    rounding), where datasketch calls scipy's adaptive ``quad``: ``tests/test_sketch.py``
    checks the two choices equal for every threshold in 0.05..0.95 and num_perm up to 256.
    Computing it here keeps datasketch and scipy (143 MB, ~1 s to import) out of the
    run-time dependencies (``scripts/measure_datasketch.py``).

    Example:
        >>> lsh_params(0.5, 128)
        (25, 5)
    """
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    bands = np.array([b for b, _ in pairs], dtype=np.float64)[:, None]
    rows = np.array([r for _, r in pairs], dtype=np.float64)[:, None]

    def area(lo: float, hi: float, missed: bool) -> Any:
        s = (hi - lo) / 2 * nodes + (hi + lo) / 2
        found = 1 - (1 - s[None, :] ** rows) ** bands
        return (hi - lo) / 2 * ((1 - found if missed else found) @ weights)

    error = area(0.0, threshold, False) * 0.5 + area(threshold, 1.0, True) * 0.5
    return pairs[int(np.argmin(error))]


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Thresholds and options of one audit run.

    Attributes:
        min_containment: Report a pair when exact containment (share of the
            reference item's shingles found in the target record) reaches this.
        min_jaccard: Report a pair when exact Jaccard similarity reaches this.
        miss_rate: Largest tolerated probability that the anchor lookup misses a
            pair right at the threshold; sets the anchor hit threshold per item.
        max_postings: Anchor keys shared by more reference items than this are
            skipped during lookup (boilerplate); affected items use fewer anchors.
        top_evidence: Number of strongest pairs listed in report.json.
        min_item_shingles: Reference items with fewer distinct shingles are too short to be
            evidence: their matches are listed but flagged ``short_item`` and left out of the
            headline figures.
        frequent_item_records: An item matched in more target records than this is flagged
            ``frequent_item`` (boilerplate suspect) and left out of the headline figures;
            0 means automatic: max(50, 1% of the target records read).
        confidence: Confidence level of the reported intervals.
    """

    min_containment: float = 0.5
    min_jaccard: float = 0.5
    miss_rate: float = 0.01
    max_postings: int = 5000
    top_evidence: int = 20
    min_item_shingles: int = 5
    frequent_item_records: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        for name in ("min_containment", "min_jaccard"):
            v = getattr(self, name)
            if not 0.0 < v <= 1.0:
                raise ConfigError(f"{name.replace('_', '-')} must be in (0, 1], got {v}")
        if not 0.0 < self.miss_rate < 0.5:
            raise ConfigError(f"miss rate must be in (0, 0.5), got {self.miss_rate}")
        if self.max_postings < 1:
            raise ConfigError(f"max postings must be >= 1, got {self.max_postings}")
        if self.min_item_shingles < 1:
            raise ConfigError(f"min item shingles must be >= 1, got {self.min_item_shingles}")
        if self.frequent_item_records < 0:
            raise ConfigError(f"frequent item records must be >= 0, got {self.frequent_item_records}")
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.top_evidence < 0:
            raise ConfigError(f"top evidence must be >= 0, got {self.top_evidence}")

    @property
    def min_overlap(self) -> float:
        """Smallest containment any reportable pair can have.

        Jaccard J >= j implies containment >= j, because |R & T| / |R| >= |R & T| / |R | T|.
        """
        return min(self.min_containment, self.min_jaccard)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class SampleConfig:
    """Which target records an audit reads.

    Attributes:
        records: A fraction in (0, 1) (each record kept independently with that
            probability) or a count >= 1 (a uniform sample of exactly that many records),
            or None for every record.
        shards: A fraction in (0, 1) or a count of whole input files (cluster sampling), or None.
        seed: Sampling seed. The sample depends only on (seed, source path, row).
    """

    records: float | int | None = None
    shards: float | int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("records", "shards"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, float) and not 0.0 < v < 1.0:
                raise ConfigError(f"--sample{'-shards' if name == 'shards' else ''} fraction must be in (0, 1), got {v}")
            if isinstance(v, int) and v < 1:
                raise ConfigError(f"--sample{'-shards' if name == 'shards' else ''} count must be >= 1, got {v}")

    @property
    def active(self) -> bool:
        return self.records is not None or self.shards is not None

    @staticmethod
    def parse(value: str | None) -> float | int | None:
        """``"0.01"`` or ``"1%"`` -> fraction, ``"5000"`` -> count."""
        if value is None:
            return None
        v = value.strip()
        try:
            if v.endswith("%"):
                return float(v[:-1]) / 100.0
            return float(v) if any(c in v for c in ".eE") else int(v)
        except ValueError:
            raise ConfigError(f"sample size must be a fraction (0.01, 1%) or a count (5000), got {value!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How records are read from every source of a run.

    Attributes:
        text_field: Field holding the text.
        id_field: Field holding the record id (None: records are named ``<source>#<row>``).
        on_error: ``"fail"`` stops at the first bad record or unreadable input; ``"skip"`` counts
            bad records by reason and records an input's unreadable rest.
        max_record_chars: Longer texts are cut to this many characters (counted).
    """

    text_field: str = "text"
    id_field: str | None = "id"
    on_error: OnError = "fail"
    max_record_chars: int = DEFAULT_MAX_RECORD_CHARS

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"on-error must be one of {', '.join(ON_ERROR)}, got {self.on_error!r}")
        if self.max_record_chars < 1:
            raise ConfigError(f"max-record-chars must be >= 1, got {self.max_record_chars}")

    def to_dict(self) -> dict[str, Any]:
        """The keyword arguments of ``read.sources.read_source`` (and the form checkpoints record)."""
        return {f.name: getattr(self, f.name) for f in _READ_FIELDS}  # asdict deep-copies: 0.1 ms a source


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


_READ_FIELDS = dataclasses.fields(ReadOptions)
