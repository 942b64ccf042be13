"""GliZNet: one-pass zero-shot text classification, native to Hugging Face transformers.

model, tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(path_or_hub_id)
model.predict_example(text, labels, tokenizer, activation="sigmoid")
transformers.pipeline("gliznet-zero-shot-classification", model=path_or_hub_id)   # registered on import
"""

from .configuration import GliZNetConfig
from .modeling import GliZNetForSequenceClassification, register_auto_classes
from .outputs import GliZNetOutput, LabelScore, Prediction
from .tokenizer import GliZNETTokenizer

register_auto_classes()

from .pipeline import TASK as PIPELINE_TASK, GliZNetZeroShotPipeline  # noqa: E402  registers the pipeline task

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
