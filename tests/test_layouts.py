"""Attention layouts and text vectors: masks, restarted positions, label independence, training and round trips."""

from __future__ import annotations

import json

import pytest
import torch

from gliznet_model import GliZNetForSequenceClassification, GliZNETTokenizer
from gliznet_model.configuration import GliZNetConfig
from gliznet_model.layouts import AttentionLayout, restarted_positions, segments
from tests.model_helpers import write_tiny_backbone

TEXT = "the team won the match and the minister said the vote was close"


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    return write_tiny_backbone(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def tokenizer(backbone_dir):
    return GliZNETTokenizer.from_pretrained(backbone_dir, max_length=64, min_text_tokens=8)


def build(backbone_dir, tokenizer, **config):
    torch.manual_seed(0)
    return GliZNetForSequenceClassification.from_backbone(backbone_dir, tokenizer=tokenizer, **config).eval()


def test_segments_and_restarted_positions_by_hand():
    # [CLS] t t [SEP] [LAB] a [SEP] [LAB] b b [SEP] [PAD]  with [LAB] = 9, [SEP] = 3
    ids = torch.tensor([[2, 5, 6, 3, 9, 7, 3, 9, 8, 8, 3, 0]])
    attention = (ids != 0).long()
    segment = segments(ids, attention, lab_token_id=9, segment_separators=True)
    assert segment.tolist() == [[0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, -1]]
    assert restarted_positions(segment).tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 0]]
    # Without separators the one closing SEP belongs to the text and continues its positions.
    ids = torch.tensor([[2, 5, 6, 9, 7, 9, 8, 3]])
    segment = segments(ids, torch.ones_like(ids), lab_token_id=9)
    assert segment.tolist() == [[0, 0, 0, 1, 1, 2, 2, 0]]
    assert restarted_positions(segment, offset=2).tolist() == [[2, 3, 4, 2, 3, 2, 3, 5]]


@pytest.mark.parametrize("layout", ["text_blind", "separate", "gated"])
def test_mask_blocks_what_the_layout_says(layout):
    ids = torch.tensor([[2, 5, 3, 9, 7, 3, 9, 8, 3]])
    module = AttentionLayout(layout, lab_token_id=9, gate_init=-8.0, segment_separators=True)
    segment = module.segments(ids, torch.ones_like(ids))
    mask, positions = module(ids, torch.ones_like(ids), segment, torch.float32)
    open_ = mask[0, 0] == 0
    text, label1, label2 = [0, 1, 2], [3, 4, 5], [6, 7, 8]
    assert not open_[text][:, label1 + label2].any()  # the text never sees a label
    assert open_[text][:, text].all()
    if layout == "text_blind":
        assert open_[label1][:, text + label1 + label2].all() and positions is None
    else:
        assert not open_[label1][:, label2].any() and open_[label1][:, label1].all()
        assert positions[0, label1].tolist() == [0, 1, 2]
        gate = mask[0, 0][label1][:, text]
        assert (gate == -8.0).all() if layout == "gated" else (gate < -1e30).all()


@pytest.mark.parametrize("layout", ["text_blind", "separate", "gated"])
def test_text_vector_does_not_move_when_the_label_set_changes(backbone_dir, tokenizer, layout):
    model = build(backbone_dir, tokenizer, attention_layout=layout)
    vectors = []
    for labels in (["sports", "politics"], ["music film", "health", "bank money profit", "weather"]):
        with torch.no_grad():
            vectors.append(model(**tokenizer([TEXT], [labels])).text_embeddings[0])
    torch.testing.assert_close(vectors[0], vectors[1], atol=1e-5, rtol=0)


def test_the_full_layout_lets_labels_move_the_text_vector(backbone_dir, tokenizer):
    """The control for the test above: with full attention the text does read the labels."""
    model = build(backbone_dir, tokenizer, attention_layout="full")
    with torch.no_grad():
        a = model(**tokenizer([TEXT], [["sports"]])).text_embeddings[0]
        b = model(**tokenizer([TEXT], [["music film", "health"]])).text_embeddings[0]
    assert (a - b).abs().max() > 1e-4


def test_separate_layout_labels_are_scored_as_if_encoded_alone(backbone_dir, tokenizer):
    """In the separate layout a label's vector depends on nothing but the label: not the text, not its neighbours."""
    model = build(backbone_dir, tokenizer, attention_layout="separate")
    with torch.no_grad():
        a = model(**tokenizer([TEXT], [["sports", "politics"]])).label_embeddings[0, 0]
        b = model(**tokenizer(["weather rain sun"], [["health", "sports"]])).label_embeddings[0, 1]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("text_pooling", "layout"), [("cls", "full"), ("mean", "separate"),
                                                      ("label_attention", "text_blind"), ("mean", "gated")])
def test_every_text_vector_trains_and_round_trips(backbone_dir, tokenizer, tmp_path, text_pooling, layout):
    model = build(backbone_dir, tokenizer, text_pooling=text_pooling, attention_layout=layout).train()
    batch = tokenizer([TEXT, "the bank raised rates"], [["sports", "politics"], ["business", "weather", "music"]],
                      targets=[[1, 0], [1, 0, 0]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    first = None
    for _ in range(15):
        loss = model(**batch).loss
        first = loss.item() if first is None else first
        loss.backward()
        if layout == "gated":  # the gate is a weight like any other: the loss reaches it through the mask
            assert model.layout.gate.grad is not None and model.layout.gate.grad.abs().item() > 0
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < first
    model.eval().save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(tmp_path, device="cpu")
    assert (loaded.config.text_pooling, loaded.config.attention_layout) == (text_pooling, layout)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits)


def test_configs_saved_before_layouts_load_with_their_old_meaning(backbone_dir, tokenizer, tmp_path):
    model = build(backbone_dir, tokenizer)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for key in ("text_pooling", "attention_layout", "segment_separators"):
        saved.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = GliZNetConfig.from_pretrained(tmp_path)
    assert (config.text_pooling, config.attention_layout, config.segment_separators) == ("cls", "full", False)
    assert GliZNetConfig().attention_layout == "separate"  # fresh configs get today's defaults
