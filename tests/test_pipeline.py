"""The transformers pipeline: same scores as predict_batch, same contract as the zero-shot-classification pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import pipeline

from gliznet_model import PIPELINE_TASK, GliZNetForSequenceClassification, GliZNetZeroShotPipeline, GliZNETTokenizer
from tests.surface_helpers import write_tiny_gliznet

TEXTS = ["the team won the football match", "the minister lost the vote on the new law",
         "the bank raised rates and the stock market fell", "the film actor sang a song", "rain and sun in the city"]
LABELS = ["sports", "politics", "business", "entertainment"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return write_tiny_gliznet(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="module")
def classifier(saved):
    return pipeline(PIPELINE_TASK, model=saved[0], device="cpu")


@pytest.fixture(scope="module")
def loaded(saved):
    return GliZNetForSequenceClassification.from_pretrained_with_tokenizer(saved[0], device="cpu")


@pytest.fixture(scope="module")
def nli_classifier(saved, tmp_path_factory):
    """transformers' own zero-shot pipeline on a tiny random NLI model: the contract to match."""
    from transformers import BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("nli")
    config = BertConfig.from_pretrained(saved[1], num_labels=3,
                                        id2label={0: "entailment", 1: "neutral", 2: "contradiction"},
                                        label2id={"entailment": 0, "neutral": 1, "contradiction": 2})
    BertForSequenceClassification(config).save_pretrained(path)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(saved[1]).save_pretrained(path)
    return pipeline("zero-shot-classification", model=str(path), device="cpu")


def expected(loaded, texts, labels, activation):
    model, tokenizer = loaded
    return model.predict_batch(texts, [labels] * len(texts), tokenizer, activation=activation)


def test_the_task_builds_a_gliznet_pipeline(classifier):
    assert isinstance(classifier, GliZNetZeroShotPipeline)
    assert isinstance(classifier.model, GliZNetForSequenceClassification)
    assert isinstance(classifier.gliznet_tokenizer, GliZNETTokenizer)


@pytest.mark.parametrize("multi_label, activation", [(False, "softmax"), (True, "sigmoid")])
def test_scores_are_predict_batch_scores(classifier, loaded, multi_label, activation):
    out = classifier(TEXTS[0], candidate_labels=LABELS, multi_label=multi_label)
    (prediction,) = expected(loaded, TEXTS[:1], LABELS, activation)
    assert out["sequence"] == TEXTS[0]
    assert out["labels"] == [s.label for s in prediction.labels]
    assert out["scores"] == [s.score for s in prediction.labels]


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_a_list_gives_a_list_in_order_at_any_batch_size(classifier, loaded, batch_size):
    outs = classifier(TEXTS, candidate_labels=LABELS, batch_size=batch_size)
    assert isinstance(outs, list) and [o["sequence"] for o in outs] == TEXTS
    for out, prediction in zip(outs, expected(loaded, TEXTS, LABELS, "softmax")):
        assert out["labels"] == [s.label for s in prediction.labels]
        np.testing.assert_allclose(out["scores"], [s.score for s in prediction.labels], rtol=1e-5, atol=1e-6)


def check_contract(out, sequence, labels, multi_label):
    assert set(out) == {"sequence", "labels", "scores"}
    assert out["sequence"] == sequence
    assert sorted(out["labels"]) == sorted(labels)
    assert len(out["scores"]) == len(labels) and all(isinstance(s, float) for s in out["scores"])
    assert out["scores"] == sorted(out["scores"], reverse=True)
    assert all(0.0 <= s <= 1.0 for s in out["scores"])
    if not multi_label and len(labels) > 1:
        assert sum(out["scores"]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("call", [
    lambda c: c(TEXTS[0], LABELS),                                                     # positional labels
    lambda c: c(TEXTS[0], candidate_labels="sports, politics,business"),               # comma-separated
    lambda c: c(TEXTS[0], candidate_labels=LABELS, multi_label=True),
    lambda c: c(TEXTS[0], candidate_labels=["sports"]),                                # one label
    lambda c: c(TEXTS[0], candidate_labels=LABELS, hypothesis_template="This text is about {}."),
    lambda c: c(TEXTS[:3], candidate_labels=LABELS),
])
def test_output_contract_is_the_zero_shot_pipelines(classifier, nli_classifier, call):
    """The same call on transformers' zero-shot pipeline and on GliZNet's returns the same shape."""
    ours, theirs = call(classifier), call(nli_classifier)
    assert type(ours) is type(theirs)
    ours, theirs = (ours, theirs) if isinstance(ours, list) else ([ours], [theirs])
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        multi = len(b["labels"]) == 1 or abs(sum(b["scores"]) - 1.0) > 1e-4
        check_contract(b, b["sequence"], b["labels"], multi)
        check_contract(a, b["sequence"], b["labels"], multi)


def test_multi_label_scores_are_independent_not_normalised(classifier, loaded):
    out = classifier(TEXTS[0], candidate_labels=LABELS, multi_label=True)
    (prediction,) = expected(loaded, TEXTS[:1], LABELS, "sigmoid")
    assert out["scores"] == [s.score for s in prediction.labels]
    assert sum(out["scores"]) != pytest.approx(1.0, abs=1e-3)
    one = classifier(TEXTS[0], candidate_labels=["sports"])  # one label: scored on its own, not a softmax of 1
    assert one["scores"][0] < 1.0


def test_the_factory_rebuilds_the_models_own_tokenizer_settings(tmp_path):
    """pipeline() hands over the backbone tokenizer; the GliZNet settings (length budget, separators) come from
    the model's config, so a model saved with non-default ones scores exactly as predict_batch does."""
    path, _ = write_tiny_gliznet(tmp_path, seed=3, max_length=48, min_text_tokens=6, segment_separators=False)
    classifier = pipeline(PIPELINE_TASK, model=path, device="cpu")
    tokenizer = classifier.gliznet_tokenizer
    assert (tokenizer.max_length, tokenizer.min_text_tokens, tokenizer.segment_separators) == (48, 6, False)
    model, saved_tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(path, device="cpu")
    (prediction,) = model.predict_batch(TEXTS[:1], [LABELS], saved_tokenizer, activation="softmax")
    assert classifier(TEXTS[0], LABELS)["scores"] == [s.score for s in prediction.labels]


def test_pipeline_from_loaded_objects(loaded):
    model, tokenizer = loaded
    classifier = GliZNetZeroShotPipeline(model=model, tokenizer=tokenizer, device="cpu")
    (prediction,) = expected(loaded, TEXTS[1:2], LABELS, "softmax")
    assert classifier(TEXTS[1], LABELS)["scores"] == [s.score for s in prediction.labels]


@pytest.mark.parametrize("kwargs, message", [
    ({}, "candidate_labels is required"),
    ({"candidate_labels": []}, "empty"),
    ({"candidate_labels": ""}, "empty"),
    ({"candidate_labels": ["sports", "sports"]}, "duplicate labels"),
    ({"candidate_labels": ["sports", " "]}, "empty label"),
    ({"candidate_labels": LABELS, "top_k": 2}, "unknown arguments"),
])
def test_bad_calls_raise_value_errors(classifier, kwargs, message):
    with pytest.raises(ValueError, match=message):
        classifier(TEXTS[0], **kwargs)
