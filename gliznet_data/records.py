"""The one definition of a valid record.

Label normalization (applied everywhere: validation, overlap checks, dedupe, stored data):
Unicode NFKC, underscores become spaces, runs of whitespace collapse to one space, ends are
stripped, and the result is lower-cased. ``"Customer_Support "`` and ``"customer  support"``
are the same label, stored as ``"customer support"``.

Length buckets count whitespace-separated words. A text is accepted when its word count lies
within the bucket's range widened by ``LENGTH_TOLERANCE`` (20%) on each side, rounded outwards:
short 1-24, medium 16-60, long 40-240, document 160-480.
A grounded annotation (request mode ``annotation``) labels a user's own text: its bucket is the one
its word count falls in (``bucket_of``), and its length is never a reject.

A cross-role bundle is one reply whose texts were written against one shared pool of labels; the
rule (``check_cross_role``, ``repair_bundle``) is that every label the bundle uses is a positive of
at least one of its texts and a hard negative of at least one other.

Every rejection raises a pydantic error whose ``type`` is one of ``REJECT_REASONS``, so callers
count rejects by reason from ``ValidationError.errors()`` without parsing messages.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from datetime import datetime, timezone
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

# Requested word ranges per bucket; the prompts quote these, the validator widens them.
# "document" (news-article to report length) is off by default; the paper's three buckets keep 33/33/34.
LENGTH_BUCKETS: dict[str, tuple[int, int]] = {
    "short": (1, 20), "medium": (21, 50), "long": (51, 200), "document": (201, 400)}
LENGTH_TOLERANCE = 0.2
# The request mode of grounded annotation (``gliznet-data annotate``): the text is a user's own, only its
# labels were written by the LLM, and its length bucket is the one its word count falls in (never a reject).
ANNOTATION = "annotation"
MAX_LABEL_WORDS = 6
MAX_LABEL_CHARS = 60
# Markers that the model's tokenizers read as special tokens (GliZNet's [LAB], BERT/DeBERTa/ModernBERT's
# bracketed ones, RoBERTa's angled ones): inside a text or a label they would change the sequence GliZNet
# reads, `[CLS] text [LAB] l1 [LAB] l2 ... [SEP]`. This one rule, in the validators, is what generate,
# batch ingest, validate and push apply, so published data is always trainable. Matched in any case.
RESERVED_TOKENS = ("[LAB]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "<s>", "</s>", "<pad>", "<mask>", "<unk>")

REJECT_REASONS: dict[str, str] = {
    "schema": "missing field or wrong type",
    "empty_text": "text is empty or whitespace",
    "control_chars": "control characters in text or labels",
    "meta_text": "meta talk or formatting debris in the text",
    "length_out_of_bucket": "text length outside the requested bucket",
    "too_few_labels": "fewer positives than the minimum",
    "too_many_labels": "more positives than the maximum",
    "too_few_not_labels": "fewer hard negatives than the minimum (after dropping overlaps)",
    "too_many_not_labels": "more hard negatives than the maximum",
    "label_empty": "an empty label",
    "label_too_long": f"a label longer than {MAX_LABEL_WORDS} words or {MAX_LABEL_CHARS} characters",
    "label_duplicate": "a label repeated after normalization",
    "label_is_text": "a label equal to the whole text",
    "reserved_token": "a token the model reserves ([LAB], [CLS], [SEP], <s>, ...) in the text or a label",
    "cross_role": "a bundle text left with too few labels once the labels breaking the cross-role rule were dropped",
    "broken_json": "an example that could not be recovered from the reply",
    "duplicate": "a text already in the dataset",
}

# Tab and newline are ordinary text; every other C0/C1 control character is debris.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A person may well open with "Sure," or "I can't": only the assistant's own framing is debris.
_META_START = re.compile(
    r"^\W*((sure|certainly|of course|okay|ok)\W+)?(here (is|are)\b.{0,30}\b(examples?|texts?|samples?|records?|json|"
    r"outputs?|data(set)?)\b|i (can(no|')t|am unable to|'m unable to) (help|assist|comply|create|generate|provide|write)\b|"
    r"example\s*\d*\s*:|text\s*:)",
    re.IGNORECASE,
)
# Searched for as plain substrings of the lower-cased text: far faster than a regex alternation.
_DEBRIS = ("```", "as a language model", "as a large language model", '"text":', '"text" :', '"labels"',
           '"not_labels"')
_AS_AN_AI = re.compile(r"as an ai\b")


def _nfkc(value: str) -> str:
    return value if value.isascii() else unicodedata.normalize("NFKC", value)  # ASCII is already NFKC


def normalize_label(label: str) -> str:
    """The canonical form of a label (see module docstring)."""
    return " ".join(_nfkc(label).replace("_", " ").split()).lower()


def normalize_text(text: str) -> str:
    """The form used for identity: case and whitespace do not make a new text."""
    return " ".join(_nfkc(text).split()).lower()


def record_id(text: str) -> str:
    """Stable id: the first 16 hex digits of SHA-256 over the normalized text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:16]


def word_count(text: str) -> int:
    return len(text.split())


def bucket_of(words: int) -> str:
    """The bucket whose requested range holds ``words`` (the last bucket is open-ended)."""
    return next((name for name, (_, high) in LENGTH_BUCKETS.items() if words <= high), list(LENGTH_BUCKETS)[-1])


def accepted_word_range(bucket: str, tolerance: float = LENGTH_TOLERANCE) -> tuple[int, int]:
    low, high = LENGTH_BUCKETS[bucket]
    return max(1, math.floor(low * (1 - tolerance))), math.ceil(high * (1 + tolerance))


class ValidationLimits(BaseModel):
    """Bounds a record must respect; passed to validation as pydantic context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_labels: int = Field(1, ge=1)
    max_labels: int = Field(8, ge=1)
    min_not_labels: int = Field(1, ge=0)
    max_not_labels: int = Field(10, ge=1)
    length_tolerance: float = Field(LENGTH_TOLERANCE, ge=0, le=1)

    @model_validator(mode="after")
    def _check_bounds(self) -> ValidationLimits:
        # Checked with the settings, before any request: otherwise every record would be rejected.
        for kind in ("labels", "not_labels"):
            if getattr(self, f"min_{kind}") > getattr(self, f"max_{kind}"):
                raise ValueError(f"min_{kind} exceeds max_{kind}")
        return self


DEFAULT_LIMITS = ValidationLimits()


def _reject(reason: str, detail: str = "") -> PydanticCustomError:
    return PydanticCustomError(reason, detail or REJECT_REASONS[reason])


def _looks_like_json(text: str) -> bool:
    if text[:1] not in "{[":
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


_RESERVED_LOWER = tuple(token.lower() for token in RESERVED_TOKENS)


def reserved_token(value: str) -> str | None:
    """The first reserved token that ``value`` contains (in any case), if any."""
    if "[" not in value and "<" not in value:  # the common case, checked without lowering
        return None
    lowered = value.lower()
    return next((token for token, low in zip(RESERVED_TOKENS, _RESERVED_LOWER) if low in lowered), None)


def _limits(info: ValidationInfo) -> ValidationLimits:
    context = info.context
    return context.get("limits", DEFAULT_LIMITS) if context else DEFAULT_LIMITS


def _clean_labels(values: Any, kind: str, info: ValidationInfo) -> list[str]:
    try:
        joined = "".join(values) if isinstance(values, list) else None  # fails on anything but strings
    except TypeError:
        joined = None
    if joined is None:
        raise _reject("schema", f"{kind} must be a list of strings")
    limits = _limits(info)
    low, high = (limits.min_labels, limits.max_labels) if kind == "labels" else (
        limits.min_not_labels, limits.max_not_labels)
    if _CONTROL.search(joined):
        raise _reject("control_chars")
    out: list[str] = []
    for raw in values:
        label = normalize_label(raw)
        if not label:
            raise _reject("label_empty")
        if token := reserved_token(label):
            raise _reject("reserved_token", f"label {label[:40]!r} contains the reserved token {token}")
        if len(label) > MAX_LABEL_CHARS or label.count(" ") + 1 > MAX_LABEL_WORDS:
            raise _reject("label_too_long", f"label too long: {label[:40]!r}")
        if label in out:
            raise _reject("label_duplicate", f"duplicate label {label!r}")
        out.append(label)
    if len(out) > high:
        raise _reject(f"too_many_{kind}", f"{len(out)} {kind}, at most {high} allowed")
    # The lower bound on negatives is checked after overlaps are dropped (model validator).
    if kind == "labels" and len(out) < low:
        raise _reject("too_few_labels", f"{len(out)} labels, at least {low} required")
    return out


class Example(BaseModel):
    """Text, positives and hard negatives: what the LLM writes and what ``validate`` checks.

    ``length_bucket`` is optional so that data without provenance (e.g. ZSHOT-HARDSET) can be
    checked; when it is present the text must fit the bucket.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    text: str
    labels: list[str]
    not_labels: list[str]
    length_bucket: str | None = None

    @field_validator("text", mode="before")
    @classmethod
    def _check_text(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise _reject("schema", "text must be a string")
        text = value.strip()
        if not text:
            raise _reject("empty_text")
        if _CONTROL.search(text):
            raise _reject("control_chars")
        if token := reserved_token(text):
            raise _reject("reserved_token", f"text contains the reserved token {token}")
        lowered = text.lower()
        if (_META_START.search(text) or any(d in lowered for d in _DEBRIS)
                or ("as an ai" in lowered and _AS_AN_AI.search(lowered)) or _looks_like_json(text)):
            raise _reject("meta_text")
        return text

    @field_validator("labels", mode="before")
    @classmethod
    def _check_labels(cls, value: Any, info: ValidationInfo) -> list[str]:
        return _clean_labels(value, "labels", info)

    @field_validator("not_labels", mode="before")
    @classmethod
    def _check_not_labels(cls, value: Any, info: ValidationInfo) -> list[str]:
        return _clean_labels(value, "not_labels", info)

    @model_validator(mode="after")
    def _check_record(self, info: ValidationInfo) -> Example:
        limits = _limits(info)
        # A negative that is also a positive is a generator mistake, not a bad text: drop it.
        positives = set(self.labels)
        self.not_labels = [label for label in self.not_labels if label not in positives]
        if len(self.not_labels) < limits.min_not_labels:
            raise _reject("too_few_not_labels")
        words = word_count(self.text)
        if words <= MAX_LABEL_WORDS:  # only a text this short can equal a label
            whole = normalize_label(self.text)
            if whole in positives or whole in self.not_labels:
                raise _reject("label_is_text")
        if self.length_bucket is not None:
            if self.length_bucket not in LENGTH_BUCKETS:
                raise _reject("schema", f"unknown length bucket {self.length_bucket!r}")
            low, high = accepted_word_range(self.length_bucket, limits.length_tolerance)
            if self._written_to_length() and not low <= words <= high:
                raise _reject("length_out_of_bucket", f"{words} words, {self.length_bucket} accepts {low}-{high}")
        return self

    def _written_to_length(self) -> bool:
        """Whether the text was written to its length bucket, so must fit it (a user's own text was not)."""
        return True


class Provenance(BaseModel):
    """How a record was produced; every field is stored as a column.

    The three fields with defaults came with prompt version 2 (granularity and bundles); data made
    before them, such as the v1 seed set, lacks those columns and is still a full record.
    """

    domain: str
    task_type: str
    length_bucket: str
    genre: str
    tone: str
    label_granularity: str | None = None
    request_mode: str = "single"
    request_index: int | None = None  # with seed and prompt_version, names the reply a bundle came from
    provider: str
    model: str
    prompt_version: str
    seed: int
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class Record(Example, Provenance):
    """A valid, stored record: example plus provenance, identified by its normalized text."""

    id: str = ""
    length_bucket: str  # required here: generated records always know their bucket

    def _written_to_length(self) -> bool:
        return self.request_mode != ANNOTATION

    @model_validator(mode="after")
    def _set_id(self) -> Record:
        self.id = record_id(self.text)
        return self


# Column order of the Parquet shards: the contract columns first, then provenance.
COLUMNS: tuple[str, ...] = (
    "id", "text", "labels", "not_labels",
    "domain", "task_type", "length_bucket", "genre", "tone", "label_granularity", "request_mode", "request_index",
    "provider", "model", "prompt_version", "seed", "created_at",
)


def reject_reason(error: ValidationError) -> str:
    """The reason code of a failed validation (the first error is the one that stopped it)."""
    kind = error.errors()[0]["type"]
    return kind if kind in REJECT_REASONS else "schema"


class ValidationReport(BaseModel):
    rows: int
    valid: int
    rejects: dict[str, int]


def validate_rows(rows: Any, limits: ValidationLimits = DEFAULT_LIMITS) -> ValidationReport:
    """Re-check stored rows (dicts). Rows with every provenance column are checked as full records
    (length bucket included); rows without, such as ZSHOT-HARDSET's, as examples."""
    provenance = {name for name, field in Provenance.model_fields.items() if field.is_required()}
    # Shards made before a column existed read back as null there when read with newer ones (v1 and v2 of
    # the seed set together): a null in a column with a default is that default, not a wrong type.
    defaulted = {name for name, field in Provenance.model_fields.items() if not field.is_required()}
    seen: set[str] = set()
    rejects: dict[str, int] = {}
    total = valid = 0
    for row in rows:
        total += 1
        model = Record if provenance <= row.keys() else Example
        if model is Record and any(row.get(name, 0) is None for name in defaulted):
            row = {k: v for k, v in row.items() if v is not None or k not in defaulted}
        try:
            checked = model.model_validate(row, context={"limits": limits})
        except ValidationError as exc:
            reason = reject_reason(exc)
            rejects[reason] = rejects.get(reason, 0) + 1
            continue
        key = record_id(checked.text)
        if key in seen:
            rejects["duplicate"] = rejects.get("duplicate", 0) + 1
            continue
        seen.add(key)
        valid += 1
    return ValidationReport(rows=total, valid=valid, rejects=dict(sorted(rejects.items())))


E = TypeVar("E", bound=Example)


def cross_role_violations(examples: Sequence[Example]) -> set[str]:
    """Labels of a bundle that are not both a positive of one text and a hard negative of another.

    A record never holds a label in both lists (the negative is dropped), so "a positive somewhere
    and a negative somewhere" already means two different texts.
    """
    positives = {label for ex in examples for label in ex.labels}
    negatives = {label for ex in examples for label in ex.not_labels}
    return positives ^ negatives


class Bundle(BaseModel):
    """The texts of one cross-role reply, each already a valid example: valid when no label breaks the rule."""

    examples: list[Example]

    @model_validator(mode="after")
    def _check_cross_role(self) -> Bundle:
        broken = cross_role_violations(self.examples)
        if broken:
            raise _reject("cross_role", f"labels not seen in both roles: {sorted(broken)[:5]}")
        return self


class BundleRepair(NamedTuple):
    kept: list[Any]  # the surviving examples, with the rule-breaking labels removed
    rejected: list[int]  # positions of texts left with too few labels: rejects of reason ``cross_role``
    labels_dropped: int  # labels removed from texts that were kept


def repair_bundle(examples: Sequence[E], limits: ValidationLimits = DEFAULT_LIMITS) -> BundleRepair:
    """Make a bundle keep the cross-role rule by dropping what breaks it, never by adding anything.

    A label that breaks the rule is removed from every text that uses it; such a label is still
    true (or still wrong) for those texts, so what remains is a subset of what the writer stated.
    A text left with fewer positives or negatives than ``limits`` allow is rejected, which can
    make other labels break the rule, so this repeats until nothing changes. The result always
    validates as a ``Bundle`` (possibly empty: a bundle of unrelated texts loses every text).
    """
    kept = list(enumerate(examples))  # (position in the reply, example) so drops can be counted
    rejected: list[int] = []
    while True:
        broken = cross_role_violations([ex for _, ex in kept])
        if not broken:
            break
        survivors = []
        for position, ex in kept:
            labels = [label for label in ex.labels if label not in broken]
            not_labels = [label for label in ex.not_labels if label not in broken]
            if len(labels) < limits.min_labels or len(not_labels) < limits.min_not_labels:
                rejected.append(position)
                continue
            survivors.append((position, ex.model_copy(update={"labels": labels, "not_labels": not_labels})))
        kept = survivors
    dropped = sum(len(examples[p].labels) + len(examples[p].not_labels) - len(ex.labels) - len(ex.not_labels)
                  for p, ex in kept)
    result = [ex for _, ex in kept]
    Bundle(examples=result)  # the invariant, stated once by the validator
    return BundleRepair(result, sorted(rejected), dropped)


class ReplyCheck(NamedTuple):
    records: list[Record]  # valid, unique, and (for a bundle) keeping the cross-role rule
    rejects: Counter  # reason -> examples rejected
    labels_dropped: int  # labels a bundle's repair removed from records it kept
    problems: list[tuple[int, str, str]]  # (position in the reply, reason, message) per rejected example


def validate_reply(items: Sequence[Any], provenance: dict[str, Any], *, bundle: bool = False,
                   limits: ValidationLimits = DEFAULT_LIMITS, known_ids: Any = frozenset(),
                   room: int | None = None) -> ReplyCheck:
    """The records one reply yields: each item validated with the reply's provenance, duplicates of
    ``known_ids`` or of earlier items rejected, and a bundle repaired to keep the cross-role rule.

    ``room`` caps how many records are wanted (exact N): surplus is neither kept nor a reject. A
    single reply stops validating once full; a bundle is checked whole first, because its rule
    spans its texts, and then its first ``room`` records are kept as repaired against the whole.
    """
    context = {"limits": limits}
    records: list[Record] = []
    positions: list[int] = []
    rejects: Counter = Counter()
    problems: list[tuple[int, str, str]] = []
    seen: set[str] = set()
    for position, item in enumerate(items):
        if not bundle and room is not None and len(records) >= room:
            break
        try:
            record = Record.model_validate({**item, **provenance} if isinstance(item, dict) else item,
                                           context=context)
        except ValidationError as exc:
            reason = reject_reason(exc)
            rejects[reason] += 1
            problems.append((position, reason, exc.errors()[0]["msg"]))
            continue
        if record.id in known_ids or record.id in seen:
            rejects["duplicate"] += 1
            problems.append((position, "duplicate", REJECT_REASONS["duplicate"]))
            continue
        seen.add(record.id)
        records.append(record)
        positions.append(position)
    dropped = 0
    if bundle:
        repair = repair_bundle(records, limits)
        for i in repair.rejected:
            rejects["cross_role"] += 1
            problems.append((positions[i], "cross_role", REJECT_REASONS["cross_role"]))
        records, dropped = repair.kept, repair.labels_dropped
        if room is not None:
            records = records[:room]
    return ReplyCheck(records, rejects, dropped, sorted(problems))
