"""The worker loop of the sampler strategies (grid, random, tpe), safe for many workers.

Any number of processes on any number of machines run this same loop on one study; Optuna's
storage is the only thing they share. The trial budget is kept exactly:

- before asking for a trial, a worker counts the trials that hold a place in the budget
  (finished, running, waiting: `budget.claimed`) and starts one only while that is below it;
- two workers can still ask in the same instant; the later trial (by number) sees the earlier
  ones holding every place and is closed unrun (state FAIL, user attribute `not_run`), which
  neither budgets nor reports count;
- when every place is held but other workers' trials still run, a worker waits: if one of them
  died, its heartbeat goes stale, Optuna fails it and queues a retry (once), and the waiting
  worker runs that retry. A finished trial is never run again.
"""

from __future__ import annotations

import logging
import time

import optuna
from optuna.trial import TrialState

from .budget import NOT_RUN_ATTR, claimed
from .preemption import first_of_series

log = logging.getLogger("tunelm.search")
POLL_SECONDS = 5.0


class OverBudget(Exception):
    """Raised inside the objective for a trial created after the budget was taken."""


class Admitted:
    """Wraps an objective: a trial runs only if the trials numbered before it leave it a place."""

    def __init__(self, objective, limit: int | None):
        self.objective, self.limit = objective, limit

    def __call__(self, trial: optuna.Trial) -> float:
        # a retry (a dead worker's trial, a preempted one) takes the place its first trial held
        if self.limit is not None and first_of_series(trial) == trial.number:
            before = [t for t in trial.study.get_trials(deepcopy=False)
                      if t.number < trial.number]
            if claimed(before) >= self.limit:
                trial.set_user_attr(NOT_RUN_ATTR, f"the study's {self.limit} trials were "
                                    "already taken by other workers")
                raise OverBudget(f"trial {trial.number} not run: the budget of {self.limit} "
                                 "trials is taken")
        return self.objective(trial)


def sample_trials(study: optuna.Study, objective, stop, callbacks, limit: int | None,
                  poll: float = POLL_SECONDS) -> None:
    """Run trials of a sampler strategy until the budget (`stop`, `limit` trials) is spent."""
    admitted = Admitted(objective, limit)
    while not stop.check(study) and getattr(objective, "fatal", None) is None:
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if limit is not None and not waiting and claimed(trials) >= limit:
            if not any(t.state == TrialState.RUNNING for t in trials):
                break  # every place taken and nothing left running: done
            # other workers still run the last trials; if one died, its trial comes back
            # as a waiting retry once the heartbeat is stale
            optuna.storages.fail_stale_trials(study)
            time.sleep(poll)
            continue
        study.optimize(admitted, n_trials=1, callbacks=callbacks,
                       catch=(Exception,), gc_after_trial=True)
