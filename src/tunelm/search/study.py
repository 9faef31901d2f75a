"""A study: Optuna storage (SQLite in the study directory, or any SQLAlchemy URL Optuna accepts),
the strategy, the budget, and the trials' directories.

    result = run_search(cfg, "runs/my-study")       # the same call again resumes the study

The config travels with the study (a study attribute), so `tunelm search DIR` and
`tunelm worker --storage URL --study NAME` need nothing else.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..config import Config, from_dict
from ..errors import ConfigError, SearchError
from .budget import Budget, spent
from .objective import TrialRunner
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
    """RDB storage with heartbeats: a trial whose worker died is failed and retried once."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna.storages.RDBStorage(
        url,
        heartbeat_interval=HEARTBEAT_SECONDS,
        grace_period=3 * HEARTBEAT_SECONDS,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
    )


def make_sampler(cfg: Config, dims):
    s = cfg.search
    if s.strategy == "grid":
        return optuna.samplers.GridSampler(grid(dims, s.grid_points), seed=s.seed)
    if s.strategy == "tpe":
        return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=5)
    return optuna.samplers.RandomSampler(seed=s.seed)


def open_study(cfg: Config | None, out: Path, storage: str | None = None,
               name: str | None = None) -> tuple[optuna.Study, Config]:
    """Create the study, or load it (and its stored config when `cfg` is None)."""
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
    pruner = make_pruner(cfg.search.pruner, cfg.train.eval_steps or 1, cfg.train.max_steps)
    study = optuna.create_study(storage=rdb, study_name=name, load_if_exists=True,
                                direction=direction, sampler=make_sampler(cfg, dims),
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
    return Budget(s.trials, s.budget_hours, s.timeout_minutes)


def run_search(cfg: Config | None, out: str | Path, *, storage: str | None = None,
               study_name: str | None = None, progress: bool = False,
               callbacks=(), on_trial=None, worker: bool = False) -> SearchResult:
    """Run (or resume) a study until its strategy is done or its budget is spent.

    `worker=True` joins a study another process started: it runs trials and never enqueues any.
    """
    out = Path(out)
    study, cfg = open_study(cfg, out, storage, study_name)
    if worker and cfg.search.strategy == "protocol":
        raise ConfigError("the protocol strategy runs its stages from its one `tunelm search` "
                          "process; workers can join grid, random and tpe studies")
    if cfg.search.strategy in ("random", "tpe") and budget_of(cfg) == Budget():
        raise ConfigError(f"search.strategy {cfg.search.strategy} needs a budget: --trials, "
                          "--budget-hours or --timeout")
    dims = dims_of(cfg)
    runner = TrialRunner(cfg, dims, out, cfg.search.objective, extra_callbacks=callbacks,
                         progress=progress)
    started = time.time()
    stop = _BudgetStop(budget_of(cfg), started)
    stop.check(study)
    report = [stop] + ([on_trial] if on_trial else [])
    if not stop.reason:
        if cfg.search.strategy == "protocol":
            _run_protocol(study, cfg, runner, report, stop)
        else:
            if cfg.search.strategy == "tpe" and not study.trials and not worker:
                start = {d.name: _value_of(cfg, d.name) for d in dims if not d.when}
                study.enqueue_trial(start, user_attrs={"fixed": start, "tag": "recommended"})
            study.optimize(runner, n_trials=None, callbacks=report, catch=(Exception,),
                           gc_after_trial=True)
    reason = stop.reason or ("grid exhausted" if cfg.search.strategy == "grid" else
                             "protocol finished" if cfg.search.strategy == "protocol" else "done")
    keep_top(study, cfg.search.keep_top)
    return summarize(study, storage_url(out, storage), reason)


def _value_of(cfg: Config, path: str):
    section, name = path.split(".", 1)
    return getattr(getattr(cfg, section), name)


def _run_protocol(study, cfg: Config, runner, report, stop) -> None:
    base = {"train.learning_rate": cfg.train.learning_rate, "train.warmup_ratio":
            cfg.train.warmup_ratio}
    if cfg.model.method != "full":
        base["lora.r"] = cfg.lora.r
    proto = Protocol(base, tuned_rank=cfg.model.method != "full")
    while not stop.reason:
        todo = proto.propose(curves(study))
        if todo is None:
            break
        if not todo:
            raise SearchError("the protocol is waiting on trials another process is running; "
                              "run it from one `tunelm search` process")
        for s in todo:
            study.enqueue_trial(s.params, user_attrs={"fixed": s.params, "tag": s.tag,
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
                     "prune_reason": t.user_attrs.get("prune_reason")})
    return SearchResult(study.study_name, url, best.value if best else None,
                        best.user_attrs.get("params", best.params) if best else {},
                        best.user_attrs.get("trial_dir") if best else None, reason, rows)


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
    lines = [f"study {result.study_name} ({result.storage}): {result.stop_reason}"]
    if result.best_value is not None:
        lines.append(f"best value {result.best_value:.4f}: {json.dumps(result.best_params)}")
        lines.append(f"best trial directory {result.best_trial_dir}")
    for r in result.trials:
        regret = "" if r["relative_regret"] is None else f" regret {r['relative_regret']:.1%}"
        value = "" if r["value"] is None else f" value {r['value']:.4f}"
        lines.append(f"  trial {r['number']:3d} {r['state']:<8}{value}{regret} "
                     f"{json.dumps(r['params'])}"
                     + (f" ({r['prune_reason']})" if r["prune_reason"] else ""))
    return "\n".join(lines)
