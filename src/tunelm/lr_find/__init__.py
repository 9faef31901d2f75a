"""`tunelm lr-find`: the learning-rate range test. `curve` holds the rules (pure functions, tested
on synthetic curves), `runner` runs them on a model, `plot` draws the record."""

from .curve import (
    BETA,
    DIVERGENCE_FACTOR,
    STEEPEST_BACKOFF,
    Analysis,
    Suggestion,
    analyze,
    diverged,
    schedule,
    smooth,
    steepest,
    valley,
)
from .runner import check_range, run_lr_find

__all__ = [
    "BETA", "DIVERGENCE_FACTOR", "STEEPEST_BACKOFF", "Analysis", "Suggestion", "analyze",
    "check_range", "diverged", "run_lr_find", "schedule", "smooth", "steepest", "valley",
]
