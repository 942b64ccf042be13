"""Label pooling: one vector per label from its token states, for every label of every row at once.

All strategies work on the flat list of label tokens with scatter/index ops (index_add_, scatter_reduce_), so the cost
grows with the number of label tokens, not with batch x labels x sequence length, and there is no loop over labels.
"""

from __future__ import annotations

import torch
from torch import nn


class LabelPooler(nn.Module):
    """Pools token states into label vectors.

    Strategies: "mean" of the label's tokens, "segment_mean" (the mean over the label's whole segment, [LAB] and
    closing SEP included, as a sentence encoder pools "[CLS] label [SEP]"; the model passes the segment mask), its
    "first" token, the "lab" marker token before it, or
    "attention": softmax-weighted tokens with weights from a learned linear score (initialized to zero, so it starts
    as the mean).
    """

    def __init__(self, strategy: str, hidden_size: int) -> None:
        super().__init__()
        self.strategy = strategy
        self.attention = nn.Linear(hidden_size, 1) if strategy == "attention" else None

    def forward(self, hidden: torch.Tensor, label_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden [B, L, D], label_mask [B, L] (0 or label number 1..K) -> vectors [B, K, D], present [B, K]."""
        batch, length, dim = hidden.shape
        num_labels = int(label_mask.max()) if label_mask.numel() else 0
        if num_labels < 1:
            raise ValueError("label_mask marks no label tokens")
        flat_hidden = hidden.reshape(batch * length, dim)
        flat_mask = label_mask.reshape(-1)
        token = torch.nonzero(flat_mask > 0).squeeze(1)
        slot = torch.div(token, length, rounding_mode="floor") * num_labels + flat_mask[token] - 1
        n_slots = batch * num_labels
        counts = torch.bincount(slot, minlength=n_slots)
        present = counts > 0

        if self.strategy in ("mean", "segment_mean"):  # segment_mean gets the segment mask from the model
            sums = flat_hidden.new_zeros(n_slots, dim).index_add_(0, slot, flat_hidden[token])
            vectors = sums / counts.clamp(min=1).unsqueeze(1).to(sums.dtype)
        elif self.strategy in ("first", "lab"):
            first = torch.full((n_slots,), batch * length, dtype=token.dtype, device=token.device)
            first.scatter_reduce_(0, slot, token, reduce="amin")
            position = first - 1 if self.strategy == "lab" else first
            position = torch.where(present, position, torch.zeros_like(position))
            vectors = flat_hidden[position] * present.unsqueeze(1).to(flat_hidden.dtype)
        else:
            states = flat_hidden[token]
            scores = self.attention(states).squeeze(1).float()
            peak = torch.full((n_slots,), float("-inf"), device=scores.device)
            peak = peak.scatter_reduce(0, slot, scores, reduce="amax")
            weights = torch.exp(scores - peak[slot])
            total = torch.zeros(n_slots, device=scores.device).index_add(0, slot, weights)
            weights = (weights / total[slot]).to(states.dtype)
            vectors = flat_hidden.new_zeros(n_slots, dim).index_add_(0, slot, states * weights.unsqueeze(1))
        return vectors.view(batch, num_labels, dim), present.view(batch, num_labels)


class TextPooler(nn.Module):
    """The text vector from the token states of the text segment (CLS, the text and the closing SEP).

    Strategies: "cls", its first token (only meaningful for backbones trained to put a sentence vector there);
    "mean" of the text segment, as sentence-transformers pools most of its models; "label_attention": every label
    gets its own text vector, softmax-weighted text tokens scored by cosine to that label's vector times a learned
    scale that starts at 1 (close to the mean), so a label can pick out the part of a long text that concerns it.
    """

    def __init__(self, strategy: str) -> None:
        super().__init__()
        self.strategy = strategy
        self.log_scale = nn.Parameter(torch.zeros(())) if strategy == "label_attention" else None

    def forward(self, hidden: torch.Tensor, text_mask: torch.Tensor,
                label_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """hidden [B, L, D], text_mask [B, L] bool -> [B, D] ([B, K, D] for "label_attention")."""
        if self.strategy == "cls":
            return hidden[:, 0]
        weights = text_mask.to(hidden.dtype)
        if self.strategy == "mean":
            return (hidden * weights.unsqueeze(2)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1.0)
        if label_vectors is None:
            raise ValueError("label_attention text pooling needs the label vectors")
        unit_tokens = nn.functional.normalize(hidden.float(), dim=-1)
        unit_labels = nn.functional.normalize(label_vectors.float(), dim=-1)
        scores = torch.einsum("bkd,bld->bkl", unit_labels, unit_tokens) * self.log_scale.exp()
        scores = scores.masked_fill(~text_mask.unsqueeze(1), float("-inf"))
        attention = torch.softmax(scores, dim=-1).to(hidden.dtype)
        return torch.einsum("bkl,bld->bkd", attention, hidden)
