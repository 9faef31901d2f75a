"""What a study found: the summary of its trials (`SearchResult`), the text `tunelm search`
prints at the end, the best trial's config (`tunelm best`), and the adapters kept."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..config import Config
from ..errors import ConfigError
from .budget import NOT_RUN_ATTR, spent
from .live import brief_params
from .opener import CONFIG_ATTR, PRUNING_ATTR, load_study
from .space import apply


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
    objective: str = "value"  # search.objective
    direction: str = "minimize"
    pruning: str | None = None  # what the pruners read and why (goal.pruning_note)


def keep_top(study: optuna.Study, k: int) -> None:
    """Delete the saved adapters of every trial but the best `k` (their metrics stay)."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None]
    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    done.sort(key=lambda t: sign * t.value)
    keep = {t.number for t in done[:k]}
    # a preempted or retried trial shares its directory with the retry that finished it
    trials = study.get_trials(deepcopy=False)
    kept_dirs = {t.user_attrs.get("trial_dir") for t in done[:k]} | {
        t.user_attrs.get("trial_dir") for t in trials
        if t.state in (TrialState.RUNNING, TrialState.WAITING)}
    for t in trials:
        d = t.user_attrs.get("trial_dir")
        if d and t.number not in keep and d not in kept_dirs:
            shutil.rmtree(Path(d) / "best", ignore_errors=True)


def _row(t, best) -> dict:
    regret = None
    if best is not None and t.value is not None and best.value:
        regret = abs(t.value - best.value) / abs(best.value)
    return {"number": t.number, "state": t.state.name, "value": t.value,
            "params": t.user_attrs.get("params", t.params),
            "tag": t.user_attrs.get("tag"), "relative_regret": regret,
            "cost_seconds": t.user_attrs.get("cost_seconds"),
            "prune_reason": t.user_attrs.get("prune_reason"),
            "trial_dir": t.user_attrs.get("trial_dir"),
            "not_run": bool(t.user_attrs.get(NOT_RUN_ATTR))}


def summarize(study: optuna.Study, url: str, reason: str) -> SearchResult:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = study.best_trial if complete else None
    rows = [_row(t, best) for t in trials]
    total = spent(trials)
    try:  # the study records its total spend (read-only storages aside)
        study.set_user_attr("spent", {"trials": total.trials,
                                      "device_hours": round(total.device_hours, 4)})
    except Exception:  # noqa: BLE001
        pass
    search = study.user_attrs.get(CONFIG_ATTR, {}).get("search", {})
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else \
        "minimize"
    return SearchResult(study.study_name, url, best.value if best else None,
                        best.user_attrs.get("params", best.params) if best else {},
                        best.user_attrs.get("trial_dir") if best else None, reason, rows,
                        total.trials, total.device_hours, search.get("objective", "value"),
                        direction, study.user_attrs.get(PRUNING_ATTR))


def best_config(study_dir_or_url: str, study_name: str | None = None) -> Config:
    """The best trial's full config (what `tunelm best` prints)."""
    study, cfg = load_study(study_dir_or_url, name=study_name)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {study.study_name!r} has no finished trial yet")
    best = study.best_trial
    return apply(cfg, best.user_attrs.get("params", best.params))


def describe(result: SearchResult) -> str:
    """The end of a search: why it stopped, the best config and its directory, and every trial's
    relative regret against the best, best first."""
    lines = [f"study {result.study_name} ({result.storage}): {result.stop_reason}",
             f"spent {result.spent_trials} trials, {result.spent_device_hours:.3f} device-hours"]
    if result.best_value is not None:
        lines.append(f"best value {result.best_value:.4f} ({result.objective}, "
                     f"{result.direction}d): {json.dumps(result.best_params)}")
        lines.append(f"best trial directory {result.best_trial_dir}")
    if result.pruning:
        lines.append(result.pruning)
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
