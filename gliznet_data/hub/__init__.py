"""Publish shards as a Hugging Face Hub dataset: deterministic splits, a dataset card, one commit.

One thing per module: ``settings`` (what ``push`` can be told), ``source`` (the records, validated),
``splits`` (train / validation / zero-shot test), ``card`` (the dataset card), ``folder`` (the folder
that goes to the Hub, the dry run and the summary) and ``upload`` (the only module that talks to the Hub).
"""

from __future__ import annotations

from .folder import default_folder, write_folder, write_summary
from .settings import PushConfig
from .upload import upload

__all__ = ["PushConfig", "default_folder", "upload", "write_folder", "write_summary"]
