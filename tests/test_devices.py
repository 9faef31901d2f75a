"""train.devices: one step plan for recommend, train, search and export; more ranks than the
machine has is bad input (exit 2, nothing started)."""

from __future__ import annotations

import json

import pytest
import yaml

from tunelm.cli import main
from tunelm.config import Config, load_config, validate
from tunelm.errors import ConfigError
from tunelm.plan import plan_steps
from tunelm.runner.devices import Visible, backend, check_devices


def _data(tmp_path, n=3000):
    path = tmp_path / "train.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                                              {"role": "assistant", "content": f"answer {i}"}]})
                     + "\n")
    return path


def test_recommend_for_8_gpus_trains_the_batch_it_planned(tmp_path, capsys):
    data = _data(tmp_path)
    assert main(["recommend", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--data", str(data),
                 "--gpus", "8", "--gpu-memory", "80", "--format", "yaml",
                 "--out", str(tmp_path / "rec.yaml")]) == 0
    raw = yaml.safe_load((tmp_path / "rec.yaml").read_text())
    t = raw["train"]
    assert t["devices"] == 8
    planned = t["batch_size"] * t["grad_accum"] * 8
    capsys.readouterr()
    assert main(["train", str(tmp_path / "rec.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"effective batch   {planned} = " in out and "x 8 rank(s)" in out
    # the library's plan agrees, whatever the sequence count
    assert plan_steps(load_config(tmp_path / "rec.yaml").train, 123).effective_batch == planned


def test_square_root_rule_sees_the_batch_that_trains():
    from tunelm.recommend import Request, recommend

    rec = recommend(Request(model="meta-llama/Llama-3.1-8B-Instruct", examples=20000,
                            avg_tokens=400, gpus=8, gpu_memory=80))
    c = rec.config()
    effective = c.train.batch_size * c.train.grad_accum * c.train.devices
    lr = rec.advice["train.learning_rate"]
    reason = lr.reason
    if "square-root rule" in reason:  # applied once, on the batch that trains
        assert reason.count("square-root rule") == 1
        assert f"effective batch {effective} " in reason
    assert f"effective batch {effective}" in rec.advice["train.grad_accum"].reason


def test_plan_counts_every_rank():
    cfg = Config()
    cfg.train.batch_size, cfg.train.grad_accum, cfg.train.devices = 4, 2, 2
    plan = plan_steps(cfg.train, 800)
    assert plan.world_size == 2 and plan.effective_batch == 16
    assert plan.steps_per_epoch == 50  # 800 / 16
    assert plan_steps(cfg.train, 800, world_size=1).effective_batch == 8


def test_devices_must_be_a_positive_integer():
    cfg = Config()
    cfg.train.devices = 0
    assert any("train.devices must be an integer >= 1, got 0" in p for p in validate(cfg))


def test_more_ranks_than_visible_is_named():
    check_devices(2, Visible(2, "cpu"))
    with pytest.raises(ConfigError) as err:
        check_devices(3, Visible(2, "cpu"))
    msg = str(err.value)
    assert "train.devices 3" in msg and "2 CPU core(s)" in msg and "accepted: 1 to 2" in msg
    with pytest.raises(ConfigError, match="1 visible CUDA device"):
        check_devices(4, Visible(1, "cuda"))
    assert backend("cuda") == "nccl" and backend("cpu") == "gloo"


@pytest.mark.parametrize("command", ["train", "search"])
def test_devices_flag_beyond_the_machine_exits_2_and_starts_nothing(tmp_path, capsys, command):
    out = tmp_path / "run"
    rc = main([command, "presets/tiny.yaml", "--devices", "4096", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "train.devices 4096" in err and "accepted: 1 to" in err
    assert not out.exists()


def test_export_says_how_many_ranks(tmp_path):
    from tunelm.export.common import training_args

    cfg = Config()
    cfg.train.devices, cfg.train.batch_size, cfg.train.grad_accum = 4, 2, 3
    src = type("Src", (), {"cfg": cfg, "sequences": 240, "origin": "x"})()
    _, notes = training_args(src, "out")
    assert any("torchrun --nproc_per_node 4" in n and "effective batch 24" in n for n in notes)


def test_a_trial_on_n_gpus_costs_n_device_seconds(monkeypatch, tmp_path):
    import time

    from tunelm.search import objective

    cfg = Config()
    cfg.train.devices = 2
    monkeypatch.setattr(objective, "gpu_count", lambda: 8)  # a machine of 8, a trial on 2
    attrs = {}
    trial = type("T", (), {"set_user_attr": lambda self, k, v: attrs.__setitem__(k, v),
                           "user_attrs": attrs})()
    obj = objective.TrialObjective(cfg, [], tmp_path, "eval_loss")
    obj._record(trial, {}, time.time() - 10, [])
    assert 19 <= attrs[objective.COST_ATTR] <= 25  # 10 s x 2 devices, not x 8
