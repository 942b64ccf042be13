"""gliznet-model predict: one text, whole files in three formats, streaming parts, resume after an interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from typer.testing import CliRunner

from gliznet_model.cli import app
from gliznet_model.pipeline import load_model
from gliznet_model.predict import PredictConfig, run_predict
from tests.surface_helpers import write_tiny_gliznet

WORDS = "news game team match vote market bank film song rain city school doctor phone data music travel".split()
LABELS = ["sports", "politics", "business"]
runner = CliRunner()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return write_tiny_gliznet(tmp_path_factory.mktemp("predict"))[0]


@pytest.fixture(scope="module")
def loaded(saved):
    return load_model(saved, "cpu")


def texts(n):
    return [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7) % len(WORDS)]} the {WORDS[(i * 3) % len(WORDS)]} {i}"
            for i in range(n)]


def expected(loaded, rows, activation="softmax", labels=LABELS):
    model, tokenizer = loaded
    return model.predict_batch(rows, [labels] * len(rows), tokenizer, activation=activation)


def check_output(frame, rows, predictions):
    assert frame["row"].to_list() == list(range(len(rows)))
    assert frame["text"].to_list() == rows
    for record, prediction in zip(frame.iter_rows(named=True), predictions):
        assert record["labels"] == [s.label for s in prediction.labels]
        assert record["scores"] == pytest.approx([s.score for s in prediction.labels], rel=1e-5, abs=1e-7)
        assert record["top_label"] == prediction.labels[0].label


def test_one_text_prints_the_pipeline_shape(saved, loaded):
    result = runner.invoke(app, ["predict", saved, "--text", "the team won the match", "--labels",
                                 "sports, politics,business", "--multi-label", "--threshold", "0.001",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    (prediction,) = expected(loaded, ["the team won the match"], "sigmoid")
    assert body["sequence"] == "the team won the match"
    assert body["labels"] == [s.label for s in prediction.labels]
    assert body["scores"] == [s.score for s in prediction.labels]
    assert body["predicted"] == [s.label for s in prediction.labels if s.score >= 0.001]


@pytest.mark.parametrize("fmt, out_ext", [("parquet", "parquet"), ("jsonl", "jsonl"), ("csv", "parquet")])
def test_files_in_every_format(tmp_path, saved, loaded, fmt, out_ext):
    rows = texts(45)
    source = tmp_path / f"in.{fmt}"
    frame = pl.DataFrame({"id": list(range(45)), "body": rows})
    {"parquet": frame.write_parquet, "jsonl": frame.write_ndjson, "csv": frame.write_csv}[fmt](source)
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(LABELS) + "\n")
    output = tmp_path / f"scores.{out_ext}"
    result = runner.invoke(app, ["predict", saved, "-i", str(source), "--text-column", "body", "--labels-file",
                                 str(labels_file), "-o", str(output), "--batch-size", "8", "--part-rows", "16",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == summary["rows_scored"] == 45 and summary["complete"]
    assert json.loads((tmp_path / "scores.summary.json").read_text()) == summary
    assert sum(summary["top_label_counts"].values()) == 45
    got = pl.read_parquet(output) if out_ext == "parquet" else pl.read_ndjson(output)
    check_output(got, rows, expected(loaded, rows))
    assert not (tmp_path / f"scores.{out_ext}.parts").exists()
    # A rerun of a finished job does nothing and says so.
    again = runner.invoke(app, ["predict", saved, "-i", str(source), "--text-column", "body", "--labels-file",
                                str(labels_file), "-o", str(output), "--device", "cpu"])
    assert again.exit_code == 0 and json.loads(again.stdout)["already_complete"]


def test_empty_texts_get_empty_scores(tmp_path, loaded):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "the team won"}\n{"text": ""}\n{"text": null}\n\n{"text": "the bank"}\n')
    summary = run_predict(PredictConfig(model="m", input=source, output=tmp_path / "out.jsonl", labels=LABELS,
                                        threshold=0.5), *loaded)
    assert summary["rows"] == 4 and summary["empty_texts"] == 2
    got = pl.read_ndjson(tmp_path / "out.jsonl")
    assert got["labels"].to_list()[1:3] == [[], []] and got["top_label"].to_list()[1:3] == [None, None]
    assert got["predicted"].to_list()[1] == []


def test_interrupted_run_resumes_where_the_parts_end(tmp_path, loaded):
    rows = texts(100)
    source = tmp_path / "in.parquet"
    pl.DataFrame({"text": rows}).write_parquet(source)
    config = PredictConfig(model="m", input=source, output=tmp_path / "out.parquet", labels=LABELS, batch_size=10,
                           part_rows=20, multi_label=True)
    seen = []

    def stop_after_45(done, total):
        seen.append((done, total))
        if done >= 45:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run

    with pytest.raises(KeyboardInterrupt):
        run_predict(config, *loaded, on_progress=stop_after_45)
    assert seen[-1] == (50, 100)
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*"))
    assert parts == ["part-000000000000-000000000020.parquet", "part-000000000020-000000000040.parquet"]
    assert not (tmp_path / "out.parquet").exists()

    summary = run_predict(config, *loaded)
    assert (summary["rows_resumed"], summary["rows_scored"], summary["rows"]) == (40, 60, 100)
    check_output(pl.read_parquet(tmp_path / "out.parquet"), rows, expected(loaded, rows, "sigmoid"))


def test_a_killed_process_loses_only_unwritten_rows(tmp_path, saved, loaded):
    """SIGKILL mid-run (no cleanup at all), then the same command: every row exactly once, same scores."""
    rows = texts(800)
    source = tmp_path / "in.jsonl"
    pl.DataFrame({"text": rows}).write_ndjson(source)
    output = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "gliznet_model.cli", "predict", saved, "-i", str(source), "-o", str(output),
               "--labels", ",".join(LABELS), "--batch-size", "25", "--part-rows", "50", "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    parts_dir = tmp_path / "out.jsonl.parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if parts_dir.is_dir() and len(list(parts_dir.glob("part-*"))) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not output.exists()

    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_resumed"] >= 100 and summary["rows_resumed"] % 50 == 0
    assert summary["rows_resumed"] + summary["rows_scored"] == summary["rows"] == 800
    got = pl.read_ndjson(output)
    assert got["row"].to_list() == list(range(800))
    sample = list(range(0, 800, 23))
    picked = got[sample]
    check_output(picked.with_columns(pl.Series("row", list(range(len(sample))))), [rows[i] for i in sample],
                 expected(loaded, [rows[i] for i in sample]))


@pytest.mark.parametrize("args, needle", [
    (["--text", "hi"], "--labels a,b,c or --labels-file"),
    (["--text", "hi", "--labels", "a", "--labels-file", "x.txt"], "one of them"),
    (["--labels", "a,b"], "give one --text or an --input file"),
    (["--text", "hi", "--input", "in.jsonl", "--labels", "a"], "give one --text or an --input file"),
    (["--text", "hi", "--labels", "a,,b,a"], "duplicate labels"),
    (["--text", "hi", "--labels", "a", "-o", "out.parquet"], "--output goes with --input"),
    (["--text", "hi", "--labels", " , "], "candidate_labels is empty"),
    (["--text", "hi", "--labels-file", "missing.txt"], "cannot read labels file"),
    (["--input", "missing.jsonl", "--labels", "a"], "does not exist"),
    (["--input", "in.txt", "--labels", "a"], "unknown input format"),
    (["--input", "in.jsonl", "--labels", "a", "--text-column", "body"], "no field 'body'"),
    (["--input", "in.jsonl", "--labels", "a", "-o", "out.csv"], "unknown output format"),
    (["--input", "in.jsonl", "--labels", "a", "--threshold", "3"], "invalid setting threshold"),
    (["--input", "in.jsonl", "--labels", "a", "--batch-size", "0"], "invalid setting batch_size"),
    (["--text", "hi", "--labels", "a", "--device", "cuda:7"], "device"),
    (["--text", "hi", "--labels", "a", "--device", "tpu-ish"], "unknown device"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, saved, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"text": "the team"}\n')
    (tmp_path / "in.txt").write_text("x\n")
    result = runner.invoke(app, ["predict", saved, *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_missing_model_and_a_different_job_are_refused(tmp_path, saved):
    result = runner.invoke(app, ["predict", str(tmp_path / "nope"), "--text", "hi", "--labels", "a"])
    assert result.exit_code == 2 and "does not exist" in result.output
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts(30)))
    parts = tmp_path / "in.predictions.parquet.parts"
    parts.mkdir()
    (parts / "run.json").write_text(json.dumps({"labels": ["other"]}))
    (parts / "part-000000000000-000000000010.parquet").write_bytes(b"")
    result = runner.invoke(app, ["predict", saved, "-i", str(source), "--labels", "a,b", "--device", "cpu"])
    assert result.exit_code == 2 and "different job" in result.output
    result = runner.invoke(app, ["predict", saved, "-i", str(source), "--labels", "a,b", "--device", "cpu",
                                 "--overwrite"])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(tmp_path / "in.predictions.parquet").height == 30
    result = runner.invoke(app, ["predict", saved, "-i", str(source), "--labels", "a,c", "--device", "cpu"])
    assert result.exit_code == 2 and "exists from another job" in result.output
