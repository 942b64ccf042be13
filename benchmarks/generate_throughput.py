"""Generation throughput: the pipeline against the local fake LLM, and validate-and-write offline.

1. The real pipeline (groq SDK client, prompts, parsing, validation, shards) against
   tests/fakes/llm_server.py running in its own process with a fixed reply latency L. With C
   requests in flight and k examples per reply, no client can beat C*k/L records per second;
   the table shows how close we get (target: >= 90% at C=64, L=200 ms).
2. Validate-and-write with no network: 100,000 examples arrive as JSON replies and go through
   the same parse -> validate -> dedupe -> shard path the live run uses (target: >= 20,000/s).

    python benchmarks/generate_throughput.py [--latency 0.2] [--concurrency 16,64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gliznet_data.generate import GenerateConfig, Plan, RunState, generate  # noqa: E402
from gliznet_data.providers import Completion  # noqa: E402
from tests.fakes.llm_server import API_KEY, FakeLLMServer  # noqa: E402


def start_fake(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/fakes/llm_server.py"), "--latency", str(latency)],
                            stdout=subprocess.PIPE, text=True)
    port = proc.stdout.readline().split()[1]
    return proc, f"http://127.0.0.1:{port}"


def live_rate(url: str, concurrency: int, k: int, rounds: int) -> float:
    os.environ.update(GROQ_API_KEY=API_KEY, GROQ_BASE_URL=url)
    n = concurrency * k * rounds
    with tempfile.TemporaryDirectory() as tmp:
        config = GenerateConfig(n=n, output=Path(tmp), concurrency=concurrency, examples_per_request=k,
                                shard_size=5000)
        manifest = asyncio.run(generate(config))
    return manifest["counts"]["records"] / manifest["duration_seconds"]


def offline_rate(records: int, k: int) -> float:
    """Records per second through parse -> validate -> dedupe -> shard, replies prepared up front."""
    server = FakeLLMServer()  # only its example maker; no socket is served
    with tempfile.TemporaryDirectory() as tmp:
        config = GenerateConfig(n=records, output=Path(tmp), examples_per_request=k, shard_size=10_000)
        plan = Plan(config)
        requests = [plan.request(i) for i in range(records // k)]
        replies = [json.dumps({"examples": server.examples(messages[1]["content"])}) for _, messages in requests]
        state = RunState(config, plan.fingerprint())
        start = time.perf_counter()
        for (draw, _), reply in zip(requests, replies):
            state.add_reply(draw, Completion(content=reply), plan.provenance(draw))
        state.flush()
        elapsed = time.perf_counter() - start
        assert state.valid == records, (state.valid, dict(state.rejects))
    return records / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2, help="fake reply latency in seconds")
    parser.add_argument("--concurrency", default="16,64", help="comma-separated C values")
    parser.add_argument("--k", type=int, default=5, help="examples per request")
    parser.add_argument("--rounds", type=int, default=20, help="latency periods per run (n = C*k*rounds)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--offline-records", type=int, default=100_000)
    args = parser.parse_args()

    proc, url = start_fake(args.latency)
    rows = []
    try:
        for c in (int(x) for x in args.concurrency.split(",")):
            limit = c * args.k / args.latency
            rates = [live_rate(url, c, args.k, args.rounds) for _ in range(args.repeats)]
            rows.append((f"live, C={c}, L={args.latency * 1000:.0f} ms, k={args.k}", statistics.median(rates), limit))
    finally:
        proc.kill()
    rates = [offline_rate(args.offline_records, args.k) for _ in range(args.repeats)]
    rows.append((f"validate+write {args.offline_records:,} records (no network)", statistics.median(rates), 20_000))

    print(f"\nmedian of {args.repeats} runs, {os.cpu_count()} CPUs\n")
    print("| run | records/s | reference | ratio |")
    print("|---|---:|---:|---:|")
    for name, rate, ref in rows:
        kind = "limit C*k/L" if name.startswith("live") else "target"
        print(f"| {name} | {rate:,.0f} | {ref:,.0f} ({kind}) | {rate / ref:.0%} |")


if __name__ == "__main__":
    main()
