"""The task metrics `eval.metric` names: one registry, so the config check, the trial, the
objective and the report read the same names.

Each built-in metric says which scores it returns (each one a possible `search.objective`) and
which optional library it needs; `package.module:function` names the user's own scorer
(`user.py`). `auto` picks `json` when every reference is a JSON object, else `none`.

>>> score("accuracy", ["Positive.", "no"], ["positive", "yes"])["accuracy"]
0.5
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from ...errors import ConfigError
from .labels import accuracy_scores
from .overlap import chrf_scores, rouge_scores
from .text import exact_scores, json_scores, parse_json_object
from .user import SHAPE, is_user_spec, spec_problem, user_scores

EXTRA = "metrics"  # pip install 'tunelm[metrics]' carries every optional metric library


@dataclass(frozen=True)
class Metric:
    name: str
    keys: tuple[str, ...]  # the scores it returns, each one a possible search.objective
    scores: Callable[[list[str], list[str]], dict]
    module: str | None = None  # the optional library it imports
    package: str | None = None  # that library's pip name


METRICS = {m.name: m for m in (
    Metric("json", ("exact_match", "parse_rate"), json_scores),
    Metric("exact", ("exact_match",), exact_scores),
    Metric("rouge", ("rougeL",), rouge_scores, "rouge_score", "rouge-score"),
    Metric("chrf", ("chrf",), chrf_scores, "sacrebleu", "sacrebleu"),
    Metric("accuracy", ("accuracy",), accuracy_scores),
)}
NAMES = ("auto", *METRICS, "none")
# scores that are shares of the examples, in [0, 1] (shown as percentages); chrf is 0-100
SHARES = ("exact_match", "parse_rate", "rougeL", "accuracy")
ACCEPTED = f"one of {', '.join(NAMES)}, or {SHAPE}"


def form_problem(metric) -> str | None:
    """What is wrong with the value of eval.metric itself (nothing imported), or None."""
    if is_user_spec(metric):
        return spec_problem(metric)
    if metric in NAMES:
        return None
    hint = " (a function is named with a colon: module:function)" if "." in str(metric) else ""
    return f"eval.metric must be {ACCEPTED}, got {metric!r}{hint}"


def offered(metric: str) -> tuple[str, ...] | None:
    """The scores `metric` returns (what search.objective may name); None for a user function,
    whose names are known once it has run."""
    if is_user_spec(metric):
        return None
    if metric == "auto":
        return METRICS["json"].keys
    return METRICS[metric].keys if metric in METRICS else ()


def missing_library(metric: str) -> str | None:
    """The message for a built-in metric whose optional library is not installed, or None."""
    m = METRICS.get(metric)
    if m is None or m.module is None or _installed(m.module):
        return None
    return (f"eval.metric {metric}: the {m.package} package is not installed; pip install "
            f"'tunelm[{EXTRA}]' (or pip install {m.package}), or choose another eval.metric")


def _installed(module: str) -> bool:
    """Whether `module` can be found without importing it (a finder that refuses it, as an
    import of it would fail, counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def availability_problems(metric: str, where: str | None = None) -> list[str]:
    """Before anything runs: the library of a built-in metric is installed, a user function
    imports and is callable. Messages name eval.metric, the value and what to do."""
    if is_user_spec(metric):
        from .user import load

        try:
            load(metric, where)
        except ConfigError as exc:
            return list(exc.problems)
        return []
    problem = missing_library(metric)
    return [problem] if problem else []


def choose_metric(metric: str, golds: list[str]) -> str:
    """`auto` picks json when every reference answer is a JSON object, else none."""
    if metric != "auto":
        return metric
    if golds and all(parse_json_object(g) is not None for g in golds):
        return "json"
    return "none"


def score(metric: str, predictions: list[str], golds: list[str],
          where: str | None = None) -> dict:
    """The scores of `metric` (chosen already: not auto) on predictions against references;
    {} for none. `where`: eval.metric_path, searched for a user function's module."""
    if is_user_spec(metric):
        return user_scores(metric, predictions, golds, where)
    if metric in METRICS:
        return METRICS[metric].scores(predictions, golds)
    return {}


def brief(task: dict) -> str:
    """The scores of a task metric's result on one line (`exact_match 0.850, parse_rate 1.000`),
    or '' when it has none."""
    return ", ".join(f"{k} {v:.3f}" for k, v in (task or {}).items() if k != "n"
                     and isinstance(v, (int, float)) and not isinstance(v, bool))


__all__ = ["ACCEPTED", "brief", "EXTRA", "METRICS", "NAMES", "SHARES", "Metric", "availability_problems",
           "choose_metric", "exact_scores", "form_problem", "json_scores", "missing_library",
           "offered", "parse_json_object", "score"]
