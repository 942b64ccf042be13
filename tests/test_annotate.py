"""gliznet-data annotate end to end: real groq and ollama SDK clients against the local fake, which labels
each text against the words it contains; exact N, top-up, resume after kill -9, bad input, then stats,
validate and push on what it wrote."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from gliznet_data.annotate import AnnotateConfig, annotate
from gliznet_data.cli import app
from gliznet_data.errors import UserError
from gliznet_data.folder_lock import FolderLock
from gliznet_data.records import record_id
from tests.conftest import FAST_RETRY, read_manifest
from tests.fakes.llm_server import API_KEY

runner = CliRunner()
WORDS = ("harbour lantern orchard violin glacier meadow copper thunder pepper saddle canyon velvet marble "
         "falcon ember willow quartz ribbon cactus tundra").split()
BUCKETS = [("short", 20), ("medium", 50), ("long", 200), ("document", 10**9)]  # the README's ranges, restated


def sample_texts(n: int) -> list[str]:
    """Distinct texts of varied length; text 7 is 700 words, far past any bucket a generator is asked for."""
    texts = []
    for i in range(n):
        length = 700 if i == 7 else 4 + (i * 13) % 90
        body = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(length - 2))
        texts.append(f"Entry {i}: {body}.")
    return texts


def write(path: Path, texts: list, column: str = "body") -> Path:
    frame = pl.DataFrame({"n": list(range(len(texts))), column: texts})
    if path.suffix == ".csv":
        frame.write_csv(path)
    elif path.suffix == ".jsonl":
        frame.write_ndjson(path)
    else:
        frame.write_parquet(path)
    return path


def run(path: Path, output: Path, **settings) -> dict:
    settings.setdefault("concurrency", 4)
    settings.setdefault("retry", FAST_RETRY)
    settings.setdefault("text_column", "body")
    return asyncio.run(annotate(AnnotateConfig.model_validate({"input": path, "output": output, **settings})))


def rows(output: Path) -> pl.DataFrame:
    return pl.read_parquet(output / "shard-*.parquet")


def words_of(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def bucket(text: str) -> str:
    count = len(text.split())
    return next(name for name, high in BUCKETS if count <= high)


def assert_grounded(df: pl.DataFrame) -> None:
    """The fake names words of the text as positives and words it lacks as negatives: each label set
    reached its own text."""
    for text, labels, negatives in zip(df["text"], df["labels"].to_list(), df["not_labels"].to_list()):
        words = words_of(text)
        assert labels and all(label.removeprefix("about ") in words for label in labels), (text[:40], labels)
        assert negatives and not any(label.removeprefix("about ") in words for label in negatives)


@pytest.mark.parametrize("provider,suffix", [("groq", ".csv"), ("ollama", ".jsonl"), ("groq", ".parquet")])
def test_every_text_is_labelled_and_kept_as_written(provider, suffix, llm_env, tmp_path):
    texts = sample_texts(24)
    manifest = run(write(tmp_path / f"in{suffix}", texts), tmp_path / "out", provider=provider, shard_size=10,
                   domain="field notes")
    df = rows(tmp_path / "out")
    assert df.height == 24 and sorted(df["text"]) == sorted(texts)  # the user's texts, unchanged
    assert df["id"].to_list() == [record_id(t) for t in df["text"]]
    assert_grounded(df)
    assert set(df["request_mode"]) == {"annotation"} and set(df["task_type"]) == {"annotation"}
    assert set(df["provider"]) == {provider} and set(df["domain"]) == {"field notes"}
    assert df["length_bucket"].to_list() == [bucket(t) for t in df["text"]]
    assert df.filter(pl.col("text") == texts[7])["length_bucket"].to_list() == ["document"]  # 700 words, kept
    assert manifest["status"] == "complete" and manifest["counts"]["records"] == 24 and manifest["rejects"] == {}
    assert len(manifest["shards"]) == 3 and manifest["counts"]["requests"] == 5
    assert manifest["input"] | {"path": None} == {
        "path": None, "text_column": "body", "rows": 24, "texts": 24, "empty_rows": 0, "repeated_rows": 0,
        "sha256": manifest["input"]["sha256"], "requests": 5, "requests_done": 5, "exhausted": False}
    # each text went out exactly once, inside its own numbered tag
    sent = [r["body"]["messages"][-1]["content"] for r in llm_env.requests]
    assert sum(p.count('<text index="') for p in sent) == 24
    assert all(sum(t in p for p in sent) == 1 for t in texts)
    assert "field notes" in sent[0]


def test_stats_validate_and_push_read_what_annotate_wrote(llm_env, tmp_path):
    run(write(tmp_path / "in.parquet", sample_texts(12)), tmp_path / "out")
    assert runner.invoke(app, ["validate", str(tmp_path / "out")]).exit_code == 0  # the 700-word text too
    stats = json.loads(runner.invoke(app, ["stats", str(tmp_path / "out"), "--json"]).output)
    assert stats["samples"] == 12 and stats["request_mode"] == {"annotation": 12}
    pushed = runner.invoke(app, ["push", str(tmp_path / "out"), "--to-folder", str(tmp_path / "hub"), "--json"])
    assert pushed.exit_code == 0, pushed.output
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "12 of the records are grounded annotations" in card and "The texts are the publisher's own" in card


def test_exactly_n_then_a_larger_n_labels_the_texts_left(llm_env, tmp_path):
    texts = sample_texts(30)
    path = write(tmp_path / "in.csv", texts)
    manifest = run(path, tmp_path / "out", n=12, concurrency=1)
    assert rows(tmp_path / "out")["text"].to_list() == texts[:12]  # exactly N, in file order
    assert manifest["counts"]["requests"] == 3 and manifest["input"]["requests_done"] == 2
    manifest = run(path, tmp_path / "out", n=20, concurrency=1)
    df = rows(tmp_path / "out")
    # the request exact N cut is sent again with the three texts it left, and nothing else is repeated
    assert sorted(df["text"]) == sorted(texts[:20]) and df["id"].n_unique() == 20
    assert manifest["counts"]["records"] == 20 and manifest["rejects"] == {}
    assert [len(re.findall(r'<text index="', r["body"]["messages"][-1]["content"])) for r in llm_env.requests] \
        == [5, 5, 5, 3, 5]
    count = len(llm_env.requests)
    run(path, tmp_path / "out", n=20)
    assert len(llm_env.requests) == count  # a finished run sends nothing


def test_rejects_are_counted_and_the_run_ends_when_the_texts_do(llm_env, tmp_path):
    texts = sample_texts(10)
    texts[2] = "Here are the examples you asked for: " + texts[2]  # meta talk: the validators refuse it
    texts[5] = "```\n" + texts[5]
    data = texts + [texts[0], "   ", None]  # a repeated text, a blank one, a missing one
    llm_env.faults.append("broken_json")  # the second label set of the first reply cannot be read
    manifest = run(write(tmp_path / "in.jsonl", data), tmp_path / "out", concurrency=1)
    df = rows(tmp_path / "out")
    assert df.height == 7 and manifest["rejects"] == {"broken_json": 1, "meta_text": 2}
    assert manifest["status"] == "complete" and manifest["input"]["exhausted"] is True
    assert manifest["input"]["rows"] == 13 and manifest["input"]["empty_rows"] == 2
    assert manifest["input"]["repeated_rows"] == 1 and manifest["input"]["texts"] == 10
    result = runner.invoke(app, ["annotate", str(tmp_path / "in.jsonl"), "--text-column", "body",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 0 and "7 records from 10 texts" in result.stdout
    assert "all 10 texts were sent, for 7 valid records of the 10 asked for" in result.output


@pytest.mark.parametrize("fault", ["prose", "overlap"])
def test_messy_replies_lose_nothing(fault, llm_env, tmp_path):
    llm_env.always = fault
    manifest = run(write(tmp_path / "in.parquet", sample_texts(10)), tmp_path / "out")
    df = rows(tmp_path / "out")
    assert df.height == 10 and manifest["rejects"] == {}
    assert all(not set(a) & set(b) for a, b in zip(df["labels"].to_list(), df["not_labels"].to_list()))


def test_a_label_set_naming_no_text_is_a_schema_reject(llm_env, tmp_path):
    llm_env.faults.append("wrong_index")
    manifest = run(write(tmp_path / "in.parquet", sample_texts(5)), tmp_path / "out")
    assert manifest["rejects"] == {"schema": 1} and rows(tmp_path / "out").height == 4
    assert_grounded(rows(tmp_path / "out"))


def test_other_input_or_settings_are_refused_in_the_same_folder(llm_env, tmp_path):
    run(write(tmp_path / "a.csv", sample_texts(6)), tmp_path / "out")
    with pytest.raises(UserError, match="other settings \\(input\\)"):
        run(write(tmp_path / "b.csv", sample_texts(7)), tmp_path / "out")
    with pytest.raises(UserError, match="domain"):
        run(tmp_path / "a.csv", tmp_path / "out", domain="other")
    with FolderLock(tmp_path / "out", "another run"):  # a second run in the folder
        with pytest.raises(UserError, match="in use by another run"):
            run(tmp_path / "a.csv", tmp_path / "out")


def cli(*args):
    return runner.invoke(app, ["annotate", *[str(a) for a in args]])


def one_line_error(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert needle in lines[0], lines[0]


def test_bad_input_is_one_line(llm_env, tmp_path):
    good = write(tmp_path / "good.csv", sample_texts(3))
    one_line_error(cli(good), "has no column 'text' (found: n, body)")
    one_line_error(cli(write(tmp_path / "good.jsonl", sample_texts(3)), "--text-column", "txt"), "no field 'txt'")
    one_line_error(cli(write(tmp_path / "p.parquet", sample_texts(3)), "--text-column", "n"), "holds Int64 values")
    (tmp_path / "empty.csv").write_text("")
    one_line_error(cli(tmp_path / "empty.csv"), "holds no rows")
    (tmp_path / "empty.jsonl").write_text("\n")
    one_line_error(cli(tmp_path / "empty.jsonl"), "holds no rows")
    write(tmp_path / "blank.parquet", ["", "  "])
    one_line_error(cli(tmp_path / "blank.parquet", "--text-column", "body"), "every 'body' value is empty")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet")
    one_line_error(cli(tmp_path / "bad.parquet"), "cannot read")
    (tmp_path / "latin.csv").write_bytes("text\ncaf\xe9 au lait\n".encode("latin-1"))
    one_line_error(cli(tmp_path / "latin.csv"), "latin.csv")
    (tmp_path / "broken.jsonl").write_text('{"text": "fine"}\n{"text": \n')
    one_line_error(cli(tmp_path / "broken.jsonl"), "broken.jsonl:2 is not valid JSON")
    one_line_error(cli(tmp_path / "nope.csv"), "does not exist")
    one_line_error(cli(tmp_path), "is a folder")
    (tmp_path / "texts.txt").write_text("a text\n")
    one_line_error(cli(tmp_path / "texts.txt"), "unknown format '.txt'")
    one_line_error(cli(good, "--text-column", "body", "--n", 9), "--n 9 is more than the 3 texts")
    one_line_error(cli(good, "--text-column", "body", "--provider", "openai"), "unknown provider")
    assert llm_env.requests == []  # nothing was sent for any of them
    assert not (tmp_path / "good-annotated").exists()


def test_missing_key_fails_before_anything_is_written(llm_env, tmp_path, monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY")
    one_line_error(cli(write(tmp_path / "in.csv", sample_texts(3)), "--text-column", "body"), "GROQ_API_KEY")
    assert not (tmp_path / "in-annotated").exists()


def _spawn(path: Path, output: Path, config: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gliznet_data.cli", "annotate", str(path), "--text-column",
                             "body", "--output", str(output), "--config", str(config)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_kill_9_then_rerun_labels_every_text_exactly_once(llm_server, tmp_path):
    llm_server.latency = 0.02
    texts = sample_texts(150)
    path = write(tmp_path / "in.parquet", texts)
    config = tmp_path / "run.yaml"
    config.write_text("annotate:\n  concurrency: 4\n  shard_size: 10\n  flush_seconds: 1000\n")
    env = os.environ | {"GROQ_API_KEY": API_KEY, "GROQ_BASE_URL": llm_server.url}
    output = tmp_path / "out"
    proc = _spawn(path, output, config, env)
    deadline = time.monotonic() + 60
    while len(list(output.glob("shard-*.parquet"))) < 3:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    flushed = rows(output).height
    assert 0 < flushed < len(texts)
    before = len(llm_server.requests)

    proc = _spawn(path, output, config, env)
    assert proc.wait(timeout=120) == 0, proc.communicate()
    df = rows(output)
    assert sorted(df["text"]) == sorted(texts) and df["id"].n_unique() == len(texts)
    assert_grounded(df)
    # work already flushed is never redone: only what was missing, plus what was in flight
    assert len(llm_server.requests) - before <= math.ceil((len(texts) - flushed) / 5) + 4
    assert read_manifest(output)["status"] == "complete"
