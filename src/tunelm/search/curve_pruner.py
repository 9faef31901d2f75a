"""Pruning from the first finished trial: a running trial's eval curve against the best finished
trial's curve at the same steps.

Hyperband and successive halving need many trials per bracket before they prune anything; a real
fine-tuning study holds 5 to 20. This pruner needs one finished trial with the same step plan
(probes are compared with probes: trials carry a user attribute `fraction`). It stops a running
trial once its best-so-far value is behind the best finished trial's best-so-far value at the same
step by more than a margin, for `patience` consecutive evaluations. The margin is `z` times the
measured step-to-step noise of the curves (their relative deviation from a monotone fit: a loss
that should fall and rises is noise), and never below `floor`. A gap so wide that no noise
explains it (`decisive`: at least that share behind, and `decisive_x` times the margin) stops
a trial that has trailed beyond the margin at every evaluation so far at once: with 4
evaluations a run, waiting for a second one costs a loser half a run. A trial that was level
or ahead at an earlier evaluation is never stopped on one: a higher rate learns faster early,
may fall behind while its rate is high and pass again as the schedule decays (recorded on the
demo task: +55% behind at step 15 of 20, ahead on the whole eval set at step 20), so it takes
`patience` evaluations in a row.

The pruner is not asked at a run's last evaluation (`pruners.asks_pruner`): stopping there saves
no training, only the final score that the search chooses on.

`decide` is the pure decision over curves; `CurvePruner` is the Optuna pruner around it, which
records its reason in the trial's user attribute `prune_reason`, as the other pruners' reasons
are recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

Points = Sequence[tuple[int, float]]  # (step, value) in step order
PRUNE_REASON = "prune_reason"
FRACTION = "fraction"


@dataclass(frozen=True)
class Verdict:
    prune: bool
    reason: str
    margin: float | None = None  # relative margin used
    noise: float | None = None  # measured relative step-to-step noise


def _sign(direction: str) -> int:
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be minimize or maximize, got {direction!r}")
    return 1 if direction == "minimize" else -1


def best_so_far(points: Points, direction: str = "minimize") -> list[tuple[int, float]]:
    """The best value reached up to each step (non-finite values count as the worst)."""
    s, out, best = _sign(direction), [], math.inf
    for step, v in points:
        key = s * v if math.isfinite(v) else math.inf
        best = min(best, key)
        out.append((step, s * best if math.isfinite(best) else math.inf * s))
    return out


def _monotone_fit(values: list[float]) -> list[float]:
    """Least-squares non-increasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    return [m for m, w in blocks for _ in range(int(w))]


def measured_noise(curves: Sequence[Points], direction: str = "minimize") -> float:
    """Relative step-to-step noise of `curves`: the root mean square of each evaluation's
    relative deviation from its curve's monotone fit (falling for a minimized value, rising for
    a maximized one), pooled over every curve with at least 3 finite evaluations."""
    s = _sign(direction)
    squares, n = 0.0, 0
    for points in curves:
        values = [s * v for _, v in points if math.isfinite(v)]
        if len(values) < 3:
            continue
        fit = _monotone_fit(values)
        for v, f in zip(values, fit):
            if f != 0:
                squares += ((v - f) / f) ** 2
                n += 1
    return math.sqrt(squares / n) if n else 0.0


def _final(points: Points, direction: str) -> float:
    finite = [v for _, v in points if math.isfinite(v)]
    if not finite:
        return math.inf
    return min(finite) if direction == "minimize" else -max(finite)


DECISIVE = 0.5  # behind by half or more (and DECISIVE_X margins): one evaluation is enough
DECISIVE_X = 4.0


def decide(running: Points, finished: Sequence[Points], direction: str = "minimize",
           patience: int = 2, z: float = 2.0, floor: float = 0.005,
           decisive: float | None = DECISIVE, decisive_x: float = DECISIVE_X) -> Verdict:
    """Prune `running` when its best-so-far value trails the best finished curve's at the same
    steps by more than max(floor, z x measured noise), relatively, at each of its last
    `patience` shared evaluations, or, while it has fewer than `patience` of them, at its last
    one alone by more than max(decisive, decisive_x x that margin) when it trailed by more than
    the margin at every one (`decisive` None: never on one evaluation). `finished` holds only
    comparable curves (same step plan)."""
    if patience < 1 or z < 0 or floor < 0:
        raise ValueError(f"patience must be >= 1, z and floor >= 0; got {patience}, {z}, {floor}")
    if decisive is not None and (decisive <= 0 or decisive_x < 1):
        raise ValueError(f"decisive must be > 0 and decisive_x >= 1; got {decisive}, "
                         f"{decisive_x}")
    s = _sign(direction)
    if not finished:
        return Verdict(False, "no comparable trial has finished yet")
    best = min(finished, key=lambda c: _final(c, direction))
    noise = measured_noise([*finished, running], direction)
    margin = max(floor, z * noise)
    ref = dict(best_so_far(best, direction))
    gaps = []  # (step, relative gap; > 0: behind)
    for step, v in best_so_far(running, direction):
        if step not in ref:
            continue
        r = ref[step]
        if not math.isfinite(v):
            gaps.append((step, math.inf))
        elif math.isfinite(r) and r != 0:
            gaps.append((step, s * (v - r) / abs(r)))
    wide = None if decisive is None else max(decisive, decisive_x * margin)
    # one evaluation decides only while there are fewer than `patience` to go by: a curve
    # behind at all of `patience` or more is stopped by the rule below, and one that was
    # within the margin at any of them is not stopped on a single wide gap
    if (wide is not None and 0 < len(gaps) < patience and gaps[-1][1] > wide
            and all(g > margin for _, g in gaps)):
        step, g = gaps[-1]
        return Verdict(True, f"behind the best finished trial's curve by {g:+.1%} at step "
                       f"{step}, beyond {wide:.0%} (the larger of {decisive:.0%} and {decisive_x:g}"
                       f" x the margin {margin:.1%}): too far for the noise to explain",
                       margin, noise)
    tail = gaps[-patience:]
    if len(tail) < patience or any(g <= margin for _, g in tail):
        return Verdict(False, "within the margin of the best finished trial", margin, noise)
    shown = ", ".join(f"{g:+.1%} at step {step}" for step, g in tail)
    return Verdict(True, f"behind the best finished trial's curve ({shown}) for {patience} "
                   f"evaluations in a row, beyond the margin {margin:.1%} (the larger of "
                   f"{z:g} x the measured step-to-step noise {noise:.2%} and {floor:.1%})",
                   margin, noise)


class CurvePruner(BasePruner):
    """`decide` as an Optuna pruner; combined with another pruner (`inner`), whichever stops a
    trial first stops it. `direction`: of the reported intermediate values (None: the study's).
    The reason of a prune by this pruner is stored in the trial's `prune_reason` attribute."""

    def __init__(self, inner: BasePruner | None = None, direction: str | None = None,
                 patience: int = 2, z: float = 2.0, floor: float = 0.005,
                 decisive: float | None = DECISIVE):
        if direction is not None:
            _sign(direction)
        self.inner, self.direction = inner, direction
        self.patience, self.z, self.floor, self.decisive = patience, z, floor, decisive

    def verdict(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Verdict:
        direction = self.direction or ("maximize" if study.direction
                                       == optuna.study.StudyDirection.MAXIMIZE else "minimize")
        fraction = trial.user_attrs.get(FRACTION, 1.0)
        finished = [sorted(t.intermediate_values.items())
                    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.user_attrs.get(FRACTION, 1.0) == fraction and t.intermediate_values]
        return decide(sorted(trial.intermediate_values.items()), finished, direction,
                      self.patience, self.z, self.floor, self.decisive)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if trial.intermediate_values:
            v = self.verdict(study, trial)
            if v.prune:
                _record(study, trial, "curve pruner: " + v.reason)
                return True
        return bool(self.inner and self.inner.prune(study, trial))


def _record(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> None:
    """Store the reason on the running trial (the objective keeps a reason already set)."""
    study._storage.set_trial_user_attr(trial._trial_id, PRUNE_REASON, reason)


def recorded_reason(trial: optuna.Trial) -> str | None:
    """The reason a pruner stored for a running trial (read from the storage: the trial object
    caches its attributes from before the pruner ran)."""
    attrs = trial.study._storage.get_trial_user_attrs(trial._trial_id)
    return attrs.get(PRUNE_REASON)
