"""Label scoring: text vector x label vectors -> one logit per label (cosine, dot or bilinear).

With the decoupled BCE loss the scorer also yields `bce_logits = sim * bce_scale + bce_bias`: the BCE head gets its
own temperature (and bias) so the contrastive logits' scale and the sigmoid calibration do not pull on one parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .configuration import GliZNetConfig


@dataclass
class Scores:
    similarity: torch.Tensor
    logits: torch.Tensor
    bce_logits: torch.Tensor | None


class LabelScorer(nn.Module):
    def __init__(self, config: GliZNetConfig) -> None:
        super().__init__()
        self.similarity = config.similarity
        self.max_log_scale = math.log(config.logit_scale_max)
        dim = config.embedding_dim
        # Values are set here and again in GliZNetPreTrainedModel._init_weights (which also covers meta-device loads).
        self.logit_scale = (
            nn.Parameter(torch.tensor(math.log(config.logit_scale_init))) if self.similarity == "cosine" else None
        )
        self.bilinear = nn.Parameter(torch.eye(dim)) if self.similarity == "bilinear" else None
        if config.uses_decoupled_bce:
            self.bce_logit_scale = nn.Parameter(torch.tensor(math.log(config.bce_scale_init)))
            self.bce_bias = nn.Parameter(torch.tensor(float(config.bce_bias_init)))
        else:
            self.bce_logit_scale = None
            self.bce_bias = None

    def forward(self, text: torch.Tensor, labels: torch.Tensor) -> Scores:
        """text [B, D] (or one text vector per label, [B, K, D]), labels [B, K, D] -> Scores with [B, K] tensors."""
        if text.dim() == 2:
            text = text.unsqueeze(1).expand_as(labels)
        if self.similarity == "cosine":
            sim = torch.einsum("bkd,bkd->bk", F.normalize(text, dim=-1), F.normalize(labels, dim=-1))
            logits = sim * self.logit_scale.clamp(max=self.max_log_scale).exp()
        elif self.similarity == "dot":
            sim = torch.einsum("bkd,bkd->bk", text, labels)
            logits = sim
        else:
            sim = torch.einsum("bkd,de,bke->bk", text, self.bilinear.to(text.dtype), labels)
            logits = sim
        bce_logits = None
        if self.bce_logit_scale is not None:
            bce_logits = sim * self.bce_logit_scale.clamp(max=self.max_log_scale).exp() + self.bce_bias
        return Scores(similarity=sim, logits=logits, bce_logits=bce_logits)
