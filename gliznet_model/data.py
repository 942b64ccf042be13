"""Training data: shards, files or Hub datasets with the columns ``text`` (or ``sentence``),
``labels`` and ``not_labels``, turned into per-epoch label sets and batches.

The contract with ``gliznet_data`` is only those columns; nothing is imported from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

TEXT_COLUMNS = ("text", "sentence")


class DataError(ValueError):
    """Data that cannot be used as given: missing, empty, or without the expected columns."""


@dataclass(frozen=True)
class Example:
    text: str
    labels: tuple[str, ...]
    not_labels: tuple[str, ...]


def _table_to_examples(columns: dict[str, list[Any]], where: str) -> list[Example]:
    text_column = next((c for c in TEXT_COLUMNS if c in columns), None)
    missing = [c for c in ("labels", "not_labels") if c not in columns]
    if text_column is None or missing:
        need = (["text (or sentence)"] if text_column is None else []) + missing
        raise DataError(f"{where} lacks column(s) {', '.join(need)} (found: {', '.join(columns) or 'none'})")
    examples = []
    for row, (text, labels, negatives) in enumerate(zip(columns[text_column], columns["labels"],
                                                        columns["not_labels"])):
        for name, value in (("labels", labels), ("not_labels", negatives)):
            # A bare string would be read letter by letter ("sports" -> s, p, o, r, t, s): refuse it.
            if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple))
                                      or not all(isinstance(x, str) for x in value)):
                raise DataError(f"{where}: row {row}: column {name} must hold lists of strings, got "
                                f"{type(value).__name__} {str(value)[:40]!r}")
        if isinstance(text, str) and text.strip() and labels:
            examples.append(Example(text, tuple(labels), tuple(negatives or ())))
    if not examples:
        raise DataError(f"{where} holds no usable examples (a text and at least one label)")
    return examples


def _read_files(files: list[Path]) -> list[Example]:
    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    tables = []
    for file in files:
        try:
            tables.append(pa_json.read_json(file) if file.suffix in (".jsonl", ".json") else pq.read_table(file))
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read {file}: {str(exc).splitlines()[0][:200]}") from None
    table = pa.concat_tables(tables, promote_options="permissive")
    return _table_to_examples(table.to_pydict(), str(files[0].parent if len(files) > 1 else files[0]))


def load_splits(source: str | Path, validation_fraction: float = 0.1, seed: int = 0) -> dict[str, list[Example]]:
    """``train`` and ``validation`` (and ``test`` when the source has one) from a folder of Parquet
    shards (searched recursively), a Parquet/JSONL file, or a Hub dataset id.

    A source without a validation split gets a seeded ``validation_fraction`` split of its training data.
    """
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))
        if not files:
            raise DataError(f"no Parquet files under {path}")
        splits = {"train": _read_files(files)}
    elif path.is_file():
        splits = {"train": _read_files([path])}
    elif str(source).count("/") == 1 and not path.suffix and not str(source).startswith((".", "/")) \
            and not path.parent.is_dir():
        splits = _load_hub(str(source))  # OWNER/NAME that is not a local path (data/seeds is a typo, not a repo)
    else:
        raise DataError(f"{source} does not exist")
    if "validation" not in splits:
        train = splits["train"]
        order = np.random.default_rng(seed).permutation(len(train))
        cut = max(1, int(round(len(train) * validation_fraction))) if len(train) > 1 else 0
        splits["validation"] = [train[i] for i in order[:cut]]
        splits["train"] = [train[i] for i in order[cut:]]
    if not splits["train"]:
        raise DataError(f"{source} has too few examples to train on")
    return splits


def _load_hub(dataset_id: str) -> dict[str, list[Example]]:
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id)
    except Exception as exc:  # datasets raises many types for a missing repo or no network
        raise DataError(f"{dataset_id} is not a local path and loading it from the Hub failed: "
                        f"{str(exc).splitlines()[0][:200]}") from None
    names = {"train": "train", "validation": "validation", "valid": "validation", "dev": "validation", "test": "test"}
    splits = {names[s]: _table_to_examples(loaded[s].to_dict(), f"{dataset_id}[{s}]") for s in loaded if s in names}
    if "train" not in splits:
        raise DataError(f"{dataset_id} has no train split (splits: {', '.join(loaded)})")
    return splits


NEGATIVE_SOURCES = ("hard", "random", "in_batch")


def parse_negatives(spec: str) -> tuple[str, ...]:
    """'hard', 'random', 'none' or a '+'-joined mix such as 'hard+random+in_batch' -> the sources, in order."""
    if spec == "none":
        return ()
    sources = tuple(dict.fromkeys(part.strip() for part in spec.split("+")))
    unknown = [s for s in sources if s not in NEGATIVE_SOURCES]
    if unknown or not sources:
        raise ValueError(f"negatives must be none or a '+'-joined mix of {', '.join(NEGATIVE_SOURCES)}, got {spec!r}")
    return sources


@dataclass(frozen=True)
class LabelSampling:
    """How one epoch presents an example: every positive, negatives from ``negatives`` (see ``parse_negatives``),
    at most ``max_labels`` in all (positives are never dropped), in a fresh order.

    ``random_negatives``: labels of other records added when random negatives are mixed with hard ones (alone,
    "random" draws as many as the record has hard negatives). ``needle_rate``: share of presentations that show one
    positive among hard and random negatives up to ``max_labels``, the common case at inference (one right class
    among many candidates). In-batch negatives are added by the collator, which sees the batch.
    """

    negatives: str = "hard"
    max_labels: int = 16
    underscore_rate: float = 0.5  # how often an underscored label is shown with spaces instead
    random_negatives: int = 2
    needle_rate: float = 0.0


class LabelSampler:
    def __init__(self, examples: Sequence[Example], sampling: LabelSampling, seed: int):
        self.sources = parse_negatives(sampling.negatives)
        if not 0.0 <= sampling.needle_rate <= 1.0:
            raise ValueError(f"needle_rate must be within [0, 1], got {sampling.needle_rate}")
        self.examples = examples
        self.sampling = sampling
        self.seed = seed
        # Every label seen in the data, for "random" negatives drawn from other records.
        self.pool = sorted({label for ex in examples for label in (*ex.labels, *ex.not_labels)})

    def _spell(self, label: str, rng: random.Random) -> str:
        return label.replace("_", " ") if "_" in label and rng.random() < self.sampling.underscore_rate else label

    def _random(self, rng: random.Random, wanted: int, exclude: set[str]) -> list[str]:
        negatives: list[str] = []
        for _ in range(wanted * 4):  # rejection sampling; the pool is large next to one record
            if len(negatives) == wanted or not self.pool:
                break
            candidate = rng.choice(self.pool)
            if candidate not in exclude and candidate not in negatives:
                negatives.append(candidate)
        return negatives

    def sample(self, index: int, epoch: int) -> tuple[list[str], list[float]]:
        """Labels and targets (1 positive, 0 negative) of example ``index`` in ``epoch``: the same
        arguments always give the same answer, which makes resumed training exact."""
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        example = self.examples[index]
        positives = list(dict.fromkeys(example.labels))
        own = set(positives) | set(example.not_labels)
        needle = self.sampling.needle_rate > 0 and rng.random() < self.sampling.needle_rate
        if needle:
            positives = [rng.choice(positives)]
        room = max(0, self.sampling.max_labels - len(positives))
        hard = [x for x in dict.fromkeys(example.not_labels) if x not in positives]
        negatives: list[str] = []
        if "hard" in self.sources:
            negatives = rng.sample(hard, min(room, len(hard)))
        if "random" in self.sources or needle:
            if needle:
                wanted = room - len(negatives)
            elif self.sources == ("random",):
                wanted = min(room, max(1, len(example.not_labels)))
            else:
                wanted = min(room - len(negatives), self.sampling.random_negatives)
            negatives += self._random(rng, max(0, wanted), own)
        pairs = [(label, 1.0) for label in positives] + [(label, 0.0) for label in negatives]
        rng.shuffle(pairs)
        labels, targets = [], []
        seen = set()
        for label, target in pairs:
            shown = self._spell(label, rng)
            if shown in seen:  # "a_b" shown as "a b" next to a real "a b"
                shown = label
            seen.add(shown)
            labels.append(shown)
            targets.append(target)
        return labels, targets


def epoch_order(size: int, epoch: int, seed: int) -> np.ndarray:
    """The example order of one epoch, a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(size)


def length_grouped_order(order: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                         group: int = 50) -> np.ndarray:
    """``order`` re-cut so that every batch holds examples of similar length (transformers' group_by_length).

    Rows are padded to the longest of their batch, and a few long texts in a batch of short ones make most of its
    tokens padding. Every run of ``group`` batches of the epoch order is sorted by length and cut into batches,
    and the batches are shuffled, so the long ones do not all come first; the one short batch stays last, where a
    plain order has it. A pure function of its inputs, so resumed runs see the same batches."""
    order = np.asarray(order)
    mega = batch_size * group
    batches = []
    for start in range(0, len(order), mega):
        chunk = order[start:start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    last = [batches.pop()] if batches and len(batches[-1]) < batch_size else []
    shuffled = [batches[i] for i in np.random.default_rng([seed, epoch, 1]).permutation(len(batches))]
    return np.concatenate(shuffled + last) if batches or last else order


def example_length(example: Example) -> int:
    """Characters of the text and of every label: a tokenizer-free proxy of the row's length."""
    return len(example.text) + sum(len(label) + 2 for label in (*example.labels, *example.not_labels))


SPLIT_FILE = "data_split.json"


def example_id(example: Example) -> str:
    """A short, stable id of an example's text (the split record stores these, not the texts)."""
    return hashlib.sha1(example.text.encode("utf-8")).hexdigest()[:16]


def data_key(source: str | Path) -> str:
    """What identifies a data source across commands: a local path resolved, a Hub id as given."""
    path = Path(source)
    return str(path.resolve()) if path.exists() else str(source)


def write_split_record(run_dir: Path, source: str, splits: dict[str, list[Example]], validation_fraction: float,
                       seed: int) -> None:
    """Record which examples a run held out, so `evaluate --data` scores exactly those (atomic write)."""
    record = {"data": data_key(source), "validation_fraction": validation_fraction, "seed": seed,
              "train_examples": len(splits["train"]),
              "validation_ids": sorted(example_id(e) for e in splits["validation"])}
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary = run_dir / f".{SPLIT_FILE}.tmp"
    temporary.write_text(json.dumps(record) + "\n")
    os.replace(temporary, run_dir / SPLIT_FILE)


def read_split_record(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("validation_ids"), list):
        raise DataError(f"{path} is not a split record")
    return record
