"""Loads the prompt templates from prompts/ and renders one request from one parameter draw."""

from __future__ import annotations

import hashlib
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined

from .diversity import Draw
from .records import LENGTH_BUCKETS

TEMPLATE_FILES = ("system.j2", "user.j2", "task_hints.yaml")

# The one JSON object the model must answer with; sent as the services' structured-output schema.
REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "examples": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "labels": {"type": "array", "items": {"type": "string"}},
                    "not_labels": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["text", "labels", "not_labels"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["examples"],
    "additionalProperties": False,
}


def prompts_dir() -> Path:
    """Where the templates are: inside the wheel, or the repository's prompts/ for a source checkout
    (an editable install cannot map prompts/ into the package)."""
    packaged = files("gliznet_data") / "prompts"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "prompts"


def load_yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load((prompts_dir() / name).read_text(encoding="utf-8")) or {}


def default_weights() -> dict[str, dict]:
    return load_yaml("diversity.yaml")


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
        self._hints: dict[str, str] = yaml.safe_load(texts["task_hints.yaml"]) or {}

    def render(self, draw: Draw, k: int) -> list[dict[str, str]]:
        """Chat messages asking for ``k`` examples with the parameters of ``draw``."""
        low, high = LENGTH_BUCKETS[draw.length_bucket]
        values = draw.model_dump() | {
            "k": k,
            "min_words": low,
            "max_words": high,
            "task_hint": self._hints.get(draw.task_type, ""),
        }
        return [
            {"role": "system", "content": self._system.render(values).strip()},
            {"role": "user", "content": self._user.render(values).strip()},
        ]
