"""Moved to `tunelm.plan` (the step plan is pure: `tunelm export` reads it without the runner).
This alias keeps `tunelm.runner.plan` importable for callers outside the runner."""

from ..plan import TARGET_EVALS, StepPlan, plan_steps

__all__ = ["TARGET_EVALS", "StepPlan", "plan_steps"]
