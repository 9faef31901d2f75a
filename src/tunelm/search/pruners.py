"""Pruning on training-step fidelity: Optuna's successive halving and Hyperband, and a divergence
pruner that stops a trial whose eval loss turns NaN or explodes."""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner

from ..config import PRUNER_NAMES


class DivergencePruner(BasePruner):
    """Prunes a trial whose last eval loss is NaN/inf or more than `factor` times its own best;
    otherwise defers to `inner` (another pruner, or none)."""

    def __init__(self, inner: BasePruner | None = None, factor: float = 2.0):
        self.inner = inner
        self.factor = factor

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        values = trial.intermediate_values
        if values:
            last = values[max(values)]
            if not math.isfinite(last):
                return True
            best = min(v for v in values.values() if math.isfinite(v))
            if last > self.factor * best:
                return True
        return bool(self.inner and self.inner.prune(study, trial))


def make_pruner(name: str, min_steps: int, max_steps: int | None) -> BasePruner:
    """The pruner `name` on step fidelity, always wrapped in the divergence pruner."""
    min_steps = max(1, min_steps)
    inner: BasePruner | None
    if name == "none":
        inner = None
    elif name == "median":
        inner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=min_steps)
    elif name == "successive_halving":
        inner = optuna.pruners.SuccessiveHalvingPruner(min_resource=min_steps, reduction_factor=3)
    elif name == "hyperband":
        inner = optuna.pruners.HyperbandPruner(
            min_resource=min_steps,
            max_resource=max(max_steps, min_steps + 1) if max_steps else "auto",
            reduction_factor=3)
    else:
        from ..errors import ConfigError

        raise ConfigError(f"search.pruner must be one of {', '.join(PRUNER_NAMES)}, got {name!r}")
    return DivergencePruner(inner)
