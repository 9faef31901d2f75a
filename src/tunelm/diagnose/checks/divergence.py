"""DIVERGED: a NaN/inf loss, or a loss that exploded, the mark of a learning rate far too high.

The explosion test is the one tunelm's health guard applies during training (runner/callbacks.py
HealthGuard, same defaults): the loss smoothed by an exponential moving average exceeds both
EXPLODE_FACTOR times its running minimum and that minimum plus EXPLODE_MARGIN nats.
"""

from __future__ import annotations

import math

from ..advice import fmt_lr, lr_change, setting, warmup_advice
from ..finding import SEVERE, Finding
from ..metrics import MetricsTable
from ..stats import ema

EXPLODE_FACTOR = 3.0  # smoothed loss above 3x its running minimum ...
EXPLODE_MARGIN = 1.0  # ... and above the minimum plus 1 nat (a near-zero minimum is not a blow-up)
SMOOTHING = 0.3  # weight of the newest loss in the moving average
MIN_ROWS = 3  # the average needs a few rows before it can rise above its own minimum
NAN_GRAD_RUN = 3  # this many non-finite gradient norms in a row (or at the end) is divergence


def _non_finite(table: MetricsTable) -> tuple[str, int, float, int] | None:
    """(metric, first step, value, count) of non-finite losses; gradient norms count when they
    stay non-finite (Trainer's default logging_nan_inf_filter hides NaN train losses, so a
    gradient norm that stays NaN can be the only trace). Sporadic inf gradient norms are fp16
    loss scaling skipping a step, which the grad-norm check reports instead."""
    bad = [("train loss", r.step, r.loss) for r in table.train if not math.isfinite(r.loss)]
    bad += [("eval loss", r.step, r.eval_loss) for r in table.eval
            if not math.isfinite(r.eval_loss)]
    norms = [r for r in table.train if r.grad_norm is not None]
    streak: list = []
    for r in norms:
        streak = streak + [r] if not math.isfinite(r.grad_norm) else []
        if len(streak) >= NAN_GRAD_RUN:
            break
    if streak and (len(streak) >= NAN_GRAD_RUN or streak[-1] is norms[-1]):
        bad.append(("gradient norm", streak[0].step, streak[0].grad_norm))
    if not bad:
        return None
    metric, step, value = min(bad, key=lambda b: b[1])
    return metric, step, value, len(bad)


def _explosion(table: MetricsTable) -> dict | None:
    rows = table.finite_train()
    smooth = ema([r.loss for r in rows], SMOOTHING)
    low, low_step = math.inf, None
    for i, (row, s) in enumerate(zip(rows, smooth)):
        if s < low:
            low, low_step = s, row.step
        limit = max(EXPLODE_FACTOR * low, low + EXPLODE_MARGIN)
        if i >= MIN_ROWS - 1 and s > limit:
            return {"step": row.step, "smoothed_loss": s, "limit": limit,
                    "min_smoothed_loss": low, "min_step": low_step, "loss": row.loss,
                    "last_loss": rows[-1].loss, "last_step": rows[-1].step}
    return None


def check_diverged(table: MetricsTable) -> Finding | None:
    """A NaN/inf loss anywhere, or a smoothed train loss that blew up past its minimum."""
    lr = table.peak_lr
    fixes = [lr_change(table, 0.1, "lower")]
    warm = warmup_advice(table)
    if warm:
        fixes.append(warm)
    clip = table.hparams.get("max_grad_norm")
    fixes.append(f"keep gradient clipping on ({setting(table, 'max_grad_norm', 1.0)}"
                 + (f"; now {clip:g})" if clip is not None else ")"))
    lr_note = f" at learning rate {fmt_lr(lr)}" if lr else ""

    bad = _non_finite(table)
    if bad:
        metric, step, value, count = bad
        before = [r for r in table.finite_train() if r.step < step]
        evidence = {"metric": metric, "step": step, "value": value, "non_finite_values": count,
                    "last_finite_loss": before[-1].loss if before else None,
                    "last_finite_step": before[-1].step if before else None,
                    "learning_rate": lr}
        message = (f"the {metric} became {value} at step {step}{lr_note} ({count} non-finite "
                   f"value{'s' if count != 1 else ''} logged)")
        fixes.append("with fp16, NaN can also be an overflow: train in bf16 where the GPU has it")
        return Finding("DIVERGED", SEVERE, message, evidence, "; ".join(fixes) + ".",
                       verdict="DIVERGED", lr_change=0.1)

    blow = _explosion(table)
    if blow:
        message = (f"the train loss exploded at step {blow['step']}{lr_note}: smoothed "
                   f"{blow['smoothed_loss']:.4g}, over {EXPLODE_FACTOR:g}x its minimum "
                   f"{blow['min_smoothed_loss']:.4g} (step {blow['min_step']}); the last logged "
                   f"loss is {blow['last_loss']:.4g} at step {blow['last_step']}")
        evidence = {**blow, "learning_rate": lr}
        return Finding("DIVERGED", SEVERE, message, evidence, "; ".join(fixes) + ".",
                       verdict="DIVERGED", lr_change=0.1)
    return None
