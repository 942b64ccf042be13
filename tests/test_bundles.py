"""Cross-role bundles: the rule in the validators, its repair, and bundles through the live and batch routes."""

import asyncio
import json

import polars as pl
import pytest
from pydantic import ValidationError

from gliznet_data.batch import export_requests, ingest, submit
from gliznet_data.errors import UserError
from gliznet_data.generate import GenerateConfig, Plan
from gliznet_data.records import (
    Bundle, Example, ValidationLimits, cross_role_violations, repair_bundle, reject_reason, validate_reply,
)
from tests.conftest import FAST_RETRY, run

PROVENANCE = {"domain": "news", "task_type": "topic classification", "length_bucket": "short", "genre": "news article",
              "tone": "neutral", "request_mode": "bundle", "request_index": 0, "provider": "p", "model": "m",
              "prompt_version": "v", "seed": 0}


def ex(text, labels, not_labels):
    return {"text": text, "labels": labels, "not_labels": not_labels}


# A benchmark-like bundle: every text labelled against the pool {politics, business, sports, technology}.
GOOD = [
    ex("Parliament passed the budget after a late-night vote.", ["politics"], ["business", "sports", "technology"]),
    ex("Shares in the carmaker jumped after strong quarterly profits.", ["business"], ["politics", "sports",
                                                                                       "technology"]),
    ex("The striker scored twice as the champions won the derby.", ["sports"], ["politics", "business",
                                                                                 "technology"]),
    ex("The chipmaker unveiled a faster processor for laptops.", ["technology", "business"], ["politics", "sports"]),
]


def examples(rows):
    return [Example.model_validate(r) for r in rows]


def test_a_good_bundle_passes_untouched():
    Bundle(examples=examples(GOOD))
    repair = repair_bundle(examples(GOOD))
    assert repair.rejected == [] and repair.labels_dropped == 0
    assert [e.labels for e in repair.kept] == [r["labels"] for r in GOOD]


def test_a_label_in_one_role_fails_the_rule_and_is_dropped_where_the_record_survives():
    rows = [dict(r) for r in GOOD]
    rows[0] = ex(rows[0]["text"], ["politics", "elections"], rows[0]["not_labels"] + ["weather"])  # one-role labels
    with pytest.raises(ValidationError) as info:
        Bundle(examples=examples(rows))
    assert reject_reason(info.value) == "cross_role"
    assert cross_role_violations(examples(rows)) == {"elections", "weather"}
    repair = repair_bundle(examples(rows))
    assert repair.rejected == [] and repair.labels_dropped == 2
    assert repair.kept[0].labels == ["politics"] and "weather" not in repair.kept[0].not_labels
    Bundle(examples=repair.kept)


def test_a_record_left_without_labels_is_a_cross_role_reject_and_the_repair_cascades():
    rows = [
        ex("Parliament passed the budget after a late-night vote.", ["politics"], ["business"]),
        ex("Shares in the carmaker jumped after strong profits.", ["business"], ["politics"]),
        # "sports" is a positive here only: dropping it leaves no positive, so the text goes; then
        # "technology", a negative only of that text, is gone too and nothing else changes.
        ex("The striker scored twice in the derby.", ["sports"], ["technology"]),
    ]
    repair = repair_bundle(examples(rows))
    assert repair.rejected == [2] and len(repair.kept) == 2
    Bundle(examples=repair.kept)
    # Two unrelated texts share no label at all: nothing survives, and an empty bundle keeps the rule.
    unrelated = [ex("The striker scored twice in the derby.", ["sports"], ["tennis"]),
                 ex("The bank raised its rates today.", ["monetary policy"], ["fiscal policy"])]
    assert repair_bundle(examples(unrelated)).rejected == [0, 1]


def test_repair_respects_the_limits():
    rows = [ex("Parliament passed the budget after a late-night vote.", ["politics"], ["business", "weather"]),
            ex("Shares in the carmaker jumped after strong profits.", ["business"], ["politics"])]
    assert repair_bundle(examples(rows)).rejected == []
    assert repair_bundle(examples(rows), ValidationLimits(min_not_labels=2)).rejected == [0, 1]


def test_validate_reply_counts_cross_role_beside_the_other_reasons():
    items = [dict(r) for r in GOOD] + [GOOD[0], ex("", ["politics"], ["sports"]),
                                       ex("The orchestra premiered a new symphony.", ["music"], ["sports"])]
    check = validate_reply(items, PROVENANCE, bundle=True)
    assert check.rejects == {"duplicate": 1, "empty_text": 1, "cross_role": 1}
    assert len(check.records) == 4 and check.labels_dropped == 0
    assert [p[:2] for p in check.problems] == [(4, "duplicate"), (5, "empty_text"), (6, "cross_role")]
    # The same texts as single requests: no rule, the music text is kept.
    assert len(validate_reply(items, PROVENANCE | {"request_mode": "single"}).records) == 5
    # Exact N: a bundle is checked whole, then only its first `room` records are kept.
    assert [r.text for r in validate_reply(GOOD, PROVENANCE, bundle=True, room=2).records] == [
        GOOD[0]["text"], GOOD[1]["text"]]


def _groups_keep_the_rule(df):
    for _, group in df.group_by("request_index"):
        Bundle(examples=[Example.model_validate(row) for row in group.iter_rows(named=True)])


def test_generate_in_bundle_mode_end_to_end(llm_env, tmp_path):
    manifest = run(tmp_path, n=20, bundle_share=1.0, concurrency=2)
    df = pl.read_parquet(tmp_path / "shard-*.parquet")
    assert df.height == 20 and set(df["request_mode"]) == {"bundle"}
    assert manifest["rejects"] == {} and manifest["counts"]["cross_role_labels_dropped"] == 0
    _groups_keep_the_rule(df)
    prompt = next(r for r in llm_env.requests if r["path"].endswith("/chat/completions"))["body"]["messages"]
    assert "one shared pool of" in prompt[1]["content"] and "label_pool" in prompt[0]["content"]
    plan = Plan(GenerateConfig(bundle_share=1.0))
    assert set(df["label_granularity"]) <= {"broad", "mixed", "specific"}
    for index, group in df.group_by("request_index"):
        draw = plan.sampler.draw(index[0])
        assert {len(p) + len(n) for p, n in zip(group["labels"], group["not_labels"])} == {draw.pool_size}
    # Top up after a finished run: still exactly N, every bundle still keeps the rule.
    run(tmp_path, n=33, bundle_share=1.0)
    df = pl.read_parquet(tmp_path / "shard-*.parquet")
    assert df.height == 33 and df["id"].n_unique() == 33


def test_bundle_faults_are_repaired_or_counted(llm_env, tmp_path):
    llm_env.faults.extend(["one_role", "duplicates"])
    manifest = run(tmp_path, n=10, bundle_share=1.0, concurrency=1)
    # one_role: the lonely label is dropped, its text kept. duplicates: one text is left alone, and a
    # single text cannot hold a label in both roles.
    assert manifest["counts"]["cross_role_labels_dropped"] == 1
    assert manifest["rejects"] == {"duplicate": 4, "cross_role": 1}
    df = pl.read_parquet(tmp_path / "shard-*.parquet")
    assert df.height == 10 and "lonely label" not in df["labels"].explode().to_list()
    _groups_keep_the_rule(df)


def test_bundle_share_setting_and_a_single_example_per_request(llm_env, tmp_path):
    none = Plan(GenerateConfig(bundle_share=0.0))
    assert {none.sampler.draw(i).request_mode for i in range(200)} == {"single"}
    plan = Plan(GenerateConfig())  # the diversity table's default, 30%
    share = sum(plan.sampler.draw(i).request_mode == "bundle" for i in range(3000)) / 3000
    assert abs(share - 0.3) < 0.03
    one = Plan(GenerateConfig(bundle_share=1.0, examples_per_request=1))
    assert {one.sampler.draw(i).request_mode for i in range(50)} == {"single"}
    with pytest.raises(ValueError):
        GenerateConfig(bundle_share=1.5)


def test_batch_round_trip_with_bundles(llm_env, tmp_path):
    cfg = GenerateConfig.model_validate({"n": 40, "seed": 9, "output": tmp_path / "out", "retry": FAST_RETRY,
                                         "bundle_share": 0.5})
    requests = tmp_path / "requests.jsonl"
    export_requests(cfg, requests)
    lines = [json.loads(x) for x in requests.read_text().splitlines()]
    plan = Plan(cfg)
    modes = [plan.sampler.draw(i).request_mode for i in range(len(lines))]
    assert "bundle" in modes and "single" in modes
    for line, mode in zip(lines, modes):
        assert ("one shared pool of" in line["body"]["messages"][1]["content"]) == (mode == "bundle")
    asyncio.run(submit(cfg, requests, poll_seconds=0.01))
    manifest = ingest(cfg, tmp_path / "requests.results.jsonl", requests)
    df = pl.read_parquet(tmp_path / "out" / "shard-*.parquet")
    assert df.height == 40 and manifest["rejects"] == {}
    # The custom_id re-draws the request mode and granularity of every record.
    for row in df.iter_rows(named=True):
        draw = plan.sampler.draw(row["request_index"])
        assert (row["request_mode"], row["label_granularity"]) == (draw.request_mode, draw.label_granularity)
    _groups_keep_the_rule(df.filter(pl.col("request_mode") == "bundle"))
    # Another bundle share is another diversity table: its results are refused, not mislabelled.
    with pytest.raises(UserError, match="another diversity table"):
        ingest(cfg.model_copy(update={"bundle_share": 0.2}), tmp_path / "requests.results.jsonl", requests)


def test_cli_bundle_share_flag_from_export_to_ingest(llm_env, tmp_path):
    from typer.testing import CliRunner

    from gliznet_data.cli import app

    runner = CliRunner()
    requests, out = tmp_path / "requests.jsonl", tmp_path / "shards"
    assert runner.invoke(app, ["batch", "export", "--n", "20", "--bundle-share", "0.6", "--output",
                               str(requests)]).exit_code == 0
    assert runner.invoke(app, ["batch", "submit", str(requests), "--poll", "0.01"]).exit_code == 0
    results = str(tmp_path / "requests.results.jsonl")
    refused = runner.invoke(app, ["batch", "ingest", results, "--requests", str(requests), "--output", str(out)])
    assert refused.exit_code == 2 and "another diversity table" in refused.output
    done = runner.invoke(app, ["batch", "ingest", results, "--requests", str(requests), "--output", str(out),
                               "--bundle-share", "0.6"])
    assert done.exit_code == 0 and "20 records" in done.output, done.output
