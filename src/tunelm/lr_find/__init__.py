"""`tunelm lr-find`: the learning-rate range test. `curve` holds the rules (pure functions, tested
on synthetic curves), `runner` runs them on a model, `plot` draws the record, `render` says
what the measured calibration makes of it."""

from .curve import (
    BETA,
    DIVERGENCE_FACTOR,
    MEASURED_BAND_RATIOS,
    RECOMMEND_IN_BAND,
    STEEPEST_BACKOFF,
    Analysis,
    Calibrated,
    Suggestion,
    analyze,
    calibrate,
    diverged,
    schedule,
    smooth,
    steepest,
    valley,
)
from .range_test import check_range, run_lr_find
from .render import render_text

__all__ = [
    "BETA", "DIVERGENCE_FACTOR", "MEASURED_BAND_RATIOS", "RECOMMEND_IN_BAND", "STEEPEST_BACKOFF",
    "Analysis", "Calibrated", "Suggestion", "analyze", "calibrate", "check_range", "diverged",
    "render_text", "run_lr_find", "schedule", "smooth", "steepest", "valley",
]
