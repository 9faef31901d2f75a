"""`adaptive`: the budget-aware default (`search/adaptive.py` decides; this drives it).

The recommended config first, then the best config's untried neighbours (learning rate either
side, the rank once the rate is settled, then the warmup), each a full run that the curve pruner
stops early when it loses; when no neighbour is left, TPE spends the rest of the budget; it stops
when the budget left cannot pay one more full run. Every decision is logged and kept in the
study's user attribute `adaptive_decisions` (and the trial it queued carries it as `decision`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..adaptive import HANDOVER, LR, RANK, STOP, WARMUP, Adaptive, Outcome, runs_left
from ..goal import direction_of
from .base import SearchStrategy

if TYPE_CHECKING:
    from ...config import Config, SearchConfig
    from ..dimensions import Dimension
    from .base import Session

log = logging.getLogger("tunelm.search")
DECISIONS_ATTR = "adaptive_decisions"
STARTUP_TRIALS = 5  # TPE's random start-up after the hand-over (the walk's trials count)


def adaptive_of(cfg: Config, dims: list[Dimension]) -> Adaptive:
    """The state machine for a config: its values of the tuned dimensions, bounds and choices
    from the space (a dimension the space does not hold is not tuned)."""
    by_name = {d.name: d for d in dims if not d.when}
    lr = cfg.train.learning_rate
    lr_dim = by_name.get(LR)
    bounds = (lr_dim.low, lr_dim.high) if lr_dim and lr_dim.kind == "float" else (lr, lr)
    base = {LR: lr}
    ranks: tuple = ()
    rank_dim = by_name.get(RANK)
    if rank_dim is not None and cfg.model.method != "full":
        base[RANK] = cfg.lora.r
        ranks = (tuple(rank_dim.choices) if rank_dim.kind == "categorical"
                 else tuple(range(int(rank_dim.low), int(rank_dim.high) + 1)))
    warm_dim = by_name.get(WARMUP)
    warmup_bounds = None
    if warm_dim is not None and warm_dim.kind == "float":
        base[WARMUP] = cfg.train.warmup_ratio
        warmup_bounds = (warm_dim.low, warm_dim.high)
    return Adaptive(base, bounds, ranks, warmup_bounds, direction=direction_of(cfg.search))


def outcomes(study) -> list[Outcome]:
    """Finished trials as the state machine reads them (their objective values)."""
    from optuna.trial import TrialState

    from ..budget import NOT_RUN_ATTR, interrupted

    out = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(NOT_RUN_ATTR) or interrupted(t) or t.state not in (
                TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            continue
        state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(t.state,
                                                                                   "failed")
        out.append(Outcome(t.user_attrs.get("params", t.params), state,
                           t.value if state == "complete" else None,
                           t.user_attrs.get("tag", "")))
    return out


def _run_seconds(session: Session) -> float | None:
    """One full run's cost: measured on the first finished full run, estimated before it."""
    from optuna.trial import TrialState

    from ..budget import COST_ATTR

    for t in session.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if float(t.user_attrs.get("fraction", 1.0)) >= 1.0 and t.user_attrs.get(COST_ATTR):
            return float(t.user_attrs[COST_ATTR])
    try:
        from ..estimate import estimate_cost

        return estimate_cost(session.cfg)["run_hours"] * 3600
    except Exception as exc:  # noqa: BLE001 - no estimate: only the trial budget bounds it
        log.warning("adaptive: no estimate of one run's cost (%s); the time budgets are "
                    "checked after each trial only", exc)
        return None


def budget_left(session: Session, budget) -> float | None:
    """What is left of the study's budget, in full runs."""
    from ..budget import spent

    done = spent(session.study.get_trials(deepcopy=False))
    elapsed = time.time() - session.stop.started
    return runs_left(
        _run_seconds(session) if budget.device_hours or budget.wall_minutes else None,
        trials_left=None if budget.trials is None else budget.trials - done.trials,
        device_seconds_left=(None if budget.device_hours is None
                             else budget.device_hours * 3600 - done.device_seconds),
        wall_seconds_left=(None if budget.wall_minutes is None
                           else budget.wall_minutes * 60 - elapsed))


class AdaptiveSearch(SearchStrategy):
    name = "adaptive"
    help = ("budget-aware: the recommended config, then its neighbours (rate, rank, warmup) "
            "with the curve pruner; TPE for what is left")
    stop_reason = "adaptive finished"
    workers_may_join = False
    local_workers = False
    why_one_process = "it decides each trial from the ones before it, in one process"

    def sampler(self, search: SearchConfig, dims: list[Dimension], seed: int):
        import optuna

        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)

    def run_equivalents(self, cfg: Config, dims: list[Dimension]) -> tuple[float, float] | None:
        limit = self.trial_limit(cfg, dims)
        return None if limit is None else (1.0, float(limit))  # pruned neighbours cost less

    def plan(self, cfg: Config, dims: list[Dimension]) -> str:
        return ("plan: the recommended config in full, then its neighbours (learning rate x/÷ "
                "3.16, the rank once the rate is settled, the warmup), each stopped early by "
                "the curve pruner when it trails; TPE for the rest; no run the budget left "
                "cannot pay")

    def drive(self, session: Session) -> None:
        strategy = adaptive_of(session.cfg, session.dims)
        held = session.held_values()
        budget = self.budget(session.cfg.search)
        while not session.stopped():
            d = strategy.decide(outcomes(session.study), budget_left(session, budget))
            log.info("adaptive: %s: %s", d.kind, d.why)
            record = session.study.user_attrs.get(DECISIONS_ATTR, [])
            session.study.set_user_attr(DECISIONS_ATTR, [*record, {"kind": d.kind,
                                                                   "why": d.why}])
            if d.kind == STOP:
                return
            if d.kind == HANDOVER:
                if budget.trials is None and budget.device_hours is None \
                        and budget.wall_minutes is None:
                    log.info("adaptive: no budget bounds the study; the sampler is not started")
                    return
                session.sample(self.trial_limit(session.cfg, session.dims))
                return
            session.enqueue({**held, **d.params}, d.tag, 1.0, decision=d.why)
            session.run_queued(1)
