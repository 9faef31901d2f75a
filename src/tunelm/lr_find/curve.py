"""The learning-rate range test as pure functions over a loss curve: the schedule, the smoothing,
the stop rule and the two suggestions. No model here, so each is tested on synthetic curves.

    lrs = schedule(1e-7, 1.0, 100)
    ... train one step at each rate, collecting the losses, until `diverged(...)` ...
    result = analyze(lrs[:len(losses)], losses, planned_steps=100)
    result.steepest.lr, result.valley.lr

The choices, and where they come from:

- **Schedule**: exponential, `min_lr * (max_lr / min_lr) ** (i / (steps - 1))`, so the first step
  runs at `min_lr` and the last at `max_lr` (Smith 2017; fastai's `SchedExp`, which stops one step
  short of `end_lr`).
- **Smoothing**: an exponential moving average with bias correction, beta 0.98, as fastai's
  `AvgSmoothLoss` and Lightning's learning-rate finder: `avg = beta * avg + (1 - beta) * loss`,
  reported as `avg / (1 - beta ** step)`.
- **Stop**: once the smoothed loss exceeds 4x its best so far (fastai `LRFinder`, Lightning
  `early_stop_threshold=4`), or a loss is not finite.
- **The window**: suggestions ignore the first `planned_steps // 10` points (the average has too
  few losses behind it) and the last 5 (the divergence itself), as fastai's `lr_find` does.
- **Steepest, backed off** (the suggestion): the rate where the smoothed loss falls fastest per
  unit of log rate (central differences, `numpy.gradient`), divided by `STEEPEST_BACKOFF` = 3.
  Why back off: the moving average lags the raw losses (its mean lag is up to beta/(1-beta) = 49
  steps), so the smoothed curve's steepest point sits to the right of the raw curve's; on the
  synthetic range tests of `tests/test_lr_find.py` (100 steps over 7 decades) that shift is
  2.3-2.7x, on the demo task 2.9x (docs/benchmarks.md), and /3 takes it back.
  Lightning reports the steepest point as it is; fastai's other rule, `minimum`, backs off by 10
  from the loss minimum. We report the rate before the back-off as well. Measured on the demo
  task (LoRA), the suggestion came out 3x *below* the best rate of a real sweep: treat it as the
  low end of a bracket whose high end is the divergence, not as the rate to train at.
- **Calibration** (`calibrate`): on every recorded grid of `benchmarks/data` where lr-find ran,
  the grid's band of near rates (runs within 2% of the best eval loss, or 1 point of the best
  exact match) divided by the suggestion is in `MEASURED_BAND_RATIOS`. Where one factor puts the
  suggestion inside the band on every grid, it is applied and reported; where none does, the
  range those ratios span is reported instead of a single number. `RECOMMEND_IN_BAND` is how
  often `tunelm recommend`'s rate fell in the band on the same grids, for the comparison.
- **Valley** (fastai's default rule, by ESRI): the longest decreasing run of the smoothed
  curve (longest strictly decreasing subsequence, as fastai computes it), and the point about
  half-way along it: index `start + int(L/3) + int(L/6)` with `L = end - start` and
  `start = end - (length of the run)`, exactly fastai's arithmetic. One deviation: where that
  index comes out negative (a valley shorter than 3 points that starts at the first point),
  fastai would read from the end of the curve; we clamp it to the first point.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

BETA = 0.98
DIVERGENCE_FACTOR = 4.0
STEEPEST_BACKOFF = 3.0
SKIP_END = 5


def schedule(min_lr: float, max_lr: float, steps: int) -> list[float]:
    """`steps` rates growing exponentially from `min_lr` (first) to `max_lr` (last)."""
    if steps < 2:
        return [min_lr] * steps
    ratio = max_lr / min_lr
    return [min_lr * ratio ** (i / (steps - 1)) for i in range(steps)]


def smooth(losses: list[float], beta: float = BETA) -> list[float]:
    """Bias-corrected exponential moving average of `losses` (the first value is the first loss)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def diverged(smoothed: float, best: float, raw: float,
             factor: float = DIVERGENCE_FACTOR) -> str | None:
    """Why the test stops after this step, or None: a non-finite loss, or the smoothed loss
    above `factor` times its best so far."""
    if not math.isfinite(raw) or not math.isfinite(smoothed):
        return f"the loss is {raw} (not finite)"
    if smoothed > factor * best:
        return f"smoothed loss {smoothed:.4g} exceeded {factor:g}x its best ({best:.4g})"
    return None


@dataclass(frozen=True)
class Suggestion:
    """A suggested rate, the index of the curve point it came from, and how it was chosen."""

    rule: str
    lr: float
    index: int
    point_lr: float  # the rate at that point (before any back-off)
    smoothed_loss: float
    how: str

    def as_dict(self) -> dict:
        return asdict(self)


# Measured by `benchmarks/advice_accuracy.py --lr-find` (docs/benchmarks.md, "Advice scored"):
# grid -> (low, high) end of its band of near rates / lr-find's suggestion (steepest / 3). The
# contract task's range test is the demo preset's (80 steps from 1e-6), the licence texts' ran on
# the grid's config (50 steps from 1e-5). 4-14x against 122x: no single factor.
MEASURED_BAND_RATIOS: dict[str, tuple[float, float]] = {
    "contracts": (4.32, 13.65), "licenses": (122.32, 122.32)}
RECOMMEND_IN_BAND = (3, 3)  # grids where recommend's rate was in the band, grids measured


@dataclass(frozen=True)
class Calibrated:
    """What the measurement makes of a suggestion: one rate (`factor` applied) when a single
    factor fitted every measured grid, else only the range `low`-`high`."""

    suggestion: float
    factor: float | None
    lr: float | None
    low: float
    high: float
    how: str

    def as_dict(self) -> dict:
        return asdict(self)


def calibrate(suggestion: float, ratios: dict[str, tuple[float, float]] | None = None
              ) -> Calibrated | None:
    """The suggestion against the measured grids (None when nothing was measured)."""
    ratios = MEASURED_BAND_RATIOS if ratios is None else ratios
    if not ratios:
        return None
    lo, hi = max(r[0] for r in ratios.values()), min(r[1] for r in ratios.values())
    shown = ", ".join(f"{name} {a:.3g}x" if a == b else f"{name} {a:.3g}-{b:.3g}x"
                      for name, (a, b) in sorted(ratios.items()))
    if lo <= hi:
        factor = math.sqrt(lo * hi)
        return Calibrated(suggestion, factor, suggestion * factor, suggestion * lo,
                          suggestion * hi, f"x{factor:.2g}: the one factor that put the "
                          f"suggestion in the band of near rates on every measured grid "
                          f"({shown})")
    low = suggestion * min(r[0] for r in ratios.values())
    high = suggestion * max(r[1] for r in ratios.values())
    return Calibrated(suggestion, None, None, low, high,
                      f"no single factor fits the measured grids (the band of near rates was "
                      f"{shown} the suggestion), so only their range is given")


@dataclass(frozen=True)
class Analysis:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    window: tuple[int, int]  # [start, end) of the points the suggestions looked at
    steepest: Suggestion | None
    valley: Suggestion | None
    note: str | None  # why there is no suggestion


def window(n_points: int, planned_steps: int, skip_end: int = SKIP_END) -> tuple[int, int]:
    """fastai's window `[planned_steps // 10, n_points - skip_end)`."""
    return planned_steps // 10, n_points - skip_end


def steepest(lrs: list[float], smoothed: list[float], start: int = 0, end: int | None = None,
             backoff: float = STEEPEST_BACKOFF) -> Suggestion:
    """The most negative d(smoothed loss)/d(log lr) within [start, end), the rate divided by
    `backoff`. Needs at least 3 points in the window."""
    import numpy as np

    end = len(lrs) if end is None else end
    x = np.log(np.asarray(lrs[start:end], dtype=float))
    y = np.asarray(smoothed[start:end], dtype=float)
    if len(x) < 3:
        raise ValueError(f"steepest needs at least 3 points, got {len(x)}")
    grad = np.gradient(y, x)
    k = int(np.argmin(grad))
    i = start + k
    return Suggestion(
        "steepest", lrs[i] / backoff, i, lrs[i], smoothed[i],
        f"steepest descent of the smoothed loss at lr {lrs[i]:.3g} (slope {grad[k]:.3g} per "
        f"unit of ln lr, point {i}), divided by {backoff:g}",
    )


def valley(lrs: list[float], smoothed: list[float], start: int = 0,
           end: int | None = None) -> Suggestion:
    """fastai's `valley` rule on the points [start, end) of the smoothed curve."""
    end = len(lrs) if end is None else end
    ys = smoothed[start:end]
    n = len(ys)
    if n < 1:
        raise ValueError("valley needs at least one point")
    # lds[i]: the length of the longest strictly decreasing subsequence ending at i
    lds = [1] * n
    max_end = 0
    for i in range(1, n):
        for j in range(i):
            if ys[i] < ys[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[max_end] < lds[i]:
            max_end = i
    max_start = max_end - lds[max_end] if max_end else 0
    sections = (max_end - max_start) / 3
    k = max(0, max_start + int(sections) + int(sections / 2))
    i = start + k
    return Suggestion(
        "valley", lrs[i], i, lrs[i], smoothed[i],
        f"the longest valley of the smoothed loss runs {lds[max_end]} points down to lr "
        f"{lrs[start + max_end]:.3g}; the point about half-way along it (fastai's valley rule)",
    )


def analyze(lrs: list[float], losses: list[float], planned_steps: int | None = None,
            beta: float = BETA, backoff: float = STEEPEST_BACKOFF) -> Analysis:
    """Smooth the recorded losses and make both suggestions (None, with a note, when the test
    diverged too early to leave at least 3 points between the window's ends)."""
    if len(lrs) != len(losses):
        raise ValueError(f"{len(lrs)} rates but {len(losses)} losses")
    finite = next((i for i, x in enumerate(losses) if not math.isfinite(x)), len(losses))
    lrs, losses = list(lrs[:finite]), list(losses[:finite])  # fastai drops from the first NaN
    smoothed = smooth(losses, beta)
    start, end = window(len(losses), planned_steps or len(losses))
    if end - start < 3:
        note = (f"the test stopped after {len(losses)} finite points, too few for a suggestion "
                f"(the window starts at point {start} and ends {SKIP_END} before the last); "
                "lower --min-lr or --max-lr, or raise --steps")
        return Analysis(lrs, losses, smoothed, (start, end), None, None, note)
    return Analysis(lrs, losses, smoothed, (start, end),
                    steepest(lrs, smoothed, start, end, backoff),
                    valley(lrs, smoothed, start, end), None)
