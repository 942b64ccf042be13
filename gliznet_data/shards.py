"""Parquet shard I/O: atomic shard and manifest writes, reading data back, dedupe keys.

A shard that exists is complete: it is written to a hidden temporary file, synced, then renamed.
The manifest is written the same way after each shard, so a crash leaves at worst a shard the
manifest does not list yet; readers trust the shard files on disk, not the manifest's list.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterable

import polars as pl

from .errors import UserError
from .records import COLUMNS

SCHEMA = pl.Schema({
    "id": pl.String,
    "text": pl.String,
    "labels": pl.List(pl.String),
    "not_labels": pl.List(pl.String),
    "domain": pl.String,
    "task_type": pl.String,
    "length_bucket": pl.String,
    "genre": pl.String,
    "tone": pl.String,
    "label_granularity": pl.String,
    "request_mode": pl.String,
    "request_index": pl.Int64,
    "provider": pl.String,
    "model": pl.String,
    "prompt_version": pl.String,
    "seed": pl.Int64,
    "created_at": pl.Datetime("us", "UTC"),
})
assert tuple(SCHEMA.names()) == COLUMNS

LIST_COLUMNS = ("labels", "not_labels")
_SEP = "\x1f"  # a control character, which the validators keep out of labels

MANIFEST = "manifest.json"
SHARD_GLOB = "shard-*.parquet"


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def _temp_path(final: Path) -> Path:
    """A hidden temporary name of this process only, so no two writers ever share one."""
    return final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _write_atomically(final: Path, write: Any) -> None:
    """``write(tmp)``, sync, rename onto ``final``; a failed write (a full disk) leaves nothing behind,
    which also gives its space back."""
    tmp = _temp_path(final)
    try:
        write(tmp)
        _fsync_replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def shard_files(path: Path) -> list[Path]:
    """Parquet files under ``path`` (searched recursively), or ``path`` itself if it is a file."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))


def next_shard_path(directory: Path) -> Path:
    taken = [int(p.stem.split("-")[1]) for p in directory.glob(SHARD_GLOB) if p.stem.split("-")[1].isdigit()]
    return directory / f"shard-{max(taken, default=-1) + 1:05d}.parquet"


def _list_column(values: list[list[str]]) -> pl.Series:
    """Polars converts Python lists row by row; joining and splitting strings is ten times faster."""
    joined = pl.Series([_SEP.join(v) for v in values], dtype=pl.String)
    empty = pl.lit([], dtype=pl.List(pl.String))
    return pl.select(pl.when(joined == "").then(empty).otherwise(joined.str.split(_SEP))).to_series()


def write_shard(directory: Path, records: list[Any]) -> Path:
    """Write ``records`` (objects with one attribute per column) as the next shard; returns its path."""
    final = next_shard_path(directory)
    columns = {name: [getattr(r, name) for r in records] for name in COLUMNS}
    frame = pl.DataFrame({k: v for k, v in columns.items() if k not in LIST_COLUMNS},
                         schema={k: v for k, v in SCHEMA.items() if k not in LIST_COLUMNS})
    frame = frame.with_columns(_list_column(columns[k]).alias(k) for k in LIST_COLUMNS).select(COLUMNS)
    # Encoded in memory, then written by Python: a full disk is then an OSError with its errno, which
    # polars' own file writer would wrap in a ComputeError.
    encoded = io.BytesIO()
    frame.write_parquet(encoded, compression="zstd")
    _write_atomically(final, lambda tmp: tmp.write_bytes(encoded.getbuffer()))
    return final


def remove_partial_files(directory: Path) -> None:
    """Temporary files left by a killed run hold nothing that was committed (called under the folder lock,
    so no live writer owns one)."""
    for tmp in directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def _read_files(files: list[Path], columns: Iterable[str] | None) -> pl.DataFrame:
    frames = []
    for file in files:
        try:
            frames.append(pl.read_parquet(file, columns=list(columns) if columns else None))
        except Exception as exc:  # polars raises several types for unreadable files
            raise UserError(f"cannot read {file}: {str(exc).splitlines()[0][:200]}") from None
    return pl.concat(frames, how="diagonal_relaxed")


def read_table(path: Path, columns: Iterable[str] | None = None) -> pl.DataFrame:
    """All rows under ``path`` as one frame; a missing, empty or corrupt input is a UserError."""
    if not path.exists():
        raise UserError(f"{path} does not exist")
    files = shard_files(path)
    if not files:
        raise UserError(f"no Parquet files under {path}")
    return _read_files(files, columns)


def existing_ids(directory: Path) -> list[str]:
    """Ids stored in the shards of ``directory``, one per row."""
    files = sorted(directory.glob(SHARD_GLOB))
    return _read_files(files, ["id"]).get_column("id").to_list() if files else []


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"{path} is not valid JSON; move it away to start a new run there") from None


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, default=str) + "\n"
    _write_atomically(directory / MANIFEST, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def compress_ranges(indices: Iterable[int]) -> list[list[int]]:
    """[0, 1, 2, 5, 6] -> [[0, 2], [5, 6]]: a manifest stays small over 10,000 requests."""
    ranges: list[list[int]] = []
    for i in sorted(indices):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ranges


def expand_ranges(ranges: Iterable[Iterable[int]]) -> set[int]:
    return {i for start, end in ranges for i in range(start, end + 1)}
