"""gliznet-data push against a local fake Hub: round trip through `datasets`, splits, idempotence, faults, secrets."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from gliznet_data.cli import app
from gliznet_data.generate import GenerateConfig, generate
from tests.fakes.hub_server import TOKEN, FakeHubServer
from tests.fakes.llm_server import API_KEY, FakeLLMServer

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent
SECRET = "hf_this_token_must_never_leak_0000000000"
FAST = "push:\n  retries: 3\n  retry_wait: 0.01\n"
CLI = [sys.executable, "-m", "gliznet_data.cli"]  # a fresh process: env read at import, as in real use
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any name lookup beyond this machine fails the test: the push must only talk to HF_ENDPOINT."""
    real = socket.getaddrinfo
    blocked: list[str] = []

    def guard(host, *args, **kwargs):
        if host not in LOCAL_HOSTS:
            blocked.append(str(host))
            raise OSError(f"test blocked a lookup of {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guard)
    yield
    assert not blocked, f"tried to reach {blocked}"


def _generate(output: Path, n: int, server: FakeLLMServer) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GROQ_API_KEY", API_KEY)
        mp.setenv("GROQ_BASE_URL", server.url)
        asyncio.run(generate(GenerateConfig(n=n, output=output, concurrency=4)))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Real shards from the real pipeline: 240 records, then the same run grown to 320 (more data later)."""
    server = FakeLLMServer().start()
    try:
        base = tmp_path_factory.mktemp("gen") / "small"
        _generate(base, 240, server)
        grown = base.with_name("grown")
        shutil.copytree(base, grown)
        _generate(grown, 320, server)
    finally:
        server.stop()
    return base, grown


@pytest.fixture
def shards(generated, tmp_path):
    """A private copy: a push writes push.json beside the shards."""
    return shards_copy(generated[0], tmp_path / "shards")


@pytest.fixture
def hub(monkeypatch):
    server = FakeHubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield server
    server.stop()
    assert server.unrouted == [], "the client used routes the fake does not speak"


def cli(*args):
    return runner.invoke(app, ["push", *[str(a) for a in args]])


def ok(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line_error(result, needle: str) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def fast_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "push.yaml"
    path.write_text(FAST + extra)
    return path


def records(path: Path) -> dict[str, dict]:
    df = pl.read_parquet(sorted(path.glob("shard-*.parquet")))
    return {row["id"]: row for row in df.iter_rows(named=True)}


def shards_copy(source: Path, target: Path) -> Path:
    return Path(shutil.copytree(source, target))


def hub_frame(server: FakeHubServer, repo: str, split: str) -> pl.DataFrame:
    files = server.repos[repo].head.files
    parts = [pl.read_parquet(io.BytesIO(files[p])) for p in sorted(files) if p.startswith(f"data/{split}-")]
    return pl.concat(parts) if parts else pl.DataFrame()


def front_matter(readme: bytes) -> dict:
    text = readme.decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def unit(seed: int, kind: str, key: str) -> float:
    """The documented split rule, restated independently of the code under test."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{kind}:{key}".encode()).digest()[:8], "big") / 2**64


def subprocess_env(server: FakeHubServer, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=server.url, HF_HOME=str(home), HF_HUB_OFFLINE="0", HF_HUB_DISABLE_TELEMETRY="1",
               HF_UPDATE_DOWNLOAD_COUNTS="0", HF_DATASETS_CACHE=str(home / "datasets"),
               HF_DATASETS_DISABLE_PROGRESS_BARS="1", PYTHONPATH=str(ROOT), **extra)
    return env


READER = r"""
import json, socket, sys
real, blocked = socket.getaddrinfo, []
def guard(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1"):
        blocked.append(str(host))
        raise OSError("blocked")
    return real(host, *args, **kwargs)
socket.getaddrinfo = guard
import datasets
# The dataset viewer is a separate service (datasets-server.<host>); the fake stands in for the Hub only.
datasets.config.USE_PARQUET_EXPORT = False
ds = datasets.load_dataset(sys.argv[1])
print(json.dumps({
    "splits": {name: [{k: row[k] for k in ("id", "text", "labels", "not_labels")} for row in split]
               for name, split in ds.items()},
    "features": {name: {k: str(v) for k, v in split.features.items()} for name, split in ds.items()},
    "blocked": blocked,
}))
"""


def test_round_trip_through_datasets(hub, shards, tmp_path):
    summary = ok(cli(shards, "--repo-id", "alice/zs", "--unseen-labels", "0.1", "--json"))
    assert summary["changed"] and summary["attempts"] == 1 and summary["commit"]
    assert set(summary["splits"]) == {"train", "validation", "test"}

    proc = subprocess.run([sys.executable, "-c", READER, "alice/zs"], capture_output=True, text=True, timeout=120,
                          env=subprocess_env(hub, tmp_path / "home"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded["blocked"] == [] and hub.unrouted == []  # no Xet, no LFS, nothing beyond the fake's routes

    original = records(shards)
    held = set(summary["held_out_labels"])
    seen: dict[str, str] = {}
    for split, rows in loaded["splits"].items():
        assert len(rows) == summary["splits"][split]
        for row in rows:
            assert row["id"] not in seen, "a record in two splits"
            seen[row["id"]] = split
            source = original[row["id"]]
            # outside test, held-out hard negatives are dropped; nothing else changes
            kept = [x for x in source["not_labels"] if split == "test" or x not in held]
            assert (row["text"], row["labels"], row["not_labels"]) == (source["text"], list(source["labels"]), kept)
    assert set(seen) == set(original)  # same rows, nothing lost, nothing added
    for rid, split in seen.items():
        if split != "test":
            assert (split == "validation") == (unit(0, "id", rid) < 0.1)
    features = loaded["features"]["train"]
    assert features["labels"] == "List(Value('string'))" and features["text"] == "Value('string')"
    assert set(features) >= {"id", "text", "labels", "not_labels", "domain", "provider", "model", "created_at"}

    meta = front_matter(hub.repos["alice/zs"].head.files["README.md"])
    assert meta["task_categories"] == ["zero-shot-classification", "text-classification"]
    assert "synthetic" in meta["tags"] and meta["license"] == "apache-2.0" and meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": s, "path": f"data/{s}-*"} for s in ("train", "validation", "test")]}]


def test_card_tells_how_the_data_was_made(hub, shards):
    ok(cli(shards, "--repo-id", "alice/card", "--unseen-labels", "0.1", "--json"))
    card = hub.repos["alice/card"].head.files["README.md"].decode()
    manifest = json.loads((shards / "manifest.json").read_text())
    for needle in ("## Statistics", "## How it was generated", "## Columns", "## Example", "## Limitations",
                   manifest["fingerprint"]["model"], manifest["fingerprint"]["prompt_version"],
                   manifest["fingerprint"]["diversity"], "| records | 240 |", "`not_labels`", "Diversity parameters",
                   "zero-shot split"):
        assert needle in card, needle
    assert str(shards) not in card  # the run's local paths stay local


def crossed(shards: Path, target: Path) -> Path:
    """The shards with each record's hard negatives joined by its neighbour's first positive, so that labels
    are positives in some records and negatives in others, as in real data."""
    target.mkdir()
    df = pl.read_parquet(sorted(shards.glob("shard-*.parquet")))
    labels, negatives = df["labels"].to_list(), df["not_labels"].to_list()
    for i, own in enumerate(labels):
        borrowed = labels[(i + 1) % len(labels)][0]
        if borrowed not in own and borrowed not in negatives[i]:
            negatives[i] = negatives[i] + [borrowed]
    df.with_columns(pl.Series("not_labels", negatives, dtype=df.schema["not_labels"])) \
        .write_parquet(target / "shard-00000.parquet")
    return target


def hold_out_rate(share: float) -> float:
    """The documented rate: a record with 2.5 positives lands in test with chance ``share``."""
    return 1 - (1 - share) ** (1 / 2.5)


def test_unseen_labels_never_reach_train_or_validation(shards, tmp_path):
    shards = crossed(shards, tmp_path / "crossed")
    source = records(shards)
    summary = ok(cli(shards, "--to-folder", tmp_path / "out", "--unseen-labels", "0.15", "--split-seed", 7, "--json"))
    held = set(summary["held_out_labels"])
    rate = hold_out_rate(0.15)
    distinct = {x for row in source.values() for x in list(row["labels"]) + list(row["not_labels"])}
    assert held == {label for label in distinct if unit(7, "label", label) < rate} and held
    frames = {s: pl.read_parquet(sorted((tmp_path / "out" / "data").glob(f"{s}-*.parquet"))) for s in summary["splits"]}
    dropped = trimmed = moved = 0
    for split, frame in frames.items():
        for rid, labels, negatives in zip(frame["id"], frame["labels"].to_list(), frame["not_labels"].to_list()):
            original = source[rid]
            lost = set(original["not_labels"]) - set(negatives)
            if split == "test":
                # a held-out positive, or every hard negative held out; nothing dropped in test
                assert set(labels) & held or set(original["not_labels"]) <= held, rid
                moved += not set(labels) & held
                assert not lost
            else:
                assert not (set(labels) | set(negatives)) & held, split
                assert lost == set(original["not_labels"]) & held and negatives
                dropped, trimmed = dropped + len(lost), trimmed + bool(lost)
    assert dropped > 0  # the crossed data has held-out labels as negatives of training records
    assert summary["held_out_negatives_dropped"] == {"labels": dropped, "records": trimmed}
    assert summary["records_moved_to_test"] == moved
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"dropped from that record's `not_labels` ({dropped:,} label(s) from" in card

    again = ok(cli(shards, "--to-folder", tmp_path / "again", "--unseen-labels", "0.15", "--split-seed", 7, "--json"))
    assert again["files"] == summary["files"]  # same seed, same bytes
    other = ok(cli(shards, "--to-folder", tmp_path / "other", "--unseen-labels", "0.15", "--split-seed", 8, "--json"))
    assert set(other["held_out_labels"]) != held


def test_unseen_labels_on_the_seed_set_take_a_tenth_of_the_records(tmp_path):
    """The shipped seed set (v1, and v2 when it is there): --unseen-labels 0.1 puts 5-20% of the records in test,
    and no held-out label reaches train or validation."""
    seed = shards_copy(ROOT / "data" / "seed", tmp_path / "seed")  # a copy: push writes push.json beside the data
    summary = ok(cli(seed, "--to-folder", tmp_path / "out", "--unseen-labels", "0.1", "--json"))
    assert summary["rows"] >= 1800
    assert 0.05 <= summary["splits"]["test"] / summary["rows"] <= 0.20, summary["splits"]
    held = set(summary["held_out_labels"])
    assert held and summary["held_out_negatives_dropped"]["labels"] > 0
    for split in ("train", "validation"):
        frame = pl.read_parquet(sorted((tmp_path / "out" / "data").glob(f"{split}-*.parquet")))
        used = set(frame["labels"].explode()) | set(frame["not_labels"].explode())
        assert not used & held, split


def test_more_data_keeps_every_record_in_its_split(generated, tmp_path):
    small, grown = generated
    before = ok(cli(shards_copy(small, tmp_path / "a"), "--to-folder", tmp_path / "x", "--unseen-labels", "0.1",
                    "--json"))
    after = ok(cli(shards_copy(grown, tmp_path / "b"), "--to-folder", tmp_path / "y", "--unseen-labels", "0.1",
                   "--json"))
    assert after["rows"] > before["rows"]

    def placement(folder: Path) -> dict[str, str]:
        return {rid: f.name.split("-")[0] for f in (folder / "data").glob("*.parquet")
                for rid in pl.read_parquet(f)["id"]}

    old, new = placement(tmp_path / "x"), placement(tmp_path / "y")
    assert {rid: new[rid] for rid in old} == old


def test_dry_run_folder_is_exactly_what_is_uploaded(hub, shards, tmp_path, monkeypatch):
    pushed = ok(cli(shards, "--repo-id", "alice/same", "--json"))
    monkeypatch.delenv("HF_TOKEN")  # a dry run needs no token and no network
    requests_before = len(hub.requests)
    dry = ok(cli(shards, "--repo-id", "alice/same", "--dry-run", "--to-folder", tmp_path / "out", "--json"))
    assert len(hub.requests) == requests_before
    local = {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
             for p in (tmp_path / "out").rglob("*") if p.is_file()}
    remote = {p: data for p, data in hub.repos["alice/same"].head.files.items() if p != ".gitattributes"}
    assert local == remote
    assert [f["path"] for f in dry["files"]] == [f["path"] for f in pushed["files"]]
    assert json.loads((shards / "push.json").read_text())["dry_run"] is True

    # a second dry run replaces its own folder; a foreign or nested folder is refused
    ok(cli(shards, "--to-folder", tmp_path / "out", "--json"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    one_line_error(cli(shards, "--to-folder", tmp_path / "mine"), "not a folder written by")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    one_line_error(cli(shards, "--to-folder", shards / "hub"), "lies inside")


def test_repush_is_a_no_op_and_more_data_is_one_commit(hub, generated, tmp_path):
    path = shards_copy(generated[0], tmp_path / "data")
    config = fast_config(tmp_path, "  rows_per_file: 1000\n")
    first = ok(cli(path, "--repo-id", "alice/idem", "--unseen-labels", "0.1", "--config", config, "--json"))
    repo = hub.repos["alice/idem"]
    commits, calls = len(repo.commits), hub.commit_calls

    again = cli(path, "--repo-id", "alice/idem", "--unseen-labels", "0.1", "--config", config)
    assert again.exit_code == 0 and "no commit made" in again.output
    second = json.loads((path / "push.json").read_text())
    assert (len(repo.commits), hub.commit_calls) == (commits, calls)
    assert second["changed"] is False and second["commit"] == first["commit"] and second["uploaded"] == []

    # more data, smaller files, no test split: one commit that rewrites data/ and removes the stale files
    grown = shards_copy(generated[1], tmp_path / "grown")
    third = ok(cli(grown, "--repo-id", "alice/idem", "--config", fast_config(tmp_path, "  rows_per_file: 100\n"),
                   "--json"))
    assert len(repo.commits) == commits + 1 and third["changed"]
    files = set(repo.head.files)
    assert "data/test-00000-of-00001.parquet" not in files and "data/train-00000-of-00001.parquet" not in files
    assert {f["path"] for f in third["files"]} | {".gitattributes"} == files
    old_data = {p for p in first["uploaded"] if p.startswith("data/")}
    assert set(third["deleted"]) == old_data - files and third["deleted"]
    assert hub_frame(hub, "alice/idem", "train").height + hub_frame(hub, "alice/idem", "validation").height == 320
    assert "| records | 320 |" in repo.head.files["README.md"].decode()


@pytest.mark.parametrize("faults", [["500"], ["drop", "500"], ["lost"]])
def test_interrupted_upload_is_retried(hub, shards, tmp_path, faults):
    hub.commit_faults.extend(faults)
    summary = ok(cli(shards, "--repo-id", "alice/flaky", "--config", fast_config(tmp_path), "--json"))
    repo = hub.repos["alice/flaky"]
    assert len(repo.commits) == 2  # the Hub's initial commit and exactly one of ours, even when an answer was lost
    assert summary["changed"] and summary["commit"] == repo.head.oid
    assert summary["attempts"] == len(faults) + 1
    assert {f["path"] for f in summary["files"]} <= set(repo.head.files)


def test_upload_that_keeps_failing_stops_with_a_clear_message(hub, shards, tmp_path):
    hub.always_commit_fault = "500"
    before = {p: p.read_bytes() for p in shards.rglob("*") if p.is_file()}
    line = one_line_error(cli(shards, "--repo-id", "alice/down", "--config", fast_config(tmp_path)),
                          "failed after 3 attempt(s)")
    assert "run the same command again" in line
    assert hub.commit_calls == 3
    # nothing changed locally, not even a push.json
    assert {p: p.read_bytes() for p in shards.rglob("*") if p.is_file()} == before
    assert len(hub.repos["alice/down"].commits) == 1


def test_a_hub_that_never_answers_ends_the_push_in_one_line(shards, tmp_path):
    """A server that accepts connections and never answers: the push gives up after its timeout, exit 2."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshakes; nothing ever reads or answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = fast_config(tmp_path, "  timeout: 1\n")
        started = time.monotonic()
        proc = subprocess.run([*CLI, "push", str(shards), "--repo-id", "alice/x", "--config", str(config)],
                              capture_output=True, text=True, timeout=120,
                              env=subprocess_env(SimpleNamespace(url=url), tmp_path / "home", HF_TOKEN=TOKEN))
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "did not answer within 1s while checking the token" in lines[0], proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert elapsed < 30  # interpreter start-up plus one 1 s timeout, not forever


def test_a_commit_left_unanswered_times_out_and_is_retried(hub, shards, tmp_path):
    hub.commit_faults.append("hang")
    started = time.monotonic()
    summary = ok(cli(shards, "--repo-id", "alice/slow", "--config", fast_config(tmp_path, "  timeout: 1\n"),
                     "--json"))
    assert summary["attempts"] == 2 and len(hub.repos["alice/slow"].commits) == 2
    assert time.monotonic() - started < 30

    hub.always_commit_fault = "hang"
    grown = crossed(shards, tmp_path / "other")  # other data, so there is something to commit
    line = one_line_error(cli(grown, "--repo-id", "alice/slow", "--config", fast_config(tmp_path, "  timeout: 1\n")),
                          "did not answer within 1s while committing")
    assert "failed after 3 attempt(s)" in line and len(hub.repos["alice/slow"].commits) == 2


def test_no_token_is_refused_before_any_request(hub, shards, tmp_path):
    # A fresh process with an empty HF_HOME: neither HF_TOKEN nor a login cache.
    proc = subprocess.run([*CLI, "push", str(shards), "--repo-id", "alice/x"], capture_output=True,
                          text=True, timeout=120, env=subprocess_env(hub, tmp_path / "empty-home"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "no Hugging Face token" in proc.stderr
    assert hub.requests == [] and hub.repos == {}


def test_login_cache_and_endpoint_from_the_environment(hub, shards, tmp_path):
    # The token file that `hf auth login` writes, and HF_ENDPOINT read when huggingface_hub is imported.
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text(TOKEN)
    proc = subprocess.run([*CLI, "push", str(shards), "--repo-id", "alice/cached", "--json"],
                          capture_output=True, text=True, timeout=120, env=subprocess_env(hub, home))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["endpoint"] == hub.url
    assert len(hub.repos["alice/cached"].commits) == 2


def test_rejected_token(hub, shards, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    result = cli(shards, "--repo-id", "alice/x")
    one_line_error(result, "rejected the token (401)")
    assert SECRET not in result.output
    assert hub.repos == {} and [r for r in hub.requests if r[0] == "POST"] == []


def test_repo_of_someone_else_is_forbidden(hub, shards):
    hub.add_repo("bob/theirs", {"README.md": b"bob's data\n"})
    one_line_error(cli(shards, "--repo-id", "bob/theirs"), "no write access to dataset bob/theirs (403)")
    assert len(hub.repos["bob/theirs"].commits) == 2
    one_line_error(cli(shards, "--repo-id", "bob/new"), "(403)")  # a namespace we cannot create in
    assert "bob/new" not in hub.repos


def test_empty_missing_and_invalid_data(hub, shards, tmp_path):
    one_line_error(cli(tmp_path / "nope", "--repo-id", "alice/x"), "does not exist")
    (tmp_path / "empty").mkdir()
    one_line_error(cli(tmp_path / "empty", "--repo-id", "alice/x"), "no Parquet files")

    bad = tmp_path / "bad"
    bad.mkdir()
    df = pl.read_parquet(sorted(shards.glob("shard-*.parquet")))
    texts = df["text"].to_list()
    texts[0], texts[1] = "   ", "Here are the examples you asked for: " + texts[1]
    labels = df["labels"].to_list()
    labels[2] = []
    df.with_columns(pl.Series("text", texts), pl.Series("labels", labels, dtype=df.schema["labels"])) \
        .write_parquet(bad / "shard-00000.parquet")
    line = one_line_error(cli(bad, "--repo-id", "alice/x"), "3 of 240 rows")
    assert "empty_text 1" in line and "meta_text 1" in line and "too_few_labels 1" in line
    one_line_error(cli(shards, "--repo-id", "not-a-repo-id"), "OWNER/NAME")
    one_line_error(cli(shards, "--repo-id", "alice/x", "--validation", "1.5"), "validation")
    assert hub.repos == {}


def test_token_never_leaves_the_process(hub, shards, tmp_path, monkeypatch):
    # The real token of this run is SECRET: accepted by the fake, with an interrupted commit on the way.
    hub.tokens[SECRET] = "alice"
    monkeypatch.setenv("HF_TOKEN", SECRET)
    hub.commit_faults.append("500")
    results = [cli(shards, "--repo-id", "alice/safe", "--unseen-labels", "0.1", "--config", fast_config(tmp_path)),
               cli(shards, "--repo-id", "alice/safe", "--to-folder", tmp_path / "out"),
               cli(shards, "--repo-id", "bob/nope")]
    assert [r.exit_code for r in results] == [0, 0, 2]
    for result in results:
        assert SECRET not in result.output
    stored = [data for commit in hub.repos["alice/safe"].commits for data in commit.files.values()]
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert "README.md" in hub.repos["alice/safe"].head.files
    assert stored and all(SECRET.encode() not in data for data in stored + written + hub.bodies)


def test_private_repo_and_read_only_token(hub, shards, monkeypatch):
    summary = ok(cli(shards, "--repo-id", "alice/hidden", "--private", "--json"))
    assert hub.repos["alice/hidden"].private and summary["private"] is True

    hub.tokens["hf_read_only_token_000000000000"] = "alice"
    hub.read_only.add("hf_read_only_token_000000000000")
    monkeypatch.setenv("HF_TOKEN", "hf_read_only_token_000000000000")
    one_line_error(cli(shards, "--repo-id", "alice/other"), "read-only")
    assert "alice/other" not in hub.repos


def test_outside_data_is_published_in_the_validated_form(tmp_path):
    # ZSHOT-HARDSET-shaped input: `sentence`, no ids, no provenance, labels not yet normalized.
    source = tmp_path / "zshot"
    source.mkdir()
    pl.DataFrame({
        "sentence": ["The battery died after two days of light use.", "Great match last night, the keeper was superb!",
                     "Please reset my password, I am locked out of my account."],
        "labels": [["Battery_Life", "complaint"], ["Sports"], ["account  access"]],
        "not_labels": [["screen quality", "COMPLAINT"], ["politics"], ["billing"]],
    }).write_parquet(source / "part.parquet")
    summary = ok(cli(source / "part.parquet", "--dry-run", "--validation", "0", "--json"))
    assert summary["folder"] == str(tmp_path / "zshot-hub") and summary["splits"] == {"train": 3}
    df = pl.read_parquet(tmp_path / "zshot-hub" / "data" / "train-00000-of-00001.parquet")
    assert df.columns == ["id", "text", "labels", "not_labels"]
    rows = {row["text"][:5]: row for row in df.iter_rows(named=True)}
    assert rows["The b"]["labels"] == ["battery life", "complaint"]
    assert rows["The b"]["not_labels"] == ["screen quality"]  # the overlap with a positive is dropped
    assert rows["Great"]["labels"] == ["sports"] and rows["Pleas"]["labels"] == ["account access"]
    assert all(len(rid) == 16 for rid in df["id"])
    card = (tmp_path / "zshot-hub" / "README.md").read_text()
    assert "No generation manifest" in card and "no `validation` split" not in card
