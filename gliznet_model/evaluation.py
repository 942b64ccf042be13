"""Evaluation runs: systems x datasets -> one result per pair, and the Markdown table they are printed as."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .benchmarks import BENCHMARK_NAMES, BenchmarkError, EvalSet, load_benchmark, load_eval_data
from .metrics import multilabel_metrics, single_label_metrics
from .systems import System


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


def run_evaluation(model_path: str, data: Sequence[str], benchmarks: Sequence[str], baselines: Sequence[str],
                   split: str | None = None, text_column: str | None = None, label_column: str | None = None,
                   limit: int | None = None, embedding_model: str | None = None, nli_model: str | None = None,
                   batch_size: int = 32, seed: int = 42,
                   on_result: Callable[[dict[str, Any]], None] | None = None,
                   score_model: bool = True,
                   on_progress: Callable[[int, int, str], None] | None = None) -> list[dict[str, Any]]:
    """GliZNet and the chosen baselines on every dataset, in one run; one result per (dataset, system).

    Everything is checked before the model loads; local `data` that the run trained on is scored on exactly the
    records the run held out (see benchmarks.load_eval_data). `score_model=False` scores only the baselines (the
    model still sets the untrained twin's settings and the sequence budget)."""
    from .modeling import GliZNetForSequenceClassification
    from .systems import BASELINES, embedding_system, gliznet_system, nli_system, untrained_system

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
    local_model = Path(model_path).exists()
    if not local_model and model_path.count("/") != 1:
        raise BenchmarkError(f"model {model_path} does not exist")

    sets = [s for name in benchmarks for s in load_benchmark(name)]
    sets += [load_eval_data(source, split, text_column, label_column, model_path if local_model else None)
             for source in data]
    sets = [s.limit(limit, seed) for s in sets]
    try:
        model, tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(model_path)
    except Exception as exc:  # truncated weights, a foreign folder, an unreachable Hub: many exception types
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise BenchmarkError(f"cannot load model {model_path}: {type(exc).__name__} {detail}".rstrip()) from None

    systems = [gliznet_system(model, tokenizer, "gliznet", batch_size)] if score_model else []
    for name in dict.fromkeys(baselines):
        if name == "embedding":
            systems.append(embedding_system(embedding_model, batch_size))
        elif name == "nli":
            systems.append(nli_system(nli_model, batch_size))
        else:
            systems.append(untrained_system(model.config.encoder_name_or_path, batch_size, tokenizer.max_length,
                                            tokenizer.min_text_tokens, tokenizer.segment_separators,
                                            **model.config.modelling_choices()))
    results = []
    pairs = [(dataset, system) for dataset in sets for system in systems]
    for done, (dataset, system) in enumerate(pairs):
        if on_progress:
            on_progress(done, len(pairs), f"{dataset.name} · {system.name} ({len(dataset.texts):,} texts)")
        result = evaluate(system, dataset)
        results.append(result)
        if on_result:
            on_result(result)
    if on_progress:
        on_progress(len(pairs), len(pairs), "done")
    return results
