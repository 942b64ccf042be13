"""Throughput and latency of `gliznet-model serve` under concurrent clients, with micro-batching on and off.

Starts the real server (uvicorn, a subprocess) on GliZNet built on the offline all-MiniLM-L6-v2 (untrained: only speed
is measured; `--model` takes a trained folder), then drives it with 1, 4, 16 and 64 concurrent clients over
keep-alive connections. Every request is one text of about 60 tokens and 20 labels, `--requests` requests per level
(at least two per client).
The same texts also go through `predict_batch` in this process at batch 16 (the ceiling a server can approach) and
at batch 1 (the latency of a direct call). Both servers run side by side and every round visits every cell, so
load from other work on the machine lands on all cells alike. Prints one Markdown table and the goals' ratios.

    python benchmarks/serve_load.py                              # 64 requests per cell, 3 rounds
    python benchmarks/serve_load.py --requests 32 --repeats 1 --clients 1,16
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELS = ["sports", "politics", "business", "technology", "health", "science", "entertainment", "travel",
          "education", "environment", "crime", "weather", "food", "music", "finance", "religion", "law",
          "transport", "energy", "housing"]
SENTENCES = [
    "The regional council met on Tuesday evening to discuss next year's budget for roads and schools.",
    "Several members argued that the money set aside for repairs after the winter rain was not enough.",
    "A local shop owner said rising rents were pushing small traders out of the town centre.",
    "The finance officer warned that energy prices and new buses would use most of the tax increase.",
    "Students handed out leaflets about a summer music festival they hoped to hold in the park.",
    "The hospital announced a new clinic for older patients, opening in the spring.",
    "The football club signed two young players from its academy on three-year contracts.",
    "A software company on the edge of town said it would hire forty engineers next year.",
]


def make_texts(n: int, tokenizer, target_tokens: int = 60) -> list[str]:
    """n distinct texts of about `target_tokens` backbone tokens each (sentences in a rotating order)."""
    texts = []
    for i in range(n):
        words, k = [f"Report {i}:"], i
        while len(tokenizer.tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) < target_tokens:
            words.append(SENTENCES[k % len(SENTENCES)])
            k += 3
        ids = tokenizer.tokenizer(" ".join(words), add_special_tokens=False)["input_ids"][:target_tokens]
        texts.append(tokenizer.tokenizer.decode(ids))
    return texts


ON, OFF = "server, batching on", "server, batching off"
DIRECT16, DIRECT1 = "direct predict_batch, batch 16", "direct predict_batch, batch 1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def build_model(directory: Path) -> str:
    from gliznet_model import GliZNetForSequenceClassification, GliZNETTokenizer
    from gliznet_model.backbones import default_backbone

    tokenizer = GliZNETTokenizer.from_pretrained(default_backbone())
    model = GliZNetForSequenceClassification.from_backbone(default_backbone(), tokenizer=tokenizer)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def direct(model, tokenizer, texts: list[str], batch_size: int) -> dict[str, float]:
    """predict_batch over the texts, `batch_size` per call: texts/s and per-call latency."""
    model.predict_batch(texts[:batch_size], [LABELS] * batch_size, tokenizer, batch_size=batch_size,
                        activation="softmax")  # warm-up
    latencies = []
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        t0 = time.perf_counter()
        model.predict_batch(chunk, [LABELS] * len(chunk), tokenizer, batch_size=batch_size, activation="softmax")
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return {"texts_per_second": len(texts) / wall, "p50": percentile(latencies, 50) * 1000,
            "p95": percentile(latencies, 95) * 1000, "p99": percentile(latencies, 99) * 1000}


async def drive(url: str, texts: list[str], clients: int) -> dict[str, float]:
    """`clients` concurrent loops, each sending its next request as soon as its last one is answered."""
    latencies: list[float] = []
    queue = list(range(len(texts)))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:
        async def loop(work: list[int], record: bool) -> None:
            while work:
                i = work.pop()
                t0 = time.perf_counter()
                response = await client.post("/v1/classify", json={"inputs": texts[i], "candidate_labels": LABELS})
                if record:
                    latencies.append(time.perf_counter() - t0)
                response.raise_for_status()

        # Warm up with two rounds of the same traffic: connections open, and the server's batches are in step
        # with these clients before anything is timed.
        warm = list(range(min(len(texts), 2 * clients)))
        await asyncio.gather(*(loop(warm, False) for _ in range(clients)))
        before = (await client.get("/health")).json()
        start = time.perf_counter()
        await asyncio.gather(*(loop(queue, True) for _ in range(clients)))
        wall = time.perf_counter() - start
        after = (await client.get("/health")).json()
    batches = after["batches"] - before["batches"]
    return {"texts_per_second": len(texts) / wall, "p50": percentile(latencies, 50) * 1000,
            "p95": percentile(latencies, 95) * 1000, "p99": percentile(latencies, 99) * 1000,
            "mean_batch": (after["texts"] - before["texts"]) / batches if batches else 0.0}


def paired_latency(model, tokenizer, url: str, texts: list[str]) -> dict[str, float]:
    """One client's latency against a direct call under the same load: each text goes once through
    `predict_batch` and once through the server, alternately; medians and the median difference, in ms."""
    pairs = []
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/v1/classify", json={"inputs": texts[0], "candidate_labels": LABELS})  # connect
        for text in texts:
            t0 = time.perf_counter()
            model.predict_batch([text], [LABELS], tokenizer, batch_size=1, activation="softmax")
            t1 = time.perf_counter()
            client.post("/v1/classify", json={"inputs": text, "candidate_labels": LABELS}).raise_for_status()
            t2 = time.perf_counter()
            pairs.append(((t1 - t0) * 1000, (t2 - t1) * 1000))
    return {"direct": statistics.median(a for a, _ in pairs), "server": statistics.median(b for _, b in pairs),
            "extra": statistics.median(b - a for a, b in pairs)}


def start_server(model_dir: str, port: int, max_batch_size: int, max_wait_ms: float,
                 threads: int | None) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "gliznet_model.cli", "serve", model_dir, "--port", str(port), "--device", "cpu",
         "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms), "--log-level", "warning",
         *(["--threads", str(threads)] if threads else [])],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise TimeoutError("server did not start")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def median_cell(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="A saved GliZNet folder [default: untrained GliZNet on the offline MiniLM]")
    parser.add_argument("--clients", default="1,4,16,64", help="Concurrency levels")
    parser.add_argument("--requests", type=int, default=64, help="Requests (one text each) per cell")
    parser.add_argument("--repeats", type=int, default=3, help="Rounds over all cells; each cell's median is shown")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=None, help="[default: the server's]")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the servers and of the direct calls alike [default: torch's]")
    args = parser.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers below are stopped on the way out

    import torch

    from gliznet_model.pipeline import load_model
    from gliznet_model.serving import ServerSettings

    if args.threads:
        torch.set_num_threads(args.threads)

    wait = args.max_wait_ms if args.max_wait_ms is not None else ServerSettings().max_wait_ms
    modes = {ON: args.max_batch_size, OFF: 1}
    cells: dict[tuple[str, object], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_model(Path(tmp) / "model")
        model, tokenizer = load_model(model_dir, "cpu")
        texts = make_texts(max(args.requests, 2 * max(levels)), tokenizer)
        ports = {mode: free_port() for mode in modes}
        servers = {mode: start_server(model_dir, ports[mode], batch, wait, args.threads)
                   for mode, batch in modes.items()}
        paired: list[dict[str, float]] = []
        ratios: list[tuple[float, float]] = []
        try:
            # Every round visits every cell, and the cells a goal compares run back to back, so that load from
            # other work on the machine falls on both sides of each comparison alike.
            for round_ in range(args.repeats):
                base = texts[: args.requests]

                def cell(mode: str, clients: int | str) -> dict[str, float]:
                    if clients == "-":
                        result = direct(model, tokenizer, base, args.max_batch_size if "16" in mode else 1)
                    else:  # at least two requests per client, so every client waits on the server more than once
                        chosen = texts[: max(args.requests, 2 * clients)]
                        result = asyncio.run(drive(f"http://127.0.0.1:{ports[mode]}", chosen, clients))
                    cells.setdefault((mode, clients), []).append(result)
                    print(f"round {round_ + 1}: {mode}, {clients} clients: {result['texts_per_second']:.1f} texts/s, "
                          f"p50 {result['p50']:.0f} ms" + (f", mean batch {result['mean_batch']:.1f}"
                                                            if "mean_batch" in result else ""), file=sys.stderr)
                    return result

                ceiling = cell(DIRECT16, "-")
                on = cell(ON, 16) if 16 in levels else None
                off = cell(OFF, 16) if 16 in levels else None
                if on and off:
                    ratios.append((on["texts_per_second"] / ceiling["texts_per_second"],
                                   on["texts_per_second"] / off["texts_per_second"]))
                cell(DIRECT1, "-")
                paired.append(paired_latency(model, tokenizer, f"http://127.0.0.1:{ports[ON]}", base))
                for clients in levels:
                    if clients != 16:
                        cell(ON, clients)
                        cell(OFF, clients)
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(60)

    table = {key: median_cell(runs) for key, runs in cells.items()}
    print(f"\n{args.requests} requests per cell (at least 2 per client), each 1 text of ~60 tokens x {len(LABELS)} labels; medians of "
          f"{args.repeats} interleaved rounds; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"batching on = --max-batch-size {args.max_batch_size} --max-wait-ms {wait:g}\n")
    print("| run | clients | texts/s | p50 ms | p95 ms | p99 ms | mean batch |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    order = [(DIRECT16, "-"), (DIRECT1, "-")] + [(m, c) for m in modes for c in levels]
    for name, clients in order:
        r = table[(name, clients)]
        batch = f"{r['mean_batch']:.1f}" if "mean_batch" in r else ("16" if "16" in name else "1")
        print(f"| {name} | {clients} | {r['texts_per_second']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | "
              f"{r['p99']:.1f} | {batch} |")
    print()
    if ratios:
        share = statistics.median(r[0] for r in ratios)
        speedup = statistics.median(r[1] for r in ratios)
        print(f"16 clients, batching on: {share:.0%} of direct predict_batch at batch {args.max_batch_size} "
              f"(goal >= 85%); {speedup:.2f}x the unbatched server (goal >= 1.5x); medians of per-round ratios "
              f"{', '.join(f'{a:.0%}/{b:.2f}x' for a, b in ratios)}")
    direct_p50 = statistics.median(p["direct"] for p in paired)
    server_p50 = statistics.median(p["server"] for p in paired)
    extra = statistics.median(p["extra"] for p in paired)
    print(f"1 client, batching on, calls alternated with direct calls: p50 {server_p50:.1f} ms vs {direct_p50:.1f} ms "
          f"direct; median extra {extra:+.1f} ms per request (goal <= 20 ms)")


if __name__ == "__main__":
    main()
