"""UNSTABLE: a recent train loss that jumps around, loss spikes, or large gradient norms.

All three read the loss averaged over at least POINT_STEPS optimizer steps (MetricsTable.series):
a single step's loss varies with its batch, and that variation is not instability.
"""

from __future__ import annotations

import math

from ..advice import lr_change, setting, warmup_advice
from ..finding import INFO, SEVERE, WARNING, Finding
from ..metrics import MetricsTable
from ..stats import mean, median, trend_free_std

POINT_STEPS = 10  # each point of the loss curve averages at least this many steps

CV_LIMIT = 0.10  # coefficient of variation of the recent loss above this: unstable
CV_SEVERE = 0.20
RECENT = 1 / 3  # "recent": the last third of the logged points
MIN_POINTS = 6  # fewer recent points than this cannot show a variation

SPIKE_FACTOR = 1.3  # a point this many times the median of the points before it is a spike
SPIKE_MIN = 0.1  # ... and at least this many nats above it
SPIKE_WINDOW = 5  # the points before it that make the reference median
SPIKES_SEVERE = 3  # this many spikes (or one over 3x) make it severe

GRAD_NORM_LIMIT = 5.0  # pre-clipping gradient norm above this is large
GRAD_SKIP = 0.1  # ignore the first 10% of the steps (norms are large while adapters warm up)
GRAD_MIN_COUNT = 3  # fewer large norms than this (and under 10% of them) are only noted


def _calm_down(table: MetricsTable) -> str:
    fixes = [lr_change(table, 1 / 3, "lower")]
    warm = warmup_advice(table)
    if warm:
        fixes.append(warm)
    return " or ".join(fixes)


def check_loss_variation(table: MetricsTable) -> Finding | None:
    """Coefficient of variation of the recent loss around its own trend above CV_LIMIT."""
    points = table.series(POINT_STEPS)
    recent = points[math.floor(len(points) * (1 - RECENT)):]
    if len(recent) < MIN_POINTS:
        return None
    losses = [loss for _, loss in recent]
    level = mean(losses)
    if level <= 0:
        return None
    cv = trend_free_std(losses) / level
    if cv <= CV_LIMIT:
        return None
    evidence = {"cv": cv, "limit": CV_LIMIT, "from_step": recent[0][0], "to_step": recent[-1][0],
                "points": len(recent), "mean_loss": level, "min_loss": min(losses),
                "max_loss": max(losses)}
    message = (f"the recent train loss varies by {cv:.0%} of its level around its trend (limit "
               f"{CV_LIMIT:.0%}) from step {recent[0][0]} to {recent[-1][0]}: between "
               f"{min(losses):.4g} and {max(losses):.4g}")
    return Finding("UNSTABLE_LOSS", SEVERE if cv > CV_SEVERE else WARNING, message, evidence,
                   f"{_calm_down(table)}; a larger effective batch also steadies the loss.",
                   verdict="UNSTABLE")


def check_spikes(table: MetricsTable) -> Finding | None:
    """Points that jump SPIKE_FACTOR above the median of the SPIKE_WINDOW points before them."""
    points = table.series(POINT_STEPS)
    spikes = []
    for i in range(SPIKE_WINDOW, len(points)):
        step, loss = points[i]
        ref = median([x for _, x in points[i - SPIKE_WINDOW:i]])
        if loss > SPIKE_FACTOR * ref and loss - ref > SPIKE_MIN:
            if spikes and spikes[-1]["index"] == i - 1:  # one spike spanning several points
                spikes[-1].update(index=i, loss=max(loss, spikes[-1]["loss"]))
                continue
            spikes.append({"index": i, "step": step, "loss": loss, "before": ref})
    if not spikes:
        return None
    worst = max(s["loss"] / s["before"] for s in spikes)
    listed = [{k: s[k] for k in ("step", "loss", "before")} for s in spikes]
    severity = SEVERE if len(spikes) >= SPIKES_SEVERE or worst > 3 else WARNING
    shown = ", ".join(f"step {s['step']} ({s['before']:.3g} -> {s['loss']:.3g})"
                      for s in listed[:5])
    message = (f"{len(spikes)} loss spike{'s' if len(spikes) > 1 else ''} (over "
               f"{SPIKE_FACTOR:g}x the loss before): {shown}")
    return Finding("LOSS_SPIKES", severity, message,
                   {"spikes": listed, "count": len(spikes), "worst_ratio": worst},
                   f"{_calm_down(table)}; look for unusually long or malformed examples in the "
                   "batches at those steps.", verdict="UNSTABLE")


def check_grad_norm(table: MetricsTable) -> Finding | None:
    """Gradient norms above GRAD_NORM_LIMIT after the first GRAD_SKIP of the steps."""
    start = GRAD_SKIP * table.steps
    rows = [r for r in table.train if r.grad_norm is not None and r.step > start]
    big = [r for r in rows if not math.isfinite(r.grad_norm) or r.grad_norm > GRAD_NORM_LIMIT]
    if not big:
        return None
    finite = [r.grad_norm for r in rows if math.isfinite(r.grad_norm)]
    top = max((r for r in big if math.isfinite(r.grad_norm)), key=lambda r: r.grad_norm,
              default=big[0])
    share = len(big) / len(rows)
    if share > 0.5:
        severity = SEVERE
    elif len(big) >= GRAD_MIN_COUNT or share >= 0.1:
        severity = WARNING
    else:
        severity = INFO
    evidence = {"count": len(big), "of": len(rows), "limit": GRAD_NORM_LIMIT,
                "max": top.grad_norm, "max_step": top.step,
                "median": median(finite) if finite else None,
                "steps": [r.step for r in big[:10]]}
    message = (f"gradient norm above {GRAD_NORM_LIMIT:g} at {len(big)} of {len(rows)} logged "
               f"steps after the first {GRAD_SKIP:.0%} (largest {top.grad_norm:.4g} at step "
               f"{top.step}; median {evidence['median']:.3g})" if finite else
               f"gradient norm non-finite at {len(big)} of {len(rows)} logged steps")
    fix = (f"{_calm_down(table)}; keep {setting(table, 'max_grad_norm', 1.0)} (the logged norm is measured before "
           "clipping, so clipping limits the update, not this number)")
    if severity == INFO:
        fix = "isolated large norms are common; act only if they recur: " + fix
    return Finding("GRAD_NORM_HIGH", severity, message, evidence, fix + ".",
                   verdict="UNSTABLE")
