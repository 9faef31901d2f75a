"""What a report shows, computed from a study and its trial directories, with no drawing.

    data = collect("runs/contracts")            # or collect(None, storage=URL, study_name=NAME)
    data.best.value, [row.state for row in data.rows], data.importance.values

Everything here is plain data (dataclasses of numbers and strings) so that tests check it and the
renderers (`charts`, `html`, `png`) only draw it.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..config import Config
from ..errors import TunelmError

log = logging.getLogger("tunelm.report")

LR = "train.learning_rate"
# prune reasons the health guard and the divergence pruner write (runner/callbacks.py, search/)
DIVERGED_PREFIXES = ("diverged", "loss is", "grad_norm is", "eval_loss is")
STATES = ("complete", "pruned", "diverged", "failed", "running")


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
class LineageCell:
    """One member-generation of a population-based training study."""

    member: int
    generation: int
    trial: int
    learning_rate: float | None
    parent: int | None  # the member whose checkpoint it continued (itself unless it exploited)
    explore: dict  # {dimension: "x0.8" | "x1.2" | "resample"} when it exploited
    loss: float | None  # eval loss at the end of its generation
    params: dict = field(default_factory=dict)


@dataclass
class ReportData:
    study_name: str
    storage: str
    objective: str  # eval_loss | exact_match
    direction: str  # minimize | maximize
    strategy: str
    counts: dict[str, int]
    history: list[HistoryPoint]
    curves: list[TrialCurve]
    lr_points: list[tuple[int, float, float, str]]  # (trial, learning rate, best eval loss, state)
    axes: list[Axis]  # parameters, then the objective
    parallel: list[tuple[int, str, dict]]  # (trial, state, {axis name: value})
    importance: Importance
    rows: list[TrialRow]
    best: Best | None
    params: list[str] = field(default_factory=list)
    lineage: list[LineageCell] = field(default_factory=list)  # pbt studies only


def trial_state(t: FrozenTrial) -> tuple[str, str]:
    """(state, reason): a pruned trial whose loss blew up is `diverged`, not merely `pruned`."""
    reason = str(t.user_attrs.get("prune_reason") or "")
    if t.state == TrialState.FAIL:
        return "failed", reason or str(t.system_attrs.get("fail_reason", "") or "the run crashed")
    if t.state == TrialState.PRUNED:
        return ("diverged" if reason.startswith(DIVERGED_PREFIXES) else "pruned"), reason
    if t.state == TrialState.COMPLETE:
        return "complete", reason
    return "running", reason


def eval_curve(t: FrozenTrial) -> tuple[list[int], list[float]]:
    """Finite eval losses by step: the values reported to Optuna, else the trial's metrics.jsonl."""
    points = sorted(t.intermediate_values.items())
    if not points:
        path = Path(t.user_attrs.get("trial_dir") or "/nonexistent") / "metrics.jsonl"
        if path.exists():
            rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            points = sorted({r["step"]: r["eval_loss"] for r in rows
                             if r.get("eval_loss") is not None}.items())
    points = [(int(s), float(v)) for s, v in points if v is not None and math.isfinite(v)]
    return [s for s, _ in points], [v for _, v in points]


def verdict_of(trial_dir: str | None) -> tuple[str, str]:
    """(verdict, most important finding) of `tunelm diagnose` on a trial directory; ("n/a", "")
    without the directory (another machine's worker wrote it) or without metrics to judge."""
    if not trial_dir or not Path(trial_dir).is_dir():
        return "n/a", ""
    try:
        from ..diagnose import diagnose
    except ImportError:  # an install without the diagnose package
        return "n/a", ""
    try:
        d = diagnose(trial_dir)
    except TunelmError as exc:  # e.g. a crashed trial with no metrics yet
        log.debug("no diagnosis for %s: %s", trial_dir, exc)
        return "n/a", ""
    finding = str(getattr(d.findings[0], "message", d.findings[0])) if d.findings else ""
    return str(d.verdict), finding


def _finite(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def _is_better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def history(trials: list[FrozenTrial], states: dict, direction: str) -> list[HistoryPoint]:
    out, best = [], None
    for t in trials:
        value = _finite(t.value)
        if value is None:
            continue
        if t.state == TrialState.COMPLETE and (best is None or _is_better(value, best, direction)):
            best = value
        out.append(HistoryPoint(t.number, value, states[t.number][0], best))
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
                if _finite(t.value) is not None]
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
    from ..search import open_study
    from ..search.space import apply
    from ..search.study import storage_url, summarize

    if study_dir is None and storage is None:
        from ..errors import ConfigError

        raise ConfigError("a report needs a study directory, or --storage URL --study NAME")
    out = Path(study_dir) if study_dir is not None else Path(study_name or "study")
    study, cfg = open_study(None, out, storage, study_name)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    direction = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    states = {t.number: trial_state(t) for t in trials}
    summary = summarize(study, storage_url(out, storage), "")
    regret = {r["number"]: r["relative_regret"] for r in summary.trials}
    names, axes = axes_of(cfg, [t for t in trials if t.state != TrialState.RUNNING])

    rows, curves, lr_points, parallel = [], [], [], []
    for t in trials:
        state, reason = states[t.number]
        params = t.user_attrs.get("params") or dict(t.params)
        steps, losses = eval_curve(t)
        verdict, finding = verdict_of(t.user_attrs.get("trial_dir"))
        best_loss = _finite(t.user_attrs.get("best_eval_loss"))
        if best_loss is None and losses:
            best_loss = min(losses)
        rows.append(TrialRow(
            number=t.number, state=state, reason=reason, tag=str(t.user_attrs.get("tag") or ""),
            params=params, value=_finite(t.value), best_eval_loss=best_loss,
            task_metric=_finite(t.user_attrs.get("exact_match")),
            cost_seconds=_finite(t.user_attrs.get("cost_seconds")),
            relative_regret=_finite(regret.get(t.number)),
            verdict=verdict, finding=finding, trial_dir=t.user_attrs.get("trial_dir")))
        if steps:
            curves.append(TrialCurve(t.number, state, reason, steps, losses))
        lr = params.get(LR, cfg.train.learning_rate if LR not in names else None)
        if best_loss is not None and _finite(lr) is not None:
            lr_points.append((t.number, float(lr), best_loss, state))
        if _finite(t.value) is not None:  # a conditional parameter may be missing: a gap
            parallel.append((t.number, state, {**params, cfg.search.objective: float(t.value)}))

    values = [v[cfg.search.objective] for _, _, v in parallel]
    if values:  # losses of diverged trials dwarf the rest: a log axis keeps both readable
        spread = min(values) > 0 and max(values) / min(values) > 10
        axes = axes + [Axis(cfg.search.objective, min(values), max(values), spread)]

    best = None
    complete = [t for t in trials if t.state == TrialState.COMPLETE and _finite(t.value) is not None]
    if complete:
        b = study.best_trial
        params = b.user_attrs.get("params") or dict(b.params)
        path = Path(best_yaml) if best_yaml else out / "best.yaml"
        best = Best(b.number, float(b.value), params, b.user_attrs.get("trial_dir"),
                    apply(cfg, params).to_yaml(),
                    commands(out if storage is None else None, storage, study.study_name, path))

    counts = {s: sum(1 for v in states.values() if v[0] == s) for s in STATES}
    return ReportData(
        study_name=study.study_name, storage=_redact(storage_url(out, storage)),
        objective=cfg.search.objective, direction=direction, strategy=cfg.search.strategy,
        counts=counts, history=history(trials, states, direction), curves=curves,
        lr_points=lr_points, axes=axes, parallel=parallel,
        importance=importance_of(study, names), rows=rows, best=best, params=names,
        lineage=lineage_of(trials))


def lineage_of(trials: list[FrozenTrial]) -> list[LineageCell]:
    """The member x generation cells of a pbt study (empty for other strategies); a retried
    member-generation shows its latest trial."""
    from ..search.pbt import PBT_ATTR

    cells: dict[tuple, LineageCell] = {}
    for t in trials:
        info = t.user_attrs.get(PBT_ATTR)
        if not info:
            continue
        params = t.user_attrs.get("params") or dict(t.params)
        loss = _finite(t.user_attrs.get("final_eval_loss"))
        key = (info["member"], info["generation"])
        if key in cells and cells[key].loss is not None and loss is None:
            continue
        cells[key] = LineageCell(info["member"], info["generation"], t.number,
                                 _finite(params.get(LR)), info.get("parent"),
                                 dict(info.get("explore") or {}), loss, params)
    return sorted(cells.values(), key=lambda c: (c.member, c.generation))


def _redact(url: str) -> str:
    """A storage URL without its password, for a report that gets shared."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: show it as given
        return url
