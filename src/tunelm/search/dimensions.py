"""Search dimensions as values: what one dimension is, how a trial samples it, a grid over it,
and the config's own value of each. Pure (no config import): strategies and the config's
validation use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

KINDS = ("float", "int", "categorical")


@dataclass(frozen=True)
class Dimension:
    name: str  # a config path such as train.learning_rate
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    when: dict = field(default_factory=dict)  # condition on other dimensions' values

    def active(self, params: dict) -> bool:
        return all(params.get(k) == v for k, v in self.when.items())

    def contains(self, value) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        return isinstance(value, (int, float)) and self.low <= value <= self.high


def suggest_one(trial, d: Dimension):
    if d.kind == "categorical":
        return trial.suggest_categorical(d.name, list(d.choices))
    if d.kind == "int":
        return trial.suggest_int(d.name, int(d.low), int(d.high), log=d.log)
    return trial.suggest_float(d.name, d.low, d.high, log=d.log)


def suggest(trial, dims: list[Dimension], fixed: dict | None = None) -> dict:
    """Sample every active dimension through an Optuna trial (conditions in order).

    `fixed` values (an enqueued trial's) inside a dimension's range go through Optuna, which
    returns them and records them for its sampler; values outside it, and fixed values of
    fields that are not dimensions (a protocol stage's rank, say), are taken as given.
    """
    fixed = fixed or {}
    params: dict = {}
    for d in dims:
        if not d.active(params):
            continue
        if d.name in fixed and not d.contains(fixed[d.name]):
            params[d.name] = fixed[d.name]
        else:
            params[d.name] = suggest_one(trial, d)
    params.update({k: v for k, v in fixed.items() if k not in params})
    return params


def grid(dims: list[Dimension], points: int = 3) -> dict[str, list]:
    """Grid values per dimension: `points` values over each numeric range (log-spaced on a log
    scale), every choice of a categorical one."""
    out = {}
    for d in dims:
        if d.kind == "categorical":
            out[d.name] = list(d.choices)
            continue
        if d.log:
            lo, hi = math.log10(d.low), math.log10(d.high)
            values = [10 ** (lo + (hi - lo) * i / (points - 1)) for i in range(points)]
        else:
            values = [d.low + (d.high - d.low) * i / (points - 1) for i in range(points)]
        out[d.name] = sorted({int(round(v)) for v in values}) if d.kind == "int" else [
            float(f"{v:.4g}") for v in values]
    return out


def config_values(cfg, dims: list[Dimension]) -> dict:
    """The config's own value of every unconditional dimension: what a trial holds fixed when
    a strategy does not choose it (the recommended start, the protocol's untuned dimensions)."""
    return {d.name: _value_of(cfg, d.name) for d in dims if not d.when}


def _value_of(cfg, path: str):
    section, name = path.split(".", 1)
    return getattr(getattr(cfg, section), name)
