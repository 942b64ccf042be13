"""The batch route: export -> submit (real groq client against the fake Batch API) -> ingest."""

import asyncio
import json

import polars as pl
import pytest

from gliznet_data.batch import export_requests, ingest, submit
from gliznet_data.errors import UserError
from gliznet_data.generate import GenerateConfig, Plan
from tests.conftest import FAST_RETRY


def config(tmp_path, **over):
    return GenerateConfig.model_validate({"n": 20, "seed": 4, "output": tmp_path / "out", "retry": FAST_RETRY} | over)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_export_renders_what_generate_would_send(tmp_path, llm_env):
    cfg = config(tmp_path)
    summary = export_requests(cfg, tmp_path / "requests.jsonl")
    requests = lines(tmp_path / "requests.jsonl")
    assert summary["requests"] == len(requests) == 4  # 20 records / 5 per request
    plan = Plan(cfg)
    for index, request in enumerate(requests):
        assert request["method"] == "POST" and request["url"] == "/v1/chat/completions"
        assert request["custom_id"].endswith(f"-s4-k5-r{index}")
        assert request["body"]["messages"] == plan.request(index)[1]
        assert request["body"]["response_format"] == {"type": "json_object"}
    # The live route sends exactly these bodies for the same seed.
    from tests.conftest import run
    run(tmp_path / "live", n=20, seed=4, concurrency=1)
    live = [r["body"] for r in llm_env.requests if r["path"] == "/openai/v1/chat/completions"]
    assert live == [r["body"] for r in requests]


def test_same_seed_same_file(tmp_path):
    export_requests(config(tmp_path), tmp_path / "a.jsonl")
    export_requests(config(tmp_path), tmp_path / "b.jsonl")
    export_requests(config(tmp_path, seed=5), tmp_path / "c.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()


def test_export_refuses_ollama(tmp_path):
    with pytest.raises(UserError, match="--provider groq"):
        export_requests(config(tmp_path, provider="ollama"), tmp_path / "r.jsonl")


def test_submit_ingest_round_trip(tmp_path, llm_env):
    cfg = config(tmp_path, n=30)
    requests = tmp_path / "requests.jsonl"
    export_requests(cfg, requests)
    llm_env.batch_failures = {2}
    seen = []
    summary = asyncio.run(submit(cfg, requests, poll_seconds=0.01, on_status=lambda b: seen.append(b.status)))
    assert summary["status"] == "completed" and (summary["completed"], summary["failed"]) == (5, 1)
    assert seen[0] == "validating" and seen[-1] == "completed"
    results = tmp_path / "requests.results.jsonl"
    assert len(lines(results)) == 5 and len(lines(tmp_path / "requests.errors.jsonl")) == 1

    manifest = ingest(cfg, results, requests)
    df = pl.read_parquet(tmp_path / "out" / "shard-*.parquet")
    assert df.height == 25 and df["id"].n_unique() == 25
    assert set(df["provider"]) == {"groq-batch"} and set(df["model"]) == {"llama-3.3-70b-versatile"}
    # Provenance is re-drawn from the custom_id: it matches what the request asked for.
    plan = Plan(cfg)
    assert set(df["domain"]) <= {plan.request(i)[0].domain for i in range(6)}
    assert manifest["counts"]["records"] == 25 and manifest["status"] == "complete"

    again = ingest(cfg, results, requests)  # idempotent
    assert again["counts"]["records"] == 25
    assert pl.read_parquet(tmp_path / "out" / "shard-*.parquet").height == 25


def test_submit_resume_reattaches(tmp_path, llm_env):
    cfg = config(tmp_path)
    requests = tmp_path / "requests.jsonl"
    export_requests(cfg, requests)
    first = asyncio.run(submit(cfg, requests, poll_seconds=0.01))
    uploads = sum(r["path"] == "/openai/v1/files" for r in llm_env.requests)
    again = asyncio.run(submit(cfg, requests, resume=first["batch_id"], poll_seconds=0.01))
    assert again["batch_id"] == first["batch_id"]
    assert sum(r["path"] == "/openai/v1/files" for r in llm_env.requests) == uploads  # nothing re-uploaded


def test_submit_unknown_batch_and_bad_key(tmp_path, llm_env, monkeypatch):
    cfg = config(tmp_path)
    requests = tmp_path / "requests.jsonl"
    export_requests(cfg, requests)
    with pytest.raises(UserError, match="batch batch_9999 not found"):
        asyncio.run(submit(cfg, requests, resume="batch_9999", poll_seconds=0.01))
    monkeypatch.setenv("GROQ_API_KEY", "gsk_wrong_value")
    with pytest.raises(UserError, match="rejected the API key"):
        asyncio.run(submit(cfg, requests, poll_seconds=0.01))


def _result(custom_id, content, status=200):
    return json.dumps({"id": "r", "custom_id": custom_id, "error": None, "response": {
        "status_code": status, "body": {"model": "m", "choices": [{"message": {"content": content}}],
                                        "usage": {"prompt_tokens": 10, "completion_tokens": 20}}}})


def test_ingest_survives_broken_lines(tmp_path):
    cfg = config(tmp_path, n=15)
    requests = tmp_path / "requests.jsonl"
    export_requests(cfg, requests)
    ids = [r["custom_id"] for r in lines(requests)]
    # 18 words: inside both the short (1-24) and medium (16-60) buckets that these requests ask for.
    good = {"examples": [{"text": f"The council approved budget line {i} for the river bridge repairs after a long "
                                  "and heated public debate today.",
                          "labels": ["public infrastructure"], "not_labels": ["school funding"]} for i in range(2)]}
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join([
        _result(ids[0], json.dumps(good)),
        '{"custom_id": "' + ids[1] + '", "response": {"status_code": 200, "bo',  # torn line
        _result(ids[2], "Here you go: " + json.dumps(good)),  # same texts again: duplicates
        _result("someone-else-1", json.dumps(good)),  # not one of ours
        _result(ids[1], "{}", status=500),
    ]) + "\n")
    manifest = ingest(cfg, results, requests, provider="hand-written", model="reviewer")
    df = pl.read_parquet(tmp_path / "out" / "shard-*.parquet")
    assert df.height == 2 and set(df["provider"]) == {"hand-written"} and set(df["model"]) == {"reviewer"}
    assert manifest["counts"]["failed_requests"] == 3
    assert manifest["rejects"]["duplicate"] == 2


def test_ingest_refuses_results_from_other_templates(tmp_path):
    cfg = config(tmp_path)
    requests = tmp_path / "requests.jsonl"
    export_requests(cfg, requests)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(r | {"custom_id": "gliznet-000000000000" + r["custom_id"][20:]})
                             for r in lines(requests)) + "\n")
    with pytest.raises(UserError, match="prompt version 000000000000"):
        ingest(cfg, tmp_path / "none.jsonl", bad)
    with pytest.raises(UserError, match="cannot read"):
        ingest(cfg, tmp_path / "none.jsonl", requests)
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    with pytest.raises(UserError, match="not valid JSON"):
        ingest(cfg, requests, garbage)


def test_the_three_commands_end_to_end(tmp_path, llm_env):
    from typer.testing import CliRunner

    from gliznet_data.cli import app

    runner = CliRunner()
    requests, out = tmp_path / "requests.jsonl", tmp_path / "shards"
    result = runner.invoke(app, ["batch", "export", "--n", "25", "--seed", "2", "--output", str(requests)])
    assert result.exit_code == 0 and "5 requests" in result.output, result.output
    result = runner.invoke(app, ["batch", "submit", str(requests), "--poll", "0.01"])
    assert result.exit_code == 0 and "5 completed" in result.output, result.output
    result = runner.invoke(app, ["batch", "ingest", str(tmp_path / "requests.results.jsonl"),
                                 "--requests", str(requests), "--output", str(out)])
    assert result.exit_code == 0 and "25 records" in result.output, result.output
    assert runner.invoke(app, ["validate", str(out)]).exit_code == 0

    bad = runner.invoke(app, ["batch", "export", "--requests", "0", "--output", str(requests)])
    assert bad.exit_code == 2 and "--requests must be positive" in bad.output
    missing = runner.invoke(app, ["batch", "ingest", str(tmp_path / "nope.jsonl"), "--requests", str(requests),
                                  "--output", str(out)])
    assert missing.exit_code == 2 and "cannot read" in missing.output
