"""GliZNetForSequenceClassification: one encoder pass scores every label of a text.

The backbone reads `[CLS] text [SEP] [LAB] l1 [SEP] [LAB] l2 [SEP] ...` (tokenizer.py) under an attention layout
(layouts.py) that decides whether text and labels see each other; the text vector is pooled from the text segment
and each label vector from its own segment or tokens (pooling.py), both go through their projections, and the
scorer (scoring.py) compares them. Logits come back padded to [batch, max_labels] with a mask, so any number of
labels per row works.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel

from .backbones import sentence_pooling
from .configuration import GliZNetConfig
from .losses import compute_loss
from .outputs import GliZNetOutput, LabelScore, Prediction
from .layouts import LAYOUT_BACKBONES, AttentionLayout, check_backbone
from .pooling import LabelPooler, TextPooler
from .scoring import LabelScorer
from .tokenizer import GliZNETTokenizer

try:  # transformers >= 5: init helpers that skip tensors already loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # transformers 4.x
    from torch.nn import init

ACTIVATIONS = ("sigmoid", "softmax")
# GliZNetConfig field -> GliZNETTokenizer attribute
_TOKENIZER_SETTINGS = {
    "lab_token": "lab_token",
    "max_sequence_length": "max_length",
    "min_text_tokens": "min_text_tokens",
    "segment_separators": "segment_separators",
}


class GliZNetPreTrainedModel(PreTrainedModel):
    config_class = GliZNetConfig
    base_model_prefix = "backbone"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        config = self.config
        if isinstance(module, LabelScorer):
            if module.logit_scale is not None:
                init.constant_(module.logit_scale, math.log(config.logit_scale_init))
            if module.bilinear is not None:
                init.eye_(module.bilinear)
            if module.bce_logit_scale is not None:
                init.constant_(module.bce_logit_scale, math.log(config.bce_scale_init))
                init.constant_(module.bce_bias, float(config.bce_bias_init))
        elif isinstance(module, AttentionLayout):
            if module.gate is not None:
                init.constant_(module.gate, config.gate_init)
        elif isinstance(module, TextPooler):
            if module.log_scale is not None:
                init.zeros_(module.log_scale)
        elif isinstance(module, nn.Linear) and getattr(module, "_gliznet_init", None) == "eye":
            # Both towers start as the same (truncated) identity, so an untrained model compares texts and labels
            # in the backbone's own geometry instead of through two unrelated random maps.
            init.eye_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and getattr(module, "_gliznet_init", None) == "zeros":
            init.zeros_(module.weight)  # attention pooling starts as mean pooling
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)


class GliZNetForSequenceClassification(GliZNetPreTrainedModel):
    """GliZNet: joint text + labels encoding, label pooling, projections and similarity scoring.

    Build a fresh model on any encoder with `from_backbone`, load a trained one with `from_pretrained` /
    `from_pretrained_with_tokenizer`, classify with `predict_example` / `predict_batch`.
    """

    def __init__(self, config: GliZNetConfig, backbone: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        if backbone is None:
            if config.encoder_config is None:
                raise ValueError("GliZNetConfig.encoder_config is required to build the backbone")
            backbone = AutoModel.from_config(config.encoder_config)
        self.backbone = backbone
        config.encoder_config = backbone.config  # one object, so embedding resizes show up in config.json
        model_type = getattr(backbone.config, "model_type", "")
        check_backbone(config.attention_layout, model_type)
        offset = 0
        if LAYOUT_BACKBONES.get(model_type) == "padding":
            offset = int(backbone.config.pad_token_id) + 1
        hidden, dim = config.hidden_size, config.embedding_dim
        self.layout = AttentionLayout(config.attention_layout, config.lab_token_id, config.gate_init, offset,
                                      config.segment_separators)
        self.dropout = nn.Dropout(config.dropout)
        self.pooler = LabelPooler(config.pooling, hidden)
        if self.pooler.attention is not None:
            self.pooler.attention._gliznet_init = "zeros"
        self.text_pooler = TextPooler(config.text_pooling)
        if config.use_projection:
            self.text_projection = nn.Linear(hidden, dim)
            self.label_projection = self.text_projection if config.tie_projections else nn.Linear(hidden, dim)
            self.text_projection._gliznet_init = self.label_projection._gliznet_init = "eye"
        else:
            self.text_projection = nn.Identity()
            self.label_projection = nn.Identity()
        self.scorer = LabelScorer(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def resize_token_embeddings(self, *args: Any, **kwargs: Any) -> nn.Embedding:
        """Resize the backbone's embeddings and record the size in `encoder_config`, which rebuilds it on load."""
        embeddings = self.backbone.resize_token_embeddings(*args, **kwargs)
        self.config.encoder_config.vocab_size = embeddings.num_embeddings
        return embeddings

    def fit_vocabulary(self, vocab_size: int) -> bool:
        """Grow the token embeddings to `vocab_size` only when the matrix is smaller (many backbones have spare
        rows, e.g. DeBERTa-v3, and keep their embedding shape)."""
        if vocab_size <= self.get_input_embeddings().num_embeddings:
            return False
        self.resize_token_embeddings(vocab_size)
        return True

    # ------------------------------------------------------------------------------------------------ building
    @classmethod
    def from_backbone(
        cls,
        name_or_path: str | os.PathLike,
        tokenizer: GliZNETTokenizer | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        **config_kwargs: Any,
    ) -> GliZNetForSequenceClassification:
        """A fresh, untrained GliZNet on a pretrained encoder (Hub id or local folder).

        `config_kwargs` are GliZNetConfig fields (pooling, projection_dim, similarity, losses, ...). Without a
        `tokenizer`, one is built from the same backbone with the given `lab_token`/`max_sequence_length`/
        `min_text_tokens` (max length capped at the backbone's positions); `GliZNETTokenizer.from_pretrained(
        name_or_path, ...)` with those settings gives an identical one.
        """
        backbone = AutoModel.from_pretrained(name_or_path, **(backbone_kwargs or {}))
        max_positions = getattr(backbone.config, "max_position_embeddings", None)
        if tokenizer is None:
            settings = {attr: config_kwargs[key] for key, attr in _TOKENIZER_SETTINGS.items() if key in config_kwargs}
            tokenizer = GliZNETTokenizer.from_pretrained(name_or_path, **settings)
            if "max_length" not in settings and max_positions and tokenizer.max_length > max_positions:
                tokenizer.max_length = max_positions
        else:
            for key, attr in _TOKENIZER_SETTINGS.items():
                if key in config_kwargs and config_kwargs[key] != getattr(tokenizer, attr):
                    raise ValueError(f"{key}={config_kwargs[key]!r} disagrees with the tokenizer's {attr}")
        if max_positions and tokenizer.max_length > max_positions:
            raise ValueError(f"max_length {tokenizer.max_length} exceeds the backbone's {max_positions} positions")
        for key, attr in _TOKENIZER_SETTINGS.items():
            config_kwargs[key] = getattr(tokenizer, attr)
        if config_kwargs.get("text_pooling") is None:
            # Pool the text the way the backbone learned to embed sentences, when it says how.
            config_kwargs["text_pooling"] = sentence_pooling(str(name_or_path)) or "mean"
        config = GliZNetConfig(
            encoder_config=backbone.config,
            encoder_name_or_path=str(name_or_path),
            lab_token_id=tokenizer.lab_token_id,
            **config_kwargs,
        )
        model = cls(config, backbone=backbone)
        model.fit_vocabulary(len(tokenizer))
        if tokenizer.lab_token_id >= tokenizer.tokenizer.vocab_size:  # [LAB] is new to this backbone
            # A new [LAB] starts as the backbone's [CLS]: in the restarting layouts each label segment then reads
            # like "[CLS] label", exactly what the backbone saw when it learned to embed short texts.
            with torch.no_grad():
                weight = model.get_input_embeddings().weight
                weight[tokenizer.lab_token_id] = weight[tokenizer.cls_token_id]
        return model

    @classmethod
    def from_pretrained_with_tokenizer(
        cls, name_or_path: str | os.PathLike, device: str | torch.device | None = None, **kwargs: Any
    ) -> tuple[GliZNetForSequenceClassification, GliZNETTokenizer]:
        """Load a saved model and its tokenizer (folder or Hub id); the model goes to `device` (default: CUDA when
        present) in eval mode."""
        model = cls.from_pretrained(name_or_path, **kwargs)
        tokenizer = GliZNETTokenizer.from_pretrained(name_or_path)
        model.check_tokenizer(tokenizer)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return model.to(device).eval(), tokenizer

    def check_tokenizer(self, tokenizer: GliZNETTokenizer) -> None:
        """Fail early when a tokenizer does not belong to this model (different [LAB] id or vocabulary)."""
        if self.config.lab_token_id is not None and tokenizer.lab_token_id != self.config.lab_token_id:
            raise ValueError(
                f"tokenizer [LAB] id {tokenizer.lab_token_id} differs from the model's {self.config.lab_token_id}"
            )
        if tokenizer.segment_separators != self.config.segment_separators:
            raise ValueError(f"tokenizer segment_separators={tokenizer.segment_separators} differs from the model's "
                             f"{self.config.segment_separators}")
        if len(tokenizer) > self.get_input_embeddings().num_embeddings:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens, the model's embeddings only "
                f"{self.get_input_embeddings().num_embeddings}"
            )

    # ------------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        label_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> GliZNetOutput | tuple:
        """label_mask [B, L]: 0 for text/special tokens, j for the tokens of label j. labels: [B, K] float targets
        (1 positive, 0 negative, config.ignore_index padding); when given, `loss` is the configured objective."""
        if label_mask is None:
            raise ValueError("label_mask is required; GliZNETTokenizer builds it with the input ids")
        if input_ids is None or attention_mask is None:
            raise ValueError("input_ids and attention_mask are required (the layout is read from the token ids)")
        dtype = self.backbone.get_input_embeddings().weight.dtype
        segment = self.layout.segments(input_ids, attention_mask)
        backbone_mask, layout_positions = self.layout(input_ids, attention_mask, segment, dtype)
        if position_ids is None:
            position_ids = layout_positions
        encoder_inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": backbone_mask}
        for name, value in (
            ("token_type_ids", token_type_ids),
            ("position_ids", position_ids),
            ("output_hidden_states", output_hidden_states),
            ("output_attentions", output_attentions),
        ):
            if value is not None:
                encoder_inputs[name] = value
        encoded = self.backbone(**encoder_inputs, **kwargs)
        hidden = encoded[0]

        pooled_mask = label_mask.to(hidden.device)
        if self.config.pooling == "segment_mean":
            pooled_mask = segment.clamp(min=0)
        label_vectors, present = self.pooler(hidden, pooled_mask)
        text_vectors = self.text_pooler(hidden, segment == 0, label_vectors)
        text_vectors = self.text_projection(self.dropout(text_vectors))
        label_vectors = self.label_projection(self.dropout(label_vectors))
        scores = self.scorer(text_vectors, label_vectors)

        loss = loss_terms = None
        if labels is not None:
            loss, loss_terms = compute_loss(
                self.config, scores.logits, labels, present, label_vectors, scores.bce_logits
            )
        fill = torch.finfo(scores.logits.dtype).min
        output = GliZNetOutput(
            loss=loss,
            logits=scores.logits.masked_fill(~present, fill),
            logits_mask=present,
            bce_logits=None if scores.bce_logits is None else scores.bce_logits.masked_fill(~present, fill),
            text_embeddings=text_vectors,
            label_embeddings=label_vectors,
            hidden_states=getattr(encoded, "hidden_states", None),
            attentions=getattr(encoded, "attentions", None),
            loss_terms=loss_terms,
        )
        return output if return_dict is not False else output.to_tuple()

    # ------------------------------------------------------------------------------------------------- predict
    def _autocast(self) -> contextlib.AbstractContextManager:
        device = self.device
        if device.type == "cuda" and self.dtype == torch.float32 and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def predict_logits(
        self,
        texts: Sequence[str],
        labels_list: Sequence[str] | Sequence[Sequence[str]],
        tokenizer: GliZNETTokenizer,
        batch_size: int = 32,
        activation: str = "sigmoid",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits for every (text, label), flattened in the caller's order, and each text's offset into them.

        `activation` picks the head: "sigmoid" reads the decoupled-BCE logits when the model has that head (they are
        the ones trained for a sigmoid), "softmax" the main logits. Rows (label chunks included) run longest first in
        batches of `batch_size`, under inference mode, on the model's device, in bf16 autocast on a GPU that has it.
        """
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.check_tokenizer(tokenizer)
        encoding = tokenizer.encode(texts, labels_list)
        flat = np.empty(encoding.total_labels, dtype=np.float32)
        order = np.argsort(-encoding.lengths, kind="stable")
        use_bce = activation == "sigmoid" and self.scorer.bce_logit_scale is not None
        device = self.device
        was_training = self.training
        if was_training:  # train()/eval() walk every module: skip them when already in eval mode
            self.eval()
        try:
            with torch.inference_mode(), self._autocast():
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    inputs = {k: v.to(device, non_blocking=True) for k, v in encoding.collate(rows).items()}
                    out = self(**inputs)
                    logits = (out.bce_logits if use_bce else out.logits).float().cpu().numpy()
                    positions, real = encoding.row_label_positions(rows)
                    flat[positions[real]] = logits[:, : positions.shape[1]][real]
        finally:
            if was_training:
                self.train()
        return flat, encoding.sample_label_offsets

    def predict_batch(
        self,
        texts: Sequence[str],
        labels_list: Sequence[str] | Sequence[Sequence[str]],
        tokenizer: GliZNETTokenizer,
        batch_size: int = 32,
        activation: str = "sigmoid",
    ) -> list[Prediction]:
        """Classify texts, each against its own label list (or one list shared by all); scores sorted high to low.

        "sigmoid": independent scores in [0, 1] (multi-label); "softmax": scores over a text's labels sum to 1.
        """
        if isinstance(texts, str):
            raise ValueError("predict_batch takes a list of texts; use predict_example for one")
        texts = list(texts)
        flat, offsets = self.predict_logits(texts, labels_list, tokenizer, batch_size, activation)
        if labels_list and all(isinstance(x, str) for x in labels_list):
            labels_list = [labels_list] * len(texts)
        bounds = np.append(offsets, len(flat))
        results = []
        for i, (text, labels) in enumerate(zip(texts, labels_list)):
            logits = flat[bounds[i] : bounds[i + 1]].astype(np.float64)
            if activation == "sigmoid":
                scores = 1.0 / (1.0 + np.exp(-logits))
            else:
                shifted = np.exp(logits - logits.max())
                scores = shifted / shifted.sum()
            ranked = np.argsort(-scores, kind="stable")
            results.append(
                Prediction(text=text, labels=[LabelScore(label=labels[j], score=float(scores[j])) for j in ranked])
            )
        return results

    def predict_example(
        self, text: str, labels: Sequence[str], tokenizer: GliZNETTokenizer, activation: str = "sigmoid"
    ) -> Prediction:
        """Classify one text against its labels; see `predict_batch`."""
        if not isinstance(text, str):
            raise ValueError("predict_example takes one text string")
        if isinstance(labels, str) or not labels:
            raise ValueError("labels must be a non-empty list of strings")
        return self.predict_batch([text], [list(labels)], tokenizer, batch_size=32, activation=activation)[0]


def register_auto_classes() -> None:
    """Make AutoConfig / AutoModel / AutoModelForSequenceClassification resolve model_type "gliznet"."""
    from transformers import AutoModelForSequenceClassification

    AutoConfig.register(GliZNetConfig.model_type, GliZNetConfig, exist_ok=True)
    AutoModel.register(GliZNetConfig, GliZNetForSequenceClassification, exist_ok=True)
    AutoModelForSequenceClassification.register(GliZNetConfig, GliZNetForSequenceClassification, exist_ok=True)
