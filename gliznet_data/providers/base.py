"""One small async interface over LLM services: chat messages and a JSON schema in, text and
token counts out. Retries, rate limits and failure policy live here once for every service."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from ..errors import UserError

T = TypeVar("T")


class Completion(BaseModel):
    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(8, ge=1, description="tries per request, the first included")
    initial_wait: float = Field(1.0, ge=0, description="scale of the backoff: a random wait up to initial * 2**retry")
    max_wait: float = Field(60.0, ge=0, description="cap on one wait, also on a server's retry-after")


class ProviderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    temperature: float = 0.9
    max_tokens: int = 4096
    timeout: float = Field(60.0, gt=0, description="seconds per request")
    connections: int = Field(16, ge=1, description="HTTP connections kept open: the run's concurrency")
    rpm: float | None = Field(None, gt=0, description="requests per minute")
    tpm: float | None = Field(None, gt=0, description="tokens per minute (prompt + completion)")
    json_mode: Literal["schema", "object"] | None = Field(
        None, description="'schema' (structured output) or 'object' (JSON mode); None: the provider's default")
    retry: RetryPolicy = RetryPolicy()


def connection_limits(settings: ProviderSettings) -> httpx.Limits:
    """One kept-alive connection per request in flight: the SDKs' defaults keep only 20 alive, so
    higher concurrency would reconnect (and redo TLS) on most requests."""
    return httpx.Limits(max_connections=settings.connections, max_keepalive_connections=settings.connections)


# Both SDKs speak through httpx. httpx's own connection pool spends time quadratic in the number of
# open connections on every request (a few ms each at 64), so the SDKs get aiohttp's pool behind
# httpx's interface instead: groq ships this as DefaultAioHttpClient (its `aiohttp` extra).


def failed_to_connect(exc: BaseException) -> bool:
    """Whether a transport error means no connection was made (refused, unresolvable, connect
    timeout). The aiohttp transport reports a refused connection as a connect *timeout*, so the
    cause chain is checked rather than the outer type."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionRefusedError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Retryable(Exception):
    """A transient failure: 429, 5xx, a timeout, a dropped connection."""

    def __init__(self, message: str, retry_after: float | None = None, connect: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.connect = connect


class ProviderError(UserError):
    """A failure that retrying cannot fix: bad key, bad request, unknown model, dead server."""


def parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from these services, fall back to backoff


class _WaitRetryAfter:
    """Backoff with jitter, unless the server said how long to wait."""

    def __init__(self, policy: RetryPolicy):
        self.cap = policy.max_wait
        # Full jitter: a random wait up to initial * 2**attempt, so parallel workers do not retry in step.
        self.backoff = wait_random_exponential(multiplier=policy.initial_wait, max=policy.max_wait)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap)
        return self.backoff(state)


class Pacer:
    """Spaces uses of a per-minute budget evenly: a use starts once the span reserved by the previous
    one has passed, then reserves ``cost * 60 / per_minute`` seconds. Idle time earns no credit, so no
    burst ever beats the rate, whatever the rate (30 rpm is one request every 2 s); and since a use
    reserves only when it starts, a cost learned later (``adjust``) moves every later start."""

    def __init__(self, per_minute: float):
        self.seconds_per_unit = 60.0 / per_minute
        self._next = 0.0  # event-loop time at which the next use may start

    async def acquire(self, cost: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        while (wait := self._next - loop.time()) > 0:
            await asyncio.sleep(wait)  # then look again: an adjustment may have moved the start
        self._next = max(loop.time(), self._next) + cost * self.seconds_per_unit

    def adjust(self, cost: float) -> None:
        """Charge (or refund) ``cost`` units without waiting, once a use's true cost is known; a refund
        never moves the schedule before now, so it cannot turn into a burst."""
        now = asyncio.get_running_loop().time()
        self._next = max(now, self._next + cost * self.seconds_per_unit) if cost < 0 else (
            max(now, self._next) + cost * self.seconds_per_unit)


def estimated_tokens(messages: list[dict[str, str]]) -> int:
    """About four characters a token: what a prompt is charged before the service counts it."""
    return sum(len(m["content"]) for m in messages) // 4


RETRY_NOTE_SECONDS = 5.0  # retries of one kind within this long make one wave, reported in one line


def _retry_kind(exc: BaseException | None) -> str:
    """The error kind shown in a retry note: "HTTP 429" rather than the server's whole message."""
    text = str(exc) if exc is not None else "error"
    return " ".join(text.split()[:2]) if text.startswith("HTTP ") else text


class Provider(ABC):
    name: str = ""
    default_model: str = ""

    def __init__(self, settings: ProviderSettings):
        self.settings = settings
        self.retries = 0
        self._answered = False
        self._rpm = Pacer(settings.rpm) if settings.rpm else None
        self._tpm = Pacer(settings.tpm) if settings.tpm else None
        self._tpm_probe: asyncio.Event | None = None  # set once the first paced request has ended
        self._replies = 0
        self._extra_mean = 0.0  # tokens a reply cost beyond its prompt's estimate, on average so far
        # One line per wave of retries (kind, wait, attempt), so a dead or overloaded server is never silent.
        self.on_retry: Callable[[str], None] | None = None
        self._noted: dict[str, float] = {}
        self._unreported: Counter[str] = Counter()
        self._longest_wait: dict[str, float] = {}

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """Where requests go, for messages (never carries a secret)."""

    @abstractmethod
    async def _complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        """One attempt. Raise Retryable for transient failures, ProviderError for the rest."""

    async def aclose(self) -> None:
        pass

    async def complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        if not self._tpm:
            return await self.retrying(lambda: self._attempt(messages, schema))
        # Tokens are charged up front: the prompt's estimate plus what replies so far cost beyond their
        # estimate (the completion, and the estimate's error); once the reply says what it cost, the
        # difference is charged (or refunded). Until the first reply has said what a request costs, only
        # that one request is sent, so no burst precedes the rate.
        probe = self._tpm_probe is None
        if probe:
            self._tpm_probe = asyncio.Event()
        elif not self._tpm_probe.is_set():
            await self._tpm_probe.wait()
        estimate = estimated_tokens(messages)
        charge = max(0.0, estimate + self._extra_mean)
        try:
            await self._tpm.acquire(charge)
            result = await self.retrying(lambda: self._attempt(messages, schema))
        finally:
            if probe:
                self._tpm_probe.set()
        used = (result.prompt_tokens or estimate) + result.completion_tokens
        self._replies += 1
        self._extra_mean += (used - estimate - self._extra_mean) / self._replies
        self._tpm.adjust(used - charge)
        return result

    async def _attempt(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        if self._rpm:
            await self._rpm.acquire()  # every attempt is a request the service counts
        return await self._complete(messages, schema)

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` under the retry policy; every call to the service goes through here."""
        policy = self.settings.retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=_WaitRetryAfter(policy),
            retry=retry_if_exception_type(Retryable),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            async for tries in retrying:
                with tries:
                    try:
                        result = await attempt()
                    except Retryable as exc:
                        if exc.connect and not self._answered:
                            # A server that has never answered is down or misconfigured, not busy.
                            raise ProviderError(f"{self.name}: {exc} at {self.endpoint}") from None
                        raise
        except Retryable as exc:
            raise ProviderError(f"{self.name}: giving up after {policy.attempts} attempts: {exc}") from None
        self._answered = True
        return result

    def _count_retry(self, state: RetryCallState) -> None:
        self.retries += 1
        if self.on_retry is None:
            return
        kind = _retry_kind(state.outcome.exception() if state.outcome else None)
        wait = state.next_action.sleep if state.next_action else 0.0
        self._unreported[kind] += 1
        self._longest_wait[kind] = max(self._longest_wait.get(kind, 0.0), wait)
        now = time.monotonic()
        if now - self._noted.get(kind, float("-inf")) < RETRY_NOTE_SECONDS:
            return  # the same wave: counted into the next line
        self._noted[kind] = now
        count, longest = self._unreported.pop(kind), self._longest_wait.pop(kind)
        what = "1 request" if count == 1 else f"{count:,} requests"
        self.on_retry(f"retrying {what}: {self.name} at {self.endpoint}: {kind}; waiting up to {longest:.1f}s "
                      f"(attempt {state.attempt_number} of {self.settings.retry.attempts} failed)")


