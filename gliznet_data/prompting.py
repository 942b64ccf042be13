"""Loads the prompt templates from prompts/ and renders one request from one parameter draw.

Superseded template sets live in ``prompts/archive/<version>/`` (templates plus the diversity
table they were drawn from), so that batch results rendered before an upgrade can still be
re-drawn and ingested.
"""

from __future__ import annotations

import copy
import hashlib
import math
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined

from .diversity import Draw
from .records import LENGTH_BUCKETS, normalize_label

TEMPLATE_FILES = ("system.j2", "user.j2", "task_hints.yaml")
ARCHIVE = "archive"

_EXAMPLE = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "labels": {"type": "array", "items": {"type": "string"}},
        "not_labels": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["text", "labels", "not_labels"],
    "additionalProperties": False,
}

# The one JSON object the model must answer with; sent as the services' structured-output schema.
REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"examples": {"type": "array", "items": _EXAMPLE}},
    "required": ["examples"],
    "additionalProperties": False,
}

# A bundle reply names its pool first: writing the pool before the texts is what lets a model plan
# texts that put every label in both roles. The validators read only the examples.
BUNDLE_REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label_pool": {"type": "array", "items": {"type": "string"}},
                   "examples": {"type": "array", "items": _EXAMPLE}},
    "required": ["label_pool", "examples"],
    "additionalProperties": False,
}


def reply_schema(draw: Draw) -> dict[str, Any]:
    return copy.deepcopy(BUNDLE_REPLY_SCHEMA if draw.request_mode == "bundle" else REPLY_SCHEMA)


def prompts_dir() -> Path:
    """Where the templates are: inside the wheel, or the repository's prompts/ for a source checkout
    (an editable install cannot map prompts/ into the package)."""
    packaged = files("gliznet_data") / "prompts"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "prompts"


def archived_dir(version: str) -> Path | None:
    """The folder of an archived prompt version, if this release still carries it."""
    folder = prompts_dir() / ARCHIVE / version
    return folder if (folder / "user.j2").is_file() else None


def load_yaml(name: str, directory: Path | None = None) -> dict[str, Any]:
    return yaml.safe_load(((directory or prompts_dir()) / name).read_text(encoding="utf-8")) or {}


def default_weights(directory: Path | None = None) -> dict[str, dict]:
    return load_yaml("diversity.yaml", directory)


def _read_hints(data: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """Task hints and domain class names. Archived hint files map a task to its description only."""
    if "tasks" not in data:
        return {task: {"describes": text} for task, text in data.items()}, {}
    return data["tasks"] or {}, data.get("domains") or {}


def broad_vocabulary(directory: Path | None = None) -> set[str]:
    """Every broad class name the hints quote, normalized: what stats counts as a broad label."""
    tasks, domains = _read_hints(load_yaml("task_hints.yaml", directory))
    names = [n for hint in tasks.values() for n in hint.get("broad", [])] + [n for v in domains.values() for n in v]
    return {normalize_label(n) for n in names}


def broad_counts(granularity: str | None, count: int, required: bool) -> int:
    """How many of ``count`` labels a request asks to be broad class names."""
    wanted = {"broad": count, "mixed": math.ceil(count / 2)}.get(granularity or "specific", 0)
    return min(count, max(wanted, 1 if required else 0))


class Prompts:
    """The system and user templates of one prompt version."""

    def __init__(self, directory: Path | None = None):
        directory = directory or prompts_dir()
        texts = {name: (directory / name).read_text(encoding="utf-8") for name in TEMPLATE_FILES}
        digest = hashlib.sha256("\0".join(texts[name] for name in TEMPLATE_FILES).encode("utf-8"))
        self.version = digest.hexdigest()[:12]
        env = Environment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
        self._system = env.from_string(texts["system.j2"])
        self._user = env.from_string(texts["user.j2"])
        self._tasks, self._domains = _read_hints(yaml.safe_load(texts["task_hints.yaml"]) or {})

    def values(self, draw: Draw, k: int) -> dict[str, Any]:
        """What the templates see: the draw plus the numbers and examples derived from it."""
        low, high = LENGTH_BUCKETS[draw.length_bucket]
        hint = self._tasks.get(draw.task_type, {})
        required = bool(hint.get("broad_required"))
        examples = list(hint.get("broad", []))
        if draw.task_type == "topic classification":
            examples += [n for n in self._domains.get(draw.domain, []) if n not in examples]
        # A bundle wants two broad pool labels where one is required: one is a positive, its sibling a negative.
        pool = draw.pool_size or 0
        return draw.model_dump() | {
            "k": k,
            "min_words": low,
            "max_words": high,
            "task_hint": " ".join(str(hint.get("describes", "")).split()),
            "broad_examples": [f'"{n}"' for n in examples],
            "broad_labels": broad_counts(draw.label_granularity, draw.num_labels, required),
            "broad_not_labels": broad_counts(draw.label_granularity, draw.num_not_labels, required),
            "broad_pool": min(pool, max(broad_counts(draw.label_granularity, pool, required), 2 if required else 0)),
        }

    def render(self, draw: Draw, k: int) -> list[dict[str, str]]:
        """Chat messages asking for ``k`` examples with the parameters of ``draw``."""
        values = self.values(draw, k)
        return [
            {"role": "system", "content": self._system.render(values).strip()},
            {"role": "user", "content": self._user.render(values).strip()},
        ]
