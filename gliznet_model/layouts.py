"""Attention layouts of the joint sequence (`[CLS] text [SEP] [LAB] l1 [SEP] ...`): who may attend to whom.

- "full": every token sees every token (the original GliZNet).
- "text_blind": the text (with CLS and the final SEP) never sees the labels, so its vector does not move when the
  label set changes; labels still read the text and each other.
- "separate": the text sees only itself and every label only its own `[LAB] tokens` segment, whose positions restart
  at 0. With `[LAB]` starting as a copy of `[CLS]`, an untrained model is a bi-encoder computed in one pass, so
  training starts from the backbone's own zero-shot ability.
- "gated": "separate" plus a learned bias on the label-to-text block of the mask that starts nearly closed
  (`gate_init`), so training can open the path through which labels read the text when that helps.

The layouts other than "full" are built as a 4-D additive float mask `[B, 1, L, L]` (plus position ids for the
restarting ones), which the backbones listed in `LAYOUT_BACKBONES` accept in both eager and SDPA attention.
"""

from __future__ import annotations

import torch
from torch import nn

from .configuration import LAYOUTS

RESTARTING = ("separate", "gated")
# model_type -> how position ids are offset (RoBERTa-style models count from padding_idx + 1).
LAYOUT_BACKBONES = {"bert": "zero", "electra": "zero", "roberta": "padding", "xlm-roberta": "padding",
                    "camembert": "padding"}


def check_backbone(layout: str, model_type: str) -> None:
    """Refuse a layout that needs 4-D masks on a backbone not known to accept them."""
    if layout != "full" and model_type not in LAYOUT_BACKBONES:
        raise ValueError(f"attention_layout={layout!r} needs a backbone that accepts 4-D attention masks "
                         f"({', '.join(LAYOUT_BACKBONES)}); {model_type!r} supports only 'full'")


def segments(input_ids: torch.Tensor, attention_mask: torch.Tensor, lab_token_id: int,
             segment_separators: bool = False) -> torch.Tensor:
    """[B, L] segment of every token: 0 for CLS, the text and its SEP, j for label j (its [LAB] included, and its
    SEP when every segment is closed), -1 for padding."""
    real = attention_mask.bool()
    segment = torch.cumsum((input_ids == lab_token_id).long(), dim=1)
    if not segment_separators:  # one SEP closes the whole row: it belongs to the text
        last = real.long().sum(dim=1, keepdim=True) - 1
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        segment = torch.where(positions == last, torch.zeros_like(segment), segment)
    return torch.where(real, segment, torch.full_like(segment, -1))


def restarted_positions(segment: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Position ids that count from 0 inside every segment (text: 0, 1, ...; each label: 0 at its [LAB])."""
    length = segment.shape[1]
    index = torch.arange(length, device=segment.device).unsqueeze(0).expand_as(segment)
    # Text tokens (segment 0) are not contiguous (the closing SEP comes after the labels), so count them.
    text = segment == 0
    text_positions = torch.cumsum(text.long(), dim=1) - 1
    # A label segment is contiguous: position = index - index of its first token.
    start = torch.where(segment > 0, index, torch.full_like(index, length))
    boundary = torch.ones_like(segment, dtype=torch.bool)
    boundary[:, 1:] = segment[:, 1:] != segment[:, :-1]
    first = torch.where(boundary & (segment > 0), start, torch.zeros_like(start))
    first = torch.cummax(first, dim=1).values
    positions = torch.where(text, text_positions, index - first)
    positions = torch.where(segment < 0, torch.zeros_like(positions), positions)
    return positions + offset


class AttentionLayout(nn.Module):
    """Builds the backbone's attention mask and position ids for one layout (the gate bias is its only weight)."""

    def __init__(self, layout: str, lab_token_id: int | None, gate_init: float = -8.0,
                 position_offset: int = 0, segment_separators: bool = False) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"attention_layout must be one of {LAYOUTS}, got {layout!r}")
        if lab_token_id is None:
            raise ValueError("the config's lab_token_id is needed to find the text and label segments")
        self.layout = layout
        self.lab_token_id = lab_token_id
        self.position_offset = position_offset
        self.segment_separators = segment_separators
        self.gate = nn.Parameter(torch.tensor(float(gate_init))) if layout == "gated" else None

    def segments(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return segments(input_ids, attention_mask, self.lab_token_id, self.segment_separators)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, segment: torch.Tensor,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (mask, position_ids): a 2-D mask and no positions for "full", else an additive [B, 1, L, L] mask."""
        if self.layout == "full":
            return attention_mask, None
        query, key = segment.unsqueeze(2), segment.unsqueeze(1)
        real = (query >= 0) & (key >= 0)
        if self.layout == "text_blind":
            allowed = real & ((query > 0) | (key == 0))
        else:
            allowed = real & (query == key)
        # Padded query rows see only themselves, so no softmax row is empty (their outputs are never read).
        eye = torch.eye(segment.shape[1], dtype=torch.bool, device=segment.device).unsqueeze(0)
        allowed = allowed | (eye & (query < 0))
        blocked = torch.finfo(dtype).min
        mask = torch.zeros(allowed.shape, dtype=dtype, device=segment.device).masked_fill(~allowed, blocked)
        if self.gate is not None:
            label_to_text = real & (query > 0) & (key == 0)
            mask = torch.where(label_to_text, self.gate.to(dtype).expand_as(mask), mask)
        positions = restarted_positions(segment, self.position_offset) if self.layout in RESTARTING else None
        return mask.unsqueeze(1), positions
