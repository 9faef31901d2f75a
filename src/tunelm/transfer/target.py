"""The target study's config and search space, built from the proxy study's."""

from __future__ import annotations

from ..config import Config, apply_overrides, from_dict, parse_overrides
from ..search.strategies import strategy_named
from .rule import LR, RANK


def target_config(proxy_cfg: Config, to_model: str, top: int, overrides=()) -> Config:
    """The proxy study's config with the target model (and `--set` overrides): pruning off, so
    every transferred config runs its share of the steps, and a budget of exactly `top` trials
    (`tunelm search` on the new study then finds nothing left to do)."""
    raw = apply_overrides(proxy_cfg.to_dict(), parse_overrides(list(overrides)))
    raw["model"]["name"] = to_model
    raw["search"].update(pruner="none", curve_pruner=False, trials=top, budget_hours=None,
                         timeout_minutes=None,
                         workers=1, isolate=False, keep_top=max(1, proxy_cfg.search.keep_top))
    if not strategy_named(raw["search"]["strategy"]).local_workers:
        raw["search"]["strategy"] = "random"  # enqueued trials only; no stages to resume
    return from_dict(raw)


def target_space(cfg: Config, params: list[dict], lr_ratio: float, double_rank: bool) -> dict:
    """The target study's search space: the proxy's dimensions for the transferred parameters,
    the learning rate's scaled by the rule's ratio and the rank's doubled with --double-rank,
    so the transferred values sit inside it. Parameters without a dimension are fixed values."""
    from ..search.space import dims_of

    keys = set().union(*params)
    space = {}
    for d in dims_of(cfg):
        if d.name not in keys:
            continue
        spec: dict = ({"type": "categorical", "choices": list(d.choices)} if d.kind ==
                      "categorical" else {"type": d.kind, "low": d.low, "high": d.high,
                                          "log": d.log})
        if d.when and set(d.when) <= keys:
            spec["when"] = d.when
        if d.name == LR:
            if d.kind == "categorical":
                spec["choices"] = [float(f"{c * lr_ratio:.3g}") for c in d.choices]
            else:
                spec.update(low=float(f"{d.low * lr_ratio:.3g}"),
                            high=float(f"{d.high * lr_ratio:.3g}"))
        if d.name == RANK and double_rank and d.kind == "categorical":
            spec["choices"] = [2 * int(c) for c in d.choices]
        space[d.name] = spec
    if LR not in space:  # a decade each side of the transferred rates
        lrs = [p[LR] for p in params]
        space[LR] = {"type": "float", "low": float(f"{min(lrs) / 10:.3g}"),
                     "high": float(f"{max(lrs) * 10:.3g}"), "log": True}
    return space
