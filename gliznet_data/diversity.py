"""Seeded sampler of generation parameters.

Request ``i`` of a run with seed ``s`` is drawn from its own RNG seeded with ``"s:i"``, so any
request can be re-drawn on its own: resuming a run, exporting a batch file and replaying a
request all see the same parameters without replaying the sequence before it.

The draws happen in a fixed order: the six original dimensions, the negatives count, then the
optional dimensions (label granularity, request mode) and the target word counts. New draws come
last so that a table from before them (an archived prompt version) still yields its old draws.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from pydantic import BaseModel

from .errors import UserError
from .records import LENGTH_BUCKETS

DIMENSIONS = ("domain", "task_type", "length_bucket", "genre", "tone", "num_labels")
# Absent only from tables older than prompt version 2: such a table draws neither.
OPTIONAL_DIMENSIONS = ("label_granularity", "request_mode")
GRANULARITIES = ("broad", "mixed", "specific")
REQUEST_MODES = ("single", "bundle")
# The shortest text a target word count asks for: a 1-word "text" is a label, not a text.
MIN_TARGET_WORDS = 4


class Draw(BaseModel):
    """The parameters of one request."""

    index: int
    domain: str
    task_type: str
    length_bucket: str
    genre: str
    tone: str
    num_labels: int
    num_not_labels: int
    label_granularity: str | None = None
    request_mode: str = "single"
    # A bundle's texts share one pool of ``pool_size`` labels, each text labelled against all of it.
    pool_size: int | None = None
    target_words: list[int] = []  # one per example, drawn inside the length bucket


def merge_weights(base: Mapping[str, Mapping], overrides: Mapping[str, Mapping] | None) -> dict[str, dict]:
    """Replace whole dimensions of ``base`` by those in ``overrides`` and check the result."""
    merged = {dim: dict(table) for dim, table in base.items()}
    for dim, table in (overrides or {}).items():
        if dim not in DIMENSIONS + OPTIONAL_DIMENSIONS:
            raise UserError(f"unknown diversity dimension {dim!r} "
                            f"(known: {', '.join(DIMENSIONS + OPTIONAL_DIMENSIONS)})")
        merged[dim] = dict(table)
    for dim in DIMENSIONS + tuple(d for d in OPTIONAL_DIMENSIONS if d in merged):
        table = merged.get(dim)
        if not table:
            raise UserError(f"diversity dimension {dim!r} has no values")
        for value, weight in table.items():
            if not isinstance(weight, (int, float)) or weight < 0:
                raise UserError(f"diversity weight for {dim}={value!r} must be a number >= 0")
        if sum(table.values()) <= 0:
            raise UserError(f"diversity dimension {dim!r} has only zero weights")
    for dim, known in (("length_bucket", tuple(LENGTH_BUCKETS)), ("label_granularity", GRANULARITIES),
                       ("request_mode", REQUEST_MODES)):
        unknown = set(merged.get(dim, ())) - set(known)
        if unknown:
            raise UserError(f"unknown {dim.replace('_', ' ')}(s) {sorted(unknown)} (known: {', '.join(known)})")
    try:
        merged["num_labels"] = {int(k): v for k, v in merged["num_labels"].items()}
    except ValueError:
        raise UserError("num_labels values must be integers") from None
    if min(merged["num_labels"]) < 1:
        raise UserError("num_labels values must be >= 1")
    return merged


def with_bundle_share(overrides: Mapping[str, Mapping] | None, share: float | None) -> dict[str, dict]:
    """Diversity overrides with the request-mode table set from a bundle share (None: leave it)."""
    merged = {dim: dict(table) for dim, table in (overrides or {}).items()}
    if share is not None:
        merged["request_mode"] = {"single": round(1 - share, 6), "bundle": share}
    return merged


class DiversitySampler:
    def __init__(self, weights: Mapping[str, Mapping], seed: int, k: int = 5):
        """``k``: examples per request; a target length is drawn for each, and a bundle needs two."""
        self.seed = seed
        self.k = k
        # Sorted so that the YAML's key order cannot change the draws.
        self._tables = {
            dim: (sorted(weights[dim], key=str), [weights[dim][v] for v in sorted(weights[dim], key=str)])
            for dim in DIMENSIONS + OPTIONAL_DIMENSIONS if dim in weights
        }

    def draw(self, index: int) -> Draw:
        rng = random.Random(f"{self.seed}:{index}")
        picked = {dim: rng.choices(*self._tables[dim])[0] for dim in DIMENSIONS}
        # Ask for a few more negatives than positives: hard negatives are the point of the data.
        picked["num_not_labels"] = picked["num_labels"] + rng.randint(1, 2)
        for dim in OPTIONAL_DIMENSIONS:
            if dim in self._tables:
                picked[dim] = rng.choices(*self._tables[dim])[0]
        low, high = LENGTH_BUCKETS[picked["length_bucket"]]
        picked["target_words"] = [rng.randint(max(low, MIN_TARGET_WORDS), high) for _ in range(self.k)]
        if picked.get("request_mode") == "bundle":
            if self.k < 2:
                picked["request_mode"] = "single"  # one text cannot hold a label in both roles
            else:
                # Every pool label must be a positive somewhere: k texts hold k * num_labels positives.
                pool = min(picked["num_labels"] + picked["num_not_labels"], self.k * picked["num_labels"])
                picked["pool_size"] = pool
                picked["num_not_labels"] = pool - picked["num_labels"]
        return Draw(index=index, **picked)
