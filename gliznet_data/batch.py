"""The batch route: export the requests a live run would send as an OpenAI/Groq batch file,
run them through the Groq Batch API, and ingest the results through the live run's own
parse -> validate -> dedupe -> shard path (``RunState.add_reply``).

A request's ``custom_id`` names the prompt version, the diversity table's digest, the seed,
the examples per request and the request index. That is enough to re-draw the request's
parameters at ingest time, so every record gets its provenance back, and to refuse results
that were rendered from other templates. Results of an older prompt version are re-drawn with
that version's archived templates and diversity table (``prompts/archive/<version>/``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UserError
from .generate import GenerateConfig, Plan, RunState
from .prompting import Prompts, archived_dir
from .providers.groq import GroqProvider, completion_from

ENDPOINT = "/v1/chat/completions"
TERMINAL = {"completed", "failed", "expired", "cancelled"}
_CUSTOM_ID = re.compile(r"^gliznet-(?P<prompt>[0-9a-f]{12})-(?P<diversity>[0-9a-f]{12})-s(?P<seed>-?\d+)"
                        r"-k(?P<k>\d+)-r(?P<index>\d+)$")


def custom_id(plan: Plan, index: int) -> str:
    fingerprint = plan.fingerprint()
    return (f"gliznet-{fingerprint['prompt_version']}-{fingerprint['diversity']}-s{plan.config.seed}"
            f"-k{plan.config.examples_per_request}-r{index}")


def parse_custom_id(value: Any) -> dict[str, Any] | None:
    match = _CUSTOM_ID.match(value) if isinstance(value, str) else None
    if not match:
        return None
    parts = match.groupdict()
    return {"prompt": parts["prompt"], "diversity": parts["diversity"], "seed": int(parts["seed"]),
            "k": int(parts["k"]), "index": int(parts["index"])}


def _check_groq(config: GenerateConfig) -> None:
    if config.provider != "groq":
        raise UserError(f"the batch route speaks the Groq/OpenAI batch format; use --provider groq, not {config.provider!r}")


def export_requests(config: GenerateConfig, output: Path, requests: int | None = None) -> dict[str, Any]:
    """Write the first ``requests`` requests of the run (default: enough for ``config.n`` records)."""
    _check_groq(config)
    plan = Plan(config)
    count = requests if requests is not None else math.ceil(config.n / config.examples_per_request)
    if count <= 0:
        raise UserError(f"--requests must be positive, got {count}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for index in range(count):
                draw, messages = plan.request(index)
                line = {"custom_id": custom_id(plan, index), "method": "POST", "url": ENDPOINT,
                        "body": GroqProvider.request_body(plan.settings, messages, plan.schema(draw))}
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        tmp.replace(output)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None
    return {"requests": count, "path": str(output), "model": plan.settings.model,
            "prompt_version": plan.prompts.version, "seed": config.seed}


def _read_jsonl(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a UTF-8 JSONL file") from None


def read_requests(path: Path) -> dict[str, dict[str, Any]]:
    """custom_id -> request line, from a file ``export_requests`` wrote."""
    requests: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(_read_jsonl(path), 1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError:
            raise UserError(f"{path}:{number} is not valid JSON") from None
        if not isinstance(request, dict) or parse_custom_id(request.get("custom_id")) is None:
            raise UserError(f"{path}:{number} is not a gliznet batch request (no gliznet custom_id)")
        requests[request["custom_id"]] = request
    if not requests:
        raise UserError(f"{path} holds no requests")
    return requests


def plan_for(config: GenerateConfig, requests: dict[str, dict[str, Any]], path: Path) -> Plan:
    """The plan that rendered ``requests`` (read from ``path``): seed and k come from their ids, the
    templates from the prompt version they name (current or archived); ``config`` supplies the rest."""
    ids = [parse_custom_id(cid) for cid in requests]
    seeds, ks, versions = {i["seed"] for i in ids}, {i["k"] for i in ids}, {i["prompt"] for i in ids}
    if len(seeds) != 1 or len(ks) != 1 or len(versions) != 1:
        raise UserError(f"{path} mixes runs (seeds {sorted(seeds)}, k {sorted(ks)}, prompt versions "
                        f"{sorted(versions)}); ingest one export at a time")
    k = ks.pop()
    # n records the most the export can yield; an ingest keeps every valid record it finds.
    config = config.model_copy(update={"seed": seeds.pop(), "examples_per_request": k, "n": len(requests) * k})
    first = ids[0]
    current = Prompts().version
    if first["prompt"] != current and archived_dir(first["prompt"]) is None:
        raise UserError(f"{path} was rendered with prompt version {first['prompt']}, these prompts are {current} "
                        "and none archived matches: ingest with the templates that made it")
    plan = Plan(config, prompt_version=first["prompt"])
    fingerprint = plan.fingerprint()
    if first["diversity"] != fingerprint["diversity"]:
        raise UserError(f"{path} was drawn from another diversity table; pass the --config that exported it")
    return plan


def ingest(config: GenerateConfig, results: Path, requests_path: Path, provider: str = "groq-batch",
           model: str | None = None) -> dict[str, Any]:
    """Parse, validate and shard batch results into ``config.output``; returns the manifest.

    ``provider``/``model`` label the records' provenance (default model: the one each result names).
    Ingesting the same results again adds nothing: their requests are marked done.
    """
    requests = read_requests(requests_path)
    plan = plan_for(config, requests, requests_path)
    results_lines = _read_results(results, requests, requests_path)
    models = {r["body"].get("model") for r in requests.values() if isinstance(r.get("body"), dict)}
    state = RunState(plan.config, plan.fingerprint(provider, model or ",".join(sorted(m for m in models if m))),
                     capped=False, command="gliznet-data batch ingest")
    status, reason = "failed", None
    try:
        for result in results_lines:
            cid = result.get("custom_id") if isinstance(result, dict) else None
            request = requests.get(cid) if isinstance(cid, str) else None
            response = result.get("response") if request else None
            body = response.get("body") if isinstance(response, dict) else None
            if (request is None or result.get("error") or not isinstance(body, dict)
                    or response.get("status_code") != 200):
                state.failed_requests += 1  # a torn, garbled, foreign or failed line: its examples are lost
                continue
            index = parse_custom_id(result["custom_id"])["index"]
            if index in state.done or index in state.pending:
                continue
            draw, messages = plan.request(index)
            if request["body"].get("messages") != messages:
                raise UserError(f"request {result['custom_id']} does not match what its id renders; "
                                "was requests.jsonl edited?")
            state.add_reply(draw, completion_from(body),
                            plan.provenance(draw, provider, model or body.get("model") or request["body"].get("model")))
        status = "complete"
    except UserError as exc:
        reason = str(exc)
        raise
    finally:
        state.finish(status, reason)
    return state.manifest()


def _read_results(results: Path, requests: dict[str, dict[str, Any]], requests_path: Path) -> list[Any]:
    """The result lines (None for a line that is not JSON), refused before anything is written when they
    do not answer ``requests``: a wrong --requests file must fail, not ingest nothing."""
    lines = [line for line in _read_jsonl(results) if line.strip()]
    if not lines:
        raise UserError(f"{results} holds no results")
    parsed: list[Any] = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            parsed.append(None)
    ids = [r.get("custom_id") for r in parsed if isinstance(r, dict) and isinstance(r.get("custom_id"), str)]
    strangers = [cid for cid in ids if parse_custom_id(cid) is not None and cid not in requests]
    if strangers or not any(cid in requests for cid in ids):
        count = len(strangers) if strangers else len(lines)
        first = f" (first: {strangers[0]})" if strangers else ""
        raise UserError(f"{count:,} of {len(lines):,} results in {results} answer no request in {requests_path}"
                        f"{first}; pass the --requests file they were submitted with")
    return parsed


async def submit(config: GenerateConfig, requests_path: Path, results: Path | None = None,
                 resume: str | None = None, poll_seconds: float = 15.0, completion_window: str = "24h",
                 on_status: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Upload ``requests_path``, run it as a Groq batch (or reattach to ``resume``), wait for it to
    end, and download its results and errors beside the requests file."""
    _check_groq(config)
    if not resume:
        read_requests(requests_path)  # refuse a file that is not ours before uploading it
    provider = GroqProvider(Plan(config).settings)
    stem = requests_path.with_suffix("")
    results = results or stem.with_name(f"{stem.name}.results.jsonl")
    errors = stem.with_name(f"{stem.name}.errors.jsonl")
    try:
        if resume:
            batch = await provider.get_batch(resume)
        else:
            file_id = await provider.upload_batch_file(requests_path)
            batch = await provider.create_batch(file_id, completion_window)
        if on_status:
            on_status(batch)
        while batch.status not in TERMINAL:
            await asyncio.sleep(poll_seconds)
            batch = await provider.get_batch(batch.id)
            if on_status:
                on_status(batch)
        if batch.output_file_id:
            await provider.download_file(batch.output_file_id, results)
        if batch.error_file_id:
            await provider.download_file(batch.error_file_id, errors)
    finally:
        await provider.aclose()
    if not batch.output_file_id:
        raise UserError(f"batch {batch.id} ended {batch.status} with no results"
                        + (f"; errors in {errors}" if batch.error_file_id else ""))
    counts = batch.request_counts
    return {"batch_id": batch.id, "status": batch.status, "results": str(results),
            "errors": str(errors) if batch.error_file_id else None,
            "completed": counts.completed if counts else None, "failed": counts.failed if counts else None}
