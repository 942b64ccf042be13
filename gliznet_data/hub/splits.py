"""Deterministic splits: ``validation`` by record id, a zero-shot ``test`` split by held-out labels.

Every decision hashes the split seed with one record's id or one label, never row order or other
records, so pushing more data later never moves an existing record to another split.

The zero-shot split: each distinct label is held out when its hash falls below ``label_rate(F)``.
A record belongs to ``test`` when a held-out label is among its positives. A held-out label that is
only a hard negative of a training record is dropped from that record's ``not_labels`` (a smaller,
still true list); the drops are counted. A record left with fewer hard negatives than the record
validators allow goes to ``test`` instead (also counted). So no held-out label reaches ``train`` or
``validation``, and every record is published.

Why a rate and not F itself: a record goes to ``test`` as soon as one of its positives is held out,
so with F of the labels held out a record with k positives lands there with chance 1 - (1 - F)^k,
twice F for the two or three positives records carry. Holding out labels at 1 - (1 - F)^(1/2.5) puts
a record with ``TYPICAL_POSITIVES`` (2.5) positives in ``test`` with chance F: about F of the records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl
from pydantic import ValidationError

from ..errors import UserError
from ..records import Example

SPLITS = ("train", "validation", "test")
TYPICAL_POSITIVES = 2.5  # the positives per record the recipe aims at (seed set v2: 2.6)


def unit(seed: int, kind: str, key: str) -> float:
    """A stable number in [0, 1) for (seed, key): the same on every machine and Python run."""
    digest = hashlib.sha256(f"{seed}:{kind}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def label_rate(share: float) -> float:
    """The chance a label is held out so that about ``share`` of the records go to ``test``."""
    return 1 - (1 - share) ** (1 / TYPICAL_POSITIVES) if share > 0 else 0.0


@dataclass
class Splits:
    frames: dict[str, pl.DataFrame]
    held_out: list[str]
    distinct_labels: int
    negatives_dropped: int = 0  # held-out labels removed from the hard negatives of train/validation records
    records_trimmed: int = 0  # train/validation records that lost at least one hard negative
    moved_to_test: int = 0  # records sent to test because every hard negative they had was held out


def _keeps_enough(text: str, labels: list[str], not_labels: list[str]) -> bool:
    """Whether a record with its held-out negatives dropped is still a valid record (records.py decides)."""
    try:
        Example.model_validate({"text": text, "labels": labels, "not_labels": not_labels})
    except ValidationError:
        return False
    return True


def assign_splits(df: pl.DataFrame, seed: int, validation: float, unseen_labels: float) -> Splits:
    """Split ``df`` (labels already normalized: ``source.load_records``) as the module docstring says."""
    positives = df.get_column("labels").to_list()
    negatives = df.get_column("not_labels").to_list()
    distinct = sorted({label for row in positives + negatives for label in row})
    held: set[str] = set()
    if unseen_labels > 0:
        rate = label_rate(unseen_labels)
        held = {label for label in distinct if unit(seed, "label", label) < rate}
        if not held:  # a small label set can miss the rate entirely; hold out the one that came closest
            held = {min(distinct, key=lambda label: unit(seed, "label", label))}
    split: list[str] = []
    kept_negatives: list[list[str]] = []
    dropped = trimmed = moved = 0
    for rid, text, pos, neg in zip(df.get_column("id").to_list(), df.get_column("text").to_list(),
                                   positives, negatives):
        if held and held.intersection(pos):
            split.append("test")
            kept_negatives.append(neg)
            continue
        remaining = [label for label in neg if label not in held]
        if len(remaining) < len(neg):
            if not _keeps_enough(text, pos, remaining):
                moved += 1
                split.append("test")
                kept_negatives.append(neg)
                continue
            dropped += len(neg) - len(remaining)
            trimmed += 1
        split.append("validation" if unit(seed, "id", rid) < validation else "train")
        kept_negatives.append(remaining)
    tagged = df.with_columns(pl.Series("not_labels", kept_negatives, dtype=pl.List(pl.String)),
                             pl.Series("__split", split))
    frames = {name: tagged.filter(pl.col("__split") == name).drop("__split") for name in SPLITS}
    frames = {name: frame for name, frame in frames.items() if frame.height}
    if "train" not in frames:
        counts = ", ".join(f"{name} {frame.height:,}" for name, frame in frames.items())
        raise UserError(f"no record is left for train ({counts}); use a smaller --unseen-labels or --validation")
    for name in ("train", "validation"):  # the zero-shot promise, checked on the data itself
        if name in frames and held:
            seen = {x for column in ("labels", "not_labels")
                    for x in frames[name].get_column(column).explode().drop_nulls().to_list()}
            if seen & held:
                raise AssertionError(f"held-out labels leaked into {name}: {sorted(seen & held)[:5]}")
    return Splits(frames, sorted(held), len(distinct), dropped, trimmed, moved)
