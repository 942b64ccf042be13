"""LLM services behind one interface; ``make_provider`` picks one by name."""

from __future__ import annotations

from .base import Completion, Provider, ProviderError, ProviderSettings, RetryPolicy

PROVIDERS = ("groq", "ollama")


def provider_class(name: str) -> type[Provider]:
    # Imported lazily: each SDK is only loaded when its service is used.
    if name == "groq":
        from .groq import GroqProvider
        return GroqProvider
    if name == "ollama":
        from .ollama import OllamaProvider
        return OllamaProvider
    raise ProviderError(f"unknown provider {name!r} (choose from: {', '.join(PROVIDERS)})")


def make_provider(name: str, settings: ProviderSettings) -> Provider:
    return provider_class(name)(settings)


__all__ = ["Completion", "Provider", "ProviderError", "ProviderSettings", "RetryPolicy", "PROVIDERS",
           "make_provider", "provider_class"]
