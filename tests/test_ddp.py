"""A trial on 2 gloo ranks (torchrun) on the CPU: the same training as one rank with twice the
accumulation, only rank 0 writes, rank 0's stop decision reaches every rank, and a dead rank
fails the trial within the timeout."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, read_metrics
from tunelm.runner import run_trial

# The two runs see the same examples in each optimizer step: the Trainer shuffles once with the
# seed, and each rank takes every 2nd micro-batch of that order (accelerate's batch sharding),
# so step k is the same 2A micro-batches either way. The loss is normalised by the tokens of the
# whole step across ranks in both runs. What differs is float32 summation order (DDP averages
# the two ranks' gradients; one rank accumulates them), of order 1e-7 relative per step, grown
# by the optimizer over a few steps; 2e-4 relative is ten times what we observed (<2e-5 on eval).
# LoRA dropout is 0: a dropout mask would be drawn from each rank's own random stream.
REL_TOL = 2e-4


def _curve(run_dir, key):
    return {r["step"]: r[key] for r in read_metrics(run_dir) if key in r}


@pytest.mark.timeout(400)
def test_two_ranks_train_as_one_rank_with_twice_the_accumulation(tiny_config, tmp_path):
    common = {"batch_size": 4, "max_steps": 6, "eval_steps": 3, "seed": 7}
    two = run_trial(tiny_config(train={**common, "devices": 2, "grad_accum": 1}),
                    tmp_path / "two", progress=False)
    one = run_trial(tiny_config(train={**common, "devices": 1, "grad_accum": 2}),
                    tmp_path / "one", progress=False)
    assert two["plan"]["world_size"] == 2 and one["plan"]["world_size"] == 1
    assert two["plan"]["effective_batch"] == one["plan"]["effective_batch"] == 8
    for key in ("train_loss", "eval_loss"):
        a, b = _curve(tmp_path / "two", key), _curve(tmp_path / "one", key)
        assert sorted(a) == sorted(b) and len(a) >= 2, key  # each step logged once: rank 0 only
        for step in a:
            assert math.isclose(a[step], b[step], rel_tol=REL_TOL), (key, step, a[step], b[step])
    assert (tmp_path / "two" / "best").exists() and two["status"] == "ok"
    assert not list(tmp_path.glob("**/tunelm-rank*"))


def _shared_stop_rank(rank: int, port: int, q) -> None:
    import torch.distributed as dist
    from transformers import TrainerControl

    from tunelm.runner.launch import SharedStop

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    control = TrainerControl()
    control.should_training_stop = rank == 0  # only rank 0's pruner said stop
    SharedStop().on_evaluate(None, None, control)
    q.put((rank, control.should_training_stop))
    dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_rank_zeros_decision_to_stop_reaches_every_rank():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_shared_stop_rank, args=(r, port, q)) for r in (0, 1)]
    for p in procs:
        p.start()
    got = dict(q.get(timeout=90) for _ in procs)
    for p in procs:
        p.join(30)
    assert got == {0: True, 1: True}


def _pids_with(marker: str, rank: str) -> list[int]:
    """Processes this test started (its marker in their environment) that are torchrun rank
    `rank`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"TUNELM_TEST_MARK={marker}".encode() in env and f"RANK={rank}".encode() in env:
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(300)
def test_killing_one_rank_fails_the_trial_within_the_timeout(small_data, tmp_path):
    marker = uuid.uuid4().hex
    out = tmp_path / "trial"
    env = {**os.environ, "TUNELM_TEST_MARK": marker, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "tunelm", "-q", "train", str(ROOT / "presets/tiny.yaml"),
           "--devices", "2", "--out", str(out), "--set", f"data.train={small_data['train']}",
           "--set", f"data.eval={small_data['eval']}", "--set", "data.task=null",
           "--set", "data.max_length=64", "--set", "train.max_steps=100000",
           "--set", "train.batch_size=2", "--set", "train.eval_steps=1000"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 180
        while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
            assert proc.poll() is None and time.time() < deadline, "training never started"
            time.sleep(0.5)
        victims = _pids_with(marker, "1")
        assert len(victims) == 1
        os.kill(victims[0], signal.SIGKILL)
        killed = time.time()
        _, err = proc.communicate(timeout=120)
        took = time.time() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err[-2000:]
    assert "failed" in err and "2 ranks" in err
    assert took < 60  # torchrun notices a dead rank within seconds; the collective timeout is 600
    assert not _pids_with(marker, "0")  # no rank left behind


@pytest.mark.timeout(400)
def test_a_search_runs_its_trials_on_two_ranks(tiny_config, tmp_path):
    import json

    import optuna

    from tunelm.config import from_dict
    from tunelm.search import run_search

    raw = tiny_config(train={"max_steps": 4, "eval_steps": 2, "batch_size": 4,
                             "devices": 2}).to_dict()
    raw["search"].update({"strategy": "random", "trials": 2, "pruner": "none",
                          "curve_pruner": False,
                          "space": {"train.learning_rate": {"type": "float", "low": 1e-3,
                                                            "high": 3e-2, "log": True}}})
    result = run_search(from_dict(raw), tmp_path / "study")
    assert [t["state"] for t in result.trials] == ["COMPLETE", "COMPLETE"]
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{tmp_path}/study/study.db")
    for trial in study.trials:  # rank 0 alone reported, once per evaluation
        assert sorted(trial.intermediate_values) == [2, 4]
    for d in (tmp_path / "study" / "trials").iterdir():
        assert json.loads((d / "result.json").read_text())["plan"]["world_size"] == 2
