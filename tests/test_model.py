"""GliZNet model tests on a tiny random BERT built on disk (no download): tokenizer, model, losses, predict API."""

from __future__ import annotations

import json
import math


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gliznet_model import GliZNetConfig, GliZNetForSequenceClassification, GliZNETTokenizer, Prediction
from gliznet_model.losses import bce_loss, compute_loss, hybrid_loss, label_repulsion_loss, supcon_loss
from gliznet_model.pooling import LabelPooler
from tests.model_helpers import write_tiny_backbone

TEXTS = ["the team won the football match", "the minister lost the vote on the new law policy"]
LABELS = [["sports", "politics", "business"], ["politics", "sports", "law", "economy"]]
TARGETS = [[1, 0, 0], [1, 0, 1, 0]]


# Sixteen labels: more than fit beside a text in the tiny backbone's max_length, so they are chunked.
CHUNKED_LABELS = [f"label {word}" for word in (
    "news game vote bank film song rain food art city school doctor phone data music travel".split())]

@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    return write_tiny_backbone(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def tokenizer(backbone_dir):
    return GliZNETTokenizer.from_pretrained(backbone_dir, max_length=64, min_text_tokens=8)


def make_model(backbone_dir, tokenizer, seed=0, **config):
    torch.manual_seed(seed)
    return GliZNetForSequenceClassification.from_backbone(backbone_dir, tokenizer=tokenizer, **config)


def tokens_of(tokenizer, text):
    return tokenizer.tokenizer(text, add_special_tokens=False)["input_ids"]


# ------------------------------------------------------------------------------------------------------ tokenizer
@pytest.mark.parametrize("separators", [True, False])
def test_joint_sequence_layout_and_label_mask(backbone_dir, separators):
    tokenizer = GliZNETTokenizer.from_pretrained(backbone_dir, max_length=64, min_text_tokens=8,
                                                 segment_separators=separators)
    enc = tokenizer(TEXTS, LABELS)
    ids, mask, attn = enc["input_ids"], enc["label_mask"], enc["attention_mask"]
    assert ids.shape == mask.shape == attn.shape and ids.shape[0] == 2
    sep = [tokenizer.sep_token_id]
    for row, (text, labels) in enumerate(zip(TEXTS, LABELS)):
        # [CLS] text [SEP] [LAB] l1 [SEP] [LAB] l2 [SEP] ...   or   [CLS] text [LAB] l1 [LAB] l2 ... [SEP]
        expected = [tokenizer.cls_token_id, *tokens_of(tokenizer, text)] + (sep if separators else [])
        expected_mask = [0] * len(expected)
        for j, label in enumerate(labels, start=1):
            label_ids = tokens_of(tokenizer, label)
            expected += [tokenizer.lab_token_id, *label_ids] + (sep if separators else [])
            expected_mask += [0] + [j] * len(label_ids) + ([0] if separators else [])
        if not separators:
            expected += sep
            expected_mask += [0]
        n = len(expected)
        assert ids[row, :n].tolist() == expected
        assert mask[row, :n].tolist() == expected_mask
        assert attn[row, :n].all() and not attn[row, n:].any()
        assert (ids[row, n:] == tokenizer.pad_token_id).all() and (mask[row, n:] == 0).all()
    assert ids.shape[1] == int(attn.sum(1).max())  # padded to the longest row only


def test_lab_token_is_special_and_survives_save(tokenizer, tmp_path):
    assert tokenizer.lab_token_id not in tokens_of(tokenizer, "[lab]")  # lowercased text is not the marker
    assert tokens_of(tokenizer, "[LAB]") == [tokenizer.lab_token_id]
    tokenizer.save_pretrained(tmp_path)
    again = GliZNETTokenizer.from_pretrained(tmp_path)
    assert (again.lab_token_id, again.max_length, again.min_text_tokens) == (tokenizer.lab_token_id, 64, 8)
    assert len(again) == len(tokenizer)
    a, b = tokenizer(TEXTS, LABELS), again(TEXTS, LABELS)
    assert all(torch.equal(a[k], b[k]) for k in ("input_ids", "attention_mask", "label_mask"))


def test_truncation_cuts_text_never_labels(tokenizer):
    text = " ".join(["the market price of the stock"] * 20)
    labels = ["economy", "finance", "technology", "entertainment"]
    enc = tokenizer.encode(text, labels)
    assert enc.num_rows == 1 and enc.lengths[0] == tokenizer.max_length
    ids = enc.ids.tolist()
    mask = enc.label_mask
    per_label = 1 + int(tokenizer.segment_separators)  # [LAB], and a SEP closing each label
    label_tokens = sum(len(tokens_of(tokenizer, lab)) + per_label for lab in labels)
    kept_text = tokenizer.max_length - 2 - label_tokens
    assert ids[1 : 1 + kept_text] == tokens_of(tokenizer, text)[:kept_text]
    for j, label in enumerate(labels, start=1):
        assert [ids[i] for i in np.flatnonzero(mask == j)] == tokens_of(tokenizer, label)


def test_labels_that_do_not_fit_are_chunked_whole_with_the_same_text(tokenizer):
    text = "the team won the match"
    labels = CHUNKED_LABELS
    enc = tokenizer.encode(text, labels)
    assert enc.num_rows > 1
    assert (enc.lengths <= tokenizer.max_length).all()
    text_ids = [tokenizer.cls_token_id, *tokens_of(tokenizer, text)]
    seen = []
    for r in range(enc.num_rows):
        row = enc.ids[enc.offsets[r] : enc.offsets[r] + enc.lengths[r]].tolist()
        row_mask = enc.label_mask[enc.offsets[r] : enc.offsets[r] + enc.lengths[r]]
        assert row[: len(text_ids)] == text_ids  # short text kept whole in every chunk
        positions = enc.label_positions[enc.label_offsets[r] : enc.label_offsets[r] + enc.num_labels[r]]
        for j, pos in enumerate(positions, start=1):
            assert [row[i] for i in np.flatnonzero(row_mask == j)] == tokens_of(tokenizer, labels[pos])
        seen.extend(positions.tolist())
    assert seen == list(range(len(labels)))


def test_long_text_is_cut_to_the_minimum_before_chunking(tokenizer):
    text = " ".join(["the price of the stock"] * 30)
    labels = [f"topic {w}" for w in ("news", "game", "vote", "bank", "film", "song", "rain", "food", "art", "city")]
    enc = tokenizer.encode(text, labels)
    assert enc.num_rows >= 2
    text_lengths = [
        int(np.argmax(enc.ids[o : o + n] == tokenizer.lab_token_id)) - 1 for o, n in zip(enc.offsets, enc.lengths)
    ]
    assert len(set(text_lengths)) == 1 and text_lengths[0] >= tokenizer.min_text_tokens


def test_training_call_refuses_to_chunk_and_aligns_targets(tokenizer):
    many = [f"topic {i}" for i in range(40)]
    with pytest.raises(ValueError, match="labels need"):
        tokenizer("the team won", many)
    enc = tokenizer(TEXTS, LABELS, targets=TARGETS)
    assert enc["labels"].tolist() == [[1, 0, 0, -100], [1, 0, 1, 0]]
    with pytest.raises(ValueError, match="targets"):
        tokenizer(TEXTS, LABELS, targets=[[1, 0], [1, 0, 1, 0]])


@pytest.mark.parametrize(
    "texts, labels, message",
    [
        (["   "], [["sports"]], "empty"),
        ([""], [["sports"]], "empty"),
        (["a text"], [[]], "empty label list"),
        (["a text"], [["sports", "sports"]], "duplicate"),
        (["a text"], [["sports", ""]], "empty or non-string label"),
        (["a text"], [["sports", "  "]], "empty or non-string label"),
        (["a text"], [["a [LAB] b"]], "reserved"),
        (["one", "two"], [["sports"]], "label lists"),
        ([], [["sports"]], "no texts"),
    ],
)
def test_bad_input_is_a_clear_value_error(tokenizer, backbone_dir, texts, labels, message):
    with pytest.raises(ValueError, match=message):
        tokenizer.encode(texts, labels)


def test_predict_api_rejects_bad_input(backbone_dir, tokenizer):
    model = make_model(backbone_dir, tokenizer)
    for text, labels in [("", ["a"]), ("ok", []), ("ok", ["a", "a"]), ("ok", ["a", ""])]:
        with pytest.raises(ValueError):
            model.predict_example(text, labels, tokenizer)
    with pytest.raises(ValueError):
        model.predict_batch(["ok", "fine"], [["a"], []], tokenizer)
    with pytest.raises(ValueError, match="activation"):
        model.predict_example("ok", ["a"], tokenizer, activation="relu")
    with pytest.raises(ValueError, match="label_mask"):
        model(**{k: v for k, v in tokenizer(TEXTS, LABELS).items() if k != "label_mask"})


# ---------------------------------------------------------------------------------------------------------- model
def test_forward_shapes_masks_and_projection(backbone_dir, tokenizer):
    model = make_model(backbone_dir, tokenizer, projection_dim=16).eval()
    enc = tokenizer(TEXTS, LABELS)
    out = model(**enc)
    assert out.logits.shape == (2, 4) and out.logits_mask.tolist() == [[True] * 3 + [False], [True] * 4]
    assert out.logits[0, 3] == torch.finfo(out.logits.dtype).min
    assert out.text_embeddings.shape == (2, 16) and out.label_embeddings.shape == (2, 4, 16)
    assert out.bce_logits.shape == (2, 4)
    assert out.loss is None
    # cosine x learned scale, which starts at 20 (as sentence-transformers scales its contrastive loss)
    assert math.isclose(model.scorer.logit_scale.exp().item(), 20.0, rel_tol=1e-6)
    cos = F.cosine_similarity(out.text_embeddings.unsqueeze(1), out.label_embeddings, dim=-1)
    torch.testing.assert_close(out.logits[out.logits_mask], (20.0 * cos)[out.logits_mask], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("similarity", ["dot", "bilinear"])
def test_dot_and_bilinear_scores(backbone_dir, tokenizer, similarity):
    model = make_model(backbone_dir, tokenizer, similarity=similarity).eval()
    out = model(**tokenizer(TEXTS, LABELS))
    dot = torch.einsum("bd,bkd->bk", out.text_embeddings, out.label_embeddings)
    # the bilinear form starts as the identity, i.e. as the dot product
    torch.testing.assert_close(out.logits[out.logits_mask], dot[out.logits_mask], rtol=1e-5, atol=1e-5)
    if similarity == "bilinear":
        with torch.no_grad():
            model.scorer.bilinear.mul_(2.0)
        doubled = model(**tokenizer(TEXTS, LABELS)).logits
        torch.testing.assert_close(doubled[out.logits_mask], 2 * dot[out.logits_mask], rtol=1e-5, atol=1e-5)


def _reference_pool(hidden, label_mask, strategy, attention=None):
    rows = []
    for b in range(hidden.shape[0]):
        vectors = []
        for j in range(1, int(label_mask.max()) + 1):
            idx = torch.nonzero(label_mask[b] == j).squeeze(1)
            if len(idx) == 0:
                vectors.append(torch.zeros(hidden.shape[-1]))
            elif strategy == "mean":
                vectors.append(hidden[b, idx].mean(0))
            elif strategy == "first":
                vectors.append(hidden[b, idx[0]])
            elif strategy == "lab":
                vectors.append(hidden[b, idx[0] - 1])
            else:
                weights = torch.softmax(attention(hidden[b, idx]).squeeze(1), 0)
                vectors.append((weights.unsqueeze(1) * hidden[b, idx]).sum(0))
        rows.append(torch.stack(vectors))
    return torch.stack(rows)


@pytest.mark.parametrize("strategy", ["mean", "first", "lab", "attention"])
def test_pooling_matches_a_per_label_reference(strategy):
    torch.manual_seed(0)
    hidden = torch.randn(2, 12, 8)
    label_mask = torch.tensor([[0, 0, 0, 1, 1, 0, 2, 0, 3, 3, 3, 0], [0, 0, 1, 0, 2, 2, 0, 0, 0, 0, 0, 0]])
    pooler = LabelPooler(strategy, 8)
    if pooler.attention is not None:
        torch.nn.init.normal_(pooler.attention.weight)
    vectors, present = pooler(hidden, label_mask)
    assert present.tolist() == [[True, True, True], [True, True, False]]
    torch.testing.assert_close(vectors, _reference_pool(hidden, label_mask, strategy, pooler.attention))


def test_attention_pooling_starts_as_mean(backbone_dir, tokenizer):
    enc = tokenizer(TEXTS, LABELS)
    mean = make_model(backbone_dir, tokenizer, pooling="mean").eval()(**enc).logits
    attention = make_model(backbone_dir, tokenizer, pooling="attention").eval()(**enc).logits
    torch.testing.assert_close(mean, attention)


def test_embeddings_grow_only_when_the_vocabulary_does_not_fit(tmp_path):
    tight = write_tiny_backbone(tmp_path / "tight")
    tok = GliZNETTokenizer.from_pretrained(tight, max_length=64, min_text_tokens=8)
    model = GliZNetForSequenceClassification.from_backbone(tight, tokenizer=tok)
    assert model.get_input_embeddings().num_embeddings == len(tok) == model.config.encoder_config.vocab_size

    roomy = write_tiny_backbone(tmp_path / "roomy")
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(roomy)
    config.vocab_size += 10
    BertModel(config).save_pretrained(roomy)
    tok = GliZNETTokenizer.from_pretrained(roomy, max_length=64, min_text_tokens=8)
    model = GliZNetForSequenceClassification.from_backbone(roomy, tokenizer=tok)
    assert model.get_input_embeddings().num_embeddings == config.vocab_size > len(tok)

    # an explicit resize on the wrapper is recorded where loading rebuilds the backbone from
    model.resize_token_embeddings(config.vocab_size + 6)
    model.save_pretrained(tmp_path / "resized")
    loaded = GliZNetForSequenceClassification.from_pretrained(tmp_path / "resized")
    assert loaded.get_input_embeddings().num_embeddings == config.vocab_size + 6


@pytest.mark.parametrize(
    "losses",
    [
        {"bce": 1.0},
        {"hybrid": 1.0},
        {"supcon": 1.0},
        {"decoupled_bce": 1.0},
        {"supcon": 1.0, "repulsion": 0.1, "decoupled_bce": 1.0},
    ],
)
def test_gradients_reach_the_backbone(backbone_dir, tokenizer, losses):
    model = make_model(backbone_dir, tokenizer, losses=losses)
    out = model(**tokenizer(TEXTS, LABELS, targets=TARGETS))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"):
        grad = model.backbone.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0 and torch.isfinite(grad).all()
    assert model.text_projection.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "losses",
    [
        {"bce": 1.0},
        {"hybrid": 1.0},
        {"supcon": 1.0},
        {"repulsion": 1.0},
        {"decoupled_bce": 1.0},
        None,  # the default: supcon + 0.1 repulsion + decoupled BCE
    ],
)
def test_each_loss_is_finite_and_decreases_when_overfitting(backbone_dir, tokenizer, losses):
    model = make_model(backbone_dir, tokenizer, seed=1, losses=losses, dropout=0.0)
    texts = TEXTS + ["the bank made a profit on the stock market", "the film and the song won an art prize"]
    labels = LABELS + [["business", "sports", "health"], ["entertainment", "politics", "science"]]
    targets = TARGETS + [[1, 0, 0], [1, 0, 0]]
    batch = tokenizer(texts, labels, targets=targets)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(25):
        loss = model(**batch).loss
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert history[-1] < 0.7 * history[0], history


def test_losses_are_nan_safe_without_positives_or_negatives(backbone_dir, tokenizer):
    model = make_model(backbone_dir, tokenizer, losses={"supcon": 1, "hybrid": 1, "repulsion": 1, "decoupled_bce": 1})
    texts = ["the team won", "the vote was lost", "the bank"]
    labels = [["sports", "politics"], ["politics", "law"], ["business", "money"]]
    batch = tokenizer(texts, labels, targets=[[1, 1], [0, 0], [-100, -100]])
    out = model(**batch)
    assert torch.isfinite(out.loss)
    assert out.loss_terms["supcon"] == 0  # no sample has both a positive and a negative
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # nothing valid at all still gives a finite, graph-connected zero
    batch["labels"] = torch.full_like(batch["labels"], -100.0)
    out = model(**batch)
    assert torch.isfinite(out.loss) and out.loss.requires_grad


def test_loss_functions_match_hand_computation():
    logits = torch.tensor([[2.0, -1.0, 0.5, 9.0], [0.3, 0.1, -0.2, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0, -100.0], [0.0, 1.0, 0.0, 0.0]])
    valid = targets != -100

    expected_bce = F.binary_cross_entropy_with_logits(logits[valid], targets[valid])
    torch.testing.assert_close(bce_loss(logits, targets, valid), expected_bce)

    probs = torch.sigmoid(logits)
    margin_0 = max(0.0, 0.5 + probs[0, 1] - min(probs[0, 0], probs[0, 2]))
    margin_1 = max(0.0, 0.5 + max(probs[1, 0], probs[1, 2], probs[1, 3]) - probs[1, 1])
    expected_hybrid = 0.7 * expected_bce + 0.3 * (margin_0 + margin_1) / 2
    torch.testing.assert_close(hybrid_loss(logits, targets, valid, 0.7, 0.3, 0.5), expected_hybrid)

    log_p0 = torch.log_softmax(logits[0, :3], 0)
    log_p1 = torch.log_softmax(logits[1], 0)
    expected_supcon = (-(log_p0[0] + log_p0[2]) / 2 - log_p1[1]) / 2
    torch.testing.assert_close(supcon_loss(logits, targets, valid), expected_supcon)

    embeddings = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    present = torch.tensor([[True, True, False]])
    expected_repulsion = torch.tensor(max(0.0, 1 / math.sqrt(2) - 0.3))  # one pair, counted both ways
    torch.testing.assert_close(label_repulsion_loss(embeddings, present, 0.3), expected_repulsion)


def test_weighted_total_and_target_padding(backbone_dir, tokenizer):
    config = GliZNetConfig(losses={"bce": 0.5, "supcon": 2.0})
    logits = torch.tensor([[1.0, -1.0, 0.0]])
    present = torch.tensor([[True, True, False]])
    wide_targets = torch.tensor([[1.0, 0.0, -100.0, -100.0, -100.0]])  # a collator may pad wider than the batch
    total, terms = compute_loss(config, logits, wide_targets, present, torch.randn(1, 3, 4))
    torch.testing.assert_close(total, 0.5 * terms["bce"] + 2.0 * terms["supcon"])
    with pytest.raises(ValueError, match="more labels"):
        compute_loss(config, logits, torch.tensor([[1.0, 0.0, 0.0, 1.0]]), present, torch.randn(1, 3, 4))


# -------------------------------------------------------------------------------------------------------- predict
def test_sigmoid_and_softmax_scores(backbone_dir, tokenizer):
    model = make_model(backbone_dir, tokenizer)
    labels = ["sports", "politics", "business", "health"]
    sig = model.predict_example("the team won the match", labels, tokenizer)
    soft = model.predict_example("the team won the match", labels, tokenizer, activation="softmax")
    assert isinstance(sig, Prediction) and sig.text == "the team won the match"
    for pred in (sig, soft):
        scores = [s.score for s in pred.labels]
        assert sorted(s.label for s in pred.labels) == sorted(labels)
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
    assert math.isclose(sum(s.score for s in soft.labels), 1.0, rel_tol=1e-6)
    assert len({round(s.score, 6) for s in sig.labels}) > 1  # not a constant output
    assert model.training  # predict restores the caller's mode


def test_predict_batch_matches_single_examples_and_batch_sizes(backbone_dir, tokenizer):
    model = make_model(backbone_dir, tokenizer)
    texts = ["the team won", "the minister lost the vote on the law", "profit at the bank"]
    labels = [["sports", "politics"], ["politics", "law", "economy", "sports"], ["business", "money", "film"]]
    batched = model.predict_batch(texts, labels, tokenizer, batch_size=32)
    one_by_one = model.predict_batch(texts, labels, tokenizer, batch_size=1)
    for a, b, text, labs in zip(batched, one_by_one, texts, labels):
        single = model.predict_example(text, labs, tokenizer)
        for pred in (b, single):
            assert [s.label for s in pred.labels] == [s.label for s in a.labels]
            np.testing.assert_allclose([s.score for s in pred.labels], [s.score for s in a.labels], atol=1e-5)
    shared = model.predict_batch(texts, ["sports", "politics"], tokenizer)
    assert [len(p.labels) for p in shared] == [2, 2, 2]


def test_chunked_scores_equal_one_pass_per_chunk(backbone_dir, tokenizer):
    model = make_model(backbone_dir, tokenizer)
    text = "the team won the match"
    labels = CHUNKED_LABELS
    enc = tokenizer.encode(text, labels)
    assert enc.num_rows >= 2
    flat, offsets = model.predict_logits([text], [labels], tokenizer)
    assert offsets.tolist() == [0] and flat.shape == (len(labels),)
    for r in range(enc.num_rows):
        positions = enc.label_positions[enc.label_offsets[r] : enc.label_offsets[r] + enc.num_labels[r]]
        chunk_labels = [labels[p] for p in positions]
        alone, _ = model.predict_logits([text], [chunk_labels], tokenizer)
        np.testing.assert_allclose(flat[positions], alone, rtol=1e-5, atol=1e-5)
    soft = model.predict_example(text, labels, tokenizer, activation="softmax")
    assert math.isclose(sum(s.score for s in soft.labels), 1.0, rel_tol=1e-6)
    assert {s.label for s in soft.labels} == set(labels)


def test_save_and_load_give_identical_outputs(backbone_dir, tokenizer, tmp_path):
    model = make_model(backbone_dir, tokenizer, pooling="attention", projection_dim=24, similarity="bilinear").eval()
    with torch.no_grad():  # move the learned scalars off their initial values so loading them is really tested
        model.scorer.bce_bias.fill_(0.7)
        model.pooler.attention.weight.normal_()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "gliznet" and saved["pooling"] == "attention" and saved["projection_dim"] == 24
    loaded, loaded_tok = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(tmp_path, device="cpu")
    assert not loaded.training
    enc = tokenizer(TEXTS, LABELS)
    torch.testing.assert_close(loaded(**loaded_tok(TEXTS, LABELS)).logits, model(**enc).logits, rtol=0, atol=0)
    a = model.predict_example(TEXTS[1], LABELS[1], tokenizer)
    b = loaded.predict_example(TEXTS[1], LABELS[1], loaded_tok)
    assert a == b

    from transformers import AutoConfig, AutoModel

    assert isinstance(AutoConfig.from_pretrained(tmp_path), GliZNetConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), GliZNetForSequenceClassification)


def test_mismatched_tokenizer_is_refused(backbone_dir, tokenizer):
    from transformers import AutoTokenizer

    model = make_model(backbone_dir, tokenizer)
    base = AutoTokenizer.from_pretrained(backbone_dir)
    base.add_tokens(["[OTHER]"], special_tokens=True)  # shifts where [LAB] lands
    other = GliZNETTokenizer(base, max_length=64, min_text_tokens=8)
    assert other.lab_token_id == tokenizer.lab_token_id + 1
    with pytest.raises(ValueError, match="LAB"):
        model.predict_example("the team won", ["sports"], other)


def test_config_rejects_unknown_choices():
    for kwargs in (
        {"pooling": "max"},
        {"similarity": "l2"},
        {"losses": {"focal": 1.0}},
        {"losses": {}},
        {"max_sequence_length": 16, "min_text_tokens": 16},
    ):
        with pytest.raises(ValueError):
            GliZNetConfig(**kwargs)


def test_from_backbone_builds_its_own_tokenizer_within_the_backbone_positions(backbone_dir, tokenizer):
    model = GliZNetForSequenceClassification.from_backbone(backbone_dir, min_text_tokens=8, pooling="first")
    assert model.config.max_sequence_length == 128  # the tiny backbone's positions, not the tokenizer's 512
    assert model.config.lab_token_id == tokenizer.lab_token_id and model.config.pooling == "first"
    with pytest.raises(ValueError, match="disagrees"):
        GliZNetForSequenceClassification.from_backbone(backbone_dir, tokenizer=tokenizer, min_text_tokens=9)


def _tiny_encoder_config(family):
    from transformers import DebertaV2Config, ModernBertConfig, RobertaConfig

    common = {
        "vocab_size": 120,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    if family == "roberta":
        return RobertaConfig(max_position_embeddings=130, pad_token_id=1, **common)
    if family == "deberta-v2":
        return DebertaV2Config(
            max_position_embeddings=128,
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
            **common,
        )
    return ModernBertConfig(
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        global_attn_every_n_layers=1,
        local_attention=16,
        **common,
    )


@pytest.mark.parametrize(("family", "layout"), [("roberta", "full"), ("roberta", "separate"), ("roberta", "gated"),
                                                ("deberta-v2", "full"), ("modernbert", "full")])
def test_other_encoder_families_train_and_round_trip(family, layout, tmp_path):
    torch.manual_seed(0)
    # Hand-made rows: [LAB] is id 7 (at position 3 of the first row), label tokens are marked by the label mask.
    config = GliZNetConfig(encoder_config=_tiny_encoder_config(family), max_sequence_length=64, min_text_tokens=8,
                           attention_layout=layout, lab_token_id=7, pooling="mean", segment_separators=False)
    model = GliZNetForSequenceClassification(config)
    input_ids = torch.tensor([[1, 5, 6, 7, 9, 10, 11, 2], [1, 5, 9, 10, 2, 0, 0, 0]])
    attention_mask = (input_ids != 0).long()
    attention_mask[0] = 1
    label_mask = torch.tensor([[0, 0, 0, 0, 1, 0, 2, 0], [0, 0, 1, 1, 0, 0, 0, 0]])
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        label_mask=label_mask,
        labels=torch.tensor([[1.0, 0.0], [1.0, -100.0]]),
    )
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0
    model.eval().save_pretrained(tmp_path)
    loaded = GliZNetForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded.backbone) is type(model.backbone)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "label_mask": label_mask}
    torch.testing.assert_close(loaded(**inputs).logits, model(**inputs).logits)


@pytest.mark.parametrize("family", ["deberta-v2", "modernbert"])
def test_layouts_need_a_backbone_that_takes_4d_masks(family):
    config = GliZNetConfig(encoder_config=_tiny_encoder_config(family), max_sequence_length=64, min_text_tokens=8,
                           attention_layout="separate", lab_token_id=7)
    with pytest.raises(ValueError, match="4-D attention masks"):
        GliZNetForSequenceClassification(config)
