"""gliznet-data under faults (issue 11): runaway generation, pacing, needless requests, two runs in one
folder, read-only and full disks, wrong inputs that used to pass silently, reserved tokens, silent
retries, slow --help. Real SDK clients against the local fakes; disks are real (tmpfs, read-only
mounts, file-size limits)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from gliznet_data.batch import export_requests, ingest
from gliznet_data.budget import FailureBudgetSpent
from gliznet_data.cli import app
from gliznet_data.folder_lock import FolderInUse, FolderLock
from gliznet_data.generate import GenerateConfig
from gliznet_data.records import Example, RESERVED_TOKENS, reject_reason
from tests.conftest import FAST_RETRY, read_manifest, run
from tests.fakes.llm_server import API_KEY

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, needle, code=2):
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output


def rows(output):
    return pl.read_parquet(output / "shard-*.parquet")


def chat_requests(server):
    return [r for r in server.requests if r["path"] == "/openai/v1/chat/completions"]


def env_for(server):
    return os.environ | {"GROQ_API_KEY": API_KEY, "GROQ_BASE_URL": server.url}


def spawn_cli(args, env, **popen):
    return subprocess.Popen([sys.executable, "-m", "gliznet_data.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


# 1. The failure budget ------------------------------------------------------------------------------------


def test_unusable_replies_stop_after_the_consecutive_budget_and_resume(llm_env, tmp_path):
    llm_env.always = "json_validate_failed"  # every reply: 60 characters of broken JSON
    with pytest.raises(FailureBudgetSpent, match="5 requests in a row yielded no valid record") as info:
        run(tmp_path, n=200, concurrency=4, max_consecutive_failures=5)
    assert "broken_json" in str(info.value)
    sent = len(chat_requests(llm_env))
    assert 5 <= sent <= 5 + 4  # what was in flight when the budget ran out, no more
    manifest = read_manifest(tmp_path)
    assert manifest["status"] == "stopped" and "in a row" in manifest["stop_reason"]

    llm_env.always = None  # the cause is fixed: the same command finishes the run
    manifest = run(tmp_path, n=20, concurrency=4, max_consecutive_failures=5)
    assert manifest["status"] == "complete" and manifest["stop_reason"] is None
    assert rows(tmp_path).height == 20 and rows(tmp_path)["id"].n_unique() == 20


def test_a_mostly_failing_service_stops_on_the_share_of_the_window(llm_env, tmp_path):
    # Three unusable replies, one good one, over and over: never 5 in a row, but 75% of any window.
    llm_env.faults.extend(["json_validate_failed", "json_validate_failed", "json_validate_failed", None] * 20)
    with pytest.raises(FailureBudgetSpent, match="of the last 8 requests yielded no valid record"):
        run(tmp_path, n=1000, concurrency=1, max_consecutive_failures=5, failure_window=8, max_failure_share=0.7)
    assert len(chat_requests(llm_env)) == 8
    assert rows(tmp_path).height == 10  # the two good replies are kept


def test_failure_budget_on_the_command_line(llm_env, tmp_path):
    llm_env.always = "json_validate_failed"
    result = cli("generate", "--n", 100, "-c", 2, "--output", tmp_path, "--max-consecutive-failures", 3)
    one_line_error(result, "stopped: 3 requests in a row yielded no valid record", code=3)
    assert read_manifest(tmp_path)["status"] == "stopped"
    one_line_error(cli("generate", "--output", tmp_path, "--max-failure-share", 1.5),
                   "invalid setting max_failure_share")


# 2. Pacing (measured properly in benchmarks/pacing.py) ---------------------------------------------------------


def test_rpm_below_60_is_honoured(llm_env, tmp_path):
    """rpm 30 is one request every 2 s; it used to run at one a second."""
    run(tmp_path, n=15, concurrency=4, rpm=30)
    arrivals = sorted(r["at"] for r in chat_requests(llm_env))
    assert len(arrivals) == 3
    assert arrivals[2] - arrivals[0] >= 3.9


def test_rpm_allows_no_burst_at_the_start(llm_env, tmp_path):
    run(tmp_path, n=15, concurrency=8, rpm=120)
    arrivals = sorted(r["at"] for r in chat_requests(llm_env))
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert len(gaps) == 2 and min(gaps) >= 0.45  # 0.5 s apart from the first request on


def test_tpm_paces_tokens(llm_env, tmp_path):
    manifest = run(tmp_path, n=20, concurrency=4, tpm=60_000)
    arrivals = sorted(r["at"] for r in chat_requests(llm_env))
    per_request = manifest["tokens"]["total"] / manifest["counts"]["requests"]
    # Request i+1 may start only once the tokens of request i fit the rate: about per_request / 1000 s later. The
    # first requests are charged an estimate that the replies then correct, so over three gaps allow a third less
    # (unpaced, all four would arrive together; benchmarks/pacing.py measures the rate over a minute).
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] >= 0.6 * 3 * per_request / 1000


# 3. Requests only for records still needed ---------------------------------------------------------------------


def test_small_n_sends_one_request(llm_env, tmp_path):
    run(tmp_path, n=5, concurrency=16)
    assert len(chat_requests(llm_env)) == 1


def test_huge_concurrency_sends_only_what_n_needs(llm_env, tmp_path):
    run(tmp_path, n=50, concurrency=5000)
    assert len(chat_requests(llm_env)) == 10


def test_enormous_concurrency_does_not_stall(llm_env, tmp_path):
    started = time.monotonic()
    run(tmp_path / "a", n=20, concurrency=100_000)
    assert time.monotonic() - started < 10
    assert len(chat_requests(llm_env)) == 4


def test_rejected_replies_are_made_up_by_more_requests(llm_env, tmp_path):
    llm_env.faults.extend(["json_validate_failed", "duplicates"])
    run(tmp_path, n=10, concurrency=16)
    assert rows(tmp_path).height == 10
    assert len(chat_requests(llm_env)) <= 5  # 2 asked at first, each failure replaced by one more


# 4. One run per folder ----------------------------------------------------------------------------------------


def test_a_locked_folder_is_refused_with_the_holders_pid(llm_env, tmp_path):
    with FolderLock(tmp_path, "gliznet-data generate"):
        with pytest.raises(FolderInUse, match=f"pid {os.getpid()}"):
            run(tmp_path, n=5)
    assert chat_requests(llm_env) == []
    run(tmp_path, n=5)  # released: the folder is free again
    assert rows(tmp_path).height == 5
    assert not (tmp_path / ".gliznet.lock").exists()  # a run that ends leaves no lock file behind


def test_two_generate_runs_in_one_folder(llm_server, tmp_path):
    llm_server.latency = 0.1
    env, output = env_for(llm_server), tmp_path / "out"
    first = spawn_cli(["generate", "--n", 600, "-c", 2, "--output", output], env)
    deadline = time.monotonic() + 60
    while not (output / ".gliznet.lock").exists() or not chat_requests(llm_server):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = spawn_cli(["generate", "--n", 600, "-c", 2, "--output", output], env)
    _, stderr = second.communicate(timeout=60)
    assert second.returncode == 2, stderr
    assert f"in use by gliznet-data generate (pid {first.pid}" in stderr and "Traceback" not in stderr
    assert first.wait(timeout=120) == 0, first.communicate()
    manifest = read_manifest(output)
    assert rows(output).height == manifest["counts"]["records"] == 600


def test_a_lock_left_by_kill_9_is_taken_over(llm_env, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from gliznet_data.folder_lock import FolderLock; "
         "FolderLock(sys.argv[1], 'gliznet-data generate').acquire(); print('held', flush=True); time.sleep(120)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    one_line_error(cli("generate", "--n", 5, "--output", tmp_path), f"(pid {holder.pid}")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / ".gliznet.lock").exists()  # the dead holder's file stays, unlocked
    result = cli("generate", "--n", 5, "--output", tmp_path)
    assert result.exit_code == 0, result.output
    assert rows(tmp_path).height == 5 and not (tmp_path / ".gliznet.lock").exists()


def test_batch_ingest_takes_the_same_lock(tmp_path):
    config = GenerateConfig.model_validate({"n": 10, "seed": 4, "output": tmp_path / "out", "retry": FAST_RETRY})
    requests = tmp_path / "requests.jsonl"
    export_requests(config, requests)
    results = tmp_path / "results.jsonl"
    results.write_text(_results_for(requests))
    with FolderLock(tmp_path / "out", "gliznet-data annotate"):
        with pytest.raises(FolderInUse, match="in use by gliznet-data annotate"):
            ingest(config, results, requests)
    assert ingest(config, results, requests)["counts"]["records"] == 10


def _results_for(requests: Path) -> str:
    """Valid batch results for every request of an export, written by the fake's reply builder."""
    from tests.fakes.llm_server import FakeLLMServer

    fake, out = FakeLLMServer(), []
    for line in requests.read_text().splitlines():
        request = json.loads(line)
        content = fake.content(request["body"]["messages"][-1]["content"], None)
        out.append(json.dumps({"custom_id": request["custom_id"], "error": None, "response": {
            "status_code": 200, "body": {"model": "m", "choices": [{"message": {"content": content}}],
                                         "usage": {"prompt_tokens": 10, "completion_tokens": 20}}}}))
    return "\n".join(out) + "\n"


# 5. One line, not a traceback ---------------------------------------------------------------------------------


def test_non_utf8_config(tmp_path):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("generate:\n  n: 5  # r\xe9sum\xe9\n".encode("latin-1"))
    one_line_error(cli("generate", "--config", config, "--output", tmp_path / "o"), "is not UTF-8 text")


@pytest.mark.parametrize("setting,needle", [
    ("json_mode: strict", "invalid setting json_mode"),  # was a traceback from deep inside the provider
    ("limits: {min_labels: 5, max_labels: 2}", "min_labels exceeds max_labels"),  # was a run rejecting everything
])
def test_bad_settings_are_refused_before_any_request(llm_env, tmp_path, setting, needle):
    config = tmp_path / "c.yaml"
    config.write_text(f"generate:\n  {setting}\n")
    one_line_error(cli("generate", "--config", config, "--output", tmp_path / "o"), needle)
    assert chat_requests(llm_env) == [] and not (tmp_path / "o").exists()


def _mount(args: list[str], target: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", *args, str(target)], capture_output=True).returncode == 0


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write: chmod for an ordinary user, a read-only tmpfs for root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder
    if not _mount(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"], folder):
        pytest.skip("running as root without a way to mount a read-only tmpfs")
    return folder


def test_read_only_output_is_refused_before_any_request(llm_env, tmp_path):
    folder = _read_only_folder(tmp_path)
    try:
        one_line_error(cli("generate", "--n", 5, "--output", folder), "cannot write to output folder")
        one_line_error(cli("generate", "--n", 5, "--output", folder / "sub"), "cannot create output folder")
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        else:
            folder.chmod(0o755)
    assert chat_requests(llm_env) == []  # nothing paid for


def _fill(disk: Path, leave: int) -> Path:
    stat = os.statvfs(disk)
    filler = disk / "filler.bin"
    filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


@pytest.mark.parametrize("how", ["tmpfs", "file-size-limit"])
def test_full_disk_ends_in_one_line_with_an_honest_manifest(how, llm_server, tmp_path):
    """A shard that does not fit: exit 2, one line, the manifest says failed (not running), the shards on disk
    are what the manifest counts, and once there is room the same command finishes with exactly N."""
    env, n = env_for(llm_server), 600
    preexec = None
    if how == "tmpfs":
        disk = tmp_path / "disk"
        disk.mkdir()
        if not _mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs"], disk):
            pytest.skip("cannot mount a tmpfs here (needs root); the file-size-limit case covers the path")
        filler = _fill(disk, leave=48 * 1024)
        args = ["generate", "--n", n, "-c", 4, "--output", disk / "out"]
        config = tmp_path / "run.yaml"
        config.write_text("generate:\n  shard_size: 50\n")
    else:  # EFBIG from the kernel once a file grows past RLIMIT_FSIZE: a shard of 500 records does not fit
        disk, filler = tmp_path, None
        args = ["generate", "--n", n, "-c", 4, "--output", disk / "out"]
        config = tmp_path / "run.yaml"
        config.write_text("generate:\n  shard_size: 500\n")

        def preexec():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))
    try:
        proc = spawn_cli([*args, "--config", config], env, preexec_fn=preexec, cwd=ROOT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, stderr
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: cannot write a shard in"), stderr
        assert "No space left on device" in lines[0] or "File too large" in lines[0]
        manifest = read_manifest(disk / "out")
        assert manifest["status"] == "failed" and "cannot write a shard" in manifest["stop_reason"]
        on_disk = rows(disk / "out").height if list((disk / "out").glob("shard-*.parquet")) else 0
        assert on_disk == manifest["counts"]["records"] < n
        assert not list((disk / "out").glob(".*.tmp"))  # the failed shard left nothing behind

        if filler is not None:
            filler.unlink()
        proc = spawn_cli([*args, "--config", config], env, cwd=ROOT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        done = rows(disk / "out")
        assert done.height == n and done["id"].n_unique() == n
        assert read_manifest(disk / "out")["status"] == "complete"
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.parametrize("labels,needle", [
    (["sports", "news"], "column labels holds String values"),
    ([None, ["news"]], "column labels is null in 1 of 2 rows"),
    ([None, None], "column labels holds Null values"),
])
def test_stats_on_labels_that_are_not_lists_of_strings(tmp_path, labels, needle):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"text {i}", "labels": label, "not_labels": ["x"]}) + "\n"
                            for i, label in enumerate(labels)))
    parquet = tmp_path / "d.parquet"
    pl.read_ndjson(path).write_parquet(parquet)
    one_line_error(cli("stats", parquet), needle)


# 6. Wrong inputs that used to pass silently ----------------------------------------------------------------------


def test_batch_ingest_with_the_wrong_requests_file(tmp_path):
    base = {"n": 10, "output": tmp_path / "out", "retry": FAST_RETRY}
    mine, other = tmp_path / "mine.jsonl", tmp_path / "other.jsonl"
    export_requests(GenerateConfig.model_validate(base | {"seed": 1}), mine)
    export_requests(GenerateConfig.model_validate(base | {"seed": 2}), other)
    results = tmp_path / "mine.results.jsonl"
    results.write_text(_results_for(mine))
    result = cli("batch", "ingest", results, "--requests", other, "--output", tmp_path / "out")
    one_line_error(result, "2 of 2 results in")
    assert "answer no request in" in result.output and "--requests file" in result.output
    assert not (tmp_path / "out" / "manifest.json").exists()
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(json.dumps({"custom_id": "req-1", "response": None}) + "\n")
    one_line_error(cli("batch", "ingest", foreign, "--requests", mine, "--output", tmp_path / "out"),
                   "answer no request")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    one_line_error(cli("batch", "ingest", empty, "--requests", mine, "--output", tmp_path / "out"), "holds no results")
    ok = cli("batch", "ingest", results, "--requests", mine, "--output", tmp_path / "out")
    assert ok.exit_code == 0 and "10 records" in ok.output, ok.output


def test_validate_refuses_an_empty_dataset(tmp_path):
    path = tmp_path / "empty.parquet"
    pl.DataFrame({"text": [], "labels": [], "not_labels": []},
                 schema={"text": pl.String, "labels": pl.List(pl.String), "not_labels": pl.List(pl.String)}
                 ).write_parquet(path)
    one_line_error(cli("validate", path), "holds no rows")


# 7. Reserved tokens: one rule in the validators -------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("labels", ["[LAB] sports"]), ("labels", ["sports [lab]"]), ("not_labels", ["[SEP]"]),
    ("not_labels", ["<mask> topic"]), ("text", "The striker scored twice [CLS] in the derby."),
])
def test_reserved_tokens_are_rejected_in_labels_and_text(field, value):
    example = {"text": "The striker scored twice in the derby.", "labels": ["sports"], "not_labels": ["politics"]}
    with pytest.raises(Exception) as info:
        Example.model_validate(example | {field: value})
    assert reject_reason(info.value) == "reserved_token"
    assert "[LAB]" in RESERVED_TOKENS and "[SEP]" in RESERVED_TOKENS
    assert Example.model_validate(example | {"labels": ["lab results", "[brackets] ok"]})  # only whole tokens


def test_validate_and_push_refuse_a_label_holding_lab(tmp_path):
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "d.parquet"
    pl.DataFrame({"text": ["The match went to penalties.", "Rates rose again this quarter."],
                  "labels": [["football"], ["[LAB] monetary policy"]],
                  "not_labels": [["basketball"], ["fiscal policy"]]}).write_parquet(path)
    result = cli("validate", path)
    assert result.exit_code == 1 and "reserved_token" in result.output and "1 of 2 rows valid" in result.output
    pushed = cli("push", path, "--dry-run", "--to-folder", tmp_path / "hub")
    assert pushed.exit_code == 2 and "reserved_token 1" in pushed.output, pushed.output
    assert not (tmp_path / "hub").exists()


# 8. Retries are said, settings are checked first -------------------------------------------------------------------


def test_each_wave_of_retries_is_one_line(llm_env, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("generate:\n  timeout: 0.3\n  retry: {attempts: 3, initial_wait: 0.01, max_wait: 0.05}\n")
    llm_env.slow_seconds = 5.0
    llm_env.always = "slow"  # accepts and never answers in time: used to mean minutes of silence
    result = cli("generate", "--n", 5, "-c", 1, "--output", tmp_path / "o", "--config", config)
    assert result.exit_code == 2, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("retrying")]
    assert notes and f"groq at {llm_env.url}" in notes[0] and "timed out after 0.3s" in notes[0]
    assert "waiting up to" in notes[0] and "attempt 1 of 3 failed" in notes[0]
    assert API_KEY not in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: groq: giving up after 3 attempts")


def test_a_burst_of_429s_is_one_line_not_one_per_request(llm_env, tmp_path):
    llm_env.faults.extend(["429"] * 8)
    result = cli("generate", "--n", 40, "-c", 8, "--output", tmp_path / "o")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("retrying")]
    assert len(notes) == 1 and ": HTTP 429;" in notes[0]


# 9. --help answers at once ----------------------------------------------------------------------------------------


def test_help_is_fast_and_loads_no_service_sdk():
    code = ("import sys, time; sys.argv = ['gliznet-data', '--help']; from gliznet_data.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('groq', 'ollama', 'huggingface_hub', 'torch', 'transformers', 'datasets') "
            "if m in sys.modules]\nprint(heavy, file=sys.stderr)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0 and "generate" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]"
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 2.0  # CPU seconds: wall time on these shared cores measures the neighbours too
