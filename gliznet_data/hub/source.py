"""The records a push publishes: every row checked by the record validators, labels in their stored form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from .. import shards
from ..errors import UserError
from ..records import COLUMNS, normalize_label, record_id, validate_rows
from ..stats import with_text_column


def load_records(path: Path) -> tuple[pl.DataFrame, dict[str, Any] | None]:
    """All rows under ``path`` sorted by id, and the run's manifest if there is one; any invalid row
    refuses the whole push, because a card that promises validated records must be true."""
    df = with_text_column(shards.read_table(path))
    if df.height == 0:
        raise UserError(f"{path} holds no records")
    report = validate_rows(df.iter_rows(named=True))
    if report.valid != report.rows:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in report.rejects.items())
        raise UserError(f"{report.rows - report.valid:,} of {report.rows:,} rows under {path} fail validation "
                        f"({reasons}); nothing was pushed; see `gliznet-data validate {path}`")
    # Stored labels take the validators' form (already so for our shards; not always for outside data), which
    # is what the card promises: normalized, and no hard negative that is also a positive.
    positives = [[normalize_label(x) for x in row] for row in df.get_column("labels").to_list()]
    negatives = [[y for y in dict.fromkeys(normalize_label(x) for x in row) if y not in pos]
                 for row, pos in zip(df.get_column("not_labels").to_list(), positives)]
    df = df.with_columns(pl.Series("labels", positives, dtype=pl.List(pl.String)),
                         pl.Series("not_labels", negatives, dtype=pl.List(pl.String)))
    if "id" not in df.columns:
        df = df.with_columns(pl.Series("id", [record_id(t) for t in df.get_column("text")]))
    ordered = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
    manifest = shards.read_manifest(path) if path.is_dir() else None
    return df.select(ordered).sort("id"), manifest
