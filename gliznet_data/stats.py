"""Dataset statistics: what the GliZNet paper's dataset table reports, plus coverage and rejects.

Two numbers say whether labels teach transfer rather than label recognition: the share of distinct
labels seen in both roles (a positive of some record and a hard negative of another), and how often
labels recur (used once, 2-4 times, 5 or more times, counting both roles).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from .errors import UserError
from .prompting import broad_vocabulary
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
    """The bucket whose requested range holds the word count (the last one is open-ended)."""
    names = list(LENGTH_BUCKETS)
    expr = pl.lit(names[-1])
    for name in reversed(names[:-1]):
        expr = pl.when(words <= LENGTH_BUCKETS[name][1]).then(pl.lit(name)).otherwise(expr)
    return expr


def label_profile(df: pl.DataFrame) -> dict[str, Any]:
    """Both-role share and label-frequency profile of the labels of ``df``."""
    positives = df.get_column("labels").explode().drop_nulls()
    negatives = df.get_column("not_labels").explode().drop_nulls()
    uses = pl.concat([positives, negatives]).value_counts(name="uses").get_column("uses")
    distinct = uses.len()
    both = len(set(positives.unique().to_list()) & set(negatives.unique().to_list()))
    bands = {"once": int((uses == 1).sum()), "2-4": int(((uses >= 2) & (uses <= 4)).sum()),
             "5+": int((uses >= 5).sum())}
    return {
        "both_roles": {"labels": both, "share": round(both / distinct, 4) if distinct else 0.0},
        "label_uses": {band: {"labels": n, "share": round(n / distinct, 4) if distinct else 0.0}
                       for band, n in bands.items()},
    }


def broad_label_records(df: pl.DataFrame) -> dict[str, Any]:
    """Records carrying a broad class name the prompts quote (task_hints.yaml), as a positive or negative."""
    vocabulary = broad_vocabulary()
    positive = [any(label in vocabulary for label in labels or ()) for labels in df.get_column("labels").to_list()]
    negative = [any(label in vocabulary for label in labels or ()) for labels in df.get_column("not_labels").to_list()]
    either = sum(p or n for p, n in zip(positive, negative))
    return {"records": either, "share": round(either / df.height, 4), "records_with_broad_positive": sum(positive)}


def check_label_columns(df: pl.DataFrame) -> None:
    """Statistics count labels in lists of strings; anything else would be counted wrong (a string's
    characters) or not at all (nulls), so it is refused with the count of offending rows."""
    for column in ("labels", "not_labels"):
        dtype = df.schema[column]
        if not (isinstance(dtype, pl.List) and dtype.inner in (pl.String, pl.Null)):
            raise UserError(f"column {column} holds {dtype} values, not lists of strings; "
                            "see `gliznet-data validate` for the rows")
        nulls = df.get_column(column).null_count()
        if nulls:
            raise UserError(f"column {column} is null in {nulls:,} of {df.height:,} rows; "
                            "see `gliznet-data validate` for the rows")


def dataset_stats(df: pl.DataFrame, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    df = with_text_column(df)
    if df.height == 0:
        raise UserError("the dataset is empty")
    check_label_columns(df)
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
        **label_profile(df),
        "broad_labels": broad_label_records(df),
    }
    for column in ("domain", "task_type", "genre", "tone", "label_granularity", "request_mode", "provider", "model"):
        if column in df.columns and (counts := _counts(df, column)):
            stats[column] = counts
    if manifest:
        stats["rejects"] = manifest.get("rejects", {})
        stats["generation"] = {k: manifest.get(k) for k in ("counts", "tokens", "cost_usd", "duration_seconds")}
    return stats


def _counts(df: pl.DataFrame, column: str) -> dict[str, int]:
    counts = df.get_column(column).drop_nulls().value_counts(sort=True)
    return {str(value): int(count) for value, count in counts.iter_rows()}
