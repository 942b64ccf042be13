"""Two CPU processes (torchrun + gloo) on the tiny random BERT: the run ends, and its learning rate at every step
equals the single-process run's (accelerate steps a prepared scheduler once per process)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys

import polars as pl
import pytest

from tests.model_helpers import write_tiny_backbone


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun (from torch) is not on PATH")
def test_two_processes_finish_with_the_single_process_schedule(tmp_path):
    backbone = write_tiny_backbone(tmp_path / "bb")
    rng = random.Random(0)
    topics = ["sports", "politics", "business", "technology", "health"]
    rows = [{"text": f"{t} item {i} the game vote market", "labels": [t], "not_labels": [x for x in topics if x != t]}
            for i, t in enumerate(rng.choice(topics) for _ in range(80))]
    pl.DataFrame(rows).write_parquet(tmp_path / "d.parquet")
    (tmp_path / "c.yaml").write_text("train:\n  log_every: 1\n  warmup_ratio: 0.34\n")
    common = [str(tmp_path / "d.parquet"), "--backbone", backbone, "--max-steps", "6", "--batch-size", "4",
              "--max-length", "64", "--eval-every", "3", "--config", str(tmp_path / "c.yaml")]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}

    def launch(out: str) -> subprocess.CompletedProcess:
        with socket.socket() as probe:  # a port nothing else holds, for the rendezvous
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # Its own session, so that a timeout takes the workers down with torchrun instead of orphaning them.
        proc = subprocess.Popen(["torchrun", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                                 str(port), "-m", "gliznet_model.cli", "train", *common, "-o", str(tmp_path / out)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    # A finished worker used to hang in gloo's teardown (the DDP reducer's destructor; the CLI now skips it with
    # os._exit); one relaunch tells a rare stall apart from a run that never ends, which times out twice.
    run = "ddp"
    try:
        ddp = launch(run)
    except subprocess.TimeoutExpired:
        run = "ddp-again"  # a fresh folder: a stalled worker may still hold the first one's lock
        ddp = launch(run)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    single = subprocess.run([sys.executable, "-m", "gliznet_model.cli", "train", *common, "-o",
                             str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr[-2000:]

    def rates(run: str) -> list[float]:
        lines = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [m["lr"] for m in lines if "lr" in m]

    assert len(rates(run)) == 6 and rates(run) == pytest.approx(rates("one"))
    assert json.loads((tmp_path / run / "train_summary.json").read_text())["processes"] == 2
    assert ddp.stdout.count("6 steps") == 1  # one report, from the main process
