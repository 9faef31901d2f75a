"""Pruning on training-step fidelity: Optuna's successive halving and Hyperband, and a divergence
pruner that stops a trial whose eval loss turns NaN or explodes.

A trial's intermediate values are its eval losses, lower is better, whatever the study's own
direction: a study of `search.objective: exact_match` (or rougeL, or a score of the user's own
metric function) maximises its final value but prunes on the loss, the only value measured at
every evaluation (`goal.py` says why, and the study records it). Optuna's pruners compare intermediate values in the study's direction, so they are
handed a view of the study whose direction is the loss's (`loss_view`). The values themselves
stay eval losses, which is what the protocol, the reports and the divergence guard read.
"""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection

from ..config import PRUNER_NAMES


class _LossDirectionStorage:
    """A study's storage that says every direction is minimize; all else is the storage's own."""

    def __init__(self, storage):
        self._storage = storage

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return [StudyDirection.MINIMIZE] * len(self._storage.get_study_directions(study_id))

    def __getattr__(self, name):
        return getattr(self._storage, name)


def loss_view(study: optuna.Study) -> optuna.Study:
    """The study as a pruner must see it: the same trials, minimised (they report losses).

    A view over the storage rather than a copy of the trials: Hyperband builds its bracket
    studies from `study._storage`, and successive halving records its rungs there."""
    if all(d == StudyDirection.MINIMIZE for d in study.directions):
        return study
    return optuna.Study(study.study_name, _LossDirectionStorage(study._storage),
                        sampler=study.sampler, pruner=study.pruner)


def asks_pruner(step: int, last_step: int) -> bool:
    """Whether the evaluation at `step` of a run planned for `last_step` steps is put to the
    pruner: every one but the last. Stopping a trial at its last evaluation saves no training,
    only its final score on the whole eval set, which is what the search chooses on (the
    evaluations at eval steps may use a subset of it, `eval.pruning_examples`, and the two can
    disagree); a trial pruned there would be thrown away at full cost. A loss that turns NaN or
    explodes there still ends the run: the runner's health guard stops it."""
    return step < last_step


class DivergencePruner(BasePruner):
    """Prunes a trial whose last eval loss is NaN/inf or more than `factor` times its own best;
    otherwise defers to `inner` (another pruner, or none), which compares the losses in the
    loss's direction (`loss_view`)."""

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
        return bool(self.inner and self.inner.prune(loss_view(study), trial))


def make_pruner(name: str, min_steps: int, max_steps: int | None,
                curve: bool = False) -> BasePruner:
    """The pruner `name` on step fidelity, always wrapped in the divergence pruner; with
    `curve`, the curve pruner (`search.curve_pruner`) in front of it: whichever stops first."""
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
    if curve:
        from .curve_pruner import CurvePruner

        inner = CurvePruner(inner, direction="minimize")  # it reads eval losses
    return DivergencePruner(inner)
