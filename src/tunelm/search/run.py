"""Running a study: `run_search` (until its strategy is done or its budget is spent; the same
call again resumes it) and `run_fixed_trial` (one more trial with given values).

    result = run_search(cfg, "runs/my-study")

The strategy (`strategies/`) decides what runs; this module builds the objective that runs a
trial, the budget and the callbacks, and hands them to the strategy's `drive` as a session.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..config import Config
from ..errors import ConfigError
from .budget import Budget, interrupted
from .dimensions import config_values
from .live import LiveTable
from .opener import open_study
from .results import SearchResult, keep_top, summarize
from .session import BudgetStop, StudySession
from .space import dims_of
from .storage import storage_url
from .strategies import ALL, strategy_named
from .workers import run_workers


def _objective(cfg: Config, dims, out: Path, storage: str | None, callbacks=(),
               progress: bool = False):
    """The Optuna objective that runs one trial as a real fine-tuning run. Its modules load
    Transformers: imported here, where trials run, not when the search package is."""
    if strategy_named(cfg.search.strategy).resumes_training_state:
        from .pbt_run import PBTObjective as Objective
    else:
        from .objective import TrialObjective as Objective
    return Objective(cfg, dims, out, cfg.search.objective, extra_callbacks=callbacks,
                     progress=progress,
                     isolate_in=storage_url(out, storage)
                     # a trial on N ranks runs in children (torchrun), as --isolate does
                     if cfg.search.isolate or cfg.train.devices > 1 else None)


def run_search(cfg: Config | None, out: str | Path, *, storage: str | None = None,
               study_name: str | None = None, progress: bool = False,
               callbacks=(), on_trial=None, worker: bool = False,
               live: bool = False) -> SearchResult:
    """Run (or resume) a study until its strategy is done or its budget is spent.

    `worker=True` joins a study another process started: it runs trials and never enqueues any.
    `live=True` logs the live table, a row per finished trial. With `search.workers` > 1 this
    process starts that many local workers and watches them (`search.workers`).
    """
    if cfg is not None and cfg.search.workers > 1 and not worker:
        return run_workers(cfg, Path(out), storage, study_name, live=live)
    out = Path(out)
    # a joining worker seeds its sampler apart from the others (its process id)
    study, cfg = open_study(cfg, out, storage, study_name, os.getpid() if worker else 0)
    strategy = strategy_named(cfg.search.strategy)
    if worker and not strategy.workers_may_join:
        raise ConfigError(f"workers cannot join a {strategy.name} study: "
                          f"{strategy.why_one_process}; workers can join {_joinable()} studies")
    budget = strategy.budget(cfg.search)
    if strategy.needs_budget and budget == Budget():
        raise ConfigError(f"search.strategy {strategy.name} needs a budget: --trials, "
                          "--budget-hours or --timeout")
    dims = dims_of(cfg)
    objective = _objective(cfg, dims, out, storage, callbacks, progress)
    started = time.time()
    stop = BudgetStop(budget, started)
    stop.check(study)
    report = [stop] + ([on_trial] if on_trial else [])
    if live:
        report.append(LiveTable(budget, started))
    if not stop.reason:
        if not worker and all(interrupted(t) for t in study.trials):  # new, or nothing ran
            for params, tag in strategy.first_trials(cfg, dims):
                study.enqueue_trial(params, user_attrs={"fixed": params, "tag": tag})
        strategy.drive(StudySession(study, cfg, dims, objective, stop, out, worker, report))
    if objective.fatal is not None:
        raise objective.fatal
    keep_top(study, cfg.search.keep_top)
    return summarize(study, storage_url(out, storage), stop.reason or strategy.stop_reason)


def _joinable() -> str:
    names = [s.name for s in ALL if s.workers_may_join]
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]


def run_fixed_trial(out: str | Path, params: dict, tag: str, fraction: float = 1.0,
                    storage: str | None = None, study_name: str | None = None) -> SearchResult:
    """One more trial of an existing study (any strategy) with these parameters, the rest at
    the study config's values; e.g. the recommended config beside what a search picked."""
    from .objective import TrialObjective  # loads Transformers: only where trials run

    out = Path(out)
    study, cfg = open_study(None, out, storage, study_name)
    dims = dims_of(cfg)
    fixed = {**config_values(cfg, dims), **params}
    study.enqueue_trial(fixed, user_attrs={"fixed": fixed, "tag": tag, "fraction": fraction},
                        skip_if_exists=False)
    objective = TrialObjective(cfg, dims, out, cfg.search.objective)
    study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
    if objective.fatal is not None:
        raise objective.fatal
    keep_top(study, cfg.search.keep_top)
    return summarize(study, storage_url(out, storage), f"{tag} trial added")
