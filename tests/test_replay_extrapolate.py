"""The learning-curve extrapolation tried in the small-budget replay (benchmarks/_extrapolate.py)
on synthetic curves: the power-law fit recovers a known curve, refuses what it cannot fit, and
the two modes of the pruner built on it decide as documented."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _extrapolate import FitCurvePruner, fit_power_law, predicted_final  # noqa: E402


def law(s: int, a=2.0, b=0.7, c=0.5) -> float:
    return a * s ** -b + c


def test_the_fit_recovers_a_power_law_and_predicts_its_end():
    pts = [(s, law(s)) for s in (3, 6, 9, 12)]
    a, b, c = fit_power_law(pts)
    assert (a, b, c) == pytest.approx((2.0, 0.7, 0.5), rel=0.05)
    assert predicted_final(pts, 18) == pytest.approx(law(18), rel=0.01)


def test_no_fit_from_two_points_or_a_rising_curve():
    assert fit_power_law([(3, 1.0), (6, 0.8)]) is None
    assert fit_power_law([(3, 0.5), (6, 0.8), (9, 1.2)]) is None
    assert predicted_final([(3, 1.0)], 18) is None


def _study(finished: list, running: list, mode: str):
    study = optuna.create_study(pruner=FitCurvePruner(18, mode))
    for curve in finished:
        t = study.ask()
        for s, v in curve:
            t.report(v, s)
        study.tell(t, min(v for _, v in curve))
    t = study.ask()
    for s, v in running:
        t.report(v, s)
    return study, study._storage.get_trial(t._trial_id)


def test_veto_keeps_a_slow_starter_predicted_to_catch_up_and_prune_mode_stops_a_loser_early():
    best = [(s, law(s)) for s in (3, 6, 9, 12, 15, 18)]
    # behind at every shared step, but falling faster: predicted below the best's final loss
    slow = [(s, law(s, a=3.0, b=0.5, c=0.0)) for s in (3, 6, 9)]
    study, trial = _study([best], slow, "veto")
    assert FitCurvePruner(18, "prune").verdict(study, trial).prune  # the comparison would stop it
    assert not study.pruner.prune(study, trial)  # the fit vetoes it
    # ahead at every shared step, but flattening out well above the best's final loss
    flat = [(s, law(s, a=1.0, b=0.8, c=0.75)) for s in (3, 6, 9)]
    study, trial = _study([best], flat, "prune")
    assert not study.pruner.verdict(study, trial).prune  # the comparison would keep it
    assert study.pruner.prune(study, trial)
    assert not FitCurvePruner(18, "veto").prune(study, trial)


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be one of veto, prune, got 'x'"):
        FitCurvePruner(18, "x")
