"""NO_PROGRESS: the eval loss barely improved on where it started."""

from __future__ import annotations

from ..advice import lr_change, setting
from ..finding import SEVERE, WARNING, Finding
from ..metrics import MetricsTable
from ..stats import relative

MIN_IMPROVEMENT = 0.05  # best eval loss under 5% (relative) below the first one: no progress
MIN_EVALS = 2
LATE_FIRST_EVAL = 0.25  # a first evaluation after this share of the run is not "the start"


def check_no_progress(table: MetricsTable) -> Finding | None:
    """The best eval loss improved on the first by less than MIN_IMPROVEMENT (relative)."""
    evals = table.finite_eval()
    if len(evals) < MIN_EVALS:
        return None
    first = evals[0]
    best = min(evals, key=lambda r: r.eval_loss)
    improvement = -relative(best.eval_loss, first.eval_loss)
    if improvement >= MIN_IMPROVEMENT:
        return None
    rows = table.finite_train()
    train_drop = -relative(rows[-1].loss, rows[0].loss) if len(rows) >= 2 else None
    evidence = {"first_eval_loss": first.eval_loss, "first_eval_step": first.step,
                "best_eval_loss": best.eval_loss, "best_step": best.step,
                "improvement": improvement, "train_loss_drop": train_drop}
    message = (f"the eval loss improved only {max(improvement, 0):.1%} (under "
               f"{MIN_IMPROVEMENT:.0%}): {first.eval_loss:.4g} at step {first.step}, best "
               f"{best.eval_loss:.4g} at step {best.step}")
    if train_drop is not None:
        message += f"; the train loss fell {train_drop:.0%} meanwhile"
    if train_drop is None or train_drop < MIN_IMPROVEMENT:
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
    return Finding("NO_PROGRESS", SEVERE if improvement <= 0 else WARNING, message, evidence,
                   fix + ".", verdict="NO_PROGRESS")
