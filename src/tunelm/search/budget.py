"""Budgets are totals for the study: trials, device-hours and wall-clock. A resumed study counts
what it already spent. Pure functions of the study's trials, so they are tested without training.
"""

from __future__ import annotations

from dataclasses import dataclass

COST_ATTR = "cost_seconds"  # a trial's measured training time (wall seconds x devices)


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
    """What finished trials cost. A failed trial that was retried (its worker died) is counted
    once, through its retry; trials still running or waiting are not counted."""
    from optuna.trial import TrialState

    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    done = [
        t for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and t.number not in retried)
    ]
    seconds = sum(float(t.user_attrs.get(COST_ATTR, 0.0)) for t in trials)
    return Spent(len(done), seconds)
