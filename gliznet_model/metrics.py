"""Metrics: scores of (text, candidate label) pairs -> numbers. The one place this happens.

- multi-label data with positives and hard negatives (generated data, ZSHOT-HARDSET): every (text, candidate label)
  pair is a binary decision; threshold metrics, ROC AUC and ranking metrics.
- single-label benchmarks (BBC News, AG News, ...): the candidates are the class names and the prediction is the
  argmax; accuracy and macro F1.

Neither kind lets ties flatter a system: rankings put tied negatives first, an argmax tie never picks the gold class.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


class MetricsError(ValueError):
    """Scores that cannot be turned into metrics (nothing to score)."""


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=denominator > 0)


def pessimistic_order(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Indices from the highest score down; among equal scores the negatives come first."""
    return np.lexsort((targets > 0.5, -scores))


def _macro_f1(predicted: np.ndarray, y: np.ndarray, label_index: np.ndarray) -> float:
    tp = np.bincount(label_index, predicted & y)
    fp = np.bincount(label_index, predicted & ~y)
    fn = np.bincount(label_index, ~predicted & y)
    scored = (tp + fn) > 0  # labels with at least one positive
    return float(_f1(tp, fp, fn)[scored].mean()) if scored.any() else float("nan")


def multilabel_metrics(labels: Sequence[Sequence[str]], targets: Sequence[Sequence[float]],
                       scores: Sequence[Sequence[float]], threshold: float = 0.5,
                       ks: Sequence[int] = (1, 3)) -> dict[str, float]:
    """Metrics over (text, candidate label) pairs; ``scores`` are probabilities for the threshold metrics.

    Macro F1 averages per label name over the labels that are a positive at least once (a label that is only
    ever a negative has no F1 to speak of); ranking metrics average over texts with at least one positive, and
    rank tied scores pessimistically (negatives first), so a constant scorer gets no credit for the order the
    candidates came in. The threshold sweep (0.05..0.95) reports the best micro F1 and where it is.
    """
    y = np.concatenate([np.asarray(t, dtype=float) for t in targets]).astype(bool)
    s = np.concatenate([np.asarray(x, dtype=float) for x in scores])
    if y.size == 0:
        raise MetricsError("nothing to evaluate: no labels")
    names = np.concatenate([np.asarray(list(x), dtype=object) for x in labels])
    _, label_index = np.unique(names, return_inverse=True)

    def counts(predicted: np.ndarray) -> tuple[np.ndarray, ...]:
        return (np.array([(predicted & y).sum()]), np.array([(predicted & ~y).sum()]),
                np.array([(~predicted & y).sum()]))

    predicted = s >= threshold
    result = {
        "pairs": int(y.size),
        "binary_accuracy": float((predicted == y).mean()),
        "f1_micro": float(_f1(*counts(predicted))[0]),
        "f1_macro": _macro_f1(predicted, y, label_index),
    }
    sweep = [float(_f1(*counts(s >= t))[0]) for t in THRESHOLDS]
    best = int(np.argmax(sweep))
    result["best_threshold"] = float(THRESHOLDS[best])
    result["f1_micro_best"] = sweep[best]
    result["roc_auc"] = float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else float("nan")

    result.update(ranking_metrics(targets, scores, ks))
    return result


def ranking_metrics(targets: Sequence[Sequence[float]], scores: Sequence[Sequence[float]],
                    ks: Sequence[int] = (1, 3)) -> dict[str, float]:
    """P@k, nDCG@k (binary gains) and MRR of each text's candidates ranked by score, averaged over the texts with
    at least one positive; tied scores rank negatives first. The one ranking definition: multilabel_metrics and
    the label-ranking evaluation of large label sets (xml0.py) both report these."""
    precision: dict[int, list[float]] = {k: [] for k in ks}
    ndcg: dict[int, list[float]] = {k: [] for k in ks}
    reciprocal = []
    for t, x in zip(targets, scores):
        t, x = np.asarray(t, dtype=float), np.asarray(x, dtype=float)
        if not t.any():
            continue
        ranked = t[pessimistic_order(x, t)]
        reciprocal.append(1.0 / (int(np.argmax(ranked > 0)) + 1))
        discounts = 1.0 / np.log2(np.arange(2, len(ranked) + 2))
        ideal = np.sort(t)[::-1]
        for k in ks:
            precision[k].append(float(ranked[:k].sum() / k))
            ndcg[k].append(float((ranked[:k] * discounts[:k]).sum() / (ideal[:k] * discounts[:k]).sum()))
    result: dict[str, float] = {}
    for k in ks:
        result[f"precision@{k}"] = float(np.mean(precision[k])) if precision[k] else float("nan")
        result[f"ndcg@{k}"] = float(np.mean(ndcg[k])) if ndcg[k] else float("nan")
    result["mrr"] = float(np.mean(reciprocal)) if reciprocal else float("nan")
    return result


def single_label_metrics(gold: Sequence[int], scores: Sequence[Sequence[float]], num_classes: int) -> dict[str, float]:
    """Accuracy and macro F1 of the argmax over each text's candidate labels; a tie at the top never goes to the
    gold class (another tied class is taken)."""
    gold = np.asarray(gold)
    predicted = []
    for g, x in zip(gold, scores):
        x = np.asarray(x, dtype=float)
        top = np.flatnonzero(x == x.max())
        predicted.append(int(top[top != g][0]) if len(top) > 1 else int(top[0]))
    predicted = np.asarray(predicted)
    return {
        "texts": int(len(gold)),
        "accuracy": float((predicted == gold).mean()),
        "f1_macro": float(f1_score(gold, predicted, average="macro", labels=list(range(num_classes)),
                                   zero_division=0)),
    }
