"""What a study optimises: `search.objective` (the eval loss or any score of `eval.metric`), its
direction, and what the pruners read while a trial runs. Pure: the config check, the study's
opening, the strategies and the trial's value all ask here.

Where each value is measured decides what pruning can read. The eval loss is measured at every
evaluation, so trials report it at every eval step. A task metric needs generation and is
measured once per trial, on the checkpoint with the best eval loss, after training; so while a
trial runs there is no value of it to compare, and the pruners read the eval loss (lower is
better) whatever the objective and its direction (`PRUNING_READS`, `pruning_note`).
"""

from __future__ import annotations

from ..errors import ConfigError
from ..tasks.metrics import METRICS, offered

LOSS = "eval_loss"
DIRECTIONS = ("minimize", "maximize")
PRUNING_READS = LOSS  # the only value measured at eval steps
# a score named like these is minimised unless search.direction says otherwise
_LOWER_IS_BETTER = ("loss", "error", "perplexity", "ppl", "wer", "cer")


def default_direction(objective: str) -> str:
    """minimize for the eval loss and scores named like a loss or an error rate (`*loss`,
    `*error`, `*perplexity`, `*ppl`, `*wer`, `*cer`), maximize for every other score."""
    name = str(objective).lower()
    return "minimize" if name.endswith(_LOWER_IS_BETTER) else "maximize"


def direction_of(search) -> str:
    """The study's direction: search.direction when set, else the objective's default."""
    return search.direction or default_direction(search.objective)


def objective_problems(search, eval_cfg) -> list[str]:
    """search.objective and search.direction against eval.metric, as messages naming the field,
    the value and what is accepted."""
    obj, metric, problems = search.objective, eval_cfg.metric, []
    if search.direction is not None and search.direction not in DIRECTIONS:
        problems.append(f"search.direction must be {' or '.join(DIRECTIONS)} (or empty: from "
                        f"the objective), got {search.direction!r}")
    if not isinstance(obj, str) or not obj.strip():
        return [*problems, f"search.objective must name {LOSS} or a score of eval.metric, "
                           f"got {obj!r}"]
    if obj == LOSS or not isinstance(metric, str):
        return problems
    keys = offered(metric)
    if keys is not None and obj not in keys:
        problems.append(f"search.objective {obj!r} is not a score of eval.metric {metric!r}: "
                        f"accepted: {', '.join((LOSS, *keys))}{_which_metric(obj)}")
    if eval_cfg.max_examples == 0:
        problems.append(f"search.objective {obj!r} is a task metric, measured by generating on "
                        "eval examples: eval.max_examples must be > 0, got 0")
    return problems


def _which_metric(objective: str) -> str:
    """' (it is a score of eval.metric rouge)', or a pointer to user functions."""
    for m in METRICS.values():
        if objective in m.keys:
            return f" (it is a score of eval.metric {m.name})"
    return " (or set eval.metric to package.module:function, a function returning it)"


def pruning_note(objective: str, direction: str) -> str:
    """Why the pruners read what they read, recorded with the study."""
    if objective == LOSS:
        return f"pruning reads {LOSS}, the objective, at every evaluation (lower is better)"
    return (f"pruning reads {LOSS} at every evaluation (lower is better): the objective "
            f"{objective} ({direction}) is measured once per trial, on the checkpoint with the "
            "best eval loss, after training")


def value_of(objective: str, direction: str, result: dict) -> float:
    """A finished trial's objective value from its result.json. A score the metric did not
    return is bad input (ConfigError naming search.objective and what it returned); a score of
    no examples (None) is the worst value."""
    if objective == LOSS:  # the best checkpoint on the whole eval set (runner/final_score.py);
        # the run's best on the pruning subset where it has none (a probe, an older result)
        loss = (result.get("final_score") or {}).get("eval_loss", result.get("best_eval_loss"))
        return float(loss) if loss is not None else float("inf")
    task = result.get("task_metrics") or {}
    if objective not in task:
        got = sorted(k for k, v in task.items() if isinstance(v, (int, float)) and k != "n")
        raise ConfigError(f"search.objective {objective!r}: the trial's eval.metric "
                          f"{task.get('metric', 'none')!r} returned "
                          f"{', '.join(got) or 'no score'}; name one of them (or {LOSS})")
    value = task[objective]
    if value is None:
        return float("inf") if direction == "minimize" else float("-inf")
    return float(value)


__all__ = ["DIRECTIONS", "LOSS", "PRUNING_READS", "default_direction", "direction_of",
           "objective_problems", "pruning_note", "value_of"]
