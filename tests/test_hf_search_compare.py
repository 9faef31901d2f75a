"""benchmarks/hf_search_compare.py without training: its bad inputs, and how it counts trials from
an Optuna study (trials per hour, best objective, best eval loss of any evaluation)."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import hf_search_compare as hf  # noqa: E402


def test_bad_sides_and_minutes_are_refused(capsys):
    assert hf.main(["--sides", "ray"]) == 2
    assert "--sides must name tunelm and/or hf, got 'ray'" in capsys.readouterr().err
    assert hf.main(["--minutes", "0"]) == 2
    assert "--minutes must be > 0, got 0" in capsys.readouterr().err


def test_trials_are_counted_from_the_study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    curves = {0: [0.9, 0.5, 0.4], 1: [0.8, 0.7], 2: [0.3, 0.35]}
    for number, losses in curves.items():
        trial = study.ask()
        for step, loss in enumerate(losses, start=1):
            trial.report(loss, 3 * step)
        if number == 1:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, losses[-1])  # the last evaluation, as the Trainer reports it
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    rows = hf.trial_rows(study)
    assert [r["best_eval_loss"] for r in rows[:3]] == [0.4, 0.7, 0.3]
    s = hf.summary(rows, wall=1800.0, cpu=3600.0)
    assert (s["trials_finished"], s["trials_complete"], s["trials_pruned"],
            s["trials_failed"]) == (3, 2, 1, 1)
    assert s["trials_per_hour"] == pytest.approx(6.0)
    assert s["trials_per_cpu_hour"] == pytest.approx(3.0)
    assert s["best_objective"] == pytest.approx(0.35)  # trial 2's last evaluation
    assert s["best_eval_loss_any_evaluation"] == pytest.approx(0.3)
