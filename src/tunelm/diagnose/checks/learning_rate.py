"""The learning rate read from the shape of the train loss.

Too high: the loss falls fast in the first EARLY of the steps, then plateaus or rises (the rate
is large enough to find the easy direction at once, then too large to settle into a minimum).
Too low: the loss barely falls over hundreds of steps.
"""

from __future__ import annotations

from ..advice import lr_change, warmup_advice
from ..finding import WARNING, Finding
from ..metrics import MetricsTable
from ..stats import mean, relative

EARLY = 0.05  # "the first 5% of the steps"
FAST_DROP = 0.30  # the loss falls over 30% (relative) within them ...
PLATEAU = 0.05  # ... then by under 5% over the rest of the run (or rises): rate too high
MIN_ROWS = 10  # the shape needs this many logged train losses

LOW_MIN_STEPS = 200  # "hundreds of steps"
BARELY = 0.05  # the loss moved by under 5% from the start to the end: rate too low
EDGE = 0.1  # start and end are the means of the first and last 10% of the logged losses


def _edge_mean(losses: list[float], start: bool) -> float:
    n = max(1, round(EDGE * len(losses)))
    return mean(losses[:n] if start else losses[-n:])


def check_lr_too_high(table: MetricsTable) -> Finding | None:
    rows = table.finite_train()
    if len(rows) < MIN_ROWS:
        return None
    cut = EARLY * table.steps  # once: table.steps reads every row
    early = [r for r in rows if r.step <= cut]
    rest = [r for r in rows if r.step > cut]
    if len(early) < 2 or len(rest) < 2:
        return None  # the run did not log often enough to see its first 5%
    start = early[0].loss
    at = mean(r.loss for r in early[-max(1, len(early) // 5):])
    end = _edge_mean([r.loss for r in rest], start=False)
    fast, later = -relative(at, start), -relative(end, at)
    if fast <= FAST_DROP or later >= PLATEAU:
        return None
    evidence = {"start_loss": start, "start_step": early[0].step, "early_loss": at,
                "early_step": early[-1].step, "early_drop": fast, "end_loss": end,
                "later_drop": later, "learning_rate": table.peak_lr}
    shape = "rose" if later < 0 else "plateaued"
    message = (f"the train loss fell {fast:.0%} in the first {EARLY:.0%} of the steps "
               f"({start:.4g} at step {early[0].step} -> {at:.4g} at step {early[-1].step}), "
               f"then {shape}: {end:.4g} at the end, {-later:+.1%} from there; the signature "
               "of a learning rate that is too high")
    fixes = [lr_change(table, 1 / 3, "lower")]
    warm = warmup_advice(table)
    if warm:
        fixes.append(warm)
    return Finding("LR_TOO_HIGH", WARNING, message, evidence, " or ".join(fixes) + ".",
                   verdict="UNSTABLE", lr_change=1 / 3)


def check_lr_too_low(table: MetricsTable) -> Finding | None:
    rows = table.finite_train()
    if len(rows) < MIN_ROWS or rows[-1].step - rows[0].step < LOW_MIN_STEPS:
        return None
    losses = [r.loss for r in rows]
    start, end = _edge_mean(losses, start=True), _edge_mean(losses, start=False)
    moved = -relative(end, start)
    if abs(moved) >= BARELY:
        return None
    evidence = {"start_loss": start, "end_loss": end, "relative_drop": moved,
                "steps": rows[-1].step - rows[0].step, "learning_rate": table.peak_lr}
    message = (f"the train loss barely moved over {rows[-1].step - rows[0].step} steps: "
               f"{start:.4g} -> {end:.4g} ({-moved:+.1%}; means of the first and last "
               f"{EDGE:.0%} of the logs): the signature of a learning rate that is too low")
    fix = (f"{lr_change(table, 3, 'raise')} and compare a few rates over a short run; if the "
           "loss should not fall (the model already knows the data), ignore this.")
    return Finding("LR_TOO_LOW", WARNING, message, evidence, fix, verdict="NO_PROGRESS", lr_change=3)
