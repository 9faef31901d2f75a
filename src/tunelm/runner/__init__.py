"""One trial: Trainer + PEFT with callbacks, and the trial directory it leaves."""

from ..plan import StepPlan, plan_steps
from .trial import run_trial

__all__ = ["StepPlan", "plan_steps", "run_trial"]
