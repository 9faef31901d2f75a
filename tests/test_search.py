"""Search: budget, space and pruner logic on synthetic data; tiny-model studies end to end."""

import json
import math

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState, create_trial
from transformers import TrainerCallback

from tunelm.cli import main
from tunelm.config import from_dict
from tunelm.errors import ConfigError
from tunelm.search import Budget, DivergencePruner, parse_space, run_search, spent
from tunelm.search.space import grid, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)
FLOAT = optuna.distributions.FloatDistribution(0, 1)


def frozen(number, state, cost=10.0, **system):
    t = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                     user_attrs={"cost_seconds": cost}, system_attrs=system)
    t.number = number
    return t


def test_budget_counts_finished_trials_once():
    trials = [frozen(0, TrialState.COMPLETE), frozen(1, TrialState.PRUNED),
              frozen(2, TrialState.FAIL), frozen(3, TrialState.COMPLETE, failed_trial=2),
              frozen(4, TrialState.RUNNING, cost=0.0)]
    s = spent(trials)
    assert s.trials == 3  # trial 2 failed and was retried as trial 3: counted once
    assert s.device_seconds == 40.0
    assert Budget(trials=3).exhausted(s, 0).startswith("trial budget spent: 3 of 3")
    assert Budget(trials=4).exhausted(s, 0) is None
    assert "device-hours" in Budget(device_hours=0.01).exhausted(s, 0)
    assert "minutes" in Budget(wall_minutes=1).exhausted(s, 61)


def test_space_parsing_reports_every_problem():
    with pytest.raises(ConfigError) as err:
        parse_space({
            "lora.alpha": {"type": "float", "low": 8, "high": 64},
            "train.lerning_rate": {"type": "float", "low": 1e-4, "high": 1e-2},
            "train.warmup_ratio": {"type": "float", "low": 0.2, "high": 0.1},
            "train.weight_decay": {"type": "float", "low": 0.0, "high": 0.1, "log": True},
            "lora.r": {"type": "categorical", "choices": []},
        })
    text = str(err.value)
    assert "alpha and the learning rate are one knob" in text
    assert "'train.lerning_rate' is not a config field" in text
    assert "low must be < high" in text and "a log scale needs low > 0" in text
    assert "choices must be a non-empty list" in text


def test_grid_and_conditional_suggestions():
    dims = parse_space({
        "train.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "lora.r": {"type": "categorical", "choices": [8, 16]},
        "train.scheduler": {"type": "categorical", "choices": ["cosine", "wsd"]},
        "train.wsd_stable_end": {"type": "float", "low": 0.6, "high": 0.9,
                                 "when": {"train.scheduler": "wsd"}},
    })
    g = grid(dims, 3)
    assert g["train.learning_rate"] == [1e-4, 1e-3, 1e-2]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        params = suggest(study.ask(), dims)
        assert ("train.wsd_stable_end" in params) == (params["train.scheduler"] == "wsd")
        seen.add(params["train.scheduler"])
    assert seen == {"cosine", "wsd"}
    given = {"lora.r": 64, "train.learning_rate": 1e-3, "train.warmup_ratio": 0.05,
             "train.scheduler": "cosine"}
    study.enqueue_trial(given)  # what the search does for a recommended start or a stage
    fixed = suggest(study.ask(), dims, given)
    assert fixed["lora.r"] == 64 and fixed["train.learning_rate"] == 1e-3
    assert fixed["train.warmup_ratio"] == 0.05


def test_a_condition_written_before_its_dimension_is_still_drawn():
    """YAML with sorted keys puts train.scheduler after the dimension conditioned on it."""
    dims = parse_space({
        "train.wsd_stable_end": {"type": "float", "low": 0.6, "high": 0.9,
                                 "when": {"train.scheduler": "wsd"}},
        "train.scheduler": {"type": "categorical", "choices": ["cosine", "wsd"]},
    })
    assert [d.name for d in dims] == ["train.scheduler", "train.wsd_stable_end"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [suggest(study.ask(), dims) for _ in range(20)]
    assert any("train.wsd_stable_end" in p for p in drawn)
    assert all(("train.wsd_stable_end" in p) == (p["train.scheduler"] == "wsd") for p in drawn)


def test_conditions_in_a_circle_are_refused():
    with pytest.raises(ConfigError) as err:
        parse_space({
            "train.scheduler": {"type": "categorical", "choices": ["cosine", "wsd"],
                                "when": {"train.wsd_stable_end": 0.7}},
            "train.wsd_stable_end": {"type": "float", "low": 0.6, "high": 0.9,
                                     "when": {"train.scheduler": "wsd"}},
        })
    assert "in a circle" in str(err.value)


def test_divergence_pruner():
    pruner = DivergencePruner(factor=2.0)

    def trial(values):
        return create_trial(state=TrialState.RUNNING, intermediate_values=dict(enumerate(values)),
                            params={}, distributions={})
    assert not pruner.prune(None, trial([3.0, 2.0, 1.5, 1.6]))
    assert pruner.prune(None, trial([3.0, 2.0, 1.0, 2.5]))
    assert pruner.prune(None, trial([3.0, math.inf]))


# ---------------------------------------------------------------------------------------------
# Tiny-model studies on CPU


SPACE = {"train.learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
         "lora.r": {"type": "categorical", "choices": [4, 8]}}


@pytest.fixture
def search_cfg(tiny_config):
    def make(**search):
        cfg = tiny_config(train={"max_steps": 8, "eval_steps": 2})
        raw = cfg.to_dict()
        raw["search"].update({"space": SPACE, "pruner": "none", "curve_pruner": False, **search})
        return from_dict(raw)
    return make


@pytest.mark.parametrize("strategy, trials, expected", [
    ("grid", None, 4), ("random", 3, 3), ("tpe", 3, 3)])
def test_each_sampler_strategy_runs_a_tiny_study(search_cfg, tmp_path, strategy, trials, expected):
    cfg = search_cfg(strategy=strategy, trials=trials, grid_points=2)
    result = run_search(cfg, tmp_path / "study")
    assert len(result.trials) == expected
    assert all(t["state"] == "COMPLETE" for t in result.trials)
    assert result.best_value is not None and (tmp_path / "study" / "study.db").exists()
    best_dir = result.best_trial_dir
    assert (tmp_path / "study" / "trials").is_dir() and best_dir
    assert json.loads((__import__("pathlib").Path(best_dir) / "result.json").read_text())
    kept = [d for d in (tmp_path / "study" / "trials").iterdir() if (d / "best").exists()]
    assert kept == [__import__("pathlib").Path(best_dir)]  # keep_top 1
    if strategy == "tpe":
        first = result.trials[0]
        assert first["tag"] == "recommended"
        assert first["params"]["train.learning_rate"] == cfg.train.learning_rate
    if strategy == "grid":
        lrs = sorted({t["params"]["train.learning_rate"] for t in result.trials})
        assert lrs == [1e-3, 3e-2]


def test_protocol_runs_its_stages(search_cfg, tmp_path):
    wd = {"train.weight_decay": {"type": "float", "low": 0.0, "high": 0.1}}
    cfg = search_cfg(strategy="protocol", trials=None, space={**SPACE, **wd})
    result = run_search(cfg, tmp_path / "study")
    # what the protocol does not tune stays at the config's value, never sampled
    assert {t["params"]["train.weight_decay"] for t in result.trials} == {cfg.train.weight_decay}
    tags = [t["tag"] for t in result.trials]
    assert tags[:4] == ["lr", "lr", "lr", "rank"] and tags[-1] == "final"
    probe_dir = tmp_path / "study" / "trials" / "0000"
    final_dir = tmp_path / "study" / "trials" / f"{len(tags) - 1:04d}"
    probe = json.loads((probe_dir / "result.json").read_text())
    final = json.loads((final_dir / "result.json").read_text())
    assert probe["plan"]["total_steps"] == 2 and final["plan"]["total_steps"] == 8  # 20% probes


def test_resume_keeps_finished_trials_and_counts_them(search_cfg, tmp_path):
    first = run_search(search_cfg(strategy="random", trials=2), tmp_path / "study")
    assert len(first.trials) == 2
    again = run_search(search_cfg(strategy="random", trials=4), tmp_path / "study")
    assert len(again.trials) == 4
    assert [t["value"] for t in again.trials[:2]] == [t["value"] for t in first.trials]
    assert "trial budget spent: 4 of 4" in again.stop_reason
    third = run_search(None, tmp_path / "study")  # the stored config: nothing left to do
    assert len(third.trials) == 4


class OutOfMemoryOnce(TrainerCallback):
    raised = False

    def on_step_begin(self, args, state, control, **kw):
        if not OutOfMemoryOnce.raised:
            OutOfMemoryOnce.raised = True
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_retry_keeps_the_effective_batch(search_cfg, tmp_path):
    cfg = search_cfg(strategy="random", trials=1)
    result = run_search(cfg, tmp_path / "study", callbacks=[OutOfMemoryOnce()])
    assert result.trials[0]["state"] == "COMPLETE"
    study = optuna.load_study(study_name="study",
                              storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}")
    retry = study.trials[0].user_attrs["oom_retries"]
    assert retry == [{"batch_size": 4, "grad_accum": 2}]
    run = json.loads((tmp_path / "study" / "trials" / "0000" / "result.json").read_text())
    assert run["plan"]["effective_batch"] == 8 and run["plan"]["batch_size"] == 4


def test_diverging_trials_are_pruned_with_the_reason(search_cfg, tmp_path):
    cfg = search_cfg(strategy="random", trials=1)
    raw = cfg.to_dict()
    raw["model"]["method"] = "full"
    raw["train"].update({"max_grad_norm": 0.0, "warmup_ratio": 0.0, "max_steps": 40,
                         "scheduler": "constant_with_warmup"})
    raw["search"]["space"] = {"train.learning_rate": {"type": "float", "low": 0.5, "high": 0.5001}}
    result = run_search(from_dict(raw), tmp_path / "study")
    assert result.trials[0]["state"] == "PRUNED"
    assert result.trials[0]["prune_reason"].startswith(("diverged", "loss is", "grad_norm is"))


def test_cli_search_best_and_dry_run(small_data, tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"name": "tiny", "precision": "fp32"},
        "data": {"train": small_data["train"], "eval": small_data["eval"], "max_length": 64},
        "train": {"max_steps": 4, "eval_steps": 2, "batch_size": 8},
        "eval": {"metric": "none"},
        "search": {"space": SPACE, "pruner": "none"},
    }))
    assert main(["-q", "search", str(cfg), "--dry-run"]) == 0
    assert "train.learning_rate" in capsys.readouterr().out
    out = tmp_path / "study"
    assert main(["-q", "search", str(cfg), "--strategy", "random", "--trials", "2",
                 "--out", str(out)]) == 0
    assert "best value" in capsys.readouterr().out
    assert main(["best", str(out)]) == 0
    best = from_dict(yaml.safe_load(capsys.readouterr().out))
    assert 1e-3 <= best.train.learning_rate <= 3e-2
    with pytest.raises(SystemExit) as exc:  # argparse checks --strategy against the registry
        main(["-q", "search", str(cfg), "--strategy", "bogus", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "--strategy must be one of grid, random, tpe, protocol, pbt, adaptive, got 'bogus'" in \
        capsys.readouterr().err
    assert main(["best", str(tmp_path / "nothing")]) == 2


def test_resume_from_the_directory_with_a_larger_budget(search_cfg, tmp_path, capsys):
    run_search(search_cfg(strategy="random", trials=1), tmp_path / "study")
    assert main(["-q", "search", str(tmp_path / "study"), "--trials", "2"]) == 0
    assert capsys.readouterr().out.count("COMPLETE") == 2
    assert main(["-q", "search", str(tmp_path / "study"), "--strategy", "grid"]) == 2


def test_workers_do_not_join_a_protocol_study(search_cfg, tmp_path, capsys):
    from tunelm.search import open_study

    open_study(search_cfg(strategy="protocol"), tmp_path / "study")
    url = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    assert main(["worker", "--storage", url, "--study", "study", "--out", str(tmp_path)]) == 2
    assert "workers can join grid, random, tpe and pbt" in capsys.readouterr().err


def test_pruner_factory():
    from tunelm.search import make_pruner

    for name in ("none", "median", "successive_halving", "hyperband"):
        assert isinstance(make_pruner(name, 2, 20), DivergencePruner)
    assert make_pruner("hyperband", 2, None).inner is not None
    with pytest.raises(ConfigError, match="search.pruner must be one of"):
        make_pruner("asha", 2, 20)
