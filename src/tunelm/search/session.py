"""A study being searched, as a strategy drives it: `StudySession` (the `Session` of
`strategies/base.py`) over a real Optuna study, and the budget that stops it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..config import Config
from .budget import Budget, interrupted, spent
from .dimensions import Dimension, config_values
from .loop import sample_trials
from .proposals import Curve


def curves(study: optuna.Study) -> list[Curve]:
    """Finished trials as the strategies see them (an interrupted one is not: it did not end by
    its configuration, and the strategy proposes it again)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) or \
                interrupted(t):
            continue
        reason = str(t.user_attrs.get("prune_reason", ""))
        diverged = t.state == TrialState.FAIL or reason.startswith(("diverged", "loss is",
                                                                    "grad_norm is"))
        state = "failed" if diverged else ("pruned" if t.state == TrialState.PRUNED else "complete")
        out.append(Curve(
            params=t.user_attrs.get("params", t.params),
            eval_losses=sorted(t.intermediate_values.items()),
            train_losses=[tuple(x) for x in t.user_attrs.get("train_curve", [])],
            state=state, tag=t.user_attrs.get("tag", ""),
            fraction=float(t.user_attrs.get("fraction", 1.0)),
        ))
    return out


class BudgetStop:
    """Checks the study's budget; as an Optuna callback (after every trial) it stops the study."""

    def __init__(self, budget: Budget, started: float):
        self.budget, self.started = budget, started
        self.reason: str | None = None

    def check(self, study) -> str | None:
        self.reason = self.budget.exhausted(spent(study.get_trials(deepcopy=False)),
                                            time.time() - self.started)
        return self.reason

    def __call__(self, study, trial) -> None:
        if self.check(study):
            study.stop()


@dataclass
class StudySession:
    """The study, its config and dimensions, the objective that runs a trial, the callbacks
    after each trial and the budget: what `SearchStrategy.drive` works with."""

    study: optuna.Study
    cfg: Config
    dims: list[Dimension]
    objective: object  # an Optuna objective with a `fatal` attribute (bad input ends the study)
    stop: BudgetStop
    out: Path
    worker: bool = False
    callbacks: list = field(default_factory=list)

    def stopped(self) -> bool:
        return bool(self.stop.check(self.study)) or self.objective.fatal is not None

    def curves(self) -> list[Curve]:
        return curves(self.study)

    def held_values(self) -> dict:
        return config_values(self.cfg, self.dims)

    def enqueue(self, params: dict, tag: str, fraction: float = 1.0, **attrs) -> None:
        self.study.enqueue_trial(params, user_attrs={"fixed": params, "tag": tag,
                                                     "fraction": fraction, **attrs},
                                 skip_if_exists=False)

    def run_queued(self, n: int) -> None:
        self.study.optimize(self.objective, n_trials=n, callbacks=self.callbacks,
                            catch=(Exception,), gc_after_trial=True)

    def sample(self, limit: int | None) -> None:
        sample_trials(self.study, self.objective, self.stop, self.callbacks, limit)
