"""GliZNet: one-pass zero-shot text classification, native to Hugging Face transformers.

model, tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(path_or_hub_id)
model.predict_example(text, labels, tokenizer, activation="sigmoid")
transformers.pipeline("gliznet-zero-shot-classification", model=path_or_hub_id)   # registered on import
"""

import sys
from pathlib import Path

_EXPORTS = {
    "GliZNetConfig": "configuration", "GliZNetForSequenceClassification": "modeling", "GliZNetOutput": "outputs",
    "LabelScore": "outputs", "Prediction": "outputs", "GliZNETTokenizer": "tokenizer",
    "GliZNetZeroShotPipeline": "pipeline", "PIPELINE_TASK": "pipeline",
}


def _register() -> None:
    """Auto classes and the pipeline task: what `import gliznet_model` promises library users."""
    from .modeling import register_auto_classes
    from . import pipeline  # noqa: F401  registers the pipeline task

    register_auto_classes()


if Path(sys.argv[0]).name == "gliznet-model":
    # The command-line tool imports torch and transformers only in the commands that use them, so `--help`
    # answers at once; names are still importable from here, on first use.
    def __getattr__(name: str):
        if name not in _EXPORTS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib

        _register()
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, "TASK" if name == "PIPELINE_TASK" else name)
else:
    from .configuration import GliZNetConfig
    from .modeling import GliZNetForSequenceClassification
    from .outputs import GliZNetOutput, LabelScore, Prediction
    from .pipeline import TASK as PIPELINE_TASK, GliZNetZeroShotPipeline
    from .tokenizer import GliZNETTokenizer

    _register()

__all__ = [
    "GliZNETTokenizer",
    "GliZNetConfig",
    "GliZNetForSequenceClassification",
    "GliZNetOutput",
    "GliZNetZeroShotPipeline",
    "LabelScore",
    "PIPELINE_TASK",
    "Prediction",
]
