import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from gliznet_data.diversity import DiversitySampler, merge_weights
from gliznet_data.errors import UserError
from gliznet_data.prompting import BUNDLE_REPLY_SCHEMA, REPLY_SCHEMA, Prompts, default_weights, prompts_dir

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def weights():
    return merge_weights(default_weights(), None)


def test_same_seed_same_draws_and_any_index_stands_alone(weights):
    a, b = DiversitySampler(weights, 7), DiversitySampler(weights, 7)
    assert [a.draw(i) for i in range(50)] == [b.draw(i) for i in range(50)]
    assert a.draw(31) == DiversitySampler(weights, 7).draw(31)  # no need to replay 0..30
    assert [a.draw(i) for i in range(50)] != [DiversitySampler(weights, 8).draw(i) for i in range(50)]


def test_default_tables_cover_the_required_ground(weights):
    assert len(weights["domain"]) >= 40
    for domain in ("technology", "business", "healthcare", "education", "entertainment", "sports", "politics", "science"):
        assert domain in weights["domain"]
    for task in ("topic classification", "sentiment analysis", "intent detection", "emotion detection",
                 "toxicity and content moderation", "customer support routing", "tone and style"):
        assert task in weights["task_type"]
    for genre in ("news article", "product review", "tweet", "email", "chat message", "forum post", "support ticket"):
        assert genre in weights["genre"]


def test_length_buckets_follow_their_weights(weights):
    sampler = DiversitySampler(weights, 0)
    counts = Counter(sampler.draw(i).length_bucket for i in range(6000))
    for bucket, share in (("short", 0.33), ("medium", 0.33), ("long", 0.34)):
        assert abs(counts[bucket] / 6000 - share) < 0.03


def test_target_word_counts_are_drawn_inside_the_bucket(weights):
    sampler = DiversitySampler(merge_weights(default_weights(), {"length_bucket": {"long": 1, "document": 1}}), 0, k=4)
    targets = {"long": [], "document": []}
    for i in range(300):
        draw = sampler.draw(i)
        assert len(draw.target_words) == 4
        targets[draw.length_bucket] += draw.target_words
    assert min(targets["long"]) >= 51 and 190 < max(targets["long"]) <= 200
    assert min(targets["document"]) >= 201 and max(targets["document"]) <= 400
    # The default table never draws a document: its weight is 0 (the paper's 33/33/34 stays).
    assert weights["length_bucket"]["document"] == 0
    assert all(DiversitySampler(weights, 0).draw(i).length_bucket != "document" for i in range(2000))


def test_granularity_is_drawn_and_rendered(weights):
    sampler, prompts = DiversitySampler(weights, 2), Prompts()
    counts = Counter(sampler.draw(i).label_granularity for i in range(3000))
    total = sum(weights["label_granularity"].values())
    for value, weight in weights["label_granularity"].items():
        assert abs(counts[value] / 3000 - weight / total) < 0.03
    seen = set()
    for i in range(200):
        draw = sampler.draw(i)
        user = prompts.render(draw, 5)[1]["content"]
        line = next(x for x in user.splitlines() if x.startswith("- Granularity:"))
        if draw.label_granularity == "broad":
            assert "every label is a broad class name" in line or "every pool label is a broad" in line
        seen.add((draw.label_granularity, line.split(":")[1][:20]))
    assert len({g for g, _ in seen}) == 3


@pytest.mark.parametrize("task,broad", [("sentiment analysis", '"positive", "negative", "neutral"'),
                                        ("emotion detection", '"joy", "sadness", "anger"'),
                                        ("topic classification", '"business", "politics", "sports"'),
                                        ("intent detection", '"question", "complaint"')])
def test_benchmark_tasks_always_ask_for_a_broad_positive_and_negative(task, broad):
    specific = merge_weights(default_weights(), {"task_type": {task: 1}, "label_granularity": {"specific": 1}})
    prompts = Prompts()
    for i in range(40):
        draw = DiversitySampler(specific, 5).draw(i)
        user = prompts.render(draw, 5)[1]["content"]
        assert broad in user, user
        if draw.request_mode == "bundle":
            assert f"- Granularity: 2 of the {draw.pool_size} pool labels are broad class names" in user, user
        else:
            assert (f"- Granularity: in each text, 1 of the {draw.num_labels} positive" in user
                    and f"1 of the {draw.num_not_labels} hard negatives are broad" in user), user
    # Other tasks may be entirely specific.
    other = merge_weights(default_weights(), {"task_type": {"tone and style": 1}, "label_granularity": {"specific": 1}})
    user = prompts.render(DiversitySampler(other, 5).draw(0), 5)[1]["content"]
    assert "none a broad class name" in user and "Broad class names" not in user


def test_topic_requests_quote_the_domains_class_names():
    table = merge_weights(default_weights(), {"task_type": {"topic classification": 1},
                                              "domain": {"pharmaceuticals": 1}, "label_granularity": {"broad": 1}})
    user = Prompts().render(DiversitySampler(table, 1).draw(0), 5)[1]["content"]
    for name in ('"depression"', '"birth control"', '"diabetes, type 2"', '"high blood pressure"', '"business"'):
        assert name in user


def test_system_prompt_allows_broad_sibling_negatives(weights):
    system = " ".join(Prompts().render(DiversitySampler(weights, 0).draw(0), 5)[0]["content"].split())
    assert "broader category" not in system  # the old rule forbade broad classes as negatives
    assert '"politics" vs "business"' in system and '"positive" vs "neutral"' in system


def test_overrides_replace_a_dimension_and_bad_ones_are_user_errors(weights):
    custom = merge_weights(default_weights(), {"domain": {"astronomy": 1}, "num_labels": {"2": 1}})
    sampler = DiversitySampler(custom, 3)
    draws = [sampler.draw(i) for i in range(20)]
    assert {d.domain for d in draws} == {"astronomy"}
    assert {d.num_labels for d in draws} == {2}
    assert all(d.num_not_labels in (3, 4) for d in draws)
    with pytest.raises(UserError, match="unknown diversity dimension"):
        merge_weights(default_weights(), {"colour": {"red": 1}})
    with pytest.raises(UserError, match="length bucket"):
        merge_weights(default_weights(), {"length_bucket": {"huge": 1}})
    with pytest.raises(UserError, match="no values"):
        merge_weights(default_weights(), {"tone": {}})
    with pytest.raises(UserError, match="label granularity"):
        merge_weights(default_weights(), {"label_granularity": {"medium-ish": 1}})
    with pytest.raises(UserError, match="request mode"):
        merge_weights(default_weights(), {"request_mode": {"pairs": 1}})


def test_render_carries_every_parameter_and_asks_for_hard_negatives(weights):
    prompts = Prompts()
    draw = DiversitySampler(weights, 1).draw(4)
    system, user = prompts.render(draw, 7)
    assert system["role"] == "system" and user["role"] == "user"
    assert "hard negative" in system["content"].lower() and "synonym" in system["content"]
    assert '"examples"' in system["content"]
    for value in (draw.domain, draw.task_type, draw.genre, draw.tone, draw.length_bucket):
        assert value in user["content"]
    assert "Write 7 examples" in user["content"]
    assert f"{draw.num_labels} positive label" in user["content"]


def test_prompt_version_is_a_hash_of_the_templates(tmp_path):
    base = Prompts()
    assert len(base.version) == 12 and base.version == Prompts().version
    for name in ("system.j2", "user.j2", "task_hints.yaml"):
        (tmp_path / name).write_text((prompts_dir() / name).read_text())
    assert Prompts(tmp_path).version == base.version
    (tmp_path / "user.j2").write_text((prompts_dir() / "user.j2").read_text() + "\nBe brief.")
    assert Prompts(tmp_path).version != base.version


def test_reply_schema_requires_the_three_fields():
    item = REPLY_SCHEMA["properties"]["examples"]["items"]
    assert set(item["required"]) == {"text", "labels", "not_labels"}
    assert BUNDLE_REPLY_SCHEMA["required"] == ["label_pool", "examples"]
    assert BUNDLE_REPLY_SCHEMA["properties"]["examples"]["items"] == item


def test_an_archived_prompt_version_renders_its_old_requests():
    """Batch results from before the upgrade re-draw through the archived templates and table."""
    import json

    from gliznet_data.generate import GenerateConfig, Plan

    first = json.loads((REPO / "data" / "seed" / "requests.jsonl").read_text().splitlines()[7])
    plan = Plan(GenerateConfig(seed=2026), prompt_version="5ef17431803c")
    assert plan.fingerprint()["diversity"] == "d55dcad66836"
    assert plan.request(7)[1] == first["body"]["messages"]
    assert Plan(GenerateConfig(seed=2026)).prompts.version != "5ef17431803c"
    with pytest.raises(UserError, match="nor one archived"):
        Plan(GenerateConfig(), prompt_version="0123456789ab")


def test_wheel_ships_the_prompts(tmp_path):
    """An installed gliznet-data finds its templates from any directory: they live inside the wheel."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("gliznet-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("system.j2", "user.j2", "diversity.yaml", "task_hints.yaml"):
        assert f"gliznet_data/prompts/{name}" in names
        assert f"gliznet_data/prompts/archive/5ef17431803c/{name}" in names
