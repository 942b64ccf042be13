"""The orchestrator: draws -> prompts -> provider -> parse -> validate -> shards.

Request indices are sent in order, skipping those a previous run already flushed, at most
``concurrency`` at a time and only as many as the records still missing need. Valid records
collect in a buffer that becomes a shard every ``shard_size`` records or ``flush_seconds``; the
manifest, written after each shard, records which requests are done. A crash therefore loses at
most the unflushed buffer and the requests in flight, and rerunning the same command redoes
exactly those. The output folder is locked (``folder_lock``) for the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import shards
from .budget import FailureBudget, FailureBudgetSpent
from .diversity import DiversitySampler, Draw, merge_weights, with_bundle_share
from .errors import UserError
from .folder_lock import FolderLock
from .prompting import Prompts, archived_dir, default_weights, prompts_dir, reply_schema
from .providers import Completion, ProviderSettings, RetryPolicy, provider_class
from .records import Record, ValidationLimits, validate_reply
from .replies import ParsedReply, parse_reply

MANIFEST_FORMAT = "gliznet-data/1"


class GenerateConfig(BaseModel):
    """Everything ``gliznet-data generate`` can be told (flags or the config's ``generate:`` section)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = "groq"
    model: str | None = Field(None, description="default: the provider's default model")
    n: int = Field(1000, gt=0, description="valid, unique records to produce")
    output: Path = Path("data")
    seed: int = 0
    concurrency: int = Field(16, ge=1)
    examples_per_request: int = Field(5, ge=1, le=50)
    temperature: float = Field(0.9, ge=0, le=2)
    max_tokens: int = Field(4096, ge=64)
    timeout: float = Field(60.0, gt=0)
    rpm: float | None = Field(None, gt=0)
    tpm: float | None = Field(None, gt=0)
    json_mode: Literal["schema", "object"] | None = None
    retry: RetryPolicy = RetryPolicy()
    max_consecutive_failures: int = Field(20, ge=1, description="stop once this many requests in a row "
                                          "yielded no valid record")
    failure_window: int = Field(100, ge=1, description="the last requests max_failure_share is measured over")
    max_failure_share: float = Field(0.8, gt=0, le=1, description="stop once this share of the last "
                                     "failure_window requests yielded no valid record")
    shard_size: int = Field(1000, ge=1)
    flush_seconds: float = Field(30.0, gt=0)
    limits: ValidationLimits = ValidationLimits()
    diversity: dict[str, dict[Any, float]] = Field(default_factory=dict)
    bundle_share: float | None = Field(None, ge=0, le=1, description="share of cross-role bundle requests; "
                                       "sets the diversity table's request_mode (default there: 0.3)")
    price_input_per_mtok: float | None = Field(None, ge=0, description="USD per million prompt tokens")
    price_output_per_mtok: float | None = Field(None, ge=0, description="USD per million completion tokens")

    def provider_settings(self, default_model: str) -> ProviderSettings:
        return ProviderSettings(
            model=self.model or default_model, temperature=self.temperature, max_tokens=self.max_tokens,
            timeout=self.timeout, connections=self.concurrency, rpm=self.rpm, tpm=self.tpm, json_mode=self.json_mode, retry=self.retry,
        )


class Progress(BaseModel):
    target: int
    valid: int
    rejected: int
    requests: int
    tokens: int
    retries: int


class RunState:
    """The records and counters of one output folder, persisted through shards and the manifest."""

    def __init__(self, config: GenerateConfig, fingerprint: dict[str, Any], capped: bool = True,
                 command: str = "gliznet-data generate"):
        """``capped``: stop accepting records at ``config.n`` (a live run); a batch ingest takes all.
        The folder stays locked against other runs until ``finish()``."""
        self.config = config
        self.capped = capped
        self.dir = config.output
        self.fingerprint = fingerprint
        self.lock = FolderLock(self.dir, command).acquire()  # also proves the folder writable, before any request
        try:
            self._load()
        except BaseException:
            self.lock.release()
            raise

    def _load(self) -> None:
        manifest = shards.read_manifest(self.dir) or {}
        fingerprint = self.fingerprint
        if manifest and manifest.get("fingerprint") != fingerprint:
            changed = sorted(k for k in fingerprint if manifest.get("fingerprint", {}).get(k) != fingerprint[k])
            raise UserError(
                f"{self.dir} holds a run with other settings ({', '.join(changed)}); "
                "use another --output or the original settings to resume")
        shards.remove_partial_files(self.dir)
        ids = shards.existing_ids(self.dir)
        self.ids: set[str] = set(ids)
        if len(self.ids) != len(ids):
            raise UserError(f"{self.dir} holds duplicate record ids; it was not written by gliznet-data")
        self.done: set[int] = shards.expand_ranges(manifest.get("requests_done", []))
        counts = manifest.get("counts", {})
        self.requests = counts.get("requests", 0)
        self.examples_returned = counts.get("examples_returned", 0)
        self.examples_missing = counts.get("examples_missing", 0)
        self.retries = counts.get("retries", 0)
        self.failed_requests = counts.get("failed_requests", 0)
        self.labels_dropped = counts.get("cross_role_labels_dropped", 0)
        self.rejects: Counter[str] = Counter(manifest.get("rejects", {}))
        tokens = manifest.get("tokens", {})
        self.prompt_tokens = tokens.get("prompt", 0)
        self.completion_tokens = tokens.get("completion", 0)
        self.elapsed_before = manifest.get("duration_seconds", 0.0)
        self.created_at = manifest.get("created_at") or datetime.now(timezone.utc).isoformat()
        self.started = time.monotonic()
        self.last_flush = self.started
        self.buffer: list[Record] = []
        self.pending: set[int] = set()
        self.status = "running"
        self.stop_reason: str | None = None  # one line: why a run ended other than complete

    @property
    def valid(self) -> int:
        return len(self.ids)

    @property
    def full(self) -> bool:
        return self.capped and self.valid >= self.config.n

    def add_reply(self, draw: Any, completion: Completion, provenance: dict[str, Any],
                  parsed: ParsedReply | None = None, expected: int | None = None) -> int:
        """Parse, validate and buffer one reply; flush when the buffer is due. Returns the records kept.

        ``parsed``/``expected``: the reply's items as the plan read them (``annotate`` joins each label
        set to its text) and how many its request asked for; by default the reply is parsed here and
        ``examples_per_request`` were asked for."""
        parsed_examples, broken = parsed if parsed is not None else parse_reply(completion.content)
        self.requests += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.examples_returned += len(parsed_examples)
        asked = self.config.examples_per_request if expected is None else expected
        self.examples_missing += max(0, asked - len(parsed_examples) - broken)
        if broken:
            self.rejects["broken_json"] += broken
        kept = 0
        if not self.full:  # surplus beyond N is neither kept nor a reject
            check = validate_reply(parsed_examples, provenance, bundle=draw.request_mode == "bundle",
                                   limits=self.config.limits, known_ids=self.ids,
                                   room=self.config.n - self.valid if self.capped else None)
            self.rejects.update(check.rejects)
            self.labels_dropped += check.labels_dropped
            self.ids.update(record.id for record in check.records)
            self.buffer.extend(check.records)
            kept = len(check.records)
        if self.answered(draw):
            self.pending.add(draw.index)
        if len(self.buffer) >= self.config.shard_size or time.monotonic() - self.last_flush >= self.config.flush_seconds:
            self.flush()
        return kept

    def answered(self, draw: Any) -> bool:
        """Whether a request is done once its reply is in, so a rerun skips it: always, for drawn requests
        (``annotate`` keeps a request whose texts exact N left unlabelled for the next, larger run)."""
        return True

    def flush(self) -> None:
        """Commit the buffer as a shard, then the manifest that marks its requests done.

        A shard that cannot be written (a full disk) loses only the buffer: its records leave the
        counts and its requests stay undone, so a rerun redoes them; the manifest is still written
        (the failed shard's space is freed first) so that it says why the run stopped."""
        if self.buffer:
            try:
                shards.write_shard(self.dir, self.buffer)
            except OSError as exc:
                self.ids.difference_update(record.id for record in self.buffer)
                self.buffer, self.pending = [], set()
                self.status = "failed"
                self.stop_reason = f"cannot write a shard in {self.dir}: {exc.strerror or exc}"
                with contextlib.suppress(UserError):  # the shard's failure is the one to report
                    self.write_manifest()
                raise UserError(f"{self.stop_reason}; the work saved before is kept, free space and run the "
                                "same command again") from None
        self.done |= self.pending
        self.buffer, self.pending = [], set()
        self.last_flush = time.monotonic()
        self.write_manifest()

    def write_manifest(self) -> None:
        try:
            shards.write_manifest(self.dir, self.manifest())
        except OSError as exc:
            raise UserError(f"cannot write {self.dir / shards.MANIFEST}: {exc.strerror or exc}") from None

    def finish(self, status: str, reason: str | None = None) -> None:
        """The last flush: record how the run ended, and unlock the folder. Called from error paths,
        so a second failure while writing never hides the first."""
        if self.status == "running" or status == "complete":
            self.status, self.stop_reason = status, reason
        try:
            self.flush()
        except UserError:
            if status == "complete":
                raise
        finally:
            self.lock.release()

    def progress(self) -> Progress:
        return Progress(target=self.config.n, valid=self.valid, rejected=sum(self.rejects.values()),
                        requests=self.requests, tokens=self.prompt_tokens + self.completion_tokens,
                        retries=self.retries)

    def manifest(self) -> dict[str, Any]:
        cfg = self.config
        cost = None
        if cfg.price_input_per_mtok is not None and cfg.price_output_per_mtok is not None:
            cost = round((self.prompt_tokens * cfg.price_input_per_mtok
                          + self.completion_tokens * cfg.price_output_per_mtok) / 1e6, 6)
        return {
            "format": MANIFEST_FORMAT,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "fingerprint": self.fingerprint,
            "config": cfg.model_dump(mode="json"),
            "counts": {
                "records": self.valid - len(self.buffer),
                "requests": self.requests,
                "examples_returned": self.examples_returned,
                "examples_missing": self.examples_missing,
                "rejected": sum(self.rejects.values()),
                "retries": self.retries,
                "failed_requests": self.failed_requests,
                "cross_role_labels_dropped": self.labels_dropped,
            },
            "rejects": dict(sorted(self.rejects.items())),
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens,
                       "total": self.prompt_tokens + self.completion_tokens},
            "cost_usd": cost,
            "duration_seconds": round(self.elapsed_before + time.monotonic() - self.started, 3),
            "shards": [p.name for p in sorted(self.dir.glob(shards.SHARD_GLOB))],
            "requests_done": shards.compress_ranges(self.done),
            "created_at": self.created_at,
            "updated_at": datetime.now(timezone.utc).isoformat(),
        }


class Plan:
    """What a run asks for: the templates, the sampler and the provider settings of one config.
    The live route (``generate``) and the batch route (``batch``) both build requests from it.

    ``prompt_version`` selects an archived template set (and the diversity table it drew from)
    instead of the current one: how batch results rendered before an upgrade are re-drawn.
    """

    def __init__(self, config: GenerateConfig, prompt_version: str | None = None):
        self.config = config
        directory = None
        if prompt_version is not None and prompt_version != Prompts().version:
            directory = archived_dir(prompt_version)
            if directory is None:
                raise UserError(f"prompt version {prompt_version} is neither these prompts ({Prompts().version}) "
                                f"nor one archived under {prompts_dir() / 'archive'}")
        self.prompts = Prompts(directory)
        self.weights = merge_weights(default_weights(directory),
                                     with_bundle_share(config.diversity, config.bundle_share))
        self.sampler = DiversitySampler(self.weights, config.seed, config.examples_per_request)
        self.provider_cls = provider_class(config.provider)
        self.settings = config.provider_settings(self.provider_cls.default_model)

    size: int | None = None  # requests in the plan; None: the sampler draws for ever

    def request(self, index: int) -> tuple[Draw, list[dict[str, str]]]:
        draw = self.sampler.draw(index)
        return draw, self.prompts.render(draw, self.config.examples_per_request)

    def parse(self, draw: Draw, content: str) -> tuple[ParsedReply, int]:
        """The examples a reply holds, and how many its request asked for."""
        return parse_reply(content), self.config.examples_per_request

    @staticmethod
    def schema(draw: Draw) -> dict[str, Any]:
        """The reply schema the request of ``draw`` is sent with."""
        return reply_schema(draw)

    def fingerprint(self, provider: str | None = None, model: str | None = None) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        return {
            "provider": provider or self.provider_cls.name, "model": model or self.settings.model,
            "seed": self.config.seed, "prompt_version": self.prompts.version,
            "examples_per_request": self.config.examples_per_request,
            "diversity": hashlib.sha256(json.dumps(self.weights, sort_keys=True, default=str).encode()).hexdigest()[:12],
            "limits": self.config.limits.model_dump(),
        }

    def provenance(self, draw: Draw, provider: str | None = None, model: str | None = None) -> dict[str, Any]:
        return draw.model_dump(include={"domain", "task_type", "length_bucket", "genre", "tone",
                                        "label_granularity", "request_mode"}) | {
            "request_index": draw.index,
            "provider": provider or self.provider_cls.name, "model": model or self.settings.model,
            "prompt_version": self.prompts.version, "seed": self.config.seed, "created_at": datetime.now(timezone.utc),
        }


async def generate(config: GenerateConfig, on_progress: Callable[[Progress], None] | None = None,
                   on_retry: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) a generation into ``config.output``; returns the final manifest.

    A request is sent only while the requests in flight, at ``k`` records each, do not already cover
    what is missing of N, and at most ``concurrency`` at a time; so ``--n 5`` sends one request, and a
    huge ``--concurrency`` renders and sends only what is needed. ``on_retry`` gets one line per wave
    of retries. The failure budget (``FailureBudget``) stops a run whose replies yield nothing.
    """
    plan = Plan(config)
    # The provider is built first so that a missing key fails before anything is written.
    provider = plan.provider_cls(plan.settings)
    provider.on_retry = on_retry
    try:
        state = RunState(config, plan.fingerprint())
    except BaseException:
        await provider.aclose()
        raise
    return await run_requests(plan, state, provider, on_progress)


async def run_requests(plan: Any, state: RunState, provider: Any,
                       on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """The live loop of every route that sends its own requests (``generate``, ``annotate``); returns
    the final manifest, and closes the provider and finishes the state however it ends.

    ``plan`` gives ``request(i)``, ``schema(draw)``, ``parse(draw, content)``, ``provenance(draw)`` and
    ``size`` (None: endless); the requests ``state`` has not done are sent in order until it is full
    or none is left."""
    config = state.config
    indices = itertools.count() if plan.size is None else range(plan.size)
    todo = (i for i in indices if i not in state.done)
    budget = FailureBudget(config.max_consecutive_failures, config.failure_window, config.max_failure_share)
    retries_before = state.retries

    async def request(index: int) -> None:
        draw, messages = plan.request(index)
        completion = await provider.complete(messages, plan.schema(draw))
        state.retries = retries_before + provider.retries
        parsed, expected = plan.parse(draw, completion.content)
        kept = state.add_reply(draw, completion, plan.provenance(draw), parsed, expected)
        if on_progress:
            on_progress(state.progress())
        if not state.full:
            budget.record(kept, state.rejects)

    if on_progress:
        on_progress(state.progress())
    in_flight: set[asyncio.Task] = set()
    status, reason = "failed", None
    left = True  # whether the plan has requests not yet sent
    try:
        while not state.full:
            while (left and len(in_flight) < config.concurrency
                   and state.valid + len(in_flight) * config.examples_per_request < config.n):
                index = next(todo, None)
                if index is None:
                    left = False
                else:
                    in_flight.add(asyncio.create_task(request(index)))
            if not in_flight:
                break  # a finite plan is spent
            finished, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            # A fatal provider error, a spent failure budget or a full disk surfaces here; every finished
            # task's error is read, so none is reported later as "never retrieved".
            errors = [task.exception() for task in finished if not task.cancelled() and task.exception()]
            if errors:
                raise errors[0]
        status = "complete"
    except FailureBudgetSpent as exc:
        status, reason = "stopped", str(exc)
        raise
    except asyncio.CancelledError:
        status, reason = "interrupted", "interrupted"
        raise
    except UserError as exc:
        reason = str(exc)
        raise
    except BaseException as exc:
        reason = type(exc).__name__
        raise
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        await provider.aclose()
        state.finish(status, reason)
    return state.manifest()
