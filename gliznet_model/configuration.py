"""GliZNetConfig: the backbone's config plus every modelling choice, saved as one config.json."""

from __future__ import annotations

import inspect
from typing import Any

from transformers import AutoConfig, PretrainedConfig

try:  # transformers >= 5 declares nested configs with specs
    from transformers.configuration_utils import SubConfigSpec
except ImportError:  # transformers 4.x
    SubConfigSpec = None

POOLINGS = ("mean", "segment_mean", "first", "lab", "attention")
TEXT_POOLINGS = ("cls", "mean", "label_attention")
LAYOUTS = ("full", "text_blind", "separate", "gated")
SIMILARITIES = ("cosine", "dot", "bilinear")
LOSSES = ("bce", "hybrid", "supcon", "repulsion", "decoupled_bce")
# What a config saved before layouts existed meant (the first GliZNet of this project).
LEGACY_CHOICES = {"text_pooling": "cls", "attention_layout": "full", "segment_separators": False}
# The published card's objective: SupCon + label repulsion + BCE with its own temperature.
DEFAULT_LOSSES = {"supcon": 1.0, "repulsion": 0.1, "decoupled_bce": 1.0}


class GliZNetConfig(PretrainedConfig):
    r"""Configuration of a GliZNet model.

    Args:
        encoder_config: config of the backbone encoder (a `PretrainedConfig` or its dict); the backbone is built from
            it with `AutoModel.from_config`, so any encoder AutoModel knows works (BERT/MiniLM, RoBERTa, DeBERTa,
            ModernBERT).
        encoder_name_or_path: where the backbone's weights came from (provenance only; loading never reads it).
        lab_token / lab_token_id: the special token written before every label.
        max_sequence_length: longest joint sequence `[CLS] text [LAB] l1 ... [SEP]` the tokenizer builds (the
            tokenizer's `max_length`; `max_length` itself is reserved for generation in transformers configs).
        min_text_tokens: the text is cut no shorter than this before labels are split into chunks.
        pooling: label vector from the label's token states: "mean", "segment_mean" (its whole segment, [LAB] and
            closing SEP included), "first" (its first token), "lab" (the [LAB] token before it) or "attention".
        segment_separators: the tokenizer closes the text and every label with a SEP (see GliZNETTokenizer).
        text_pooling: text vector from the text segment: "cls", "mean" (as sentence-transformers pools) or
            "label_attention" (one text vector per label, see pooling.TextPooler).
        attention_layout: who attends to whom in the joint sequence: "full", "text_blind", "separate" or "gated"
            (see layouts.py); gate_init: starting label-to-text bias of "gated".
        use_projection / projection_dim: text and label linear projections, to `projection_dim` (None: the
            backbone's hidden size); tie_projections: one projection shared by both towers.
        dropout: dropout on the pooled vectors before the projections.
        similarity: "cosine" (times a learned scale), "dot" or "bilinear".
        logit_scale_init / logit_scale_max: starting value and ceiling of the learned cosine scale.
        losses: loss name -> weight, any of "bce", "hybrid", "supcon", "repulsion", "decoupled_bce".
        hybrid_alpha / hybrid_beta / hybrid_margin: hybrid = alpha * BCE + beta * max(0, margin + max_neg - min_pos),
            on sigmoid probabilities.
        repulsion_threshold: label repulsion penalises cosine above this between two labels of one sample.
        bce_scale_init / bce_bias_init: starting scale and bias of the decoupled BCE head (sigmoid(scale * sim + bias));
            the defaults put an untrained model's 0.5 threshold at cosine 0.5.
        ignore_index: value marking padded label slots in training targets.
    """

    model_type = "gliznet"
    # Declaring the nested config lets transformers propagate settings such as attn_implementation to the backbone.
    if SubConfigSpec is not None:
        sub_configs_defaults = {"encoder_config": SubConfigSpec(AutoConfig, model_type="bert", optional=True)}
    else:
        sub_configs = {"encoder_config": AutoConfig}

    def __init__(
        self,
        encoder_config: PretrainedConfig | dict | None = None,
        encoder_name_or_path: str | None = None,
        lab_token: str = "[LAB]",
        lab_token_id: int | None = None,
        max_sequence_length: int = 512,
        min_text_tokens: int = 128,
        segment_separators: bool = True,
        pooling: str = "segment_mean",
        text_pooling: str = "mean",
        attention_layout: str = "separate",
        gate_init: float = -8.0,
        use_projection: bool = True,
        projection_dim: int | None = None,
        tie_projections: bool = False,
        dropout: float = 0.1,
        similarity: str = "cosine",
        logit_scale_init: float = 20.0,
        logit_scale_max: float = 100.0,
        losses: dict[str, float] | None = None,
        hybrid_alpha: float = 0.7,
        hybrid_beta: float = 0.3,
        hybrid_margin: float = 0.5,
        repulsion_threshold: float = 0.3,
        bce_scale_init: float = 10.0,
        bce_bias_init: float = -5.0,
        ignore_index: int = -100,
        initializer_range: float = 0.02,
        **kwargs: Any,
    ) -> None:
        if isinstance(encoder_config, dict):
            encoder_config = dict(encoder_config)
            model_type = encoder_config.pop("model_type", None)
            if model_type is None:
                raise ValueError("encoder_config needs a model_type")
            encoder_config = AutoConfig.for_model(model_type, **encoder_config)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if text_pooling not in TEXT_POOLINGS:
            raise ValueError(f"text_pooling must be one of {TEXT_POOLINGS}, got {text_pooling!r}")
        if attention_layout not in LAYOUTS:
            raise ValueError(f"attention_layout must be one of {LAYOUTS}, got {attention_layout!r}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        losses = dict(DEFAULT_LOSSES if losses is None else losses)
        unknown = sorted(set(losses) - set(LOSSES))
        if unknown or not losses:
            raise ValueError(f"losses must map names from {LOSSES} to weights, got {losses!r}")
        if any(float(w) < 0 for w in losses.values()):
            raise ValueError(f"loss weights must be >= 0, got {losses!r}")
        if projection_dim is not None and projection_dim <= 0:
            raise ValueError(f"projection_dim must be positive, got {projection_dim}")
        if logit_scale_init <= 0 or bce_scale_init <= 0 or logit_scale_max < logit_scale_init:
            raise ValueError("logit/bce scales must be positive and logit_scale_init <= logit_scale_max")
        if min_text_tokens < 1 or max_sequence_length < min_text_tokens + 4:
            raise ValueError(
                "need 1 <= min_text_tokens and max_sequence_length >= min_text_tokens + 4, "
                f"got {min_text_tokens}, {max_sequence_length}"
            )

        self.encoder_config = encoder_config
        self.encoder_name_or_path = encoder_name_or_path
        self.lab_token = lab_token
        self.lab_token_id = lab_token_id
        self.max_sequence_length = max_sequence_length
        self.min_text_tokens = min_text_tokens
        self.segment_separators = bool(segment_separators)
        self.pooling = pooling
        self.text_pooling = text_pooling
        self.attention_layout = attention_layout
        self.gate_init = float(gate_init)
        self.use_projection = use_projection
        self.projection_dim = projection_dim
        self.tie_projections = tie_projections
        self.dropout = dropout
        self.similarity = similarity
        self.logit_scale_init = logit_scale_init
        self.logit_scale_max = logit_scale_max
        self.losses = {name: float(weight) for name, weight in losses.items()}
        self.hybrid_alpha = hybrid_alpha
        self.hybrid_beta = hybrid_beta
        self.hybrid_margin = hybrid_margin
        self.repulsion_threshold = repulsion_threshold
        self.bce_scale_init = bce_scale_init
        self.bce_bias_init = bce_bias_init
        self.ignore_index = ignore_index
        self.initializer_range = initializer_range
        encoder_attn = getattr(encoder_config, "_attn_implementation", None)
        super().__init__(**kwargs)
        if encoder_attn is not None and "attn_implementation" not in kwargs:
            # The base init pushes its own (unset) attention choice into sub-configs; keep a built backbone's.
            encoder_config._attn_implementation = encoder_attn

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """Configs saved before format 2 had no layout settings: read them with the choices they were built with,
        not today's defaults, so an old model scores as it did."""
        if "attention_layout" not in config_dict and config_dict.get("model_type") == cls.model_type:
            config_dict = {**LEGACY_CHOICES, **config_dict}
        return super().from_dict(config_dict, **kwargs)

    def modelling_choices(self) -> dict[str, Any]:
        """Every modelling setting of this config (not the backbone, [LAB] id or sequence budget), e.g. to build an
        untrained twin of a trained model with `GliZNetForSequenceClassification.from_backbone`."""
        skip = {"self", "kwargs", "encoder_config", "encoder_name_or_path", "lab_token", "lab_token_id",
                "max_sequence_length", "min_text_tokens", "segment_separators"}
        names = [n for n in inspect.signature(GliZNetConfig.__init__).parameters if n not in skip]
        return {name: getattr(self, name) for name in names}

    @property
    def hidden_size(self) -> int:
        """Width of the backbone's token states."""
        if self.encoder_config is None:
            raise ValueError("GliZNetConfig has no encoder_config")
        return self.encoder_config.hidden_size

    @property
    def embedding_dim(self) -> int:
        """Width of the text and label vectors that are compared."""
        if self.use_projection and self.projection_dim is not None:
            return self.projection_dim
        return self.hidden_size

    @property
    def uses_decoupled_bce(self) -> bool:
        return self.losses.get("decoupled_bce", 0.0) > 0
