"""The result of a transfer: the target trials joined to their proxy configs, both sides ranked,
the winner, and the terminal table."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..search.location import is_storage_url
from .ranks import rank_shift
from .rule import LR


@dataclass
class TransferResult:
    source: str  # the proxy study
    study_name: str
    out: Path
    storage: str
    target_model: str
    method: str
    fraction: float
    configs: list[dict]  # in the proxy's order: params, values and ranks on both sides
    winner: dict | None
    spearman_rho: float | None
    kendall_tau: float | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def compare(study, configs: list[dict], source: str, out: Path, url: str,
             to_model: str, method: str, fraction: float) -> TransferResult:
    """Join the target trials to their proxy configs and rank both sides."""
    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    by_proxy = {t.user_attrs.get("proxy_trial"): t for t in study.get_trials(deepcopy=False)}
    configs = copy.deepcopy(configs)
    for rank, c in enumerate(configs, 1):
        t = by_proxy.get(c["proxy_trial"])
        ok = t is not None and t.state == TrialState.COMPLETE and t.value is not None \
            and math.isfinite(t.value)
        c.update(proxy_rank=rank, target_trial=t.number if t else None,
                 target_state=t.state.name if t else "NOT RUN",
                 target_value=t.value if ok else None,
                 target_trial_dir=t.user_attrs.get("trial_dir") if t else None,
                 target_note=t.user_attrs.get("prune_reason") if t else None)
    # finished configs by value; those that did not finish after them, in the proxy's order
    order = sorted(configs, key=lambda c: (c["target_value"] is None,
                                           sign * (c["target_value"] or 0), c["proxy_rank"]))
    shift = rank_shift([c["proxy_trial"] for c in configs], [c["proxy_trial"] for c in order])
    for c, row in zip(configs, shift.rows):
        c.update(target_rank=row["target_rank"], move=row["move"])
    best = order[0] if order and order[0]["target_value"] is not None else None
    winner = None if best is None else {
        "proxy_trial": best["proxy_trial"], "proxy_rank": best["proxy_rank"],
        "target_trial": best["target_trial"], "target_value": best["target_value"],
        "params": best["target_params"], "trial_dir": best["target_trial_dir"]}
    notes = ["proxy values are the proxy study's own runs; target values are runs of "
             f"{fraction:.0%} of the planned steps: only the ranks compare"]
    if len({c["proxy_fraction"] for c in configs}) > 1:
        notes.append("the proxy configs ran at different shares of their steps (a staged "
                     "study's probes and final run); their proxy order mixes fidelities")
    return TransferResult(source if is_storage_url(source) else str(Path(source).resolve()),
                          study.study_name, out, url, to_model, method, fraction, configs,
                          winner, shift.spearman_rho, shift.kendall_tau, notes)


def table(result: TransferResult) -> str:
    """The terminal table: one row per transferred config, in the proxy's order."""
    from ..search.live import brief_params

    def num(v):
        return "" if v is None else f"{v:.4f}"

    lines = [f"transfer to {result.target_model} ({result.method}), {result.fraction:.0%} of "
             f"the planned steps: study {result.out}",
             f"{'proxy':>5} {'rank':>4} {'value':>8}  {'target':>6} {'rank':>4} {'value':>8} "
             f"{'move':>5}  lr proxy -> target   params"]
    for c in result.configs:
        lr = c["explanation"]["learning_rate"]
        params = {k: v for k, v in c["target_params"].items() if k != LR}
        state = "" if c["target_state"] == "COMPLETE" else f"  ({c['target_state'].lower()}" + (
            f": {c['target_note']})" if c["target_note"] else ")")
        lines.append(
            f"{c['proxy_trial']:>5} {c['proxy_rank']:>4} {num(c['proxy_value']):>8}  "
            f"{'' if c['target_trial'] is None else c['target_trial']:>6} {c['target_rank']:>4} "
            f"{num(c['target_value']):>8} {c['move']:>+5}  {lr['proxy']:.2e} -> "
            f"{lr['target']:.2e}  {brief_params(params)}{state}".rstrip())
    first = result.configs[0]["explanation"]["learning_rate"]
    lines.append(f"learning rates x {first['formula_ratio']:.4g}: the hidden-size rule "
                 f"{first['target_formula']['formula_lr']:.3g} ({result.target_model}, "
                 f"{first['target_formula']['method']}) / {first['proxy_formula']['formula_lr']:.3g}"
                 f" ({first['proxy_formula']['model']}, {first['proxy_formula']['method']})")
    if result.spearman_rho is not None:
        lines.append(f"rank agreement: Spearman rho {result.spearman_rho:+.2f}, Kendall tau "
                     f"{result.kendall_tau:+.2f}")
    w = result.winner
    if w:
        lines.append(f"winner: proxy trial {w['proxy_trial']} (proxy rank {w['proxy_rank']}), "
                     f"target trial {w['target_trial']} value {w['target_value']:.4f}: "
                     f"{json.dumps(w['params'])}")
    lines.append(f"written to {result.out / 'transfer.json'}")
    return "\n".join(lines)
