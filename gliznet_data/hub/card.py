"""The dataset card (README.md on the Hub): front matter for the Hub and ``datasets``, then what the data
is, how it was split and made, its columns, an example and its limits. Rendered from
``prompts/dataset_card.md.j2``; byte-identical for the same data, so a re-push makes no commit."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import yaml
from jinja2 import Environment, StrictUndefined

from ..prompting import prompts_dir
from ..records import ANNOTATION, LENGTH_BUCKETS
from .settings import PushConfig
from .splits import Splits, label_rate

CARD_TEMPLATE = "dataset_card.md.j2"

COLUMN_DOCS = {
    "id": "first 16 hex digits of SHA-256 over the normalized text; the split key",
    "text": "the text to classify",
    "labels": "positive labels (normalized: lower case, single spaces)",
    "not_labels": "hard negatives: plausible labels that do not apply",
    "domain": "subject area asked for",
    "task_type": "kind of classification task asked for",
    "length_bucket": "requested length: short, medium, long or document (for annotated texts: their length)",
    "genre": "text genre asked for",
    "tone": "tone asked for",
    "label_granularity": "label granularity asked for: broad, mixed or specific class names",
    "request_mode": "single; bundle: texts of one reply written against one shared label pool; "
                    "annotation: a user's own text, labelled by the LLM",
    "request_index": "index of the request (with seed and prompt_version) that wrote the record",
    "provider": "LLM service that wrote the record",
    "model": "LLM that wrote the record",
    "prompt_version": "hash of the prompt templates used",
    "seed": "seed of the generation run",
    "created_at": "when the record was generated (UTC)",
}


def size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")):
        if n < bound:
            return label
    return "100M<n<1B"


def _generation(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the card says about the run: an explicit list of manifest fields, so nothing else (paths,
    anything secret-like a future manifest might hold) can reach the card."""
    if not manifest:
        return None
    fingerprint = manifest.get("fingerprint") or {}
    config = manifest.get("config") or {}
    return {
        "provider": fingerprint.get("provider") or config.get("provider"),
        "model": fingerprint.get("model") or config.get("model"),
        "prompt_version": fingerprint.get("prompt_version"),
        "seed": fingerprint.get("seed", config.get("seed")),
        "examples_per_request": fingerprint.get("examples_per_request", config.get("examples_per_request")),
        "temperature": config.get("temperature"),
        "max_tokens": config.get("max_tokens"),
        "diversity_digest": fingerprint.get("diversity"),
        "diversity_overrides": config.get("diversity") or {},
        "limits": fingerprint.get("limits") or config.get("limits") or {},
        "status": manifest.get("status"),
        "counts": manifest.get("counts") or {},
        "rejects": manifest.get("rejects") or {},
        "tokens": manifest.get("tokens") or {},
        "cost_usd": manifest.get("cost_usd"),
        "duration_seconds": manifest.get("duration_seconds"),
        "created_at": manifest.get("created_at"),
    }


def _md(value: Any) -> str:
    """A value that cannot break a Markdown table row."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _axes(stats: dict[str, Any], top: int = 10) -> list[dict[str, Any]]:
    out = []
    for axis in ("domain", "task_type", "genre", "tone"):
        # Ties are ordered by name: the card must be byte-identical for the same data, or a re-push commits.
        counts = sorted((stats.get(axis) or {}).items(), key=lambda item: (-item[1], item[0]))
        if counts:
            shown = ", ".join(f"{value} ({count:,})" for value, count in counts[:top])
            out.append({"name": axis.replace("_", " "), "distinct": len(counts),
                        "top": shown + (", ..." if len(counts) > top else "")})
    return out


def render_card(settings: PushConfig, splits: Splits, files: dict[str, list[str]], stats: dict[str, Any],
                manifest: dict[str, Any] | None, schema: pa.Schema) -> str:
    total = sum(frame.height for frame in splits.frames.values())
    repo_id = settings.repo_id or "OWNER/NAME"
    front = {
        "pretty_name": settings.pretty_name or repo_id.split("/")[1],
        "license": settings.license,
        "language": settings.language,
        "task_categories": ["zero-shot-classification", "text-classification"],
        "size_categories": [size_category(total)],
        "tags": ["synthetic", "hard-negatives", "gliznet"],
        "configs": [{
            "config_name": "default",
            "data_files": [{"split": name, "path": f"data/{name}-*"} for name in files],
        }],
    }
    train = splits.frames["train"]
    example_row = train.row(0, named=True)
    example = {k: example_row[k] for k in ("text", "labels", "not_labels")}
    if len(example["text"]) > 400:
        example["text"] = example["text"][:400].rstrip() + " ..."
    env = Environment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["md"] = _md
    template = env.from_string((prompts_dir() / CARD_TEMPLATE).read_text(encoding="utf-8"))
    return template.render(
        front_matter=yaml.safe_dump(front, sort_keys=False, allow_unicode=True),
        repo_id=repo_id,
        title=settings.pretty_name or repo_id.split("/")[1],
        total=total,
        splits={name: {"rows": frame.height, "files": len(files[name])} for name, frame in splits.frames.items()},
        settings=settings,
        label_rate=round(label_rate(settings.unseen_labels), 4),
        held_out=splits.held_out,
        distinct_labels=splits.distinct_labels,
        negatives_dropped=splits.negatives_dropped,
        records_trimmed=splits.records_trimmed,
        moved_to_test=splits.moved_to_test,
        annotated=(stats.get("request_mode") or {}).get(ANNOTATION, 0),
        stats=stats,
        axes=_axes(stats),
        buckets=[(name, stats["length_buckets"][name]) for name in LENGTH_BUCKETS if name in stats["length_buckets"]],
        generation=_generation(manifest),
        columns=[{"name": f.name, "type": str(f.type), "doc": COLUMN_DOCS.get(f.name, "")} for f in schema],
        example=json.dumps(example, ensure_ascii=False, indent=2),
    )
