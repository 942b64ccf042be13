"""Groq through its official async SDK (OpenAI-compatible chat completions).

The SDK reads ``GROQ_API_KEY`` and ``GROQ_BASE_URL`` itself; its own retries are off because the
shared policy in ``base`` does the retrying (and honours ``retry-after``).
"""

from __future__ import annotations

from typing import Any

import groq

from .base import (Completion, Provider, ProviderError, ProviderSettings, Retryable, connection_limits,
                   failed_to_connect, parse_retry_after)


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

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if (self.settings.json_mode or self.default_json_mode) == "schema":
            return {"type": "json_schema", "json_schema": {"name": "examples", "schema": schema}}
        return {"type": "json_object"}

    async def _complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        try:
            response = await self.client.chat.completions.create(
                model=self.settings.model,
                messages=messages,
                temperature=self.settings.temperature,
                max_tokens=self.settings.max_tokens,
                response_format=self._response_format(schema),
            )
        except groq.APIConnectionError as exc:  # APITimeoutError included
            if failed_to_connect(exc):
                raise Retryable("cannot connect", connect=True) from None
            raise Retryable(f"timed out after {self.settings.timeout:g}s" if isinstance(exc, groq.APITimeoutError)
                            else "connection lost") from None
        except groq.APIStatusError as exc:
            return self._status_error(exc)
        usage = response.usage
        return Completion(
            content=(response.choices[0].message.content or "") if response.choices else "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def _status_error(self, exc: groq.APIStatusError) -> Completion:
        status = exc.status_code
        error = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else {}
        error = error if isinstance(error, dict) else {}
        message = str(error.get("message") or "")[:200]
        if status == 429 or status == 498 or status >= 500:  # 498: Groq flex tier over capacity
            raise Retryable(f"HTTP {status} {message}".strip(), parse_retry_after(exc.response.headers.get("retry-after")))
        if status == 400 and error.get("code") == "json_validate_failed":
            # JSON mode caught the model writing invalid JSON: a bad reply, not a bad request.
            return Completion(content=str(error.get("failed_generation") or ""))
        if status == 401:
            raise ProviderError("groq rejected the API key (HTTP 401): check GROQ_API_KEY") from None
        if status == 404:
            raise ProviderError(f"groq: model {self.settings.model!r} not found (HTTP 404): {message}") from None
        raise ProviderError(f"groq refused the request (HTTP {status}): {message}") from None
