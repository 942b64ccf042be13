import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from gliznet_data.diversity import DiversitySampler, merge_weights
from gliznet_data.errors import UserError
from gliznet_data.prompting import REPLY_SCHEMA, Prompts, default_weights, prompts_dir

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


def test_wheel_ships_the_prompts(tmp_path):
    """An installed gliznet-data finds its templates from any directory: they live inside the wheel."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("gliznet-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("system.j2", "user.j2", "diversity.yaml", "task_hints.yaml"):
        assert f"gliznet_data/prompts/{name}" in names
