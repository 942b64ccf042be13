"""Seeded sampler of generation parameters.

Request ``i`` of a run with seed ``s`` is drawn from its own RNG seeded with ``"s:i"``, so any
request can be re-drawn on its own: resuming a run, exporting a batch file and replaying a
request all see the same parameters without replaying the sequence before it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from pydantic import BaseModel

from .errors import UserError
from .records import LENGTH_BUCKETS

DIMENSIONS = ("domain", "task_type", "length_bucket", "genre", "tone", "num_labels")


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


def merge_weights(base: Mapping[str, Mapping], overrides: Mapping[str, Mapping] | None) -> dict[str, dict]:
    """Replace whole dimensions of ``base`` by those in ``overrides`` and check the result."""
    merged = {dim: dict(table) for dim, table in base.items()}
    for dim, table in (overrides or {}).items():
        if dim not in DIMENSIONS:
            raise UserError(f"unknown diversity dimension {dim!r} (known: {', '.join(DIMENSIONS)})")
        merged[dim] = dict(table)
    for dim in DIMENSIONS:
        table = merged.get(dim)
        if not table:
            raise UserError(f"diversity dimension {dim!r} has no values")
        for value, weight in table.items():
            if not isinstance(weight, (int, float)) or weight < 0:
                raise UserError(f"diversity weight for {dim}={value!r} must be a number >= 0")
        if sum(table.values()) <= 0:
            raise UserError(f"diversity dimension {dim!r} has only zero weights")
    unknown = set(merged["length_bucket"]) - set(LENGTH_BUCKETS)
    if unknown:
        raise UserError(f"unknown length bucket(s) {sorted(unknown)} (known: {', '.join(LENGTH_BUCKETS)})")
    try:
        merged["num_labels"] = {int(k): v for k, v in merged["num_labels"].items()}
    except ValueError:
        raise UserError("num_labels values must be integers") from None
    if min(merged["num_labels"]) < 1:
        raise UserError("num_labels values must be >= 1")
    return merged


class DiversitySampler:
    def __init__(self, weights: Mapping[str, Mapping], seed: int):
        self.seed = seed
        # Sorted so that the YAML's key order cannot change the draws.
        self._tables = {
            dim: (sorted(weights[dim], key=str), [weights[dim][v] for v in sorted(weights[dim], key=str)])
            for dim in DIMENSIONS
        }

    def draw(self, index: int) -> Draw:
        rng = random.Random(f"{self.seed}:{index}")
        picked = {dim: rng.choices(values, weights)[0] for dim, (values, weights) in self._tables.items()}
        # Ask for a few more negatives than positives: hard negatives are the point of the data.
        picked["num_not_labels"] = picked["num_labels"] + rng.randint(1, 2)
        return Draw(index=index, **picked)
