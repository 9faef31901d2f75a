"""A preempted trial goes back to the study, and its retry resumes where it stopped.

When SIGTERM stops a trial (its checkpoint saved: `runner/checkpoint.py`), the worker fails it
with the user attribute `preempted` (the step it reached) and queues a copy of it, as Optuna's
`RetryHeartbeatStaleTrialCallback` queues the retry of a dead worker's trial: same parameters,
user attributes and reported eval losses, and the system attribute `failed_trial` naming the
first trial of the series. Preemptions are listed apart (`preempted`), so they do not use up the
heartbeat's one retry (`preempted_trials`).

Every trial of a series runs in the directory of the first (`trials/<first number>`), so the
worker that takes the retry, on this machine or another sharing the study directory, finds the
checkpoint there and resumes from it; the same holds for a heartbeat retry, which resumes from
the last periodic checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna

log = logging.getLogger("tunelm.search")

PREEMPTED_ATTR = "preempted"  # user attribute: the step a preempted trial stopped at
PREEMPTED_TRIALS = "preempted_trials"  # system attribute of a copy: the preempted trials before it


def first_of_series(trial) -> int:
    """The number of the trial this one retries (a heartbeat retry or a preempted trial's
    copy), or its own number."""
    attrs = getattr(trial, "system_attrs", None)  # a FrozenTrial; a live Trial asks storage
    if attrs is None:
        attrs = trial.study._storage.get_trial_system_attrs(trial._trial_id)
    return int(attrs.get("failed_trial", trial.number))


def trial_dir(study_dir: Path, trial) -> Path:
    """Where a trial runs: its series' directory, which holds the checkpoint it resumes from."""
    return Path(study_dir) / "trials" / f"{first_of_series(trial):04d}"


def retried_numbers(trials) -> set[int]:
    """Every trial that another trial retries: dead workers' trials and preempted trials."""
    out: set[int] = set()
    for t in trials:
        attrs = t.system_attrs
        if "failed_trial" in attrs:
            out.add(attrs["failed_trial"])
        out.update(attrs.get("retry_history", ()))
        out.update(attrs.get(PREEMPTED_TRIALS, ()))
    return out


def requeue(study: optuna.Study, trial_id: int) -> int:
    """Queue a copy of the trial `trial_id` (being failed as preempted) to run again; returns
    the number of the trial it retries first."""
    frozen = study._storage.get_trial(trial_id)
    system = {"failed_trial": frozen.number, **frozen.system_attrs}
    system[PREEMPTED_TRIALS] = [*system.get(PREEMPTED_TRIALS, []), frozen.number]
    user = {k: v for k, v in frozen.user_attrs.items() if k not in (PREEMPTED_ATTR, "error", "cost_seconds")}
    study.add_trial(optuna.create_trial(
        state=optuna.trial.TrialState.WAITING, params=frozen.params,
        distributions=frozen.distributions, user_attrs=user,
        system_attrs=system, intermediate_values=frozen.intermediate_values))
    log.info("trial %d preempted: queued again, to resume from its checkpoint", frozen.number)
    return system["failed_trial"]


__all__ = ["PREEMPTED_ATTR", "PREEMPTED_TRIALS", "first_of_series", "requeue", "retried_numbers", "trial_dir"]
