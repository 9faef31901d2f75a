"""The readers of a study rank by its objective and direction: a study maximising a score of the
user's metric function (`f1`) is read by `tunelm best`, the report, `evaluate` (its best trial)
and `transfer` (its top configs) best-first by that score, not by eval loss. Synthetic trials in
a real study storage: no model."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution

from tunelm.config import from_dict
from tunelm.evaluate import _best_trial_dir
from tunelm.report.data import collect
from tunelm.search.opener import open_study
from tunelm.search.results import best_config, describe, summarize
from tunelm.transfer.run import _ranked

optuna.logging.set_verbosity(optuna.logging.WARNING)
LR = "train.learning_rate"
# (learning rate, f1, best eval loss): the lowest loss is not the best f1
TRIALS = [(1e-3, 0.20, 0.9), (3e-3, 0.90, 1.4), (1e-2, 0.50, 1.1)]


@pytest.fixture
def study_dir(tmp_path):
    (tmp_path / "scorer").mkdir()
    (tmp_path / "scorer" / "rank_scorer.py").write_text(
        "def f1(p, r):\n    return {'f1': 1.0}\n")
    cfg = from_dict({
        "model": {"name": "tiny"}, "data": {"task": "contracts"},
        "eval": {"metric": "rank_scorer:f1", "metric_path": str(tmp_path / "scorer")},
        "search": {"objective": "f1", "strategy": "random",
                   "space": {LR: {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}}})
    out = tmp_path / "study"
    study, _ = open_study(cfg, out)
    for lr, f1, loss in TRIALS:
        d = out / "trials" / f"lr{lr:g}"
        d.mkdir(parents=True)
        study.add_trial(optuna.trial.create_trial(
            params={LR: lr}, distributions={LR: FloatDistribution(1e-4, 1e-1, log=True)},
            value=f1, user_attrs={"params": {LR: lr}, "trial_dir": str(d),
                                  "best_eval_loss": loss, "task_scores": {"f1": f1}}))
    return out


def test_every_reader_ranks_by_the_objective(study_dir):
    best_lr = 3e-3  # f1 0.9, though its eval loss is the highest
    assert best_config(str(study_dir)).train.learning_rate == best_lr
    run_dir, _, _ = _best_trial_dir(str(study_dir), study_dir, None)
    assert run_dir.name == f"lr{best_lr:g}"
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert [t.params[LR] for t in _ranked(study)] == [3e-3, 1e-2, 1e-3]
    data = collect(study_dir)
    assert data.direction == "maximize" and data.objective == "f1" and data.task_score == "f1"
    assert data.best.params[LR] == best_lr
    assert {r.params[LR]: r.task_metric for r in data.rows} == {lr: f1 for lr, f1, _ in TRIALS}
    text = describe(summarize(study, "sqlite", "done"))
    assert "best value 0.9000 (f1, maximized)" in text
    assert "pruning reads eval_loss at every evaluation" in text
