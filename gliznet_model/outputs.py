"""What GliZNet returns: a transformers ModelOutput from forward, pydantic models from the predict API."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict
from transformers.utils import ModelOutput


@dataclass
class GliZNetOutput(ModelOutput):
    """Forward output.

    loss: weighted training loss (when targets were given); loss_terms: each unweighted term, detached.
    logits: [batch, max_labels], padding slots hold the dtype's minimum; logits_mask: [batch, max_labels] real slots.
    bce_logits: logits of the decoupled BCE head (its own temperature), the ones to pass through a sigmoid.
    text_embeddings: [batch, dim]; label_embeddings: [batch, max_labels, dim] (after the projections).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    logits_mask: torch.Tensor | None = None
    bce_logits: torch.Tensor | None = None
    text_embeddings: torch.Tensor | None = None
    label_embeddings: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    loss_terms: dict[str, torch.Tensor] | None = None


class LabelScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    score: float


class Prediction(BaseModel):
    """One text's labels with scores, highest first."""

    model_config = ConfigDict(frozen=True)

    text: str
    labels: list[LabelScore]
