"""Budgets are totals for the study: trials, device-hours and wall-clock. A resumed study counts
what it already spent. Pure functions of the study's trials, so they are tested without training.
"""

from __future__ import annotations

from dataclasses import dataclass

COST_ATTR = "cost_seconds"  # a trial's measured training time (wall seconds x devices)
NOT_RUN_ATTR = "not_run"  # a trial a worker created after the trial budget was taken, never run
# a trial cut off by Ctrl-C or a full disk, not by its configuration (search/interrupt.py): it
# counts for nothing, like one never run, and runs again when the study continues
INTERRUPTED_ATTR = "interrupted"


@dataclass(frozen=True)
class Spent:
    trials: int
    device_seconds: float

    @property
    def device_hours(self) -> float:
        return self.device_seconds / 3600


@dataclass(frozen=True)
class Budget:
    trials: int | None = None
    device_hours: float | None = None
    wall_minutes: float | None = None  # of this session

    def exhausted(self, spent: Spent, wall_seconds: float) -> str | None:
        """Why the budget is spent, or None while there is some left."""
        if self.trials is not None and spent.trials >= self.trials:
            return f"trial budget spent: {spent.trials} of {self.trials} trials finished"
        if self.device_hours is not None and spent.device_hours >= self.device_hours:
            return (f"compute budget spent: {spent.device_hours:.3f} of {self.device_hours:g} "
                    "device-hours")
        if self.wall_minutes is not None and wall_seconds >= self.wall_minutes * 60:
            return f"time budget spent: {wall_seconds / 60:.1f} of {self.wall_minutes:g} minutes"
        return None


def spent(trials) -> Spent:
    """What finished trials cost. A failed trial that was retried (its worker died, or it was
    preempted) is counted once, through its retry, with the cost of every attempt; an
    interrupted one not at all; trials still running or waiting are not counted."""
    from optuna.trial import TrialState

    retried = _retried(trials)
    done = [
        t for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.number not in retried and not _not_run(t))
    ]
    seconds = sum(float(t.user_attrs.get(COST_ATTR, 0.0)) for t in trials)
    return Spent(len(done), seconds)


def claimed(trials) -> int:
    """Trials that hold a place in a trial budget now: the finished ones as `spent` counts them,
    and those running or waiting. Workers of one study start a trial only while this is below
    the budget, so the study ends with exactly that many, however many workers join.

    A dead worker's trial is failed and re-queued as a waiting retry: the retry holds its place.
    """
    from optuna.trial import TrialState

    live = sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    return spent(trials).trials + live


def _retried(trials) -> set:
    """Trials another trial retries: a dead worker's (Optuna's heartbeat retry) and every
    preempted trial of a series (`search/preemption.py`)."""
    out = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    for t in trials:
        out.update(t.system_attrs.get("retry_history", ()))
        out.update(t.system_attrs.get("preempted_trials", ()))
    return out


def _not_run(t) -> bool:
    return bool(t.user_attrs.get(NOT_RUN_ATTR)) or interrupted(t)


def interrupted(t) -> bool:
    """Cut off by Ctrl-C or a full disk (`INTERRUPTED_ATTR`): as if it had not run."""
    return bool(t.user_attrs.get(INTERRUPTED_ATTR))
