"""Whether the logs can answer the questions at all: eval losses logged, train losses logged
often enough. Missing logs are findings with their fix, not errors; they decide no verdict."""

from __future__ import annotations

from ..advice import setting
from ..finding import INFO, WARNING, Finding
from ..metrics import MetricsTable

MIN_EVALS = 3  # the overfitting check needs three evaluations
MIN_TRAIN_LOGS = 5  # the train-loss checks need a handful of points


def _eval_fix(table: MetricsTable) -> str:
    every = max(1, round(table.steps / 10))
    if table.kind == "tunelm":
        return (f"give eval data (data.eval, or keep data.eval_fraction above 0) and set "
                f"train.eval_steps {every} (about 10 evaluations per run)")
    return (f"pass an eval_dataset and set eval_strategy='steps', eval_steps={every} (about 10 "
            "evaluations per run); in Axolotl val_set_size: 0.05 with eval_steps, in "
            "LLaMA-Factory val_size: 0.05 with eval_strategy: steps")


def check_eval_logged(table: MetricsTable) -> Finding | None:
    """No eval loss (a warning) or too few evaluations to see a turn (info)."""
    n = len(table.eval)
    if n >= MIN_EVALS:
        return None
    if n == 0:
        return Finding(
            "NO_EVAL", WARNING,
            "no eval loss was logged: overfitting and progress on held-out data cannot be "
            "judged, only the train loss", {"eval_points": 0}, _eval_fix(table) + ".")
    return Finding(
        "FEW_EVALS", INFO,
        f"only {n} evaluation{'s' if n > 1 else ''} logged: a turn of the eval loss needs at "
        f"least {MIN_EVALS}", {"eval_points": n, "steps": [r.step for r in table.eval]},
        "evaluate more often: " + _eval_fix(table) + ".")


def check_train_logged(table: MetricsTable) -> Finding | None:
    """Fewer than MIN_TRAIN_LOGS train losses: the curve's shape cannot be read."""
    n = len(table.train)
    if n >= MIN_TRAIN_LOGS:
        return None
    every = max(1, round(table.steps / 50))
    return Finding(
        "FEW_TRAIN_LOGS", WARNING if n == 0 else INFO,
        f"only {n} train loss{'es' if n != 1 else ''} logged over {table.steps} steps: "
        "instability, underfitting and the learning rate cannot be read from the curve",
        {"train_points": n, "steps": table.steps},
        f"log more often: {setting(table, 'logging_steps', every)} (Trainer's default is 500).")
