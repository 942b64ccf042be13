"""`gliznet-model predict`: score a file of texts against candidate labels, streaming and resumable.

The input (Parquet, JSONL or CSV) is read in batches, so a million-row file never sits in memory. Scores go to part
files under `OUTPUT.parts/`, each written atomically (temporary file, fsync, rename) and named by the rows it holds;
a rerun of the same command skips the rows already in parts, and a finished run merges them into OUTPUT (also
atomically) and writes a JSON summary beside it. Scoring is `predict_batch`, the one prediction path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .pipeline import activation_for, split_labels

INPUT_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
OUTPUT_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl"}
PART = re.compile(r"^part-(\d{12})-(\d{12})\.(parquet|jsonl)$")
Progress = Callable[[int, "int | None"], None]


class PredictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    input: Path
    output: Path
    labels: list[str]
    text_column: str = "text"
    multi_label: bool = False
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    batch_size: int = Field(32, ge=1)
    part_rows: int = Field(10_000, ge=1, description="Rows per part file at most")
    flush_seconds: float = Field(60.0, gt=0, description="A part is also written after this long")
    overwrite: bool = False

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        return split_labels(value)

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a rerun to continue the same job (rows, labels and scoring all agree)."""
        return {"model": self.model, "input": str(self.input.resolve()), "input_bytes": self.input.stat().st_size,
                "text_column": self.text_column, "labels": self.labels, "multi_label": self.multi_label,
                "threshold": self.threshold}


def read_labels(spec: str | None, labels_file: Path | None) -> list[str]:
    """--labels "a,b,c" or --labels-file (one label per line, or a JSON list); exactly one of them."""
    if (spec is None) == (labels_file is None):
        raise ValueError("give the candidate labels with --labels a,b,c or --labels-file FILE (one of them)")
    if spec is not None:
        return split_labels(spec)
    try:
        body = labels_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read labels file {labels_file}: {exc.strerror}") from None
    if body.lstrip().startswith("["):
        try:
            labels = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValueError(f"labels file {labels_file} is not a valid JSON list: {exc.msg}") from None
        return split_labels(labels)
    return split_labels([line for line in body.splitlines() if line.strip()])


# ------------------------------------------------------------------------------------------------- reading
def input_format(path: Path) -> str:
    fmt = INPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown input format {path.suffix!r}; use .parquet, .jsonl or .csv")
    if not path.is_file():
        raise ValueError(f"input file {path} does not exist")
    return fmt


def count_rows(path: Path) -> int | None:
    """Rows in the input when cheap to know (Parquet metadata, JSONL lines); None for CSV (quoted newlines)."""
    fmt = input_format(path)
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "jsonl":
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    return None


def iter_texts(path: Path, column: str, batch_rows: int) -> Iterator[list[str | None]]:
    """The text column in batches of at most `batch_rows`, without loading the file."""
    fmt = input_format(path)
    if fmt == "parquet":
        handle = pq.ParquetFile(path)
        if column not in handle.schema_arrow.names:
            raise ValueError(f"{path} has no column {column!r} (columns: {', '.join(handle.schema_arrow.names)})")
        for batch in handle.iter_batches(batch_size=batch_rows, columns=[column]):
            yield [None if x is None else str(x) for x in batch.column(0).to_pylist()]
    elif fmt == "jsonl":
        texts: list[str | None] = []
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise ValueError(f"{path}:{number}: not valid JSON") from None
                if not isinstance(record, dict) or column not in record:
                    raise ValueError(f"{path}:{number}: no field {column!r}")
                value = record[column]
                texts.append(None if value is None else str(value))
                if len(texts) == batch_rows:
                    yield texts
                    texts = []
        if texts:
            yield texts
    else:
        from pyarrow import csv

        try:
            reader = csv.open_csv(path, read_options=csv.ReadOptions(block_size=1 << 20),
                                  convert_options=csv.ConvertOptions(include_columns=[column],
                                                                     column_types={column: pa.string()}))
        except (pa.ArrowInvalid, KeyError) as exc:
            raise ValueError(f"{path}: cannot read column {column!r} as CSV: {str(exc).splitlines()[0]}") from None
        pending: list[str | None] = []
        for batch in reader:
            pending.extend(batch.column(0).to_pylist())
            while len(pending) >= batch_rows:
                yield pending[:batch_rows]
                pending = pending[batch_rows:]
        if pending:
            yield pending


# ------------------------------------------------------------------------------------------------- writing
def _schema(threshold: float | None) -> pa.Schema:
    fields = [pa.field("row", pa.int64()), pa.field("text", pa.string()), pa.field("labels", pa.list_(pa.string())),
              pa.field("scores", pa.list_(pa.float64())), pa.field("top_label", pa.string()),
              pa.field("top_score", pa.float64())]
    if threshold is not None:
        fields.append(pa.field("predicted", pa.list_(pa.string())))
    return pa.schema(fields)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _write_rows(path: Path, rows: list[dict[str, Any]], fmt: str, schema: pa.Schema) -> None:
    def write(tmp: Path) -> None:
        if fmt == "parquet":
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
        else:
            with tmp.open("wb") as handle:
                for row in rows:
                    handle.write(orjson.dumps(row) + b"\n")

    _atomic_write(path, write)


def _done_parts(parts: Path, ext: str) -> list[tuple[int, int, Path]]:
    """The contiguous run of parts from row 0; anything after a gap is from a broken run and is removed."""
    found = []
    for entry in parts.iterdir():
        match = PART.match(entry.name)
        if match and match.group(3) == ext:
            found.append((int(match.group(1)), int(match.group(2)), entry))
        elif entry.name.startswith("."):  # a temporary file a killed run left behind
            entry.unlink()
    found.sort()
    kept, end = [], 0
    for start, stop, entry in found:
        if start == end:
            kept.append((start, stop, entry))
            end = stop
        else:
            entry.unlink()
    return kept


def _merge(parts: list[tuple[int, int, Path]], output: Path, fmt: str, schema: pa.Schema) -> tuple[int, Counter]:
    """Concatenate the parts into `output` atomically; returns the empty-text count and the top-label counts of
    all rows, this run's and earlier runs' alike."""
    empty, counts = 0, Counter()

    def tally(top_labels: list[str | None]) -> None:
        nonlocal empty
        empty += sum(1 for x in top_labels if x is None)
        counts.update(x for x in top_labels if x is not None)

    def write(tmp: Path) -> None:
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, schema) as writer:
                for _, _, part in parts:
                    table = pq.read_table(part, schema=schema)
                    tally(table.column("top_label").to_pylist())
                    writer.write_table(table)
        else:
            with tmp.open("wb") as out:
                for _, _, part in parts:
                    with part.open("rb") as handle:
                        for line in handle:
                            tally([orjson.loads(line)["top_label"]])
                            out.write(line)

    _atomic_write(output, write)
    return empty, counts


def summary_path(output: Path) -> Path:
    return output.with_name(output.name.rsplit(".", 1)[0] + ".summary.json")


# ------------------------------------------------------------------------------------------------- the run
def score_text(model: Any, tokenizer: Any, text: str, labels: list[str], multi_label: bool = False,
               threshold: float | None = None) -> dict[str, Any]:
    """One text in the zero-shot pipeline's shape (plus `predicted` when a threshold is given)."""
    (prediction,) = model.predict_batch([text], [labels], tokenizer, activation=activation_for(multi_label,
                                                                                                len(labels)))
    result: dict[str, Any] = {"sequence": text, "labels": [s.label for s in prediction.labels],
                              "scores": [s.score for s in prediction.labels]}
    if threshold is not None:
        result["predicted"] = [s.label for s in prediction.labels if s.score >= threshold]
    return result


def run_predict(config: PredictConfig, model: Any = None, tokenizer: Any = None, device: str | None = None,
                on_progress: Progress | None = None) -> dict[str, Any]:
    """Score every row of `config.input` into `config.output`; returns the summary (also written beside it)."""
    input_format(config.input)  # an unknown input format is refused before any model work
    out_fmt = OUTPUT_FORMATS.get(config.output.suffix.lower())
    if out_fmt is None:
        raise ValueError(f"{config.output}: unknown output format {config.output.suffix!r}; use .parquet or .jsonl")
    fingerprint = config.fingerprint()
    parts_dir = config.output.with_name(config.output.name + ".parts")
    summary_file = summary_path(config.output)
    run_file = parts_dir / "run.json"

    if config.output.exists() and not config.overwrite:
        previous = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
        if previous.get("fingerprint") == fingerprint and previous.get("complete"):
            return {**previous, "rows_scored": 0, "already_complete": True}
        raise ValueError(f"{config.output} exists from another job; pass --overwrite to replace it")
    if config.overwrite:
        shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True, exist_ok=True)
    ext = "parquet" if out_fmt == "parquet" else "jsonl"
    parts = _done_parts(parts_dir, ext)
    previous = json.loads(run_file.read_text()) if run_file.is_file() else None
    if previous is not None and previous != fingerprint and parts:  # only refuse when there is work to lose
        changed = sorted(k for k in fingerprint if previous.get(k) != fingerprint[k])
        raise ValueError(f"{parts_dir} holds parts of a different job ({', '.join(changed)} changed); "
                         "rerun with the same settings to resume, or pass --overwrite")
    if previous != fingerprint:
        for _, _, part in parts:
            part.unlink()
        parts = []
        _atomic_write(run_file, lambda tmp: tmp.write_text(json.dumps(fingerprint, indent=2) + "\n"))
    resumed = parts[-1][1] if parts else 0
    total = count_rows(config.input)
    if model is None:
        from .pipeline import load_model

        model, tokenizer = load_model(config.model, device)

    schema = _schema(config.threshold)
    activation = activation_for(config.multi_label, len(config.labels))
    started = time.perf_counter()
    row = scored = 0
    buffer: list[dict[str, Any]] = []
    buffer_start, last_flush = resumed, time.perf_counter()

    def flush() -> None:
        nonlocal buffer, buffer_start, last_flush
        if buffer:
            path = parts_dir / f"part-{buffer_start:012d}-{buffer_start + len(buffer):012d}.{ext}"
            _write_rows(path, buffer, out_fmt, schema)
            parts.append((buffer_start, buffer_start + len(buffer), path))
            buffer_start += len(buffer)
            buffer = []
        last_flush = time.perf_counter()

    for texts in iter_texts(config.input, config.text_column, config.batch_size):
        if row + len(texts) <= resumed:  # already in a part
            row += len(texts)
            continue
        if row < resumed:
            texts, row = texts[resumed - row:], resumed
        real = [i for i, t in enumerate(texts) if t is not None and t.strip()]
        predictions = model.predict_batch([texts[i] for i in real], [config.labels] * len(real), tokenizer,
                                          batch_size=config.batch_size, activation=activation) if real else []
        by_index = dict(zip(real, predictions))
        for i, text in enumerate(texts):
            prediction = by_index.get(i)
            record: dict[str, Any] = {"row": row + i, "text": text, "labels": [], "scores": [], "top_label": None,
                                      "top_score": None}
            if prediction is not None:
                record["labels"] = [s.label for s in prediction.labels]
                record["scores"] = [s.score for s in prediction.labels]
                record["top_label"], record["top_score"] = record["labels"][0], record["scores"][0]
            if config.threshold is not None:
                record["predicted"] = [l for l, s in zip(record["labels"], record["scores"]) if s >= config.threshold]
            buffer.append(record)
        row += len(texts)
        scored += len(texts)
        if len(buffer) >= config.part_rows or time.perf_counter() - last_flush >= config.flush_seconds:
            flush()
        if on_progress:
            on_progress(row, total)
    flush()
    seconds = time.perf_counter() - started

    empty, top_counts = _merge(parts, config.output, out_fmt, schema)
    summary = {
        "complete": True,
        "model": config.model,
        "input": str(config.input),
        "output": str(config.output),
        "format": out_fmt,
        "text_column": config.text_column,
        "labels": config.labels,
        "multi_label": config.multi_label,
        "activation": activation,
        "threshold": config.threshold,
        "rows": row,
        "rows_scored": scored,
        "rows_resumed": resumed,
        "empty_texts": empty,
        "seconds": round(seconds, 3),
        "texts_per_second": round(scored / seconds, 2) if seconds > 0 else None,
        "top_label_counts": dict(top_counts.most_common()),
        "fingerprint": fingerprint,
    }
    _atomic_write(summary_file, lambda tmp: tmp.write_text(json.dumps(summary, indent=2) + "\n"))
    shutil.rmtree(parts_dir, ignore_errors=True)
    return summary
