"""XML0 label fusion on hand-made vectors, the subset search against brute force, ConSE, the ranking metrics by hand,
the zero-shot split's refusals, and one small run of `gliznet-model xml0` on the offline MiniLM."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from gliznet_model.cli import app
from gliznet_model.data import Example
from gliznet_model.metrics import ranking_metrics
from gliznet_model.benchmarks import BenchmarkError
from gliznet_model.xml0 import fusion_scores, subset_matrix, top_predictions, zero_shot_split

runner = CliRunner()


def unit(*x: float) -> np.ndarray:
    v = np.asarray(x, dtype=np.float32)
    return v / np.linalg.norm(v)


# Seen labels: billing, app crash, sports (three axes). Unseen labels, as hand-made vectors:
SEEN = np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)])
UNSEEN = {
    "payment app bug": unit(0.6, 0.4, 0),      # exactly 0.6 billing + 0.4 app crash
    "invoice dispute": unit(1, 0, 0.55),       # near billing alone
    "everything at once": unit(0.6, 0.4, 0.5), # the weighted sum of all three predictions
    "weather": unit(-1, -1, 0.2),              # near nothing predicted
}
NAMES = list(UNSEEN)
VECTORS = np.stack(list(UNSEEN.values()))


def fused(probabilities: np.ndarray, subsets: np.ndarray | None = None) -> np.ndarray:
    top, p = top_predictions(probabilities[None, :], threshold=0.1, max_labels=3)
    return fusion_scores(p, SEEN[top], VECTORS, subsets)[0]


def test_two_predicted_labels_point_at_the_unseen_label_they_sum_to():
    scores = fused(np.array([0.6, 0.4, 0.0]))  # sports below the threshold: only billing and app crash fuse
    assert NAMES[int(np.argmax(scores))] == "payment app bug"
    assert scores[NAMES.index("payment app bug")] == pytest.approx(1.0, abs=1e-6)
    # Billing alone is one of the combinations: its best cosine to "invoice dispute" is 1 / |(1, 0, 0.55)|.
    assert scores[NAMES.index("invoice dispute")] == pytest.approx(1 / np.sqrt(1 + 0.55**2), abs=1e-6)


def test_subsets_find_what_the_full_sum_blurs():
    p = np.array([0.6, 0.4, 0.5])  # a third, unrelated prediction (sports) drags the full sum away
    subsets = fused(p)
    conse = fused(p, np.ones((1, 3), dtype=np.float32))
    assert NAMES[int(np.argmax(subsets))] == "payment app bug" and subsets.max() == pytest.approx(1.0, abs=1e-6)
    assert NAMES[int(np.argmax(conse))] == "everything at once"
    expected = float(unit(0.6, 0.4, 0) @ unit(0.6, 0.4, 0.5))  # ConSE's cosine to the right label: 0.82
    assert conse[NAMES.index("payment app bug")] == pytest.approx(expected, abs=1e-6) and expected < 0.83


def test_subset_matrix_is_every_non_empty_subset_once():
    rows = {tuple(np.flatnonzero(r)) for r in subset_matrix(4)}
    expected = {c for size in range(1, 5) for c in itertools.combinations(range(4), size)}
    assert len(subset_matrix(4)) == 15 and rows == expected


def brute_force(p: np.ndarray, seen: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The definition, one subset at a time."""
    out = np.zeros((len(p), len(labels)))
    for d in range(len(p)):
        best = np.full(len(labels), -np.inf)
        members = [i for i in range(p.shape[1]) if p[d, i] > 0]
        for size in range(1, len(members) + 1):
            for subset in itertools.combinations(members, size):
                v = sum(p[d, i] * seen[d, i] for i in subset)
                for j, u in enumerate(labels):
                    best[j] = max(best[j], float(v @ u) / (np.linalg.norm(v) * np.linalg.norm(u)))
        out[d] = best if members else 0.0
    return out


def test_vectorised_search_matches_brute_force_on_random_vectors():
    rng = np.random.default_rng(7)
    d, n, dim, u = 6, 5, 16, 40
    p = rng.uniform(0.05, 1.0, (d, n)).astype(np.float32)
    p[1, 3:] = 0.0  # a document with two predictions only
    p[4] = 0.0  # a document with none
    seen = rng.normal(size=(d, n, dim)).astype(np.float32)
    labels = rng.normal(size=(u, dim)).astype(np.float32)
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    got = fusion_scores(p, seen, labels)
    np.testing.assert_allclose(got, brute_force(p, seen, labels), atol=1e-5)
    assert (got[4] == 0).all() and not np.allclose(got[0], got[2])


def test_conse_is_the_single_combination_of_every_prediction():
    rng = np.random.default_rng(3)
    p = rng.uniform(0.1, 1, (4, 3)).astype(np.float32)
    seen = rng.normal(size=(4, 3, 8)).astype(np.float32)
    labels = rng.normal(size=(10, 8)).astype(np.float32)
    labels /= np.linalg.norm(labels, axis=1, keepdims=True)
    conse = fusion_scores(p, seen, labels, np.ones((1, 3), dtype=np.float32))
    total = np.einsum("dn,dnk->dk", p, seen)
    expected = (total / np.linalg.norm(total, axis=1, keepdims=True)) @ labels.T
    np.testing.assert_allclose(conse, expected, atol=1e-5)
    full = fusion_scores(p, seen, labels)
    assert (full >= conse - 1e-6).all() and (full > conse + 1e-3).any()  # the full sum is one of the subsets


def test_top_predictions_keeps_the_best_above_the_threshold():
    top, p = top_predictions(np.array([[0.05, 0.9, 0.3, 0.6, 0.2]]), threshold=0.25, max_labels=3)
    assert top[0].tolist() == [1, 3, 2] and p[0].tolist() == pytest.approx([0.9, 0.6, 0.3])
    top, p = top_predictions(np.array([[0.05, 0.9, 0.3, 0.6, 0.2]]), threshold=0.5, max_labels=3)
    assert p[0].tolist() == pytest.approx([0.9, 0.6, 0.0])


def test_precision_and_ndcg_at_k_by_hand():
    # Ranked order by score: c, a, e, b, f, d; the positives are a and d (ranks 2 and 6).
    targets = [[1, 0, 0, 1, 0, 0]]
    scores = [[0.8, 0.3, 0.9, 0.1, 0.7, 0.2]]
    m = ranking_metrics(targets, scores, ks=(1, 3, 5))
    assert m["precision@1"] == 0.0
    assert m["precision@3"] == pytest.approx(1 / 3) and m["precision@5"] == pytest.approx(1 / 5)
    ideal = 1 + 1 / np.log2(3)
    assert m["ndcg@3"] == pytest.approx((1 / np.log2(3)) / ideal)
    assert m["ndcg@5"] == pytest.approx((1 / np.log2(3)) / ideal)
    assert m["mrr"] == pytest.approx(0.5)
    # A second text, its one positive at the top; the averages are over both texts.
    m = ranking_metrics(targets + [[0, 1, 0]], scores + [[0.1, 0.9, 0.5]], ks=(1, 3))
    assert m["precision@1"] == pytest.approx(0.5) and m["ndcg@3"] == pytest.approx(((1 / np.log2(3)) / ideal + 1) / 2)


def test_ties_rank_the_positive_last():
    m = ranking_metrics([[0, 1, 0, 0]], [[0.5, 0.5, 0.5, 0.1]], ks=(1, 3))
    assert m["precision@1"] == 0.0 and m["mrr"] == pytest.approx(1 / 3)


def ex(text: str, labels: list[str], not_labels: list[str]) -> Example:
    return Example(text, tuple(labels), tuple(not_labels))


def test_zero_shot_split_pools_the_unseen_labels():
    splits = {"train": [ex("t1", ["billing"], ["refund", "sports"])],
              "validation": [ex("v1", ["sports"], ["weather"])],
              "test": [ex("x1", ["billing", "payment app bug"], ["invoice dispute", "sports"]),
                       ex("x2", ["refund"], ["payment app bug"])]}
    split = zero_shot_split("toy", splits)
    assert split.labels == ["invoice dispute", "payment app bug"]
    assert split.texts == ["x1"] and split.gold == [["payment app bug"]] and split.skipped == 1


def test_a_split_whose_test_labels_appear_in_train_is_refused():
    splits = {"train": [ex("t1", ["billing"], ["refund"]), ex("t2", ["payment app bug"], ["sports"])],
              "test": [ex("x1", ["payment app bug"], ["billing"]), ex("x2", ["weather"], ["sports"])]}
    with pytest.raises(BenchmarkError, match="leaks: 1 of 2 test records"):
        zero_shot_split("toy", splits)


def write_split(folder: Path, splits: dict[str, list[dict]]) -> None:
    (folder / "data").mkdir(parents=True)
    for name, rows in splits.items():
        pl.DataFrame(rows).write_parquet(folder / "data" / f"{name}-00000-of-00001.parquet")


def test_the_command_refuses_a_leaking_split_in_one_line(tmp_path):
    write_split(tmp_path / "leaky", {
        "train": [{"text": "Billed twice.", "labels": ["billing"], "not_labels": ["sports"]}],
        "test": [{"text": "Charged again.", "labels": ["billing"], "not_labels": ["sports"]}]})
    result = runner.invoke(app, ["xml0", str(tmp_path / "leaky")])
    assert result.exit_code == 2
    assert "the split leaks: 1 of 1 test records" in result.output and "Traceback" not in result.output
    plain = tmp_path / "plain"
    plain.mkdir()
    pl.DataFrame([{"text": "x", "labels": ["a"], "not_labels": ["b"]}]).write_parquet(plain / "shard-00000.parquet")
    result = runner.invoke(app, ["xml0", str(plain)])
    assert result.exit_code == 2 and "--unseen-labels" in result.output


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory) -> Path:
    """The split `gliznet-data push --unseen-labels` makes, of the 120 shortest seed records."""
    from gliznet_data.hub import PushConfig, write_folder

    root = tmp_path_factory.mktemp("xml0")
    seed = pl.read_parquet(Path(__file__).resolve().parent.parent / "data" / "seed" / "shard-*.parquet")
    short = seed.sort(pl.col("text").str.len_chars()).head(120)
    (root / "shards").mkdir()
    short.write_parquet(root / "shards" / "records.parquet")
    write_folder(PushConfig(unseen_labels=0.2, split_seed=0), root / "shards", root / "split")
    return root / "split"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from gliznet_model import GliZNetForSequenceClassification, GliZNETTokenizer
    from tests.model_helpers import write_tiny_backbone

    root = tmp_path_factory.mktemp("tiny-gliznet")
    backbone = write_tiny_backbone(root / "backbone", max_positions=512)  # few label chunks
    tokenizer = GliZNETTokenizer.from_pretrained(backbone, max_length=512, min_text_tokens=16)
    model = GliZNetForSequenceClassification.from_backbone(backbone, tokenizer=tokenizer)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return str(root / "model")


def test_the_command_prints_every_row_on_a_small_split(tiny_split, tiny_model, tmp_path):
    result = runner.invoke(app, ["xml0", str(tiny_split), "--model", tiny_model, "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    for row in ("SBERT", "ConSE", "XML0 (label fusion)", "XML0", "GliZNet (model)", "docs/s", "nDCG@5"):
        assert row in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["documents"] > 5 and report["unseen_labels"] > 10
    assert [r["system"] for r in report["rows"]] == ["SBERT", "ConSE", "XML0 (label fusion)", "XML0",
                                                     "GliZNet (model)"]
    for row in report["rows"]:
        assert all(0.0 <= row[k] <= 1.0 for k in ("precision@1", "precision@5", "ndcg@3", "ndcg@5"))
        assert row["documents_per_second"] > 0
    sbert = report["rows"][0]
    # MiniLM beats chance by far: a random ranking of this many labels almost never puts a right one on top.
    assert sbert["precision@1"] > 5 / report["unseen_labels"]


def test_gliznet_as_the_seen_label_classifier(tiny_split, tiny_model, tmp_path):
    result = runner.invoke(app, ["xml0", str(tiny_split), "--seen-classifier", "gliznet"])
    assert result.exit_code == 2 and "needs --model" in result.output
    result = runner.invoke(app, ["xml0", str(tiny_split), "--seen-classifier", "gliznet", "--model", tiny_model,
                                 "--limit", "5", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["seen_classifier"] == "gliznet" and report["documents"] == 5 and len(report["rows"]) == 5


def test_the_sbert_row_is_the_embedding_baseline(tiny_split):
    """XML0's semantic-similarity module and systems.embedding_system are the same scores."""
    from gliznet_model.systems import embedding_system
    from gliznet_model.xml0 import LabelEncoder, NeighbourLabels, Xml0, load_zero_shot_split

    split = load_zero_shot_split(tiny_split).limit(6)
    encoder = LabelEncoder()
    train = split.train[:20]
    method = Xml0(encoder, NeighbourLabels(encoder, [e.text for e in train], [e.labels for e in train], 5))
    ours = method.scores(split.texts, split.labels, "sbert")
    theirs = np.stack(embedding_system().score(split.texts, [split.labels] * len(split.texts)))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    mixed = method.scores(split.texts, split.labels, "xml0")
    assert not np.allclose(mixed, ours)  # the fusion term moves the scores
