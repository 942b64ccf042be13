"""GliZNet training losses over padded [batch, max_labels] logits.

Targets are floats: 1 positive, 0 (hard) negative, `ignore_index` (-100) for padding; `valid` marks real label slots.
Every loss averages only over the samples (or pairs) it applies to and returns a graph-connected zero when none
applies, so a batch whose samples lack positives or negatives gives a finite loss and finite gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .configuration import GliZNetConfig

_FILL = -1e9  # stands in for -inf in float32 so masked rows stay finite in both passes


def _zero(like: torch.Tensor) -> torch.Tensor:
    return (like * 0.0).sum()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if not bool(mask.any()):
        return _zero(values)
    return torch.where(mask, values, torch.zeros_like(values)).sum() / mask.sum()


def bce_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over every positive and (hard) negative label."""
    safe_targets = torch.where(valid, targets, torch.zeros_like(targets)).clamp(0.0, 1.0)
    per_label = F.binary_cross_entropy_with_logits(logits, safe_targets, reduction="none")
    return _masked_mean(per_label, valid)


def margin_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, margin: float) -> torch.Tensor:
    """mean over samples with both kinds of max(0, margin + max_negative - min_positive) on sigmoid probabilities."""
    probs = torch.sigmoid(logits)
    positive, negative = valid & (targets > 0.5), valid & (targets <= 0.5)
    # Probabilities lie in [0, 1], so 2 and -1 are neutral fillers that never win the min/max.
    min_pos = torch.where(positive, probs, torch.full_like(probs, 2.0)).amin(dim=1)
    max_neg = torch.where(negative, probs, torch.full_like(probs, -1.0)).amax(dim=1)
    has_both = positive.any(dim=1) & negative.any(dim=1)
    return _masked_mean(F.relu(margin + max_neg - min_pos), has_both)


def hybrid_loss(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, alpha: float, beta: float, margin: float
) -> torch.Tensor:
    """alpha * BCE + beta * margin ranking term (the paper's hybrid objective)."""
    return alpha * bce_loss(logits, targets, valid) + beta * margin_loss(logits, targets, valid, margin)


def supcon_loss(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax over each sample's labels with every positive a target (uniform target mass over positives).

    Only samples with at least one positive and one negative count: without both there is nothing to contrast.
    """
    positive, negative = valid & (targets > 0.5), valid & (targets <= 0.5)
    log_probs = torch.log_softmax(logits.float().masked_fill(~valid, _FILL), dim=1)
    n_pos = positive.sum(dim=1)
    per_sample = -torch.where(positive, log_probs, torch.zeros_like(log_probs)).sum(dim=1) / n_pos.clamp(min=1)
    return _masked_mean(per_sample, (n_pos > 0) & negative.any(dim=1))


def label_repulsion_loss(label_embeddings: torch.Tensor, present: torch.Tensor, threshold: float,
                         targets: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of max(0, cos - threshold) over pairs of different labels of the same sample; keeps labels apart.

    With targets, only pairs that are not both positive count: two labels that both apply to a text (say "sports"
    and "football") should stay close, not be pushed apart."""
    unit = F.normalize(label_embeddings.float(), dim=-1)
    cosine = torch.bmm(unit, unit.transpose(1, 2))
    k = present.shape[1]
    pairs = present.unsqueeze(2) & present.unsqueeze(1) & ~torch.eye(k, dtype=torch.bool, device=present.device)
    if targets is not None:
        positive = present & (targets > 0.5)
        pairs = pairs & ~(positive.unsqueeze(2) & positive.unsqueeze(1))
    return _masked_mean(F.relu(cosine - threshold), pairs)


def preservation_loss(text: torch.Tensor, labels: torch.Tensor, present: torch.Tensor,
                      reference_text: torch.Tensor, reference_labels: torch.Tensor) -> torch.Tensor:
    """Mean 1 - cos between the model's text and label vectors and the untrained model's vectors for the same
    inputs: a leash that lets training add hard-negative skill without erasing the backbone's zero-shot geometry."""
    text_term = 1.0 - F.cosine_similarity(text.float(), reference_text.float(), dim=-1)
    label_term = 1.0 - F.cosine_similarity(labels.float(), reference_labels.float(), dim=-1)
    return text_term.mean() + _masked_mean(label_term, present)


def align_targets(targets: torch.Tensor, num_labels: int, ignore_index: int) -> torch.Tensor:
    """Pad or trim [B, K'] targets to [B, num_labels]; trimmed columns must be padding."""
    targets = targets.float()
    width = targets.shape[1]
    if width > num_labels:
        if bool((targets[:, num_labels:] != ignore_index).any()):
            raise ValueError(f"targets have more labels ({width}) than the inputs ({num_labels})")
        return targets[:, :num_labels]
    if width < num_labels:
        pad = targets.new_full((targets.shape[0], num_labels - width), float(ignore_index))
        return torch.cat([targets, pad], dim=1)
    return targets


def compute_loss(
    config: GliZNetConfig,
    logits: torch.Tensor,
    targets: torch.Tensor,
    present: torch.Tensor,
    label_embeddings: torch.Tensor,
    bce_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the configured losses, and each unweighted term (detached) for logging."""
    targets = align_targets(targets.to(logits.device), logits.shape[1], config.ignore_index)
    valid = present & (targets != config.ignore_index)
    logits = logits.float().masked_fill(~present, 0.0)
    terms: dict[str, torch.Tensor] = {}
    for name, weight in config.losses.items():
        if weight == 0:
            continue
        if name == "bce":
            term = bce_loss(logits, targets, valid)
        elif name == "hybrid":
            term = hybrid_loss(logits, targets, valid, config.hybrid_alpha, config.hybrid_beta, config.hybrid_margin)
        elif name == "supcon":
            term = supcon_loss(logits, targets, valid)
        elif name == "repulsion":
            term = label_repulsion_loss(label_embeddings, present, config.repulsion_threshold, targets)
        elif name == "decoupled_bce":
            if bce_logits is None:
                raise ValueError("decoupled_bce needs the scorer's bce_logits")
            term = bce_loss(bce_logits.float().masked_fill(~present, 0.0), targets, valid)
        else:  # configuration validates names; this guards hand-edited configs
            raise ValueError(f"unknown loss {name!r}")
        terms[name] = term
    total = sum(weight * terms[name] for name, weight in config.losses.items() if name in terms)
    return total, {name: term.detach() for name, term in terms.items()}
