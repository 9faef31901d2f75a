"""UNDERFIT: the train loss is still falling when the run ends, and the eval loss has not turned.

The fall is read within the last epoch: across an epoch boundary the train loss drops because the
examples come round again, which says nothing about needing more steps.
"""

from __future__ import annotations

import math

from ..advice import longer_run
from ..finding import WARNING, Finding
from ..metrics import MetricsTable
from ..stats import linear_fit, mean, relative

TAIL = 0.25  # "at the end": the last quarter of the logged steps
MIN_TAIL_POINTS = 4
STILL_FALLING = 0.03  # the fitted line falls by over 3% of the loss level across the tail ...
MIN_DROP = 0.02  # ... and by over 0.02 nats (a loss near zero falls by tiny amounts)
SIGNIFICANCE = 2.0  # ... and by over twice its standard error (not a trick of batch noise)
EVAL_TURNED = 0.01  # the eval loss more than 1% above its best has turned: not underfitting


def check_underfit(table: MetricsTable) -> Finding | None:
    """A least-squares line through the last TAIL of the train loss falls significantly."""
    rows = table.finite_train()
    if not rows:
        return None
    first, last = rows[0].step, rows[-1].step
    # within the last epoch only: the drop at a boundary is the data coming round again
    final = {r.step for r in table.segments()[-1]}
    tail = [r for r in rows if r.step >= last - TAIL * (last - first) and r.step in final]
    if len(tail) < MIN_TAIL_POINTS:
        return None
    evals = table.finite_eval()
    best_eval = min((r.eval_loss for r in evals), default=None)
    if evals and relative(evals[-1].eval_loss, best_eval) > EVAL_TURNED:
        return None
    xs, ys = [r.step for r in tail], [r.loss for r in tail]
    slope, _, se = linear_fit(xs, ys)
    span = xs[-1] - xs[0]
    drop, drop_se, level = -slope * span, se * span, mean(ys)
    if level <= 0 or drop / level <= STILL_FALLING or drop <= MIN_DROP:
        return None
    if math.isfinite(drop_se) and drop <= SIGNIFICANCE * drop_se:
        return None
    evidence = {"from_step": xs[0], "to_step": xs[-1], "fitted_drop": drop,
                "relative_drop": drop / level, "drop_std_error": drop_se,
                "last_train_loss": ys[-1]}
    message = (f"the train loss was still falling at the end: {drop / level:.1%} "
               f"({drop:.3g} nats) over steps {xs[0]}-{xs[-1]}, the last quarter")
    if evals:
        evidence["last_eval_loss"] = evals[-1].eval_loss
        evidence["best_eval_loss"] = best_eval
        message += (f", and the eval loss {evals[-1].eval_loss:.4g} at step {evals[-1].step} "
                    f"is at or near its best")
    fix = (f"train longer: {longer_run(table)}; keep the learning-rate schedule over the longer "
           "run rather than restarting from this checkpoint at full rate.")
    return Finding("UNDERFIT", WARNING, message, evidence, fix, verdict="UNDERFIT")
