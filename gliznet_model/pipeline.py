"""GliZNet as a transformers pipeline, a drop-in for `pipeline("zero-shot-classification")`.

    import gliznet_model  # registers the task
    from transformers import pipeline
    classifier = pipeline("gliznet-zero-shot-classification", model="runs/seed-demo")
    classifier("The striker scored twice.", candidate_labels=["sports", "politics"], multi_label=False)
    # {"sequence": ..., "labels": [...], "scores": [...]}, labels sorted by score

Scores come from `GliZNetForSequenceClassification.predict_batch`, the one prediction path; this module only adapts
calls and outputs to the zero-shot pipeline's contract. The small helpers below (label parsing, head choice, output
shape) are shared by the server, the predict command and the demo so that all four surfaces agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .modeling import _TOKENIZER_SETTINGS, GliZNetForSequenceClassification
from .outputs import Prediction
from .tokenizer import GliZNETTokenizer

TASK = "gliznet-zero-shot-classification"


# ------------------------------------------------------------------------------------------- shared helpers
def split_labels(candidate_labels: str | Sequence[str]) -> list[str]:
    """Candidate labels as a list, the way the zero-shot pipeline reads them: a string is comma-separated; every
    label is stripped. Empty, non-string and duplicate labels are refused with a message that names them."""
    if isinstance(candidate_labels, str):
        labels = [part.strip() for part in candidate_labels.split(",")]
        labels = [label for label in labels if label]  # "a, b," and "a,,b" mean a and b
    elif isinstance(candidate_labels, Sequence):
        labels = []
        for label in candidate_labels:
            if not isinstance(label, str):
                raise ValueError(f"labels must be strings, got {type(label).__name__}")
            labels.append(label.strip())
    else:
        raise ValueError(f"candidate_labels must be a list of strings or a comma-separated string, "
                         f"got {type(candidate_labels).__name__}")
    if not labels:
        raise ValueError("candidate_labels is empty: give at least one label")
    if any(not label for label in labels):
        raise ValueError("candidate_labels contains an empty label")
    seen: set[str] = set()
    duplicates = [label for label in labels if label in seen or seen.add(label)]
    if duplicates:
        raise ValueError(f"duplicate labels: {sorted(set(duplicates))}")
    return labels


def activation_for(multi_label: bool, n_labels: int) -> str:
    """The head a request reads: "sigmoid" (decoupled-BCE head, independent scores) for multi-label, "softmax"
    (main logits, scores sum to 1) otherwise. One label is always scored independently, as the zero-shot pipeline
    does, because a softmax over one label is always 1."""
    return "sigmoid" if multi_label or n_labels == 1 else "softmax"


def zero_shot_output(prediction: Prediction) -> dict[str, Any]:
    """A Prediction in the zero-shot pipeline's output shape."""
    return {
        "sequence": prediction.text,
        "labels": [s.label for s in prediction.labels],
        "scores": [s.score for s in prediction.labels],
    }


def resolve_device(device: str | None) -> str:
    """"auto" (or None): CUDA when present, else CPU; anything else must be a device torch knows and has."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
    return str(resolved)


def load_model(model: str, device: str | None = None) -> tuple[Any, Any]:
    """A saved GliZNet (folder or Hub id) and its tokenizer, in eval mode on `device`; any failure to load is the
    caller's to fix (a wrong path, no network, not a GliZNet folder), so it comes back as one ValueError line."""
    device = resolve_device(device)
    if str(model).startswith(("/", "./", "../", "~")) and not Path(model).expanduser().exists():
        raise ValueError(f"model folder {model} does not exist")
    try:
        return GliZNetForSequenceClassification.from_pretrained_with_tokenizer(model, device=device)
    except Exception as exc:  # missing folders, Hub errors and bad configs raise many types
        raise ValueError(f"cannot load GliZNet model {model}: {str(exc).strip().splitlines()[0][:300]}") from None


# ----------------------------------------------------------------------------------------------- pipeline
class GliZNetZeroShotPipeline(Pipeline):
    """The zero-shot-classification pipeline's call signature and output, scored by GliZNet in one pass per text.

    `hypothesis_template` is accepted so that calls written for NLI models run unchanged; GliZNet reads the labels
    themselves, so it is not used. Batching (`batch_size=`) groups texts into one `predict_batch` call.
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(self, model: GliZNetForSequenceClassification, tokenizer: Any = None, **kwargs: Any) -> None:
        if not isinstance(model, GliZNetForSequenceClassification):
            raise ValueError(f"{TASK} needs a GliZNet model, got {type(model).__name__}")
        if isinstance(tokenizer, GliZNETTokenizer):
            gliznet_tokenizer = tokenizer
        elif tokenizer is not None:
            # pipeline() loads the backbone's fast tokenizer (with [LAB]); the model config holds GliZNet's settings.
            settings = {attr: getattr(model.config, key) for key, attr in _TOKENIZER_SETTINGS.items()
                        if getattr(model.config, key, None) is not None}
            gliznet_tokenizer = GliZNETTokenizer(tokenizer, **settings)
        else:
            raise ValueError(f"{TASK} needs a tokenizer")
        model.check_tokenizer(gliznet_tokenizer)
        # The base class pads batches with `self.tokenizer`; GliZNet's encoder lives in `gliznet_tokenizer`.
        super().__init__(model=model, tokenizer=gliznet_tokenizer.tokenizer, **kwargs)
        self.gliznet_tokenizer = gliznet_tokenizer
        self.model.eval()

    def __call__(self, sequences: str | list[str], *args: Any, **kwargs: Any) -> dict | list[dict]:
        """classifier(sequences, candidate_labels, hypothesis_template=..., multi_label=False, batch_size=...)."""
        if len(args) == 1 and "candidate_labels" not in kwargs:
            kwargs["candidate_labels"] = args[0]
        elif args:
            raise ValueError(f"unexpected positional arguments: {args[1:]}")
        if isinstance(sequences, str):
            return super().__call__(sequences, **kwargs)
        if isinstance(sequences, tuple):
            sequences = list(sequences)
        return super().__call__(sequences, **kwargs)

    def _sanitize_parameters(self, candidate_labels: Any = None, multi_label: bool | None = None,
                             hypothesis_template: str | None = None, **kwargs: Any) -> tuple[dict, dict, dict]:
        if kwargs:
            raise ValueError(f"unknown arguments: {sorted(kwargs)}")
        preprocess: dict[str, Any] = {}
        forward: dict[str, Any] = {}
        if candidate_labels is not None:
            preprocess["candidate_labels"] = split_labels(candidate_labels)
        if multi_label is not None:
            forward["multi_label"] = bool(multi_label)
        return preprocess, forward, {}

    def preprocess(self, sequence: str, candidate_labels: list[str] | None = None) -> dict[str, Any]:
        if candidate_labels is None:
            raise ValueError("candidate_labels is required")
        if not isinstance(sequence, str) or not sequence.strip():
            raise ValueError("each sequence must be a non-empty string")
        return {"text": sequence, "candidate_labels": candidate_labels}

    def _forward(self, inputs: dict[str, Any], multi_label: bool = False) -> dict[str, Any]:
        # Batched by the base class: lists of texts and of label lists; unbatched: one of each.
        texts, labels_list = inputs["text"], inputs["candidate_labels"]
        if isinstance(texts, str):
            texts, labels_list = [texts], [labels_list]
        groups: dict[str, list[int]] = {}
        for i, labels in enumerate(labels_list):
            groups.setdefault(activation_for(multi_label, len(labels)), []).append(i)
        predictions: list[Prediction | None] = [None] * len(texts)
        for activation, rows in groups.items():
            scored = self.model.predict_batch([texts[i] for i in rows], [labels_list[i] for i in rows],
                                              self.gliznet_tokenizer, batch_size=max(len(rows), 1),
                                              activation=activation)
            for i, prediction in zip(rows, scored):
                predictions[i] = prediction
        return {"prediction": predictions}

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:
        prediction = model_outputs["prediction"]
        if isinstance(prediction, list):  # batch_size 1: the forward output was not unbatched
            (prediction,) = prediction
        return zero_shot_output(prediction)


def register_pipeline() -> None:
    """Make `transformers.pipeline("gliznet-zero-shot-classification", model=...)` build this pipeline."""
    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=GliZNetZeroShotPipeline,
                                            pt_model=GliZNetForSequenceClassification, type="text")


register_pipeline()
