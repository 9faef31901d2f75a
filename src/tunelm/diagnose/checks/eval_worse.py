"""EVAL_WORSE: the eval loss rose within the first pass over the data, the mark of a rate too high.

Before any example has been seen twice, training cannot overfit by memorising: an eval loss that
rises above its best so far then means the updates damage the model. On the grids of the advice
benchmark (benchmarks/advice_accuracy.py) such rises came only at rates above the band of near
rates; at and below it the eval loss fell through the first epoch. Once the data comes round, a
rise is overfitting (check_overfit), whose fix is the kept checkpoint, not the rate.

Where the run's epochs are unknown (no epoch logged, max_steps set), only a run whose first
evaluation stayed its best is read this way: nothing then says whether the data came round.
"""

from __future__ import annotations

from ..advice import lr_change
from ..finding import WARNING, Finding
from ..metrics import MetricsTable
from ..stats import relative

RISE = 0.02  # an evaluation over 2% (relative) above the best before it ...
MIN_RISE = 0.02  # ... and over 0.02 nats above it (a loss near zero moves by large ratios)


def first_epoch_rise(table: MetricsTable):
    """(the best evaluation before the rise, the worst evaluation over it), or None."""
    evals = table.finite_eval()
    if table.steps_per_epoch is None:
        if not evals or min(evals, key=lambda r: r.eval_loss) is not evals[0]:
            return None
    else:
        evals = [r for r in evals if table.epoch_of(r.step) == 0]
    found, best = None, None
    for r in evals:
        if best is not None and relative(r.eval_loss, best.eval_loss) > RISE \
                and r.eval_loss - best.eval_loss > MIN_RISE:
            if found is None or r.eval_loss - best.eval_loss > found[1].eval_loss - found[0].eval_loss:
                found = (best, r)
        if best is None or r.eval_loss < best.eval_loss:
            best = r
    return found


def check_eval_worse(table: MetricsTable) -> Finding | None:
    """An evaluation of the first epoch over RISE (and MIN_RISE nats) above the best before it."""
    found = first_epoch_rise(table)
    if found is None:
        return None
    best, worst = found
    rise = relative(worst.eval_loss, best.eval_loss)
    evidence = {"best_eval_loss": best.eval_loss, "best_step": best.step,
                "worst_eval_loss": worst.eval_loss, "worst_step": worst.step, "rise": rise,
                "steps_per_epoch": table.steps_per_epoch, "learning_rate": table.peak_lr}
    message = (f"the eval loss got worse within the first pass over the data: {best.eval_loss:.4g}"
               f" at step {best.step} -> {worst.eval_loss:.4g} at step {worst.step} "
               f"({rise:+.1%}), before any example was seen twice, so not from memorising: the "
               "updates damage the model, the mark of a rate too high")
    return Finding("EVAL_WORSE", WARNING, message, evidence,
                   f"{lr_change(table, 1 / 3, 'lower')}.", verdict="UNSTABLE", lr_change=1 / 3)
