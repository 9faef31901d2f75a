"""`tunelm transfer`: verify the best configs of a proxy-model study on a larger target model.

A study on a small proxy is cheap. Its K best configs are carried over to the target and run
there as short runs (a share of the planned steps, 20% by default) in a new study; the result
names the winner on the target and how far each config's rank moved.

What carries over, and how:

- the learning rate is multiplied by the ratio of the hidden-size rule between the two models,
  formula_lr(target) / formula_lr(proxy): the rule `tunelm recommend` uses,
  5e-5 x M x (2000 / hidden)^P (M 10 for LoRA, 1 for full fine-tuning; P by family). The ratio
  is neither a copy nor a guessed halving, and it covers a change of method as well as of size;
- the LoRA rank is kept, or doubled with `double_rank`;
- warmup, dropout, weight decay and lora.alpha are kept: the rule was fitted with alpha fixed,
  and at fixed alpha the best rate does not depend on the rank.

    result = run_transfer("runs/proxy", "tiny:hidden=64,layers=2", top=3, fraction=0.2)
    print(table(result))
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .config import Config, apply_overrides, from_dict, parse_overrides
from .errors import ConfigError, TrainingError
from .files import write_text_atomic
from .recommend import ModelFacts, formula_lr, model_facts
from .recommend.advice import cite
from .search.location import is_storage_url
from .search.strategies import strategy_named

log = logging.getLogger("tunelm.transfer")
LR, RANK = "train.learning_rate", "lora.r"
RULE = "5e-5 x M x (2000 / hidden)^P, M = 10 for LoRA and 1 for full fine-tuning"


# ----------------------------------------------------------------------------------------------
# Pure decisions: what a config becomes on the target, and how the rank order moved
# ----------------------------------------------------------------------------------------------


def _formula(facts: ModelFacts, method: str) -> dict:
    lr, exponent, assumed = formula_lr(facts.hidden_size, facts.family, method)
    return {"model": facts.name, "hidden_size": facts.hidden_size, "family": facts.family,
            "method": method, "formula_lr": lr, "exponent": exponent,
            "exponent_assumed": assumed}


def transfer_params(params: dict, proxy_facts: ModelFacts, target_facts: ModelFacts,
                    method: str, double_rank: bool = False, *, proxy_method: str | None = None,
                    rslora: bool = False) -> tuple[dict, dict]:
    """A proxy config's `params` (config paths) as the target runs them, and why.

    `method` is the target's method; `proxy_method` the proxy study's (default: the same).
    Returns (new params, explanation): the explanation records both models' formula rates, the
    ratio, the rule and its source, and what was kept, doubled or dropped.

    >>> small = model_facts("tiny:hidden=32"); big = model_facts("tiny:hidden=64")
    >>> transfer_params({"train.learning_rate": 1e-3}, small, big, "lora")[0]
    {'train.learning_rate': 0.000582}
    """
    if LR not in params:
        raise ConfigError(f"a transferred config needs {LR}; got {sorted(params)}")
    proxy_method = proxy_method or method
    proxy, target = _formula(proxy_facts, proxy_method), _formula(target_facts, method)
    ratio = target["formula_lr"] / proxy["formula_lr"]
    notes: list[str] = []
    factor = ratio
    new: dict = {}
    kept: list[str] = []
    for key, value in params.items():
        if key == LR:
            new[key] = value  # set below, once every factor is known
        elif key.startswith("lora.") and method == "full":
            notes.append(f"{key} dropped: full fine-tuning has no adapters")
        elif key == RANK and double_rank:
            new[key] = 2 * int(value)
            if rslora:  # alpha/sqrt(r): the update grows by sqrt(2), as recommend rescales it
                factor /= math.sqrt(2)
                notes.append("rank doubled with rsLoRA: the update scale alpha/sqrt(r) grows by "
                             "sqrt(2), so the rate is divided by sqrt(2) (recommend's alpha rule)")
        else:
            new[key] = value
            kept.append(key)
    if double_rank and method == "full":
        notes.append("--double-rank ignored: full fine-tuning has no rank")
    if method == "full":
        notes.append(f"full fine-tuning: the rule gives {target['formula_lr']:.3g} for "
                     f"{target_facts.name} (M = 1, not LoRA's 10: the best full fine-tuning rate "
                     "is about 10x below the LoRA rate)")
    if proxy_method != method and "full" in (proxy_method, method):
        notes.append(f"method {proxy_method} -> {method}: the ratio includes the LoRA "
                     f"multiplier's factor {10 if method != 'full' else 0.1:g}")
    for side, f in (("proxy", proxy), ("target", target)):
        if f["exponent_assumed"]:
            notes.append(f"{side} {f['model']}: no exponent is published for the {f['family']} "
                         f"family; the Llama exponent {f['exponent']} is assumed")
    lr = float(params[LR])
    new[LR] = float(f"{lr * factor:.3g}")
    explanation = {
        "learning_rate": {
            "proxy": lr, "target": new[LR], "ratio": factor, "formula_ratio": ratio,
            "how": f"{lr:.3g} x {target['formula_lr']:.3g} / {proxy['formula_lr']:.3g}"
                   + (" / sqrt(2)" if factor != ratio else "") + f" = {new[LR]:.3g}",
            "rule": RULE, "source": cite("tinker"),
            "proxy_formula": proxy, "target_formula": target,
        },
        "rank": (None if RANK not in params or method == "full" else
                 {"proxy": params[RANK], "target": new[RANK],
                  "how": "doubled (--double-rank)" if double_rank else "kept"}),
        "kept": kept + ([] if method == "full" else ["lora.alpha (the study config's)"]),
        "notes": notes,
    }
    return new, explanation


@dataclass
class RankShift:
    """Per config: its rank in the proxy order, on the target, and the move (positive: up)."""

    rows: list[dict]
    spearman_rho: float | None  # None with fewer than two configs
    kendall_tau: float | None


def rank_shift(proxy_order: list, target_order: list) -> RankShift:
    """Compare two orders of the same configs (best first), e.g. proxy trial numbers.

    >>> rank_shift([7, 3, 5], [3, 7, 5]).rows[0]
    {'id': 7, 'proxy_rank': 1, 'target_rank': 2, 'move': -1}
    """
    if len(set(proxy_order)) != len(proxy_order) or set(proxy_order) != set(target_order) \
            or len(target_order) != len(proxy_order):
        raise ValueError(f"the two orders must hold the same configs once each, got "
                         f"{list(proxy_order)} and {list(target_order)}")
    where = {c: i + 1 for i, c in enumerate(target_order)}
    rows = [{"id": c, "proxy_rank": i + 1, "target_rank": where[c], "move": i + 1 - where[c]}
            for i, c in enumerate(proxy_order)]
    n = len(rows)
    if n < 2:
        return RankShift(rows, None, None)
    rho = 1 - 6 * sum(r["move"] ** 2 for r in rows) / (n * (n * n - 1))
    pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
    concordant = sum((a["target_rank"] < b["target_rank"]) for a, b in pairs)
    tau = (2 * concordant - len(pairs)) / len(pairs)
    return RankShift(rows, rho, tau)


def slug(name: str) -> str:
    """`tiny:hidden=64,layers=2` -> `tiny-hidden-64-layers-2` (for directory names)."""
    return re.sub(r"[^a-z0-9.]+", "-", name.lower().split("/")[-1]).strip("-.") or "model"


# ----------------------------------------------------------------------------------------------
# The run: read the proxy study, run the transferred configs in a new study, compare
# ----------------------------------------------------------------------------------------------


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


def _ranked(study: optuna.Study) -> list:
    """The study's COMPLETE trials, best first."""
    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    return sorted(done, key=lambda t: (sign * t.value, t.number))


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
    from .search.space import dims_of

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


def run_transfer(from_study: str | Path, to_model: str, top: int = 3, fraction: float = 0.2,
                 out: str | Path | None = None, double_rank: bool = False,
                 storage: str | None = None, study_name: str | None = None,
                 overrides: list[str] | None = None, progress: bool = False) -> TransferResult:
    """Run the `top` best configs of the proxy study `from_study` (a directory, or a storage URL
    with `study_name`; `storage` names the URL of a directory's study kept elsewhere) on `to_model`, each for `fraction` of its planned steps, in a new study
    in `out` (default `<proxy dir>-to-<model slug>`); writes `out/transfer.json`.

    Raises ConfigError/ModelError (exit 2) for a missing study, too few finished trials, a
    fraction outside (0, 1] or an unknown model; TrainingError when no config finished.
    """
    from .search.budget import Budget
    from .search.live import LiveTable
    from .search.objective import TrialObjective
    from .search.opener import load_study
    from .search.space import dims_of
    from .search.study import keep_top, open_study, storage_url

    if not isinstance(top, int) or top < 1:
        raise ConfigError(f"--top must be a whole number >= 1, got {top!r}")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ConfigError(f"--fraction must be in (0, 1] (a share of the planned steps), "
                          f"got {fraction!r}")
    text = str(from_study)
    url = storage or (text if is_storage_url(text) else None)
    if url is not None and not study_name:
        raise ConfigError(f"{url} is a storage URL: name the study with --study NAME")
    if url is None and not (Path(text) / "study.db").exists():
        raise ConfigError(f"--from {text}: no study there (no study.db); give a study directory "
                          "that `tunelm search` wrote, or a storage URL with --study NAME")
    target_facts = model_facts(to_model)  # an unknown model fails here, before any work
    proxy, proxy_cfg = load_study(text, url, study_name)
    ranked = _ranked(proxy)
    proxy_facts = model_facts(proxy_cfg.model.name)
    cfg = target_config(proxy_cfg, to_model, top, overrides or ())
    method = cfg.model.method

    base = {LR: proxy_cfg.train.learning_rate}
    if "full" not in (method, proxy_cfg.model.method):
        base[RANK] = proxy_cfg.lora.r
    elif proxy_cfg.model.method == "full" and method != "full":
        base[RANK] = cfg.lora.r  # the target's adapters: the config's rank
    configs, seen = [], set()
    for t in ranked:
        proxy_params = {**base, **t.user_attrs.get("params", t.params)}
        params, why = transfer_params(proxy_params, proxy_facts, target_facts, method,
                                      double_rank, proxy_method=proxy_cfg.model.method,
                                      rslora=cfg.lora.use_rslora)
        key = json.dumps(params, sort_keys=True)
        if key in seen:  # one config on the target: a protocol's final run repeats a probe,
            continue  # and full fine-tuning drops the rank; the better trial stands for it
        seen.add(key)
        configs.append({"proxy_trial": t.number, "proxy_value": t.value,
                        "proxy_fraction": float(t.user_attrs.get("fraction", 1.0)),
                        "proxy_params": proxy_params, "target_params": params,
                        "explanation": why})
        if len(configs) == top:
            break
    if len(configs) < top:
        name = f"study {proxy.study_name!r}"
        raise ConfigError(
            f"--top {top}: {name} has only {len(configs)} finished trial(s) with distinct "
            f"configs on the target (of {len(ranked)} finished); ask for --top {len(configs)} "
            "or fewer, or let `tunelm search` finish more trials first" if configs else
            f"--top {top}: {name} has no finished trial yet; let `tunelm search` finish some")
    ratio = configs[0]["explanation"]["learning_rate"]["formula_ratio"]
    raw = cfg.to_dict()
    raw["search"]["space"] = target_space(proxy_cfg, [c["target_params"] for c in configs],
                                          ratio, double_rank)
    cfg = from_dict(raw)

    if out is None:
        parent = Path(text) if "://" not in text else Path("runs") / proxy.study_name
        out = parent.parent / f"{parent.name}-to-{slug(to_model)}"
    out = Path(out)
    if (out / "study.db").exists():
        raise ConfigError(f"--out {out} already holds a study; give --out NEW_DIR")
    study, cfg = open_study(cfg, out)
    study.set_user_attr("strategy", "transfer")
    study.set_user_attr("transfer_from", f"{url} (study {proxy.study_name})" if url else
                        str(Path(text).resolve()))
    for c in configs:
        study.enqueue_trial(c["target_params"], skip_if_exists=False, user_attrs={
            "fixed": c["target_params"], "tag": f"transfer of proxy trial {c['proxy_trial']}",
            "fraction": fraction, "proxy_trial": c["proxy_trial"]})
    log.info("transfer: %d configs of %s (%s) to %s (%s), %.0f%% of the planned steps each",
             len(configs), proxy.study_name, proxy_cfg.model.name, to_model, method,
             100 * fraction)
    runner = TrialObjective(cfg, dims_of(cfg), out, cfg.search.objective, progress=progress)
    live = LiveTable(Budget(trials=top))
    study.optimize(runner, n_trials=len(configs), callbacks=[live], catch=(Exception,),
                   gc_after_trial=True)
    if runner.fatal is not None:
        raise runner.fatal
    keep_top(study, cfg.search.keep_top)

    result = _compare(study, configs, text, out, storage_url(out, None),
                      to_model, method, fraction)
    write_text_atomic(out / "transfer.json", json.dumps(result.as_dict(), indent=2) + "\n")
    if result.winner is None:
        raise TrainingError(f"no transferred config finished on {to_model}; see {out}/trials "
                            f"and {out}/transfer.json")
    return result


def _compare(study, configs: list[dict], source: str, out: Path, url: str,
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
    from .search.live import brief_params

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
