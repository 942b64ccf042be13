"""Shared fixtures: the fake LLM service and a helper to run the generation pipeline against it."""

from __future__ import annotations

import os

# Any Hugging Face Hub call a test does not point at a fake goes to a closed local port, never to
# huggingface.co: libraries read HF_ENDPOINT when first imported, so it is set before any import.
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import asyncio
import json
from pathlib import Path

import pytest

from gliznet_data.generate import GenerateConfig, generate
from tests.fakes.llm_server import API_KEY, FakeLLMServer


@pytest.fixture
def llm_server():
    server = FakeLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def llm_env(llm_server, monkeypatch):
    """Point both SDKs at the fake, with a valid Groq key."""
    monkeypatch.setenv("GROQ_API_KEY", API_KEY)
    monkeypatch.setenv("GROQ_BASE_URL", llm_server.url)
    monkeypatch.setenv("OLLAMA_HOST", llm_server.url)
    return llm_server


# Retries that finish in milliseconds, so fault tests stay fast.
FAST_RETRY = {"attempts": 5, "initial_wait": 0.01, "max_wait": 0.2}


def run(output: Path, **settings) -> dict:
    settings.setdefault("concurrency", 4)
    settings.setdefault("retry", FAST_RETRY)
    config = GenerateConfig.model_validate({"output": output, **settings})
    return asyncio.run(generate(config))


def read_manifest(output: Path) -> dict:
    return json.loads((output / "manifest.json").read_text())
