"""A trial in the replay: learning-curve extrapolation for the curve pruner (issue 14, item 1's
option), measured before anything of it goes into the tool.

`fit_power_law` fits loss(step) = a x step^-b + c to a curve's eval losses (least squares in a
and c for each b on a log grid of exponents; a > 0: a falling curve) and `predicted_final`
reads it at the last planned step. `FitCurvePruner` is the tool's curve pruner with the
prediction added in one of two ways:

- `veto`: the curve pruner's verdict stands only when the running curve's predicted final loss
  is also worse than the best finished trial's best loss by more than the pruner's margin (a
  slow starter that is predicted to catch up is kept); with fewer than 3 evaluations there is
  no fit and the verdict stands;
- `prune`: it also stops a trial, from its 3rd evaluation on, whose predicted final loss is worse
  than the best finished trial's by more than the margin, even when the same-step comparison
  does not (yet) stop it.
"""

from __future__ import annotations

import math

from optuna.trial import TrialState

from tunelm.search.curve_pruner import FRACTION, CurvePruner, _record

EXPONENTS = tuple(0.02 * 1.1 ** i for i in range(60))  # 0.02 .. ~5.5
MODES = ("veto", "prune")


def fit_power_law(points) -> tuple[float, float, float] | None:
    """(a, b, c) of the least-squares fit a x step^-b + c, a > 0, or None (fewer than 3
    finite points, or no falling fit)."""
    pts = [(s, v) for s, v in points if s > 0 and math.isfinite(v)]
    if len(pts) < 3:
        return None
    best = None
    for b in EXPONENTS:
        xs = [s ** -b for s, _ in pts]
        mx, my = sum(xs) / len(pts), sum(v for _, v in pts) / len(pts)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx <= 0:
            continue
        a = sum((x - mx) * (v - my) for x, (_, v) in zip(xs, pts)) / sxx
        if a <= 0:
            continue
        c = my - a * mx
        sse = sum((a * x + c - v) ** 2 for x, (_, v) in zip(xs, pts))
        if best is None or sse < best[0]:
            best = (sse, a, b, c)
    return None if best is None else best[1:]


def predicted_final(points, final_step: int) -> float | None:
    fit = fit_power_law(points)
    if fit is None:
        return None
    a, b, c = fit
    return a * final_step ** -b + c


class FitCurvePruner(CurvePruner):
    """The curve pruner with the power-law prediction (`mode`: veto | prune)."""

    def __init__(self, final_step: int, mode: str, inner=None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        super().__init__(inner, direction="minimize")
        self.final_step, self.mode = final_step, mode

    def _predicted_behind(self, study, trial, margin: float) -> bool | None:
        """True/False: the prediction is behind the best finished loss by more than `margin`;
        None: no prediction (too few evaluations, or no finished trial)."""
        fraction = trial.user_attrs.get(FRACTION, 1.0)
        finals = [min(v for v in t.intermediate_values.values() if math.isfinite(v))
                  for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if t.user_attrs.get(FRACTION, 1.0) == fraction and t.intermediate_values]
        guess = predicted_final(sorted(trial.intermediate_values.items()), self.final_step)
        if guess is None or not finals:
            return None
        return guess > min(finals) * (1 + margin)

    def prune(self, study, trial) -> bool:
        if trial.intermediate_values:
            v = self.verdict(study, trial)
            behind = self._predicted_behind(study, trial, v.margin or self.floor)
            stop = (v.prune and behind is not False) if self.mode == "veto" else (
                v.prune or bool(behind))
            if stop:
                _record(study, trial, f"curve pruner ({self.mode} by fit): {v.reason}")
                return True
        return bool(self.inner and self.inner.prune(study, trial))
