"""Trials that survive preemption, on the tiny model: SIGTERM mid-trial saves a checkpoint and
exits 75; the rerun (or the study's next worker) resumes, and the curve is the uninterrupted
run's. (Pure parts: tests/test_checkpoint.py.)

Tolerance: on a CPU in fp32 the resumed run is the same computation as the uninterrupted one
(weights, Adam moments, scheduler step, RNG state and data position restored), so the eval
losses agree to float rounding; 1e-5 relative leaves room for a different summation order and
nothing else (a learning rate or data order off by one step moves them by more than 1e-3).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tunelm.config import from_dict
from tunelm.runner import run_trial
from tunelm.search.space import apply

from .conftest import read_metrics

TOL = 1e-5
STEPS = 30


def tunelm(*argv, cwd) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tunelm", "-q", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_after(proc, metrics: Path, rows: int, sig=signal.SIGTERM, timeout=240) -> None:
    """Send `sig` once `metrics` has `rows` rows (some steps trained, far from the last)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= rows:
            proc.send_signal(sig)
            return
        time.sleep(0.1)
    raise AssertionError(f"{metrics} never had {rows} rows: {proc.communicate()}")


def finish(proc, timeout=300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def write_config(cfg, path: Path) -> Path:
    path.write_text(cfg.to_yaml(), encoding="utf-8")
    return path


def evals(run_dir) -> list[tuple[int, float]]:
    return [(r["step"], r["eval_loss"]) for r in read_metrics(run_dir) if "eval_loss" in r]


def assert_same_curve(resumed: Path, whole: Path, steps: int = STEPS) -> None:
    rows = [r["step"] for r in read_metrics(resumed) if "train_loss" in r]
    assert rows == list(range(1, steps + 1))  # every step once: no gap, no repeat
    got, want = evals(resumed), evals(whole)
    assert [s for s, _ in got] == [s for s, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert a == pytest.approx(b, rel=TOL)
    result, reference = (json.loads((d / "result.json").read_text()) for d in (resumed, whole))
    assert result["final_step"] == steps and result["tokens_seen"] == reference["tokens_seen"]
    assert not (resumed / "resume").exists()  # finished: the checkpoint is gone


def signalled_train(cfg, tmp_path: Path, after: int, sig=signal.SIGTERM, reference=None):
    """The uninterrupted run of `reference` (default `cfg`) in tmp_path/whole, then `tunelm
    train` of `cfg` into tmp_path/run, sent `sig` once metrics.jsonl has `after` rows:
    (whole, the config file, out, exit code, stderr)."""
    whole = tmp_path / "whole"
    run_trial(reference or cfg, whole, progress=False)
    config = write_config(cfg, tmp_path / "c.yaml")
    out = tmp_path / "run"
    proc = tunelm("train", str(config), "--out", str(out), cwd=tmp_path)
    signal_after(proc, out / "metrics.jsonl", after, sig=sig)
    return (whole, config, out, *finish(proc))


@pytest.fixture
def cfg(tiny_config):
    # dropout on: the resumed run must also restore the RNG to draw the same masks
    return tiny_config(train={"max_steps": STEPS, "eval_steps": 5, "learning_rate": 3e-3},
                       lora={"dropout": 0.1})


def test_sigterm_saves_and_the_same_command_resumes_the_same_curve(cfg, tmp_path):
    whole, config, out, code, err = signalled_train(cfg, tmp_path, 8)
    assert code == 75, err
    assert "stopped by SIGTERM at step" in err and "run the same command again" in err
    state = json.loads((out / "resume" / "tunelm-checkpoint.json").read_text())
    assert 0 < state["step"] < STEPS and not (out / "result.json").exists()

    # another config into the same directory: exit 2 with the reason, nothing started
    before = (out / "metrics.jsonl").read_text()
    other = write_config(apply(cfg, {"train.learning_rate": 1e-3}), tmp_path / "other.yaml")
    code, err = finish(tunelm("train", str(other), "--out", str(out), cwd=tmp_path))
    assert code == 2 and "train.learning_rate 0.003 in the checkpoint, 0.001 now" in err, err
    assert (out / "metrics.jsonl").read_text() == before and (out / "resume").exists()

    code, err = finish(tunelm("train", str(config), "--out", str(out), cwd=tmp_path))
    assert code == 0, err
    assert json.loads((out / "result.json").read_text())["resumed_from_step"] == state["step"]
    assert_same_curve(out, whole)


def test_a_killed_run_resumes_from_its_last_periodic_checkpoint(cfg, tmp_path):
    # a checkpoint after every step or so (0.1 s): SIGKILL gives no notice, the last one counts
    often = apply(cfg, {"train.checkpoint_minutes": 0.002})
    whole, config, out, _, _ = signalled_train(often, tmp_path, 12, sig=signal.SIGKILL,
                                               reference=cfg)
    saved = json.loads((out / "resume" / "tunelm-checkpoint.json").read_text())["step"]
    assert 0 < saved < STEPS
    code, err = finish(tunelm("train", str(config), "--out", str(out), cwd=tmp_path))
    assert code == 0, err
    assert_same_curve(out, whole)


def test_a_preempted_search_trial_is_finished_by_another_worker(cfg, tmp_path):
    config = search_config(cfg, tmp_path)
    study_dir = tmp_path / "s"
    proc = tunelm("search", str(config), "--out", str(study_dir), cwd=tmp_path)
    signal_after(proc, study_dir / "trials" / "0000" / "metrics.jsonl", 8)
    code, err = finish(proc)
    assert code == 75, err
    url = f"sqlite:///{study_dir / 'study.db'}"
    study = optuna.load_study(study_name="s", storage=url)
    first, copy = study.trials
    assert first.state == TrialState.FAIL and first.user_attrs["preempted"] > 0
    assert copy.state == TrialState.WAITING and copy.params == first.params

    code, err = finish(tunelm("worker", "--storage", url, "--study", "s", "--out",
                              str(study_dir), cwd=tmp_path))
    assert code == 0, err
    done = optuna.load_study(study_name="s", storage=url).trials[1]
    assert done.state == TrialState.COMPLETE, (done.user_attrs, err)
    trial = study_dir / "trials" / "0000"
    assert json.loads((trial / "result.json").read_text())["resumed_from_step"] == \
        first.user_attrs["preempted"]
    whole = tmp_path / "whole"
    run_trial(apply(cfg, done.user_attrs["params"]), whole, progress=False)
    assert_same_curve(trial, whole)
    assert done.value == pytest.approx(min(v for _, v in evals(whole)), rel=TOL)


def search_config(cfg, tmp_path, **search) -> Path:
    raw = cfg.to_dict()
    raw["search"].update(strategy="random", trials=1, pruner="none", curve_pruner=False,
                         space={"train.learning_rate": {"type": "float", "low": 1e-3,
                                                        "high": 1e-2, "log": True}}, **search)
    return write_config(from_dict(raw), tmp_path / "s.yaml")


def test_the_heartbeat_retry_of_a_killed_worker_resumes_from_its_checkpoint(cfg, tmp_path):
    often = apply(cfg, {"train.checkpoint_minutes": 0.002})
    config = search_config(often, tmp_path, heartbeat_seconds=1)
    study_dir = tmp_path / "s"
    proc = tunelm("search", str(config), "--out", str(study_dir), cwd=tmp_path)
    trial = study_dir / "trials" / "0000"
    signal_after(proc, trial / "metrics.jsonl", 12, sig=signal.SIGKILL)
    finish(proc)
    saved = json.loads((trial / "resume" / "tunelm-checkpoint.json").read_text())["step"]
    url = f"sqlite:///{study_dir / 'study.db'}"
    code, err = finish(tunelm("worker", "--storage", url, "--study", "s", "--out",
                              str(study_dir), cwd=tmp_path))
    assert code == 0, err
    killed, retry = optuna.load_study(study_name="s", storage=url).trials
    assert killed.state == TrialState.FAIL and retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == 0
    assert json.loads((trial / "result.json").read_text())["resumed_from_step"] == saved
    whole = tmp_path / "whole"
    run_trial(apply(often, retry.user_attrs["params"]), whole, progress=False)
    assert_same_curve(trial, whole)


@pytest.mark.timeout(900)
def test_two_ranks_save_on_sigterm_and_resume_with_every_ranks_rng(tiny_config, tmp_path):
    # dropout on: each rank draws its own masks, so each rank's RNG state must come back
    cfg = tiny_config(train={"max_steps": 12, "eval_steps": 4, "batch_size": 4, "devices": 2},
                      lora={"dropout": 0.1})
    whole, config, out, code, err = signalled_train(cfg, tmp_path, 4)
    assert code == 75, err
    saved = sorted(p.name for p in (out / "resume").glob("rng_state_*.pth"))
    assert saved == ["rng_state_0.pth", "rng_state_1.pth"]
    code, err = finish(tunelm("train", str(config), "--out", str(out), cwd=tmp_path))
    assert code == 0, err
    assert_same_curve(out, whole, steps=12)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_sharded_trial_saves_every_ranks_shards_on_sigterm_and_resumes_the_same_curve(
        tiny_config, tmp_path, method):
    # FSDP on 2 gloo ranks: each rank writes its own shard of the trainable weights and the
    # optimizer state (torch.distributed.checkpoint) and reads it back on resume
    cfg = tiny_config(model={"method": method},
                      train={"max_steps": 12, "eval_steps": 4, "batch_size": 4, "devices": 2,
                             "sharding": "fsdp", "learning_rate": 3e-3 if method == "lora"
                             else 1e-3},
                      lora={"dropout": 0.1})
    whole, config, out, code, err = signalled_train(cfg, tmp_path, 4)
    assert code == 75, err
    kept = out / "resume"
    assert sorted(p.name for p in kept.glob("rng_state_*.pth")) == ["rng_state_0.pth",
                                                                     "rng_state_1.pth"]
    shards = sorted(p.name for p in (kept / "sharded").glob("*.distcp"))
    assert len(shards) == 2, shards  # one file per rank
    assert not list(kept.glob("*.safetensors"))  # no gathered copy of the weights
    if method == "lora":  # the adapter and its optimizer state, not the frozen (tied) weights
        import torch.distributed.checkpoint as dcp

        saved = dcp.FileSystemReader(str(kept / "sharded")).read_metadata().state_dict_metadata
        weights = [k for k in saved if k.startswith("model.")]
        assert weights and all("lora_" in k for k in weights), weights
    code, err = finish(tunelm("train", str(config), "--out", str(out), cwd=tmp_path))
    assert code == 0, err
    assert_same_curve(out, whole, steps=12)
