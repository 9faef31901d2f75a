"""Small statistics over loss curves: means, medians, a least-squares line, and a noise estimate
that ignores the curve's trend. Plain Python: the curves are a few thousand points at most."""

from __future__ import annotations

import math
import statistics


def mean(xs) -> float:
    return statistics.fmean(xs)


def median(xs) -> float:
    return statistics.median(xs)


def linear_fit(xs, ys) -> tuple[float, float, float]:
    """(slope, intercept, standard error of the slope) of the least-squares line through the points.

    The standard error is 0.0 for two points (a line through them fits exactly) and inf when all
    x are equal (no slope can be measured).
    """
    n = len(xs)
    mx, my = mean(xs), mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, my, math.inf
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    if n <= 2:
        return slope, intercept, 0.0
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    return slope, intercept, math.sqrt(residual / (n - 2) / sxx)


def trend_free_std(ys) -> float:
    """The noise of a series around its own trend, from successive differences.

    For independent noise of standard deviation s, the differences y[i+1] - y[i] have variance
    2 s^2 whatever the trend, as long as the trend moves little from one point to the next (von
    Neumann's estimator). A steadily falling loss therefore does not count as variation, as it
    would in a plain standard deviation.
    """
    diffs = [b - a for a, b in zip(ys, ys[1:])]
    if not diffs:
        return 0.0
    return math.sqrt(sum(d * d for d in diffs) / (2 * len(diffs)))


def ema(ys, smoothing: float) -> list[float]:
    """Exponential moving average: out[i] = smoothing * ys[i] + (1 - smoothing) * out[i - 1]."""
    out: list[float] = []
    for y in ys:
        out.append(y if not out else smoothing * y + (1 - smoothing) * out[-1])
    return out


def relative(new: float, ref: float) -> float:
    """(new - ref) / |ref|; 0.0 when ref is 0."""
    return (new - ref) / abs(ref) if ref else 0.0
