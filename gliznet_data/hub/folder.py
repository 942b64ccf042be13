"""The folder that goes to the Hub (``README.md`` plus ``data/{split}-NNNNN-of-NNNNN.parquet``), built
locally before any upload; ``--dry-run`` / ``--to-folder`` stop there. And the push summary
(``push.json`` beside the shards), which both routes return."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from ..stats import dataset_stats
from .card import render_card
from .settings import PushConfig, Step, quiet
from .source import load_records
from .splits import Splits, assign_splits, label_rate

SUMMARY_FILE = "push.json"


def _arrow(df: pl.DataFrame) -> pa.Table:
    """Plain string and list types: what ``datasets`` maps to ``Value('string')`` and ``List``."""
    table = df.to_arrow()
    fields = []
    for f in table.schema:
        kind = f.type
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            kind = pa.string()
        elif pa.types.is_large_list(kind) or pa.types.is_list_view(kind):
            value = kind.value_type
            if pa.types.is_large_string(value) or pa.types.is_string_view(value):
                value = pa.string()
            kind = pa.list_(value)
        fields.append(pa.field(f.name, kind))
    return table.cast(pa.schema(fields))


def _write_split(frame: pl.DataFrame, name: str, data_dir: Path, rows_per_file: int) -> list[str]:
    count = max(1, -(-frame.height // rows_per_file))
    names = []
    for index in range(count):
        part = frame.slice(index * rows_per_file, rows_per_file)
        file = f"{name}-{index:05d}-of-{count:05d}.parquet"
        pq.write_table(_arrow(part), data_dir / file, compression="zstd")
        names.append(f"data/{file}")
    return names


@dataclass
class Built:
    """A folder ready to upload, and what went into it."""

    folder: Path
    files: list[str]
    splits: Splits
    rows: int


def build_folder(settings: PushConfig, path: Path, folder: Path, on_step: Step = quiet) -> Built:
    """Write the upload folder for the records under ``path`` into the empty folder ``folder``."""
    on_step(f"reading and validating {path}")
    df, manifest = load_records(path)
    splits = assign_splits(df, settings.split_seed, settings.validation, settings.unseen_labels)
    on_step(f"writing {df.height:,} records")
    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    files = {name: _write_split(frame, name, data_dir, settings.rows_per_file)
             for name, frame in splits.frames.items()}
    schema = pq.read_schema(folder / files["train"][0])
    card = render_card(settings, splits, files, dataset_stats(df, manifest), manifest, schema)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return Built(folder=folder, files=["README.md"] + [f for names in files.values() for f in names],
                 splits=splits, rows=df.height)


def _file_entries(built: Built) -> list[dict[str, Any]]:
    out = []
    for rel in built.files:
        data = (built.folder / rel).read_bytes()
        out.append({"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return out


def summary(settings: PushConfig, built: Built, **extra: Any) -> dict[str, Any]:
    """What a push did, as JSON: printed with ``--json`` and saved as ``push.json``."""
    splits = built.splits
    counts = {name: frame.height for name, frame in splits.frames.items()}
    notes = []
    if settings.validation > 0 and "validation" not in counts:
        notes.append(f"no record fell in the validation fraction {settings.validation}; "
                     "there is no validation split")
    if splits.held_out:
        notes.append(f"{len(splits.held_out):,} labels held out: test holds {counts.get('test', 0):,} of {built.rows:,} "
                     f"records; {splits.negatives_dropped:,} held-out hard negatives dropped from "
                     f"{splits.records_trimmed:,} train/validation records"
                     + (f"; {splits.moved_to_test:,} records whose every hard negative was held out went to test"
                        if splits.moved_to_test else ""))
    return {
        "repo_id": settings.repo_id,
        "rows": built.rows,
        "splits": counts,
        "split_seed": settings.split_seed,
        "validation": settings.validation,
        "unseen_labels": settings.unseen_labels,
        "label_hold_out_rate": round(label_rate(settings.unseen_labels), 6),
        "distinct_labels": splits.distinct_labels,
        "held_out_labels": splits.held_out,
        "held_out_negatives_dropped": {"labels": splits.negatives_dropped, "records": splits.records_trimmed},
        "records_moved_to_test": splits.moved_to_test,
        "files": _file_entries(built),
        "notes": notes,
        **extra,
    }


def source_dir(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def write_summary(path: Path, result: dict[str, Any]) -> Path | None:
    """``push.json`` beside the shards, written atomically; a read-only source folder only costs the
    file, not the push."""
    target = source_dir(path) / SUMMARY_FILE
    tmp = target.with_name(f".{SUMMARY_FILE}.tmp")
    try:
        tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        tmp.replace(target)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return None
    return target


def _is_push_folder(folder: Path) -> bool:
    """Only a folder this command wrote may be replaced: README.md and data/*.parquet, nothing else."""
    for item in folder.rglob("*"):
        rel = item.relative_to(folder).as_posix()
        if item.is_dir() and rel == "data":
            continue
        if item.is_file() and (rel == "README.md" or re.fullmatch(r"data/[^/]+\.parquet", rel)):
            continue
        return False
    return True


def default_folder(path: Path) -> Path:
    """``data`` (or a file in it) -> ``data-hub`` beside it: outside the shard folder, so never read as shards."""
    source = source_dir(path).resolve()
    return source.with_name(f"{source.name}-hub")


def write_folder(settings: PushConfig, path: Path, dest: Path, on_step: Step = quiet) -> dict[str, Any]:
    """``--dry-run`` / ``--to-folder``: exactly the folder an upload would send, and no network at all."""
    if not path.exists():
        raise UserError(f"{path} does not exist")
    source, target = source_dir(path).resolve(), dest.resolve()
    if target == source or source in target.parents:
        raise UserError(f"--to-folder {dest} lies inside {source}; its Parquet files would be read as shards next time")
    if target in source.parents:
        raise UserError(f"--to-folder {dest} contains {path}; choose a folder outside the data")
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not _is_push_folder(target))):
        raise UserError(f"{dest} exists and is not a folder written by `gliznet-data push`; choose another --to-folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        built = build_folder(settings, path, staging, on_step)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    built.folder = target
    return summary(settings, built, dry_run=True, folder=str(dest), commit=None, changed=None)
