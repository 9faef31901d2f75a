"""UNSTABLE: a recent train loss that jumps around, loss spikes, or large gradient norms.

The first two read the loss averaged over several optimizer steps (MetricsTable.series): a single
step's loss varies with its batch, and that variation is not instability. They read it within
epochs: when a run comes round to its data again, the train loss drops by a step at the boundary
(the examples are no longer new), and that drop is not instability either. And they compare what
they see with the noise the batch size alone produces, measured on the run's own per-step losses:
a mean of k steps varies by the per-step scatter / sqrt(k) even on a perfectly stable run.
"""

from __future__ import annotations

import math

from ..advice import lr_change, setting, warmup_advice
from ..finding import INFO, SEVERE, WARNING, Finding
from ..metrics import MetricsTable
from ..stats import mean, median

POINT_STEPS = 10  # each point of the loss curve averages at least this many steps ...
POINTS_PER_EPOCH = 4  # ... or fewer, so that a short epoch still holds this many points

CV_LIMIT = 0.10  # variation of the recent loss beyond the batch noise, over its level: unstable
CV_SEVERE = 0.20
RECENT = 1 / 3  # "recent": the last third of the logged points
MIN_POINTS = 6  # fewer recent points than this cannot show a variation
MIN_DIFFS = 4  # ... nor fewer successive differences within an epoch

SPIKE_FACTOR = 1.3  # a point this many times the median of the points before it is a spike
SPIKE_MIN = 0.1  # ... and at least this many nats above it
SPIKE_NOISE = 4.0  # ... and this many times the noise expected of a point above it
SPIKE_WINDOW = 5  # the points before it (in the same epoch) that make the reference median
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


def point_steps(table: MetricsTable) -> int:
    """Optimizer steps per point: POINT_STEPS, fewer when an epoch is short."""
    per_epoch = table.steps_per_epoch
    if per_epoch and table.epoch_of(table.last_step) > 0:
        return max(1, min(POINT_STEPS, math.floor(per_epoch / POINTS_PER_EPOCH)))
    return POINT_STEPS


def _within(segments: list[list[float]]) -> list[float]:
    """Successive differences, never across an epoch boundary."""
    return [b - a for seg in segments for a, b in zip(seg, seg[1:])]


def _std_of(diffs: list[float]) -> float:
    return math.sqrt(sum(d * d for d in diffs) / (2 * len(diffs))) if diffs else 0.0


def batch_noise(table: MetricsTable, from_step: int, per_point: int) -> tuple[float, float]:
    """(scatter of one logged loss, the scatter expected of a point averaging `per_point`
    steps) from `from_step` on: the per-log scatter around the trend, within epochs (von
    Neumann's estimator, as `trend_free_std`), which is what the batch size makes it."""
    rows = [[r.loss for r in seg if r.step > from_step] for seg in table.segments()]
    sd = _std_of(_within(rows))
    logs_per_point = max(1, math.ceil(per_point / table.steps_per_log()))
    return sd, sd / math.sqrt(logs_per_point) if logs_per_point > 1 else 0.0


def reading(table: MetricsTable) -> dict:
    """How the train-loss checks read this run: points, steps per point, epochs, and the batch
    noise expected of a point (for the verdict line)."""
    k = point_steps(table)
    by_epoch = table.series_by_epoch(k)
    per_log, per_point = batch_noise(table, 0, k)
    return {"points": sum(len(seg) for seg in by_epoch), "steps_per_point": k,
            "epochs_seen": len(by_epoch), "noise_per_log": per_log,
            "noise_per_point": per_point}


def check_loss_variation(table: MetricsTable) -> Finding | None:
    """Variation of the recent loss around its own trend, within epochs and beyond the batch
    noise, over CV_LIMIT of its level."""
    k = point_steps(table)
    by_epoch = table.series_by_epoch(k)
    points = [p for seg in by_epoch for p in seg]
    cut = math.floor(len(points) * (1 - RECENT))
    if len(points) - cut < MIN_POINTS:
        return None
    from_step = points[cut][0]
    recent = [[loss for step, loss in seg if step >= from_step] for seg in by_epoch]
    diffs = _within(recent)
    losses = [x for seg in recent for x in seg]
    level = mean(losses)
    if level <= 0 or len(diffs) < MIN_DIFFS:
        return None
    seen = _std_of(diffs)
    _, expected = batch_noise(table, points[cut - 1][0] if cut else 0, k)
    excess = math.sqrt(max(0.0, seen**2 - expected**2))
    cv = excess / level
    if cv <= CV_LIMIT:
        return None
    epochs = sum(1 for seg in recent if seg)
    evidence = {"cv": cv, "limit": CV_LIMIT, "from_step": from_step, "to_step": points[-1][0],
                "points": len(losses), "steps_per_point": k, "epochs": epochs,
                "variation": seen, "expected_batch_noise": expected,
                "effective_batch": table.effective_batch, "mean_loss": level,
                "min_loss": min(losses), "max_loss": max(losses)}
    where = f" within each of {epochs} epochs" if epochs > 1 else ""
    message = (f"the recent train loss ({len(losses)} means of {k} steps, steps {from_step}-"
               f"{points[-1][0]}) varies around its trend{where} by {seen:.3g}, where the batch "
               f"noise alone would give {expected:.3g}: {cv:.0%} of its level beyond that noise "
               f"(limit {CV_LIMIT:.0%}), between {min(losses):.4g} and {max(losses):.4g}")
    return Finding("UNSTABLE_LOSS", SEVERE if cv > CV_SEVERE else WARNING, message, evidence,
                   f"{_calm_down(table)}; a larger effective batch also steadies the loss.",
                   verdict="UNSTABLE", lr_change=1 / 3)


def check_spikes(table: MetricsTable) -> Finding | None:
    """Points that jump SPIKE_FACTOR above the median of the SPIKE_WINDOW points before them in
    the same epoch, and well above the batch noise."""
    k = point_steps(table)
    _, expected = batch_noise(table, 0, k)
    spikes = []
    for seg in table.series_by_epoch(k):
        for i in range(SPIKE_WINDOW, len(seg)):
            step, loss = seg[i]
            ref = median([x for _, x in seg[i - SPIKE_WINDOW:i]])
            if loss > SPIKE_FACTOR * ref and loss - ref > max(SPIKE_MIN, SPIKE_NOISE * expected):
                if spikes and spikes[-1]["index"] == (id(seg), i - 1):  # one spike, several points
                    spikes[-1].update(index=(id(seg), i), loss=max(loss, spikes[-1]["loss"]))
                    continue
                spikes.append({"index": (id(seg), i), "step": step, "loss": loss, "before": ref})
    if not spikes:
        return None
    worst = max(s["loss"] / s["before"] for s in spikes)
    listed = [{k: s[k] for k in ("step", "loss", "before")} for s in spikes]
    severity = SEVERE if len(spikes) >= SPIKES_SEVERE or worst > 3 else WARNING
    shown = ", ".join(f"step {s['step']} ({s['before']:.3g} -> {s['loss']:.3g})"
                      for s in listed[:5])
    message = (f"{len(spikes)} loss spike{'s' if len(spikes) > 1 else ''} (over "
               f"{SPIKE_FACTOR:g}x the loss before, and over {SPIKE_NOISE:g}x the batch noise "
               f"{expected:.3g} of a {k}-step mean): {shown}")
    return Finding("LOSS_SPIKES", severity, message,
                   {"spikes": listed, "count": len(spikes), "worst_ratio": worst,
                    "steps_per_point": k, "expected_batch_noise": expected},
                   f"{_calm_down(table)}; look for unusually long or malformed examples in the "
                   "batches at those steps.", verdict="UNSTABLE", lr_change=1 / 3)


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
                   verdict="UNSTABLE", lr_change=None if severity == INFO else 1 / 3)
