"""The search space: parsed from the config's `search.space` (what `tunelm recommend` writes),
sampled through an Optuna trial, and applied back onto a Config for one trial.

    search:
      space:
        train.learning_rate: {type: float, low: 1.3e-4, high: 1.3e-2, log: true}
        lora.r: {type: categorical, choices: [8, 16, 32]}
        train.wsd_stable_end: {type: float, low: 0.6, high: 0.9, when: {train.scheduler: wsd}}

LoRA alpha is not a dimension: the update grows with alpha x learning rate, so the two are one
knob; the learning rate carries it and alpha stays at its configured value.
"""

from __future__ import annotations

import copy
from typing import Any

from ..config import Config, field_help, from_dict
from ..errors import ConfigError
from .dimensions import KINDS, Dimension, config_values, grid, suggest, suggest_one

__all__ = ["KINDS", "Dimension", "apply", "config_values", "default_space", "dims_of", "grid",
           "parse_space", "space_around", "suggest", "suggest_one"]

def parse_space(space: dict) -> list[Dimension]:
    """Dimensions of a `search.space` mapping; every problem is reported at once."""
    known = field_help()
    problems: list[str] = []
    dims: list[Dimension] = []
    for name, spec in (space or {}).items():
        where = f"search.space.{name}"
        if name == "lora.alpha":
            problems.append(
                f"{where}: alpha and the learning rate are one knob (the update grows with "
                "alpha x rate); search train.learning_rate and keep lora.alpha fixed"
            )
            continue
        if name not in known:
            problems.append(f"{where}: {name!r} is not a config field (e.g. train.learning_rate)")
            continue
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            problems.append(f"{where} must be a mapping with type one of {', '.join(KINDS)}, "
                            f"got {spec!r}")
            continue
        when = spec.get("when") or {}
        if spec["type"] == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                problems.append(f"{where}.choices must be a non-empty list, got {choices!r}")
                continue
            dims.append(Dimension(name, "categorical", choices=tuple(choices), when=when))
            continue
        low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            problems.append(f"{where} needs numeric low and high, got {low!r} and {high!r}")
            continue
        if low >= high:
            problems.append(f"{where}: low must be < high, got {low} and {high}")
            continue
        if log and low <= 0:
            problems.append(f"{where}: a log scale needs low > 0, got {low}")
            continue
        dims.append(Dimension(name, spec["type"], float(low), float(high), log, when=when))
    names = {d.name for d in dims}
    for d in dims:
        for k in d.when:
            if k not in names:
                problems.append(f"search.space.{d.name}.when names {k!r}, which is not a dimension")
    if problems:
        raise ConfigError(problems)
    return _conditions_first(dims)


def _conditions_first(dims: list[Dimension]) -> list[Dimension]:
    """The dimensions in an order where each comes after those its `when` names: a sampler
    suggests in list order and reads the conditions from what it has already suggested, so a
    conditional dimension written first (YAML with sorted keys) would otherwise never be drawn."""
    ordered: list[Dimension] = []
    placed: set[str] = set()
    waiting = list(dims)
    while waiting:
        ready = [d for d in waiting if set(d.when) <= placed]
        if not ready:
            cycle = ", ".join(d.name for d in waiting)
            raise ConfigError([f"search.space: the `when` conditions of {cycle} depend on each "
                               "other in a circle; a condition must name a dimension drawn "
                               "before it"])
        ordered += ready
        placed |= {d.name for d in ready}
        waiting = [d for d in waiting if d.name not in placed]
    return ordered


def apply(cfg: Config, params: dict[str, Any]) -> Config:
    """A copy of `cfg` with `params` (dotted config paths) set, validated."""
    raw = copy.deepcopy(cfg.to_dict())
    for key, value in params.items():
        section, name = key.split(".", 1)
        raw[section][name] = value
    return from_dict(raw)


def space_around(lr: float, r: int, method: str, lr_low: float | None = None,
                 lr_high: float | None = None) -> dict:
    """A decade each side of the learning rate (widened to `lr_low`..`lr_high` when given), rank
    r/2..2r, warmup, weight decay and dropout in their published ranges. Alpha stays fixed: it
    multiplies the step exactly as the rate does, so it is not a second dimension."""
    low = min(lr / 10, lr_low) if lr_low is not None else lr / 10
    high = max(lr * 10, lr_high) if lr_high is not None else lr * 10
    space = {
        "train.learning_rate": {"type": "float", "low": float(f"{low:.3g}"),
                                "high": float(f"{high:.3g}"), "log": True},
        "train.warmup_ratio": {"type": "float", "low": 0.03, "high": 0.1},
        "train.weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
    }
    if method != "full":
        space["lora.r"] = {"type": "categorical", "choices": sorted({max(1, r // 2), r, 2 * r})}
        space["lora.dropout"] = {"type": "float", "low": 0.0, "high": 0.1}
    return space


def default_space(cfg: Config) -> dict:
    """Around the config's own values, for a config with no `search.space`."""
    return space_around(cfg.train.learning_rate, cfg.lora.r, cfg.model.method)


def dims_of(cfg: Config) -> list[Dimension]:
    """The dimensions a study of `cfg` searches: its `search.space`, or the default one."""
    return parse_space(cfg.search.space or default_space(cfg))
