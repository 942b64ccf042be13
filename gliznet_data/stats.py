"""Dataset statistics: what the GliZNet paper's dataset table reports, plus coverage and rejects."""

from __future__ import annotations

from typing import Any

import polars as pl

from .errors import UserError
from .records import LENGTH_BUCKETS

TEXT_COLUMNS = ("text", "sentence")  # ours, and ZSHOT-HARDSET's name for the same column


def with_text_column(df: pl.DataFrame) -> pl.DataFrame:
    """The frame with its text column named ``text``; a frame without the contract columns is a UserError."""
    if "text" not in df.columns and "sentence" in df.columns:
        df = df.rename({"sentence": "text"})
    missing = [c for c in ("text", "labels", "not_labels") if c not in df.columns]
    if missing:
        raise UserError(f"data lacks column(s) {', '.join(missing)} (found: {', '.join(df.columns)})")
    return df


def _bucket(words: pl.Expr) -> pl.Expr:
    (_, short_max), (_, medium_max) = LENGTH_BUCKETS["short"], LENGTH_BUCKETS["medium"]
    return (pl.when(words <= short_max).then(pl.lit("short"))
            .when(words <= medium_max).then(pl.lit("medium")).otherwise(pl.lit("long")))


def dataset_stats(df: pl.DataFrame, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    df = with_text_column(df)
    if df.height == 0:
        raise UserError("the dataset is empty")
    words = pl.col("text").str.extract_all(r"\S+").list.len().alias("words")  # as records.word_count
    lengths = df.select(words.cast(pl.Int64)).get_column("words")
    positives = df.get_column("labels").explode().drop_nulls()
    negatives = df.get_column("not_labels").explode().drop_nulls()
    stats: dict[str, Any] = {
        "samples": df.height,
        "unique_labels": pl.concat([positives, negatives]).n_unique(),
        "unique_positive_labels": positives.n_unique(),
        "unique_negative_labels": negatives.n_unique(),
        "avg_positives": round(df.get_column("labels").list.len().mean(), 3),
        "avg_negatives": round(df.get_column("not_labels").list.len().mean(), 3),
        "text_words": {
            "min": int(lengths.min()), "p25": float(lengths.quantile(0.25)), "median": float(lengths.median()),
            "mean": round(float(lengths.mean()), 2), "p75": float(lengths.quantile(0.75)), "max": int(lengths.max()),
        },
        "length_buckets": _counts(df.select(_bucket(words).alias("bucket")), "bucket"),
    }
    for column in ("domain", "task_type", "genre", "tone", "provider", "model"):
        if column in df.columns:
            stats[column] = _counts(df, column)
    if manifest:
        stats["rejects"] = manifest.get("rejects", {})
        stats["generation"] = {k: manifest.get(k) for k in ("counts", "tokens", "cost_usd", "duration_seconds")}
    return stats


def _counts(df: pl.DataFrame, column: str) -> dict[str, int]:
    counts = df.get_column(column).value_counts(sort=True)
    return {str(value): int(count) for value, count in counts.iter_rows()}
