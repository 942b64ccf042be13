"""Grounded annotation: a user's own texts go to the LLM, which writes their positives and hard negatives.

This is how a user adapts GliZNet to their domain with real text instead of invented text. The run is
the live route's (``generate.run_requests``): the same providers, retries and pacing, the same record
validators (a user's text is never rejected for its length: see ``records.ANNOTATION``), the same shards,
manifest, folder lock, failure budget, resume and exact N. Only the plan differs: request ``i`` carries
texts ``i*k .. i*k+k-1`` of the input (empty and repeated ones skipped), less those already stored,
numbered in ``<text index="j">`` tags, and the reply names each text by that number, so the stored text is always the user's (stripped of surrounding
whitespace, as every record's text is), never the model's copy of it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, StrictUndefined
from pydantic import BaseModel, Field, model_validator

from .errors import UserError
from .generate import GenerateConfig, Progress, RunState, run_requests
from .prompting import prompts_dir
from .providers import provider_class
from .records import ANNOTATION, bucket_of, record_id, word_count
from .replies import ParsedReply, parse_reply

TEMPLATE_FILES = ("annotate_system.j2", "annotate_user.j2")
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
# What the prompt asks per text, inside the validators' limits.
ASK_LABELS = (1, 5)
ASK_NOT_LABELS = (3, 6)

_ITEM = {
    "type": "object",
    "properties": {
        "index": {"type": "integer"},
        "labels": {"type": "array", "items": {"type": "string"}},
        "not_labels": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["index", "labels", "not_labels"],
    "additionalProperties": False,
}
REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"examples": {"type": "array", "items": _ITEM}},
    "required": ["examples"],
    "additionalProperties": False,
}


class AnnotateConfig(GenerateConfig):
    """Everything ``gliznet-data annotate`` can be told (flags or the config's ``annotate:`` section):
    the live run's settings, plus the input. ``n`` defaults to every text; ``output`` to a folder
    beside the input."""

    input: Path | None = Field(None, description="Parquet, JSONL or CSV file holding the texts")
    text_column: str = "text"
    domain: str | None = Field(None, description="what the texts are (told to the LLM, stored as the domain)")
    n: int | None = Field(None, gt=0, description="valid records to produce; default: one per text")
    output: Path | None = None

    @model_validator(mode="after")
    def _nothing_to_draw(self) -> AnnotateConfig:
        if self.diversity or self.bundle_share is not None:
            raise ValueError("annotate draws no generation parameters: diversity and bundle_share do not apply")
        return self


class Texts(BaseModel):
    """The non-empty texts of the input, in file order, and what identifies the input."""

    path: Path
    column: str
    rows: int  # rows in the file
    empty: int  # rows with no text
    repeated: int  # rows whose text (normalized as record ids are) an earlier row already has
    texts: list[str]
    sha256: str  # of every row's text, in order: a changed file is another run


def _format(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unknown format {path.suffix or '(no suffix)'!r}; give a .parquet, .jsonl or .csv file")
    return kind


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _jsonl_column(path: Path, column: str) -> list[Any]:
    values: list[Any] = []
    found = False
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UserError(f"{path}:{number} is not valid JSON") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{number} is not a JSON object")
            found = found or column in row
            values.append(row.get(column))
    if values and not found:
        raise UserError(f"{path} has no field {column!r}; choose the field with --text-column")
    return values


def _column(path: Path, column: str) -> list[Any]:
    kind = _format(path)
    if kind == "jsonl":
        return _jsonl_column(path, column)
    if kind == "csv":
        if path.stat().st_size == 0:
            return []
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
    else:
        names = list(pl.read_parquet_schema(path))
        frame = pl.read_parquet(path, columns=[column]) if column in names else pl.DataFrame(schema=names)
    if column not in frame.columns:
        raise UserError(f"{path} has no column {column!r} (found: {', '.join(frame.columns) or 'none'}); "
                        "choose the column with --text-column")
    series = frame.get_column(column)
    if series.dtype not in (pl.String, pl.Null):
        raise UserError(f"column {column!r} of {path} holds {series.dtype} values, not text")
    return series.to_list()


def read_texts(path: Path, column: str) -> Texts:
    """The texts of ``path``'s ``column``; a missing, empty, unreadable or textless input is one UserError."""
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a .parquet, .jsonl or .csv file")
    try:
        values = _column(path, column)
    except UserError:
        raise
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or _first_line(exc)}") from None
    except Exception as exc:  # polars raises several types for files it cannot parse
        raise UserError(f"cannot read {path}: {_first_line(exc)}") from None
    if not values:
        raise UserError(f"{path} holds no rows")
    for number, value in enumerate(values, 1):
        if value is not None and not isinstance(value, str):
            raise UserError(f"row {number} of {path}: {column!r} is a {type(value).__name__}, not text")
    digest = hashlib.sha256()
    texts: list[str] = []
    seen: set[str] = set()
    empty = 0
    for value in values:
        digest.update((value or "").encode("utf-8") + b"\0")
        if not value or not value.strip():
            empty += 1
        elif (key := record_id(value)) not in seen:  # a repeated text would only be a duplicate reject
            seen.add(key)
            texts.append(value)
    if not texts:
        raise UserError(f"{path}: every {column!r} value is empty")
    return Texts(path=path, column=column, rows=len(values), empty=empty,
                 repeated=len(values) - empty - len(texts), texts=texts, sha256=digest.hexdigest()[:16])


class AnnotatePrompts:
    """The annotation templates; their hash is the records' ``prompt_version``."""

    def __init__(self, directory: Path | None = None):
        directory = directory or prompts_dir()
        sources = {name: (directory / name).read_text(encoding="utf-8") for name in TEMPLATE_FILES}
        self.version = hashlib.sha256("\0".join(sources[n] for n in TEMPLATE_FILES).encode()).hexdigest()[:12]
        env = Environment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
        self._system = env.from_string(sources["annotate_system.j2"])
        self._user = env.from_string(sources["annotate_user.j2"])

    def render(self, texts: list[str], domain: str | None, limits: Any) -> list[dict[str, str]]:
        values = {
            "k": len(texts), "texts": [text.strip() for text in texts], "domain": domain,
            "min_labels": max(ASK_LABELS[0], limits.min_labels), "max_labels": min(ASK_LABELS[1], limits.max_labels),
            "min_not_labels": max(ASK_NOT_LABELS[0], limits.min_not_labels),
            "max_not_labels": min(ASK_NOT_LABELS[1], limits.max_not_labels),
        }
        return [{"role": "system", "content": self._system.render(values).strip()},
                {"role": "user", "content": self._user.render(values).strip()}]


class Chunk(BaseModel):
    """One request: up to k consecutive texts of the input."""

    index: int
    request_mode: str = ANNOTATION
    texts: list[str]


class AnnotatePlan:
    """The plan ``run_requests`` runs: the input in chunks of k texts, rendered by the annotation templates."""

    def __init__(self, config: AnnotateConfig, source: Texts):
        self.config = config
        self.source = source
        self.prompts = AnnotatePrompts()
        self.provider_cls = provider_class(config.provider)
        self.settings = config.provider_settings(self.provider_cls.default_model)
        self.size = math.ceil(len(source.texts) / config.examples_per_request)
        self.stored: set[str] = set()  # ids of the records the output folder holds: the state's, once it exists

    def texts(self, index: int) -> list[str]:
        """The texts of request ``index`` still to be labelled."""
        k = self.config.examples_per_request
        return [text for text in self.source.texts[index * k:(index + 1) * k] if record_id(text) not in self.stored]

    def request(self, index: int) -> tuple[Chunk, list[dict[str, str]]]:
        chunk = Chunk(index=index, texts=self.texts(index))
        return chunk, self.prompts.render(chunk.texts, self.config.domain, self.config.limits)

    @staticmethod
    def schema(chunk: Chunk) -> dict[str, Any]:
        return copy.deepcopy(REPLY_SCHEMA)

    def parse(self, chunk: Chunk, content: str) -> tuple[ParsedReply, int]:
        """Each label set joined to the text its index names. An item naming no text of the request (or
        one already named) keeps no text, so the validators reject it as ``schema``."""
        items, broken = parse_reply(content, key="index")
        examples: list[Any] = []
        named: set[int] = set()
        for item in items:
            number = item.get("index") if isinstance(item, dict) else None
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= len(chunk.texts) \
                    or number in named:
                examples.append({k: item[k] for k in ("labels", "not_labels") if k in item}
                                if isinstance(item, dict) else item)
                continue
            named.add(number)
            text = chunk.texts[number - 1]
            examples.append({"text": text, "labels": item.get("labels"), "not_labels": item.get("not_labels"),
                             "length_bucket": bucket_of(word_count(text))})
        return ParsedReply(examples, broken), len(chunk.texts)

    def provenance(self, chunk: Chunk) -> dict[str, Any]:
        """Columns every record of the request shares; the length bucket is each text's own."""
        return {
            "domain": self.config.domain or "user texts", "task_type": ANNOTATION, "genre": "user text",
            "tone": "as written", "label_granularity": "mixed", "request_mode": ANNOTATION,
            "request_index": chunk.index, "provider": self.provider_cls.name, "model": self.settings.model,
            "prompt_version": self.prompts.version, "seed": self.config.seed,
            "created_at": datetime.now(timezone.utc),
        }

    def fingerprint(self) -> dict[str, Any]:
        """What must not change between a run and its resumption: the input above all."""
        return {
            "provider": self.provider_cls.name, "model": self.settings.model, "prompt_version": self.prompts.version,
            "examples_per_request": self.config.examples_per_request, "domain": self.config.domain,
            "input": self.source.sha256, "text_column": self.source.column,
            "limits": self.config.limits.model_dump(),
        }


class AnnotateState(RunState):
    """The run state, with what the manifest says about the input."""

    def __init__(self, config: AnnotateConfig, plan: AnnotatePlan):
        self.plan = plan
        super().__init__(config, plan.fingerprint(), command="gliznet-data annotate")
        plan.stored = self.ids
        # A crash between a shard and the manifest leaves requests whose texts are all stored: nothing to send.
        self.done |= {i for i in range(plan.size) if i not in self.done and not plan.texts(i)}

    def answered(self, chunk: Chunk) -> bool:
        """A request cut by exact N stays undone: a larger --n sends the texts it left unlabelled."""
        return not self.full or all(record_id(text) in self.ids for text in chunk.texts)

    def manifest(self) -> dict[str, Any]:
        source = self.plan.source
        done = len(self.done | self.pending)
        return super().manifest() | {"input": {
            "path": str(source.path), "text_column": source.column, "rows": source.rows,
            "texts": len(source.texts), "empty_rows": source.empty, "repeated_rows": source.repeated,
            "sha256": source.sha256, "requests": self.plan.size, "requests_done": done,
            "exhausted": done >= self.plan.size and self.valid < self.config.n,
        }}


def resolve(config: AnnotateConfig, source: Texts) -> AnnotateConfig:
    """``n`` (default: one record per text) and ``output`` (default: ``<input>-annotated`` beside it)."""
    if config.n is not None and config.n > len(source.texts):
        raise UserError(f"--n {config.n} is more than the {len(source.texts):,} texts in {source.path}")
    output = config.output or source.path.with_name(f"{source.path.stem}-annotated")
    return config.model_copy(update={"n": config.n or len(source.texts), "output": output})


async def annotate(config: AnnotateConfig, on_progress: Callable[[Progress], None] | None = None,
                   on_retry: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Label (or resume labelling) the texts of ``config.input`` into ``config.output``; returns the manifest."""
    if config.input is None:
        raise UserError("give the file of texts to annotate (TEXTS)")
    source = read_texts(config.input, config.text_column)  # before the provider: a bad file costs nothing
    config = resolve(config, source)
    plan = AnnotatePlan(config, source)
    provider = plan.provider_cls(plan.settings)  # a missing key fails before anything is written
    provider.on_retry = on_retry
    try:
        state = AnnotateState(config, plan)
    except BaseException:
        await provider.aclose()
        raise
    return await run_requests(plan, state, provider, on_progress)
