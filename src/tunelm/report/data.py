"""What a report shows, computed from a study and its trial directories, with no drawing.

    data = collect("runs/contracts")            # or collect(None, storage=URL, study_name=NAME)
    data.best.value, [row.state for row in data.rows], data.importance.values

Everything here is plain data (dataclasses of numbers and strings) so that tests check it and the
renderers (`charts`, `html`, `png`) only draw it.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..config import Config
from .lineage import LineageCell, lineage_of  # noqa: F401  (re-exported)
from .trials import (  # noqa: F401  (re-exported: the report's data is read from here)
    KINDS,
    STATES,
    eval_curve,
    finite,
    kind_labels,
    trial_kind,
    trial_state,
    verdict_of,
)

log = logging.getLogger("tunelm.report")

LR = "train.learning_rate"


@dataclass
class TrialCurve:
    """One trial's eval loss by step, with what became of the trial."""

    number: int
    state: str  # one of STATES
    reason: str
    steps: list[int]
    losses: list[float]


@dataclass
class HistoryPoint:
    number: int
    value: float
    state: str
    best_so_far: float | None  # over complete trials up to this one
    kind: str = "full"  # one of KINDS: a probe's loss is not a full run's
    fraction: float = 1.0  # the share of the planned steps it ran for


class LrPoint(NamedTuple):
    """A trial's best eval loss at its learning rate."""

    number: int
    learning_rate: float
    loss: float
    state: str
    kind: str = "full"
    fraction: float = 1.0


@dataclass
class Axis:
    """One parallel-coordinate axis: a parameter (or the objective) and its range."""

    name: str
    low: float
    high: float
    log: bool = False
    choices: tuple = ()  # a categorical axis: values are placed at their index

    def position(self, value) -> float:
        """`value` on this axis, from 0 (low) to 1 (high)."""
        if self.choices:
            i = self.choices.index(value)
            return 0.5 if len(self.choices) == 1 else i / (len(self.choices) - 1)
        lo, hi, v = self.low, self.high, float(value)
        if self.log:
            lo, hi, v = math.log10(lo), math.log10(hi), math.log10(v)
        return 0.5 if hi == lo else (v - lo) / (hi - lo)


@dataclass
class TrialRow:
    """A line of the trial table."""

    number: int
    state: str
    reason: str
    tag: str
    params: dict
    value: float | None
    best_eval_loss: float | None
    task_metric: float | None
    cost_seconds: float | None
    relative_regret: float | None
    verdict: str  # tunelm diagnose's verdict, or "n/a"
    finding: str  # its most important finding, or ""
    trial_dir: str | None


@dataclass
class Importance:
    """Parameter importances (summing to 1), or the note that says why there are none."""

    method: str
    values: dict[str, float] = field(default_factory=dict)
    note: str | None = None


@dataclass
class Best:
    number: int
    value: float
    params: dict
    trial_dir: str | None
    config_yaml: str
    commands: list[str]


@dataclass
class ReportData:
    study_name: str
    storage: str
    objective: str  # eval_loss or a score of eval.metric (search.objective)
    direction: str  # minimize | maximize
    strategy: str
    counts: dict[str, int]
    history: list[HistoryPoint]
    curves: list[TrialCurve]
    lr_points: list[LrPoint]
    axes: list[Axis]  # parameters, then the objective
    parallel: list[tuple[int, str, dict]]  # (trial, state, {axis name: value})
    importance: Importance
    rows: list[TrialRow]
    best: Best | None
    params: list[str] = field(default_factory=list)
    lineage: list[LineageCell] = field(default_factory=list)  # pbt studies only
    kinds: dict[str, str] = field(default_factory=dict)  # {kind: legend label} of those present
    task_score: str = "exact_match"  # the task metric's column: the objective's, if it is one


def _is_better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def history(trials: list[FrozenTrial], states: dict, direction: str) -> list[HistoryPoint]:
    out, best = [], None
    for t in trials:
        value = finite(t.value)
        if value is None:
            continue
        if t.state == TrialState.COMPLETE and (best is None or _is_better(value, best, direction)):
            best = value
        out.append(HistoryPoint(t.number, value, states[t.number][0], best, *trial_kind(t)))
    return out


def axes_of(cfg: Config, trials: list[FrozenTrial]) -> tuple[list[str], list[Axis]]:
    """Parameter names in search-space order, and one axis per parameter that the finished trials
    set, spanning the values they took (a protocol stage may step outside the space)."""
    from ..search.space import dims_of

    dims = {d.name: d for d in dims_of(cfg)}
    seen: dict[str, list] = {}
    for t in trials:
        for k, v in (t.user_attrs.get("params") or t.params).items():
            seen.setdefault(k, []).append(v)
    names = [n for n in dims if n in seen] + sorted(n for n in seen if n not in dims)
    axes = []
    for name in names:
        values = seen[name]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        d = dims.get(name)
        if not numeric or (d is not None and d.kind == "categorical"):
            choices = list(d.choices) if d is not None and d.kind == "categorical" else []
            choices += [v for v in dict.fromkeys(values) if v not in choices]
            axes.append(Axis(name, 0, max(1, len(choices) - 1), choices=tuple(choices)))
            continue
        log_scale = (d.log if d is not None else name == LR) and min(values) > 0
        axes.append(Axis(name, float(min(values)), float(max(values)), log_scale))
    return names, axes


def importance_of(study: optuna.Study, names: list[str]) -> Importance:
    """PED-ANOVA importances (Optuna's default evaluator: numpy only, fANOVA would need
    scikit-learn) over the complete trials, or a note when they cannot say anything."""
    method = "PED-ANOVA (Optuna)"
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if finite(t.value) is not None]
    if len(complete) < 2:
        return Importance(method, note=f"parameter importance needs at least 2 complete trials; "
                                       f"this study has {len(complete)}")
    varying = [n for n in names if any(n in t.distributions for t in complete)
               and len({repr(t.params.get(n)) for t in complete}) > 1]
    if len(varying) < 2:
        what = f"only {varying[0]} varies" if varying else "no parameter varies"
        return Importance(method, note=f"parameter importance compares parameters; {what} "
                                       "across the complete trials")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA warns that few trials make a rough estimate
        values = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=varying)
    if not any(v > 0 for v in values.values()):
        return Importance(method, note="PED-ANOVA found no parameter that separates the best "
                                       "trials from the others (too few trials?)")
    return Importance(method, {k: float(v) for k, v in values.items()})


def commands(study_dir: Path | None, storage: str | None, study_name: str,
             best_yaml: Path) -> list[str]:
    """The commands that train the best configuration (written to `best_yaml`) and export it."""
    target = _redact(storage) + f" --study {study_name}" if storage else str(study_dir)
    return [f"tunelm train {best_yaml} --out runs/best", f"tunelm export {target} --to trl"]


def collect(study_dir: str | Path | None, *, storage: str | None = None,
            study_name: str | None = None, best_yaml: str | Path | None = None) -> ReportData:
    """Everything a report shows, from the study in `study_dir` (SQLite `study.db`), or in
    `storage` (a SQLAlchemy URL) under `study_name`.

    `best_yaml` is where the report's best configuration is written (the commands name it).
    Raises ConfigError (exit code 2) when there is no such study.
    """
    from ..search.opener import load_study
    from ..search.study import storage_url, summarize

    if study_dir is None and storage is None:
        from ..errors import ConfigError

        raise ConfigError("a report needs a study directory, or --storage URL --study NAME")
    out = Path(study_dir) if study_dir is not None else Path(study_name or "study")
    study, cfg = load_study(out, storage, study_name)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    states = {t.number: trial_state(t) for t in trials}
    summary = summarize(study, storage_url(out, storage), "")
    regret = {r["number"]: r["relative_regret"] for r in summary.trials}
    names, axes = axes_of(cfg, [t for t in trials if t.state != TrialState.RUNNING])

    rows, curves, lr_points, parallel = [], [], [], []
    task_score = "exact_match" if cfg.search.objective == "eval_loss" else cfg.search.objective
    for t in trials:
        state, reason = states[t.number]
        steps, losses = eval_curve(t)
        row = row_of(t, state, reason, losses, regret.get(t.number), task_score)
        rows.append(row)
        if steps:
            curves.append(TrialCurve(t.number, state, reason, steps, losses))
        lr = row.params.get(LR, cfg.train.learning_rate if LR not in names else None)
        if row.best_eval_loss is not None and finite(lr) is not None:
            lr_points.append(LrPoint(t.number, float(lr), row.best_eval_loss, state,
                                     *trial_kind(t)))
        if row.value is not None:  # a conditional parameter may be missing: a gap
            parallel.append((t.number, state, {**row.params, cfg.search.objective: row.value}))

    values = [v[cfg.search.objective] for _, _, v in parallel]
    if values:  # losses of diverged trials dwarf the rest: a log axis keeps both readable
        spread = min(values) > 0 and max(values) / min(values) > 10
        axes = axes + [Axis(cfg.search.objective, min(values), max(values), spread)]
    points = history(trials, states, direction)
    to_run = commands(out if storage is None else None, storage, study.study_name,
                      Path(best_yaml) if best_yaml else out / "best.yaml")
    counts = {s: sum(1 for v in states.values() if v[0] == s) for s in STATES}
    return ReportData(
        study_name=study.study_name, storage=_redact(storage_url(out, storage)),
        objective=cfg.search.objective, direction=direction, strategy=cfg.search.strategy,
        counts=counts, history=points, curves=curves, lr_points=lr_points, axes=axes,
        parallel=parallel, importance=importance_of(study, names), rows=rows,
        best=best_of(study, cfg, trials, to_run), params=names,
        lineage=lineage_of(trials), kinds=kind_labels([*points, *lr_points]),
        task_score=task_score)


def row_of(t: FrozenTrial, state: str, reason: str, losses: list[float],
           regret: float | None, task_score: str = "exact_match") -> TrialRow:
    """The trial table's line for `t`; its best eval loss is the one the run recorded, else the
    lowest of its eval `losses`; its task metric is the score named `task_score`."""
    best_loss = finite(t.user_attrs.get("best_eval_loss"))
    if best_loss is None and losses:
        best_loss = min(losses)
    verdict, finding = verdict_of(t.user_attrs.get("trial_dir"))
    return TrialRow(
        number=t.number, state=state, reason=reason, tag=str(t.user_attrs.get("tag") or ""),
        params=t.user_attrs.get("params") or dict(t.params), value=finite(t.value),
        best_eval_loss=best_loss, task_metric=finite((t.user_attrs.get("task_scores") or {}).get(
            task_score, t.user_attrs.get("exact_match") if task_score == "exact_match" else None)),
        cost_seconds=finite(t.user_attrs.get("cost_seconds")), relative_regret=finite(regret),
        verdict=verdict, finding=finding, trial_dir=t.user_attrs.get("trial_dir"))


def best_of(study: optuna.Study, cfg: Config, trials: list[FrozenTrial],
            to_run: list[str]) -> Best | None:
    """The study's best trial with its full configuration and `to_run`, the commands that train
    and export it; None before a trial completes."""
    from ..search.space import apply

    if not any(t.state == TrialState.COMPLETE and finite(t.value) is not None for t in trials):
        return None
    b = study.best_trial
    params = b.user_attrs.get("params") or dict(b.params)
    return Best(b.number, float(b.value), params, b.user_attrs.get("trial_dir"),
                apply(cfg, params).to_yaml(), to_run)


def _redact(url: str) -> str:
    """A storage URL without its password, for a report that gets shared."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: show it as given
        return url
