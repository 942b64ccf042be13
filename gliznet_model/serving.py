"""GliZNet over HTTP: a FastAPI app whose requests are gathered into micro-batches for one model worker.

One encoder pass scores all of a text's labels, so the model's cost is per text; concurrent requests are queued and
run together (at most `max_batch_size` texts, or whatever arrived within `max_wait_ms` of the first), which is what
makes throughput grow with concurrency instead of queueing behind one request at a time. The model runs in one
worker thread, so the event loop keeps accepting and answering requests while it computes.

Routes: POST /v1/classify (one text or a list; the zero-shot pipeline's output shape), POST / (the Hugging Face
Inference API's zero-shot-classification wire format, so `huggingface_hub.InferenceClient` works unchanged),
GET /health, GET /v1/model. Everything a client can get wrong answers 422 with a message; nothing it sends is a 500.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Union

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .outputs import Prediction
from .pipeline import activation_for, load_model, split_labels

Predict = Callable[[list[str], list[list[str]], str], list[Prediction]]


# ------------------------------------------------------------------------------------------------- settings
class Limits(BaseModel):
    """Per-request limits; a request over any of them answers 422 before it reaches the model."""

    model_config = ConfigDict(extra="forbid")

    max_texts: int = Field(64, ge=1, description="Texts per request")
    max_labels: int = Field(128, ge=1, description="Candidate labels per text")
    max_chars: int = Field(10_000, ge=1, description="Characters per text")
    max_label_chars: int = Field(200, ge=1, description="Characters per label")

    def max_body_bytes(self) -> int:
        """A body larger than the biggest valid request (JSON escapes included) is refused unread."""
        per_text = 6 * self.max_chars + self.max_labels * (6 * self.max_label_chars + 8) + 64
        return 65_536 + self.max_texts * per_text


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(16, ge=1, description="Most texts one model call gathers")
    max_wait_ms: float = Field(100.0, ge=0, le=10_000, description="Longest a request waits for others to join")
    limits: Limits = Field(default_factory=Limits)


# ------------------------------------------------------------------------------------------- wire formats
LabelsField = Union[str, list[str], list[list[str]]]


class ClassifyRequest(BaseModel):
    """One text or a list; one label list for all texts or one per text (a string is comma-separated)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"inputs": "The striker scored twice in the derby.", "candidate_labels": ["sports", "politics", "finance"],
         "multi_label": False}]})

    inputs: Union[str, list[str]] = Field(description="A text, or a list of texts")
    candidate_labels: LabelsField = Field(description="Labels for every text, or one list per text")
    multi_label: bool = Field(False, description="Independent sigmoid scores; otherwise scores sum to 1 per text")
    threshold: float | None = Field(None, ge=0.0, le=1.0, description="Also list the labels scoring at least this")

    @field_validator("inputs")
    @classmethod
    def _texts(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("inputs is an empty list: give at least one text")
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"text {i} is empty")
        return value

    @field_validator("candidate_labels")
    @classmethod
    def _labels(cls, value: LabelsField) -> list[str] | list[list[str]]:
        if isinstance(value, list) and value and all(isinstance(x, list) for x in value):
            return [split_labels(labels) for labels in value]
        return split_labels(value)

    def pairs(self) -> tuple[list[str], list[list[str]]]:
        texts = [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)
        labels = self.candidate_labels
        if labels and isinstance(labels[0], list):
            if len(labels) != len(texts):
                raise _invalid(("body", "candidate_labels"),
                               f"got {len(labels)} label lists for {len(texts)} texts: give one list for all texts "
                               "or one per text")
            return texts, [list(x) for x in labels]
        return texts, [list(labels)] * len(texts)


class ClassifyResult(BaseModel):
    """The zero-shot-classification pipeline's output for one text, labels sorted by score."""

    sequence: str
    labels: list[str]
    scores: list[float]
    predicted: list[str] | None = Field(None, description="Labels scoring at least `threshold` (when given)")


class HFParameters(BaseModel):
    model_config = ConfigDict(extra="ignore")  # other clients' extra parameters are not errors

    candidate_labels: Union[str, list[str]]
    multi_label: bool = False
    hypothesis_template: str | None = Field(None, description="Accepted and not used: GliZNet reads the labels")

    @field_validator("candidate_labels")
    @classmethod
    def _labels(cls, value: str | list[str]) -> list[str]:
        return split_labels(value)


class HFRequest(BaseModel):
    """The Hugging Face Inference API's zero-shot-classification request."""

    model_config = ConfigDict(extra="ignore")

    inputs: str
    parameters: HFParameters

    @field_validator("inputs")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("inputs is empty")
        return value


class HFLabelScore(BaseModel):
    label: str
    score: float


def _invalid(loc: tuple, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message}])


def check_limits(texts: Sequence[str], labels_list: Sequence[Sequence[str]], limits: Limits, lab_token: str,
                 text_loc: tuple = ("body", "inputs"), labels_loc: tuple = ("body", "candidate_labels")) -> None:
    """Raise a 422 naming the first text or label over a limit (or holding the model's reserved [LAB] token)."""
    if len(texts) > limits.max_texts:
        raise _invalid(text_loc, f"{len(texts)} texts; at most {limits.max_texts} per request")
    for i, (text, labels) in enumerate(zip(texts, labels_list)):
        if len(text) > limits.max_chars:
            raise _invalid((*text_loc, i), f"text {i} has {len(text)} characters; at most {limits.max_chars}")
        if lab_token in text:
            raise _invalid((*text_loc, i), f"text {i} contains the reserved token {lab_token}")
        if len(labels) > limits.max_labels:
            raise _invalid(labels_loc, f"text {i} has {len(labels)} labels; at most {limits.max_labels}")
        for label in labels:
            if len(label) > limits.max_label_chars:
                raise _invalid(labels_loc, f"label {label[:40]!r}... has {len(label)} characters; at most "
                                           f"{limits.max_label_chars}")
            if lab_token in label:
                raise _invalid(labels_loc, f"label {label!r} contains the reserved token {lab_token}")


# ------------------------------------------------------------------------------------------- micro-batching
@dataclass
class _Job:
    texts: list[str]
    labels: list[list[str]]
    activation: str
    future: asyncio.Future


@dataclass
class BatchStats:
    requests: int = 0
    texts: int = 0
    batches: int = 0
    largest_batch: int = 0
    batch_sizes: collections.Counter = field(default_factory=collections.Counter)


class MicroBatcher:
    """An asyncio queue in front of one model worker thread.

    The worker takes the first waiting request, then keeps taking requests until the batch holds `max_batch_size`
    texts or `max_wait_ms` have passed since it started gathering; a request that would overflow the batch opens
    the next one. Requests that arrive while the model computes are waiting when it finishes, so under load batches
    fill at once; the wait only bridges the moment when answered clients are sending their next requests. It ends
    as soon as as many requests have joined as took part in the last round (the batch plus those that queued while
    it ran), so a lone client pays no batching delay and a few clients do not wait for a full batch, and it never
    exceeds half the model's recent time per batch.
    Requests with multi_label and without read different heads and run as separate calls.
    """

    def __init__(self, predict: Predict, max_batch_size: int, max_wait_ms: float) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.stats = BatchStats()
        self._pending: collections.deque[_Job] = collections.deque()
        self._compute_seconds = 2 * self.max_wait  # a running average of model time per batch; no cap until known
        self._arrived = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._arrived = asyncio.Event()  # bound to the loop that runs the app (a restarted app gets a new one)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gliznet-model")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gliznet-batcher")

    async def stop(self) -> None:
        """Finish what is queued, then stop the worker."""
        while self._pending and self._task is not None and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, texts: list[str], labels: list[list[str]], activation: str) -> list[Prediction]:
        if self._task is None or self._task.done():
            raise RuntimeError("the model worker is not running")
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(texts, labels, activation, future))
        self._arrived.set()
        return await future

    async def _next_job(self, timeout: float | None) -> _Job | None:
        # The deque is the source of truth, so a missed or stale event only costs one more look.
        while not self._pending:
            self._arrived.clear()
            if timeout is None:
                await self._arrived.wait()
                continue
            if timeout <= 0:
                return None
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except TimeoutError:
                return None
        return self._pending.popleft()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        carried: _Job | None = None
        expected = 1  # requests that took part in the last round: the clients likely to send again
        while True:
            first = carried or await self._next_job(None)
            carried = None
            batch, size = [first], len(first.texts)
            # Never wait longer than half of what a batch takes to compute: filling a batch pays off only while
            # the wait is small beside the model's time (milliseconds on a GPU, hundreds on a CPU).
            deadline = loop.time() + min(self.max_wait, 0.5 * self._compute_seconds)
            while size < self.max_batch_size:
                # Wait (up to max_wait) only while fewer requests than last round's have joined; past that, take
                # only what is already queued. A lone client therefore never waits.
                job = await self._next_job(deadline - loop.time() if len(batch) < expected else 0.0)
                if job is None:
                    break
                if size + len(job.texts) > self.max_batch_size:
                    carried = job
                    break
                batch.append(job)
                size += len(job.texts)
            started = loop.time()
            await self._execute(batch, size)
            self._compute_seconds = 0.8 * self._compute_seconds + 0.2 * (loop.time() - started)
            expected = len(batch) + len(self._pending) + (carried is not None)

    async def _execute(self, batch: list[_Job], size: int) -> None:
        stats = self.stats
        stats.batches += 1
        stats.requests += len(batch)
        stats.texts += size
        stats.largest_batch = max(stats.largest_batch, size)
        stats.batch_sizes[size] += 1
        groups: dict[str, list[_Job]] = {}
        for job in batch:
            groups.setdefault(job.activation, []).append(job)
        for activation, jobs in groups.items():
            await self._run_group(activation, jobs)

    async def _run_group(self, activation: str, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        texts = [t for job in jobs for t in job.texts]
        labels = [x for job in jobs for x in job.labels]
        try:
            predictions = await loop.run_in_executor(self._executor, self._predict, texts, labels, activation)
        except Exception as exc:
            if len(jobs) > 1 and isinstance(exc, ValueError):
                for job in jobs:  # one request's bad input must not fail the others batched with it
                    await self._run_group(activation, [job])
                return
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            if not job.future.done():  # the client may have gone away
                job.future.set_result(predictions[start : start + len(job.texts)])
            start += len(job.texts)


# -------------------------------------------------------------------------------------------------- the app
def _result(prediction: Prediction, threshold: float | None) -> ClassifyResult:
    labels = [s.label for s in prediction.labels]
    scores = [s.score for s in prediction.labels]
    predicted = None if threshold is None else [l for l, s in zip(labels, scores) if s >= threshold]
    return ClassifyResult(sequence=prediction.text, labels=labels, scores=scores, predicted=predicted)


class _BodyLimit:
    """Refuse (413) a body whose declared length is over what any valid request needs, before reading it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                    response = JSONResponse({"error": f"request body over {self.max_bytes} bytes"}, status_code=413)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(model: Any, tokenizer: Any, settings: ServerSettings | None = None,
               name: str | None = None) -> FastAPI:
    """The FastAPI app around a loaded GliZNet model; the micro-batcher starts and stops with its lifespan."""
    settings = settings or ServerSettings()
    limits = settings.limits

    def predict(texts: list[str], labels: list[list[str]], activation: str) -> list[Prediction]:
        return model.predict_batch(texts, labels, tokenizer, batch_size=settings.max_batch_size,
                                   activation=activation)

    batcher = MicroBatcher(predict, settings.max_batch_size, settings.max_wait_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="GliZNet", summary="One-pass zero-shot text classification", version="1",
                  lifespan=lifespan)
    app.state.batcher = batcher
    app.state.settings = settings
    app.add_middleware(_BodyLimit, max_bytes=limits.max_body_bytes())

    async def classify(texts: list[str], labels: list[list[str]], multi_label: bool) -> list[Prediction]:
        # Split by head: a one-label text is scored independently even without multi_label (as the pipeline does).
        by_activation: dict[str, list[int]] = {}
        for i, x in enumerate(labels):
            by_activation.setdefault(activation_for(multi_label, len(x)), []).append(i)
        out: list[Prediction | None] = [None] * len(texts)
        calls = [batcher.submit([texts[i] for i in rows], [labels[i] for i in rows], activation)
                 for activation, rows in by_activation.items()]
        for rows, predictions in zip(by_activation.values(), await asyncio.gather(*calls)):
            for i, prediction in zip(rows, predictions):
                out[i] = prediction
        return out

    async def run(texts: list[str], labels: list[list[str]], multi_label: bool,
                  loc: tuple) -> list[Prediction] | JSONResponse:
        try:
            return await classify(texts, labels, multi_label)
        except ValueError as exc:  # the tokenizer's checks: still the client's input
            raise _invalid(loc, str(exc)) from None
        except Exception as exc:  # the model failed: say so, do not pretend the input was bad
            return JSONResponse({"error": f"model error: {type(exc).__name__}: {exc}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path == "/":  # the Inference API's error shape: {"error": "..."}
            messages = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in exc.errors()]
            return JSONResponse({"error": "; ".join(messages)}, status_code=422)
        return await request_validation_exception_handler(request, exc)

    @app.post("/v1/classify", response_model=Union[ClassifyResult, list[ClassifyResult]],
              response_model_exclude_none=True)
    async def classify_route(request: ClassifyRequest) -> Any:
        """Score the candidate labels of one text (an object back) or of a list of texts (a list back)."""
        texts, labels = request.pairs()
        check_limits(texts, labels, limits, tokenizer.lab_token)
        predictions = await run(texts, labels, request.multi_label, ("body", "inputs"))
        if isinstance(predictions, JSONResponse):
            return predictions
        results = [_result(p, request.threshold) for p in predictions]
        return results[0] if isinstance(request.inputs, str) else results

    @app.post("/", response_model=list[HFLabelScore])
    async def inference_api(request: HFRequest) -> Any:
        """The Hugging Face Inference API zero-shot-classification format: `{"inputs", "parameters":
        {"candidate_labels", "multi_label", "hypothesis_template"}}` in, `[{"label", "score"}]` out, sorted."""
        labels = request.parameters.candidate_labels
        check_limits([request.inputs], [labels], limits, tokenizer.lab_token,
                     labels_loc=("body", "parameters", "candidate_labels"))
        predictions = await run([request.inputs], [labels], request.parameters.multi_label, ("body", "inputs"))
        if isinstance(predictions, JSONResponse):
            return predictions
        return [{"label": s.label, "score": s.score} for s in predictions[0].labels]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, queue depth and batching counters."""
        stats = batcher.stats
        return {"status": "ok", "queued": batcher.queued, "requests": stats.requests, "texts": stats.texts,
                "batches": stats.batches, "largest_batch": stats.largest_batch,
                "mean_batch": stats.texts / stats.batches if stats.batches else 0.0,
                "batch_sizes": {str(k): v for k, v in sorted(stats.batch_sizes.items())}}

    info = model_info(model, name, settings)

    @app.get("/v1/model")
    async def model_route() -> dict[str, Any]:
        """The model's name, backbone, configuration, limits and batching settings."""
        return info

    return app


def model_info(model: Any, name: str | None, settings: ServerSettings) -> dict[str, Any]:
    config = model.config.to_dict()
    encoder = config.pop("encoder_config", None) or {}
    config = {k: v for k, v in config.items() if not k.startswith("_") and k not in ("id2label", "label2id")}
    return {
        "name": name or getattr(model, "name_or_path", None) or "gliznet",
        "backbone": model.config.encoder_name_or_path,
        "backbone_type": encoder.get("model_type"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": str(model.device),
        "config": config,
        "limits": settings.limits.model_dump(),
        "batching": {"max_batch_size": settings.max_batch_size, "max_wait_ms": settings.max_wait_ms},
    }


def check_port(host: str, port: int) -> None:
    """Fail before loading the model when the address cannot be listened on (in use, not this machine's)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"cannot listen on {host}:{port}: {reason}") from None


def serve(model_path: str, host: str = "127.0.0.1", port: int = 8000, device: str | None = None,
          settings: ServerSettings | None = None, log_level: str = "info", threads: int | None = None) -> None:
    """Load the model and run the app under uvicorn until SIGINT/SIGTERM; requests in flight are finished first.

    `threads` caps torch's CPU threads: on a small or shared machine one model thread beside the event loop can beat
    threads that wait on each other for cores."""
    import uvicorn

    check_port(host, port)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    settings = settings or ServerSettings()
    model, tokenizer = load_model(model_path, device)
    app = create_app(model, tokenizer, settings, name=model_path)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=60,
                            access_log=False)
    # uvicorn shuts down gracefully, then re-raises the signal it caught; a finished shutdown then exits with
    # status 0 (SIGTERM) or 130 (Ctrl-C) instead of dying of the signal or printing a KeyboardInterrupt.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    uvicorn.Server(config).run()
