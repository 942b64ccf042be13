"""The command line: bad input ends in one line and exit code 2; crashes resume; stats and validate."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from typer.testing import CliRunner

from gliznet_data.cli import app
from tests.conftest import read_manifest, run
from tests.fakes.llm_server import API_KEY

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, needle):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert needle in lines[0]
    assert "Traceback" not in result.output


def test_help_reads_like_documentation():
    result = cli("generate", "--help")
    assert result.exit_code == 0
    for flag in ("--provider", "--n", "--model", "--output", "--seed", "--concurrency", "--config"):
        assert flag in result.output


def test_generate_and_report(llm_env, tmp_path):
    result = cli("generate", "--n", 12, "--output", tmp_path, "--seed", 3, "-c", 2)
    assert result.exit_code == 0, result.output
    assert "12 records" in result.output
    assert pl.read_parquet(tmp_path / "shard-*.parquet").height == 12


def test_config_file_sets_what_flags_do_not(llm_env, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"generate:\n  provider: ollama\n  n: 7\n  seed: 9\n  output: {tmp_path / 'cfg'}\n"
                      "  shard_size: 3\n  diversity:\n    domain: {astronomy: 1}\n")
    result = cli("generate", "--config", config, "--n", 8)  # the flag wins over the file
    assert result.exit_code == 0, result.output
    df = pl.read_parquet(tmp_path / "cfg" / "shard-*.parquet")
    assert df.height == 8 and set(df["domain"]) == {"astronomy"} and set(df["provider"]) == {"ollama"}
    assert set(df["seed"]) == {9}


@pytest.mark.parametrize("args,needle", [
    (["--provider", "openai"], "unknown provider 'openai'"),
    (["--n", "0"], "--n must be a positive number"),
    (["--n", "-5"], "--n must be a positive number"),
])
def test_bad_flags(llm_env, tmp_path, args, needle):
    one_line_error(cli("generate", "--output", tmp_path, *args), needle)


def test_missing_key(llm_env, tmp_path, monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY")
    one_line_error(cli("generate", "--n", 5, "--output", tmp_path / "x"), "GROQ_API_KEY is not set")


def test_rejected_key_never_printed(llm_env, tmp_path, monkeypatch):
    monkeypatch.setenv("GROQ_API_KEY", "gsk_secret_that_must_not_leak")
    result = cli("generate", "--n", 5, "--output", tmp_path)
    one_line_error(result, "rejected the API key")
    assert "gsk_secret" not in result.output
    for path in tmp_path.rglob("*"):
        assert b"gsk_secret" not in path.read_bytes()


def test_unwritable_output(llm_env, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    one_line_error(cli("generate", "--n", 5, "--output", blocker / "out"), "cannot create output folder")


def test_unreachable_server(llm_env, tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    one_line_error(cli("generate", "--provider", "ollama", "--n", 5, "--output", tmp_path), "cannot connect")


@pytest.mark.parametrize("content,needle", [
    ("generate: [1, 2", "not valid YAML"),
    ("generate:\n  api_key: gsk_x\n", "invalid setting api_key"),
    ("generate:\n  concurrency: 0\n", "invalid setting concurrency"),
])
def test_bad_config(llm_env, tmp_path, content, needle):
    config = tmp_path / "c.yaml"
    config.write_text(content)
    one_line_error(cli("generate", "--config", config, "--output", tmp_path / "o"), needle)


def test_missing_config(tmp_path):
    one_line_error(cli("generate", "--config", tmp_path / "nope.yaml"), "cannot read config")


def test_stats_json_and_tables(llm_env, tmp_path):
    run(tmp_path, n=40, shard_size=15)
    result = cli("stats", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["samples"] == 40
    assert stats["unique_labels"] == stats["unique_positive_labels"] + stats["unique_negative_labels"] - len(
        set(_labels(tmp_path, "labels")) & set(_labels(tmp_path, "not_labels")))
    assert sum(stats["length_buckets"].values()) == 40
    assert sum(stats["task_type"].values()) == 40 and "rejects" in stats
    tables = cli("stats", tmp_path)
    assert tables.exit_code == 0 and "unique labels" in tables.output


def _labels(path, column):
    return pl.read_parquet(path / "shard-*.parquet")[column].explode().to_list()


def test_validate_zshot_shaped_file(tmp_path):
    path = tmp_path / "zshot.parquet"
    pl.DataFrame({
        "sentence": ["The match went to penalties.", "Here are some examples for you", "Rates rose."],
        "labels": [["football"], ["x"], ["monetary_policy", "Monetary Policy"]],
        "not_labels": [["basketball"], ["y"], ["fiscal policy"]],
    }).write_parquet(path)
    result = cli("validate", path)
    assert result.exit_code == 1
    assert "1 of 3 rows valid" in result.output
    assert "meta_text" in result.output and "label_duplicate" in result.output


def test_validate_our_own_output_is_clean(llm_env, tmp_path):
    run(tmp_path, n=10)
    result = cli("validate", tmp_path)
    assert result.exit_code == 0 and "10 of 10 rows valid" in result.output


@pytest.mark.parametrize("command", ["stats", "validate"])
def test_unreadable_inputs(tmp_path, command):
    one_line_error(cli(command, tmp_path / "missing"), "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(cli(command, empty), "no Parquet files")
    corrupt = tmp_path / "bad.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    one_line_error(cli(command, corrupt), "cannot read")
    other = tmp_path / "other.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(other)
    one_line_error(cli(command, other), "lacks column(s) text, labels, not_labels")


def _spawn(output, n, config, env):
    return subprocess.Popen(
        [sys.executable, "-m", "gliznet_data.cli", "generate", "--n", str(n), "--output", str(output),
         "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_shards(output, count, proc, limit=60):
    deadline = time.monotonic() + limit
    while len(list(output.glob("shard-*.parquet"))) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture
def crash_setup(llm_server, tmp_path):
    llm_server.latency = 0.02
    config = tmp_path / "run.yaml"
    config.write_text("generate:\n  concurrency: 4\n  shard_size: 10\n  flush_seconds: 1000\n")
    env = os.environ | {"GROQ_API_KEY": API_KEY, "GROQ_BASE_URL": llm_server.url}
    return tmp_path / "out", config, env


def test_kill_9_then_rerun_gives_exactly_n_unique(llm_server, crash_setup):
    output, config, env = crash_setup
    n, k, concurrency = 150, 5, 4
    proc = _spawn(output, n, config, env)
    _wait_for_shards(output, 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    flushed = pl.read_parquet(output / "shard-*.parquet").height
    assert 0 < flushed < n
    before = len(llm_server.requests)

    proc = _spawn(output, n, config, env)
    assert proc.wait(timeout=120) == 0, proc.communicate()
    df = pl.read_parquet(output / "shard-*.parquet")
    assert df.height == n and df["id"].n_unique() == n
    # Work already flushed is never redone: the rerun asks only for what is missing, plus what was in flight.
    assert len(llm_server.requests) - before <= math.ceil((n - flushed) / k) + concurrency
    assert read_manifest(output)["status"] == "complete"


def test_ctrl_c_saves_finished_work(llm_server, crash_setup):
    output, config, env = crash_setup
    proc = _spawn(output, 10_000, config, env)
    _wait_for_shards(output, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "run the same command again" in stderr and "Traceback" not in stderr
    manifest = read_manifest(output)
    assert manifest["status"] == "interrupted"
    # Everything validated before the interrupt is on disk, including the part-filled buffer.
    records = pl.read_parquet(output / "shard-*.parquet").height
    assert records == manifest["counts"]["records"] > 0
    done = sum(end - start + 1 for start, end in manifest["requests_done"])
    assert records == 5 * done  # the fake's replies are all valid: every done request's records are kept


def test_stats_reports_both_roles_label_uses_and_broad_labels(tmp_path):
    path = tmp_path / "d.parquet"
    pl.DataFrame({
        "text": [f"text number {i}" for i in range(6)],
        # "sports" is a positive and a negative (both roles, 5 uses); "politics" both roles, 3 uses;
        # "transfer rumours" once; "tennis" twice, negative only.
        "labels": [["sports"], ["sports"], ["politics"], ["sports", "transfer rumours"], ["sports"], ["politics"]],
        "not_labels": [["politics"], ["tennis"], ["sports"], ["tennis"], ["business"], ["business"]],
        "request_mode": ["bundle", "bundle", "bundle", "single", "single", "single"],
    }).write_parquet(path)
    result = cli("stats", path, "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["both_roles"] == {"labels": 2, "share": 0.4}
    assert {band: v["labels"] for band, v in stats["label_uses"].items()} == {"once": 1, "2-4": 3, "5+": 1}
    assert stats["broad_labels"] == {"records": 6, "share": 1.0, "records_with_broad_positive": 6}
    assert stats["request_mode"] == {"bundle": 3, "single": 3}
    tables = cli("stats", path)
    assert "labels in both roles" in tables.output and "40.0% of distinct labels" in tables.output
    assert "5+ 1 (20.0%)" in tables.output


def test_bad_bundle_share_is_one_line(tmp_path):
    one_line_error(cli("batch", "export", "--bundle-share", "1.5", "--output", tmp_path / "r.jsonl"),
                   "invalid setting bundle_share")
