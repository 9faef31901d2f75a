"""A study: Optuna storage (SQLite in the study directory, or any SQLAlchemy URL Optuna accepts),
the strategy, the budget, and the trials' directories.

    result = run_search(cfg, "runs/my-study")       # the same call again resumes the study

The config travels with the study (a study attribute), so `tunelm search DIR` and
`tunelm worker --storage URL --study NAME` need nothing else.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..config import Config, from_dict
from ..errors import ConfigError, SearchError
from .budget import NOT_RUN_ATTR, Budget, spent
from .loop import sample_trials
from .protocol import Protocol
from .pruners import make_pruner
from .space import dims_of, grid
from .strategy import Curve

log = logging.getLogger("tunelm.search")
CONFIG_ATTR = "tunelm_config"
HEARTBEAT_SECONDS = 20


def storage_url(out: Path, storage: str | None) -> str:
    return storage or f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def make_storage(url: str):
    """RDB storage with heartbeats: a trial whose worker died is failed and retried once.

    A worker beats every TUNELM_HEARTBEAT_SECONDS (20 by default); a trial silent for three
    beats is taken as dead. Every worker of a study should use the same value."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    beat = _heartbeat_seconds()
    # SQLite: local worker processes share the file; wait for its lock instead of failing
    sqlite = url.startswith("sqlite")
    engine = {"connect_args": {"timeout": 60}} if sqlite else None
    storage = optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine,
        heartbeat_interval=beat,
        grace_period=3 * beat,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
    )
    if sqlite:
        _serialize_sqlite(storage.engine)
    return storage


def _serialize_sqlite(engine) -> None:
    """Every SQLite transaction takes the write lock when it begins (BEGIN IMMEDIATE).

    Optuna takes a queued trial by reading that it is waiting, then marking it running; SQLite
    has no row locks, so two processes could both read "waiting" and both run it. With the lock
    taken at BEGIN the read and the write are one step. (SQLAlchemy's recipe for pysqlite:
    the driver's own BEGIN is switched off and ours emitted instead.)"""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners keep the driver's BEGIN


def _heartbeat_seconds() -> int:
    raw = os.environ.get("TUNELM_HEARTBEAT_SECONDS", str(HEARTBEAT_SECONDS))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"TUNELM_HEARTBEAT_SECONDS must be a whole number of seconds >= 1, "
                          f"got {raw!r}")
    return value


def make_sampler(cfg: Config, dims, worker: int = 0):
    """The sampler of a strategy. Each worker of a study draws from its own seed
    (search.seed + worker): workers with one seed would propose the same trials."""
    s = cfg.search
    seed = s.seed + worker
    if s.strategy == "grid":
        return optuna.samplers.GridSampler(grid(dims, s.grid_points), seed=seed)
    if s.strategy == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(cfg: Config | None, out: Path, storage: str | None = None,
               name: str | None = None, worker: int = 0) -> tuple[optuna.Study, Config]:
    """Create the study, or load it (and its stored config when `cfg` is None). `worker`
    numbers the processes that share a study (0: the one that started it)."""
    out = Path(out)
    url = storage_url(out, storage)
    name = name or out.name
    if storage is None and cfg is None and not (out / "study.db").exists():
        raise ConfigError(f"no study in {out} (no study.db); start one with tunelm search CONFIG "
                          "--out DIR, or give --storage URL --study NAME")
    if storage is None:
        out.mkdir(parents=True, exist_ok=True)
    rdb = make_storage(url)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(rdb)}
    explicit = cfg is not None
    if name in existing:
        cfg = cfg or from_dict(existing[name].user_attrs[CONFIG_ATTR])
    elif cfg is None:
        raise ConfigError(f"no study named {name!r} in {url}; start one with tunelm search CONFIG")
    dims = dims_of(cfg)
    direction = "maximize" if cfg.search.objective == "exact_match" else "minimize"
    # pbt: trials are generation windows at different steps, not one run's fidelity levels
    pbt = cfg.search.strategy == "pbt"
    pruner = make_pruner("none" if pbt else cfg.search.pruner, cfg.train.eval_steps or 1,
                         cfg.train.max_steps, curve=cfg.search.curve_pruner and not pbt)
    study = optuna.create_study(storage=rdb, study_name=name, load_if_exists=True,
                                direction=direction, sampler=make_sampler(cfg, dims, worker),
                                pruner=pruner)
    if CONFIG_ATTR not in study.user_attrs or explicit:
        # the last `tunelm search CONFIG` defines the study (a larger --trials, say);
        # workers read it from here
        study.set_user_attr(CONFIG_ATTR, cfg.to_dict())
        study.set_user_attr("study_dir", str(out.resolve()))
    return study, cfg


@dataclass
class SearchResult:
    study_name: str
    storage: str
    best_value: float | None
    best_params: dict
    best_trial_dir: str | None
    stop_reason: str
    trials: list[dict] = field(default_factory=list)
    spent_trials: int = 0
    spent_device_hours: float = 0.0


def curves(study: optuna.Study) -> list[Curve]:
    """Finished trials as the strategies see them."""
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            continue
        reason = str(t.user_attrs.get("prune_reason", ""))
        diverged = t.state == TrialState.FAIL or reason.startswith(("diverged", "loss is",
                                                                    "grad_norm is"))
        state = "failed" if diverged else ("pruned" if t.state == TrialState.PRUNED else "complete")
        out.append(Curve(
            params=t.user_attrs.get("params", t.params),
            eval_losses=sorted(t.intermediate_values.items()),
            train_losses=[tuple(x) for x in t.user_attrs.get("train_curve", [])],
            state=state, tag=t.user_attrs.get("tag", ""),
            fraction=float(t.user_attrs.get("fraction", 1.0)),
        ))
    return out


class _BudgetStop:
    def __init__(self, budget: Budget, started: float):
        self.budget, self.started = budget, started
        self.reason: str | None = None

    def check(self, study) -> str | None:
        self.reason = self.budget.exhausted(spent(study.get_trials(deepcopy=False)),
                                            time.time() - self.started)
        return self.reason

    def __call__(self, study, trial) -> None:  # an Optuna callback, after every trial
        if self.check(study):
            study.stop()


def budget_of(cfg: Config) -> Budget:
    s = cfg.search
    # pbt runs population x generations trials; device-hours and wall-clock still stop it
    return Budget(None if s.strategy == "pbt" else s.trials, s.budget_hours, s.timeout_minutes)


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
        from .workers import run_workers

        return run_workers(cfg, Path(out), storage, study_name, live=live)
    out = Path(out)
    # a joining worker seeds its sampler apart from the others (its process id)
    study, cfg = open_study(cfg, out, storage, study_name, os.getpid() if worker else 0)
    if worker and cfg.search.strategy == "protocol":
        raise ConfigError("the protocol strategy runs its stages from its one `tunelm search` "
                          "process; workers can join grid, random and tpe studies")
    if cfg.search.strategy in ("random", "tpe") and budget_of(cfg) == Budget():
        raise ConfigError(f"search.strategy {cfg.search.strategy} needs a budget: --trials, "
                          "--budget-hours or --timeout")
    from .objective import TrialRunner  # imports Transformers: only where trials run

    if cfg.search.strategy == "pbt":  # member-generations resume and save training states
        from .pbt_run import PBTRunner as TrialRunner
    dims = dims_of(cfg)
    runner = TrialRunner(cfg, dims, out, cfg.search.objective, extra_callbacks=callbacks,
                         progress=progress,
                         isolate_in=storage_url(out, storage) if cfg.search.isolate else None)
    started = time.time()
    stop = _BudgetStop(budget_of(cfg), started)
    stop.check(study)
    report = [stop] + ([on_trial] if on_trial else [])
    if live:
        from .live import LiveTable

        report.append(LiveTable(budget_of(cfg), started))
    if not stop.reason:
        if cfg.search.strategy == "protocol":
            _run_protocol(study, cfg, runner, report, stop)
        elif cfg.search.strategy == "adaptive":  # a bridge until run_search drives by registry
            from .strategies import strategy_named

            strategy_named("adaptive").drive(_Shim(study, cfg, dims, runner, stop, report))
        elif cfg.search.strategy == "pbt":
            from .pbt_run import run_pbt

            run_pbt(study, cfg, runner, report, stop, dims, out, worker=worker)
        else:
            if not worker:
                enqueue_start(study, cfg, dims)
            sample_trials(study, runner, stop, report, trial_limit(cfg, dims))
    if runner.fatal is not None:
        raise runner.fatal
    keep_top(study, cfg.search.keep_top)
    return summarize(study, storage_url(out, storage), stop_reason(cfg, stop.reason))


def run_fixed_trial(out: str | Path, params: dict, tag: str, fraction: float = 1.0,
                    storage: str | None = None, study_name: str | None = None) -> SearchResult:
    """One more trial of an existing study (any strategy) with these parameters, the rest at
    the study config's values; e.g. the recommended config beside what a search picked."""
    from .objective import TrialRunner

    out = Path(out)
    study, cfg = open_study(None, out, storage, study_name)
    dims = dims_of(cfg)
    fixed = {**config_values(cfg, dims), **params}
    study.enqueue_trial(fixed, user_attrs={"fixed": fixed, "tag": tag, "fraction": fraction},
                        skip_if_exists=False)
    runner = TrialRunner(cfg, dims, out, cfg.search.objective)
    study.optimize(runner, n_trials=1, catch=(Exception,), gc_after_trial=True)
    if runner.fatal is not None:
        raise runner.fatal
    keep_top(study, cfg.search.keep_top)
    return summarize(study, storage_url(out, storage), f"{tag} trial added")


def stop_reason(cfg: Config, budget_reason: str | None) -> str:
    return budget_reason or ("grid exhausted" if cfg.search.strategy == "grid" else
                             "protocol finished" if cfg.search.strategy == "protocol" else
                             "pbt finished" if cfg.search.strategy == "pbt" else
                             "done")


def enqueue_start(study: optuna.Study, cfg: Config, dims) -> None:
    """tpe: the recommended (configured) values are the study's first trial."""
    if cfg.search.strategy == "tpe" and not study.trials:
        start = config_values(cfg, dims)
        study.enqueue_trial(start, user_attrs={"fixed": start, "tag": "recommended"})


def trial_limit(cfg: Config, dims) -> int | None:
    """The most trials the study may hold: --trials, and for a grid its size."""
    limits = [cfg.search.trials] if cfg.search.trials is not None else []
    if cfg.search.strategy == "grid":
        limits.append(math.prod(len(v) for v in grid(dims, cfg.search.grid_points).values()))
    return min(limits) if limits else None


def config_values(cfg: Config, dims) -> dict:
    """The config's own value of every unconditional dimension: what a trial holds fixed when
    a strategy does not choose it (the recommended start, the protocol's untuned dimensions)."""
    return {d.name: _value_of(cfg, d.name) for d in dims if not d.when}


def _value_of(cfg: Config, path: str):
    section, name = path.split(".", 1)
    return getattr(getattr(cfg, section), name)


def _run_protocol(study, cfg: Config, runner, report, stop) -> None:
    base = {"train.learning_rate": cfg.train.learning_rate, "train.warmup_ratio":
            cfg.train.warmup_ratio}
    if cfg.model.method != "full":
        base["lora.r"] = cfg.lora.r
    proto = Protocol(base, tuned_rank=cfg.model.method != "full")
    # what the protocol does not tune (weight decay, dropout, ...) stays at the config's value
    held = config_values(cfg, runner.dims)
    while not stop.reason and runner.fatal is None:
        todo = proto.propose(curves(study))
        if todo is None:
            break
        if not todo:
            raise SearchError("the protocol is waiting on trials another process is running; "
                              "run it from one `tunelm search` process")
        for s in todo:
            params = {**held, **s.params}
            study.enqueue_trial(params, user_attrs={"fixed": params, "tag": s.tag,
                                                    "fraction": s.fraction},
                                skip_if_exists=False)
        study.optimize(runner, n_trials=len(todo), callbacks=report, catch=(Exception,),
                       gc_after_trial=True)
    for line in proto.log:
        log.info("protocol: %s", line)


def keep_top(study: optuna.Study, k: int) -> None:
    """Delete the saved adapters of every trial but the best `k` (their metrics stay)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None]
    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    done.sort(key=lambda t: sign * t.value)
    keep = {t.number for t in done[:k]}
    for t in study.get_trials(deepcopy=False):
        d = t.user_attrs.get("trial_dir")
        if d and t.number not in keep and t.state != TrialState.RUNNING:
            shutil.rmtree(Path(d) / "best", ignore_errors=True)


def summarize(study: optuna.Study, url: str, reason: str) -> SearchResult:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = None
    if complete:
        best = study.best_trial
    rows = []
    for t in trials:
        regret = None
        if best is not None and t.value is not None and best.value:
            regret = abs(t.value - best.value) / abs(best.value)
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "params": t.user_attrs.get("params", t.params),
                     "tag": t.user_attrs.get("tag"), "relative_regret": regret,
                     "cost_seconds": t.user_attrs.get("cost_seconds"),
                     "prune_reason": t.user_attrs.get("prune_reason"),
                     "trial_dir": t.user_attrs.get("trial_dir"),
                     "not_run": bool(t.user_attrs.get(NOT_RUN_ATTR))})
    total = spent(trials)
    try:  # the study records its total spend (read-only storages aside)
        study.set_user_attr("spent", {"trials": total.trials,
                                      "device_hours": round(total.device_hours, 4)})
    except Exception:  # noqa: BLE001
        pass
    return SearchResult(study.study_name, url, best.value if best else None,
                        best.user_attrs.get("params", best.params) if best else {},
                        best.user_attrs.get("trial_dir") if best else None, reason, rows,
                        total.trials, total.device_hours)


def best_config(study_dir_or_url: str, study_name: str | None = None) -> Config:
    """The best trial's full config (what `tunelm best` prints)."""
    out = Path(study_dir_or_url)
    storage = None if "://" not in study_dir_or_url else study_dir_or_url
    study, cfg = open_study(None, out, storage, study_name)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {study.study_name!r} has no finished trial yet")
    from .space import apply

    best = study.best_trial
    return apply(cfg, best.user_attrs.get("params", best.params))


def describe(result: SearchResult) -> str:
    """The end of a search: why it stopped, the best config and its directory, and every trial's
    relative regret against the best, best first."""
    from .live import brief_params

    lines = [f"study {result.study_name} ({result.storage}): {result.stop_reason}",
             f"spent {result.spent_trials} trials, {result.spent_device_hours:.3f} device-hours"]
    if result.best_value is not None:
        lines.append(f"best value {result.best_value:.4f}: {json.dumps(result.best_params)}")
        lines.append(f"best trial directory {result.best_trial_dir}")
    rows = [r for r in result.trials if not r.get("not_run")]
    rows.sort(key=lambda r: (r["relative_regret"] is None, r["relative_regret"] or 0,
                             r["number"]))
    if rows:
        lines.append(f"{'trial':>5}  {'state':<9} {'value':>8} {'regret':>8} {'cost s':>7}  params")
    for r in rows:
        value = "" if r["value"] is None else f"{r['value']:.4f}"
        regret = "" if r["relative_regret"] is None else f"{r['relative_regret']:.1%}"
        cost = "" if r["cost_seconds"] is None else f"{r['cost_seconds']:.0f}"
        lines.append(f"{r['number']:>5}  {r['state']:<9} {value:>8} {regret:>8} {cost:>7}  "
                     f"{brief_params(r['params'])}"
                     + (f"  ({r['prune_reason']})" if r["prune_reason"] else ""))
    return "\n".join(lines)


@dataclass
class _Shim:
    """The `Session` a registered strategy's `drive` is given (strategies/base.py), over this
    module's study, runner and budget. A bridge for `adaptive` until h1-search's run_search
    (search/run.py, StudySession) drives every strategy through the registry."""

    study: object
    cfg: object
    dims: list
    objective: object
    stop: object
    callbacks: list
    worker: bool = False

    def stopped(self):
        return bool(self.stop.check(self.study)) or self.objective.fatal is not None

    def curves(self):
        return curves(self.study)

    def held_values(self):
        return config_values(self.cfg, self.dims)

    def enqueue(self, params, tag, fraction=1.0, **attrs):
        self.study.enqueue_trial(params, user_attrs={"fixed": params, "tag": tag,
                                                     "fraction": fraction, **attrs},
                                 skip_if_exists=False)

    def run_queued(self, n):
        self.study.optimize(self.objective, n_trials=n, callbacks=self.callbacks,
                            catch=(Exception,), gc_after_trial=True)

    def sample(self, limit):
        sample_trials(self.study, self.objective, self.stop, self.callbacks, limit)
