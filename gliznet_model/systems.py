"""Systems: anything that scores each text's candidate labels. GliZNet and the baselines scored beside it.

- gliznet: a trained (or untrained) GliZNet through its one prediction path, `predict_logits`.
- embedding: a sentence-transformers bi-encoder; cosine between text and label embeddings, label embeddings computed
  once and cached (what a bi-encoder deployment does).
- nli: an NLI cross-encoder through the transformers zero-shot pipeline, one pair per (text, label).
- untrained: GliZNet freshly built on the run's own backbone with the run's settings, to show what training adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .backbones import default_backbone
from .benchmarks import BenchmarkError

Scorer = Callable[[list[str], list[list[str]]], list[np.ndarray]]


@dataclass
class System:
    """Anything that scores each text's candidate labels (higher = more likely; probabilities when
    ``probabilities`` so that threshold metrics mean something)."""

    name: str
    score: Scorer
    probabilities: bool = True


BASELINES = ("embedding", "nli", "untrained")


def gliznet_system(model: Any, tokenizer: Any, name: str = "gliznet", batch_size: int = 32) -> System:
    def score(texts: list[str], candidates: list[list[str]]) -> list[np.ndarray]:
        flat, offsets = model.predict_logits(texts, candidates, tokenizer, batch_size=batch_size, activation="sigmoid")
        probabilities = 1.0 / (1.0 + np.exp(-flat.astype(np.float64)))
        bounds = np.append(offsets, len(flat))
        return [probabilities[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    return System(name, score, probabilities=True)


def embedding_system(model_name_or_path: str | None = None, batch_size: int = 32) -> System:
    from sentence_transformers import SentenceTransformer

    path = model_name_or_path or default_backbone()
    try:
        encoder = SentenceTransformer(path)
    except Exception as exc:  # a missing folder or an unreachable Hub raise many types
        raise BenchmarkError(f"cannot load embedding model {path}: {str(exc).splitlines()[0][:200]}") from None
    cache: dict[str, np.ndarray] = {}

    def score(texts: list[str], candidates: list[list[str]]) -> list[np.ndarray]:
        new = list(dict.fromkeys(label for labels in candidates for label in labels if label not in cache))
        if new:
            cache.update(zip(new, encoder.encode(new, batch_size=batch_size, normalize_embeddings=True)))
        vectors = encoder.encode(texts, batch_size=batch_size, normalize_embeddings=True)
        return [np.array([float(vector @ cache[label]) for label in labels]) for vector, labels in zip(vectors, candidates)]

    name = "embedding" if model_name_or_path is None else f"embedding ({model_name_or_path})"
    return System(name, score, probabilities=False)


def nli_system(model_name_or_path: str, batch_size: int = 32, hypothesis: str = "This example is about {}.") -> System:
    import torch
    from transformers import pipeline

    try:
        classifier = pipeline("zero-shot-classification", model=model_name_or_path,
                              device=0 if torch.cuda.is_available() else -1)
    except Exception as exc:
        raise BenchmarkError(f"cannot load NLI model {model_name_or_path}: {str(exc).splitlines()[0][:200]}") from None

    def score(texts: list[str], candidates: list[list[str]]) -> list[np.ndarray]:
        out = []
        for text, labels in zip(texts, candidates):
            result = classifier(text, candidate_labels=labels, multi_label=True, hypothesis_template=hypothesis,
                                batch_size=batch_size)
            by_label = dict(zip(result["labels"], result["scores"]))
            out.append(np.array([by_label[label] for label in labels]))
        return out

    return System(f"nli ({model_name_or_path})", score, probabilities=True)


def untrained_system(backbone: str | None = None, batch_size: int = 32, max_length: int | None = None,
                     min_text_tokens: int | None = None, segment_separators: bool | None = None,
                     **config: Any) -> System:
    """GliZNet as built, before any training, on `backbone` (a trained run's own: its config's
    encoder_name_or_path) with the run's settings and sequence budget, to compare like with like."""
    from pathlib import Path

    from .modeling import GliZNetForSequenceClassification
    from .tokenizer import GliZNETTokenizer

    path = backbone or default_backbone()
    if Path(path).is_absolute() and not Path(path).exists():
        raise BenchmarkError(f"the run's backbone {path} is not on this machine, so there is no untrained twin")
    budget = {k: v for k, v in (("max_length", max_length), ("min_text_tokens", min_text_tokens),
                                ("segment_separators", segment_separators)) if v is not None}
    tokenizer = GliZNETTokenizer.from_pretrained(path, **budget)
    model = GliZNetForSequenceClassification.from_backbone(path, tokenizer=tokenizer, **config)
    return gliznet_system(model.eval(), tokenizer, "gliznet (untrained)", batch_size)
