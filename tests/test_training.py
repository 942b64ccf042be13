"""Training on a tiny random backbone: loss, checkpoints, exact resume, early stopping, save/load,
and the evaluate command with GliZNet and its baselines."""

import json
import random

import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from gliznet_model import GliZNetForSequenceClassification
from gliznet_model.cli import app
from gliznet_model.data import (DataError, LabelSampler, LabelSampling, epoch_order, length_grouped_order,
                                load_splits)
from gliznet_model.training import TrainConfig, train
from tests.model_helpers import write_tiny_backbone

TOPICS = {
    "sports": "game team match score player won lost football tennis",
    "politics": "election vote government minister law policy country",
    "business": "market stock price company bank money profit economy",
    "technology": "phone computer software data internet research science",
    "health": "health doctor hospital medicine food weather school",
}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return write_tiny_backbone(tmp_path_factory.mktemp("tiny"), max_positions=128)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Texts built from each topic's words; the other topics are the hard negatives."""
    rng = random.Random(0)
    rows = []
    for i in range(120):
        topic = rng.choice(sorted(TOPICS))
        words = TOPICS[topic].split()
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 12)))
        others = [t for t in TOPICS if t != topic]
        rows.append({"text": f"{text} {i}", "labels": [topic], "not_labels": rng.sample(others, 3)})
    folder = tmp_path_factory.mktemp("shards")
    pl.DataFrame(rows[:60]).write_parquet(folder / "shard-00000.parquet")
    (folder / "nested").mkdir()
    pl.DataFrame(rows[60:]).write_parquet(folder / "nested" / "shard-00001.parquet")
    return folder


def config(backbone, shards, out, **over):
    values = dict(data=str(shards), backbone=backbone, output_dir=out, batch_size=8, lr=1e-3, head_lr=1e-2,
                  max_length=96, warmup_ratio=0.0, log_every=1, seed=3)
    return TrainConfig(**(values | over))


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_loads_folders_recursively_and_splits_90_10(shards):
    splits = load_splits(str(shards), seed=1)
    assert len(splits["train"]) == 108 and len(splits["validation"]) == 12
    assert load_splits(str(shards), seed=1)["validation"] == splits["validation"]


def test_label_sampling_keeps_positives_and_reshuffles():
    from gliznet_model.data import Example

    examples = [Example("t", ("a_b", "c"), ("d", "e", "f")), Example("u", ("g",), ("h",))]
    sampler = LabelSampler(examples, LabelSampling("hard", max_labels=3, underscore_rate=1.0), seed=0)
    labels, targets = sampler.sample(0, epoch=0)
    assert sorted(x for x, t in zip(labels, targets) if t == 1.0) == ["a b", "c"]
    assert len(labels) == 3 and sampler.sample(0, 0) == (labels, targets)
    assert {tuple(sampler.sample(0, e)[0]) for e in range(8)} != {tuple(labels)}  # order changes by epoch
    random_negatives = LabelSampler(examples, LabelSampling("random", 8), 0).sample(1, 0)
    assert random_negatives[1].count(0.0) == 1 and random_negatives[0][random_negatives[1].index(0.0)] not in ("g", "h")
    assert LabelSampler(examples, LabelSampling("none", 8), 0).sample(0, 0)[1] == [1.0, 1.0]


def test_loss_goes_down_and_the_best_model_loads(backbone, shards, tmp_path):
    summary = train(config(backbone, shards, tmp_path, max_steps=40, eval_every=20))
    losses = [m["train_loss"] for m in metrics(tmp_path) if "train_loss" in m]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert any("validation" in m for m in metrics(tmp_path))
    assert summary["steps"] == 40 and (tmp_path / "checkpoints").is_dir()
    assert "GliZNet" in (tmp_path / "README.md").read_text()
    model, tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(tmp_path)
    prediction = model.predict_example("election vote minister", list(TOPICS), tokenizer)
    assert {s.label for s in prediction.labels} == set(TOPICS)
    assert json.loads((tmp_path / "train_summary.json").read_text())["best"]["step"] in (20, 40)


def test_resume_equals_an_uninterrupted_run(backbone, shards, tmp_path):
    whole = tmp_path / "whole"
    train(config(backbone, shards, whole, max_steps=12, eval_every=4, negatives="random"))

    broken = tmp_path / "broken"

    def crash(info):
        if info.step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(backbone, shards, broken, max_steps=12, eval_every=4, negatives="random"), on_step=crash)
    # The evaluation at step 4 checkpointed, and so did the interrupt at step 6: nothing done is lost.
    assert sorted(p.name for p in (broken / "checkpoints").iterdir()) == ["step-0000004", "step-0000006"]
    train(config(backbone, shards, broken, max_steps=12, eval_every=4, negatives="random", resume=True))

    state_a = torch.load(whole / "checkpoints" / "step-0000012" / "optimizer.bin", weights_only=False)
    state_b = torch.load(broken / "checkpoints" / "step-0000012" / "optimizer.bin", weights_only=False)
    for pa, pb in zip(state_a["state"].values(), state_b["state"].values()):
        assert torch.equal(pa["exp_avg"], pb["exp_avg"])
    from safetensors.torch import load_file

    wa = load_file(whole / "checkpoints" / "step-0000012" / "model.safetensors")
    wb = load_file(broken / "checkpoints" / "step-0000012" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [m for m in metrics(whole) if "validation" in m] == [m for m in metrics(broken) if "validation" in m]


def test_early_stopping(backbone, shards, tmp_path):
    # Rates this small leave the validation metric where it is: no improvement after the first check.
    summary = train(config(backbone, shards, tmp_path, max_steps=30, eval_every=2, patience=2, lr=1e-12,
                           head_lr=1e-12))
    assert summary["early_stopped"] and summary["steps"] == 6
    assert summary["best"]["step"] == 2


def test_train_command_and_bad_input(backbone, shards, tmp_path):
    runner = CliRunner()
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"train:\n  backbone: {backbone}\n  batch_size: 8\n  max_length: 96\n  max_steps: 4\n")
    result = runner.invoke(app, ["train", str(shards), "--config", str(cfg), "-o", str(tmp_path / "run"),
                                 "--loss", "bce", "--similarity", "dot"])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["losses"] == {"bce": 1.0} and saved["similarity"] == "dot"

    empty = tmp_path / "empty.parquet"
    pl.DataFrame({"text": [], "labels": [], "not_labels": []},
                 schema={"text": pl.String, "labels": pl.List(pl.String), "not_labels": pl.List(pl.String)}
                 ).write_parquet(empty)
    wrong = tmp_path / "wrong.parquet"
    pl.DataFrame({"body": ["x"]}).write_parquet(wrong)
    stringly = tmp_path / "stringly.jsonl"  # "labels": "sports" would otherwise train on s, p, o, r, t, s
    stringly.write_text(json.dumps({"text": "the match", "labels": "sports", "not_labels": ["politics"]}) + "\n")
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text(json.dumps({"text": "the match", "labels": [1, 2], "not_labels": []}) + "\n")
    (tmp_path / "data").mkdir()
    for args, needle in [([str(tmp_path / "missing")], "does not exist"),
                         ([str(stringly)], "column labels must hold lists of strings, got str 'sports'"),
                         ([str(numbers)], "column labels must hold lists of strings"),
                         ([str(tmp_path / "data" / "seeds")], "does not exist"),
                         ([str(shards), "--push-to-hub", "me/model"], "needs a Hub token"),
                         ([str(empty)], "no usable examples"),
                         ([str(wrong)], "lacks column(s) text (or sentence), labels, not_labels"),
                         ([str(shards), "--negatives", "some"], "invalid setting negatives"),
                         ([str(shards), "--loss", "magic"], "losses")]:
        result = runner.invoke(app, ["train", *args, "--config", str(cfg), "-o", str(tmp_path / "bad")])
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output and "Traceback" not in result.output, result.output


def test_evaluate_refuses_a_folder_as_json_output_before_any_work(backbone, shards, tmp_path):
    train(config(backbone, shards, tmp_path / "m", max_steps=1))
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "m"), "--data", str(shards), "--json",
                                      str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.output and "done" not in result.output


def test_evaluate_names_a_truncated_model_file(backbone, shards, tmp_path):
    train(config(backbone, shards, tmp_path / "m", max_steps=1))
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "m"), "--data", str(shards)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "cannot load model" in result.output and "Safetensor" in result.output


def test_zshot_layout_with_sentence_column(tmp_path):
    path = tmp_path / "z.jsonl"
    path.write_text("\n".join(json.dumps({"sentence": f"s {i}", "labels": ["a"], "not_labels": ["b"]})
                              for i in range(20)) + "\n")
    splits = load_splits(str(path))
    assert len(splits["train"]) == 18 and splits["train"][0].text.startswith("s ")
    with pytest.raises(DataError, match="Hub"):
        load_splits("someone/nothing-here-offline")


def test_evaluate_command_with_baselines(backbone, shards, tmp_path):
    train(config(backbone, shards, tmp_path / "m", max_steps=4))
    out = tmp_path / "results.json"
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "m"), "--data", str(shards), "--benchmark",
                                      "bbc_news", "--limit", "20", "--baseline", "untrained", "--baseline",
                                      "embedding", "--json", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert [(r["dataset"], r["system"]) for r in results] == [
        ("bbc_news", "gliznet"), ("bbc_news", "gliznet (untrained)"), ("bbc_news", "embedding"),
        (f"{shards} [held-out]", "gliznet"), (f"{shards} [held-out]", "gliznet (untrained)"),
        (f"{shards} [held-out]", "embedding")]
    assert results[0]["texts"] == 20 and 0 <= results[0]["accuracy"] <= 1
    assert results[3]["pairs"] == 12 * 4 and results[3]["texts_per_second"] > 0
    assert "| bbc_news | embedding |" in result.output


def test_ablate_prints_one_table(backbone, shards, tmp_path):
    cfg = tmp_path / "ablations.yaml"
    cfg.write_text(f"ablate:\n  base: {{backbone: {backbone}, batch_size: 8, max_length: 96, max_steps: 2}}\n"
                   "  runs:\n    dot: {similarity: dot}\n    negatives=none: {negatives: none}\n")
    out = tmp_path / "results.json"
    result = CliRunner().invoke(app, ["ablate", str(shards), "--config", str(cfg), "-o", str(tmp_path / "runs"),
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert [r["system"] for r in json.loads(out.read_text())] == [
        "dot", "negatives=none", "embedding", "untrained (dot)", "untrained (negatives=none)"]
    assert json.loads((tmp_path / "runs" / "dot" / "config.json").read_text())["similarity"] == "dot"
    assert "| dot |" in result.output and "| negatives=none |" in result.output


def test_evaluate_scores_exactly_the_records_training_held_out(backbone, shards, tmp_path):
    from gliznet_model.benchmarks import BenchmarkError, load_eval_data
    from gliznet_model.data import example_id

    run = tmp_path / "run"
    train(config(backbone, shards, run, max_steps=2, validation_fraction=0.2, seed=11))
    record = json.loads((run / "data_split.json").read_text())
    held_out = load_eval_data(str(shards), run_dir=run)
    assert len(held_out.texts) == len(record["validation_ids"]) == 24
    trained_on = {example_id(e) for e in load_splits(str(shards), 0.2, seed=11)["train"]}
    assert not {example_id(type("E", (), {"text": t})()) for t in held_out.texts} & trained_on
    # Another seed at evaluation time must not change what is scored: the record, not a guess, decides.
    assert load_eval_data(str(shards), run_dir=run).texts == held_out.texts

    (run / "data_split.json").unlink()
    with pytest.raises(BenchmarkError, match="no split record"):
        load_eval_data(str(shards), run_dir=run)
    assert len(load_eval_data(str(shards), split="all", run_dir=run).texts) == 120

    other = tmp_path / "other.parquet"
    pl.read_parquet(shards / "shard-00000.parquet").write_parquet(other)
    train(config(backbone, shards, run, max_steps=1))
    with pytest.raises(BenchmarkError, match="not .*its held-out split does not apply"):
        load_eval_data(str(other), run_dir=run)
    smaller = tmp_path / "smaller"
    smaller.mkdir()
    pl.read_parquet(shards / "shard-00000.parquet").head(5).write_parquet(smaller / "a.parquet")
    train(config(backbone, smaller, run, max_steps=1))
    pl.read_parquet(shards / "shard-00000.parquet").head(1).write_parquet(smaller / "a.parquet")
    with pytest.raises(BenchmarkError, match="changed since"):
        load_eval_data(str(smaller), run_dir=run)


def test_resume_refuses_changed_settings_and_broken_checkpoints(backbone, shards, tmp_path):
    run = tmp_path / "run"
    train(config(backbone, shards, run, max_steps=4, eval_every=2))
    with pytest.raises(ValueError, match="changed settings .*batch_size: 8 -> 4"):
        train(config(backbone, shards, run, max_steps=6, eval_every=2, batch_size=4, resume=True))
    with pytest.raises(ValueError, match="changed settings .*similarity"):
        train(config(backbone, shards, run, max_steps=6, eval_every=2, similarity="dot", resume=True))
    latest = sorted((run / "checkpoints").glob("step-*"))[-1]
    optimizer_file = latest / "optimizer.bin"
    optimizer_file.write_bytes(optimizer_file.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot be loaded"):
        train(config(backbone, shards, run, max_steps=6, eval_every=2, resume=True))
    # More steps with the same settings is what --resume is for.
    (latest / "trainer_state.json").unlink()
    summary = train(config(backbone, shards, run, max_steps=6, eval_every=2, resume=True))
    assert summary["steps"] == 6


def test_a_failed_save_leaves_the_previous_best_model_whole(backbone, shards, tmp_path, monkeypatch):
    from gliznet_model import training

    run = tmp_path / "run"
    train(config(backbone, shards, run, max_steps=2, eval_every=2))
    before = (run / "model.safetensors").read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training.GliZNETTokenizer, "save_pretrained", full_disk)
    with pytest.raises(OSError):
        train(config(backbone, shards, run, max_steps=2, eval_every=2, seed=5))
    assert (run / "model.safetensors").read_bytes() == before
    GliZNetForSequenceClassification.from_pretrained_with_tokenizer(run)  # still loads


def test_one_training_per_run_folder(backbone, shards, tmp_path):
    """A second train into a folder a live run holds is refused with the holder's pid; a lock left by a killed
    process does not block (the kernel dropped it)."""
    import subprocess
    import sys

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from gliznet_model.run_lock import RunLock\n"
        f"lock = RunLock(Path({str(run)!r}), 'gliznet-model train').__enter__(); print('held', flush=True); "
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ValueError, match=f"in use by gliznet-model train \\(pid {holder.pid}\\)"):
        train(config(backbone, shards, run, max_steps=1))
    holder.kill()
    holder.wait()
    assert (run / ".gliznet.lock").exists()  # stale, unlocked
    summary = train(config(backbone, shards, run, max_steps=1))
    assert summary["steps"] == 1 and not (run / ".gliznet.lock").exists()


def test_gated_layout_opens_its_gate_and_keeps_it_through_the_merge(backbone, shards, tmp_path):
    """The gate is one logit-unit scalar: it gets its own step size, and weight averaging leaves it as trained
    (averaged with its closed start it would shut again). The saved tokenizer reads inference_max_length."""
    gates = {}
    for alpha in (1.0, 0.5):
        out = tmp_path / str(alpha)
        # No clipping: scaled down with the whole gradient, the shut gate's tiny gradient would fall below Adam's eps.
        train(config(backbone, shards, out, max_steps=1, eval_every=1, attention_layout="gated", gate_lr=0.5,
                     merge_alpha=alpha, max_length=64, inference_max_length=96, max_grad_norm=1e6))
        model, tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer(out)
        gates[alpha] = model.layout.gate.item()
    # Adam's first step moves a parameter by its learning rate whatever the gradient's size: 0.5 here, where the
    # head's step would move it 0.01.
    assert abs(gates[1.0] + 8.0) == pytest.approx(0.5, abs=0.05), gates
    assert gates[0.5] == pytest.approx(gates[1.0], abs=1e-6)  # not (gate + (-8)) / 2
    assert tokenizer.max_length == 96
    assert json.loads((out / "train_config.json").read_text())["max_length"] == 64
    with pytest.raises(ValueError, match="inference_max_length 1000 exceeds"):
        train(config(backbone, shards, tmp_path / "long", max_steps=1, attention_layout="gated",
                     inference_max_length=1000))
    assert not (tmp_path / "long" / "model.safetensors").exists()


def test_length_grouped_batches_hold_the_same_examples_with_less_padding():
    import numpy as np

    lengths = np.random.default_rng(0).integers(10, 500, size=1000)
    order = epoch_order(1000, 0, 7)
    grouped = length_grouped_order(order, lengths, 16, 7, 0, group=10)
    assert sorted(grouped.tolist()) == list(range(1000))
    assert np.array_equal(grouped, length_grouped_order(order, lengths, 16, 7, 0, group=10))  # resumable
    assert not np.array_equal(grouped, length_grouped_order(order, lengths, 16, 7, 1, group=10))

    def padded_tokens(o):
        return sum(int(lengths[o[i:i + 16]].max()) * len(o[i:i + 16]) for i in range(0, len(o), 16))

    assert padded_tokens(grouped) < 0.7 * padded_tokens(order)
    # Every full batch comes from one run of 10 batches of the plain order; the short one (1000 = 62 * 16 + 8),
    # the 8 shortest of the last run, stays last so no window of 16 straddles two batches.
    run_of = {int(index): position // 160 for position, index in enumerate(order)}
    assert all(len({run_of[int(i)] for i in grouped[start:start + 16]}) == 1 for start in range(0, 992, 16))
    tail = sorted(order[960:].tolist(), key=lambda i: -lengths[i])[32:]
    assert sorted(grouped[-8:].tolist()) == sorted(tail)
