"""Groq through its official async SDK (OpenAI-compatible chat completions).

The SDK reads ``GROQ_API_KEY`` and ``GROQ_BASE_URL`` itself; its own retries are off because the
shared policy in ``base`` does the retrying (and honours ``retry-after``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import groq

from .base import (Completion, Provider, ProviderError, ProviderSettings, Retryable, connection_limits,
                   failed_to_connect, parse_retry_after)

T = TypeVar("T")


class GroqProvider(Provider):
    name = "groq"
    default_model = "llama-3.3-70b-versatile"
    # JSON mode works on every Groq chat model; strict schemas only on some (see the Groq docs).
    default_json_mode = "object"

    def __init__(self, settings: ProviderSettings):
        super().__init__(settings)
        try:
            self.client = groq.AsyncGroq(
                max_retries=0, timeout=settings.timeout,
                http_client=groq.DefaultAioHttpClient(limits=connection_limits(settings), timeout=settings.timeout))
        except groq.GroqError:
            raise ProviderError("GROQ_API_KEY is not set: export your Groq API key") from None

    @property
    def endpoint(self) -> str:
        return str(self.client.base_url)

    async def aclose(self) -> None:
        await self.client.close()

    @classmethod
    def request_body(cls, settings: ProviderSettings, messages: list[dict[str, str]],
                     schema: dict[str, Any]) -> dict[str, Any]:
        """The chat-completions body: sent live, and written as-is into batch files."""
        json_mode = settings.json_mode or cls.default_json_mode
        response_format = ({"type": "json_schema", "json_schema": {"name": "examples", "schema": schema}}
                           if json_mode == "schema" else {"type": "json_object"})
        return {"model": settings.model, "messages": messages, "temperature": settings.temperature,
                "max_tokens": settings.max_tokens, "response_format": response_format}

    async def _complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        try:
            response = await self._sdk(self.client.chat.completions.create(**self.request_body(self.settings, messages, schema)),
                                       not_found=f"model {self.settings.model!r}")
        except JsonValidateFailed as exc:
            # JSON mode caught the model writing invalid JSON: a bad reply, not a bad request.
            return Completion(content=exc.failed_generation)
        return completion_from(response.model_dump())

    async def _sdk(self, call: Awaitable[T], not_found: str) -> T:
        """Await one SDK call, translating its errors into Retryable or ProviderError."""
        try:
            return await call
        except groq.APIConnectionError as exc:  # APITimeoutError included
            if failed_to_connect(exc):
                raise Retryable("cannot connect", connect=True) from None
            raise Retryable(f"timed out after {self.settings.timeout:g}s" if isinstance(exc, groq.APITimeoutError)
                            else "connection lost") from None
        except groq.APIStatusError as exc:
            status = exc.status_code
            error = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else {}
            error = error if isinstance(error, dict) else {}
            message = str(error.get("message") or "")[:200]
            if status == 429 or status == 498 or status >= 500:  # 498: Groq flex tier over capacity
                raise Retryable(f"HTTP {status} {message}".strip(),
                                parse_retry_after(exc.response.headers.get("retry-after"))) from None
            if status == 400 and error.get("code") == "json_validate_failed":
                raise JsonValidateFailed(str(error.get("failed_generation") or "")) from None
            if status == 401:
                raise ProviderError("groq rejected the API key (HTTP 401): check GROQ_API_KEY") from None
            if status == 404:
                raise ProviderError(f"groq: {not_found} not found (HTTP 404): {message}") from None
            raise ProviderError(f"groq refused the request (HTTP {status}): {message}") from None

    # The Batch API: upload a JSONL of chat-completions requests, run it, download the results.

    async def upload_batch_file(self, path: Path) -> str:
        async def attempt() -> str:
            uploaded = await self._sdk(self.client.files.create(file=path, purpose="batch"), not_found="files API")
            return uploaded.id

        return await self.retrying(attempt)

    async def create_batch(self, file_id: str, completion_window: str) -> Any:
        return await self.retrying(lambda: self._sdk(self.client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window=completion_window),
            not_found=f"file {file_id}"))

    async def get_batch(self, batch_id: str) -> Any:
        return await self.retrying(lambda: self._sdk(self.client.batches.retrieve(batch_id),
                                                     not_found=f"batch {batch_id}"))

    async def download_file(self, file_id: str, destination: Path) -> None:
        tmp = destination.with_name(f".{destination.name}.tmp")

        async def attempt() -> None:
            response = await self._sdk(self.client.files.content(file_id), not_found=f"file {file_id}")
            await response.write_to_file(tmp)

        await self.retrying(attempt)
        tmp.replace(destination)  # a results file that exists is complete


class JsonValidateFailed(Exception):
    def __init__(self, failed_generation: str):
        super().__init__("json_validate_failed")
        self.failed_generation = failed_generation


def completion_from(response: dict[str, Any]) -> Completion:
    """A Completion from an OpenAI-style chat-completion object (a live reply or a batch result line)."""
    choices = response.get("choices") or []
    usage = response.get("usage") or {}
    content = (choices[0].get("message") or {}).get("content") if choices else None
    return Completion(content=content or "", prompt_tokens=usage.get("prompt_tokens") or 0,
                      completion_tokens=usage.get("completion_tokens") or 0)
