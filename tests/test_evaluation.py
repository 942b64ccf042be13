"""Metrics against hand-computed values, the benchmark registry, baselines, and evaluate's errors."""

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from gliznet_model.cli import app
from gliznet_model.benchmarks import BENCHMARKS, BenchmarkError, EvalSet, load_benchmark, load_eval_data
from gliznet_model.evaluation import markdown_table
from gliznet_model.metrics import multilabel_metrics, single_label_metrics

runner = CliRunner()


def test_multilabel_metrics_by_hand():
    m = multilabel_metrics([["a", "b", "c"], ["a", "d"]], [[1, 0, 0], [0, 1]], [[0.9, 0.6, 0.1], [0.3, 0.4]])
    assert m["pairs"] == 5
    assert m["binary_accuracy"] == pytest.approx(3 / 5)
    assert m["f1_micro"] == pytest.approx(0.5)  # tp 1, fp 1, fn 1
    assert m["f1_macro"] == pytest.approx(0.5)  # over labels with a positive: a 1, d 0 (b, c are only negatives)
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert m["f1_micro_best"] == pytest.approx(0.8) and m["best_threshold"] == pytest.approx(0.35)
    assert m["precision@1"] == 1.0 and m["mrr"] == 1.0
    assert m["precision@3"] == pytest.approx(1 / 3)
    assert m["ndcg@3"] == pytest.approx(1.0)


def test_ranking_metrics_when_the_positive_is_second():
    m = multilabel_metrics([["x", "y", "z"]], [[0, 1, 0]], [[0.9, 0.5, 0.1]])
    assert m["mrr"] == pytest.approx(0.5) and m["precision@1"] == 0.0
    assert m["ndcg@3"] == pytest.approx(1 / np.log2(3))


def test_ties_never_favour_the_positives():
    """A constant scorer must not get credit for the order candidates were listed in (positives first)."""
    m = multilabel_metrics([["p", "n1", "n2"], ["q", "n3"]], [[1, 0, 0], [1, 0]], [[0.5, 0.5, 0.5], [0.5, 0.5]])
    assert m["precision@1"] == 0.0
    assert m["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert m["ndcg@3"] == pytest.approx((1 / np.log2(4) + 1 / np.log2(3)) / 2)
    assert m["roc_auc"] == pytest.approx(0.5)
    # A tie between the positive and one negative, above a second negative: the positive ranks second.
    m = multilabel_metrics([["p", "a", "b"]], [[1, 0, 0]], [[0.7, 0.7, 0.1]])
    assert m["mrr"] == pytest.approx(0.5) and m["precision@1"] == 0.0


def test_argmax_ties_never_go_to_the_gold_class():
    m = single_label_metrics([0, 1], [[0.5, 0.5, 0.1], [0.2, 0.9, 0.9]], 3)
    assert m["accuracy"] == 0.0
    assert single_label_metrics([2], [[0.1, 0.2, 0.3]], 3)["accuracy"] == 1.0


def test_macro_f1_counts_only_labels_with_a_positive():
    # A perfect predictor scores 1.0, however many labels only ever appear as negatives.
    m = multilabel_metrics([["a", "x"], ["b", "y", "z"]], [[1, 0], [1, 0, 0]], [[0.9, 0.1], [0.8, 0.2, 0.3]])
    assert m["f1_macro"] == pytest.approx(1.0)
    # Label "a" right once and missed once (F1 2/3), "b" missed (0): mean 1/3.
    m = multilabel_metrics([["a"], ["a"], ["b", "x"]], [[1], [1], [1, 0]], [[0.9], [0.1], [0.2, 0.1]])
    assert m["f1_macro"] == pytest.approx((2 / 3 + 0.0) / 2)


def test_the_dev_set_loads_one_set_per_task():
    sets = load_benchmark("dev")
    assert len(sets) >= 5 and all(s.name.startswith("dev/") for s in sets)
    assert all(len(s.class_names) >= 2 and len(set(s.gold)) == len(s.class_names) for s in sets)


def test_the_dev_set_is_balanced_unique_and_never_names_a_drug_reviews_condition():
    from collections import Counter

    sets = load_benchmark("dev")
    texts = [t for s in sets for t in s.texts]
    assert len(texts) == len(set(texts))
    for s in sets:  # every class equally often: macro F1 and accuracy then weigh classes alike
        assert len(set(Counter(s.gold).values())) == 1, s.name
    [condition] = [s for s in sets if s.name == "dev/drug_review_condition"]
    for text, gold in zip(condition.texts, condition.gold):
        assert condition.class_names[gold] not in text.lower(), text


def test_single_label_metrics_by_hand():
    scores = [[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.0, 0.1, 0.9], [0.2, 0.5, 0.3]]
    m = single_label_metrics([0, 1, 2, 1], scores, 3)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["f1_macro"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_bbc_reads_the_packaged_corpus():
    [bbc] = load_benchmark("bbc_news")
    assert len(bbc.texts) == 2225
    assert bbc.class_names == ["business", "entertainment", "politics", "sports", "technology"]
    assert np.bincount(bbc.gold).tolist() == [510, 386, 417, 511, 401]
    assert all(c == bbc.class_names for c in bbc.candidates[:3])


def test_registry_loading_code_on_local_files(tmp_path):
    path = tmp_path / "ag.parquet"
    pl.DataFrame({"text": ["Stocks rose.", "The match ended 2-1.", "New chip unveiled."],
                  "label": [2, 1, 3]}).write_parquet(path)
    ag = BENCHMARKS["ag_news"].load(data_files=path)
    assert ag.class_names == ["world news", "sports", "business", "science and technology"]
    assert ag.gold == [2, 1, 3] and ag.texts[1] == "The match ended 2-1."
    trec = tmp_path / "trec.jsonl"
    trec.write_text("\n".join(json.dumps({"text": t, "coarse_label": c}) for t, c in
                              [("Who wrote Hamlet?", 3), ("Where is Lima?", 4)]) + "\n")
    data = BENCHMARKS["trec"].load(data_files=trec)
    assert [data.class_names[g] for g in data.gold] == ["person", "location"]
    with pytest.raises(BenchmarkError, match="lacks column"):
        BENCHMARKS["sst2"].load(data_files=path)  # sst2 reads "sentence"


def test_hub_benchmarks_fail_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(BenchmarkError, match="cannot load benchmark ag_news from the Hub"):
        load_benchmark("ag_news")
    with pytest.raises(BenchmarkError, match="unknown benchmark"):
        load_benchmark("glue")


def test_local_single_label_data_and_limit(tmp_path):
    path = tmp_path / "mine.parquet"
    pl.DataFrame({"body": [f"text {i}" for i in range(10)], "topic": ["a", "b"] * 5}).write_parquet(path)
    data = load_eval_data(str(path), text_column="body", label_column="topic")
    assert data.class_names == ["a", "b"] and len(data.texts) == 10
    small = data.limit(4, seed=1)
    assert len(small.texts) == 4 and small.limit(4, seed=1).texts == small.texts


def test_empty_dataset_is_an_error():
    with pytest.raises(BenchmarkError, match="empty"):
        EvalSet("x", [], [])


def test_markdown_table_shows_dashes_for_missing_values():
    table = markdown_table([{"dataset": "d", "system": "s", "accuracy": 0.5, "f1_macro": float("nan"),
                             "texts_per_second": 12.0}])
    assert "| d | s | 0.500 | – | 12.0 |" in table


@pytest.mark.parametrize("args,needle", [
    (["nope-model-folder", "--benchmark", "bbc_news"], "does not exist"),
    (["MODEL", "--benchmark", "glue"], "unknown benchmark 'glue'"),
    (["MODEL"], "nothing to evaluate"),
    (["MODEL", "--benchmark", "bbc_news", "--baseline", "nli"], "needs --nli-model"),
    (["MODEL", "--benchmark", "bbc_news", "--baseline", "magic"], "unknown baseline"),
])
def test_evaluate_errors(tmp_path, args, needle):
    args = [str(tmp_path) if a == "MODEL" else a for a in args]
    result = runner.invoke(app, ["evaluate", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_nli_baseline_runs_the_zero_shot_pipeline(tmp_path):
    """A tiny random NLI model: the scores are noise, but every (text, label) pair goes through the pipeline."""
    from transformers import BertConfig, BertForSequenceClassification

    from gliznet_model.systems import nli_system
    from tests.model_helpers import write_tiny_backbone

    path = write_tiny_backbone(tmp_path / "nli")
    config = BertConfig.from_pretrained(path, num_labels=3, id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
                                        label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    BertForSequenceClassification(config).save_pretrained(path)
    system = nli_system(path, batch_size=4)
    scores = system.score(["the team won the match", "the bank raised rates"], [["sports", "politics"], ["money"]])
    assert [len(s) for s in scores] == [2, 1]
    assert all(0.0 <= x <= 1.0 for s in scores for x in s)
    with pytest.raises(BenchmarkError, match="cannot load NLI model"):
        nli_system(str(tmp_path / "missing"))
