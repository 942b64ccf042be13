"""The generation pipeline end to end: real groq and ollama SDK clients against the local fake."""

import polars as pl
import pytest

from gliznet_data.errors import UserError
from gliznet_data.providers import ProviderError
from gliznet_data.records import record_id
from tests.conftest import read_manifest, run
from tests.fakes.llm_server import API_KEY


def rows(output):
    return pl.read_parquet(output / "shard-*.parquet")


@pytest.mark.parametrize("provider", ["groq", "ollama"])
def test_exactly_n_valid_unique_records(provider, llm_env, tmp_path):
    manifest = run(tmp_path, provider=provider, n=23, shard_size=10)
    df = rows(tmp_path)
    assert df.height == 23 and df["id"].n_unique() == 23
    assert df["id"].to_list() == [record_id(t) for t in df["text"]]
    assert set(df["provider"]) == {provider}
    assert manifest["status"] == "complete" and manifest["counts"]["records"] == 23
    assert manifest["tokens"]["total"] > 0
    assert len(manifest["shards"]) == 3  # 10 + 10 + 3
    paths = {r["path"] for r in llm_env.requests}
    assert paths == {"/openai/v1/chat/completions" if provider == "groq" else "/api/chat"}


def test_groq_request_uses_json_mode_and_the_key(llm_env, tmp_path):
    run(tmp_path, n=5, concurrency=1)
    request = llm_env.requests[0]
    assert request["authorization"] == f"Bearer {API_KEY}"
    assert request["body"]["response_format"] == {"type": "json_object"}
    assert request["body"]["model"] == "llama-3.3-70b-versatile"
    run(tmp_path / "schema", n=5, concurrency=1, json_mode="schema", model="openai/gpt-oss-120b")
    body = llm_env.requests[-1]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert "examples" in body["response_format"]["json_schema"]["schema"]["required"]


def test_ollama_request_carries_the_schema_as_format(llm_env, tmp_path):
    run(tmp_path, provider="ollama", n=5, concurrency=1)
    body = llm_env.requests[0]["body"]
    assert "examples" in body["format"]["required"]
    assert body["stream"] is False


def test_same_seed_sends_the_same_requests(llm_env, tmp_path):
    run(tmp_path / "a", n=15, concurrency=1, seed=5)
    first = [r["body"]["messages"] for r in llm_env.requests]
    llm_env.requests.clear()
    run(tmp_path / "b", n=15, concurrency=1, seed=5)
    assert [r["body"]["messages"] for r in llm_env.requests] == first
    llm_env.requests.clear()
    run(tmp_path / "c", n=15, concurrency=1, seed=6)
    assert [r["body"]["messages"] for r in llm_env.requests] != first


@pytest.mark.parametrize("provider", ["groq", "ollama"])
@pytest.mark.parametrize("fault", ["429", "500"])
def test_transient_errors_are_retried(provider, fault, llm_env, tmp_path):
    llm_env.faults.extend([fault] * 3)
    manifest = run(tmp_path, provider=provider, n=10, concurrency=1)
    assert rows(tmp_path).height == 10
    assert manifest["counts"]["retries"] == 3
    assert llm_env.statuses[:4] == [int(fault)] * 3 + [200]


def test_retry_after_is_honoured(llm_env, tmp_path):
    import time

    llm_env.retry_after = 0.6
    llm_env.faults.append("429")
    start = time.monotonic()
    run(tmp_path, n=5, concurrency=1, retry={"attempts": 3, "initial_wait": 0.0, "max_wait": 5})
    assert time.monotonic() - start >= 0.6  # backoff alone would have waited ~0 s


def test_slow_reply_times_out_and_is_retried(llm_env, tmp_path):
    llm_env.slow_seconds = 2.0
    llm_env.faults.append("slow")
    manifest = run(tmp_path, n=5, concurrency=1, timeout=0.3)
    assert manifest["counts"]["retries"] == 1 and rows(tmp_path).height == 5


def test_persistent_server_errors_give_up_with_a_clear_error(llm_env, tmp_path):
    llm_env.always = "500"
    with pytest.raises(ProviderError, match="giving up after 3 attempts: HTTP 500"):
        run(tmp_path, n=5, concurrency=2, retry={"attempts": 3, "initial_wait": 0.01, "max_wait": 0.05})


@pytest.mark.parametrize("fault,reason", [("broken_json", "broken_json"), ("truncated", "broken_json"),
                                          ("duplicates", "duplicate"), ("json_validate_failed", "broken_json")])
def test_bad_replies_become_counted_rejects(fault, reason, llm_env, tmp_path):
    llm_env.faults.append(fault)
    manifest = run(tmp_path, n=12, concurrency=1)
    assert rows(tmp_path).height == 12
    assert manifest["rejects"].get(reason, 0) >= 1


def test_prose_around_json_loses_nothing(llm_env, tmp_path):
    llm_env.always = "prose"
    manifest = run(tmp_path, n=10, concurrency=1)
    assert manifest["rejects"] == {} and manifest["counts"]["requests"] == 2


def test_overlapping_negatives_are_dropped_not_the_record(llm_env, tmp_path):
    llm_env.always = "overlap"
    manifest = run(tmp_path, n=10, concurrency=1)
    df = rows(tmp_path)
    assert manifest["rejects"] == {}
    for labels, negatives in zip(df["labels"], df["not_labels"]):
        assert not set(labels) & set(negatives)


def test_rejected_key_stops_the_run_without_leaking_it(llm_env, tmp_path, monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk_wrong_secret_value_123")
    with pytest.raises(ProviderError, match="rejected the API key") as info:
        run(tmp_path, n=5)
    assert "gsk_wrong" not in str(info.value)
    assert "gsk_wrong" not in (tmp_path / "manifest.json").read_text()


def test_missing_key_fails_before_writing_anything(llm_env, tmp_path, monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY")
    with pytest.raises(UserError, match="GROQ_API_KEY is not set"):
        run(tmp_path / "out", n=5)
    assert not (tmp_path / "out").exists()


def test_unknown_model_on_ollama(llm_env, tmp_path):
    llm_env.always = "404"
    with pytest.raises(ProviderError, match="ollama pull"):
        run(tmp_path, provider="ollama", n=5)


@pytest.mark.parametrize("provider", ["groq", "ollama"])
def test_unreachable_server_fails_fast(provider, llm_env, tmp_path, monkeypatch):
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    monkeypatch.setenv("GROQ_BASE_URL", dead)
    monkeypatch.setenv("OLLAMA_HOST", dead)
    with pytest.raises(ProviderError, match="cannot connect"):
        run(tmp_path, provider=provider, n=5, retry={"attempts": 8, "initial_wait": 5, "max_wait": 60})


def test_resume_tops_up_to_the_new_n_and_keeps_ids_unique(llm_env, tmp_path):
    run(tmp_path, n=10, shard_size=5)
    first = set(rows(tmp_path)["id"])
    manifest = run(tmp_path, n=25, shard_size=5)
    df = rows(tmp_path)
    assert df.height == 25 and df["id"].n_unique() == 25 and first <= set(df["id"])
    assert manifest["counts"]["records"] == 25
    done = manifest["requests_done"]
    assert done[0][0] == 0  # stored as ranges


def test_rerun_of_a_finished_run_sends_nothing(llm_env, tmp_path):
    run(tmp_path, n=10)
    count = len(llm_env.requests)
    run(tmp_path, n=10)
    assert len(llm_env.requests) == count and rows(tmp_path).height == 10


def test_resume_with_other_settings_is_refused(llm_env, tmp_path):
    run(tmp_path, n=5, seed=1)
    with pytest.raises(UserError, match="seed"):
        run(tmp_path, n=10, seed=2)


def test_manifest_has_config_counts_and_cost(llm_env, tmp_path):
    manifest = run(tmp_path, n=10, price_input_per_mtok=0.59, price_output_per_mtok=0.79)
    tokens = manifest["tokens"]
    assert manifest["cost_usd"] == pytest.approx((tokens["prompt"] * 0.59 + tokens["completion"] * 0.79) / 1e6, abs=1e-6)
    assert manifest["config"]["n"] == 10 and manifest["fingerprint"]["prompt_version"]
    assert read_manifest(tmp_path)["status"] == "complete"
    assert API_KEY not in (tmp_path / "manifest.json").read_text()


def test_request_rate_limit_spaces_requests(llm_env, tmp_path):
    """rpm=120 is two requests a second, measured where the server sees them arrive."""
    run(tmp_path, n=30, concurrency=4, rpm=120)
    arrivals = sorted(r["at"] for r in llm_env.requests)
    assert len(arrivals) >= 6
    assert arrivals[5] - arrivals[0] >= 1.5
