"""Pacing: do `rpm` and `tpm` hold, measured where the server sees requests arrive?

The real pipeline (groq SDK client, prompts, parsing, validation, shards) runs against the local fake
(tests/fakes/llm_server.py, 200 ms replies) with many more requests in flight than the rate needs, for a
fixed window per setting. Requests (or tokens) per minute are measured over the arrivals inside the window
that starts at the first one (each arrival's cost over the gap after it); the shortest gap between two
arrivals shows whether any burst beat the rate (even spacing at 30 rpm is 2 s). Target: within 5%.

    python benchmarks/pacing.py [--window 60] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gliznet_data.generate import GenerateConfig, generate  # noqa: E402
from tests.fakes.llm_server import API_KEY, FakeLLMServer  # noqa: E402


class CountingFake(FakeLLMServer):
    """The fake, also noting each chat request's arrival time and the tokens its reply reports."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.arrivals: list[tuple[float, int]] = []

    async def _groq(self, headers, body):
        arrived = time.monotonic()
        status, payload, extra = await super()._groq(headers, body)
        usage = payload.get("usage", {}) if isinstance(payload, dict) else {}
        self.arrivals.append((arrived, usage.get("total_tokens", 0)))
        return status, payload, extra


async def run_for(config: GenerateConfig, seconds: float) -> None:
    task = asyncio.create_task(generate(config))
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def measure(server: CountingFake, setting: str, target: float, window: float, concurrency: int) -> dict:
    server.arrivals.clear()
    with tempfile.TemporaryDirectory() as tmp:
        config = GenerateConfig(n=10_000_000, output=Path(tmp), concurrency=concurrency, **{setting: target})
        asyncio.run(run_for(config, window + 3.0))
    arrivals = sorted(server.arrivals)
    start = arrivals[0][0]
    inside = [(t - start, tokens) for t, tokens in arrivals if t - start < window]
    span = inside[-1][0] - inside[0][0]
    # Each arrival's cost paces the gap after it, so the last one's cost belongs to the next span.
    amount = len(inside) - 1 if setting == "rpm" else sum(tokens for _, tokens in inside[:-1])
    per_minute = amount * 60 / span
    gaps = [b - a for (a, _), (b, _) in zip(inside, inside[1:])]
    return {"setting": setting, "target": target, "window": window, "requests": len(inside),
            "per_minute": per_minute, "ratio": per_minute / target, "shortest_gap": min(gaps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per setting")
    parser.add_argument("--concurrency", type=int, default=8, help="requests allowed in flight")
    parser.add_argument("--tpm", type=float, default=30_000, help="the tokens-per-minute setting measured")
    args = parser.parse_args()

    server = CountingFake(latency=0.2).start()
    os.environ.update(GROQ_API_KEY=API_KEY, GROQ_BASE_URL=server.url)
    try:
        results = [measure(server, "rpm", 30, args.window, args.concurrency),
                   measure(server, "rpm", 120, args.window, args.concurrency),
                   measure(server, "tpm", args.tpm, args.window, args.concurrency)]
    finally:
        server.stop()
    print("| setting | window | requests | measured per minute | target | ratio | shortest gap (even spacing) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        rpm = r["setting"] == "rpm"
        even = f"{60 / r['target']:.2f} s" if rpm else "varies with tokens"
        print(f"| {r['setting']}: {r['target']:,.0f} (C={args.concurrency}) | {r['window']:.0f} s | {r['requests']} | "
              f"{r['per_minute']:,.1f} {'requests' if rpm else 'tokens'} | {r['target']:,.0f} | {r['ratio']:.1%} | "
              f"{r['shortest_gap']:.2f} s ({even}) |")


if __name__ == "__main__":
    main()
