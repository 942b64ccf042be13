"""XML0 (Ostapuk et al., "Leveraging Pre-Trained Extreme Multi-Label Classifiers for Zero-Shot Learning"):
rank labels no classifier was trained on, for taxonomies too large or too new to retrain for.

A seen-label classifier predicts the labels it knows; the ones above ``threshold`` (at most ``max_labels``) are
fused: each non-empty subset S gives the vector sum_{l in S} p_l e_l, and an unseen label's fusion score is its
best cosine to any of those 2^n - 1 vectors. Why subsets and not just the full sum (ConSE): a document about
billing and app crashes should point at "payment app bug" through the pair and at "invoice dispute" through
billing alone; the full sum blurs both. The semantic-similarity score (document vs label, the bi-encoder of
systems.embedding_system) is mixed in with ``weight``. Label vectors are encoded once and cached, so a document
costs one encoder pass and a few matrix products, however many labels there are.

The evaluation reads an unseen-label split (the one ``gliznet-data push --unseen-labels`` writes, locally with
``--to-folder``; gliznet_model never imports gliznet_data) and ranks every unseen label for every test document.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .benchmarks import BenchmarkError
from .data import DataError, Example, _read_files, example_id, load_splits, read_split_record
from .metrics import ranking_metrics
from .systems import System

MODES = ("sbert", "conse", "fusion", "xml0")
ROW_NAMES = {"sbert": "SBERT", "conse": "ConSE", "fusion": "XML0 (label fusion)", "xml0": "XML0"}
KS = (1, 3, 5)
_BATCH_ELEMENTS = 1 << 23  # floats per (documents x subsets x labels) block of the fusion search


class Xml0Settings(BaseModel):
    """Defaults measured on the seed set's unseen-label split made with split seed 1 (README, XML0 section);
    the table is reported on split seed 0, whose held-out labels are others."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.1, ge=0.0, le=1.0, description="seen labels predicted at least this enter fusion")
    max_labels: int = Field(5, ge=1, le=12, description="most predicted labels fused (2^n - 1 subsets)")
    weight: float = Field(0.1, ge=0.0, le=1.0, description="share of the fusion score in XML0; the rest is SBERT")
    neighbours: int = Field(10, ge=1, description="training documents that vote in the neighbour classifier")


# ------------------------------------------------------------------------------------------- label encoder
class LabelEncoder:
    """A sentence-transformers model; label vectors are cached because the label set is fixed and large while
    documents stream past (the cost the issue asks to show)."""

    def __init__(self, model_name_or_path: str | None = None, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        from .backbones import default_backbone

        path = model_name_or_path or default_backbone()
        try:
            self.model = SentenceTransformer(path)
        except Exception as exc:  # a missing folder or an unreachable Hub raise many types
            raise BenchmarkError(f"cannot load label encoder {path}: {str(exc).splitlines()[0][:200]}") from None
        self.name = model_name_or_path or "all-MiniLM-L6-v2"
        self.batch_size = batch_size
        self._cache: dict[str, np.ndarray] = {}

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True).astype(np.float32)

    def labels(self, labels: Sequence[str]) -> np.ndarray:
        new = [x for x in dict.fromkeys(labels) if x not in self._cache]
        if new:
            self._cache.update(zip(new, self.texts(new)))
        return np.stack([self._cache[x] for x in labels]) if labels else self.texts([])


# ---------------------------------------------------------------------------------------------- fusion
def subset_matrix(n: int) -> np.ndarray:
    """Every non-empty subset of n predicted labels as a 0/1 row: (2^n - 1) x n, row r is the binary of r + 1."""
    rows = np.arange(1, 2**n, dtype=np.int64)
    return ((rows[:, None] >> np.arange(n)) & 1).astype(np.float32)


def fusion_scores(probabilities: np.ndarray, seen_vectors: np.ndarray, label_vectors: np.ndarray,
                  subsets: np.ndarray | None = None) -> np.ndarray:
    """Each document's best cosine, over the combinations in ``subsets``, to each label.

    ``probabilities``: documents x n (0 where a document has fewer than n predicted labels); ``seen_vectors``:
    documents x n x dim, the predicted labels' vectors; ``label_vectors``: labels x dim, unit length. A
    combination whose weights are all 0 is no combination; a document with none scores 0 everywhere (all tied).
    Blocks of documents keep the documents x subsets x labels product within a fixed size.
    """
    d, n = probabilities.shape
    subsets = subset_matrix(n) if subsets is None else np.asarray(subsets, dtype=np.float32)
    m, u = len(subsets), len(label_vectors)
    out = np.zeros((d, u), dtype=np.float32)
    block = max(1, _BATCH_ELEMENTS // max(1, m * u))
    for start in range(0, d, block):
        p = probabilities[start:start + block].astype(np.float32)
        weights = subsets[None, :, :] * p[:, None, :]                                        # b x m x n
        combined = np.einsum("bmn,bnk->bmk", weights, seen_vectors[start:start + block])     # b x m x dim
        norms = np.linalg.norm(combined, axis=2, keepdims=True)
        valid = norms[..., 0] > 1e-12
        combined = np.divide(combined, norms, out=np.zeros_like(combined), where=norms > 1e-12)
        cosines = combined @ label_vectors.T                                                  # b x m x u
        cosines[~valid] = -np.inf
        best = cosines.max(axis=1)
        best[~valid.any(axis=1)] = 0.0
        out[start:start + len(p)] = best
    return out


def top_predictions(probabilities: np.ndarray, threshold: float, max_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """The at most ``max_labels`` best seen labels at or above ``threshold``: (indices, probabilities), both
    documents x max_labels, probability 0 in the slots a document does not fill."""
    n = min(max_labels, probabilities.shape[1])
    top = np.argpartition(-probabilities, n - 1, axis=1)[:, :n] if n < probabilities.shape[1] else \
        np.tile(np.arange(n), (len(probabilities), 1))
    p = np.take_along_axis(probabilities, top, axis=1)
    order = np.argsort(-p, axis=1, kind="stable")
    top, p = np.take_along_axis(top, order, axis=1), np.take_along_axis(p, order, axis=1)
    p = np.where(p >= threshold, p, 0.0)
    if n < max_labels:
        pad = max_labels - n
        top, p = np.pad(top, ((0, 0), (0, pad))), np.pad(p, ((0, 0), (0, pad)))
    return top, p.astype(np.float32)


# ------------------------------------------------------------------------------- seen-label classifiers
class SeenLabelClassifier(Protocol):
    """Probabilities of the labels it was trained on; ``vectors`` are the documents' encoder vectors, which a
    classifier may use instead of encoding the texts again."""

    labels: list[str]

    def predict(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray: ...


class NeighbourLabels:
    """Label propagation from the k nearest training documents: a label's probability is the similarity-weighted
    share of neighbours that carry it. Needs no GPU and no training, only the encoder pass over the training set."""

    def __init__(self, encoder: LabelEncoder, texts: Sequence[str], labels: Sequence[Sequence[str]],
                 neighbours: int = 10) -> None:
        from scipy.sparse import csr_matrix

        if not texts:
            raise BenchmarkError("the neighbour classifier needs training documents")
        self.labels = sorted({x for row in labels for x in row})
        index = {x: i for i, x in enumerate(self.labels)}
        cols = [index[x] for row in labels for x in dict.fromkeys(row)]
        rows = np.repeat(np.arange(len(labels)), [len(dict.fromkeys(row)) for row in labels])
        self.targets = csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                                  shape=(len(labels), len(self.labels)))
        self.vectors = encoder.texts(texts)
        self.neighbours = min(neighbours, len(texts))

    def predict(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        from scipy.sparse import csr_matrix

        k = self.neighbours
        similarity = vectors @ self.vectors.T
        near = np.argpartition(-similarity, k - 1, axis=1)[:, :k] if k < similarity.shape[1] else \
            np.tile(np.arange(k), (len(vectors), 1))
        weights = np.clip(np.take_along_axis(similarity, near, axis=1), 0.0, None)
        total = weights.sum(axis=1, keepdims=True)
        weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
        votes = csr_matrix((weights.ravel(), (np.repeat(np.arange(len(vectors)), k), near.ravel())),
                           shape=(len(vectors), len(self.vectors)))
        return np.asarray((votes @ self.targets).todense(), dtype=np.float32)


class GliZNetLabels:
    """GliZNet scoring every seen label (chunked by its tokenizer), through the one prediction path. Costs one
    encoder pass per chunk of labels, so thousands of seen labels are slow on a CPU."""

    def __init__(self, model: Any, tokenizer: Any, labels: Sequence[str], batch_size: int = 32) -> None:
        from .systems import gliznet_system

        self.labels = sorted(set(labels))
        self._system = gliznet_system(model, tokenizer, batch_size=batch_size)

    def predict(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.stack(self._system.score(list(texts), [self.labels] * len(texts))).astype(np.float32)


# -------------------------------------------------------------------------------------------- the method
class Xml0:
    """Label fusion over a seen-label classifier, plus semantic similarity; ``scores`` for Python use,
    ``system(mode)`` for anything that runs systems."""

    def __init__(self, encoder: LabelEncoder, classifier: SeenLabelClassifier,
                 settings: Xml0Settings | None = None, batch_size: int = 256) -> None:
        self.encoder = encoder
        self.classifier = classifier
        self.settings = settings or Xml0Settings()
        self.batch_size = batch_size
        self._seen_vectors = encoder.labels(classifier.labels)

    def scores(self, texts: Sequence[str], labels: Sequence[str], mode: str = "xml0",
               vectors: np.ndarray | None = None) -> np.ndarray:
        """documents x labels: "sbert" (document-label cosine alone), "conse" (one combination, every predicted
        label), "fusion" (best of all subsets) or "xml0" (fusion mixed with the cosine). ``vectors``: the
        documents' encoder vectors when the caller has them already."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        s = self.settings
        label_vectors = self.encoder.labels(list(labels))
        subsets = np.ones((1, s.max_labels), dtype=np.float32) if mode == "conse" else subset_matrix(s.max_labels)
        out = np.empty((len(texts), len(labels)), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start:start + self.batch_size])
            v = self.encoder.texts(chunk) if vectors is None else vectors[start:start + len(chunk)]
            if mode == "sbert":
                out[start:start + len(chunk)] = v @ label_vectors.T
                continue
            top, p = top_predictions(self.classifier.predict(chunk, v), s.threshold, s.max_labels)
            fused = fusion_scores(p, self._seen_vectors[top], label_vectors, subsets)
            if mode == "xml0":
                fused = s.weight * fused + (1.0 - s.weight) * (v @ label_vectors.T)
            out[start:start + len(chunk)] = fused
        return out

    def system(self, mode: str = "xml0", name: str | None = None) -> System:
        def score(texts: list[str], candidates: list[list[str]]) -> list[np.ndarray]:
            pool = list(dict.fromkeys(x for row in candidates for x in row))
            column = {x: i for i, x in enumerate(pool)}
            matrix = self.scores(texts, pool, mode)
            return [matrix[i, [column[x] for x in row]].astype(np.float64) for i, row in enumerate(candidates)]

        return System(name or ROW_NAMES[mode], score, probabilities=False)


# -------------------------------------------------------------------------------- zero-shot evaluation
@dataclass
class ZeroShotSplit:
    """Test documents with their unseen positives, and the pool of unseen labels every document is ranked over."""

    name: str
    train: list[Example]
    texts: list[str]
    gold: list[list[str]]
    labels: list[str]
    skipped: int = 0  # test documents with no unseen positive: nothing to rank for

    def limit(self, n: int | None, seed: int = 0) -> ZeroShotSplit:
        if n is None or n >= len(self.texts):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self.texts), n, replace=False))
        return ZeroShotSplit(self.name, self.train, [self.texts[i] for i in keep], [self.gold[i] for i in keep],
                             self.labels, self.skipped)

    def targets(self) -> list[np.ndarray]:
        column = {x: i for i, x in enumerate(self.labels)}
        out = []
        for gold in self.gold:
            row = np.zeros(len(self.labels))
            row[[column[x] for x in gold]] = 1.0
            out.append(row)
        return out


def zero_shot_split(name: str, splits: dict[str, list[Example]]) -> ZeroShotSplit:
    """The unseen labels of a train/validation/test split, refusing one that leaks.

    Unseen: a label of a test record (positive or hard negative) that no train or validation record carries in
    either role, so no classifier fitted there has heard of it. The split push makes puts a record in test only
    for a held-out label, so every test record carries one; a test record whose labels all appear in train or
    validation means the split was made some other way and its labels leaked, and the split is refused. Every
    document is ranked against the whole pool, its unseen positives being the right answers.
    """
    if "test" not in splits or not splits["test"]:
        raise BenchmarkError(f"{name} has no test split; make an unseen-label split with "
                             "`gliznet-data push SHARDS --unseen-labels 0.1 --to-folder OUT`")
    seen = {x for part in ("train", "validation") for e in splits.get(part, []) for x in (*e.labels, *e.not_labels)}
    leaking = [e for e in splits["test"] if all(x in seen for x in (*e.labels, *e.not_labels))]
    if leaking:
        raise BenchmarkError(f"{name}: the split leaks: {len(leaking):,} of {len(splits['test']):,} test records "
                             f"carry only labels that train or validation carry too (e.g. {leaking[0].labels[0]!r}); "
                             "make the split with `gliznet-data push --unseen-labels`")
    pool = sorted({x for e in splits["test"] for x in (*e.labels, *e.not_labels) if x not in seen})
    texts, gold, skipped = [], [], 0
    for e in splits["test"]:
        unseen = [x for x in dict.fromkeys(e.labels) if x not in seen]
        if unseen:
            texts.append(e.text)
            gold.append(unseen)
        else:
            skipped += 1
    return ZeroShotSplit(name, splits["train"], texts, gold, pool, skipped)


def load_zero_shot_split(source: str | Path) -> ZeroShotSplit:
    """A folder ``gliznet-data push --to-folder`` wrote (``data/{train,validation,test}-*.parquet``), or a Hub
    dataset with those splits."""
    path = Path(source)
    if path.is_dir():
        splits = {}
        for part in ("train", "validation", "test"):
            files = sorted(p for p in path.rglob(f"{part}-*.parquet") if not p.name.startswith("."))
            if files:
                splits[part] = _read_files(files)
        if "train" not in splits:
            raise DataError(f"{path} holds no train-*.parquet split files; make an unseen-label split with "
                            f"`gliznet-data push {path} --unseen-labels 0.1 --to-folder OUT`")
    elif path.exists():
        raise DataError(f"{path} is a file; give the folder `gliznet-data push --to-folder` wrote")
    else:
        splits = load_splits(str(source))  # a Hub id; a local path that does not exist fails here in one line
    return zero_shot_split(str(source), splits)


def _training_overlap(model_path: str, split: ZeroShotSplit) -> str | None:
    """What a trained run saw of this test split (its split record names its data); None when it saw nothing
    or cannot be told."""
    record = read_split_record(model_path) if Path(model_path).is_dir() else None
    if not record or not Path(record["data"]).exists():
        return None
    source = load_splits(record["data"], record["validation_fraction"], record["seed"])
    held_out = set(record["validation_ids"])
    trained = [e for part in source.values() for e in part if example_id(e) not in held_out]
    texts = {e.text for e in trained}
    labels = {x for e in trained for x in (*e.labels, *e.not_labels)}
    seen_texts = sum(t in texts for t in split.texts)
    seen_labels = sum(x in labels for x in split.labels)
    if not seen_texts and not seen_labels:
        return None
    # Records added to the data since training are counted as trained on: then the counts are upper bounds.
    bound = "" if len(trained) == record.get("train_examples") else "up to "
    return (f"{model_path} trained on {bound}{seen_texts:,} of these {len(split.texts):,} test documents and on "
            f"{bound}{seen_labels:,} of the {len(split.labels):,} unseen labels: its rows are not zero-shot here")


def _row(name: str, scores: Sequence[np.ndarray], seconds: float, split: ZeroShotSplit) -> dict[str, Any]:
    metrics = ranking_metrics(split.targets(), scores, KS)
    return {"system": name, **{k: v for k, v in metrics.items() if k != "ndcg@1"},
            "documents_per_second": len(split.texts) / seconds if seconds > 0 else float("inf")}


def rank_labels(system: System, split: ZeroShotSplit, warmup: int = 4) -> dict[str, Any]:
    """One row: ``system`` ranks every unseen label for every test document. Documents per second are timed after
    a warm-up call on a few documents (model loaded, label ids or vectors cached), as a running service would be."""
    system.score(split.texts[:warmup], [split.labels] * min(warmup, len(split.texts)))
    start = time.perf_counter()
    scores = system.score(split.texts, [split.labels] * len(split.texts))
    return _row(system.name, scores, time.perf_counter() - start, split)


def xml0_rows(method: Xml0, split: ZeroShotSplit) -> list[dict[str, Any]]:
    """The paper's four rows. They share one encoder pass per document, timed once and charged to every row, so
    each row's documents per second is what it would cost alone, without encoding the documents four times."""
    method.encoder.labels(split.labels)  # cached, as in a running service
    start = time.perf_counter()
    vectors = method.encoder.texts(split.texts)
    encoding = time.perf_counter() - start
    rows = []
    for mode in MODES:
        start = time.perf_counter()
        scores = method.scores(split.texts, split.labels, mode, vectors)
        rows.append(_row(ROW_NAMES[mode], list(scores), encoding + time.perf_counter() - start, split))
    return rows


SEEN_CLASSIFIERS = ("neighbours", "gliznet")


def run_xml0_table(source: str, model: str | None = None, settings: Xml0Settings | None = None,
                   seen_classifier: str = "neighbours", encoder: str | None = None, limit: int | None = None,
                   seed: int = 42, batch_size: int = 32,
                   on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The paper's rows (SBERT, ConSE, label fusion, XML0) and GliZNet ranking the unseen labels itself (when a
    ``model`` is given), on one unseen-label split; the data is checked before any model loads."""
    from .systems import gliznet_system

    settings = settings or Xml0Settings()
    if seen_classifier not in SEEN_CLASSIFIERS:
        raise BenchmarkError(f"unknown seen-label classifier {seen_classifier!r} "
                             f"(known: {', '.join(SEEN_CLASSIFIERS)})")
    if seen_classifier == "gliznet" and model is None:
        raise BenchmarkError("the gliznet seen-label classifier needs --model")
    if model is not None and not Path(model).exists() and model.count("/") != 1:
        raise BenchmarkError(f"model {model} does not exist")
    progress = on_progress or (lambda _: None)
    split = load_zero_shot_split(source).limit(limit, seed)
    notes = [f"{split.skipped:,} test documents have no unseen positive and are not ranked"] if split.skipped else []
    progress("loading the label encoder")
    label_encoder = LabelEncoder(encoder, batch_size)
    loaded = None
    if model is not None:
        from .pipeline import load_model

        progress(f"loading {model}")
        loaded = load_model(model)
        overlap = _training_overlap(model, split)
        if overlap:
            notes.append(overlap)
    start = time.perf_counter()
    if seen_classifier == "gliznet":
        classifier: SeenLabelClassifier = GliZNetLabels(*loaded, {x for e in split.train for x in e.labels},
                                                        batch_size)
    else:
        progress(f"encoding {len(split.train):,} training documents")
        classifier = NeighbourLabels(label_encoder, [e.text for e in split.train], [e.labels for e in split.train],
                                     settings.neighbours)
    method = Xml0(label_encoder, classifier, settings)
    setup = time.perf_counter() - start
    progress(f"SBERT, ConSE, XML0: {len(split.texts):,} documents x {len(split.labels):,} labels")
    rows = xml0_rows(method, split)
    if loaded is not None:
        system = gliznet_system(*loaded, name=f"GliZNet ({Path(model).name})", batch_size=batch_size)
        progress(f"{system.name}: {len(split.texts):,} documents x {len(split.labels):,} labels, chunked")
        rows.append(rank_labels(system, split))
    else:
        notes.append("no --model: the GliZNet row is skipped")
    return {"dataset": split.name, "documents": len(split.texts), "unseen_labels": len(split.labels),
            "seen_labels": len(classifier.labels), "training_documents": len(split.train),
            "seen_classifier": seen_classifier, "encoder": label_encoder.name,
            "settings": settings.model_dump(), "setup_seconds": round(setup, 2), "rows": rows, "notes": notes}
