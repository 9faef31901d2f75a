"""What a proxy config becomes on the target: the learning rate times the ratio of the
hidden-size rule between the two models, the LoRA rank kept or doubled, the rest kept."""

from __future__ import annotations

import math

from ..errors import ConfigError
from ..recommend import ModelFacts, formula_lr, model_facts  # noqa: F401 (model_facts: doctest)
from ..recommend.advice import cite

LR, RANK = "train.learning_rate", "lora.r"
RULE = "5e-5 x M x (2000 / hidden)^P, M = 10 for LoRA and 1 for full fine-tuning"


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
