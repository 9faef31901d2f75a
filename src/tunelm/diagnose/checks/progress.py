"""NO_PROGRESS: the eval loss barely improved on where it started.

An eval loss that got worse from its first evaluation on is not this: that asks for the opposite
fix (EVAL_WORSE, in eval_worse.py, or OVERFIT once the data came round), and "raise the rate" on
such runs was the worst advice the benchmark of advice (benchmarks/advice_accuracy.py) found.
"""

from __future__ import annotations

import math

from ..advice import lr_change, setting
from ..finding import SEVERE, WARNING, Finding
from ..metrics import MetricsTable
from ..stats import mean, relative
from .instability import batch_noise

MIN_IMPROVEMENT = 0.03  # best eval loss under 3% (relative) below the first one: no progress
WORSE = 0.02  # the last eval loss over 2% above the first, the first being the best: worse
MIN_EVALS = 2
LATE_FIRST_EVAL = 0.25  # a first evaluation after this share of the run is not "the start"
EDGE = 0.2  # the train loss's start and end: means of the first and last 20% of its logs


SIGNIFICANCE = 2.0  # a fall of the train loss counts when over twice its standard error


def train_drop(table: MetricsTable) -> tuple[float | None, bool]:
    """(relative fall of the train loss from the mean of its first EDGE of logs to that of its
    last, whether that fall stands out of the batch noise: over SIGNIFICANCE standard errors)."""
    rows = table.finite_train()
    if len(rows) < 2:
        return None, False
    n = max(1, round(EDGE * len(rows)))
    start, end = mean(r.loss for r in rows[:n]), mean(r.loss for r in rows[-n:])
    sd, _ = batch_noise(table, 0, 1)
    return -relative(end, start), start - end > SIGNIFICANCE * sd * math.sqrt(2 / n)


def check_no_progress(table: MetricsTable) -> Finding | None:
    """The best eval loss improved on the first by less than MIN_IMPROVEMENT (relative)."""
    evals = table.finite_eval()
    if len(evals) < MIN_EVALS:
        return None
    first, last = evals[0], evals[-1]
    best = min(evals, key=lambda r: r.eval_loss)
    improvement = -relative(best.eval_loss, first.eval_loss)
    if improvement >= MIN_IMPROVEMENT:
        return None
    drop, fell = train_drop(table)
    if best is first and relative(last.eval_loss, first.eval_loss) > WORSE:
        return None  # it got worse: EVAL_WORSE's or OVERFIT's, not "no progress"
    evidence = {"first_eval_loss": first.eval_loss, "first_eval_step": first.step,
                "best_eval_loss": best.eval_loss, "best_step": best.step,
                "improvement": improvement, "train_loss_drop": drop}
    message = (f"the eval loss improved only {max(improvement, 0):.1%} (under "
               f"{MIN_IMPROVEMENT:.0%}): {first.eval_loss:.4g} at step {first.step}, best "
               f"{best.eval_loss:.4g} at step {best.step}")
    if drop is not None:
        message += (f"; the train loss fell {drop:.0%} meanwhile (means of its first and last "
                    f"20%{'' if fell else ', within the batch noise'})")
    factor = None
    if drop is None or drop < MIN_IMPROVEMENT or not fell:
        factor = 3
        fix = (f"neither loss moved: {lr_change(table, 3, 'raise')}; check that the model has "
               "trainable parameters and that the labels are not all masked")
        if table.kind == "tunelm":
            fix += " (data.completion_only with a wrong chat template masks everything)"
    else:
        fix = ("the train loss fell but the eval loss did not: check that the eval set comes "
               "from the same task and format as the training data; with little data, use "
               f"fewer epochs and more regularisation ({setting(table, 'dropout', 0.1)})")
    if first.step > LATE_FIRST_EVAL * table.steps:
        fix += (f"; the first evaluation came at step {first.step}, so the start is not "
                "measured: evaluate at step 0 too (eval_on_start=True)")
    return Finding("NO_PROGRESS", SEVERE if improvement <= 0 and factor else WARNING, message,
                   evidence, fix + ".", verdict="NO_PROGRESS", lr_change=factor)

