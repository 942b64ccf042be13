"""Ollama through its official async SDK; ``OLLAMA_HOST`` is honoured by the SDK itself.

``format`` carries the reply's JSON schema, so the server constrains decoding to it.
"""

from __future__ import annotations

from typing import Any

import httpx
import ollama
from httpx_aiohttp import AiohttpTransport

from .base import Completion, Provider, ProviderError, ProviderSettings, Retryable, connection_limits, failed_to_connect


class OllamaProvider(Provider):
    name = "ollama"
    default_model = "llama3.1:8b"

    def __init__(self, settings: ProviderSettings):
        super().__init__(settings)
        self.client = ollama.AsyncClient(timeout=settings.timeout,
                                         transport=AiohttpTransport(limits=connection_limits(settings)))

    @property
    def endpoint(self) -> str:
        return str(self.client._client.base_url)

    async def aclose(self) -> None:
        await self.client._client.aclose()

    async def _complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        try:
            response = await self.client.chat(
                model=self.settings.model,
                messages=messages,
                format="json" if self.settings.json_mode == "object" else schema,
                options={"temperature": self.settings.temperature, "num_predict": self.settings.max_tokens},
                stream=False,
            )
        except ConnectionError:  # the SDK's translation of httpx.ConnectError
            raise Retryable("cannot connect", connect=True) from None
        except httpx.TimeoutException as exc:
            if failed_to_connect(exc):
                raise Retryable("cannot connect", connect=True) from None
            raise Retryable(f"timed out after {self.settings.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise Retryable(f"connection failed ({type(exc).__name__})") from None
        except ollama.ResponseError as exc:
            status = exc.status_code
            if status == 429 or status >= 500:
                raise Retryable(f"HTTP {status} {exc.error[:200]}") from None
            if status == 404:
                raise ProviderError(
                    f"ollama: model {self.settings.model!r} not found at {self.endpoint} "
                    f"(run `ollama pull {self.settings.model}`)") from None
            raise ProviderError(f"ollama refused the request (HTTP {status}): {exc.error[:200]}") from None
        return Completion(
            content=response.message.content or "",
            prompt_tokens=response.prompt_eval_count or 0,
            completion_tokens=response.eval_count or 0,
        )
