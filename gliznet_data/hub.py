"""Publish shards as a Hugging Face Hub dataset: deterministic splits, a dataset card, one commit.

The folder that goes to the Hub is built locally first (``README.md`` plus ``data/{split}-NNNNN-of-NNNNN.parquet``);
``--to-folder`` stops there. An upload compares that folder with the repo's head (git blob ids for regular
files, SHA-256 for LFS files) and commits only what differs, deleting stale files under ``data/`` in the
same commit, so pushing the same data twice makes no second commit.

Splits depend only on the split seed and each record's id (validation) or each label (unseen-label test
split), never on row order or on which other records exist: pushing more data later never moves an
existing record from one split to another.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from jinja2 import Environment, StrictUndefined
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from . import shards
from .errors import UserError
from .prompting import prompts_dir
from .records import COLUMNS, LENGTH_BUCKETS, normalize_label, record_id, validate_rows
from .stats import dataset_stats, with_text_column

CARD_TEMPLATE = "dataset_card.md.j2"
SUMMARY_FILE = "push.json"
SPLITS = ("train", "validation", "test")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# Status codes worth another attempt: timeouts, rate limits, server trouble, and 412 (someone committed
# between our look at the head and our commit: the next attempt plans against the new head).
_RETRY_STATUS = {408, 412, 429, 500, 502, 503, 504}

COLUMN_DOCS = {
    "id": "first 16 hex digits of SHA-256 over the normalized text; the split key",
    "text": "the text to classify",
    "labels": "positive labels (normalized: lower case, single spaces)",
    "not_labels": "hard negatives: plausible labels that do not apply",
    "domain": "subject area asked for",
    "task_type": "kind of classification task asked for",
    "length_bucket": "requested length: short, medium, long or document",
    "genre": "text genre asked for",
    "tone": "tone asked for",
    "label_granularity": "label granularity asked for: broad, mixed or specific class names",
    "request_mode": "single, or bundle: texts of one reply written against one shared label pool",
    "request_index": "index of the request (with seed and prompt_version) that wrote the record",
    "provider": "LLM service that wrote the record",
    "model": "LLM that wrote the record",
    "prompt_version": "hash of the prompt templates used",
    "seed": "seed of the generation run",
    "created_at": "when the record was generated (UTC)",
}


class PushConfig(BaseModel):
    """Everything ``gliznet-data push`` can be told (flags or the config's ``push:`` section)."""

    model_config = ConfigDict(extra="forbid")

    repo_id: str | None = Field(None, description="OWNER/NAME of the dataset repo")
    private: bool = False
    split_seed: int = 0
    validation: float = Field(0.1, ge=0, lt=1, description="fraction of the non-test records kept for validation")
    unseen_labels: float = Field(0.0, ge=0, lt=1, description="fraction of distinct labels held out for test")
    license: str = "apache-2.0"
    language: list[str] = Field(default_factory=lambda: ["en"])
    pretty_name: str | None = None
    rows_per_file: int = Field(100_000, ge=1, description="rows per Parquet file of a split")
    commit_message: str | None = None
    retries: int = Field(5, ge=1, description="attempts at the upload before giving up")
    retry_wait: float = Field(2.0, ge=0, description="seconds before the second attempt; doubles each time")

    @field_validator("repo_id")
    @classmethod
    def _check_repo_id(cls, value: str | None) -> str | None:
        if value is not None and not _REPO_ID.match(value):
            raise ValueError(f"must look like OWNER/NAME, got {value!r}")
        return value


Step = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# -- data and splits ---------------------------------------------------------------------------------


def load_records(path: Path) -> tuple[pl.DataFrame, dict[str, Any] | None]:
    """All rows under ``path``, checked by the record validators; any invalid row refuses the whole push."""
    df = with_text_column(shards.read_table(path))
    if df.height == 0:
        raise UserError(f"{path} holds no records")
    report = validate_rows(df.iter_rows(named=True))
    if report.valid != report.rows:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in report.rejects.items())
        raise UserError(f"{report.rows - report.valid:,} of {report.rows:,} rows under {path} fail validation "
                        f"({reasons}); nothing was pushed; see `gliznet-data validate {path}`")
    # Stored labels take the validators' form (already so for our shards; not always for outside data), which
    # is what the card promises: normalized, and no hard negative that is also a positive.
    positives = [[normalize_label(x) for x in row] for row in df.get_column("labels").to_list()]
    negatives = [[y for y in dict.fromkeys(normalize_label(x) for x in row) if y not in pos]
                 for row, pos in zip(df.get_column("not_labels").to_list(), positives)]
    df = df.with_columns(pl.Series("labels", positives, dtype=pl.List(pl.String)),
                         pl.Series("not_labels", negatives, dtype=pl.List(pl.String)))
    if "id" not in df.columns:
        df = df.with_columns(pl.Series("id", [record_id(t) for t in df.get_column("text")]))
    ordered = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
    manifest = shards.read_manifest(path) if path.is_dir() else None
    return df.select(ordered).sort("id"), manifest


def _unit(seed: int, kind: str, key: str) -> float:
    """A stable number in [0, 1) for (seed, key): the same on every machine and Python run."""
    digest = hashlib.sha256(f"{seed}:{kind}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Splits:
    frames: dict[str, pl.DataFrame]
    held_out: list[str]
    distinct_labels: int


def assign_splits(df: pl.DataFrame, seed: int, validation: float, unseen_labels: float) -> Splits:
    """Split by id hash (validation) and by label hash (test: every record mentioning a held-out label).
    Labels must be normalized already (``load_records`` does it)."""
    label_sets = [set(pos) | set(neg) for pos, neg in zip(df.get_column("labels").to_list(),
                                                          df.get_column("not_labels").to_list())]
    distinct = sorted(set().union(*label_sets))
    held: set[str] = set()
    if unseen_labels > 0:
        held = {label for label in distinct if _unit(seed, "label", label) < unseen_labels}
        if not held:  # a small label set can miss the fraction entirely; hold out the one that came closest
            held = {min(distinct, key=lambda label: _unit(seed, "label", label))}
    ids = df.get_column("id").to_list()
    split = [
        "test" if labels & held else ("validation" if _unit(seed, "id", rid) < validation else "train")
        for rid, labels in zip(ids, label_sets)
    ]
    tagged = df.with_columns(pl.Series("__split", split))
    frames = {name: tagged.filter(pl.col("__split") == name).drop("__split") for name in SPLITS}
    frames = {name: frame for name, frame in frames.items() if frame.height}
    if "train" not in frames:
        counts = ", ".join(f"{name} {frame.height:,}" for name, frame in frames.items())
        raise UserError(f"no record is left for train ({counts}); use a smaller --unseen-labels or --validation")
    for name in ("train", "validation"):  # the zero-shot promise, checked on the data itself
        if name in frames and held:
            seen = {x for column in ("labels", "not_labels")
                    for x in frames[name].get_column(column).explode().drop_nulls().to_list()}
            if seen & held:
                raise AssertionError(f"held-out labels leaked into {name}: {sorted(seen & held)[:5]}")
    return Splits(frames, sorted(held), len(distinct))


# -- the folder ----------------------------------------------------------------------------------------


def _arrow(df: pl.DataFrame) -> pa.Table:
    """Plain string and list types: what ``datasets`` maps to ``Value('string')`` and ``List``."""
    table = df.to_arrow()
    fields = []
    for f in table.schema:
        kind = f.type
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            kind = pa.string()
        elif pa.types.is_large_list(kind) or pa.types.is_list_view(kind):
            value = kind.value_type
            if pa.types.is_large_string(value) or pa.types.is_string_view(value):
                value = pa.string()
            kind = pa.list_(value)
        fields.append(pa.field(f.name, kind))
    return table.cast(pa.schema(fields))


def _write_split(frame: pl.DataFrame, name: str, data_dir: Path, rows_per_file: int) -> list[str]:
    count = max(1, -(-frame.height // rows_per_file))
    names = []
    for index in range(count):
        part = frame.slice(index * rows_per_file, rows_per_file)
        file = f"{name}-{index:05d}-of-{count:05d}.parquet"
        pq.write_table(_arrow(part), data_dir / file, compression="zstd")
        names.append(f"data/{file}")
    return names


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
        held_out=splits.held_out,
        distinct_labels=splits.distinct_labels,
        stats=stats,
        axes=_axes(stats),
        buckets=[(name, stats["length_buckets"][name]) for name in LENGTH_BUCKETS if name in stats["length_buckets"]],
        generation=_generation(manifest),
        columns=[{"name": f.name, "type": str(f.type), "doc": COLUMN_DOCS.get(f.name, "")} for f in schema],
        example=json.dumps(example, ensure_ascii=False, indent=2),
    )


@dataclass
class Built:
    """A folder ready to upload, and what went into it."""

    folder: Path
    files: list[str]
    splits: dict[str, int]
    held_out: list[str]
    distinct_labels: int
    rows: int


def build_folder(settings: PushConfig, path: Path, folder: Path, on_step: Step = _quiet) -> Built:
    """Write the upload folder for the records under ``path`` into the empty folder ``folder``."""
    on_step(f"reading and validating {path}")
    df, manifest = load_records(path)
    splits = assign_splits(df, settings.split_seed, settings.validation, settings.unseen_labels)
    on_step(f"writing {df.height:,} records")
    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    files = {name: _write_split(frame, name, data_dir, settings.rows_per_file)
             for name, frame in splits.frames.items()}
    schema = pq.read_schema(folder / files["train"][0])
    card = render_card(settings, splits, files, dataset_stats(df, manifest), manifest, schema)
    (folder / "README.md").write_text(card, encoding="utf-8")
    return Built(folder=folder, files=["README.md"] + [f for names in files.values() for f in names],
                 splits={name: frame.height for name, frame in splits.frames.items()},
                 held_out=splits.held_out, distinct_labels=splits.distinct_labels, rows=df.height)


def _file_entries(built: Built) -> list[dict[str, Any]]:
    out = []
    for rel in built.files:
        data = (built.folder / rel).read_bytes()
        out.append({"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return out


def _summary(settings: PushConfig, built: Built, **extra: Any) -> dict[str, Any]:
    notes = []
    if settings.validation > 0 and "validation" not in built.splits:
        notes.append(f"no record fell in the validation fraction {settings.validation}; "
                     "there is no validation split")
    return {
        "repo_id": settings.repo_id,
        "rows": built.rows,
        "splits": built.splits,
        "split_seed": settings.split_seed,
        "validation": settings.validation,
        "unseen_labels": settings.unseen_labels,
        "distinct_labels": built.distinct_labels,
        "held_out_labels": built.held_out,
        "files": _file_entries(built),
        "notes": notes,
        **extra,
    }


def _source_dir(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def write_summary(path: Path, summary: dict[str, Any]) -> Path | None:
    """``push.json`` beside the shards; a read-only source folder only costs the file, not the push."""
    target = _source_dir(path) / SUMMARY_FILE
    try:
        target.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except OSError:
        return None
    return target


# -- dry run: the folder on disk ------------------------------------------------------------------------


def _is_push_folder(folder: Path) -> bool:
    """Only a folder this command wrote may be replaced: README.md and data/*.parquet, nothing else."""
    for item in folder.rglob("*"):
        rel = item.relative_to(folder).as_posix()
        if item.is_dir() and rel == "data":
            continue
        if item.is_file() and (rel == "README.md" or re.fullmatch(r"data/[^/]+\.parquet", rel)):
            continue
        return False
    return True


def default_folder(path: Path) -> Path:
    """``data`` (or a file in it) -> ``data-hub`` beside it: outside the shard folder, so never read as shards."""
    source = _source_dir(path).resolve()
    return source.with_name(f"{source.name}-hub")


def write_folder(settings: PushConfig, path: Path, dest: Path, on_step: Step = _quiet) -> dict[str, Any]:
    """``--dry-run`` / ``--to-folder``: exactly the folder an upload would send, and no network at all."""
    if not path.exists():
        raise UserError(f"{path} does not exist")
    source, target = _source_dir(path).resolve(), dest.resolve()
    if target == source or source in target.parents:
        raise UserError(f"--to-folder {dest} lies inside {source}; its Parquet files would be read as shards next time")
    if target in source.parents:
        raise UserError(f"--to-folder {dest} contains {path}; choose a folder outside the data")
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not _is_push_folder(target))):
        raise UserError(f"{dest} exists and is not a folder written by `gliznet-data push`; choose another --to-folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        built = build_folder(settings, path, staging, on_step)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    built.folder = target
    return _summary(settings, built, dry_run=True, folder=str(dest), commit=None, changed=None)


# -- upload ----------------------------------------------------------------------------------------


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` read now, as huggingface_hub reads it at import; so an in-process caller that sets it
    late (a test, a notebook) gets the same answer as a fresh process."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _first_line(exc: BaseException, secret: str | None) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    text = text.rstrip(".")
    return text.replace(secret, "***") if secret else text


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_network_error(exc: BaseException) -> bool:
    """Connection trouble from whichever HTTP stack huggingface_hub runs on (httpx, httpx2 or requests)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    network = {"TransportError", "ConnectionError", "Timeout", "ChunkedEncodingError"}
    return bool(names & network) and _status(exc) is None


def _from_the_hub(exc: BaseException) -> bool:
    """Failures that the user or the network can fix (a traceback is kept for anything else: a bug)."""
    return _status(exc) is not None or _is_network_error(exc) or isinstance(exc, (ValueError, OSError))


def _transient(exc: BaseException) -> bool:
    return _is_network_error(exc) or _status(exc) in _RETRY_STATUS


def _hub_error(exc: BaseException, doing: str, repo_id: str, endpoint: str, token: str | None) -> UserError:
    """One line that says what went wrong and what to do; never the token."""
    status = _status(exc)
    if status == 401:
        return UserError(f"the Hub at {endpoint} rejected the token (401) while {doing}; "
                         "set HF_TOKEN to a valid write token or run `hf auth login`")
    if status == 403:
        return UserError(f"no write access to dataset {repo_id} (403) while {doing}: it belongs to another user or "
                         "organisation, or the token cannot write there")
    if status == 404:
        return UserError(f"dataset {repo_id} not found at {endpoint} while {doing} (404)")
    if _is_network_error(exc):
        return UserError(f"cannot reach the Hub at {endpoint} while {doing}: {_first_line(exc, token)}")
    where = f"{status} " if status else ""
    return UserError(f"the Hub answered {where}while {doing}: {_first_line(exc, token)}")


def _token() -> str:
    from huggingface_hub import get_token

    try:
        token = get_token()
    except Exception as exc:  # e.g. an OIDC token exchange that failed
        raise UserError(f"cannot get a Hugging Face token: {_first_line(exc, None)}") from None
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token with write access)")
    return token


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _unchanged(remote: Any, data: bytes) -> bool:
    if remote is None:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == hashlib.sha256(data).hexdigest()
    return remote.blob_id == _git_blob_id(data)


def _commit_once(api: Any, settings: PushConfig, built: Built) -> dict[str, Any]:
    """Plan against the current head and commit the difference; safe to repeat after any failure."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.hf_api import RepoFile

    repo_id = settings.repo_id
    head = api.dataset_info(repo_id, revision="main").sha
    remote = {entry.path: entry for entry in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True,
                                                                 revision=head or "main")
              if isinstance(entry, RepoFile)}
    adds = [rel for rel in built.files if not _unchanged(remote.get(rel), (built.folder / rel).read_bytes())]
    deletes = sorted(p for p in remote if p.startswith("data/") and p not in built.files)
    if not adds and not deletes:
        return {"commit": head, "uploaded": [], "deleted": []}
    operations = [CommitOperationDelete(path_in_repo=p) for p in deletes] + [
        CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(built.folder / rel)) for rel in adds]
    counts = ", ".join(f"{name} {n:,}" for name, n in built.splits.items())
    info = api.create_commit(
        repo_id, operations, repo_type="dataset", parent_commit=head,
        commit_message=settings.commit_message or f"gliznet-data push: {built.rows:,} records ({counts})",
        commit_description=f"{len(adds)} file(s) written, {len(deletes)} deleted by gliznet-data push.",
    )
    return {"commit": info.oid, "uploaded": adds, "deleted": deletes}


def upload(settings: PushConfig, path: Path, on_step: Step = _quiet) -> dict[str, Any]:
    """Check the token, build the folder, create the repo if needed and commit what changed."""
    from huggingface_hub import HfApi

    if not settings.repo_id:
        raise UserError("--repo-id OWNER/NAME is required to push (or use --dry-run / --to-folder)")
    if not path.exists():
        raise UserError(f"{path} does not exist")
    repo_id, endpoint = settings.repo_id, hub_endpoint()
    token = _token()
    api = HfApi(endpoint=endpoint, token=token, library_name="gliznet")
    on_step(f"checking the token with {endpoint}")
    try:
        me = api.whoami()
    except Exception as exc:
        if not _from_the_hub(exc):
            raise
        raise _hub_error(exc, "checking the token", repo_id, endpoint, token) from None
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise UserError("the Hugging Face token is read-only; pushing needs a token with write access")

    with tempfile.TemporaryDirectory(prefix="gliznet-push-") as tmp:
        built = build_folder(settings, path, Path(tmp), on_step)
        raw = token.encode()
        for rel in built.files:  # belt and braces: the folder is built from data, never from the environment
            if raw in (built.folder / rel).read_bytes():
                raise UserError(f"refusing to upload: {rel} contains the Hugging Face token")
        on_step(f"creating or opening dataset {repo_id}")
        try:
            api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=True if settings.private else None)
            before = api.dataset_info(repo_id, revision="main")
        except Exception as exc:
            if not _from_the_hub(exc):
                raise
            raise _hub_error(exc, f"creating {repo_id}", repo_id, endpoint, token) from None

        attempts = 0
        retrying = Retrying(
            stop=stop_after_attempt(settings.retries),
            wait=wait_exponential(multiplier=settings.retry_wait, max=max(settings.retry_wait, 60.0)),
            retry=retry_if_exception(_transient),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    on_step(f"uploading to {repo_id}" + (f" (attempt {attempts})" if attempts > 1 else ""))
                    result = _commit_once(api, settings, built)
        except Exception as exc:
            if not _from_the_hub(exc):
                raise
            reason = _hub_error(exc, "committing", repo_id, endpoint, token)
            if _transient(exc):
                raise UserError(f"upload to {repo_id} failed after {attempts} attempt(s): {reason}; no local file "
                                "was changed and no commit was confirmed; run the same command again") from None
            raise reason from None
        summary = _summary(
            settings, built, dry_run=False, endpoint=endpoint, url=f"{endpoint}/datasets/{repo_id}",
            private=before.private, previous_commit=before.sha, commit=result["commit"],
            changed=result["commit"] != before.sha, uploaded=result["uploaded"], deleted=result["deleted"],
            attempts=attempts,
        )
        if settings.private and not before.private:
            summary["notes"].append(f"{repo_id} already existed as a public repo; --private only applies to a "
                                    "repo this push creates")
        return summary
