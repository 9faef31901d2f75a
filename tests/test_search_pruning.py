"""Pruning compares eval losses, lower is better, whatever the study's direction.

A study of `search.objective: exact_match` maximises its final value, but its trials report
their eval loss at every evaluation: a pruner that read those losses in the study's direction
would keep the trials with the highest loss and stop the good ones.
"""

import optuna
import pytest

from tunelm.search.pruners import make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)
GOOD, BAD = 1.0, 5.0  # eval losses


def run_trial(study, loss: float, steps: int, value: float | None) -> bool:
    """Reports `loss` at steps 1..steps, asking the pruner each time; True when it pruned."""
    trial = study.ask()
    for step in range(1, steps + 1):
        trial.report(loss, step)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return True
    study.tell(trial, value)
    return False


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("pruner", ["median", "successive_halving"])
def test_the_pruner_stops_the_trial_with_the_higher_loss(pruner, direction):
    study = optuna.create_study(direction=direction, pruner=make_pruner(pruner, 1, 9))
    # exact match (maximize) or the loss itself (minimize): either way these trials did well
    value = 0.8 if direction == "maximize" else GOOD
    for _ in range(3):
        assert not run_trial(study, GOOD, 3, value)
    assert run_trial(study, BAD, 3, 0.1), f"{pruner} kept a trial with a worse eval loss"
    assert not run_trial(study, GOOD * 0.9, 3, value), f"{pruner} stopped the better trial"


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_hyperband_stops_the_trials_with_the_higher_loss(direction):
    study = optuna.create_study(direction=direction, pruner=make_pruner("hyperband", 1, 27))
    pruned = {GOOD: 0, BAD: 0}
    for i in range(24):
        loss = GOOD if i % 2 == 0 else BAD
        value = (0.8 if loss == GOOD else 0.1) if direction == "maximize" else loss
        pruned[loss] += run_trial(study, loss, 27, value)
    assert pruned[BAD] > 0
    assert pruned[GOOD] < pruned[BAD]


def test_the_pruners_view_leaves_the_study_as_it_was():
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", 1, 9))
    for _ in range(4):
        run_trial(study, GOOD, 2, 0.5)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.best_value == 0.5


def test_the_reporter_does_not_ask_the_pruner_at_the_last_step():
    """A trial at its last evaluation has nothing left to save but its final score: the
    reporter stops training at any earlier evaluation the pruner rejects, not at that one."""
    from transformers import TrainerControl, TrainerState

    from tunelm.search.objective import OptunaReporter

    class Always(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    study = optuna.create_study(pruner=Always())
    reporter = OptunaReporter(study.ask())
    for step, stops in ((10, True), (20, False)):
        state, control = TrainerState(global_step=step, max_steps=20), TrainerControl()
        reporter.pruned_at = None
        reporter.on_evaluate(None, state, control, metrics={"eval_loss": BAD})
        assert control.should_training_stop is stops
        assert reporter.pruned_at == (step if stops else None)
