"""GliZNet: one-pass zero-shot text classification, native to Hugging Face transformers.

model, tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(path_or_hub_id)
model.predict_example(text, labels, tokenizer, activation="sigmoid")
"""

from .configuration import GliZNetConfig
from .modeling import GliZNetForSequenceClassification, register_auto_classes
from .outputs import GliZNetOutput, LabelScore, Prediction
from .tokenizer import GliZNETTokenizer

register_auto_classes()

__all__ = [
    "GliZNETTokenizer",
    "GliZNetConfig",
    "GliZNetForSequenceClassification",
    "GliZNetOutput",
    "LabelScore",
    "Prediction",
]
