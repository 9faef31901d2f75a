"""Studies on the tiny model whose objective is a task metric: a user's metric function
maximised, with the pruner stopping the trial whose eval loss trails (it reads the loss, the
only value measured at every evaluation); and `search.objective: exact_match` choosing the trial
with the best exact match, not the one with the lowest eval loss."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import write_jsonl
from tunelm.config import load_config
from tunelm.search.opener import PRUNING_ATTR, load_study
from tunelm.search.run import run_search

SCORER = '''
def brevity(predictions, references):
    """Higher for shorter outputs: any deterministic score a user might bring."""
    mean = sum(len(p) for p in predictions) / max(1, len(predictions))
    return {"brevity": 1.0 / (1.0 + mean), "mean_length": float(mean)}
'''


def _write_config(where: Path, raw: dict) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    # in the order given: a conditional dimension follows the one it depends on
    (where / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return where / "config.yaml"


def test_a_user_metric_maximised_prunes_the_trial_with_the_worse_loss(tiny_config, tmp_path,
                                                                      monkeypatch):
    raw = tiny_config().to_dict()
    raw["eval"].update({"metric": "study_scorer:brevity", "max_examples": 4,
                        "max_new_tokens": 8})
    raw["search"].update({
        "strategy": "grid", "seed": 1, "objective": "brevity", "pruner": "none",
        "curve_pruner": True,
        # a learning rate that trains, then one that leaves the loss where it started
        "space": {"train.learning_rate": {"type": "categorical", "choices": [3e-3, 1e-7]}}})
    config = _write_config(tmp_path / "cfg", raw)
    (tmp_path / "cfg" / "study_scorer.py").write_text(SCORER)  # found beside the config
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    try:
        cfg = load_config(config)
        result = run_search(cfg, tmp_path / "study")
    finally:
        sys.modules.pop("study_scorer", None)
    study, _ = load_study(tmp_path / "study")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # brevity: a score
    trials = {t.params["train.learning_rate"]: t for t in study.trials}
    good, flat = trials[3e-3], trials[1e-7]
    assert good.number == 0, "the grid ran the flat trial first: no finished curve to compare"
    assert good.state == optuna.trial.TrialState.COMPLETE
    task = json.loads((Path(good.user_attrs["trial_dir"]) / "result.json").read_text())[
        "task_metrics"]
    assert good.value == task["brevity"] and task["metric"] == "study_scorer:brevity"
    # the flat trial's eval loss trails: pruned, though a pruner reading the losses in the
    # study's direction (higher is better) would have kept it and stopped nothing
    assert flat.state == optuna.trial.TrialState.PRUNED, flat.user_attrs
    assert flat.user_attrs["prune_reason"].startswith("curve pruner")
    assert min(flat.intermediate_values.values()) > min(good.intermediate_values.values())
    assert study.user_attrs[PRUNING_ATTR].startswith("pruning reads eval_loss")
    assert result.best_trial_dir == good.user_attrs["trial_dir"]


def _constant_answer_rows(n: int, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)
    return [{"messages": [{"role": "user", "content": f"{rng.randint(0, 9)}+{rng.randint(0, 9)}="},
                          {"role": "assistant", "content": "ok"}]} for _ in range(n)]


def test_exact_match_objective_picks_the_best_exact_match_not_the_lowest_loss(tiny_config,
                                                                              tmp_path):
    """The tiny random model learns a constant answer ("ok") in 12 steps at a learning rate of
    3e-3 or 5e-3 (exact match 1.0; 5e-3 reaches the lower eval loss: 4.45 against 4.59 when
    measured). The 5e-3 trial generates one token only (eval.max_new_tokens 1, a conditional
    dimension), so its exact match is 0 while its loss, which generation does not touch, stays
    the lowest: loss and exact match disagree by construction, and deterministically."""
    train = write_jsonl(tmp_path / "data" / "train.jsonl", _constant_answer_rows(64, 0))
    evals = write_jsonl(tmp_path / "data" / "eval.jsonl", _constant_answer_rows(16, 1))
    raw = tiny_config(data={"train": str(train), "eval": str(evals)}).to_dict()
    raw["eval"].update({"metric": "exact", "max_examples": 16})
    raw["search"].update({
        "strategy": "grid", "objective": "exact_match", "pruner": "none", "curve_pruner": False,
        "space": {"train.learning_rate": {"type": "categorical", "choices": [3e-3, 5e-3]},
                  "eval.max_new_tokens": {"type": "categorical", "choices": [1],
                                          "when": {"train.learning_rate": 5e-3}}}})
    cfg = load_config(_write_config(tmp_path / "cfg", raw))
    result = run_search(cfg, tmp_path / "study")
    study, _ = load_study(tmp_path / "study")
    rows = {t.params["train.learning_rate"]: t for t in study.trials}
    assert len(rows) == 2 and all(t.state.name == "COMPLETE" for t in rows.values())
    lowest_loss = min(rows.values(), key=lambda t: t.user_attrs["best_eval_loss"])
    best_em = max(rows.values(), key=lambda t: t.user_attrs["exact_match"])
    assert lowest_loss.params["train.learning_rate"] == 5e-3
    assert best_em.params["train.learning_rate"] == 3e-3
    assert best_em.user_attrs["exact_match"] > lowest_loss.user_attrs["exact_match"]
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.best_trial.number == best_em.number
    assert result.best_trial_dir == best_em.user_attrs["trial_dir"]
    assert result.best_value == best_em.user_attrs["exact_match"]


BAD_SCORERS = '''
def a_list(predictions, references):
    return [len(p) for p in predictions]

def a_word(predictions, references):
    return {"score": "good"}

def other_name(predictions, references):
    return {"recall": 0.5}
'''


@pytest.mark.parametrize("command, fn, objective, message", [
    ("train", "a_list", "eval_loss", "returned list"),
    ("search", "a_word", "score", "score='good': a score must be a finite float"),
    ("search", "other_name", "f1", "search.objective 'f1': the trial's eval.metric "
                                   "'bad_scorers:other_name' returned recall"),
])
def test_a_metric_function_that_returns_the_wrong_thing_exits_2(tiny_config, tmp_path, capsys,
                                                                 command, fn, objective, message):
    from tunelm.cli import main

    raw = tiny_config(train={"max_steps": 4, "eval_steps": 4}).to_dict()
    raw["eval"].update({"metric": f"bad_scorers:{fn}", "max_examples": 2, "max_new_tokens": 4})
    raw["search"].update({"objective": objective, "strategy": "random", "space": {
        "train.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}})
    config = _write_config(tmp_path / "cfg", raw)
    (tmp_path / "cfg" / "bad_scorers.py").write_text(BAD_SCORERS)
    out = tmp_path / "out"
    argv = [command, str(config), "--out", str(out)] + (["--trials", "3"] if command == "search"
                                                        else [])
    try:
        code = main(["-q", *argv])
    finally:
        sys.modules.pop("bad_scorers", None)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"eval.metric 'bad_scorers:{fn}'" in err or "search.objective" in err
    assert message in err
    if command == "search":  # bad input ends the study after its first trial
        study, _ = load_study(out)
        assert len(study.trials) == 1
