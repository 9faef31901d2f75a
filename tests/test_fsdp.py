"""Trials under train.sharding fsdp on 2 gloo ranks (torchrun) on the CPU: the ranks really hold
half the weights each, full fine-tuning trains as one rank with twice the accumulation does, and
best/ (gathered from the shards, written by rank 0) reloads as a plain checkpoint whose eval loss
is the one the trial recorded."""

from __future__ import annotations

import math
import re

import pytest

from tests.conftest import read_metrics
from tunelm.evaluate import evaluate_run
from tunelm.runner import run_trial

# As in test_ddp.py: both runs take the same micro-batches in each optimizer step and normalise
# the loss by the step's tokens; what differs is float32 summation order (FSDP reduce-scatters
# each micro-batch's gradient shards; one rank accumulates whole gradients). Observed differences
# stay below 2e-5 relative; 2e-4 leaves ten times that.
REL_TOL = 2e-4


def _curve(run_dir, key):
    return {r["step"]: r[key] for r in read_metrics(run_dir) if key in r}


def _held(run_dir) -> tuple[int, int]:
    """(held, total) parameter values from rank 0's fsdp line in train.log."""
    text = (run_dir / "train.log").read_text(encoding="utf-8")
    found = re.search(r"fsdp \| 2 ranks \| this rank holds (\d+) of (\d+) parameter values", text)
    assert found, "no fsdp line: the model was not sharded"
    return int(found[1]), int(found[2])


def _reloaded_eval_loss(run_dir, eval_file) -> float:
    return evaluate_run(run_dir, eval_file)["models"]["tuned"]["eval_loss"]


@pytest.mark.timeout(500)
def test_full_fine_tuning_under_fsdp_trains_as_one_rank_and_best_reloads(tiny_config, tmp_path,
                                                                          small_data):
    common = {"batch_size": 4, "max_steps": 6, "eval_steps": 3, "seed": 7}
    model = {"name": "tiny", "method": "full", "precision": "fp32"}
    fsdp = run_trial(tiny_config(model=model, train={**common, "devices": 2, "grad_accum": 2,
                                                     "sharding": "fsdp", "learning_rate": 1e-3}),
                     tmp_path / "fsdp", progress=False)
    one = run_trial(tiny_config(model=model, train={**common, "devices": 1, "grad_accum": 4,
                                                    "learning_rate": 1e-3}),
                    tmp_path / "one", progress=False)
    held, total = _held(tmp_path / "fsdp")
    assert total == fsdp["total_parameters"] and held <= total // 2 + 64  # about half each
    assert fsdp["plan"]["effective_batch"] == one["plan"]["effective_batch"] == 16
    for key in ("train_loss", "eval_loss"):
        a, b = _curve(tmp_path / "fsdp", key), _curve(tmp_path / "one", key)
        assert sorted(a) == sorted(b) and len(a) >= 2, key
        for step in a:
            assert math.isclose(a[step], b[step], rel_tol=REL_TOL), (key, step, a[step], b[step])
    assert fsdp["status"] == "ok" and fsdp["best_checkpoint"] == "best"
    assert (tmp_path / "fsdp" / "best" / "model.safetensors").exists()  # one full checkpoint
    reloaded = _reloaded_eval_loss(tmp_path / "fsdp", small_data["eval"])
    assert math.isclose(reloaded, fsdp["best_eval_loss"], rel_tol=REL_TOL)
    assert not list(tmp_path.glob("**/tunelm-rank*"))


@pytest.mark.timeout(400)
def test_lora_under_fsdp_saves_an_adapter_that_reloads(tiny_config, tmp_path, small_data):
    cfg = tiny_config(train={"batch_size": 4, "max_steps": 4, "eval_steps": 2, "devices": 2,
                             "sharding": "fsdp"}, eval={"metric": "json", "max_examples": 4})
    result = run_trial(cfg, tmp_path / "lora", progress=False)
    assert result["status"] == "ok" and result["task_metrics"] == {}  # no generation under fsdp
    best = tmp_path / "lora" / "best"
    assert (best / "adapter_model.safetensors").exists()
    assert not (best / "model.safetensors").exists()  # the adapter, not the gathered base
    reloaded = _reloaded_eval_loss(tmp_path / "lora", small_data["eval"])
    assert math.isclose(reloaded, result["best_eval_loss"], rel_tol=REL_TOL)
