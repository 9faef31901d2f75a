"""The live table of a running study: one row per trial as it finishes, with the best so far,
the elapsed time and what is left of the budget; the same rows whether one process runs the
study or many workers do (it reads only the storage).

    trial  state       value    best  elapsed  left                   params
        3  COMPLETE   1.2345  1.2345  0:02:10  9 trials, 0.41 dev-h   lr 3.0e-04 r 16 ...
"""

from __future__ import annotations

import logging
import time

import optuna
from optuna.trial import TrialState

from .budget import NOT_RUN_ATTR, Budget, spent

log = logging.getLogger("tunelm.search")

SHORT = {"train.learning_rate": "lr", "lora.r": "r", "lora.alpha_multiplier": "alpha_x",
         "lora.dropout": "dropout", "train.warmup_ratio": "warmup",
         "train.weight_decay": "wd", "train.scheduler": "sched",
         "train.effective_batch": "batch"}
HEADER = (f"{'trial':>5}  {'state':<9} {'value':>8} {'best':>8}  {'elapsed':>8}  "
          f"{'left':<24} params")


def left(budget: Budget, trials, elapsed: float) -> str:
    """What is left of the budget, in its own units."""
    done = spent(trials)
    parts = []
    if budget.trials is not None:
        parts.append(f"{max(0, budget.trials - done.trials)} trials")
    if budget.device_hours is not None:
        parts.append(f"{max(0.0, budget.device_hours - done.device_hours):.2f} dev-h")
    if budget.wall_minutes is not None:
        parts.append(f"{max(0.0, budget.wall_minutes - elapsed / 60):.0f} min")
    return ", ".join(parts) or "no limit"


def brief_params(params: dict) -> str:
    out = []
    for k, v in params.items():
        name = SHORT.get(k, k.split(".")[-1])
        out.append(f"{name} {v:.2e}" if isinstance(v, float) and abs(v) < 1e-2 else
                   f"{name} {v:.3g}" if isinstance(v, float) else f"{name} {v}")
    return " ".join(out)


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class LiveTable:
    """Logs a row for every trial that finished since the last `update()`."""

    def __init__(self, budget: Budget, started: float | None = None):
        self.budget = budget
        self.started = started or time.time()
        self.shown: set[int] = set()
        self.header_shown = False

    def rows(self, study: optuna.Study) -> list[str]:
        trials = study.get_trials(deepcopy=False)
        sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
        elapsed = time.time() - self.started
        remaining = left(self.budget, trials, elapsed)  # the same for every row of this update
        out, best = [], None
        def finished_at(t):
            return t.datetime_complete.timestamp() if t.datetime_complete else float("inf")

        for t in sorted(trials, key=lambda t: (finished_at(t), t.number)):  # best-so-far order
            if not t.state.is_finished() or t.user_attrs.get(NOT_RUN_ATTR):
                continue
            if t.state == TrialState.COMPLETE and t.value is not None:
                best = t.value if best is None else min(best, t.value, key=lambda v: sign * v)
            if t.number in self.shown:
                continue
            self.shown.add(t.number)
            value = "" if t.value is None else f"{t.value:.4f}"
            reason = t.user_attrs.get("prune_reason")
            out.append(
                f"{t.number:>5}  {t.state.name:<9} {value:>8} "
                f"{'' if best is None else f'{best:.4f}':>8}  {_clock(elapsed):>8}  "
                f"{remaining:<24} "
                f"{brief_params(t.user_attrs.get('params', t.params))}"
                + (f"  ({reason})" if reason else ""))
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if out and running:
            out.append(f"{'':>5}  {running} running")
        return out

    def update(self, study: optuna.Study, trial=None) -> None:
        """Log the new rows (usable as an Optuna callback)."""
        rows = self.rows(study)
        if rows and not self.header_shown:
            log.info(HEADER)
            self.header_shown = True
        for row in rows:
            log.info(row)

    __call__ = update
