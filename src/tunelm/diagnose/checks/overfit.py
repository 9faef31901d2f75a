"""OVERFIT: the eval loss turned and rose above its best while training went on.

The fix is the checkpoint kept at the turn and a shorter run (fewer epochs), not a lower learning
rate: the run of issue 13 (natural text, 3 epochs at batch 4) whose eval loss turned was re-run
at a third of its rate and reached a 4.5% worse best eval loss. A rate too high shows earlier,
as an eval loss that rises within the first epoch (EVAL_WORSE), and that finding lowers it.
"""

from __future__ import annotations

import math

from ..advice import setting
from ..finding import SEVERE, WARNING, Finding
from ..metrics import MetricsTable
from ..stats import relative
from .eval_worse import first_epoch_rise

RISE = 0.05  # last eval loss more than 5% (relative) above the best: overfitting
RISE_SEVERE = 0.10
MIN_EVALS = 3  # a turn needs a point before it, the best, and one after


def check_overfit(table: MetricsTable) -> Finding | None:
    """The last eval loss is over RISE above the best one; the best one's step is the turn."""
    evals = table.finite_eval()
    if len(evals) < MIN_EVALS:
        return None
    best = min(evals, key=lambda r: r.eval_loss)
    last = evals[-1]
    if best.eval_loss <= 0:
        return None
    rise = relative(last.eval_loss, best.eval_loss)
    if rise <= RISE:
        return None
    previous = [r.step for r in evals if r.step < last.step]
    train = table.train_loss_between(previous[-1] if previous else -1, last.step)
    after = [r for r in evals if r.step > best.step]
    evidence = {
        "best_eval_loss": best.eval_loss, "turning_step": best.step,
        "last_eval_loss": last.eval_loss, "last_step": last.step, "rise": rise,
        "evals_after_best": len(after),
        "share_of_run_after_turn": (last.step - best.step) / max(table.steps, 1),
        "train_loss_at_last_eval": train,
        "train_eval_gap": None if train is None else last.eval_loss - train,
    }
    gap = "" if train is None else (f"; the train loss there is {train:.4g}, a gap of "
                                    f"{last.eval_loss - train:.4g} below the eval loss")
    message = (f"the eval loss turned at step {best.step} ({best.eval_loss:.4g}, its best) and "
               f"rose {rise:.0%} to {last.eval_loss:.4g} at step {last.step} over "
               f"{len(after)} evaluation{'s' if len(after) != 1 else ''}{gap}")
    return Finding("OVERFIT", SEVERE if rise > RISE_SEVERE else WARNING, message, evidence,
                   _fix(table, best.step), verdict="OVERFIT")


def _shorter(table: MetricsTable, best_step: int) -> str:
    """'train.epochs 3 -> 2 (the turn came in epoch 2)' on a multi-epoch run, else max_steps."""
    per_epoch, epochs = table.steps_per_epoch, table.hparams.get("epochs")
    if per_epoch and epochs and not table.hparams.get("max_steps"):
        need = max(1, math.ceil(best_step / per_epoch - 1e-6))
        if need < float(epochs):
            return (f"train {need} epoch{'s' if need > 1 else ''} instead of {float(epochs):g} "
                    f"({setting(table, 'epochs', need)}; the turn came in epoch {need})")
    return f"train about {best_step} steps ({setting(table, 'max_steps', best_step)})"


def _fix(table: MetricsTable, best_step: int) -> str:
    if table.kind == "tunelm":
        keep = ("use the best checkpoint, not the last (tunelm keeps it in the trial's best/ "
                "directory with train.save_best)")
    else:
        keep = (f"use checkpoint-{best_step} (or the nearest saved one), not the last; "
                "load_best_model_at_end=True with metric_for_best_model='eval_loss' does it "
                "for you")
    patience = table.hparams.get("early_stopping_patience")
    stop = f"stop earlier: {setting(table, 'patience', 2)}"
    if patience:
        stop += f" (now {patience})"
    stop += f", or {_shorter(table, best_step)}"
    regularise = (f"if it turns this early again, regularise: {setting(table, 'dropout', 0.1)}, "
                  f"{setting(table, 'weight_decay', 0.1)}, or more training data")
    if first_epoch_rise(table):  # it also got worse before any example came round again
        return (f"{keep}; {stop}; {regularise}. The rise within the first epoch (EVAL_WORSE) "
                "says the rate is too high as well.")
    return (f"{keep}; {stop}; {regularise}. Keep the learning rate: the checkpoint and the run's "
            "length fix overfitting, not the rate (a rate too high shows as EVAL_WORSE).")
