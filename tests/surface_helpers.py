"""Helpers for the tests of the surfaces around a saved model (pipeline, server, predict command, demo)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import torch

from tests.model_helpers import write_tiny_backbone


def write_tiny_gliznet(directory: str | Path, seed: int = 0, **tokenizer_settings) -> tuple[str, str]:
    """A saved random GliZNet on a tiny BERT (model + tokenizer folder, as training writes it) and its backbone."""
    from gliznet_model import GliZNetForSequenceClassification, GliZNETTokenizer

    directory = Path(directory)
    backbone = write_tiny_backbone(directory / "backbone")
    settings = {"max_length": 64, "min_text_tokens": 8, **tokenizer_settings}
    tokenizer = GliZNETTokenizer.from_pretrained(backbone, **settings)
    torch.manual_seed(seed)
    model = GliZNetForSequenceClassification.from_backbone(backbone, tokenizer=tokenizer)
    path = directory / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path), backbone


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process=None, timeout: float = 90.0) -> None:
    """Poll `url` until it answers 200; fail early with the process's output when it has died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not come up within {timeout:.0f} s")
